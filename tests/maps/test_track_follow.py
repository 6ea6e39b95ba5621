"""Following a report by e-mail from its tracking page: double opt-in through the real notice
outbox, worker and an SMTP catcher on loopback. Asking subscribes nobody; only the link in
the confirmation mail does, once per address; bad input is refused and stores nothing."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import lxml.html
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo311.kernel.database import Database
from geo311.kernel.notify.worker import BackgroundWorker
from tests.maps.test_track_api import tracking_of
from tests.support import (
    body_text,
    notice_rows,
    notify_settings,
    open_incident_with_reporters,
    pooled_app,
    smtp_sink,
    wait_until,
)

FOLLOWER = "Dee@Example.org"


def followers(db: Database, incident_id: int, email: str) -> int:
    with db.session() as s:
        return int(
            s.execute(
                text(
                    "SELECT count(*) FROM subscriptions s JOIN requesters q "
                    "ON q.jurisdiction_id = s.jurisdiction_id AND q.id = s.requester_id "
                    "WHERE s.incident_id = :i AND lower(q.email) = lower(:e)"
                ),
                {"i": incident_id, "e": email},
            ).scalar_one()
        )


def requesters_with(db: Database, email: str) -> int:
    with db.session() as s:
        return int(
            s.execute(
                text("SELECT count(*) FROM requesters WHERE lower(email) = lower(:e)"),
                {"e": email},
            ).scalar_one()
        )


def test_following_needs_the_confirmation_link_and_subscribes_the_address_once(
    demo_db: Database, tmp_path: Path
) -> None:
    incident_id = open_incident_with_reporters(demo_db, [{"email": "ana@example.org"}])
    tracking_id = tracking_of(demo_db, incident_id)
    with smtp_sink() as sink:
        settings = notify_settings(tmp_path, sink.port)
        with (
            BackgroundWorker(settings, demo_db),
            TestClient(pooled_app(settings, db=demo_db)) as client,
        ):
            assert wait_until(lambda: len(sink.messages()) == 1)  # ana's "received"
            sink.clear()
            for _ in range(2):  # the same address twice: one confirmation mail
                response = client.post(
                    f"/api/v1/reports/{tracking_id.lower()}/follow",
                    json={"email": FOLLOWER, "language": "es"},
                )
                assert response.status_code == 202, response.text
            [mail] = sink.wait_for(1)
            time.sleep(0.3)  # a second one would have arrived by now
            assert len(sink.messages()) == 1
            assert len(notice_rows(demo_db, kind="follow")) == 1
            assert str(mail["To"]) == "Dee@example.org"
            assert str(mail["Subject"]).startswith("Confirme: novedades de Bache")
            assert "List-Unsubscribe" not in mail  # it goes to nobody who subscribed
            # asking subscribed nobody and stored no requester
            assert followers(demo_db, incident_id, FOLLOWER) == 0
            assert requesters_with(demo_db, FOLLOWER) == 0

            found = re.search(r"http://testserver(/follow/confirm\?t=\S+)", body_text(mail))
            assert found is not None
            link = found.group(1)
            assert "@" not in link  # the link names no address
            assert "Dee" not in link
            # opening the link (as a mail scanner does) only shows a button
            shown = client.get(link)
            assert shown.status_code == 200
            assert "Dee@example.org" in shown.text
            assert "¿Enviar novedades" in shown.text  # in the language it was asked in
            assert followers(demo_db, incident_id, FOLLOWER) == 0
            page: Any = lxml.html.fromstring(shown.text)
            token = page.xpath("//form[@action='/follow/confirm']/input[@name='t']/@value")[0]

            done = client.post("/follow/confirm", data={"t": token})
            assert done.status_code == 200
            assert "Listo" in done.text
            assert followers(demo_db, incident_id, FOLLOWER) == 1
            again = client.post("/follow/confirm", data={"t": token})
            assert "ya recibe novedades" in again.text
            assert followers(demo_db, incident_id, FOLLOWER) == 1
            assert requesters_with(demo_db, FOLLOWER) == 1

            # now a follower: the incident's notices come to the address, in its language
            [received] = sink.wait_for(2)[1:]
            assert str(received["To"]) == "Dee@example.org"
            assert tracking_id in str(received["Subject"])
            assert str(received["Content-Language"]) == "es"


def test_bad_follow_requests_are_refused_and_store_nothing(
    demo_db: Database, tmp_path: Path
) -> None:
    incident_id = open_incident_with_reporters(demo_db, [{"email": "ana@example.org"}])
    tracking_id = tracking_of(demo_db, incident_id)
    with TestClient(pooled_app(notify_settings(tmp_path, 9), db=demo_db)) as client:
        before = len(notice_rows(demo_db))
        cases = [
            (tracking_id, {"email": "victim<attacker@evil.example>.com"}, 422, "email"),
            (tracking_id, {"email": ""}, 422, "email"),
            (tracking_id, {"email": "x@example.org", "language": "fr"}, 422, "language"),
            (tracking_id, {}, 422, "email"),
            ("R-NOSUCH1", {"email": "x@example.org"}, 404, None),
        ]
        for tid, body, status, field in cases:
            response = client.post(f"/api/v1/reports/{tid}/follow", json=body)
            assert response.status_code == status, (body, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            if field is not None:
                assert field in response.text
        assert len(notice_rows(demo_db)) == before
        # a forged or damaged link
        for token in ("nonsense", ""):
            page = client.post("/follow/confirm", data={"t": token})
            assert page.status_code == 400
            assert "not valid" in page.text or "damaged" in page.text
        assert client.get("/follow/confirm?t=abc").status_code == 400
