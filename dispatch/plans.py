"""Stored day plans: make one from the open work orders, move jobs between crews, lock stops,
re-plan the crews a move touched. Plain functions, the session first; they flush, the caller
commits.

A day's plan is one row (``DayPlan``) whose ``version`` grows with every change; every change
takes that row's lock first, so two dispatchers acting at once get one winner and one
``StalePlan`` conflict, never a lost move. What a plan owes the work orders it places: their
crew (``WorkOrder.crew_id``) and the status ``scheduled``, through the work-order lifecycle.

Rules kept here, in one place:

* A crew's in-progress (and finished) stops are never moved: a re-plan keeps them as they are
  and starts the crew from the job it is working on.
* A locked stop keeps its crew and its start time, within ``routing.lock_slack_s``.
* A dispatcher's move pins the job to the crew (``WorkOrderTerms.pinned_crew_id``) for every
  later plan, until another move; sending a job back to the queue takes it off every plan.
* A job's crew must hold the skills the rules give it and cover its ward; nothing overrides
  that, not even a dispatcher (``NotEligible``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from geoalchemy2 import WKTElement
from geoalchemy2.shape import to_shape
from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from dispatch import assignment, rules, service
from dispatch.errors import JobInProgress, NoPlan, NotEligible, NotOnPlan, StalePlan, UnknownCrew
from dispatch.matrix import MatrixProvider
from dispatch.models import (
    Crew,
    DayPlan,
    PlanLeftOut,
    PlanRoute,
    PlanStop,
    QueuedWorkOrder,
    WorkOrderTerms,
)
from dispatch.planning import (
    TERRITORY_PREFIX,
    CrewStart,
    DayJob,
    DaySolution,
    LeftOut,
    route_geometry,
    sla_priority,
    solve_day,
    territory_skill,
)
from geo311.kernel.errors import FieldError, NotFound, ValidationFailed
from geo311.kernel.settings import RoutingSettings
from work_orders import audit
from work_orders import service as work_orders_service
from work_orders.models import Incident, WorkOrder

# Open work a plan may place. On hold and transferred work waits for someone else first.
PLANNABLE = ("new", "triaged", "assigned", "scheduled", "reopened")
# Stops a re-plan never touches: the crew is on it, or it is done.
FROZEN = ("in_progress", "completed", "closed")
MAX_MOVE = 500
# SLA urgency fills priorities up to 90; above it are the stops a dispatcher fixed (locked, an
# appointment, or just moved to a crew), which the solver keeps even on a day with more overdue
# work than hours.
SLA_PRIORITY_SHARE = 0.9
MUST_PRIORITY = 100


@dataclass(frozen=True)
class WorkFacts:
    """What planning needs to know of one open work order, read in one query."""

    work_order_id: int
    incident_id: int
    status: str
    crew_id: int | None
    category_code: str
    lon: float
    lat: float
    ward_code: str | None
    asset_type: str | None
    due_at: datetime
    service_s: int | None
    demand: int
    access: tuple[time, time] | None
    pinned_crew_id: int | None
    appointment: tuple[datetime, datetime] | None
    stop_crew_id: int | None
    locked: bool
    stop_start: datetime | None


@dataclass
class PlanChange:
    """What a change did, for the answer and the audit trail."""

    plan: DayPlan
    crews: list[int] = field(default_factory=list)
    moved: list[int] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    matrix_s: float = 0.0
    solve_s: float = 0.0


def day_bounds(session: Session, *, jurisdiction_id: int, day: date) -> tuple[datetime, datetime]:
    """Return the start and end of ``day`` in the jurisdiction's time zone."""
    zone = service.jurisdiction_zone(session, jurisdiction_id=jurisdiction_id)
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start, end


# --- the plan row and its version -------------------------------------------------------------


def get_plan(session: Session, *, jurisdiction_id: int, day: date) -> DayPlan:
    """Return the plan of ``day``; NoPlan if it was never planned."""
    plan = session.scalar(
        select(DayPlan).where(DayPlan.jurisdiction_id == jurisdiction_id, DayPlan.day == day)
    )
    if plan is None:
        raise NoPlan(f"{day.isoformat()} has not been planned yet: POST /api/v1/plans?date=….")
    return plan


