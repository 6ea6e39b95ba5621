"""The route solver on small generated days: hard constraints hold, overflow is listed."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import numpy as np
import pytest

from dispatch.solver import (
    Break,
    Engine,
    Job,
    Problem,
    Route,
    ScheduledBreak,
    Solution,
    SolverError,
    Stop,
    TimeWindow,
    Vehicle,
    choose_engine,
    independent_parts,
    solve,
    violations,
)

H = 3600
# PyVRP stops once 50 iterations in a row found nothing better (these days converge in well
# under a second); the time limits stay as the cap. VROOM stops by itself.
EARLY_STOP = 50
SKILLS = ("paving", "electrical", "water", "arborist")


def city_day(
    seed: int,
    *,
    n_jobs: int = 40,
    n_vehicles: int = 4,
    breaks: bool = False,
    service_s: tuple[int, ...] = (900, 1200, 1800),
) -> Problem:
    """Return a day in a 10 km square city at 30 km/h: two depots, then the jobs."""
    rng = random.Random(seed)
    pts = np.array([[rng.uniform(0, 10_000), rng.uniform(0, 10_000)] for _ in range(n_jobs + 2)])
    metres = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1)) * 1.3
    seconds = np.rint(metres / (30 / 3.6)).astype(np.int64)
    jobs = []
    for i in range(n_jobs):
        window = None
        if i % 4 == 0:  # an appointment: a two-hour window, morning or afternoon
            start = rng.choice((8 * H, 10 * H, 13 * H))
            window = TimeWindow(start, start + 2 * H)
        jobs.append(
            Job(
                id=1000 + i,
                location=2 + i,
                service_s=rng.choice(service_s),
                time_window=window,
                skills=frozenset({rng.choice(SKILLS)}),
                priority=rng.randint(0, 100),
            )
        )
    vehicles = []
    for k in range(n_vehicles):
        skills = {SKILLS[k % len(SKILLS)], SKILLS[(k + 1) % len(SKILLS)]}
        lunch = (Break(1, TimeWindow(11 * H + 1800, 12 * H + 1800), 1800),) if breaks else ()
        vehicles.append(
            Vehicle(
                id=k + 1,
                start=k % 2,
                end=k % 2,
                shift=TimeWindow(7 * H, 15 * H + 1800),
                skills=frozenset(skills),
                breaks=lunch,
            )
        )
    return Problem(
        vehicles=tuple(vehicles),
        jobs=tuple(jobs),
        durations_s=seconds,
        distances_m=np.rint(metres).astype(np.int64),
        coords=pts,
    )


def assert_hard_constraints(problem: Problem, plan: Solution) -> None:
    """Check, independently of the solver module's own check, what a crew would notice."""
    jobs = {j.id: j for j in problem.jobs}
    vehicles = {v.id: v for v in problem.vehicles}
    d = problem.durations_s
    planned: list[int] = []
    for route in plan.routes:
        vehicle = vehicles[route.vehicle_id]
        assert vehicle.shift.start_s <= route.start_s
        assert route.end_s <= vehicle.shift.end_s
        clock, here = route.start_s, vehicle.start
        busy = []
        for stop in route.stops:
            job = jobs[stop.job_id]
            assert job.skills <= vehicle.skills, f"vehicle {vehicle.id} lacks {job.skills}"
            if job.vehicle_id is not None:
                assert job.vehicle_id == vehicle.id
            assert stop.arrival_s >= clock + d[here, job.location]
            if job.time_window is not None:
                assert job.time_window.start_s <= stop.start_s <= job.time_window.end_s
            assert stop.end_s - stop.start_s >= job.service_s
            busy.append((stop.start_s, stop.end_s))
            clock, here = stop.end_s, job.location
            planned.append(job.id)
        assert route.end_s >= clock + d[here, vehicle.end]
        taken = {b.break_id: b for b in route.breaks}
        for brk in vehicle.breaks:
            got = taken[brk.id]
            assert brk.window.start_s <= got.start_s <= brk.window.end_s
            assert got.end_s - got.start_s >= brk.duration_s
            for start, end in busy:  # no work during the break
                assert end <= got.start_s or start >= got.end_s
    assert len(planned) == len(set(planned))
    left = {u.job_id for u in plan.unassigned}
    assert set(planned) | left == set(jobs)
    assert not set(planned) & left


@pytest.mark.parametrize("engine", ["pyvrp", "vroom"])
def test_skills_time_windows_and_shifts_hold(engine: Engine) -> None:
    for seed in (1, 2):
        problem = city_day(seed)
        plan = solve(problem, time_limit_s=1.0, no_improvement=EARLY_STOP, engine=engine, seed=seed)
        assert plan.engine == engine
        assert_hard_constraints(problem, plan)
        # An easy day: everything fits.
        assert plan.unassigned == ()


