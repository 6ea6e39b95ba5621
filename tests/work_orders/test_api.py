"""Work orders through the HTTP API and the service, on the demo city in a real PostGIS."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from geo311.kernel.database import Database
from geo311.kernel.media.models import Photo
from tests.support import (
    give_to_crew,
    jpeg,
    move_work_order,
    notify_settings,
    open_incident_with_reporters,
    pooled_app,
    read_version,
    staff_token,
    ward_point,
    work_order_of,
)
from work_orders import transitions
from work_orders.errors import StaleVersion
from work_orders.models import AuditEvent, Incident, WorkOrder


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(pooled_app(notify_settings(tmp_path, 1), db=demo_db)) as c:
        yield c


@pytest.fixture
def tokens(demo_db: Database) -> dict[str, dict[str, str]]:
    """Headers per role; the crew user is on the streets crew."""
    crews = {"crew": "streets"}
    return {
        role: {"Authorization": f"Bearer {staff_token(demo_db, role, crew=crews.get(role))}"}
        for role in ("dispatcher", "crew", "planner", "admin")
    }


def _v(client: TestClient, tokens: dict[str, dict[str, str]], work_order_id: int) -> dict[str, str]:
    """If-Match with the version a page would have read just now."""
    return read_version(client, f"/api/v1/work-orders/{work_order_id}", tokens["dispatcher"])


def _as(tokens: dict[str, dict[str, str]], role: str, version: dict[str, str]) -> dict[str, str]:
    return {**tokens[role], **version}


def _wo(session: Session, work_order_id: int) -> WorkOrder:
    work_order = session.scalar(select(WorkOrder).where(WorkOrder.id == work_order_id))
    assert work_order is not None
    return work_order


def _audit(db: Database, entity: str, entity_id: int) -> list[Any]:
    with db.session() as s:
        return list(
            s.execute(
                select(
                    AuditEvent.actor,
                    AuditEvent.from_state,
                    AuditEvent.to_state,
                    AuditEvent.reason,
                    AuditEvent.at,
                )
                .where(AuditEvent.entity == entity, AuditEvent.entity_id == entity_id)
                .order_by(AuditEvent.id)
            ).all()
        )


def test_a_report_opens_an_incident_with_a_work_order_in_its_category_queue(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database
) -> None:
    lon, lat = ward_point(demo_db)
    report = client.post(
        "/api/v1/reports", data={"category": "hydrant_leak", "lat": lat, "lon": lon}
    ).json()
    staff = client.get(
        f"/api/v1/staff/reports/{report['tracking_id']}", headers=tokens["dispatcher"]
    )
    incident = client.get(
        f"/api/v1/incidents/{staff.json()['incident_id']}", headers=tokens["dispatcher"]
    )
    assert incident.status_code == 200
    body = incident.json()
    work_order = body["work_order"]
    assert work_order["department"] == "water"
    assert work_order["sla_state"] == "on_track"
    opened = datetime.fromisoformat(work_order["opened_at"])
    assert datetime.fromisoformat(work_order["due_at"]) - opened == timedelta(hours=24)
    # The water crew (Monday to Friday) has it unless no weekday falls between now and the
    # due date (reported on a Saturday, due on the Sunday): then it waits for a dispatcher.
    chicago = ZoneInfo("America/Chicago")
    today = opened.astimezone(chicago).date()
    due_on = datetime.fromisoformat(work_order["due_at"]).astimezone(chicago).date()
    days = [today + timedelta(days=k) for k in range((due_on - today).days + 1)]
    water = next(
        c["id"]
        for c in client.get("/api/v1/crews", headers=tokens["dispatcher"]).json()
        if c["code"] == "water"
    )
    if any(d.isoweekday() <= 5 for d in days):
        assert (work_order["status"], work_order["crew_id"]) == ("assigned", water)
    else:
        assert (work_order["status"], work_order["crew_id"]) == ("new", None)
    assert datetime.fromisoformat(work_order["at_risk_at"]) - opened == timedelta(hours=18)
    assert incident.headers["ETag"] == f'"{body["version"]}"'


def test_the_demo_history_has_a_work_order_per_incident_in_step_with_it(
    demo_db: Database,
) -> None:
    with demo_db.session() as s:
        incidents = s.scalar(select(func.count()).select_from(Incident))
        pairs = s.execute(
            text(
                "SELECT i.status, w.status, count(*) FROM incidents i "
                "JOIN work_orders w ON w.jurisdiction_id = i.jurisdiction_id "
                "AND w.incident_id = i.id GROUP BY 1, 2"
            )
        ).all()
    assert incidents
    assert sum(n for *_, n in pairs) == incidents
    assert {(i, w) for i, w, _ in pairs} <= {("new", "new"), ("closed", "completed")}


def test_an_illegal_transition_is_refused_and_changes_nothing(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database
) -> None:
    work_order_id = work_order_of(demo_db, open_incident_with_reporters(demo_db, []))
    before = client.get(f"/api/v1/work-orders/{work_order_id}", headers=tokens["dispatcher"])
    audit_before = _audit(demo_db, "work_order", work_order_id)
    response = client.post(
        f"/api/v1/work-orders/{work_order_id}/transitions",
        json={"to": "scheduled"},
        headers={**tokens["dispatcher"], "If-Match": before.headers["ETag"]},
    )
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "illegal_transition"
    assert problem["current_status"] == "new"
    assert problem["allowed"] == ["assigned", "cancelled", "on_hold", "transferred", "triaged"]
    after = client.get(f"/api/v1/work-orders/{work_order_id}", headers=tokens["dispatcher"])
    assert after.json()["version"] == before.json()["version"]
    assert after.json()["status"] == "new"
    assert _audit(demo_db, "work_order", work_order_id) == audit_before


def test_unknown_status_and_missing_reason_are_422(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database
) -> None:
    work_order_id = work_order_of(demo_db, open_incident_with_reporters(demo_db, []))
    url = f"/api/v1/work-orders/{work_order_id}/transitions"
    seen = _as(tokens, "dispatcher", _v(client, tokens, work_order_id))
    bogus = client.post(url, json={"to": "fixed"}, headers=seen)
    assert bogus.status_code == 422
    assert bogus.json()["errors"][0]["field"] == "to"
    no_reason = client.post(url, json={"to": "cancelled"}, headers=seen)
    assert no_reason.status_code == 422
    assert no_reason.json()["errors"][0]["field"] == "reason"


def test_a_stale_write_gets_409_with_the_current_version(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database
) -> None:
    work_order_id = work_order_of(demo_db, open_incident_with_reporters(demo_db, []))
    url = f"/api/v1/work-orders/{work_order_id}/transitions"
    seen = client.get(f"/api/v1/work-orders/{work_order_id}", headers=tokens["dispatcher"])
    version = seen.json()["version"]
    first = client.post(
        url, json={"to": "triaged", "expected_version": version}, headers=tokens["dispatcher"]
    )
    assert first.status_code == 200
    assert first.json()["version"] == version + 1
    second = client.post(
        url, json={"to": "assigned", "expected_version": version}, headers=tokens["dispatcher"]
    )
    assert second.status_code == 409
    assert second.json()["code"] == "stale_version"
    assert second.json()["current_version"] == version + 1
    assert second.json()["current_status"] == "triaged"
    by_header = client.post(
        url,
        json={"to": "assigned"},
        headers={**tokens["dispatcher"], "If-Match": f'"{version + 1}"'},
    )
    assert by_header.status_code == 200
    assert by_header.json()["status"] == "assigned"


def test_two_dispatchers_racing_get_one_winner_and_one_conflict(demo_db: Database) -> None:
    work_order_id = work_order_of(demo_db, open_incident_with_reporters(demo_db, []))
    with demo_db.session() as s:
        version = _wo(s, work_order_id).version
    first = demo_db.sessions()
    work_order = _wo(first, work_order_id)
    transitions.transition(
        first,
        incident_or_work_order=work_order,
        to="triaged",
        actor="dispatcher:a",
        expected_version=version,
    )  # holds the row locks until it commits
    outcome: dict[str, object] = {}

    def second() -> None:
        with demo_db.sessions() as s:
            other = _wo(s, work_order_id)
            try:
                transitions.transition(
                    s,
                    incident_or_work_order=other,
                    to="cancelled",
                    actor="dispatcher:b",
                    reason="duplicate",
                    expected_version=version,
                )
                s.commit()
                outcome["b"] = "won"
            except StaleVersion as exc:
                outcome["b"] = exc.extra["current_version"]

    racer = threading.Thread(target=second)
    racer.start()
    racer.join(0.5)
    assert racer.is_alive(), "the second writer must wait for the first one's lock"
    first.commit()
    first.close()
    racer.join(10)
    assert outcome["b"] == version + 1
    with demo_db.session() as s:
        assert _wo(s, work_order_id).status == "triaged"


def test_a_crew_moves_its_own_work_but_cannot_cancel_it(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database
) -> None:
    work_order_id = work_order_of(demo_db, open_incident_with_reporters(demo_db, []))
    move_work_order(demo_db, work_order_id, "triaged", "assigned")
    give_to_crew(demo_db, work_order_id, "streets")
    url = f"/api/v1/work-orders/{work_order_id}/transitions"
    seen = _v(client, tokens, work_order_id)
    cancel = client.post(
        url, json={"to": "cancelled", "reason": "x"}, headers=_as(tokens, "crew", seen)
    )
    assert cancel.status_code == 403
    start = client.post(url, json={"to": "in_progress"}, headers=_as(tokens, "crew", seen))
    assert start.status_code == 200
    planner = client.post(
        url,
        json={"to": "on_hold", "reason": "x"},
        headers=_as(tokens, "planner", _v(client, tokens, work_order_id)),
    )
    assert planner.status_code == 403


def test_moving_a_work_order_moves_its_incident_and_audits_both(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database
) -> None:
    incident_id = open_incident_with_reporters(demo_db, [])
    work_order_id = work_order_of(demo_db, incident_id)
    for to in ("triaged", "assigned", "scheduled"):
        r = client.post(
            f"/api/v1/work-orders/{work_order_id}/transitions",
            json={"to": to, "reason": f"step {to}"},
            headers=_as(tokens, "dispatcher", _v(client, tokens, work_order_id)),
        )
        assert r.status_code == 200
    incident = client.get(f"/api/v1/incidents/{incident_id}", headers=tokens["dispatcher"])
    assert incident.json()["status"] == "scheduled"
    trail = _audit(demo_db, "work_order", work_order_id)
    assert [(t.from_state, t.to_state) for t in trail] == [
        (None, "new"),
        ("new", "triaged"),
        ("triaged", "assigned"),
        ("assigned", "scheduled"),
    ]
    assert trail[-1].actor == "dispatcher:dispatcher-1"
    assert trail[-1].reason == "step scheduled"
    assert trail[-1].at is not None
    assert [t.to_state for t in _audit(demo_db, "incident", incident_id)] == [
        "triaged",
        "assigned",
        "scheduled",
    ]


def test_cancel_as_merged_and_reopen_work_from_the_incident(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database
) -> None:
    incident_id = open_incident_with_reporters(demo_db, [])
    url = f"/api/v1/incidents/{incident_id}/transitions"
    seen = read_version(client, f"/api/v1/incidents/{incident_id}", tokens["dispatcher"])
    merged = client.post(
        url,
        json={"to": "cancelled", "reason": "merged into incident 1"},
        headers={**tokens["dispatcher"], **seen},
    )
    assert merged.status_code == 200
    assert merged.json()["work_order"]["status"] == "cancelled"
    assert merged.json()["work_order"]["sla_state"] == "cancelled"
    reopened = client.post(
        url,
        json={"to": "reopened", "expected_version": merged.json()["version"]},
        headers=tokens["dispatcher"],
    )
    assert reopened.json()["status"] == "reopened"
    assert reopened.json()["work_order"]["status"] == "reopened"


def _open_past(db: Database, hours_ago: float, category: str = "hydrant_leak") -> int:
    opened = datetime.now(UTC) - timedelta(hours=hours_ago)
    return work_order_of(
        db, open_incident_with_reporters(db, [], category=category, opened_at=opened)
    )


def _sla_states(client: TestClient, headers: dict[str, str], sla: str) -> set[int]:
    r = client.get("/api/v1/work-orders", params={"sla": sla, "limit": 1000}, headers=headers)
    assert r.status_code == 200
    return {w["id"] for w in r.json()}


def test_the_sla_clock_pauses_on_hold_in_sql(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database
) -> None:
    # Two leaks opened 30 h ago with a 24 h SLA; one was put on hold after an hour.
    held = _open_past(demo_db, 30)
    running = _open_past(demo_db, 30)
    now = datetime.now(UTC)
    with demo_db.session() as s:
        work_order = _wo(s, held)
        transitions.hold(
            s,
            work_order=work_order,
            reason="waiting for a valve part",
            actor="dispatcher:test",
            now=now - timedelta(hours=29),
        )
    staff = tokens["planner"]
    assert running in _sla_states(client, staff, "breached")
    assert held not in _sla_states(client, staff, "breached")
    assert held in _sla_states(client, staff, "on_track")
    summary = client.get(
        "/api/v1/work-orders/sla-summary", params={"department": "water"}, headers=staff
    ).json()
    assert summary[0]["on_hold"] >= 1
    with demo_db.session() as s:
        work_order = _wo(s, held)
        transitions.resume(s, work_order=work_order, actor="dispatcher:test", now=now)
        due_at = work_order.due_at
    # 23 of its 24 hours were left when it was held; they start again now.
    assert abs((due_at - (now + timedelta(hours=23))).total_seconds()) < 1
    assert held in _sla_states(client, staff, "on_track")
    assert running in _sla_states(client, staff, "breached")


def test_at_risk_is_the_last_quarter_of_the_window(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database
) -> None:
    at_risk = _open_past(demo_db, 20)  # 24 h SLA: at risk from 18 h
    fresh = _open_past(demo_db, 1)
    assert at_risk in _sla_states(client, tokens["dispatcher"], "at_risk")
    assert fresh not in _sla_states(client, tokens["dispatcher"], "at_risk")


def test_hold_and_resume_routes_keep_the_clock_and_return_to_where_it_was(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database
) -> None:
    work_order_id = work_order_of(demo_db, open_incident_with_reporters(demo_db, []))
    move_work_order(demo_db, work_order_id, "triaged", "assigned", "scheduled")
    give_to_crew(demo_db, work_order_id, "streets")
    held = client.post(
        f"/api/v1/work-orders/{work_order_id}/hold",
        json={"reason": "permit pending"},
        headers=_as(tokens, "crew", _v(client, tokens, work_order_id)),
    )
    assert held.status_code == 200
    assert held.json()["status"] == "on_hold"
    assert held.json()["hold_reason"] == "permit pending"
    assert held.json()["paused_at"] is not None
    resumed = client.post(
        f"/api/v1/work-orders/{work_order_id}/resume",
        json={},
        headers={**tokens["crew"], "If-Match": held.headers["ETag"]},
    )
    assert resumed.json()["status"] == "scheduled"
    assert resumed.json()["paused_at"] is None
    assert resumed.json()["due_at"] >= held.json()["due_at"]
    again = client.post(
        f"/api/v1/work-orders/{work_order_id}/resume",
        json={},
        headers={**tokens["crew"], "If-Match": resumed.headers["ETag"]},
    )
    assert again.status_code == 409


def test_reopen_keeps_the_sla_clock_running(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database
) -> None:
    work_order_id = _open_past(demo_db, 23)
    move_work_order(demo_db, work_order_id, "triaged", "assigned", "completed")
    with demo_db.session() as s:
        work_order = _wo(s, work_order_id)
        assert work_order.status == "completed"
        incident = s.scalar(select(Incident).where(Incident.id == work_order.incident_id))
        assert incident is not None
        assert incident.status == "closed"
        # As if it was completed 3 h ago, in time, and its due time passed half an hour ago.
        now = datetime.now(UTC)
        work_order.resolved_at = now - timedelta(hours=3)
        work_order.at_risk_at = now - timedelta(hours=2)
        work_order.due_at = now - timedelta(minutes=30)
    assert work_order_id in _sla_states(client, tokens["dispatcher"], "met")
    r = client.post(
        f"/api/v1/incidents/{incident.id}/transitions",
        json={"to": "reopened", "reason": "resident says no"},
        headers={
            **tokens["dispatcher"],
            **read_version(client, f"/api/v1/incidents/{incident.id}", tokens["dispatcher"]),
        },
    )
    assert r.status_code == 200
    assert work_order_id in _sla_states(client, tokens["dispatcher"], "breached")


def test_transfer_moves_the_work_to_another_queue(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database
) -> None:
    work_order_id = work_order_of(demo_db, open_incident_with_reporters(demo_db, []))
    seen = _as(tokens, "dispatcher", _v(client, tokens, work_order_id))
    no_reason = client.post(
        f"/api/v1/work-orders/{work_order_id}/transfer",
        json={"department": "state-dot", "reason": ""},
        headers=seen,
    )
    assert no_reason.status_code == 422
    moved = client.post(
        f"/api/v1/work-orders/{work_order_id}/transfer",
        json={"department": "state-dot", "reason": "state road"},
        headers=seen,
    )
    assert moved.json()["status"] == "transferred"
    queue = client.get(
        "/api/v1/work-orders", params={"department": "state-dot"}, headers=tokens["dispatcher"]
    ).json()
    assert [w["id"] for w in queue] == [work_order_id]
    seen = {**tokens["dispatcher"], "If-Match": moved.headers["ETag"]}
    via_transition = client.post(
        f"/api/v1/work-orders/{work_order_id}/transitions",
        json={"to": "transferred", "reason": "x"},
        headers=seen,
    )
    assert via_transition.status_code == 422
    accepted = client.post(
        f"/api/v1/work-orders/{work_order_id}/transitions",
        json={"to": "triaged"},
        headers=seen,
    )
    assert accepted.json()["department"] == "state-dot"


def _photo_rows(db: Database) -> int:
    with db.session() as s:
        return int(
            s.scalar(select(func.count()).select_from(Photo).where(Photo.kind == "after")) or 0
        )


def _files(root: Path) -> list[Path]:
    media = root / "media"
    return sorted(p for p in media.rglob("*") if p.is_file()) if media.exists() else []


def test_completion_needs_a_photo_and_a_resolution_code_and_says_so_at_once(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database
) -> None:
    work_order_id = work_order_of(demo_db, open_incident_with_reporters(demo_db, []))
    move_work_order(demo_db, work_order_id, "triaged", "assigned", "in_progress")
    give_to_crew(demo_db, work_order_id, "streets")
    r = client.post(
        f"/api/v1/work-orders/{work_order_id}/complete",
        data={"note": "done", "resolution_code": "fixed it"},
        headers=_as(tokens, "crew", _v(client, tokens, work_order_id)),
    )
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"photo", "resolution_code"}


def test_a_bad_after_photo_stores_nothing(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database, tmp_path: Path
) -> None:
    work_order_id = work_order_of(demo_db, open_incident_with_reporters(demo_db, []))
    move_work_order(demo_db, work_order_id, "triaged", "assigned", "in_progress")
    give_to_crew(demo_db, work_order_id, "streets")
    r = client.post(
        f"/api/v1/work-orders/{work_order_id}/complete",
        files={"photo": ("after.jpg", b"not an image at all", "image/jpeg")},
        data={"resolution_code": "repaired"},
        headers=_as(tokens, "crew", _v(client, tokens, work_order_id)),
    )
    assert r.status_code == 415
    assert r.headers["content-type"] == "application/problem+json"
    assert _photo_rows(demo_db) == 0
    assert _files(tmp_path) == []
    with demo_db.session() as s:
        assert _wo(s, work_order_id).status == "in_progress"


def test_completing_work_that_cannot_complete_removes_the_staged_photo(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database, tmp_path: Path
) -> None:
    work_order_id = work_order_of(demo_db, open_incident_with_reporters(demo_db, []))
    give_to_crew(demo_db, work_order_id, "streets")
    r = client.post(
        f"/api/v1/work-orders/{work_order_id}/complete",
        files={"photo": ("after.jpg", jpeg(), "image/jpeg")},
        data={"resolution_code": "repaired", "expected_version": "99"},
        headers=tokens["crew"],
    )
    assert r.status_code == 409
    assert _photo_rows(demo_db) == 0
    assert _files(tmp_path) == []


def test_completion_stores_a_metadata_free_after_photo_and_closes_the_incident(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database, tmp_path: Path
) -> None:
    incident_id = open_incident_with_reporters(demo_db, [])
    work_order_id = work_order_of(demo_db, incident_id)
    move_work_order(demo_db, work_order_id, "triaged", "assigned", "in_progress")
    give_to_crew(demo_db, work_order_id, "streets")
    r = client.post(
        f"/api/v1/work-orders/{work_order_id}/complete",
        files={"photo": ("after.jpg", jpeg(), "image/jpeg")},
        data={"note": "Patched", "resolution_code": "repaired"},
        headers=_as(tokens, "crew", _v(client, tokens, work_order_id)),
    )
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "completed"
    assert body["resolution_code"] == "repaired"
    assert body["completion_note"] == "Patched"
    assert body["completed_by"] == "crew:crew-1"
    public = client.get(body["after_photo_url"].replace("http://testserver", ""))
    assert public.status_code == 200
    assert b"TestCam" not in public.content
    assert len(_files(tmp_path)) == 3  # private original, public copy, thumbnail
    incident = client.get(f"/api/v1/incidents/{incident_id}", headers=tokens["dispatcher"])
    assert incident.json()["status"] == "closed"
    assert incident.json()["closed_at"] is not None


def test_a_business_calendar_sets_due_times_in_open_hours(
    client: TestClient, tokens: dict[str, dict[str, str]], demo_db: Database
) -> None:
    bad = client.put(
        "/api/v1/sla-calendars/office",
        json={
            "name": "Office",
            "timezone": "America/New_York",
            "hours": {"mon": [["17:00", "09:00"]]},
        },
        headers=tokens["admin"],
    )
    assert bad.status_code == 422
    week = {d: [["08:00", "16:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
    put = client.put(
        "/api/v1/sla-calendars/office",
        json={"name": "Office", "timezone": "America/New_York", "hours": week},
        headers=tokens["admin"],
    )
    assert put.status_code == 204
    link = client.put(
        "/api/v1/categories/graffiti/sla-calendar",
        json={"calendar": "office"},
        headers=tokens["admin"],
    )
    assert link.status_code == 204
    not_admin = client.put(
        "/api/v1/categories/graffiti/sla-calendar",
        json={"calendar": None},
        headers=tokens["dispatcher"],
    )
    assert not_admin.status_code == 403
    # Saturday noon, New York: 168 business hours = 21 working days of 8 h from Monday 08:00.
    from zoneinfo import ZoneInfo

    saturday = datetime(2026, 6, 6, 12, 0, tzinfo=ZoneInfo("America/New_York"))
    work_order_id = work_order_of(
        demo_db, open_incident_with_reporters(demo_db, [], category="graffiti", opened_at=saturday)
    )
    with demo_db.session() as s:
        due = _wo(s, work_order_id).due_at
    assert due.astimezone(ZoneInfo("America/New_York")) == datetime(
        2026, 7, 6, 16, 0, tzinfo=ZoneInfo("America/New_York")
    )
