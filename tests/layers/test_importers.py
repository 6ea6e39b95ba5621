"""Reading layer files: formats, reprojection, repairs, and errors that name the argument."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd  # type: ignore[import-untyped]
import pytest
import shapely
from pyproj import Transformer

from layers.errors import BadArgument, BadLayerFile, LayersError
from layers.importers import read_assets, read_wards

# Times Square, and a point 1 km-ish north-east of it, as known lon/lat positions.
TIMES_SQ = (-73.985130, 40.758896)
NE_CORNER = (-73.975, 40.766)

DRIVERS = {"geojson": "GeoJSON", "shp": "ESRI Shapefile", "gpkg": "GPKG"}


def projected(crs: str, *points: tuple[float, float]) -> list[tuple[float, float]]:
    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return [tuple(to_crs.transform(lon, lat)) for lon, lat in points]


def corner_near(geom: shapely.Geometry, point: tuple[float, float]) -> tuple[float, float]:
    """Return the vertex of ``geom`` closest to ``point``."""
    x, y = min(
        shapely.get_coordinates(geom).tolist(),
        key=lambda c: (c[0] - point[0]) ** 2 + (c[1] - point[1]) ** 2,
    )
    return (x, y)


def write(gdf: gpd.GeoDataFrame, path: Path, **kwargs: object) -> Path:
    gdf.to_file(path, driver=DRIVERS[path.suffix.lstrip(".")], engine="pyogrio", **kwargs)
    return path


def ward_frame(crs: str | None) -> gpd.GeoDataFrame:
    """Two wards in ``crs``: one with a corner on Times Square, one beside it."""
    (x0, y0), (x1, y1) = projected(crs or "EPSG:2263", TIMES_SQ, NE_CORNER)
    return gpd.GeoDataFrame(
        {
            "dist": [7, 8],
            "label": ["Midtown", "East Side"],
            "pop": [160_000.0, None],
        },
        geometry=[shapely.box(x0, y0, x1, y1), shapely.box(x1, y0, x1 + (x1 - x0), y1)],
        crs=crs,
    )


@pytest.mark.parametrize("suffix", ["geojson", "shp", "gpkg"])
def test_wards_in_state_plane_are_reprojected_to_lon_lat(tmp_path: Path, suffix: str) -> None:
    path = write(ward_frame("EPSG:2263"), tmp_path / f"districts.{suffix}")
    wards, report = read_wards(path, code_field="dist", name_field="label", population_field="pop")
    assert report.read == 2
    assert report.written == 2
    assert report.source_crs == "EPSG:2263"
    assert report.reprojected_from == "EPSG:2263"
    assert [(w.code, w.name, w.population) for w in wards] == [
        ("7", "Midtown", 160_000),
        ("8", "East Side", None),
    ]
    midtown = wards[0].geom
    assert isinstance(midtown, shapely.MultiPolygon)
    # The box's south-west and north-east corners land back on the known lon/lat positions.
    assert corner_near(midtown, TIMES_SQ) == pytest.approx(TIMES_SQ, abs=1e-6)
    assert corner_near(midtown, NE_CORNER) == pytest.approx(NE_CORNER, abs=1e-6)


def test_wards_already_in_lon_lat_are_not_reprojected(tmp_path: Path) -> None:
    path = write(ward_frame("EPSG:4326"), tmp_path / "districts.geojson")
    wards, report = read_wards(path, code_field="dist", name_field="label")
    assert report.reprojected_from is None
    assert report.source_crs == "EPSG:4326"
    assert corner_near(wards[0].geom, TIMES_SQ) == pytest.approx(TIMES_SQ, abs=1e-6)


def test_bow_tie_is_made_valid_and_kept_as_multipolygon(tmp_path: Path) -> None:
    bow_tie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])
    assert not bow_tie.is_valid
    gdf = gpd.GeoDataFrame(
        {"code": ["BT", "OK"], "name": ["Bow tie", "Square"]},
        geometry=[bow_tie, shapely.box(2, 0, 3, 1)],
        crs="EPSG:4326",
    )
    wards, report = read_wards(
        write(gdf, tmp_path / "w.geojson"), code_field="code", name_field="name"
    )
    assert report.made_valid == ["BT"]
    assert report.dropped == []
    fixed = wards[0].geom
    assert isinstance(fixed, shapely.MultiPolygon)
    assert fixed.is_valid
    assert len(fixed.geoms) == 2  # the two triangles of the bow tie
    assert fixed.area == pytest.approx(0.5)
    assert isinstance(wards[1].geom, shapely.MultiPolygon)  # plain polygons come back multi too


def test_empty_and_codeless_rows_are_dropped_with_a_reason(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame(
        {"code": ["A", "B", None, "D"], "name": ["a", "b", "c", "d"]},
        geometry=[
            shapely.box(0, 0, 1, 1),
            None,
            shapely.box(2, 0, 3, 1),
            shapely.LineString([(0, 0), (1, 1)]),
        ],
        crs="EPSG:4326",
    )
    wards, report = read_wards(
        write(gdf, tmp_path / "w.gpkg"), code_field="code", name_field="name"
    )
    assert [w.code for w in wards] == ["A"]
    assert report.read == 4
    assert report.written == 1
    assert {(d.row, d.key, d.reason) for d in report.dropped} == {
        (1, "B", "empty geometry"),
        (2, None, "no code value"),
        (3, "D", "not a polygon (LineString)"),
    }


def test_rows_sharing_a_code_become_one_ward(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame(
        {"code": ["1", "1"], "name": ["Island ward", "Island ward"]},
        geometry=[shapely.box(0, 0, 1, 1), shapely.box(5, 0, 6, 1)],
        crs="EPSG:4326",
    )
    wards, report = read_wards(
        write(gdf, tmp_path / "w.geojson"), code_field="code", name_field="name"
    )
    assert len(wards) == 1
    assert report.merged == ["1"]
    assert len(wards[0].geom.geoms) == 2


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_file_without_crs_is_refused_naming_source_crs(tmp_path: Path) -> None:
    path = write(ward_frame(None), tmp_path / "no_prj.shp")
    assert not path.with_suffix(".prj").exists()
    with pytest.raises(BadLayerFile, match=r"no_prj\.shp declares no CRS: pass source_crs"):
        read_wards(path, code_field="dist", name_field="label")
    wards, report = read_wards(path, code_field="dist", name_field="label", source_crs="EPSG:2263")
    assert report.reprojected_from == "EPSG:2263"
    assert corner_near(wards[0].geom, TIMES_SQ) == pytest.approx(TIMES_SQ, abs=1e-6)


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_source_crs_contradicting_the_file_is_refused(tmp_path: Path) -> None:
    path = write(ward_frame("EPSG:2263"), tmp_path / "w.gpkg")
    with pytest.raises(BadArgument, match="source_crs 'EPSG:3857' contradicts"):
        read_wards(path, code_field="dist", name_field="label", source_crs="EPSG:3857")
    with pytest.raises(BadArgument, match="source_crs 'EPSG:99999999'"):
        read_wards(
            write(ward_frame(None), tmp_path / "n.shp"),
            code_field="dist",
            name_field="label",
            source_crs="EPSG:99999999",
        )


def test_bad_field_names_are_refused_naming_the_argument(tmp_path: Path) -> None:
    path = write(ward_frame("EPSG:2263"), tmp_path / "boston_wards.geojson")
    with pytest.raises(
        BadLayerFile,
        match=r"code_field 'ward' is not a column of boston_wards.geojson; "
        r"columns are: dist, label, pop",
    ):
        read_wards(path, code_field="ward", name_field="label")
    with pytest.raises(BadLayerFile, match="population_field 'residents'"):
        read_wards(path, code_field="dist", name_field="label", population_field="residents")
    with pytest.raises(BadLayerFile, match="id_field 'unitid'"):
        read_assets(path, id_field="unitid")


def test_missing_file_and_layer_choice(tmp_path: Path) -> None:
    with pytest.raises(BadLayerFile, match="does not exist"):
        read_wards(tmp_path / "nope.geojson", code_field="a", name_field="b")
    path = tmp_path / "two.gpkg"
    write(ward_frame("EPSG:2263"), path, layer="council")
    write(ward_frame("EPSG:2263"), path, layer="other", mode="a")
    with pytest.raises(BadArgument, match="holds 2 layers: pass layer, one of: council, other"):
        read_wards(path, code_field="dist", name_field="label")
    with pytest.raises(BadArgument, match=r"layer 'wards' is not in two\.gpkg"):
        read_wards(path, code_field="dist", name_field="label", layer="wards")
    wards, report = read_wards(path, code_field="dist", name_field="label", layer="council")
    assert len(wards) == 2
    assert report.layer == "council"


# --- assets --------------------------------------------------------------------------------


def test_point_layer_in_web_mercator_is_reprojected(tmp_path: Path) -> None:
    (x, y), (x2, y2) = projected("EPSG:3857", TIMES_SQ, NE_CORNER)
    gdf = gpd.GeoDataFrame(
        {"unitid": ["H1", "H2", "H3"], "label": ["one", "two", None], "boro": [1, 1, 2]},
        geometry=[shapely.Point(x, y), shapely.MultiPoint([(x2, y2)]), None],
        crs="EPSG:3857",
    )
    assets, report = read_assets(
        write(gdf, tmp_path / "hydrants.gpkg"), id_field="unitid", name_field="label"
    )
    assert report.reprojected_from == "EPSG:3857"
    assert (report.read, report.written) == (3, 2)
    assert [(d.key, d.reason) for d in report.dropped] == [("H3", "no point position")]
    h1, h2 = assets
    assert (h1.external_id, h1.name, h1.attributes) == ("H1", "one", {"boro": 1})
    assert (h1.lon, h1.lat) == pytest.approx(TIMES_SQ, abs=1e-6)
    assert (h2.lon, h2.lat) == pytest.approx(NE_CORNER, abs=1e-6)


def test_csv_with_lon_lat_columns(tmp_path: Path) -> None:
    path = tmp_path / "trees.csv"
    pd.DataFrame(
        {
            "tree_id": ["007", "008", "009", "007"],
            "spc_common": ["oak", "elm", "ash", "red oak"],
            "longitude": [TIMES_SQ[0], NE_CORNER[0], None, -73.99],
            "latitude": [TIMES_SQ[1], NE_CORNER[1], 40.7, 40.75],
            "tree_dbh": [12, 3, 4, 14],
        }
    ).to_csv(path, index=False)
    assets, report = read_assets(
        path,
        id_field="tree_id",
        name_field="spc_common",
        lon_field="longitude",
        lat_field="latitude",
    )
    assert report.reprojected_from is None
    assert report.read == 4
    # "007" stays text, and its second row wins over the first.
    assert [(a.external_id, a.name, a.attributes) for a in assets] == [
        ("007", "red oak", {"tree_dbh": 14}),
        ("008", "elm", {"tree_dbh": 3}),
    ]
    assert sorted(report.dropped_by_reason.items()) == [
        ("duplicate id (a later row wins)", 1),
        ("no point position", 1),
    ]


def test_csv_needs_its_coordinate_columns_and_their_crs(tmp_path: Path) -> None:
    (x, y), (x2, y2) = projected("EPSG:2263", TIMES_SQ, NE_CORNER)
    path = tmp_path / "hydrants.csv"
    pd.DataFrame({"unitid": ["H1", "H2"], "point_x": [x, x2], "point_y": [y, y2]}).to_csv(
        path, index=False
    )
    with pytest.raises(BadArgument, match="pass lon_field and lat_field"):
        read_assets(path, id_field="unitid")
    with pytest.raises(BadArgument, match="lat_field is missing"):
        read_assets(path, id_field="unitid", lon_field="point_x")
    with pytest.raises(BadLayerFile, match=r"lon_field 'point_x'.*pass source_crs"):
        read_assets(path, id_field="unitid", lon_field="point_x", lat_field="point_y")
    with pytest.raises(LayersError, match=r"lat_field 'lat' is not a column of hydrants\.csv"):
        read_assets(path, id_field="unitid", lon_field="point_x", lat_field="lat")
    assets, report = read_assets(
        path, id_field="unitid", lon_field="point_x", lat_field="point_y", source_crs="EPSG:2263"
    )
    assert report.reprojected_from == "EPSG:2263"
    assert (assets[0].lon, assets[0].lat) == pytest.approx(TIMES_SQ, abs=1e-6)
    assert (assets[1].lon, assets[1].lat) == pytest.approx(NE_CORNER, abs=1e-6)
