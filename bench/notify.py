"""Closure notices: how fast they reach a local SMTP server, and how soon the first arrives.

    uv run python bench/notify.py [--notices 10000] [--runs 3] [--samples 25] [--concurrency 4]

Sets up a throwaway embedded PostGIS with the demo city, a local SMTP server (aiosmtpd, in its
own process) and a notice worker (`geo311 worker`, in its own process, as in production). Then:

- throughput: one incident with ``--notices`` subscribed requesters is completed with an
  after-photo; the closure owes one mail each, in the closing transaction. Measured from that
  commit to the last mail accepted by the server.
- latency: with the worker idle, incidents with one subscriber each are closed one at a time;
  measured from the commit to that mail accepted (p50, p90).

Baseline, side by side in the same run: the same messages sent by a bare smtplib loop on one
connection, with no database, queue, claim or outcome recording — the ceiling for one
connection. Every figure is the median of ``--runs`` runs; duplicates are counted too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fixtures.load import load_demo  # noqa: E402
from geo311.kernel import migrate  # noqa: E402
from geo311.kernel.database import Database  # noqa: E402
from geo311.kernel.embedded import EmbeddedCluster  # noqa: E402
from geo311.kernel.media import uploads  # noqa: E402
from geo311.kernel.media.store import LocalMediaStore  # noqa: E402
from geo311.kernel.settings import MediaSettings  # noqa: E402
from work_orders import categories as category_service  # noqa: E402
from work_orders import completion, incidents, lookups, transitions  # noqa: E402
from work_orders.models import WorkOrder  # noqa: E402

PHOTO = ROOT / "fixtures" / "photos" / "pothole_ward4.jpg"
SECRET = "bench-link-secret"


# --- the SMTP server, in its own process ----------------------------------------------------


def serve_smtp(port: int, log_path: str) -> None:
    """Run an SMTP server that appends "<unix time> <notice key>" per accepted mail."""
    from aiosmtpd.controller import Controller

    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802, ARG002
            content = bytes(envelope.content)
            start = content.find(b"X-Geo311-Notice: ")
            key = (
                content[start + 17 : content.find(b"\r\n", start)].decode()
                if start >= 0
                else "baseline"
            )
            log.write(f"{time.time():.6f} {key}\n")
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


class SmtpServer:
    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-smtp", str(port), str(log_path)]
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the SMTP server did not start")

    def lines(self) -> list[tuple[float, str]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            stamp, _, key = line.partition(" ")
            out.append((float(stamp), key))
        return out

    def clear(self) -> None:
        self.log_path.write_text("")

    def wait_for(self, count: int, timeout_s: float = 600) -> list[tuple[float, str]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            lines = self.lines()
            if len(lines) >= count:
                return lines
            time.sleep(0.002 if count == 1 else 0.05)
        raise TimeoutError(f"only {len(self.lines())} of {count} mails arrived")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


# --- data -----------------------------------------------------------------------------------


def incident_with_subscribers(db: Database, count: int) -> int:
    """Return a new in-progress work order whose incident has ``count`` subscribed requesters
    (bulk-inserted: no "received" notices are owed for them)."""
    with db.session() as session:
        jid = session.execute(text("SELECT id FROM jurisdictions WHERE slug = 'demo'")).scalar_one()
        category = category_service.get_category(session, jurisdiction_id=jid, code="pothole")
        assert category is not None
        lon, lat = session.execute(
            text(
                "SELECT ST_X(c), ST_Y(c) "
                "FROM (SELECT ST_PointOnSurface(geom) c FROM wards LIMIT 1) s"
            )
        ).one()
        incident = incidents.open_incident(
            session,
            category=category,
            lon=lon,
            lat=lat,
            ward_id=None,
            asset_id=None,
            opened_at=datetime.now(UTC),
        )
        session.execute(
            text(
                """
                WITH q AS (
                    INSERT INTO requesters (jurisdiction_id, email, language)
                    SELECT :jid, 'r' || g || '.' || :incident || '@bench.example',
                           CASE WHEN g % 3 = 0 THEN 'es' ELSE 'en' END
                    FROM generate_series(1, :n) g RETURNING id
                ), r AS (
                    INSERT INTO reports (jurisdiction_id, tracking_id, incident_id, requester_id,
                                         category_code, geom, location_source, channel,
                                         reported_at)
                    SELECT :jid, 'B' || :incident || '-' || q.id, :incident, q.id, 'pothole',
                           ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'pin', 'api', now()
                    FROM q RETURNING id, requester_id
                )
                INSERT INTO subscriptions (jurisdiction_id, incident_id, requester_id, report_id)
                SELECT :jid, :incident, requester_id, id FROM r
                """
            ),
            {"jid": jid, "incident": incident.id, "n": count, "lon": lon, "lat": lat},
        )
        work_order = lookups.current_work_order(session, incident)
        assert work_order is not None
        for status in ("triaged", "assigned", "in_progress"):
            transitions.transition(
                session, incident_or_work_order=work_order, to=status, actor="bench"
            )
        return work_order.id


def after_photo() -> Any:
    """Return the after-photo through the intake pipeline (done before the clock starts)."""
    return uploads.process_upload(PHOTO.read_bytes(), MediaSettings())


def close(db: Database, media: LocalMediaStore, work_order_id: int, photo: Any) -> float:
    """Complete the work order with the after-photo; return the wall time of the commit."""
    with db.sessions() as session:
        work_order = session.scalar(select(WorkOrder).where(WorkOrder.id == work_order_id))
        assert work_order is not None
        completion.complete_work_order(
            session,
            work_order=work_order,
            actor="bench",
            photo=photo,
            note="Filled and rolled",
            resolution_code="repaired",
            media=media,
            jurisdiction_slug="demo",
        )
        session.commit()
        return time.time()


def closure_notices(db: Database, data_dir: Path, count: int) -> tuple[Any, list[Any]]:
    """Return a Deliverer (to render mails exactly as the worker does) and ``count`` owed
    closure notices, read once from the database."""
    from geo311.kernel.notify.models import Notice
    from geo311.kernel.notify.worker import build_deliverer
    from geo311.kernel.settings import NotifySettings, Settings

    settings = Settings(data_dir=data_dir, notify=NotifySettings(link_secret=SECRET))
    deliverer = build_deliverer(db, settings)
    with db.sessions() as session:
        notices = list(
            session.scalars(
                select(Notice)
                .where(Notice.kind == "closed")
                .order_by(Notice.id.desc())
                .limit(count)
            )
        )
        session.expunge_all()
    return deliverer, [notices[i % len(notices)] for i in range(count)]


def baseline_send(port: int, deliverer: Any, notices: list[Any], *, render: bool) -> float:
    """Send one mail per notice on one smtplib connection, no database, no queue; rendered in
    the loop (``render``) or before it. Return the seconds from the first to the last send."""
    messages = None if render else [deliverer._email_bytes(n) for n in notices]
    started = time.time()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i, notice in enumerate(notices):
            data = deliverer._email_bytes(notice) if messages is None else messages[i]
            smtp.sendmail("no-reply@bench.example", [notice.recipient], data)
    return time.time() - started


def baseline_one(port: int, message: tuple[str, bytes]) -> float:
    """Return seconds to connect and send one message."""
    started = time.time()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        smtp.sendmail("no-reply@bench.example", [message[0]], message[1])
    return time.time() - started


# --- the run ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=25, help="closures for the latency")
    parser.add_argument("--concurrency", type=int, default=4, help="worker jobs at once")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    parser.add_argument("--serve-smtp", nargs=2, metavar=("PORT", "LOG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_smtp:
        serve_smtp(int(args.serve_smtp[0]), args.serve_smtp[1])
        return

    root = Path(tempfile.mkdtemp(prefix="geo311-bench-notify-"))
    root.chmod(0o755)
    cluster = EmbeddedCluster(root / "pg")
    smtp_port = _free_port()
    server: SmtpServer | None = None
    worker: subprocess.Popen[bytes] | None = None
    try:
        print("starting PostGIS, loading the demo city …", flush=True)
        cluster.start()
        cluster.ensure_database("bench")
        url = cluster.url("bench")
        migrate.upgrade(url)
        db = Database.connect(url, pool_size=4)
        load_demo(db)
        media = LocalMediaStore(root / "data" / "media")
        server = SmtpServer(smtp_port, root / "smtp.log")
        env = {
            **os.environ,
            "GEO311_DB__URL": url,
            "GEO311_DATA_DIR": str(root / "data"),
            "GEO311_NOTIFY__SMTP__PORT": str(smtp_port),
            "GEO311_NOTIFY__LINK_SECRET": SECRET,
            "GEO311_NOTIFY__WORKER_CONCURRENCY": str(args.concurrency),
        }
        worker = subprocess.Popen(
            [sys.executable, "-c", _WORKER],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(root / "worker.log", "w"),  # noqa: SIM115
        )
        _wait_for_worker(db)

        through: list[dict[str, float]] = []
        base_rates: list[float] = []
        render_rates: list[float] = []
        for run in range(1, args.runs + 1):
            work_order_id = incident_with_subscribers(db, args.notices)
            server.clear()
            photo = after_photo()
            started = time.perf_counter()
            committed = close(db, media, work_order_id, photo)
            commit_s = time.perf_counter() - started
            lines = server.wait_for(args.notices)
            stamps = sorted(t for t, _ in lines)
            keys = [k for _, k in lines]
            through.append(
                {
                    "commit_s": commit_s,
                    "first_s": stamps[0] - committed,
                    "all_s": stamps[-1] - committed,
                    "rate": args.notices / (stamps[-1] - committed),
                    "duplicates": len(keys) - len(set(keys)),
                }
            )
            deliverer, notices = closure_notices(db, root / "data", args.notices)
            for render, rates in ((False, base_rates), (True, render_rates)):
                server.clear()
                rates.append(
                    args.notices / baseline_send(smtp_port, deliverer, notices, render=render)
                )
                server.wait_for(args.notices)
            deliverer.close()
            print(f"  commit at {committed:.6f}", flush=True)
            print(
                f"run {run}: worker {through[-1]['rate']:.0f}/s, bare smtplib "
                f"{base_rates[-1]:.0f}/s, render + smtplib {render_rates[-1]:.0f}/s",
                flush=True,
            )

        latencies: list[float] = []
        base_latencies: list[float] = []
        deliverer, notices = closure_notices(db, root / "data", 1)
        one = (notices[0].recipient, deliverer._email_bytes(notices[0]))
        deliverer.close()
        for _ in range(args.samples):
            work_order_id = incident_with_subscribers(db, 1)
            server.clear()
            time.sleep(0.2)  # the worker is idle, waiting on LISTEN
            committed = close(db, media, work_order_id, after_photo())
            arrived = server.wait_for(1)[0][0]
            latencies.append(arrived - committed)
            base_latencies.append(baseline_one(smtp_port, one))
        _report(args, through, base_rates, render_rates, latencies, base_latencies)
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        if server is not None:
            server.stop()
        cluster.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _report(
    args: argparse.Namespace,
    through: list[dict[str, float]],
    base_rates: list[float],
    render_rates: list[float],
    latencies: list[float],
    base_latencies: list[float],
) -> None:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in through)

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    n = args.notices
    print()
    print(
        f"Throughput: {n:,} closure notices owed by one commit; median of {args.runs} runs; "
        f"{os.cpu_count()} CPUs"
    )
    print(
        "| path | closing commit (s) | first mail (s) | all accepted (s) | notices/s | duplicates |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| geo311 worker (queue, claim + outcome per mail, concurrency {args.concurrency}) "
        f"| {med('commit_s'):.2f} | {med('first_s'):.3f} | {med('all_s'):.1f} "
        f"| {med('rate'):,.0f} | {int(max(r['duplicates'] for r in through))} |"
    )
    for label, rates in (
        ("baseline: bare smtplib on one connection, mails pre-rendered, no DB", base_rates),
        ("baseline: render + smtplib on one connection, no DB, no queue", render_rates),
    ):
        rate = statistics.median(rates)
        print(f"| {label} | – | – | {n / rate:.1f} | {rate:,.0f} | – |")
    print()
    print(f"Latency: closure commit → first mail accepted; {args.samples} closures, worker idle")
    print("| path | p50 (ms) | p90 (ms) | max (ms) |")
    print("|---|---:|---:|---:|")
    print(
        f"| geo311 worker (LISTEN/NOTIFY wake-up) | {pct(latencies, 0.5):.1f} "
        f"| {pct(latencies, 0.9):.1f} | {max(latencies) * 1000:.1f} |"
    )
    print(
        f"| baseline: connect + send one mail, no DB | {pct(base_latencies, 0.5):.1f} "
        f"| {pct(base_latencies, 0.9):.1f} | {max(base_latencies) * 1000:.1f} |"
    )


# The worker as `geo311 worker` runs it, with timestamps in its log (kept with --keep).
_WORKER = (
    "import logging; logging.basicConfig(level=logging.INFO, "
    "format='%(created).6f %(name)s %(message)s'); "
    "from geo311.cli import app; app(['worker'])"
)


def _wait_for_worker(db: Database, timeout_s: float = 120) -> None:
    """Return once a worker has registered with the queue (it listens from then on)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with db.session() as session:
            if session.execute(text("SELECT count(*) FROM procrastinate_workers")).scalar_one():
                time.sleep(0.5)
                return
        time.sleep(0.2)
    raise RuntimeError("the worker did not start")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()
