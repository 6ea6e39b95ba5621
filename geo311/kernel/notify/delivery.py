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
claim is committed durably, because losing it could mean sending twice. An outcome the
database could not take because it went away (a restart, a fail-over) is kept in the worker
and written when it answers again, before the sweep would call the notice ``uncertain``;
only a worker that dies during the outage loses it.
"""

from __future__ import annotations

import email.policy
import hashlib
import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any, LiteralString
from urllib.parse import quote

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from geo311.kernel.database import Database
from geo311.kernel.media.store import MediaStore
from geo311.kernel.notify import mime, outbox
from geo311.kernel.notify.channels import DeliveryError, SmsProvider, SmtpSession, WebhookSender
from geo311.kernel.notify.templates import Links, render_email, render_sms, webhook_payload
from geo311.kernel.notify.tokens import AnswerLink, FollowLink, LinkSigner, PreferencesLink
from geo311.kernel.settings import NotifySettings, Settings

log = logging.getLogger(__name__)

_PHOTO_CID = "after-photo"
_PHOTO_NAME = "after-photo.jpg"
# CRLF line ends; headers up to RFC 5322's 998 characters, so that a long link in
# List-Unsubscribe is folded at a space or not at all, never turned into an encoded word.
_WIRE = email.policy.SMTP.clone(max_line_length=998)
# An SMTP connection left idle longer than this is closed rather than reused: well inside the
# five minutes RFC 5321 asks servers to wait, and the one-minute timeouts some set.
_SMTP_IDLE_S = 30.0
_SMTP_KEPT = 16

DbError = (DBAPIError, psycopg.Error)
"""What a lost database raises here: SQLAlchemy's wrapper when taking a connection from the
pool, the driver's own error once delivery runs its statements on that connection."""


@dataclass(slots=True)
class Owed:
    """A notice read for delivery, with its webhook endpoint when it goes to one."""

    jurisdiction_id: int
    id: int
    idempotency_key: str
    kind: str
    channel: str
    recipient: str
    language: str
    requester_id: int | None
    context: dict[str, Any]
    created_at: datetime
    attempts: int
    hook_url: str | None = None
    hook_secret: str | None = None
    hook_active: bool | None = None


