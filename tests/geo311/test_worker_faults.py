"""Faults under load: PostgreSQL goes away while geo311 serves and sends notices.

These tests stop and start a PostgreSQL cluster of their own (not the test session's, which
other tests use), with the demo city loaded into it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import text

from geo311.kernel import migrate
from geo311.kernel.database import Database
from geo311.kernel.embedded import EmbeddedCluster
from geo311.kernel.notify.worker import BackgroundWorker
from geo311.kernel.settings import Settings
from tests.conftest import DEMO_NOW
from tests.support import (
    LINK_SECRET,
    Caught,
    free_port,
    notice_rows,
    notify_settings,
    pooled_app,
    smtp_sink,
    wait_until,
    ward_point,
)

CITY = "city_template"


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[EmbeddedCluster]:
    """A PostgreSQL cluster these tests may stop and start, with a demo-city template."""
    from fixtures.load import load_demo

    root = Path(tempfile.mkdtemp(prefix="geo311-faults-"))
    root.chmod(0o755)
    cluster = EmbeddedCluster(root / "pg", durable=False)
    cluster.start()
    try:
        cluster.ensure_database(CITY)
        migrate.upgrade(cluster.url(CITY))
        database = Database.connect(cluster.url(CITY), pool_size=2)
        try:
            load_demo(database, now=DEMO_NOW)
        finally:
            database.dispose()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def city(own_cluster: EmbeddedCluster) -> Iterator[Database]:
    """A fresh copy of the demo city on the cluster these tests restart."""
    own_cluster.start()  # a test that failed half-way may have left it stopped
    name = f"t_{uuid.uuid4().hex[:12]}"
    own_cluster.ensure_database(name, template=CITY)
    database = Database.connect(own_cluster.url(name), pool_size=10)
    try:
        yield database
    finally:
        database.dispose()
        own_cluster.start()
        own_cluster.drop_database(name)


@dataclass
class ReportStream:
    """A resident's app posting ``count`` reports with e-mail, one after another; on 503 it
    waits as Retry-After says (capped, to keep the test short) and posts again."""

    base_url: str
    lon: float
    lat: float
    count: int
    accepted: dict[str, str] = field(default_factory=dict)  # e-mail -> tracking id
    answers: Counter[int] = field(default_factory=Counter)
    retry_after: list[str] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> ReportStream:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            for i in range(self.count):
                email = f"r{i:02d}@example.org"
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    response = client.post(
                        "/api/v1/reports",
                        data={
                            "category": "graffiti",
                            "lat": str(self.lat + i * 0.0004),
                            "lon": str(self.lon),
                            "email": email,
                        },
                    )
                    self.answers[response.status_code] += 1
                    if response.status_code == 201:
                        self.accepted[email] = response.json()["tracking_id"]
                        break
                    assert response.status_code == 503, response.text
                    self.retry_after.append(response.headers.get("Retry-After", ""))
                    time.sleep(min(float(response.headers["Retry-After"]), 0.3))
                time.sleep(0.05)

    def join(self, timeout_s: float) -> None:
        assert self.thread is not None
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the report stream did not finish"


@dataclass
class Server:
    url: str
    server: uvicorn.Server
    thread: threading.Thread


def serve(settings: Settings, db: Database, worker: BackgroundWorker) -> Server:
    """Serve geo311 with uvicorn on a free loopback port, the worker in-process."""
    port = free_port()
    settings.host, settings.port = "127.0.0.1", port
    server = uvicorn.Server(
        uvicorn.Config(
            pooled_app(settings, db=db, worker=worker),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, timeout_s=20)
    return Server(f"http://127.0.0.1:{port}", server, thread)


def _health(url: str) -> httpx.Response:
    return httpx.get(f"{url}/healthz", timeout=10)


def test_a_database_restart_under_a_stream_of_reports_loses_no_notice_and_sends_none_twice(
    own_cluster: EmbeddedCluster, city: Database, tmp_path: Path
) -> None:
    down = threading.Event()

    def stop_the_database_on_the_6th(count: int, _: Caught) -> None:
        # The worker waits for this message's "250" while PostgreSQL goes down (fast
        # shutdown: every connection is cut), so it meets the outage mid-job.
        if count == 6 and not down.is_set():
            own_cluster.stop()
            down.set()

    with smtp_sink(on_message=stop_the_database_on_the_6th) as sink:
        settings = notify_settings(
            tmp_path,
            sink.port,
            # One job at a time, so the outage falls between two of its steps.
            worker_concurrency=1,
            reconnect_max_wait_s=1.0,
            stalled_worker_s=1.5,
            heartbeat_interval_s=0.3,
        )
        worker = BackgroundWorker(settings, city).start()
        server = serve(settings, city, worker)
        try:
            assert wait_until(lambda: _health(server.url).status_code == 200)
            lon, lat = ward_point(city)
            stream = ReportStream(server.url, lon, lat, count=20).start()
            assert down.wait(timeout=60), "the database was never stopped"
            # While it is down: /healthz says so, naming the database.
            unhealthy = _health(server.url)
            assert unhealthy.status_code == 503
            checks = unhealthy.json()["checks"]
            assert checks["database"]["ok"] is False
            assert checks["worker"]["ok"] is False
            time.sleep(3)  # longer than stalled_worker_s: the worker's heartbeat goes stale
            assert _health(server.url).status_code == 503
            own_cluster.start()
            stream.join(timeout_s=90)
            # Back without restarting geo311: the same worker reconnected and heartbeats.
            assert wait_until(lambda: _health(server.url).status_code == 200, timeout_s=30)
            healthy = _health(server.url).json()["checks"]
            assert healthy["worker"]["ok"] is True
            assert worker.state.status == "running"

            def settled() -> bool:
                rows = notice_rows(city)
                return bool(rows) and all(r.status in ("sent", "uncertain") for r in rows)

            assert wait_until(settled, timeout_s=60)
            time.sleep(1.0)  # a duplicate would arrive now
        finally:
            server.server.should_exit = True
            server.thread.join(timeout=10)
            worker.stop()
        mails = sink.messages()
    rows = notice_rows(city)
    # Some reports met the outage: they were answered 503 with Retry-After and sent again.
    assert stream.answers[503] >= 1
    assert set(stream.retry_after) == {"5"}
    assert len(stream.accepted) == 20
    # Every owed notice reached the mail server exactly once …
    keys = Counter(str(m["X-Geo311-Notice"]) for m in mails)
    assert sorted(keys) == sorted(r.idempotency_key for r in rows)
    assert set(keys.values()) == {1}
    # … and every resident who reported got one mail per notice owed to them (one each,
    # unless a report stored just as the database went down was sent again), to their own
    # address.
    per_recipient = Counter(str(m["To"]) for m in mails)
    assert per_recipient == Counter(r.recipient for r in rows if r.channel == "email")
    assert set(per_recipient) == set(stream.accepted)
    # The message the worker handed over as the database went down is recorded "sent" too:
    # its outcome was kept through the outage and written when the database came back.
    assert {r.status for r in rows} == {"sent"}


def _worker_env(db: Database, tmp_path: Path, smtp_port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "GEO311_DB__URL": db.engine.url.render_as_string(hide_password=False),
        "GEO311_DATA_DIR": str(tmp_path),
        "GEO311_JURISDICTION": "demo",
        "GEO311_NOTIFY__SMTP__PORT": str(smtp_port),
        "GEO311_NOTIFY__LINK_SECRET": LINK_SECRET,
        "GEO311_NOTIFY__POLL_INTERVAL_S": "0.2",
        "GEO311_NOTIFY__HEARTBEAT_INTERVAL_S": "0.3",
        "GEO311_NOTIFY__STALLED_WORKER_S": "1",
        "GEO311_NOTIFY__RECONNECT_MAX_WAIT_S": "0.5",
        **extra,
    }


def _registered_workers(db: Database) -> list[int]:
    try:
        with db.session() as session:
            return list(session.execute(text("SELECT id FROM procrastinate_workers")).scalars())
    except Exception:
        return []


def test_the_standalone_worker_rides_out_a_short_outage_and_exits_1_after_a_long_one(
    own_cluster: EmbeddedCluster, city: Database, tmp_path: Path
) -> None:
    env = _worker_env(city, tmp_path, free_port(), GEO311_NOTIFY__WORKER_GIVE_UP_S="4")
    worker = subprocess.Popen(
        [sys.executable, "-m", "geo311.cli", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert wait_until(lambda: len(_registered_workers(city)) == 1, timeout_s=60)
        first = _registered_workers(city)
        # A short outage (well under the give-up time): it carries on as a new worker.
        own_cluster.stop()
        time.sleep(1.5)
        own_cluster.start()
        assert wait_until(
            lambda: bool(set(_registered_workers(city)) - set(first)), timeout_s=30
        ), "the worker did not come back after the database did"
        assert worker.poll() is None
        # A long one: it gives up, non-zero, so a supervisor restarts it.
        own_cluster.stop()
        started = time.monotonic()
        status = worker.wait(timeout=60)
        waited_s = time.monotonic() - started
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        own_cluster.start()
    output = worker.stdout.read().decode() if worker.stdout else ""
    assert status == 1, output
    assert "gave up" in output
    assert 4 <= waited_s < 30, output


def test_the_standalone_worker_stopped_by_sigterm_exits_0(city: Database, tmp_path: Path) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-m", "geo311.cli", "worker"],
        env=_worker_env(city, tmp_path, free_port()),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: len(_registered_workers(city)) == 1, timeout_s=60)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    # It stopped cleanly: it took its heartbeat row with it.
    assert _registered_workers(city) == []


def test_pooled_connections_cut_by_a_database_restart_are_replaced_unseen(
    own_cluster: EmbeddedCluster,
    city: Database,
) -> None:
    # Three connections in the pool, all idle.
    with ExitStack() as stack:
        for _ in range(3):
            session = stack.enter_context(city.sessions())
            session.execute(text("SELECT 1"))
    assert city.engine.pool.checkedin() == 3  # type: ignore[attr-defined]
    before = _backend_pids(city)

    own_cluster.stop()
    own_cluster.start()

    # Every request after the restart succeeds: each dead connection is noticed when it is
    # taken from the pool, and replaced, before the request's statement goes out on it.
    for _ in range(6):
        with city.sessions() as session:
            assert session.execute(text("SELECT count(*) FROM jurisdictions")).scalar() == 1
    with ExitStack() as stack:
        sessions = [stack.enter_context(city.sessions()) for _ in range(3)]
        for session in sessions:
            assert session.execute(text("SELECT 1")).scalar() == 1
    assert not before & _backend_pids(city)


def _backend_pids(database: Database) -> set[int]:
    """Return the server process ids behind the pool's idle connections."""
    with ExitStack() as stack:
        held = [
            stack.enter_context(database.sessions())
            for _ in range(database.engine.pool.checkedin())  # type: ignore[attr-defined]
        ]
        return {int(s.execute(text("SELECT pg_backend_pid()")).scalar_one()) for s in held}