def _lock_plan(
    session: Session,
    *,
    jurisdiction_id: int,
    day: date,
    expected_version: int | None,
    create: bool = False,
    actor: str = "",
) -> DayPlan:
    """Return the day's plan row locked for this transaction, checking the caller's version."""
    if create:
        session.execute(
            pg_insert(DayPlan)
            .values(
                jurisdiction_id=jurisdiction_id,
                day=day,
                version=0,
                engine="",
                matrix_provider="",
                matrix_s=0.0,
                solve_s=0.0,
                planned_by=actor,
            )
            .on_conflict_do_nothing(index_elements=["jurisdiction_id", "day"])
        )
    plan = session.scalar(
        select(DayPlan)
        .where(DayPlan.jurisdiction_id == jurisdiction_id, DayPlan.day == day)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if plan is None:
        raise NoPlan(f"{day.isoformat()} has not been planned yet: POST /api/v1/plans?date=….")
    if expected_version is not None and plan.version != expected_version:
        raise StalePlan(
            f"The plan of {day.isoformat()} is at version {plan.version}, not "
            f"{expected_version}: someone changed it. Load it again and redo your change.",
            extra={"current_version": plan.version},
        )
    return plan


# --- reading the work ---------------------------------------------------------------------------

_WORK_SQL = """
SELECT w.id, w.incident_id, w.status, w.crew_id, w.due_at, i.category_code,
       ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, wd.code AS ward_code,
       COALESCE(a.asset_type, c.asset_type) AS asset_type,
       st.service_s, COALESCE(st.demand, 0) AS demand, st.access_start, st.access_end,
       t.pinned_crew_id, t.window_start, t.window_end,
       ps.crew_id AS stop_crew_id, COALESCE(ps.locked, false) AS locked, ps.start_at
FROM work_orders w
JOIN incidents i ON i.jurisdiction_id = w.jurisdiction_id AND i.id = w.incident_id
JOIN service_categories c
  ON c.jurisdiction_id = i.jurisdiction_id AND c.code = i.category_code
LEFT JOIN wards wd ON wd.jurisdiction_id = i.jurisdiction_id AND wd.id = i.ward_id
LEFT JOIN assets a ON a.jurisdiction_id = i.jurisdiction_id AND a.id = i.asset_id
LEFT JOIN category_service_times st
  ON st.jurisdiction_id = c.jurisdiction_id AND st.category_code = c.code
LEFT JOIN work_order_terms t ON t.jurisdiction_id = w.jurisdiction_id AND t.work_order_id = w.id
LEFT JOIN plan_stops ps
  ON ps.jurisdiction_id = w.jurisdiction_id AND ps.plan_id = :plan AND ps.work_order_id = w.id
WHERE w.jurisdiction_id = :jid
  AND w.status = ANY(:statuses)
  AND NOT EXISTS (SELECT 1 FROM dispatch_queue q
                  WHERE q.jurisdiction_id = w.jurisdiction_id AND q.work_order_id = w.id)
"""


def _read_work(session: Session, sql: str, params: Mapping[str, Any]) -> list[WorkFacts]:
    rows = session.execute(text(sql), params).all()
    return [
        WorkFacts(
            work_order_id=int(r.id),
            incident_id=int(r.incident_id),
            status=str(r.status),
            crew_id=None if r.crew_id is None else int(r.crew_id),
            category_code=str(r.category_code),
            lon=float(r.lon),
            lat=float(r.lat),
            ward_code=r.ward_code,
            asset_type=r.asset_type,
            due_at=r.due_at,
            service_s=r.service_s,
            demand=int(r.demand),
            access=(r.access_start, r.access_end) if r.access_start is not None else None,
            pinned_crew_id=r.pinned_crew_id,
            appointment=(r.window_start, r.window_end) if r.window_start is not None else None,
            stop_crew_id=r.stop_crew_id,
            locked=bool(r.locked),
            stop_start=r.start_at,
        )
        for r in rows
    ]


def work_for_day(
    session: Session,
    *,
    jurisdiction_id: int,
    day: date,
    plan_id: int,
    horizon_days: int,
    today: date,
) -> list[WorkFacts]:
    """Return the open work a plan of ``day`` takes: due within the horizon, already scheduled,
    pinned to a crew, or with an appointment that day; not queued for a dispatcher, not on the
    plan of another day that is still to come (work left undone on a past day's plan comes
    back), and no appointment on another day. ``today`` is the jurisdiction's date now."""
    start, end = day_bounds(session, jurisdiction_id=jurisdiction_id, day=day)
    # Constant SQL; every value is a bound parameter.
    sql = (
        _WORK_SQL  # noqa: S608
        + """
  AND NOT EXISTS (SELECT 1 FROM plan_stops s2
                  JOIN day_plans p2
                    ON p2.jurisdiction_id = s2.jurisdiction_id AND p2.id = s2.plan_id
                  WHERE s2.jurisdiction_id = w.jurisdiction_id AND s2.work_order_id = w.id
                    AND p2.day <> :day AND p2.day >= :today)
  AND (t.window_start IS NULL OR (t.window_end >= :start AND t.window_start < :end))
  AND (w.due_at < :horizon OR w.status = 'scheduled' OR t.pinned_crew_id IS NOT NULL
       OR t.window_start IS NOT NULL OR ps.work_order_id IS NOT NULL)
ORDER BY w.id
"""
    )
    return _read_work(
        session,
        sql,
        {
            "jid": jurisdiction_id,
            "plan": plan_id,
            "statuses": list(PLANNABLE),
            "day": day,
            "today": today,
            "start": start,
            "end": end,
            "horizon": end + timedelta(days=horizon_days),
        },
    )


def work_by_id(
    session: Session, *, jurisdiction_id: int, plan_id: int, work_order_ids: Iterable[int]
) -> list[WorkFacts]:
    """Return the plannable, unqueued work orders among ``work_order_ids``."""
    return _read_work(
        session,
        _WORK_SQL + " AND w.id = ANY(:ids) ORDER BY w.id",
        {
            "jid": jurisdiction_id,
            "plan": plan_id,
            "statuses": list(PLANNABLE),
            "ids": sorted(set(work_order_ids)),
        },
    )


def _clip(
    window: tuple[datetime, datetime], start: datetime, end: datetime
) -> tuple[datetime, datetime] | None:
    a, b = max(window[0], start), min(window[1], end)
    return (a, b) if a <= b else None


def to_day_job(
    facts: WorkFacts,
    *,
    rule_set: Sequence[rules.SkillRule],
    routing: RoutingSettings,
    day: date,
    day_start: datetime,
    day_end: datetime,
    crew_id: int | None = None,
    priority: int | None = None,
) -> DayJob:
    """Return the work order as the solver sees it.

    Skills: what the rules give its category and asset type, plus its ward as a territory
    skill. Window: a locked stop's start ± the slack, else the appointment, else the
    category's access hours that day. Crew: ``crew_id``, else the locked stop's crew, else
    the dispatcher's pin.
    """
    skills = set(
        rules.required_skills(
            rule_set, category_code=facts.category_code, asset_type=facts.asset_type
        )
    )
    if facts.ward_code is not None:
        skills.add(territory_skill(facts.ward_code))
    window: tuple[datetime, datetime] | None = None
    pinned = crew_id
    urgency = round(
        sla_priority(facts.due_at, day_start=day_start, day_end=day_end) * SLA_PRIORITY_SHARE
    )
    if facts.locked and facts.stop_start is not None:
        slack = timedelta(seconds=routing.lock_slack_s)
        window = (facts.stop_start - slack, facts.stop_start + slack)
        pinned = pinned or facts.stop_crew_id
        urgency = MUST_PRIORITY
    elif facts.appointment is not None:
        window = _clip(facts.appointment, day_start, day_end)
        urgency = MUST_PRIORITY  # a promise made to a resident comes before the backlog
    elif facts.access is not None:
        zone = day_start.tzinfo
        window = (
            datetime.combine(day, facts.access[0], tzinfo=zone),
            datetime.combine(day, facts.access[1], tzinfo=zone),
        )
    pinned = pinned or facts.pinned_crew_id
    return DayJob(
        id=facts.work_order_id,
        lon=facts.lon,
        lat=facts.lat,
        service_s=routing.default_service_s if facts.service_s is None else facts.service_s,
        skills=frozenset(skills),
        priority=urgency if priority is None else priority,
        window=window,
        crew_id=pinned,
        demand=facts.demand,
    )


# --- in-progress work: where a crew starts from ---------------------------------------------


def crew_starts(
    session: Session,
    *,
    jurisdiction_id: int,
    day: date,
    now: datetime,
    routing: RoutingSettings,
) -> dict[int, CrewStart]:
    """Return, for a plan of today, where each crew with a job in progress becomes free.

    The job stays the crew's (it is never moved); the crew is free when the time on site has
    passed since it started, and not before ``now``. Other days: nobody is busy yet.
    """
    start, end = day_bounds(session, jurisdiction_id=jurisdiction_id, day=day)
    if not start <= now < end:
        return {}
    rows = session.execute(
        text(
            """
            SELECT DISTINCT ON (w.crew_id) w.crew_id, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat,
                   COALESCE(st.service_s, :default_s) AS service_s,
                   COALESCE((SELECT max(e.at) FROM audit_events e
                             WHERE e.jurisdiction_id = w.jurisdiction_id
                               AND e.entity = 'work_order' AND e.entity_id = w.id
                               AND e.to_state = 'in_progress'), w.updated_at) AS started_at
            FROM work_orders w
            JOIN incidents i ON i.jurisdiction_id = w.jurisdiction_id AND i.id = w.incident_id
            LEFT JOIN category_service_times st
              ON st.jurisdiction_id = i.jurisdiction_id AND st.category_code = i.category_code
            WHERE w.jurisdiction_id = :jid AND w.status = 'in_progress' AND w.crew_id IS NOT NULL
            ORDER BY w.crew_id, started_at DESC
            """
        ),
        {"jid": jurisdiction_id, "default_s": routing.default_service_s},
    ).all()
    return {
        int(r.crew_id): CrewStart(
            lon=float(r.lon),
            lat=float(r.lat),
            free_at=max(now, r.started_at + timedelta(seconds=int(r.service_s))),
        )
        for r in rows
    }


# --- writing a solved day -----------------------------------------------------------------------


def _crew_stops(
    session: Session, plan: DayPlan, crew_ids: Iterable[int], statuses: Sequence[str]
) -> list[tuple[int, int, int]]:
    """Return (work order, crew, seq) of the crews' stops whose work order is in
    ``statuses``."""
    rows = session.execute(
        select(PlanStop.work_order_id, PlanStop.crew_id, PlanStop.seq)
        .join(
            WorkOrder,
            (WorkOrder.jurisdiction_id == PlanStop.jurisdiction_id)
            & (WorkOrder.id == PlanStop.work_order_id),
        )
        .where(
            PlanStop.jurisdiction_id == plan.jurisdiction_id,
            PlanStop.plan_id == plan.id,
            PlanStop.crew_id.in_(list(crew_ids)),
            WorkOrder.status.in_(statuses),
        )
    ).all()
    return [(int(w), int(c), int(q)) for w, c, q in rows]


def _frozen_stops(session: Session, plan: DayPlan, crew_ids: Iterable[int]) -> dict[int, int]:
    """Return crew id → the last sequence number of its stops a re-plan must keep."""
    last: dict[int, int] = {}
    for _, crew_id, seq in _crew_stops(session, plan, crew_ids, FROZEN):
        last[crew_id] = max(last.get(crew_id, 0), seq)
    return last


def _clear_crews(session: Session, plan: DayPlan, crew_ids: Sequence[int]) -> None:
    """Delete the crews' stops that a re-plan replaces (never the frozen ones)."""
    if not crew_ids:
        return
    frozen = select(WorkOrder.id).where(
        WorkOrder.jurisdiction_id == plan.jurisdiction_id, WorkOrder.status.in_(FROZEN)
    )
    session.execute(
        delete(PlanStop).where(
            PlanStop.jurisdiction_id == plan.jurisdiction_id,
            PlanStop.plan_id == plan.id,
            PlanStop.crew_id.in_(crew_ids),
            PlanStop.work_order_id.not_in(frozen),
        )
    )


def _line(coords: Sequence[tuple[float, float]]) -> WKTElement | None:
    if len(coords) < 2:
        return None
    return WKTElement("LINESTRING(" + ", ".join(f"{x!r} {y!r}" for x, y in coords) + ")", 4326)


def _store(
    session: Session,
    *,
    plan: DayPlan,
    solved: DaySolution,
    crew_ids: Sequence[int],
    jobs: Mapping[int, DayJob],
    locked: set[int],
    actor: str,
) -> None:
    """Write the solved routes of ``crew_ids`` and the fate of ``jobs`` onto ``plan``."""
    jid = plan.jurisdiction_id
    codes = {
        int(i): str(c)
        for i, c in session.execute(select(Crew.id, Crew.code).where(Crew.jurisdiction_id == jid))
    }
    kept = _frozen_stops(session, plan, crew_ids)
    _clear_crews(session, plan, crew_ids)
    session.execute(
        delete(PlanLeftOut).where(
            PlanLeftOut.jurisdiction_id == jid,
            PlanLeftOut.plan_id == plan.id,
            PlanLeftOut.work_order_id.in_(list(jobs)),
        )
    )
    # A job now placed on one of these crews leaves any other crew's route of the day.
    placed = [s.job_id for r in solved.routes for s in r.stops]
    session.execute(
        delete(PlanStop).where(
            PlanStop.jurisdiction_id == jid,
            PlanStop.plan_id == plan.id,
            PlanStop.work_order_id.in_(placed),
        )
    )
    routes = {r.crew_id: r for r in solved.routes}
    now = datetime.now(UTC)
    for crew_id in crew_ids:
        route = routes.get(crew_id)
        row = session.get(PlanRoute, (jid, plan.id, crew_id))
        if route is None:
            if row is not None and crew_id not in kept:
                session.delete(row)
            continue
        line = route_geometry(session, jurisdiction_id=jid, route=route)
        values = {
            "depart": route.depart,
            "back": route.back,
            "travel_s": route.travel_s,
            "distance_m": route.distance_m,
            "breaks": [[a.isoformat(), b.isoformat()] for a, b in route.breaks],
            "geom": _line(line),
            "planned_at": now,
        }
        if row is None:
            session.add(PlanRoute(jurisdiction_id=jid, plan_id=plan.id, crew_id=crew_id, **values))
        else:
            for key, value in values.items():
                setattr(row, key, value)
    session.flush()
    first = {c: kept.get(c, 0) for c in crew_ids}
    session.add_all(
        PlanStop(
            jurisdiction_id=jid,
            plan_id=plan.id,
            work_order_id=s.job_id,
            crew_id=r.crew_id,
            seq=first[r.crew_id] + s.seq,
            arrival=s.arrival,
            start_at=s.start,
            end_at=s.end,
            locked=s.job_id in locked,
        )
        for r in solved.routes
        for s in r.stops
    )
    session.add_all(
        PlanLeftOut(
            jurisdiction_id=jid,
            plan_id=plan.id,
            work_order_id=u.job_id,
            reason=u.reason,
            detail=_explain(u, jobs.get(u.job_id), codes),
        )
        for u in solved.unassigned
    )
    session.flush()
    _schedule(session, jurisdiction_id=jid, solved=solved, actor=actor)


def _explain(left: LeftOut, job: DayJob | None, codes: Mapping[int, str]) -> str:
    """Return why a job is left out in a dispatcher's words (crews and wards, not solver
    vehicles and skills)."""
    if job is None:
        return left.detail
    if left.reason == "no_skill":
        wards = sorted(
            s.removeprefix(TERRITORY_PREFIX) for s in job.skills if s.startswith(TERRITORY_PREFIX)
        )
        skills = sorted(s for s in job.skills if not s.startswith(TERRITORY_PREFIX))
        needs = " and ".join(
            part
            for part in (
                f"holds {', '.join(skills)}" if skills else "",
                f"covers ward {wards[0]}" if wards else "",
            )
            if part
        )
        return f"no crew working that day {needs}" if needs else left.detail
    if left.reason == "vehicle_unavailable" and job.crew_id is not None:
        crew = codes.get(job.crew_id, str(job.crew_id))
        return f"it is pinned to crew {crew}, which does not work that day"
    return left.detail


def _schedule(session: Session, *, jurisdiction_id: int, solved: DaySolution, actor: str) -> None:
    """Give each placed work order its crew and the status ``scheduled`` (the residents' notice
    names the day); a scheduled one the plan could no longer place goes back to ``assigned``
    (its crew kept as a suggestion)."""
    crew_of = {s.job_id: r.crew_id for r in solved.routes for s in r.stops}
    dropped = {u.job_id for u in solved.unassigned}
    if not crew_of and not dropped:
        return
    orders = session.scalars(
        select(WorkOrder)
        .where(
            WorkOrder.jurisdiction_id == jurisdiction_id,
            WorkOrder.id.in_(list(crew_of) + list(dropped)),
        )
        .order_by(WorkOrder.id)
    )
    for order in orders:
        if order.id in dropped:
            if order.status == "scheduled":
                work_orders_service.transition(
                    session, incident_or_work_order=order, to="assigned", actor=actor
                )
            continue
        order.crew_id = crew_of[order.id]
        if order.status in ("new", "triaged"):
            work_orders_service.transition(
                session, incident_or_work_order=order, to="assigned", actor=actor
            )
        if order.status != "scheduled":
            work_orders_service.transition(
                session,
                incident_or_work_order=order,
                to="scheduled",
                actor=actor,
                notice_context={"scheduled_for": solved.day.isoformat()},
            )
    session.flush()


def _solve(
    session: Session,
    *,
    jurisdiction_id: int,
    day: date,
    jobs: Sequence[DayJob],
    crew_ids: Sequence[int] | None,
    routing: RoutingSettings,
    now: datetime,
    provider: MatrixProvider | None,
    time_limit_s: float,
) -> DaySolution:
    starts = crew_starts(
        session, jurisdiction_id=jurisdiction_id, day=day, now=now, routing=routing
    )
    return solve_day(
        session,
        jurisdiction_id=jurisdiction_id,
        day=day,
        jobs=jobs,
        routing=routing,
        crew_ids=crew_ids,
        starts=starts,
        provider=provider,
        time_limit_s=time_limit_s,
    )


def _recorded(
    session: Session,
    *,
    plan: DayPlan,
    action: str,
    actor: str,
    solved: DaySolution | None,
    crews: Sequence[int] = (),
    moved: Sequence[int] = (),
    **data: Any,
) -> PlanChange:
    """Return what a change did, after writing it to the audit trail (staff-only: a plan's
    events carry no status)."""
    audit.record(
        session,
        jurisdiction_id=plan.jurisdiction_id,
        entity="day_plan",
        entity_id=plan.id,
        action=action,
        actor=actor,
        data={"day": plan.day.isoformat(), "version": plan.version, **data},
    )
    return PlanChange(
        plan=plan,
        crews=list(crews),
        moved=list(moved),
        left_out=list(solved.unassigned) if solved else [],
        matrix_s=solved.matrix_s if solved else 0.0,
        solve_s=solved.solve_s if solved else 0.0,
    )


def _bump(plan: DayPlan, solved: DaySolution | None, actor: str) -> None:
    plan.version = plan.version + 1
    plan.planned_by = actor
    if solved is not None:
        plan.engine = solved.engine
        plan.matrix_provider = solved.matrix_provider
        plan.matrix_s = solved.matrix_s
        plan.solve_s = solved.solve_s


# --- the three things a dispatcher does ---------------------------------------------------------


def make_plan(
    session: Session,
    *,
    jurisdiction_id: int,
    day: date,
    routing: RoutingSettings,
    actor: str,
    expected_version: int | None = None,
    now: datetime | None = None,
    provider: MatrixProvider | None = None,
    time_limit_s: float | None = None,
) -> PlanChange:
    """Return the change after planning ``day`` for every crew working then.

    First the assignment rules run again over the dispatcher queue's rule-made rows and any
    open work with no crew (:func:`dispatch.assignment.assign_queued`): work that waited for a
    crew to be on shift, or for a territory to be fixed, gets onto the plan without anyone
    having to remember it. Then it takes every open work order the day should see
    (:func:`work_for_day`); keeps locked stops, pins and in-progress work; lists what does
    not fit with the reason.
    """
    now = now or datetime.now(UTC)
    plan = _lock_plan(
        session,
        jurisdiction_id=jurisdiction_id,
        day=day,
        expected_version=expected_version,
        create=True,
        actor=actor,
    )
    assignment.assign_queued(
        session,
        jurisdiction_id=jurisdiction_id,
        actor=f"{assignment.ACTOR} (plan of {day.isoformat()})",
        default_service_s=routing.default_service_s,
        now=now,
    )
    day_start, day_end = day_bounds(session, jurisdiction_id=jurisdiction_id, day=day)
    work = work_for_day(
        session,
        jurisdiction_id=jurisdiction_id,
        day=day,
        plan_id=plan.id,
        horizon_days=routing.horizon_days,
        today=now.astimezone(day_start.tzinfo).date(),
    )
    rule_set = service.rule_set(session, jurisdiction_id=jurisdiction_id)
    jobs = [
        to_day_job(
            w, rule_set=rule_set, routing=routing, day=day, day_start=day_start, day_end=day_end
        )
        for w in work
    ]
    crews = [c.crew_id for c in service.crews_on(session, jurisdiction_id=jurisdiction_id, day=day)]
    solved = _solve(
        session,
        jurisdiction_id=jurisdiction_id,
        day=day,
        jobs=jobs,
        crew_ids=None,
        routing=routing,
        now=now,
        provider=provider,
        time_limit_s=time_limit_s or routing.time_limit_s,
    )
    # Crews with a route from an earlier plan but none now lose it (unless it has frozen stops).
    earlier = set(
        session.scalars(
            select(PlanRoute.crew_id).where(
                PlanRoute.jurisdiction_id == jurisdiction_id, PlanRoute.plan_id == plan.id
            )
        )
    )
    scope = sorted(set(crews) | earlier)
    # Left-out rows of work that is no longer open or no longer this day's are stale too.
    session.execute(
        delete(PlanLeftOut).where(
            PlanLeftOut.jurisdiction_id == jurisdiction_id, PlanLeftOut.plan_id == plan.id
        )
    )
    _store(
        session,
        plan=plan,
        solved=solved,
        crew_ids=scope,
        jobs={j.id: j for j in jobs},
        locked={w.work_order_id for w in work if w.locked},
        actor=actor,
    )
    _bump(plan, solved, actor)
    session.flush()
    return _recorded(
        session,
        plan=plan,
        action="planned",
        actor=actor,
        solved=solved,
        crews=[r.crew_id for r in solved.routes],
        jobs=len(jobs),
        placed=sum(len(r.stops) for r in solved.routes),
        left_out=len(solved.unassigned),
        engine=solved.engine,
    )


def _crew_by_code(session: Session, jurisdiction_id: int, code: str) -> Crew:
    crew = session.scalar(
        select(Crew).where(Crew.jurisdiction_id == jurisdiction_id, Crew.code == code)
    )
    if crew is None:
        raise UnknownCrew(f"No crew {code!r}.")
    return crew


def _check_movable(
    session: Session, *, jurisdiction_id: int, work_order_ids: Sequence[int]
) -> dict[int, WorkOrder]:
    # Incidents first, then work orders, as the lifecycle locks them: a crew starting one of
    # these jobs at this instant either waits for the move or makes it fail as in progress.
    session.execute(
        select(Incident.id)
        .where(
            Incident.jurisdiction_id == jurisdiction_id,
            Incident.id.in_(
                select(WorkOrder.incident_id).where(
                    WorkOrder.jurisdiction_id == jurisdiction_id,
                    WorkOrder.id.in_(work_order_ids),
                )
            ),
        )
        .order_by(Incident.id)
        .with_for_update()
    ).all()
    orders = {
        o.id: o
        for o in session.scalars(
            select(WorkOrder)
            .where(WorkOrder.jurisdiction_id == jurisdiction_id, WorkOrder.id.in_(work_order_ids))
            .order_by(WorkOrder.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    missing = [i for i in work_order_ids if i not in orders]
    if missing:
        raise ValidationFailed(
            f"No work order {', '.join(map(str, missing))}.",
            errors=[
                FieldError("work_order_ids", f"no work order {i}", "not_found") for i in missing
            ],
        )
    busy = [o for o in orders.values() if o.status == "in_progress"]
    if busy:
        raise JobInProgress(
            "A crew is working on work order "
            + ", ".join(str(o.id) for o in busy)
            + "; in-progress jobs are never moved. Nothing was changed.",
            extra={"work_order_ids": [o.id for o in busy]},
        )
    closed = [o for o in orders.values() if o.status not in PLANNABLE]
    if closed:
        raise ValidationFailed(
            "Only open work can be moved; "
            + ", ".join(f"work order {o.id} is {o.status!r}" for o in closed)
            + ".",
            errors=[
                FieldError("work_order_ids", f"work order {o.id} is {o.status}", "not_open")
                for o in closed
            ],
        )
    return orders


def _check_eligible(
    session: Session,
    *,
    jurisdiction_id: int,
    crew: Crew,
    day: date,
    work: Sequence[WorkFacts],
) -> None:
    """Raise NotEligible unless ``crew`` works on ``day``, holds every skill and covers every
    ward the work needs, and no appointment puts the work on another day."""
    view = service.get_crew(session, jurisdiction_id=jurisdiction_id, code=crew.code)
    errors: list[FieldError] = []
    if not view.active or day.isoweekday() not in view.workdays:
        errors.append(FieldError("to_crew", f"crew {crew.code} does not work on {day.isoformat()}"))
    rule_set = service.rule_set(session, jurisdiction_id=jurisdiction_id)
    held = set(view.skills)
    day_start, day_end = day_bounds(session, jurisdiction_id=jurisdiction_id, day=day)
    for w in work:
        if w.appointment is not None and _clip(w.appointment, day_start, day_end) is None:
            errors.append(
                FieldError(
                    "work_order_ids",
                    f"work order {w.work_order_id} has an appointment at "
                    f"{w.appointment[0].astimezone(day_start.tzinfo).isoformat()}, not on "
                    f"{day.isoformat()}: change the appointment first",
                    "appointment_elsewhere",
                )
            )
        needs = rules.required_skills(
            rule_set, category_code=w.category_code, asset_type=w.asset_type
        )
        lacking = sorted(needs - held)
        if lacking:
            errors.append(
                FieldError(
                    "work_order_ids",
                    f"work order {w.work_order_id} needs {', '.join(lacking)}, "
                    f"which crew {crew.code} does not hold",
                    "missing_skill",
                )
            )
        if w.ward_code is not None and w.ward_code not in view.territory:
            errors.append(
                FieldError(
                    "work_order_ids",
                    f"work order {w.work_order_id} is in ward {w.ward_code}, "
                    f"outside crew {crew.code}'s territory",
                    "outside_territory",
                )
            )
    if errors:
        raise NotEligible(
            f"Crew {crew.code} may not take this work; nothing was moved.", errors=errors
        )


def _may_take(crews: Sequence[service.CrewDay], job: DayJob) -> bool:
    """Return whether one of ``crews`` may do ``job``: its pinned crew, or skills and ward."""
    if job.crew_id is not None:
        return any(c.crew_id == job.crew_id for c in crews)
    return any(job.skills <= c.skills | {territory_skill(w) for w in c.territory} for c in crews)


def _replan(
    session: Session,
    *,
    plan: DayPlan,
    crew_ids: Sequence[int],
    keep_crew: Mapping[int, int],
    urgent: set[int],
    extra_jobs: Sequence[int],
    routing: RoutingSettings,
    actor: str,
    now: datetime,
    provider: MatrixProvider | None,
    time_limit_s: float | None,
) -> DaySolution:
    """Solve the day again for ``crew_ids`` only and store it.

    Their current open stops come back pinned to the crew in ``keep_crew`` (a move keeps
    everyone else's work where it was); ``urgent`` jobs (just moved by a dispatcher) get the
    top priority so the crew makes room for them. Crews not working that day are left alone.
    """
    jid = plan.jurisdiction_id
    wanted = set(crew_ids)
    crews = [
        c
        for c in service.crews_on(session, jurisdiction_id=jid, day=plan.day)
        if c.crew_id in wanted
    ]
    crew_ids = [c.crew_id for c in crews]
    on_routes = {w for w, _, _ in _crew_stops(session, plan, crew_ids, PLANNABLE)}
    ids = on_routes | set(extra_jobs) | set(keep_crew)
    work = work_by_id(session, jurisdiction_id=jid, plan_id=plan.id, work_order_ids=ids)
    day_start, day_end = day_bounds(session, jurisdiction_id=jid, day=plan.day)
    rule_set = service.rule_set(session, jurisdiction_id=jid)
    jobs = [
        to_day_job(
            w,
            rule_set=rule_set,
            routing=routing,
            day=plan.day,
            day_start=day_start,
            day_end=day_end,
            crew_id=keep_crew.get(w.work_order_id),
            priority=MUST_PRIORITY if w.work_order_id in urgent else None,
        )
        for w in work
    ]
    # Extra work these crews may not do stays as the last plan listed it: solved here, among
    # these crews only, it would come back "no crew" although other crews could do it.
    jobs = [j for j in jobs if j.id in on_routes or j.id in keep_crew or _may_take(crews, j)]
    solved = _solve(
        session,
        jurisdiction_id=jid,
        day=plan.day,
        jobs=jobs,
        crew_ids=crew_ids,
        routing=routing,
        now=now,
        provider=provider,
        time_limit_s=time_limit_s or routing.replan_time_limit_s,
    )
    _store(
        session,
        plan=plan,
        solved=solved,
        crew_ids=crew_ids,
        jobs={j.id: j for j in jobs},
        locked={w.work_order_id for w in work if w.locked},
        actor=actor,
    )
    _bump(plan, solved, actor)
    return solved


def move_work_orders(
    session: Session,
    *,
    jurisdiction_id: int,
    day: date,
    work_order_ids: Sequence[int],
    to_crew: str | None,
    expected_version: int,
    routing: RoutingSettings,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
    provider: MatrixProvider | None = None,
    time_limit_s: float | None = None,
) -> PlanChange:
    """Return the change after moving work orders to crew ``to_crew`` (None: back to the
    dispatcher's queue) on the plan of ``day``, and re-planning only the crews it touched.

    Raises StalePlan (409) when the plan moved on from ``expected_version``, JobInProgress
    (409) for work a crew has started, NotEligible (422) when the crew lacks a skill or the
    ward, ValidationFailed (422) for unknown or finished work orders. Nothing is changed then.
    """
    now = now or datetime.now(UTC)
    ids = list(dict.fromkeys(work_order_ids))
    if not ids or len(ids) > MAX_MOVE:
        raise ValidationFailed(
            f"Name between 1 and {MAX_MOVE} work orders to move.",
            errors=[FieldError("work_order_ids", f"1-{MAX_MOVE} ids", "bad_count")],
        )
    plan = _lock_plan(
        session, jurisdiction_id=jurisdiction_id, day=day, expected_version=expected_version
    )
    orders = _check_movable(session, jurisdiction_id=jurisdiction_id, work_order_ids=ids)
    stops = {
        s.work_order_id: s
        for s in session.scalars(
            select(PlanStop).where(
                PlanStop.jurisdiction_id == jurisdiction_id,
                PlanStop.plan_id == plan.id,
                PlanStop.work_order_id.in_(ids),
            )
        )
    }
    old_crews = {stops[i].crew_id for i in ids if i in stops} | {
        int(o.crew_id) for o in orders.values() if o.crew_id is not None
    }
    crew = _crew_by_code(session, jurisdiction_id, to_crew) if to_crew is not None else None
    if crew is not None:
        # Read the work as it is queued or not: a queued job may be given to a crew.
        session.execute(
            delete(QueuedWorkOrder).where(
                QueuedWorkOrder.jurisdiction_id == jurisdiction_id,
                QueuedWorkOrder.work_order_id.in_(ids),
            )
        )
        work = work_by_id(
            session, jurisdiction_id=jurisdiction_id, plan_id=plan.id, work_order_ids=ids
        )
        _check_eligible(session, jurisdiction_id=jurisdiction_id, crew=crew, day=day, work=work)
    for i in ids:
        session.execute(
            pg_insert(WorkOrderTerms)
            .values(
                jurisdiction_id=jurisdiction_id,
                work_order_id=i,
                pinned_crew_id=crew.id if crew else None,
                actor=actor,
            )
            .on_conflict_do_update(
                index_elements=["jurisdiction_id", "work_order_id"],
                set_={"pinned_crew_id": crew.id if crew else None, "actor": actor},
            )
        )
    # The moved jobs leave their old routes (and are not locked there any more).
    session.execute(
        delete(PlanStop).where(
            PlanStop.jurisdiction_id == jurisdiction_id,
            PlanStop.plan_id == plan.id,
            PlanStop.work_order_id.in_(ids),
        )
    )
    session.execute(
        delete(PlanLeftOut).where(
            PlanLeftOut.jurisdiction_id == jurisdiction_id,
            PlanLeftOut.plan_id == plan.id,
            PlanLeftOut.work_order_id.in_(ids),
        )
    )
    if crew is None:
        _send_to_queue(session, orders=list(orders.values()), actor=actor, reason=reason)
    else:
        for order in orders.values():
            order.crew_id = crew.id
    session.flush()
    affected = sorted(old_crews | ({crew.id} if crew else set()))
    # Everyone else's work stays on the crew it is on; the moved jobs go to the new crew.
    keep = {w: c for w, c, _ in _crew_stops(session, plan, affected, PLANNABLE)}
    if crew is not None:
        keep.update({i: crew.id for i in ids})
    solved = _replan(
        session,
        plan=plan,
        crew_ids=affected,
        keep_crew=keep,
        urgent=set(ids) if crew else set(),
        extra_jobs=ids if crew else [],
        routing=routing,
        actor=actor,
        now=now,
        provider=provider,
        time_limit_s=time_limit_s,
    )
    return _recorded(
        session,
        plan=plan,
        action="moved",
        actor=actor,
        solved=solved,
        crews=affected,
        moved=ids,
        work_orders=ids,
        to_crew=to_crew,
        from_crews=sorted(old_crews),
        reason=reason,
    )


def _send_to_queue(
    session: Session, *, orders: Sequence[WorkOrder], actor: str, reason: str | None
) -> None:
    """Take work orders off every crew into the dispatcher's queue, status ``triaged``."""
    for order in orders:
        session.execute(
            pg_insert(QueuedWorkOrder)
            .values(
                jurisdiction_id=order.jurisdiction_id,
                work_order_id=order.id,
                reason="dispatcher",
                detail=reason or "sent back to the queue by a dispatcher",
                skills=[],
                actor=actor,
            )
            .on_conflict_do_update(
                index_elements=["jurisdiction_id", "work_order_id"],
                set_={
                    "reason": "dispatcher",
                    "detail": reason or "sent back to the queue by a dispatcher",
                    "actor": actor,
                },
            )
        )
        order.crew_id = None
        if order.status == "scheduled":
            work_orders_service.transition(
                session, incident_or_work_order=order, to="assigned", actor=actor
            )
        if order.status == "assigned":
            work_orders_service.transition(
                session, incident_or_work_order=order, to="triaged", actor=actor
            )
    session.execute(
        delete(WorkOrderTerms).where(
            WorkOrderTerms.jurisdiction_id == orders[0].jurisdiction_id,
            WorkOrderTerms.work_order_id.in_([o.id for o in orders]),
            WorkOrderTerms.window_start.is_(None),
        )
    )


def lock_stop(
    session: Session,
    *,
    jurisdiction_id: int,
    day: date,
    work_order_id: int,
    locked: bool,
    expected_version: int,
    actor: str,
) -> DayPlan:
    """Return the plan after locking (or unlocking) a stop in place; no re-plan is needed."""
    plan = _lock_plan(
        session, jurisdiction_id=jurisdiction_id, day=day, expected_version=expected_version
    )
    stop = session.get(PlanStop, (jurisdiction_id, plan.id, work_order_id))
    if stop is None:
        raise NotOnPlan(
            f"Work order {work_order_id} is not a stop on the plan of {day.isoformat()}."
        )
    stop.locked = locked
    _bump(plan, None, actor)
    session.flush()
    _recorded(
        session,
        plan=plan,
        action="locked" if locked else "unlocked",
        actor=actor,
        solved=None,
        crews=[stop.crew_id],
        work_order=work_order_id,
    )
    return plan


def replan_crews(
    session: Session,
    *,
    jurisdiction_id: int,
    day: date,
    crew_codes: Sequence[str],
    expected_version: int,
    routing: RoutingSettings,
    actor: str,
    now: datetime | None = None,
    provider: MatrixProvider | None = None,
    time_limit_s: float | None = None,
) -> PlanChange:
    """Return the change after planning these crews' day again: their open stops and the
    day's left-out work they may do are shared out among them afresh (locked stops, pins and
    in-progress work kept)."""
    now = now or datetime.now(UTC)
    plan = _lock_plan(
        session, jurisdiction_id=jurisdiction_id, day=day, expected_version=expected_version
    )
    crews = [_crew_by_code(session, jurisdiction_id, c).id for c in dict.fromkeys(crew_codes)]
    if not crews:
        raise ValidationFailed("Name at least one crew to re-plan.")
    left = [
        int(i)
        for i in session.scalars(
            select(PlanLeftOut.work_order_id).where(
                PlanLeftOut.jurisdiction_id == jurisdiction_id, PlanLeftOut.plan_id == plan.id
            )
        )
    ]
    solved = _replan(
        session,
        plan=plan,
        crew_ids=crews,
        keep_crew={},
        urgent=set(),
        extra_jobs=left,
        routing=routing,
        actor=actor,
        now=now,
        provider=provider,
        time_limit_s=time_limit_s,
    )
    return _recorded(
        session,
        plan=plan,
        action="replanned",
        actor=actor,
        solved=solved,
        crews=crews,
        crew_codes=list(crew_codes),
    )


# --- reading a plan back ---------------------------------------------------------------------


@dataclass(frozen=True)
class StopView:
    seq: int
    work_order_id: int
    incident_id: int
    category_code: str
    status: str
    lon: float
    lat: float
    arrival: datetime
    start: datetime
    end: datetime
    locked: bool
    due_at: datetime


@dataclass(frozen=True)
class RouteView:
    crew_id: int
    crew_code: str
    crew_name: str
    depart: datetime
    back: datetime
    travel_s: int
    distance_m: int | None
    breaks: list[tuple[datetime, datetime]]
    line: list[tuple[float, float]] | None
    stops: list[StopView]


@dataclass(frozen=True)
class LeftOutView:
    work_order_id: int
    incident_id: int
    category_code: str
    reason: str
    detail: str
    due_at: datetime


@dataclass(frozen=True)
class PlanView:
    day: date
    version: int
    engine: str
    matrix_provider: str
    matrix_s: float
    solve_s: float
    planned_by: str
    updated_at: datetime
    routes: list[RouteView]
    left_out: list[LeftOutView]


def plan_view(
    session: Session, *, jurisdiction_id: int, day: date, crew_code: str | None = None
) -> PlanView:
    """Return the plan of ``day`` as people read it (one crew's route with ``crew_code``)."""
    plan = get_plan(session, jurisdiction_id=jurisdiction_id, day=day)
    crew_filter = (
        _crew_by_code(session, jurisdiction_id, crew_code).id if crew_code is not None else None
    )
    zone = service.jurisdiction_zone(session, jurisdiction_id=jurisdiction_id)
    stops: dict[int, list[StopView]] = {}
    for r in session.execute(
        text(
            """
            SELECT s.crew_id, s.seq, s.work_order_id, w.incident_id, i.category_code, w.status,
                   ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, s.arrival, s.start_at, s.end_at,
                   s.locked, w.due_at
            FROM plan_stops s
            JOIN work_orders w ON w.jurisdiction_id = s.jurisdiction_id AND w.id = s.work_order_id
            JOIN incidents i ON i.jurisdiction_id = w.jurisdiction_id AND i.id = w.incident_id
            WHERE s.jurisdiction_id = :jid AND s.plan_id = :plan
              AND (CAST(:crew AS integer) IS NULL OR s.crew_id = :crew)
            ORDER BY s.crew_id, s.seq
            """
        ),
        {"jid": jurisdiction_id, "plan": plan.id, "crew": crew_filter},
    ):
        stops.setdefault(int(r.crew_id), []).append(
            StopView(
                seq=int(r.seq),
                work_order_id=int(r.work_order_id),
                incident_id=int(r.incident_id),
                category_code=str(r.category_code),
                status=str(r.status),
                lon=float(r.lon),
                lat=float(r.lat),
                arrival=r.arrival.astimezone(zone),
                start=r.start_at.astimezone(zone),
                end=r.end_at.astimezone(zone),
                locked=bool(r.locked),
                due_at=r.due_at.astimezone(zone),
            )
        )
    query = (
        select(PlanRoute, Crew.code, Crew.name)
        .join(
            Crew,
            (Crew.jurisdiction_id == PlanRoute.jurisdiction_id) & (Crew.id == PlanRoute.crew_id),
        )
        .where(PlanRoute.jurisdiction_id == jurisdiction_id, PlanRoute.plan_id == plan.id)
        .order_by(Crew.code)
    )
    if crew_filter is not None:
        query = query.where(PlanRoute.crew_id == crew_filter)
    routes = []
    for route, code, name in session.execute(query).all():
        line = None
        if route.geom is not None:
            line = [(float(x), float(y)) for x, y in to_shape(route.geom).coords]
        routes.append(
            RouteView(
                crew_id=route.crew_id,
                crew_code=code,
                crew_name=name,
                depart=route.depart.astimezone(zone),
                back=route.back.astimezone(zone),
                travel_s=route.travel_s,
                distance_m=route.distance_m,
                breaks=[
                    (
                        datetime.fromisoformat(a).astimezone(zone),
                        datetime.fromisoformat(b).astimezone(zone),
                    )
                    for a, b in route.breaks
                ],
                line=line,
                stops=stops.get(route.crew_id, []),
            )
        )
    left_out = []
    if crew_filter is None:
        for r in session.execute(
            text(
                """
                SELECT l.work_order_id, w.incident_id, i.category_code, l.reason, l.detail, w.due_at
                FROM plan_left_out l
                JOIN work_orders w
                  ON w.jurisdiction_id = l.jurisdiction_id AND w.id = l.work_order_id
                JOIN incidents i ON i.jurisdiction_id = w.jurisdiction_id AND i.id = w.incident_id
                WHERE l.jurisdiction_id = :jid AND l.plan_id = :plan
                ORDER BY w.due_at, l.work_order_id
                """
            ),
            {"jid": jurisdiction_id, "plan": plan.id},
        ):
            left_out.append(
                LeftOutView(
                    work_order_id=int(r.work_order_id),
                    incident_id=int(r.incident_id),
                    category_code=str(r.category_code),
                    reason=str(r.reason),
                    detail=str(r.detail),
                    due_at=r.due_at.astimezone(zone),
                )
            )
    return PlanView(
        day=plan.day,
        version=plan.version,
        engine=plan.engine,
        matrix_provider=plan.matrix_provider,
        matrix_s=plan.matrix_s,
        solve_s=plan.solve_s,
        planned_by=plan.planned_by,
        updated_at=plan.updated_at,
        routes=routes,
        left_out=left_out,
    )


# --- appointments -----------------------------------------------------------------------------


def set_appointment(
    session: Session,
    *,
    jurisdiction_id: int,
    work_order_id: int,
    window: tuple[datetime, datetime] | None,
    actor: str,
) -> tuple[datetime, datetime] | None:
    """Return the appointment window the work order's work must now start in (None: cleared).

    Plans take it from the next plan or re-plan on; a plan of another day leaves the job out.
    """
    order = session.get(WorkOrder, (jurisdiction_id, work_order_id))
    if order is None:
        raise NotFound(f"There is no work order {work_order_id}.")
    if window is not None:
        start, end = window
        if start.tzinfo is None or end.tzinfo is None:
            raise ValidationFailed(
                "Give the appointment with a UTC offset, e.g. 2026-06-01T09:00:00-05:00.",
                errors=[FieldError("start", "needs a UTC offset", "naive_datetime")],
            )
        if end < start:
            raise ValidationFailed(
                "The appointment ends before it starts.",
                errors=[FieldError("end", "must not be before start", "window_order")],
            )
        if order.status not in PLANNABLE:
            raise ValidationFailed(
                f"Work order {work_order_id} is {order.status!r}: only open work that is not yet "
                "started takes an appointment.",
                errors=[FieldError("work_order_id", f"is {order.status}", "not_open")],
            )
    values = {
        "window_start": window[0] if window else None,
        "window_end": window[1] if window else None,
        "actor": actor,
    }
    session.execute(
        pg_insert(WorkOrderTerms)
        .values(jurisdiction_id=jurisdiction_id, work_order_id=work_order_id, **values)
        .on_conflict_do_update(index_elements=["jurisdiction_id", "work_order_id"], set_=values)
    )
    session.flush()
    audit.record(
        session,
        jurisdiction_id=jurisdiction_id,
        entity="work_order",
        entity_id=work_order_id,
        action="appointment_set" if window else "appointment_cleared",
        actor=actor,
        data={"start": window[0].isoformat(), "end": window[1].isoformat()} if window else {},
    )
    return window
