"""New work to a crew by the rules, or into the dispatcher's queue with the reason.

:func:`chooser` is what a resident's report uses: it picks the crew before the work order is
written (one statement: the crews' load; crews and rules come from a per-process snapshot
whose fingerprint that statement checks), so intake writes the work order already assigned.
:func:`assign_opened` gives a newly opened incident's work order to :func:`assign_work_order`:
the use cases that open incidents (a resident's report, a dispatcher's split; ``geo311.flows``)
call it once the opening is recorded. The facts come from
the database — the snapped asset's type (else the category's), the ward's code, the due date
in the jurisdiction's time zone, each crew's load — and the decision from the pure rule
engine in ``dispatch.rules``.

A crew found: the work order gets the crew and becomes ``assigned`` (no resident notice is
owed for that), with the rule's reasoning in a second, staff-only audit event. None: the work
order waits in ``dispatch_queue`` with the reason and a sentence a dispatcher acts on, and a
``queued`` audit event without a ``to_state`` (it is not a public status change).
:func:`assign_queued` tries the queue again after crews, territories or rules changed, and
picks up open work that never went through the rules (bulk-loaded backlog).
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, TypeVar, get_args
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    Select,
    SmallInteger,
    String,
    and_,
    bindparam,
    column,
    delete,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from dispatch import rules, service
from dispatch.models import CategoryServiceTime, QueuedWorkOrder
from geo311.kernel.settings import RoutingSettings
from layers.models import Asset, Ward
from work_orders import audit, lifecycle, lookups, queries, transitions
from work_orders.models import Incident, ServiceCategory, WorkOrder
from work_orders.opening import CrewPick, NewWork

log = logging.getLogger(__name__)

ACTOR: Final = "dispatch:rules"
# The reasons the rules give; a row with any other reason ("dispatcher": a dispatcher took the
# job off every crew on purpose) is never retried by the rules.
RULE_REASONS: Final[frozenset[str]] = frozenset(get_args(rules.Reason))
DISPATCHER_REASON: Final = "dispatcher"
# Open work without a crew that the rules may give one.
ASSIGNABLE: Final[tuple[str, ...]] = ("new", "triaged", "reopened")
# Work that keeps a crew busy: open, and not waiting on a hold.
_BUSY: Final[list[str]] = sorted(lifecycle.OPEN - {"on_hold"})


# --- a newly opened incident ------------------------------------------------------------------


def assign_opened(
    session: Session, *, incident: Incident, default_service_s: int | None = None
) -> None:
    """Give a newly opened incident's work order to a crew by the rules, or queue it for a
    dispatcher with the reason (see :func:`assign_work_order`).

    Use cases that open an incident call this once the opening is recorded (``geo311.flows``),
    so the assignment follows the opening in the incident's history. In a savepoint: should
    assignment fail, what was opened is still stored, and the work order (new, no crew, not
    queued) is picked up by the next :func:`assign_queued`. ``default_service_s``: seconds on
    site for a category with no service time (None: the routing setting's default).
    """
    work_order = lookups.current_work_order(session, incident)
    category = session.get(ServiceCategory, (incident.jurisdiction_id, incident.category_code))
    if work_order is None or category is None:
        return
    try:
        with session.begin_nested():
            assign_work_order(
                session,
                work_order=work_order,
                incident=incident,
                category=category,
                actor=ACTOR,
                default_service_s=default_service_s,
            )
    except Exception:
        log.exception("assigning work order %s failed; it waits for assign_queued", work_order.id)


# --- new work, chosen before it is written ---------------------------------------------------


@dataclass(frozen=True)
class _Snapshot:
    """The crews, rules and time zone of a jurisdiction as the rules last saw them, and the
    fingerprint of the crew and rule tables they were read from."""

    fingerprint: str
    zone: ZoneInfo
    crews: list[rules.CrewFacts]
    rule_set: list[rules.SkillRule]


# Per process, per database and jurisdiction. Each use checks the fingerprint in the statement
# that reads the crews' load, so a crew or rule changed by any process is seen at once.
_SNAPSHOTS: dict[tuple[URL, int], _Snapshot] = {}
_SNAPSHOTS_LOCK = threading.Lock()

# Every row of the tables the rules read, hashed: any insert, update or delete changes it.
# The city is the bound parameter :jid in every subquery (Citus routes each to the city's
# shard by its own filter).
_FINGERPRINT = """
    SELECT md5(coalesce(string_agg(x, '|' ORDER BY x), '')) AS fp FROM (
        SELECT CAST(c AS text) AS x FROM crews AS c
        WHERE c.jurisdiction_id = :jid
        UNION ALL SELECT CAST(s AS text) FROM crew_skills AS s
                  WHERE s.jurisdiction_id = :jid
        UNION ALL SELECT CAST(t AS text) FROM crew_territories AS t
                  WHERE t.jurisdiction_id = :jid
        UNION ALL SELECT CAST(r AS text) FROM skill_rules AS r
                  WHERE r.jurisdiction_id = :jid
    ) AS f
"""


def chooser(
    *, default_service_s: int | None = None, actor: str = ACTOR
) -> Callable[[Session, NewWork], CrewPick | None]:
    """Return the rules as intake takes them (``work_orders.opening.CrewChooser``): the crew
    for work about to be opened, with the reasoning for its audit event, or None (no crew
    fits, or choosing failed other than in the database: the use case then tries again, or
    queues the work with the reason, through :func:`assign_opened`). A database error is
    raised: it has aborted the transaction, so the report cannot be stored (the old
    assignment after opening ran in a savepoint, two more statements per report).

    One statement per choice once warm: the crews' load, with the fingerprint of the crew
    and rule tables that says whether the cached crews and rules are still current."""
    service_s = (
        RoutingSettings().default_service_s if default_service_s is None else default_service_s
    )

    def choose(session: Session, work: NewWork) -> CrewPick | None:
        try:
            return _choose_new(session, work, service_s, actor)
        except DBAPIError:
            # The transaction is aborted: nothing of the report can be stored any more.
            raise
        except Exception:
            # Anything else left the transaction whole: the report is stored, and its work
            # waits for assign_opened (or the next assign_queued), as before.
            log.exception("choosing a crew for new work failed; it is assigned after opening")
            return None

    return choose


def _choose_new(
    session: Session, work: NewWork, default_service_s: int, actor: str
) -> CrewPick | None:
    jid = work.jurisdiction_id
    key = (session.get_bind().engine.url, jid)
    with _SNAPSHOTS_LOCK:
        snapshot = _SNAPSHOTS.get(key)
    now = datetime.now(UTC)
    zone = (
        snapshot.zone
        if snapshot is not None
        else service.jurisdiction_zone(session, jurisdiction_id=jid)
    )
    today = now.astimezone(zone).date()
    due_on = work.due_at.astimezone(zone).date()
    last_day = max(due_on, today)
    fingerprint, load = _fingerprint_and_load(
        session,
        jurisdiction_id=jid,
        due_before=datetime.combine(last_day + timedelta(days=1), time(), tzinfo=zone),
        default_service_s=default_service_s,
    )
    if snapshot is None or snapshot.fingerprint != fingerprint:
        snapshot = _Snapshot(
            fingerprint=fingerprint,
            zone=zone,
            crews=service.crew_facts(session, jurisdiction_id=jid),
            rule_set=service.rule_set(session, jurisdiction_id=jid),
        )
        with _SNAPSHOTS_LOCK:
            _SNAPSHOTS[key] = snapshot
    job = rules.JobFacts(
        category_code=work.category_code,
        asset_type=work.asset_type,
        ward_code=work.ward_code,
        due_on=due_on,
        today=today,
        past_due=work.due_at <= now,
    )
    choice = rules.choose_crew(job, snapshot.crews, snapshot.rule_set, load_s=load)
    if choice.crew_id is None:
        return None
    return CrewPick(crew_id=choice.crew_id, actor=actor, data=_reasoning(choice, load))


def _fingerprint_and_load_statement() -> Select[Any]:
    """Return the chooser's one statement, with the city, the end of the due day and the
    default service time as bound parameters (``jid``, ``due_before``, ``service_s``)."""
    jid = bindparam("jid", type_=SmallInteger)
    load = _load_query(
        jurisdiction_id=jid,
        due_before=bindparam("due_before", type_=DateTime(timezone=True)),
        default_service_s=bindparam("service_s", type_=Integer),
        exclude_work_order_id=None,
    ).subquery()
    per_crew = select(
        func.coalesce(
            func.json_object_agg(load.c.crew_id, load.c.total), literal_column("'{}'::json")
        )
    ).scalar_subquery()
    fingerprint = text(_FINGERPRINT).bindparams(jid).columns(column("fp", String)).scalar_subquery()
    return select(fingerprint.label("fp"), per_crew.label("load"))


def _fingerprint_and_load(
    session: Session, *, jurisdiction_id: int, due_before: datetime, default_service_s: int
) -> tuple[str, dict[int, float]]:
    """Return the fingerprint of the crew and rule tables and each crew's load (see
    :func:`crew_load_s`), in one statement."""
    row = session.execute(
        _FINGERPRINT_AND_LOAD,
        {"jid": jurisdiction_id, "due_before": due_before, "service_s": default_service_s},
    ).one()
    return str(row.fp), {int(crew): float(total) for crew, total in row.load.items()}


def _reasoning(choice: rules.Choice, load: dict[int, float]) -> dict[str, Any]:
    """Return the staff-only audit data of a crew chosen by the rules."""
    return {
        "crew": choice.crew_code,
        "crew_id": choice.crew_id,
        "detail": choice.detail,
        "candidates": list(choice.candidates),
        "skills": sorted(choice.skills),
        "day": choice.day.isoformat() if choice.day else None,
        "load_s": round(load.get(choice.crew_id or 0, 0.0)),
    }


# --- one work order ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    """What every decision in one run shares: the crews, the rules, the clock."""

    jurisdiction_id: int
    zone: ZoneInfo
    now: datetime
    today: date
    crews: list[rules.CrewFacts]
    rule_set: list[rules.SkillRule]
    default_service_s: int


def _context(
    session: Session, jurisdiction_id: int, default_service_s: int | None, now: datetime | None
) -> _Context:
    zone = service.jurisdiction_zone(session, jurisdiction_id=jurisdiction_id)
    now = now or datetime.now(UTC)
    return _Context(
        jurisdiction_id=jurisdiction_id,
        zone=zone,
        now=now,
        today=now.astimezone(zone).date(),
        crews=service.crew_facts(session, jurisdiction_id=jurisdiction_id),
        rule_set=service.rule_set(session, jurisdiction_id=jurisdiction_id),
        default_service_s=(
            RoutingSettings().default_service_s if default_service_s is None else default_service_s
        ),
    )


def assign_work_order(
    session: Session,
    *,
    work_order: WorkOrder,
    incident: Incident,
    category: ServiceCategory,
    actor: str,
    default_service_s: int | None = None,
    now: datetime | None = None,
) -> rules.Choice:
    """Return the rules' choice for a work order, applied: the crew given and the work order
    ``assigned``, or the work order queued for a dispatcher with the reason.

    - Facts: the snapped asset's type (else ``category.asset_type``), the ward's code, the
      due date and today in the jurisdiction's time zone, and each crew's load
      (:func:`crew_load_s`).
    - ``default_service_s``: seconds on site for a category with no service time (None: the
      routing setting's default); ``now``: the clock (default: now).
    - A work order a dispatcher queued (reason "dispatcher") keeps its queue row unless a crew
      is found. Raises IllegalTransition if the work order cannot become ``assigned``.
      Flushes; the caller commits.
    """
    ctx = _context(session, work_order.jurisdiction_id, default_service_s, now)
    ward_code = None
    if incident.ward_id is not None:
        ward = session.get(Ward, (incident.jurisdiction_id, incident.ward_id))
        ward_code = ward.code if ward is not None else None
    asset_type = category.asset_type
    if incident.asset_id is not None:
        asset = session.get(Asset, (incident.jurisdiction_id, incident.asset_id))
        asset_type = asset.asset_type if asset is not None else asset_type
    job = rules.JobFacts(
        category_code=category.code,
        asset_type=asset_type,
        ward_code=ward_code,
        due_on=work_order.due_at.astimezone(ctx.zone).date(),
        today=ctx.today,
        past_due=work_order.due_at <= ctx.now,
    )
    return _decide(session, ctx, work_order=work_order, job=job, actor=actor)


def _decide(
    session: Session, ctx: _Context, *, work_order: WorkOrder, job: rules.JobFacts, actor: str
) -> rules.Choice:
    load = crew_load_s(
        session,
        jurisdiction_id=ctx.jurisdiction_id,
        due_before=_due_before(ctx, job),
        default_service_s=ctx.default_service_s,
        exclude_work_order_id=work_order.id,
    )
    choice = rules.choose_crew(job, ctx.crews, ctx.rule_set, load_s=load)
    if choice.crew_id is not None:
        _give(session, work_order, choice, actor, load)
    else:
        _queue(session, work_order, choice, actor)
    return choice


def _due_before(ctx: _Context, job: rules.JobFacts) -> datetime:
    """Return the end of the job's due day (of today, for overdue work): the crews' load that
    counts for it is their work due before then."""
    last_day = max(d for d in (job.due_on, ctx.today) if d is not None)
    return datetime.combine(last_day + timedelta(days=1), time(), tzinfo=ctx.zone)


def _give(
    session: Session,
    work_order: WorkOrder,
    choice: rules.Choice,
    actor: str,
    load: dict[int, float],
) -> None:
    # The transition locks the work order first: someone who moved it meanwhile makes this an
    # IllegalTransition, never an overwritten crew.
    transitions.transition(session, incident_or_work_order=work_order, to="assigned", actor=actor)
    work_order.crew_id = choice.crew_id
    session.execute(
        delete(QueuedWorkOrder).where(
            QueuedWorkOrder.jurisdiction_id == work_order.jurisdiction_id,
            QueuedWorkOrder.work_order_id == work_order.id,
        )
    )
    # Staff-only: the status change above is public, the reasoning is not.
    audit.record(
        session,
        jurisdiction_id=work_order.jurisdiction_id,
        entity="work_order",
        entity_id=work_order.id,
        action="crew_assigned",
        actor=actor,
        data=_reasoning(choice, load),
    )
    session.flush()


def _queue(session: Session, work_order: WorkOrder, choice: rules.Choice, actor: str) -> None:
    assert choice.reason is not None
    key = (
        QueuedWorkOrder.jurisdiction_id == work_order.jurisdiction_id,
        QueuedWorkOrder.work_order_id == work_order.id,
    )
    before = session.execute(
        select(QueuedWorkOrder.reason, QueuedWorkOrder.detail).where(*key).with_for_update()
    ).one_or_none()
    if before is not None and before.reason == DISPATCHER_REASON:
        return
    skills = sorted(choice.skills)
    # Upsert: queued_at stays when the work was first queued (how long it has waited).
    session.execute(
        pg_insert(QueuedWorkOrder)
        .values(
            jurisdiction_id=work_order.jurisdiction_id,
            work_order_id=work_order.id,
            reason=choice.reason,
            detail=choice.detail,
            skills=skills,
            actor=actor,
        )
        .on_conflict_do_update(
            index_elements=["jurisdiction_id", "work_order_id"],
            set_={"reason": choice.reason, "detail": choice.detail, "skills": skills},
        )
    )
    if before is None or (before.reason, before.detail) != (choice.reason, choice.detail):
        # No to_state: waiting for a dispatcher is not a status residents are told about.
        audit.record(
            session,
            jurisdiction_id=work_order.jurisdiction_id,
            entity="work_order",
            entity_id=work_order.id,
            action="queued",
            actor=actor,
            data={"reason": choice.reason, "detail": choice.detail, "skills": skills},
        )
    session.flush()


def crew_load_s(
    session: Session,
    *,
    jurisdiction_id: int,
    due_before: datetime,
    default_service_s: int,
    exclude_work_order_id: int | None = None,
) -> dict[int, float]:
    """Return crew id → seconds on site of the crew's open work (not on hold) due before
    ``due_before``: the category's service time, else ``default_service_s``, per work order."""
    query = _load_query(
        jurisdiction_id=jurisdiction_id,
        due_before=due_before,
        default_service_s=default_service_s,
        exclude_work_order_id=exclude_work_order_id,
    )
    return {crew: float(total) for crew, total in session.execute(query).all() if crew is not None}


def _load_query(
    *,
    jurisdiction_id: int | ColumnElement[Any],
    due_before: datetime | ColumnElement[Any],
    default_service_s: int | ColumnElement[Any],
    exclude_work_order_id: int | None,
) -> Select[int | None, Any]:
    service_s = func.coalesce(CategoryServiceTime.service_s, default_service_s)
    query = (
        select(WorkOrder.crew_id.label("crew_id"), func.sum(service_s).label("total"))
        .join(
            Incident,
            and_(
                Incident.jurisdiction_id == WorkOrder.jurisdiction_id,
                Incident.id == WorkOrder.incident_id,
            ),
        )
        .outerjoin(
            CategoryServiceTime,
            and_(
                CategoryServiceTime.jurisdiction_id == Incident.jurisdiction_id,
                CategoryServiceTime.category_code == Incident.category_code,
            ),
        )
        .where(
            WorkOrder.jurisdiction_id == jurisdiction_id,
            WorkOrder.crew_id.is_not(None),
            WorkOrder.status.in_(_BUSY),
            WorkOrder.due_at < due_before,
        )
        .group_by(WorkOrder.crew_id)
    )
    if exclude_work_order_id is not None:
        query = query.where(WorkOrder.id != exclude_work_order_id)
    return query


# Built once (after _load_query, which it uses): neither the statement nor its cache key is
# made again per report.
_FINGERPRINT_AND_LOAD = _fingerprint_and_load_statement()


# --- the queue --------------------------------------------------------------------------------


@dataclass
class AssignSummary:
    """What one run of :func:`assign_queued` did."""

    examined: int = 0
    assigned: dict[str, int] = field(default_factory=dict)  # crew code → work orders given
    queued: dict[str, int] = field(default_factory=dict)  # reason → work orders still waiting
    skipped: int = 0  # moved by someone else while the run went on


def assign_queued(
    session: Session,
    *,
    jurisdiction_id: int,
    actor: str,
    default_service_s: int | None = None,
    now: datetime | None = None,
) -> AssignSummary:
    """Return what trying the rules again did: on every queued work order the rules left
    there (not those a dispatcher queued) and every open work order (new, triaged, reopened)
    with no crew and no queue row, most urgent first, so the urgent work gets the least
    loaded crews. Queue rows of work that is finished or has a crew are dropped. Flushes.
    """
    ctx = _context(session, jurisdiction_id, default_service_s, now)
    session.execute(
        delete(QueuedWorkOrder).where(
            QueuedWorkOrder.jurisdiction_id == jurisdiction_id,
            QueuedWorkOrder.reason != DISPATCHER_REASON,
            QueuedWorkOrder.work_order_id.in_(
                select(WorkOrder.id).where(
                    WorkOrder.jurisdiction_id == jurisdiction_id,
                    or_(
                        WorkOrder.crew_id.is_not(None),
                        WorkOrder.status.in_(sorted(lifecycle.FINISHED)),
                    ),
                )
            ),
        )
    )
    summary = AssignSummary()
    waiting = _waiting(session, jurisdiction_id, ctx)
    # Decide every job first, in pure code: most urgent first, each crew's load counting the
    # work given earlier in this run (the jobs come in due order, so all of it is due before).
    booked = _Booked.read(session, ctx)
    given: dict[int, tuple[rules.Choice, dict[int, float]]] = {}
    for facts in waiting:
        summary.examined += 1
        load = booked.load_s(_due_before(ctx, facts.job))
        choice = rules.choose_crew(facts.job, ctx.crews, ctx.rule_set, load_s=load)
        if choice.crew_id is not None:
            given[facts.work_order_id] = (choice, load)
            booked.add(choice.crew_id, facts.service_s)
            continue
        work_order = session.get(WorkOrder, (jurisdiction_id, facts.work_order_id))
        if work_order is not None:
            _queue(session, work_order, choice, actor)
    # Then write the crews given in a handful of statements, each work order locked and
    # checked as it is now: one that someone else moved or gave a crew meanwhile is skipped.
    moved: set[int] = set()

    def steps(work_order: WorkOrder) -> list[str]:
        if work_order.crew_id is not None or work_order.status not in ASSIGNABLE:
            return []
        work_order.crew_id = given[work_order.id][0].crew_id
        moved.add(work_order.id)
        return ["assigned"]

    transitions.transition_many(
        session,
        jurisdiction_id=jurisdiction_id,
        work_order_ids=list(given),
        steps=steps,
        actor=actor,
        now=ctx.now,
    )
    summary.skipped = len(given) - len(moved)
    assigned: Counter[str] = Counter()
    events = []
    for work_order_id in sorted(moved):
        choice, load = given[work_order_id]
        assert choice.crew_code is not None
        assigned[choice.crew_code] += 1
        # Staff-only: the status change is public, the reasoning is not.
        events.append(
            audit.pending(
                session,
                jurisdiction_id=jurisdiction_id,
                entity="work_order",
                entity_id=work_order_id,
                action="crew_assigned",
                actor=actor,
                data=_reasoning(choice, load),
            )
        )
    audit.write_many(session, jurisdiction_id=jurisdiction_id, events=events)
    if moved:
        session.execute(
            delete(QueuedWorkOrder).where(
                QueuedWorkOrder.jurisdiction_id == jurisdiction_id,
                QueuedWorkOrder.work_order_id.in_(sorted(moved)),
            )
        )
    session.flush()
    summary.assigned = dict(sorted(assigned.items()))
    summary.queued = queue_counts(session, jurisdiction_id=jurisdiction_id)
    return summary


_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


def _with_place(query: _Query) -> _Query:
    """Return ``query`` (on work orders) joined to each one's incident, category and ward."""
    return (
        query.join(
            Incident,
            and_(
                Incident.jurisdiction_id == WorkOrder.jurisdiction_id,
                Incident.id == WorkOrder.incident_id,
            ),
        )
        .join(
            ServiceCategory,
            and_(
                ServiceCategory.jurisdiction_id == Incident.jurisdiction_id,
                ServiceCategory.code == Incident.category_code,
            ),
        )
        .outerjoin(
            Ward,
            and_(Ward.jurisdiction_id == Incident.jurisdiction_id, Ward.id == Incident.ward_id),
        )
    )


@dataclass(frozen=True)
class _Waiting:
    work_order_id: int
    job: rules.JobFacts
    service_s: float  # on site: the category's service time, else the routing default


@dataclass
class _Booked:
    """Each crew's open work (not on hold) by due time, as :func:`crew_load_s` counts it, read
    once for a run of :func:`assign_queued`, plus the work that run gives."""

    due: dict[int, list[datetime]]  # crew id → due times, ascending
    total: dict[int, list[float]]  # crew id → seconds on site due up to and including each
    added: dict[int, float] = field(default_factory=dict)  # crew id → seconds given

    @classmethod
    def read(cls, session: Session, ctx: _Context) -> _Booked:
        query = _load_query(
            jurisdiction_id=ctx.jurisdiction_id,
            due_before=datetime.max.replace(tzinfo=UTC),
            default_service_s=ctx.default_service_s,
            exclude_work_order_id=None,
        )
        rows = session.execute(
            query.with_only_columns(
                WorkOrder.crew_id,
                WorkOrder.due_at,
                func.coalesce(CategoryServiceTime.service_s, ctx.default_service_s),
            )
            .group_by(None)
            .order_by(WorkOrder.crew_id, WorkOrder.due_at)
        ).all()
        due: dict[int, list[datetime]] = {}
        total: dict[int, list[float]] = {}
        for crew_id, due_at, service_s in rows:
            if crew_id is None:  # never: the query reads only work with a crew
                continue
            sums = total.setdefault(crew_id, [])
            due.setdefault(crew_id, []).append(due_at)
            sums.append((sums[-1] if sums else 0.0) + float(service_s))
        return cls(due=due, total=total)

    def load_s(self, due_before: datetime) -> dict[int, float]:
        """Return crew id → seconds on site of its work due before ``due_before``."""
        load: dict[int, float] = {}
        for crew_id, times in self.due.items():
            n = bisect_left(times, due_before)
            if n:
                load[crew_id] = self.total[crew_id][n - 1]
        for crew_id, seconds in self.added.items():
            load[crew_id] = load.get(crew_id, 0.0) + seconds
        return load

    def add(self, crew_id: int, service_s: float) -> None:
        self.added[crew_id] = self.added.get(crew_id, 0.0) + service_s


def _waiting(session: Session, jurisdiction_id: int, ctx: _Context) -> list[_Waiting]:
    queued = and_(
        QueuedWorkOrder.jurisdiction_id == WorkOrder.jurisdiction_id,
        QueuedWorkOrder.work_order_id == WorkOrder.id,
    )
    rows = session.execute(
        _with_place(
            select(
                WorkOrder.id,
                WorkOrder.due_at,
                Incident.category_code,
                func.coalesce(Asset.asset_type, ServiceCategory.asset_type).label("asset_type"),
                Ward.code.label("ward_code"),
                func.coalesce(CategoryServiceTime.service_s, ctx.default_service_s).label(
                    "service_s"
                ),
            )
        )
        .outerjoin(
            Asset,
            and_(Asset.jurisdiction_id == Incident.jurisdiction_id, Asset.id == Incident.asset_id),
        )
        .outerjoin(
            CategoryServiceTime,
            and_(
                CategoryServiceTime.jurisdiction_id == Incident.jurisdiction_id,
                CategoryServiceTime.category_code == Incident.category_code,
            ),
        )
        .outerjoin(QueuedWorkOrder, queued)
        .where(
            WorkOrder.jurisdiction_id == jurisdiction_id,
            WorkOrder.crew_id.is_(None),
            WorkOrder.status.in_(ASSIGNABLE),
            or_(
                QueuedWorkOrder.work_order_id.is_(None),
                QueuedWorkOrder.reason.in_(sorted(RULE_REASONS)),
            ),
        )
        .order_by(WorkOrder.due_at, WorkOrder.id)
    ).all()
    return [
        _Waiting(
            work_order_id=row.id,
            job=rules.JobFacts(
                category_code=row.category_code,
                asset_type=row.asset_type,
                ward_code=row.ward_code,
                due_on=row.due_at.astimezone(ctx.zone).date(),
                today=ctx.today,
                past_due=row.due_at <= ctx.now,
            ),
            service_s=float(row.service_s),
        )
        for row in rows
    ]


def queue_counts(session: Session, *, jurisdiction_id: int) -> dict[str, int]:
    """Return reason → how many open work orders wait in the dispatcher's queue."""
    rows = session.execute(
        select(QueuedWorkOrder.reason, func.count())
        .join(
            WorkOrder,
            and_(
                WorkOrder.jurisdiction_id == QueuedWorkOrder.jurisdiction_id,
                WorkOrder.id == QueuedWorkOrder.work_order_id,
            ),
        )
        .where(
            QueuedWorkOrder.jurisdiction_id == jurisdiction_id,
            WorkOrder.status.in_(sorted(lifecycle.OPEN)),
        )
        .group_by(QueuedWorkOrder.reason)
        .order_by(QueuedWorkOrder.reason)
    ).all()
    return {str(reason): int(n) for reason, n in rows}


@dataclass(frozen=True)
class QueueRow:
    """A work order waiting for a dispatcher, with what they need to act on it."""

    work_order_id: int
    incident_id: int
    status: str
    category_code: str
    category: str
    ward_code: str | None
    lon: float
    lat: float
    due_at: datetime
    sla_state: str
    reason: str
    detail: str
    skills: list[str]
    actor: str
    queued_at: datetime


def list_queue(
    session: Session,
    *,
    jurisdiction_id: int,
    limit: int = 500,
    offset: int = 0,
    work_order_ids: Sequence[int] | None = None,
) -> list[QueueRow]:
    """Return the open work orders in the dispatcher's queue, most urgent first (earliest
    due, so breached work leads), then longest waiting; only ``work_order_ids`` when given."""
    only = (
        [QueuedWorkOrder.work_order_id.in_(list(work_order_ids))]
        if work_order_ids is not None
        else []
    )
    rows = session.execute(
        _with_place(
            select(
                QueuedWorkOrder,
                WorkOrder.incident_id,
                WorkOrder.status,
                WorkOrder.due_at,
                queries.sla_state().label("sla_state"),
                Incident.category_code,
                ServiceCategory.name.label("category"),
                Ward.code.label("ward_code"),
                func.ST_X(Incident.geom).label("lon"),
                func.ST_Y(Incident.geom).label("lat"),
            ).join(
                WorkOrder,
                and_(
                    WorkOrder.jurisdiction_id == QueuedWorkOrder.jurisdiction_id,
                    WorkOrder.id == QueuedWorkOrder.work_order_id,
                ),
            )
        )
        .where(
            QueuedWorkOrder.jurisdiction_id == jurisdiction_id,
            WorkOrder.status.in_(sorted(lifecycle.OPEN)),
            *only,
        )
        .order_by(WorkOrder.due_at, QueuedWorkOrder.queued_at, WorkOrder.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return [
        QueueRow(
            work_order_id=row.QueuedWorkOrder.work_order_id,
            incident_id=row.incident_id,
            status=row.status,
            category_code=row.category_code,
            category=row.category,
            ward_code=row.ward_code,
            lon=row.lon,
            lat=row.lat,
            due_at=row.due_at,
            sla_state=row.sla_state,
            reason=row.QueuedWorkOrder.reason,
            detail=row.QueuedWorkOrder.detail,
            skills=list(row.QueuedWorkOrder.skills),
            actor=row.QueuedWorkOrder.actor,
            queued_at=row.QueuedWorkOrder.queued_at,
        )
        for row in rows
    ]
