"""Day plans: what a dispatcher does — make a day's plan, move jobs between crews, lock a stop,
re-plan crews."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from dispatch import assignment, rules, service
from dispatch.dayplans import views
from dispatch.dayplans.store import (
    PlanChange,
    bump_version,
    crew_by_code,
    crew_stops,
    lock_plan,
    recorded,
    store_solution,
)
from dispatch.dayplans.work import (
    MUST_PRIORITY,
    PLANNABLE,
    WorkFacts,
    clip,
    crew_starts,
    day_bounds,
    to_day_job,
    work_by_id,
    work_for_day,
)
from dispatch.errors import JobInProgress, NotEligible, NotOnPlan
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
    DayJob,
    DaySolution,
    solve_day,
    territory_skill,
)
from geo311.kernel.errors import FieldError, ValidationFailed
from geo311.kernel.settings import RoutingSettings
from work_orders import queries, transitions
from work_orders.models import Incident, WorkOrder

MAX_MOVE = 500


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
    crews_on: Sequence[service.CrewDay] | None = None,
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
        crews_on=crews_on,
    )


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
    plan = lock_plan(
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
    working = service.crews_on(session, jurisdiction_id=jurisdiction_id, day=day)
    crews = [c.crew_id for c in working]
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
        crews_on=working,
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
    store_solution(
        session,
        plan=plan,
        solved=solved,
        crew_ids=scope,
        jobs={j.id: j for j in jobs},
        locked={w.work_order_id for w in work if w.locked},
        actor=actor,
    )
    bump_version(plan, solved, actor)
    session.flush()
    return recorded(
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
        if w.appointment is not None and clip(w.appointment, day_start, day_end) is None:
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
    on_routes = {w for w, _, _ in crew_stops(session, plan, crew_ids, PLANNABLE)}
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
    store_solution(
        session,
        plan=plan,
        solved=solved,
        crew_ids=crew_ids,
        jobs={j.id: j for j in jobs},
        locked={w.work_order_id for w in work if w.locked},
        actor=actor,
    )
    bump_version(plan, solved, actor)
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
    plan = lock_plan(
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
    crew = crew_by_code(session, jurisdiction_id, to_crew) if to_crew is not None else None
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
    keep = {w: c for w, c, _ in crew_stops(session, plan, affected, PLANNABLE)}
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
    return recorded(
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
            transitions.transition(
                session, incident_or_work_order=order, to="assigned", actor=actor
            )
        if order.status == "assigned":
            transitions.transition(session, incident_or_work_order=order, to="triaged", actor=actor)
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
    plan = lock_plan(
        session, jurisdiction_id=jurisdiction_id, day=day, expected_version=expected_version
    )
    stop = session.get(PlanStop, (jurisdiction_id, plan.id, work_order_id))
    if stop is None:
        raise NotOnPlan(
            f"Work order {work_order_id} is not a stop on the plan of {day.isoformat()}."
        )
    stop.locked = locked
    bump_version(plan, None, actor)
    session.flush()
    recorded(
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
    plan = lock_plan(
        session, jurisdiction_id=jurisdiction_id, day=day, expected_version=expected_version
    )
    crews = [crew_by_code(session, jurisdiction_id, c).id for c in dict.fromkeys(crew_codes)]
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
    return recorded(
        session,
        plan=plan,
        action="replanned",
        actor=actor,
        solved=solved,
        crews=crews,
        crew_codes=list(crew_codes),
    )


# --- what a crew does -----------------------------------------------------------------------

# The dispatcher's queue reason of a job its crew could not do (never retried by the rules:
# a dispatcher reads the crew's reason and decides).
CANT_DO: Final = "crew_cant_do"
# Why a crew cannot do a job: code → the words the dispatcher's queue shows.
CANT_DO_REASONS: Final[Mapping[str, str]] = {
    "no_access": "no access to the site",
    "needs_equipment": "needs equipment the crew does not have",
    "needs_other_crew": "needs another crew's skills",
    "unsafe": "unsafe to work",
    "not_found": "problem not found at the location",
    "no_time": "no time left today",
    "other": "other",
}


def queue_detail(reason: str, note: str | None) -> str:
    """Return the sentence the dispatcher's queue shows for a crew's "can't do"."""
    words = (note or "").strip()
    label = CANT_DO_REASONS.get(reason, reason)
    return f"{label}: {words}" if words else label


def cant_do(
    session: Session,
    *,
    work_order: WorkOrder,
    reason: str,
    note: str | None,
    actor: str,
    expected_version: int,
) -> WorkOrder:
    """Return the work order its crew cannot do, back in the dispatcher's queue with the
    crew's reason: status ``triaged``, off the crew, off every day plan it was on (each plan's
    version bumped, so the pages showing it read it again), its pin to the crew dropped.

    ``reason``: a key of :data:`CANT_DO_REASONS`; ``note``: the crew's own words. Raises
    ValidationFailed (422) for an unknown reason, IllegalTransition (409) for work that is
    finished, StaleVersion (409) when the work order moved on from ``expected_version``.
    Flushes; the caller commits.
    """
    if reason not in CANT_DO_REASONS:
        raise ValidationFailed(
            f"Unknown reason {reason!r}; the reasons are: {', '.join(CANT_DO_REASONS)}.",
            errors=[FieldError("reason", "unknown reason", "unknown")],
        )
    detail = queue_detail(reason, note)
    jurisdiction_id = work_order.jurisdiction_id
    crew_id = work_order.crew_id
    transitions.transition(
        session,
        incident_or_work_order=work_order,
        to="triaged",
        actor=actor,
        reason=f"can't do: {detail}",
        expected_version=expected_version,
    )
    session.execute(
        pg_insert(QueuedWorkOrder)
        .values(
            jurisdiction_id=jurisdiction_id,
            work_order_id=work_order.id,
            reason=CANT_DO,
            detail=detail,
            skills=[],
            actor=actor,
        )
        .on_conflict_do_update(
            index_elements=["jurisdiction_id", "work_order_id"],
            set_={"reason": CANT_DO, "detail": detail, "actor": actor},
        )
    )
    work_order.crew_id = None
    session.execute(
        delete(WorkOrderTerms).where(
            WorkOrderTerms.jurisdiction_id == jurisdiction_id,
            WorkOrderTerms.work_order_id == work_order.id,
            WorkOrderTerms.window_start.is_(None),
        )
    )
    terms = session.get(WorkOrderTerms, (jurisdiction_id, work_order.id))
    if terms is not None:
        terms.pinned_crew_id = None
    plan_ids = session.scalars(
        delete(PlanStop)
        .where(
            PlanStop.jurisdiction_id == jurisdiction_id,
            PlanStop.work_order_id == work_order.id,
        )
        .returning(PlanStop.plan_id)
    ).all()
    for plan_id in sorted(set(plan_ids)):
        plan = session.get(DayPlan, (jurisdiction_id, plan_id), with_for_update=True)
        if plan is None:
            continue
        bump_version(plan, None, actor)
        session.flush()
        recorded(
            session,
            plan=plan,
            action="cant_do",
            actor=actor,
            solved=None,
            crews=[crew_id] if crew_id is not None else [],
            work_order=work_order.id,
            reason=reason,
            detail=detail,
        )
    session.flush()
    return work_order


# --- a move's what-if preview -------------------------------------------------------------------


@dataclass(frozen=True)
class Lateness:
    """One job whose predicted arrival crosses its SLA due time because of a move."""

    work_order_id: int
    due_at: datetime
    eta_before: datetime | None  # None: not on any route of the day (queued or left out)
    eta_after: datetime | None


@dataclass(frozen=True)
class MovePreview:
    """What a move would do, judged on a solved copy that was never stored."""

    before: views.PlanView  # the plan as it is, the affected crews' routes only
    after: views.PlanView  # the plan as the move would leave it, the same crews only
    newly_left_out: list[views.LeftOutView]
    breaches_caused: list[Lateness]
    breaches_avoided: list[Lateness]


def judge_breaches(
    *,
    before: Mapping[int, datetime | None],
    after: Mapping[int, datetime | None],
    due: Mapping[int, datetime],
    day_end: datetime,
) -> tuple[list[Lateness], list[Lateness]]:
    """Return (breaches caused, breaches avoided): jobs whose predicted arrival falls after
    their due time after the move but not before it, and the other way round.

    A job with no arrival (queued, left out) is late when it is due before ``day_end``: no crew
    reaches it today. Judging by the predicted arrival, not the due time alone, is the point: a
    job due at 14:00 that the new route reaches at 15:10 is a breach the move causes.
    """

    def late(eta: datetime | None, due_at: datetime) -> bool:
        return eta > due_at if eta is not None else due_at < day_end

    caused, avoided = [], []
    for i in sorted(set(before) | set(after)):
        eta_b, eta_a = before.get(i), after.get(i)
        was, will = late(eta_b, due[i]), late(eta_a, due[i])
        if will and not was:
            caused.append(Lateness(i, due[i], eta_b, eta_a))
        elif was and not will:
            avoided.append(Lateness(i, due[i], eta_b, eta_a))
    return caused, avoided


def _affected_only(view: views.PlanView, crews: set[str]) -> views.PlanView:
    return replace(view, routes=[r for r in view.routes if r.crew_code in crews])


def preview_move(
    session: Session,
    *,
    jurisdiction_id: int,
    day: date,
    work_order_ids: Sequence[int],
    to_crew: str | None,
    expected_version: int,
    routing: RoutingSettings,
    actor: str,
    now: datetime | None = None,
    provider: MatrixProvider | None = None,
    time_limit_s: float | None = None,
) -> MovePreview:
    """Return what :func:`move_work_orders` would do, without storing any of it.

    The move runs for real inside a savepoint (the same checks, the same solver, so the
    preview cannot disagree with the commit that follows it) and the savepoint is rolled back.
    The caller rolls its transaction back rather than committing it: that also drops the live
    events the move queued (geo311.kernel.live sends them only at COMMIT), so no open page
    hears of a move that never happened. The same errors as the move: StalePlan,
    JobInProgress, NotEligible, ValidationFailed.
    """
    before = views.plan_view(session, jurisdiction_id=jurisdiction_id, day=day)
    savepoint = session.begin_nested()
    try:
        change = move_work_orders(
            session,
            jurisdiction_id=jurisdiction_id,
            day=day,
            work_order_ids=work_order_ids,
            to_crew=to_crew,
            expected_version=expected_version,
            routing=routing,
            actor=actor,
            now=now,
            provider=provider,
            time_limit_s=time_limit_s,
        )
        session.flush()
        after = views.plan_view(session, jurisdiction_id=jurisdiction_id, day=day)
        codes = {r.crew_code for r in after.routes if r.crew_id in set(change.crews)}
    finally:
        savepoint.rollback()
    if to_crew is not None:
        codes.add(to_crew)
    before_eta = {s.work_order_id: s.arrival for r in before.routes for s in r.stops}
    after_eta = {s.work_order_id: s.arrival for r in after.routes for s in r.stops}
    affected_b = _affected_only(before, codes)
    affected_a = _affected_only(after, codes)
    # Jobs whose fate the move decides: the affected crews' stops before and after, the moved
    # jobs, and whatever the move pushed off the day.
    was_left = {u.work_order_id for u in before.left_out}
    newly_left = [u for u in after.left_out if u.work_order_id not in was_left]
    concerned = (
        {s.work_order_id for r in affected_b.routes for s in r.stops}
        | {s.work_order_id for r in affected_a.routes for s in r.stops}
        | set(work_order_ids)
        | {u.work_order_id for u in newly_left}
    )
    due = {s.work_order_id: s.due_at for r in (*before.routes, *after.routes) for s in r.stops}
    due.update({u.work_order_id: u.due_at for u in (*before.left_out, *after.left_out)})
    missing = [i for i in concerned if i not in due]
    if missing:
        for row in queries.list_work_orders(
            session, jurisdiction_id=jurisdiction_id, work_order_ids=missing, limit=len(missing)
        ):
            due[row.work_order.id] = row.work_order.due_at
    _, day_end = day_bounds(session, jurisdiction_id=jurisdiction_id, day=day)
    caused, avoided = judge_breaches(
        before={i: before_eta.get(i) for i in concerned if i in due},
        after={i: after_eta.get(i) for i in concerned if i in due},
        due=due,
        day_end=day_end,
    )
    return MovePreview(
        before=affected_b,
        after=affected_a,
        newly_left_out=newly_left,
        breaches_caused=caused,
        breaches_avoided=avoided,
    )
