"""One vehicle-routing problem with time windows and the extras a city needs, and its solution.

Pure (no database, no clock): the caller hands in crews as :class:`Vehicle`, work as
:class:`Job`, and a travel matrix over the locations both refer to by index; it gets back a
:class:`Solution` with each vehicle's ordered stops and ETAs, its breaks, and every job left out
with the reason.

Two maintained solvers do the searching, picked by measurement (``bench/vrptw.py``):

* **PyVRP** (hybrid genetic search): the best quality on VRPTW benchmarks, and fleet
  minimisation for the hierarchical objective. It has no breaks; skills are modelled as routing
  profiles whose matrices forbid the jobs a vehicle type may not do.
* **VROOM** (via pyvroom): skills, breaks, several time windows and priorities natively, and
  fast. ``auto`` takes it whenever a vehicle has a break or the skill sets would need too many
  PyVRP profiles.

A problem whose vehicles fall into groups that may do no job in common (a city's skills,
territories and pins) is solved as that many smaller problems (:func:`independent_parts`):
the best plan of the whole is the best plan of each part put together, and a few small
searches find better plans sooner than one large one.

Whatever the engine, the plan is checked against the problem before it is returned
(:func:`violations`): a skill, shift, time window, break or capacity violation is a bug and
raises :class:`SolverError` rather than reach a crew.

Times are whole seconds from an epoch the caller picks (midnight of the plan's day, local time);
matrix entries are whole seconds (durations) and metres (distances).
"""

from __future__ import annotations

import itertools
import json
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Engine = Literal["auto", "pyvrp", "vroom"]
ENGINES: tuple[Engine, ...] = ("auto", "pyvrp", "vroom")
MAX_PRIORITY = 100
# Beyond this many distinct skill sets, PyVRP would need as many full matrix copies.
MAX_PYVRP_PROFILES = 8
# How widely VROOM searches (its exploration level), by the search time there is per job: the
# widest search (5) spends a short budget building starting solutions and overruns its
# timeout; level 1 leaves the time to local search; level 0 converges on its own, in about
# 4 ms a job. Measured on generated city days (bench/city_day.py): level 5 best for 200 jobs in
# 10 s; level 1 for 500 and 1,000 jobs in 10 s; level 0 for 1,000 jobs in 3-5 s (in five
# 200-job parts), where level 1 gave longer routes for as many jobs left out.
VROOM_LEVELS = ((0.05, 5), (0.01, 1))
# Share of the time budget kept for turning the solver's answer into a checked plan.
READBACK_SHARE = 0.01

# Why a job is not on the plan. Listed with every left-out job, so nothing is silently dropped.
REASONS: dict[str, str] = {
    "no_skill": "no available vehicle has every skill the job needs",
    "vehicle_unavailable": "the job is pinned to a vehicle that is not in the plan",
    "too_large": "the job's demand exceeds the capacity of every vehicle that may do it",
    "out_of_hours": "no vehicle that may do it can reach it and return within its shift and "
    "the job's time window",
    "no_time": "more work than hours: left for another day (lowest priority first)",
    "infeasible": "the solver found no feasible route that serves this required job",
}


class SolverError(RuntimeError):
    """The problem is malformed, or a solver returned a plan that breaks a hard constraint."""


@dataclass(frozen=True)
class TimeWindow:
    """An interval [start_s, end_s] in seconds from the plan's epoch."""

    start_s: int
    end_s: int

    def __post_init__(self) -> None:
        if self.end_s < self.start_s:
            raise SolverError(f"time window ends ({self.end_s}) before it starts ({self.start_s})")


@dataclass(frozen=True)
class Job:
    """A piece of work at one location.

    ``time_window`` bounds the start of service (access hours, an appointment); ``skills``
    must all be held by the vehicle; ``priority`` (0-100) decides which jobs stay on the plan
    when there is more work than hours; ``vehicle_id`` pins the job to one vehicle (a dispatcher
    moved it there, or locked it); ``required`` jobs are never traded off against cost (the
    benchmarks' setting; daily work is optional so that overflow is listed, not infeasible).
    """

    id: int
    location: int
    service_s: int = 0
    time_window: TimeWindow | None = None
    skills: frozenset[str] = frozenset()
    priority: int = 0
    demand: int = 0
    vehicle_id: int | None = None
    required: bool = False


@dataclass(frozen=True)
class Break:
    """A break of ``duration_s`` that must start inside ``window`` (wherever the crew is)."""

    id: int
    window: TimeWindow
    duration_s: int


