"""The planner's analytics at a city's scale: the ward table in PostGIS beside geopandas.

Starts a throwaway PostGIS cluster and builds a city of 50 square wards (10 × 5, about
33 km × 22 km) with 15 categories, then generates a year of history set-based in SQL
(generate_series): incidents (85 % spread evenly, 15 % around 20 hot spots), one work order
each (90 % closed, taking 0.2–1.8 × the category's SLA), one first report each plus a
duplicate report for a quarter of them (so reports = 1.25 × incidents), reopen events for 3 %
and "fixed?" answers for 10 % of the closed ones.

For each size (default 100 thousand and 1 million reports) it times, as the median of
``--runs`` runs:

- the ward table (``maps.analytics.queries.ward_table``) for the year, for one month, for one
  category over the year, and for 10 Feb – 20 Nov (whole months from the month summaries,
  the ragged ends day by day): before (``summaries=False``, everything counted from the
  source tables) and now (from the summary tables, maps.analytics.rollup, built by one
  refresh after the history is generated), checked to give the same numbers, every figure of
  every ward and the city's, to the last bit (medians and 90th percentiles included);
- the baseline, in the same run: the same answer computed the way one would without the
  database doing it — load the period's reports and incidents (with their work orders) as
  points with geopandas (``read_postgis``), join them to the wards polygons in Python
  (``sjoin``), and group with pandas; its figures are checked against the API's (reports,
  incidents, duplicate share, median and p90 time to close, breach share, backlog per ward);
- the hotspot parts (clusters, hexagon cells with Gi*, repeats) for the year at each size.

    uv run python bench/planner.py [--sizes 100000,1000000] [--runs 5] [--data-dir DIR]

With ``--data-dir DIR`` the cluster lives in DIR and each city is kept there: the first run
generates the history and builds the summaries; a later run with the same DIR and size starts
that cluster and uses the stored city (the output says so), after checking that its report
count is the one recorded when it was built. A stored city is migrated to the current head
first, and its summaries rebuilt when the summary code or the migrations changed since (the
output says that too). ``--build-only`` stops once the cities are ready.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import psycopg
from rich.console import Console
from rich.table import Table

from geo311.kernel import migrate
from geo311.kernel.database import Database
from geo311.kernel.embedded import EmbeddedCluster
from maps.analytics import hotspots, queries, rollup

console = Console(width=200)

TZ = "America/Chicago"
YEAR_START = datetime(2025, 1, 1, 6, 0, tzinfo=UTC)  # local midnight
NOW = datetime(2026, 3, 1, tzinfo=UTC)
X0, Y0, DX, DY = -93.40, 44.85, 0.042, 0.040  # ward size in degrees (~3.3 km × 4.4 km)
COLS, ROWS = 10, 5
# code, group, SLA hours, dedup radius m
CATEGORIES = [
    ("pothole", "streets", 72, 25),
    ("sidewalk", "streets", 336, 30),
    ("sign", "streets", 168, 30),
    ("streetlight", "lighting", 120, 40),
    ("graffiti", "cleaning", 168, 30),
    ("dumping", "cleaning", 96, 40),
    ("litter", "cleaning", 72, 40),
    ("missed_pickup", "sanitation", 48, 50),
    ("dead_animal", "sanitation", 24, 50),
    ("noise", "housing", 24, 50),
    ("heat", "housing", 24, 30),
    ("hydrant", "water", 24, 50),
    ("water_main", "water", 12, 50),
    ("tree_down", "trees", 12, 30),
    ("tree_trim", "trees", 720, 30),
]


@contextmanager
def cluster(data_dir: Path | None) -> Iterator[EmbeddedCluster]:
    """Yield a started cluster: a throwaway one, or the one kept in ``data_dir``."""
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o755)  # the cluster's owner (postgres when run as root) walks into it
        pg = EmbeddedCluster(data_dir / "pg", durable=False)
        pg.start()
        try:
            yield pg
        finally:
            pg.stop()
        return
    root = Path(tempfile.mkdtemp(prefix="geo311-planner-bench-"))
    root.chmod(0o755)
    pg = EmbeddedCluster(root / "pg", durable=False)
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def make_city(pg: EmbeddedCluster, name: str) -> int:
    """Create database ``name``, migrated, with the 50-ward city; return the jurisdiction id."""
    pg.ensure_database(name)
    migrate.upgrade(pg.url(name))
    with psycopg.connect(pg.conninfo(name)) as conn:
        row = conn.execute(
            "INSERT INTO jurisdictions (slug, name, timezone) "
            "VALUES ('demo', 'Bench City', %s) RETURNING id",
            (TZ,),
        ).fetchone()
        assert row is not None
        jid = int(row[0])
        row = conn.execute(
            "INSERT INTO ward_maps (jurisdiction_id, name, valid_from) "
            "VALUES (%s, 'grid', '2000-01-01') RETURNING id",
            (jid,),
        ).fetchone()
        assert row is not None
        conn.execute(
            """
            INSERT INTO wards (jurisdiction_id, ward_map_id, code, name, population, geom)
            SELECT %(jid)s, %(map)s, (j * 10 + i + 1)::text, 'Ward ' || (j * 10 + i + 1),
                   8000 + ((i * 7 + j * 13) %% 11) * 1500,
                   ST_Multi(ST_MakeEnvelope(%(x0)s + i * %(dx)s, %(y0)s + j * %(dy)s,
                                            %(x0)s + (i + 1) * %(dx)s,
                                            %(y0)s + (j + 1) * %(dy)s, 4326))
            FROM generate_series(0, 9) i, generate_series(0, 4) j
            ORDER BY j, i
            """,
            {"jid": jid, "map": row[0], "x0": X0, "y0": Y0, "dx": DX, "dy": DY},
        )
        for code, group, sla, radius in CATEGORIES:
            conn.execute(
                "INSERT INTO service_categories (jurisdiction_id, code, name, group_code, "
                "dedup_radius_m, sla_hours) VALUES (%s, %s, %s, %s, %s, %s)",
                (jid, code, code.replace("_", " ").title(), group, radius, sla),
            )
    return jid


_INCIDENTS = """
WITH gen AS (
    SELECT g, 1 + floor(random() * %(ncat)s)::int AS k, random() AS r_spot,
           floor(random() * 20)::int AS spot, random() AS r_closed, random() AS r_dur,
           %(start)s + random() * interval '365 days' AS t,
           random() AS u, random() AS v,
           (random() + random() + random() - 1.5) * 0.004 AS du,
           (random() + random() + random() - 1.5) * 0.004 AS dv
    FROM generate_series(1, %(n)s) AS g
), placed AS (
    SELECT gen.*,
           CASE WHEN r_spot < 0.15 THEN %(x0)s + (0.05 + 0.9 * ((spot * 0.618) %% 1)) * %(w)s + du
                ELSE %(x0)s + u * %(w)s END AS x,
           CASE WHEN r_spot < 0.15 THEN %(y0)s + (0.05 + 0.9 * ((spot * 0.382) %% 1)) * %(h)s + dv
                ELSE %(y0)s + v * %(h)s END AS y,
           (CAST(%(codes)s AS text[]))[k] AS code,
           (CAST(%(slas)s AS float8[]))[k] AS sla
    FROM gen
), timed AS (
    SELECT placed.*,
           CASE WHEN r_closed < 0.9
                 AND t + (0.2 + 1.6 * r_dur) * sla * interval '1 hour' < %(now)s
                THEN t + (0.2 + 1.6 * r_dur) * sla * interval '1 hour' END AS closed
    FROM placed
)
INSERT INTO incidents (jurisdiction_id, category_code, status, geom, ward_id, opened_at,
                       due_at, closed_at, updated_at)
