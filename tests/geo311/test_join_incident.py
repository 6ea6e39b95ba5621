"""A resident's report that follows a nearby request ("This is my problem — follow it"):
POST /api/v1/reports/{tracking_id}/join stores it in that request's incident through dedup's
moves — audited, listed for dispatchers and undoable like their own merge — and subscribes
its sender; a request it may not join is refused and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
    """The app as a city runs it (dedup at its defaults)."""
    with TestClient(pooled_app(Settings(data_dir=tmp_path), db=demo_db)) as c:
        yield c


def dedup_matches_potholes(db: Database, matches: bool) -> None:
    """Let dedup match potholes as the city does, or never (near reports then open incidents
    of their own), through the category's own threshold."""
    execute(
        db,
        "UPDATE service_categories SET dedup_threshold = :t WHERE code = 'pothole'",
        t=None if matches else 99.0,
    )


@pytest.fixture
def dispatcher(demo_db: Database) -> dict[str, str]:
    with demo_db.session() as s:
        token = auth_service.create_token(s, name="dana", role="dispatcher")
    return {"Authorization": f"Bearer {token}"}


def report(
    client: TestClient, lon: float, lat: float, email: str | None = None, *, join: str = ""
) -> str:
    data = {"category": "pothole", "lat": str(lat), "lon": str(lon), "description": "hole"}
    if email:
        data["email"] = email
    url = f"/api/v1/reports/{join}/join" if join else "/api/v1/reports"
    response = client.post(url, data=data)
    assert response.status_code == 201, response.text
    tracking_id: str = response.json()["tracking_id"]
    return tracking_id


def incident_of(db: Database, tracking_id: str) -> int:
    return int(one(db, "SELECT incident_id FROM reports WHERE tracking_id = :t", t=tracking_id))


def subscribers(db: Database, incident_id: int) -> list[str]:
    return [
        r.email
        for r in rows(
            db,
            "SELECT q.email FROM subscriptions s JOIN requesters q ON q.id = s.requester_id "
            "WHERE s.incident_id = :i ORDER BY q.email",
            i=incident_id,
        )
    ]


def counts(db: Database) -> tuple[int, ...]:
    return tuple(
        one(db, f"SELECT count(*) FROM {table}")
        for table in (
            "reports",
            "requesters",
            "subscriptions",
            "incidents",
            "work_orders",
            "incident_moves",
            "audit_events",
        )
    )


def test_a_report_that_follows_a_request_joins_its_incident_by_a_merge_a_dispatcher_can_undo(
    client: TestClient, demo_db: Database, dispatcher: dict[str, str]
) -> None:
    apart = client
    dedup_matches_potholes(demo_db, False)
    lon, lat = quiet_point(demo_db)
    first = report(apart, lon, lat, "first@example.org")
    target = incident_of(demo_db, first)
    # 15 m away: dedup (matching nothing here) would open an incident of its own
    mine = report(apart, *offset(lon, lat, 15.0), "me@example.org", join=first.lower())

    assert incident_of(demo_db, mine) == target
    public = apart.get(f"/api/v1/reports/{mine}").json()
    assert public["report_count"] == 2
    assert public["status"] == apart.get(f"/api/v1/reports/{first}").json()["status"]
    assert subscribers(demo_db, target) == ["first@example.org", "me@example.org"]
    listing = apart.get(f"/api/v1/staff/incidents/{target}/reports", headers=dispatcher).json()
    [move] = listing["moves"]
    assert (move["kind"], move["to_incident_id"], move["reports"]) == ("merge", target, [mine])
    assert move["actor"] == "resident:api"
    assert move["reason"] == f"the resident chose to follow request {first}"
    # the incident intake opened for it was cancelled at once, its work order given to nobody
    opened = move["from_incident_id"]
    assert one(demo_db, "SELECT status FROM incidents WHERE id = :i", i=opened) == "cancelled"
    assert rows(
        demo_db, "SELECT status, crew_id FROM work_orders WHERE incident_id = :i", i=opened
    )[0] == ("cancelled", None)

    undo = apart.post(
        f"/api/v1/staff/moves/{move['id']}/undo",
        json={"reason": "a different hole"},
        headers=dispatcher,
    )
    assert undo.status_code == 200, undo.text
    assert incident_of(demo_db, mine) == opened
    assert one(demo_db, "SELECT status FROM incidents WHERE id = :i", i=opened) != "cancelled"
    assert subscribers(demo_db, target) == ["first@example.org"]
    assert subscribers(demo_db, opened) == ["me@example.org"]


