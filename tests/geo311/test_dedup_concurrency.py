"""Twenty reports of one problem at the same instant, from twenty connections: one incident."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from geo311.kernel.database import Database
from geo311.resident.intake.models import Report
from tests.geo311.dedup_support import execute, offset, quiet_point, rows, submit

NOW = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
N = 20


def _in_parallel(
    db: Database, tmp_path: Path, points: list[tuple[float, float]], category: str
) -> list[Report]:
    """Submit one report per point, all threads released at once, each on its own connection."""
    barrier = threading.Barrier(len(points))

    def one(point: tuple[float, float]) -> Report:
        barrier.wait(timeout=30)
        return submit(db, tmp_path, category=category, lon=point[0], lat=point[1], now=NOW)

    with ThreadPoolExecutor(max_workers=len(points)) as pool:
        return list(pool.map(one, points))


def test_twenty_simultaneous_reports_of_one_pothole_make_one_incident(
    demo_db: Database, tmp_path: Path
) -> None:
    lon, lat = quiet_point(demo_db)
    # Scattered up to 8 m around the pothole (the radius is 25 m), in every direction.
    points = [offset(lon, lat, 1.0 + (i % 8), azimuth=i * 360.0 / N) for i in range(N)]
    reports = _in_parallel(demo_db, tmp_path, points, "pothole")

    incidents = Counter(r.incident_id for r in reports)
    assert len(incidents) == 1, incidents
    assert Counter(r.dedup_decision for r in reports) == {"new": 1, "matched": N - 1}
    (incident_id,) = incidents
    assert (
        rows(demo_db, "SELECT count(*) FROM reports WHERE incident_id = :i", i=incident_id)[0][0]
        == N
    )
    assert (
        rows(
            demo_db,
            "SELECT count(*) FROM incidents WHERE ST_DWithin(geom::geography, "
            "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, 50)",
            lon=lon,
            lat=lat,
        )[0][0]
        == 1
    )


def test_simultaneous_reports_of_one_streetlight_from_either_side_make_one_incident(
    demo_db: Database, tmp_path: Path
) -> None:
    # A tiny radius: only the shared asset (and its lock) ties these reports together.
    execute(
        demo_db, "UPDATE service_categories SET dedup_radius_m = 2 WHERE code = 'streetlight_out'"
    )
    light_id, lon, lat = rows(
        demo_db,
        "SELECT a.id, ST_X(a.geom), ST_Y(a.geom) FROM assets a WHERE a.asset_type = "
        "'streetlight' AND NOT EXISTS (SELECT 1 FROM incidents i "
        "WHERE i.jurisdiction_id = a.jurisdiction_id AND i.asset_id = a.id) "
        "ORDER BY a.id DESC LIMIT 1",
    )[0]
    points = [offset(lon, lat, 6.0, azimuth=0.0 if i % 2 else 180.0) for i in range(10)]
    reports = _in_parallel(demo_db, tmp_path, points, "streetlight_out")
    assert {r.asset_id for r in reports} == {light_id}
    assert len({r.incident_id for r in reports}) == 1
