"""The ward table as files: CSV, GeoJSON and GeoPackage, named after the period and filters.

Every row carries the period and filters as columns too (``period_from``, ``period_to``,
``category``, ``group``), so a file that lost its name still says what it holds; the
GeoJSON also has them as top-level members. The city's value of each compared measure is a
``city_<measure>`` column beside the ward's, and the gap a ``gap_<measure>`` column.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

from maps.analytics.measures import COMPARED
from maps.analytics.schemas import WardTableOut

Format = Literal["csv", "geojson", "gpkg"]
MEDIA_TYPES: dict[Format, str] = {
    "csv": "text/csv; charset=utf-8",
    "geojson": "application/geo+json",
    "gpkg": "application/geopackage+sqlite3",
}


def file_stem(table: WardTableOut) -> str:
    """Return e.g. ``wards_2026-01-01_2026-01-31_category-pothole`` (safe in any file system)."""
    parts = ["wards", str(table.period.from_), str(table.period.to)]
    if table.filters.category is not None:
        parts.append(f"category-{table.filters.category}")
    if table.filters.group is not None:
        parts.append(f"group-{table.filters.group}")
    if table.cell_m is not None:
        parts.append(f"hex-{table.cell_m:g}m")
    return re.sub(r"[^A-Za-z0-9_.-]", "-", "_".join(parts))


def rows(table: WardTableOut) -> list[dict[str, Any]]:
    """Return one flat dict per ward: who, the period, the figures, city values and gaps."""
    city = table.city.model_dump()
    out = []
    for ward in table.wards:
        row: dict[str, Any] = {
            "ward_id": ward.id,
            "code": ward.code,
            "name": ward.name,
            "map": ward.map,
            "period_from": str(table.period.from_),
            "period_to": str(table.period.to),
            "category": table.filters.category or "",
            "group": table.filters.group or "",
            "population": ward.population,
            "assets": ward.assets,
            "whole_period": ward.whole_period,
            "too_few": ward.too_few,
        }
        data = ward.model_dump()
        for name in (
            "reports", "incidents", "duplicate_share", "rate_per_1000", "rate_per_asset",
            "median_close_h", "p90_close_h", "sla_breach_share", "on_time_share",
            "on_time_score", "backlog", "backlog_median_age_h", "reopen_share",
            "fixed_yes", "fixed_no", "fixed_share",
        ):  # fmt: skip
            row[name] = data[name]
        for name in COMPARED:
            row[f"city_{name}"] = city[name]
            row[f"gap_{name}"] = ward.gap.get(name)
            row[f"rank_{name}"] = ward.rank.get(name)
        out.append(row)
    return out


def render(table: WardTableOut, geometries: dict[int, bytes], fmt: Format) -> bytes:
    """Return the file's bytes in ``fmt``; polygons (EPSG:4326) in GeoJSON and GeoPackage."""
    import geopandas as gpd
    import pandas as pd  # type: ignore[import-untyped]
    from shapely import from_wkb

    flat = rows(table)
    if fmt == "csv":
        frame = pd.DataFrame(flat, columns=list(flat[0]) if flat else ["ward_id"])
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        return buffer.getvalue().encode("utf-8")
    geoms = [from_wkb(geometries[r["ward_id"]]) for r in flat]
    gdf = gpd.GeoDataFrame(flat, geometry=geoms, crs="EPSG:4326")
    if fmt == "geojson":
        document = json.loads(gdf.to_json(drop_id=True, to_wgs84=False))
        document["period"] = {"from": str(table.period.from_), "to": str(table.period.to)}
        document["filters"] = table.filters.model_dump()
        document["city"] = table.city.model_dump()
        return json.dumps(document).encode("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{file_stem(table)}.gpkg"
        gdf.to_file(path, layer=file_stem(table), driver="GPKG", engine="pyogrio")
        return path.read_bytes()