_OWED_SQL: LiteralString = """
    SELECT n.jurisdiction_id, n.id, n.idempotency_key, n.kind, n.channel, n.recipient,
           n.language, n.requester_id, n.context, n.created_at, n.attempts,
           e.url, e.secret, e.active
    FROM notices AS n
    LEFT JOIN webhook_endpoints AS e
           ON e.jurisdiction_id = n.jurisdiction_id AND e.id = n.webhook_endpoint_id
    WHERE n.jurisdiction_id = %(jid)s AND n.id = ANY(%(ids)s)
      AND n.status IN ('pending', 'retry') AND n.next_attempt_at <= now()
    ORDER BY n.id
"""


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
        self._photos: dict[str, mime.InlineImage | None] = {}
        self._photos_lock = threading.Lock()
        # Outcomes of messages handed over while the database went away: written when it is
        # back (before the sweep could call those notices "uncertain").
        self._unrecorded: list[_Unrecorded] = []
        self._unrecorded_lock = threading.Lock()
        # SMTP connections between jobs, with when each was put back (see _smtp_session).
        self._smtp_idle: list[tuple[float, SmtpSession]] = []
        self._smtp_lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """Close the kept SMTP connections; release the channels' HTTP connections."""
        with self._smtp_lock:
            self._closed = True
            idle, self._smtp_idle = self._smtp_idle, []
        for _, session in idle:
            session.close()
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
        self.record_unrecorded()
        tally: Counter[str] = Counter()
        ids = sorted(set(notice_ids))
        with self._connection() as connection:
            notices = [
                Owed(*row)
                for row in connection.execute(_OWED_SQL, {"jid": jurisdiction_id, "ids": ids})
            ]
            if not notices:
                return Tally(tally)
            ledger = _Ledger(connection, jurisdiction_id, self.notify, tally)
            try:
                try:
                    emails = [n for n in notices if n.channel == "email"]
                    if emails:
                        self._deliver_emails(emails, ledger)
                    for notice in notices:
                        if notice.channel == "sms":
                            self._deliver_sms(notice, ledger)
                        elif notice.channel == "webhook":
                            self._deliver_webhook(notice, ledger)
                finally:
                    ledger.flush()
                if ledger.retried:
                    ledger.schedule_follow_up()
            except DbError:
                self._keep_unrecorded(ledger)
                raise
        return Tally(tally)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """Yield a pooled connection in autocommit, for the driver's own statements.

        Delivery runs a handful of tiny statements per message on the hot path of every
        report; on the driver directly, a claim is one round trip and an outcome with its
        ``SET LOCAL`` one more (pipelined), where the ORM's unit of work, BEGIN and COMMIT
        each cost a trip and the statement building most of the worker's time.
        """
        proxy = self.db.engine.raw_connection()
        connection: psycopg.Connection[Any] = proxy.driver_connection  # type: ignore[assignment]
        try:
            connection.autocommit = True
            yield connection
        except BaseException:
            if connection.closed or connection.broken:
                proxy.invalidate()
            raise
        finally:
            if not connection.closed and not connection.broken:
                if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    connection.rollback()
                connection.autocommit = False  # as the pool hands it to everyone else
            proxy.close()

    def _keep_unrecorded(self, ledger: _Ledger) -> None:
        if ledger.pending:
            with self._unrecorded_lock:
                self._unrecorded.append(
                    _Unrecorded(ledger.jurisdiction_id, list(ledger.pending), list(ledger.retried))
                )

    def record_unrecorded(self) -> int:
        """Return how many outcomes kept through a database outage were written now.

        Each is fenced by its claim token, so writing it late is safe: a notice another
        attempt holds now is not touched. Raises (keeping them) if the database is still away.
        """
        with self._unrecorded_lock:
            pending, self._unrecorded = self._unrecorded, []
        written = 0
        for position, item in enumerate(pending):
            try:
                with self._connection() as connection:
                    ledger = _Ledger(connection, item.jurisdiction_id, self.notify, Counter())
                    ledger.pending.extend(item.outcomes)
                    ledger.retried.extend(item.retried)
                    ledger.flush()
                    if ledger.retried:
                        ledger.schedule_follow_up()
            except DbError:
                with self._unrecorded_lock:
                    self._unrecorded[:0] = pending[position:]
                raise
            written += len(item.outcomes)
        if written:
            log.info("recorded %d notice outcome(s) kept through a database outage", written)
        return written

    def _smtp_session(self) -> SmtpSession:
        """Return an SMTP session: one another job left connected if there is one.

        Each report owes its own small job, so a connection per job was most of what a
        notice cost the worker and the mail server (connect, EHLO, QUIT); kept connections
        carry the next jobs' messages instead.
        """
        now = time.monotonic()
        stale: list[SmtpSession] = []
        found: SmtpSession | None = None
        with self._smtp_lock:
            while self._smtp_idle:
                since, session = self._smtp_idle.pop()
                if now - since < _SMTP_IDLE_S:
                    found = session
                    break
                stale.append(session)
        for session in stale:
            session.close()
        if found is None:
            return SmtpSession(self.notify.smtp)
        found.drop_if_closed()  # it then connects afresh on first use
        return found

    def _keep_smtp(self, session: SmtpSession) -> None:
        if session.connected:
            with self._smtp_lock:
                if len(self._smtp_idle) < _SMTP_KEPT and not self._closed:
                    self._smtp_idle.append((time.monotonic(), session))
                    return
        session.close()

    def _deliver_emails(self, notices: list[Owed], ledger: _Ledger) -> None:
        smtp = self._smtp_session()
        try:
            for position, notice in enumerate(notices):
                try:
                    message = self._email_bytes(notice)
                except Exception as exc:  # a template or photo bug must not block the rest
                    log.exception("cannot build notice %s", notice.id)
                    ledger.unclaimed([notice], "failed", f"cannot build the message: {exc!r}")
                    continue
                try:
                    smtp.begin(self.sender, notice.recipient)
                except DeliveryError as exc:
                    if exc.severity == "permanent":
                        ledger.unclaimed([notice], "failed", exc.detail)
                    elif smtp.connected:
                        ledger.unclaimed([notice], "retry", exc.detail)
                    else:
                        # The server is unreachable: every message left waits for the next try.
                        ledger.unclaimed(notices[position:], "retry", exc.detail)
                        return
                    continue
                token = ledger.claim(notice)
                if token is None:
                    smtp.abort()
                    continue
                try:
                    reply = smtp.send_data(message)
                except DeliveryError as exc:
                    ledger.failed(notice, token, exc)
                    continue
                ledger.sent(notice, token, reply)
        finally:
            self._keep_smtp(smtp)

    def _deliver_sms(self, notice: Owed, ledger: _Ledger) -> None:
        if self.sms is None:
            ledger.unclaimed(
                [notice], "skipped", "no SMS provider is configured (GEO311_NOTIFY__SMS__PROVIDER)"
            )
            return
        body = render_sms(notice.kind, notice.language, notice.context, self._links(notice))
        token = ledger.claim(notice)
        if token is None:
            return
        try:
            ref = self.sms.send(
                to=notice.recipient, body=body, idempotency_key=notice.idempotency_key
            )
        except DeliveryError as exc:
            ledger.failed(notice, token, exc)
            return
        ledger.sent(notice, token, ref)

    def _deliver_webhook(self, notice: Owed, ledger: _Ledger) -> None:
        url, secret = notice.hook_url, notice.hook_secret
        if url is None or secret is None or not notice.hook_active:
            ledger.unclaimed([notice], "skipped", "the webhook endpoint was removed or deactivated")
            return
        payload = webhook_payload(
            kind=notice.kind,
            idempotency_key=notice.idempotency_key,
            created_at=notice.created_at.isoformat(),
            context=notice.context,
            links=self._links(notice),
        )
        token = ledger.claim(notice)
        if token is None:
            return
        try:
            ref = self.webhooks.send(
                url=url, secret=secret, payload=payload, idempotency_key=notice.idempotency_key
            )
        except DeliveryError as exc:
            ledger.failed(notice, token, exc)
            return
        ledger.sent(notice, token, ref)

    # --- building messages ------------------------------------------------------------------

    def _links(self, notice: Owed) -> Links:
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
        confirm = None
        if notice.kind == "follow":
            token = self.signer.follow_token(FollowLink(notice.jurisdiction_id, notice.id))
            confirm = f"{base}/follow/confirm?t={token}"
        photo_key = ctx.get("photo_key")
        photo_url = f"{base}/media/{photo_key}" if photo_key else None
        # A resident's notice links to their report's public page (a follow-confirmation
        # asks one thing only: the link that confirms).
        tracking_id = ctx.get("tracking_id")
        track = (
            f"{base}/track/{quote(str(tracking_id), safe='')}"
            if tracking_id and notice.kind != "follow"
            else None
        )
        return Links(
            track_url=track,
            fixed_url=fixed,
            not_fixed_url=not_fixed,
            preferences_url=preferences,
            photo_url=photo_url,
            confirm_url=confirm,
        )

    def message_id(self, notice: Owed) -> str:
        """Return the Message-ID of a notice's email: the same on every attempt."""
        digest = hashlib.sha256(
            f"{notice.jurisdiction_id}:{notice.idempotency_key}".encode()
        ).hexdigest()[:40]
        return f"<notice.{digest}@{self.domain}>"

    def _email_bytes(self, notice: Owed) -> bytes:
        links = self._links(notice)
        image = self._photo(notice.context.get("photo_key"))
        content = render_email(
            notice.kind,
            notice.language,
            notice.context,
            links,
            photo_cid=image.cid if image is not None else None,
        )
        headers = [
            ("Auto-Submitted", "auto-generated"),
            ("Content-Language", notice.language),
            ("X-Geo311-Notice", notice.idempotency_key),
        ]
        if links.preferences_url:
            one_click = links.preferences_url.replace(
                "/notices/preferences?", "/notices/unsubscribe?"
            )
            headers += [
                ("List-Unsubscribe", f"<{one_click}>"),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ]
        if notice.recipient.isascii():
            return mime.notice_mail(
                sender=self.notify.smtp.from_address,
                recipient=notice.recipient,
                subject=content.subject,
                message_id=self.message_id(notice),
                headers=headers,
                text=content.text,
                html=content.html,
                image=image,
            )
        # An internationalised address: the stdlib builds it, the server needs SMTPUTF8.
        msg = EmailMessage()
        msg["From"] = self.notify.smtp.from_address
        msg["To"] = notice.recipient
        msg["Subject"] = content.subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = self.message_id(notice)
        for name, value in headers:
            if name != "Content-Language":
                msg[name] = value
        msg.set_content(content.text)
        msg.add_alternative(content.html, subtype="html")
        msg["Content-Language"] = notice.language  # after set_content, which clears Content-*
        if image is not None:
            html_part = next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
            photo = self._photo_bytes(notice.context.get("photo_key"))
            if photo is not None:
                html_part.add_related(
                    photo,
                    maintype="image",
                    subtype="jpeg",
                    cid=f"<{image.cid}>",
                    filename=_PHOTO_NAME,
                    disposition="inline",
                )
        return msg.as_bytes(policy=_WIRE)

    def _photo(self, key: Any) -> mime.InlineImage | None:
        """Return the after-photo's mail part, encoded once per photo and kept."""
        if not isinstance(key, str) or not key:
            return None
        with self._photos_lock:
            if key in self._photos:
                return self._photos[key]
        data = self._photo_bytes(key)
        image = mime.inline_image(data, cid=_PHOTO_CID, filename=_PHOTO_NAME) if data else None
        with self._photos_lock:
            if len(self._photos) > 64:
                self._photos.clear()
            self._photos[key] = image
        return image

    def _photo_bytes(self, key: Any) -> bytes | None:
        try:
            return self.media.get(str(key))
        except (OSError, ValueError):
            log.warning("after-photo %s is missing; the notice goes without it", key)
            return None

    # --- the sweep --------------------------------------------------------------------------

    def sweep(self, *, orphan_grace_s: float | None = None) -> dict[str, int]:
        """Return what the sweep did: stale hand-overs marked uncertain (or owed again), and
        owed notices with no job for too long given a fresh job."""
        grace = self.notify.orphan_grace_s if orphan_grace_s is None else orphan_grace_s
        self.record_unrecorded()
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
            # City by city: on Citus a locking read (FOR UPDATE) must stay on one shard.
            owing = session.execute(
                text(
                    "SELECT DISTINCT jurisdiction_id FROM notices "
                    "WHERE status IN ('pending', 'retry') "
                    "AND next_attempt_at < now() - make_interval(secs => :grace)"
                ),
                {"grace": grace},
            ).scalars()
            orphans = [
                row
                for jid in list(owing)
                for row in session.execute(
                    text(
                        """
                        UPDATE notices SET next_attempt_at = now(), updated_at = now()
                        WHERE jurisdiction_id = :jid AND (jurisdiction_id, id) IN (
                            SELECT jurisdiction_id, id FROM notices
                            WHERE jurisdiction_id = :jid AND status IN ('pending', 'retry')
                              AND next_attempt_at < now() - make_interval(secs => :grace)
                            ORDER BY next_attempt_at LIMIT 20000
                            FOR UPDATE SKIP LOCKED)
                        RETURNING jurisdiction_id, id
                        """
                    ),
                    {"grace": grace, "jid": jid},
                ).all()
            ]
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


