"""A crew day as a routing problem and back: jobs and crews in, routes with ETAs out.

What the work-order side hands in is a list of :class:`DayJob` (a location, time on site,
skills, an urgency, perhaps a time window or a crew it is pinned to); what it gets back is a
:class:`DaySolution` of aware datetimes, every left-out job listed with the reason. The daily
``geo311 plan`` and the re-planning after a dispatcher's move both go through
:func:`solve_day`; :func:`build_problem` and :func:`sla_priority` are pure.
"""

from __future__ import annotations

import time as clock
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from dispatch import roads, service
from dispatch.matrix import MatrixProvider, Point, TravelMatrix, provider_for
from dispatch.service import CrewDay
from dispatch.solver import Break, Job, Problem, Solution, SolverError, TimeWindow, Vehicle, solve
from geo311.kernel.settings import RoutingSettings

# A crew's territory reaches the solver as skills: a crew covering ward 4 holds "ward:4", and a
# job in ward 4 needs it, so territory is as hard a constraint as a skill.
TERRITORY_PREFIX = "ward:"


def territory_skill(ward_code: str) -> str:
    """Return the skill that stands for covering ``ward_code``."""
    return TERRITORY_PREFIX + ward_code


@dataclass(frozen=True)
class DayJob:
    """A piece of work to place on a crew's day.

    ``window`` (aware datetimes) bounds the start of the work: access hours, an appointment, or
    a narrow window round a locked stop's ETA. ``crew_id`` pins it to one crew (moved there by a
    dispatcher, or locked). ``priority`` 0-100: see :func:`sla_priority`.
    """

    id: int
    lon: float
    lat: float
    service_s: int
    skills: frozenset[str] = frozenset()
    priority: int = 0
    window: tuple[datetime, datetime] | None = None
    crew_id: int | None = None
    demand: int = 0  # units of the crew vehicle's capacity the job takes


@dataclass(frozen=True)
class CrewStart:
    """Where and when a crew becomes free, when that is not its depot at shift start (it is
    finishing a job in progress, which the plan never moves)."""

    lon: float
    lat: float
    free_at: datetime


@dataclass(frozen=True)
class PlannedStop:
    job_id: int
    seq: int
    lon: float
    lat: float
    arrival: datetime
    start: datetime
    end: datetime


@dataclass(frozen=True)
class CrewRoute:
    """One crew's planned day; ``path`` is the sequence of points to draw the route through."""

    crew_id: int
    code: str
    depart: datetime
    back: datetime
    stops: tuple[PlannedStop, ...]
    breaks: tuple[tuple[datetime, datetime], ...]
    travel_s: int
    distance_m: int | None
    path: tuple[Point, ...]


@dataclass(frozen=True)
class LeftOut:
    job_id: int
    reason: str
    detail: str


@dataclass(frozen=True)
class DaySolution:
    day: date
    routes: tuple[CrewRoute, ...]
    unassigned: tuple[LeftOut, ...]
    engine: str
    matrix_provider: str
    matrix_s: float
    solve_s: float


def sla_priority(due_at: datetime | None, *, day_start: datetime, day_end: datetime) -> int:
    """Return 0-100: how urgent a job due at ``due_at`` is for a plan of [day_start, day_end).

    Overdue before the day starts: 100. Due during the day: 70-95, sooner is higher. Due later:
    60 on the next day's start, halving with every further day; no due time: 5.
    """
    if due_at is None:
        return 5
    if due_at <= day_start:
        return 100
    if due_at < day_end:
        share = (due_at - day_start) / (day_end - day_start)
        return 95 - round(25 * share)
    # Past a few days the halving is at its floor anyway; capping the exponent keeps a plan
    # for a day years before the work is due from overflowing 2**days (it did: a 500).
    days_after = min((due_at - day_end) / timedelta(days=1), 16.0)
    return max(6, min(60, round(60 / 2**days_after)))