def test_when_dedup_puts_it_there_itself_no_move_is_needed(
    client: TestClient, demo_db: Database
) -> None:
    lon, lat = quiet_point(demo_db, nth=1)
    first = report(client, lon, lat, "first@example.org")
    mine = report(client, *offset(lon, lat, 2.0), "me@example.org", join=first)
    target = incident_of(demo_db, first)
    assert incident_of(demo_db, mine) == target
    assert subscribers(demo_db, target) == ["first@example.org", "me@example.org"]
    assert rows(demo_db, "SELECT id FROM incident_moves WHERE to_incident_id = :i", i=target) == []


def test_a_report_dedup_joined_elsewhere_is_split_out_then_merged_into_the_followed_one(
    client: TestClient, demo_db: Database
) -> None:
    lon, lat = quiet_point(demo_db, nth=2)
    dedup_matches_potholes(demo_db, False)
    near = report(client, lon, lat)  # where dedup will put the new report
    followed = report(client, *offset(lon, lat, 20.0))  # the one the resident picks
    assert incident_of(demo_db, near) != incident_of(demo_db, followed)
    dedup_matches_potholes(demo_db, True)
    mine = report(client, *offset(lon, lat, 1.0), "me@example.org", join=followed)
    target = incident_of(demo_db, followed)
    assert incident_of(demo_db, mine) == target
    assert subscribers(demo_db, target) == ["me@example.org"]
    assert subscribers(demo_db, incident_of(demo_db, near)) == []
    kinds = rows(
        demo_db,
        "SELECT kind, actor FROM incident_moves WHERE :r = ANY(report_ids) ORDER BY id",
        r=one(demo_db, "SELECT id FROM reports WHERE tracking_id = :t", t=mine),
    )
    assert [tuple(k) for k in kinds] == [("split", "resident:api"), ("merge", "resident:api")]


def test_a_request_it_may_not_join_is_refused_and_nothing_is_stored(
    client: TestClient, demo_db: Database
) -> None:
    apart = client
    lon, lat = quiet_point(demo_db, nth=3)
    first = report(apart, lon, lat, "first@example.org")
    before = counts(demo_db)
    far = offset(lon, lat, 60.0)  # beyond the pothole's 25 m
    cases: list[tuple[str, dict[str, object], int, str | None]] = [
        (first, {"category": "pothole", "lat": far[1], "lon": far[0]}, 409, "not_joinable"),
        # graffiti is not in the streets group a pothole belongs to
        (first, {"category": "graffiti", "lat": lat, "lon": lon}, 409, "not_joinable"),
        ("RQ-NOPE-NOPE", {"category": "pothole", "lat": lat, "lon": lon}, 404, None),
        (first, {"category": "pothole", "lat": "north"}, 422, "validation_failed"),
    ]
    for path, data, status, code in cases:
        response = apart.post(
            f"/api/v1/reports/{path}/join",
            data={k: str(v) for k, v in {**data, "email": "me@example.org"}.items()},
        )
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
        if code:
            assert response.json()["code"] == code
        assert counts(demo_db) == before
    # a closed request takes no new report through here either
    execute(
        demo_db,
        "UPDATE incidents SET status = 'closed', closed_at = now() - interval '30 days' "
        "WHERE id = :i",
        i=incident_of(demo_db, first),
    )
    refused = apart.post(
        f"/api/v1/reports/{first}/join",
        data={"category": "pothole", "lat": str(lat), "lon": str(lon)},
    )
    assert refused.status_code == 409, refused.text
    assert counts(demo_db) == before
