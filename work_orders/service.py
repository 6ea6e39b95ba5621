"""Incidents: opening one for a new problem (the lifecycle grows here)."""

from __future__ import annotations

from datetime import datetime, timedelta

from geoalchemy2 import WKTElement
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from work_orders.models import Incident, ServiceCategory, Subscription


def get_category(session: Session, *, jurisdiction_id: int, code: str) -> ServiceCategory | None:
    """Return the active category ``code`` of the jurisdiction, or None."""
    category = session.get(ServiceCategory, (jurisdiction_id, code))
    if category is None or not category.active:
        return None
    return category


def open_incident(
    session: Session,
    *,
    category: ServiceCategory,
    lon: float,
    lat: float,
    ward_id: int | None,
    asset_id: int | None,
    opened_at: datetime,
) -> Incident:
    """Return a new incident for a problem nobody reported before, due by the category's SLA."""
    incident = Incident(
        jurisdiction_id=category.jurisdiction_id,
        category_code=category.code,
        status="new",
        geom=WKTElement(f"POINT({lon} {lat})", srid=4326),
        ward_id=ward_id,
        asset_id=asset_id,
        opened_at=opened_at,
        due_at=opened_at + timedelta(hours=category.sla_hours),
    )
    session.add(incident)
    session.flush()
    return incident


def list_categories(session: Session, *, jurisdiction_id: int) -> list[ServiceCategory]:
    """Return the jurisdiction's active categories, by group then name."""
    return list(
        session.scalars(
            select(ServiceCategory)
            .where(ServiceCategory.jurisdiction_id == jurisdiction_id, ServiceCategory.active)
            .order_by(ServiceCategory.group_code, ServiceCategory.name)
        )
    )


def subscribe(
    session: Session,
    *,
    jurisdiction_id: int,
    incident_id: int,
    requester_id: int,
    report_id: int | None,
) -> None:
    """Subscribe a requester to an incident's updates (once, however often they report it)."""
    session.execute(
        pg_insert(Subscription)
        .values(
            jurisdiction_id=jurisdiction_id,
            incident_id=incident_id,
            requester_id=requester_id,
            report_id=report_id,
        )
        .on_conflict_do_nothing(index_elements=["jurisdiction_id", "incident_id", "requester_id"])
    )