def test_breaks_are_taken_inside_their_window() -> None:
    problem = city_day(3, breaks=True)
    plan = solve(problem, time_limit_s=1.0, no_improvement=EARLY_STOP)
    assert plan.engine == "vroom"  # auto: PyVRP has no breaks
    assert_hard_constraints(problem, plan)
    assert all(len(r.breaks) == 1 for r in plan.routes)


def test_more_work_than_hours_leaves_the_least_urgent_listed() -> None:
    base = city_day(4, n_jobs=60, n_vehicles=2, service_s=(2400, 3600))
    # Half the jobs urgent, half not; two crews cannot do all 60 jobs of 40-60 minutes.
    jobs = tuple(replace(j, priority=100 if k % 2 else 0) for k, j in enumerate(base.jobs))
    problem = replace(base, jobs=jobs)
    for engine in ("pyvrp", "vroom"):
        plan = solve(problem, time_limit_s=1.5, no_improvement=EARLY_STOP, engine=engine)
        assert_hard_constraints(problem, plan)
        assert plan.unassigned, "the day is overfull; something must be left out"
        by_id = {j.id: j for j in problem.jobs}
        dropped = [by_id[u.job_id] for u in plan.unassigned]
        assert {u.reason for u in plan.unassigned} <= {"no_time", "no_skill", "out_of_hours"}
        no_time = [u for u in plan.unassigned if u.reason == "no_time"]
        assert no_time
        assert all("more work than hours" in u.detail for u in no_time)
        kept = [by_id[s.job_id] for r in plan.routes for s in r.stops]
        # Urgent work is kept before routine work.
        assert sum(j.priority for j in kept) / len(kept) > sum(j.priority for j in dropped) / len(
            dropped
        )


def test_jobs_nobody_can_do_are_listed_with_the_reason() -> None:
    base = city_day(5, n_jobs=10)
    extra = (
        Job(id=1, location=2, service_s=600, skills=frozenset({"bridge"})),
        # Due before any shift starts.
        Job(id=2, location=3, service_s=600, time_window=TimeWindow(3 * H, 4 * H)),
        Job(id=3, location=4, service_s=600, vehicle_id=99),
    )
    problem = replace(base, jobs=base.jobs + extra)
    plan = solve(problem, time_limit_s=0.5, no_improvement=EARLY_STOP)
    reasons = {u.job_id: u.reason for u in plan.unassigned}
    assert reasons == {1: "no_skill", 2: "out_of_hours", 3: "vehicle_unavailable"}
    assert "bridge" in next(u.detail for u in plan.unassigned if u.job_id == 1)


@pytest.mark.parametrize("engine", ["pyvrp", "vroom"])
def test_a_pinned_job_goes_to_its_vehicle(engine: Engine) -> None:
    base = city_day(6, n_jobs=20)
    # Pin three jobs to vehicle 2, each needing a skill vehicle 2 has.
    v2 = next(v for v in base.vehicles if v.id == 2)
    skill = sorted(v2.skills)[0]
    jobs = list(base.jobs)
    for k in (0, 5, 9):
        jobs[k] = replace(jobs[k], vehicle_id=2, skills=frozenset({skill}))
    problem = replace(base, jobs=tuple(jobs))
    plan = solve(problem, time_limit_s=1.0, no_improvement=EARLY_STOP, engine=engine)
    assert_hard_constraints(problem, plan)
    route = plan.route_of(2)
    assert route is not None
    on_v2 = {s.job_id for s in route.stops}
    assert {jobs[0].id, jobs[5].id, jobs[9].id} <= on_v2


def test_capacity_is_respected() -> None:
    base = city_day(7, n_jobs=30)
    jobs = tuple(replace(j, demand=3, skills=frozenset()) for j in base.jobs)
    vehicles = tuple(replace(v, capacity=24) for v in base.vehicles)
    problem = replace(base, jobs=jobs, vehicles=vehicles)
    for engine in ("pyvrp", "vroom"):
        plan = solve(problem, time_limit_s=1.0, no_improvement=EARLY_STOP, engine=engine)
        assert all(len(r.stops) * 3 <= 24 for r in plan.routes)
        # 4 vehicles × 8 jobs: 32 ≥ 30, so all fit by load.
        assert sum(len(r.stops) for r in plan.routes) + len(plan.unassigned) == 30


def test_engine_choice() -> None:
    assert choose_engine(city_day(1)) == "pyvrp"
    assert choose_engine(city_day(1, breaks=True)) == "vroom"
    with pytest.raises(SolverError, match="breaks"):
        choose_engine(city_day(1, breaks=True), "pyvrp")


