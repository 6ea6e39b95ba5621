"""Day plans: the stored plan row and its version, and writing a solved day into it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from geoalchemy2 import WKTElement
from sqlalchemy import BigInteger, BindParameter, any_, bindparam, delete, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from dispatch.dayplans.work import FROZEN
from dispatch.errors import NoPlan, StalePlan, UnknownCrew
from dispatch.models import (
    Crew,
    DayPlan,
    PlanLeftOut,
    PlanRoute,
    PlanStop,
)
from dispatch.planning import (
    TERRITORY_PREFIX,
    DayJob,
    DaySolution,
    LeftOut,
    route_geometries,
)
from work_orders import audit, transitions
from work_orders.models import WorkOrder


@dataclass
class PlanChange:
    """What a change did, for the answer and the audit trail."""

    plan: DayPlan
    crews: list[int] = field(default_factory=list)
    moved: list[int] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    matrix_s: float = 0.0
    solve_s: float = 0.0


# --- the plan row and its version -------------------------------------------------------------


def get_plan(session: Session, *, jurisdiction_id: int, day: date) -> DayPlan:
    """Return the plan of ``day``; NoPlan if it was never planned."""
    plan = session.scalar(
        select(DayPlan).where(DayPlan.jurisdiction_id == jurisdiction_id, DayPlan.day == day)
    )
    if plan is None:
        raise NoPlan(f"{day.isoformat()} has not been planned yet: POST /api/v1/plans?date=….")
    return plan


def lock_plan(
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


# --- writing a solved day -----------------------------------------------------------------------


def crew_stops(
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
    for _, crew_id, seq in crew_stops(session, plan, crew_ids, FROZEN):
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


def _ids(ids: Iterable[int]) -> BindParameter[Any]:
    """Return the ids as one array parameter (a day's thousand ids in an IN list are a
    thousand parameters, and a statement too long for the driver's cache)."""
    values: Any = list(ids)
    return bindparam(None, values, type_=ARRAY(BigInteger))


def _line(coords: Sequence[tuple[float, float]]) -> WKTElement | None:
    if len(coords) < 2:
        return None
    return WKTElement("LINESTRING(" + ", ".join(f"{x!r} {y!r}" for x, y in coords) + ")", 4326)


def store_solution(
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
            PlanLeftOut.work_order_id == any_(_ids(jobs)),
        )
    )
    # A job now placed on one of these crews leaves any other crew's route of the day.
    placed = [s.job_id for r in solved.routes for s in r.stops]
    session.execute(
        delete(PlanStop).where(
            PlanStop.jurisdiction_id == jid,
            PlanStop.plan_id == plan.id,
            PlanStop.work_order_id == any_(_ids(placed)),
        )
    )
    _write_routes(session, plan=plan, solved=solved, crew_ids=crew_ids, kept=kept)
    _write_stops(
        session,
        plan=plan,
        solved=solved,
        first={c: kept.get(c, 0) for c in crew_ids},
        locked=locked,
        left_out={u.job_id: _explain(u, jobs.get(u.job_id), codes) for u in solved.unassigned},
    )
    _schedule(session, jurisdiction_id=jid, solved=solved, actor=actor)


def _write_routes(
    session: Session,
    *,
    plan: DayPlan,
    solved: DaySolution,
    crew_ids: Sequence[int],
    kept: Mapping[int, int],
) -> None:
    """Write the route row of each of ``crew_ids`` that has a route now (its line drawn on the
    roads, all lines at once) and delete the others' (unless a frozen stop keeps one): one
    statement each, however many crews."""
    jid = plan.jurisdiction_id
    wanted = set(crew_ids)
    routes = [r for r in solved.routes if r.crew_id in wanted]
    lines = route_geometries(session, jurisdiction_id=jid, routes=routes)
    # Rows of this plan the session holds would not see the statements below.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, PlanRoute) and obj.jurisdiction_id == jid and obj.plan_id == plan.id:
            session.expunge(obj)
    gone = [c for c in crew_ids if c not in {r.crew_id for r in routes} and c not in kept]
    if gone:
        session.execute(
            delete(PlanRoute).where(
                PlanRoute.jurisdiction_id == jid,
                PlanRoute.plan_id == plan.id,
                PlanRoute.crew_id.in_(gone),
            )
        )
    if not routes:
        return
    now = datetime.now(UTC)
    rows = [
        {
            "jurisdiction_id": jid,
            "plan_id": plan.id,
            "crew_id": r.crew_id,
            "depart": r.depart,
            "back": r.back,
            "travel_s": r.travel_s,
            "distance_m": r.distance_m,
            "breaks": [[a.isoformat(), b.isoformat()] for a, b in r.breaks],
            "geom": _line(line),
            "planned_at": now,
        }
        for r, line in zip(routes, lines, strict=True)
    ]
    stmt = pg_insert(PlanRoute).values(rows)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["jurisdiction_id", "plan_id", "crew_id"],
            set_={
                key: stmt.excluded[key]
                for key in (
                    "depart",
                    "back",
                    "travel_s",
                    "distance_m",
                    "breaks",
                    "geom",
                    "planned_at",
                )
            },
        )
    )


