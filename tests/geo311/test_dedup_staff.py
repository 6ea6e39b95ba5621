"""Dispatchers' dedup tools through the API: list, merge, split, undo — and the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from geo311.kernel.auth import service as auth_service
from geo311.kernel.database import Database
from geo311.kernel.settings import Settings
from tests.geo311.dedup_support import execute, offset, one, quiet_point, rows
from tests.support import pooled_app

PROBLEM = "application/problem+json"


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(pooled_app(Settings(data_dir=tmp_path), db=demo_db)) as c:
        yield c


@pytest.fixture
def dispatcher(demo_db: Database) -> dict[str, str]:
    with demo_db.session() as s:
        token = auth_service.create_token(s, name="dana", role="dispatcher")
    return {"Authorization": f"Bearer {token}"}


def _report(client: TestClient, lon: float, lat: float, email: str | None = None) -> str:
    data = {"category": "pothole", "lat": str(lat), "lon": str(lon)}
    if email:
        data["email"] = email
    resp = client.post("/api/v1/reports", data=data)
    assert resp.status_code == 201, resp.text
    tracking_id: str = resp.json()["tracking_id"]
    return tracking_id


def _incident_of(db: Database, tracking_id: str) -> int:
    return int(one(db, "SELECT incident_id FROM reports WHERE tracking_id = :t", t=tracking_id))


def _subscribers(db: Database, incident_id: int) -> list[str]:
    return [
        r.email
        for r in rows(
            db,
            "SELECT q.email FROM subscriptions s JOIN requesters q ON q.id = s.requester_id "
            "WHERE s.incident_id = :i ORDER BY q.email",
            i=incident_id,
        )
    ]


def _public(client: TestClient, tracking_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/api/v1/reports/{tracking_id}").json()
    return body


def _two_incidents(client: TestClient, db: Database) -> tuple[list[str], list[str]]:
    """Return the tracking ids of incident A (two reports) and B (one report), 60 m apart."""
    lon, lat = quiet_point(db)
    a = [
        _report(client, lon, lat, "a1@example.org"),
        _report(client, *offset(lon, lat, 5.0), "a2@example.org"),
    ]
    b = [_report(client, *offset(lon, lat, 60.0), "b1@example.org")]
    assert _incident_of(db, a[0]) == _incident_of(db, a[1]) != _incident_of(db, b[0])
    return a, b


def test_the_staff_tools_need_a_dispatcher(
    client: TestClient, demo_db: Database, dispatcher: dict[str, str]
) -> None:
    a, b = _two_incidents(client, demo_db)
    ia, ib = _incident_of(demo_db, a[0]), _incident_of(demo_db, b[0])
    body = {"source_incident_id": ib, "reason": "same pothole"}
    anonymous = client.post(f"/api/v1/staff/incidents/{ia}/merge", json=body)
    assert anonymous.status_code == 401
    with demo_db.session() as s:
        crew = auth_service.create_token(s, name="carl", role="crew")
    forbidden = client.post(
        f"/api/v1/staff/incidents/{ia}/merge",
        json=body,
        headers={"Authorization": f"Bearer {crew}"},
    )
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == PROBLEM
    assert _incident_of(demo_db, b[0]) == ib
    assert client.get(f"/api/v1/staff/incidents/{ia}/reports").status_code == 401


def test_a_dispatcher_sees_an_incidents_reports_and_why_they_were_matched(
    client: TestClient, demo_db: Database, dispatcher: dict[str, str]
) -> None:
    a, _ = _two_incidents(client, demo_db)
    ia = _incident_of(demo_db, a[0])
    resp = client.get(f"/api/v1/staff/incidents/{ia}/reports", headers=dispatcher)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["incident"]["report_count"] == 2
    assert body["incident"]["subscriber_count"] == 2
    first, second = body["reports"]
    assert [first["tracking_id"], second["tracking_id"]] == a
    assert first["dedup"]["decision"] == "new"
    assert second["dedup"]["decision"] == "matched"
    assert second["matched_report"] == a[0]
    assert second["distance_m"] == pytest.approx(5.0, abs=0.1)
    assert "within_radius" in second["dedup"]["signals"]["best"]["fired"]
    assert all(r["subscribed"] for r in body["reports"])
    missing = client.get("/api/v1/staff/incidents/999999/reports", headers=dispatcher)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM


def test_merge_moves_reports_and_subscribers_cancels_the_other_and_undo_puts_it_back(
    client: TestClient, demo_db: Database, dispatcher: dict[str, str]
) -> None:
    a, b = _two_incidents(client, demo_db)
    ia, ib = _incident_of(demo_db, a[0]), _incident_of(demo_db, b[0])

    resp = client.post(
        f"/api/v1/staff/incidents/{ia}/merge",
        json={"source_incident_id": ib, "reason": "one pothole, reported twice"},
        headers=dispatcher,
    )
    assert resp.status_code == 201, resp.text
    move = resp.json()
    assert (move["kind"], move["from_incident_id"], move["to_incident_id"]) == ("merge", ib, ia)
    assert move["reports"] == b
    assert move["actor"] == "staff:dana"

    assert _incident_of(demo_db, b[0]) == ia
    assert _public(client, b[0])["report_count"] == 3
    # A's pothole went to the paving crew when it was reported; B's reports follow it there.
    assert _public(client, b[0])["status"] == "assigned"
    assert _subscribers(demo_db, ia) == ["a1@example.org", "a2@example.org", "b1@example.org"]
    assert _subscribers(demo_db, ib) == []
    assert one(demo_db, "SELECT status FROM incidents WHERE id = :i", i=ib) == "cancelled"
    cancelled = rows(
        demo_db,
        "SELECT from_state, to_state, reason, public_note, actor FROM audit_events "
        "WHERE entity = 'incident' AND entity_id = :i AND action = 'transition' "
        "AND to_state = 'cancelled'",
        i=ib,
    )
    assert [(c.from_state, c.to_state, c.actor) for c in cancelled] == [
        ("assigned", "cancelled", "staff:dana")
    ]
    # The dispatcher's reason stays in the audit trail, for staff; the public is told in
    # chosen words that name the request to follow, never the reason or an incident number.
    assert f"merged into incident {ia}" in cancelled[0].reason
    assert "one pothole, reported twice" in cancelled[0].reason
    assert cancelled[0].public_note == (
        f"This problem was already reported as {a[0]}: follow that request."
    )
    listing = client.get(f"/api/v1/staff/incidents/{ia}/reports", headers=dispatcher).json()
    assert [m["id"] for m in listing["moves"]] == [move["id"]]

    # A cancelled incident takes no new reports: a resident at B's spot (60 m from A's, beyond
    # the radius) gets a new incident.
    lon, lat = rows(
        demo_db, "SELECT ST_X(geom), ST_Y(geom) FROM reports WHERE tracking_id = :t", t=b[0]
    )[0]
    late = _report(client, *offset(lon, lat, 1.0))
    late_incident = _incident_of(demo_db, late)
    assert late_incident not in (ia, ib)

    undo = client.post(
        f"/api/v1/staff/moves/{move['id']}/undo",
        json={"reason": "they are two potholes"},
        headers=dispatcher,
    )
    assert undo.status_code == 200, undo.text
    assert undo.json()["undone_by"] == "staff:dana"
    assert _incident_of(demo_db, b[0]) == ib
    assert _incident_of(demo_db, late) == late_incident
    assert one(demo_db, "SELECT status FROM incidents WHERE id = :i", i=ib) == "assigned"
    assert _subscribers(demo_db, ib) == ["b1@example.org"]
    assert _subscribers(demo_db, ia) == ["a1@example.org", "a2@example.org"]
    assert _public(client, b[0])["report_count"] == 1
    actions = [
        r.action
        for r in rows(
            demo_db,
            "SELECT action FROM audit_events WHERE entity_id IN (:a, :b) AND action IN "
            "('merged_away', 'merged_in', 'status_restored', 'merge_undone') ORDER BY id",
            a=ia,
            b=ib,
        )
    ]
    assert actions == ["merged_away", "merged_in", "status_restored", "merge_undone"]

    again = client.post(
        f"/api/v1/staff/moves/{move['id']}/undo", json={"reason": "twice"}, headers=dispatcher
    )
    assert again.status_code == 409
    assert again.json()["code"] == "move_not_undoable"


def test_bad_merges_are_refused_and_change_nothing(
    client: TestClient, demo_db: Database, dispatcher: dict[str, str]
) -> None:
    a, b = _two_incidents(client, demo_db)
    ia, ib = _incident_of(demo_db, a[0]), _incident_of(demo_db, b[0])
    itself = client.post(
        f"/api/v1/staff/incidents/{ia}/merge",
        json={"source_incident_id": ia, "reason": "x"},
        headers=dispatcher,
    )
    assert itself.status_code == 422
    assert itself.headers["content-type"] == PROBLEM
    no_reason = client.post(
        f"/api/v1/staff/incidents/{ia}/merge",
        json={"source_incident_id": ib, "reason": ""},
        headers=dispatcher,
    )
    assert no_reason.status_code == 422
    assert no_reason.json()["errors"][0]["field"] == "reason"
    unknown = client.post(
        f"/api/v1/staff/incidents/{ia}/merge",
        json={"source_incident_id": 999999, "reason": "x"},
        headers=dispatcher,
    )
    assert unknown.status_code == 404
    execute(demo_db, "UPDATE incidents SET status = 'cancelled' WHERE id = :i", i=ib)
    cancelled = client.post(
        f"/api/v1/staff/incidents/{ia}/merge",
        json={"source_incident_id": ib, "reason": "x"},
        headers=dispatcher,
    )
    assert cancelled.status_code == 409
    assert cancelled.json()["code"] == "incident_not_mergeable"
    assert _incident_of(demo_db, b[0]) == ib
    assert one(demo_db, "SELECT count(*) FROM incident_moves") == 0


def test_split_takes_a_report_and_its_requester_to_a_new_incident_and_undo_brings_it_back(
    client: TestClient, demo_db: Database, dispatcher: dict[str, str]
) -> None:
    a, _ = _two_incidents(client, demo_db)
    ia = _incident_of(demo_db, a[0])
    resp = client.post(
        f"/api/v1/staff/reports/{a[1]}/split",
        json={"reason": "a second pothole beside the first"},
        headers=dispatcher,
    )
    assert resp.status_code == 201, resp.text
    move = resp.json()
    new_id = move["to_incident_id"]
    assert (move["kind"], move["from_incident_id"], move["reports"]) == ("split", ia, [a[1]])
    assert _incident_of(demo_db, a[1]) == new_id != ia
    assert _public(client, a[1])["report_count"] == 1
    assert _public(client, a[0])["report_count"] == 1
    assert _subscribers(demo_db, new_id) == ["a2@example.org"]
    assert _subscribers(demo_db, ia) == ["a1@example.org"]
    assert one(demo_db, "SELECT category_code FROM incidents WHERE id = :i", i=new_id) == "pothole"

    only = client.post(
        f"/api/v1/staff/reports/{a[1]}/split", json={"reason": "again"}, headers=dispatcher
    )
    assert only.status_code == 409
    assert only.json()["code"] == "nothing_to_split"

    undo = client.post(
        f"/api/v1/staff/moves/{move['id']}/undo", json={"reason": "it was one"}, headers=dispatcher
    )
    assert undo.status_code == 200, undo.text
    assert _incident_of(demo_db, a[1]) == ia
    assert _subscribers(demo_db, ia) == ["a1@example.org", "a2@example.org"]
    assert _subscribers(demo_db, new_id) == []
    assert one(demo_db, "SELECT status FROM incidents WHERE id = :i", i=new_id) == "cancelled"
    assert _public(client, a[1])["report_count"] == 2


def test_splitting_out_the_report_that_reopened_an_incident_closes_it_again(
    client: TestClient, demo_db: Database, dispatcher: dict[str, str]
) -> None:
    lon, lat = quiet_point(demo_db)
    first = _report(client, lon, lat, "first@example.org")
    incident_id = _incident_of(demo_db, first)
    execute(
        demo_db,
        "WITH w AS (UPDATE work_orders SET status = 'completed' WHERE incident_id = :i) "
        "UPDATE incidents SET status = 'closed', closed_at = now() - interval '1 day' "
        "WHERE id = :i",
        i=incident_id,
    )
    closed_at = one(demo_db, "SELECT closed_at FROM incidents WHERE id = :i", i=incident_id)
    again = _report(client, *offset(lon, lat, 3.0), "again@example.org")
    assert _public(client, first)["status"] == "reopened"

    split = client.post(
        f"/api/v1/staff/reports/{again}/split",
        json={"reason": "a new hole, not the fixed one"},
        headers=dispatcher,
    )
    assert split.status_code == 201, split.text
    assert _public(client, first)["status"] == "closed"
    assert one(demo_db, "SELECT closed_at FROM incidents WHERE id = :i", i=incident_id) == (
        closed_at
    )
    # The split-out report's new incident goes to a crew like any new one.
    assert _public(client, again)["status"] == "assigned"

    undo = client.post(
        f"/api/v1/staff/moves/{split.json()['id']}/undo",
        json={"reason": "it was the same hole after all"},
        headers=dispatcher,
    )
    assert undo.status_code == 200, undo.text
    assert _public(client, first)["status"] == "reopened"
    assert _public(client, again)["report_count"] == 2
    statuses = [
        (r.action, r.from_state, r.to_state)
        for r in rows(
            demo_db,
            "SELECT action, from_state, to_state FROM audit_events "
            "WHERE entity = 'incident' AND entity_id = :i AND ((action = 'transition' "
            "AND to_state = 'reopened') OR action = 'status_restored') ORDER BY id",
            i=incident_id,
        )
    ]
    assert statuses == [
        ("transition", "closed", "reopened"),
        ("status_restored", "reopened", "closed"),
        ("transition", "closed", "reopened"),
    ]


def test_an_undo_after_the_reports_moved_on_is_refused(
    client: TestClient, demo_db: Database, dispatcher: dict[str, str]
) -> None:
    a, b = _two_incidents(client, demo_db)
    ia, ib = _incident_of(demo_db, a[0]), _incident_of(demo_db, b[0])
    merge = client.post(
        f"/api/v1/staff/incidents/{ia}/merge",
        json={"source_incident_id": ib, "reason": "same"},
        headers=dispatcher,
    ).json()
    split = client.post(
        f"/api/v1/staff/reports/{b[0]}/split", json={"reason": "not same"}, headers=dispatcher
    )
    assert split.status_code == 201
    refused = client.post(
        f"/api/v1/staff/moves/{merge['id']}/undo", json={"reason": "x"}, headers=dispatcher
    )
    assert refused.status_code == 409
    assert "no longer in incident" in refused.json()["detail"]
    assert one(demo_db, "SELECT status FROM incidents WHERE id = :i", i=ib) == "cancelled"
