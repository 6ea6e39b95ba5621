"""Dedup at intake on the demo city in a real PostGIS: which reports join which incidents."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from geo311.kernel.database import Database
from geo311.kernel.settings import Settings
from tests.geo311.dedup_support import execute, offset, one, quiet_point, rows, submit
from tests.support import pooled_app

PHOTOS = Path(__file__).resolve().parents[2] / "fixtures" / "photos"
T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(pooled_app(Settings(data_dir=tmp_path), db=demo_db)) as c:
        yield c


def _post(client: TestClient, lon: float, lat: float, **fields: str) -> dict[str, object]:
    resp = client.post(
        "/api/v1/reports",
        data={"category": "pothole", "lat": str(lat), "lon": str(lon), **fields},
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, object] = resp.json()
    return body


def test_a_second_report_of_a_pothole_joins_the_first_and_both_follow_it(
    client: TestClient, demo_db: Database
) -> None:
    lon, lat = quiet_point(demo_db)
    first = _post(client, lon, lat, email="first@example.org")
    assert first["report_count"] == 1
    second = _post(client, *offset(lon, lat, 6.0), email="second@example.org")
    assert second["report_count"] == 2
    # The first report's incident went to a crew; the second follows it there.
    assert second["status"] == first["status"] == "assigned"
    # Each tracking id keeps working and shows the shared incident.
    again = client.get(f"/api/v1/reports/{first['tracking_id']}").json()
    assert again["report_count"] == 2
    assert "second@example.org" not in client.get(f"/api/v1/reports/{second['tracking_id']}").text

    stored = rows(
        demo_db,
        "SELECT tracking_id, incident_id, dedup_decision, matched_report_id, dedup_signals "
        "FROM reports WHERE tracking_id IN (:a, :b) ORDER BY id",
        a=first["tracking_id"],
        b=second["tracking_id"],
    )
    (t1, inc1, dec1, _, _), (_, inc2, dec2, matched, signals) = stored
    assert inc1 == inc2
    assert (dec1, dec2) == ("new", "matched")
    assert matched == one(demo_db, "SELECT id FROM reports WHERE tracking_id = :t", t=t1)
    assert signals["best"]["distance_m"] == pytest.approx(6.0, abs=0.01)
    assert {"within_radius", "closeness"} <= set(signals["best"]["fired"])
    # Both residents hear when it is fixed: one subscription each, on the one incident.
    subscribed = rows(
        demo_db,
        "SELECT q.email FROM subscriptions s JOIN requesters q ON q.id = s.requester_id "
        "WHERE s.incident_id = :i ORDER BY q.email",
        i=inc1,
    )
    assert [r.email for r in subscribed] == ["first@example.org", "second@example.org"]
    assert (
        one(
            demo_db,
            "SELECT count(*) FROM audit_events WHERE entity_id = :i AND action = 'report_added'",
            i=inc1,
        )
        == 1
    )


def test_a_report_exactly_at_the_radius_joins_and_a_hair_beyond_does_not(
    demo_db: Database, tmp_path: Path
) -> None:
    """The radius is inclusive: distance ≤ radius_m (PostGIS ST_DWithin on geography)."""
    for n, (shrink_m, expected) in enumerate([(0.0, "matched"), (0.001, "new")]):
        lon, lat = quiet_point(demo_db, nth=n)
        a = submit(demo_db, tmp_path, category="pothole", lon=lon, lat=lat, now=T0)
        blon, blat = offset(lon, lat, 20.0, azimuth=33.0)
        distance_m = one(
            demo_db,
            "SELECT ST_Distance(ST_SetSRID(ST_MakePoint(:a, :b), 4326)::geography, "
            "ST_SetSRID(ST_MakePoint(:c, :d), 4326)::geography)",
            a=lon,
            b=lat,
            c=blon,
            d=blat,
        )
        execute(
            demo_db,
            "UPDATE service_categories SET dedup_radius_m = :r WHERE code = 'pothole'",
            r=distance_m - shrink_m,
        )
        b = submit(
            demo_db, tmp_path, category="pothole", lon=blon, lat=blat, now=T0 + timedelta(hours=1)
        )
        assert b.dedup_decision == expected
        assert (b.incident_id == a.incident_id) is (expected == "matched")


def test_a_category_with_dedup_switched_off_opens_an_incident_per_report(
    demo_db: Database, tmp_path: Path
) -> None:
    execute(demo_db, "UPDATE service_categories SET dedup_enabled = false WHERE code = 'pothole'")
    lon, lat = quiet_point(demo_db)
    a = submit(demo_db, tmp_path, category="pothole", lon=lon, lat=lat, now=T0)
    b = submit(demo_db, tmp_path, category="pothole", lon=lon, lat=lat, now=T0)
    assert a.incident_id != b.incident_id
    assert (a.dedup_decision, b.dedup_decision) == ("off", "off")
    # Its group mate still dedups, and never matches the switched-off category's incidents.
    c = submit(demo_db, tmp_path, category="sidewalk_damage", lon=lon, lat=lat, now=T0)
    d = submit(demo_db, tmp_path, category="sidewalk_damage", lon=lon, lat=lat, now=T0)
    assert c.dedup_decision == "new"
    assert d.incident_id == c.incident_id


def test_the_same_streetlight_is_one_problem_beyond_the_radius(
    demo_db: Database, tmp_path: Path
) -> None:
    execute(
        demo_db, "UPDATE service_categories SET dedup_radius_m = 5 WHERE code = 'streetlight_out'"
    )
    light_id, lon, lat = rows(
        demo_db,
        "SELECT a.id, ST_X(a.geom), ST_Y(a.geom) FROM assets a WHERE a.asset_type = "
        "'streetlight' AND NOT EXISTS (SELECT 1 FROM incidents i "
        "WHERE i.jurisdiction_id = a.jurisdiction_id AND i.asset_id = a.id) "
        "ORDER BY a.id LIMIT 1",
    )[0]
    north = submit(
        demo_db, tmp_path, category="streetlight_out", lon=lon, lat=lat + 0.00007, now=T0
    )
    south = submit(
        demo_db,
        tmp_path,
        category="streetlight_out",
        lon=lon,
        lat=lat - 0.00007,
        now=T0 + timedelta(hours=2),
    )
    assert north.asset_id == south.asset_id == light_id
    assert south.incident_id == north.incident_id
    best = south.dedup_signals["best"]
    assert best["distance_m"] > 5.0
    assert best["same_asset"] is True
    assert "within_radius" not in best["fired"]
    assert "same_asset" in best["fired"]


def test_without_an_asset_the_same_distance_opens_a_new_incident(
    demo_db: Database, tmp_path: Path
) -> None:
    execute(demo_db, "UPDATE service_categories SET dedup_radius_m = 5 WHERE code = 'pothole'")
    lon, lat = quiet_point(demo_db)
    a = submit(demo_db, tmp_path, category="pothole", lon=lon, lat=lat + 0.00007, now=T0)
    b = submit(demo_db, tmp_path, category="pothole", lon=lon, lat=lat - 0.00007, now=T0)
    assert a.incident_id != b.incident_id
    assert b.dedup_decision == "new"


def test_the_same_photo_joins_a_report_that_distance_and_address_alone_would_not(
    demo_db: Database, tmp_path: Path
) -> None:
    photo = (PHOTOS / "pothole_ward4.jpg").read_bytes()
    other_photo = (PHOTOS / "tree_down_ward2.jpg").read_bytes()
    lon, lat = quiet_point(demo_db)
    a = submit(
        demo_db,
        tmp_path,
        category="pothole",
        lon=lon,
        lat=lat,
        now=T0,
        photo=photo,
        address="10 Cedar Street",
    )
    edge = offset(lon, lat, 23.5)
    same = submit(
        demo_db,
        tmp_path,
        category="pothole",
        lon=edge[0],
        lat=edge[1],
        now=T0 + timedelta(minutes=30),
        photo=photo,
        address="30 Cedar Street",
    )
    assert same.incident_id == a.incident_id
    assert same.dedup_signals["best"]["photo_bits"] <= 2
    assert "photo_similar" in same.dedup_signals["best"]["fired"]

    other_side = offset(lon, lat, 23.5, azimuth=270.0)
    different = submit(
        demo_db,
        tmp_path,
        category="pothole",
        lon=other_side[0],
        lat=other_side[1],
        now=T0 + timedelta(minutes=40),
        photo=other_photo,
        address="50 Cedar Street",
    )
    assert different.incident_id != a.incident_id
    assert "photo_different" in different.dedup_signals["best"]["fired"]


def test_the_same_address_joins_and_another_address_does_not(
    demo_db: Database, tmp_path: Path
) -> None:
    lon, lat = quiet_point(demo_db)
    a = submit(
        demo_db, tmp_path, category="pothole", lon=lon, lat=lat, now=T0, address="12 Elm Street"
    )
    east = offset(lon, lat, 22.5)
    same = submit(
        demo_db,
        tmp_path,
        category="pothole",
        lon=east[0],
        lat=east[1],
        now=T0,
        address="12 ELM ST.",
    )
    assert same.incident_id == a.incident_id
    assert same.dedup_signals["best"]["same_address"] is True
    west = offset(lon, lat, 22.5, azimuth=270.0)
    other = submit(
        demo_db, tmp_path, category="pothole", lon=west[0], lat=west[1], now=T0, address="14 Elm St"
    )
    assert other.incident_id != a.incident_id
    assert other.dedup_signals["best"]["same_address"] is False


def test_an_old_quiet_incident_is_not_joined_from_the_edge_but_a_recent_one_is(
    demo_db: Database, tmp_path: Path
) -> None:
    lon, lat = quiet_point(demo_db)
    a = submit(demo_db, tmp_path, category="pothole", lon=lon, lat=lat, now=T0)
    near_edge = offset(lon, lat, 20.0)
    late = submit(
        demo_db,
        tmp_path,
        category="pothole",
        lon=near_edge[0],
        lat=near_edge[1],
        now=T0 + timedelta(days=20),
    )
    assert late.incident_id != a.incident_id
    assert late.dedup_signals["best"]["age_h"] == pytest.approx(480.0)
    assert "age" in late.dedup_signals["best"]["fired"]
    soon = submit(
        demo_db,
        tmp_path,
        category="pothole",
        lon=near_edge[0],
        lat=near_edge[1],
        now=T0 + timedelta(days=20, hours=1),
    )
    assert soon.incident_id == late.incident_id  # the new incident, an hour old


def test_a_report_soon_after_closing_reopens_the_incident_with_a_reason(
    client: TestClient, demo_db: Database, tmp_path: Path
) -> None:
    lon, lat = quiet_point(demo_db)
    first = _post(client, lon, lat, email="first@example.org")
    incident_id = one(
        demo_db, "SELECT incident_id FROM reports WHERE tracking_id = :t", t=first["tracking_id"]
    )
    execute(
        demo_db,
        "WITH w AS (UPDATE work_orders SET status = 'completed' WHERE incident_id = :i) "
        "UPDATE incidents SET status = 'closed', closed_at = now() - interval '2 days' "
        "WHERE id = :i",
        i=incident_id,
    )
    assert client.get(f"/api/v1/reports/{first['tracking_id']}").json()["status"] == "closed"

    again = _post(client, *offset(lon, lat, 4.0), email="again@example.org")
    assert again["status"] == "reopened"
    assert client.get(f"/api/v1/reports/{first['tracking_id']}").json()["status"] == "reopened"
    status, closed_at = rows(
        demo_db, "SELECT status, closed_at FROM incidents WHERE id = :i", i=incident_id
    )[0]
    assert (status, closed_at) == ("reopened", None)
    event = rows(
        demo_db,
        "SELECT from_state, to_state, reason, actor FROM audit_events "
        "WHERE entity = 'incident' AND entity_id = :i AND action = 'transition' "
        "AND to_state = 'reopened'",
        i=incident_id,
    )
    assert len(event) == 1
    assert (event[0].from_state, event[0].to_state) == ("closed", "reopened")
    assert again["tracking_id"] in event[0].reason
    assert event[0].actor == "resident:api"
    context = rows(
        demo_db,
        "SELECT data FROM audit_events WHERE entity_id = :i AND action = 'reopened_by_report'",
        i=incident_id,
    )
    assert context[0].data["closed_at"] is not None
    decision = one(
        demo_db,
        "SELECT dedup_decision FROM reports WHERE tracking_id = :t",
        t=again["tracking_id"],
    )
    assert decision == "reopened"


def test_a_report_long_after_closing_opens_a_new_incident(
    demo_db: Database, tmp_path: Path
) -> None:
    lon, lat = quiet_point(demo_db)
    a = submit(demo_db, tmp_path, category="pothole", lon=lon, lat=lat, now=T0)
    execute(
        demo_db,
        "WITH w AS (UPDATE work_orders SET status = 'completed' WHERE incident_id = :i) "
        "UPDATE incidents SET status = 'closed', closed_at = :t WHERE id = :i",
        t=T0 + timedelta(days=1),
        i=a.incident_id,
    )
    b = submit(demo_db, tmp_path, category="pothole", lon=lon, lat=lat, now=T0 + timedelta(days=20))
    assert b.incident_id != a.incident_id
    assert b.dedup_decision == "new"
    assert one(demo_db, "SELECT status FROM incidents WHERE id = :i", i=a.incident_id) == "closed"
