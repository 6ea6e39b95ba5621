"""Report intake benchmark: the HTTP API against the same database work done directly.

Sets up a throwaway PostGIS cluster in a temporary directory, migrates it, loads the demo
city, starts ``geo311 run`` on a free port against it, and then measures, at each level of
concurrency:

- ``fields``: POST /api/v1/reports with a pin (no photo): potholes at points of a 40 m grid
  over the city, taken in a pseudo-random order, and one report in ten a ``streetlight_out``
  8 m from a real streetlight (so the asset snap runs and finds it). No point is used twice
  until all were, and the API, the baseline and the ceiling each get points of their own, so
  the reports open incidents, as new problems spread over a city do;
- ``photo``: the same with a 3-megapixel JPEG whose EXIF GPS places the report (no pin);
- the ceiling of each: the statements the service must run, in one transaction per report
  over psycopg, from a pool of threads: one resolve (the category with its calendar and
  webhooks, dedup's model, the ward, the asset snap and the new rows' ids), the dedup area
  lock, the candidate search, the crews' load and the rules' choice (pure, over crews and
  rules read once, as the service caches them), one write (the incident, its work order
  already with the crew, the requester, the report, the subscription, the audit rows, the
  planner summaries' change rows, the photo row and the notice owed, as data-modifying CTEs)
  and the notice's queue job; plus
  ``process_photo`` and the three file writes for ``photo``. Like the API it reads nothing
  back: the answer is what was written. Due times, audit rows and tracking ids come from the
  service's own builders (``work_orders.opening``, ``intake.tracking``). The ratio
  API/ceiling is what the HTTP, ORM and framework layers cost. A report that dedup's rule
  finds a duplicate (its point came round again) joins the incident, in the ceiling as in
  the API (the row lock, the rows without incident and work order, the live event); the
  table shows the share of the API's reports that joined;
- ``process_photo`` alone on the JPEG, one call at a time.

Deployed as in production: the API server runs no notice worker
(``GEO311_NOTIFY__EMBEDDED_WORKER=false``); one ``geo311 worker`` process delivers the
notices of both sides to an SMTP sink on loopback (aiosmtpd, keeps nothing), and its CPU is
shown in a column of its own (``--notice-worker embedded`` runs the worker inside the API
server instead, ``geo311 run``'s default). Before and after each run the bench waits until
every notice owed so far was delivered, so one side's deliveries do not run into the other's
run, and the CPU figures cover the delivery of the run's notices.

Each level runs ``--runs`` times (API and ceiling interleaved) after a warm-up; the table
shows the median of the runs. CPU per report is read from /proc for the API server, the
PostgreSQL processes and this process (the load generator, or the ceiling's app), so Linux
only. The load average before the set-up is printed, with a warning when other work was
sharing the CPUs. Everything is stopped and removed at the end, on Ctrl+C and on errors too.

    uv run python bench/intake.py [--concurrency 1,8,32] [--requests 300]
        [--photo-requests 120] [--runs 3] [--photo-runs 15] [--workloads fields,photo]
        [--fields-body json|form] [--server-env GEO311_DB__POOL_SIZE=40 ...]
        [--workers 1] [--notice-worker separate|embedded] [--baseline TREE] [--json out.json]

``--workers N`` serves the API with ``geo311 run --workers N`` (N processes); CPU is then
summed over the server and its children. ``--baseline TREE`` serves a second API from another
checkout (``git worktree add /tmp/before <commit>``; same environment, same schema) on the
same database, and runs it right after this tree's API in every run: a before/after measured
in one process, under the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from types import FrameType
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import psycopg
from PIL import ExifTags, Image, TiffImagePlugin
from procrastinate.jobs import Job
from procrastinate.manager import JobManager
from procrastinate.sync_psycopg_connector import SyncPsycopgConnector
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool
from rich.console import Console
from rich.table import Table

from dispatch import rules
from dispatch import service as dispatch_service
from fixtures.load import load_demo
from geo311.kernel import live, migrate
from geo311.kernel.database import Database
from geo311.kernel.embedded import EmbeddedCluster
from geo311.kernel.media.photos import ProcessedPhoto, process_photo, read_gps
from geo311.kernel.media.store import LocalMediaStore
from geo311.kernel.notify import outbox
from geo311.kernel.settings import DatabaseSettings, DedupSettings, MediaSettings, RoutingSettings
from geo311.resident.dedup import grid, placing
from geo311.resident.dedup.scoring import (
    UNMATCHABLE_STATUSES,
    Candidate,
    Decision,
    NewReport,
    Rule,
    decide,
    normalise_addresses,
)
from geo311.resident.intake.tracking import new_tracking_id
from work_orders import changes, incidents, lifecycle, opening, sla

REPO = Path(__file__).resolve().parents[1]
DBNAME = "geo311_bench"
SLUG = "demo"
CATEGORIES = ("pothole", "streetlight_out")
PHOTO_SIZE_PX = (2048, 1536)
TARGET_RATIO = 0.5
TARGET_PHOTO_MS = 150.0
# How far from a streetlight the bench drops its pins: well inside any snap radius.
STREETLIGHT_OFFSET_M = 8.0
# One report in this many is a dark streetlight (there are only so many streetlights: their
# points come round again sooner), the others potholes.
STREETLIGHT_EVERY = 10
# Between the potholes' points: more than a pothole's dedup radius (25 m in the demo city).
POTHOLE_SPACING_M = 40.0

Variant = Literal["fields", "photo"]
Conn = psycopg.Connection[tuple[Any, ...]]

# Defers the notice's delivery job on the ceiling's own connection, as the outbox does.
_DEFER = JobManager(SyncPsycopgConnector())

# Set when the run is being torn down, so worker threads stop taking new reports.
_STOP = threading.Event()

# --- the ceiling's SQL -----------------------------------------------------------------------
# The statements the service runs for one report, written by hand after
# geo311/resident/intake/service.py (_resolve, _write), work_orders/incidents.py
# (category_terms_select) and layers/service.py (ward_column, nearest_asset_column), with
# psycopg placeholders. Keep them in step with those files: the statement log of one API
# report (log_min_duration_statement = 0), or tests/geo311/test_intake_round_trips.py's
# list, is the check.

# One statement: the category with its calendar, its jurisdiction's name, the webhooks told of
# new work, dedup's fitted model, the ward, the asset snap, and the new rows' ids
# (work_orders.incidents.category_terms with intake's extra columns).
_RESOLVE_SQL = """
    SELECT c.jurisdiction_id, c.code, c.name, c.description, c.group_code, c.asset_type,
           c.dedup_radius_m, c.snap_radius_m, c.sla_hours, c.active,
           b.timezone, b.hours, b.holidays, j.name,
           (SELECT array_agg(json_build_array(e.id, e.url) ORDER BY e.id)
            FROM webhook_endpoints AS e
            WHERE e.jurisdiction_id = %(jid)s AND e.active AND 'received' = ANY(e.kinds))
               AS hooks,
           (SELECT m.params FROM dedup_models AS m
            WHERE m.jurisdiction_id = %(jid)s AND m.category_code = %(code)s) AS model,
           (SELECT json_build_array(w.id, w.code, w.name)
            FROM wards AS w
            JOIN ward_maps AS m ON m.jurisdiction_id = w.jurisdiction_id AND m.id = w.ward_map_id
            WHERE w.jurisdiction_id = %(jid)s AND m.jurisdiction_id = %(jid)s
              AND m.valid_from <= %(at)s AND (m.valid_to IS NULL OR m.valid_to > %(at)s)
              AND ST_Covers(w.geom, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326))
            ORDER BY w.code LIMIT 1) AS ward,
           (SELECT json_build_array(a.id, a.asset_type, a.external_id, a.name,
                                    ST_Distance(CAST(a.geom AS geography), CAST(
                                        ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)
                                        AS geography)))
            FROM assets AS a
            WHERE a.jurisdiction_id = %(jid)s AND a.asset_type = c.asset_type
              AND ST_DWithin(CAST(a.geom AS geography),
                             CAST(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS geography),
                             c.snap_radius_m)
            ORDER BY CAST(a.geom AS geography)
                     <-> CAST(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS geography)
            LIMIT 1) AS asset,
           nextval(pg_get_serial_sequence('reports', 'id')),
           nextval(pg_get_serial_sequence('requesters', 'id')),
           nextval(pg_get_serial_sequence('incidents', 'id')),
           nextval(pg_get_serial_sequence('work_orders', 'id'))
    FROM service_categories AS c
    JOIN jurisdictions AS j ON j.id = c.jurisdiction_id
    LEFT JOIN business_calendars AS b
           ON b.jurisdiction_id = c.jurisdiction_id AND b.code = c.calendar_code
    WHERE c.jurisdiction_id = %(jid)s AND c.code = %(code)s
"""

_LOCK_SQL = "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(%(keys)s AS bigint[])) AS k"

# The service's own candidate search, in psycopg's placeholders.
_CANDIDATES_SQL = re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", str(placing._CANDIDATES))

_CREW_LOAD_SQL = """
    SELECT w.crew_id, sum(coalesce(t.service_s, %(default_service_s)s))
    FROM work_orders AS w
    JOIN incidents AS i ON i.jurisdiction_id = w.jurisdiction_id AND i.id = w.incident_id
    LEFT JOIN category_service_times AS t
           ON t.jurisdiction_id = i.jurisdiction_id AND t.category_code = i.category_code
    WHERE w.jurisdiction_id = %(jid)s AND w.crew_id IS NOT NULL
      AND w.status = ANY(%(busy)s) AND w.due_at < %(due_before)s
    GROUP BY w.crew_id
