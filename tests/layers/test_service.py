"""Ward and asset look-ups on a real PostGIS: versions by time, boundaries, metres, the index."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import shapely
from pyproj import Geod
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from geo311.kernel.database import Database
from layers import service
from layers.errors import (
    BadArgument,
    BadGeometry,
    DuplicateJurisdiction,
    DuplicateWardMap,
    LayersError,
    OverlappingWardMap,
    UnknownAssetType,
)
from layers.models import Asset, Jurisdiction, Ward, WardMap
from layers.service import AssetFeature, WardFeature

GEOD = Geod(ellps="WGS84")
V1_FROM = datetime(2013, 1, 1, tzinfo=UTC)
V2_FROM = datetime(2023, 1, 1, tzinfo=UTC)
# Two wards side by side near Boston (lat 42.3); v1 splits them at lon -71.05, v2 at -71.07.
SOUTH, NORTH, WEST, EAST = 42.30, 42.35, -71.10, -71.00
V1_SPLIT, V2_SPLIT = -71.05, -71.07


def box(min_lon: float, min_lat: float, max_lon: float, max_lat: float) -> shapely.MultiPolygon:
    return shapely.MultiPolygon([shapely.box(min_lon, min_lat, max_lon, max_lat)])


def two_wards(split: float) -> list[WardFeature]:
    return [
        WardFeature(code="1", name="Ward 1", geom=box(WEST, SOUTH, split, NORTH), population=100),
        WardFeature(code="2", name="Ward 2", geom=box(split, SOUTH, EAST, NORTH)),
    ]


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    with db.session() as s:
        yield s


@pytest.fixture
def city(session: Session) -> Jurisdiction:
    """A jurisdiction with ward map v1 (2013–2023) and v2 (2023 on)."""
    j = service.create_jurisdiction(session, slug="bos", name="Boston", timezone="America/New_York")
    service.load_ward_map(
        session,
        jurisdiction_id=j.id,
        name="v1",
        valid_from=V1_FROM,
        valid_to=V2_FROM,
        wards=two_wards(V1_SPLIT),
    )
    service.load_ward_map(
        session,
        jurisdiction_id=j.id,
        name="v2",
        valid_from=V2_FROM,
        valid_to=None,
        wards=two_wards(V2_SPLIT),
    )
    return j


def code_at(session: Session, j: Jurisdiction, lon: float, lat: float, at: datetime) -> str | None:
    ward = service.ward_at(session, jurisdiction_id=j.id, lon=lon, lat=lat, at=at)
    return None if ward is None else ward.code


# --- jurisdictions -------------------------------------------------------------------------


def test_create_and_get_jurisdiction(session: Session) -> None:
    j = service.create_jurisdiction(session, slug="nyc", name="New York City")
    assert j.id is not None
    found = service.get_jurisdiction(session, "nyc")
    assert found is not None
    assert (found.id, found.name, found.timezone) == (j.id, "New York City", "UTC")
    assert service.get_jurisdiction(session, "nowhere") is None


def test_duplicate_slug_and_bad_timezone_are_refused(session: Session) -> None:
    service.create_jurisdiction(session, slug="nyc", name="New York City")
    with pytest.raises(DuplicateJurisdiction, match="'nyc'"):
        service.create_jurisdiction(session, slug="nyc", name="Again")
    with pytest.raises(BadArgument, match="timezone 'Mars/Olympus'"):
        service.create_jurisdiction(session, slug="mars", name="Mars", timezone="Mars/Olympus")
    # The refusals did not spoil the caller's transaction.
    assert session.scalar(select(func.count()).select_from(Jurisdiction)) == 1


# --- ward_at -------------------------------------------------------------------------------


def test_ward_map_in_force_is_chosen_by_time(session: Session, city: Jurisdiction) -> None:
    lon, lat = -71.06, 42.32  # west of the v1 split, east of the v2 split
    assert code_at(session, city, lon, lat, datetime(2019, 6, 1, tzinfo=UTC)) == "1"
    assert code_at(session, city, lon, lat, datetime(2024, 6, 1, tzinfo=UTC)) == "2"
    # Periods are half-open: the instant v2 starts belongs to v2 only.
    assert code_at(session, city, lon, lat, V2_FROM) == "2"
    before = datetime(2022, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert code_at(session, city, lon, lat, before) == "1"
    # Before the first map there is no ward map in force at all.
    assert code_at(session, city, lon, lat, datetime(2010, 1, 1, tzinfo=UTC)) is None


def test_ward_ref_names_the_stored_ward(session: Session, city: Jurisdiction) -> None:
    ward = service.ward_at(
        session, jurisdiction_id=city.id, lon=-71.09, lat=42.31, at=datetime(2019, 1, 1, tzinfo=UTC)
    )
    assert ward is not None
    stored = session.get(Ward, (city.id, ward.id))
    assert stored is not None
    v1 = session.scalars(select(WardMap).where(WardMap.name == "v1")).one()
    assert (stored.ward_map_id, stored.code, ward.name, stored.population) == (
        v1.id,
        "1",
        "Ward 1",
        100,
    )


def test_point_on_shared_boundary_gets_one_ward_always_the_same(
    session: Session, city: Jurisdiction
) -> None:
    at = datetime(2019, 1, 1, tzinfo=UTC)
    # Exactly on the v1 edge between ward 1 and ward 2: both polygons cover it.
    covering = session.scalar(
        text(
            "SELECT count(*) FROM wards w JOIN ward_maps m ON m.id = w.ward_map_id "
            "WHERE m.name = 'v1' AND ST_Covers(w.geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
        ),
        {"x": V1_SPLIT, "y": 42.32},
    )
    assert covering == 2
    found = {
        service.ward_at(session, jurisdiction_id=city.id, lon=V1_SPLIT, lat=42.32, at=at)
        for _ in range(5)
    }
    assert len(found) == 1
    (ward,) = found
    assert ward is not None
    assert ward.code == "1"
    # A vertex shared by both wards, and a point on the jurisdiction's outer edge, count too.
    assert code_at(session, city, V1_SPLIT, NORTH, at) == "1"
    assert code_at(session, city, EAST, 42.33, at) == "2"


def test_point_outside_every_ward_is_none(session: Session, city: Jurisdiction) -> None:
    at = datetime(2019, 1, 1, tzinfo=UTC)
    assert code_at(session, city, -70.90, 42.32, at) is None
    assert code_at(session, city, -71.05, 42.36, at) is None


def test_ward_at_refuses_naive_time_and_bad_coordinates(
    session: Session, city: Jurisdiction
) -> None:
    with pytest.raises(BadArgument, match="at must be timezone-aware"):
        service.ward_at(
            session, jurisdiction_id=city.id, lon=-71.06, lat=42.32, at=datetime(2019, 1, 1)
        )
    with pytest.raises(BadArgument, match="lat must be a latitude"):
        service.ward_at(session, jurisdiction_id=city.id, lon=42.32, lat=-171.06, at=V2_FROM)


def test_jurisdiction_extent_follows_the_map_in_force(session: Session, city: Jurisdiction) -> None:
    extent = service.jurisdiction_extent(
        session, jurisdiction_id=city.id, at=datetime(2024, 1, 1, tzinfo=UTC)
    )
    assert extent == pytest.approx((WEST, SOUTH, EAST, NORTH), abs=1e-6)
    assert (
        service.jurisdiction_extent(
            session, jurisdiction_id=city.id, at=datetime(2000, 1, 1, tzinfo=UTC)
        )
        is None
    )


# --- loading ward maps ---------------------------------------------------------------------


def test_overlapping_ward_map_is_refused_with_a_clear_error(
    session: Session, city: Jurisdiction
) -> None:
    with pytest.raises(OverlappingWardMap) as caught:
        service.load_ward_map(
            session,
            jurisdiction_id=city.id,
            name="v3",
            valid_from=datetime(2020, 1, 1, tzinfo=UTC),
            valid_to=datetime(2021, 1, 1, tzinfo=UTC),
            wards=two_wards(-71.08),
        )
    assert isinstance(caught.value, LayersError)
    message = str(caught.value)
    assert "'v3'" in message
    assert "'v1'" in message
    assert "'v2'" not in message  # v2 starts after v3 would end
    # Nothing of v3 was stored and the session carries on.
    names = session.scalars(select(WardMap.name).order_by(WardMap.name)).all()
    assert names == ["v1", "v2"]
    assert session.scalar(select(func.count()).select_from(Ward)) == 4
    assert code_at(session, city, -71.06, 42.32, datetime(2020, 6, 1, tzinfo=UTC)) == "1"


def test_open_ended_map_overlaps_a_later_one(session: Session, city: Jurisdiction) -> None:
    with pytest.raises(OverlappingWardMap, match="'v2'"):
        service.load_ward_map(
            session,
            jurisdiction_id=city.id,
            name="v4",
            valid_from=datetime(2030, 1, 1, tzinfo=UTC),
            valid_to=None,
            wards=two_wards(-71.08),
        )


def test_ward_map_input_is_checked(session: Session, city: Jurisdiction) -> None:
    later = datetime(2040, 1, 1, tzinfo=UTC)
    with pytest.raises(DuplicateWardMap, match="'v1'"):
        service.load_ward_map(
            session,
            jurisdiction_id=city.id,
            name="v1",
            valid_from=datetime(2000, 1, 1, tzinfo=UTC),
            valid_to=datetime(2001, 1, 1, tzinfo=UTC),
            wards=two_wards(-71.08),
        )
    with pytest.raises(BadArgument, match="valid_to"):
        service.load_ward_map(
            session,
            jurisdiction_id=city.id,
            name="x",
            valid_from=later,
            valid_to=later,
            wards=two_wards(-71.08),
        )
    bow_tie = shapely.MultiPolygon(
        [shapely.Polygon([(-71.1, 42.3), (-71.0, 42.4), (-71.0, 42.3), (-71.1, 42.4)])]
    )
    with pytest.raises(BadGeometry, match=r"ward 'b'.*invalid"):
        service.load_ward_map(
            session,
            jurisdiction_id=city.id,
            name="x",
            valid_from=datetime(2000, 1, 1, tzinfo=UTC),
            valid_to=datetime(2001, 1, 1, tzinfo=UTC),
            wards=[WardFeature(code="b", name="B", geom=bow_tie)],
        )
    projected = box(-7_910_000, 5_210_000, -7_900_000, 5_220_000)
    with pytest.raises(BadGeometry, match="not lon/lat"):
        service.load_ward_map(
            session,
            jurisdiction_id=city.id,
            name="x",
            valid_from=datetime(2000, 1, 1, tzinfo=UTC),
            valid_to=datetime(2001, 1, 1, tzinfo=UTC),
            wards=[WardFeature(code="p", name="P", geom=projected)],
        )


# --- assets --------------------------------------------------------------------------------

# At 60° N a degree of longitude is about 55.8 km and a degree of latitude about 111.4 km:
# treating degrees as metres, or one as the other, gives the wrong answers below.
HERE_LON, HERE_LAT = 24.9384, 60.1699


def offset(distance_m: float, azimuth_deg: float) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(HERE_LON, HERE_LAT, azimuth_deg, distance_m)
    return float(lon), float(lat)


@pytest.fixture
def helsinki(session: Session) -> Jurisdiction:
    j = service.create_jurisdiction(
        session, slug="hel", name="Helsinki", timezone="Europe/Helsinki"
    )
    service.ensure_asset_type(session, jurisdiction_id=j.id, code="light", name="Streetlight")
    service.ensure_asset_type(session, jurisdiction_id=j.id, code="hydrant", name="Hydrant")
    lights = [
        AssetFeature("L-east-25", *offset(25.0, 90), name="east 25 m"),
        AssetFeature("L-north-40", *offset(40.0, 0), name="north 40 m"),
    ]
    hydrants = [AssetFeature("H-10", *offset(10.0, 180), attributes={"flow_lpm": 1200})]
    assert (
        service.load_assets(session, jurisdiction_id=j.id, asset_type="light", assets=lights) == 2
    )
    assert (
        service.load_assets(session, jurisdiction_id=j.id, asset_type="hydrant", assets=hydrants)
        == 1
    )
    return j


def nearest(
    session: Session, j: Jurisdiction, asset_type: str, radius_m: float
) -> service.AssetRef | None:
    return service.nearest_asset(
        session,
        jurisdiction_id=j.id,
        asset_type=asset_type,
        lon=HERE_LON,
        lat=HERE_LAT,
        radius_m=radius_m,
    )


def test_nearest_asset_within_radius_in_real_metres(
    session: Session, helsinki: Jurisdiction
) -> None:
    found = nearest(session, helsinki, "light", 100.0)
    assert found is not None
    assert (found.external_id, found.asset_type, found.name) == ("L-east-25", "light", "east 25 m")
    assert found.distance_m == pytest.approx(25.0, abs=0.01)
    # 25 m away: just inside a 25.5 m radius, just outside a 24.5 m one.
    assert nearest(session, helsinki, "light", 25.5) is not None
    assert nearest(session, helsinki, "light", 24.5) is None


def test_degree_offset_is_not_a_distance(session: Session, helsinki: Jurisdiction) -> None:
    service.ensure_asset_type(session, jurisdiction_id=helsinki.id, code="sign", name="Sign")
    signs = [
        # Fewer degrees away but more metres: 0.0004° of latitude ≈ 44.6 m ...
        AssetFeature("S-north", HERE_LON, HERE_LAT + 0.0004),
        # ... more degrees away but fewer metres: 0.0006° of longitude at 60° N ≈ 33.5 m.
        AssetFeature("S-east", HERE_LON + 0.0006, HERE_LAT),
    ]
    service.load_assets(session, jurisdiction_id=helsinki.id, asset_type="sign", assets=signs)
    _, _, north_m = GEOD.inv(HERE_LON, HERE_LAT, HERE_LON, HERE_LAT + 0.0004)
    _, _, east_m = GEOD.inv(HERE_LON, HERE_LAT, HERE_LON + 0.0006, HERE_LAT)
    assert east_m < 35.0 < 40.0 < north_m

    found = nearest(session, helsinki, "sign", 100.0)
    assert found is not None
    assert found.external_id == "S-east"
    assert found.distance_m == pytest.approx(east_m, abs=0.01)
    # A 40 m radius reaches the east sign only; a 30 m one neither.
    within_40 = nearest(session, helsinki, "sign", 40.0)
    assert within_40 is not None
    assert within_40.external_id == "S-east"
    assert nearest(session, helsinki, "sign", 30.0) is None


def test_nearest_asset_filters_by_type(session: Session, helsinki: Jurisdiction) -> None:
    hydrant = nearest(session, helsinki, "hydrant", 30.0)
    assert hydrant is not None
    assert (hydrant.external_id, hydrant.asset_type) == ("H-10", "hydrant")
    assert hydrant.distance_m == pytest.approx(10.0, abs=0.01)
    # The hydrant is nearer than any light, yet a light query never returns it.
    light = nearest(session, helsinki, "light", 30.0)
    assert light is not None
    assert light.external_id == "L-east-25"
    assert nearest(session, helsinki, "bench", 1000.0) is None


def test_load_assets_upserts_in_place(session: Session, helsinki: Jurisdiction) -> None:
    moved = AssetFeature("L-east-25", *offset(5.0, 270), name="moved", attributes={"w": 40})
    assert (
        service.load_assets(
            session, jurisdiction_id=helsinki.id, asset_type="light", assets=[moved]
        )
        == 1
    )
    count = session.scalar(
        select(func.count()).select_from(Asset).where(Asset.asset_type == "light")
    )
    assert count == 2
    found = nearest(session, helsinki, "light", 10.0)
    assert found is not None
    assert (found.external_id, found.name) == ("L-east-25", "moved")
    assert found.distance_m == pytest.approx(5.0, abs=0.01)
    stored = session.get(Asset, (helsinki.id, found.id))
    assert stored is not None
    session.refresh(stored)
    assert stored.attributes == {"w": 40}


def test_load_assets_refuses_unknown_type_and_bad_positions(
    session: Session, helsinki: Jurisdiction
) -> None:
    with pytest.raises(UnknownAssetType, match=r"'bench'.*ensure_asset_type"):
        service.load_assets(
            session,
            jurisdiction_id=helsinki.id,
            asset_type="bench",
            assets=[AssetFeature("B1", HERE_LON, HERE_LAT)],
        )
    with pytest.raises(BadGeometry, match=r"'X1'.*lon/lat"):
        service.load_assets(
            session,
            jurisdiction_id=helsinki.id,
            asset_type="light",
            assets=[AssetFeature("X1", 2_776_000.0, 8_437_000.0)],
        )
    with pytest.raises(BadArgument, match="radius_m"):
        nearest(session, helsinki, "light", -1.0)


def test_nearest_asset_query_uses_the_knn_index(db: Database) -> None:
    rng = np.random.default_rng(311)
    n = 10_000
    with db.session() as s:
        j = service.create_jurisdiction(s, slug="hel", name="Helsinki")
        for code in ("light", "hydrant"):
            service.ensure_asset_type(s, jurisdiction_id=j.id, code=code, name=code)
            lons = HERE_LON + rng.uniform(-0.15, 0.15, n)
            lats = HERE_LAT + rng.uniform(-0.08, 0.08, n)
            features = (
                AssetFeature(f"{code}-{i}", float(x), float(y))
                for i, (x, y) in enumerate(zip(lons, lats, strict=True))
            )
            written = service.load_assets(s, jurisdiction_id=j.id, asset_type=code, assets=features)
            assert written == n
        jurisdiction_id = j.id
    with db.engine.connect() as conn:
        conn.execute(text("ANALYZE assets"))
        conn.commit()

    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM assets" in statement:
            captured.append((statement, params))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.session() as s:
            found = service.nearest_asset(
                s,
                jurisdiction_id=jurisdiction_id,
                asset_type="light",
                lon=HERE_LON,
                lat=HERE_LAT,
                radius_m=500.0,
            )
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert found is not None
    assert found.asset_type == "light"
    assert found.distance_m < 500.0

    (statement, params) = captured[-1]
    with db.engine.connect() as conn:
        plan = "\n".join(
            row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, params).all()
        )
    assert "ix_assets_type_geog" in plan, plan
    assert "Seq Scan" not in plan, plan