def _seconds(moment: datetime, epoch: datetime) -> int:
    # Aware datetimes of one zone subtract as wall-clock times; through UTC they subtract as
    # real time, which is what a shift on a daylight-saving change day needs.
    return round((moment.astimezone(UTC) - epoch.astimezone(UTC)).total_seconds())


def points_of(
    crews: Sequence[CrewDay], jobs: Sequence[DayJob], starts: Mapping[int, CrewStart]
) -> list[Point]:
    """Return the points the matrix must cover: depots and starts first, then the jobs."""
    points: list[Point] = []
    for c in crews:
        for p in ((c.depot_lon, c.depot_lat),) + (
            ((starts[c.crew_id].lon, starts[c.crew_id].lat),) if c.crew_id in starts else ()
        ):
            if p not in points:
                points.append(p)
    points.extend((j.lon, j.lat) for j in jobs)
    return points


def build_problem(
    crews: Sequence[CrewDay],
    jobs: Sequence[DayJob],
    matrix: TravelMatrix,
    *,
    epoch: datetime,
    starts: Mapping[int, CrewStart] | None = None,
) -> Problem:
    """Return the routing problem of a day; times are seconds from ``epoch``.

    ``matrix`` is over :func:`points_of` (crews, jobs, starts) in that order.
    """
    starts = starts or {}
    points = points_of(crews, jobs, starts)
    if matrix.durations_s.shape != (len(points), len(points)):
        raise SolverError("the matrix does not cover the day's points")
    index = {p: k for k, p in enumerate(points[: len(points) - len(jobs)])}
    vehicles = []
    for c in crews:
        start = starts.get(c.crew_id)
        shift_start = _seconds(c.shift_start, epoch)
        if start is not None:
            shift_start = max(shift_start, _seconds(start.free_at, epoch))
        shift_end = _seconds(c.shift_end, epoch)
        if shift_start >= shift_end:
            continue  # busy until the end of its shift: nothing more to plan for it
        vehicles.append(
            Vehicle(
                id=c.crew_id,
                start=index[(start.lon, start.lat) if start else (c.depot_lon, c.depot_lat)],
                end=index[(c.depot_lon, c.depot_lat)],
                shift=TimeWindow(shift_start, shift_end),
                skills=c.skills | {territory_skill(w) for w in c.territory},
                breaks=tuple(
                    Break(k + 1, TimeWindow(_seconds(a, epoch), _seconds(b, epoch)), s)
                    for k, (a, b, s) in enumerate(c.breaks)
                    # A break already over by the time the crew is free is not planned again.
                    if _seconds(b, epoch) >= shift_start
                ),
                capacity=c.capacity,
            )
        )
    first_job = len(points) - len(jobs)
    return Problem(
        vehicles=tuple(vehicles),
        jobs=tuple(
            Job(
                id=j.id,
                location=first_job + k,
                service_s=j.service_s,
                time_window=(
                    TimeWindow(_seconds(j.window[0], epoch), _seconds(j.window[1], epoch))
                    if j.window
                    else None
                ),
                skills=j.skills,
                priority=j.priority,
                demand=j.demand,
                vehicle_id=j.crew_id,
            )
            for k, j in enumerate(jobs)
        ),
        durations_s=matrix.durations_s,
        distances_m=matrix.distances_m,
    )


