"""The notice worker keeps its SMTP connections between jobs: every report owes a job of its
own, and a connection per job was most of what a notice cost the worker and the mail server."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import text

from geo311.kernel.database import Database
from geo311.kernel.notify.worker import build_deliverer
from tests.support import free_port, notice_rows, notify_settings, open_incident_with_reporters


class _Peers:
    """An SMTP server on loopback that notes which connection (client port) carried each
    message, and drops a connection idle for ``idle_timeout_s`` (as real servers do)."""

    def __init__(self, idle_timeout_s: float) -> None:
        self.port = free_port()
        self.lock = threading.Lock()
        self.carried: list[tuple[str, int]] = []  # (recipient, client port), in order
        self.controller = Controller(
            self, hostname="127.0.0.1", port=self.port, timeout=idle_timeout_s
        )

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.carried.append((envelope.rcpt_tos[0], int(session.peer[1])))
        return "250 Message accepted"


def test_reports_notices_share_one_smtp_connection_and_one_the_server_dropped_is_replaced(
    demo_db: Database, tmp_path: Path
) -> None:
    server = _Peers(idle_timeout_s=1.0)
    server.controller.start()
    deliverer = build_deliverer(demo_db, notify_settings(tmp_path, server.port))
    reporters = [{"email": f"{name}@example.org"} for name in ("ana", "bea", "cal")]
    open_incident_with_reporters(demo_db, reporters)
    with demo_db.session() as s:
        jid = s.execute(text("SELECT id FROM jurisdictions WHERE slug = 'demo'")).scalar_one()
    received = [r for r in notice_rows(demo_db, kind="received")]
    assert [r.recipient for r in received] == [f"{r['email']}" for r in reporters]
    try:
        # One job per notice, as each report makes its own.
        outcomes = [deliverer.deliver(jurisdiction_id=jid, notice_ids=[received[0].id])]
        outcomes.append(deliverer.deliver(jurisdiction_id=jid, notice_ids=[received[1].id]))
        time.sleep(2.0)  # the server hangs up on the kept connection
        outcomes.append(deliverer.deliver(jurisdiction_id=jid, notice_ids=[received[2].id]))
    finally:
        deliverer.close()
        server.controller.stop()
    assert [dict(o.counts) for o in outcomes] == [{"sent": 1}] * 3
    rows = {r.recipient: r for r in notice_rows(demo_db, kind="received")}
    # Each went out on its first try: the dropped connection cost no retry.
    assert {(r.status, r.attempts) for r in rows.values()} == {("sent", 1)}
    recipients = [to for to, _ in server.carried]
    ports = [port for _, port in server.carried]
    assert recipients == ["ana@example.org", "bea@example.org", "cal@example.org"]
    assert ports[0] == ports[1], "the second job opened a connection of its own"
    assert ports[2] != ports[1], "the third job used the connection the server had closed"
