"""``geo311 import reports`` on a small generated CSV in the demo city, run as an admin runs it."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from geo311.cli import app as geo311_app
from geo311.kernel.database import Database
from geo311.kernel.settings import get_settings
from tests.geo311.dedup_support import execute, offset, one, quiet_point, rows, submit

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
HEADER = ["case_id", "opened", "type", "latitude", "longitude", "street", "state", "closed_dt"]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, demo_db: Database) -> Iterator[typer.Typer]:
    monkeypatch.setenv("GEO311_DB__URL", demo_db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("GEO311_JURISDICTION", "demo")
    get_settings.cache_clear()
    yield geo311_app
    get_settings.cache_clear()


def _run(cli: typer.Typer, *args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "160"})
    return result.exit_code, result.output


def _ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")  # naive: the mapping's time zone (UTC) applies


@pytest.fixture
def files(demo_db: Database, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A city export (rows deliberately out of time order), a mapping and a category map."""
    p1 = quiet_point(demo_db, nth=0)
    p2 = quiet_point(demo_db, nth=1)
    light = rows(
        demo_db,
        "SELECT ST_X(geom), ST_Y(geom) FROM assets WHERE asset_type = 'streetlight' "
        "AND NOT EXISTS (SELECT 1 FROM incidents i "
        "WHERE i.jurisdiction_id = assets.jurisdiction_id AND i.asset_id = assets.id) "
        "ORDER BY id LIMIT 1",
    )[0]
    h = timedelta(hours=1)
    data = [
        # id, time, type, lat, lon, address, status, closed
        ("P3", T0 + 5 * h, "Pothole", *offset(*p1, 9.0)[::-1], "12 Elm St", "Open", ""),
        ("P1", T0, "Pothole", *p1[::-1], "12 Elm Street", "Closed", _ts(T0 + 30 * h)),
        ("P2", T0 + 2 * h, "Pothole", *offset(*p1, 4.0)[::-1], "", "Closed", ""),
        ("P4", T0 + 48 * h, "Pothole", *offset(*p1, 3.0, 180.0)[::-1], "", "Open", ""),
        ("Q1", T0 + 1 * h, "Pothole", *p2[::-1], "", "Open", ""),
        ("L1", T0 + 3 * h, "Street Light Out", light[1] + 0.00007, light[0], "", "Open", ""),
        ("L2", T0 + 4 * h, "Street Light Out", light[1] - 0.00007, light[0], "", "Open", ""),
        ("N1", T0, "Noise", *p2[::-1], "", "Open", ""),
        ("X1", T0, "Hot Air Balloon", *p2[::-1], "", "Open", ""),
        ("X2", T0, "Pothole", "", "", "", "Open", ""),
        ("X3", T0, "Pothole", 51.5, -0.12, "", "Open", ""),
        ("X4", "yesterday", "Pothole", *p2[::-1], "", "Open", ""),
    ]
    export = tmp_path / "export.csv"
    with export.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for row in data:
            out.writerow([_ts(v) if isinstance(v, datetime) else v for v in row])
    mapping = tmp_path / "mapping.json"
    mapping.write_text(
        json.dumps(
            {
                "columns": {
                    "id": "case_id",
                    "time": "opened",
                    "category": "type",
                    "lat": "latitude",
                    "lon": "longitude",
                    "address": "street",
                    "status": "state",
                    "closed": "closed_dt",
                },
                "timezone": "UTC",
            }
        )
    )
    category_map = tmp_path / "types.csv"
    category_map.write_text(
        "source,code\nPothole,pothole\nStreet Light Out,streetlight_out\nNoise,\n"
    )
    return export, mapping, category_map


_KEYS = (
    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE contype = 'f' AND conrelid IN ('incidents'::regclass, 'reports'::regclass) "
    "ORDER BY 1, 2"
)


