"""Hotspots: clusters of reports, hexagon cells tested with Getis-Ord Gi*, repeat locations.

Analytics read model (read only): ``reports``, ``incidents``, ``audit_events``,
``service_categories`` (intake, work_orders) and ``wards``, ``ward_maps`` (layers).

- **Clusters**: ``ST_ClusterDBSCAN`` over the period's reports, one run per category (a
  window partition), with that category's distance: its duplicate radius
  (``dedup_radius_m``) × ``GEO311_ANALYTICS__CLUSTER_RADIUS_FACTOR`` (default 2: two reports
  of one spot are within one radius of it, so two radii reach across a spot), and at least
  ``CLUSTER_MIN_REPORTS`` reports. Each cluster is its convex hull grown by half the distance
  (so a cluster along a line is still an area), with its report and incident counts; the
  2,000 largest are sent.
- **Cells**: ``ST_HexagonGrid`` over the wards in force, in the city's UTM zone, each report
  counted in the cell holding it, all in PostGIS; then PySAL's Getis-Ord Gi* (``esda``) on
  those cell counts only, with binary contiguity weights built by ``libpysal`` from the
  cells' polygons (neighbours share an edge or corner) and a seeded permutation test.
- **Repeats**: a spot reported again after it was fixed: a new incident of the same
  category on the same asset, or within ``REPEAT_RADIUS_M`` (DBSCAN chains), of an incident
  closed before it (looking back a year before the period); and an incident reopened in the
  period (by a report or a "not fixed" answer).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo311.kernel.errors import FieldError, ValidationFailed
from maps.analytics.queries import Filters, HexGrid, Period, read_only_olap

GeoJSON = dict[str, Any]


def metric_srid(session: Session, *, jurisdiction_id: int) -> int:
    """Return the EPSG code of the UTM zone holding the middle of the city's wards."""
    row = session.execute(
        text(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)::geometry) AS c "
            "FROM wards WHERE jurisdiction_id = :jid) s"
        ),
        {"jid": jurisdiction_id},
    ).one()
    lon, lat = (row[0] or 0.0), (row[1] or 0.0)
    zone = min(60, int((lon + 180) // 6) + 1)
    return (32600 if lat >= 0 else 32700) + zone


def _codes(filters: Filters, alias: str) -> str:
    return f" AND {alias}.category_code = ANY(:codes)" if filters.codes is not None else ""


def _params(jurisdiction_id: int, period: Period, filters: Filters) -> dict[str, Any]:
    return {
        "jid": jurisdiction_id,
        "start": period.start,
        "end": period.end,
        "codes": list(filters.codes or ()),
    }


def _collection(features: list[GeoJSON]) -> GeoJSON:
    return {"type": "FeatureCollection", "features": features}


# --- clusters -----------------------------------------------------------------------------

_CLUSTERS_SQL = """
WITH clustered AS (
    -- eps is the same on every row of a partition (one category), as DBSCAN needs. The rows
    -- go in by id: DBSCAN gives a border point (near core points of two clusters) to the
    -- cluster it reaches first, so with the rows in whatever order the plan made (parallel
    -- workers' sorts merged) the same data gave other clusters from run to run.
    SELECT r.id, r.category_code, r.incident_id, r.geom, c.dedup_radius_m * :factor AS eps_m,
           ST_ClusterDBSCAN(ST_Transform(r.geom, :srid), eps := c.dedup_radius_m * :factor,
                            minpoints := :min_reports)
               OVER (PARTITION BY r.category_code ORDER BY r.id) AS cid
    FROM reports r
    JOIN service_categories c ON c.jurisdiction_id = r.jurisdiction_id AND c.code = r.category_code
    WHERE r.jurisdiction_id = :jid AND r.reported_at >= :start AND r.reported_at < :end{codes}
)
SELECT category_code AS category, count(*) AS reports,
       count(DISTINCT incident_id) AS incidents, max(eps_m) AS distance_m,
       -- projected here, once per cluster sent, not once more per report
       ST_AsGeoJSON(ST_Transform(ST_Buffer(ST_ConvexHull(ST_Transform(ST_Collect(geom), :srid)),
                                           max(eps_m) / 2, 4), 4326), 6) AS geometry
FROM clustered
WHERE cid IS NOT NULL
GROUP BY category_code, cid
-- Ties (many clusters of a few reports) are cut at the limit by the cluster's first report,
-- not by DBSCAN's cluster number, which says nothing about the cluster.
ORDER BY count(*) DESC, category_code, min(id)
LIMIT :limit
"""


def clusters(
    session: Session,
    *,
    jurisdiction_id: int,
    period: Period,
    filters: Filters,
    radius_factor: float,
    min_reports: int,
    srid: int,
    limit: int = 2000,
) -> GeoJSON:
    """Return the period's report clusters as GeoJSON polygons, the ``limit`` largest."""
    read_only_olap(session)
    params = _params(jurisdiction_id, period, filters) | {
        "srid": srid,
        "factor": radius_factor,
        "min_reports": min_reports,
        "limit": limit,
    }
    rows = session.execute(text(_CLUSTERS_SQL.format(codes=_codes(filters, "r"))), params)
    return _collection(
        [
            {
                "type": "Feature",
                "geometry": json.loads(r.geometry),
                "properties": {
                    "category": r.category,
                    "reports": r.reports,
                    "incidents": r.incidents,
                    "distance_m": r.distance_m,
                },
            }
            for r in rows
        ]
    )


# --- hexagon cells and Gi* ----------------------------------------------------------------

_CELL_COUNT_SQL = """
WITH area AS (
    SELECT ST_Transform(ST_SetSRID(ST_Extent(w.geom)::geometry, 4326), :srid) AS box
    FROM wards w JOIN ward_maps m ON m.jurisdiction_id = w.jurisdiction_id AND m.id = w.ward_map_id
    WHERE w.jurisdiction_id = :jid AND m.valid_from < :end
      AND (m.valid_to IS NULL OR m.valid_to > :start)
)
SELECT (ST_XMax(box) - ST_XMin(box) + 2 * :size) * (ST_YMax(box) - ST_YMin(box) + 2 * :size)
       / (2.598076 * :size * :size) AS cells
FROM area
"""

_GRID_SQL = """
WITH inforce AS (
    SELECT w.geom
    FROM wards w JOIN ward_maps m ON m.jurisdiction_id = w.jurisdiction_id AND m.id = w.ward_map_id
    WHERE w.jurisdiction_id = :jid AND m.valid_from < :end
      AND (m.valid_to IS NULL OR m.valid_to > :start)
), area AS (
    -- One polygon in metres: each cell is tested against it (a prepared geometry, cached).
    SELECT ST_Transform(ST_Union(geom), :srid) AS geom FROM inforce
)
SELECT g.i, g.j, ST_AsBinary(g.geom) AS wkb,
       ST_AsGeoJSON(ST_Transform(g.geom, 4326), 6) AS geometry
FROM area, ST_HexagonGrid(:size, area.geom) AS g
WHERE ST_Intersects(area.geom, g.geom)
ORDER BY g.i, g.j
"""

# A report's cell is the hexagon whose centre is nearest (hexagons are the Voronoi cells of
# their centres), computed arithmetically in ST_HexagonGrid's own layout: cell (i, j) is
# centred at (1.5·s·i, √3·s·(j + ½·(i mod 2))) for edge s, origin (0, 0). Only the two
# candidate columns around x can hold the point. (ST_HexagonGrid over each point would give
# the cells whose *boxes* hold it, and is far slower.)
# (The counts are joined to the grid in Python, on the few thousand aggregated cells: the
# planner cannot know how many cells ST_HexagonGrid makes and would join them in a loop.)
# How it runs at a million reports: the points are projected by parallel workers into a
# materialised CTE of two floats each (the projection is the dear part); the arithmetic is
# in float8 only (numeric literals made it numeric, about three times slower) and each step
# is fenced (OFFSET 0) so it is computed once, not once per use of its result after the
# planner inlines it; the cells are then counted in one hash table.
_CELL_COUNTS_SQL = """
WITH pts AS MATERIALIZED (
    SELECT ST_X(t.p) AS x, ST_Y(t.p) AS y
    FROM reports r
    CROSS JOIN LATERAL (SELECT ST_Transform(r.geom, :srid) AS p) t
    WHERE r.jurisdiction_id = :jid AND r.reported_at >= :start AND r.reported_at < :end{codes}
)
SELECT i, j, count(*) AS reports
FROM (
    SELECT CASE WHEN da <= db THEN a ELSE a + 1 END AS i,
           (CASE WHEN da <= db THEN ja ELSE jb END)::bigint AS j
    FROM (
        SELECT a, ja, jb,
               (x - 1.5 * :size * a) ^ 2 + (y - :h * (ja + oa)) ^ 2 AS da,
               (x - 1.5 * :size * (a + 1)) ^ 2 + (y - :h * (jb + ob)) ^ 2 AS db
        FROM (
            SELECT x, y, a, oa, ob, round(y / :h - oa) AS ja, round(y / :h - ob) AS jb
            FROM (
                -- the two candidate columns' vertical offsets: 0 or ½ a row
                SELECT x, y, a, (a & 1)::float8 * 0.5 AS oa, ((a + 1) & 1)::float8 * 0.5 AS ob
                FROM (SELECT x, y, floor(x / (1.5 * :size))::bigint AS a FROM pts) u
                OFFSET 0
            ) o OFFSET 0
        ) v OFFSET 0
    ) d
) c
GROUP BY i, j
"""


@dataclass(frozen=True)
class GiResult:
    """Getis-Ord Gi* per cell: z-score and permutation pseudo p-value (in z's direction)."""

    z: np.ndarray[Any, Any]
    p: np.ndarray[Any, Any]


def gi_star(
    counts: np.ndarray[Any, Any], polygons: list[Any], *, permutations: int, seed: int
) -> GiResult:
    """Return Gi* for aggregated cell counts, with weights from the cells' own polygons.

    Binary weights (a cell and the cells touching it, the cell itself included: the "star"),
    conditional permutations seeded so the same data gives the same p-values. The z-score is
    esda's (normal approximation). The p-value is one-sided in the direction of z and counts
    ties against significance: (1 + #simulated ≥ observed) / (1 + permutations) for z ≥ 0,
    (1 + #simulated ≤ observed) / (1 + permutations) below. (esda's own ``p_sim`` folds ties
    the other way, so a quiet cell among quiet cells, every permutation equal to it, would come
    out "significantly cold" at p = 0.001.)
    """
    import esda
    import geopandas as gpd
    import libpysal

    frame = gpd.GeoDataFrame({"n": counts}, geometry=polygons)
    weights = libpysal.weights.Queen.from_dataframe(frame, use_index=False, silence_warnings=True)
    weights.transform = "B"
    # The statistic and its z-score from esda; the permutations below (esda's own loop runs
    # in pure Python without numba: about a minute for a year's 250 m cells).
    gi = esda.G_Local(counts.astype(float), weights, transform="B", star=True, permutations=0)
    observed = np.asarray(gi.Gs, dtype=float)[:, None]
    simulated = conditional_permutations(
        counts.astype(float), gi.w.sparse.tocsr(), permutations=permutations, seed=seed
    )
    tolerance = 1e-12 * np.maximum(1.0, np.abs(observed))
    above = (simulated >= observed - tolerance).sum(axis=1)
    below = (simulated <= observed + tolerance).sum(axis=1)
    z = np.asarray(gi.Zs, dtype=float)
    p = (1 + np.where(z >= 0, above, below)) / (1 + permutations)
    return GiResult(z=z, p=p)


def conditional_permutations(
    values: np.ndarray[Any, Any], weights: Any, *, permutations: int, seed: int, chunk: int = 256
) -> np.ndarray[Any, Any]:
    """Return Gi* under conditional randomisation, shape (cells, permutations): each cell keeps
    its own value and its neighbours' places are filled with values drawn without replacement
    from the *other* cells, the same draws for every cell (as esda does).

    ``weights``: the sparse (CSR) matrix esda's G_Local used, the star's self-weight on the
    diagonal. Vectorised in chunks of cells: a fraction of a second for thousands of cells.
    """
    n = len(values)
    total = values.sum()
    self_weight = weights.diagonal()
    off = weights.tolil()
    off.setdiag(0)
    off = off.tocsr()
    off.eliminate_zeros()
    cardinality = np.diff(off.indptr)
    k_max = int(cardinality.max()) if n else 0
    padded = np.zeros((n, max(k_max, 1)))
    for i in range(n):
        row = off.data[off.indptr[i] : off.indptr[i + 1]]
        padded[i, : len(row)] = row
    rng = np.random.default_rng(seed)
    # Draws among the n − 1 others: index d stands for cell d, or d + 1 from the cell itself on.
    draws = np.stack([rng.choice(n - 1, size=k_max, replace=False) for _ in range(permutations)])
    out = np.empty((n, permutations))
    for start in range(0, n, chunk):
        cells = np.arange(start, min(n, start + chunk))
        ids = draws[None, :, :] + (draws[None, :, :] >= cells[:, None, None])
        lag = np.einsum("cpk,ck->cp", values[ids], padded[cells, :k_max])
        out[cells] = (lag + self_weight[cells, None] * values[cells, None]) / total
    return out


def check_cell_count(
    session: Session, *, params: dict[str, Any], size_m: float, max_cells: int
) -> None:
    """Raise ValidationFailed (size_m) when hexagons of ``size_m`` would lay more than
    ``max_cells`` cells over the city's wards in force (``params``: jid, start, end, srid,
    size)."""
    estimate = session.scalar(text(_CELL_COUNT_SQL), params)
    if estimate is not None and estimate > max_cells:
        raise ValidationFailed(
            f"Cells of {size_m:g} m would be about {int(estimate)} over this city; at most "
            f"{max_cells}: choose a larger size_m.",
            errors=[FieldError("size_m", "Too many cells for this city.", "too_many_cells")],
        )


def hex_grid(
    session: Session,
    *,
    jurisdiction_id: int,
    period: Period,
    size_m: float,
    max_cells: int,
) -> HexGrid:
    """Return the hexagon grid of edge ``size_m`` in the city's metric SRID for the ward
    table, or raise ValidationFailed when it would have more than ``max_cells`` cells."""
    srid = metric_srid(session, jurisdiction_id=jurisdiction_id)
    check_cell_count(
        session,
        params={"jid": jurisdiction_id, "start": period.start, "end": period.end}
        | {"srid": srid, "size": size_m},
        size_m=size_m,
        max_cells=max_cells,
    )
    return HexGrid(srid=srid, size_m=size_m)


def hex_geometries(session: Session, *, grid: HexGrid, codes: Sequence[str]) -> dict[str, bytes]:
    """Return each hexagon ("i,j") as a WKB polygon in EPSG:4326, for exports."""
    cells = [tuple(int(n) for n in code.split(",")) for code in codes]
    rows = session.execute(
        text(
            """
            SELECT c.i, c.j, ST_AsBinary(ST_Transform(
                       ST_Hexagon(:size, c.i, c.j, ST_SetSRID(ST_MakePoint(0, 0), :srid)),
                       4326)) AS wkb
            FROM unnest(CAST(:i AS integer[]), CAST(:j AS integer[])) AS c(i, j)
            """
        ),
        {
            "size": grid.size_m,
            "srid": grid.srid,
            "i": [c[0] for c in cells],
            "j": [c[1] for c in cells],
        },
    ).all()
    return {f"{r.i},{r.j}": bytes(r.wkb) for r in rows}


def cells(
    session: Session,
    *,
    jurisdiction_id: int,
    period: Period,
    filters: Filters,
    size_m: float,
    max_cells: int,
    permutations: int,
    seed: int,
    alpha: float,
    srid: int,
) -> GeoJSON:
    """Return hexagon cells with their report counts and Gi* z-score, p-value and verdict.

    Only cells with reports or a significant verdict are returned (the empty background is
    tested but not sent). ``hot``: z > 0 and p < alpha; ``cold``: z < 0 and p < alpha."""
    from shapely import from_wkb

    read_only_olap(session)
    params = _params(jurisdiction_id, period, filters) | {
        "srid": srid,
        "size": size_m,
        "h": math.sqrt(3) * size_m,
    }
    check_cell_count(session, params=params, size_m=size_m, max_cells=max_cells)
    rows = session.execute(text(_GRID_SQL), params).all()
    if not rows:
        return _collection([])
    per_cell = {
        (r.i, r.j): r.reports
        for r in session.execute(text(_CELL_COUNTS_SQL.format(codes=_codes(filters, "r"))), params)
    }
    counts = np.array([per_cell.get((r.i, r.j), 0) for r in rows], dtype=float)
    if len(rows) > 1 and counts.sum() > 0:
        gi = gi_star(
            counts,
            [from_wkb(bytes(r.wkb)) for r in rows],
            permutations=permutations,
            seed=seed,
        )
        z, p = gi.z, gi.p
    else:
        z, p = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    features = []
    for r, n, zi, pi in zip(rows, counts, z, p, strict=True):
        significant = bool(np.isfinite(pi) and pi < alpha)
        verdict = ("hot" if zi > 0 else "cold") if significant else "not_significant"
        if n == 0 and not significant:
            continue
        features.append(
            {
                "type": "Feature",
                "geometry": json.loads(r.geometry),
                "properties": {
                    "i": r.i,
                    "j": r.j,
                    "reports": int(n),
                    "gi_z": None if not np.isfinite(zi) else round(float(zi), 4),
                    "gi_p": None if not np.isfinite(pi) else round(float(pi), 4),
                    "verdict": verdict,
                },
            }
        )
    return _collection(features)


# --- repeat locations ---------------------------------------------------------------------

REPEAT_LOOKBACK_DAYS = 365

_REPEATS_SQL = """
WITH recent AS (
    SELECT i.id, i.category_code, i.asset_id, i.opened_at, i.closed_at, i.geom,
           ST_Transform(i.geom, :srid) AS gm
    FROM incidents i
    WHERE i.jurisdiction_id = :jid AND i.opened_at >= :lookback AND i.opened_at < :end
      AND i.status <> 'cancelled'{codes}
), reopens AS (
    SELECT entity_id AS id, count(*) AS n
    FROM audit_events
    WHERE jurisdiction_id = :jid AND entity = 'incident' AND to_state = 'reopened'
      AND at >= :start AND at < :end
    GROUP BY entity_id
), spotted AS (
    -- A spot: the snapped asset, else a chain of incidents within the radius of each other.
    -- (With two incidents enough, every incident of a chain is a core point: the chains do
    -- not depend on the order DBSCAN reads the rows in, only their numbers do.)
    SELECT recent.*,
           ST_ClusterDBSCAN(gm, eps := :radius_m, minpoints := 2)
               OVER (PARTITION BY category_code) AS cid
    FROM recent
), candidates AS (
    -- Only a spot of two incidents or more (an asset's, a chain) or a reopened incident can
    -- have been reported again: the lone, never reopened incidents (nearly all of them) are
    -- dropped here, before the spots are sorted and grouped.
    SELECT s.*, COALESCE(o.n, 0) AS reopens
    FROM spotted s LEFT JOIN reopens o ON o.id = s.id
    WHERE s.asset_id IS NOT NULL OR s.cid IS NOT NULL OR o.n IS NOT NULL
), named AS (
    -- A chain is named by its first incident, not by DBSCAN's number for it (which depends
    -- on the order the rows came in): spots tied on their count are listed in that order.
    SELECT c.*,
           COALESCE('asset:' || c.asset_id,
                    CASE WHEN c.cid IS NOT NULL
                         THEN 'near:' || min(c.id) FILTER (WHERE c.asset_id IS NULL)
                                             OVER (PARTITION BY c.category_code, c.cid) END,
                    'incident:' || c.id) AS spot
    FROM candidates c
), ordered AS (
    SELECT c.*,
           -- the earliest closure among the spot's incidents opened before this one
           min(c.closed_at) OVER (
               PARTITION BY c.category_code, c.spot
               ORDER BY c.opened_at, c.id
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS fixed_before
    FROM named c
)
SELECT category_code AS category, spot, min(asset_id) AS asset_id,
       count(*) FILTER (WHERE opened_at >= :start) AS incidents,
       count(*) FILTER (WHERE opened_at >= :start AND fixed_before < opened_at)
           + sum(reopens) AS reported_again,
       max(opened_at) AS last_at,
       ST_AsGeoJSON(ST_Centroid(ST_Collect(geom)), 6) AS geometry
FROM ordered
GROUP BY category_code, spot
HAVING count(*) FILTER (WHERE opened_at >= :start AND fixed_before < opened_at)
       + sum(reopens) > 0
ORDER BY reported_again DESC, category_code, spot
LIMIT :limit
"""


def repeats(
    session: Session,
    *,
    jurisdiction_id: int,
    period: Period,
    filters: Filters,
    radius_m: float,
    srid: int,
    limit: int = 500,
) -> GeoJSON:
    """Return spots reported again after being fixed, as points, most repeated first.

    A spot is an asset (incidents snapped to it) or a chain of incidents of one category
    within ``radius_m`` of each other (DBSCAN, two are enough), over the period and the
    ``REPEAT_LOOKBACK_DAYS`` before it. An incident opened in the period counts as
    "reported again" when an earlier incident of its spot had been closed before it opened;
    each reopening in the period counts too (a report that reopened it, or "not fixed").
    """
    read_only_olap(session)
    params = _params(jurisdiction_id, period, filters) | {
        "radius_m": radius_m,
        "srid": srid,
        "lookback": period.start - timedelta(days=REPEAT_LOOKBACK_DAYS),
        "limit": limit,
    }
    sql = _REPEATS_SQL.format(codes=_codes(filters, "i"))
    return _collection(
        [
            {
                "type": "Feature",
                "geometry": json.loads(r.geometry),
                "properties": {
                    "category": r.category,
                    "spot": r.spot.split(":")[0],
                    "asset_id": r.asset_id,
                    "incidents": r.incidents,
                    "reported_again": int(r.reported_again),
                    "last_at": r.last_at.isoformat(),
                },
            }
            for r in session.execute(text(sql), params)
        ]
    )


# --- heat ---------------------------------------------------------------------------------

# The heat layer's finest cell, and the most cells one answer carries: past that the cells
# double in size until they fit (a year of a big city at 50 m is far more than a browser
# needs to draw a smooth heat surface).
HEAT_CELL_M = 50.0
HEAT_MAX_CELLS = 4_000

_HEAT_SQL = """
SELECT ST_Y(ST_Transform(cell, 4326)) AS lat, ST_X(ST_Transform(cell, 4326)) AS lon, n
FROM (
    SELECT ST_SnapToGrid(ST_Transform(r.geom, :srid), :cell_m) AS cell, count(*) AS n
    FROM reports r
    WHERE r.jurisdiction_id = :jid AND r.reported_at >= :start AND r.reported_at < :end{codes}
    GROUP BY 1
) s
LIMIT :limit
"""


@dataclass(frozen=True)
class Heat:
    """Report counts per square cell (its centre); ``cell_m``: the edge the cells ended up."""

    cell_m: float
    cells: list[tuple[float, float, int]]


def heat(
    session: Session,
    *,
    jurisdiction_id: int,
    period: Period,
    filters: Filters,
    srid: int,
    cell_m: float = HEAT_CELL_M,
    max_cells: int = HEAT_MAX_CELLS,
) -> Heat:
    """Return the period's reports counted per square cell of the city's UTM grid.

    Each report is snapped to the nearest node of a ``cell_m`` grid in metres (so the cell
    is the square around that node), and only the nodes with their counts leave PostGIS."""
    read_only_olap(session)
    sql = text(_HEAT_SQL.format(codes=_codes(filters, "r")))
    params = {**_params(jurisdiction_id, period, filters), "srid": srid, "limit": max_cells + 1}
    while True:
        rows = session.execute(sql, {**params, "cell_m": cell_m}).all()
        if len(rows) <= max_cells:
            return Heat(cell_m, [(round(r.lat, 6), round(r.lon, 6), r.n) for r in rows])
        cell_m *= 2
