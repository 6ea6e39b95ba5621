"""Reports: one resident's report each, attached to an incident.

The people who sent them (``work_orders.models.Requester``) belong to work orders, which owe
them notices; the photos (``geo311.kernel.media.models.Photo``) to the kernel's media."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
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

from geo311.kernel.database import Base

CHANNELS = ("web", "api", "open311", "phone", "import")
LOCATION_SOURCES = ("pin", "exif", "address", "import")
# new: opened its incident; matched: joined an open one; reopened: joined and reopened a closed
# one; off: dedup is switched off for the category (it opened its own incident).
DEDUP_DECISIONS = ("new", "matched", "reopened", "off")


class Report(Base):
    """One resident's report, with its own public tracking id, attached to an incident."""

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("jurisdiction_id", "tracking_id"),
        ForeignKeyConstraint(
            ["jurisdiction_id", "incident_id"], ["incidents.jurisdiction_id", "incidents.id"]
        ),
        ForeignKeyConstraint(
            ["jurisdiction_id", "requester_id"], ["requesters.jurisdiction_id", "requesters.id"]
        ),
        ForeignKeyConstraint(
            ["jurisdiction_id", "category_code"],
            ["service_categories.jurisdiction_id", "service_categories.code"],
        ),
        ForeignKeyConstraint(["jurisdiction_id", "ward_id"], ["wards.jurisdiction_id", "wards.id"]),
        ForeignKeyConstraint(
            ["jurisdiction_id", "asset_id"], ["assets.jurisdiction_id", "assets.id"]
        ),
        CheckConstraint(
            "channel IN (" + ", ".join(f"'{c}'" for c in CHANNELS) + ")", name="channel_known"
        ),
        CheckConstraint(
            "location_source IN (" + ", ".join(f"'{s}'" for s in LOCATION_SOURCES) + ")",
            name="location_source_known",
        ),
        CheckConstraint("char_length(description) <= 4000", name="description_length"),
        ForeignKeyConstraint(
            ["jurisdiction_id", "matched_report_id"], ["reports.jurisdiction_id", "reports.id"]
        ),
        CheckConstraint(
            "dedup_decision IN (" + ", ".join(f"'{d}'" for d in DEDUP_DECISIONS) + ")",
            name="dedup_decision_known",
        ),
        Index("ix_reports_geom", "geom", postgresql_using="gist"),
        Index("ix_reports_incident", "jurisdiction_id", "incident_id"),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tracking_id: Mapped[str] = mapped_column(String(32))
    incident_id: Mapped[int] = mapped_column(BigInteger)
    requester_id: Mapped[int | None] = mapped_column(BigInteger)
    category_code: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, server_default="")
    address: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    location_source: Mapped[str] = mapped_column(String(16))
    ward_id: Mapped[int | None] = mapped_column(Integer)
    asset_id: Mapped[int | None] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(16), server_default="en")
    external_id: Mapped[str | None] = mapped_column(Text)
    # Answers to the category's questions (Open311 attributes): {code: value or [values]}.
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # What duplicate detection decided at intake, and why (geo311.resident.dedup): NULL for reports
    # stored without it. ``matched_report_id`` is the report of the joined incident nearest to
    # this one; ``dedup_signals`` lists the signals of the best candidate and which fired.
    dedup_decision: Mapped[str | None] = mapped_column(String(16))
    dedup_score: Mapped[float | None] = mapped_column(Float)
    dedup_signals: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    matched_report_id: Mapped[int | None] = mapped_column(BigInteger)
