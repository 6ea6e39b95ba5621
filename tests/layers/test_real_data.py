"""Real open data from ../shared/data: Boston's wards and NYC's two council-district maps.

These tests skip (through the ``shared_data`` fixture) when ../shared/data is absent, because
the project does not copy those files into its own tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd  # type: ignore[import-untyped]
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from geo311.kernel.database import Database
from layers import service
from layers.importers import ImportReport, read_wards
from layers.models import Jurisdiction, Ward
from layers.service import WardFeature

pytestmark = pytest.mark.shared_data

NEW_YORK = ZoneInfo("America/New_York")
SAMPLE_2019 = "jasonlin0226_nyc311_2019-12.csv"


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    with db.session() as s:
        yield s


def test_boston_wards_load_with_their_invalid_polygons_repaired(
    shared_data: Path, session: Session
) -> None:
    wards, report = read_wards(
        shared_data / "boston" / "boston_wards.geojson", code_field="WARD", name_field="WARD"
    )
    assert (report.read, report.written) == (22, 22)
    assert len(report.made_valid) == 3
    assert report.dropped == []
    assert report.reprojected_from is None

    j = service.create_jurisdiction(session, slug="boston", name="Boston")
    service.load_ward_map(
        session,
        jurisdiction_id=j.id,
        name="wards-2012",
        valid_from=datetime(2012, 1, 1, tzinfo=UTC),
        valid_to=None,
        wards=wards,
    )
    assert session.scalar(select(func.count()).select_from(Ward)) == 22
    assert session.scalar(select(func.count()).where(~func.ST_IsValid(Ward.geom))) == 0
    assert sorted(int(c) for c in session.scalars(select(Ward.code))) == list(range(1, 23))


@dataclass(frozen=True)
class NycMaps:
    v20c: list[WardFeature]
    v25b: list[WardFeature]
    report_20c: ImportReport
    report_25b: ImportReport


@pytest.fixture(scope="module")
def nyc_maps(shared_data: Path) -> NycMaps:
    """Both council-district maps, read once for the module."""
    v20c, report_20c = read_wards(
        shared_data / "nyc" / "nycc_20c_council_districts.geojson",
        code_field="coun_dist",
        name_field="coun_dist",
    )
    v25b, report_25b = read_wards(
        shared_data / "nyc" / "nycc_25b_council_districts.geojson",
        code_field="CounDist",
        name_field="CounDist",
    )
    return NycMaps(v20c, v25b, report_20c, report_25b)


@pytest.fixture(scope="module")
def requests_2019(shared_data: Path) -> pd.DataFrame:
    """The 2019 NYC 311 requests that carry the city's own council district."""
    frame = pd.read_csv(shared_data / "nyc" / "nyc_311_combined_sample.csv", low_memory=False)
    frame = frame[frame["source_file"] == SAMPLE_2019]
    return frame.dropna(subset=["council_district", "latitude", "longitude"])


@pytest.fixture
def nyc(session: Session, nyc_maps: NycMaps) -> Jurisdiction:
    j = service.create_jurisdiction(
        session, slug="nyc", name="New York City", timezone=str(NEW_YORK)
    )
    service.load_ward_map(
        session,
        jurisdiction_id=j.id,
        name="20c",
        valid_from=datetime(2013, 1, 1, tzinfo=NEW_YORK),
        valid_to=datetime(2023, 1, 1, tzinfo=NEW_YORK),
        wards=nyc_maps.v20c,
        source="nycc_20c_council_districts.geojson",
    )
    service.load_ward_map(
        session,
        jurisdiction_id=j.id,
        name="25b",
        valid_from=datetime(2023, 1, 1, tzinfo=NEW_YORK),
        valid_to=None,
        wards=nyc_maps.v25b,
        source="nycc_25b_council_districts.geojson",
    )
    return j


def placed(
    session: Session, j: Jurisdiction, frame: pd.DataFrame, *, at: datetime | None
) -> list[int | None]:
    """Return the district of each request: at its own creation time, or at ``at``."""
    codes: list[int | None] = []
    for lon, lat, created in zip(
        frame["longitude"], frame["latitude"], frame["created_date"], strict=True
    ):
        when = at or datetime.fromisoformat(created).replace(tzinfo=NEW_YORK)
        ward = service.ward_at(session, jurisdiction_id=j.id, lon=lon, lat=lat, at=when)
        codes.append(None if ward is None else int(ward.code))
    return codes


def test_nyc_maps_read_cleanly(nyc_maps: NycMaps) -> None:
    for report in (nyc_maps.report_20c, nyc_maps.report_25b):
        assert (report.read, report.written) == (51, 51)
        assert report.made_valid == []
        assert report.dropped == []
    assert sorted(int(w.code) for w in nyc_maps.v25b) == list(range(1, 52))


def test_2019_requests_fall_in_the_district_the_city_recorded(
    session: Session, nyc: Jurisdiction, requests_2019: pd.DataFrame
) -> None:
    assert len(requests_2019) == 987
    recorded = [int(d) for d in requests_2019["council_district"]]
    assert placed(session, nyc, requests_2019, at=None) == recorded


def test_the_newer_map_disagrees_for_one_request_in_seven(
    session: Session, nyc: Jurisdiction, requests_2019: pd.DataFrame
) -> None:
    recorded = [int(d) for d in requests_2019["council_district"]]
    forced = placed(session, nyc, requests_2019, at=datetime(2024, 1, 1, tzinfo=NEW_YORK))
    matches = sum(a == b for a, b in zip(forced, recorded, strict=True))
    rate = matches / len(recorded)
    assert 0.80 <= rate <= 0.90, f"25b agrees with the 2019 record for {rate:.1%}"
    # Same points, same database: only the map version differs.
    assert session.scalar(text("SELECT count(*) FROM ward_maps")) == 2
