"""Step 2 of an import, **place**: every staged row's ward, asset and (outside the wards)
nearest ward, set-based in PostGIS; the rows read back in time order; the stored incidents
still live when the file starts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import psycopg

from geo311.resident.dedup.importing.replay import Live, Replay
from geo311.resident.dedup.scoring import (
    UNMATCHABLE_STATUSES,
)

# Placement, set-based (each statement one pass over the staged rows, using the indexes). The
# jurisdiction's wards (with their map's validity) and the assets of the snapping types within
# the staged rows' extent are first copied beside the staged rows, so that every join is
# between tables of the session (Citus joins no distributed table to a session's own):
# - the ward on the ward map in force at the row's time; on a shared boundary the code that
#   sorts first, as online intake. The wards drive the join, each probing the staged points'
#   own gist index: one ward's polygon meets many points in a row, so PostGIS prepares it once
#   (measured 4.6× faster than one look-up per row);
# - the asset: the nearest of the category's asset type within its snap radius (KNN on
#   geography), for the rows of categories that snap;
# - for rows in no ward, when the import keeps or places such rows, the nearest ward within
#   %(within)s metres (the geometry box only narrows the search to the wards nearby).
_PLACE_SQL = (
    # The planner needs only the staged tables' sizes and a rough spread of their points: a
    # small sample (3,000 rows, not 30,000) is enough for that, and a full one cost more than
    # the ward join itself (the statistics of a geometry, and of the asset pool's geography
    # index, are slow to gather). For the import's transaction only.
    "SET LOCAL default_statistics_target = 10",
    "CREATE INDEX import_rows_pt ON import_rows USING gist (pt) WHERE skip IS NULL",
    "ANALYZE import_rows",
    """
CREATE TEMP TABLE import_ward_pool AS
SELECT w.id, w.code, w.geom, m.valid_from, m.valid_to
FROM wards AS w
JOIN ward_maps AS m ON m.jurisdiction_id = w.jurisdiction_id AND m.id = w.ward_map_id
WHERE w.jurisdiction_id = CAST(%(jid)s AS smallint)
""",
    "CREATE INDEX ON import_ward_pool USING gist (geom)",
    "ANALYZE import_ward_pool",
    """
CREATE TEMP TABLE import_asset_pool AS
SELECT a.id, a.asset_type, a.geom
FROM assets AS a
WHERE a.jurisdiction_id = CAST(%(jid)s AS smallint)
  AND a.asset_type IN (SELECT DISTINCT asset_type FROM import_rows
                       WHERE skip IS NULL AND asset_type IS NOT NULL)
  AND a.geom && (SELECT ST_Expand(ST_SetSRID(CAST(ST_Extent(pt) AS geometry), 4326),
                                  max(snap_m) / (110000.0 * greatest(
                                      cos(radians(max(abs(lat)) + 1.0)), 0.01)))
                 FROM import_rows WHERE skip IS NULL AND asset_type IS NOT NULL)
""",
    "CREATE INDEX ON import_asset_pool USING gist (CAST(geom AS geography))",
    "ANALYZE import_asset_pool",
    """
CREATE TEMP TABLE import_wards AS
SELECT DISTINCT ON (r.seq) r.seq, w.id AS ward_id
FROM import_ward_pool AS w
JOIN import_rows AS r ON ST_Covers(w.geom, r.pt)
 AND w.valid_from <= r.t AND (w.valid_to IS NULL OR r.t < w.valid_to)
WHERE r.skip IS NULL
ORDER BY r.seq, w.code
""",
    "ANALYZE import_wards",
    """
CREATE TEMP TABLE import_assets AS
SELECT r.seq, a.id AS asset_id
FROM import_rows AS r
CROSS JOIN LATERAL (
    SELECT a.id
    FROM import_asset_pool AS a
    WHERE a.asset_type = r.asset_type
      AND ST_DWithin(CAST(a.geom AS geography), CAST(r.pt AS geography), r.snap_m)
    ORDER BY CAST(a.geom AS geography) <-> CAST(r.pt AS geography)
    LIMIT 1
) AS a
WHERE r.skip IS NULL AND r.asset_type IS NOT NULL
""",
    """
CREATE TEMP TABLE import_near AS
SELECT r.seq, n.id AS near_ward_id
FROM import_rows AS r
CROSS JOIN LATERAL (
    SELECT w.id
    FROM import_ward_pool AS w
    WHERE w.valid_from <= r.t AND (w.valid_to IS NULL OR r.t < w.valid_to)
      AND w.geom && ST_Expand(r.pt, %(within)s / (110000.0 * greatest(cos(radians(r.lat)), 0.01)))
      AND ST_DWithin(CAST(w.geom AS geography), CAST(r.pt AS geography), %(within)s)
    ORDER BY ST_Distance(CAST(w.geom AS geography), CAST(r.pt AS geography)), w.code
    LIMIT 1
) AS n
WHERE r.skip IS NULL AND %(near)s
  AND NOT EXISTS (SELECT FROM import_wards AS p WHERE p.seq = r.seq)
