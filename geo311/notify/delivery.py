"""Delivering owed notices: never twice, and nothing lost.

The rule that keeps a notice from going out twice is the *claim*: right before the one step
that can deliver it (the DATA of an SMTP transaction, the POST to the SMS provider or the
webhook), the worker moves the notice from owed to ``sending`` with a fresh fencing token and
commits that durably. Only a notice that is still owed can be claimed, and only the holder of
the token may record the outcome. So:

- a crash *before* the claim leaves the notice owed: it is sent later (the job is retried);
- a crash *after* the claim leaves it ``sending``: it is never sent again by itself. After
  ``claim_lease_s`` it is reported ``uncertain`` (maybe delivered, maybe not);
- two jobs holding the same notice (a retried stalled job, a sweep) race for the claim and
  only one wins; the other resets its SMTP transaction, which delivers nothing.

That is at-most-once for email and SMS, with a window of one message per SMTP connection or
HTTP request in flight at the moment of a crash, and of the wait for the server's reply to the
final "." of DATA when a connection drops. ``notify.resend_uncertain`` turns those into
at-least-once (the same Message-ID goes out again, which most mail systems collapse).
Webhooks are at-least-once with a stable Idempotency-Key, as webhook receivers expect.

Outcomes are recorded with ``synchronous_commit = off``: if the database itself crashes and
loses one, the notice reads ``sending`` and becomes ``uncertain``, never owed again. The
claim is committed durably, because losing it could mean sending twice.
"""

from __future__ import annotations

import email.policy
import hashlib
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

from sqlalchemy import func, literal_column, select, text, update
from sqlalchemy.orm import Session

from geo311.database import Database
from geo311.media import MediaStore
from geo311.notify import outbox
from geo311.notify.channels import DeliveryError, SmsProvider, SmtpSession, WebhookSender
from geo311.notify.models import OWED, Notice, WebhookEndpoint
from geo311.notify.templates import Links, render_email, render_sms, webhook_payload
from geo311.notify.tokens import AnswerLink, LinkSigner, PreferencesLink
from geo311.settings import Settings

log = logging.getLogger(__name__)

_PHOTO_CID = "after-photo"


@dataclass
class Tally:
    """What one delivery run did, by outcome."""

    counts: Counter[str]

    def __getitem__(self, outcome: str) -> int:
        return self.counts[outcome]