"""

# Every row in one statement, as intake writes them (data-modifying CTEs; the foreign keys
# are checked at the statement's end): the incident, its work order with the crew, the
# requester, the report, the subscription, the audit rows, the planner summaries' change
# rows, the photo (when there is one) and the notice owed, whose id comes back for its
# delivery job.
_WRITE_SQL = """
    WITH i AS (
        INSERT INTO incidents (id, jurisdiction_id, category_code, status, version, geom,
                               ward_id, asset_id, opened_at, due_at, updated_at)
        VALUES (%(incident_id)s, %(jid)s, %(code)s, %(status)s, %(version)s,
                ST_GeomFromEWKT(%(geom)s), %(ward_id)s, %(asset_id)s, %(now)s, %(due_at)s,
                %(now)s)
    ), wo AS (
        INSERT INTO work_orders (id, jurisdiction_id, incident_id, status, version, department,
                                 crew_id, opened_at, due_at, at_risk_at)
        VALUES (%(work_order_id)s, %(jid)s, %(incident_id)s, %(status)s, %(version)s,
                %(department)s, %(crew_id)s, %(now)s, %(due_at)s, %(at_risk_at)s)
    ), q AS (
        INSERT INTO requesters (id, jurisdiction_id, email, phone, language)
        VALUES (%(requester_id)s, %(jid)s, %(email)s, NULL, 'en')
    ), r AS (
        INSERT INTO reports (id, jurisdiction_id, tracking_id, incident_id, requester_id,
                             category_code, description, address, geom, location_source,
                             ward_id, asset_id, channel, language, attributes, reported_at,
                             dedup_decision, dedup_score, dedup_signals, matched_report_id)
        VALUES (%(report_id)s, %(jid)s, %(tracking_id)s, %(incident_id)s, %(requester_id)s,
                %(code)s, %(description)s, NULL, ST_GeomFromEWKT(%(geom)s), %(source)s,
                %(ward_id)s, %(asset_id)s, 'api', 'en', '{}', %(now)s, 'new', NULL,
                %(signals)s, NULL)
    ), s AS (
        INSERT INTO subscriptions (jurisdiction_id, incident_id, requester_id, report_id)
        VALUES (%(jid)s, %(incident_id)s, %(requester_id)s, %(report_id)s)
    ), a AS (
        INSERT INTO audit_events (jurisdiction_id, entity, entity_id, action, actor,
                                  from_state, to_state, data)
        SELECT %(jid)s, e.entity, e.entity_id, e.action, e.actor, e.from_state, e.to_state,
               e.data
        FROM jsonb_to_recordset(%(events)s) AS e(entity text, entity_id bigint, action text,
                                                 actor text, from_state text, to_state text,
                                                 data jsonb)
    ), c AS (
        -- The planner summaries' change list: each tracked row the audit rows name, once.
        INSERT INTO analytics_changes (jurisdiction_id, entity, entity_id)
        SELECT DISTINCT %(jid)s, e.entity, e.entity_id
        FROM jsonb_to_recordset(%(events)s) AS e(entity text, entity_id bigint)
        WHERE e.entity = ANY(%(tracked)s)
    ), p AS (
        INSERT INTO photos (jurisdiction_id, report_id, kind, original_key, original_type,
                            public_key, thumb_key, width, height, phash, sha256, taken_at,
                            exif_geom)
        SELECT %(jid)s, %(report_id)s, 'report', %(original_key)s, %(original_type)s,
               %(public_key)s, %(thumb_key)s, %(width)s, %(height)s, %(phash)s, %(sha256)s,
               %(taken_at)s, ST_GeomFromEWKT(%(exif_geom)s)
        WHERE %(with_photo)s
    ), n AS (
        INSERT INTO notices (jurisdiction_id, idempotency_key, kind, channel, recipient,
                             language, incident_id, requester_id, context)
        VALUES (%(jid)s, %(key)s, 'received', 'email', %(email)s, 'en', %(incident_id)s,
                %(requester_id)s, %(context)s)
        ON CONFLICT (jurisdiction_id, idempotency_key) DO NOTHING
        RETURNING id
    )
    SELECT id FROM n
"""

# A duplicate: the chosen incident's row lock, with how many reports it has (the answer
# shows the count), then its rows in one statement (as the open path's, without the incident
# and its work order), and the event that tells open staff pages at COMMIT.
_JOIN_LOCK_SQL = """
    SELECT i.status, ST_X(i.geom), ST_Y(i.geom), i.version, i.updated_at,
           (SELECT count(*) FROM reports AS r
            WHERE r.jurisdiction_id = %(jid)s AND r.incident_id = %(id)s)
    FROM incidents AS i
    WHERE i.jurisdiction_id = %(jid)s AND i.id = %(id)s
    FOR UPDATE OF i
"""

_JOIN_WRITE_SQL = """
    WITH q AS (
        INSERT INTO requesters (id, jurisdiction_id, email, phone, language)
        VALUES (%(requester_id)s, %(jid)s, %(email)s, NULL, 'en')
    ), r AS (
        INSERT INTO reports (id, jurisdiction_id, tracking_id, incident_id, requester_id,
                             category_code, description, address, geom, location_source,
                             ward_id, asset_id, channel, language, attributes, reported_at,
                             dedup_decision, dedup_score, dedup_signals, matched_report_id)
        VALUES (%(report_id)s, %(jid)s, %(tracking_id)s, %(incident_id)s, %(requester_id)s,
                %(code)s, %(description)s, NULL, ST_GeomFromEWKT(%(geom)s), %(source)s,
                %(ward_id)s, %(asset_id)s, 'api', 'en', '{}', %(now)s, %(decision)s,
                %(score)s, %(signals)s, %(matched_report_id)s)
    ), s AS (
        INSERT INTO subscriptions (jurisdiction_id, incident_id, requester_id, report_id)
        VALUES (%(jid)s, %(incident_id)s, %(requester_id)s, %(report_id)s)
    ), a AS (
        INSERT INTO audit_events (jurisdiction_id, entity, entity_id, action, actor,
                                  from_state, to_state, data)
        SELECT %(jid)s, e.entity, e.entity_id, e.action, e.actor, e.from_state, e.to_state,
               e.data
        FROM jsonb_to_recordset(%(events)s) AS e(entity text, entity_id bigint, action text,
                                                 actor text, from_state text, to_state text,
                                                 data jsonb)
    ), c AS (
        INSERT INTO analytics_changes (jurisdiction_id, entity, entity_id)
        VALUES (%(jid)s, 'incident', %(incident_id)s)
    ), p AS (
        INSERT INTO photos (jurisdiction_id, report_id, kind, original_key, original_type,
                            public_key, thumb_key, width, height, phash, sha256, taken_at,
                            exif_geom)
        SELECT %(jid)s, %(report_id)s, 'report', %(original_key)s, %(original_type)s,
               %(public_key)s, %(thumb_key)s, %(width)s, %(height)s, %(phash)s, %(sha256)s,
               %(taken_at)s, ST_GeomFromEWKT(%(exif_geom)s)
        WHERE %(with_photo)s
    ), n AS (
        INSERT INTO notices (jurisdiction_id, idempotency_key, kind, channel, recipient,
                             language, incident_id, requester_id, context)
        VALUES (%(jid)s, %(key)s, 'received', 'email', %(email)s, 'en', %(incident_id)s,
                %(requester_id)s, %(context)s)
        ON CONFLICT (jurisdiction_id, idempotency_key) DO NOTHING
        RETURNING id
    )
    SELECT id FROM n
"""

_LIVE_SQL = "SELECT pg_notify(%(channel)s, p) FROM unnest(CAST(%(payloads)s AS text[])) AS p"

# --- the bench's own look-ups (not part of what is measured) --------------------------------

# Delivery jobs due now and not finished (a retry waiting for its time is not due).
_OWED_JOBS_SQL = """
    SELECT count(*) FROM procrastinate_jobs
    WHERE queue_name = %(queue)s AND status IN ('todo', 'doing')
      AND (scheduled_at IS NULL OR scheduled_at <= now())
"""

_CURRENT_WARDS = """
    FROM wards AS w
    JOIN ward_maps AS m ON m.jurisdiction_id = w.jurisdiction_id AND m.id = w.ward_map_id
    WHERE w.jurisdiction_id = %(jid)s
      AND m.valid_from <= now() AND (m.valid_to IS NULL OR now() < m.valid_to)
"""

# Points on a grid of %(spacing_m)s metres or more (degrees from lower bounds of metres per
# degree) inside the wards in force, in a fixed pseudo-random order: more apart than a
# pothole's dedup radius, so a report on one is a new problem unless the bench meant it.
_GRID_POINTS_SQL = f"""
    WITH city AS (SELECT ST_Union(w.geom) AS geom {_CURRENT_WARDS}),
    box AS (
        SELECT ST_XMin(geom) AS x0, ST_YMin(geom) AS y0, ST_XMax(geom) AS x1,
               ST_YMax(geom) AS y1,
               %(spacing_m)s / 110574.0 AS dy,
               %(spacing_m)s / (111320.0 * cos(radians(greatest(abs(ST_YMin(geom)),
                                                               abs(ST_YMax(geom)))))) AS dx
        FROM city
    ),
    grid AS (
        SELECT ST_SetSRID(ST_MakePoint(box.x0 + ix * box.dx, box.y0 + iy * box.dy), 4326) AS p
        FROM box,
             generate_series(0, CAST(floor((box.x1 - box.x0) / box.dx) AS int)) AS ix,
             generate_series(0, CAST(floor((box.y1 - box.y0) / box.dy) AS int)) AS iy
    )
    SELECT ST_X(grid.p), ST_Y(grid.p)
    FROM grid, city
    WHERE ST_Covers(city.geom, grid.p)
    ORDER BY md5(ST_AsText(grid.p))
