"""A day of demo-city work planned on the demo street grid: what a crew would see."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete

from dispatch import service
from dispatch.matrix import StraightLine
from dispatch.models import CrewBreak
from dispatch.planning import (
    CrewStart,
    DayJob,
    DaySolution,
    route_geometry,
    sla_priority,
    solve_day,
)
from dispatch.rules import required_skills
from dispatch.solver import Engine
from fixtures.demo_city import generate
from geo311.kernel.database import Database
from geo311.kernel.settings import RoutingSettings
from layers import service as layers_service

CHICAGO = ZoneInfo("America/Chicago")
MONDAY = date(2026, 6, 1)


def test_sla_priority_rises_as_the_due_time_nears() -> None:
    start = datetime(2026, 6, 1, tzinfo=CHICAGO)
    end = start + timedelta(days=1)
    dues = [start - timedelta(hours=5), start + timedelta(hours=3), start + timedelta(hours=20)]
    dues += [end + timedelta(hours=h) for h in (1, 30, 24 * 6)]
    got = [sla_priority(d, day_start=start, day_end=end) for d in dues]
    assert got[0] == 100
    assert got == sorted(got, reverse=True)
    assert len(set(got)) == len(got)
    assert all(0 <= p <= 100 for p in got)
    assert sla_priority(None, day_start=start, day_end=end) < got[-1]


def _jid(db: Database) -> int:
    with db.session() as s:
        j = layers_service.get_jurisdiction(s, "demo")
        assert j is not None
        return j.id


def _jobs(db: Database, n: int, seed: int, *, service_scale: float = 1.0) -> list[DayJob]:
    """Return n jobs at demo-city history locations, with the skills the rules give them."""
    city = generate()
    rng = random.Random(seed)
    jid = _jid(db)
    with db.session() as s:
        times = service.service_times(s, jurisdiction_id=jid)
        rules = service.rule_set(s, jurisdiction_id=jid)
    out = []
    for k, report in enumerate(rng.sample(city.history, n)):
        category = city.category(report.category_code)
        window = None
        if k % 5 == 0:
            window = (
                datetime.combine(MONDAY, time(13, 0), tzinfo=CHICAGO),
                datetime.combine(MONDAY, time(15, 0), tzinfo=CHICAGO),
            )
        out.append(
            DayJob(
                id=k + 1,
                lon=report.lon,
                lat=report.lat,
                service_s=round(times[category.code] * service_scale),
                skills=required_skills(
                    rules, category_code=category.code, asset_type=category.asset_type
                ),
                priority=rng.randint(0, 100),
                window=window,
            )
        )
    return out


def _check(db: Database, plan: DaySolution, jobs: list[DayJob], day: date) -> None:
    jid = _jid(db)
    with db.session() as s:
        crews = {c.crew_id: c for c in service.crews_on(s, jurisdiction_id=jid, day=day)}
    by_id = {j.id: j for j in jobs}
    seen = set()
    for route in plan.routes:
        crew = crews[route.crew_id]
        assert crew.shift_start <= route.depart
        assert route.back <= crew.shift_end
        assert route.path[0] == (crew.depot_lon, crew.depot_lat) or route.depart > crew.shift_start
        assert route.path[-1] == (crew.depot_lon, crew.depot_lat)
        assert len(route.breaks) == 1
        lunch_from, lunch_to, minutes = crew.breaks[0]
        assert lunch_from <= route.breaks[0][0] <= lunch_to
        assert route.breaks[0][1] - route.breaks[0][0] >= timedelta(seconds=minutes)
        last = route.depart
        for stop in route.stops:
            job = by_id[stop.job_id]
            assert job.skills <= crew.skills
            assert last <= stop.arrival <= stop.start
            assert stop.end - stop.start >= timedelta(seconds=job.service_s)
            if job.window:
                assert job.window[0] <= stop.start <= job.window[1]
            b0, b1 = route.breaks[0]
            assert stop.end <= b0 or stop.start >= b1  # no work during lunch
            last = stop.end
            seen.add(job.id)
    assert seen | {u.job_id for u in plan.unassigned} == set(by_id)


def test_a_day_on_the_demo_grid(demo_db: Database) -> None:
    jobs = _jobs(demo_db, 25, seed=1)
    with demo_db.session() as s:
        plan = solve_day(
            s,
            jurisdiction_id=_jid(demo_db),
            day=MONDAY,
            jobs=jobs,
            routing=RoutingSettings(),
            time_limit_s=2.0,
        )
    assert plan.matrix_provider == "road_network"
    assert plan.engine == "vroom"  # the demo crews take a lunch break
    _check(demo_db, plan, jobs, MONDAY)
    assert plan.unassigned == ()
    assert {r.code for r in plan.routes} <= {"streets", "lighting", "water", "forestry"}
    # The route line runs along the streets, from the depot through every stop and back.
    route = max(plan.routes, key=lambda r: len(r.stops))
    with demo_db.session() as s:
        line = route_geometry(s, jurisdiction_id=_jid(demo_db), route=route)
    assert line[0] == route.path[0]
    assert line[-1] == route.path[-1]
    assert {(st.lon, st.lat) for st in route.stops} <= set(line)
    assert len(line) > 2 * len(route.path)
    # ETAs are local wall-clock times of the plan's day.
    first = min(r.stops[0].arrival for r in plan.routes)
    assert first.tzinfo is not None
    assert first.astimezone(CHICAGO).date() == MONDAY
    assert first.astimezone(CHICAGO).time() >= time(7, 0)


def test_more_work_than_hours_is_listed_for_tomorrow(demo_db: Database) -> None:
    jobs = _jobs(demo_db, 90, seed=2, service_scale=3.0)
    with demo_db.session() as s:
        plan = solve_day(
            s,
            jurisdiction_id=_jid(demo_db),
            day=MONDAY,
            jobs=jobs,
            routing=RoutingSettings(),
            time_limit_s=2.0,
        )
    _check(demo_db, plan, jobs, MONDAY)
    left = [u for u in plan.unassigned if u.reason == "no_time"]
    assert left
    by_id = {j.id: j for j in jobs}
    kept = [by_id[s.job_id].priority for r in plan.routes for s in r.stops]
    dropped = [by_id[u.job_id].priority for u in left]
    assert sum(kept) / len(kept) > sum(dropped) / len(dropped)


def test_a_crew_finishing_a_job_starts_from_there_and_pinned_work_stays(
    demo_db: Database,
) -> None:
    jobs = _jobs(demo_db, 20, seed=3)
    jid = _jid(demo_db)
    with demo_db.session() as s:
        lighting = next(
            c for c in service.crews_on(s, jurisdiction_id=jid, day=MONDAY) if c.code == "lighting"
        )
    # Two jobs the lighting crew can do are pinned to it; it is busy until 10:00 at a job.
    pinned = [j for j in jobs if j.skills <= lighting.skills][:2]
    jobs = [replace(j, crew_id=lighting.crew_id) if j in pinned else j for j in jobs]
    start = CrewStart(lon=-93.19, lat=44.955, free_at=datetime(2026, 6, 1, 15, 0, tzinfo=UTC))
    with demo_db.session() as s:
        plan = solve_day(
            s,
            jurisdiction_id=jid,
            day=MONDAY,
            jobs=jobs,
            routing=RoutingSettings(),
            starts={lighting.crew_id: start},
            time_limit_s=1.5,
        )
    _check(demo_db, plan, jobs, MONDAY)
    route = next(r for r in plan.routes if r.crew_id == lighting.crew_id)
    assert route.path[0] == (start.lon, start.lat)
    assert route.depart >= start.free_at  # 15:00 UTC is 10:00 in Chicago
    assert {j.id for j in pinned} <= {s.job_id for s in route.stops}


def test_the_shift_holds_on_a_daylight_saving_day(demo_db: Database) -> None:
    spring_forward = date(2026, 3, 9)  # a Monday; clocks changed on Sunday the 8th
    sunday = date(2026, 3, 8)
    jid = _jid(demo_db)
    with demo_db.session() as s:
        crews = service.crews_on(s, jurisdiction_id=jid, day=sunday)
        assert crews == []  # demo crews work Monday to Friday
        crew = service.crews_on(s, jurisdiction_id=jid, day=spring_forward)[0]
    assert crew.shift_start.astimezone(UTC).hour == 12  # 07:00 CDT
    jobs = _jobs(demo_db, 10, seed=4)
    jobs = [replace(j, window=None) for j in jobs]
    with demo_db.session() as s:
        plan = solve_day(
            s,
            jurisdiction_id=jid,
            day=spring_forward,
            jobs=jobs,
            routing=RoutingSettings(),
            time_limit_s=1.0,
        )
    for route in plan.routes:
        assert route.depart.astimezone(CHICAGO).time() >= time(7, 0)
        assert route.back.astimezone(CHICAGO).time() <= time(15, 30)


@pytest.mark.parametrize("engine", ["pyvrp", "vroom"])
def test_straight_line_plan_without_breaks(demo_db: Database, engine: Engine) -> None:
    with demo_db.session() as s:
        s.execute(delete(CrewBreak))
    jobs = _jobs(demo_db, 30, seed=5)
    jobs = [replace(j, window=None) for j in jobs]
    routing = RoutingSettings(engine=engine, no_improvement=50)  # PyVRP stops when done
    with demo_db.session() as s:
        plan = solve_day(
            s,
            jurisdiction_id=_jid(demo_db),
            day=MONDAY,
            jobs=jobs,
            routing=routing,
            provider=StraightLine(speed_kmh=25, detour_factor=1.3),
            time_limit_s=1.0,
        )
    assert plan.engine == engine
    assert plan.matrix_provider == "straight_line"
    assert plan.unassigned == ()
    assert all(r.distance_m is not None and r.distance_m > 0 for r in plan.routes)
