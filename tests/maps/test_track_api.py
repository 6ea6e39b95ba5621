"""The tracking page (/track/{tracking_id}) through the app: the incident's public timeline in
order, in public words only (a staff reason never shows), the crew's after-photo, the same
open/closed as Open311, user text escaped, and a 404 page for an unknown number."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from geo311.kernel.database import Database
from geo311.kernel.settings import RoutingSettings, Settings
from tests.support import (
    give_to_crew,
    jpeg,
    open_incident_with_reporters,
    pooled_app,
    read_version,
    staff_token,
    ward_point,
    work_order_of,
)
from work_orders import transitions
from work_orders.models import Incident, WorkOrder
from work_orders.public_notes import PublicNote

SECRET = "Ana's street, the neighbour at no. 7 complains a lot"  # a staff reason
EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(pooled_app(Settings(data_dir=tmp_path), db=demo_db)) as c:
        yield c


def tracking_of(db: Database, incident_id: int) -> str:
    with db.session() as s:
        return str(
            s.execute(
                text("SELECT tracking_id FROM reports WHERE incident_id = :i ORDER BY id LIMIT 1"),
                {"i": incident_id},
            ).scalar_one()
        )


def walk(db: Database, work_order_id: int, to: str, *, reason: str | None = None) -> None:
    with db.session() as s:
        work_order = s.scalar(select(WorkOrder).where(WorkOrder.id == work_order_id))
        assert work_order is not None
        transitions.transition(
            s, incident_or_work_order=work_order, to=to, actor="dispatcher:test", reason=reason
        )


def complete_as_crew(client: TestClient, db: Database, work_order_id: int) -> bytes:
    """Complete the work order as its crew does, with an after-photo; return the photo's
    public copy as served."""
    give_to_crew(db, work_order_id, "streets")
    auth = {"Authorization": f"Bearer {staff_token(db, 'crew', crew='streets')}"}
    response = client.post(
        f"/api/v1/work-orders/{work_order_id}/complete",
        headers={**auth, **read_version(client, f"/api/v1/work-orders/{work_order_id}", auth)},
        files={"photo": ("after.jpg", jpeg(colour=(200, 40, 40)), "image/jpeg")},
        data={"note": SECRET, "resolution_code": "repaired"},
    )
    assert response.status_code == 200, response.text
    url = str(response.json()["after_photo_url"])
    return bytes(client.get("/media/" + url.split("/media/", 1)[1]).content)


def completed_incident(client: TestClient, db: Database) -> tuple[str, bytes]:
    incident_id = open_incident_with_reporters(
        db, [{"email": "ana@example.org"}, {"email": "bea@example.org", "language": "es"}]
    )
    work_order_id = work_order_of(db, incident_id)
    walk(db, work_order_id, "triaged")
    walk(db, work_order_id, "assigned")
    walk(db, work_order_id, "on_hold", reason=SECRET)
    walk(db, work_order_id, "assigned")
    walk(db, work_order_id, "in_progress")
    after = complete_as_crew(client, db, work_order_id)
    return tracking_of(db, incident_id), after


def test_a_completed_report_shows_its_public_timeline_in_order_with_the_after_photo(
    client: TestClient, demo_db: Database
) -> None:
    tracking_id, after = completed_incident(client, demo_db)
    response = client.get(f"/track/{tracking_id}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page: Any = lxml.html.fromstring(response.text)
    titles = [
        e.text_content().strip() for e in page.xpath("//*[contains(@class, 'timeline-title')]")
    ]
    assert titles == [
        "Received",
        "Reviewed",
        "Assigned to a crew",
        "On hold",
        "Assigned to a crew",
        "Work in progress",
        "Fixed",
    ]
    times = [t.get("datetime") for t in page.xpath("//li[contains(@class, 'timeline-entry')]/time")]
    assert times == sorted(times)
    # the closure says why in public words, with the crew's photo; the staff's words never show
    fixed = page.xpath("//li[contains(@class, 'timeline-entry')]")[-1]
    assert "Resolved: " in fixed.text_content()
    assert SECRET not in response.text
    assert "ana@example.org" not in response.text
    photos = fixed.xpath(".//img[@class='after-photo']")
    assert len(photos) == 1
    assert client.get(photos[0].get("src")).content == after
    assert page.xpath("//*[@id='track-count']")[0].text_content() == "2"
    assert page.xpath("//*[@id='track-category']")[0].text_content() == "Pothole"


def test_the_page_and_open311_agree_on_the_status(client: TestClient, demo_db: Database) -> None:
    incident_id = open_incident_with_reporters(demo_db, [{"email": "ana@example.org"}])
    tracking_id = tracking_of(demo_db, incident_id)
    work_order_id = work_order_of(demo_db, incident_id)

    def both() -> tuple[str, str]:
        page: Any = lxml.html.fromstring(client.get(f"/track/{tracking_id}").text)
        shown = page.xpath("//*[@id='track-status']")[0].get("data-open311-status")
        open311 = client.get(f"/open311/v2/requests/{tracking_id}.json").json()[0]["status"]
        return shown, open311

    assert both() == ("open", "open")
    walk(demo_db, work_order_id, "triaged")
    walk(demo_db, work_order_id, "assigned")
    assert both() == ("open", "open")
    complete_as_crew(client, demo_db, work_order_id)
    assert both() == ("closed", "closed")


def test_a_merged_request_links_to_the_one_to_follow_and_keeps_the_reason_staff_only(
    client: TestClient, demo_db: Database
) -> None:
    incident_id = open_incident_with_reporters(demo_db, [{"email": "ana@example.org"}])
    tracking_id = tracking_of(demo_db, incident_id)
    with demo_db.session() as s:
        incident = s.scalar(select(Incident).where(Incident.id == incident_id))
        assert incident is not None
        transitions.transition(
            s,
            incident_or_work_order=incident,
            to="cancelled",
            actor="dispatcher:test",
            reason=SECRET,
            public_note=PublicNote("merged", {"parent": "R-OTHER1"}),
        )
    response = client.get(f"/track/{tracking_id}?lang=es")
    page: Any = lxml.html.fromstring(response.text)
    link = page.xpath("//p[@class='timeline-follow']/a")
    assert [a.get("href") for a in link] == ["/track/R-OTHER1"]
    assert "R-OTHER1" in link[0].text_content()
    # the public note is worded again in the page's language
    assert "ya se había reportado como R-OTHER1" in response.text
    assert SECRET not in response.text


def test_a_description_with_html_reaches_the_page_escaped(
    client: TestClient, demo_db: Database
) -> None:
    incident_id = open_incident_with_reporters(demo_db, [{"email": "ana@example.org"}])
    tracking_id = tracking_of(demo_db, incident_id)
    with demo_db.session() as s:
        s.execute(
            text("UPDATE reports SET description = :d WHERE tracking_id = :t"),
            {"d": EVIL, "t": tracking_id},
        )
    response = client.get(f"/track/{tracking_id.lower()}")  # typed in lower case
    assert response.status_code == 200
    assert EVIL not in response.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in response.text
    page: Any = lxml.html.fromstring(response.text)
    assert page.xpath("//*[@id='track-description']")[0].text_content() == EVIL


def test_an_unknown_tracking_number_is_a_404_page_in_the_shell(client: TestClient) -> None:
    response = client.get("/track/R-NOSUCH<b>")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" in response.headers
    page: Any = lxml.html.fromstring(response.text)
    assert page.xpath("//header[@class='site-header']")  # the shell
    assert "R-NOSUCH<b>" in page.xpath("//*[@id='missing-text']")[0].text_content()
    assert "<b>" not in response.text.split("<main", 1)[1]


def test_a_report_sent_with_a_photo_shows_its_public_copy(
    client: TestClient, demo_db: Database
) -> None:
    lon, lat = ward_point(demo_db)
    sent = client.post(
        "/api/v1/reports",
        data={"category": "graffiti", "lat": str(lat), "lon": str(lon), "email": "eve@example.org"},
        files={"photo": ("wall.jpg", jpeg(colour=(20, 20, 200)), "image/jpeg")},
    )
    assert sent.status_code == 201, sent.text
    tracking_id = sent.json()["tracking_id"]
    public = client.get(f"/api/v1/reports/{tracking_id}").json()["photo_url"]
    response = client.get(f"/track/{tracking_id}")
    page: Any = lxml.html.fromstring(response.text)
    [src] = page.xpath("//img[@id='track-photo']/@src")
    assert src == "/media/" + public.split("/media/", 1)[1]
    assert src.startswith("/media/public/")  # the public copy, never the original
    assert client.get(src).status_code == 200
    assert "eve@example.org" not in response.text


def test_work_on_a_day_plan_shows_the_planned_day_on_its_scheduled_step(
    demo_db: Database, tmp_path: Path
) -> None:
    routing = RoutingSettings(time_limit_s=2.0, replan_time_limit_s=0.5)
    settings = Settings(data_dir=tmp_path, routing=routing)
    with TestClient(pooled_app(settings, db=demo_db)) as client:
        auth = {"Authorization": f"Bearer {staff_token(demo_db, 'dispatcher')}"}
        planned = client.post("/api/v1/plans?date=2026-06-01", headers=auth)
        assert planned.status_code == 200, planned.text
        with demo_db.session() as s:
            tracking_id = s.execute(
                text(
                    "SELECT r.tracking_id FROM incidents i JOIN reports r ON r.incident_id = i.id "
                    "WHERE i.status = 'scheduled' ORDER BY r.id LIMIT 1"
                )
            ).scalar_one()
        page: Any = lxml.html.fromstring(client.get(f"/track/{tracking_id}").text)
        step = page.xpath("//li[@data-status='scheduled']")[-1]
        assert "Planned for Monday, June 1, 2026." in step.text_content()
        in_spanish = client.get(f"/track/{tracking_id}?lang=es").text
        assert "Previsto para el lunes, 1 de junio de 2026." in in_spanish
