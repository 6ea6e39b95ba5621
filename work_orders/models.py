"""Service categories and incidents (the real-world problems that reports are about)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
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
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo311.database import Base

INCIDENT_STATUSES = (
    "new",
    "triaged",
    "assigned",
    "scheduled",
    "in_progress",
    "completed",
    "closed",
    "cancelled",
    "on_hold",
    "transferred",
    "reopened",
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
    # Duplicate detection per category (geo311.dedup); NULL takes the Settings.dedup default.
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
        # skips incidents closed long ago inside the index (geo311.dedup.service).
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
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(Text)
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
