"""Notice preferences, webhook endpoints, and what operators see of the outbox."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from geo311.kernel.errors import FieldError, NotFound, ValidationFailed
from geo311.kernel.notify import outbox, targets
from geo311.kernel.notify.models import KINDS, Notice, NoticePreference, WebhookEndpoint


def not_muted_sql(*, jurisdiction_id: str, requester_id: str, kind: str) -> str:
    """Return an SQL condition, true when the requester has not muted the kind of notice.

    The arguments are SQL expressions of the caller's statement (columns or parameters), so
    whoever owes notices filters mutes in the statement that finds the recipients, without
    naming this package's table."""
    return (
        "NOT EXISTS (SELECT 1 FROM notice_preferences p"  # noqa: S608 - expressions from code
        f" WHERE p.jurisdiction_id = {jurisdiction_id} AND p.requester_id = {requester_id}"
        f" AND p.muted_kinds @> ARRAY[CAST({kind} AS varchar)])"
    )


def webhook_targets(session: Session, *, jurisdiction_id: int, kind: str) -> list[tuple[int, str]]:
    """Return the id and URL of every active endpoint of the jurisdiction that takes ``kind``,
    by id."""
    rows = session.execute(
        text(
            "SELECT id, url FROM webhook_endpoints WHERE jurisdiction_id = :jid AND active "
            "AND CAST(:kind AS varchar) = ANY(kinds) ORDER BY id"
        ),
        {"jid": jurisdiction_id, "kind": kind},
    ).all()
    return [(row.id, row.url) for row in rows]


def muted_kinds(session: Session, *, jurisdiction_id: int, requester_id: int) -> list[str]:
    """Return the kinds of notice the requester does not want."""
    row = session.get(NoticePreference, (jurisdiction_id, requester_id))
    return sorted(row.muted_kinds) if row else []


def set_muted_kinds(
    session: Session, *, jurisdiction_id: int, requester_id: int, muted: Iterable[str]
) -> list[str]:
    """Return the requester's muted kinds after replacing them with ``muted``.

    The caller checks that the requester exists (``work_orders.lookups.requester_language``):
    requesters belong to work orders, which the kernel does not import."""
    kinds = sorted(set(muted))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValidationFailed(
            f"unknown notice kinds: {', '.join(unknown)}; the kinds are {', '.join(KINDS)}",
            errors=[FieldError("kinds", "unknown notice kind", "unknown")],
        )
    upsert = pg_insert(NoticePreference).values(
        jurisdiction_id=jurisdiction_id, requester_id=requester_id, muted_kinds=kinds
    )
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=["jurisdiction_id", "requester_id"],
            # The new row's default (now()), not now() here: Citus takes only immutable
            # functions in DO UPDATE SET, and the default is worked out before routing.
            set_={"muted_kinds": kinds, "updated_at": upsert.excluded.updated_at},
        )
    )
    # Notices owed but not yet sent respect the new choice too.
    session.execute(
        update(Notice)
        .where(
            Notice.jurisdiction_id == jurisdiction_id,
            Notice.requester_id == requester_id,
            Notice.kind.in_(kinds),
            Notice.status.in_(("pending", "retry")),
        )
        .values(status="skipped", last_error="the requester opted out", updated_at=func.now())
    )
    session.flush()
    return kinds


def create_webhook(
    session: Session,
    *,
    jurisdiction_id: int,
    url: str,
    kinds: Sequence[str] = KINDS,
    description: str = "",
    allow_private: bool = False,
) -> WebhookEndpoint:
    """Return a new webhook endpoint with a fresh signing secret (show it once).

    Unless ``allow_private``, a URL whose host is or resolves to a non-public address
    (loopback, link-local, private networks) is refused; see ``geo311.kernel.notify.targets``.
    """
    errors: list[FieldError] = []
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        errors.append(FieldError("url", "url must be an absolute http(s) URL"))
    elif not allow_private:
        try:
            targets.check_public(url.strip())
        except (targets.PrivateTarget, targets.Unresolvable) as exc:
            errors.append(FieldError("url", f"url is not a public address: {exc}", "private"))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        errors.append(FieldError("kinds", f"kinds must be some of {', '.join(KINDS)}"))
    if errors:
        raise ValidationFailed("; ".join(e.message for e in errors), errors=errors)
    endpoint = WebhookEndpoint(
        jurisdiction_id=jurisdiction_id,
        url=url.strip(),
        secret="whsec_" + secrets.token_urlsafe(32),
        kinds=sorted(set(kinds)),
        description=description,
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def list_webhooks(session: Session, *, jurisdiction_id: int) -> list[WebhookEndpoint]:
    """Return the jurisdiction's webhook endpoints, active first."""
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.jurisdiction_id == jurisdiction_id)
            .order_by(WebhookEndpoint.active.desc(), WebhookEndpoint.id)
        )
    )


def deactivate_webhook(session: Session, *, jurisdiction_id: int, endpoint_id: int) -> None:
    """Stop sending to an endpoint (its unsent notices are skipped)."""
    endpoint = session.get(WebhookEndpoint, (jurisdiction_id, endpoint_id))
    if endpoint is None:
        raise NotFound(f"There is no webhook endpoint {endpoint_id}.")
    endpoint.active = False
    session.flush()


def notices_of_incident(
    session: Session, *, jurisdiction_id: int, incident_id: int
) -> list[Notice]:
    """Return every notice owed about an incident, oldest first."""
    return list(
        session.scalars(
            select(Notice)
            .where(Notice.jurisdiction_id == jurisdiction_id, Notice.incident_id == incident_id)
            .order_by(Notice.id)
        )
    )


def status_counts(session: Session) -> dict[str, int]:
    """Return how many notices are in each status."""
    rows = session.execute(select(Notice.status, func.count()).group_by(Notice.status)).all()
    return {status: count for status, count in rows}


def requeue(session: Session, *, statuses: Sequence[str]) -> int:
    """Owe again the notices in ``statuses`` (e.g. uncertain, failed, skipped) and defer their
    jobs; return how many. Resending an 'uncertain' notice may deliver it twice."""
    rows = session.execute(
        text(
            """
            UPDATE notices SET status = 'retry', next_attempt_at = now(), claim_token = NULL,
                   attempts = 0, updated_at = now()
            WHERE status = ANY(:statuses)
            RETURNING jurisdiction_id, id
            """
        ),
        {"statuses": list(statuses)},
    ).all()
    by_jurisdiction: dict[int, list[int]] = {}
    for jurisdiction_id, notice_id in rows:
        by_jurisdiction.setdefault(jurisdiction_id, []).append(notice_id)
    for jurisdiction_id, ids in by_jurisdiction.items():
        outbox.defer(session.connection(), jurisdiction_id=jurisdiction_id, notice_ids=ids)
    return len(rows)
