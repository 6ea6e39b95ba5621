"""The audit trail: every change to an incident, work order or report, appended, never edited."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
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
    event = pending(
        session,
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
    return event


def pending(
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
    """Return an audit event as :func:`record` builds it, not yet written: for
    :func:`write_many` to write with many others (open pages are told of it at COMMIT, as
    for :func:`record`)."""
    data = dict(data or {})
    if isinstance(public_note, PublicNote):
        data["public"] = public_note.as_data()
        public_note = public_note.text()
    _announce(session, jurisdiction_id, entity, entity_id, action, to_state, data)
    return AuditEvent(
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


def write_many(session: Session, *, jurisdiction_id: int, events: Sequence[AuditEvent]) -> None:
    """Write the jurisdiction's :func:`pending` events in one statement, each given its id,
    and note their entities for the planner's summaries in one more, however many.

    Columns as arrays rather than a row of parameters per event: a day plan's thousand events
    are one short statement, where the ORM's batch sends ten thousand parameters."""
    if not events:
        return
    ids = session.scalars(
        text(
            "INSERT INTO audit_events (jurisdiction_id, entity, entity_id, action, actor, "
            "from_state, to_state, reason, public_note, data) "
            "SELECT :jid, u.entity, u.entity_id, u.action, u.actor, u.from_state, u.to_state, "
            "u.reason, u.public_note, CAST(u.data AS jsonb) "
            "FROM unnest(CAST(:entities AS text[]), CAST(:entity_ids AS bigint[]), "
            "CAST(:actions AS text[]), CAST(:actors AS text[]), CAST(:froms AS text[]), "
            "CAST(:tos AS text[]), CAST(:reasons AS text[]), CAST(:notes AS text[]), "
            "CAST(:datas AS text[])) WITH ORDINALITY "
            "AS u(entity, entity_id, action, actor, from_state, to_state, reason, public_note, "
            "data, n) "
            # Inserted in the events' order, so the identity hands out increasing ids in it
            # (what the ORM's own batched INSERT … RETURNING relies on too).
            "ORDER BY u.n RETURNING id"
        ),
        {
            "jid": jurisdiction_id,
            "entities": [e.entity for e in events],
            "entity_ids": [e.entity_id for e in events],
            "actions": [e.action for e in events],
            "actors": [e.actor for e in events],
            "froms": [e.from_state for e in events],
            "tos": [e.to_state for e in events],
            "reasons": [e.reason for e in events],
            "notes": [e.public_note for e in events],
            "datas": [json.dumps(e.data or {}) for e in events],
        },
    ).all()
    for event, event_id in zip(events, sorted(ids), strict=True):
        event.id = int(event_id)
    changed: dict[str, set[int]] = {}
    for event in events:
        changed.setdefault(event.entity, set()).add(event.entity_id)
    changes.note_many(session, jurisdiction_id=jurisdiction_id, entities=changed)


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
