"""Reading ward and asset layers from GeoJSON, Shapefile, GeoPackage or CSV files.

The readers give back features ready for ``layers.service`` (lon/lat in EPSG:4326, valid
MultiPolygons for wards) and an ImportReport saying what was changed or left out, and why.
They touch no database.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # no stubs; geopandas is untyped too
import pyogrio
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from layers.errors import BadArgument, BadLayerFile
from layers.service import AssetFeature, WardFeature

WGS84 = CRS.from_epsg(4326)


@dataclass(frozen=True)
class DroppedFeature:
    """A feature of the file that was left out: its row (0-based), its code or id, and why."""

    row: int
    key: str | None
    reason: str


@dataclass
class ImportReport:
    """What a reader did with a file."""

    path: Path
    layer: str | None = None
    read: int = 0
    """Features (rows) in the file."""
    written: int = 0
    """Features handed back; a loader that stores them may set the rows it wrote."""
    source_crs: str | None = None
    """The CRS the coordinates were in."""
    reprojected_from: str | None = None
    """That CRS when it was not EPSG:4326 and the features were reprojected; else None."""
    made_valid: list[str] = field(default_factory=list)
    """Codes of the invalid polygons that were repaired with make_valid."""
    merged: list[str] = field(default_factory=list)
    """Codes that several rows shared; their polygons were unioned into one ward."""
    dropped: list[DroppedFeature] = field(default_factory=list)

    @property
    def dropped_by_reason(self) -> dict[str, int]:
        """Return how many features were dropped for each reason."""
        counts: dict[str, int] = {}
        for d in self.dropped:
            counts[d.reason] = counts.get(d.reason, 0) + 1
        return counts


# --- wards ---------------------------------------------------------------------------------


def read_wards(
    path: str | Path,
    *,
    code_field: str,
    name_field: str,
    population_field: str | None = None,
    layer: str | None = None,
    source_crs: str | None = None,
) -> tuple[list[WardFeature], ImportReport]:
    """Return the wards of a polygon layer, in EPSG:4326, and a report of the import.

    Invalid polygons are repaired with make_valid, keeping only their polygonal parts; every
    ward comes back as a valid MultiPolygon. Rows with no geometry, no polygonal area or no code
    are dropped. Rows sharing a code are merged into one ward. ``source_crs`` names the CRS of a
    file that declares none (e.g. a Shapefile without .prj).
    """
    path = Path(path)
    report = ImportReport(path=path, layer=layer)
    gdf = _read_geo(path, layer)
    fields = [("code_field", code_field), ("name_field", name_field)]
    if population_field is not None:
        fields.append(("population_field", population_field))
    for argument, column in fields:
        _require_column(gdf.columns, column, argument, path)
    gdf = _to_wgs84(gdf, path, source_crs, report)
    report.read = len(gdf)

    codes = gdf[code_field].tolist()
    names = gdf[name_field].tolist()
    populations = gdf[population_field].tolist() if population_field else [None] * len(gdf)
    by_code: dict[str, list[WardFeature]] = {}
    for row, (raw_code, raw_name, raw_pop, geom) in enumerate(
        zip(codes, names, populations, gdf.geometry.values, strict=True)
    ):
        code = _text(raw_code)
        if code is None:
            report.dropped.append(DroppedFeature(row, None, f"no {code_field} value"))
            continue
        polygon, repaired, problem = _polygonal(geom)
        if repaired and code not in report.made_valid:
            report.made_valid.append(code)
        if polygon is None:
            report.dropped.append(DroppedFeature(row, code, problem))
            continue
        ward = WardFeature(
            code=code,
            name=_text(raw_name) or code,
            geom=polygon,
            population=_population(raw_pop, population_field, row),
        )
        by_code.setdefault(code, []).append(ward)

    wards = [_merge(code, parts, report) for code, parts in by_code.items()]
    report.written = len(wards)
    return wards, report


def _polygonal(geom: Any) -> tuple[shapely.MultiPolygon | None, bool, str]:
    """Return (the geometry as a valid MultiPolygon or None, whether it was repaired, why None)."""
    if geom is None or geom.is_empty:
        return None, False, "empty geometry"
    geom = shapely.force_2d(geom)
    repaired = False
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
        repaired = True
    parts = _polygon_parts(geom)
    if not parts:
        why = (
            "no polygonal area after make_valid"
            if repaired
            else f"not a polygon ({geom.geom_type})"
        )
        return None, repaired, why
    multi = shapely.MultiPolygon(parts)
    if not multi.is_valid:
        # Parts of a repaired collection may touch along an edge: dissolve them.
        multi = _as_multi(shapely.union_all(parts))
    if multi is None or multi.is_empty:
        return None, repaired, "no polygonal area after make_valid"
    return multi, repaired, ""


def _polygon_parts(geom: Any) -> list[shapely.Polygon]:
    if isinstance(geom, shapely.Polygon):
        return [] if geom.is_empty else [geom]
    if isinstance(geom, shapely.MultiPolygon | shapely.GeometryCollection):
        return [p for g in geom.geoms for p in _polygon_parts(g)]
    return []


def _as_multi(geom: Any) -> shapely.MultiPolygon | None:
    parts = _polygon_parts(geom)
    return shapely.MultiPolygon(parts) if parts else None


def _merge(code: str, parts: list[WardFeature], report: ImportReport) -> WardFeature:
    if len(parts) == 1:
        return parts[0]
    report.merged.append(code)
    merged = _as_multi(shapely.union_all([p.geom for p in parts]))
    assert merged is not None  # a union of non-empty polygons has area
    pops = [p.population for p in parts]
    population = None if any(p is None for p in pops) else sum(p for p in pops if p is not None)
    return WardFeature(code=code, name=parts[0].name, geom=merged, population=population)


def _population(value: Any, population_field: str | None, row: int) -> int | None:
    if population_field is None or _is_missing(value):
        return None
    try:
        number = float(str(value).replace(",", "")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError) as exc:
        raise BadLayerFile(
            f"population_field {population_field!r} holds {value!r} at row {row}, not a number"
        ) from exc
    return round(number)


# --- assets --------------------------------------------------------------------------------


def read_assets(
    path: str | Path,
    *,
    id_field: str,
    name_field: str | None = None,
    layer: str | None = None,
    lon_field: str | None = None,
    lat_field: str | None = None,
    source_crs: str | None = None,
) -> tuple[list[AssetFeature], ImportReport]:
    """Return the assets of a point layer, in EPSG:4326, and a report of the import.

    Points come from the layer's geometry, or from the ``lon_field``/``lat_field`` columns
    (needed for CSV). Those columns are read as WGS84 degrees unless ``source_crs`` says
    otherwise (e.g. NY State Plane x/y: ``source_crs='EPSG:2263'``). The other columns become
    the assets' attributes. Rows without an id or a position are dropped; when an id repeats,
    the last row wins.
    """
    path = Path(path)
    report = ImportReport(path=path, layer=layer)
    if (lon_field is None) != (lat_field is None):
        missing = "lat_field" if lat_field is None else "lon_field"
        raise BadArgument(f"lon_field and lat_field go together: {missing} is missing")
    is_csv = path.suffix.lower() in {".csv", ".tsv", ".txt"}
    if is_csv and lon_field is None:
        raise BadArgument(
            f"{path.name} is a table without geometry: pass lon_field and lat_field naming its "
            "coordinate columns"
        )

    if lon_field is not None and lat_field is not None:
        table = _read_table(path, layer, text_columns=[c for c in (id_field, name_field) if c])
        _require_fields(table.columns, path, id_field, name_field, lon_field, lat_field)
        report.read = len(table)
        lons, lats = _column_positions(table, path, lon_field, lat_field, source_crs, report)
        attr_frame = table.drop(
            columns=[c for c in (id_field, name_field, lon_field, lat_field) if c]
        )
    else:
        gdf = _read_geo(path, layer)
        _require_fields(gdf.columns, path, id_field, name_field)
        gdf = _to_wgs84(gdf, path, source_crs, report)
        report.read = len(gdf)
        lons, lats = _geometry_positions(gdf.geometry.values)
        table = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
        attr_frame = table.drop(columns=[c for c in (id_field, name_field) if c])

    ids = table[id_field].tolist()
    names = table[name_field].tolist() if name_field else [None] * len(table)
    attributes = _json_records(attr_frame)

    kept: dict[str, tuple[int, AssetFeature]] = {}
    for row, (raw_id, raw_name, lon, lat, attrs) in enumerate(
        zip(ids, names, lons, lats, attributes, strict=True)
    ):
        external_id = _text(raw_id)
        if external_id is None:
            report.dropped.append(DroppedFeature(row, None, f"no {id_field} value"))
            continue
        if not (math.isfinite(lon) and math.isfinite(lat)):
            report.dropped.append(DroppedFeature(row, external_id, "no point position"))
            continue
        earlier = kept.get(external_id)
        if earlier is not None:
            report.dropped.append(
                DroppedFeature(earlier[0], external_id, "duplicate id (a later row wins)")
            )
        kept[external_id] = (
            row,
            AssetFeature(
                external_id=external_id,
                lon=float(lon),
                lat=float(lat),
                name=_text(raw_name),
                attributes=attrs,
            ),
        )
    assets = [asset for _, asset in kept.values()]
    report.written = len(assets)
    return assets, report


def _column_positions(
    table: pd.DataFrame,
    path: Path,
    lon_field: str,
    lat_field: str,
    source_crs: str | None,
    report: ImportReport,
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]:
    xs = pd.to_numeric(table[lon_field], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    ys = pd.to_numeric(table[lat_field], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    crs = WGS84 if source_crs is None else _parse_crs(source_crs)
    report.source_crs = _crs_name(crs)
    if _is_wgs84(crs):
        present = np.isfinite(xs) & np.isfinite(ys)
        bad_x = present & ((xs < -180) | (xs > 180))
        bad_y = present & ((ys < -90) | (ys > 90))
        for bad, column, argument, values in (
            (bad_x, lon_field, "lon_field", xs),
            (bad_y, lat_field, "lat_field", ys),
        ):
            if bad.any():
                raise BadLayerFile(
                    f"{argument} {column!r} of {path.name} holds values that are not degrees "
                    f"(e.g. {values[bad][0]!r}); for projected coordinates pass source_crs "
                    "(e.g. source_crs='EPSG:2263')"
                )
        return xs, ys
    report.reprojected_from = report.source_crs
    transformer = Transformer.from_crs(crs, WGS84, always_xy=True)
    lons, lats = transformer.transform(xs, ys)
    return np.asarray(lons, dtype="float64"), np.asarray(lats, dtype="float64")


def _geometry_positions(
    geoms: Sequence[Any],
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]:
    """Return lon and lat arrays; NaN where a row has no single point."""
    lons = np.full(len(geoms), np.nan)
    lats = np.full(len(geoms), np.nan)
    for i, geom in enumerate(geoms):
        if geom is None or geom.is_empty:
            continue
        if isinstance(geom, shapely.MultiPoint) and len(geom.geoms) == 1:
            geom = geom.geoms[0]
        if isinstance(geom, shapely.Point):
            lons[i], lats[i] = geom.x, geom.y
    return lons, lats


def _json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Return each row as a JSON-ready dict, leaving out empty values."""
    if frame.columns.empty:
        return [{} for _ in range(len(frame))]
    records = json.loads(frame.to_json(orient="records", date_format="iso"))
    return [{k: v for k, v in r.items() if v is not None} for r in records]


