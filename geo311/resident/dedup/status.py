"""Duplicates' status changes, through the work-order lifecycle: reopening an incident a report
joined, cancelling a merged one, putting a status back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from work_orders import audit, lifecycle, transitions
from work_orders.models import Incident, WorkOrder
from work_orders.public_notes import PublicNote

# Dedup's own audit events carry no to_state: the Open311 update feed treats an event with a
# to_state as a public status update, and adding, merging or splitting reports changes no status.

# --- status changes: through the work-order lifecycle ---------------------------------------------
#
# Reopening and cancelling go through work_orders' transition, which checks the move, moves the
# incident's work order with it (a merged-away incident's work order is cancelled too) and writes
# the audit event. Dedup adds its own context as a second event.


def reopen_incident(
    session: Session,
    incident: Incident,
    *,
    actor: str,
    reason: str,
    public_note: PublicNote,
    data: dict[str, Any],
) -> None:
    """Reopen a closed incident that got a new report inside the reopen window."""
    closed_at = incident.closed_at
    from_state = incident.status
    transitions.transition(
        session,
        incident_or_work_order=incident,
        to="reopened",
        actor=actor,
        reason=reason,
        public_note=public_note,
    )
    # What a split of this report needs to put the incident back as it was.
    _dedup_context(
        session,
        incident,
        actor=actor,
        action="reopened_by_report",
        from_state=from_state,
        data={**data, "closed_at": closed_at.isoformat() if closed_at else None},
    )


def cancel_merged_incident(
    session: Session,
    incident: Incident,
    *,
    actor: str,
    reason: str,
    public_note: PublicNote,
    data: dict[str, Any],
) -> None:
    """Cancel an incident merged into another (or emptied by an undone split), with its work
    order. One already finished keeps its status: there is no work left to cancel."""
    if incident.status not in lifecycle.FINISHED:
        transitions.transition(
            session,
            incident_or_work_order=incident,
            to="cancelled",
            actor=actor,
            reason=reason,
            public_note=public_note,
        )
    _dedup_context(session, incident, actor=actor, action="merged_away", data=data)


def _dedup_context(
    session: Session,
    incident: Incident,
    *,
    actor: str,
    action: str,
    data: dict[str, Any],
    from_state: str | None = None,
) -> None:
    # No to_state: the status change itself is the lifecycle's event; this one only adds why.
    audit.record(
        session,
        jurisdiction_id=incident.jurisdiction_id,
        entity="incident",
        entity_id=incident.id,
        action=action,
        actor=actor,
        from_state=from_state,
        data=data,
    )


def restore_incident_status(
    session: Session,
    incident: Incident,
    *,
    status: str,
    closed_at: datetime | None,
    actor: str,
    reason: str,
    public_note: PublicNote,
    data: dict[str, Any],
) -> None:
    """An undo puts an incident (and its work order, which moves in step) back in the status
    it had before the move. This is an administrative restore, outside the lifecycle's table
    (cancelled -> new is not a move anyone else may make), and audited as such."""
    from_state = incident.status
    incident.status = status
    incident.closed_at = closed_at
    incident.version = incident.version + 1
    session.execute(
        update(WorkOrder)
        .where(
            WorkOrder.jurisdiction_id == incident.jurisdiction_id,
            WorkOrder.incident_id == incident.id,
        )
        .values(status=status, version=WorkOrder.version + 1)
    )
    session.flush()
    audit.record(
        session,
        jurisdiction_id=incident.jurisdiction_id,
        entity="incident",
        entity_id=incident.id,
        action="status_restored",
        actor=actor,
        from_state=from_state,
        to_state=status,
        reason=reason,
        public_note=public_note,
        data=data,
    )
