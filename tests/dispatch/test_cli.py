"""``geo311 roads …`` and ``geo311 crews …`` as an admin runs them, on the demo city."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy import text
from typer.testing import CliRunner

from dispatch.cli import crews_app, plan, roads_app
from geo311.kernel.database import Database
from geo311.kernel.settings import get_settings
from tests.dispatch.test_network import write_osm


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, demo_db: Database) -> Iterator[typer.Typer]:
    monkeypatch.setenv("GEO311_DB__URL", demo_db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("GEO311_JURISDICTION", "demo")
    get_settings.cache_clear()
    root = typer.Typer()
    root.add_typer(roads_app, name="roads")
    root.add_typer(crews_app, name="crews")
    root.command("plan")(plan)
    yield root
    get_settings.cache_clear()


def run(cli: typer.Typer, *args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "160"})
    return result.exit_code, result.output


def _edges(db: Database) -> int:
    with db.session() as s:
        return int(s.execute(text("SELECT count(*) FROM road_edges")).scalar_one())


def test_roads_load_replaces_the_network(
    cli: typer.Typer, demo_db: Database, tmp_path: Path
) -> None:
    code, out = run(cli, "roads", "status")
    assert code == 0, out
    assert "1250 segments" in out
    code, out = run(cli, "roads", "load", write_osm(tmp_path))
    assert code == 0, out
    assert "3 segments" in out
    assert "residential" in out
    assert _edges(demo_db) == 3


def test_roads_load_refuses_a_file_that_is_not_osm(
    cli: typer.Typer, demo_db: Database, tmp_path: Path
) -> None:
    bogus = tmp_path / "roads.osm.pbf"
    bogus.write_bytes(b"this is not a protobuf")
    code, out = run(cli, "roads", "load", bogus)
    assert code == 2
    assert "Cannot read" in out
    assert _edges(demo_db) == 1250  # the loaded network is untouched
    empty = tmp_path / "empty.osm"
    empty.write_text("<?xml version='1.0'?><osm version='0.6'></osm>")
    code, out = run(cli, "roads", "load", empty)
    assert code == 2
    assert "no drivable roads" in out


def test_crews_load_list_remove(cli: typer.Typer, demo_db: Database, tmp_path: Path) -> None:
    crew = {
        "code": "night-lights",
        "name": "Night lighting crew",
        "depot": {"lon": -93.17, "lat": 44.965, "name": "Lighting Shop"},
        "shift_start": "18:00",
        "shift_end": "23:30",
        "skills": ["electrical", "bucket_truck"],
        "territory": ["1", "2", "3"],
    }
    file = tmp_path / "crews.json"
    file.write_text(
        json.dumps(
            {
                "skills": {"bucket_truck": "Bucket truck"},
                "crews": [crew],
                "service_times_s": {
                    "streetlight_out": 2700,
                    "graffiti": {"service_s": 900, "access_start": "09:00", "access_end": "16:00"},
                },
            }
        )
    )
    code, out = run(cli, "crews", "load", file)
    assert code == 0, out
    assert "1 skills, 1 crews" in out
    code, out = run(cli, "crews", "list")
    assert code == 0, out
    assert "night-lights" in out
    assert "18:00-23:30" in out
    # Loading again replaces the crew by code rather than failing.
    crew["territory"] = ["4"]
    file.write_text(json.dumps({"crews": [crew]}))
    code, out = run(cli, "crews", "load", file)
    assert code == 0, out
    with demo_db.session() as s:
        wards = s.execute(
            text(
                "SELECT array_agg(ward_code) FROM crew_territories t JOIN crews c "
                "ON c.id = t.crew_id WHERE c.code = 'night-lights'"
            )
        ).scalar_one()
    assert wards == ["4"]
    with demo_db.session() as s:
        times = s.execute(
            text(
                "SELECT category_code, service_s, access_start::text, access_end::text "
                "FROM category_service_times "
                "WHERE category_code IN ('streetlight_out', 'graffiti') ORDER BY 1"
            )
        ).all()
    assert [tuple(t) for t in times] == [
        ("graffiti", 900, "09:00:00", "16:00:00"),
        ("streetlight_out", 2700, None, None),
    ]
    code, out = run(cli, "crews", "remove", "night-lights")
    assert code == 0, out
    code, out = run(cli, "crews", "remove", "night-lights")
    assert code == 1
    assert "No crew 'night-lights'" in out


def test_a_bad_crew_file_loads_nothing(cli: typer.Typer, demo_db: Database, tmp_path: Path) -> None:
    good = {
        "code": "extra",
        "name": "Extra crew",
        "depot": {"lon": -93.2, "lat": 44.95},
        "shift_start": "07:00",
        "shift_end": "15:00",
        "skills": ["paving"],
    }
    bad = good | {"code": "broken", "skills": ["teleportation"]}
    file = tmp_path / "crews.json"
    file.write_text(json.dumps({"skills": {"new_skill": "New"}, "crews": [good, bad]}))
    code, out = run(cli, "crews", "load", file)
    assert code == 1
    assert "teleportation" in out
    with demo_db.session() as s:
        assert s.execute(text("SELECT count(*) FROM crews")).scalar_one() == 4
        assert s.execute(text("SELECT count(*) FROM skills WHERE code = 'new_skill'")).scalar() == 0
    file.write_text("{not json")
    code, out = run(cli, "crews", "load", file)
    assert code == 2
    assert "not a valid crew file" in out


def test_plan_prints_each_crews_day_and_what_is_left(cli: typer.Typer, demo_db: Database) -> None:
    code, out = run(cli, "plan", "--date", "2026-06-01", "--time-limit", "1")
    assert code == 0, out
    assert "Plan of 2026-06-01 (version 1)" in out
    for crew in ("forestry", "lighting", "streets", "water"):
        assert crew in out
    assert "Left for another day" in out
    with demo_db.session() as s:
        placed = s.execute(text("SELECT count(*) FROM plan_stops")).scalar_one()
        scheduled = s.execute(
            text("SELECT count(*) FROM work_orders WHERE status = 'scheduled'")
        ).scalar_one()
    assert placed > 0
    assert scheduled == placed
    assert f"{placed} stops on 4 routes" in out
    code, out = run(cli, "plan", "--date", "1 June")
    assert code == 2
    assert "YYYY-MM-DD" in out