SELECT %(jid)s, code, CASE WHEN closed IS NULL THEN 'assigned' ELSE 'closed' END,
       ST_SetSRID(ST_MakePoint(x, y), 4326),
       (SELECT min(id) FROM wards) + least(4, floor((y - %(y0)s) / %(dy)s)::int) * 10
           + least(9, floor((x - %(x0)s) / %(dx)s)::int),
       t, t + sla * interval '1 hour', closed, coalesce(closed, t)
FROM timed
"""

_WORK_ORDERS = """
INSERT INTO work_orders (jurisdiction_id, incident_id, status, department, opened_at, due_at,
                         at_risk_at, resolved_at, completed_at)
SELECT i.jurisdiction_id, i.id, CASE WHEN i.closed_at IS NULL THEN 'assigned' ELSE 'completed' END,
       c.group_code, i.opened_at, i.due_at, i.due_at - (i.due_at - i.opened_at) / 4,
       i.closed_at, i.closed_at
FROM incidents i JOIN service_categories c
  ON c.jurisdiction_id = i.jurisdiction_id AND c.code = i.category_code
"""

_REPORTS = """
INSERT INTO reports (jurisdiction_id, tracking_id, incident_id, category_code, geom,
                     location_source, ward_id, channel, reported_at, dedup_decision)
