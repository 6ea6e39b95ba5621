"""Live events: a committed change reaches an open /api/v1/live stream within seconds; a
rolled-back one never does; only signed-in staff may listen."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

from geo311.kernel import live
from geo311.kernel.database import Database
from tests.conftest import LiveServer
from tests.support import move_work_order, open_incident_with_reporters, staff_token, work_order_of


def _conninfo(db: Database) -> str:
    return db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def _notifications(conn: psycopg.Connection[Any], timeout_s: float) -> list[live.LiveEvent]:
    events: list[live.LiveEvent] = []
    for note in conn.notifies(timeout=timeout_s, stop_after=1):
        events.extend(live.parse(note.payload))
    return events


def test_events_go_out_at_commit_in_one_notification_and_never_after_a_rollback(
    db: Database,
) -> None:
    with psycopg.connect(_conninfo(db), autocommit=True) as listener:
        listener.execute(f"LISTEN {live.CHANNEL}")
        with db.session() as session:
            live.announce(session, jurisdiction_id=7, kind="work_order", id=1, status="assigned")
            live.announce(session, jurisdiction_id=7, kind="plan", id=3, crew_ids=[2, 5])
            session.execute(text("SELECT 1"))
        events = _notifications(listener, 5)
        assert [(e.kind, e.data) for e in events] == [
            ("work_order", {"id": 1, "status": "assigned"}),
            ("plan", {"id": 3, "crew_ids": [2, 5]}),
        ]
        assert all(e.jurisdiction_id == 7 for e in events)

        def failing_change() -> None:
            with db.session() as session:
                live.announce(session, jurisdiction_id=7, kind="work_order", id=2, status="closed")
                session.execute(text("SELECT 1"))
                raise RuntimeError("the change fails")

        with pytest.raises(RuntimeError):
            failing_change()
        # The same session factory's next commit must not carry the rolled-back event either.
        with db.session() as session:
            session.execute(text("SELECT 1"))
        assert _notifications(listener, 1.5) == []


def test_a_large_transaction_is_sent_in_chunks_pg_notify_accepts(db: Database) -> None:
    with psycopg.connect(_conninfo(db), autocommit=True) as listener:
        listener.execute(f"LISTEN {live.CHANNEL}")
        with db.session() as session:
            for i in range(600):
                live.announce(
                    session, jurisdiction_id=1, kind="work_order", id=i, status="scheduled"
                )
        got: list[live.LiveEvent] = []
        for note in listener.notifies(timeout=5):
            got.extend(live.parse(note.payload))
            if len(got) >= 600:
                break
        assert [e.data["id"] for e in got] == list(range(600))


@contextmanager
def _stream(url: str, token: str | None) -> Iterator[tuple[int, queue.Queue[tuple[str, Any]]]]:
    """Open /api/v1/live in a thread; yield its status and a queue of (event, data)."""
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    status: queue.Queue[int] = queue.Queue()
    stop = threading.Event()
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def run() -> None:
        try:
            read()
        except httpx.HTTPError:  # the server stopped at the end of the test, mid-stream
            return

    def read() -> None:
        with (
            httpx.Client(timeout=httpx.Timeout(5, read=60)) as client,
            client.stream("GET", url + "/api/v1/live", headers=headers) as response,
        ):
            status.put(response.status_code)
            if response.status_code != 200:
                return
            kind = ""
            for line in response.iter_lines():
                if stop.is_set():
                    return
                if line.startswith(": listening"):
                    events.put(("listening", None))
                elif line.startswith("event: "):
                    kind = line[len("event: ") :]
                elif line.startswith("data: "):
                    events.put((kind, json.loads(line[len("data: ") :])))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield status.get(timeout=10), events
    finally:
        stop.set()


def _next(events: queue.Queue[tuple[str, Any]], kind: str, timeout_s: float = 10) -> Any:
    while True:
        got_kind, data = events.get(timeout=timeout_s)
        if got_kind == kind:
            return data


def test_a_dispatchers_change_reaches_an_open_stream_within_seconds(
    live_server: LiveServer, demo_db: Database
) -> None:
    token = staff_token(demo_db, "crew", "crew-live", crew="streets")
    incident_id = open_incident_with_reporters(demo_db, [{"email": "a@example.org"}])
    work_order_id = work_order_of(demo_db, incident_id)
    with _stream(live_server.url, token) as (status, events):
        assert status == 200
        _next(events, "listening")
        move_work_order(demo_db, work_order_id, "assigned")
        data = _next(events, "work_order")
        assert data["id"] == work_order_id
        assert data["status"] == "assigned"
        # Ids and states only: no resident's text travels on the stream.
        assert set(data) <= {"id", "action", "status", "day", "version", "crew_id", "crew_ids"}


def test_only_signed_in_staff_may_listen(live_server: LiveServer) -> None:
    with _stream(live_server.url, None) as (status, _events):
        assert status == 401
    with _stream(live_server.url, "not-a-token") as (status, _events):
        assert status == 401


def test_a_bad_max_s_is_a_clear_4xx(live_server: LiveServer, demo_db: Database) -> None:
    token = staff_token(demo_db, "dispatcher", "disp-live")
    for bad in ("-1", "soon", "100000"):
        answer = httpx.get(
            live_server.url + "/api/v1/live",
            params={"max_s": bad},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")


def test_a_stream_ends_after_max_s_so_the_browser_reconnects(
    live_server: LiveServer, demo_db: Database
) -> None:
    token = staff_token(demo_db, "planner", "plan-live")
    answer = httpx.get(
        live_server.url + "/api/v1/live",
        params={"max_s": "0.5"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text.startswith("retry: 2000")
