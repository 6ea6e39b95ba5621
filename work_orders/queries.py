"""Work orders as lists and summaries read them: the SLA clock and state in SQL (so filters
and counts run in the database), the filtered queue, and the per-department SLA summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from work_orders import lifecycle
from work_orders.models import Incident, WorkOrder


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