SELECT jurisdiction_id, 'B' || id, id, category_code, geom, 'pin', ward_id, 'api', opened_at, 'new'
FROM incidents
UNION ALL
SELECT jurisdiction_id, 'D' || id, id, category_code, ST_SetSRID(ST_MakePoint(x, y), 4326),
       'pin',
       -- the ward of the duplicate's own point, as intake would place it
       (SELECT min(id) FROM wards) + least(4, floor((y - %(y0)s) / %(dy)s)::int) * 10
           + least(9, floor((x - %(x0)s) / %(dx)s)::int),
       'api', opened_at + random() * interval '48 hours', 'matched'
FROM (SELECT i.*,
             least(%(x1)s, greatest(%(x0)s, ST_X(geom) + (random() - 0.5) * 0.0001)) AS x,
             least(%(y1)s, greatest(%(y0)s, ST_Y(geom) + (random() - 0.5) * 0.0001)) AS y
      FROM incidents i WHERE random() < 0.25) d
"""

_AUDIT = """
INSERT INTO audit_events (jurisdiction_id, entity, entity_id, action, actor, to_state, data, at)
SELECT jurisdiction_id, 'incident', id, 'transition', 'bench', 'reopened', '{}'::jsonb,
       closed_at + interval '1 day'
FROM incidents WHERE closed_at IS NOT NULL AND random() < 0.03
UNION ALL
SELECT jurisdiction_id, 'incident', id, 'resident_answer', 'bench', NULL,
       jsonb_build_object('answer', CASE WHEN random() < 0.8 THEN 'fixed' ELSE 'not_fixed' END),
       closed_at + interval '2 hours'
FROM incidents WHERE closed_at IS NOT NULL AND random() < 0.10
"""


def grow(pg: EmbeddedCluster, name: str, jid: int, reports: int) -> float:
    """Generate a year of history with about ``reports`` reports; return the seconds taken."""
    started = time.perf_counter()
    with psycopg.connect(pg.conninfo(name)) as conn:
        conn.execute("SELECT setseed(0.311)")
        conn.execute(
            _INCIDENTS,
            {
                "n": round(reports / 1.25),
                "ncat": len(CATEGORIES),
                "codes": [c[0] for c in CATEGORIES],
                "slas": [float(c[2]) for c in CATEGORIES],
                "start": YEAR_START,
                "now": NOW,
                "jid": jid,
                "x0": X0,
                "y0": Y0,
                "dx": DX,
                "dy": DY,
                "w": DX * COLS,
                "h": DY * ROWS,
            },
        )
        conn.execute(_WORK_ORDERS)
        conn.execute(
            _REPORTS,
            {
                "x0": X0 + 1e-9,
                "y0": Y0 + 1e-9,
                "x1": X0 + COLS * DX - 1e-9,
                "y1": Y0 + ROWS * DY - 1e-9,
                "dx": DX,
                "dy": DY,
            },
        )
        conn.execute(_AUDIT)
    with psycopg.connect(pg.conninfo(name), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


# --- the hotspot statements as they were before the 1-million-report work ------------------
# Kept here to time them beside maps.analytics.hotspots' and check the answers agree.

BEFORE_CLUSTERS_SQL = """
WITH pts AS (
    SELECT r.category_code, r.incident_id, ST_Transform(r.geom, :srid) AS gm,
           c.dedup_radius_m * :factor AS eps_m
    FROM reports r
    JOIN service_categories c ON c.jurisdiction_id = r.jurisdiction_id AND c.code = r.category_code
    WHERE r.jurisdiction_id = :jid AND r.reported_at >= :start AND r.reported_at < :end{codes}
), clustered AS (
    -- eps is the same on every row of a partition (one category), as DBSCAN needs.
    SELECT category_code, incident_id, gm, eps_m,
           ST_ClusterDBSCAN(gm, eps := eps_m, minpoints := :min_reports)
               OVER (PARTITION BY category_code) AS cid
    FROM pts
)
SELECT category_code AS category, cid, count(*) AS reports,
       count(DISTINCT incident_id) AS incidents, max(eps_m) AS distance_m,
       ST_AsGeoJSON(ST_Transform(
           ST_Buffer(ST_ConvexHull(ST_Collect(gm)), max(eps_m) / 2, 4), 4326), 6) AS geometry
