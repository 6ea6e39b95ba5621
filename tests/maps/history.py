"""A small known history for the analytics tests, where every figure can be worked out by hand.

The city: 0.02° × 0.01° near (0°, 0°) (about 2.2 km × 1.1 km), in UTC.

- Ward map "old" (2000-01-01 → 2026-03-01): A1 west half (population 2,000), A2 east half
  (4,000). Ward map "new" (from 2026-03-01): B1 the same ground as A1 + A2 (6,000), B2 a new
  area north of it (1,000) where nothing is ever reported (the empty ward).
- Categories: pothole (streets, SLA 24 h, dedup radius 25 m), tree (trees, SLA 240 h),
  streetlight (lighting, asset type "light", SLA 72 h). Two lights stand in B1.

January 2026 (hours to close; SLA breached when closed after the SLA):

| ward | incident | category | opened | closed after | notes |
|---|---|---|---|---|---|
| A1 | P1 | pothole | Jan 5 | 10 h | reopened once; "not fixed" |
| A1 | P2 | pothole | Jan 6 | 30 h (late) | |
| A1 | P3 | pothole | Jan 7 | 20 h | 2 reports (one a duplicate); "fixed" |
| A1 | T1 | tree | Jan 8 | 100 h | "fixed" |
| A1 | P4 | pothole | Jan 20 | open (late) | backlog, 288 h old on Feb 1 |
| A2 | T2 | tree | Jan 10 | 300 h (late) | |
| A2 | T3 | tree | Jan 11 | 200 h | |
| A2 | T4 | tree | Jan 12 | 50 h | |
| A2 | P5 | pothole | Jan 13 | 12 h | |

Across the ward-map change: X1 (pothole, west, opened Feb 25, closed Mar 3) is A1's; X2 at
the same spot (opened Mar 5, closed Mar 6) is B1's, and a repeat of X1. L1 (streetlight, B1,
Mar 10, open).

June 2025, the hotspot: 12 pothole reports 40 m apart on a 4 × 3 lattice around (0.005, 0.005)
(one DBSCAN cluster at 2 × 25 m; a few neighbouring 100 m hexagons) and 10 single
reports spread on a 4 × 3 lattice (≥ 300 m apart) over the rest of the city.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shapely import MultiPolygon, box
from sqlalchemy import text

from geo311.kernel.database import Database
from geo311.resident.intake.models import Report
from geo311.resident.intake.tracking import new_tracking_id
from layers import service as layers_service
from work_orders import incidents
from work_orders.models import ServiceCategory

WEST = (0.0025, 0.005)
EAST = (0.015, 0.005)
HOT = (0.005, 0.005)
HOT_POINTS = [
    (HOT[0] + (k % 4 - 1.5) * 0.00036, HOT[1] + (k // 4 - 1) * 0.00036)  # 40 m apart
    for k in range(12)
]


def jan(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=UTC)


@dataclass
class City:
    jid: int
    incidents: dict[str, int]


def _ward(*bounds: float) -> MultiPolygon:
    return MultiPolygon([box(*bounds)])


def build(db: Database) -> City:
    """Store the city and its history (see the module docstring); return the ids."""
    with db.session() as session:
        j = layers_service.create_jurisdiction(session, slug="demo", name="Known", timezone="UTC")
        jid = j.id
        layers_service.load_ward_map(
            session,
            jurisdiction_id=jid,
            name="old",
            valid_from=datetime(2000, 1, 1, tzinfo=UTC),
            valid_to=datetime(2026, 3, 1, tzinfo=UTC),
            wards=[
                layers_service.WardFeature("A1", "West", _ward(0, 0, 0.01, 0.01), 2000),
                layers_service.WardFeature("A2", "East", _ward(0.01, 0, 0.02, 0.01), 4000),
            ],
        )
        layers_service.load_ward_map(
            session,
            jurisdiction_id=jid,
            name="new",
            valid_from=datetime(2026, 3, 1, tzinfo=UTC),
            valid_to=None,
            wards=[
                layers_service.WardFeature("B1", "Centre", _ward(0, 0, 0.02, 0.01), 6000),
                layers_service.WardFeature("B2", "North", _ward(0, 0.01, 0.02, 0.02), 1000),
            ],
        )
        layers_service.ensure_asset_type(session, jurisdiction_id=jid, code="light", name="Light")
        layers_service.load_assets(
            session,
            jurisdiction_id=jid,
            asset_type="light",
            assets=[
                layers_service.AssetFeature("L-1", 0.004, 0.004),
                layers_service.AssetFeature("L-2", 0.016, 0.004),
            ],
        )
        for code, group, sla, asset_type in (
            ("pothole", "streets", 24, None),
            ("tree", "trees", 240, None),
            ("streetlight", "lighting", 72, "light"),
        ):
            session.add(
                ServiceCategory(
                    jurisdiction_id=jid,
                    code=code,
                    name=code.title(),
                    group_code=group,
                    asset_type=asset_type,
                    dedup_radius_m=25,
                    sla_hours=sla,
                )
            )
        session.flush()
        city = City(jid, {})

        def add(
            name: str,
            category: str,
            at: tuple[float, float],
            opened: datetime,
            closed_h: float | None,
            *,
            duplicates: int = 0,
            asset: bool = False,
        ) -> None:
            cat = session.get(ServiceCategory, (jid, category))
            assert cat is not None
            lon, lat = at
            ward = layers_service.ward_at(session, jurisdiction_id=jid, lon=lon, lat=lat, at=opened)
            asset_id = None
            if asset:
                near = layers_service.nearest_asset(
                    session, jurisdiction_id=jid, asset_type="light", lon=lon, lat=lat, radius_m=50
                )
                asset_id = near.id if near else None
            incident = incidents.open_incident(
                session,
                category=cat,
                lon=lon,
                lat=lat,
                ward_id=ward.id if ward else None,
                asset_id=asset_id,
                opened_at=opened,
            )
            for k in range(1 + duplicates):
                session.add(
                    Report(
                        jurisdiction_id=jid,
                        tracking_id=new_tracking_id(),
                        incident_id=incident.id,
                        category_code=category,
                        geom=f"SRID=4326;POINT({lon} {lat})",
                        location_source="pin",
                        channel="api",
                        ward_id=ward.id if ward else None,
                        asset_id=asset_id,
                        reported_at=opened + timedelta(hours=k),
                        dedup_decision="new" if k == 0 else "matched",
                    )
                )
            if closed_h is not None:
                closed = opened + timedelta(hours=closed_h)
                for sql in (
                    "UPDATE incidents SET status = 'closed', closed_at = :c WHERE id = :id",
                    "UPDATE work_orders SET status = 'completed', resolved_at = :c, "
                    "completed_at = :c WHERE incident_id = :id",
                ):
                    session.execute(text(sql), {"c": closed, "id": incident.id})
            city.incidents[name] = incident.id

        add("P1", "pothole", WEST, jan(5), 10)
        add("P2", "pothole", WEST, jan(6), 30)
        add("P3", "pothole", (0.003, 0.006), jan(7), 20, duplicates=1)
        add("T1", "tree", (0.006, 0.002), jan(8), 100)
        add("P4", "pothole", (0.007, 0.008), jan(20), None)
        add("T2", "tree", EAST, jan(10), 300)
        add("T3", "tree", (0.012, 0.002), jan(11), 200)
        add("T4", "tree", (0.018, 0.008), jan(12), 50)
        add("P5", "pothole", (0.014, 0.007), jan(13), 12)
        add("X1", "pothole", (0.008, 0.003), datetime(2026, 2, 25, tzinfo=UTC), 6 * 24)
        add("X2", "pothole", (0.00801, 0.003), datetime(2026, 3, 5, tzinfo=UTC), 24)
        add("L1", "streetlight", (0.0041, 0.0041), datetime(2026, 3, 10, tzinfo=UTC), None,
            asset=True)  # fmt: skip
        june = datetime(2025, 6, 10, tzinfo=UTC)
        for k, point in enumerate(HOT_POINTS):
            add(f"H{k}", "pothole", point, june + timedelta(hours=k), 5)
        for k in range(10):
            lon, lat = 0.0025 + (k % 4) * 0.005, 0.0015 + (k // 4) * 0.0035
            add(f"B{k}", "pothole", (lon, lat), june + timedelta(days=1, hours=k), 5)
        for name, action, data in (
            ("P1", "transition", None),
            ("P1", "resident_answer", '{"answer": "not_fixed"}'),
            ("P3", "resident_answer", '{"answer": "fixed"}'),
            ("T1", "resident_answer", '{"answer": "fixed"}'),
        ):
            session.execute(
                text(
                    "INSERT INTO audit_events (jurisdiction_id, entity, entity_id, action, actor, "
                    "to_state, data, at) VALUES (:jid, 'incident', :id, :action, 'test', "
                    ":to, CAST(:data AS jsonb), :at)"
                ),
                {
                    "jid": jid,
                    "id": city.incidents[name],
                    "action": action,
                    "to": "reopened" if action == "transition" else None,
                    "data": data or "{}",
                    "at": jan(25),
                },
            )
        return city
