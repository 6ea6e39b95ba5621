"""Reference geography services: jurisdictions, ward maps, assets, and the spatial look-ups.

Plain functions, the session first and keyword-only arguments after it. They flush, never
commit: the caller owns the transaction. Coordinates are WGS84 lon/lat (EPSG:4326) degrees;
distances are metres on the WGS84 spheroid.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import shapely
from geoalchemy2 import Geography
from sqlalchemy import ColumnElement, CursorResult, ScalarSelect, and_, func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import QueryableAttribute, Session

from layers.errors import (
    BadArgument,
    BadGeometry,
    DuplicateJurisdiction,
    DuplicateWardMap,
    OverlappingWardMap,
    UnknownAssetType,
    UnknownJurisdiction,
)
from layers.models import Asset, AssetType, Jurisdiction, Ward, WardMap

# PostgreSQL SQLSTATEs the loaders turn into LayersError.
_UNIQUE_VIOLATION = "23505"
_EXCLUSION_VIOLATION = "23P01"


@dataclass(frozen=True)
class WardRef:
    """A ward found by a look-up."""

    id: int
    code: str
    name: str


@dataclass(frozen=True)
class AssetRef:
    """An asset found by a nearest-neighbour look-up, with its distance in metres."""

    id: int
    asset_type: str
    external_id: str
    name: str | None
    distance_m: float


@dataclass(frozen=True)
class WardFeature:
    """One ward to load: a valid MultiPolygon in EPSG:4326."""

    code: str
    name: str
    geom: shapely.MultiPolygon
    population: int | None = None


@dataclass(frozen=True)
class AssetFeature:
    """One asset to load: a point in EPSG:4326 and free-form JSON attributes."""

    external_id: str
    lon: float
    lat: float
    name: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


# --- jurisdictions -------------------------------------------------------------------------


def get_jurisdiction(session: Session, slug: str) -> Jurisdiction | None:
    """Return the jurisdiction with this slug, or None."""
    return session.scalars(select(Jurisdiction).where(Jurisdiction.slug == slug)).one_or_none()


def list_jurisdictions(session: Session) -> list[Jurisdiction]:
    """Return every jurisdiction, by slug."""
    return list(session.scalars(select(Jurisdiction).order_by(Jurisdiction.slug)))


def create_jurisdiction(
    session: Session, *, slug: str, name: str, timezone: str = "UTC"
) -> Jurisdiction:
    """Return a new jurisdiction, flushed (so it has its id).

    Raises DuplicateJurisdiction when the slug is taken, BadArgument for an unknown timezone.
    """
    if not slug.strip():
        raise BadArgument("slug must not be empty")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadArgument(
            f"timezone {timezone!r} is not an IANA time zone (e.g. 'America/New_York')"
        ) from exc
    jurisdiction = Jurisdiction(slug=slug, name=name, timezone=timezone)
    try:
        with session.begin_nested():
            session.add(jurisdiction)
    except IntegrityError as exc:
        if _sqlstate(exc) == _UNIQUE_VIOLATION:
            raise DuplicateJurisdiction(
                f"a jurisdiction with slug {slug!r} exists already"
            ) from exc
        raise
    return jurisdiction


# --- look-ups ------------------------------------------------------------------------------

_WARD_AT = text(
    """
    SELECT w.id, w.code, w.name
    FROM wards AS w
    JOIN ward_maps AS m ON m.jurisdiction_id = w.jurisdiction_id AND m.id = w.ward_map_id
    WHERE w.jurisdiction_id = CAST(:jid AS smallint)
      AND m.jurisdiction_id = CAST(:jid AS smallint)
      AND m.valid_from <= :at AND (m.valid_to IS NULL OR :at < m.valid_to)
      AND ST_Covers(w.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
    ORDER BY w.code
    LIMIT 1
    """
)


def ward_at(
    session: Session, *, jurisdiction_id: int, lon: float, lat: float, at: datetime
) -> WardRef | None:
    """Return the ward covering (lon, lat) on the ward map in force at ``at``, or None.

    A point on a boundary shared by two wards gets the one whose code sorts first, every time.
    None means no ward of that map covers the point (it is outside the jurisdiction) or no map
    is in force at ``at``. ``at`` must be timezone-aware.
    """
    _check_lon_lat(lon, lat)
    _check_aware(at, "at")
    row = session.execute(
        _WARD_AT, {"jid": jurisdiction_id, "lon": lon, "lat": lat, "at": at}
    ).one_or_none()
    if row is None:
        return None
    return WardRef(id=row.id, code=row.code, name=row.name)


# Ordered by geography KNN (<->) with ST_DWithin as the cut-off: both are served by the gist
# index ix_assets_type_geog on (jurisdiction_id, asset_type, geom::geography). The expressions
# must stay spelled as in that index for the planner to use it.
_NEAREST_ASSET = text(
    """
    SELECT a.id, a.asset_type, a.external_id, a.name,
           ST_Distance(a.geom::geography,
                       ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography) AS distance_m
    FROM assets AS a
    WHERE a.jurisdiction_id = CAST(:jid AS smallint)
      AND a.asset_type = :asset_type
      AND ST_DWithin(a.geom::geography,
                     ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography,
                     :radius_m)
    ORDER BY a.geom::geography <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography
    LIMIT 1
    """
)


def nearest_asset(
    session: Session,
    *,
    jurisdiction_id: int,
    asset_type: str,
    lon: float,
    lat: float,
    radius_m: float,
) -> AssetRef | None:
    """Return the asset of ``asset_type`` nearest to (lon, lat) within ``radius_m`` metres, or None.

    Distances are geodesic metres on the WGS84 spheroid, not degrees.
    """
    _check_lon_lat(lon, lat)
    if not math.isfinite(radius_m) or radius_m < 0:
        raise BadArgument(f"radius_m must be a finite number of metres >= 0, not {radius_m!r}")
    row = session.execute(
        _NEAREST_ASSET,
        {
            "jid": jurisdiction_id,
            "asset_type": asset_type,
            "lon": lon,
            "lat": lat,
            "radius_m": radius_m,
        },
    ).one_or_none()
    if row is None:
        return None
    return AssetRef(
        id=row.id,
        asset_type=row.asset_type,
        external_id=row.external_id,
        name=row.name,
        distance_m=float(row.distance_m),
    )


def ward_column(
    *,
    jurisdiction_id: int | ColumnElement[Any],
    lon: float | ColumnElement[Any],
    lat: float | ColumnElement[Any],
    at: datetime | ColumnElement[Any],
) -> ScalarSelect[Any]:
    """Return :func:`ward_at` as a scalar subquery (``[id, code, name]`` as JSON, or NULL),
    for a caller that reads other things in the same statement (intake: one round trip).
    The arguments may be bound parameters (checked then by the caller)."""
    if isinstance(lon, float | int) and isinstance(lat, float | int):
        _check_lon_lat(lon, lat)
    if isinstance(at, datetime):
        _check_aware(at, "at")
    point = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)
    return (
        select(func.json_build_array(Ward.id, Ward.code, Ward.name))
        .join(
            WardMap,
            and_(WardMap.jurisdiction_id == Ward.jurisdiction_id, WardMap.id == Ward.ward_map_id),
        )
        .where(
            Ward.jurisdiction_id == jurisdiction_id,
            WardMap.jurisdiction_id == jurisdiction_id,
            WardMap.valid_from <= at,
            or_(WardMap.valid_to.is_(None), WardMap.valid_to > at),
            func.ST_Covers(Ward.geom, point),
        )
        .order_by(Ward.code)
        .limit(1)
        .scalar_subquery()
    )


def ward_of(value: Sequence[Any] | None) -> WardRef | None:
    """Return the ward read through :func:`ward_column`."""
    return None if value is None else WardRef(id=int(value[0]), code=value[1], name=value[2])


# Renders as plain ``geography`` (geoalchemy2's default adds the typmod (GEOMETRY,-1)).
_GEOGRAPHY = Geography(geometry_type=None)


def nearest_asset_column(
    *,
    jurisdiction_id: int | ColumnElement[Any] | QueryableAttribute[Any],
    asset_type: ColumnElement[Any] | QueryableAttribute[Any] | str,
    lon: float | ColumnElement[Any],
    lat: float | ColumnElement[Any],
    radius_m: ColumnElement[Any] | QueryableAttribute[Any] | float,
) -> ScalarSelect[Any]:
    """Return :func:`nearest_asset` as a scalar subquery (``[id, type, external id, name,
    distance_m]`` as JSON, or NULL); ``asset_type`` and ``radius_m`` may be columns of the
    caller's statement (intake: the category's); the others may be bound parameters."""
    if isinstance(lon, float | int) and isinstance(lat, float | int):
        _check_lon_lat(lon, lat)
    # Spelled as in ix_assets_type_geog (a plain ::geography: a typmod such as
    # geography(GEOMETRY,-1) adds a coercion the index expression lacks, and every asset of
    # the type was then read and measured), so the KNN order and the cut-off use it.
    here = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326).cast(_GEOGRAPHY)
    there = Asset.geom.cast(_GEOGRAPHY)
    return (
        select(
            func.json_build_array(
                Asset.id,
                Asset.asset_type,
                Asset.external_id,
                Asset.name,
                func.ST_Distance(there, here),
            )
        )
        .where(
            Asset.jurisdiction_id == jurisdiction_id,
            Asset.asset_type == asset_type,
            func.ST_DWithin(there, here, radius_m),
        )
        .order_by(there.op("<->")(here))
        .limit(1)
        .scalar_subquery()
    )


def asset_of(value: Sequence[Any] | None) -> AssetRef | None:
    """Return the asset read through :func:`nearest_asset_column`."""
    if value is None:
        return None
    return AssetRef(
        id=int(value[0]),
        asset_type=value[1],
        external_id=value[2],
        name=value[3],
        distance_m=float(value[4]),
    )


_EXTENT = text(
    """
    SELECT ST_XMin(e) AS min_lon, ST_YMin(e) AS min_lat, ST_XMax(e) AS max_lon,
           ST_YMax(e) AS max_lat
    FROM (
        SELECT ST_Extent(w.geom) AS e
        FROM wards AS w
        JOIN ward_maps AS m ON m.jurisdiction_id = w.jurisdiction_id AND m.id = w.ward_map_id
        WHERE w.jurisdiction_id = CAST(:jid AS smallint)
          AND m.valid_from <= :at AND (m.valid_to IS NULL OR :at < m.valid_to)
    ) AS s
    WHERE e IS NOT NULL
    """
)


def jurisdiction_extent(
    session: Session, *, jurisdiction_id: int, at: datetime
) -> tuple[float, float, float, float] | None:
    """Return (min_lon, min_lat, max_lon, max_lat) of the ward map in force at ``at``, or None.

    None when no ward map (or one without wards) is in force then.
    """
    _check_aware(at, "at")
    row = session.execute(_EXTENT, {"jid": jurisdiction_id, "at": at}).one_or_none()
    if row is None:
        return None
    return (float(row.min_lon), float(row.min_lat), float(row.max_lon), float(row.max_lat))


# --- loading ward maps ---------------------------------------------------------------------

_INSERT_WARDS = text(
    """
    INSERT INTO wards (jurisdiction_id, ward_map_id, code, name, population, geom)
    SELECT CAST(:jid AS smallint), :map_id, t.code, t.name, t.population,
           ST_GeomFromWKB(t.wkb, 4326)
    FROM unnest(CAST(:codes AS text[]), CAST(:names AS text[]),
                CAST(:populations AS integer[]), CAST(:wkbs AS bytea[]))
         AS t(code, name, population, wkb)
    """
)

_OVERLAPPING_MAPS = text(
    """
    SELECT name, valid_from, valid_to
    FROM ward_maps
    WHERE jurisdiction_id = CAST(:jid AS smallint)
      AND tstzrange(valid_from, valid_to) && tstzrange(:valid_from, :valid_to)
    ORDER BY valid_from
    """
)


def load_ward_map(
    session: Session,
    *,
    jurisdiction_id: int,
    name: str,
    valid_from: datetime,
    valid_to: datetime | None,
    wards: Sequence[WardFeature],
    source: str | None = None,
) -> WardMap:
    """Return a new ward map, in force over [valid_from, valid_to), with its wards stored.

    ``valid_to`` None leaves it open-ended. Each ward must be a valid, non-empty MultiPolygon
    in lon/lat (the importers repair invalid polygons). Raises OverlappingWardMap when another
    map of the jurisdiction is in force during part of the period, DuplicateWardMap when the
    name is taken, BadGeometry or BadArgument for unusable input; nothing is stored then.
    """
    _check_aware(valid_from, "valid_from")
    if valid_to is not None:
        _check_aware(valid_to, "valid_to")
        if valid_to <= valid_from:
            raise BadArgument(
                f"valid_to ({valid_to.isoformat()}) must be after valid_from "
                f"({valid_from.isoformat()})"
            )
    if not wards:
        raise BadArgument(f"wards is empty: ward map {name!r} would cover nothing")
    _check_wards(wards)
    jurisdiction = _require_jurisdiction(session, jurisdiction_id)

    ward_map = WardMap(
        jurisdiction_id=jurisdiction_id,
        name=name,
        valid_from=valid_from,
        valid_to=valid_to,
        source=source,
    )
    try:
        with session.begin_nested():
            session.add(ward_map)
    except IntegrityError as exc:
        state = _sqlstate(exc)
        if state == _EXCLUSION_VIOLATION:
            raise OverlappingWardMap(
                _overlap_message(session, jurisdiction, name, valid_from, valid_to)
            ) from exc
        if state == _UNIQUE_VIOLATION:
            raise DuplicateWardMap(
                f"jurisdiction {jurisdiction.slug!r} already has a ward map named {name!r}"
            ) from exc
        raise

    session.execute(
        _INSERT_WARDS,
        {
            "jid": jurisdiction_id,
            "map_id": ward_map.id,
            "codes": [w.code for w in wards],
            "names": [w.name for w in wards],
            "populations": [w.population for w in wards],
            "wkbs": [shapely.to_wkb(w.geom, output_dimension=2) for w in wards],
        },
    )
    return ward_map


def _check_wards(wards: Sequence[WardFeature]) -> None:
    seen: set[str] = set()
    for ward in wards:
        if ward.code in seen:
            raise BadArgument(f"ward code {ward.code!r} appears more than once in wards")
        seen.add(ward.code)
        geom = ward.geom
        if not isinstance(geom, shapely.MultiPolygon):
            raise BadGeometry(
                f"ward {ward.code!r}: geom must be a MultiPolygon, not {geom.geom_type}"
            )
        if geom.is_empty:
            raise BadGeometry(f"ward {ward.code!r}: geom is empty")
        if not geom.is_valid:
            raise BadGeometry(
                f"ward {ward.code!r}: geom is invalid ({shapely.is_valid_reason(geom)}); "
                "repair it first (layers.importers.read_wards does)"
            )
        min_x, min_y, max_x, max_y = geom.bounds
        if min_x < -180 or max_x > 180 or min_y < -90 or max_y > 90:
            raise BadGeometry(
                f"ward {ward.code!r}: coordinates {geom.bounds} are not lon/lat degrees; "
                "reproject to EPSG:4326 first"
            )


def _overlap_message(
    session: Session,
    jurisdiction: Jurisdiction,
    name: str,
    valid_from: datetime,
    valid_to: datetime | None,
) -> str:
    others = session.execute(
        _OVERLAPPING_MAPS,
        {"jid": jurisdiction.id, "valid_from": valid_from, "valid_to": valid_to},
    ).all()
    listed = (
        ", ".join(f"{o.name!r} ({_period(o.valid_from, o.valid_to)})" for o in others)
        or "another ward map"
    )
    return (
        f"ward map {name!r} ({_period(valid_from, valid_to)}) overlaps {listed} of "
        f"jurisdiction {jurisdiction.slug!r}: only one ward map can be in force at a time; "
        "end the old map's period (valid_to) before the new one starts"
    )


def _period(start: datetime, end: datetime | None) -> str:
    return f"{start.isoformat()} to {end.isoformat() if end else 'open-ended'}"


# --- loading assets ------------------------------------------------------------------------


def ensure_asset_type(session: Session, *, jurisdiction_id: int, code: str, name: str) -> None:
    """Create the asset type, or rename it when it exists."""
    _require_jurisdiction(session, jurisdiction_id)
    session.execute(
        text(
            """
            INSERT INTO asset_types (jurisdiction_id, code, name)
            VALUES (CAST(:jid AS smallint), :code, :name)
            ON CONFLICT (jurisdiction_id, code) DO UPDATE SET name = EXCLUDED.name
            """
        ),
        {"jid": jurisdiction_id, "code": code, "name": name},
    )


_UPSERT_ASSETS = text(
    """
    INSERT INTO assets (jurisdiction_id, asset_type, external_id, name, attributes, geom)
    SELECT CAST(:jid AS smallint), :asset_type, t.external_id, t.name,
           CAST(t.attributes AS jsonb), ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326)
    FROM unnest(CAST(:ids AS text[]), CAST(:names AS text[]), CAST(:attrs AS text[]),
                CAST(:lons AS float8[]), CAST(:lats AS float8[]))
         AS t(external_id, name, attributes, lon, lat)
    ON CONFLICT (jurisdiction_id, asset_type, external_id) DO UPDATE
    SET name = EXCLUDED.name, attributes = EXCLUDED.attributes, geom = EXCLUDED.geom
    """
)


def load_assets(
    session: Session,
    *,
    jurisdiction_id: int,
    asset_type: str,
    assets: Iterable[AssetFeature],
    batch_size: int = 5000,
) -> int:
    """Return how many asset rows were inserted or updated.

    Upserts on (jurisdiction, asset type, external id): loading a newer file of the same layer
    moves and renames assets in place. Within one call the last feature with an id wins.
    Raises UnknownAssetType when the type is not defined (see ensure_asset_type) and
    BadGeometry for a coordinate that is not lon/lat.
    """
    if batch_size < 1:
        raise BadArgument(f"batch_size must be at least 1, not {batch_size}")
    _require_jurisdiction(session, jurisdiction_id)
    if session.get(AssetType, (jurisdiction_id, asset_type)) is None:
        raise UnknownAssetType(
            f"asset type {asset_type!r} is not defined for jurisdiction {jurisdiction_id}; "
            "create it with ensure_asset_type first"
        )
    written = 0
    for batch in _batches(assets, batch_size):
        # One row per id per statement: ON CONFLICT cannot touch a row twice.
        by_id: dict[str, AssetFeature] = {}
        for asset in batch:
            _check_asset(asset)
            by_id[asset.external_id] = asset
        rows = list(by_id.values())
        result = session.execute(
            _UPSERT_ASSETS,
            {
                "jid": jurisdiction_id,
                "asset_type": asset_type,
                "ids": [a.external_id for a in rows],
                "names": [a.name for a in rows],
                "attrs": [json.dumps(a.attributes, default=str) for a in rows],
                "lons": [float(a.lon) for a in rows],
                "lats": [float(a.lat) for a in rows],
            },
        )
        # INSERT … ON CONFLICT DO UPDATE counts inserted and updated rows alike.
        written += cast("CursorResult[Any]", result).rowcount
    return written


def _check_asset(asset: AssetFeature) -> None:
    if not asset.external_id:
        raise BadArgument("an asset has an empty external_id")
    lon, lat = asset.lon, asset.lat
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise BadGeometry(
            f"asset {asset.external_id!r}: ({lon}, {lat}) is not a lon/lat position; "
            "reproject to EPSG:4326 first"
        )


def _batches(items: Iterable[AssetFeature], size: int) -> Iterator[list[AssetFeature]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


# --- helpers -------------------------------------------------------------------------------


def _require_jurisdiction(session: Session, jurisdiction_id: int) -> Jurisdiction:
    jurisdiction = session.get(Jurisdiction, jurisdiction_id)
    if jurisdiction is None:
        raise UnknownJurisdiction(f"no jurisdiction has id {jurisdiction_id}")
    return jurisdiction


def _check_lon_lat(lon: float, lat: float) -> None:
    if not (math.isfinite(lon) and -180 <= lon <= 180):
        raise BadArgument(f"lon must be a longitude in degrees (-180..180), not {lon!r}")
    if not (math.isfinite(lat) and -90 <= lat <= 90):
        raise BadArgument(f"lat must be a latitude in degrees (-90..90), not {lat!r}")


def _check_aware(moment: datetime, argument: str) -> None:
    # A naive time would be read in the database session's zone: refuse rather than guess.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise BadArgument(
            f"{argument} must be timezone-aware (got naive {moment.isoformat()}); "
            "attach the jurisdiction's zone, e.g. ZoneInfo('America/New_York')"
        )


def _sqlstate(exc: IntegrityError) -> str | None:
    state = getattr(exc.orig, "sqlstate", None)
    return state if isinstance(state, str) else None


# --- the map pages' own basemap --------------------------------------------------------------


@dataclass(frozen=True)
class WardOutline:
    """A ward's code, name and outline (a GeoJSON geometry in lon/lat), for drawing."""

    code: str
    name: str
    geometry: dict[str, Any]


