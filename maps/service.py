"""The data behind the map pages, read through the owning packages' query functions: wards
(layers), streets (dispatch's road network), incidents (intake's public view)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from dispatch import roads as dispatch_roads
from geo311.kernel.errors import FieldError, ValidationFailed
from geo311.resident.intake import service as intake_service
from layers import service as layers_service
from maps.schemas import (
    BasemapOut,
    FeatureCollection,
    MapIncidentOut,
    MapIncidentsOut,
)
from work_orders import categories as category_service

BBox = tuple[float, float, float, float]

# A drawing tolerance: about one pixel when the box fills a 1500-pixel-wide map.
_PIXELS_ACROSS = 1500
# The basemap answers for the city's extent widened by this share on each side, no further.
_EXTENT_MARGIN = 0.1


def parse_bbox(raw: str) -> BBox:
    """Return (west, south, east, north) from "west,south,east,north" in degrees, or refuse
    with a 422 naming ``bbox``."""
    parts = raw.split(",")
    message = None
    values: list[float] = []
    if len(parts) != 4:
        message = "bbox is four numbers: west,south,east,north (degrees)"
    else:
        try:
            values = [float(p) for p in parts]
        except ValueError:
            message = "bbox holds something that is not a number"
    if message is None:
        west, south, east, north = values
        if not all(math.isfinite(v) for v in values):
            message = "bbox values must be finite numbers"
        elif not (-180 <= west < east <= 180):
            message = "bbox needs -180 <= west < east <= 180"
        elif not (-90 <= south < north <= 90):
            message = "bbox needs -90 <= south < north <= 90"
    if message is not None:
        raise ValidationFailed(message, errors=[FieldError("bbox", message, "invalid_bbox")])
    return values[0], values[1], values[2], values[3]


def _clip(bbox: BBox, extent: BBox) -> BBox | None:
    west, south, east, north = extent
    dx, dy = (east - west) * _EXTENT_MARGIN, (north - south) * _EXTENT_MARGIN
    clipped = (
        max(bbox[0], west - dx),
        max(bbox[1], south - dy),
        min(bbox[2], east + dx),
        min(bbox[3], north + dy),
    )
    if clipped[0] >= clipped[2] or clipped[1] >= clipped[3]:
        return None
    return clipped


def basemap(
    session: Session,
    *,
    jurisdiction_id: int,
    bbox: BBox | None,
    at: datetime,
    max_streets: int,
) -> BasemapOut:
    """Return the ward outlines (map in force at ``at``) and street lines inside ``bbox``,
    clipped to the city's extent (the whole extent when ``bbox`` is None), simplified for
    drawing, at most ``max_streets`` street lines."""
    extent = layers_service.jurisdiction_extent(session, jurisdiction_id=jurisdiction_id, at=at)
    box = None if extent is None else (_clip(bbox, extent) if bbox is not None else extent)
    if box is None:  # no wards loaded, or a box away from the city: nothing to draw there
        empty = FeatureCollection(features=[])
        return BasemapOut(
            bbox=bbox or (0.0, 0.0, 0.0, 0.0), wards=empty, streets=empty, streets_truncated=False
        )
    tolerance_deg = max(box[2] - box[0], box[3] - box[1]) / _PIXELS_ACROSS
    wards = layers_service.ward_outlines(
        session, jurisdiction_id=jurisdiction_id, at=at, bbox=box, tolerance_deg=tolerance_deg
    )
    streets, truncated = dispatch_roads.street_lines(
        session,
        jurisdiction_id=jurisdiction_id,
        bbox=box,
        tolerance_deg=tolerance_deg,
        limit=max_streets,
    )
    return BasemapOut(
        bbox=box,
        wards=FeatureCollection(
            features=[
                {
                    "type": "Feature",
                    "geometry": w.geometry,
                    "properties": {"code": w.code, "name": w.name},
                }
                for w in wards
            ]
        ),
        streets=FeatureCollection(
            features=[
                {
                    "type": "Feature",
                    "geometry": s.geometry,
                    "properties": {"name": s.name, "highway": s.highway},
                }
                for s in streets
            ]
        ),
        streets_truncated=truncated,
    )


def map_incidents(
    session: Session, *, jurisdiction_id: int, now: datetime, fixed_days: int, limit: int
) -> MapIncidentsOut:
    """Return the public map's markers: open incidents and those fixed in the last
    ``fixed_days`` days, newest first, at most ``limit``."""
    names = {
        c.code: c.name
        for c in category_service.list_categories(session, jurisdiction_id=jurisdiction_id)
    }
    rows = intake_service.public_incidents(
        session,
        jurisdiction_id=jurisdiction_id,
        fixed_since=now - timedelta(days=fixed_days),
        limit=limit + 1,
    )
    return MapIncidentsOut(
        incidents=[
            MapIncidentOut(
                tracking_id=r.tracking_id,
                category=r.category_code,
                category_name=names.get(r.category_code, r.category_code),
                status=r.status,
                fixed=r.fixed,
                lon=r.lon,
                lat=r.lat,
                description=r.description,
                report_count=r.report_count,
                opened_at=r.opened_at,
                closed_at=r.closed_at,
            )
            for r in rows[:limit]
        ],
        fixed_days=fixed_days,
        truncated=len(rows) > limit,
    )
