"""The residents' "fixed?" answers to a closure notice: "not fixed" reopens the incident,
"fixed" is recorded; what the answer page shows about a link."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo311.kernel.errors import NotFound
from geo311.kernel.notify.tokens import AnswerLink
from work_orders import audit, lookups, moving, transitions
from work_orders.public_notes import PublicNote

AnswerOutcome = Literal[
    "thanks_fixed", "thanks_not_fixed", "already", "outdated", "fixed_but_reopened"
]


@dataclass(frozen=True)
class AnswerResult:
    """What a resident's answer did, and what to show them."""

    outcome: AnswerOutcome
    incident_id: int
    language: str
    category_code: str
    category: str
    tracking_id: str | None


def answer_closure(
    session: Session,
    *,
    link: AnswerLink,
    answer: Literal["fixed", "not_fixed"],
    now: datetime | None = None,
) -> AnswerResult:
    """Return what the resident's answer to a closure notice did.

    "not fixed" reopens the incident and puts its work order back in the department's queue
    (no crew), unless the incident was reopened already or closed again since that notice
    (then the link is outdated). "fixed" is recorded (``fixed_but_reopened`` when the
    incident is open again: it stays open). Every answer is an audit event.
    """
    now = now or datetime.now(UTC)
    incident = lookups.get_incident(
        session, jurisdiction_id=link.jurisdiction_id, incident_id=link.incident_id
    )
    moving.lock_pair(session, incident)
    info = describe_answer_link(session, link=link)
    latest_closure = session.scalar(
        text(
            "SELECT max(id) FROM audit_events WHERE jurisdiction_id = :jid "
            "AND entity = 'incident' AND entity_id = :incident AND to_state = 'closed'"
        ),
        {"jid": link.jurisdiction_id, "incident": link.incident_id},
    )
    actor = f"requester:{link.requester_id}"
    outcome: AnswerOutcome
    if answer == "fixed":
        # "Fixed" is recorded, not acted on: an incident reopened by an earlier "not fixed"
        # stays open until a crew has looked, and the resident is told so.
        outcome = "thanks_fixed" if incident.status == "closed" else "fixed_but_reopened"
    elif latest_closure != link.event_id:
        outcome = "outdated"
    elif incident.status == "closed":
        transitions.transition_at(
            session,
            entity=incident,
            to="reopened",
            actor=actor,
            reason="The resident answered 'not fixed' to the closure notice.",
            expected_version=None,
            now=now,
            public_note=PublicNote("reopened_not_fixed"),
        )
        outcome = "thanks_not_fixed"
    else:
        outcome = "already"
    audit.record(
        session,
        jurisdiction_id=link.jurisdiction_id,
        entity="incident",
        entity_id=incident.id,
        action="resident_answer",
        actor=actor,
        data={"answer": answer, "closure_event": link.event_id, "outcome": outcome},
    )
    session.flush()
    return AnswerResult(
        outcome=outcome,
        incident_id=incident.id,
        language=info.language,
        category_code=info.category_code,
        category=info.category,
        tracking_id=info.tracking_id,
    )


@dataclass(frozen=True)
class AnswerLinkInfo:
    """What the "fixed?" page shows about the link's incident, in the requester's language."""

    language: str
    category_code: str
    category: str
    tracking_id: str | None


def describe_answer_link(session: Session, *, link: AnswerLink) -> AnswerLinkInfo:
    """Return what the "fixed?" page shows for a link, or raise NotFound."""
    row = session.execute(
        text(
            """
            SELECT q.language, r.tracking_id, c.code, c.name
            FROM incidents i
            JOIN service_categories c
              ON c.jurisdiction_id = i.jurisdiction_id AND c.code = i.category_code
            JOIN requesters q ON q.jurisdiction_id = i.jurisdiction_id AND q.id = :requester
            LEFT JOIN subscriptions s ON s.jurisdiction_id = i.jurisdiction_id
                 AND s.requester_id = q.id AND s.incident_id = i.id
            LEFT JOIN reports r ON r.jurisdiction_id = s.jurisdiction_id AND r.id = s.report_id
            WHERE i.jurisdiction_id = :jid AND i.id = :incident
            """
        ),
        {"jid": link.jurisdiction_id, "requester": link.requester_id, "incident": link.incident_id},
    ).one_or_none()
    if row is None:
        raise NotFound("The link names an incident or requester this service does not know.")
    return AnswerLinkInfo(
        language=row.language,
        category_code=row.code,
        category=row.name,
        tracking_id=row.tracking_id,
    )