# A bulk load (foreign keys dropped for the load and checked once at the end) decides and
# stores exactly what a row-by-row load does.
@pytest.mark.parametrize("bulk", ["--no-bulk", "--bulk"])
def test_import_places_dedups_in_time_order_and_reports_every_row(
    cli: typer.Typer,
    demo_db: Database,
    files: tuple[Path, Path, Path],
    tmp_path: Path,
    bulk: str,
) -> None:
    export, mapping, category_map = files
    before = one(demo_db, "SELECT count(*) FROM reports")
    keys = rows(demo_db, _KEYS)
    # A small radius for streetlights: only the shared asset ties L1 and L2 together.
    execute(
        demo_db, "UPDATE service_categories SET dedup_radius_m = 5 WHERE code = 'streetlight_out'"
    )
    out = tmp_path / "out.csv"
    code, output = _run(
        cli,
        "import",
        "reports",
        export,
        "--mapping",
        mapping,
        "--category-map",
        category_map,
        "--report",
        out,
        bulk,
    )
    assert code == 0, output
    assert "imported" in output
    # On Citus the keys are checked on the shards: every load is written row by row.
    on_citus = one(demo_db, "SELECT count(*) > 0 FROM pg_extension WHERE extname = 'citus'")
    assert ("(bulk load)" in output) == (bulk == "--bulk" and not on_citus)
    assert rows(demo_db, _KEYS) == keys  # every foreign key is back, as it was

    with out.open(newline="") as f:
        lines = list(csv.DictReader(f))
    assert [line["id"] for line in lines] == [
        "P3", "P1", "P2", "P4", "Q1", "L1", "L2", "N1", "X1", "X2", "X3", "X4"
    ]  # fmt: skip
    by_id = {line["id"]: line for line in lines}

    # P1 came first in time: it opened the incident, P2 and P3 joined it, matched to the
    # nearest row of it; P4 came after the incident closed (30 h) and reopened it.
    assert by_id["P1"]["decision"] == "new"
    assert by_id["P1"]["matched_id"] == ""
    assert by_id["P2"]["decision"] == "matched"
    assert by_id["P2"]["matched_id"] == "P1"
    assert by_id["P3"]["decision"] == "matched"
    assert by_id["P3"]["matched_id"] == "P2"  # 5 m from P2, 9 m from P1
    assert "same_address" in by_id["P3"]["signals"]
    assert by_id["P4"]["decision"] == "reopened"
    assert len({by_id[k]["incident_id"] for k in ("P1", "P2", "P3", "P4")}) == 1
    assert by_id["Q1"]["decision"] == "new"
    assert by_id["Q1"]["incident_id"] != by_id["P1"]["incident_id"]
    assert by_id["L2"]["incident_id"] == by_id["L1"]["incident_id"]
    assert "same_asset" in by_id["L2"]["signals"]

    assert by_id["N1"]["skipped"] == "category 'Noise' not imported"
    assert by_id["X1"]["skipped"] == "category 'Hot Air Balloon' not in the mapping"
    assert by_id["X2"]["skipped"] == "no valid location"
    assert by_id["X3"]["skipped"] == "outside the jurisdiction"
    assert by_id["X4"]["skipped"] == "no valid time"
    assert all(by_id[k]["incident_id"] == "" for k in ("N1", "X1", "X2", "X3", "X4"))

    # In the database: 7 reports in 3 incidents; the reopened one is open again.
    assert one(demo_db, "SELECT count(*) FROM reports") == before + 7
    incident = int(by_id["P1"]["incident_id"])
    status, closed_at = rows(
        demo_db, "SELECT status, closed_at FROM incidents WHERE id = :i", i=incident
    )[0]
    assert (status, closed_at) == ("reopened", None)
    stored = rows(
        demo_db,
        "SELECT r.external_id, r.channel, r.dedup_decision, m.external_id AS matched, "
        "w.code AS ward FROM reports r LEFT JOIN reports m "
        "ON m.jurisdiction_id = r.jurisdiction_id AND m.id = r.matched_report_id "
        "LEFT JOIN wards w ON w.jurisdiction_id = r.jurisdiction_id AND w.id = r.ward_id "
        "WHERE r.incident_id = :i ORDER BY r.reported_at",
        i=incident,
    )
    assert [(r.external_id, r.dedup_decision, r.matched) for r in stored] == [
        ("P1", "new", None),
        ("P2", "matched", "P1"),
        ("P3", "matched", "P2"),
        ("P4", "reopened", "P1"),
    ]
    assert {r.channel for r in stored} == {"import"}
    assert all(r.ward is not None for r in stored)