@dataclass(frozen=True)
class Vehicle:
    """A crew for the day: where it starts and ends, its shift, breaks, capacity and skills.

    ``fixed_cost`` is charged once if the vehicle is used (in cost units: seconds of travel);
    ``capacity`` None means no limit.
    """

    id: int
    start: int
    end: int
    shift: TimeWindow
    skills: frozenset[str] = frozenset()
    breaks: tuple[Break, ...] = ()
    capacity: int | None = None
    fixed_cost: int = 0


@dataclass(frozen=True)
class Problem:
    """Vehicles, jobs and the travel matrices over the locations they name by index.

    ``durations_s[i, j]`` is the travel time from location i to j; it is also the cost that is
    minimised. ``distances_m`` (optional) is only reported. ``coords`` (optional, any planar
    unit) helps PyVRP's neighbourhood search. ``minimise_vehicles``: fewest vehicles first, then
    least travel (the benchmarks' hierarchical objective).
    """

    vehicles: tuple[Vehicle, ...]
    jobs: tuple[Job, ...]
    durations_s: NDArray[np.int64]
    distances_m: NDArray[np.int64] | None = None
    coords: NDArray[np.float64] | None = None
    minimise_vehicles: bool = False

    def __post_init__(self) -> None:
        n = self.durations_s.shape[0]
        if self.durations_s.shape != (n, n):
            raise SolverError(f"durations_s must be square, not {self.durations_s.shape}")
        if self.distances_m is not None and self.distances_m.shape != (n, n):
            raise SolverError("distances_m must have the shape of durations_s")
        for job in self.jobs:
            if not 0 <= job.location < n:
                raise SolverError(f"job {job.id}: location {job.location} not in the matrix")
            if not 0 <= job.priority <= MAX_PRIORITY:
                raise SolverError(f"job {job.id}: priority must be 0-{MAX_PRIORITY}")
        for vehicle in self.vehicles:
            if not (0 <= vehicle.start < n and 0 <= vehicle.end < n):
                raise SolverError(f"vehicle {vehicle.id}: start or end not in the matrix")
        if len({j.id for j in self.jobs}) != len(self.jobs):
            raise SolverError("job ids must be unique")
        if len({v.id for v in self.vehicles}) != len(self.vehicles):
            raise SolverError("vehicle ids must be unique")


@dataclass(frozen=True)
class Stop:
    """A job on a route: when the crew arrives, starts (after waiting) and leaves."""

    job_id: int
    location: int
    arrival_s: int
    start_s: int
    end_s: int

    @property
    def wait_s(self) -> int:
        return self.start_s - self.arrival_s


@dataclass(frozen=True)
class ScheduledBreak:
    """A break as planned: taken before stop number ``before_stop`` (len(stops): at the end)."""

    break_id: int
    start_s: int
    end_s: int
    before_stop: int


@dataclass(frozen=True)
class Route:
    """One vehicle's day: leave ``start_s``, the stops in order, back at ``end_s``."""

    vehicle_id: int
    start_s: int
    end_s: int
    stops: tuple[Stop, ...]
    breaks: tuple[ScheduledBreak, ...]
    travel_s: int
    distance_m: int | None


@dataclass(frozen=True)
class Unassigned:
    """A job left out of the plan, with a reason code (see ``REASONS``) and a sentence."""

    job_id: int
    reason: str
    detail: str


@dataclass(frozen=True)
class Solution:
    """The solution: a route per used vehicle, the jobs left out, which engine, how long."""

    routes: tuple[Route, ...]
    unassigned: tuple[Unassigned, ...]
    engine: str
    solve_s: float
    stats: Mapping[str, Any] = field(default_factory=dict)

    @property
    def vehicles_used(self) -> int:
        return sum(1 for r in self.routes if r.stops)

    @property
    def travel_s(self) -> int:
        return sum(r.travel_s for r in self.routes)

    def route_of(self, vehicle_id: int) -> Route | None:
        """Return the route of one vehicle, or None if it has none."""
        return next((r for r in self.routes if r.vehicle_id == vehicle_id), None)


# --- feasibility before solving ---------------------------------------------------------------


def may_do(vehicle: Vehicle, job: Job) -> bool:
    """Return whether ``vehicle`` is allowed to do ``job`` (skills and pinning)."""
    if job.vehicle_id is not None and job.vehicle_id != vehicle.id:
        return False
    return job.skills <= vehicle.skills