"""

# A pin a few metres from each of n streetlights, kept if a ward in force covers it. The
# streetlights are taken in a fixed pseudo-random order, so that the reports in flight at once
# are spread over the city as real ones are: in id order, neighbours come one after another
# (about 60 m apart along a street), and the concurrent reports all wait for one area's
# dedup lock.
_NEAR_ASSET_POINTS_SQL = f"""
    SELECT ST_X(p.pt), ST_Y(p.pt)
    FROM (
        SELECT ST_Project(a.geom::geography, %(offset_m)s,
                          radians((a.id * 137) %% 360))::geometry AS pt
        FROM assets AS a
        WHERE a.jurisdiction_id = %(jid)s AND a.asset_type = %(asset_type)s
        ORDER BY md5(CAST(a.id AS text)), a.id
        LIMIT %(n)s
    ) AS p
    WHERE EXISTS (SELECT 1 {_CURRENT_WARDS} AND ST_Covers(w.geom, p.pt))
"""


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU seconds of the API server, PostgreSQL (all its processes), this one,
    the notice worker (0 when it runs inside the API server) and the mail sink."""

    server_s: float
    postgres_s: float
    bench_s: float
    worker_s: float = 0.0
    sink_s: float = 0.0


@dataclass(frozen=True)
class RunResult:
    """One measured run: how many reports, how fast, and whose CPU they used."""

    reports: int
    elapsed_s: float
    reports_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float
    """API server CPU per report, in ms (idle during ceiling runs)."""
    postgres_cpu_ms: float
    """CPU of all PostgreSQL processes per report, in ms."""
    bench_cpu_ms: float
    """CPU of this process per report, in ms: the load generator, or the ceiling's app."""
    worker_cpu_ms: float
    """CPU of the separate notice worker per report, in ms, until the notices the run owed
    were delivered (0 when the worker runs inside the API server)."""
    sink_cpu_ms: float
    """CPU of the mail sink per report, in ms (the mail server: no part of geo311)."""
    pg_sessions: int
    """PostgreSQL sessions opened during the run (pg_stat_database.sessions; approximate)."""
    joined: float = 0.0
    """Share of the reports that joined an incident rather than opening one (the API's
    answers say; the ceiling always opens one)."""


@dataclass
class LevelResult:
    """All runs of one workload at one concurrency, API and ceiling."""

    workload: Variant
    concurrency: int
    requests: int
    api: list[RunResult] = field(default_factory=list)
    ceiling: list[RunResult] = field(default_factory=list)
    # The --baseline tree's API, run right after this tree's in each run (empty without one).
    baseline: list[RunResult] = field(default_factory=list)

    def median(self, side: Literal["api", "ceiling", "baseline"], metric: str) -> float:
        """Return the median of ``metric`` over this level's runs of ``side``."""
        runs = getattr(self, side)
        return float(statistics.median(float(getattr(r, metric)) for r in runs))

    @property
    def ratio(self) -> float:
        """Return API reports/s over ceiling reports/s (medians)."""
        return self.median("api", "reports_per_s") / self.median("ceiling", "reports_per_s")

    @property
    def baseline_ratio(self) -> float | None:
        """Return the baseline API's reports/s over the ceiling's (medians), if it ran."""
        if not self.baseline:
            return None
        return self.median("baseline", "reports_per_s") / self.median("ceiling", "reports_per_s")


def _percentile(values: Sequence[float], pct: float) -> float:
    """Return the ``pct`` percentile (0..100) of ``values``, linearly interpolated."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), pct))


def _run_result(
    latencies_s: Sequence[float],
    elapsed_s: float,
    before: CpuSample,
    after: CpuSample,
    pg_sessions: int,
    joined: int = 0,
) -> RunResult:
    n = len(latencies_s)
    lat_ms = [s * 1000.0 for s in latencies_s]
    return RunResult(
        reports=n,
        elapsed_s=elapsed_s,
        reports_per_s=n / elapsed_s,
        p50_ms=_percentile(lat_ms, 50),
        p99_ms=_percentile(lat_ms, 99),
        server_cpu_ms=(after.server_s - before.server_s) * 1000.0 / n,
        postgres_cpu_ms=(after.postgres_s - before.postgres_s) * 1000.0 / n,
        bench_cpu_ms=(after.bench_s - before.bench_s) * 1000.0 / n,
        worker_cpu_ms=(after.worker_s - before.worker_s) * 1000.0 / n,
        sink_cpu_ms=(after.sink_s - before.sink_s) * 1000.0 / n,
        pg_sessions=pg_sessions,
        joined=joined / n,
    )


# --- the machine ---------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> tuple[int, float, float] | None:
    """Return (ppid, own CPU s, reaped children's CPU s) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    rest = raw[raw.rindex(")") + 2 :].split()
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    return ppid, (utime + stime) / _CLK_TCK, (cutime + cstime) / _CLK_TCK


def _tree_cpu_s(pid: int) -> float:
    """Return the CPU seconds of a process and its living children (``--workers`` serves the
    API from child processes)."""
    own = _proc_stat(pid)
    if own is None:
        return 0.0
    total = own[1]
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[0] == pid:
                total += stat[1]
    return total


def _postgres_cpu_s(postmaster_pid: int) -> float:
    """Return the CPU seconds of the postmaster and all its children, living or reaped."""
    own = _proc_stat(postmaster_pid)
    if own is None:
        return 0.0
    total = own[1] + own[2]
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat is not None and stat[0] == postmaster_pid:
            total += stat[1]
    return total


def _machine(conn: Conn) -> dict[str, Any]:
    """Return what the numbers depend on: CPUs, memory, versions, the temp filesystem."""
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    pg = conn.execute("SHOW server_version").fetchone()
    postgis = conn.execute("SELECT postgis_lib_version()").fetchone()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gb": round(mem_gb, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg[0] if pg else "?",
        "postgis": postgis[0] if postgis else "?",
        "temp_fs": _fs_type(Path(tempfile.gettempdir())),
    }


def _fs_type(path: Path) -> str:
    """Return the filesystem type path lives on, from /proc/mounts."""
    best, kind = "", "?"
    resolved = str(path.resolve())
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            mount = parts[1]
            prefix = mount.rstrip("/") + "/"
            if (resolved == mount or resolved.startswith(prefix)) and len(mount) > len(best):
                best, kind = mount, parts[2]
    return kind


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- the photo -----------------------------------------------------------------------------


def _dms(value: float) -> tuple[TiffImagePlugin.IFDRational, ...]:
    """Return degrees as an EXIF (deg, min, sec) triple of rationals, to 0.0001 seconds."""
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = (value - degrees - minutes / 60) * 3600
    return (
        TiffImagePlugin.IFDRational(degrees, 1),
        TiffImagePlugin.IFDRational(minutes, 1),
        TiffImagePlugin.IFDRational(round(seconds * 10_000), 10_000),
    )


def make_photo(lon: float, lat: float) -> bytes:
    """Return a 2048x1536 JPEG that compresses like a street photo, with EXIF GPS (lon, lat).

    Smooth gradients and shading for sky and road, blurred coarse noise for texture and fine
    noise for sensor grain: about 1.4 MB at quality 92, like a phone camera's output.
    """
    rng = np.random.default_rng(311)
    width, height = PHOTO_SIZE_PX
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    rgb = np.empty((height, width, 3), dtype=np.float32)
    rgb[..., 0] = 70 + 110 * y + 25 * np.sin(7 * x + 3 * y)
    rgb[..., 1] = 90 + 80 * y + 20 * np.sin(5 * x - 4 * y)
    rgb[..., 2] = 170 - 90 * y + 15 * np.cos(9 * x * y)
    coarse = rng.normal(128, 40, (height // 16, width // 16)).clip(0, 255).astype(np.uint8)
    texture = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    rgb += (np.asarray(texture, dtype=np.float32) - 128)[..., None]
    rgb += rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    image = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))

    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "geo311"
    exif[ExifTags.Base.Model] = "bench"
    exif[ExifTags.IFD.Exif] = {ExifTags.Base.DateTimeOriginal: "2026:05:01 10:00:00"}
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N" if lat >= 0 else "S",
        ExifTags.GPS.GPSLatitude: _dms(lat),
        ExifTags.GPS.GPSLongitudeRef: "E" if lon >= 0 else "W",
        ExifTags.GPS.GPSLongitude: _dms(lon),
    }
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92, exif=exif)
    data = buffer.getvalue()
    fix = read_gps(data)
    if fix is None or abs(fix.lat - lat) > 1e-6 or abs(fix.lon - lon) > 1e-6:
        raise RuntimeError(f"the generated photo's EXIF GPS reads back as {fix}")
    return data


def _process(data: bytes, media: MediaSettings) -> ProcessedPhoto:
    """Return process_photo's result for ``data`` with the API's media settings."""
    return process_photo(
        data,
        max_bytes=media.max_bytes,
        max_pixels=media.max_pixels,
        public_max_px=media.public_max_px,
        thumb_max_px=media.thumb_max_px,
        jpeg_quality=media.jpeg_quality,
    )


def time_process_photo(data: bytes, runs: int, media: MediaSettings) -> list[float]:
    """Return the wall time in ms of ``runs`` process_photo calls, one at a time."""
    _process(data, media)  # first call pays for lazy imports and codec set-up
    times_ms = []
    for _ in range(runs):
        started = time.perf_counter()
        _process(data, media)
        times_ms.append((time.perf_counter() - started) * 1000.0)
    return times_ms


# --- the workload --------------------------------------------------------------------------


