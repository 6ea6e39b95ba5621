"""Day plans through the API on the demo city: what a dispatcher and a crew would see."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from dispatch import rules, service
from dispatch.dayplans import commands, views
from dispatch.errors import StalePlan
from geo311.kernel.database import Database
from geo311.kernel.notify import templates
from geo311.kernel.settings import RoutingSettings, Settings
from tests.support import (
    move_work_order,
    open_incident_with_reporters,
    pooled_app,
    staff_token,
    work_order_of,
)

DAY = date(2026, 6, 1)  # the Monday of the demo city's "now"
DAY_S = DAY.isoformat()
CHICAGO = ZoneInfo("America/Chicago")
OPEN = ("new", "triaged", "assigned", "scheduled", "reopened")


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    routing = RoutingSettings(time_limit_s=2.0, replan_time_limit_s=0.5)
    settings = Settings(data_dir=tmp_path, jurisdiction="demo", routing=routing)
    with TestClient(pooled_app(settings, db=demo_db)) as c:
        yield c


def _auth(db: Database, role: str = "dispatcher") -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token(db, role)}"}


def _plan(client: TestClient, db: Database) -> dict[str, Any]:
    r = client.post(f"/api/v1/plans?date={DAY_S}", headers=_auth(db))
    assert r.status_code == 200, r.text
    return dict(r.json())


def _facts(db: Database) -> dict[int, dict[str, Any]]:
    """Work order id → category, asset type, ward code, status, crew id."""
    with db.session() as s:
        rows = s.execute(
            text(
                """
                SELECT w.id, i.category_code, COALESCE(a.asset_type, c.asset_type) AS asset_type,
                       wd.code AS ward, w.status, w.crew_id, w.due_at
                FROM work_orders w
                JOIN incidents i ON i.jurisdiction_id = w.jurisdiction_id AND i.id = w.incident_id
                JOIN service_categories c
                  ON c.jurisdiction_id = i.jurisdiction_id AND c.code = i.category_code
                LEFT JOIN assets a ON a.jurisdiction_id = i.jurisdiction_id AND a.id = i.asset_id
                LEFT JOIN wards wd ON wd.jurisdiction_id = i.jurisdiction_id AND wd.id = i.ward_id
                """
            )
        ).all()
    return {int(r.id): dict(r._mapping) for r in rows}


def _crews(db: Database) -> dict[str, Any]:
    with db.session() as s:
        jid = s.execute(text("SELECT id FROM jurisdictions WHERE slug = 'demo'")).scalar_one()
        return {c.code: c for c in service.list_crews(s, jurisdiction_id=jid)}


def _rules(db: Database) -> list[rules.SkillRule]:
    with db.session() as s:
        jid = s.execute(text("SELECT id FROM jurisdictions WHERE slug = 'demo'")).scalar_one()
        return service.rule_set(s, jurisdiction_id=jid)


def _stops(plan: dict[str, Any]) -> dict[int, tuple[str, dict[str, Any]]]:
    return {s["work_order_id"]: (r["crew"], s) for r in plan["routes"] for s in r["stops"]}


def test_a_day_plan_gives_every_crew_an_ordered_route_within_its_skills_and_shift(
    client: TestClient, demo_db: Database
) -> None:
    plan = _plan(client, demo_db)
    facts = _facts(demo_db)
    crews = _crews(demo_db)
    rule_set = _rules(demo_db)
    assert plan["version"] == 1
    assert {r["crew"] for r in plan["routes"]} == set(crews)
    placed = _stops(plan)
    assert len(placed) >= 20
    for r in plan["routes"]:
        crew = crews[r["crew"]]
        shift_start = datetime.fromisoformat(r["depart"]).replace(
            hour=crew.shift_start.hour, minute=crew.shift_start.minute
        )
        assert datetime.fromisoformat(r["depart"]) >= shift_start
        assert datetime.fromisoformat(r["back"]).time() <= crew.shift_end
        assert [s["seq"] for s in r["stops"]] == list(range(1, len(r["stops"]) + 1))
        etas = [datetime.fromisoformat(s["eta"]) for s in r["stops"]]
        assert etas == sorted(etas)
        assert r["line"]["type"] == "LineString"
        assert len(r["line"]["coordinates"]) >= 2
        for s in r["stops"]:
            f = facts[s["work_order_id"]]
            needs = rules.required_skills(
                rule_set, category_code=f["category_code"], asset_type=f["asset_type"]
            )
            assert needs <= set(crew.skills), (s, needs, crew.skills)
            assert f["ward"] in crew.territory
            # The work order now belongs to the crew and the resident sees "scheduled".
            assert f["status"] == "scheduled"
            assert f["crew_id"] == crew.id
    # More open work than hours: the rest is listed with the reason, not dropped.
    assert plan["left_out"], "the demo city has more open work than one day's hours"
    assert {u["reason"] for u in plan["left_out"]} <= {"no_time", "out_of_hours", "no_skill"}
    horizon = datetime.combine(DAY + timedelta(days=8), time(0), tzinfo=CHICAGO)
    due_soon = {i for i, f in facts.items() if f["status"] in OPEN and f["due_at"] < horizon}
    listed = set(placed) | {u["work_order_id"] for u in plan["left_out"]}
    assert due_soon <= listed
    assert len(listed) == len(placed) + len(plan["left_out"])
    streets_crew = {"Authorization": f"Bearer {staff_token(demo_db, 'crew', crew='streets')}"}
    crew_view = client.get(f"/api/v1/plans/{DAY_S}/crews/streets", headers=streets_crew)
    assert crew_view.status_code == 200
    assert [r["crew"] for r in crew_view.json()["routes"]] == ["streets"]


def _second_paving_crew(client: TestClient, db: Database) -> None:
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


def _move(client: TestClient, db: Database, **body: Any) -> Any:
    return client.post(f"/api/v1/plans/{DAY_S}/moves", json=body, headers=_auth(db))


def test_a_moved_job_is_on_the_new_crews_route_and_off_the_old_while_a_locked_stop_stays(
    client: TestClient, demo_db: Database
) -> None:
    _second_paving_crew(client, demo_db)
    plan = _plan(client, demo_db)
    routes = {r["crew"]: r for r in plan["routes"]}
    assert len(routes["streets"]["stops"]) >= 3
    assert routes["streets-2"]["stops"]
    moved = routes["streets"]["stops"][0]["work_order_id"]
    kept = routes["streets"]["stops"][-1]
    other = routes["lighting"]

    r = client.post(
        f"/api/v1/plans/{DAY_S}/stops/{kept['work_order_id']}/lock",
        json={"plan_version": plan["version"]},
        headers=_auth(demo_db),
    )
    assert r.status_code == 200, r.text
    locked = r.json()
    assert locked["version"] == plan["version"] + 1
    assert _stops(locked)[kept["work_order_id"]][1]["locked"] is True

    r = _move(
        client,
        demo_db,
        plan_version=locked["version"],
        work_order_ids=[moved],
        to_crew="streets-2",
    )
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["version"] == locked["version"] + 1
    stops = _stops(after)
    assert stops[moved][0] == "streets-2"
    assert moved not in {s["work_order_id"] for s in _route(after, "streets")["stops"]}
    # The locked stop kept its crew and, within the slack, its time.
    assert kept["work_order_id"] in stops, [
        u for u in after["left_out"] if u["work_order_id"] == kept["work_order_id"]
    ]
    crew, stop = stops[kept["work_order_id"]]
    assert crew == "streets"
    assert stop["locked"] is True
    drift = abs(datetime.fromisoformat(stop["start"]) - datetime.fromisoformat(kept["start"]))
    assert drift <= timedelta(seconds=RoutingSettings().lock_slack_s)
    # Crews the move did not touch kept their routes as they were.
    assert _route(after, "lighting")["stops"] == other["stops"]
    # The work order belongs to the new crew, and later plans keep it there.
    assert _facts(demo_db)[moved]["crew_id"] == _crews(demo_db)["streets-2"].id
    again = _plan(client, demo_db)
    # On streets-2's route, or listed for another day — never given to another crew or lost.
    if moved in _stops(again):
        assert _stops(again)[moved][0] == "streets-2"
    else:
        assert moved in {u["work_order_id"] for u in again["left_out"]}
    assert moved not in {s["work_order_id"] for s in _route(again, "streets")["stops"]}


def _route(plan: dict[str, Any], crew: str) -> dict[str, Any]:
    return next(r for r in plan["routes"] if r["crew"] == crew)


def test_a_stale_plan_version_is_refused_and_changes_nothing(
    client: TestClient, demo_db: Database
) -> None:
    _second_paving_crew(client, demo_db)
    plan = _plan(client, demo_db)
    job = _route(plan, "streets")["stops"][0]["work_order_id"]
    first = _move(
        client, demo_db, plan_version=plan["version"], work_order_ids=[job], to_crew="streets-2"
    )
    assert first.status_code == 200
    # A second dispatcher still looking at the first version moves the same job elsewhere.
    second = _move(
        client, demo_db, plan_version=plan["version"], work_order_ids=[job], to_crew="streets"
    )
    assert second.status_code == 409
    problem = second.json()
    assert problem["code"] == "stale_plan"
    assert problem["current_version"] == first.json()["version"]
    now = client.get(f"/api/v1/plans/{DAY_S}", headers=_auth(demo_db)).json()
    assert now == first.json()
    assert _stops(now)[job][0] == "streets-2"


def test_a_crew_may_not_be_given_work_it_lacks_the_skill_for(
    client: TestClient, demo_db: Database
) -> None:
    plan = _plan(client, demo_db)
    job = _route(plan, "streets")["stops"][0]["work_order_id"]
    r = _move(
        client, demo_db, plan_version=plan["version"], work_order_ids=[job], to_crew="lighting"
    )
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "crew_not_eligible"
    assert any("paving" in e["message"] for e in body["errors"])
    now = client.get(f"/api/v1/plans/{DAY_S}", headers=_auth(demo_db)).json()
    assert now["version"] == plan["version"]
    assert _stops(now)[job][0] == "streets"


def test_work_in_progress_is_never_moved(client: TestClient, demo_db: Database) -> None:
    _second_paving_crew(client, demo_db)
    plan = _plan(client, demo_db)
    busy = _route(plan, "streets")["stops"][0]
    move_work_order(demo_db, busy["work_order_id"], "in_progress")
    r = _move(
        client,
        demo_db,
        plan_version=plan["version"],
        work_order_ids=[busy["work_order_id"]],
        to_crew="streets-2",
    )
    assert r.status_code == 409
    assert r.json()["code"] == "job_in_progress"
    # Re-planning the crew keeps the job it is on where it was.
    r = client.post(
        f"/api/v1/plans/{DAY_S}/replan",
        json={"plan_version": plan["version"], "crews": ["streets", "streets-2"]},
        headers=_auth(demo_db),
    )
    assert r.status_code == 200, r.text
    crew, stop = _stops(r.json())[busy["work_order_id"]]
    assert crew == "streets"
    assert stop["seq"] == busy["seq"]
    assert stop["status"] == "in_progress"


def test_a_job_sent_back_to_the_queue_leaves_every_plan(
    client: TestClient, demo_db: Database
) -> None:
    plan = _plan(client, demo_db)
    job = _route(plan, "forestry")["stops"][1]["work_order_id"]
    r = _move(
        client,
        demo_db,
        plan_version=plan["version"],
        work_order_ids=[job],
        to_crew=None,
        reason="needs a bucket truck",
    )
    assert r.status_code == 200, r.text
    assert job not in _stops(r.json())
    assert job not in {u["work_order_id"] for u in r.json()["left_out"]}
    facts = _facts(demo_db)[job]
    assert facts["status"] == "triaged"
    assert facts["crew_id"] is None
    with demo_db.session() as s:
        reason = s.execute(
            text("SELECT reason, detail FROM dispatch_queue WHERE work_order_id = :w"), {"w": job}
        ).one()
    assert tuple(reason) == ("dispatcher", "needs a bucket truck")
    again = _plan(client, demo_db)
    assert job not in _stops(again)
    # A dispatcher gives it to a crew again: it leaves the queue and is on that crew's route.
    r = _move(
        client, demo_db, plan_version=again["version"], work_order_ids=[job], to_crew="forestry"
    )
    assert r.status_code == 200, r.text
    assert _stops(r.json())[job][0] == "forestry"
    with demo_db.session() as s:
        queued = s.execute(
            text("SELECT count(*) FROM dispatch_queue WHERE work_order_id = :w"), {"w": job}
        ).scalar_one()
    assert queued == 0
    assert _facts(demo_db)[job]["status"] == "scheduled"


def test_appointments_and_breaks_hold(client: TestClient, demo_db: Database) -> None:
    plan = _plan(client, demo_db)
    left = [u["work_order_id"] for u in plan["left_out"] if u["category"] == "pothole"]
    job = left[0] if left else _route(plan, "streets")["stops"][-1]["work_order_id"]
    start = datetime.combine(DAY, time(13, 0), tzinfo=CHICAGO)
    window = {"start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat()}
    r = client.put(
        f"/api/v1/dispatch/work-orders/{job}/appointment", json=window, headers=_auth(demo_db)
    )
    assert r.status_code == 200, r.text
    bad = client.put(
        f"/api/v1/dispatch/work-orders/{job}/appointment",
        json={"start": window["end"], "end": window["start"]},
        headers=_auth(demo_db),
    )
    assert bad.status_code == 422
    plan = _plan(client, demo_db)
    _crew, stop = _stops(plan)[job]
    assert start <= datetime.fromisoformat(stop["start"]) <= start + timedelta(minutes=30)
    # Every crew takes its lunch break inside its window, between stops.
    for r in plan["routes"]:
        assert len(r["breaks"]) == 1
        b = datetime.fromisoformat(r["breaks"][0]["start"])
        assert time(11, 30) <= b.time() <= time(12, 30)


def test_a_categorys_access_hours_hold_on_the_plan(client: TestClient, demo_db: Database) -> None:
    r = client.put(
        "/api/v1/dispatch/service-times/pothole",
        json={"service_s": 1200, "access_start": "09:00", "access_end": "11:00"},
        headers=_auth(demo_db, "admin"),
    )
    assert r.status_code == 200, r.text
    half = client.put(
        "/api/v1/dispatch/service-times/pothole",
        json={"service_s": 1200, "access_start": "09:00"},
        headers=_auth(demo_db, "admin"),
    )
    assert half.status_code == 422
    listed = client.get("/api/v1/dispatch/service-times", headers=_auth(demo_db)).json()
    assert {
        "category_code": "pothole",
        "service_s": 1200,
        "access_start": "09:00:00",
        "access_end": "11:00:00",
        "demand": 0,
    } in listed
    plan = _plan(client, demo_db)
    potholes = [s for r in plan["routes"] for s in r["stops"] if s["category"] == "pothole"]
    assert potholes
    for s in potholes:
        assert time(9, 0) <= datetime.fromisoformat(s["start"]).time() <= time(11, 0)
        ends = datetime.fromisoformat(s["end"]) - datetime.fromisoformat(s["start"])
        assert ends == timedelta(seconds=1200)


def test_two_dispatchers_moving_at_once_get_one_winner_and_one_conflict(
    client: TestClient, demo_db: Database
) -> None:
    _second_paving_crew(client, demo_db)
    plan = _plan(client, demo_db)
    jobs = [s["work_order_id"] for s in _route(plan, "streets")["stops"][:2]]
    routing = RoutingSettings(replan_time_limit_s=0.5)
    with demo_db.session() as s:
        jid = s.execute(text("SELECT id FROM jurisdictions WHERE slug = 'demo'")).scalar_one()
    barrier = threading.Barrier(2)

    def move(job: int, name: str) -> str:
        with demo_db.session() as session:
            barrier.wait()
            try:
                commands.move_work_orders(
                    session,
                    jurisdiction_id=jid,
                    day=DAY,
                    work_order_ids=[job],
                    to_crew="streets-2",
                    expected_version=plan["version"],
                    routing=routing,
                    actor=f"dispatcher:{name}",
                )
                session.commit()
                return "moved"
            except StalePlan:
                session.rollback()
                return "stale"

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(move, jobs, ["ana", "ben"]))
    assert sorted(outcomes) == ["moved", "stale"]
    after = client.get(f"/api/v1/plans/{DAY_S}", headers=_auth(demo_db)).json()
    assert after["version"] == plan["version"] + 1
    winner = jobs[outcomes.index("moved")]
    loser = jobs[outcomes.index("stale")]
    assert _stops(after)[winner][0] == "streets-2"
    assert _stops(after)[loser][0] == "streets"


def test_a_crew_off_for_the_day_loses_its_route_and_its_work_is_listed(
    client: TestClient, demo_db: Database
) -> None:
    plan = _plan(client, demo_db)
    water = [s["work_order_id"] for s in _route(plan, "water")["stops"]]
    assert water
    admin = _auth(demo_db, "admin")
    crew = client.get("/api/v1/crews/water", headers=admin)
    body = {**crew.json(), "workdays": [6]}  # Saturdays only from now on
    for key in ("id", "version", "updated_at"):
        body.pop(key)
    r = client.put(
        "/api/v1/crews/water", json=body, headers={**admin, "If-Match": crew.headers["ETag"]}
    )
    assert r.status_code == 200, r.text
    again = _plan(client, demo_db)
    assert "water" not in {r["crew"] for r in again["routes"]}
    left = {u["work_order_id"]: u for u in again["left_out"]}
    facts = _facts(demo_db)
    for job in water:
        assert left[job]["reason"] == "no_skill"
        assert left[job]["detail"].startswith(
            "no crew working that day holds water and covers ward"
        )
        assert facts[job]["status"] == "assigned"  # no longer "scheduled" for a day it is not on


def test_work_is_on_one_upcoming_days_plan_and_undone_work_comes_back(demo_db: Database) -> None:
    routing = RoutingSettings(time_limit_s=1.0)
    sunday = datetime.combine(DAY - timedelta(days=1), time(12), tzinfo=CHICAGO)
    with demo_db.session() as s:
        jid = s.execute(text("SELECT id FROM jurisdictions WHERE slug = 'demo'")).scalar_one()

    def plan(day: date, now: datetime) -> set[int]:
        with demo_db.session() as session:
            commands.make_plan(
                session, jurisdiction_id=jid, day=day, routing=routing, actor="test", now=now
            )
        with demo_db.session() as session:
            view = views.plan_view(session, jurisdiction_id=jid, day=day)
        return {s.work_order_id for r in view.routes for s in r.stops}

    monday = plan(DAY, sunday)
    tuesday = plan(DAY + timedelta(days=1), sunday)
    assert monday
    assert tuesday
    assert not monday & tuesday
    # On Wednesday, Monday's plan is history: what was left undone there may come back;
    # Tuesday's work (still "scheduled", nothing was done) may come back as well.
    wednesday = plan(DAY + timedelta(days=2), sunday + timedelta(days=3))
    assert wednesday & (monday | tuesday)


def test_a_crews_vehicle_capacity_holds(client: TestClient, demo_db: Database) -> None:
    admin = _auth(demo_db, "admin")
    r = client.put(
        "/api/v1/dispatch/service-times/illegal_dumping",
        json={"service_s": 600, "demand": 1},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    before = _plan(client, demo_db)
    dumping = [s for s in _route(before, "forestry")["stops"] if s["category"] == "illegal_dumping"]
    assert len(dumping) > 2, "the demo's open dumping jobs fill more than a two-load truck"
    crew = client.get("/api/v1/crews/forestry", headers=admin).json()
    body = {k: v for k, v in crew.items() if k not in ("id", "version", "updated_at")}
    r = client.put(
        "/api/v1/crews/forestry",
        json={**body, "capacity": 2},
        headers={**admin, "If-Match": f'"{crew["version"]}"'},
    )
    assert r.status_code == 200, r.text
    after = _plan(client, demo_db)
    stops = _route(after, "forestry")["stops"]
    assert sum(s["category"] == "illegal_dumping" for s in stops) == 2
    left = {u["work_order_id"] for u in after["left_out"] if u["category"] == "illegal_dumping"}
    assert left >= {s["work_order_id"] for s in dumping} - {s["work_order_id"] for s in stops}


def test_replanning_some_crews_leaves_other_crews_left_out_work_as_it_was(
    client: TestClient, demo_db: Database
) -> None:
    plan = _plan(client, demo_db)
    before = {u["work_order_id"]: u for u in plan["left_out"]}
    assert any(u["category"] != "pothole" for u in before.values())
    r = client.post(
        f"/api/v1/plans/{DAY_S}/replan",
        json={"plan_version": plan["version"], "crews": ["streets"]},
        headers=_auth(demo_db),
    )
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["version"] == plan["version"] + 1
    left = {u["work_order_id"]: u for u in after["left_out"]}
    placed = _stops(after)
    for job, u in before.items():
        # Work only other crews may do is listed as before, not "no crew" …
        if job not in placed:
            assert left[job]["reason"] == u["reason"], (u, left[job])
    # … and routes of crews that were not re-planned are as they were.
    for crew in ("lighting", "water", "forestry"):
        assert _route(after, crew)["stops"] == _route(plan, crew)["stops"]


def test_a_job_booked_for_another_day_is_not_moved_onto_this_one(
    client: TestClient, demo_db: Database
) -> None:
    _second_paving_crew(client, demo_db)
    plan = _plan(client, demo_db)
    job = _route(plan, "streets")["stops"][0]["work_order_id"]
    tuesday = datetime.combine(DAY + timedelta(days=1), time(9), tzinfo=CHICAGO)
    r = client.put(
        f"/api/v1/dispatch/work-orders/{job}/appointment",
        json={"start": tuesday.isoformat(), "end": (tuesday + timedelta(hours=2)).isoformat()},
        headers=_auth(demo_db),
    )
    assert r.status_code == 200, r.text
    r = _move(
        client, demo_db, plan_version=plan["version"], work_order_ids=[job], to_crew="streets-2"
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "appointment_elsewhere"
    # The next plan of Monday leaves it for Tuesday.
    assert job not in _stops(_plan(client, demo_db))


def test_who_may_plan_and_what_a_bad_request_gets(client: TestClient, demo_db: Database) -> None:
    assert client.post(f"/api/v1/plans?date={DAY_S}").status_code == 401
    crew = _auth(demo_db, "crew")
    assert client.post(f"/api/v1/plans?date={DAY_S}", headers=crew).status_code == 403
    # A crew reads its own route, not every crew's day.
    assert client.get(f"/api/v1/plans/{DAY_S}", headers=crew).status_code == 403
    missing = client.get(f"/api/v1/plans/{DAY_S}", headers=_auth(demo_db, "planner"))
    assert missing.status_code == 404
    assert missing.json()["code"] == "no_plan"
    bad_day = client.post("/api/v1/plans?date=June", headers=_auth(demo_db))
    assert bad_day.status_code == 422
    plan = _plan(client, demo_db)
    job = _route(plan, "streets")["stops"][0]["work_order_id"]
    r = client.post(
        f"/api/v1/plans/{DAY_S}/moves",
        json={"plan_version": plan["version"], "work_order_ids": [job], "to_crew": "water"},
        headers=crew,
    )
    assert r.status_code == 403
    for body in (
        {"plan_version": plan["version"], "work_order_ids": []},
        {"plan_version": plan["version"], "work_order_ids": [10**9], "to_crew": "water"},
        {"plan_version": plan["version"], "work_order_ids": [job], "to_crew": "nobody"},
    ):
        r = _move(client, demo_db, **body)
        assert r.status_code in (404, 422), (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    lock = client.post(
        f"/api/v1/plans/{DAY_S}/stops/{10**9}/lock",
        json={"plan_version": plan["version"]},
        headers=_auth(demo_db),
    )
    assert lock.status_code == 409
    assert lock.json()["code"] == "not_on_plan"
    # Nothing above changed the plan.
    now = client.get(f"/api/v1/plans/{DAY_S}", headers=_auth(demo_db, "planner")).json()
    assert now == plan


def test_work_that_waited_for_a_crew_on_shift_is_on_the_next_plan(
    client: TestClient, demo_db: Database
) -> None:
    # Reported on a Saturday and due that evening: no crew was on shift, so it waited in the
    # dispatcher queue (the dispatcher may call someone out). The next plan takes it up.
    facts = _facts(demo_db)
    job = min(
        i for i, f in facts.items() if f["status"] == "new" and f["category_code"] == "pothole"
    )
    with demo_db.session() as s:
        s.execute(
            text(
                "INSERT INTO dispatch_queue (jurisdiction_id, work_order_id, reason, detail, actor)"
                " SELECT jurisdiction_id, id, 'not_working', 'nobody on shift before it is due',"
                " 'dispatch:rules' FROM work_orders WHERE id = :w"
            ),
            {"w": job},
        )
    plan = _plan(client, demo_db)
    listed = set(_stops(plan)) | {u["work_order_id"] for u in plan["left_out"]}
    assert job in listed
    with demo_db.session() as s:
        queued = s.execute(
            text("SELECT count(*) FROM dispatch_queue WHERE work_order_id = :w"), {"w": job}
        ).scalar_one()
    assert queued == 0
    assert _facts(demo_db)[job]["crew_id"] is not None


def test_residents_are_told_the_day_their_work_is_planned_for(
    client: TestClient, demo_db: Database
) -> None:
    incident = open_incident_with_reporters(
        demo_db, [{"email": "ana@example.org", "language": "es"}]
    )
    job = work_order_of(demo_db, incident)
    with demo_db.session() as s:  # the helper places no ward; the point is in ward 3
        s.execute(
            text(
                "UPDATE incidents SET ward_id = (SELECT id FROM wards WHERE code = '3' "
                "AND jurisdiction_id = incidents.jurisdiction_id) WHERE id = :i"
            ),
            {"i": incident},
        )
    start = datetime.combine(DAY, time(10), tzinfo=CHICAGO)
    window = {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}
    r = client.put(
        f"/api/v1/dispatch/work-orders/{job}/appointment", json=window, headers=_auth(demo_db)
    )
    assert r.status_code == 200, r.text
    plan = _plan(client, demo_db)
    assert job in _stops(plan)
    with demo_db.session() as s:
        notices = s.execute(
            text(
                "SELECT recipient, context FROM notices WHERE kind = 'scheduled' "
                "AND incident_id = :i"
            ),
            {"i": incident},
        ).all()
    assert [n.recipient for n in notices] == ["ana@example.org"]
    context = notices[0].context
    assert context["scheduled_for"] == DAY_S
    mail = templates.render_email("scheduled", "es", context, templates.Links())
    assert "La cuadrilla planea venir el lunes, 1 de junio de 2026." in mail.text