# --- reading files -------------------------------------------------------------------------


def _check_path(path: Path) -> None:
    if not path.exists():
        raise BadLayerFile(f"{path} does not exist")


def _check_layer(path: Path, layer: str | None) -> None:
    try:
        layers = [str(name) for name in pyogrio.list_layers(path)[:, 0]]
    except pyogrio.errors.DataSourceError as exc:
        raise BadLayerFile(f"{path.name} is not a readable layer file: {exc}") from exc
    if layer is None and len(layers) > 1:
        raise BadArgument(
            f"{path.name} holds {len(layers)} layers: pass layer, one of: {', '.join(layers)}"
        )
    if layer is not None and layer not in layers:
        raise BadArgument(f"layer {layer!r} is not in {path.name}; layers are: {', '.join(layers)}")


def _read_geo(path: Path, layer: str | None) -> gpd.GeoDataFrame:
    _check_path(path)
    _check_layer(path, layer)
    try:
        gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise BadLayerFile(f"{path.name} could not be read: {exc}") from exc
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf.columns:
        raise BadLayerFile(f"{path.name} has no geometry: for a table, pass lon_field/lat_field")
    return gdf


def _read_table(path: Path, layer: str | None, *, text_columns: list[str]) -> pd.DataFrame:
    _check_path(path)
    if path.suffix.lower() in {".csv", ".tsv", ".txt"}:
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        try:
            header = pd.read_csv(path, sep=sep, nrows=0).columns
            # Ids and names stay text: "007" must not become 7.
            dtypes = {c: "string" for c in text_columns if c in header}
            return pd.read_csv(path, sep=sep, dtype=dtypes, low_memory=False)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise BadLayerFile(f"{path.name} could not be read as CSV: {exc}") from exc
    _check_layer(path, layer)
    try:
        table = pyogrio.read_dataframe(path, layer=layer, read_geometry=False)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise BadLayerFile(f"{path.name} could not be read: {exc}") from exc
    return pd.DataFrame(table)