def _fits_alone(problem: Problem, vehicle: Vehicle, job: Job) -> bool:
    """Return whether the vehicle could do this one job alone within its shift."""
    d = problem.durations_s
    arrive = vehicle.shift.start_s + int(d[vehicle.start, job.location])
    # Optimistic about breaks (this only weeds out the hopeless): each break may be taken
    # before the job (delaying the start, perhaps into a wait for the window anyway) or after
    # it (delaying the return), whichever fits; their own windows are not checked here.
    back = int(d[job.location, vehicle.end])
    for before in itertools.product((False, True), repeat=len(vehicle.breaks)):
        before_s = sum(b.duration_s for b, x in zip(vehicle.breaks, before, strict=True) if x)
        after_s = sum(b.duration_s for b in vehicle.breaks) - before_s
        begin = arrive + before_s
        if job.time_window is not None:
            begin = max(begin, job.time_window.start_s)
            if begin > job.time_window.end_s:
                continue
        if begin + job.service_s + back + after_s <= vehicle.shift.end_s:
            return True
    return False


def precheck(problem: Problem) -> tuple[list[Job], list[Unassigned]]:
    """Return the jobs some vehicle could do, and the others with the reason they cannot."""
    ok: list[Job] = []
    out: list[Unassigned] = []
    vehicle_ids = {v.id for v in problem.vehicles}
    for job in problem.jobs:
        if job.vehicle_id is not None and job.vehicle_id not in vehicle_ids:
            out.append(_unassigned(job, "vehicle_unavailable", f"vehicle {job.vehicle_id}"))
            continue
        allowed = [v for v in problem.vehicles if may_do(v, job)]
        if not allowed:
            needs = ", ".join(sorted(job.skills)) or "none"
            out.append(_unassigned(job, "no_skill", f"skills needed: {needs}"))
            continue
        big_enough = [v for v in allowed if v.capacity is None or job.demand <= v.capacity]
        if not big_enough:
            out.append(_unassigned(job, "too_large", f"demand {job.demand}"))
            continue
        if not any(_fits_alone(problem, v, job) for v in big_enough):
            out.append(_unassigned(job, "out_of_hours", ""))
            continue
        ok.append(job)
    return ok, out


def _unassigned(job: Job, reason: str, detail: str) -> Unassigned:
    text = REASONS[reason] + (f" ({detail})" if detail else "")
    return Unassigned(job_id=job.id, reason=reason, detail=text)


# --- the check every plan passes --------------------------------------------------------------


def violations(problem: Problem, plan: Solution) -> list[str]:
    """Return every hard constraint the plan breaks (empty when it is sound)."""
    found: list[str] = []
    jobs = {j.id: j for j in problem.jobs}
    vehicles = {v.id: v for v in problem.vehicles}
    seen: set[int] = set()
    d = problem.durations_s
    for route in plan.routes:
        vehicle = vehicles.get(route.vehicle_id)
        if vehicle is None:
            found.append(f"route of unknown vehicle {route.vehicle_id}")
            continue
        where = f"vehicle {vehicle.id}"
        if route.start_s < vehicle.shift.start_s or route.end_s > vehicle.shift.end_s:
            found.append(f"{where}: route {route.start_s}-{route.end_s} outside its shift")
        load = 0
        breaks_before: dict[int, int] = {}
        for b in route.breaks:
            breaks_before[b.before_stop] = breaks_before.get(b.before_stop, 0) + (
                b.end_s - b.start_s
            )
        planned_breaks = {b.break_id: b for b in route.breaks}
        for brk in vehicle.breaks:
            got = planned_breaks.get(brk.id)
            if got is None:
                found.append(f"{where}: break {brk.id} not planned")
            elif not brk.window.start_s <= got.start_s <= brk.window.end_s:
                found.append(f"{where}: break {brk.id} starts at {got.start_s}, outside window")
            elif got.end_s - got.start_s < brk.duration_s:
                found.append(f"{where}: break {brk.id} shorter than {brk.duration_s} s")
        t = route.start_s
        here = vehicle.start
        for b in route.breaks:
            nxt = route.stops[b.before_stop].start_s if b.before_stop < len(route.stops) else None
            prev = route.stops[b.before_stop - 1].end_s if b.before_stop > 0 else route.start_s
            if b.start_s < prev or (nxt is not None and b.end_s > nxt) or b.end_s > route.end_s:
                found.append(f"{where}: break {b.break_id} overlaps work or the shift's end")
        for k, stop in enumerate(route.stops):
            job = jobs.get(stop.job_id)
            if job is None:
                found.append(f"{where}: unknown job {stop.job_id}")
                continue
            if stop.job_id in seen:
                found.append(f"job {stop.job_id} planned twice")
            seen.add(stop.job_id)
            if not may_do(vehicle, job):
                found.append(f"{where}: may not do job {job.id} (skills or pinning)")
            earliest = t + int(d[here, job.location]) + breaks_before.get(k, 0)
            if stop.arrival_s < earliest:
                found.append(f"{where}: job {job.id} reached at {stop.arrival_s} < {earliest}")
            if stop.start_s < stop.arrival_s:
                found.append(f"{where}: job {job.id} starts before arrival")
            tw = job.time_window
            if tw is not None and not tw.start_s <= stop.start_s <= tw.end_s:
                found.append(f"{where}: job {job.id} starts at {stop.start_s}, outside window")
            if stop.end_s - stop.start_s < job.service_s:
                found.append(f"{where}: job {job.id} served too briefly")
            load += job.demand
            t, here = stop.end_s, job.location
        back = t + int(d[here, vehicle.end]) + breaks_before.get(len(route.stops), 0)
        if route.end_s < back:
            found.append(f"{where}: back at {route.end_s} < {back}")
        if vehicle.capacity is not None and load > vehicle.capacity:
            found.append(f"{where}: load {load} over capacity {vehicle.capacity}")
    left = {u.job_id for u in plan.unassigned}
    for job in problem.jobs:
        if job.id not in seen and job.id not in left:
            found.append(f"job {job.id} neither planned nor listed as left out")
    return found