def test_a_missing_column_stops_the_import_and_stores_nothing(
    cli: typer.Typer, demo_db: Database, files: tuple[Path, Path, Path]
) -> None:
    export, _, category_map = files
    before = one(demo_db, "SELECT count(*) FROM reports")
    code, output = _run(
        cli, "import", "reports", export, "--category-map", category_map, "--time-col", "when"
    )
    assert code == 2
    assert "'when'" in output
    assert "not in the file" in output
    assert one(demo_db, "SELECT count(*) FROM reports") == before


def test_an_imported_row_joins_an_incident_already_stored(
    cli: typer.Typer, demo_db: Database, tmp_path: Path
) -> None:
    lon, lat = quiet_point(demo_db, nth=2)
    stored = submit(demo_db, tmp_path, category="pothole", lon=lon, lat=lat, now=T0)
    export = tmp_path / "later.csv"
    near = offset(lon, lat, 6.0)
    export.write_text(
        "id,time,category,lat,lon\n"
        f"Z1,{(T0 + timedelta(hours=3)).isoformat()},pothole,{near[1]},{near[0]}\n"
    )
    out = tmp_path / "out.csv"
    code, output = _run(cli, "import", "reports", export, "--report", out)
    assert code == 0, output
    with out.open(newline="") as f:
        (line,) = list(csv.DictReader(f))
    assert line["decision"] == "matched"
    assert line["incident_id"] == str(stored.incident_id)
    assert line["matched_id"] == stored.tracking_id  # a report without an external id
    assert (
        one(demo_db, "SELECT count(*) FROM reports WHERE incident_id = :i", i=stored.incident_id)
        == 2
    )


def test_the_reopen_window_counts_real_hours_across_a_dst_change(
    cli: typer.Typer, demo_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server whose sessions run in a time zone with DST (as many do): the importer's own
    # reading of times must not make the night clocks go back an hour shorter.
    monkeypatch.setenv("PGTZ", "America/New_York")
    execute(
        demo_db,
        "UPDATE service_categories SET dedup_reopen_window_h = 24 WHERE code = 'pothole'",
    )
    lon, lat = quiet_point(demo_db, nth=3)
    near = offset(lon, lat, 3.0)
    # Closed at 08:00 EDT on 31 October 2026; the second report came at 07:30 EST the next
    # day, after the clocks went back: 23.5 hours on the wall clock, 24.5 real hours later.
    closed = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)
    later = closed + timedelta(hours=24.5)
    export = tmp_path / "dst.csv"
    export.write_text(
        "id,time,category,lat,lon,closed_at\n"
        f"D1,{(closed - timedelta(hours=2)).isoformat()},pothole,{lat},{lon},"
        f"{closed.isoformat()}\n"
        f"D2,{later.isoformat()},pothole,{near[1]},{near[0]},\n"
    )
    out = tmp_path / "out.csv"
    code, output = _run(cli, "import", "reports", export, "--report", out)
    assert code == 0, output
    with out.open(newline="") as f:
        decisions = {line["id"]: line["decision"] for line in csv.DictReader(f)}
    # Past the 24-hour reopen window in real time, as intake would judge it: a new incident.
    assert decisions == {"D1": "new", "D2": "new"}
    incidents = "SELECT count(DISTINCT incident_id) FROM reports WHERE external_id IN ('D1', 'D2')"
    assert one(demo_db, incidents) == 2