FROM clustered
WHERE cid IS NOT NULL
GROUP BY category_code, cid
ORDER BY count(*) DESC, category_code, cid
LIMIT :limit
"""

BEFORE_CELL_COUNTS_SQL = """
WITH pts AS MATERIALIZED (
    -- Materialised: each point is projected once (inlined, every use of x and y below would
    -- project it again).
    SELECT x, y, floor(x / (1.5 * :size))::bigint AS a
    FROM reports r
    CROSS JOIN LATERAL (SELECT ST_Transform(r.geom, :srid) AS p) t
    CROSS JOIN LATERAL (SELECT ST_X(t.p) AS x, ST_Y(t.p) AS y) xy
    WHERE r.jurisdiction_id = :jid AND r.reported_at >= :start AND r.reported_at < :end{codes}
), two AS (
    SELECT x, y, a,
           round(y / :h - 0.5e0 * (((a % 2) + 2) % 2))::bigint AS ja,
           round(y / :h - 0.5e0 * ((((a + 1) % 2) + 2) % 2))::bigint AS jb
    FROM pts
), cell AS (
    SELECT CASE WHEN da <= db THEN a ELSE a + 1 END AS i,
           CASE WHEN da <= db THEN ja ELSE jb END AS j
    FROM (SELECT a, ja, jb,
                 (x - 1.5 * :size * a) ^ 2
                     + (y - :h * (ja + 0.5e0 * (((a % 2) + 2) % 2))) ^ 2 AS da,
                 (x - 1.5 * :size * (a + 1)) ^ 2
                     + (y - :h * (jb + 0.5e0 * ((((a + 1) % 2) + 2) % 2))) ^ 2 AS db
          FROM two) d
)
SELECT i, j, count(*) AS reports FROM cell GROUP BY i, j
"""

BEFORE_REPEATS_SQL = """
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
    SELECT recent.*,
           ST_ClusterDBSCAN(gm, eps := :radius_m, minpoints := 2)
               OVER (PARTITION BY category_code) AS cid
    FROM recent
), ordered AS (
    SELECT s.*, COALESCE(o.n, 0) AS reopens,
           COALESCE('asset:' || s.asset_id, 'near:' || s.cid, 'incident:' || s.id) AS spot,
           -- the earliest closure among the spot's incidents opened before this one
           min(s.closed_at) OVER (
               PARTITION BY s.category_code,
                            COALESCE('asset:' || s.asset_id, 'near:' || s.cid, 'incident:' || s.id)
               ORDER BY s.opened_at, s.id
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS fixed_before
    FROM spotted s LEFT JOIN reopens o ON o.id = s.id
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

# The earlier statements fed DBSCAN the rows in whatever order the plan made (with parallel
# workers, a different one each run), and DBSCAN's answer depends on it: a border point goes
# to the cluster that reaches it first, and the clusters and spots cut at the limit were
# chosen by DBSCAN's cluster numbers. The references below are the earlier statements with
# only that fixed (clusters: rows in id order, ties at the cut ordered by their first report;
# repeats: a chain named by its first incident): the new statements must give exactly their
# answer.


def _edit(sql: str, *changes: tuple[str, str]) -> str:
    for old, new in changes:
        if sql.count(old) != 1:
            raise RuntimeError(f"reference statement: {old!r} not found once")
        sql = sql.replace(old, new)
    return sql


_ORDERED = ("OVER (PARTITION BY category_code) AS cid",
            "OVER (PARTITION BY category_code ORDER BY id) AS cid")  # fmt: skip
REFERENCE_REPEATS_SQL = _edit(
    BEFORE_REPEATS_SQL,
    # a chain named by its first incident (DBSCAN's numbers depend on the row order)
    (
        "OVER (PARTITION BY category_code) AS cid\n    FROM recent",
        "OVER (PARTITION BY category_code) AS dbscan_cid\n    FROM recent",
    ),
    (
        "FROM spotted s LEFT JOIN",
        "FROM (SELECT *, CASE WHEN dbscan_cid IS NOT NULL THEN min(id) OVER ("
        "PARTITION BY category_code, dbscan_cid, asset_id IS NULL) END AS cid"
        " FROM spotted) s LEFT JOIN",
    ),
)
REFERENCE_CLUSTERS_SQL = _edit(
    BEFORE_CLUSTERS_SQL,
    ("SELECT r.category_code,", "SELECT r.id, r.category_code,"),
    ("SELECT category_code, incident_id,", "SELECT id, category_code, incident_id,"),
    _ORDERED,
    (
        "ORDER BY count(*) DESC, category_code, cid",
        "ORDER BY count(*) DESC, category_code, min(id)",
    ),
)


@contextmanager
def statements(**sql: str) -> Iterator[None]:
    """Run maps.analytics.hotspots with other SQL for the given statements meanwhile."""
    saved = {name: getattr(hotspots, name) for name in sql}
    for name, text_ in sql.items():
        setattr(hotspots, name, text_)
    try:
        yield
    finally:
        for name, text_ in saved.items():
            setattr(hotspots, name, text_)


def features(collection: dict[str, Any]) -> list[str]:
    return [json.dumps(f, sort_keys=True) for f in collection["features"]]


def answers(fn: Callable[[], Any], runs: int) -> tuple[float, list[list[str]]]:
    """Return the median seconds of ``runs`` calls and each call's features."""
    times, found = [], []
    for _ in range(runs):
        started = time.perf_counter()
        collection = fn()
        times.append(time.perf_counter() - started)
        found.append(features(collection))
    return statistics.median(times), found


def agreement(runs: list[list[str]]) -> str:
    """Return how far repeated answers agree: 'all N' or 'K of N' features in common."""
    first = runs[0]
    common = min(len(set(first) & set(other)) for other in runs[1:]) if runs[1:] else len(first)
    if len(runs) < 2:
        return "-"
    return (
        f"all {len(first):,}"
        if common == len(first) and all(other == first for other in runs[1:])
        else f"{common:,} of {len(first):,}"
    )


# --- the baseline: points into Python, joined to the wards there ---------------------------


def baseline(db: Database, jid: int, period: queries.Period, codes: list[str] | None) -> Any:
    """Return per ward code: the figures computed by geopandas from the loaded points."""
    codes_sql = " AND category_code = ANY(%(codes)s)" if codes else ""
    with db.engine.connect() as conn:
        params = {"jid": jid, "start": period.start, "end": period.end, "codes": codes or []}
        wards = gpd.read_postgis(
            "SELECT code, geom FROM wards WHERE jurisdiction_id = %(jid)s",
            conn,
            geom_col="geom",
            params={"jid": jid},
        )
        reports = gpd.read_postgis(
            "SELECT geom, dedup_decision FROM reports WHERE jurisdiction_id = %(jid)s "
            "AND reported_at >= %(start)s AND reported_at < %(end)s" + codes_sql,
            conn,
            geom_col="geom",
            params=params,
        )
        incidents = gpd.read_postgis(
            "SELECT i.geom, i.opened_at, i.closed_at, w.due_at, w.resolved_at, w.paused_at, "
            "w.status AS wo_status FROM incidents i JOIN work_orders w "
            "ON w.jurisdiction_id = i.jurisdiction_id AND w.incident_id = i.id "
            "WHERE i.jurisdiction_id = %(jid)s AND i.opened_at >= %(start)s "
            "AND i.opened_at < %(end)s AND i.status <> 'cancelled'"
            + codes_sql.replace("category_code", "i.category_code"),
            conn,
            geom_col="geom",
            params=params,
        )
    r = gpd.sjoin(reports, wards, predicate="within", how="inner")
    by_ward = r.groupby("code").agg(
        reports=("dedup_decision", "size"),
        duplicates=("dedup_decision", lambda s: int(s.isin(["matched", "reopened"]).sum())),
    )
    i = gpd.sjoin(incidents, wards, predicate="within", how="inner")
    cutoff = min(period.end, NOW)
    i["close_h"] = (i["closed_at"] - i["opened_at"]).dt.total_seconds() / 3600
    clock = i["paused_at"].fillna(i["resolved_at"]).fillna(pd.Timestamp(NOW))
    i["breached"] = (i["wo_status"] != "cancelled") & (clock >= i["due_at"])
    i["decided"] = (i["wo_status"] != "cancelled") & (i["resolved_at"].notna() | i["breached"])
    i["backlog"] = i["closed_at"].isna() | (i["closed_at"] >= pd.Timestamp(cutoff))
    inc = i.groupby("code").agg(
        incidents=("backlog", "size"),
        median_close_h=("close_h", "median"),
        p90_close_h=(
            "close_h",
            lambda s: float(np.nanquantile(s, 0.9)) if s.notna().any() else None,
        ),
        breached=("breached", "sum"),
        decided=("decided", "sum"),
        backlog=("backlog", "sum"),
    )
    out = by_ward.join(inc, how="outer")
    out["duplicate_share"] = out["duplicates"] / out["reports"]
    out["sla_breach_share"] = out["breached"] / out["decided"]
    return out


def agree(table: queries.WardTable, frame: Any) -> str:
    """Return 'yes' when every ward's figures match the baseline's, else what differs."""
    diffs = []
    for row in table.rows:
        fig = row.compared.figures
        if row.ward.code not in frame.index:
            if fig.reports or fig.incidents:
                diffs.append(f"{row.ward.code}: missing in baseline")
            continue
        base = frame.loc[row.ward.code]
        for name in (
            "reports", "incidents", "duplicate_share", "median_close_h", "p90_close_h",
            "sla_breach_share", "backlog",
        ):  # fmt: skip
            mine, theirs = getattr(fig, name), base[name]
            if mine is None and (
                theirs is None or (isinstance(theirs, float) and math.isnan(theirs))
            ):
                continue
            if mine is None or not math.isclose(
                float(mine), float(theirs), rel_tol=1e-6, abs_tol=1e-6
            ):
                diffs.append(f"{row.ward.code}.{name}: {mine} vs {theirs}")
    return "yes" if not diffs else f"NO ({len(diffs)}: {diffs[:3]})"


def same(table: queries.WardTable, other: queries.WardTable) -> str:
    """Return 'yes' when the two ward tables' figures are the same numbers, else what differs."""
    diffs = []
    pairs = [(r.ward.code, r.compared.figures, o.compared.figures)
             for r, o in zip(table.rows, other.rows, strict=True)]  # fmt: skip
    pairs.append(("city", table.city, other.city))
    for code, mine, theirs in pairs:
        for name in mine.__dataclass_fields__:
            a, b = getattr(mine, name), getattr(theirs, name)
            if (a is None) != (b is None) or (a is not None and float(a) != float(b)):
                diffs.append(f"{code}.{name}: {a} vs {b}")
    return "yes" if not diffs else f"NO ({len(diffs)}: {diffs[:3]})"


def median_time(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def summaries_fingerprint() -> str:
    """Return a hash of what the stored summaries depend on: the summary code and the
    migrations (a stored city built with other ones has its summaries rebuilt)."""
    digest = hashlib.sha256(Path(rollup.__file__).read_bytes())
    for path in sorted(
        (Path(migrate.__file__).parents[1] / "migrations" / "versions").glob("*.py")
    ):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class City:
    """A generated city ready to query; ``note`` says whether it was built or reused."""

    name: str
    jid: int
    reports: int
    incidents: int
    generate_s: float
    refresh_s: float
    days: int
    note: str


def _count(pg: EmbeddedCluster, name: str, jid: int) -> tuple[int, int]:
    with psycopg.connect(pg.conninfo(name)) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM reports WHERE jurisdiction_id = %(jid)s),"
            " (SELECT count(*) FROM incidents WHERE jurisdiction_id = %(jid)s)",
            {"jid": jid},
        ).fetchone()
    assert counts is not None
    return int(counts[0]), int(counts[1])


def _refresh(pg: EmbeddedCluster, name: str, jid: int, *, rebuild_all: bool) -> tuple[float, int]:
    db = Database.connect(pg.url(name), pool_size=1)
    try:
        started = time.perf_counter()
        with db.session() as session:
            built = rollup.refresh(
                session, jurisdiction_id=jid, today=date(2026, 3, 1), rebuild_all=rebuild_all
            )
        seconds = time.perf_counter() - started
    finally:
        db.dispose()
    with psycopg.connect(pg.conninfo(name), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return seconds, built.days


def stored_city(pg: EmbeddedCluster, data_dir: Path, size: int) -> City | None:
    """Return the city of ``size`` kept in ``data_dir``, checked and brought up to date, or
    None when there is none (or only a half-built one, which is dropped)."""
    name = f"planner_{size}"
    record = data_dir / f"{name}.json"
    if not record.exists():
        pg.drop_database(name)  # a build that stopped half-way
        return None
    meta = json.loads(record.read_text())
    if meta["size"] != size:
        raise SystemExit(f"{record} is a city of {meta['size']} reports, not {size}")
    migrate.upgrade(pg.url(name))
    reports, incidents = _count(pg, name, meta["jid"])
    if (reports, incidents) != (meta["reports"], meta["incidents"]):
        raise SystemExit(
            f"{record}: the stored city has {reports:,} reports and {incidents:,} incidents, "
            f"not the {meta['reports']:,} and {meta['incidents']:,} it was built with; "
            f"remove {data_dir} to build it again"
        )
    note = f"stored in {data_dir}, built {meta['built_at']}"
    fingerprint = summaries_fingerprint()
    if meta["fingerprint"] != fingerprint:
        console.print(
            f"  {name}: summary code or migrations changed since it was built: rebuilding"
        )
        meta["refresh_s"], meta["days"] = _refresh(pg, name, meta["jid"], rebuild_all=True)
        meta["fingerprint"] = fingerprint
        record.write_text(json.dumps(meta, indent=1))
        note += f"; summaries rebuilt now ({meta['refresh_s']:.1f} s)"
    console.print(f"  {name}: using the stored city ({reports:,} reports), no generation")
    return City(
        name, meta["jid"], reports, incidents, meta["generate_s"], meta["refresh_s"],
        meta["days"], note,
    )  # fmt: skip


def new_city(pg: EmbeddedCluster, data_dir: Path | None, size: int) -> City:
    """Generate the city of ``size`` and build its summaries (recorded in ``data_dir``)."""
    name = f"planner_{size}"
    jid = make_city(pg, name)
    generate_s = grow(pg, name, jid, size)
    console.print(f"  {name}: generated in {generate_s:.1f} s, building the summaries")
    refresh_s, days = _refresh(pg, name, jid, rebuild_all=False)
    reports, incidents = _count(pg, name, jid)
    city = City(name, jid, reports, incidents, generate_s, refresh_s, days, "generated now")
    if data_dir is not None:
        with psycopg.connect(pg.conninfo(name), autocommit=True) as conn:
            conn.execute("CHECKPOINT")  # the kept cluster runs without fsync
        meta = {
            "size": size, "jid": jid, "reports": reports, "incidents": incidents,
            "generate_s": generate_s, "refresh_s": refresh_s, "days": days,
            "fingerprint": summaries_fingerprint(),
            "built_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        }  # fmt: skip
        (data_dir / f"{name}.json").write_text(json.dumps(meta, indent=1))
        city.note = f"generated now, kept in {data_dir}"
    return city


def run_size(
    pg: EmbeddedCluster, size: int, args: argparse.Namespace, gen: Table, table: Table, hot: Table
) -> None:
    """Build (or reuse) the city with ``size`` reports, time everything, add the rows; drop
    the city unless it is kept in ``--data-dir``."""
    city = (stored_city(pg, args.data_dir, size) if args.data_dir else None) or new_city(
        pg, args.data_dir, size
    )
    name, jid = city.name, city.jid
    gen.add_row(
        f"{city.reports:,}", f"{city.incidents:,}", f"{city.generate_s:.1f}",
        f"{city.refresh_s:.1f} ({city.days} days)", city.note,
    )  # fmt: skip
    if args.build_only:
        return
    n_reports = city.reports
    db = Database.connect(pg.url(name), pool_size=2)
    try:
        year = queries.resolve_period(
            first_day=date(2025, 1, 1), last_day=date(2025, 12, 31), timezone=TZ,
            max_days=731,
        )  # fmt: skip
        month = queries.resolve_period(
            first_day=date(2025, 6, 1), last_day=date(2025, 6, 30), timezone=TZ,
            max_days=731,
        )  # fmt: skip
        ragged = queries.resolve_period(
            first_day=date(2025, 2, 10), last_day=date(2025, 11, 20), timezone=TZ,
            max_days=731,
        )  # fmt: skip
        for label, period, category in (
            ()
            if args.hotspots_only
            else (
                ("year", year, None),
                ("month", month, None),
                ("year, pothole", year, "pothole"),
                ("10 Feb-20 Nov", ragged, None),
            )
        ):
            with db.session() as session:
                filters = queries.resolve_filters(
                    session, jurisdiction_id=jid, category=category, group=None
                )

                def run(
                    period: queries.Period = period,
                    filters: queries.Filters = filters,
                    summaries: bool = True,
                ) -> queries.WardTable:
                    return queries.ward_table(
                        session,
                        jurisdiction_id=jid,
                        period=period,
                        filters=filters,
                        min_cases=10,
                        now=NOW,
                        summaries=summaries,
                    )

                t_before, before = median_time(lambda: run(summaries=False), args.before_runs)
                t_sql, result = median_time(run, args.runs)
            console.print(
                f"  {n_reports:,} {label}: {t_before:.3f} s before, {t_sql:.3f} s now, "
                f"same: {same(result, before)}"
            )

            def in_python(period: queries.Period = period, category: str | None = category) -> Any:
                return baseline(db, jid, period, [category] if category else None)

            t_py, frame = median_time(in_python, args.baseline_runs)
            table.add_row(
                f"{n_reports:,}", label, f"{t_before:.3f}", f"{t_sql:.3f}",
                f"{t_before / t_sql:.1f}×", f"{t_py:.3f}", f"{t_py / t_sql:.1f}×",
                agree(result, frame), same(result, before),
            )  # fmt: skip
            console.print(f"  {n_reports:,} {label}: {t_py:.3f} s geopandas")
        if args.no_hotspots:
            return
        with db.session() as session:
            hot_rows(session, jid, year, n_reports, args, hot)
    finally:
        db.dispose()
        if args.data_dir is None:
            pg.drop_database(name)


def hot_rows(
    session: Any,
    jid: int,
    year: queries.Period,
    n_reports: int,
    args: argparse.Namespace,
    hot: Table,
) -> None:
    """Time each hotspot part before (the earlier statements) and now; check the answers."""
    filters = queries.Filters()
    srid = hotspots.metric_srid(session, jurisdiction_id=jid)

    def clusters(limit: int = 2000) -> Any:
        return hotspots.clusters(
            session, jurisdiction_id=jid, period=year, filters=filters,
            radius_factor=2.0, min_reports=5, srid=srid, limit=limit,
        )  # fmt: skip

    def cells() -> Any:
        return hotspots.cells(
            session, jurisdiction_id=jid, period=year, filters=filters, size_m=250,
            max_cells=40_000, permutations=999, seed=1, alpha=0.05, srid=srid,
        )  # fmt: skip

    def repeats() -> Any:
        return hotspots.repeats(
            session, jurisdiction_id=jid, period=year, filters=filters, radius_m=10, srid=srid
        )

    parts: list[tuple[str, Callable[[], Any], dict[str, str]]] = [
        ("clusters (DBSCAN)", clusters, {"_CLUSTERS_SQL": BEFORE_CLUSTERS_SQL}),
        ("hex 250 m + Gi*", cells, {"_CELL_COUNTS_SQL": BEFORE_CELL_COUNTS_SQL}),
        ("repeats", repeats, {"_REPEATS_SQL": BEFORE_REPEATS_SQL}),
    ]
    for part, fn, before_sql in parts:
        with statements(**before_sql):
            t_before, before_runs = answers(fn, args.hotspot_runs)
        t_now, now_runs = answers(fn, args.hotspot_runs)
        now = now_runs[-1]
        if part.startswith("hex"):
            same_ = "yes" if now == before_runs[-1] else "NO"
        elif part == "repeats":
            with statements(_REPEATS_SQL=REFERENCE_REPEATS_SQL):
                reference = features(fn())
            same_ = (
                "yes (earlier statement, chains named by first incident)"
                if now == reference
                else "NO"
            )
        else:
            # Every cluster, not only the 2,000 largest: the same clusters, to the point.
            everything = features(clusters(limit=1_000_000))
            with statements(_CLUSTERS_SQL=REFERENCE_CLUSTERS_SQL):
                reference = features(clusters(limit=1_000_000))
            same_ = (
                f"yes, all {len(everything):,} clusters (earlier statement, rows in id order)"
                if everything == reference
                else "NO"
            )
        hot.add_row(
            f"{n_reports:,}", part, f"{t_before:.3f}", f"{t_now:.3f}",
            f"{t_before / t_now:.1f}×", f"{len(now):,}", agreement(before_runs),
            agreement(now_runs), same_,
        )  # fmt: skip
        console.print(
            f"  {n_reports:,} {part}: {t_before:.3f} s before, {t_now:.3f} s now, "
            f"{len(now):,} features, same: {same_}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before-runs", type=int, default=3)
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument("--hotspot-runs", type=int, default=3)
    parser.add_argument("--hotspots-only", action="store_true", help="skip the ward table")
    parser.add_argument("--no-hotspots", action="store_true", help="skip the hotspots")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep the cluster and its cities here; a later run with the same sizes reuses them",
    )
    parser.add_argument(
        "--build-only", action="store_true", help="build (or check) the cities, time nothing"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    table = Table(title="Planner ward table: PostGIS (maps.analytics) vs geopandas in Python")
    for col in (
        "reports", "query", "source tables s", "summaries s", "speed-up", "geopandas s",
        "vs geopandas", "agree (geopandas)", "same (source)",
    ):  # fmt: skip
        table.add_column(col, justify="right")
    hot = Table(title="Hotspots (a year): the earlier statements (before) and maps.analytics's")
    for col in (
        "reports", "part", "before s", "now s", "speed-up", "features",
        "runs agree (before)", "runs agree (now)", "same answer",
    ):  # fmt: skip
        hot.add_column(col, justify="right")
    gen = Table(title="History generation")
    for col in ("reports", "incidents", "generation s", "summaries built s", "city"):
        gen.add_column(col, justify="right")

    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    console.print(f"load at start: {load.strip()}")
    with cluster(args.data_dir) as pg:
        for size in sizes:
            run_size(pg, size, args, gen, table, hot)
    console.print(gen)
    console.print(table)
    console.print(hot)
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    console.print(f"load at end: {load.strip()}")


if __name__ == "__main__":
    main()
