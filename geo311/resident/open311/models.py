"""Open311's own tables: application API keys, category attributes, and what each POST left.

Also the indexes that the Open311 queries need on other packages' tables (reports by time,
the audit trail by time), declared here so those packages' models stay as they are.
"""

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
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo311.kernel.database import Base
from geo311.resident.intake.models import Report
from geo311.resident.open311.attributes import DATATYPES, LIST_DATATYPES
from work_orders.models import AuditEvent


class ApiKey(Base):
    """The key of one application allowed to POST requests; only its SHA-256 is stored."""

    __tablename__ = "open311_api_keys"

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    application: Mapped[str] = mapped_column(Text)
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ServiceAttribute(Base):
    """One question of a category's service definition (Open311 ``attribute``)."""

    __tablename__ = "service_attributes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "category_code"],
            ["service_categories.jurisdiction_id", "service_categories.code"],
            ondelete="CASCADE",
        ),
        CheckConstraint(
            "datatype IN (" + ", ".join(f"'{d}'" for d in DATATYPES) + ")",
            name="datatype_known",
        ),
        CheckConstraint("jsonb_typeof(choices) = 'array'", name="choices_array"),
        CheckConstraint(
            "datatype IN (" + ", ".join(f"'{d}'" for d in LIST_DATATYPES) + ") "
            "OR jsonb_array_length(choices) = 0",
            name="choices_only_for_lists",
        ),
        CheckConstraint("display_order > 0", name="display_order_positive"),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    category_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    datatype: Mapped[str] = mapped_column(String(16))
    variable: Mapped[bool] = mapped_column(Boolean, server_default="true")
    required: Mapped[bool] = mapped_column(Boolean, server_default="false")
    display_order: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    datatype_description: Mapped[str | None] = mapped_column(Text)
    # [{"key": ..., "name": ...}, ...] for the list datatypes, [] otherwise.
    choices: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))


class Submission(Base):
    """What an Open311 POST added to its report: the token, the application, a media URL."""

    __tablename__ = "open311_submissions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "report_id"],
            ["reports.jurisdiction_id", "reports.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["jurisdiction_id", "api_key_id"],
            ["open311_api_keys.jurisdiction_id", "open311_api_keys.id"],
        ),
        UniqueConstraint("jurisdiction_id", "token"),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    report_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    token: Mapped[str] = mapped_column(String(64))
    api_key_id: Mapped[int] = mapped_column(BigInteger)
    media_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# GET requests filters and orders by requested_datetime; servicerequestupdates reads the
# audit trail by time across all incidents.
Index("ix_reports_reported_at", Report.jurisdiction_id, Report.reported_at)
Index("ix_audit_events_at", AuditEvent.jurisdiction_id, AuditEvent.entity, AuditEvent.at)
