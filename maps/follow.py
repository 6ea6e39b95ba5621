"""Follow a report by e-mail from its tracking page, with double opt-in.

Anyone can type any address, so asking to follow only owes a "confirm you want updates"
notice (kind ``follow``) to that address through the notice outbox; nothing is stored about
the address until its owner opens the link in that mail and confirms. Confirming makes a
requester with that address and subscribes it to the incident as intake subscribes a
reporter (``work_orders.incidents.subscribe``); an address that already follows the incident
is not subscribed twice. The link carries only the notice's id, signed
(geo311.kernel.notify.tokens).

Not here: a rate limit on asking (one confirmation mail per address, incident and day is
all that bounds it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geo311.kernel.errors import FieldError, NotFound, ValidationFailed
from geo311.kernel.notify import outbox
from geo311.kernel.notify.addresses import NotAnAddress, normalize_email
from geo311.kernel.notify.models import Notice
from geo311.kernel.notify.tokens import BadLink, FollowLink
from geo311.resident.intake.models import Report
from layers.models import Jurisdiction
from maps import i18n
from work_orders import categories as category_service
from work_orders import incidents
from work_orders.models import Requester, Subscription

KIND = "follow"
EMAIL_MAX_CHARS = 320


@dataclass(frozen=True)
class PendingFollow:
    """A confirmation link's request: which address wants which report's updates."""

    notice_id: int
    jurisdiction_id: int
    incident_id: int
    email: str
    language: str
    tracking_id: str
    category: str


def _address(raw: str) -> str:
    raw = raw.strip()
    if not raw or len(raw) > EMAIL_MAX_CHARS:
        message = f"email must be one address of at most {EMAIL_MAX_CHARS} characters"
        raise ValidationFailed(message, errors=[FieldError("email", message, "invalid")])
    try:
        return normalize_email(raw)
    except NotAnAddress as exc:
        message = f"email is not an e-mail address: {exc}"
        raise ValidationFailed(message, errors=[FieldError("email", message, "invalid")]) from exc


def ask_to_follow(
    session: Session,
    *,
    jurisdiction_id: int,
    tracking_id: str,
    email: str,
    language: str,
    today: date,
) -> bool:
    """Owe the confirmation mail for ``email`` to follow the report ``tracking_id``; return
    whether one was newly owed (False: the same address asked today already). Flushes."""
    errors = []
    try:
        address = _address(email)
    except ValidationFailed as exc:
        errors += exc.errors
    if language not in i18n.LANGUAGES:
        errors.append(
            FieldError(
                "language", f"language must be one of {', '.join(i18n.LANGUAGES)}", "invalid"
            )
        )
    if errors:
        raise ValidationFailed("; ".join(e.message for e in errors), errors=errors)
    found = session.execute(
        select(Report.id, Report.incident_id, Report.tracking_id, Report.category_code).where(
            Report.jurisdiction_id == jurisdiction_id,
            Report.tracking_id == tracking_id.strip().upper(),
        )
    ).one_or_none()
    if found is None:
        raise NotFound(f"No report has the tracking id {tracking_id!r}.")
    category = category_service.get_category(
        session, jurisdiction_id=jurisdiction_id, code=found.category_code
    )
    city = session.scalar(select(Jurisdiction.name).where(Jurisdiction.id == jurisdiction_id))
    # The key names no address in clear (it is shown to staff with the notices).
    digest = hashlib.sha256(address.lower().encode()).hexdigest()[:32]
    owed = outbox.owe(
        session,
        [
            outbox.NoticeDraft(
                jurisdiction_id=jurisdiction_id,
                idempotency_key=f"{KIND}:incident-{found.incident_id}:{digest}:{today}",
                kind=KIND,
                channel="email",
                recipient=address,
                language=language,
                incident_id=found.incident_id,
                context={
                    "incident_id": found.incident_id,
                    "report_id": found.id,
                    "tracking_id": found.tracking_id,
                    "category_code": found.category_code,
                    "category": category.name if category else found.category_code,
                    "city": city,
                },
            )
        ],
    )
    return bool(owed)


def pending_follow(session: Session, *, link: FollowLink, lock: bool = False) -> PendingFollow:
    """Return the request a confirmation link stands for; raise BadLink when there is none.
    ``lock``: hold its notice's row, so two clicks on one link subscribe once."""
    stmt = select(Notice).where(
        Notice.jurisdiction_id == link.jurisdiction_id,
        Notice.id == link.notice_id,
        Notice.kind == KIND,
    )
    notice = session.scalar(stmt.with_for_update() if lock else stmt)
    if notice is None or notice.incident_id is None:
        raise BadLink("The link is damaged or was not made by this service.")
    return PendingFollow(
        notice_id=notice.id,
        jurisdiction_id=notice.jurisdiction_id,
        incident_id=notice.incident_id,
        email=notice.recipient,
        language=notice.language,
        tracking_id=str(notice.context.get("tracking_id", "")),
        category=str(notice.context.get("category", "")),
    )


def confirm_follow(session: Session, *, link: FollowLink) -> Literal["done", "already"]:
    """Subscribe the confirmed address to the incident (once); flushes."""
    pending = pending_follow(session, link=link, lock=True)
    already = session.scalar(
        select(Subscription.id)
        .join(
            Requester,
            (Requester.jurisdiction_id == Subscription.jurisdiction_id)
            & (Requester.id == Subscription.requester_id),
        )
        .where(
            Subscription.jurisdiction_id == pending.jurisdiction_id,
            Subscription.incident_id == pending.incident_id,
            func.lower(Requester.email) == pending.email.lower(),
        )
        .limit(1)
    )
    if already is not None:
        return "already"
    requester = Requester(
        jurisdiction_id=pending.jurisdiction_id, email=pending.email, language=pending.language
    )
    session.add(requester)
    session.flush()
    report_id = session.scalar(
        select(Report.id).where(
            Report.jurisdiction_id == pending.jurisdiction_id,
            Report.tracking_id == pending.tracking_id,
        )
    )
    incidents.subscribe(
        session,
        jurisdiction_id=pending.jurisdiction_id,
        incident_id=pending.incident_id,
        requester_id=requester.id,
        report_id=report_id,
    )
    return "done"