def to_day_solution(
    day: date,
    problem: Problem,
    plan: Solution,
    *,
    crews: Sequence[CrewDay],
    jobs: Sequence[DayJob],
    points: Sequence[Point],
    epoch: datetime,
    matrix_provider: str,
    matrix_s: float,
) -> DaySolution:
    """Return the solver's plan in datetimes and points."""
    zone = epoch.tzinfo

    def at(seconds: int) -> datetime:
        return (epoch.astimezone(UTC) + timedelta(seconds=seconds)).astimezone(zone)

    by_id = {j.id: j for j in jobs}
    codes = {c.crew_id: c.code for c in crews}
    vehicles = {v.id: v for v in problem.vehicles}
    routes = []
    for r in plan.routes:
        if not r.stops:
            continue
        stops = tuple(
            PlannedStop(
                job_id=s.job_id,
                seq=k + 1,
                lon=by_id[s.job_id].lon,
                lat=by_id[s.job_id].lat,
                arrival=at(s.arrival_s),
                start=at(s.start_s),
                end=at(s.end_s),
            )
            for k, s in enumerate(r.stops)
        )
        vehicle = vehicles[r.vehicle_id]
        routes.append(
            CrewRoute(
                crew_id=r.vehicle_id,
                code=codes[r.vehicle_id],
                depart=at(r.start_s),
                back=at(r.end_s),
                stops=stops,
                breaks=tuple((at(b.start_s), at(b.end_s)) for b in r.breaks),
                travel_s=r.travel_s,
                distance_m=r.distance_m,
                path=(
                    points[vehicle.start],
                    *((s.lon, s.lat) for s in stops),
                    points[vehicle.end],
                ),
            )
        )
    return DaySolution(
        day=day,
        routes=tuple(routes),
        unassigned=tuple(LeftOut(u.job_id, u.reason, u.detail) for u in plan.unassigned),
        engine=plan.engine,
        matrix_provider=matrix_provider,
        matrix_s=matrix_s,
        solve_s=plan.solve_s,
    )


def solve_day(
    session: Session,
    *,
    jurisdiction_id: int,
    day: date,
    jobs: Sequence[DayJob],
    routing: RoutingSettings,
    crew_ids: Sequence[int] | None = None,
    starts: Mapping[int, CrewStart] | None = None,
    provider: MatrixProvider | None = None,
    time_limit_s: float | None = None,
    crews_on: Sequence[CrewDay] | None = None,
) -> DaySolution:
    """Return the plan of ``day`` for the crews working then (or just ``crew_ids``).

    Travel times come from the road network when one is loaded, else the straight line (or
    from ``provider``). ``crews_on``: the crews working that day, when the caller read them
    already. Reads only: the caller stores what it keeps.
    """
    zone = service.jurisdiction_zone(session, jurisdiction_id=jurisdiction_id)
    epoch = datetime.combine(day, datetime.min.time(), tzinfo=zone)
    crews = list(
        crews_on
        if crews_on is not None
        else service.crews_on(session, jurisdiction_id=jurisdiction_id, day=day)
    )
    if crew_ids is not None:
        wanted = set(crew_ids)
        crews = [c for c in crews if c.crew_id in wanted]
    starts = dict(starts or {})
    points = points_of(crews, jobs, starts)
    provider = provider or provider_for(session, jurisdiction_id=jurisdiction_id, routing=routing)
    started = clock.perf_counter()
    matrix = provider.matrix(points)
    matrix_s = clock.perf_counter() - started
    problem = build_problem(crews, jobs, matrix, epoch=epoch, starts=starts)
    plan = solve(
        problem,
        time_limit_s=time_limit_s or routing.time_limit_s,
        engine=routing.engine,
        seed=routing.seed,
        threads=routing.threads,
        no_improvement=routing.no_improvement,
    )
    return to_day_solution(
        day,
        problem,
        plan,
        crews=crews,
        jobs=jobs,
        points=points,
        epoch=epoch,
        matrix_provider=provider.name,
        matrix_s=matrix_s,
    )


def route_geometry(session: Session, *, jurisdiction_id: int, route: CrewRoute) -> list[Point]:
    """Return the line to draw for a route: :func:`route_geometries` of one."""
    return route_geometries(session, jurisdiction_id=jurisdiction_id, routes=[route])[0]


def route_geometries(
    session: Session, *, jurisdiction_id: int, routes: Sequence[CrewRoute]
) -> list[list[Point]]:
    """Return the line to draw for each route: along the roads when a network is loaded (all
    routes in one search, :func:`dispatch.roads.route_lines`), else straight between the
    stops."""
    network = roads.get_network(session, jurisdiction_id=jurisdiction_id)
    if network is None or network.routable_edges == 0:
        return [list(r.path) for r in routes]
    return roads.route_lines(
        session, jurisdiction_id=jurisdiction_id, paths=[r.path for r in routes]
    )