def _write_stops(
    session: Session,
    *,
    plan: DayPlan,
    solved: DaySolution,
    first: Mapping[int, int],
    locked: set[int],
    left_out: Mapping[int, str],
) -> None:
    """Write the stops of the solved routes (numbered on from ``first`` of their crew) and why
    each left-out job is (``left_out``: job → the dispatcher's words): a statement each.

    Columns as arrays, not a row of parameters per stop: a thousand stops are one short
    statement, where ORM objects cost more to build and flush than the rows cost to send."""
    stops = [(r.crew_id, s) for r in solved.routes for s in r.stops]
    if stops:
        session.execute(
            text(
                "INSERT INTO plan_stops (jurisdiction_id, plan_id, work_order_id, crew_id, seq, "
                "arrival, start_at, end_at, locked) "
                "SELECT :jid, :plan, u.* FROM unnest(CAST(:work_orders AS bigint[]), "
                "CAST(:crews AS int[]), CAST(:seqs AS int[]), CAST(:arrivals AS timestamptz[]), "
                "CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]), "
                "CAST(:locked AS boolean[])) AS u"
            ),
            {
                "jid": plan.jurisdiction_id,
                "plan": plan.id,
                "work_orders": [s.job_id for _, s in stops],
                "crews": [c for c, _ in stops],
                "seqs": [first[c] + s.seq for c, s in stops],
                "arrivals": [s.arrival for _, s in stops],
                "starts": [s.start for _, s in stops],
                "ends": [s.end for _, s in stops],
                "locked": [s.job_id in locked for _, s in stops],
            },
        )
    if solved.unassigned:
        session.execute(
            text(
                "INSERT INTO plan_left_out (jurisdiction_id, plan_id, work_order_id, reason, "
                "detail) SELECT :jid, :plan, u.* FROM unnest(CAST(:work_orders AS bigint[]), "
                "CAST(:reasons AS text[]), CAST(:details AS text[])) AS u"
            ),
            {
                "jid": plan.jurisdiction_id,
                "plan": plan.id,
                "work_orders": [u.job_id for u in solved.unassigned],
                "reasons": [u.reason for u in solved.unassigned],
                "details": [left_out[u.job_id] for u in solved.unassigned],
            },
        )


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
    (its crew kept as a suggestion). One set-based step for the whole day, with the
    lifecycle's own rules (``work_orders.transitions.transition_many``)."""
    crew_of = {s.job_id: r.crew_id for r in solved.routes for s in r.stops}
    dropped = {u.job_id for u in solved.unassigned}
    if not crew_of and not dropped:
        return

    def steps(order: WorkOrder) -> tuple[str, ...]:
        # Decided on the locked row: its status now, not as the plan read it.
        if order.id not in crew_of:
            return ("assigned",) if order.status == "scheduled" else ()
        if order.status in ("new", "triaged"):
            return ("assigned", "scheduled")
        return () if order.status == "scheduled" else ("scheduled",)

    transitions.transition_many(
        session,
        jurisdiction_id=jurisdiction_id,
        work_order_ids=set(crew_of) | dropped,
        steps=steps,
        crews=crew_of,
        actor=actor,
        notice_context={"scheduled_for": solved.day.isoformat()},
    )


def recorded(
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
        # crews: which crews' routes changed (empty: none), so their tablets know to reload.
        data={"day": plan.day.isoformat(), "version": plan.version, "crews": list(crews), **data},
    )
    return PlanChange(
        plan=plan,
        crews=list(crews),
        moved=list(moved),
        left_out=list(solved.unassigned) if solved else [],
        matrix_s=solved.matrix_s if solved else 0.0,
        solve_s=solved.solve_s if solved else 0.0,
    )


def bump_version(plan: DayPlan, solved: DaySolution | None, actor: str) -> None:
    plan.version = plan.version + 1
    plan.planned_by = actor
    if solved is not None:
        plan.engine = solved.engine
        plan.matrix_provider = solved.matrix_provider
        plan.matrix_s = solved.matrix_s
        plan.solve_s = solved.solve_s


def crew_by_code(session: Session, jurisdiction_id: int, code: str) -> Crew:
    crew = session.scalar(
        select(Crew).where(Crew.jurisdiction_id == jurisdiction_id, Crew.code == code)
    )
    if crew is None:
        raise UnknownCrew(f"No crew {code!r}.")
    return crew