_WARD_OUTLINES = text(
    """
    SELECT w.code, w.name,
           ST_AsGeoJSON(ST_SimplifyPreserveTopology(w.geom, :tolerance), 6) AS geojson
    FROM wards AS w
    JOIN ward_maps AS m ON m.jurisdiction_id = w.jurisdiction_id AND m.id = w.ward_map_id
    WHERE w.jurisdiction_id = CAST(:jid AS smallint)
      AND m.valid_from <= :at AND (m.valid_to IS NULL OR :at < m.valid_to)
      AND w.geom && ST_MakeEnvelope(:west, :south, :east, :north, 4326)
    ORDER BY w.code
    """
)


def ward_outlines(
    session: Session,
    *,
    jurisdiction_id: int,
    at: datetime,
    bbox: tuple[float, float, float, float],
    tolerance_deg: float,
) -> list[WardOutline]:
    """Return the wards of the map in force at ``at`` that touch ``bbox`` (west, south, east,
    north), outlines simplified to ``tolerance_deg`` degrees (a drawing tolerance, not a
    distance), ordered by code."""
    _check_aware(at, "at")
    west, south, east, north = bbox
    rows = session.execute(
        _WARD_OUTLINES,
        {
            "jid": jurisdiction_id,
            "at": at,
            "west": west,
            "south": south,
            "east": east,
            "north": north,
            "tolerance": tolerance_deg,
        },
    ).all()
    return [WardOutline(r.code, r.name, json.loads(r.geojson)) for r in rows]


def ward_codes(session: Session, *, jurisdiction_id: int) -> dict[int, str]:
    """Return {ward id: ward code} for every ward of every ward map of the jurisdiction (a
    record keeps the ward id of the map it was placed on)."""
    rows = session.execute(
        text("SELECT id, code FROM wards WHERE jurisdiction_id = :jid"), {"jid": jurisdiction_id}
    )
    return {int(r.id): str(r.code) for r in rows}
