"""Open an incident with its work order already given to the crew the rules chose."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from dispatch import assignment
from work_orders import incidents
from work_orders.models import Incident, ServiceCategory


def open_incident(
    session: Session,
    *,
    category: ServiceCategory,
    lon: float,
    lat: float,
    ward_id: int | None,
    asset_id: int | None,
    opened_at: datetime,
    default_service_s: int | None = None,
) -> Incident:
    """Return a new incident whose work order went to a crew by the rules (or to the
    dispatcher's queue with the reason).

    1. work_orders opens the incident and its work order (due by the category's SLA);
    2. dispatch assigns the work order (in a savepoint: should that fail, the incident stays
       open with its work order unassigned, for the next ``geo311 crews assign``).

    ``default_service_s``: seconds on site for a category with no service time (None: the
    routing setting's default). Flushes only.
    """
    incident = incidents.open_incident(
        session,
        category=category,
        lon=lon,
        lat=lat,
        ward_id=ward_id,
        asset_id=asset_id,
        opened_at=opened_at,
    )
    assignment.assign_opened(session, incident=incident, default_service_s=default_service_s)
    return incident
