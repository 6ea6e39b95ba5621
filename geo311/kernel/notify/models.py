"""The notice outbox, webhook endpoints, and what each requester chose to hear about."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from geo311.kernel.database import Base

KINDS = ("received", "scheduled", "closed")
# Notices about an incident's status, which a requester may mute (KINDS), and the one-off
# "confirm you want updates" mail to an address typed on a tracking page (never muted: it
# goes to no requester yet).
ALL_KINDS = (*KINDS, "follow")
CHANNELS = ("email", "sms", "webhook")
NOTICE_STATUSES = (
    "pending",  # owed, never tried
    "retry",  # tried, failed in a way that is safe to try again at next_attempt_at
    "sending",  # handed to the channel; waiting for its answer
    "sent",  # the channel accepted it
    "failed",  # refused for good, or out of attempts
    "uncertain",  # handed over, answer lost (crash, dropped line): not resent by default
    "skipped",  # nothing to send it with (e.g. no SMS provider configured)
)
OWED = ("pending", "retry")


class Notice(Base):
    """One message owed to one recipient about one event: the transactional outbox.

    Rows are written in the same transaction as the change they announce, so a notice is
    owed exactly when the change commits. ``idempotency_key`` names the (event, recipient)
    pair: writing the same notice twice is a no-op, and it travels with the message
    (Message-ID, Idempotency-Key header) so receivers can drop repeats too.
    """

    __tablename__ = "notices"
    __table_args__ = (
        UniqueConstraint("jurisdiction_id", "idempotency_key"),
        ForeignKeyConstraint(
            ["jurisdiction_id", "requester_id"],
            ["requesters.jurisdiction_id", "requesters.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["jurisdiction_id", "webhook_endpoint_id"],
            ["webhook_endpoints.jurisdiction_id", "webhook_endpoints.id"],
            ondelete="CASCADE",
            name="fk_notices_webhook_endpoint",  # the conventional name is too long
        ),
        CheckConstraint(
            "kind IN (" + ", ".join(f"'{k}'" for k in ALL_KINDS) + ")", name="kind_known"
        ),
        CheckConstraint(
            "channel IN (" + ", ".join(f"'{c}'" for c in CHANNELS) + ")", name="channel_known"
        ),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in NOTICE_STATUSES) + ")",
            name="status_known",
        ),
        Index("ix_notices_incident", "jurisdiction_id", "incident_id"),
        Index(
            "ix_notices_owed",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'retry')"),
        ),
        Index("ix_notices_sending", "claimed_at", postgresql_where=text("status = 'sending'")),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    incident_id: Mapped[int | None] = mapped_column(BigInteger)
    requester_id: Mapped[int | None] = mapped_column(BigInteger)
    webhook_endpoint_id: Mapped[int | None] = mapped_column(BigInteger)
    # Where it goes (an address, a phone number, a URL), as it was when the notice was owed.
    recipient: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(16), server_default="en")
    # What the templates need, as it was when the notice was owed.
    context: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Fencing token of the attempt that holds it; only that attempt may record the outcome.
    claim_token: Mapped[Any | None] = mapped_column(UUID(as_uuid=True))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    provider_ref: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class WebhookEndpoint(Base):
    """A URL that gets every status notice of the jurisdiction, signed with its secret."""

    __tablename__ = "webhook_endpoints"

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    # Kept in clear: signing needs it. Shown once when the endpoint is created.
    secret: Mapped[str] = mapped_column(Text)
    kinds: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    description: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class NoticePreference(Base):
    """The kinds of notice a requester asked not to get (no row: they get every kind)."""

    __tablename__ = "notice_preferences"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "requester_id"],
            ["requesters.jurisdiction_id", "requesters.id"],
            ondelete="CASCADE",
        ),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    requester_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    muted_kinds: Mapped[list[str]] = mapped_column(ARRAY(String(16)), server_default="{}")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
