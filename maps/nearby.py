"""The open incidents near a pin that a new report of a category could be about, by the same
rule dedup uses (the category's group, its radius, its open window), for the report page to
show before the resident sends a duplicate. Public fields only: no contact, no description."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from geo311.kernel.settings import DedupSettings
from geo311.resident.dedup import placing, scoring
from geo311.resident.intake import service as intake_service
from geo311.resident.intake.models import Report
from maps.schemas import NearbyIncidentOut, NearbyOut
from maps.track import MEDIA_PATH
from work_orders import categories as category_service


def nearby_open(
    session: Session,
    *,
    jurisdiction_id: int,
    category_code: str,
    lon: float,
    lat: float,
    dedup: DedupSettings,
    now: datetime,
    limit: int = 10,
) -> NearbyOut:
    """Return the open incidents a report of ``category_code`` at (lon, lat) could join,
    nearest first; none when the category is unknown or its dedup is off."""
    category = category_service.get_category(
        session, jurisdiction_id=jurisdiction_id, code=category_code
    )
    if category is None:
        return NearbyOut(radius_m=0, incidents=[])
    rule = placing.rule_of(category, dedup)
    if not rule.enabled:
        return NearbyOut(radius_m=rule.radius_m, incidents=[])
    candidates = placing.find_candidates(
        session,
        jurisdiction_id=jurisdiction_id,
        group_code=category.group_code,
        lon=lon,
        lat=lat,
        radius_m=rule.radius_m,
        asset_id=None,
        closed_since=now,
    )
    live = sorted(
        (c for c in candidates if not c.closed and scoring.is_live(c, rule, now)),
        key=lambda c: (c.distance_m, c.incident_id),
    )[:limit]
    names: dict[str, str] = {}
    out = []
    for candidate in live:
        first = session.scalar(
            select(Report.tracking_id)
            .where(
                Report.jurisdiction_id == jurisdiction_id,
                Report.incident_id == candidate.incident_id,
            )
            .order_by(Report.reported_at, Report.id)
            .limit(1)
        )
        if first is None:
            continue
        view = intake_service.report_view(
            session, jurisdiction_id=jurisdiction_id, tracking_id=first, media_url=MEDIA_PATH
        )
        if candidate.category_code not in names:
            found = category_service.get_category(
                session, jurisdiction_id=jurisdiction_id, code=candidate.category_code
            )
            names[candidate.category_code] = found.name if found else candidate.category_code
        lon_lat = view.location.coordinates
        out.append(
            NearbyIncidentOut(
                tracking_id=view.tracking_id,
                category=candidate.category_code,
                category_name=names[candidate.category_code],
                status=candidate.status,
                distance_m=round(candidate.distance_m, 1),
                opened_at=view.reported_at,
                report_count=view.report_count,
                photo_url=view.photo_url,
                lon=lon_lat[0],
                lat=lon_lat[1],
            )
        )
    return NearbyOut(radius_m=rule.radius_m, incidents=out)
