"""Opening an incident, as rows: the one place its due times, its work order and its opening
audit trail are built. Pure, no I/O.

Intake, the bulk importer, ``bench/intake.py`` and the tests' support all open incidents; they
build the rows here, so an imported report and an API report of the same instant in the same
category get the same due time, counted in the category's business calendar.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from geoalchemy2 import WKTElement
from sqlalchemy.orm import Session

from geo311.kernel.notify.outbox import NoticeDraft
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

    def times_until(self, opened_at: datetime, due_at: datetime | None) -> sla.SlaTimes:
        """Return the SLA times of work opened at ``opened_at`` whose incident is due at
        ``due_at`` already (None: as :meth:`due_times`): that due time, at risk once the last
        ``AT_RISK_FRACTION`` of the open time before it begins, counted in the calendar."""
        times = self.due_times(opened_at)
        if due_at is None or due_at == times.due_at:
            return times
        open_s = max(0.0, sla.business_seconds_between(opened_at, due_at, self.calendar))
        at_risk = sla.add_business_seconds(
            opened_at, open_s * (1 - sla.AT_RISK_FRACTION), self.calendar
        )
        return sla.SlaTimes(due_at=due_at, at_risk_at=min(at_risk, due_at))


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


def incident_values(
    terms: Terms,
    *,
    lon: float,
    lat: float,
    ward_id: int | None,
    asset_id: int | None,
    opened_at: datetime,
    times: sla.SlaTimes,
    crew: CrewPick | None = None,
    incident_id: int | None = None,
) -> dict[str, Any]:
    """Return a new incident's columns (with ``incident_id`` when the caller drew it from the
    sequence already), ``assigned`` when a crew is given, else ``new``."""
    values: dict[str, Any] = {
        "jurisdiction_id": terms.jurisdiction_id,
        "category_code": terms.code,
        # Opened, then moved to assigned in step with its work order: version 2.
        "status": "new" if crew is None else "assigned",
        "version": 1 if crew is None else 2,
        "geom": WKTElement(f"POINT({lon} {lat})", srid=4326),
        "ward_id": ward_id,
        "asset_id": asset_id,
        "opened_at": opened_at,
        "due_at": times.due_at,
    }
    if incident_id is not None:
        values["id"] = incident_id
    return values


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
        **incident_values(
            terms,
            lon=lon,
            lat=lat,
            ward_id=ward_id,
            asset_id=asset_id,
            opened_at=opened_at,
            times=times,
            crew=crew,
        )
    )


def work_order_values(
    terms: Terms,
    *,
    incident_id: int,
    opened_at: datetime,
    times: sla.SlaTimes,
    crew: CrewPick | None,
    work_order_id: int | None = None,
) -> dict[str, Any]:
    """Return the columns of the incident's work order (with ``work_order_id`` when drawn
    already), in its category's department's queue, already with the crew when given."""
    values: dict[str, Any] = {
        "jurisdiction_id": terms.jurisdiction_id,
        "incident_id": incident_id,
        "status": "new" if crew is None else "assigned",
        "version": 1 if crew is None else 2,
        "department": terms.group_code,
        "crew_id": None if crew is None else crew.crew_id,
        "opened_at": opened_at,
        "due_at": times.due_at,
        "at_risk_at": times.at_risk_at,
    }
    if work_order_id is not None:
        values["id"] = work_order_id
    return values


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
        **work_order_values(
            terms, incident_id=incident_id, opened_at=opened_at, times=times, crew=crew
        )
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
    """Return the audit rows (``AuditEvent`` columns) of an opening (see
    :func:`opening_audit_rows`)."""
    return opening_audit_rows(
        jurisdiction_id=incident.jurisdiction_id,
        incident_id=incident.id,
        work_order_id=work_order.id,
        department=work_order.department,
        crew=crew,
        opened_by=opened_by,
    )


def opening_audit_rows(
    *,
    jurisdiction_id: int,
    incident_id: int,
    work_order_id: int,
    department: str,
    crew: CrewPick | None,
    opened_by: tuple[str, dict[str, Any]] | None,
) -> list[dict[str, Any]]:
    """Return the audit rows (``AuditEvent`` columns) of an opening, in the order they
    happened: the work order opened, the incident opened (when ``opened_by`` gives its actor
    and data, e.g. ``("resident:api", {...})``; else its caller records it), and, when a crew
    was chosen, both moved to ``assigned`` and the rules' reasoning (staff-only)."""
    jid = jurisdiction_id
    events = [
        _event(
            jid,
            "work_order",
            work_order_id,
            "opened",
            OPENED_BY,
            to_state="new",
            data={"incident": incident_id, "department": department},
        ),
    ]
    if opened_by is not None:
        actor, data = opened_by
        events.append(
            _event(jid, "incident", incident_id, "opened", actor, to_state="new", data=dict(data))
        )
    if crew is None:
        return events
    # The same events a transition new → assigned writes (work_orders.moving.move_pair).
    for kind, entity_id in (("work_order", work_order_id), ("incident", incident_id)):
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
        _event(jid, "work_order", work_order_id, "crew_assigned", crew.actor, data=dict(crew.data))
    )
    return events