@dataclass(frozen=True)
class City:
    """Where the bench's reports go: points in the demo city, and the photo's position."""

    jurisdiction_id: int
    pothole_points: list[tuple[float, float]]
    """(lon, lat) inside the wards in force."""
    streetlight_points: list[tuple[float, float]]
    """(lon, lat) a few metres from a streetlight, inside a ward."""
    rules: dict[str, Rule] = field(default_factory=dict)
    """Each category's dedup rule."""
    crews: Crews | None = None
    """The crews and rules, read once (the service caches them too)."""

    def report(self, i: int) -> tuple[str, float, float]:
        """Return (category, lon, lat) of report ``i``: of every ``STREETLIGHT_EVERY``
        reports, one is a dark streetlight, the others potholes; each at a point of its own
        until the bench has used every one (indexes are never reused: see
        :meth:`Bench.reserve`), so a report opens an incident unless its point comes round
        again."""
        k, r = divmod(i, STREETLIGHT_EVERY)
        if r == STREETLIGHT_EVERY - 1:
            lon, lat = self.streetlight_points[k % len(self.streetlight_points)]
            return "streetlight_out", lon, lat
        lon, lat = self.pothole_points[((STREETLIGHT_EVERY - 1) * k + r) % len(self.pothole_points)]
        return "pothole", lon, lat


@dataclass(frozen=True)
class Crews:
    """What the assignment rules read, once per bench run."""

    zone: ZoneInfo
    crews: list[rules.CrewFacts]
    rule_set: list[rules.SkillRule]
    default_service_s: int
    busy: list[str]


def read_rules(url: str, city: City) -> City:
    """Return the city with its categories' dedup rules and its crews and rules read."""
    db = Database.connect(url, pool_size=1)
    try:
        with db.session() as session:
            jid = city.jurisdiction_id
            found = {
                code: incidents.category_terms(session, jurisdiction_id=jid, code=code)
                for code in CATEGORIES
            }
            dedup_rules = {
                code: placing.rule_of(f.category, DedupSettings())
                for code, f in found.items()
                if f is not None
            }
            crews = Crews(
                zone=dispatch_service.jurisdiction_zone(session, jurisdiction_id=jid),
                crews=dispatch_service.crew_facts(session, jurisdiction_id=jid),
                rule_set=dispatch_service.rule_set(session, jurisdiction_id=jid),
                default_service_s=RoutingSettings().default_service_s,
                busy=sorted(lifecycle.OPEN - {"on_hold"}),
            )
    finally:
        db.dispose()
    return replace(city, rules=dedup_rules, crews=crews)


def survey_city(conn: Conn, *, n: int = 100_000) -> City:
    """Return the demo city's jurisdiction and the bench's points, checking the categories."""
    row = conn.execute("SELECT id FROM jurisdictions WHERE slug = %s", (SLUG,)).fetchone()
    if row is None:
        raise RuntimeError(f"jurisdiction {SLUG!r} not loaded")
    jid = int(row[0])
    cats = {
        r[0]: (r[1], float(r[2]))
        for r in conn.execute(
            "SELECT code, asset_type, snap_radius_m FROM service_categories "
            "WHERE jurisdiction_id = %s AND active",
            (jid,),
        )
    }
    missing = [c for c in CATEGORIES if c not in cats]
    if missing:
        raise RuntimeError(f"the demo city lacks categories {missing}; it has {sorted(cats)}")
    asset_type, snap_m = cats["streetlight_out"]
    if asset_type is None:
        raise RuntimeError("streetlight_out has no asset type: the snap would not run")
    params = {"jid": jid, "spacing_m": POTHOLE_SPACING_M}
    potholes = [(float(a), float(b)) for a, b in conn.execute(_GRID_POINTS_SQL, params)]
    near = {
        "jid": jid,
        "n": n,
        "asset_type": asset_type,
        "offset_m": min(STREETLIGHT_OFFSET_M, snap_m / 2),
    }
    lights = [(float(a), float(b)) for a, b in conn.execute(_NEAR_ASSET_POINTS_SQL, near)]
    if not potholes or not lights:
        raise RuntimeError(f"no points: {len(potholes)} in wards, {len(lights)} by streetlights")
    return City(jurisdiction_id=jid, pothole_points=potholes, streetlight_points=lights)


def _returned_id(cur: psycopg.Cursor[tuple[Any, ...]], sql: str, params: dict[str, Any]) -> int:
    """Return the id an INSERT … RETURNING id gave back."""
    row = cur.execute(sql, params).fetchone()
    if row is None:
        raise RuntimeError(f"no row returned by {sql.split()[:3]}")
    return int(row[0])


def ceiling_report(
    conn: Conn,
    *,
    city: City,
    i: int,
    photo: bytes | None,
    media_settings: MediaSettings,
    media: LocalMediaStore,
) -> tuple[Any, ...]:
    """Store report ``i`` with the statements the service must run, in one transaction;
    return (ward code, asset id, location source, photo's public key) as written."""
    category_code, pin_lon, pin_lat = city.report(i)
    jid = city.jurisdiction_id
    now = datetime.now(UTC)
    processed = _process(photo, media_settings) if photo else None
    if processed is None:
        lon, lat, source = pin_lon, pin_lat, "pin"
    elif processed.gps is not None:
        lon, lat, source = processed.gps.lon, processed.gps.lat, "exif"
    else:
        raise RuntimeError("the photo has no GPS fix")
    with conn.transaction():
        cur = conn.cursor()
        category = cur.execute(
            _RESOLVE_SQL, {"jid": jid, "code": category_code, "lon": lon, "lat": lat, "at": now}
        ).fetchone()
        if category is None or not category[9]:
            raise RuntimeError(f"unknown category {category_code!r}")
        group_code, asset_type = category[4], category[5]
        ward, asset = category[16], category[17]
        report_id, requester_id, incident_id, work_order_id = category[18:22]
        calendar = (
            None
            if category[10] is None
            else sla.parse_calendar(
                timezone=category[10], hours=category[11], holidays=category[12]
            )
        )
        terms = opening.Terms(
            jurisdiction_id=jid,
            code=category_code,
            group_code=group_code,
            sla_hours=float(category[8]),
            calendar=calendar,
        )
        if ward is None:
            raise RuntimeError(f"({lon}, {lat}) is in no ward")
        asset_id = None
        if asset is not None:
            asset_id, asset_type = asset[0], asset[1]
        # Dedup: the area's locks (held to COMMIT), then the candidates near the report.
        rule = city.rules[category_code]
        if rule.enabled:
            keys = grid.lock_keys(
                jurisdiction_id=jid,
                group_code=group_code,
                lon=lon,
                lat=lat,
                radius_m=rule.radius_m,
                cell_m=DedupSettings().lock_cell_m,
                asset_id=asset_id,
            )
            cur.execute(_LOCK_SQL, {"keys": keys})
            min_lon, min_lat, max_lon, max_lat = grid.degree_box(lon, lat, rule.radius_m)
            found = cur.execute(
                _CANDIDATES_SQL,
                {
                    "min_lon": min_lon,
                    "min_lat": min_lat,
                    "max_lon": max_lon,
                    "max_lat": max_lat,
                    "jid": jid,
                    "group_code": group_code,
                    "lon": lon,
                    "lat": lat,
                    "radius_m": rule.radius_m,
                    "asset_id": asset_id,
                    "closed_since": now - timedelta(hours=rule.reopen_window_h),
                    "unmatchable": list(UNMATCHABLE_STATUSES),
                },
            ).fetchall()
            # The rule's decision (pure, the service's own): a duplicate joins its incident.
            decision = decide(
                NewReport(
                    category_code=category_code,
                    at=now,
                    asset_id=asset_id,
                    photo_hash=processed.phash if processed else None,
                    description=f"bench report {i}",
                ),
                [_candidate(row) for row in found],
                rule,
                now,
            )
            if decision.incident_id is not None:
                return _ceiling_join(
                    conn,
                    cur,
                    jid=jid,
                    i=i,
                    decision=decision,
                    ids=(report_id, requester_id),
                    code=category_code,
                    category_name=category[2],
                    city=category[13],
                    place=(lon, lat, source, ward, asset_id),
                    now=now,
                    photo=(processed, media),
                )
        # The crew: the crews' load, then the rules (pure) over crews and rules read once.
        times = terms.due_times(now)
        crews = city.crews
        assert crews is not None, "read_rules() first"
        today, due_on = (
            now.astimezone(crews.zone).date(),
            times.due_at.astimezone(crews.zone).date(),
        )
        load = {
            int(crew): float(total)
            for crew, total in cur.execute(
                _CREW_LOAD_SQL,
                {
                    "jid": jid,
                    "default_service_s": crews.default_service_s,
                    "busy": crews.busy,
                    "due_before": datetime.combine(
                        max(due_on, today) + timedelta(days=1), dt_time(), tzinfo=crews.zone
                    ),
                },
            )
        }
        choice = rules.choose_crew(
            rules.JobFacts(category_code, asset_type, ward[1], due_on, today, times.due_at <= now),
            crews.crews,
            crews.rule_set,
            load_s=load,
        )
        assigned = choice.crew_id is not None
        crew = (
            None
            if choice.crew_id is None
            else opening.CrewPick(
                crew_id=choice.crew_id,
                actor="dispatch:rules",
                data={"crew": choice.crew_code, "detail": choice.detail},
            )
        )
        tracking_id = new_tracking_id()
        events = opening.opening_audit_rows(
            jurisdiction_id=jid,
            incident_id=incident_id,
            work_order_id=work_order_id,
            department=group_code,
            crew=crew,
            opened_by=("resident:api", {"report": tracking_id, "location_source": source}),
        )
        geom = f"SRID=4326;POINT({lon} {lat})"
        email = f"bench{i}@example.org"
        context = opening.notice_context(
            incident_id=incident_id,
            category_code=category_code,
            category_name=category[2],
            city=category[13],
            status="assigned" if assigned else "new",
            lon=lon,
            lat=lat,
        )
        photo_row, files = _photo_row(processed, lon, lat, now)
        notice_id = _returned_id(
            cur,
            _WRITE_SQL,
            {
                "jid": jid,
                "incident_id": incident_id,
                "work_order_id": work_order_id,
                "requester_id": requester_id,
                "report_id": report_id,
                "code": category_code,
                "status": "assigned" if assigned else "new",
                "version": 2 if assigned else 1,
                "geom": geom,
                "ward_id": ward[0],
                "asset_id": asset_id,
                "now": now,
                "due_at": times.due_at,
                "at_risk_at": times.at_risk_at,
                "department": group_code,
                "crew_id": choice.crew_id,
                "email": email,
                "tracking_id": tracking_id,
                "description": f"bench report {i}",
                "source": source,
                "signals": Jsonb({}),
                "events": Jsonb(events),
                "tracked": sorted(changes.TRACKED),
                "with_photo": processed is not None,
                **photo_row,
                "key": f"received:incident-{incident_id}:subscribed:requester-{requester_id}",
                "context": Jsonb({**context, "tracking_id": tracking_id}),
            },
        )
        _DEFER.batch_defer_jobs(
            [
                Job(
                    queue=outbox.QUEUE,
                    lock=None,
                    queueing_lock=None,
                    task_name=outbox.DELIVER_TASK,
                    task_kwargs={"jurisdiction_id": jid, "notice_ids": [notice_id]},
                )
            ],
            connection=conn,
        )
        for key, data in files.items():
            media.put(key, data)
    # The answer is built from what was written, as the API builds it.
    return (ward[1], asset_id, source, photo_row["public_key"])


