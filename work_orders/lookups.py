"""Looking up incidents, work orders and requesters by id: NotFound when there is none."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from geo311.kernel.errors import NotFound
from work_orders.models import Incident, Requester, WorkOrder


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


def requester_language(session: Session, *, jurisdiction_id: int, requester_id: int) -> str:
    """Return the language a requester asked for, or raise NotFound."""
    requester = session.get(Requester, (jurisdiction_id, requester_id))
    if requester is None:
        raise NotFound("The link names a requester this service does not know.")
    return requester.language
