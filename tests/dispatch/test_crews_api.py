"""Crews, skills, rules and service times through the HTTP API, on the demo city."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from dispatch import service
from geo311.kernel.auth import service as auth_service
from geo311.kernel.database import Database
from geo311.kernel.settings import Settings
from tests.support import pooled_app

TABLES = ("crews", "crew_skills", "crew_territories", "crew_breaks", "crew_members")


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, jurisdiction="demo")
    with TestClient(pooled_app(settings, db=demo_db)) as c:
        yield c


def _headers(db: Database, role: str) -> dict[str, str]:
    with db.session() as s:
        token = auth_service.create_token(s, name=f"{role}-user", role=role)
    return {"Authorization": f"Bearer {token}"}


def _counts(db: Database) -> dict[str, int]:
    with db.session() as s:
        return {t: s.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def _crew(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": "arbor-2",
        "name": "Second arborist crew",
        "depot": {"lon": -93.23, "lat": 44.96, "name": "Forestry Yard"},
        "shift_start": "06:30",
        "shift_end": "15:00",
        "workdays": [1, 2, 3, 4, 5, 6],
        "skills": ["arborist"],
        "territory": ["1", "2"],
        "breaks": [{"earliest_start": "10:30", "latest_start": "11:30", "duration_s": 1800}],
        "members": [{"name": "J. Okafor", "role": "lead"}, {"name": "M. Lund"}],
    }
    body.update(over)
    return body


def test_the_demo_crews_are_listed_for_staff(client: TestClient, demo_db: Database) -> None:
    assert client.get("/api/v1/crews").status_code == 401
    r = client.get("/api/v1/crews", headers=_headers(demo_db, "dispatcher"))
    assert r.status_code == 200
    crews = {c["code"]: c for c in r.json()}
    assert set(crews) == {"forestry", "lighting", "streets", "water"}
    assert crews["forestry"]["skills"] == ["arborist", "general"]
    assert crews["lighting"]["territory"] == ["1", "2", "3", "4", "5", "6"]
    assert crews["water"]["breaks"][0]["duration_s"] == 1800
    skills = client.get("/api/v1/skills", headers=_headers(demo_db, "crew")).json()
    assert {"code": "electrical", "name": "Electrical"} in skills


def test_an_admin_creates_a_crew_and_the_rules_see_it(
    client: TestClient, demo_db: Database
) -> None:
    admin = _headers(demo_db, "admin")
    r = client.post("/api/v1/crews", json=_crew(), headers=admin)
    assert r.status_code == 201, r.text
    assert r.headers["ETag"] == '"1"'
    assert r.headers["Location"] == "/api/v1/crews/arbor-2"
    got = client.get("/api/v1/crews/arbor-2", headers=admin).json()
    assert got["shift_start"] == "06:30:00"
    assert got["members"][0] == {"name": "J. Okafor", "role": "lead"}
    assert got["staff"] == []  # nobody signs in as the new crew yet
    assert got["depot"]["lon"] == pytest.approx(-93.23)
    # A tree down in ward 1 on a Saturday: only the new crew works Saturdays.
    with demo_db.session() as s:
        jid = s.execute(text("SELECT id FROM jurisdictions WHERE slug = 'demo'")).scalar_one()
        choice = service.choose_crew(
            s,
            jurisdiction_id=jid,
            category_code="tree_down",
            asset_type="tree",
            ward_code="1",
            due_on=date(2026, 6, 6),
        )
    assert choice.crew_code == "arbor-2"


def test_a_dispatcher_cannot_change_crews(client: TestClient, demo_db: Database) -> None:
    before = _counts(demo_db)
    r = client.post("/api/v1/crews", json=_crew(), headers=_headers(demo_db, "dispatcher"))
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert _counts(demo_db) == before


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (_crew(skills=["arborist", "juggling"]), "skills", "juggling"),
        (_crew(territory=["1", "99"]), "territory", "99"),
        (_crew(shift_start="16:00"), None, "shift_end must be after shift_start"),
        (_crew(breaks=[{"earliest_start": "05:00", "latest_start": "05:30", "duration_s": 600}]),
         None, "within the shift"),
        (_crew(depot={"lon": 200, "lat": 44.9}), "depot.lon", None),
        (_crew(code="streets"), None, "exists already"),
    ],
)  # fmt: skip
def test_bad_crews_are_refused_and_nothing_is_stored(
    client: TestClient,
    demo_db: Database,
    body: dict[str, Any],
    field: str | None,
    says: str | None,
) -> None:
    before = _counts(demo_db)
    r = client.post("/api/v1/crews", json=body, headers=_headers(demo_db, "admin"))
    assert r.status_code in (409, 422), r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    if field is not None:
        assert field in {e["field"] for e in problem.get("errors", [])}
    if says is not None:
        assert says in r.text
    assert _counts(demo_db) == before


def test_a_stale_edit_gets_409_and_the_fresh_one_wins(
    client: TestClient, demo_db: Database
) -> None:
    admin = _headers(demo_db, "admin")
    read = client.get("/api/v1/crews/water", headers=admin)
    etag = read.headers["ETag"]
    body = read.json()
    body.update(name="Water & sewer crew", skills=["water", "general"], territory=["5", "6"])
    first = client.put("/api/v1/crews/water", json=body, headers={**admin, "If-Match": etag})
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 2
    # A second admin edits from the same read: refused, not silently applied.
    body2 = read.json() | {"name": "Water crew (night)"}
    second = client.put("/api/v1/crews/water", json=body2, headers={**admin, "If-Match": etag})
    assert second.status_code == 409
    assert second.json()["current_version"] == 2
    now = client.get("/api/v1/crews/water", headers=admin).json()
    assert now["name"] == "Water & sewer crew"
    assert now["skills"] == ["general", "water"]
    assert now["territory"] == ["5", "6"]


def test_delete_a_crew_and_a_skill_in_use(client: TestClient, demo_db: Database) -> None:
    admin = _headers(demo_db, "admin")
    assert client.delete("/api/v1/skills/water", headers=admin).status_code == 409
    assert client.delete("/api/v1/crews/water", headers=admin).status_code == 204
    assert client.get("/api/v1/crews/water", headers=admin).status_code == 404
    # The rule "hydrant_leak needs water" still names the skill.
    assert client.delete("/api/v1/skills/water", headers=admin).status_code == 409
    assert client.put("/api/v1/skills/welding", json={"name": "Welding"}, headers=admin).json() == {
        "code": "welding",
        "name": "Welding",
    }
    assert client.delete("/api/v1/skills/welding", headers=admin).status_code == 204
    r = client.put("/api/v1/skills/" + "x" * 65, json={"name": "Too long"}, headers=admin)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


def test_skill_rules_are_replaced_as_a_whole(client: TestClient, demo_db: Database) -> None:
    admin = _headers(demo_db, "admin")
    rules = client.get("/api/v1/dispatch/skill-rules", headers=admin).json()
    assert {"category_code": "pothole", "asset_type": None, "skill_code": "paving"} in [
        {k: r[k] for k in ("category_code", "asset_type", "skill_code")} for r in rules
    ]
    new = [
        {"category_code": "pothole", "skill_code": "paving"},
        {"asset_type": "streetlight", "skill_code": "electrical"},
        {"category_code": "graffiti", "asset_type": "streetlight", "skill_code": "general"},
    ]
    r = client.put("/api/v1/dispatch/skill-rules", json=new, headers=admin)
    assert r.status_code == 200, r.text
    assert len(r.json()) == 3
    bad = [*new, {"category_code": "unicorns", "skill_code": "paving"}, {"skill_code": "x"}]
    r = client.put("/api/v1/dispatch/skill-rules", json=bad, headers=admin)
    assert r.status_code == 422
    assert len(client.get("/api/v1/dispatch/skill-rules", headers=admin).json()) == 3


def test_service_times_and_the_road_network(client: TestClient, demo_db: Database) -> None:
    admin = _headers(demo_db, "admin")
    times = client.get("/api/v1/dispatch/service-times", headers=admin).json()
    assert {
        "category_code": "tree_down",
        "service_s": 5400,
        "access_start": None,
        "access_end": None,
        "demand": 0,
    } in times
    r = client.put(
        "/api/v1/dispatch/service-times/tree_down", json={"service_s": 7200}, headers=admin
    )
    assert r.status_code == 200
    assert (
        client.put(
            "/api/v1/dispatch/service-times/nope", json={"service_s": 60}, headers=admin
        ).status_code
        == 404
    )
    roads = client.get("/api/v1/dispatch/roads", headers=_headers(demo_db, "planner")).json()
    assert roads["loaded"] is True
    assert roads["matrix_provider"] == "road_network"
    assert roads["edges"] == 1250
