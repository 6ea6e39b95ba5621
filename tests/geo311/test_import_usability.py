"""``geo311 import reports`` as a new user meets it: day-only dates, repeated rows, rows just
outside the ward map, columns picked up by their default names, and the ward in the report."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from geo311.cli import app as geo311_app
from geo311.kernel.database import Database
from geo311.kernel.settings import get_settings
from tests.geo311.dedup_support import offset, one, quiet_point, rows


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, demo_db: Database) -> Iterator[typer.Typer]:
    monkeypatch.setenv("GEO311_DB__URL", demo_db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("GEO311_JURISDICTION", "demo")
    get_settings.cache_clear()
    yield geo311_app
    get_settings.cache_clear()


def _run(cli: typer.Typer, *args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def _write(path: Path, header: list[str], data: Sequence[Sequence[object]]) -> Path:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows(data)
    return path


def _report(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {line["id"]: line for line in csv.DictReader(f)}


def _row_of(output: str, label: str) -> str:
    """Return the summary line that starts with ``label`` (the table's cell borders removed)."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if cells and cells[0].startswith(label):
            return " ".join(cells)
    raise AssertionError(f"no line {label!r} in:\n{output}")


HEADER = ["id", "time", "category", "lat", "lon"]


def test_tie_break_col_orders_rows_of_the_same_day(
    cli: typer.Typer, demo_db: Database, tmp_path: Path
) -> None:
    lon, lat = quiet_point(demo_db, nth=0)
    near = offset(lon, lat, 5.0)
    # Request 10 is listed before request 9, both on the same day (no time of day).
    data = [
        ("10", "2026-03-02", "pothole", near[1], near[0]),
        ("9", "2026-03-02", "pothole", lat, lon),
    ]
    first = _write(tmp_path / "a.csv", HEADER, data)
    out = tmp_path / "a_out.csv"
    code, output = _run(
        cli, "import", "reports", first, "--time-format", "%Y-%m-%d", "--report", out
    )
    assert code == 0, output
    # Without a tie-break the file's order stands: 10 opened the incident.
    assert _report(out)["9"]["matched_id"] == "10"

    # The same two requests elsewhere, with their request numbers as the tie-break.
    lon, lat = quiet_point(demo_db, nth=1)
    near = offset(lon, lat, 5.0)
    again = _write(
        tmp_path / "b.csv",
        [*HEADER, "request_no"],
        [
            ("B10", "2026-03-02", "pothole", near[1], near[0], "10"),
            ("B9", "2026-03-02", "pothole", lat, lon, "9"),
        ],
    )
    out = tmp_path / "b_out.csv"
    code, output = _run(
        cli,
        "import",
        "reports",
        again,
        "--time-format",
        "%Y-%m-%d",
        "--tie-break-col",
        "request_no",
        "--report",
        out,
    )
    assert code == 0, output
    # Ordered by the request number, as numbers (9 before 10, where text would put 10 first).
    lines = _report(out)
    assert lines["B9"]["decision"] == "new"
    assert lines["B10"]["matched_id"] == "B9"
    assert lines["B9"]["matched_id"] == ""
    assert "request_no" in _row_of(output, "request_no")


def test_a_repeated_id_is_skipped_and_counted_and_a_rerun_stores_nothing(
    cli: typer.Typer, demo_db: Database, tmp_path: Path
) -> None:
    lon, lat = quiet_point(demo_db, nth=2)
    far = quiet_point(demo_db, nth=3)
    data = [
        ("R1", "2026-03-02T08:00:00+00:00", "pothole", lat, lon),
        ("R2", "2026-03-02T09:00:00+00:00", "pothole", far[1], far[0]),
        ("R1", "2026-03-02T08:00:00+00:00", "pothole", lat, lon),  # the export repeats R1
    ]
    export = _write(tmp_path / "export.csv", HEADER, data)
    before = one(demo_db, "SELECT count(*) FROM reports")
    out = tmp_path / "out.csv"
    code, output = _run(cli, "import", "reports", export, "--report", out)
    assert code == 0, output
    assert one(demo_db, "SELECT count(*) FROM reports") == before + 2
    assert one(demo_db, "SELECT count(*) FROM reports WHERE external_id = 'R1'") == 1
    assert _row_of(output, "skipped: repeated id").endswith(" 1")
    assert _row_of(output, "imported").endswith(" 2")
    with out.open(newline="") as f:
        skipped = [line["skipped"] for line in csv.DictReader(f)]
    assert skipped == ["", "", "repeated id (an earlier row of the file has it)"]

    # The same file again: every row was imported before, nothing is stored twice.
    code, output = _run(cli, "import", "reports", export)
    assert code == 0, output
    assert one(demo_db, "SELECT count(*) FROM reports") == before + 2
    assert _row_of(output, "skipped: id already stored").endswith(" 2")
    assert _row_of(output, "skipped: repeated id").endswith(" 1")


def _outside_points(db: Database) -> tuple[tuple[float, float], tuple[float, float], str]:
    """Return a point 10 m east of the ward map's easternmost corner, one 5 km east of it, and
    the code of the ward that corner belongs to."""
    ((x, y),) = rows(
        db,
        "SELECT ST_X(d.geom), ST_Y(d.geom) FROM ST_DumpPoints((SELECT ST_Union(geom) FROM wards)) "
        "AS d ORDER BY ST_X(d.geom) DESC LIMIT 1",
    )
    ward = one(
        db,
        "SELECT code FROM wards ORDER BY geom <-> ST_SetSRID(ST_MakePoint(:x, :y), 4326), code "
        "LIMIT 1",
        x=x,
        y=y,
    )
    return offset(x, y, 10.0), offset(x, y, 5000.0), str(ward)


@pytest.mark.parametrize("rule", ["skip", "nearest-ward", "keep"])
def test_rows_just_outside_the_ward_map_follow_the_outside_rule(
    cli: typer.Typer, demo_db: Database, tmp_path: Path, rule: str
) -> None:
    near, far, ward = _outside_points(demo_db)
    inside = quiet_point(demo_db, nth=4)
    inside_ward = one(
        demo_db,
        "SELECT code FROM wards WHERE ST_Covers(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326))",
        x=inside[0],
        y=inside[1],
    )
    data = [
        ("IN", "2026-03-02T08:00:00+00:00", "pothole", inside[1], inside[0]),
        ("NEAR", "2026-03-02T08:00:00+00:00", "pothole", near[1], near[0]),
        ("FAR", "2026-03-02T08:00:00+00:00", "pothole", far[1], far[0]),
    ]
    export = _write(tmp_path / "export.csv", HEADER, data)
    out = tmp_path / "out.csv"
    code, output = _run(cli, "import", "reports", export, "--outside", rule, "--report", out)
    assert code == 0, output
    lines = _report(out)
    # The report names each stored row's ward.
    assert lines["IN"]["ward"] == inside_ward
    # 5 km out is never a city's report, whatever the rule.
    assert lines["FAR"]["skipped"] == "outside the jurisdiction"
    stored = rows(
        demo_db,
        "SELECT r.external_id, w.code FROM reports r LEFT JOIN wards w "
        "ON w.jurisdiction_id = r.jurisdiction_id AND w.id = r.ward_id "
        "WHERE r.channel = 'import' ORDER BY r.external_id",
    )
    if rule == "skip":
        assert lines["NEAR"]["skipped"] == "outside the jurisdiction"
        assert [tuple(r) for r in stored] == [("IN", inside_ward)]
        assert _row_of(output, "skipped: outside the jurisdiction").endswith(" 2")
    elif rule == "nearest-ward":
        assert lines["NEAR"]["ward"] == ward
        assert [tuple(r) for r in stored] == [("IN", inside_ward), ("NEAR", ward)]
        assert _row_of(output, "outside the ward map: put in the nearest ward").endswith(" 1")
    else:
        assert lines["NEAR"]["skipped"] == ""
        assert lines["NEAR"]["ward"] == ""
        assert [tuple(r) for r in stored] == [("IN", inside_ward), ("NEAR", None)]
        assert _row_of(output, "outside the ward map: kept without a ward").endswith(" 1")


def test_an_unknown_outside_rule_is_refused(cli: typer.Typer, tmp_path: Path) -> None:
    export = _write(tmp_path / "export.csv", HEADER, [])
    code, output = _run(cli, "import", "reports", export, "--outside", "nearby")
    assert code == 2
    assert "nearest-ward" in output


def test_the_summary_lists_every_column_and_what_it_was_used_for(
    cli: typer.Typer, demo_db: Database, tmp_path: Path
) -> None:
    lon, lat = quiet_point(demo_db, nth=5)
    export = _write(
        tmp_path / "export.csv",
        ["id", "time", "category", "lat", "lon", "status", "notes"],
        [("S1", "2026-03-02T08:00:00+00:00", "pothole", lat, lon, "Closed", "x")],
    )
    code, output = _run(cli, "import", "reports", export)
    assert code == 0, output
    # A column named "status" is read as the status: the summary says so, and says it was
    # picked up by its name rather than asked for.
    assert "status (closed statuses close the report) (found by its default name)" in _row_of(
        output, "status"
    )
    assert "the latitude" in _row_of(output, "lat")
    assert "not used" in _row_of(output, "notes")
    assert one(demo_db, "SELECT status FROM incidents i JOIN reports r ON r.incident_id = i.id "
               "WHERE r.external_id = 'S1'") == "closed"  # fmt: skip


def test_a_closed_incident_can_be_reopened_for_its_reopen_window_and_not_after(
    cli: typer.Typer, demo_db: Database, tmp_path: Path
) -> None:
    a = quiet_point(demo_db, nth=6)
    b = quiet_point(demo_db, nth=7)
    near_a, near_b = offset(*a, 4.0), offset(*b, 4.0)
    header = [*HEADER, "closed_at"]
    # Both closed an hour after they were reported; the reopen window is 14 days.
    data = [
        ("A1", "2026-01-05T08:00:00+00:00", "pothole", a[1], a[0], "2026-01-05T09:00:00+00:00"),
        ("B1", "2026-01-05T08:00:00+00:00", "pothole", b[1], b[0], "2026-01-05T09:00:00+00:00"),
        ("A2", "2026-01-18T09:00:00+00:00", "pothole", near_a[1], near_a[0], ""),  # 13 days on
        ("B2", "2026-01-20T09:00:00+00:00", "pothole", near_b[1], near_b[0], ""),  # 15 days on
    ]
    export = _write(tmp_path / "export.csv", header, data)
    out = tmp_path / "out.csv"
    code, output = _run(cli, "import", "reports", export, "--report", out)
    assert code == 0, output
    lines = _report(out)
    assert lines["A2"]["decision"] == "reopened"
    assert lines["A2"]["incident_id"] == lines["A1"]["incident_id"]
    assert lines["B2"]["decision"] == "new"
    assert lines["B2"]["incident_id"] != lines["B1"]["incident_id"]