def _require_column(columns: Any, column: str, argument: str, path: Path) -> None:
    names = [str(c) for c in columns if c != "geometry"]
    if column not in names:
        raise BadLayerFile(
            f"{argument} {column!r} is not a column of {path.name}; columns are: {', '.join(names)}"
        )


def _require_fields(
    columns: Any,
    path: Path,
    id_field: str,
    name_field: str | None,
    lon_field: str | None = None,
    lat_field: str | None = None,
) -> None:
    for argument, column in (
        ("id_field", id_field),
        ("name_field", name_field),
        ("lon_field", lon_field),
        ("lat_field", lat_field),
    ):
        if column is not None:
            _require_column(columns, column, argument, path)


# --- coordinate reference systems ----------------------------------------------------------


def _parse_crs(source_crs: str) -> CRS:
    try:
        return CRS.from_user_input(source_crs)
    except CRSError as exc:
        raise BadArgument(
            f"source_crs {source_crs!r} is not a CRS pyproj knows (e.g. 'EPSG:2263')"
        ) from exc


def _to_wgs84(
    gdf: gpd.GeoDataFrame, path: Path, source_crs: str | None, report: ImportReport
) -> gpd.GeoDataFrame:
    """Return the frame in EPSG:4326, noting in ``report`` which CRS it came from."""
    file_crs: CRS | None = gdf.crs
    if file_crs is None:
        if source_crs is None:
            raise BadLayerFile(
                f"{path.name} declares no CRS: pass source_crs to say which one its "
                "coordinates are in (e.g. source_crs='EPSG:2263')"
            )
        crs = _parse_crs(source_crs)
        gdf = gdf.set_crs(crs)
    else:
        crs = CRS.from_user_input(file_crs)
        if source_crs is not None and not crs.equals(
            _parse_crs(source_crs), ignore_axis_order=True
        ):
            raise BadArgument(
                f"source_crs {source_crs!r} contradicts the CRS {_crs_name(crs)} that "
                f"{path.name} declares; leave source_crs unset for files that declare one"
            )
    report.source_crs = _crs_name(crs)
    if _is_wgs84(crs):
        return gdf
    report.reprojected_from = report.source_crs
    return gdf.to_crs(WGS84)


def _is_wgs84(crs: CRS) -> bool:
    return bool(crs.equals(WGS84, ignore_axis_order=True))


def _crs_name(crs: CRS) -> str:
    authority = crs.to_authority(min_confidence=70)
    return ":".join(authority) if authority else str(crs.name)


# --- values --------------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _text(value: Any) -> str | None:
    """Return a code, id or name as text (12.0 becomes "12"), or None when empty."""
    if _is_missing(value):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None
