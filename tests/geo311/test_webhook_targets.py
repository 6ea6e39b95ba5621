"""Webhooks may not point inside the network unless the operator allows it."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo311.kernel.database import Database
from geo311.kernel.notify.worker import BackgroundWorker
from tests.support import (
    HttpCall,
    RecordingServer,
    notice_rows,
    notify_settings,
    open_incident_with_reporters,
    pooled_app,
    staff_token,
    wait_until,
)

PRIVATE = [
    "http://127.0.0.1:8000/hook",
    "http://localhost/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://[::1]/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
]


def _webhook_count(db: Database) -> int:
    with db.session() as session:
        return int(session.execute(text("SELECT count(*) FROM webhook_endpoints")).scalar_one())


@pytest.mark.parametrize("url", PRIVATE)
def test_a_webhook_to_a_private_address_is_refused_and_nothing_stored(
    demo_db: Database, tmp_path: Path, url: str
) -> None:
    admin = {"Authorization": f"Bearer {staff_token(demo_db, 'admin')}"}
    with TestClient(pooled_app(notify_settings(tmp_path, 1), db=demo_db)) as client:
        response = client.post("/api/v1/webhooks", json={"url": url}, headers=admin)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["url"]
    assert "GEO311_NOTIFY__WEBHOOK_ALLOW_PRIVATE" in response.json()["detail"]
    assert _webhook_count(demo_db) == 0


def test_a_public_address_is_accepted_and_private_ones_when_the_operator_allows_them(
    demo_db: Database, tmp_path: Path
) -> None:
    admin = {"Authorization": f"Bearer {staff_token(demo_db, 'admin')}"}
    with TestClient(pooled_app(notify_settings(tmp_path, 1), db=demo_db)) as client:
        public = client.post(
            "/api/v1/webhooks", json={"url": "https://93.184.215.14/hook"}, headers=admin
        )
    allowed = notify_settings(tmp_path, 1, webhook_allow_private=True)
    with TestClient(pooled_app(allowed, db=demo_db)) as client:
        private = client.post(
            "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=admin
        )
    assert (public.status_code, private.status_code) == (201, 201)


def test_a_webhook_whose_name_now_points_inside_is_not_called(
    demo_db: Database, tmp_path: Path
) -> None:
    calls: list[HttpCall] = []

    def respond(call: HttpCall) -> tuple[int, dict[str, object]]:
        calls.append(call)
        return 200, {}

    with RecordingServer(respond) as receiver:
        admin = {"Authorization": f"Bearer {staff_token(demo_db, 'admin')}"}
        # Registered while allowed (or while the name pointed outside) …
        allowed = notify_settings(tmp_path, 1, webhook_allow_private=True)
        url = receiver.url.replace("127.0.0.1", "localhost") + "/hook"
        with TestClient(pooled_app(allowed, db=demo_db)) as client:
            created = client.post("/api/v1/webhooks", json={"url": url}, headers=admin)
            assert created.status_code == 201
        # … and sent by a worker that does not allow private targets: checked again.
        open_incident_with_reporters(demo_db, [])
        with BackgroundWorker(notify_settings(tmp_path, 1), demo_db):
            assert wait_until(lambda: [r.status for r in notice_rows(demo_db)] == ["failed"])
    assert calls == []
    with demo_db.session() as session:
        error = session.execute(text("SELECT last_error FROM notices")).scalar_one()
    assert error.startswith("not sent: localhost is ")
