"""How an incident and its work order move together, shared by every status change
(``work_orders.transitions``, ``completion``, ``answers``): lock the pair, check the request
and the version, plan the moves the lifecycle allows, make them (SLA clock, versions, one
audit event per entity moved) and owe the notices they cause.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified, instance_state

from geo311.kernel.errors import FieldError, NotFound, ValidationFailed
from work_orders import audit, lifecycle, notices, sla
from work_orders.categories import category_calendar
from work_orders.errors import IllegalTransition, StaleVersion
from work_orders.models import AuditEvent, Incident, WorkOrder
from work_orders.public_notes import PublicNote

Entity = Incident | WorkOrder


@dataclass
class Pair:
    """An incident and its work order (None: it has none), moved together."""

    incident: Incident
    work_order: WorkOrder | None


def lock_pair(session: Session, entity: Entity) -> Pair:
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
        return Pair(entity, work_order)
    incident = session.get(
        Incident,
        (entity.jurisdiction_id, entity.incident_id),
        with_for_update=True,
        populate_existing=True,
    )
    if incident is None:
        raise NotFound(f"The incident of work order {entity.id} is gone.")
    session.refresh(entity, with_for_update=True)
    return Pair(incident, entity)


def _check_version(entity: Entity, expected_version: int | None) -> None:
    if expected_version is not None and entity.version != expected_version:
        kind = "incident" if isinstance(entity, Incident) else "work order"
        raise StaleVersion(
            f"The {kind} {entity.id} is at version {entity.version}, not {expected_version}: "
            "someone changed it since you loaded it. Reload and try again.",
            extra={"current_version": entity.version, "current_status": entity.status},
        )


def plan_moves(pair: Pair, entity: Entity, to: str) -> list[lifecycle.Move]:
    """Return the moves the lifecycle allows from here to ``to``, or raise IllegalTransition
    (409) naming the allowed statuses."""
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


def check_request(to: str, reason: str | None) -> None:
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


def prepare(
    session: Session,
    *,
    entity: Entity,
    to: str,
    reason: str | None,
    expected_version: int | None,
) -> tuple[Pair, list[lifecycle.Move]]:
    """Return the locked pair and the moves that take ``entity`` to ``to``, or raise what
    ``transition`` raises (bad request, stale version, illegal move)."""
    check_request(to, reason)
    pair = lock_pair(session, entity)
    _check_version(entity, expected_version)
    return pair, plan_moves(pair, entity, to)


def apply(
    session: Session,
    pair: Pair,
    moves: list[lifecycle.Move],
    *,
    actor: str,
    reason: str | None,
    now: datetime,
    department: str | None = None,
    notice_context: Mapping[str, Any] | None = None,
    public_note: PublicNote | str | None = None,
) -> None:
    """Make the moves on the locked pair, write their audit events and owe the notices they
    cause (flushes)."""
    incident = pair.incident
    calendar: sla.BusinessCalendar | None = None
    if resumes(pair, moves):
        calendar = category_calendar(
            session, jurisdiction_id=incident.jurisdiction_id, category_code=incident.category_code
        )
    owed = move_pair(
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
    notices.owe_status_notices(session, owed, notice_context)


def resumes(pair: Pair, moves: Sequence[lifecycle.Move]) -> bool:
    """Return whether the moves take the work order off hold (its due time then moves)."""
    return pair.work_order is not None and any(
        m.kind == "work_order" and m.current == "on_hold" for m in moves
    )


def move_pair(
    session: Session,
    pair: Pair,
    moves: Sequence[lifecycle.Move],
    *,
    actor: str,
    reason: str | None,
    now: datetime,
    calendar: sla.BusinessCalendar | None,
    department: str | None = None,
    public_note: PublicNote | str | None = None,
    events: list[AuditEvent] | None = None,
) -> list[notices.Owed]:
    """Return the notices the moves owe, after making them on the locked pair and adding one
    audit event per entity moved (nothing is flushed: the caller flushes once for all).

    ``events``: the audit events are appended there, for the caller to write with
    ``audit.write_many`` (a bulk move), rather than added to the session."""
    incident, work_order = pair.incident, pair.work_order
    owed: list[notices.Owed] = []
    for move in moves:
        if move.kind == "work_order":
            assert work_order is not None
            data = _move_work_order(work_order, move, actor, reason, now, calendar, department)
            entity_id, version = work_order.id, work_order.version
        else:
            data = _move_incident(incident, move, now)
            entity_id, version = incident.id, incident.version
        event_row = (audit.record if events is None else audit.pending)(
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
        if events is not None:
            events.append(event_row)
        if move.kind == "incident" and move.to in notices.NOTICE_KINDS:
            owed.append(notices.Owed(incident, work_order, move.to, incident.status, event_row))
    if work_order is not None:
        incident.due_at = work_order.due_at
    return owed


def write_alike(rows: Sequence[Entity]) -> None:
    """Mark the same columns changed on every changed row of one table, so the flush sends
    them as one batch of a single UPDATE (it starts a new statement wherever the next row's
    changed columns differ: with a crew given here and there, one per few rows)."""
    changed: list[Entity] = []
    keys: set[str] = set()
    for row in rows:
        # The attributes set since the row was loaded (their loaded values are kept there): a
        # dict's keys, where asking every attribute for its history was most of a bulk move.
        mine = instance_state(row).committed_state.keys()
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
