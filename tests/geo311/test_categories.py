"""A home for categories: ``geo311 categories load FILE``, the admin API, and
``geo311 jurisdictions create``, used as an admin setting up a city would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from geo311.cli import app as geo311_app
from geo311.kernel.database import Database
from geo311.kernel.settings import get_settings
from tests.geo311.dedup_support import one, rows
from tests.support import notify_settings, pooled_app, staff_token
from work_orders import categories as category_service

BULKY_YAML = """\
categories:
  - code: bulky_item
    name: Bulky item pick-up
    group: sanitation
    sla_hours: 96
    calendar: office
    dedup: {radius_m: 20, threshold: 0.8, reopen_window_h: 48}
    service: {service_s: 900, demand: 1, access_start: "07:00", access_end: "15:00"}
    skills: [general]
    attributes:
      - code: items
        datatype: singlevaluelist
        description: What is it?
        order: 1
        required: true
        choices:
          - {key: sofa, name: Sofa}
          - {key: fridge, name: Fridge}
  - code: streetlight_out
    name: Streetlight out
    group: lighting
    asset_type: streetlight
    sla_hours: 48
    skills: [electrical]
"""


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


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(pooled_app(notify_settings(tmp_path, 1), db=demo_db)) as c:
        yield c


def _office(demo_db: Database) -> None:
    with demo_db.session() as s:
        jid = one(demo_db, "SELECT id FROM jurisdictions WHERE slug = 'demo'")
        category_service.put_calendar(
            s,
            jurisdiction_id=jid,
            code="office",
            name="Office",
            timezone="America/New_York",
            hours={"mon": [["08:00", "16:00"]]},
            holidays=[],
        )


def _state(db: Database) -> list[Any]:
    """Everything a category load may write, as rows (to show a refused load wrote nothing)."""
    return [
        rows(db, "SELECT * FROM service_categories ORDER BY code"),
        rows(db, "SELECT * FROM category_service_times ORDER BY category_code"),
        rows(db, "SELECT category_code, asset_type, skill_code FROM skill_rules ORDER BY 1, 2, 3"),
        rows(db, "SELECT * FROM service_attributes ORDER BY category_code, code"),
    ]


def test_categories_load_defines_a_whole_category_and_a_second_load_changes_nothing(
    cli: typer.Typer, demo_db: Database, client: TestClient, tmp_path: Path
) -> None:
    _office(demo_db)
    path = tmp_path / "categories.yaml"
    path.write_text(BULKY_YAML)
    code, output = _run(cli, "categories", "load", path)
    assert code == 0, output
    assert "created (1): bulky_item" in output
    assert "updated (1): streetlight_out" in output  # the demo's, now with a 48 h SLA

    # Each domain got its part: the category, the planner's time on site, the crew skill and
    # the Open311 question a resident's app shows.
    cat = rows(
        demo_db,
        "SELECT group_code, sla_hours, calendar_code, dedup_radius_m, dedup_threshold, "
        "dedup_reopen_window_h, active FROM service_categories WHERE code = 'bulky_item'",
    )
    assert [tuple(r) for r in cat] == [("sanitation", 96.0, "office", 20.0, 0.8, 48.0, True)]
    assert (
        one(
            demo_db,
            "SELECT service_s FROM category_service_times WHERE category_code = 'bulky_item'",
        )
        == 900
    )
    assert (
        one(
            demo_db,
            "SELECT string_agg(skill_code, ',') FROM skill_rules "
            "WHERE category_code = 'bulky_item'",
        )
        == "general"
    )
    definition = client.get("/open311/v2/services/bulky_item.json")
    assert definition.status_code == 200, definition.text
    (question,) = definition.json()["attributes"]
    assert question["code"] == "items"
    assert [v["key"] for v in question["values"]] == ["sofa", "fridge"]
    services = client.get("/api/v1/categories").json()
    assert "bulky_item" in {c["code"] for c in services}

    before = _state(demo_db)
    code, output = _run(cli, "categories", "load", path)
    assert code == 0, output
    assert "unchanged (2): bulky_item, streetlight_out" in output
    assert _state(demo_db) == before

    code, output = _run(cli, "categories", "list")
    assert code == 0, output
    assert "bulky_item" in output
    assert "15 min" in output


def test_a_file_with_problems_stores_nothing_and_names_every_one(
    cli: typer.Typer, demo_db: Database, tmp_path: Path
) -> None:
    before = _state(demo_db)
    path = tmp_path / "categories.json"
    path.write_text(
        json.dumps(
            [
                {"code": "ok_one", "name": "Fine", "group": "streets", "sla_hours": 24},
                {
                    "code": "bad_one",
                    "name": "Bad",
                    "group": "streets",
                    "sla_hours": 24,
                    "asset_type": "bench",
                    "calendar": "nights",
                    "skills": ["juggling"],
                },
            ]
        )
    )
    code, output = _run(cli, "categories", "load", path)
    assert code == 2, output
    assert "nothing stored" in output
    assert "categories.1.asset_type: there is no asset type 'bench'" in output
    assert "categories.1.calendar: there is no business calendar 'nights'" in output
    assert "categories.1.skills: there is no skill 'juggling'" in output
    assert _state(demo_db) == before  # not even the good one

    path.write_text(json.dumps([{"code": "x", "name": "X", "group": "g", "sla_hours": -1}]))
    code, output = _run(cli, "categories", "load", path)
    assert code == 2
    assert "categories.0.sla_hours" in output
    path.write_text("[{not json")
    code, output = _run(cli, "categories", "load", path)
    assert code == 2
    assert "not valid JSON" in output
    assert _state(demo_db) == before


def test_the_admin_reads_and_writes_a_whole_category_through_the_api(
    client: TestClient, demo_db: Database
) -> None:
    admin = {"Authorization": f"Bearer {staff_token(demo_db, 'admin')}"}
    body = {
        "name": "Abandoned bike",
        "group": "cleaning",
        "sla_hours": 120,
        "dedup": {"radius_m": 15},
        "service": {"service_s": 600},
        "skills": ["general"],
        "attributes": [
            {"code": "locked", "datatype": "string", "description": "Locked to what?", "order": 1}
        ],
    }
    created = client.put("/api/v1/admin/categories/bike", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["service"]["service_s"] == 600
    again = client.put("/api/v1/admin/categories/bike", json=body, headers=admin)
    assert again.status_code == 200
    got = client.get("/api/v1/admin/categories/bike", headers=admin).json()
    assert got["dedup"]["radius_m"] == 15
    assert got["skills"] == ["general"]
    assert [a["code"] for a in got["attributes"]] == ["locked"]
    listed = client.get("/api/v1/admin/categories", headers=admin).json()
    assert "bike" in [c["code"] for c in listed]

    # Left out, the other domains' parts stay as they are; the work orders' part changes.
    changed = client.put(
        "/api/v1/admin/categories/bike",
        json={"name": "Abandoned bicycle", "group": "cleaning", "sla_hours": 72},
        headers=admin,
    )
    assert changed.status_code == 200
    assert changed.json()["service"]["service_s"] == 600
    assert changed.json()["sla_hours"] == 72

    before = _state(demo_db)
    refused = client.put(
        "/api/v1/admin/categories/bike",
        json={
            **body,
            "calendar": "nights",
            "attributes": [{"code": "a", "datatype": "odd", "description": "?", "order": 1}],
        },
        headers=admin,
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"] for e in refused.json()["errors"]}
    assert {"calendar", "attributes.0"} <= fields
    assert _state(demo_db) == before
    assert client.get("/api/v1/admin/categories/nothing", headers=admin).status_code == 404


def test_jurisdictions_create_sets_the_time_zone_and_refuses_a_bad_one(
    cli: typer.Typer, demo_db: Database
) -> None:
    code, output = _run(
        cli, "jurisdictions", "create", "bos", "--name", "Boston", "--timezone", "Mars/Olympus"
    )
    assert code == 1
    assert "not an IANA time zone" in output
    assert one(demo_db, "SELECT count(*) FROM jurisdictions WHERE slug = 'bos'") == 0

    code, output = _run(
        cli, "jurisdictions", "create", "bos", "--name", "Boston", "--timezone", "America/New_York"
    )
    assert code == 0, output
    assert one(demo_db, "SELECT timezone FROM jurisdictions WHERE slug = 'bos'") == (
        "America/New_York"
    )
    code, output = _run(
        cli, "jurisdictions", "create", "bos", "--name", "Boston", "--timezone", "UTC"
    )
    assert code == 1
    assert "exists already" in output
    code, output = _run(cli, "jurisdictions", "list")
    assert "America/New_York" in output
    assert "bos" in output
