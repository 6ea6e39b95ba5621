"""The audit trail: every change to an incident, work order or report, appended, never edited."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from geo311.kernel import live
from work_orders import changes
from work_orders.models import AuditEvent
from work_orders.public_notes import PublicNote


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
    public_note: str | PublicNote | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Return the appended audit event (flushed with the change it records).

    ``reason`` is the staff's: it stays in the audit trail. ``public_note`` is the only text
    of the event that residents and Open311 clients ever see: a chosen wording
    (``PublicNote``, whose key is kept in ``data["public"]``) or a resident's own words."""
    data = dict(data or {})
    if isinstance(public_note, PublicNote):
        data["public"] = public_note.as_data()
        public_note = public_note.text()
    event = AuditEvent(
        jurisdiction_id=jurisdiction_id,
        entity=entity,
        entity_id=entity_id,
        action=action,
        actor=actor,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        public_note=public_note,
        data=data,
    )
    session.add(event)
    changes.note(session, jurisdiction_id=jurisdiction_id, entity=entity, entity_ids=[entity_id])
    _announce(session, jurisdiction_id, entity, entity_id, action, to_state, data)
    return event


def row(
    session: Session,
    *,
    jurisdiction_id: int,
    entity: str,
    entity_id: int,
    action: str,
    actor: str,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return an audit event's columns for the caller to insert in a statement of its own
    (intake writes a report's rows in one), told to open pages as :func:`record` does."""
    data = dict(data or {})
    _announce(session, jurisdiction_id, entity, entity_id, action, None, data)
    return {
        "jurisdiction_id": jurisdiction_id,
        "entity": entity,
        "entity_id": entity_id,
        "action": action,
        "actor": actor,
        "from_state": None,
        "to_state": None,
        "reason": reason,
        "public_note": None,
        "data": data,
    }


# What an open page needs to decide whether to reload: ids and states, never the text.
_LIVE_KEYS = ("day", "version", "crew_id", "crews")
_LIVE_KIND = {"day_plan": "plan"}


def _announce(
    session: Session,
    jurisdiction_id: int,
    entity: str,
    entity_id: int,
    action: str,
    to_state: str | None,
    data: dict[str, Any],
) -> None:
    """Tell open pages of this change (sent at COMMIT; nothing if it rolls back)."""
    kind = _LIVE_KIND.get(entity, entity)
    extra = {("crew_ids" if k == "crews" else k): data[k] for k in _LIVE_KEYS if k in data}
    live.announce(
        session,
        jurisdiction_id=jurisdiction_id,
        kind=kind,
        id=entity_id,
        action=action,
        status=to_state,
        **extra,
    )
