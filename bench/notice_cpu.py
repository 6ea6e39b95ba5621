"""CPU per delivered notice: what the notice worker, PostgreSQL and the mail server spend on
the "we got your report" mail that every report owes.

    uv run python bench/notice_cpu.py [--notices 400] [--runs 5] [--concurrency 4]
        [--baseline TREE] [--trickle] [--profile FILE]

Sets up a throwaway embedded PostGIS with the demo city, an SMTP sink on loopback (aiosmtpd,
keeps nothing) and one ``geo311 worker`` process per tree (this one and, with ``--baseline``,
another checkout: ``git archive <commit> | tar -x -C /tmp/before``), as ``bench/intake.py``
deploys them. Each run, for each tree in turn: with every worker paused (SIGSTOP), the bench
files ``--notices`` reports through the real intake (one transaction each, so one delivery job
per notice, as the API makes them), then lets that tree's worker go (SIGCONT) and reads the
CPU of the worker, of PostgreSQL and of the sink from /proc until the queue is empty and every
notice is sent. So the figures cover delivery alone, not filing. With ``--trickle`` the worker
runs while the reports are filed, one after another, as at intake: each job then wakes it on
its own (and PostgreSQL's figure includes the filing). The table shows the median
of the runs and the ratio to the baseline tree, measured in the same process.

The planner's periodic refresh is switched off in both workers (it is not delivery).

``--profile FILE`` instead runs this tree's worker in this process under cProfile (the
event loop's thread, and each job's thread on its own) over one batch and writes the
statistics of both to FILE.loop and FILE.jobs (``python -m pstats``).

Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fixtures.load import load_demo  # noqa: E402
from geo311.flows import submit_report  # noqa: E402
from geo311.kernel import migrate  # noqa: E402
from geo311.kernel.database import Database  # noqa: E402
from geo311.kernel.embedded import EmbeddedCluster  # noqa: E402
from geo311.kernel.media.store import LocalMediaStore  # noqa: E402
from geo311.kernel.notify import delivery, outbox  # noqa: E402
from geo311.kernel.notify import worker as notice_worker  # noqa: E402
from geo311.kernel.settings import IntakeSettings, MediaSettings, Settings  # noqa: E402
from geo311.resident.intake import service as intake_service  # noqa: E402

SLUG = "demo"
DBNAME = "geo311_notice_cpu"
_CLK_TCK = os.sysconf("SC_CLK_TCK")

_POINTS = text(
    """
    SELECT ST_X(p.geom), ST_Y(p.geom)
    FROM (SELECT (ST_Dump(ST_GeneratePoints(w.geom, :n, 311))).geom
          FROM wards AS w
          JOIN ward_maps AS m ON m.jurisdiction_id = w.jurisdiction_id AND m.id = w.ward_map_id
          WHERE m.valid_to IS NULL) AS p
    """
)
_LEFT = text(
    "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = :queue "
    "AND status IN ('todo', 'doing')"
)
_UNSENT = text("SELECT count(*) FROM notices WHERE status <> 'sent'")


def _proc_stat(pid: int) -> tuple[int, float, float] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    return int(rest[1]), (utime + stime) / _CLK_TCK, (cutime + cstime) / _CLK_TCK


def _cpu_s(pid: int, *, reaped: bool = False) -> float:
    """Return the CPU seconds of ``pid`` and its living children (and reaped ones)."""
    own = _proc_stat(pid)
    if own is None:
        return 0.0
    total = own[1] + (own[2] if reaped else 0.0)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[0] == pid:
                total += stat[1]
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _child(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> Iterator[Any]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class Side:
    name: str
    tree: Path
    proc: Any
    runs: list[dict[str, float]]


class Filler:
    """Files reports through the real intake, one transaction (one delivery job) each."""

    def __init__(self, db: Database, media_root: Path) -> None:
        self.db = db
        self.media = LocalMediaStore(media_root)
        with db.sessions() as session:
            served = submit_report.served_jurisdiction(session, SLUG)
            self.points = [
                (float(x), float(y)) for x, y in session.execute(_POINTS, {"n": 2000}).all()
            ]
        self.served = served
        random.Random(311).shuffle(self.points)
        self.next = 0
        self.settings = IntakeSettings()

    def file(self, n: int) -> None:
        for _ in range(n):
            lon, lat = self.points[self.next % len(self.points)]
            i = self.next
            self.next += 1
            draft = intake_service.parse_report_form(
                {
                    "category": "pothole",
                    "lon": repr(lon),
                    "lat": repr(lat),
                    "description": f"bench report {i}",
                    "email": f"bench{i}@example.org",
                },
                channel="api",
                settings=self.settings,
            )
            with self.db.sessions() as session:
                submit_report.submit(
                    session,
                    jurisdiction_id=self.served.id,
                    jurisdiction_slug=self.served.slug,
                    draft=draft,
                    photo=None,
                    media=self.media,
                    media_settings=MediaSettings(),
                    now=datetime.now(UTC),
                )
                session.commit()


def _wait_drained(db: Database, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    with db.engine.connect() as conn:
        while True:
            left = conn.execute(_LEFT, {"queue": outbox.QUEUE}).scalar_one()
            unsent = conn.execute(_UNSENT).scalar_one()
            conn.rollback()
            if left == 0 and unsent == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{left} jobs and {unsent} notices left after {timeout_s} s")
            time.sleep(0.1)


def measure(
    side: Side, filler: Filler, db: Database, postmaster: int, sink: Any, n: int, *, trickle: bool
) -> None:
    """Add one run of ``side``: the CPU its worker, PostgreSQL and the sink spend per notice.

    In a burst (the default) the reports are filed while the worker is paused, so PostgreSQL's
    figure is delivery's alone; with ``trickle`` the worker runs while they are filed one
    after another (each job then wakes it, as at intake), and PostgreSQL's figure includes
    the filing."""
    if not trickle:
        filler.file(n)
    before = (_cpu_s(side.proc.pid), _cpu_s(postmaster, reaped=True), _cpu_s(sink.pid))
    started = time.perf_counter()
    side.proc.send_signal(signal.SIGCONT)
    if trickle:
        filler.file(n)
    _wait_drained(db)
    wall = time.perf_counter() - started
    after = (_cpu_s(side.proc.pid), _cpu_s(postmaster, reaped=True), _cpu_s(sink.pid))
    side.proc.send_signal(signal.SIGSTOP)
    worker_ms, pg_ms, sink_ms = ((b - a) * 1000 / n for a, b in zip(before, after, strict=True))
    side.runs.append({"worker": worker_ms, "postgres": pg_ms, "sink": sink_ms, "rate": n / wall})


def profile(
    db: Database, settings: Settings, filler: Filler, n: int, out: Path, *, trickle: bool
) -> None:
    """Run this tree's worker in this process over ``n`` notices under cProfile (with
    ``trickle``, filed on another thread while it runs)."""
    if not trickle:
        filler.file(n)
    # CPU time of the thread, not wall time: waits on the network cost nothing here.
    jobs = cProfile.Profile(time.thread_time)
    lock = threading.Lock()

    class Profiled(delivery.Deliverer):
        def deliver(self, **kwargs: Any) -> delivery.Tally:
            with lock:  # one job at a time: cProfile is per thread, and not thread-safe
                jobs.enable()
                try:
                    return super().deliver(**kwargs)
                finally:
                    jobs.disable()

    base = notice_worker.build_deliverer(db, settings)
    deliverer = Profiled(
        db, settings, base.media, signer=base.signer, sms=base.sms, webhooks=base.webhooks
    )
    app = notice_worker.build_app(
        deliverer, dsn=notice_worker.conninfo(db), concurrency=settings.notify.worker_concurrency
    )

    async def drain() -> None:
        async with app.open_async():
            running = asyncio.create_task(
                app.run_worker_async(
                    queues=[outbox.QUEUE],
                    concurrency=settings.notify.worker_concurrency,
                    wait=trickle,
                    install_signal_handlers=False,
                    delete_jobs="successful",
                )
            )
            if trickle:
                await asyncio.to_thread(filler.file, n)
                await asyncio.to_thread(_wait_drained, db)
                running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running

    loop = cProfile.Profile(time.thread_time)
    cpu0 = time.process_time()
    loop.enable()
    asyncio.run(drain())
    loop.disable()
    cpu_ms = (time.process_time() - cpu0) * 1000 / n
    deliverer.close()
    loop.dump_stats(f"{out}.loop")
    jobs.dump_stats(f"{out}.jobs")
    print(f"{n} notices, {cpu_ms:.2f} ms CPU each in this process (under the profiler)")
    for name, prof in (("event loop", loop), ("jobs", jobs)):
        print(f"--- {name}")
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=400, help="per run and tree")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4, help="the worker's jobs at once")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--profile", type=Path, help="profile in-process instead; stats file")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    parser.add_argument(
        "--trickle", action="store_true", help="file the reports while the worker runs"
    )
    args = parser.parse_args()
    console = Console()
    load_start = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="geo311-notice-cpu-"))
    root.chmod(0o755)
    cluster = EmbeddedCluster(root / "pg")
    try:
        with ExitStack() as stack:
            cluster.start()
            stack.callback(cluster.stop)
            cluster.ensure_database(DBNAME)
            url = cluster.url(DBNAME)
            migrate.upgrade(url)
            db = Database.connect(url, pool_size=4)
            stack.callback(db.dispose)
            load_demo(db, slug=SLUG)
            filler = Filler(db, root / "filler-media")
            smtp_port = _free_port()
            env = {
                **os.environ,
                "GEO311_DB__URL": url,
                "GEO311_DATA_DIR": str(root / "data"),
                "GEO311_JURISDICTION": SLUG,
                "GEO311_NOTIFY__SMTP__HOST": "127.0.0.1",
                "GEO311_NOTIFY__SMTP__PORT": str(smtp_port),
                "GEO311_NOTIFY__DEV_MAIL__ENABLED": "false",
                "GEO311_NOTIFY__WORKER_CONCURRENCY": str(args.concurrency),
                # Paused workers must not look dead to each other's sweep.
                "GEO311_NOTIFY__STALLED_WORKER_S": "36000",
                "GEO311_ANALYTICS__REFRESH_CRON": "",
            }
            sink_cmd = [sys.executable, "-m", "aiosmtpd", "-n", "-u", "-c"]
            sink_cmd += ["aiosmtpd.handlers.Sink", "-l", f"127.0.0.1:{smtp_port}"]
            sink = stack.enter_context(_child(sink_cmd, cwd=ROOT, env=env, log=root / "sink.log"))
            time.sleep(1.0)
            if args.profile is not None:
                os.environ.update(env)
                profile(db, Settings(), filler, args.notices, args.profile, trickle=args.trickle)
                return
            postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
            trees = [("this tree", ROOT)]
            if args.baseline is not None:
                trees.append(("baseline", args.baseline.resolve()))
            sides: list[Side] = []
            for name, tree in trees:
                side_env = {**env, **({"PYTHONPATH": str(tree)} if tree != ROOT else {})}
                cmd = [sys.executable, "-m", "geo311.cli", "worker"]
                log = root / f"worker-{len(sides)}.log"
                proc = stack.enter_context(_child(cmd, cwd=tree, env=side_env, log=log))
                sides.append(Side(name, tree, proc, []))
            time.sleep(8.0)  # imports, pool, first sweep
            for side in sides:
                side.proc.send_signal(signal.SIGSTOP)
            # Warm-up: each worker's first jobs (connections, caches) are not counted.
            for side in sides:
                measure(side, filler, db, postmaster, sink, 40, trickle=args.trickle)
                side.runs.clear()
            for run in range(args.runs):
                for side in sides:
                    measure(side, filler, db, postmaster, sink, args.notices, trickle=args.trickle)
                console.print(
                    f"[dim]run {run + 1}: "
                    + ", ".join(f"{s.name} {s.runs[-1]['worker']:.2f} ms" for s in sides)
                    + "[/dim]"
                )
            _table(console, sides, args, load_start)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _table(console: Console, sides: list[Side], args: argparse.Namespace, load: Any) -> None:
    mode = "filed while it runs (postgres: with the filing)" if args.trickle else "in a burst"
    table = Table(
        title=f"CPU per delivered notice (ms), median of {args.runs} runs of {args.notices} "
        f"notices {mode}, worker concurrency {args.concurrency}"
    )
    for column in ("tree", "worker", "postgres", "mail sink", "notices/s", "worker vs baseline"):
        table.add_column(column, justify="left" if column == "tree" else "right")
    base = sides[-1] if len(sides) > 1 else None
    for side in sides:
        med = {k: statistics.median(r[k] for r in side.runs) for k in side.runs[0]}
        ratio = ""
        if base is not None:
            ref = statistics.median(r["worker"] for r in base.runs)
            ratio = f"{med['worker'] / ref:.2f}×"
        table.add_row(
            f"{side.name} ({side.tree})",
            f"{med['worker']:.2f}",
            f"{med['postgres']:.2f}",
            f"{med['sink']:.2f}",
            f"{med['rate']:.0f}",
            ratio,
        )
    console.print(table)
    console.print(
        f"load average (1, 5, 15 min) at start {tuple(round(x, 2) for x in load)}, "
        f"at end {tuple(round(x, 2) for x in os.getloadavg())} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