# --- solving ---------------------------------------------------------------------------------


def choose_engine(problem: Problem, engine: Engine = "auto") -> Literal["pyvrp", "vroom"]:
    """Return the engine that will solve ``problem``: the one asked for, or by what it needs."""
    needs_vroom = any(v.breaks for v in problem.vehicles)
    if engine == "pyvrp":
        if needs_vroom:
            raise SolverError("PyVRP cannot plan breaks: use engine 'vroom' or 'auto'")
        return "pyvrp"
    if engine == "vroom":
        return "vroom"
    if needs_vroom or len(_skill_profiles(problem.vehicles, problem.jobs)) > MAX_PYVRP_PROFILES:
        return "vroom"
    return "pyvrp"


def solve(
    problem: Problem,
    *,
    time_limit_s: float,
    engine: Engine = "auto",
    seed: int = 0,
    threads: int = 1,
    no_improvement: int | None = None,
) -> Solution:
    """Return a checked plan for ``problem`` within about ``time_limit_s`` of wall time.

    The whole call keeps to the budget: the search gets what is left of it after the set-up,
    less a reserve for reading and checking the answer. ``no_improvement``: PyVRP stops
    earlier, after that many iterations in a row found nothing better (a small day is solved
    long before its budget, and the same seed then gives the same plan however busy the
    machine); VROOM stops by itself once its search is done.

    Raises SolverError when the problem is malformed or a solver breaks a hard constraint.
    """
    if time_limit_s <= 0:
        raise SolverError("time_limit_s must be positive")
    started = time.perf_counter()
    chosen = choose_engine(problem, engine)
    jobs, left_out = precheck(problem)
    # The search's share: the budget less what set-up took and a reserve for the read-back.
    deadline = started + time_limit_s * (1 - READBACK_SHARE)
    routes: list[Route] = []
    stats: dict[str, Any] = {"parts": []}
    parts = independent_parts(problem, jobs)
    waiting = len(jobs)
    for vehicles, part_jobs in parts:
        # Each part's share of what is left, by its jobs: time a part leaves unused (or
        # overruns) is the next parts' gain (or loss).
        search_s = max((deadline - time.perf_counter()) * len(part_jobs) / waiting, 0.01)
        waiting -= len(part_jobs)
        part, where = _part(problem, vehicles, part_jobs)
        if chosen == "pyvrp":
            got, missed, part_stats = _solve_pyvrp(part, part.jobs, search_s, seed, no_improvement)
        else:
            got, missed, part_stats = _solve_vroom(part, part.jobs, search_s, threads)
        routes += [_relocated(r, where) for r in got]
        left_out += missed
        stats["parts"].append({"vehicles": len(vehicles), "jobs": len(part_jobs), **part_stats})
    plan = Solution(
        routes=tuple(routes),
        unassigned=tuple(left_out),
        engine=chosen,
        solve_s=time.perf_counter() - started,
        stats=stats,
    )
    broken = violations(problem, plan)
    if broken:
        raise SolverError(f"{chosen} returned a plan that breaks constraints: {broken[:5]}")
    return plan


