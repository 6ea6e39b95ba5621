"""Changing a status: ``transition`` and the operations built on it (``hold``, ``resume``,
``transfer``), and ``transition_many`` for many work orders at once (a day plan's).

The one way to change a status is ``transition`` (completion and the residents' "fixed?"
answers build on it too). It locks the incident and its work order (always in that order, so
two transitions cannot deadlock), refuses illegal moves and stale versions, moves both in
step, bumps their versions, keeps the SLA clock, writes one audit event per entity moved, and
owes the residents' notices in the same transaction. ``transition_many`` does the same for
many work orders at once, with the same rules (``work_orders.moving``, shared, not copied) and
in a handful of statements however many move. Plain functions, session first; they flush, the
caller commits.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, BindParameter, and_, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from geo311.kernel.errors import FieldError, NotFound, ValidationFailed
from work_orders import audit, lifecycle, moving, notices, sla
from work_orders.categories import category_calendar
from work_orders.errors import IllegalTransition
from work_orders.models import AuditEvent, Incident, WorkOrder
from work_orders.public_notes import PublicNote


def transition(
    session: Session,
    *,
    incident_or_work_order: moving.Entity,
    to: str,
    actor: str,
    reason: str | None = None,
    expected_version: int | None = None,
    notice_context: Mapping[str, Any] | None = None,
    public_note: PublicNote | str | None = None,
) -> moving.Entity:
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
    return transition_at(
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
        transition_at(
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
    moving.lock_pair(session, work_order)
    if work_order.status != "on_hold":
        raise IllegalTransition(
            f"Work order {work_order.id} is {work_order.status!r}, not on hold.",
            extra={"current_status": work_order.status},
        )
    return _as_work_order(
        transition_at(
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
        transition_at(
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


def _as_work_order(entity: moving.Entity) -> WorkOrder:
    assert isinstance(entity, WorkOrder)
    return entity


def transition_at(
    session: Session,
    *,
    entity: moving.Entity,
    to: str,
    actor: str,
    reason: str | None,
    expected_version: int | None,
    now: datetime,
    department: str | None = None,
    notice_context: Mapping[str, Any] | None = None,
    public_note: PublicNote | str | None = None,
) -> moving.Entity:
    """Return the entity after ``transition`` at ``now``, "transferred" allowed (with its
    ``department``): what ``hold``, ``resume``, ``transfer`` and the "fixed?" answers build on."""
    pair, moves = moving.prepare(
        session, entity=entity, to=to, reason=reason, expected_version=expected_version
    )
    moving.apply(
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
        .where(WorkOrder.jurisdiction_id == jurisdiction_id, WorkOrder.id == any_(_ids(ids)))
        .order_by(Incident.id, WorkOrder.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    pairs = {row.WorkOrder.id: moving.Pair(row.Incident, row.WorkOrder) for row in rows}
    missing = [i for i in ids if i not in pairs]
    if missing:
        raise NotFound(f"There is no work order {', '.join(map(str, missing))}.")
    calendars: dict[str, sla.BusinessCalendar | None] = {}
    owed: list[notices.Owed] = []
    moved: list[WorkOrder] = []
    events: list[AuditEvent] = []
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
            moving.check_request(to, reason)
            try:
                moves = moving.plan_moves(pair, work_order, to)
            except IllegalTransition as exc:
                raise IllegalTransition(
                    f"Work order {work_order_id}: {exc.detail}",
                    extra={"work_order_id": work_order_id, **exc.extra},
                ) from exc
            calendar = None
            if moving.resumes(pair, moves):
                code = pair.incident.category_code
                if code not in calendars:
                    calendars[code] = category_calendar(
                        session, jurisdiction_id=jurisdiction_id, category_code=code
                    )
                calendar = calendars[code]
            owed += moving.move_pair(
                session,
                pair,
                moves,
                actor=actor,
                reason=reason,
                now=now,
                calendar=calendar,
                public_note=public_note,
                events=events,
            )
    moving.write_alike(moved)
    moving.write_alike([pairs[w.id].incident for w in moved])
    session.flush()
    audit.write_many(session, jurisdiction_id=jurisdiction_id, events=events)
    notices.owe_status_notices(session, owed, notice_context)
    return moved


def _ids(ids: Sequence[int]) -> BindParameter[Any]:
    """Return the ids as one array parameter: a day plan's thousand ids in an IN list are a
    thousand parameters, and a statement too long for the driver's cache to parse each time."""
    values: Any = list(ids)
    return bindparam(None, values, type_=ARRAY(BigInteger))
