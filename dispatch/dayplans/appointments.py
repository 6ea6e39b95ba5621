"""Day plans: a work order's appointment window on a day."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from dispatch.dayplans.work import PLANNABLE
from dispatch.models import (
    WorkOrderTerms,
)
from geo311.kernel.errors import FieldError, NotFound, ValidationFailed
from work_orders import audit
from work_orders.models import WorkOrder

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


def appointment_windows(
    session: Session, *, jurisdiction_id: int
) -> dict[int, tuple[datetime, datetime]]:
    """Return {work order id: (start, end)} of every booked appointment window."""
    rows = session.execute(
        select(
            WorkOrderTerms.work_order_id, WorkOrderTerms.window_start, WorkOrderTerms.window_end
        ).where(
            WorkOrderTerms.jurisdiction_id == jurisdiction_id,
            WorkOrderTerms.window_start.is_not(None),
            WorkOrderTerms.window_end.is_not(None),
        )
    )
    return {int(w): (a, b) for w, a, b in rows if a is not None and b is not None}
