"""Helpers shared by the dedup tests: quiet places in the demo city, points at a distance,
reports submitted through the intake service at a chosen time."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pyproj import Geod
from sqlalchemy import text

from geo311.flows import submit_report
from geo311.kernel.database import Database
from geo311.kernel.media.store import LocalMediaStore
from geo311.kernel.settings import DedupSettings, IntakeSettings, MediaSettings
from geo311.resident.intake import service as intake_service
from geo311.resident.intake.models import Report

GEOD = Geod(ellps="WGS84")


def quiet_point(db: Database, *, clear_m: float = 150.0, nth: int = 0) -> tuple[float, float]:
    """Return (lon, lat) of a point inside a ward with no incident within ``clear_m`` metres.

    ``nth`` picks another such point (each one farther than ``clear_m`` from the others)."""
    with db.session() as s:
        # The city named in every part, so the query stays on one shard on Citus.
        jid = s.execute(text("SELECT jurisdiction_id FROM wards LIMIT 1")).scalar_one()
        rows = s.execute(
            text(
                """
                WITH box AS (SELECT ST_Extent(geom) AS e FROM wards WHERE jurisdiction_id = :jid),
                pts AS (
                    SELECT ST_SetSRID(ST_MakePoint(
                        ST_XMin(e) + (ST_XMax(e) - ST_XMin(e)) * x / 40.0,
                        ST_YMin(e) + (ST_YMax(e) - ST_YMin(e)) * y / 40.0), 4326) AS g
                    FROM box, generate_series(1, 39) x, generate_series(1, 39) y
                )
                SELECT ST_X(g), ST_Y(g) FROM pts
                WHERE EXISTS (SELECT 1 FROM wards w
                              WHERE w.jurisdiction_id = :jid AND ST_Covers(w.geom, pts.g))
                  AND NOT EXISTS (
                      SELECT 1 FROM incidents i
                      WHERE i.jurisdiction_id = :jid
                        AND ST_DWithin(i.geom::geography, pts.g::geography, :clear))
                ORDER BY ST_X(g), ST_Y(g)
                """
            ),
            {"clear": clear_m, "jid": jid},
        ).all()
    chosen: list[tuple[float, float]] = []
    for lon, lat in rows:
        if all(GEOD.inv(lon, lat, x, y)[2] > clear_m for x, y in chosen):
            chosen.append((lon, lat))
        if len(chosen) > nth:
            return chosen[nth]
    raise AssertionError("the demo city has no quiet point left")


def offset(lon: float, lat: float, metres: float, azimuth: float = 90.0) -> tuple[float, float]:
    """Return the point ``metres`` away from (lon, lat) towards ``azimuth`` (degrees)."""
    lon2, lat2, _ = GEOD.fwd(lon, lat, azimuth, metres)
    return lon2, lat2


def submit(
    db: Database,
    media_root: Path,
    *,
    category: str,
    lon: float,
    lat: float,
    now: datetime,
    photo: bytes | None = None,
    dedup: DedupSettings | None = None,
    **fields: str,
) -> Report:
    """Store a report as the API does (intake, then assignment) at ``now`` and return it
    (committed)."""
    form: dict[str, str | None] = {"category": category, "lat": str(lat), "lon": str(lon)}
    form.update(fields)
    draft = intake_service.parse_report_form(form, channel="api", settings=IntakeSettings())
    with db.sessions() as session:
        report = submit_report.submit(
            session,
            jurisdiction_id=jurisdiction_id(db),
            jurisdiction_slug="demo",
            draft=draft,
            photo=photo,
            media=LocalMediaStore(media_root),
            media_settings=MediaSettings(),
            now=now,
            dedup_settings=dedup,
        ).report
        session.commit()
        session.refresh(report)
        session.expunge(report)
        return report


def jurisdiction_id(db: Database) -> int:
    with db.session() as s:
        return int(s.execute(text("SELECT id FROM jurisdictions WHERE slug = 'demo'")).scalar_one())


def one(db: Database, sql: str, **params: Any) -> Any:
    with db.session() as s:
        return s.execute(text(sql), params).scalar_one()


def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    with db.session() as s:
        return list(s.execute(text(sql), params).all())


def execute(db: Database, sql: str, **params: Any) -> None:
    with db.session() as s:
        s.execute(text(sql), params)


def report_a_pothole(
    db: Database,
    tmp_path: Path,
    at: tuple[float, float],
    *,
    now: datetime,
    email: str | None = None,
) -> str:
    """Report a pothole through intake at ``now`` at ``at`` (lon, lat), from ``email`` if
    given; return its tracking id."""
    lon, lat = at
    if email is None:
        return submit(db, tmp_path, category="pothole", lon=lon, lat=lat, now=now).tracking_id
    report = submit(db, tmp_path, category="pothole", lon=lon, lat=lat, now=now, email=email)
    return report.tracking_id