# The ledger's statements, in the driver's placeholders (it runs them on the driver).
_CLAIM: LiteralString = """
    UPDATE notices SET status = 'sending', claim_token = %(token)s, claimed_at = now(),
           attempts = attempts + 1, updated_at = now()
    WHERE jurisdiction_id = %(jid)s AND id = %(id)s AND status IN ('pending', 'retry')
    RETURNING attempts
"""
_SENT: LiteralString = """
    UPDATE notices SET status = 'sent', sent_at = now(), provider_ref = %(ref)s,
           last_error = NULL, updated_at = now()
    WHERE jurisdiction_id = %(jid)s AND id = %(id)s AND claim_token = %(token)s
"""
# Two statements, chosen in Python by the status: Citus refuses now() inside a CASE in an
# UPDATE. The back-off is added to now() in epoch seconds: Citus also refuses a stable
# function (timestamptz + interval) applied to a column in an UPDATE.
_FAILED_RETRY: LiteralString = """
    UPDATE notices SET status = CAST(%(status)s AS varchar), last_error = %(error)s,
           updated_at = now(), claim_token = NULL,
           next_attempt_at = to_timestamp(extract(epoch FROM now())
               + LEAST(%(cap)s, %(base)s * power(2, GREATEST(attempts - 1, 0))) * %(jitter)s)
    WHERE jurisdiction_id = %(jid)s AND id = %(id)s AND claim_token = %(token)s
"""
_FAILED: LiteralString = """
    UPDATE notices SET status = CAST(%(status)s AS varchar), last_error = %(error)s,
           updated_at = now()
    WHERE jurisdiction_id = %(jid)s AND id = %(id)s AND claim_token = %(token)s
"""
# A try that certainly delivered nothing (never claimed): counts as an attempt.
_UNCLAIMED_RETRY: LiteralString = """
    UPDATE notices SET
        attempts = attempts + 1,
        status = CASE WHEN attempts + 1 >= %(max)s THEN 'failed' ELSE 'retry' END,
        next_attempt_at = to_timestamp(extract(epoch FROM now())
            + LEAST(%(cap)s, %(base)s * power(2, attempts)) * %(jitter)s),
        last_error = %(error)s,
        updated_at = now()
    WHERE jurisdiction_id = %(jid)s AND id = ANY(%(ids)s) AND status IN ('pending', 'retry')
    RETURNING id, status
"""
_UNCLAIMED_SET: LiteralString = """
    UPDATE notices SET status = CAST(%(status)s AS varchar), last_error = %(error)s,
           updated_at = now()
    WHERE jurisdiction_id = %(jid)s AND id = ANY(%(ids)s) AND status IN ('pending', 'retry')
    RETURNING id, status
"""
_LATEST_RETRY: LiteralString = """
    SELECT max(next_attempt_at) FROM notices
    WHERE jurisdiction_id = %(jid)s AND id = ANY(%(ids)s) AND status = 'retry'
"""

