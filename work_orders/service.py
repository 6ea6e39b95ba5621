"""Incidents and their work orders: opening, the lifecycle, SLA clocks, completion, and the
notices each change owes. Plain functions, session first; they flush, the caller commits.

The one way to change a status is ``transition`` (``hold``, ``resume``, ``transfer``,
``complete_work_order`` and ``answer_closure`` are built on it). It locks the incident and its
work order (always in that order, so two transitions cannot deadlock), refuses illegal moves
and stale versions, moves both in step, bumps their versions, keeps the SLA clock, writes one
audit event per entity moved, and owes the residents' notices in the same transaction.
``transition_many`` does the same for many work orders at once (a day plan's), with the same
rules and in a handful of statements however many move.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from geoalchemy2 import WKTElement
from geoalchemy2.shape import to_shape
from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    String,
    and_,
    case,
    func,
    insert,
    inspect,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified, instance_state
from sqlalchemy.orm.util import identity_key

from geo311.kernel.errors import FieldError, NotFound, ValidationFailed
from geo311.kernel.media import photos
from geo311.kernel.media import service as media_service
from geo311.kernel.media.models import Photo
from geo311.kernel.media.store import MediaStore
from geo311.kernel.notify import outbox
from geo311.kernel.notify import service as notify_service
from geo311.kernel.notify.models import WebhookEndpoint
from geo311.kernel.notify.tokens import AnswerLink
from layers.models import Jurisdiction
from work_orders import audit, changes, lifecycle, opening, sla
from work_orders.categories import category_calendar
from work_orders.errors import IllegalTransition, StaleVersion
from work_orders.models import (
    RESOLUTION_CODES,
    AuditEvent,
    BusinessCalendar,
    Incident,
    Requester,
    ServiceCategory,
    Subscription,
    WorkOrder,
)
from work_orders.public_notes import PublicNote

NOTE_MAX_CHARS = 2000


# --- opening ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryTerms:
    """A category, the terms its work opens on, and its jurisdiction (kept referenced, so
    the notices' wording finds it in the session without reading it again)."""

    category: ServiceCategory
    terms: opening.Terms
    jurisdiction: Jurisdiction
    # (id, url) of the webhook endpoints told when work is received, by id.
    received_webhooks: tuple[tuple[int, str], ...] = ()
    # The values of the caller's ``also`` columns, in order.
    also: tuple[Any, ...] = ()


def category_terms(
    session: Session,
    *,
    jurisdiction_id: int,
    code: str,
    also: Sequence[ColumnElement[Any]] = (),
) -> CategoryTerms | None:
    """Return the active category ``code`` with the terms its work opens on (its SLA in its
    business calendar) and its jurisdiction, read in one statement; None if there is no such
    active category.

    ``also``: scalar subqueries of the caller's own (what another domain keeps about the
    category, e.g. dedup's fitted model), read in the same statement so intake pays no extra
    round trip for them."""
    row = session.execute(
        category_terms_select(jurisdiction_id=jurisdiction_id, code=code, also=also)
    ).one_or_none()
    return category_terms_of(row)


def category_terms_select(
    *,
    jurisdiction_id: int | ColumnElement[Any],
    code: str | ColumnElement[Any],
    also: Sequence[ColumnElement[Any]] = (),
) -> Select[Any]:
    """Return the statement :func:`category_terms` runs; ``jurisdiction_id`` and ``code`` may
    be bound parameters, for a caller that builds the statement once and runs it often
    (intake). Read its row with :func:`category_terms_of`."""
    hooks = (
        select(
            func.array_agg(
                aggregate_order_by(
                    func.json_build_array(WebhookEndpoint.id, WebhookEndpoint.url),
                    WebhookEndpoint.id,
                )
            )
        )
        .where(
            # The parameter, not the outer row: Citus routes a statement to one shard only
            # when every distributed table in it is filtered by the same tenant value.
            WebhookEndpoint.jurisdiction_id == jurisdiction_id,
            WebhookEndpoint.active,
            literal("received", String(16)) == func.any(WebhookEndpoint.kinds),
        )
        .scalar_subquery()
    )
    return (
        select(ServiceCategory, BusinessCalendar, Jurisdiction, hooks.label("hooks"), *also)
        .join(Jurisdiction, Jurisdiction.id == ServiceCategory.jurisdiction_id)
        .outerjoin(
            BusinessCalendar,
            and_(
                BusinessCalendar.jurisdiction_id == ServiceCategory.jurisdiction_id,
                BusinessCalendar.code == ServiceCategory.calendar_code,
            ),
        )
        .where(ServiceCategory.jurisdiction_id == jurisdiction_id, ServiceCategory.code == code)
    )


def category_terms_of(row: Row[Any] | None) -> CategoryTerms | None:
    """Return the terms read by :func:`category_terms_select` (None: no active category)."""
    values: tuple[Any, ...] = () if row is None else tuple(row)
    if not values or not values[0].active:
        return None
    category, calendar, jurisdiction, hooks_found = values[:4]
    parsed = (
        None
        if calendar is None
        else sla.parse_calendar(
            timezone=calendar.timezone, hours=calendar.hours, holidays=calendar.holidays
        )
    )
    return CategoryTerms(
        category,
        opening.Terms.of(category, parsed),
        jurisdiction,
        tuple((int(h[0]), str(h[1])) for h in hooks_found or ()),
        values[4:],
    )


def open_incident(
    session: Session,
    *,
    category: ServiceCategory,
    lon: float,
    lat: float,
    ward_id: int | None,
    asset_id: int | None,
    opened_at: datetime,
    terms: opening.Terms | None = None,
    ward_code: str | None = None,
    asset_type: str | None = None,
    choose: opening.CrewChooser | None = None,
    opened_by: tuple[str, dict[str, Any]] | None = None,
    received_webhooks: Sequence[tuple[int, str]] | None = None,
) -> Incident:
    """Return a new incident for a problem nobody reported before, with its work order in the
    category's queue, due by the category's SLA (in its business calendar if it has one).

    - ``terms``: the category's terms when the caller read them already (else read here).
    - ``choose``: the assignment rules, given by a use case that knows dispatch
      (``geo311.flows``): the work order is then written already ``assigned`` to the crew
      they chose, with the audit trail a transition to ``assigned`` writes; without one, or
      when it finds no crew, the work order opens ``new`` on no crew.
      ``ward_code`` and ``asset_type`` (the snapped asset's type, else the category's) are
      what the rules look at.
    - ``opened_by``: (actor, data) of the incident's own "opened" event, when the caller has
      it before the incident exists (intake has the report's tracking id); else the caller
      records it.
    - ``received_webhooks``: the endpoints told of new work, when read already
      (``category_terms``); else read here.
    """
    if terms is None:
        calendar = category_calendar(
            session, jurisdiction_id=category.jurisdiction_id, category_code=category.code
        )
        terms = opening.Terms.of(category, calendar)
    times = terms.due_times(opened_at)
    crew = None
    if choose is not None:
        crew = choose(
            session,
            opening.NewWork(
                jurisdiction_id=category.jurisdiction_id,
                category_code=category.code,
                asset_type=asset_type if asset_type is not None else category.asset_type,
                ward_code=ward_code,
                due_at=times.due_at,
                opened_at=opened_at,
            ),
        )
    incident = opening.incident_row(
        terms,
        lon=lon,
        lat=lat,
        ward_id=ward_id,
        asset_id=asset_id,
        opened_at=opened_at,
        times=times,
        crew=crew,
    )
    session.add(incident)
    session.flush()
    work_order = opening.work_order_row(
        terms, incident_id=incident.id, opened_at=opened_at, times=times, crew=crew
    )
    session.add(work_order)
    session.flush()
    # One statement (one multi-row VALUES) for the whole opening's trail.
    session.execute(
        insert(AuditEvent).values(
            opening.opening_audit(
                incident=incident, work_order=work_order, crew=crew, opened_by=opened_by
            )
        )
    )
    changes.note(
        session, jurisdiction_id=incident.jurisdiction_id, entity="incident",
        entity_ids=[incident.id],
    )  # fmt: skip
    _owe_webhooks(
        session,
        incident=incident,
        kind="received",
        key=f"received:incident-{incident.id}",
        context=_incident_context(session, incident),
        endpoints=received_webhooks,
    )
    return incident


def subscribe(
    session: Session,
    *,
    jurisdiction_id: int,
    incident_id: int,
    requester_id: int,
    report_id: int | None,
    new_requester: Requester | None = None,
    tracking_id: str | None = None,
) -> None:
    """Subscribe a requester to an incident's updates (once, however often they report it),
    and owe them the "we received your report" notice unless they muted it.

    ``new_requester``: the requester, when it was created in this transaction with the
    report ``tracking_id``: it cannot have muted anything yet, so its contact is not read
    back."""
    subscribed = session.execute(
        pg_insert(Subscription)
        .values(
            jurisdiction_id=jurisdiction_id,
            incident_id=incident_id,
            requester_id=requester_id,
            report_id=report_id,
        )
        .on_conflict_do_nothing(index_elements=["jurisdiction_id", "incident_id", "requester_id"])
        .returning(Subscription.id)
    ).scalar_one_or_none()
    if subscribed is None:
        return
    incident = session.get(Incident, (jurisdiction_id, incident_id))
    if incident is None:
        return
    context = _incident_context(session, incident)
    if new_requester is None or tracking_id is None:
        _owe_requester_notices(
            session,
            incident=incident,
            kind="received",
            event_key="subscribed",
            context=context,
            requester_id=requester_id,
        )
        return
    recipient = new_requester.email or new_requester.phone
    if recipient is None:
        return
    outbox.owe(
        session,
        [
            _requester_notice(
                jurisdiction_id=incident.jurisdiction_id,
                incident_id=incident.id,
                kind="received",
                event_key="subscribed",
                requester_id=requester_id,
                email=new_requester.email,
                phone=new_requester.phone,
                language=new_requester.language,
                context={**context, "tracking_id": tracking_id},
            )
        ],
    )


def requester_language(session: Session, *, jurisdiction_id: int, requester_id: int) -> str:
    """Return the language a requester asked for, or raise NotFound."""
    requester = session.get(Requester, (jurisdiction_id, requester_id))
    if requester is None:
        raise NotFound("The link names a requester this service does not know.")
    return requester.language


def create_missing_work_orders(session: Session, *, jurisdiction_id: int) -> int:
    """Return how many work orders were created for incidents that had none (bulk-loaded
    ones), each in step with its incident: a closed incident's work order is completed."""
    result = session.execute(
        text(
            """
            INSERT INTO work_orders (jurisdiction_id, incident_id, status, department,
                                     opened_at, due_at, at_risk_at, resolved_at, completed_at)
            SELECT i.jurisdiction_id, i.id,
                   CASE WHEN i.status = 'closed' THEN 'completed' ELSE i.status END,
                   i.group_code, i.opened_at, i.sla_due_at,
                   LEAST(i.sla_due_at, i.sla_due_at - (i.sla_due_at - i.opened_at) * :risk),
                   CASE WHEN i.status IN ('completed', 'closed', 'cancelled')
                        THEN COALESCE(i.closed_at, i.updated_at) END,
                   CASE WHEN i.status IN ('completed', 'closed')
                        THEN COALESCE(i.closed_at, i.updated_at) END
            -- A derived table, not a LATERAL without FROM: Citus cannot push that down.
            FROM (
                SELECT i.*, c.group_code,
                       COALESCE(i.due_at, i.opened_at + make_interval(secs => c.sla_hours * 3600))
                           AS sla_due_at
                FROM incidents i
                JOIN service_categories c
                  ON c.jurisdiction_id = i.jurisdiction_id AND c.code = i.category_code
                WHERE i.jurisdiction_id = :jid
            ) i
            WHERE NOT EXISTS (SELECT 1 FROM work_orders w
                              WHERE w.jurisdiction_id = i.jurisdiction_id
                                AND w.incident_id = i.id)
            """
        ),
        {"jid": jurisdiction_id, "risk": sla.AT_RISK_FRACTION},
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- looking things up --------------------------------------------------------------------


def get_incident(session: Session, *, jurisdiction_id: int, incident_id: int) -> Incident:
    """Return the incident, or raise NotFound."""
    incident = session.get(Incident, (jurisdiction_id, incident_id))
    if incident is None:
        raise NotFound(f"There is no incident {incident_id}.")
    return incident


def get_work_order(session: Session, *, jurisdiction_id: int, work_order_id: int) -> WorkOrder:
    """Return the work order, or raise NotFound."""
    work_order = session.get(WorkOrder, (jurisdiction_id, work_order_id))
    if work_order is None:
        raise NotFound(f"There is no work order {work_order_id}.")
    return work_order


def current_work_order(session: Session, incident: Incident) -> WorkOrder | None:
    """Return the incident's work order (the latest, should there be several), or None."""
    return session.scalars(
        select(WorkOrder)
        .where(
            WorkOrder.jurisdiction_id == incident.jurisdiction_id,
            WorkOrder.incident_id == incident.id,
        )
        .order_by(WorkOrder.id.desc())
        .limit(1)
    ).first()


# --- the lifecycle ------------------------------------------------------------------------

Entity = Incident | WorkOrder


def transition(
    session: Session,
    *,
    incident_or_work_order: Entity,
    to: str,
    actor: str,
    reason: str | None = None,
    expected_version: int | None = None,
    notice_context: Mapping[str, Any] | None = None,
    public_note: PublicNote | str | None = None,
) -> Entity:
    """Return the incident or work order after moving it (and its counterpart) to ``to``.

    - ``incident_or_work_order``: an ``Incident`` or a ``WorkOrder`` of this session; it is
      reloaded under a row lock, so it may be stale when passed in.
    - ``to``: a status of ``work_orders.lifecycle.STATUSES``. The counterpart (the incident's
      work order, or the work order's incident) moves with it; a work order that becomes
      ``completed`` closes its incident, which owes the closure notices.
    - ``actor``: who does it, e.g. ``"dispatcher:ana"``, ``"crew:7"``, ``"dedup"``.
    - ``reason``: why; required for on_hold, cancelled and transferred. Staff-only: it stays
      in the audit trail and is never published.
    - ``expected_version``: the version the caller last saw; if it moved on, StaleVersion
      (409, with ``current_version``). None: no check, the move is checked against the
      current status only.
    - ``notice_context``: more for the notices the move owes, e.g. ``{"scheduled_for":
      "2026-06-01"}`` from the day plan that schedules the work.
    - ``public_note``: what residents are told about the move (Open311 ``status_notes``),
      chosen on purpose; without one they see the new status's label.

    Typical calls from other packages: reopen a closed (or completed or cancelled) incident,
    ``to="reopened"``; cancel an incident merged into another, ``to="cancelled",
    reason="merged into incident 123"`` (allowed from every open status).

    Raises IllegalTransition (409) naming the allowed statuses, StaleVersion (409),
    ValidationFailed (422: unknown status, missing reason, or "transferred", which needs
    ``transfer()``). Flushes; the caller commits.
    """
    _refuse_transfer(to)
    return _transition(
        session,
        entity=incident_or_work_order,
        to=to,
        actor=actor,
        reason=reason,
        expected_version=expected_version,
        now=datetime.now(UTC),
        notice_context=notice_context,
        public_note=public_note,
    )


def _refuse_transfer(to: str) -> None:
    if to == "transferred":
        raise ValidationFailed(
            "Transferring needs the receiving department: use transfer().",
            errors=[FieldError("to", "use the transfer operation", "needs_department")],
        )


def hold(
    session: Session,
    *,
    work_order: WorkOrder,
    reason: str,
    actor: str,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> WorkOrder:
    """Return the work order put on hold; its SLA clock stops until it resumes."""
    return _as_work_order(
        _transition(
            session,
            entity=work_order,
            to="on_hold",
            actor=actor,
            reason=reason,
            expected_version=expected_version,
            now=now or datetime.now(UTC),
        )
    )


def resume(
    session: Session,
    *,
    work_order: WorkOrder,
    actor: str,
    reason: str | None = None,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> WorkOrder:
    """Return the held work order back in the status it was held from, its due time moved
    later by the (business) time the hold lasted."""
    _lock_pair(session, work_order)
    if work_order.status != "on_hold":
        raise IllegalTransition(
            f"Work order {work_order.id} is {work_order.status!r}, not on hold.",
            extra={"current_status": work_order.status},
        )
    return _as_work_order(
        _transition(
            session,
            entity=work_order,
            to=lifecycle.resume_target(work_order.held_from),
            actor=actor,
            reason=reason,
            expected_version=expected_version,
            now=now or datetime.now(UTC),
        )
    )


def transfer(
    session: Session,
    *,
    work_order: WorkOrder,
    department: str,
    actor: str,
    reason: str,
    expected_version: int | None = None,
) -> WorkOrder:
    """Return the work order moved to another department's (or agency's) queue."""
    department = department.strip()
    if not department or len(department) > 64:
        raise ValidationFailed(
            "department must be 1 to 64 characters",
            errors=[FieldError("department", "1 to 64 characters")],
        )
    return _as_work_order(
        _transition(
            session,
            entity=work_order,
            to="transferred",
            actor=actor,
            reason=reason,
            expected_version=expected_version,
            now=datetime.now(UTC),
            department=department,
        )
    )


def _as_work_order(entity: Entity) -> WorkOrder:
    assert isinstance(entity, WorkOrder)
    return entity


@dataclass
class _Pair:
    incident: Incident
    work_order: WorkOrder | None


def _lock_pair(session: Session, entity: Entity) -> _Pair:
    """Return the incident and its work order, reloaded under row locks (incident first)."""
    session.flush()  # a refresh must not drop the caller's unflushed changes
    if isinstance(entity, Incident):
        session.refresh(entity, with_for_update=True)
        work_order = session.scalars(
            select(WorkOrder)
            .where(
                WorkOrder.jurisdiction_id == entity.jurisdiction_id,
                WorkOrder.incident_id == entity.id,
            )
            .order_by(WorkOrder.id.desc())
            .limit(1)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()
        return _Pair(entity, work_order)
    incident = session.get(
        Incident,
        (entity.jurisdiction_id, entity.incident_id),
        with_for_update=True,
        populate_existing=True,
    )
    if incident is None:
        raise NotFound(f"The incident of work order {entity.id} is gone.")
    session.refresh(entity, with_for_update=True)
    return _Pair(incident, entity)


def _check_version(entity: Entity, expected_version: int | None) -> None:
    if expected_version is not None and entity.version != expected_version:
        kind = "incident" if isinstance(entity, Incident) else "work order"
        raise StaleVersion(
            f"The {kind} {entity.id} is at version {entity.version}, not {expected_version}: "
            "someone changed it since you loaded it. Reload and try again.",
            extra={"current_version": entity.version, "current_status": entity.status},
        )


def _plan(pair: _Pair, entity: Entity, to: str) -> list[lifecycle.Move]:
    if isinstance(entity, Incident):
        kind: lifecycle.EntityKind = "incident"
        counterpart = pair.work_order.status if pair.work_order else None
    else:
        kind = "work_order"
        counterpart = pair.incident.status
    try:
        return lifecycle.plan(kind, entity.status, to, counterpart=counterpart)
    except lifecycle.IllegalTransition as exc:
        raise IllegalTransition(
            exc.message,
            extra={
                "entity": exc.kind,
                "current_status": exc.current,
                "requested_status": exc.to,
                "allowed": list(exc.allowed),
            },
        ) from exc


def _check_request(to: str, reason: str | None) -> None:
    """Raise ValidationFailed unless ``to`` is a status and a reason is given where one is
    needed."""
    if lifecycle.as_status(to) is None:
        raise ValidationFailed(
            f"{to!r} is not a status; the statuses are: {', '.join(lifecycle.STATUSES)}.",
            errors=[FieldError("to", "unknown status", "unknown")],
        )
    if to in lifecycle.NEEDS_REASON and not (reason and reason.strip()):
        raise ValidationFailed(
            f"Moving to {to!r} needs a reason.",
            errors=[FieldError("reason", f"a reason is required for {to!r}", "missing")],
        )


def _prepare(
    session: Session,
    *,
    entity: Entity,
    to: str,
    reason: str | None,
    expected_version: int | None,
) -> tuple[_Pair, list[lifecycle.Move]]:
    _check_request(to, reason)
    pair = _lock_pair(session, entity)
    _check_version(entity, expected_version)
    return pair, _plan(pair, entity, to)


def _transition(
    session: Session,
    *,
    entity: Entity,
    to: str,
    actor: str,
    reason: str | None,
    expected_version: int | None,
    now: datetime,
    department: str | None = None,
    notice_context: Mapping[str, Any] | None = None,
    public_note: PublicNote | str | None = None,
) -> Entity:
    pair, moves = _prepare(
        session, entity=entity, to=to, reason=reason, expected_version=expected_version
    )
    _apply(
        session,
        pair,
        moves,
        actor=actor,
        reason=reason,
        now=now,
        department=department,
        notice_context=notice_context,
        public_note=public_note,
    )
    return entity


def _apply(
    session: Session,
    pair: _Pair,
    moves: list[lifecycle.Move],
    *,
    actor: str,
    reason: str | None,
    now: datetime,
    department: str | None = None,
    notice_context: Mapping[str, Any] | None = None,
    public_note: PublicNote | str | None = None,
) -> None:
    incident = pair.incident
    calendar: sla.BusinessCalendar | None = None
    if _resumes(pair, moves):
        calendar = category_calendar(
            session, jurisdiction_id=incident.jurisdiction_id, category_code=incident.category_code
        )
    owed = _move_pair(
        session,
        pair,
        moves,
        actor=actor,
        reason=reason,
        now=now,
        calendar=calendar,
        department=department,
        public_note=public_note,
    )
    session.flush()
    _owe_status_notices(session, owed, notice_context)


@dataclass(frozen=True)
class _Owed:
    """An incident event that owes the residents a notice (written, its id known once
    flushed)."""

    incident: Incident
    work_order: WorkOrder | None
    kind: str
    status: str
    event: AuditEvent


# Incident statuses the residents are told about as they happen.
_NOTICE_KINDS = ("scheduled", "closed")


def _resumes(pair: _Pair, moves: Sequence[lifecycle.Move]) -> bool:
    """Return whether the moves take the work order off hold (its due time then moves)."""
    return pair.work_order is not None and any(
        m.kind == "work_order" and m.current == "on_hold" for m in moves
    )


def _move_pair(
    session: Session,
    pair: _Pair,
    moves: Sequence[lifecycle.Move],
    *,
    actor: str,
    reason: str | None,
    now: datetime,
    calendar: sla.BusinessCalendar | None,
    department: str | None = None,
    public_note: PublicNote | str | None = None,
) -> list[_Owed]:
    """Return the notices the moves owe, after making them on the locked pair and adding one
    audit event per entity moved (nothing is flushed: the caller flushes once for all)."""
    incident, work_order = pair.incident, pair.work_order
    owed: list[_Owed] = []
    for move in moves:
        if move.kind == "work_order":
            assert work_order is not None
            data = _move_work_order(work_order, move, actor, reason, now, calendar, department)
            entity_id, version = work_order.id, work_order.version
        else:
            data = _move_incident(incident, move, now)
            entity_id, version = incident.id, incident.version
        event_row = audit.record(
            session,
            jurisdiction_id=incident.jurisdiction_id,
            entity=move.kind,
            entity_id=entity_id,
            action="transition",
            actor=actor,
            from_state=move.current,
            to_state=move.to,
            reason=reason,
            # Only the incident's events are public; the work order's are staff-only.
            public_note=public_note if move.kind == "incident" else None,
            data={"version": version, **data},
        )
        if move.kind == "incident" and move.to in _NOTICE_KINDS:
            owed.append(_Owed(incident, work_order, move.to, incident.status, event_row))
    if work_order is not None:
        incident.due_at = work_order.due_at
    return owed


def transition_many(
    session: Session,
    *,
    jurisdiction_id: int,
    work_order_ids: Collection[int],
    steps: Callable[[WorkOrder], Sequence[str]],
    actor: str,
    crews: Mapping[int, int] | None = None,
    reason: str | None = None,
    notice_context: Mapping[str, Any] | None = None,
    public_note: PublicNote | str | None = None,
    now: datetime | None = None,
) -> list[WorkOrder]:
    """Return the work orders (by id) after moving each one, with its incident, through the
    statuses ``steps`` names for it: what one ``transition`` per step would do (the same
    rules, versions, SLA clocks, audit events and owed notices), in a handful of statements
    however many work orders there are.

    - ``work_order_ids``: work orders of the jurisdiction; NotFound names any that is not.
      They and their incidents are locked in one statement, incident first and in incident
      order, so two bulk moves, or a bulk move and a single transition, cannot deadlock.
    - ``steps``: called once per work order, locked and current, with the crew of ``crews``
      already given; returns the statuses to move it through, in order (none: it stays).
    - ``crews``: work order id → the crew it now has (a day plan placing it), given before it
      moves, whether or not it moves.
    - ``actor``, ``reason``, ``notice_context``, ``public_note``: as for ``transition``, for
      every move. ``"transferred"`` is refused, as there.

    Raises what ``transition`` raises (IllegalTransition names the work order that cannot
    move); the caller's transaction is then to be rolled back. Flushes; the caller commits.
    """
    now = now or datetime.now(UTC)
    ids = sorted(set(work_order_ids))
    if not ids:
        return []
    session.flush()  # the lock reloads the rows: the caller's unflushed changes go first
    rows = session.execute(
        select(Incident, WorkOrder)
        .join(
            WorkOrder,
            and_(
                WorkOrder.jurisdiction_id == Incident.jurisdiction_id,
                WorkOrder.incident_id == Incident.id,
            ),
        )
        .where(WorkOrder.jurisdiction_id == jurisdiction_id, WorkOrder.id.in_(ids))
        .order_by(Incident.id, WorkOrder.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    pairs = {row.WorkOrder.id: _Pair(row.Incident, row.WorkOrder) for row in rows}
    missing = [i for i in ids if i not in pairs]
    if missing:
        raise NotFound(f"There is no work order {', '.join(map(str, missing))}.")
    calendars: dict[str, sla.BusinessCalendar | None] = {}
    owed: list[_Owed] = []
    moved: list[WorkOrder] = []
    for work_order_id in ids:
        pair = pairs[work_order_id]
        work_order = pair.work_order
        assert work_order is not None
        moved.append(work_order)
        crew_id = crews.get(work_order_id, work_order.crew_id) if crews else work_order.crew_id
        if crew_id != work_order.crew_id:
            work_order.crew_id = crew_id
            work_order.updated_at = now
        for to in steps(work_order):
            _refuse_transfer(to)
            _check_request(to, reason)
            try:
                moves = _plan(pair, work_order, to)
            except IllegalTransition as exc:
                raise IllegalTransition(
                    f"Work order {work_order_id}: {exc.detail}",
                    extra={"work_order_id": work_order_id, **exc.extra},
                ) from exc
            calendar = None
            if _resumes(pair, moves):
                code = pair.incident.category_code
                if code not in calendars:
                    calendars[code] = category_calendar(
                        session, jurisdiction_id=jurisdiction_id, category_code=code
                    )
                calendar = calendars[code]
            owed += _move_pair(
                session,
                pair,
                moves,
                actor=actor,
                reason=reason,
                now=now,
                calendar=calendar,
                public_note=public_note,
            )
    _write_alike(moved)
    _write_alike([pairs[w.id].incident for w in moved])
    session.flush()
    _owe_status_notices(session, owed, notice_context)
    return moved


def _write_alike(rows: Sequence[Entity]) -> None:
    """Mark the same columns changed on every changed row of one table, so the flush sends
    them as one batch of a single UPDATE (it starts a new statement wherever the next row's
    changed columns differ: with a crew given here and there, one per few rows)."""
    changed: list[Entity] = []
    keys: set[str] = set()
    for row in rows:
        mine = {a.key for a in instance_state(row).attrs if a.history.has_changes()}
        if mine:
            changed.append(row)
            keys |= mine
    for row in changed:
        for key in keys:
            flag_modified(row, key)


def _move_work_order(
    work_order: WorkOrder,
    move: lifecycle.Move,
    actor: str,
    reason: str | None,
    now: datetime,
    calendar: sla.BusinessCalendar | None,
    department: str | None,
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if move.current == "on_hold" and work_order.paused_at is not None:
        times = sla.after_hold(
            sla.SlaTimes(work_order.due_at, work_order.at_risk_at),
            work_order.paused_at,
            max(now, work_order.paused_at),
            calendar,
        )
        data["held_s"] = round((now - work_order.paused_at).total_seconds())
        data["due_at"] = times.due_at.isoformat()
        work_order.due_at, work_order.at_risk_at = times.due_at, times.at_risk_at
        work_order.paused_at = work_order.hold_reason = work_order.held_from = None
    if move.to == "on_hold":
        work_order.paused_at = now
        work_order.hold_reason = reason
        work_order.held_from = move.current
    elif move.to == "completed":
        work_order.completed_at = now
        work_order.completed_by = actor
        work_order.resolved_at = now
    elif move.to in ("closed", "cancelled"):
        work_order.resolved_at = work_order.resolved_at or now
    elif move.to == "reopened":
        # The SLA clock keeps running from the original due time; the work goes back to the
        # department's queue for a dispatcher to assign again.
        work_order.resolved_at = None
        work_order.crew_id = None
        data["crew_released"] = True
    elif move.to == "transferred":
        assert department is not None
        data["from_department"] = work_order.department
        data["department"] = department
        work_order.department = department
        work_order.crew_id = None
    work_order.status = move.to
    work_order.version = work_order.version + 1
    work_order.updated_at = now
    return data


def _move_incident(incident: Incident, move: lifecycle.Move, now: datetime) -> dict[str, Any]:
    if move.to == "closed":
        incident.closed_at = now
    elif move.to == "reopened":
        incident.closed_at = None
    incident.status = move.to
    incident.version = incident.version + 1
    incident.updated_at = now
    return {}


# --- completion ---------------------------------------------------------------------------


def check_completion(*, note: str | None, resolution_code: str | None) -> tuple[str, str]:
    """Return the cleaned note and resolution code, or raise ValidationFailed listing both
    problems at once."""
    errors: list[FieldError] = []
    code = (resolution_code or "").strip()
    if not code:
        errors.append(FieldError("resolution_code", "resolution_code is required", "missing"))
    elif code not in RESOLUTION_CODES:
        errors.append(
            FieldError(
                "resolution_code",
                f"{code!r} is not a resolution code; use one of {', '.join(RESOLUTION_CODES)}",
                "unknown",
            )
        )
    text_note = (note or "").strip()
    if len(text_note) > NOTE_MAX_CHARS:
        errors.append(
            FieldError("note", f"the note is longer than {NOTE_MAX_CHARS} characters", "too_long")
        )
    if errors:
        raise ValidationFailed("; ".join(e.message for e in errors), errors=errors)
    return text_note, code


def complete_work_order(
    session: Session,
    *,
    work_order: WorkOrder,
    actor: str,
    photo: photos.ProcessedPhoto,
    note: str | None,
    resolution_code: str,
    media: MediaStore,
    jurisdiction_slug: str,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> WorkOrder:
    """Return the work order completed with its after-photo, note and resolution code; its
    incident is closed and every subscribed requester is owed the closure notice.

    The photo's files are written now and deleted again if the transaction rolls back.
    """
    now = now or datetime.now(UTC)
    text_note, code = check_completion(note=note, resolution_code=resolution_code)
    pair, moves = _prepare(
        session,
        entity=work_order,
        to="completed",
        reason=None,
        expected_version=expected_version,
    )
    row = media_service.store_photo(
        session,
        media,
        photo,
        jurisdiction_id=work_order.jurisdiction_id,
        jurisdiction_slug=jurisdiction_slug,
        kind="after",
        report_id=None,
        now=now,
    )
    work_order.after_photo_id = row.id
    work_order.completion_note = text_note or None
    work_order.resolution_code = code
    # The crew's note is for staff; residents are told the resolution, in chosen words.
    _apply(
        session,
        pair,
        moves,
        actor=actor,
        reason=text_note or None,
        now=now,
        public_note=PublicNote("resolved", {"resolution_code": code}),
    )
    return work_order


# --- "fixed?" answers ---------------------------------------------------------------------

AnswerOutcome = Literal[
    "thanks_fixed", "thanks_not_fixed", "already", "outdated", "fixed_but_reopened"
]


@dataclass(frozen=True)
class AnswerResult:
    """What a resident's answer did, and what to show them."""

    outcome: AnswerOutcome
    incident_id: int
    language: str
    category_code: str
    category: str
    tracking_id: str | None


def answer_closure(
    session: Session,
    *,
    link: AnswerLink,
    answer: Literal["fixed", "not_fixed"],
    now: datetime | None = None,
) -> AnswerResult:
    """Return what the resident's answer to a closure notice did.

    "not fixed" reopens the incident and puts its work order back in the department's queue
    (no crew), unless the incident was reopened already or closed again since that notice
    (then the link is outdated). "fixed" is recorded (``fixed_but_reopened`` when the
    incident is open again: it stays open). Every answer is an audit event.
    """
    now = now or datetime.now(UTC)
    incident = get_incident(
        session, jurisdiction_id=link.jurisdiction_id, incident_id=link.incident_id
    )
    _lock_pair(session, incident)
    info = describe_answer_link(session, link=link)
    latest_closure = session.scalar(
        text(
            "SELECT max(id) FROM audit_events WHERE jurisdiction_id = :jid "
            "AND entity = 'incident' AND entity_id = :incident AND to_state = 'closed'"
        ),
        {"jid": link.jurisdiction_id, "incident": link.incident_id},
    )
    actor = f"requester:{link.requester_id}"
    outcome: AnswerOutcome
    if answer == "fixed":
        # "Fixed" is recorded, not acted on: an incident reopened by an earlier "not fixed"
        # stays open until a crew has looked, and the resident is told so.
        outcome = "thanks_fixed" if incident.status == "closed" else "fixed_but_reopened"
    elif latest_closure != link.event_id:
        outcome = "outdated"
    elif incident.status == "closed":
        _transition(
            session,
            entity=incident,
            to="reopened",
            actor=actor,
            reason="The resident answered 'not fixed' to the closure notice.",
            expected_version=None,
            now=now,
            public_note=PublicNote("reopened_not_fixed"),
        )
        outcome = "thanks_not_fixed"
    else:
        outcome = "already"
    audit.record(
        session,
        jurisdiction_id=link.jurisdiction_id,
        entity="incident",
        entity_id=incident.id,
        action="resident_answer",
        actor=actor,
        data={"answer": answer, "closure_event": link.event_id, "outcome": outcome},
    )
    session.flush()
    return AnswerResult(
        outcome=outcome,
        incident_id=incident.id,
        language=info.language,
        category_code=info.category_code,
        category=info.category,
        tracking_id=info.tracking_id,
    )


@dataclass(frozen=True)
class AnswerLinkInfo:
    """What the "fixed?" page shows about the link's incident, in the requester's language."""

    language: str
    category_code: str
    category: str
    tracking_id: str | None


def describe_answer_link(session: Session, *, link: AnswerLink) -> AnswerLinkInfo:
    """Return what the "fixed?" page shows for a link, or raise NotFound."""
    row = session.execute(
        text(
            """
            SELECT q.language, r.tracking_id, c.code, c.name
            FROM incidents i
            JOIN service_categories c
              ON c.jurisdiction_id = i.jurisdiction_id AND c.code = i.category_code
            JOIN requesters q ON q.jurisdiction_id = i.jurisdiction_id AND q.id = :requester
            LEFT JOIN subscriptions s ON s.jurisdiction_id = i.jurisdiction_id
                 AND s.requester_id = q.id AND s.incident_id = i.id
            LEFT JOIN reports r ON r.jurisdiction_id = s.jurisdiction_id AND r.id = s.report_id
            WHERE i.jurisdiction_id = :jid AND i.id = :incident
            """
        ),
        {"jid": link.jurisdiction_id, "requester": link.requester_id, "incident": link.incident_id},
    ).one_or_none()
    if row is None:
        raise NotFound("The link names an incident or requester this service does not know.")
    return AnswerLinkInfo(
        language=row.language,
        category_code=row.code,
        category=row.name,
        tracking_id=row.tracking_id,
    )


# --- SLA in SQL ---------------------------------------------------------------------------


def sla_clock() -> ColumnElement[datetime]:
    """SQL: the instant the SLA clock shows: frozen at the hold or the resolution, else now."""
    return func.coalesce(WorkOrder.paused_at, WorkOrder.resolved_at, func.now())


def sla_breached() -> ColumnElement[bool]:
    """SQL: the work order missed (or, if open, is past) its due time; cancelled never is."""
    return and_(WorkOrder.status != "cancelled", sla_clock() >= WorkOrder.due_at)


def sla_at_risk() -> ColumnElement[bool]:
    """SQL: open work in the last part of its SLA window, not yet breached."""
    clock = sla_clock()
    return and_(
        WorkOrder.status.in_(sorted(lifecycle.OPEN)),
        clock >= WorkOrder.at_risk_at,
        clock < WorkOrder.due_at,
    )


def sla_state() -> ColumnElement[str]:
    """SQL: breached, at_risk, on_track (open work), met (finished in time) or cancelled."""
    return case(
        (WorkOrder.status == "cancelled", "cancelled"),
        (sla_breached(), "breached"),
        (sla_at_risk(), "at_risk"),
        (WorkOrder.status.in_(sorted(lifecycle.OPEN)), "on_track"),
        else_="met",
    )


SlaFilter = Literal["breached", "at_risk", "on_track", "met", "cancelled"]


@dataclass(frozen=True)
class WorkOrderRow:
    """A work order as lists show it, with its SLA state computed by the database."""

    work_order: WorkOrder
    category_code: str
    ward_id: int | None
    lon: float
    lat: float
    sla_state: str


def list_work_orders(
    session: Session,
    *,
    jurisdiction_id: int,
    statuses: Sequence[str] = (),
    department: str | None = None,
    sla_filter: SlaFilter | None = None,
    open_only: bool = False,
    work_order_ids: Sequence[int] = (),
    limit: int = 100,
    offset: int = 0,
) -> list[WorkOrderRow]:
    """Return work orders, most urgent first (earliest due), filtered in SQL."""
    state = sla_state().label("sla_state")
    query = (
        select(
            WorkOrder,
            Incident.category_code,
            Incident.ward_id,
            func.ST_X(Incident.geom).label("lon"),
            func.ST_Y(Incident.geom).label("lat"),
            state,
        )
        .join(
            Incident,
            and_(
                Incident.jurisdiction_id == WorkOrder.jurisdiction_id,
                Incident.id == WorkOrder.incident_id,
            ),
        )
        .where(WorkOrder.jurisdiction_id == jurisdiction_id)
    )
    if work_order_ids:
        query = query.where(WorkOrder.id.in_(list(work_order_ids)))
    if statuses:
        query = query.where(WorkOrder.status.in_(list(statuses)))
    if open_only:
        query = query.where(WorkOrder.status.in_(sorted(lifecycle.OPEN)))
    if department is not None:
        query = query.where(WorkOrder.department == department)
    if sla_filter is not None:
        query = query.where(sla_state() == sla_filter)
    rows = session.execute(
        query.order_by(WorkOrder.due_at, WorkOrder.id).limit(limit).offset(offset)
    ).all()
    return [
        WorkOrderRow(
            work_order=row.WorkOrder,
            category_code=row.category_code,
            ward_id=row.ward_id,
            lon=row.lon,
            lat=row.lat,
            sla_state=row.sla_state,
        )
        for row in rows
    ]


def sla_summary(
    session: Session, *, jurisdiction_id: int, department: str | None = None
) -> list[dict[str, Any]]:
    """Return, per department, how much work is open, on hold, at risk and breached."""
    open_work = WorkOrder.status.in_(sorted(lifecycle.OPEN))
    query = (
        select(
            WorkOrder.department,
            func.count().filter(open_work).label("open"),
            func.count().filter(WorkOrder.status == "on_hold").label("on_hold"),
            func.count().filter(sla_at_risk()).label("at_risk"),
            func.count().filter(and_(open_work, sla_breached())).label("breached_open"),
            func.count()
            .filter(and_(WorkOrder.status.in_(["completed", "closed"]), sla_breached()))
            .label("breached_done"),
            func.count()
            .filter(and_(WorkOrder.status.in_(["completed", "closed"]), ~sla_breached()))
            .label("met"),
        )
        .where(WorkOrder.jurisdiction_id == jurisdiction_id)
        .group_by(WorkOrder.department)
        .order_by(WorkOrder.department)
    )
    if department is not None:
        query = query.where(WorkOrder.department == department)
    return [dict(row._mapping) for row in session.execute(query)]


# --- notices ------------------------------------------------------------------------------


def _incident_contexts(
    session: Session, incidents: Sequence[Incident]
) -> dict[int, dict[str, Any]]:
    """Return incident id → what every notice about it says: from the session when it holds
    the incident's point, category and jurisdiction (intake's new incident: no round trip),
    else one statement for all the rest (a day plan's many)."""
    out: dict[int, dict[str, Any]] = {}
    missing: list[Incident] = []
    for incident in incidents:
        if _context_in_session(session, incident):
            out[incident.id] = _incident_context(session, incident)
        else:
            missing.append(incident)
    if not missing:
        return out
    rows = session.execute(
        select(
            Incident.id,
            ServiceCategory.name,
            Jurisdiction.name.label("city"),
            func.ST_X(Incident.geom).label("lon"),
            func.ST_Y(Incident.geom).label("lat"),
        )
        .select_from(Incident)
        .join(
            ServiceCategory,
            and_(
                ServiceCategory.jurisdiction_id == Incident.jurisdiction_id,
                ServiceCategory.code == Incident.category_code,
            ),
        )
        .join(Jurisdiction, Jurisdiction.id == Incident.jurisdiction_id)
        .where(
            Incident.jurisdiction_id == missing[0].jurisdiction_id,
            Incident.id.in_(sorted({i.id for i in missing})),
        )
    ).all()
    by_id = {row.id: row for row in rows}
    for incident in missing:
        row = by_id[incident.id]
        out[incident.id] = {
            "incident_id": incident.id,
            "category_code": incident.category_code,
            "category": row.name,
            "city": row.city,
            "status": incident.status,
            "lon": round(row.lon, 7),
            "lat": round(row.lat, 7),
        }
    return out


def _context_in_session(session: Session, incident: Incident) -> bool:
    # The identity map holds objects weakly: only those something still refers to are there.
    held = session.identity_map
    return (
        "geom" not in inspect(incident).unloaded
        and held.get(
            identity_key(ServiceCategory, (incident.jurisdiction_id, incident.category_code))
        )
        is not None
        and held.get(identity_key(Jurisdiction, incident.jurisdiction_id)) is not None
    )


def _incident_context(session: Session, incident: Incident) -> dict[str, Any]:
    # The category and the jurisdiction are nearly always in the session already (intake and
    # the lifecycle read them), so this costs no round trip; the point is the incident's own.
    category = session.get(ServiceCategory, (incident.jurisdiction_id, incident.category_code))
    jurisdiction = session.get(Jurisdiction, incident.jurisdiction_id)
    if category is None or jurisdiction is None:
        raise NotFound(f"The category or jurisdiction of incident {incident.id} is gone.")
    geom: Any = incident.geom
    point = to_shape(WKTElement(geom.split(";")[-1]) if isinstance(geom, str) else geom)
    return {
        "incident_id": incident.id,
        "category_code": incident.category_code,
        "category": category.name,
        "city": jurisdiction.name,
        "status": incident.status,
        "lon": round(point.x, 7),
        "lat": round(point.y, 7),
    }


def _owe_status_notices(
    session: Session, owed: Sequence[_Owed], extra: Mapping[str, Any] | None = None
) -> None:
    """Owe the residents and webhooks the notices of the events, in one go however many."""
    if not owed:
        return
    jurisdiction_id = owed[0].incident.jurisdiction_id
    contexts = _incident_contexts(session, [o.incident for o in owed])
    photo_ids = sorted(
        {
            o.work_order.after_photo_id
            for o in owed
            if o.kind == "closed" and o.work_order and o.work_order.after_photo_id is not None
        }
    )
    photo_keys: dict[int, str] = {}
    if photo_ids:
        photo_keys = {
            int(photo_id): str(key)
            for photo_id, key in session.execute(
                select(Photo.id, Photo.public_key).where(
                    Photo.jurisdiction_id == jurisdiction_id, Photo.id.in_(photo_ids)
                )
            )
        }
    by_kind: dict[str, list[tuple[_Owed, dict[str, Any]]]] = {}
    for o in owed:
        context = {**contexts[o.incident.id], "status": o.status, **(extra or {})}
        context["event_id"] = o.event.id
        if o.kind == "closed" and o.work_order is not None:
            context["resolution_code"] = o.work_order.resolution_code
            context["note"] = o.work_order.completion_note
            if o.work_order.after_photo_id is not None:
                context["photo_key"] = photo_keys[o.work_order.after_photo_id]
        by_kind.setdefault(o.kind, []).append((o, context))
    drafts: list[outbox.NoticeDraft] = []
    for kind, items in by_kind.items():
        drafts += _requester_drafts(
            session,
            jurisdiction_id=jurisdiction_id,
            kind=kind,
            items=[(o.incident.id, f"event-{o.event.id}", c) for o, c in items],
        )
        drafts += _webhook_drafts(
            session,
            jurisdiction_id=jurisdiction_id,
            kind=kind,
            items=[
                (o.incident.id, f"{kind}:incident-{o.incident.id}:event-{o.event.id}", c)
                for o, c in items
            ],
        )
    outbox.owe(session, drafts)


def _owe_requester_notices(
    session: Session,
    *,
    incident: Incident,
    kind: str,
    event_key: str,
    context: Mapping[str, Any],
    requester_id: int | None = None,
) -> int:
    """Owe ``kind`` to every subscribed requester with a contact who has not muted it (or to
    ``requester_id`` only): email when they gave one, else SMS. Return how many."""
    drafts = _requester_drafts(
        session,
        jurisdiction_id=incident.jurisdiction_id,
        kind=kind,
        items=[(incident.id, event_key, context)],
        requester_id=requester_id,
    )
    return len(outbox.owe(session, drafts))


# (incident id, the event's part of the idempotency key, what the notice says)
_NoticeItem = tuple[int, str, Mapping[str, Any]]


def _requester_drafts(
    session: Session,
    *,
    jurisdiction_id: int,
    kind: str,
    items: Sequence[_NoticeItem],
    requester_id: int | None = None,
) -> list[outbox.NoticeDraft]:
    """Return the notices ``kind`` owes the subscribed requesters of each item's incident who
    have a contact and have not muted it (or ``requester_id`` only): email when they gave
    one, else SMS. One statement for all the items."""
    if not items:
        return []
    not_muted = notify_service.not_muted_sql(
        jurisdiction_id="s.jurisdiction_id", requester_id="s.requester_id", kind=":kind"
    )
    rows = session.execute(
        text(
            f"""
            SELECT s.incident_id, s.requester_id, q.email, q.phone, q.language, r.tracking_id
            FROM subscriptions s
            JOIN requesters q ON q.jurisdiction_id = s.jurisdiction_id AND q.id = s.requester_id
            LEFT JOIN reports r ON r.jurisdiction_id = s.jurisdiction_id AND r.id = s.report_id
            WHERE s.jurisdiction_id = :jid AND s.incident_id = ANY(CAST(:incidents AS bigint[]))
              AND (q.email IS NOT NULL OR q.phone IS NOT NULL)
              AND {not_muted}
              AND (CAST(:requester AS bigint) IS NULL OR s.requester_id = :requester)
            ORDER BY s.incident_id, s.requester_id
            """  # noqa: S608 - not_muted is built from constants
        ),
        {
            "jid": jurisdiction_id,
            "incidents": sorted({incident_id for incident_id, _, _ in items}),
            "kind": kind,
            "requester": requester_id,
        },
    ).all()
    subscribed: dict[int, list[Any]] = {}
    for row in rows:
        subscribed.setdefault(int(row.incident_id), []).append(row)
    return [
        _requester_notice(
            jurisdiction_id=jurisdiction_id,
            incident_id=incident_id,
            kind=kind,
            event_key=event_key,
            requester_id=row.requester_id,
            email=row.email,
            phone=row.phone,
            language=row.language,
            context={**context, "tracking_id": row.tracking_id},
        )
        for incident_id, event_key, context in items
        for row in subscribed.get(incident_id, [])
    ]


def _requester_notice(
    *,
    jurisdiction_id: int,
    incident_id: int,
    kind: str,
    event_key: str,
    requester_id: int,
    email: str | None,
    phone: str | None,
    language: str,
    context: Mapping[str, Any],
) -> outbox.NoticeDraft:
    """Return the notice a requester is owed: by email when they gave one, else by SMS."""
    recipient = email or phone
    assert recipient is not None
    return outbox.NoticeDraft(
        jurisdiction_id=jurisdiction_id,
        idempotency_key=f"{kind}:incident-{incident_id}:{event_key}:requester-{requester_id}",
        kind=kind,
        channel="email" if email else "sms",
        recipient=recipient,
        language=language,
        incident_id=incident_id,
        requester_id=requester_id,
        context=dict(context),
    )


def _owe_webhooks(
    session: Session,
    *,
    incident: Incident,
    kind: str,
    key: str,
    context: Mapping[str, Any],
    endpoints: Sequence[tuple[int, str]] | None = None,
) -> int:
    drafts = _webhook_drafts(
        session,
        jurisdiction_id=incident.jurisdiction_id,
        kind=kind,
        items=[(incident.id, key, context)],
        endpoints=endpoints,
    )
    return len(outbox.owe(session, drafts))


def _webhook_drafts(
    session: Session,
    *,
    jurisdiction_id: int,
    kind: str,
    items: Sequence[_NoticeItem],
    endpoints: Sequence[tuple[int, str]] | None = None,
) -> list[outbox.NoticeDraft]:
    """Return the notices ``kind`` owes each active webhook endpoint that takes it, per item
    (the item's key names the event); ``endpoints``: (id, url) read already."""
    if not items:
        return []
    if endpoints is None:
        endpoints = notify_service.webhook_targets(
            session, jurisdiction_id=jurisdiction_id, kind=kind
        )
    return [
        outbox.NoticeDraft(
            jurisdiction_id=jurisdiction_id,
            idempotency_key=f"{key}:webhook-{endpoint_id}",
            kind=kind,
            channel="webhook",
            recipient=url,
            incident_id=incident_id,
            webhook_endpoint_id=endpoint_id,
            context=dict(context),
        )
        for incident_id, key, context in items
        for endpoint_id, url in endpoints
    ]