""",
    "ANALYZE import_assets",
    "ANALYZE import_near",
)

# The placed rows in time order; rows of the same time keep the tie-break column's order
# (numbers as numbers), then the file's.
REPLAY_SQL = """
SELECT r.seq, r.ext_id, r.t, r.category, r.lon, r.lat, r.address, r.description, r.closed_at,
       p.ward_id, a.asset_id, n.near_ward_id
FROM import_rows AS r
LEFT JOIN import_wards AS p ON p.seq = r.seq
LEFT JOIN import_assets AS a ON a.seq = r.seq
LEFT JOIN import_near AS n ON n.seq = r.seq
WHERE r.skip IS NULL
ORDER BY r.t, r.tie_num, r.tie, r.seq
"""


def prepare(reader: psycopg.Connection[Any], replay: Replay) -> int:
    """Size the grid for the staged rows and load the stored incidents still live when they
    start; return how many rows are to be placed and decided."""
    extent = reader.execute(
        "SELECT min(t), max(abs(lat)), count(*) FROM import_rows WHERE skip IS NULL"
    ).fetchone()
    assert extent is not None
    first_t, max_abs_lat, todo = extent
    if todo:
        replay.start(float(max_abs_lat))
        load_existing(reader, replay, first_t)
    return int(todo)


def place(reader: psycopg.Connection[Any], replay: Replay) -> None:
    """Find every staged row's ward, asset and (outside the wards) nearest ward, set-based."""
    params = {
        "jid": replay.jid,
        "near": replay.outside_rule != "skip",
        "within": replay.outside_within_m,
    }
    for statement in _PLACE_SQL:
        reader.execute(statement, params)


def load_existing(reader: psycopg.Connection[Any], replay: Replay, first_t: datetime) -> None:
    """Make the stored incidents that are still live when the file starts into candidates."""
    rows = reader.execute(
        """
        SELECT i.id, i.category_code, i.status, ST_X(i.geom), ST_Y(i.geom), i.asset_id,
               i.opened_at, i.closed_at, agg.last_t, agg.addresses, agg.reports
        FROM incidents AS i
        CROSS JOIN LATERAL (
            SELECT max(r.reported_at) AS last_t,
                   array_agg(r.address) FILTER (WHERE r.address IS NOT NULL) AS addresses,
                   array_agg(ARRAY[r.id::text, ST_X(r.geom)::text, ST_Y(r.geom)::text,
                                   coalesce(r.external_id, r.tracking_id)]) AS reports
            FROM reports AS r
            WHERE r.jurisdiction_id = i.jurisdiction_id AND r.incident_id = i.id
        ) AS agg
        WHERE i.jurisdiction_id = CAST(%(jid)s AS smallint)
          AND i.status <> ALL (%(dead)s)
          AND (i.closed_at IS NULL OR i.closed_at >= %(since)s)
          AND agg.last_t >= %(since)s
        """,
        {"jid": replay.jid, "dead": list(UNMATCHABLE_STATUSES), "since": first_t - replay.keep},
    ).fetchall()
    for row in rows:
        (inc_id, code, status, lon, lat, asset_id, opened_at, closed_at, last_t, addrs, reps) = row
        if code not in replay.group_of:
            continue
        live = Live(
            id=inc_id,
            category=code,
            group=replay.group_of[code],
            lon=lon,
            lat=lat,
            asset_id=asset_id,
            opened_at=opened_at,
            last_t=last_t,
            closed_at=closed_at,
            status=status,
        )
        for address in addrs or ():
            live.add_address(address)
        live.reports = [(int(r[0]), float(r[1]), float(r[2]), r[3]) for r in reps]
        replay.add_live(live)
        replay.stored_live += 1


def touched_days(reader: psycopg.Connection[Any], tz_name: str) -> set[date]:
    """Return the local days (in the import's time zone) on which imported rows were
    reported or closed: the days whose summaries the import changes."""
    rows = reader.execute(
        """
        SELECT DISTINCT CAST(timezone(%(tz)s, d) AS date)
        FROM import_rows AS r
        LEFT JOIN import_wards AS p ON p.seq = r.seq
        LEFT JOIN import_near AS n ON n.seq = r.seq
        CROSS JOIN LATERAL (VALUES (r.t), (r.closed_at)) AS v (d)
        WHERE r.skip IS NULL AND d IS NOT NULL AND (p.seq IS NOT NULL OR n.seq IS NOT NULL)
        """,
        {"tz": tz_name},
    ).fetchall()
    return {d for (d,) in rows}