def test_the_check_catches_a_broken_plan() -> None:
    problem = city_day(8, n_jobs=3)
    job = problem.jobs[0]
    vehicle = next(v for v in problem.vehicles if not job.skills <= v.skills)
    d = problem.durations_s
    arrive = vehicle.shift.start_s + int(d[vehicle.start, job.location])
    start = max(arrive, job.time_window.start_s if job.time_window else 0)
    bad = Solution(
        routes=(
            Route(
                vehicle_id=vehicle.id,
                start_s=vehicle.shift.start_s,
                end_s=vehicle.shift.end_s,
                stops=(Stop(job.id, job.location, arrive, start, start + job.service_s),),
                breaks=(ScheduledBreak(1, 0, 10, 0),),
                travel_s=0,
                distance_m=None,
            ),
        ),
        unassigned=(),
        engine="hand",
        solve_s=0.0,
    )
    found = violations(problem, bad)
    assert any("may not do job" in v for v in found)
    assert any("neither planned nor listed" in v for v in found)
    assert any("break 1 overlaps" in v for v in found)


def test_a_pinned_job_that_cannot_be_done_is_listed_not_fatal() -> None:
    base = city_day(9, n_jobs=8)
    vehicles = tuple(replace(v, capacity=10) for v in base.vehicles)
    jobs = (*base.jobs, Job(id=7, location=2, service_s=600, demand=50, vehicle_id=2))
    problem = replace(base, vehicles=vehicles, jobs=jobs)
    for engine in ("pyvrp", "vroom"):
        plan = solve(problem, time_limit_s=0.5, no_improvement=EARLY_STOP, engine=engine)
        assert [(u.job_id, u.reason) for u in plan.unassigned] == [(7, "too_large")]
        assert_hard_constraints(problem, plan)


def test_a_late_job_after_lunch_is_not_refused_as_out_of_hours() -> None:
    # Lunch (11:30-12:30 start, 30 min) fits before a 14:00-14:15 appointment of 75 min that
    # ends 15:15; with the break counted after the job the shift (to 15:30) would overrun.
    d = np.array([[0, 600], [600, 0]], dtype=np.int64)
    crew = Vehicle(
        id=1,
        start=0,
        end=0,
        shift=TimeWindow(7 * H, 15 * H + 1800),
        breaks=(Break(1, TimeWindow(11 * H + 1800, 12 * H + 1800), 1800),),
    )
    job = Job(id=7, location=1, service_s=4500, time_window=TimeWindow(14 * H, 14 * H + 900))
    plan = solve(
        Problem(vehicles=(crew,), jobs=(job,), durations_s=d),
        time_limit_s=0.5,
        no_improvement=EARLY_STOP,
    )
    assert plan.unassigned == ()
    route = plan.routes[0]
    assert route.stops[0].start_s == 14 * H
    assert 11 * H + 1800 <= route.breaks[0].start_s <= 12 * H + 1800


@pytest.mark.parametrize("engine", ["pyvrp", "vroom"])
def test_trades_that_share_no_job_are_planned_apart(engine: Engine) -> None:
    # Each vehicle and each job of one trade: two problems of two vehicles each.
    base = city_day(5, n_jobs=40, n_vehicles=4)
    problem = replace(
        base,
        vehicles=tuple(
            replace(v, skills=frozenset({SKILLS[k % 2]})) for k, v in enumerate(base.vehicles)
        ),
        jobs=tuple(replace(j, skills=frozenset({SKILLS[k % 2]})) for k, j in enumerate(base.jobs)),
    )
    parts = independent_parts(problem, problem.jobs)
    assert sorted(sorted(v.id for v in vehicles) for vehicles, _ in parts) == [[1, 3], [2, 4]]
    for vehicles, jobs in parts:
        assert {j.skills for j in jobs} == {vehicles[0].skills}
    plan = solve(problem, time_limit_s=1.0, no_improvement=EARLY_STOP, engine=engine)
    assert_hard_constraints(problem, plan)
    # Both trades worked, each stop where its job is, the drive timed on the whole matrix.
    assert {r.vehicle_id for r in plan.routes if r.stops} == {1, 2, 3, 4}
    where = {j.id: j.location for j in problem.jobs}
    d = problem.durations_s
    for route in plan.routes:
        vehicle = next(v for v in problem.vehicles if v.id == route.vehicle_id)
        assert [s.location for s in route.stops] == [where[s.job_id] for s in route.stops]
        path = [vehicle.start, *(s.location for s in route.stops), vehicle.end]
        assert route.travel_s == sum(int(d[a, b]) for a, b in itertools.pairwise(path))
    # A job either trade may do joins them into one problem.
    anyone = replace(problem.jobs[0], id=1, skills=frozenset())
    joined = replace(problem, jobs=(*problem.jobs, anyone))
    assert len(independent_parts(joined, joined.jobs)) == 1