def _photo_row(
    processed: ProcessedPhoto | None, lon: float, lat: float, now: datetime
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Return the photo row's columns (all None without a photo) and its files by key."""
    files: dict[str, bytes] = {}
    photo_row: dict[str, Any] = dict.fromkeys(
        (
            "original_key",
            "original_type",
            "public_key",
            "thumb_key",
            "width",
            "height",
            "phash",
            "sha256",
            "taken_at",
            "exif_geom",
        )
    )
    if processed is not None:
        stem = f"{SLUG}/{now:%Y/%m}/{os.urandom(16).hex()}"
        photo_row = {
            "original_key": f"private/{stem}.jpg",
            "original_type": processed.original_type,
            "public_key": f"public/{stem}.jpg",
            "thumb_key": f"public/{stem}_thumb.jpg",
            "width": processed.width,
            "height": processed.height,
            "phash": processed.phash,
            "sha256": processed.sha256,
            "taken_at": processed.taken_at,
            "exif_geom": f"SRID=4326;POINT({lon} {lat})",
        }
        files = {
            photo_row["original_key"]: processed.original,
            photo_row["public_key"]: processed.public_jpeg,
            photo_row["thumb_key"]: processed.thumb_jpeg,
        }
    return photo_row, files


def _candidate(row: tuple[Any, ...]) -> Candidate:
    """Return a candidate-search row as dedup weighs it (as ``placing.find_candidates``)."""
    (id_, code, status, asset_id, opened_at, closed_at, updated_at, distance_m) = row[:8]
    last_report_at, nearest_report_id, addresses, photo_hashes, descriptions = row[8:13]
    return Candidate(
        incident_id=id_,
        category_code=code,
        status=status,
        distance_m=float(distance_m),
        last_report_at=last_report_at or opened_at,
        closed_at=closed_at or (updated_at if status in ("completed", "closed") else None),
        asset_id=asset_id,
        addresses=normalise_addresses(addresses or []),
        photo_hashes=tuple(photo_hashes or ()),
        nearest_report_id=nearest_report_id,
        descriptions=tuple(descriptions or ()),
    )


def _ceiling_join(
    conn: Conn,
    cur: psycopg.Cursor[tuple[Any, ...]],
    *,
    jid: int,
    i: int,
    decision: Decision,
    ids: tuple[int, int],
    code: str,
    category_name: str,
    city: str,
    place: tuple[float, float, str, Any, int | None],
    now: datetime,
    photo: tuple[ProcessedPhoto | None, LocalMediaStore],
) -> tuple[Any, ...]:
    """Store report ``i`` as a duplicate of the incident ``decision`` chose, as the API does:
    the incident's row lock (with its report count), one write (requester, report,
    subscription, audit row, change row, photo, notice owed), the notice's job and the live
    event for open staff pages. (A reopened incident's transition is left out: the bench's
    incidents stay open.) Return what :func:`ceiling_report` returns."""
    report_id, requester_id = ids
    lon, lat, source, ward, asset_id = place
    processed, media = photo
    incident_id = decision.incident_id
    best = decision.best
    assert incident_id is not None
    assert best is not None
    locked = cur.execute(_JOIN_LOCK_SQL, {"jid": jid, "id": incident_id}).fetchone()
    if locked is None:
        raise RuntimeError(f"incident {incident_id} vanished")
    status, incident_lon, incident_lat = locked[0], locked[1], locked[2]
    tracking_id = new_tracking_id()
    data = {"report": tracking_id, "score": round(best.score, 4), "fired": best.fired}
    events = [
        {
            "entity": "incident",
            "entity_id": incident_id,
            "action": "report_added",
            "actor": "resident:api",
            "from_state": None,
            "to_state": None,
            "data": data,
        }
    ]
    photo_row, files = _photo_row(processed, lon, lat, now)
    context = opening.notice_context(
        incident_id=incident_id,
        category_code=code,
        category_name=category_name,
        city=city,
        status=status,
        lon=incident_lon,
        lat=incident_lat,
    )
    notice_id = _returned_id(
        cur,
        _JOIN_WRITE_SQL,
        {
            "jid": jid,
            "incident_id": incident_id,
            "requester_id": requester_id,
            "report_id": report_id,
            "code": code,
            "geom": f"SRID=4326;POINT({lon} {lat})",
            "ward_id": ward[0],
            "asset_id": asset_id,
            "now": now,
            "email": f"bench{i}@example.org",
            "tracking_id": tracking_id,
            "description": f"bench report {i}",
            "source": source,
            "decision": decision.kind,
            "score": round(best.score, 4),
            "signals": Jsonb(decision.as_json()),
            "matched_report_id": best.candidate.nearest_report_id,
            "events": Jsonb(events),
            "with_photo": processed is not None,
            **photo_row,
            "key": f"received:incident-{incident_id}:subscribed:requester-{requester_id}",
            "context": Jsonb({**context, "tracking_id": tracking_id}),
        },
    )
    _DEFER.batch_defer_jobs(
        [
            Job(
                queue=outbox.QUEUE,
                lock=None,
                queueing_lock=None,
                task_name=outbox.DELIVER_TASK,
                task_kwargs={"jurisdiction_id": jid, "notice_ids": [notice_id]},
            )
        ],
        connection=conn,
    )
    event = {"j": jid, "k": "incident", "d": {"id": incident_id, "action": "report_added"}}
    cur.execute(_LIVE_SQL, {"channel": live.CHANNEL, "payloads": [json.dumps([event])]})
    for key, blob in files.items():
        media.put(key, blob)
    return (ward[1], asset_id, source, photo_row["public_key"])


# --- running it ----------------------------------------------------------------------------


@dataclass
class Bench:
    """Everything a run needs: the server, the database, the city and the photo."""

    args: argparse.Namespace
    cluster: EmbeddedCluster
    base_url: str
    server: subprocess.Popen[bytes]
    monitor: Conn
    city: City
    photo: bytes
    media_settings: MediaSettings
    server_media: Path
    ceiling_media: Path
    postmaster_pid: int
    # The --baseline tree's server and URL, when one is compared.
    baseline: tuple[subprocess.Popen[bytes], str] | None = None
    # The separate notice worker (None: it runs inside the API server) and the mail sink.
    worker: subprocess.Popen[bytes] | None = None
    sink: subprocess.Popen[bytes] | None = None
    # The next report index no run has used (each index is a point of its own).
    next_index: int = 0

    def cpu(self, server: subprocess.Popen[bytes] | None = None) -> CpuSample:
        return CpuSample(
            server_s=_tree_cpu_s((server or self.server).pid),
            postgres_s=_postgres_cpu_s(self.postmaster_pid),
            bench_s=time.process_time(),
            worker_s=_tree_cpu_s(self.worker.pid) if self.worker is not None else 0.0,
            sink_s=_tree_cpu_s(self.sink.pid) if self.sink is not None else 0.0,
        )

    def reserve(self, n: int) -> int:
        """Return the first of ``n`` report indexes no run used before (see City.report)."""
        first = self.next_index
        self.next_index += n
        return first

    def drain(self, timeout_s: float = 120.0) -> None:
        """Return once the notice queue holds no job due now (every notice owed so far was
        delivered), so that one side's deliveries do not run into the next side's run."""
        deadline = time.monotonic() + timeout_s
        while not _STOP.is_set():
            row = self.monitor.execute(_OWED_JOBS_SQL, {"queue": outbox.QUEUE}).fetchone()
            if row is None or row[0] == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{row[0]} notice jobs still waiting after {timeout_s:.0f} s: "
                    "is the worker running, and the mail sink?"
                )
            time.sleep(0.05)

    def check_delivered(self) -> None:
        """Raise unless every notice owed so far went out (the mail sink took it)."""
        self.drain()
        row = self.monitor.execute(
            "SELECT count(*) FILTER (WHERE status <> 'sent'), count(*) FROM notices"
        ).fetchone()
        if row is None or row[0]:
            raise RuntimeError(f"notices not delivered (of all): {row}")

    def pg_sessions(self) -> int:
        row = self.monitor.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        return int(row[0]) if row else 0

    def clear_media(self) -> None:
        """Delete the photos stored so far, so a long run does not fill the disk."""
        for root in (self.server_media, self.ceiling_media):
            for sub in ("public", "private"):
                shutil.rmtree(root / sub, ignore_errors=True)

    def api_request(
        self, client: httpx.AsyncClient, variant: Variant, i: int
    ) -> Coroutine[Any, Any, httpx.Response]:
        """Return the coroutine posting report ``i``."""
        category, lon, lat = self.city.report(i)
        fields = {
            "category": category,
            "description": f"bench report {i}",
            "email": f"bench{i}@example.org",
        }
        if variant == "photo":
            return client.post(
                "/api/v1/reports",
                data=fields,
                files={"photo": ("street.jpg", self.photo, "image/jpeg")},
            )
        pinned = {**fields, "lat": repr(lat), "lon": repr(lon)}
        if self.args.fields_body == "form":
            return client.post("/api/v1/reports", data=pinned)
        return client.post("/api/v1/reports", json=pinned)


