"""A move's what-if preview: solved like the move, stored never; the SLA breaches it would
cause or avoid are judged from the predicted arrival."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from dispatch.dayplans.commands import judge_breaches
from geo311.kernel import live
from geo311.kernel.database import Database
from geo311.kernel.settings import RoutingSettings, Settings
from tests.support import pooled_app, staff_token

DAY_S = "2026-06-01"
CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    routing = RoutingSettings(time_limit_s=2.0, replan_time_limit_s=0.5)
    settings = Settings(data_dir=tmp_path, jurisdiction="demo", routing=routing)
    with TestClient(pooled_app(settings, db=demo_db)) as c:
        yield c


def _auth(db: Database, role: str = "dispatcher") -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token(db, role)}"}


def _second_streets_crew(client: TestClient, db: Database) -> None:
    body = {
        "code": "streets-2",
        "name": "Second streets crew",
        "depot": {"lon": -93.2, "lat": 44.96, "name": "East Yard"},
        "shift_start": "07:00",
        "shift_end": "15:30",
        "workdays": [1, 2, 3, 4, 5],
        "skills": ["paving"],
        "territory": ["1", "2", "3", "4", "5", "6"],
    }
    r = client.post("/api/v1/crews", json=body, headers=_auth(db, "admin"))
    assert r.status_code == 201, r.text


def _route(routes: list[dict[str, Any]], crew: str) -> dict[str, Any]:
    return next(r for r in routes if r["crew"] == crew)


def _ids(route: dict[str, Any]) -> list[int]:
    return [s["work_order_id"] for s in route["stops"]]


@contextmanager
def _listening(db: Database) -> Iterator[Callable[[float], list[str]]]:
    """LISTEN on the live channel; yield a function returning what was heard within s."""
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"LISTEN {live.CHANNEL}")

        def heard(timeout_s: float) -> list[str]:
            return [n.payload for n in conn.notifies(timeout=timeout_s, stop_after=50)]

        yield heard


def _stored(db: Database) -> tuple[int, int, int]:
    with db.session() as s:
        return (
            s.execute(text("SELECT count(*) FROM audit_events")).scalar_one(),
            s.execute(text("SELECT count(*) FROM work_order_terms")).scalar_one(),
            s.execute(text("SELECT max(version) FROM day_plans")).scalar_one(),
        )


def test_a_preview_shows_the_new_routes_and_etas_and_stores_nothing_then_the_move_agrees(
    client: TestClient, demo_db: Database
) -> None:
    _second_streets_crew(client, demo_db)
    plan = client.post(f"/api/v1/plans?date={DAY_S}", headers=_auth(demo_db)).json()
    moved = _ids(_route(plan["routes"], "streets"))[:2]
    before_stored = _stored(demo_db)
    body = {"plan_version": plan["version"], "work_order_ids": moved, "to_crew": "streets-2"}

    with _listening(demo_db) as heard:
        r = client.post(f"/api/v1/plans/{DAY_S}/moves/preview", json=body, headers=_auth(demo_db))
        assert r.status_code == 200, r.text
        # No open page is told of a move that never happened.
        assert heard(1.0) == []
    preview = r.json()
    assert preview["version"] == plan["version"]
    # Only the crews the move touches, before and after; the moved jobs change routes.
    assert {r["crew"] for r in preview["after"]} == {"streets", "streets-2"}
    assert {r["crew"] for r in preview["before"]} == {"streets", "streets-2"}
    after_new = _route(preview["after"], "streets-2")
    assert set(moved) <= set(_ids(after_new))
    assert not set(moved) & set(_ids(_route(preview["after"], "streets")))
    assert all(s["eta"] for s in after_new["stops"])
    was = _route(plan["routes"], "streets")["stops"]
    assert _route(preview["before"], "streets")["stops"] == was
    # Nothing was stored: no audit line, no pin, the same version, the same plan.
    assert _stored(demo_db) == before_stored
    now = client.get(f"/api/v1/plans/{DAY_S}", headers=_auth(demo_db)).json()
    assert now["routes"] == plan["routes"]

    # The commit that follows, with the same version, lands where the preview said (and is
    # announced: the listener above would have heard a preview's events).
    with _listening(demo_db) as heard:
        r = client.post(f"/api/v1/plans/{DAY_S}/moves", json=body, headers=_auth(demo_db))
        assert r.status_code == 200, r.text
        assert any('"plan"' in n for n in heard(5.0))
    committed = _route(r.json()["routes"], "streets-2")
    assert set(moved) <= set(_ids(committed))
    assert r.json()["version"] == plan["version"] + 1


def test_a_preview_on_a_stale_view_or_to_a_crew_without_the_skill_is_refused(
    client: TestClient, demo_db: Database
) -> None:
    plan = client.post(f"/api/v1/plans?date={DAY_S}", headers=_auth(demo_db)).json()
    job = _ids(_route(plan["routes"], "streets"))[0]
    url = f"/api/v1/plans/{DAY_S}/moves/preview"
    stale = {"plan_version": plan["version"] - 1, "work_order_ids": [job], "to_crew": "streets"}
    r = client.post(url, json=stale, headers=_auth(demo_db))
    assert r.status_code == 409
    assert r.json()["code"] == "stale_plan"
    assert r.json()["current_version"] == plan["version"]
    wrong = {"plan_version": plan["version"], "work_order_ids": [job], "to_crew": "lighting"}
    r = client.post(url, json=wrong, headers=_auth(demo_db))
    assert r.status_code == 422
    assert r.json()["code"] == "crew_not_eligible"
    ok = {"plan_version": plan["version"], "work_order_ids": [job], "to_crew": None}
    assert client.post(url, json=ok, headers=_auth(demo_db, "planner")).status_code == 403


def test_breaches_caused_and_avoided_are_judged_from_the_predicted_arrival() -> None:
    """Judged from arrival: a job due at 14:00 reached at 15:10 is late; one sent off the day
    while due today is late; one now reached before its due time is a breach avoided."""
    day_end = datetime(2026, 6, 2, tzinfo=CHICAGO)

    def at(h: int, m: int = 0) -> datetime:
        return datetime(2026, 6, 1, h, m, tzinfo=CHICAGO)

    due = {1: at(14), 2: at(16), 3: at(12), 4: day_end + timedelta(days=3), 5: at(11)}
    before = {1: at(13), 2: at(15), 3: None, 4: at(9), 5: at(10)}
    after = {1: at(15, 10), 2: None, 3: at(11), 4: None, 5: at(10, 30)}
    caused, avoided = judge_breaches(before=before, after=after, due=due, day_end=day_end)
    assert [(x.work_order_id, x.eta_after) for x in caused] == [(1, at(15, 10)), (2, None)]
    assert [(x.work_order_id, x.eta_before) for x in avoided] == [(3, None)]
    # Job 4 leaves the day but is not due for days; job 5 stays in time: neither is listed.
