"""Opening an incident, as rows: the one place its due times, its work order and its opening
audit trail are built. Pure, no I/O.

Intake, the bulk importer, ``bench/intake.py`` and the tests' support all open incidents; they
build the rows here, so an imported report and an API report of the same instant in the same
category get the same due time, counted in the category's business calendar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from geoalchemy2 import WKTElement
from sqlalchemy.orm import Session

from work_orders import sla
from work_orders.models import Incident, ServiceCategory, WorkOrder

OPENED_BY: Final = "system"


@dataclass(frozen=True)
class Terms:
    """What opening work needs of a category: its code, group (the department whose queue
    the work order starts in) and SLA, in hours of ``calendar`` (None: wall-clock hours)."""

    jurisdiction_id: int
    code: str
    group_code: str
    sla_hours: float
    calendar: sla.BusinessCalendar | None = None

    @classmethod
    def of(cls, category: ServiceCategory, calendar: sla.BusinessCalendar | None) -> Terms:
        """Return the terms of a category, counted in ``calendar``."""
        return cls(
            jurisdiction_id=category.jurisdiction_id,
            code=category.code,
            group_code=category.group_code,
            sla_hours=category.sla_hours,
            calendar=calendar,
        )

    def due_times(self, opened_at: datetime) -> sla.SlaTimes:
        """Return when work opened at ``opened_at`` is due, and when it becomes at risk."""
        return sla.due_times(opened_at, self.sla_hours, self.calendar)


@dataclass(frozen=True)
class NewWork:
    """What the assignment rules need to know of a work order about to be opened."""

    jurisdiction_id: int
    category_code: str
    asset_type: str | None  # the snapped asset's type, else the category's
    ward_code: str | None
    due_at: datetime
    opened_at: datetime


@dataclass(frozen=True)
class CrewPick:
    """The crew the rules gave new work to, and their reasoning (staff-only audit data)."""

    crew_id: int
    actor: str
    data: dict[str, Any] = field(default_factory=dict)


# Given to intake by the use case that knows dispatch (``geo311.flows``): the crew for new work,
# or None (the work order opens unassigned and the use case queues it with the reason).
CrewChooser = Callable[[Session, NewWork], CrewPick | None]


def incident_row(
    terms: Terms,
    *,
    lon: float,
    lat: float,
    ward_id: int | None,
    asset_id: int | None,
    opened_at: datetime,
    times: sla.SlaTimes,
    crew: CrewPick | None = None,
) -> Incident:
    """Return a new incident (no id yet), ``assigned`` when a crew is given, else ``new``."""
    return Incident(
        jurisdiction_id=terms.jurisdiction_id,
        category_code=terms.code,
        # Opened, then moved to assigned in step with its work order: version 2.
        status="new" if crew is None else "assigned",
        version=1 if crew is None else 2,
        geom=WKTElement(f"POINT({lon} {lat})", srid=4326),
        ward_id=ward_id,
        asset_id=asset_id,
        opened_at=opened_at,
        due_at=times.due_at,
    )


def work_order_row(
    terms: Terms,
    *,
    incident_id: int,
    opened_at: datetime,
    times: sla.SlaTimes,
    crew: CrewPick | None,
) -> WorkOrder:
    """Return the incident's work order (no id yet), in its category's department's queue,
    already with the crew when one is given."""
    return WorkOrder(
        jurisdiction_id=terms.jurisdiction_id,
        incident_id=incident_id,
        status="new" if crew is None else "assigned",
        version=1 if crew is None else 2,
        department=terms.group_code,
        crew_id=None if crew is None else crew.crew_id,
        opened_at=opened_at,
        due_at=times.due_at,
        at_risk_at=times.at_risk_at,
    )


def _event(
    jurisdiction_id: int,
    entity: str,
    entity_id: int,
    action: str,
    actor: str,
    *,
    from_state: str | None = None,
    to_state: str | None = None,
    data: dict[str, Any],
) -> dict[str, Any]:
    # Every column given, the same keys for each event, so they go in one INSERT.
    return {
        "jurisdiction_id": jurisdiction_id,
        "entity": entity,
        "entity_id": entity_id,
        "action": action,
        "actor": actor,
        "from_state": from_state,
        "to_state": to_state,
        "reason": None,
        "public_note": None,
        "data": data,
    }


def opening_audit(
    *,
    incident: Incident,
    work_order: WorkOrder,
    crew: CrewPick | None,
    opened_by: tuple[str, dict[str, Any]] | None,
) -> list[dict[str, Any]]:
    """Return the audit rows (``AuditEvent`` columns) of an opening, in the order they
    happened: the work order opened, the incident opened (when ``opened_by`` gives its actor
    and data, e.g. ``("resident:api", {...})``; else its caller records it), and, when a crew
    was chosen, both moved to ``assigned`` and the rules' reasoning (staff-only)."""
    jid = incident.jurisdiction_id
    events = [
        _event(
            jid,
            "work_order",
            work_order.id,
            "opened",
            OPENED_BY,
            to_state="new",
            data={"incident": incident.id, "department": work_order.department},
        ),
    ]
    if opened_by is not None:
        actor, data = opened_by
        events.append(
            _event(jid, "incident", incident.id, "opened", actor, to_state="new", data=dict(data))
        )
    if crew is None:
        return events
    # The same events a transition new → assigned writes (work_orders.service._apply).
    for kind, entity_id in (("work_order", work_order.id), ("incident", incident.id)):
        events.append(
            _event(
                jid,
                kind,
                entity_id,
                "transition",
                crew.actor,
                from_state="new",
                to_state="assigned",
                data={"version": 2},
            )
        )
    events.append(
        _event(jid, "work_order", work_order.id, "crew_assigned", crew.actor, data=dict(crew.data))
    )
    return events
