"""E-mail addresses: only one exact address is stored, and mail goes to exactly that one."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo311.kernel.database import Database
from geo311.kernel.notify import outbox
from geo311.kernel.notify.addresses import sendable
from geo311.kernel.notify.worker import BackgroundWorker
from tests.geo311.open311_helpers import api_key, counts, ward_points
from tests.support import (
    notice_rows,
    notify_settings,
    pooled_app,
    smtp_sink,
    wait_until,
    ward_point,
)

__all__ = ["api_key"]  # a fixture, used by name

SMUGGLED = "victim<attacker@evil.example>.com"
NOT_ONE_ADDRESS = [
    SMUGGLED,
    "Eve <eve@example.org>",
    "a@example.org, b@example.org",
    '"a b"@example.org',
    "eve@[127.0.0.1]",
    "eve@example.org\r\nBcc: x@evil.example",
    "no-at-sign.example.org",
]


@pytest.mark.parametrize("email", NOT_ONE_ADDRESS)
def test_the_report_api_refuses_anything_but_one_address_and_stores_nothing(
    demo_db: Database, tmp_path: Path, email: str
) -> None:
    lon, lat = ward_point(demo_db)
    before = counts(demo_db)
    with TestClient(pooled_app(notify_settings(tmp_path, 1), db=demo_db)) as client:
        response = client.post(
            "/api/v1/reports",
            data={"category": "graffiti", "lat": str(lat), "lon": str(lon), "email": email},
        )
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["email"]
    assert counts(demo_db) == before
    assert notice_rows(demo_db) == []


def test_open311_refuses_a_smuggled_second_address(
    demo_db: Database, tmp_path: Path, api_key: str
) -> None:
    lat, lon = ward_points(demo_db)["2"]
    before = counts(demo_db)
    with TestClient(pooled_app(notify_settings(tmp_path, 1), db=demo_db)) as client:
        response = client.post(
            "/open311/v2/requests.json",
            data={
                "api_key": api_key,
                "service_code": "pothole",
                "lat": str(lat),
                "long": str(lon),
                "attribute[position]": "lane",
                "email": SMUGGLED,
            },
        )
    assert response.status_code == 400
    assert "email" in response.json()[0]["description"]
    assert counts(demo_db) == before


def test_the_address_is_stored_as_given_and_the_mail_goes_there_and_nowhere_else(
    demo_db: Database, tmp_path: Path
) -> None:
    lon, lat = ward_point(demo_db)
    with smtp_sink() as sink:
        settings = notify_settings(tmp_path, sink.port)
        with (
            TestClient(pooled_app(settings, db=demo_db)) as client,
            BackgroundWorker(settings, demo_db),
        ):
            response = client.post(
                "/api/v1/reports",
                data={
                    "category": "graffiti",
                    "lat": str(lat),
                    "lon": str(lon),
                    "email": "Ana.Resident@Example.ORG",
                },
            )
            assert response.status_code == 201, response.text
            assert wait_until(lambda: [r.status for r in notice_rows(demo_db)] == ["sent"])
        caught = list(sink.caught)
    # The domain is case-insensitive and stored lower-cased; the local part is kept as given.
    assert [r.recipient for r in notice_rows(demo_db)] == ["Ana.Resident@example.org"]
    assert [c.rcpt_tos for c in caught] == [["Ana.Resident@example.org"]]
    assert str(caught[0].message["To"]) == "Ana.Resident@example.org"


def test_an_address_stored_before_the_check_is_never_mailed_and_the_notice_fails(
    demo_db: Database, tmp_path: Path
) -> None:
    # As if stored by an older geo311 that let it through.
    with demo_db.session() as session:
        jurisdiction_id = session.execute(
            text("SELECT id FROM jurisdictions WHERE slug = 'demo'")
        ).scalar_one()
        outbox.owe(
            session,
            [
                outbox.NoticeDraft(
                    jurisdiction_id=jurisdiction_id,
                    idempotency_key=f"received:legacy:{n}",
                    kind="received",
                    channel="email",
                    recipient=recipient,
                    context={"tracking_id": "RQ-LEGACY", "category_name": "Graffiti"},
                )
                for n, recipient in enumerate([SMUGGLED, "fine@example.org"])
            ],
        )
    with smtp_sink() as sink:
        settings = notify_settings(tmp_path, sink.port)
        with BackgroundWorker(settings, demo_db):
            assert wait_until(
                lambda: sorted(r.status for r in notice_rows(demo_db)) == ["failed", "sent"]
            )
        caught = list(sink.caught)
    rows = {r.recipient: r.status for r in notice_rows(demo_db)}
    assert rows == {SMUGGLED: "failed", "fine@example.org": "sent"}
    assert [c.rcpt_tos for c in caught] == [["fine@example.org"]]
    assert all("evil.example" not in str(c.message["To"]) for c in caught)


def test_sendable_is_true_only_when_the_smtp_library_reads_the_same_address() -> None:
    assert sendable("ana@example.org")
    assert sendable("josé@exämple.org")
    for value in NOT_ONE_ADDRESS:
        assert not sendable(value), value