Statement = tuple[LiteralString, dict[str, Any]]


@dataclass(frozen=True)
class _Unrecorded:
    """Outcomes of one job that the database did not take, to write when it is back."""

    jurisdiction_id: int
    outcomes: list[Statement]
    retried: list[int]


class _Ledger:
    """Records a job's claims and outcomes on one connection (in autocommit).

    A claim is committed durably before the message can leave, together with the outcome of
    the message before it, so each message costs one commit. Outcomes still queued when the
    job ends are committed with ``synchronous_commit = off``: should the database crash and
    lose one, the notice reads ``sending`` and becomes ``uncertain`` — never sent again.
    Each of those commits is one round trip: its statements are pipelined.
    """

    def __init__(
        self,
        connection: psycopg.Connection[Any],
        jurisdiction_id: int,
        notify: NotifySettings,
        tally: Counter[str],
    ) -> None:
        self.connection = connection
        self.jurisdiction_id = jurisdiction_id
        self.notify = notify
        self.tally = tally
        self.retried: list[int] = []
        # Kept until committed: a transaction the database dropped is written again later.
        self.pending: list[Statement] = []

    def _commit(self, last: Statement | None = None, *, durable: bool) -> list[Any]:
        """Return the rows of ``last`` after committing the queued outcomes and ``last``
        in one transaction, sent in one round trip."""
        statements = [*self.pending, *([last] if last is not None else [])]
        if not statements:
            return []
        connection = self.connection
        if durable and len(statements) == 1:
            rows = connection.execute(*statements[0]).fetchall()  # autocommit: one trip
        else:
            with connection.pipeline(), connection.transaction():
                if not durable:
                    connection.execute("SET LOCAL synchronous_commit = off")
                cursors = [connection.execute(sql, values) for sql, values in statements]
            final = cursors[-1]
            rows = final.fetchall() if last is not None and final.description else []
        self.pending.clear()
        return rows

    def claim(self, notice: Owed) -> uuid.UUID | None:
        """Return a fencing token if this attempt now holds the notice, else None."""
        token = uuid.uuid4()
        rows = self._commit(
            (_CLAIM, {"token": token, "jid": self.jurisdiction_id, "id": notice.id}),
            durable=True,
        )
        if not rows:
            self.tally["skipped_claimed"] += 1
            return None
        notice.attempts = rows[0][0]
        return token

    def sent(self, notice: Owed, token: uuid.UUID, reference: str) -> None:
        self.pending.append(
            (
                _SENT,
                {
                    "ref": reference[:500],
                    "jid": self.jurisdiction_id,
                    "id": notice.id,
                    "token": token,
                },
            )
        )
        self.tally["sent"] += 1

    def failed(self, notice: Owed, token: uuid.UUID, error: DeliveryError) -> None:
        """Queue the outcome of a claimed attempt that did not (certainly) deliver."""
        severity = error.severity
        if severity == "ambiguous" and (
            self.notify.resend_uncertain or notice.channel == "webhook"
        ):
            severity = "transient"
        if severity == "transient" and notice.attempts >= self.notify.max_attempts:
            severity = "permanent"
        status = {"transient": "retry", "permanent": "failed", "ambiguous": "uncertain"}[severity]
        self.pending.append(
            (
                _FAILED_RETRY if status == "retry" else _FAILED,
                {
                    "status": status,
                    "error": error.detail[:1000],
                    "cap": self.notify.retry_max_s,
                    "base": self.notify.retry_base_s,
                    # Drawn here: Citus refuses a volatile random() in an UPDATE.
                    "jitter": random.uniform(0.9, 1.1),  # noqa: S311 (retry spread, not a secret)
                    "jid": self.jurisdiction_id,
                    "id": notice.id,
                    "token": token,
                },
            )
        )
        self.tally[status] += 1
        if status == "retry":
            self.retried.append(notice.id)
        else:
            log.warning("notice %s %s: %s", notice.id, status, error.detail)

    def unclaimed(self, notices: Sequence[Owed], status: str, detail: str) -> None:
        """Record a try that certainly delivered nothing: retry, failed or skipped."""
        values: dict[str, Any] = {
            "jid": self.jurisdiction_id,
            "ids": [n.id for n in notices],
            "error": detail[:1000],
        }
        statement: LiteralString
        if status == "retry":
            statement = _UNCLAIMED_RETRY
            values |= {
                "max": self.notify.max_attempts,
                "cap": self.notify.retry_max_s,
                "base": self.notify.retry_base_s,
                # Drawn here: Citus refuses a volatile random() in an UPDATE.
                "jitter": random.uniform(0.9, 1.1),  # noqa: S311 (retry spread, not a secret)
            }
        else:
            statement = _UNCLAIMED_SET
            values["status"] = status
        for notice_id, outcome in self._commit((statement, values), durable=False):
            self.tally[outcome] += 1
            if outcome == "retry":
                self.retried.append(notice_id)

    def flush(self) -> None:
        self._commit(durable=False)

    def schedule_follow_up(self) -> None:
        """Defer one job for every notice this job moved to retry, when the last is due."""
        connection = self.connection
        with connection.transaction():
            latest: datetime | None = connection.execute(
                _LATEST_RETRY, {"jid": self.jurisdiction_id, "ids": self.retried}
            ).fetchone()[0]  # type: ignore[index]
            if latest is not None:
                outbox.defer(
                    connection,
                    jurisdiction_id=self.jurisdiction_id,
                    notice_ids=self.retried,
                    schedule_at=latest,
                )
