"""The notices a change owes: to the requesters who follow an incident (email, else SMS,
unless they muted the kind) and to the webhook endpoints that take it. Built from what the
session holds where it can, in one statement for many incidents where it cannot; written to
the outbox in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from geoalchemy2 import WKTElement
from geoalchemy2.shape import to_shape
from sqlalchemy import BigInteger, and_, any_, bindparam, func, inspect, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from geo311.kernel.errors import NotFound
from geo311.kernel.media.models import Photo
from geo311.kernel.notify import outbox
from geo311.kernel.notify import service as notify_service
from layers.models import Jurisdiction
from work_orders.models import AuditEvent, Incident, ServiceCategory, WorkOrder


@dataclass(frozen=True)
class Owed:
    """An incident event that owes the residents a notice (written, its id known once
    flushed)."""

    incident: Incident
    work_order: WorkOrder | None
    kind: str
    status: str
    event: AuditEvent


# Incident statuses the residents are told about as they happen.
NOTICE_KINDS = ("scheduled", "closed")


def _incident_contexts(
    session: Session, incidents: Sequence[Incident]
) -> dict[int, dict[str, Any]]:
    """Return incident id → what every notice about it says: from the session when it holds
    the incident's point, category and jurisdiction (intake's new incident: no round trip),
    else one statement for all the rest (a day plan's many)."""
    out: dict[int, dict[str, Any]] = {}
    missing: list[Incident] = []
    for incident in incidents:
        if _context_in_session(session, incident):
            out[incident.id] = incident_context(session, incident)
        else:
            missing.append(incident)
    if not missing:
        return out
    rows = session.execute(
        select(
            Incident.id,
            ServiceCategory.name,
            Jurisdiction.name.label("city"),
            func.ST_X(Incident.geom).label("lon"),
            func.ST_Y(Incident.geom).label("lat"),
        )
        .select_from(Incident)
        .join(
            ServiceCategory,
            and_(
                ServiceCategory.jurisdiction_id == Incident.jurisdiction_id,
                ServiceCategory.code == Incident.category_code,
            ),
        )
        .join(Jurisdiction, Jurisdiction.id == Incident.jurisdiction_id)
        .where(
            Incident.jurisdiction_id == missing[0].jurisdiction_id,
            Incident.id
            == any_(bindparam(None, sorted({i.id for i in missing}), type_=ARRAY(BigInteger))),
        )
    ).all()
    by_id = {row.id: row for row in rows}
    for incident in missing:
        row = by_id[incident.id]
        out[incident.id] = {
            "incident_id": incident.id,
            "category_code": incident.category_code,
            "category": row.name,
            "city": row.city,
            "status": incident.status,
            "lon": round(row.lon, 7),
            "lat": round(row.lat, 7),
        }
    return out


def _context_in_session(session: Session, incident: Incident) -> bool:
    # The identity map holds objects weakly: only those something still refers to are there.
    held = session.identity_map
    return (
        "geom" not in inspect(incident).unloaded
        and held.get(
            identity_key(ServiceCategory, (incident.jurisdiction_id, incident.category_code))
        )
        is not None
        and held.get(identity_key(Jurisdiction, incident.jurisdiction_id)) is not None
    )


def incident_context(session: Session, incident: Incident) -> dict[str, Any]:
    """Return what every notice about the incident says."""
    # The category and the jurisdiction are nearly always in the session already (intake and
    # the lifecycle read them), so this costs no round trip; the point is the incident's own.
    category = session.get(ServiceCategory, (incident.jurisdiction_id, incident.category_code))
    jurisdiction = session.get(Jurisdiction, incident.jurisdiction_id)
    if category is None or jurisdiction is None:
        raise NotFound(f"The category or jurisdiction of incident {incident.id} is gone.")
    geom: Any = incident.geom
    point = to_shape(WKTElement(geom.split(";")[-1]) if isinstance(geom, str) else geom)
    return {
        "incident_id": incident.id,
        "category_code": incident.category_code,
        "category": category.name,
        "city": jurisdiction.name,
        "status": incident.status,
        "lon": round(point.x, 7),
        "lat": round(point.y, 7),
    }


def owe_status_notices(
    session: Session, owed: Sequence[Owed], extra: Mapping[str, Any] | None = None
) -> None:
    """Owe the residents and webhooks the notices of the events, in one go however many."""
    if not owed:
        return
    jurisdiction_id = owed[0].incident.jurisdiction_id
    contexts = _incident_contexts(session, [o.incident for o in owed])
    photo_ids = sorted(
        {
            o.work_order.after_photo_id
            for o in owed
            if o.kind == "closed" and o.work_order and o.work_order.after_photo_id is not None
        }
    )
    photo_keys: dict[int, str] = {}
    if photo_ids:
        photo_keys = {
            int(photo_id): str(key)
            for photo_id, key in session.execute(
                select(Photo.id, Photo.public_key).where(
                    Photo.jurisdiction_id == jurisdiction_id, Photo.id.in_(photo_ids)
                )
            )
        }
    by_kind: dict[str, list[tuple[Owed, dict[str, Any]]]] = {}
    for o in owed:
        context = {**contexts[o.incident.id], "status": o.status, **(extra or {})}
        context["event_id"] = o.event.id
        if o.kind == "closed" and o.work_order is not None:
            context["resolution_code"] = o.work_order.resolution_code
            context["note"] = o.work_order.completion_note
            if o.work_order.after_photo_id is not None:
                context["photo_key"] = photo_keys[o.work_order.after_photo_id]
        by_kind.setdefault(o.kind, []).append((o, context))
    drafts: list[outbox.NoticeDraft] = []
    for kind, items in by_kind.items():
        drafts += _requester_drafts(
            session,
            jurisdiction_id=jurisdiction_id,
            kind=kind,
            items=[(o.incident.id, f"event-{o.event.id}", c) for o, c in items],
        )
        drafts += _webhook_drafts(
            session,
            jurisdiction_id=jurisdiction_id,
            kind=kind,
            items=[
                (o.incident.id, f"{kind}:incident-{o.incident.id}:event-{o.event.id}", c)
                for o, c in items
            ],
        )
    outbox.owe(session, drafts)


def owe_requester_notices(
    session: Session,
    *,
    incident: Incident,
    kind: str,
    event_key: str,
    context: Mapping[str, Any],
    requester_id: int | None = None,
) -> int:
    """Owe ``kind`` to every subscribed requester with a contact who has not muted it (or to
    ``requester_id`` only): email when they gave one, else SMS. Return how many."""
    drafts = _requester_drafts(
        session,
        jurisdiction_id=incident.jurisdiction_id,
        kind=kind,
        items=[(incident.id, event_key, context)],
        requester_id=requester_id,
    )
    return len(outbox.owe(session, drafts))


# (incident id, the event's part of the idempotency key, what the notice says)
_NoticeItem = tuple[int, str, Mapping[str, Any]]


def _requester_drafts(
    session: Session,
    *,
    jurisdiction_id: int,
    kind: str,
    items: Sequence[_NoticeItem],
    requester_id: int | None = None,
) -> list[outbox.NoticeDraft]:
    """Return the notices ``kind`` owes the subscribed requesters of each item's incident who
    have a contact and have not muted it (or ``requester_id`` only): email when they gave
    one, else SMS. One statement for all the items."""
    if not items:
        return []
    not_muted = notify_service.not_muted_sql(
        jurisdiction_id="s.jurisdiction_id", requester_id="s.requester_id", kind=":kind"
    )
    rows = session.execute(
        text(
            f"""
            SELECT s.incident_id, s.requester_id, q.email, q.phone, q.language, r.tracking_id
            FROM subscriptions s
            JOIN requesters q ON q.jurisdiction_id = s.jurisdiction_id AND q.id = s.requester_id
            LEFT JOIN reports r ON r.jurisdiction_id = s.jurisdiction_id AND r.id = s.report_id
            WHERE s.jurisdiction_id = :jid AND s.incident_id = ANY(CAST(:incidents AS bigint[]))
              AND (q.email IS NOT NULL OR q.phone IS NOT NULL)
              AND {not_muted}
              AND (CAST(:requester AS bigint) IS NULL OR s.requester_id = :requester)
            ORDER BY s.incident_id, s.requester_id
            """  # noqa: S608 - not_muted is built from constants
        ),
        {
            "jid": jurisdiction_id,
            "incidents": sorted({incident_id for incident_id, _, _ in items}),
            "kind": kind,
            "requester": requester_id,
        },
    ).all()
    subscribed: dict[int, list[Any]] = {}
    for row in rows:
        subscribed.setdefault(int(row.incident_id), []).append(row)
    return [
        requester_notice(
            jurisdiction_id=jurisdiction_id,
            incident_id=incident_id,
            kind=kind,
            event_key=event_key,
            requester_id=row.requester_id,
            email=row.email,
            phone=row.phone,
            language=row.language,
            context={**context, "tracking_id": row.tracking_id},
        )
        for incident_id, event_key, context in items
        for row in subscribed.get(incident_id, [])
    ]


def requester_notice(
    *,
    jurisdiction_id: int,
    incident_id: int,
    kind: str,
    event_key: str,
    requester_id: int,
    email: str | None,
    phone: str | None,
    language: str,
    context: Mapping[str, Any],
) -> outbox.NoticeDraft:
    """Return the notice a requester is owed: by email when they gave one, else by SMS."""
    recipient = email or phone
    assert recipient is not None
    return outbox.NoticeDraft(
        jurisdiction_id=jurisdiction_id,
        idempotency_key=f"{kind}:incident-{incident_id}:{event_key}:requester-{requester_id}",
        kind=kind,
        channel="email" if email else "sms",
        recipient=recipient,
        language=language,
        incident_id=incident_id,
        requester_id=requester_id,
        context=dict(context),
    )


def owe_webhooks(
    session: Session,
    *,
    incident: Incident,
    kind: str,
    key: str,
    context: Mapping[str, Any],
    endpoints: Sequence[tuple[int, str]] | None = None,
) -> int:
    """Owe ``kind`` about the incident to every webhook endpoint that takes it (``endpoints``:
    (id, url) read already); return how many."""
    drafts = _webhook_drafts(
        session,
        jurisdiction_id=incident.jurisdiction_id,
        kind=kind,
        items=[(incident.id, key, context)],
        endpoints=endpoints,
    )
    return len(outbox.owe(session, drafts))


def _webhook_drafts(
    session: Session,
    *,
    jurisdiction_id: int,
    kind: str,
    items: Sequence[_NoticeItem],
    endpoints: Sequence[tuple[int, str]] | None = None,
) -> list[outbox.NoticeDraft]:
    """Return the notices ``kind`` owes each active webhook endpoint that takes it, per item
    (the item's key names the event); ``endpoints``: (id, url) read already."""
    if not items:
        return []
    if endpoints is None:
        endpoints = notify_service.webhook_targets(
            session, jurisdiction_id=jurisdiction_id, kind=kind
        )
    return [
        outbox.NoticeDraft(
            jurisdiction_id=jurisdiction_id,
            idempotency_key=f"{key}:webhook-{endpoint_id}",
            kind=kind,
            channel="webhook",
            recipient=url,
            incident_id=incident_id,
            webhook_endpoint_id=endpoint_id,
            context=dict(context),
        )
        for incident_id, key, context in items
        for endpoint_id, url in endpoints
    ]
