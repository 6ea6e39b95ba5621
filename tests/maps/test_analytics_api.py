"""The planner's analytics API on a small known history (tests/maps/history.py): every figure
below is worked out by hand from the table in that module's docstring."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Point, shape

from geo311.kernel.database import Database
from geo311.kernel.errors import ValidationFailed
from geo311.kernel.settings import AnalyticsSettings, Settings
from geo311.resident.intake.models import Report
from geo311.resident.intake.tracking import new_tracking_id
from maps.analytics import hotspots, queries
from tests.maps import history
from tests.support import pooled_app, staff_token

JAN = {"from": "2026-01-01", "to": "2026-01-31"}


@pytest.fixture
def city(db: Database) -> history.City:
    return history.build(db)


@pytest.fixture
def client(db: Database, city: history.City, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, analytics=AnalyticsSettings(min_cases=5, hex_size_m=100))
    with TestClient(pooled_app(settings, db=db)) as c:
        c.headers["Authorization"] = f"Bearer {staff_token(db, 'planner')}"
        yield c


def get(client: TestClient, path: str, **params: str) -> dict[str, Any]:
    answer = client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def wards(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["code"]: w for w in body["wards"]}


def test_january_ward_table_figures(client: TestClient) -> None:
    body = get(client, "/api/v1/analytics/wards", **JAN)
    assert [m["name"] for m in body["maps"]] == ["old"]
    assert body["maps"][0]["whole_period"] is True
    a1, a2 = wards(body)["A1"], wards(body)["A2"]
    assert set(wards(body)) == {"A1", "A2"}

    assert (a1["reports"], a1["incidents"]) == (6, 5)
    assert a1["duplicate_share"] == pytest.approx(1 / 6, abs=1e-4)
    assert a1["rate_per_1000"] == pytest.approx(3.0)
    assert a1["median_close_h"] == pytest.approx(25.0)  # 10, 20, 30, 100
    assert a1["p90_close_h"] == pytest.approx(79.0)  # 30 + 0.7 × (100 − 30)
    assert a1["sla_breach_share"] == pytest.approx(0.4)  # P2 late, P4 open past due: 2 of 5
    assert a1["on_time_share"] == pytest.approx(0.6)
    # The city's mix: pothole 5 decided, tree 4; A1 is 2/4 on time in potholes, 1/1 in trees.
    assert a1["on_time_score"] == pytest.approx((5 * 0.5 + 4 * 1.0) / 9, abs=1e-4)
    assert (a1["backlog"], a1["backlog_median_age_h"]) == (1, pytest.approx(288.0))
    assert a1["reopen_share"] == pytest.approx(0.2)
    assert (a1["fixed_yes"], a1["fixed_no"]) == (2, 1)
    assert a1["fixed_share"] == pytest.approx(2 / 3, abs=1e-4)

    assert (a2["reports"], a2["incidents"], a2["backlog"]) == (4, 4, 0)
    assert a2["rate_per_1000"] == pytest.approx(1.0)
    assert a2["median_close_h"] == pytest.approx(125.0)  # 12, 50, 200, 300
    assert a2["p90_close_h"] == pytest.approx(270.0)
    assert a2["sla_breach_share"] == pytest.approx(0.25)
    # Mostly slow trees, one of three late: the score weighs each category by the city's mix.
    assert a2["on_time_score"] == pytest.approx((5 * 1.0 + 4 * 2 / 3) / 9, abs=1e-4)

    city = body["city"]
    assert (city["reports"], city["incidents"], city["population"]) == (10, 9, 6000)
    assert city["duplicate_share"] == pytest.approx(0.1)
    assert city["rate_per_1000"] == pytest.approx(10 / 6, abs=1e-4)
    assert city["median_close_h"] == pytest.approx(40.0)  # 10 12 20 30 | 50 100 200 300
    assert city["p90_close_h"] == pytest.approx(230.0)
    assert city["sla_breach_share"] == pytest.approx(1 / 3, abs=1e-4)
    assert city["on_time_score"] == pytest.approx(2 / 3, abs=1e-4)


def test_gap_from_the_city_and_the_too_few_rule(client: TestClient) -> None:
    body = get(client, "/api/v1/analytics/wards", **JAN)
    assert body["min_cases"] == 5
    a1, a2 = wards(body)["A1"], wards(body)["A2"]
    assert (a1["too_few"], a1["ranked"]) == (False, True)
    assert a1["gap"]["median_close_h"] == pytest.approx(25.0 - 40.0)
    assert a1["gap"]["rate_per_1000"] == pytest.approx(3.0 - 10 / 6, abs=1e-3)
    assert a1["gap"]["sla_breach_share"] == pytest.approx(0.4 - 1 / 3, abs=1e-3)
    assert a1["rank"]["median_close_h"] == 1
    # Four incidents, fewer than five: its figures are shown, never compared or ranked.
    assert (a2["too_few"], a2["ranked"]) == (True, False)
    assert a2["median_close_h"] == pytest.approx(125.0)
    assert set(a2["gap"].values()) == {None}
    assert set(a2["rank"].values()) == {None}


def test_a_period_across_a_ward_map_change(client: TestClient) -> None:
    body = get(client, "/api/v1/analytics/wards", **{"from": "2026-02-01", "to": "2026-03-31"})
    assert [(m["name"], m["whole_period"]) for m in body["maps"]] == [
        ("old", False),
        ("new", False),
    ]
    assert body["maps"][0]["in_force_to"].startswith("2026-03-01")
    assert any("ward-map change" in note for note in body["notes"])
    by_code = wards(body)
    assert set(by_code) == {"A1", "A2", "B1", "B2"}
    # X1 was reported in February at a point B1 covers today: it stays A1's, as at its time.
    assert (by_code["A1"]["reports"], by_code["A1"]["incidents"]) == (1, 1)
    assert by_code["A1"]["median_close_h"] == pytest.approx(144.0)
    assert (by_code["B1"]["reports"], by_code["B1"]["incidents"]) == (2, 2)  # X2 and L1
    # The empty ward: listed, zero counts, no medians, never ranked.
    b2 = by_code["B2"]
    assert (b2["reports"], b2["incidents"], b2["median_close_h"], b2["ranked"]) == (
        0,
        0,
        None,
        False,
    )
    assert b2["rate_per_1000"] == 0.0
    assert not any(w["ranked"] for w in body["wards"])
    assert body["city"]["reports"] == 3


def test_rate_per_asset_for_one_category(client: TestClient) -> None:
    body = get(
        client,
        "/api/v1/analytics/wards",
        category="streetlight",
        **{"from": "2026-03-01", "to": "2026-03-31"},
    )
    by_code = wards(body)
    assert by_code["B1"]["assets"] == 2
    assert by_code["B1"]["rate_per_asset"] == pytest.approx(0.5)
    assert (by_code["B2"]["assets"], by_code["B2"]["rate_per_asset"]) == (0, None)
    assert body["city"]["rate_per_asset"] == pytest.approx(0.5)
    assert get(client, "/api/v1/analytics/wards", **JAN)["city"]["rate_per_asset"] is None


def test_group_filter(client: TestClient) -> None:
    body = get(client, "/api/v1/analytics/wards", group="trees", **JAN)
    assert (wards(body)["A1"]["incidents"], wards(body)["A2"]["incidents"]) == (1, 3)
    assert body["filters"] == {"category": None, "group": "trees"}


def test_weekly_trend_of_a_ward(client: TestClient) -> None:
    body = get(client, "/api/v1/analytics/trends", ward="A1", **JAN)
    weeks = {w["week"]: w for w in body["weeks"]}
    assert list(weeks) == ["2025-12-29", "2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26"]
    assert (weeks["2026-01-05"]["incidents"], weeks["2026-01-05"]["reports"]) == (4, 5)
    assert weeks["2026-01-05"]["median_close_h"] == pytest.approx(25.0)
    assert weeks["2026-01-12"]["incidents"] == 0
    assert weeks["2026-01-19"]["incidents"] == 1
    assert weeks["2026-01-19"]["backlog"] == 1
    city = get(client, "/api/v1/analytics/trends", **JAN)
    assert city["ward"] is None
    assert sum(w["incidents"] for w in city["weeks"]) == 9
    assert client.get("/api/v1/analytics/trends", params={"ward": "Z9", **JAN}).status_code == 404


def test_hotspot_cluster_and_hot_cell(client: TestClient) -> None:
    body = get(client, "/api/v1/analytics/hotspots", **{"from": "2025-06-01", "to": "2025-06-30"})
    clusters = body["clusters"]["features"]
    assert len(clusters) == 1
    # DBSCAN at 2 × 25 m, 5 points: the lattice's two inner reports are core points (4
    # neighbours 40 m away, plus themselves); with their 6 neighbours that is 8 reports. The
    # 4 corners are 56.6 m from any core point: noise.
    assert clusters[0]["properties"]["reports"] == 8
    assert clusters[0]["properties"]["distance_m"] == 50
    assert clusters[0]["properties"]["category"] == "pothole"
    assert shape(clusters[0]["geometry"]).contains(Point(history.HOT))

    cells = body["cells"]["features"]
    assert sum(c["properties"]["reports"] for c in cells) == 22
    # The cells holding the hot spot's reports: all hot, 12 reports in all.
    hot = [
        c
        for c in cells
        if any(shape(c["geometry"]).intersects(Point(p)) for p in history.HOT_POINTS)
    ]
    assert sum(c["properties"]["reports"] for c in hot) == 12
    assert {c["properties"]["verdict"] for c in hot} == {"hot"}
    assert all(c["properties"]["gi_p"] < 0.05 and c["properties"]["gi_z"] > 2 for c in hot)
    # The background: ten cells of one report each; those away from the hot spot are not hot
    # (a neighbour of it may be: Gi* judges a cell with its neighbours).
    lone = [c for c in cells if c["properties"]["reports"] == 1]
    assert len(lone) == 10
    apart = [
        c for c in lone if not any(shape(c["geometry"]).touches(shape(h["geometry"])) for h in hot)
    ]
    assert len(apart) >= 8
    assert {c["properties"]["verdict"] for c in apart} == {"not_significant"}
    # Seeded permutations: asked again, the same p-values.
    again = get(client, "/api/v1/analytics/hotspots", **{"from": "2025-06-01", "to": "2025-06-30"})
    assert again["cells"] == body["cells"]


def test_a_report_between_two_clusters_goes_to_the_first_reported(
    client: TestClient, db: Database, city: history.City
) -> None:
    """Tree reports in August 2025 (DBSCAN at 2 × 25 m, 5 reports): two clusters of five, 80 m
    apart, and one report X between them, 40 m from the nearest report of each. X has too
    few neighbours to be a core report, so DBSCAN gives it to one cluster only: the one with
    the earlier reports (the west one), not the one whose rows happen to lie first in the
    table (the east one: stored first, numbered after)."""
    from work_orders import incidents
    from work_orders.models import ServiceCategory

    metre = 1 / 111_320  # degrees of longitude (and, near enough, latitude) at the equator
    x0, y0 = 0.012, 0.006
    west = [(-40, 0), (-52, 0), (-52, 8), (-52, -8), (-60, 0)]
    east = [(-dx, dy) for dx, dy in west]
    at = datetime(2025, 8, 4, 12, tzinfo=UTC)
    with db.session() as session:
        tree = session.get(ServiceCategory, (city.jid, "tree"))
        assert tree is not None
        for group, offsets in (("east", east), ("x", [(0, 0)]), ("west", west)):
            for k, (dx, dy) in enumerate(offsets):
                lon, lat = x0 + dx * metre, y0 + dy * metre
                incident = incidents.open_incident(
                    session, category=tree, lon=lon, lat=lat, ward_id=None, asset_id=None,
                    opened_at=at,
                )  # fmt: skip
                # the east reports are stored first but numbered after the others
                report = Report(
                    id=10_000_000 + k if group == "east" else None,
                    jurisdiction_id=city.jid, tracking_id=new_tracking_id(),
                    incident_id=incident.id, category_code="tree",
                    geom=f"SRID=4326;POINT({lon} {lat})", location_source="pin",
                    channel="api", reported_at=at, dedup_decision="new",
                )  # fmt: skip
                session.add(report)
                session.flush()
    august = {"from": "2025-08-01", "to": "2025-08-31"}
    for _ in range(2):
        body = get(client, "/api/v1/analytics/hotspots", **august)
        found = body["clusters"]["features"]
        assert [f["properties"]["reports"] for f in found] == [6, 5]
        assert shape(found[0]["geometry"]).contains(Point(x0 - 50 * metre, y0))
        assert shape(found[0]["geometry"]).contains(Point(x0, y0))
        assert not shape(found[1]["geometry"]).contains(Point(x0, y0))


def test_heat_weights_are_the_reports_of_the_period_and_filter(client: TestClient) -> None:
    body = get(client, "/api/v1/analytics/heat", **JAN)
    table = get(client, "/api/v1/analytics/wards", **JAN)
    assert body["cell_m"] == 50
    assert sum(n for _, _, n in body["points"]) == body["reports"] == 10
    assert body["reports"] == table["city"]["reports"]
    # P1 and P2 share WEST, P3's two reports share a spot: two cells of 2, six of 1.
    assert sorted(n for _, _, n in body["points"]) == [1, 1, 1, 1, 1, 1, 2, 2]
    # Every cell lies in the city (0…0.02° × 0…0.01°).
    assert all(0 <= lat <= 0.01 and 0 <= lon <= 0.02 for lat, lon, _ in body["points"])
    potholes = get(client, "/api/v1/analytics/heat", category="pothole", **JAN)
    assert sum(n for _, _, n in potholes["points"]) == 6  # P1, P2, P3 (×2), P4, P5
    assert sorted(n for _, _, n in potholes["points"]) == [1, 1, 2, 2]
    assert potholes["filters"] == {"category": "pothole", "group": None}
    # June: the hot spot's 12 reports (40 m apart) near HOT, the 10 lone ones away from it.
    june = get(client, "/api/v1/analytics/heat", **{"from": "2025-06-01", "to": "2025-06-30"})
    assert june["reports"] == 22
    near = [
        n
        for lat, lon, n in june["points"]
        if abs(lat - history.HOT[1]) < 0.001 and abs(lon - history.HOT[0]) < 0.001
    ]
    assert sum(near) == 12
    assert len(june["points"]) - len(near) == 10


def test_heat_cells_grow_to_fit_the_cap(db: Database, city: history.City) -> None:
    period = queries.resolve_period(
        first_day=date(2025, 6, 1),
        last_day=date(2025, 6, 30),
        timezone="UTC",
        max_days=731,
    )
    with db.session() as s:
        srid = hotspots.metric_srid(s, jurisdiction_id=city.jid)
        fine = hotspots.heat(
            s, jurisdiction_id=city.jid, period=period, filters=queries.Filters(), srid=srid
        )
        capped = hotspots.heat(
            s,
            jurisdiction_id=city.jid,
            period=period,
            filters=queries.Filters(),
            srid=srid,
            max_cells=8,
        )
    assert (fine.cell_m, len(fine.cells)) == (50, 22)  # the 22 June reports, each in its own cell
    # Past the cap the cells double until they fit; every report is still counted.
    assert capped.cell_m > 50
    assert len(capped.cells) <= 8
    assert sum(n for _, _, n in capped.cells) == 22


def test_repeat_location_after_a_fix(client: TestClient, city: history.City) -> None:
    body = get(client, "/api/v1/analytics/hotspots", **{"from": "2026-03-01", "to": "2026-03-31"})
    repeats = body["repeats"]["features"]
    assert len(repeats) == 1
    props = repeats[0]["properties"]
    assert (props["category"], props["spot"], props["reported_again"]) == ("pothole", "near", 1)
    assert shape(repeats[0]["geometry"]).distance(Point(0.008, 0.003)) < 0.0001


def test_exports_carry_the_same_numbers(client: TestClient) -> None:
    table = get(client, "/api/v1/analytics/wards", category="pothole", **JAN)
    a1 = wards(table)["A1"]

    answer = client.get("/api/v1/analytics/wards.csv", params={"category": "pothole", **JAN})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert (
        answer.headers["content-disposition"]
        == 'attachment; filename="wards_2026-01-01_2026-01-31_category-pothole.csv"'
    )
    rows = {r["code"]: r for r in csv.DictReader(io.StringIO(answer.text))}
    assert rows["A1"]["period_from"] == "2026-01-01"
    assert rows["A1"]["category"] == "pothole"
    assert int(rows["A1"]["incidents"]) == a1["incidents"] == 4
    assert float(rows["A1"]["median_close_h"]) == pytest.approx(a1["median_close_h"])
    assert float(rows["A1"]["city_median_close_h"]) == pytest.approx(
        table["city"]["median_close_h"]
    )

    geo = client.get("/api/v1/analytics/wards.geojson", params=JAN)
    assert geo.headers["content-disposition"].endswith('wards_2026-01-01_2026-01-31.geojson"')
    document = json.loads(geo.content)
    assert document["period"] == {"from": "2026-01-01", "to": "2026-01-31"}
    west = next(f for f in document["features"] if f["properties"]["code"] == "A1")
    assert shape(west["geometry"]).contains(Point(history.WEST))
    assert west["properties"]["reports"] == 6

    import geopandas as gpd

    pkg = client.get("/api/v1/analytics/wards.gpkg", params=JAN)
    assert pkg.content[:16] == b"SQLite format 3\x00"
    frame = gpd.read_file(io.BytesIO(pkg.content))
    assert dict(zip(frame["code"], frame["reports"], strict=True)) == {"A1": 6, "A2": 4}


def test_who_may_read(client: TestClient, db: Database) -> None:
    url = "/api/v1/analytics/wards"
    anonymous = client.get(url, params=JAN, headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    crew = staff_token(db, "crew", "crew-1")
    for url in ("/api/v1/analytics/wards", "/api/v1/analytics/heat"):
        refused = client.get(url, params=JAN, headers={"Authorization": f"Bearer {crew}"})
        assert refused.status_code == 403, url
    dispatcher = staff_token(db, "dispatcher", "disp-1")
    for path in (
        "/api/v1/analytics/wards",
        "/api/v1/analytics/trends",
        "/api/v1/analytics/wards.csv",
        "/api/v1/analytics/heat",
    ):
        ok = client.get(path, params=JAN, headers={"Authorization": f"Bearer {dispatcher}"})
        assert ok.status_code == 200, path


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"from": "2026-02-01", "to": "2026-01-01"}, "from", "order"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "to", "too_long"),
        ({"category": "nope", **JAN}, "category", "unknown"),
        ({"group": "nope", **JAN}, "group", "unknown"),
        ({"category": "tree", "group": "streets", **JAN}, "group", "mismatch"),
        ({"from": "2026-13-01"}, "from", None),
    ],
)
def test_bad_parameters_are_refused(
    client: TestClient, params: dict[str, str], field: str, code: str | None
) -> None:
    for path in (
        "/api/v1/analytics/wards",
        "/api/v1/analytics/trends",
        "/api/v1/analytics/hotspots",
        "/api/v1/analytics/heat",
    ):
        answer = client.get(path, params=params)
        assert answer.status_code == 422, (path, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        errors = answer.json()["errors"]
        assert any(e["field"] == field for e in errors), errors
        if code is not None:
            assert any(e["code"] == code for e in errors)


def test_too_many_hexagons_is_refused(client: TestClient) -> None:
    answer = client.get("/api/v1/analytics/hotspots", params={"size_m": "10", **JAN})
    assert answer.status_code == 422  # below the 50 m floor
    bad_format = client.get("/api/v1/analytics/wards.xlsx", params=JAN)
    assert bad_format.status_code == 422


def test_a_period_before_any_ward_map(client: TestClient) -> None:
    period = {"from": "1990-01-01", "to": "1990-12-31"}
    table = get(client, "/api/v1/analytics/wards", **period)
    assert (table["maps"], table["wards"], table["city"]["reports"]) == ([], [], 0)
    hot = get(client, "/api/v1/analytics/hotspots", **period)
    assert hot["clusters"]["features"] == hot["cells"]["features"] == []
    assert len(get(client, "/api/v1/analytics/trends", **period)["weeks"]) == 53


def test_the_ward_table_per_hexagon(client: TestClient, db: Database, city: history.City) -> None:
    june = {"from": "2025-06-01", "to": "2025-06-30"}
    body = get(client, "/api/v1/analytics/wards", **june, grid="hex")
    assert (body["grid"], body["cell_m"]) == ("hex", 100)
    per_ward = get(client, "/api/v1/analytics/wards", **june)
    assert body["city"] == per_ward["city"]  # the city's figures do not depend on the rows
    rows = body["wards"]
    assert sum(r["reports"] for r in rows) == 22
    # the same cells, with the same counts, as the hotspot layer's ST_HexagonGrid cells
    hot = get(client, "/api/v1/analytics/hotspots", **june)["cells"]["features"]
    cells = {f"{c['properties']['i']},{c['properties']['j']}": c for c in hot}
    assert {r["code"]: r["reports"] for r in rows} == {
        k: c["properties"]["reports"] for k, c in cells.items() if c["properties"]["reports"]
    }
    # each lattice report counted in the cell whose polygon holds it
    held = {
        code
        for code, c in cells.items()
        for p in history.HOT_POINTS
        if shape(c["geometry"]).intersects(Point(p))
    }
    assert sum(r["reports"] for r in rows if r["code"] in held) == 12
    assert all(r["population"] is None and r["rate_per_1000"] is None for r in rows)
    # the GeoJSON export draws the same hexagons
    geo = client.get("/api/v1/analytics/wards.geojson", params={**june, "grid": "hex"})
    assert geo.status_code == 200, geo.text
    assert "hex-100m" in geo.headers["content-disposition"]
    for feature in geo.json()["features"]:
        code = feature["properties"]["code"]
        assert shape(feature["geometry"]).equals_exact(shape(cells[code]["geometry"]), 1e-6)
    # a grid finer than the cap allows over the city is refused, naming size_m
    period = queries.resolve_period(
        first_day=date(2025, 6, 1), last_day=date(2025, 6, 30), timezone="UTC", max_days=731
    )
    with db.session() as s:
        grid = hotspots.hex_grid(
            s, jurisdiction_id=city.jid, period=period, size_m=100, max_cells=400
        )
        assert grid.size_m == 100
        with pytest.raises(ValidationFailed) as refused:
            hotspots.hex_grid(s, jurisdiction_id=city.jid, period=period, size_m=50, max_cells=200)
    assert refused.value.errors[0].field == "size_m"
    for params in ({"grid": "squares"}, {"grid": "hex", "size_m": "10"}):
        bad = client.get("/api/v1/analytics/wards", params={**june, **params})
        assert bad.status_code == 422, bad.text
        assert bad.headers["content-type"].startswith("application/problem+json")
