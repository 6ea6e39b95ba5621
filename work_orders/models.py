"""Service categories and incidents (the real-world problems that reports are about), the
requesters who hear about them (contact details that never leave the staff side) and their
subscriptions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
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
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo311.kernel.database import Base
from work_orders.lifecycle import STATUSES

INCIDENT_STATUSES = STATUSES
RESOLUTION_CODES = (
    "repaired",
    "replaced",
    "cleaned",
    "removed",
    "temporary_fix",
    "no_issue_found",
    "not_city_asset",
    "referred",
)


class ServiceCategory(Base):
    """What a resident can report: its code, group, the asset type it concerns and its targets."""

    __tablename__ = "service_categories"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "asset_type"],
            ["asset_types.jurisdiction_id", "asset_types.code"],
        ),
        CheckConstraint("dedup_radius_m >= 0", name="dedup_radius_nonneg"),
        CheckConstraint("snap_radius_m >= 0", name="snap_radius_nonneg"),
        CheckConstraint("sla_hours > 0", name="sla_hours_positive"),
        ForeignKeyConstraint(
            ["jurisdiction_id", "calendar_code"],
            ["business_calendars.jurisdiction_id", "business_calendars.code"],
            name="fk_service_categories_calendar",  # the conventional name is too long
        ),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    group_code: Mapped[str] = mapped_column(String(64))
    asset_type: Mapped[str | None] = mapped_column(String(64))
    dedup_radius_m: Mapped[float] = mapped_column(Float, server_default="50")
    # Duplicate detection per category (geo311.resident.dedup); NULL takes the Settings.dedup
    # default.
    dedup_enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    dedup_threshold: Mapped[float | None] = mapped_column(Float)
    dedup_open_window_h: Mapped[float | None] = mapped_column(Float)
    dedup_reopen_window_h: Mapped[float | None] = mapped_column(Float)
    dedup_weights: Mapped[dict[str, float]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    snap_radius_m: Mapped[float] = mapped_column(Float, server_default="30")
    sla_hours: Mapped[float] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    # None: the SLA counts wall-clock hours; else only the calendar's open hours count.
    calendar_code: Mapped[str | None] = mapped_column(String(64))


class BusinessCalendar(Base):
    """Weekly opening hours (local time) and holidays that an SLA can count in."""

    __tablename__ = "business_calendars"

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64))
    # {"mon": [["08:00", "17:00"]], …}; a missing weekday is closed.
    hours: Mapped[dict[str, Any]] = mapped_column(JSONB)
    holidays: Mapped[list[date]] = mapped_column(ARRAY(Date), server_default="{}")


class Incident(Base):
    """One real-world problem; the reports of it point here."""

    __tablename__ = "incidents"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "category_code"],
            ["service_categories.jurisdiction_id", "service_categories.code"],
        ),
        ForeignKeyConstraint(["jurisdiction_id", "ward_id"], ["wards.jurisdiction_id", "wards.id"]),
        ForeignKeyConstraint(
            ["jurisdiction_id", "asset_id"], ["assets.jurisdiction_id", "assets.id"]
        ),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in INCIDENT_STATUSES) + ")",
            name="status_known",
        ),
        # (geom, closed-or-infinity): bbox searches as before, and dedup's candidate search
        # skips incidents closed long ago inside the index (geo311.resident.dedup.placing).
        Index(
            "ix_incidents_geom_closed",
            "geom",
            text("(COALESCE(closed_at, 'infinity'::timestamptz))"),
            postgresql_using="gist",
        ),
        Index("ix_incidents_status", "jurisdiction_id", "status"),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    category_code: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), server_default="new")
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    ward_id: Mapped[int | None] = mapped_column(Integer)
    asset_id: Mapped[int | None] = mapped_column(BigInteger)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    version: Mapped[int] = mapped_column(Integer, server_default="1")


class Requester(Base):
    """Who sent a report: contact details that never leave the staff side."""

    __tablename__ = "requesters"

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    email: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(16), server_default="en")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Subscription(Base):
    """A requester who hears about an incident: its original reporter and every duplicate's."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "incident_id"],
            ["incidents.jurisdiction_id", "incidents.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["jurisdiction_id", "requester_id"],
            ["requesters.jurisdiction_id", "requesters.id"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("jurisdiction_id", "incident_id", "requester_id"),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    incident_id: Mapped[int] = mapped_column(BigInteger)
    requester_id: Mapped[int] = mapped_column(BigInteger)
    report_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuditEvent(Base):
    """One thing that happened to an incident, work order or report: who, when, from, to, why."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_entity", "jurisdiction_id", "entity", "entity_id", "at"),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    # autoincrement=True names the identity column of the composite key, so a flush of many
    # events (a day plan's) is one INSERT … RETURNING, not one statement per event.
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(Text)
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str | None] = mapped_column(String(32))
    # Staff-only: why, in the staff's own words (or a rule's code). Never published.
    reason: Mapped[str | None] = mapped_column(Text)
    # What residents and Open311 clients are told, chosen on purpose (a resolution's public
    # wording, a resident's own comment); an event with neither this nor a to_state is
    # staff-only.
    public_note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WorkOrder(Base):
    """The job that fixes an incident: its queue, crew, SLA clock and how it was completed.

    The SLA flags are computed in SQL from ``due_at``, ``at_risk_at`` and the clock, which
    stops at ``paused_at`` while on hold and at ``resolved_at`` once the work is done (see
    ``work_orders.queries.sla_breached``).
    """

    __tablename__ = "work_orders"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "incident_id"],
            ["incidents.jurisdiction_id", "incidents.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["jurisdiction_id", "after_photo_id"], ["photos.jurisdiction_id", "photos.id"]
        ),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")", name="status_known"
        ),
        CheckConstraint(
            "resolution_code IS NULL OR resolution_code IN ("
            + ", ".join(f"'{c}'" for c in RESOLUTION_CODES)
            + ")",
            name="resolution_code_known",
        ),
        CheckConstraint("at_risk_at <= due_at", name="at_risk_before_due"),
        Index("ix_work_orders_incident", "jurisdiction_id", "incident_id"),
        Index("ix_work_orders_queue", "jurisdiction_id", "department", "status"),
        Index("ix_work_orders_due", "jurisdiction_id", "due_at"),
        Index("ix_work_orders_crew", "jurisdiction_id", "crew_id"),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    incident_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(32), server_default="new")
    # The queue it waits in: the category's group, or the department it was transferred to.
    department: Mapped[str] = mapped_column(String(64))
    # Set by dispatch (no foreign key until crews are stored).
    crew_id: Mapped[int | None] = mapped_column(BigInteger)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    at_risk_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hold_reason: Mapped[str | None] = mapped_column(Text)
    held_from: Mapped[str | None] = mapped_column(String(32))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_by: Mapped[str | None] = mapped_column(Text)
    resolution_code: Mapped[str | None] = mapped_column(String(32))
    completion_note: Mapped[str | None] = mapped_column(Text)
    after_photo_id: Mapped[int | None] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