def independent_parts(
    problem: Problem, jobs: Sequence[Job]
) -> list[tuple[tuple[Vehicle, ...], list[Job]]]:
    """Return the problem split into parts no job links: each part's vehicles, and the jobs
    only they may do, largest part first. Vehicles with no job are left out.

    Two vehicles that may do no job in common never trade work, so the best plan of the whole
    is the best plan of each part put together (the cost and the prizes add up). A city's day
    splits this way by skills, territories and pins; a solver searches a few small problems
    much faster than one large one.
    """
    parent = list(range(len(problem.vehicles)))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    first_of: dict[int, int] = {}
    for job in jobs:
        allowed = [k for k, v in enumerate(problem.vehicles) if may_do(v, job)]
        for k in allowed[1:]:
            parent[root(k)] = root(allowed[0])
        first_of[job.id] = allowed[0]  # precheck kept only jobs some vehicle may do
    groups: dict[int, list[Job]] = {}
    for job in jobs:
        groups.setdefault(root(first_of[job.id]), []).append(job)
    parts = [
        (tuple(v for k, v in enumerate(problem.vehicles) if root(k) == r), members)
        for r, members in groups.items()
    ]
    parts.sort(key=lambda part: -len(part[1]))
    return parts


def _part(
    problem: Problem, vehicles: Sequence[Vehicle], jobs: Sequence[Job]
) -> tuple[Problem, NDArray[np.int64]]:
    """Return the problem of ``vehicles`` and ``jobs`` alone, over just the locations they
    use, and each of its locations' index in ``problem``."""
    where = np.unique(
        np.asarray(
            [loc for v in vehicles for loc in (v.start, v.end)] + [j.location for j in jobs],
            dtype=np.int64,
        )
    )
    at = {int(loc): k for k, loc in enumerate(where)}
    cells = np.ix_(where, where)
    part = Problem(
        vehicles=tuple(replace(v, start=at[v.start], end=at[v.end]) for v in vehicles),
        jobs=tuple(replace(j, location=at[j.location]) for j in jobs),
        durations_s=problem.durations_s[cells],
        distances_m=problem.distances_m[cells] if problem.distances_m is not None else None,
        coords=problem.coords[where] if problem.coords is not None else None,
        minimise_vehicles=problem.minimise_vehicles,
    )
    return part, where


def _relocated(route: Route, where: NDArray[np.int64]) -> Route:
    """Return a part's route with its stops' locations as the whole problem numbers them."""
    return replace(
        route,
        stops=tuple(replace(s, location=int(where[s.location])) for s in route.stops),
    )


def _travel(problem: Problem, vehicle: Vehicle, locations: Sequence[int]) -> tuple[int, int | None]:
    path = [vehicle.start, *locations, vehicle.end]
    pairs = (np.asarray(path[:-1]), np.asarray(path[1:]))
    travel = int(problem.durations_s[pairs].sum())
    if problem.distances_m is None:
        return travel, None
    return travel, int(problem.distances_m[pairs].sum())


def _missed(jobs: Iterable[Job], served: set[int]) -> list[Unassigned]:
    out = []
    for job in jobs:
        if job.id not in served:
            out.append(_unassigned(job, "infeasible" if job.required else "no_time", ""))
    return out


def _skill_profiles(vehicles: Iterable[Vehicle], jobs: Iterable[Job]) -> list[frozenset[str]]:
    """Return the distinct sets of things vehicles may do (skills, and their pinned jobs)."""
    pinned = {j.vehicle_id for j in jobs if j.vehicle_id is not None}
    keys: list[frozenset[str]] = []
    for v in vehicles:
        key = _profile_key(v, pinned)
        if key not in keys:
            keys.append(key)
    return keys


def _profile_key(vehicle: Vehicle, pinned: Iterable[int | None]) -> frozenset[str]:
    # A vehicle that has jobs pinned to it gets a profile of its own.
    if vehicle.id in set(pinned):
        return vehicle.skills | {f"\0vehicle:{vehicle.id}"}
    return vehicle.skills


def _prize_unit(problem: Problem, jobs: Sequence[Job]) -> int:
    """Return a prize per priority step that outweighs any one job's detour.

    A job's detour costs at most the longest trip in and the longest trip out, so a prize above
    that is always worth collecting when time allows; higher priorities weigh proportionally
    more, so the least urgent go first when time runs short.
    """
    locs = np.asarray([j.location for j in jobs])
    d = problem.durations_s
    longest = int(d[:, locs].max()) + int(d[locs, :].max()) if len(locs) else 0
    return longest + max((j.service_s for j in jobs), default=0) + 1


