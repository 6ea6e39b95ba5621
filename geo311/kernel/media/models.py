"""The photos table: a photo's private original, its metadata-free public copy and thumbnail.

A report's photos (intake) and a work order's after-photo (work orders) are rows here, so both
reach it downward.
"""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from geo311.kernel.database import Base


class Photo(Base):
    """A photo: the private original and its metadata-free public copy and thumbnail."""

    __tablename__ = "photos"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "report_id"],
            ["reports.jurisdiction_id", "reports.id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("kind IN ('report', 'after')", name="kind_known"),
        Index("ix_photos_report", "jurisdiction_id", "report_id"),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    report_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16), server_default="report")
    original_key: Mapped[str] = mapped_column(Text)
    original_type: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(Text)
    thumb_key: Mapped[str] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    phash: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    exif_geom: Mapped[WKBElement | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False)
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