# --- the notices new work owes ------------------------------------------------------------


def notice_context(
    *,
    incident_id: int,
    category_code: str,
    category_name: str,
    city: str,
    status: str,
    lon: float,
    lat: float,
) -> dict[str, Any]:
    """Return what every notice about an incident says (as
    ``work_orders.notices.incident_context`` words it for an incident it reads back), from
    values the caller holds."""
    return {
        "incident_id": incident_id,
        "category_code": category_code,
        "category": category_name,
        "city": city,
        "status": status,
        "lon": round(lon, 7),
        "lat": round(lat, 7),
    }


def received_notices(
    *,
    jurisdiction_id: int,
    incident_id: int,
    context: dict[str, Any],
    requester: tuple[int, str | None, str | None, str] | None,
    tracking_id: str | None,
    webhooks: Sequence[tuple[int, str]] = (),
) -> list[NoticeDraft]:
    """Return the "received" notices a new report owes: its new requester ``(id, email,
    phone, language)``, by email when they gave one, else by SMS (a requester made in this
    transaction cannot have muted anything), and, when the report opened the incident, each
    endpoint of ``webhooks`` (id, url). The idempotency keys are the ones
    ``work_orders.incidents.subscribe`` and ``open_incident`` owe them under."""
    drafts = [
        NoticeDraft(
            jurisdiction_id=jurisdiction_id,
            idempotency_key=f"received:incident-{incident_id}:webhook-{endpoint_id}",
            kind="received",
            channel="webhook",
            recipient=url,
            incident_id=incident_id,
            webhook_endpoint_id=endpoint_id,
            context=dict(context),
        )
        for endpoint_id, url in webhooks
    ]
    if requester is not None:
        requester_id, email, phone, language = requester
        recipient = email or phone
        if recipient is not None:
            drafts.append(
                NoticeDraft(
                    jurisdiction_id=jurisdiction_id,
                    idempotency_key=(
                        f"received:incident-{incident_id}:subscribed:requester-{requester_id}"
                    ),
                    kind="received",
                    channel="email" if email else "sms",
                    recipient=recipient,
                    language=language,
                    incident_id=incident_id,
                    requester_id=requester_id,
                    context={**context, "tracking_id": tracking_id},
                )
            )
    return drafts


def due_at_many(terms: Terms, opened: Sequence[datetime]) -> list[datetime]:
    """Return when work opened at each instant of ``opened`` is due: the same instants as
    ``terms.due_times(t).due_at`` one by one, counted for the batch at once.

    In wall-clock hours that is one addition each; in a business calendar each distinct
    instant is counted once (a history with day-only dates repeats the same instant often).
    Raises ValueError, as ``due_times`` does, for a naive time or an SLA that is not positive.
    """
    if terms.sla_hours <= 0:
        raise ValueError(f"sla_hours must be positive, got {terms.sla_hours}")
    if terms.calendar is None:
        for at in opened:
            if at.tzinfo is None or at.utcoffset() is None:
                raise ValueError(f"expected a timezone-aware datetime, got naive {at.isoformat()}")
        delta = timedelta(seconds=terms.sla_hours * 3600.0)
        return [at + delta for at in opened]
    counted: dict[datetime, datetime] = {}
    due: list[datetime] = []
    for at in opened:
        found = counted.get(at)
        if found is None:
            found = counted[at] = terms.due_times(at).due_at
        due.append(found)
    return due