def _solve_pyvrp(
    problem: Problem,
    jobs: Sequence[Job],
    time_limit_s: float,
    seed: int,
    no_improvement: int | None = None,
) -> tuple[tuple[Route, ...], list[Unassigned], dict[str, Any]]:
    import pyvrp
    from pyvrp.exceptions import PenaltyBoundWarning
    from pyvrp.stop import MaxRuntime, MultipleCriteria, NoImprovement, StoppingCriterion

    started = time.perf_counter()
    vehicles = problem.vehicles
    # Locations of the PyVRP problem: one per distinct depot, then one per job (jobs never
    # share a row, so a profile can forbid one job without forbidding its neighbour).
    depot_locs: list[int] = []
    for v in vehicles:
        for loc in (v.start, v.end):
            if loc not in depot_locs:
                depot_locs.append(loc)
    index = np.asarray(depot_locs + [j.location for j in jobs])
    n_depots = len(depot_locs)
    base_dur = problem.durations_s[np.ix_(index, index)].astype(np.int64)

    profiles = _skill_profiles(vehicles, jobs)
    pinned = {j.vehicle_id for j in jobs if j.vehicle_id is not None}
    # Longer than any shift: a forbidden job can only be reached with time warp (infeasible).
    forbidden = int(max(v.shift.end_s for v in vehicles) - min(v.shift.start_s for v in vehicles))
    forbidden = 4 * (forbidden + int(base_dur.max()) + 1)
    dist_mats: list[NDArray[np.int64]] = []
    dur_mats: list[NDArray[np.int64]] = []
    for key in profiles:
        bad = [
            n_depots + k
            for k, job in enumerate(jobs)
            if not job.skills <= key
            or (job.vehicle_id is not None and f"\0vehicle:{job.vehicle_id}" not in key)
        ]
        mat = base_dur.copy()
        if bad:
            mat[bad, :] = forbidden
            mat[:, bad] = forbidden
            mat[bad, bad] = 0
        dist_mats.append(mat)
        dur_mats.append(mat)

    coords = problem.coords
    locations = [
        pyvrp.Location(
            x=float(coords[i, 0]) if coords is not None else 0.0,
            y=float(coords[i, 1]) if coords is not None else 0.0,
        )
        for i in index
    ]
    depots = [pyvrp.Depot(location=k) for k in range(n_depots)]
    with_capacity = any(v.capacity is not None for v in vehicles)
    unlimited = sum(j.demand for j in jobs) + 1
    prize_unit = _prize_unit(problem, jobs)
    clients = [
        pyvrp.Client(
            location=n_depots + k,
            delivery=[job.demand] if with_capacity else [],
            service_duration=job.service_s,
            tw_early=job.time_window.start_s if job.time_window else 0,
            tw_late=job.time_window.end_s if job.time_window else np.iinfo(np.int64).max,
            prize=0 if job.required else prize_unit * (job.priority + 1),
            required=job.required,
        )
        for k, job in enumerate(jobs)
    ]
    # Identical vehicles make one vehicle type with several available.
    groups: dict[tuple[Any, ...], list[Vehicle]] = {}
    for v in vehicles:
        group = (
            v.start,
            v.end,
            v.shift,
            v.capacity,
            v.fixed_cost,
            profiles.index(_profile_key(v, pinned)),
        )
        groups.setdefault(group, []).append(v)
    vehicle_types = [
        pyvrp.VehicleType(
            num_available=len(members),
            capacity=[members[0].capacity if members[0].capacity is not None else unlimited]
            if with_capacity
            else [],
            start_depot=depot_locs.index(members[0].start),
            end_depot=depot_locs.index(members[0].end),
            fixed_cost=members[0].fixed_cost,
            tw_early=members[0].shift.start_s,
            tw_late=members[0].shift.end_s,
            unit_distance_cost=1,
            unit_duration_cost=0,
            profile=key[-1],
        )
        for key, members in groups.items()
    ]
    data = pyvrp.ProblemData(
        locations=locations,
        clients=clients,
        depots=depots,
        vehicle_types=vehicle_types,
        distance_matrices=dist_mats,  # type: ignore[arg-type]  # the stub's ndarray[int]
        duration_matrices=dur_mats,  # type: ignore[arg-type]
    )
    stats: dict[str, Any] = {"profiles": len(profiles), "vehicle_types": len(vehicle_types)}
    remaining = time_limit_s - (time.perf_counter() - started)
    initial = None
    if (
        problem.minimise_vehicles
        and len(vehicle_types) == 1
        and all(j.required for j in jobs)
        and remaining > 0
    ):
        data, initial = _minimise_fleet(data, remaining * FLEET_SHARE, seed)
        stats["fleet"] = data.vehicle_type(0).num_available
    remaining = max(time_limit_s - (time.perf_counter() - started), 0.01)
    stop: StoppingCriterion = MaxRuntime(remaining)
    if no_improvement is not None:
        stop = MultipleCriteria([stop, NoImprovement(no_improvement)])
    with warnings.catch_warnings():
        # PyVRP warns when its penalties hit their bound on a tight fleet; the plan is checked.
        warnings.simplefilter("ignore", PenaltyBoundWarning)
        result = pyvrp.solve(
            data,
            stop=stop,
            seed=seed,
            display=False,
            collect_stats=False,
            initial_solution=initial,
        )
    stats["iterations"] = result.num_iterations
    best = result.best
    stats["iterations"] = result.num_iterations
    if not best.is_feasible():
        # Only required jobs can make the best solution infeasible: report them all unserved.
        return (), _missed(jobs, set()), stats

    group_list = list(groups.values())
    next_free = [0] * len(group_list)
    routes: list[Route] = []
    served: set[int] = set()
    for r in best.routes():
        members = group_list[r.vehicle_type()]
        vehicle = members[next_free[r.vehicle_type()]]
        next_free[r.vehicle_type()] += 1
        stops: list[Stop] = []
        for act in r.schedule():
            if not act.is_client():
                continue
            job = jobs[act.idx]
            start = int(act.start_time)
            stops.append(
                Stop(
                    job_id=job.id,
                    location=job.location,
                    arrival_s=start - int(act.wait_duration),
                    start_s=start,
                    end_s=start + job.service_s,
                )
            )
            served.add(job.id)
        travel, dist = _travel(problem, vehicle, [s.location for s in stops])
        routes.append(
            Route(
                vehicle_id=vehicle.id,
                start_s=int(r.start_time()),
                end_s=int(r.end_time()),
                stops=tuple(stops),
                breaks=(),
                travel_s=travel,
                distance_m=dist,
            )
        )
    return tuple(routes), _missed(jobs, served), stats


