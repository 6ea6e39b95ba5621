"""Real servers on loopback for the notice tests: an SMTP server (aiosmtpd), a Twilio-style SMS
API and a webhook receiver (both http.server), plus helpers to build the data they need, and
the pool of built apps the tests serve from (pooled_app)."""

from __future__ import annotations

import base64
import email
import email.policy
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller
from fastapi import FastAPI
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import select, text
from starlette.datastructures import State

from dispatch import service as dispatch_service
from geo311.app import bind_app, create_app
from geo311.kernel.auth import service as auth_service
from geo311.kernel.database import Database
from geo311.kernel.notify.worker import BackgroundWorker
from geo311.kernel.settings import (
    MediaSettings,
    NotifySettings,
    Settings,
    SigninSettings,
    SmtpSettings,
    get_settings,
)
from geo311.resident.intake.models import Report
from geo311.resident.intake.tracking import new_tracking_id
from layers import service as layers_service
from work_orders import categories as category_service
from work_orders import incidents, lookups, transitions
from work_orders.models import Incident, Requester

LINK_SECRET = "test-link-secret"
# The cheapest argon2id cost, for the demo accounts the tests make and for the apps that page
# tests sign in to: at the default cost each hash or check takes about a second of the shared
# machine's CPU, and the app rehashes a password made at another cost at its first sign-in.
# The cost a city runs at is tested in tests/geo311/test_signin.py.
CHEAP_SIGNIN = SigninSettings(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def jpeg(size: tuple[int, int] = (64, 48), colour: tuple[int, int, int] = (30, 140, 60)) -> bytes:
    """Return a JPEG that carries EXIF (camera make), to check it is stripped."""
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    Image.new("RGB", size, colour).save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


# --- SMTP ---------------------------------------------------------------------------------


@dataclass
class Caught:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        message = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        caught = Caught(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
        reply = self.sink.reply(caught) if self.sink.reply else "250 Message accepted"
        with self.sink.lock:
            if not reply.startswith("250"):
                self.sink.refused.append(caught)
                return reply
            self.sink.caught.append(caught)
            count = len(self.sink.caught)
        if self.sink.on_message is not None:
            self.sink.on_message(count, caught)
        if self.sink.delay_s:
            time.sleep(self.sink.delay_s)
        return reply


@dataclass
class SmtpSink:
    """A real SMTP server on 127.0.0.1 that keeps every message it accepts."""

    port: int = field(default_factory=free_port)
    caught: list[Caught] = field(default_factory=list)
    refused: list[Caught] = field(default_factory=list)
    reply: Callable[[Caught], str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_message: Callable[[int, Caught], None] | None = None
    delay_s: float = 0.0
    _controller: Controller | None = None

    def start(self) -> SmtpSink:
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self) -> list[EmailMessage]:
        with self.lock:
            return [c.message for c in self.caught]

    def wait_for(self, count: int, timeout_s: float = 20.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.caught) >= count:
                    break
            time.sleep(0.02)
        return self.messages()

    def clear(self) -> None:
        with self.lock:
            self.caught.clear()


@contextmanager
def smtp_sink(**kwargs: Any) -> Iterator[SmtpSink]:
    sink = SmtpSink(**kwargs).start()
    try:
        yield sink
    finally:
        sink.stop()


# --- HTTP servers ------------------------------------------------------------------------


@dataclass
class HttpCall:
    path: str
    headers: dict[str, str]
    body: bytes


class _Recorder(BaseHTTPRequestHandler):
    server: RecordingServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        call = HttpCall(self.path, {k: v for k, v in self.headers.items()}, self.rfile.read(length))
        status, body = self.server.respond(call)
        with self.server.lock:
            self.server.calls.append((call, status))
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return


class RecordingServer(ThreadingHTTPServer):
    """An HTTP server on loopback that records each POST and answers via ``respond``."""

    def __init__(self, respond: Callable[[HttpCall], tuple[int, dict[str, Any]]]) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.respond = respond
        self.calls: list[tuple[HttpCall, int]] = []
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

    def wait_for(self, count: int, timeout_s: float = 20.0) -> list[tuple[HttpCall, int]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.calls) >= count:
                    break
            time.sleep(0.02)
        with self.lock:
            return list(self.calls)


class FakeTwilio:
    """Speaks the Twilio Messages API's request shape: form POST with To/From/Body to
    /2010-04-01/Accounts/{sid}/Messages.json, HTTP basic auth, 201 with a message sid.
    The first ``fail_first`` sendable messages get 503 (the provider is having a bad minute)."""

    SID = "AC0123456789abcdef"
    TOKEN = "secret-token"

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.server = RecordingServer(self._respond)
        self.messages: list[dict[str, str]] = []

    def _respond(self, call: HttpCall) -> tuple[int, dict[str, Any]]:
        expected = "Basic " + base64.b64encode(f"{self.SID}:{self.TOKEN}".encode()).decode()
        if call.headers.get("Authorization") != expected:
            return 401, {"code": 20003, "message": "Authenticate"}
        if call.path != f"/2010-04-01/Accounts/{self.SID}/Messages.json":
            return 404, {"code": 20404, "message": "Not found"}
        form = {k: v[0] for k, v in parse_qs(call.body.decode()).items()}
        if not form.get("To", "").startswith("+"):
            return 400, {"code": 21211, "message": "Invalid 'To' Phone Number"}
        # The bad minute hits the first messages the provider would have sent, whatever order
        # the worker sends in (a refused number never reaches it).
        if self.fail_first > 0:
            self.fail_first -= 1
            return 503, {"code": 20500, "message": "Service unavailable"}
        self.messages.append(form)
        return 201, {"sid": f"SM{len(self.messages):032d}", "status": "queued"}


# --- settings and data --------------------------------------------------------------------


def notify_settings(tmp_path: Path, smtp_port: int, **notify: Any) -> Settings:
    """Return settings for notice tests: fast retries, short leases, a fixed link key."""
    values: dict[str, Any] = {
        "smtp": SmtpSettings(port=smtp_port, timeout_s=5),
        "link_secret": SecretStr(LINK_SECRET),
        "retry_base_s": 0.3,
        "retry_max_s": 1.0,
        "poll_interval_s": 0.1,
        "heartbeat_interval_s": 0.3,
        "stalled_worker_s": 1.0,
        "claim_lease_s": 1.0,
        "worker_concurrency": 2,
    }
    values.update(notify)
    return Settings(
        data_dir=tmp_path,
        jurisdiction="demo",
        public_base_url="http://testserver",
        media=MediaSettings(max_bytes=2_000_000, max_pixels=30_000_000),
        notify=NotifySettings(**values),
    )


def staff_token(
    db: Database, role: str, name: str | None = None, *, crew: str | None = None
) -> str:
    """Return a token of a new (or existing) staff user; ``crew``: the crew it belongs to."""
    with db.session() as session:
        token = auth_service.create_token(session, name=name or f"{role}-1", role=role)
        if crew is not None:
            jurisdiction = layers_service.get_jurisdiction(session, "demo")
            assert jurisdiction is not None
            dispatch_service.set_membership(
                session,
                jurisdiction_id=jurisdiction.id,
                user_name=name or f"{role}-1",
                crew_code=crew,
            )
        return token


def ward_point(db: Database, code: str = "3") -> tuple[float, float]:
    """Return (lon, lat) of a point well inside a demo ward."""
    with db.session() as session:
        row = session.execute(
            text(
                "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
                "FROM wards WHERE code = :code"
            ),
            {"code": code},
        ).one()
    return float(row[0]), float(row[1])


def open_incident_with_reporters(
    db: Database,
    reporters: Sequence[Mapping[str, str | None]],
    *,
    category: str = "pothole",
    opened_at: Any = None,
) -> int:
    """Open one incident and attach one report per reporter, each subscribed the way intake
    and dedup do it (``work_orders.incidents.subscribe``); return the incident id.

    Each reporter is {"email": …, "phone": …, "language": …}.
    """
    from datetime import UTC, datetime

    lon, lat = ward_point(db)
    now = opened_at or datetime.now(UTC)
    with db.session() as session:
        jurisdiction = layers_service.get_jurisdiction(session, "demo")
        assert jurisdiction is not None
        jid = jurisdiction.id
        cat = category_service.get_category(session, jurisdiction_id=jid, code=category)
        assert cat is not None
        incident = incidents.open_incident(
            session, category=cat, lon=lon, lat=lat, ward_id=None, asset_id=None, opened_at=now
        )
        for who in reporters:
            requester = Requester(
                jurisdiction_id=jid,
                email=who.get("email"),
                phone=who.get("phone"),
                language=who.get("language") or "en",
            )
            session.add(requester)
            session.flush()
            report = Report(
                jurisdiction_id=jid,
                tracking_id=new_tracking_id(),
                incident_id=incident.id,
                requester_id=requester.id,
                category_code=category,
                description="",
                geom=f"SRID=4326;POINT({lon} {lat})",
                location_source="pin",
                channel="api",
                language=requester.language,
                reported_at=now,
            )
            session.add(report)
            session.flush()
            incidents.subscribe(
                session,
                jurisdiction_id=jid,
                incident_id=incident.id,
                requester_id=requester.id,
                report_id=report.id,
            )
        return incident.id


def work_order_of(db: Database, incident_id: int) -> int:
    with db.session() as session:
        incident = session.scalar(select(Incident).where(Incident.id == incident_id))
        assert incident is not None
        work_order = lookups.current_work_order(session, incident)
        assert work_order is not None
        return work_order.id


def notice_rows(db: Database, *, kind: str | None = None) -> list[Any]:
    with db.session() as session:
        return list(
            session.execute(
                text(
                    "SELECT id, kind, channel, recipient, status, attempts, idempotency_key "
                    "FROM notices WHERE CAST(:kind AS text) IS NULL OR kind = :kind ORDER BY id"
                ),
                {"kind": kind},
            ).all()
        )


def wait_until(
    predicate: Callable[[], bool], timeout_s: float = 20.0, step_s: float = 0.05
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()


def move_work_order(db: Database, work_order_id: int, *statuses: str) -> None:
    """Walk a work order through ``statuses`` as a dispatcher would."""
    from work_orders.models import WorkOrder

    with db.session() as session:
        work_order = session.scalar(select(WorkOrder).where(WorkOrder.id == work_order_id))
        assert work_order is not None
        for status in statuses:
            transitions.transition(
                session, incident_or_work_order=work_order, to=status, actor="dispatcher:test"
            )


def body_text(mail: EmailMessage, kind: str = "plain") -> str:
    """Return the plain-text (or, with kind="html", the HTML) body of a mail."""
    part = mail.get_body(preferencelist=(kind,))
    assert part is not None
    return str(part.get_content())


def give_to_crew(db: Database, work_order_id: int, crew: str | None) -> None:
    """Put a work order on crew ``crew``'s list (None: on no crew's), as assignment would."""
    with db.session() as session:
        # The city first, so the update runs on one shard on Citus too.
        jid = session.execute(
            text("SELECT jurisdiction_id FROM work_orders WHERE id = :id"), {"id": work_order_id}
        ).scalar_one()
        session.execute(
            text(
                "UPDATE work_orders SET crew_id = (SELECT id FROM crews "
                "WHERE jurisdiction_id = :jid AND code = :crew) "
                "WHERE jurisdiction_id = :jid AND id = :id"
            ),
            {"crew": crew, "id": work_order_id, "jid": jid},
        )


def read_version(client: Any, url: str, headers: Mapping[str, str]) -> dict[str, str]:
    """GET ``url`` as a page would and return If-Match with the ETag it answered."""
    seen = client.get(url, headers=dict(headers))
    assert seen.status_code == 200, seen.text
    return {"If-Match": seen.headers["ETag"]}


# --- apps ---------------------------------------------------------------------------------


class AppPool:
    """Apps made by create_app, each lent to one test at a time and bound to that test's
    settings, database and worker (geo311.app.bind_app). FastAPI builds every route's handler
    on an app's first request, 0.5–0.9 s per app, so building one per test cost a test suite's
    worth of minutes; an app lent again has them built. A test still sees only its own
    settings and database: a request reads them from app.state, which bind_app replaces."""

    def __init__(self) -> None:
        self._idle: list[FastAPI] = []
        self._lock = threading.Lock()
        # Apps lent during the running test (None between tests: see tests/conftest.py).
        self._lent: list[FastAPI] | None = None

    def begin_test(self) -> None:
        self._lent = []

    def end_test(self) -> None:
        lent, self._lent = self._lent or [], None
        for app in lent:
            app.state = State()  # drops the test's database and settings
            with self._lock:
                self._idle.append(app)

    def lend(
        self,
        settings: Settings | None = None,
        *,
        db: Database | None = None,
        worker: BackgroundWorker | None = None,
    ) -> FastAPI:
        """Return an app like ``create_app(settings, db=db, worker=worker)``. Outside a test
        (a module fixture) it is a new app that is never lent again."""
        settings = settings or get_settings()
        if self._lent is None:
            return create_app(settings, db=db, worker=worker)
        with self._lock:
            app = self._idle.pop() if self._idle else None
        if app is None:
            app = create_app(settings, db=db, worker=worker)
        else:
            bind_app(app, settings, db=db, worker=worker)
        self._lent.append(app)
        return app

    def discard(self, app: FastAPI) -> None:
        """Never lend ``app`` again (a server thread that did not stop may still use it)."""
        if self._lent is not None and app in self._lent:
            self._lent.remove(app)


APPS = AppPool()


def pooled_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    worker: BackgroundWorker | None = None,
) -> FastAPI:
    """create_app for the running test, from this process's pool of built apps (AppPool)."""
    return APPS.lend(settings, db=db, worker=worker)
