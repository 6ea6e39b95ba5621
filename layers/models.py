"""Reference geography: jurisdictions, versioned ward maps and their wards, asset types, assets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from geo311.kernel.database import Base


class Jurisdiction(Base):
    """A city (or county, or agency) that runs geo311; every large table is keyed by it."""

    __tablename__ = "jurisdictions"

    id: Mapped[int] = mapped_column(SmallInteger, Identity(), primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WardMap(Base):
    """One version of the ward boundaries, in force from ``valid_from`` until ``valid_to``."""

    __tablename__ = "ward_maps"
    __table_args__ = (
        UniqueConstraint("jurisdiction_id", "name"),
        # Two maps in force at once would make "the ward of this point" ambiguous.
        ExcludeConstraint(
            ("jurisdiction_id", "="),
            (text("tstzrange(valid_from, valid_to)"), "&&"),
            name="ex_ward_maps_no_overlap",
            using="gist",
        ),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Ward(Base):
    """A ward (council district, precinct …) polygon of one ward map."""

    __tablename__ = "wards"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "ward_map_id"],
            ["ward_maps.jurisdiction_id", "ward_maps.id"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("jurisdiction_id", "ward_map_id", "code"),
        Index("ix_wards_geom", "geom", postgresql_using="gist"),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    ward_map_id: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Text)
    population: Mapped[int | None] = mapped_column(Integer)
    geom: Mapped[WKBElement] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)
    )


class AssetType(Base):
    """A kind of city asset a report can be about (streetlight, hydrant, tree …)."""

    __tablename__ = "asset_types"

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)


class Asset(Base):
    """One asset on the ground, found by nearest-neighbour search from a report's point."""

    __tablename__ = "assets"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "asset_type"],
            ["asset_types.jurisdiction_id", "asset_types.code"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("jurisdiction_id", "asset_type", "external_id"),
        # Serves both ST_DWithin(geography) and KNN ordering by geography distance, per type.
        Index(
            "ix_assets_type_geog",
            "jurisdiction_id",
            "asset_type",
            text("(geom::geography)"),
            postgresql_using="gist",
        ),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    asset_type: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