class Deliverer:
    """Sends owed notices through their channels and records every outcome."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        media: MediaStore,
        *,
        signer: LinkSigner,
        sms: SmsProvider | None,
        webhooks: WebhookSender,
    ) -> None:
        self.db = db
        self.settings = settings
        self.notify = settings.notify
        self.media = media
        self.signer = signer
        self.sms = sms
        self.webhooks = webhooks
        self.base_url = settings.base_url
        self.sender = parseaddr(self.notify.smtp.from_address)[1] or "no-reply@geo311.localhost"
        self.domain = self.sender.rpartition("@")[2] or "geo311.localhost"
        self._photos: dict[str, bytes | None] = {}
        self._photos_lock = threading.Lock()

    def close(self) -> None:
        """Release the channels' HTTP connections."""
        self.webhooks.close()
        close = getattr(self.sms, "close", None)
        if close is not None:
            close()

    # --- one job ----------------------------------------------------------------------------

    def deliver(self, *, jurisdiction_id: int, notice_ids: Iterable[int]) -> Tally:
        """Return the outcomes of sending the given notices that are owed and due now.

        Notices sent already, held by another attempt, or not due yet are left alone (not
        due: a later job is scheduled for them). Those that fail in a retryable way get a
        follow-up job at their next attempt time.
        """
        tally: Counter[str] = Counter()
        ids = sorted(set(notice_ids))
        with self.db.sessions() as session:
            rows = session.execute(
                select(Notice, WebhookEndpoint.url, WebhookEndpoint.secret, WebhookEndpoint.active)
                .outerjoin(
                    WebhookEndpoint,
                    (WebhookEndpoint.jurisdiction_id == Notice.jurisdiction_id)
                    & (WebhookEndpoint.id == Notice.webhook_endpoint_id),
                )
                .where(
                    Notice.jurisdiction_id == jurisdiction_id,
                    Notice.id.in_(ids),
                    Notice.status.in_(OWED),
                    Notice.next_attempt_at <= func.now(),
                )
                .order_by(Notice.id)
            ).all()
            session.expunge_all()
        emails = [row.Notice for row in rows if row.Notice.channel == "email"]
        texts = [row.Notice for row in rows if row.Notice.channel == "sms"]
        hooks = [
            (row.Notice, row.url, row.secret, row.active)
            for row in rows
            if row.Notice.channel == "webhook"
        ]
        retried: list[int] = []
        if emails:
            self._deliver_emails(emails, tally, retried)
        for notice in texts:
            self._deliver_sms(notice, tally, retried)
        for notice, url, secret, active in hooks:
            self._deliver_webhook(notice, url, secret, bool(active), tally, retried)
        if retried:
            self._schedule_follow_up(jurisdiction_id, retried)
        return Tally(tally)

    def _deliver_emails(
        self, notices: list[Notice], tally: Counter[str], retried: list[int]
    ) -> None:
        smtp = SmtpSession(self.notify.smtp)
        try:
            for position, notice in enumerate(notices):
                try:
                    message = self._email_bytes(notice)
                except Exception as exc:  # a template or photo bug must not block the rest
                    log.exception("cannot build notice %s", notice.id)
                    self._fail_unclaimed([notice], f"cannot build the message: {exc!r}", tally)
                    continue
                try:
                    smtp.begin(self.sender, notice.recipient)
                except DeliveryError as exc:
                    if exc.severity == "permanent":
                        self._fail_unclaimed([notice], exc.detail, tally)
                        continue
                    if smtp.connected:
                        retried += self._retry_unclaimed([notice], exc.detail, tally)
                        continue
                    # The server is unreachable: every message left waits for the next try.
                    retried += self._retry_unclaimed(notices[position:], exc.detail, tally)
                    return
                token = self._claim(notice)
                if token is None:
                    smtp.abort()
                    tally["skipped_claimed"] += 1
                    continue
                try:
                    reply = smtp.send_data(message)
                except DeliveryError as exc:
                    if self._finish_failed(notice, token, exc, tally):
                        retried.append(notice.id)
                    continue
                self._finish_sent(notice, token, reply, tally)
        finally:
            smtp.close()

    def _deliver_sms(self, notice: Notice, tally: Counter[str], retried: list[int]) -> None:
        if self.sms is None:
            self._skip(notice, "no SMS provider is configured (GEO311_NOTIFY__SMS__PROVIDER)")
            tally["skipped"] += 1
            return
        body = render_sms(notice.kind, notice.language, notice.context, self._links(notice))
        token = self._claim(notice)
        if token is None:
            tally["skipped_claimed"] += 1
            return
        try:
            ref = self.sms.send(
                to=notice.recipient, body=body, idempotency_key=notice.idempotency_key
            )
        except DeliveryError as exc:
            if self._finish_failed(notice, token, exc, tally):
                retried.append(notice.id)
            return
        self._finish_sent(notice, token, ref, tally)

    def _deliver_webhook(
        self,
        notice: Notice,
        url: str | None,
        secret: str | None,
        active: bool,
        tally: Counter[str],
        retried: list[int],
    ) -> None:
        if url is None or secret is None or not active:
            self._skip(notice, "the webhook endpoint was removed or deactivated")
            tally["skipped"] += 1
            return
        links = self._links(notice)
        payload = webhook_payload(
            kind=notice.kind,
            idempotency_key=notice.idempotency_key,
            created_at=notice.created_at.isoformat(),
            context=notice.context,
            links=links,
        )
        token = self._claim(notice)
        if token is None:
            tally["skipped_claimed"] += 1
            return
        try:
            ref = self.webhooks.send(
                url=url, secret=secret, payload=payload, idempotency_key=notice.idempotency_key
            )
        except DeliveryError as exc:
            if self._finish_failed(notice, token, exc, tally):
                retried.append(notice.id)
            return
        self._finish_sent(notice, token, ref, tally)

    # --- building messages ------------------------------------------------------------------

    def _links(self, notice: Notice) -> Links:
        ctx = notice.context
        base = self.base_url
        preferences = None
        if notice.requester_id is not None:
            token = self.signer.preferences_token(
                PreferencesLink(notice.jurisdiction_id, notice.requester_id)
            )
            preferences = f"{base}/notices/preferences?t={token}"
        fixed = not_fixed = None
        if notice.kind == "closed" and notice.requester_id is not None and ctx.get("event_id"):
            answer = self.signer.answer_token(
                AnswerLink(
                    notice.jurisdiction_id,
                    int(ctx["incident_id"]),
                    int(ctx["event_id"]),
                    notice.requester_id,
                )
            )
            fixed = f"{base}/notices/answer?t={answer}&a=fixed"
            not_fixed = f"{base}/notices/answer?t={answer}&a=not_fixed"
        photo_key = ctx.get("photo_key")
        photo_url = f"{base}/media/{photo_key}" if photo_key else None
        return Links(
            fixed_url=fixed,
            not_fixed_url=not_fixed,
            preferences_url=preferences,
            photo_url=photo_url,
        )

    def message_id(self, notice: Notice) -> str:
        """Return the Message-ID of a notice's email: the same on every attempt."""
        digest = hashlib.sha256(
            f"{notice.jurisdiction_id}:{notice.idempotency_key}".encode()
        ).hexdigest()[:40]
        return f"<notice.{digest}@{self.domain}>"

    def _email_bytes(self, notice: Notice) -> bytes:
        links = self._links(notice)
        photo = self._photo(notice.context.get("photo_key"))
        content = render_email(
            notice.kind,
            notice.language,
            notice.context,
            links,
            photo_cid=_PHOTO_CID if photo is not None else None,
        )
        msg = EmailMessage()
        msg["From"] = self.notify.smtp.from_address
        msg["To"] = notice.recipient
        msg["Subject"] = content.subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = self.message_id(notice)
        msg["Auto-Submitted"] = "auto-generated"
        msg["Content-Language"] = notice.language
        msg["X-Geo311-Notice"] = notice.idempotency_key
        if links.preferences_url:
            one_click = links.preferences_url.replace(
                "/notices/preferences?", "/notices/unsubscribe?"
            )
            msg["List-Unsubscribe"] = f"<{one_click}>"
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(content.text)
        msg.add_alternative(content.html, subtype="html")
        if photo is not None:
            html_part = next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
            html_part.add_related(
                photo,
                maintype="image",
                subtype="jpeg",
                cid=f"<{_PHOTO_CID}>",
                filename="after-photo.jpg",
                disposition="inline",
            )
        return msg.as_bytes(policy=email.policy.SMTP)

    def _photo(self, key: Any) -> bytes | None:
        if not isinstance(key, str) or not key:
            return None
        with self._photos_lock:
            if key in self._photos:
                return self._photos[key]
        try:
            data: bytes | None = self.media.get(key)
        except (OSError, ValueError):
            log.warning("after-photo %s is missing; the notice goes without it", key)
            data = None
        with self._photos_lock:
            if len(self._photos) > 64:
                self._photos.clear()
            self._photos[key] = data
        return data

    # --- recording outcomes -----------------------------------------------------------------

    def _claim(self, notice: Notice) -> uuid.UUID | None:
        """Return a fencing token if this attempt now holds the notice, None if it does not.

        Committed durably before the message can leave.
        """
        token = uuid.uuid4()
        with self.db.sessions() as session, session.begin():
            claimed = session.execute(
                update(Notice)
                .where(
                    Notice.jurisdiction_id == notice.jurisdiction_id,
                    Notice.id == notice.id,
                    Notice.status.in_(OWED),
                )
                .values(
                    status="sending",
                    claim_token=token,
                    claimed_at=func.now(),
                    attempts=Notice.attempts + 1,
                    updated_at=func.now(),
                )
                .returning(Notice.attempts)
            ).scalar_one_or_none()
        if claimed is None:
            return None
        notice.attempts = claimed
        return token

    def _record(self, session: Session) -> None:
        # Losing an outcome in a database crash leaves the notice 'sending': never resent.
        session.execute(text("SET LOCAL synchronous_commit = off"))

    def _finish_sent(
        self, notice: Notice, token: uuid.UUID, reference: str, tally: Counter[str]
    ) -> None:
        with self.db.sessions() as session, session.begin():
            self._record(session)
            session.execute(
                update(Notice)
                .where(
                    Notice.jurisdiction_id == notice.jurisdiction_id,
                    Notice.id == notice.id,
                    Notice.claim_token == token,
                )
                .values(
                    status="sent",
                    sent_at=func.now(),
                    provider_ref=reference[:500],
                    last_error=None,
                    updated_at=func.now(),
                )
            )
        tally["sent"] += 1

    def _finish_failed(
        self, notice: Notice, token: uuid.UUID, error: DeliveryError, tally: Counter[str]
    ) -> bool:
        """Record a failed claimed attempt; return whether the notice will be retried."""
        severity = error.severity
        if severity == "ambiguous" and (
            self.notify.resend_uncertain or notice.channel == "webhook"
        ):
            severity = "transient"
        if severity == "transient" and notice.attempts >= self.notify.max_attempts:
            severity = "permanent"
        status = {"transient": "retry", "permanent": "failed", "ambiguous": "uncertain"}[severity]
        values: dict[str, Any] = {
            "status": status,
            "last_error": error.detail[:1000],
            "updated_at": func.now(),
        }
        if status == "retry":
            values["next_attempt_at"] = self._next_attempt_sql()
            values["claim_token"] = None
        with self.db.sessions() as session, session.begin():
            self._record(session)
            session.execute(
                update(Notice)
                .where(
                    Notice.jurisdiction_id == notice.jurisdiction_id,
                    Notice.id == notice.id,
                    Notice.claim_token == token,
                )
                .values(**values)
            )
        tally[status] += 1
        if status != "retry":
            log.warning("notice %s %s: %s", notice.id, status, error.detail)
        return status == "retry"

    def _next_attempt_sql(self) -> Any:
        """Return SQL for the next try: base · 2^(tries - 1), capped, ±10 % jitter so that
        retries do not come back in waves. ``attempts`` already counts this try."""
        cap, base = float(self.notify.retry_max_s), float(self.notify.retry_base_s)
        return literal_column(
            f"now() + make_interval(secs => LEAST({cap!r}, {base!r} * "
            "power(2, GREATEST(attempts - 1, 0))) * (0.9 + 0.2 * random()))"
        )

    def _retry_unclaimed(
        self, notices: list[Notice], detail: str, tally: Counter[str]
    ) -> list[int]:
        """Record a try that certainly did not deliver; return the ids that will be retried."""
        with self.db.sessions() as session, session.begin():
            self._record(session)
            rows = session.execute(
                text(
                    """
                    UPDATE notices SET
                        attempts = attempts + 1,
                        status = CASE WHEN attempts + 1 >= :max THEN 'failed' ELSE 'retry' END,
                        next_attempt_at = now() + make_interval(secs =>
                            LEAST(:cap, :base * power(2, attempts)) * (0.9 + 0.2 * random())),
                        last_error = :detail,
                        updated_at = now()
                    WHERE jurisdiction_id = :jid AND id = ANY(:ids)
                      AND status IN ('pending', 'retry')
                    RETURNING id, status
                    """
                ),
                {
                    "max": self.notify.max_attempts,
                    "cap": self.notify.retry_max_s,
                    "base": self.notify.retry_base_s,
                    "detail": detail[:1000],
                    "jid": notices[0].jurisdiction_id,
                    "ids": [n.id for n in notices],
                },
            ).all()
        for _, status in rows:
            tally[status] += 1
        return [notice_id for notice_id, status in rows if status == "retry"]

    def _fail_unclaimed(self, notices: list[Notice], detail: str, tally: Counter[str]) -> None:
        self._set_unclaimed(notices, "failed", detail)
        tally["failed"] += len(notices)

    def _skip(self, notice: Notice, detail: str) -> None:
        self._set_unclaimed([notice], "skipped", detail)

    def _set_unclaimed(self, notices: list[Notice], status: str, detail: str) -> None:
        with self.db.sessions() as session, session.begin():
            self._record(session)
            session.execute(
                update(Notice)
                .where(
                    Notice.jurisdiction_id == notices[0].jurisdiction_id,
                    Notice.id.in_([n.id for n in notices]),
                    Notice.status.in_(OWED),
                )
                .values(status=status, last_error=detail[:1000], updated_at=func.now())
            )

    def _schedule_follow_up(self, jurisdiction_id: int, notice_ids: list[int]) -> None:
        with self.db.sessions() as session, session.begin():
            latest: datetime | None = session.scalar(
                select(func.max(Notice.next_attempt_at)).where(
                    Notice.jurisdiction_id == jurisdiction_id,
                    Notice.id.in_(notice_ids),
                    Notice.status == "retry",
                )
            )
            if latest is not None:
                # The latest of the group, so that every one of them is due when it runs.
                outbox.defer(
                    session.connection(),
                    jurisdiction_id=jurisdiction_id,
                    notice_ids=notice_ids,
                    schedule_at=latest,
                )

    # --- the sweep --------------------------------------------------------------------------

    def sweep(self, *, orphan_grace_s: float | None = None) -> dict[str, int]:
        """Return what the sweep did: stale hand-overs marked uncertain (or owed again), and
        owed notices with no job for too long given a fresh job."""
        grace = self.notify.orphan_grace_s if orphan_grace_s is None else orphan_grace_s
        resend = self.notify.resend_uncertain
        with self.db.sessions() as session, session.begin():
            stale = session.execute(
                text(
                    """
                    UPDATE notices SET
                        status = CASE WHEN :resend OR channel = 'webhook'
                                      THEN 'retry' ELSE 'uncertain' END,
                        next_attempt_at = now(),
                        last_error = 'the attempt stopped after handing the message over; '
                                     || 'it may or may not have been delivered',
                        updated_at = now()
                    WHERE status = 'sending'
                      AND claimed_at < now() - make_interval(secs => :lease)
                    RETURNING jurisdiction_id, id, status
                    """
                ),
                {"resend": resend, "lease": self.notify.claim_lease_s},
            ).all()
            orphans = session.execute(
                text(
                    """
                    UPDATE notices SET next_attempt_at = now(), updated_at = now()
                    WHERE (jurisdiction_id, id) IN (
                        SELECT jurisdiction_id, id FROM notices
                        WHERE status IN ('pending', 'retry')
                          AND next_attempt_at < now() - make_interval(secs => :grace)
                        ORDER BY next_attempt_at LIMIT 20000
                        FOR UPDATE SKIP LOCKED)
                    RETURNING jurisdiction_id, id
                    """
                ),
                {"grace": grace},
            ).all()
            again: dict[int, list[int]] = {}
            for jurisdiction_id, notice_id, status in stale:
                if status == "retry":
                    again.setdefault(jurisdiction_id, []).append(notice_id)
            for jurisdiction_id, notice_id in orphans:
                again.setdefault(jurisdiction_id, []).append(notice_id)
            for jurisdiction_id, ids in again.items():
                outbox.defer(session.connection(), jurisdiction_id=jurisdiction_id, notice_ids=ids)
        uncertain = sum(1 for *_, status in stale if status == "uncertain")
        if uncertain:
            log.warning("%d notice(s) are uncertain: handed over, answer lost", uncertain)
        return {
            "uncertain": uncertain,
            "requeued": sum(len(v) for v in again.values()),
        }