def _check_api_body(variant: Variant, i: int, body: dict[str, Any], city: City) -> None:
    """Raise unless the report was placed and snapped as the bench intends."""
    category, _, _ = city.report(i)
    if body.get("ward") is None:
        raise RuntimeError(f"report {i} has no ward: {body}")
    if category == "streetlight_out" and body.get("asset") is None:
        raise RuntimeError(f"report {i} was not snapped to a streetlight: {body}")
    expected = "exif" if variant == "photo" else "pin"
    if body.get("location_source") != expected:
        raise RuntimeError(f"report {i} placed by {body.get('location_source')}, not {expected}")


def _check_ceiling_view(variant: Variant, i: int, view: tuple[Any, ...], city: City) -> None:
    """Raise unless the ceiling placed and snapped report ``i`` as the API does."""
    category, _, _ = city.report(i)
    ward_code, asset_id, source, public_key = view
    if ward_code is None:
        raise RuntimeError(f"ceiling report {i} has no ward: {view}")
    if category == "streetlight_out" and asset_id is None:
        raise RuntimeError(f"ceiling report {i} was not snapped to a streetlight: {view}")
    if source != ("exif" if variant == "photo" else "pin"):
        raise RuntimeError(f"ceiling report {i} placed by {source}")
    if (variant == "photo") != (public_key is not None):
        raise RuntimeError(f"ceiling report {i}: photo key {public_key!r} for {variant}")


async def api_run(
    bench: Bench,
    client: httpx.AsyncClient,
    variant: Variant,
    *,
    concurrency: int,
    n: int,
    first: int,
    check: bool = False,
    server: subprocess.Popen[bytes] | None = None,
) -> RunResult:
    """Return one run of ``n`` API reports posted by ``concurrency`` clients (to ``client``'s
    server; ``server``: its process, when not the bench's own)."""
    latencies = [0.0] * n
    joined = [0]
    next_i = iter(range(n))

    async def client_loop() -> None:
        for k in next_i:
            if _STOP.is_set():
                return
            started = time.perf_counter()
            resp = await bench.api_request(client, variant, first + k)
            latencies[k] = time.perf_counter() - started
            if resp.status_code != 201:
                raise RuntimeError(f"POST /api/v1/reports: {resp.status_code} {resp.text[:800]}")
            body = resp.json()
            if body["report_count"] > 1:
                joined[0] += 1
            if check:
                _check_api_body(variant, first + k, body, bench.city)

    await asyncio.to_thread(bench.drain)
    sessions, before = bench.pg_sessions(), bench.cpu(server)
    started = time.perf_counter()
    # A TaskGroup cancels the other clients as soon as one fails.
    async with asyncio.TaskGroup() as clients:
        for _ in range(concurrency):
            clients.create_task(client_loop())
    elapsed = time.perf_counter() - started
    # The CPU of the work the run caused, its notices' delivery included.
    await asyncio.to_thread(bench.drain)
    after = bench.cpu(server)
    return _run_result(latencies, elapsed, before, after, bench.pg_sessions() - sessions, joined[0])


def ceiling_run(
    bench: Bench,
    pool: ConnectionPool[Conn],
    variant: Variant,
    *,
    concurrency: int,
    n: int,
    first: int,
    check: bool = False,
) -> RunResult:
    """Return one run of ``n`` reports stored directly, by ``concurrency`` threads."""
    latencies = [0.0] * n
    lock = threading.Lock()
    next_i = iter(range(n))
    media = LocalMediaStore(bench.ceiling_media)
    photo = bench.photo if variant == "photo" else None

    def take() -> int | None:
        with lock:
            return next(next_i, None)

    def worker() -> None:
        with pool.connection() as conn:
            while not _STOP.is_set() and (k := take()) is not None:
                started = time.perf_counter()
                view = ceiling_report(
                    conn,
                    city=bench.city,
                    i=first + k,
                    photo=photo,
                    media_settings=bench.media_settings,
                    media=media,
                )
                latencies[k] = time.perf_counter() - started
                if check:
                    _check_ceiling_view(variant, first + k, view, bench.city)

    bench.drain()
    sessions, before = bench.pg_sessions(), bench.cpu()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as executor:
        try:
            for future in [executor.submit(worker) for _ in range(concurrency)]:
                future.result()
        except BaseException:
            _STOP.set()
            raise
    elapsed = time.perf_counter() - started
    bench.drain()
    after = bench.cpu()
    return _run_result(latencies, elapsed, before, after, bench.pg_sessions() - sessions)


async def _level(bench: Bench, variant: Variant, concurrency: int) -> LevelResult:
    n = bench.args.photo_requests if variant == "photo" else bench.args.requests
    result = LevelResult(workload=variant, concurrency=concurrency, requests=n)
    # Idle connections are dropped well before uvicorn's 5 s keep-alive ends them: at the same
    # 5 s, a connection idle through a ceiling run is reused just as the server closes it.
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=1.0
    )
    warm = min(concurrency, 8) if variant == "photo" else 2 * concurrency
    with ExitStack() as stack:
        pool: ConnectionPool[Conn] = stack.enter_context(
            ConnectionPool(
                bench.cluster.conninfo(DBNAME),
                min_size=concurrency,
                max_size=concurrency,
                kwargs={"autocommit": True},
                open=True,
            )
        )
        pool.wait()
        async with (
            httpx.AsyncClient(
                base_url=bench.base_url, limits=limits, timeout=120.0, http1=True, http2=False
            ) as client,
            httpx.AsyncClient(
                base_url=bench.baseline[1] if bench.baseline else bench.base_url,
                limits=limits,
                timeout=120.0,
                http1=True,
                http2=False,
            ) as baseline_client,
        ):
            baseline_server = bench.baseline[0] if bench.baseline else None
            # Warm-up: opens the connections, fills caches, and checks every answer.
            clients = min(warm, concurrency)
            # Each side's reports at points of their own (none joins another side's incident).
            origin = bench.reserve(3 * warm)
            await api_run(
                bench, client, variant, concurrency=clients, n=warm, first=origin, check=True
            )
            if baseline_server is not None:
                await api_run(
                    bench,
                    baseline_client,
                    variant,
                    concurrency=clients,
                    n=warm,
                    first=origin + warm,
                    check=True,
                    server=baseline_server,
                )
            await asyncio.to_thread(
                ceiling_run,
                bench,
                pool,
                variant,
                concurrency=clients,
                n=warm,
                first=origin + 2 * warm,
                check=True,
            )
            await asyncio.to_thread(bench.check_delivered)
            bench.clear_media()
            for _ in range(bench.args.runs):
                first = bench.reserve(3 * n)
                try:
                    result.api.append(
                        await api_run(
                            bench, client, variant, concurrency=concurrency, n=n, first=first
                        )
                    )
                    if baseline_server is not None:
                        result.baseline.append(
                            await api_run(
                                bench,
                                baseline_client,
                                variant,
                                concurrency=concurrency,
                                n=n,
                                first=first + n,
                                server=baseline_server,
                            )
                        )
                    result.ceiling.append(
                        await asyncio.to_thread(
                            ceiling_run,
                            bench,
                            pool,
                            variant,
                            concurrency=concurrency,
                            n=n,
                            first=first + 2 * n,
                        )
                    )
                except BaseException:
                    _STOP.set()
                    raise
                bench.clear_media()
    return result


def run_level(bench: Bench, variant: Variant, concurrency: int) -> LevelResult:
    """Return the API and ceiling runs of one workload at one concurrency."""
    return asyncio.run(_level(bench, variant, concurrency))


# --- setting up and tearing down -----------------------------------------------------------


def _geo311_env(
    url: str, data_dir: Path, smtp_port: int, extra_env: dict[str, str], tree: Path = REPO
) -> dict[str, str]:
    """Return the environment of a geo311 process (API server or notice worker)."""
    return {
        **os.environ,
        "GEO311_DB__URL": url,
        "GEO311_DATA_DIR": str(data_dir),
        "GEO311_JURISDICTION": SLUG,
        "GEO311_HOST": "127.0.0.1",
        # A line per request is the server's work too, but no part of what is compared.
        "GEO311_ACCESS_LOG": "false",
        # The notices go to the bench's mail sink: delivered, not retried for ever.
        "GEO311_NOTIFY__SMTP__HOST": "127.0.0.1",
        "GEO311_NOTIFY__SMTP__PORT": str(smtp_port),
        "GEO311_NOTIFY__DEV_MAIL__ENABLED": "false",
        # Another checkout's packages before the installed ones (python -m adds the working
        # directory too); the same environment, so the same libraries.
        **({"PYTHONPATH": str(tree)} if tree != REPO else {}),
        **extra_env,
    }


