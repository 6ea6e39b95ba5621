"""``geo311 layers wards|assets`` run as an admin runs them, against a real database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import geopandas as gpd
import pandas as pd  # type: ignore[import-untyped]
import pytest
import shapely
import typer
from pyproj import Transformer
from sqlalchemy import func, select
from typer.testing import CliRunner

from geo311.kernel.database import Database
from geo311.kernel.settings import get_settings
from layers import service
from layers.cli import app as layers_app
from layers.models import Asset, AssetType, Jurisdiction, Ward, WardMap

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[typer.Typer]:
    """A parent CLI with the layers app mounted as ``layers``, pointed at the test database."""
    monkeypatch.setenv("GEO311_DB__URL", db_url)
    monkeypatch.setenv("GEO311_JURISDICTION", "nyc")
    get_settings.cache_clear()
    root = typer.Typer()
    root.add_typer(layers_app, name="layers")
    yield root
    get_settings.cache_clear()


def run(cli: typer.Typer, *args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "160"})
    return result.exit_code, result.output


@pytest.fixture
def wards_file(tmp_path: Path) -> Path:
    """Two council districts in Web Mercator, one with an invalid (bow-tie) polygon."""
    to_3857 = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    (x0, y0), (x1, y1) = (to_3857.transform(-74.00, 40.70), to_3857.transform(-73.95, 40.75))
    bow_tie = shapely.Polygon([(x1, y0), (x1 + 5000, y1), (x1 + 5000, y0), (x1, y1)])
    gdf = gpd.GeoDataFrame(
        {"coun_dist": [1, 2], "label": ["District 1", "District 2"], "pop": [150_000, 160_000]},
        geometry=[shapely.box(x0, y0, x1, y1), bow_tie],
        crs="EPSG:3857",
    )
    path = tmp_path / "council.gpkg"
    gdf.to_file(path, driver="GPKG", engine="pyogrio")
    return path


WARD_ARGS = ("--code-field", "coun_dist", "--name-field", "label")


def test_wards_command_creates_jurisdiction_and_map(
    cli: typer.Typer, wards_file: Path, db: Database
) -> None:
    code, output = run(
        cli,
        "layers",
        "wards",
        wards_file,
        "--map",
        "20c",
        "--valid-from",
        "2013-01-01",
        "--valid-to",
        "2023-01-01",
        *WARD_ARGS,
        "--population-field",
        "pop",
        "--jurisdiction-name",
        "New York City",
        "--timezone",
        "America/New_York",
    )
    assert code == 0, output
    assert "EPSG:3857" in output
    assert "made valid" in output
    assert "1 (2)" in output  # one polygon repaired: district 2
    assert "written" in output
    assert "elapsed" in output

    with db.session() as s:
        j = service.get_jurisdiction(s, "nyc")
        assert j is not None
        assert (j.name, j.timezone) == ("New York City", "America/New_York")
        ward_map = s.scalars(select(WardMap)).one()
        # The dates are local midnights of the jurisdiction, not UTC.
        assert ward_map.name == "20c"
        assert ward_map.valid_from == datetime(2013, 1, 1, tzinfo=NEW_YORK)
        assert ward_map.valid_to == datetime(2023, 1, 1, tzinfo=NEW_YORK)
        assert s.scalar(select(func.count()).select_from(Ward)) == 2
        ward = service.ward_at(
            s, jurisdiction_id=j.id, lon=-73.97, lat=40.72, at=datetime(2019, 5, 1, tzinfo=NEW_YORK)
        )
        assert ward is not None
        assert (ward.code, ward.name) == ("1", "District 1")


def test_overlapping_map_fails_with_a_message_and_stores_nothing(
    cli: typer.Typer, wards_file: Path, db: Database
) -> None:
    first = run(
        cli, "layers", "wards", wards_file, "--map", "v1", "--valid-from", "2013-01-01", *WARD_ARGS
    )
    assert first[0] == 0, first[1]
    code, output = run(
        cli, "layers", "wards", wards_file, "--map", "v2", "--valid-from", "2020-01-01", *WARD_ARGS
    )
    assert code == 1
    assert "error:" in output
    assert "overlaps 'v1'" in output
    assert "Traceback" not in output
    with db.session() as s:
        assert s.scalars(select(WardMap.name)).all() == ["v1"]


def test_bad_field_is_reported_by_name(cli: typer.Typer, wards_file: Path, db: Database) -> None:
    code, output = run(
        cli,
        "layers",
        "wards",
        wards_file,
        "--map",
        "v1",
        "--valid-from",
        "2013-01-01",
        "--code-field",
        "ward",
        "--name-field",
        "label",
    )
    assert code == 1
    assert "code_field 'ward' is not a column of council.gpkg" in output
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Jurisdiction)) == 0


def test_assets_command_loads_a_csv(cli: typer.Typer, tmp_path: Path, db: Database) -> None:
    path = tmp_path / "hydrants.csv"
    pd.DataFrame(
        {
            "unitid": ["H1", "H2", "H3"],
            "latitude": [40.72, 40.73, None],
            "longitude": [-73.97, -73.96, None],
            "boro": [1, 3, 3],
        }
    ).to_csv(path, index=False)
    args = ("layers", "assets", path, "--type", "hydrant", "--id-field", "unitid")
    coords = ("--lon-field", "longitude", "--lat-field", "latitude")

    code, output = run(cli, *args, *coords)
    assert code == 1
    assert "no jurisdiction 'nyc'" in output

    with db.session() as s:
        service.create_jurisdiction(s, slug="nyc", name="New York City")
    code, output = run(cli, *args, "--type-name", "Fire hydrant", *coords)
    assert code == 0, output
    assert "1 no point position" in output
    with db.session() as s:
        rows = s.scalars(select(Asset).order_by(Asset.external_id)).all()
        assert [(a.external_id, a.attributes) for a in rows] == [
            ("H1", {"boro": 1}),
            ("H2", {"boro": 3}),
        ]
        j = service.get_jurisdiction(s, "nyc")
        assert j is not None
        asset_type = s.get(AssetType, (j.id, "hydrant"))
        assert asset_type is not None
        assert asset_type.name == "Fire hydrant"
        found = service.nearest_asset(
            s, jurisdiction_id=j.id, asset_type="hydrant", lon=-73.97, lat=40.7201, radius_m=30
        )
        assert found is not None
        assert found.external_id == "H1"

    # Loading again updates in place, and keeps the type's name when none is given.
    code, output = run(cli, *args, *coords)
    assert code == 0, output
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Asset)) == 2
        assert s.scalars(select(AssetType.name)).one() == "Fire hydrant"
