"""The audit trail: every change to an incident, work order or report, appended, never edited."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from work_orders.models import AuditEvent


def record(
    session: Session,
    *,
    jurisdiction_id: int,
    entity: str,
    entity_id: int,
    action: str,
    actor: str,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Return the appended audit event (flushed with the change it records)."""
    event = AuditEvent(
        jurisdiction_id=jurisdiction_id,
        entity=entity,
        entity_id=entity_id,
        action=action,
        actor=actor,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        data=data or {},
    )
    session.add(event)
    return event
