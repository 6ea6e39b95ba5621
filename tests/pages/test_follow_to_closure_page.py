"""A resident follows an open problem from the report page instead of filing a duplicate, in
headless Chromium on a phone: "This is my problem — follow it" files their report into that
problem's incident (an audited merge a dispatcher can undo) and subscribes their e-mail; when
the crew fixes it, the closure mail arrives at a real SMTP server on loopback, and its links
lead to the report's tracking page (fixed, with the after-photo) and to the "fixed?" answer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo311.kernel.database import Database
from geo311.kernel.notify.worker import BackgroundWorker
from geo311.kernel.settings import Settings
from tests.maps.live import keep_shot, record, screenshot, serve
from tests.maps.test_track_api import complete_as_crew, walk
from tests.pages.test_map_page import PHONE, audit
from tests.support import SmtpSink, body_text, notify_settings, pooled_app, smtp_sink, wait_until

PHOTOS = Path(__file__).resolve().parents[2] / "fixtures" / "photos"
GPS_PHOTO = "pothole_ward4.jpg"
NEIGHBOUR = "neighbour@example.org"


@dataclass
class Live:
    url: str
    settings: Settings
    sink: SmtpSink


@pytest.fixture
def live(demo_db: Database, tmp_path: Path) -> Iterator[Live]:
    """The app served on loopback with its notice worker, mailing a real SMTP catcher."""
    with smtp_sink() as sink:
        made: list[Settings] = []

        def settings_for(port: int) -> Settings:
            base = notify_settings(tmp_path, sink.port)
            made.append(
                base.model_copy(
                    update={"port": port, "public_base_url": f"http://127.0.0.1:{port}"}
                )
            )
            return made[0]

        with serve(demo_db, settings_for) as url, BackgroundWorker(made[0], demo_db):
            yield Live(url, made[0], sink)


def one(db: Database, sql: str, **params: Any) -> Any:
    with db.session() as s:
        return s.execute(text(sql), params).one()


def mail_to(sink: SmtpSink, address: str, kind: str) -> EmailMessage:
    def found() -> list[EmailMessage]:
        return [
            m
            for m in sink.messages()
            if str(m["To"]) == address and str(m["X-Geo311-Notice"]).startswith(f"{kind}:")
        ]

    assert wait_until(lambda: bool(found()), timeout_s=30), [
        (str(m["To"]), str(m["X-Geo311-Notice"])) for m in sink.messages()
    ]
    return found()[-1]


def link(mail: EmailMessage, label: str) -> str:
    """Return the URL on the plain-text line that starts with ``label``."""
    found = re.search(rf"^\s*{re.escape(label)}: (\S+)$", body_text(mail), re.MULTILINE)
    assert found, body_text(mail)
    return found.group(1)


def test_following_a_nearby_problem_joins_it_and_its_closure_mail_leads_to_track_and_fixed(
    browser: Any, live: Live, demo_db: Database, tmp_path: Path
) -> None:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    recorder = record(page)
    try:
        # The first resident reports a pothole with a GPS photo.
        page.goto(f"{live.url}/report")
        page.wait_for_selector("#report-map[data-ready]", state="attached", timeout=20_000)
        page.select_option("#category", "pothole")
        page.set_input_files("#photo", str(PHOTOS / GPS_PHOTO))
        page.wait_for_selector('#report-map[data-photo="gps"]', state="attached", timeout=10_000)
        page.fill("#email", "first@example.org")
        page.click("#send")
        page.locator("#tracking-number").wait_for(timeout=15_000)
        first = page.locator("#report-map").get_attribute("data-tracking")
        target = one(demo_db, "SELECT incident_id FROM reports WHERE tracking_id = :t", t=first)[0]
        # From here dedup would not match potholes by itself: only the resident's choice
        # puts the next report into that incident.
        with demo_db.session() as s:
            s.execute(
                text("UPDATE service_categories SET dedup_threshold = 99 WHERE code = 'pothole'")
            )

        # A neighbour at the same spot is offered it before sending, and follows it.
        page.goto(f"{live.url}/report")
        page.wait_for_selector("#report-map[data-ready]", state="attached", timeout=20_000)
        page.select_option("#category", "pothole")
        page.set_input_files("#photo", str(PHOTOS / GPS_PHOTO))
        page.wait_for_selector("#report-map[data-nearby]", state="attached", timeout=10_000)
        card = page.locator(f'.nearby-card[data-tracking="{first}"]')
        assert card.count() == 1
        shown = card.inner_text()
        assert "Pothole" in shown
        assert "m from your pin" in shown
        assert "Residents who reported it: 1" in shown
        page.fill("#description", "Still there this morning")
        card.get_by_role("button", name="This is my problem — follow it").click()
        card.get_by_label("Your e-mail address for updates").fill(NEIGHBOUR)
        card_shot = screenshot(page, tmp_path, "report-phone-follow-card")
        assert not audit(page, live.url)  # the card with its e-mail box open
        card.get_by_role("button", name="Send my report and follow it").click()
        page.locator("#result-joined").wait_for(timeout=15_000)
        assert page.locator("#result-joined").inner_text() == (
            f"Your report joined request {first}: {NEIGHBOUR} will get its updates."
        )
        mine = page.locator("#report-map").get_attribute("data-tracking")
        assert mine
        assert mine != first
        joined_shot = screenshot(page, tmp_path, "report-phone-follow-joined")
        assert not audit(page, live.url)

        # Stored in the followed incident, by a merge listed as the resident's, subscribed.
        incident, description = one(
            demo_db, "SELECT incident_id, description FROM reports WHERE tracking_id = :t", t=mine
        )
        assert (incident, description) == (target, "Still there this morning")
        actor, kind = one(
            demo_db,
            "SELECT actor, kind FROM incident_moves WHERE to_incident_id = :i",
            i=target,
        )
        assert (actor, kind) == ("resident:api", "merge")
        subscribed = one(
            demo_db,
            "SELECT count(*) FROM subscriptions s JOIN requesters q ON q.id = s.requester_id "
            "WHERE s.incident_id = :i AND q.email = :e",
            i=target,
            e=NEIGHBOUR,
        )[0]
        assert subscribed == 1

        # The crew fixes it: the neighbour's closure mail arrives at the SMTP catcher.
        work_order, status = one(
            demo_db, "SELECT id, status FROM work_orders WHERE incident_id = :i", i=target
        )
        path = ["triaged", "assigned", "in_progress"]
        for step in path[path.index(status) + 1 if status in path else 0 :]:
            walk(demo_db, work_order, step)
        with TestClient(pooled_app(live.settings, db=demo_db)) as client:
            complete_as_crew(client, demo_db, work_order)
        mail = mail_to(live.sink, NEIGHBOUR, "closed")
        assert str(mail["Subject"]).startswith("Fixed: Pothole")
        assert mine in body_text(mail)

        # Its tracking link opens the neighbour's own report: fixed, with the after-photo.
        track_url = link(mail, "Follow your report")
        assert track_url == f"{live.url}/track/{mine}"
        page.goto(track_url)
        page.wait_for_selector("#track-map[data-ready]", state="attached", timeout=20_000)
        titles = page.locator(".timeline-title").all_inner_texts()
        assert (titles[0], titles[-1]) == ("Received", "Fixed"), titles
        after = page.locator(".timeline-entry").last.locator("img.after-photo")
        after.scroll_into_view_if_needed()
        assert page.evaluate(
            "(img) => img.complete && img.naturalWidth > 0", after.element_handle()
        )
        assert page.locator("#track-status").get_attribute("data-open311-status") == "closed"
        track_shot = screenshot(page, tmp_path, "track-phone-from-closure-mail")
        assert not recorder.problems(), recorder.problems()

        # Its "fixed?" link asks, in the city's own page, and the answer is recorded for the
        # incident; the thanks leads back to the report.
        page.goto(link(mail, "Yes, it's fixed"))
        assert page.locator("h1").inner_text() == "Is it fixed?"
        assert page.locator(".site-header .city").inner_text() == "Demo City"
        chosen = page.get_by_role("button", name="Yes, it's fixed")
        assert chosen.get_attribute("aria-pressed") == "true"  # the answer the mail's link named
        assert not audit(page, live.url)
        keep_shot(screenshot(page, tmp_path, "answer-question-from-closure-mail"))
        chosen.click()
        page.get_by_text("Thank you! We are glad it is fixed.").wait_for(timeout=10_000)
        assert page.get_by_role("link", name=f"Back to report {mine}").get_attribute("href") == (
            f"/track/{mine}"
        )
        answer_shot = screenshot(page, tmp_path, "answer-fixed-from-closure-mail")
        keep_shot(answer_shot)
        answers = one(
            demo_db,
            "SELECT count(*) FROM audit_events WHERE entity = 'incident' AND entity_id = :i "
            "AND action = 'resident_answer' AND data->>'answer' = 'fixed'",
            i=target,
        )[0]
        assert answers == 1
        assert not recorder.problems(), recorder.problems()
        assert recorder.origins() == {live.url}, recorder.origins()
        print(f"screenshots: {card_shot} {joined_shot} {track_shot} {answer_shot}")
    finally:
        context.close()