@contextmanager
def _child(
    cmd: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    stop: signal.Signals = signal.SIGINT,
) -> Iterator[subprocess.Popen[bytes]]:
    """Yield a started process logging to ``log_path``; stop it (with ``stop``) afterwards."""
    proc: subprocess.Popen[bytes] | None = None
    try:
        with _uninterrupted(), log_path.open("wb") as log:
            # Its own session: a Ctrl+C in the terminal reaches only us, and we stop it.
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        yield proc
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(stop)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def api_server(
    env: dict[str, str],
    log_path: Path,
    *,
    workers: int = 1,
    embedded_worker: bool = False,
    tree: Path = REPO,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Yield the running API server process (of the checkout ``tree``) and its base URL;
    stop it afterwards. ``embedded_worker``: it delivers the notices itself (``geo311 run``'s
    default) rather than leaving them to a ``geo311 worker``."""
    port = _free_port()
    env = {**env, "GEO311_NOTIFY__EMBEDDED_WORKER": str(embedded_worker).lower()}
    cmd = [sys.executable, "-m", "geo311.cli", "run", "--no-demo", "--port", str(port)]
    cmd += ["--workers", str(workers)]
    base_url = f"http://127.0.0.1:{port}"
    with _child(cmd, cwd=tree, env=env, log_path=log_path) as server:
        _wait_healthy(server, base_url, log_path)
        yield server, base_url


@contextmanager
def notice_worker(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Yield a running ``geo311 worker`` (the production shape: the API server owes the
    notices, this process delivers them); stop it afterwards."""
    cmd = [sys.executable, "-m", "geo311.cli", "worker"]
    with _child(cmd, cwd=REPO, env=env, log_path=log_path) as worker:
        yield worker


@contextmanager
def mail_sink(port: int, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Yield a running SMTP server on loopback that takes every mail and keeps none (the
    city's mail server; without one, every notice would be retried for the whole run)."""
    cmd = [sys.executable, "-m", "aiosmtpd", "-n", "-u", "-c", "aiosmtpd.handlers.Sink"]
    cmd += ["-l", f"127.0.0.1:{port}"]
    # SIGTERM: a bench started in the background (SIGINT ignored) still stops it at once.
    with _child(
        cmd, cwd=REPO, env=dict(os.environ), log_path=log_path, stop=signal.SIGTERM
    ) as sink:
        deadline = time.monotonic() + 30.0
        while True:
            if sink.poll() is not None:
                raise RuntimeError(f"the mail sink exited ({sink.returncode}):\n{_tail(log_path)}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the mail sink did not listen in 30 s") from None
                time.sleep(0.1)
        yield sink


def _wait_healthy(server: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + 300.0  # several serving processes import the app first
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the API server exited ({server.returncode}):\n{_tail(log_path)}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API server did not answer /healthz in 300 s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def throwaway_cluster(root: Path) -> Iterator[EmbeddedCluster]:
    """Yield a started cluster in ``root``/pg holding a migrated database with the demo city."""
    cluster = EmbeddedCluster(root / "pg")
    started = False
    try:
        with _uninterrupted():
            cluster.start()
            started = True
        cluster.ensure_database(DBNAME)
        url = cluster.url(DBNAME)
        migrate.upgrade(url)
        db = Database.connect(url, pool_size=2)
        try:
            load_demo(db, slug=SLUG)
        finally:
            db.dispose()
        yield cluster
    finally:
        _stop_cluster(cluster, grace_s=0.0 if started else 3.0)


def _stop_cluster(cluster: EmbeddedCluster, *, grace_s: float) -> None:
    """Stop the cluster; after a start that failed, keep watching ``grace_s`` seconds for a
    postmaster that was still coming up (a Ctrl+C in the terminal also reaches pg_ctl, which
    can die after starting the detached postmaster and before it wrote its pid file)."""
    cluster.stop()
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if (cluster.data_dir / "postmaster.pid").exists():
            cluster.stop()


class _Signals:
    """Whether an interrupt must wait for the end of a section, and whether one is waiting."""

    deferring = False
    pending = False


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """Run the body to its end even if SIGINT or SIGTERM arrives; raise KeyboardInterrupt after.

    For the steps that start detached processes (the postmaster, the API server): stopped
    half-way, they would leave a process behind that the clean-up does not know about.
    """
    _Signals.deferring = True
    try:
        yield
    finally:
        _Signals.deferring = False
    if _Signals.pending:
        raise KeyboardInterrupt("deferred signal")


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    """Stop the run on the first SIGINT or SIGTERM; ignore the next ones while cleaning up.

    Installed for SIGINT too, so asyncio.run keeps its hands off: its own handler only
    cancels the main task, and a cancellation that lands inside the HTTP client's cleanup
    can be absorbed, leaving the benchmark running. A second Ctrl+C must not cut the
    clean-up short either, or the cluster and the server would be left behind.
    """
    if _STOP.is_set():
        return
    _STOP.set()
    if _Signals.deferring:
        _Signals.pending = True
        return
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    args = _parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 150)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    root = Path(tempfile.mkdtemp(prefix="geo311-bench-"))
    root.chmod(0o755)  # as root, the cluster runs as postgres, which must reach its directory
    try:
        with ExitStack() as stack:
            console.print(f"[dim]setting up in {root} …[/dim]")
            cluster = stack.enter_context(throwaway_cluster(root))
            monitor: Conn = stack.enter_context(
                psycopg.connect(cluster.conninfo(DBNAME), autocommit=True)
            )
            city = read_rules(cluster.url(DBNAME), survey_city(monitor))
            lon, lat = city.streetlight_points[0]
            photo = make_photo(lon, lat)
            media_settings = MediaSettings()
            photo_ms = time_process_photo(photo, args.photo_runs, media_settings)
            data_dir = root / "data"
            smtp_port = _free_port()
            sink = stack.enter_context(mail_sink(smtp_port, root / "sink.log"))
            env = _geo311_env(cluster.url(DBNAME), data_dir, smtp_port, args.server_env)
            embedded = args.notice_worker == "embedded"
            server, base_url = stack.enter_context(
                api_server(env, root / "server.log", workers=args.workers, embedded_worker=embedded)
            )
            worker = (
                None if embedded else stack.enter_context(notice_worker(env, root / "worker.log"))
            )
            baseline = None
            if args.baseline is not None:
                baseline_env = _geo311_env(
                    cluster.url(DBNAME),
                    root / "baseline-data",
                    smtp_port,
                    args.server_env,
                    tree=args.baseline,
                )
                baseline = stack.enter_context(
                    api_server(
                        baseline_env,
                        root / "baseline-server.log",
                        workers=args.workers,
                        embedded_worker=embedded,
                        tree=args.baseline,
                    )
                )
            pid_file = cluster.data_dir / "postmaster.pid"
            bench = Bench(
                args=args,
                cluster=cluster,
                base_url=base_url,
                server=server,
                monitor=monitor,
                city=city,
                photo=photo,
                media_settings=media_settings,
                server_media=data_dir / "media",
                ceiling_media=root / "ceiling-media",
                postmaster_pid=int(pid_file.read_text().split()[0]),
                baseline=baseline,
                worker=worker,
                sink=sink,
            )
            machine = {**_machine(monitor), "loadavg_at_start": load_at_start}
            settings = _settings(args, photo, city)
            _print_header(console, machine, settings)
            levels: list[LevelResult] = []
            for variant in args.workloads:
                for concurrency in args.concurrency:
                    console.print(f"[dim]{variant} × {concurrency} clients …[/dim]")
                    levels.append(run_level(bench, variant, concurrency))
            elapsed_s = time.perf_counter() - started
            machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
            _print_results(console, levels, photo_ms, embedded=embedded)
            console.print(
                f"[dim]total {elapsed_s:.0f} s; load average (1, 5, 15 min) at start "
                f"{machine['loadavg_at_start']}, at end {machine['loadavg_at_end']}[/dim]"
            )
            _warn_if_busy(console, machine)
            if args.json:
                _write_json(args.json, machine, settings, levels, photo_ms, elapsed_s)
                console.print(f"wrote {args.json}")
    except KeyboardInterrupt:
        _STOP.set()
        # The interrupted level's task is left holding the KeyboardInterrupt; asyncio would
        # log it as "never retrieved" when it is collected.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        console.print("[yellow]interrupted; everything stopped[/yellow]")
        return 130
    except Exception:
        _STOP.set()
        # The temporary directory goes next; keep what the server said about the failure.
        server_log = root / "server.log"
        if server_log.exists():
            console.print("[red]API server log (last lines):[/red]")
            console.print(_tail(server_log), markup=False, highlight=False)
        raise
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    def ints(text: str) -> list[int]:
        values = [int(v) for v in text.split(",") if v.strip()]
        if not values or min(values) < 1:
            raise argparse.ArgumentTypeError("give positive integers, e.g. 1,8,32")
        return values

    def workloads(text: str) -> list[Variant]:
        chosen: list[Variant] = []
        for name in text.split(","):
            if name == "fields":
                chosen.append("fields")
            elif name == "photo":
                chosen.append("photo")
            else:
                raise argparse.ArgumentTypeError(f"unknown workload {name!r}: fields, photo")
        return chosen

    def env_pair(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key.startswith("GEO311_"):
            raise argparse.ArgumentTypeError("give GEO311_NAME=value")
        return key, value

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=ints, default=[1, 8, 32], help="default 1,8,32")
    parser.add_argument("--requests", type=int, default=300, help="fields reports per run")
    parser.add_argument("--photo-requests", type=int, default=120, help="photo reports per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per level; median shown")
    parser.add_argument("--photo-runs", type=int, default=15, help="process_photo timings")
    parser.add_argument("--workloads", type=workloads, default=["fields", "photo"])
    parser.add_argument("--fields-body", choices=("json", "form"), default="json")
    parser.add_argument(
        "--server-env",
        type=env_pair,
        action="append",
        default=[],
        metavar="GEO311_NAME=value",
        help="extra setting for the API server, e.g. GEO311_DB__POOL_SIZE=40",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="API server processes (geo311 run --workers N)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="TREE",
        help="another checkout of geo311 (e.g. `git worktree add /tmp/before <commit>`): its "
        "API is served too, on the same database, and run right after this tree's in every "
        "run, for a before/after in one process",
    )
    parser.add_argument(
        "--notice-worker",
        choices=("separate", "embedded"),
        default="separate",
        help="separate (default): the API server with GEO311_NOTIFY__EMBEDDED_WORKER=false "
        "and one `geo311 worker` process delivering the notices, its CPU shown in a column of "
        "its own; embedded: the worker inside the API server (`geo311 run`'s default)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if min(args.requests, args.photo_requests, args.runs) < 1 or args.photo_runs < 10:
        parser.error("--requests, --photo-requests and --runs must be >= 1, --photo-runs >= 10")
    args.server_env = dict(args.server_env)
    return args


# --- output --------------------------------------------------------------------------------


def _settings(args: argparse.Namespace, photo: bytes, city: City) -> dict[str, Any]:
    db = DatabaseSettings()
    return {
        "concurrency": args.concurrency,
        "requests_per_run": {"fields": args.requests, "photo": args.photo_requests},
        "runs": args.runs,
        "photo_runs": args.photo_runs,
        "fields_body": args.fields_body,
        "photo": f"{PHOTO_SIZE_PX[0]}x{PHOTO_SIZE_PX[1]} JPEG, {len(photo) / 1e6:.2f} MB, EXIF GPS",
        "categories": f"pothole, and streetlight_out for 1 in {STREETLIGHT_EVERY} "
        f"({len(city.pothole_points)} pothole points {POTHOLE_SPACING_M:g} m apart, "
        f"{len(city.streetlight_points)} streetlights, pins {STREETLIGHT_OFFSET_M:g} m away; "
        "no point used twice until all were)",
        "server": f"geo311 run --workers {args.workers} (uvicorn); "
        f"SQLAlchemy pool {db.pool_size}+{db.max_overflow} overflow",
        "notices": "delivered by the API server's in-process worker"
        if args.notice_worker == "embedded"
        else "delivered by one `geo311 worker` process (the API server runs none)",
        "mail": "an SMTP sink on loopback (aiosmtpd, keeps nothing)",
        "baseline": str(args.baseline) if args.baseline else None,
        "server_env": args.server_env,
        "ceiling": "psycopg_pool, one connection per thread, autocommit + explicit transaction",
        "postgres": "embedded cluster: shared_buffers 256MB, fsync on, unix socket",
    }


def _warn_if_busy(console: Console, machine: dict[str, Any]) -> None:
    """Print a warning when other work shared the CPUs (1-minute load average before the run)."""
    # Our own work loads the machine too, so only the figure taken before the set-up says
    # something about others.
    before = machine["loadavg_at_start"][0]
    if before > 0.5 * machine["nproc"]:
        console.print(
            f"[yellow]warning: load average {before} before the run on {machine['nproc']} "
            "CPUs: other work shared the machine, the numbers are pessimistic[/yellow]"
        )


def _print_header(console: Console, machine: dict[str, Any], settings: dict[str, Any]) -> None:
    console.print(
        f"[bold]machine[/bold]  {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_gb']} GB, Linux {machine['kernel']}, Python {machine['python']}, "
        f"PostgreSQL {machine['postgresql']}, PostGIS {machine['postgis']}, "
        f"temp on {machine['temp_fs']}, load average {machine['loadavg_at_start']}"
    )
    for key, value in settings.items():
        if key == "server_env" and not value:
            continue
        console.print(f"  {key:<17} {value}")


def _print_results(
    console: Console, levels: list[LevelResult], photo_ms: list[float], *, embedded: bool
) -> None:
    table = Table(
        title=f"Report intake: median of runs (target: API ≥ {TARGET_RATIO:.0%} of the ceiling)",
        title_justify="left",
    )
    for name in ("workload", "clients"):
        table.add_column(name)
    for name in ("API rep/s", "p50 ms", "p99 ms", "API joined"):
        table.add_column(name, justify="right")
    for name in ("ceiling rep/s", "p50 ms", "p99 ms"):
        table.add_column(name, justify="right")
    table.add_column("API/ceiling", justify="right")
    table.add_column("target", justify="center")
    compared = any(level.baseline for level in levels)
    if compared:
        table.add_column("baseline rep/s", justify="right")
        table.add_column("baseline/ceiling", justify="right")
    for level in levels:
        ratio = level.ratio
        row = [
            level.workload,
            str(level.concurrency),
            f"{level.median('api', 'reports_per_s'):.1f}",
            f"{level.median('api', 'p50_ms'):.1f}",
            f"{level.median('api', 'p99_ms'):.1f}",
            # The ceiling always opens an incident: a join is other work (a row lock, no
            # incident or work order written).
            f"{level.median('api', 'joined'):.0%}",
            f"{level.median('ceiling', 'reports_per_s'):.1f}",
            f"{level.median('ceiling', 'p50_ms'):.1f}",
            f"{level.median('ceiling', 'p99_ms'):.1f}",
            f"{ratio:.0%}",
            "[green]ok[/green]" if ratio >= TARGET_RATIO else "[red]below[/red]",
        ]
        if compared:
            before = level.baseline_ratio
            row += (
                ["-", "-"]
                if before is None
                else [f"{level.median('baseline', 'reports_per_s'):.1f}", f"{before:.0%}"]
            )
        table.add_row(*row)
    console.print(table)

    def worker(level: LevelResult, side: Literal["api", "ceiling"]) -> str:
        # Inside the API server (--notice-worker embedded): counted in its column.
        return "in server" if embedded else f"{level.median(side, 'worker_cpu_ms'):.2f}"

    cpu = Table(
        title="CPU per report in ms, until the notices the run owed were delivered (median of "
        "runs); new PostgreSQL sessions per run",
        title_justify="left",
    )
    for name in ("workload", "clients"):
        cpu.add_column(name)
    for name in (
        "API server",
        "API: worker",
        "API: postgres",
        "API: load gen",
        "ceiling app",
        "ceiling: worker",
        "ceiling: postgres",
        "mail sink",
        "API new sessions",
    ):
        cpu.add_column(name, justify="right")
    if compared:
        cpu.add_column("baseline server", justify="right")
        cpu.add_column("baseline: postgres", justify="right")
    for level in levels:
        row = [
            level.workload,
            str(level.concurrency),
            f"{level.median('api', 'server_cpu_ms'):.2f}",
            worker(level, "api"),
            f"{level.median('api', 'postgres_cpu_ms'):.2f}",
            f"{level.median('api', 'bench_cpu_ms'):.2f}",
            f"{level.median('ceiling', 'bench_cpu_ms'):.2f}",
            worker(level, "ceiling"),
            f"{level.median('ceiling', 'postgres_cpu_ms'):.2f}",
            f"{level.median('api', 'sink_cpu_ms'):.2f}",
            f"{level.median('api', 'pg_sessions'):.0f}",
        ]
        if compared:
            row += (
                ["-", "-"]
                if not level.baseline
                else [
                    f"{level.median('baseline', 'server_cpu_ms'):.2f}",
                    f"{level.median('baseline', 'postgres_cpu_ms'):.2f}",
                ]
            )
        cpu.add_row(*row)
    console.print(cpu)

    median_ms = statistics.median(photo_ms)
    verdict = "[green]ok[/green]" if median_ms <= TARGET_PHOTO_MS else "[red]over[/red]"
    console.print(
        f"process_photo on the {PHOTO_SIZE_PX[0]}x{PHOTO_SIZE_PX[1]} JPEG: median "
        f"{median_ms:.1f} ms of {len(photo_ms)} runs (min {min(photo_ms):.1f}, "
        f"max {max(photo_ms):.1f}); target ≤ {TARGET_PHOTO_MS:.0f} ms: {verdict}"
    )


def _write_json(
    path: Path,
    machine: dict[str, Any],
    settings: dict[str, Any],
    levels: list[LevelResult],
    photo_ms: list[float],
    elapsed_s: float,
) -> None:
    summary: list[dict[str, Any]] = []
    for level in levels:
        summary.append(
            {
                "workload": level.workload,
                "concurrency": level.concurrency,
                "requests_per_run": level.requests,
                "api_reports_per_s": level.median("api", "reports_per_s"),
                "api_p50_ms": level.median("api", "p50_ms"),
                "api_p99_ms": level.median("api", "p99_ms"),
                "ceiling_reports_per_s": level.median("ceiling", "reports_per_s"),
                "ceiling_p50_ms": level.median("ceiling", "p50_ms"),
                "ceiling_p99_ms": level.median("ceiling", "p99_ms"),
                "ratio": level.ratio,
                "meets_target": level.ratio >= TARGET_RATIO,
                "baseline_reports_per_s": level.median("baseline", "reports_per_s")
                if level.baseline
                else None,
                "baseline_ratio": level.baseline_ratio,
                "runs": {
                    "api": [asdict(r) for r in level.api],
                    "ceiling": [asdict(r) for r in level.ceiling],
                    "baseline": [asdict(r) for r in level.baseline],
                },
            }
        )
    document = {
        "machine": machine,
        "settings": settings,
        "process_photo_ms": {
            "median": statistics.median(photo_ms),
            "runs": photo_ms,
            "target": TARGET_PHOTO_MS,
        },
        "results": summary,
        "target_ratio": TARGET_RATIO,
        "elapsed_s": elapsed_s,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