# Share of the time budget spent finding the smallest fleet, when that is the first objective.
FLEET_SHARE = 0.5


def _minimise_fleet(data: Any, budget_s: float, seed: int) -> tuple[Any, Any]:
    """Return the problem with the smallest fleet PyVRP finds feasible, and that solution.

    The same search as ``pyvrp.minimise_fleet`` (solve to the first feasible solution with one
    vehicle fewer, until it fails or the budget is spent), except that the last feasible
    solution is kept to start the distance search from, rather than thrown away.
    """
    import pyvrp
    from pyvrp.exceptions import PenaltyBoundWarning
    from pyvrp.stop import FirstFeasible, MaxRuntime, MultipleCriteria

    deadline = time.perf_counter() + budget_s
    fleet = data.vehicle_type(0)
    demand = sum(sum(c.delivery) for c in data.clients())
    cap = sum(fleet.capacity) if fleet.capacity else 0
    lower = max(1, -(-demand // cap)) if cap else 1
    best_data, best = data, None
    with warnings.catch_warnings():
        # Too few vehicles make PyVRP's penalties hit their bound: expected here, not a fault.
        warnings.simplefilter("ignore", PenaltyBoundWarning)
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            trial = (
                best_data
                if best is None
                else best_data.replace(
                    vehicle_types=[fleet.replace(num_available=fleet.num_available - 1)]
                )
            )
            res = pyvrp.solve(
                trial,
                stop=MultipleCriteria([FirstFeasible(), MaxRuntime(left)]),
                seed=seed,
                collect_stats=False,
                display=False,
            )
            if not res.best.is_feasible():
                break
            used = res.best.num_routes()
            fleet = trial.vehicle_type(0).replace(num_available=used)
            best_data = trial.replace(vehicle_types=[fleet])
            visits = [[a.idx for a in r.schedule() if a.is_client()] for r in res.best.routes()]
            best = pyvrp.Solution(best_data, visits)
            if used <= lower:
                break
    return best_data, best


def _exploration_level(jobs: int, search_s: float) -> int:
    """Return how widely VROOM searches ``jobs`` in ``search_s``: see ``VROOM_LEVELS``."""
    return next((level for per_job, level in VROOM_LEVELS if search_s >= per_job * jobs), 0)


def _solve_vroom(
    problem: Problem, jobs: Sequence[Job], time_limit_s: float, threads: int
) -> tuple[tuple[Route, ...], list[Unassigned], dict[str, Any]]:
    import vroom

    skill_ids: dict[str, int] = {}

    def skill_set(names: Iterable[str]) -> set[int]:
        return {skill_ids.setdefault(name, len(skill_ids) + 1) for name in names}

    matrix = problem.durations_s
    if matrix.max() >= np.iinfo(np.uint32).max:
        raise SolverError("travel times exceed what VROOM can hold (2^32 s)")
    inp = vroom.Input()
    # With no cost matrix, VROOM's cost is the travel time (3600 per hour of driving).
    inp.set_durations_matrix(profile="car", matrix_input=matrix.astype(np.uint32))
    with_capacity = any(v.capacity is not None for v in problem.vehicles)
    unlimited = sum(j.demand for j in jobs) + 1
    fleet_cost = 0
    if problem.minimise_vehicles:
        # More than any set of routes can cost in travel: one vehicle fewer always wins.
        fleet_cost = int(matrix.max()) * (len(jobs) + 2)
    pinned = {j.vehicle_id for j in jobs if j.vehicle_id is not None}
    for v in problem.vehicles:
        names = _profile_key(v, pinned)
        cap = v.capacity if v.capacity is not None else unlimited
        inp.add_vehicle(
            vroom.Vehicle(
                v.id,
                start=v.start,
                end=v.end,
                capacity=[cap] if with_capacity else [],
                skills=skill_set(names),
                time_window=vroom.TimeWindow(v.shift.start_s, v.shift.end_s),
                breaks=[
                    vroom.Break(
                        b.id,
                        time_windows=[vroom.TimeWindow(b.window.start_s, b.window.end_s)],
                        service=b.duration_s,
                    )
                    for b in v.breaks
                ],
                costs=vroom.VehicleCosts(fixed=v.fixed_cost + fleet_cost),
            )
        )
    mixed = len({j.required for j in jobs}) > 1
    for job in jobs:
        wanted = set(job.skills)
        if job.vehicle_id is not None:
            wanted.add(f"\0vehicle:{job.vehicle_id}")
        inp.add_job(
            vroom.Job(
                job.id,
                location=job.location,
                default_service=job.service_s,
                delivery=[job.demand] if with_capacity else [],
                skills=skill_set(wanted),
                # Required work goes first when mixed with optional work; all-required
                # problems keep priority 0, which leaves VROOM's search as it is.
                priority=(MAX_PRIORITY if mixed else 0) if job.required else job.priority,
                time_windows=[vroom.TimeWindow(job.time_window.start_s, job.time_window.end_s)]
                if job.time_window
                else [],
            )
        )
    solution = inp.solve(
        exploration_level=_exploration_level(len(jobs), time_limit_s),
        nb_threads=max(threads, 1),
        timeout=timedelta(seconds=time_limit_s),
    )
    out = solution.to_dict()
    if isinstance(out, str):  # some pyvroom versions hand back the JSON text
        out = json.loads(out)
    by_id = {j.id: j for j in jobs}
    vehicles = {v.id: v for v in problem.vehicles}
    routes: list[Route] = []
    served: set[int] = set()
    for r in out.get("routes", []):
        vehicle = vehicles[int(r["vehicle"])]
        stops: list[Stop] = []
        breaks: list[ScheduledBreak] = []
        start_s = end_s = 0
        for step in r["steps"]:
            kind = step["type"]
            arrival = int(step["arrival"])
            wait = int(step.get("waiting_time", 0))
            if kind == "start":
                start_s = arrival
            elif kind == "end":
                end_s = arrival
            elif kind == "break":
                begin = arrival + wait
                breaks.append(
                    ScheduledBreak(
                        break_id=int(step["id"]),
                        start_s=begin,
                        end_s=begin + int(step["service"]),
                        before_stop=len(stops),
                    )
                )
            elif kind == "job":
                job = by_id[int(step["id"])]
                begin = arrival + wait + int(step.get("setup", 0))
                stops.append(
                    Stop(
                        job_id=job.id,
                        location=job.location,
                        arrival_s=arrival,
                        start_s=begin,
                        end_s=begin + int(step["service"]),
                    )
                )
                served.add(job.id)
        travel, dist = _travel(problem, vehicle, [s.location for s in stops])
        routes.append(
            Route(
                vehicle_id=vehicle.id,
                start_s=start_s,
                end_s=end_s,
                stops=tuple(stops),
                breaks=tuple(breaks),
                travel_s=travel,
                distance_m=dist,
            )
        )
    stats = {"cost": out.get("summary", {}).get("cost")}
    return tuple(routes), _missed(jobs, served), stats
