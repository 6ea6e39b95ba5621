"""Dedup at scale: the matching step's latency as stored reports grow, and bulk import speed.

Starts a throwaway PostGIS cluster in a temporary directory and builds a synthetic city the
size of New York (28 km × 28 km, 100 wards, 12 categories in 7 groups, 30,000 streetlights).

1. **Matching step** — ``geo311.resident.dedup.placing.Matcher`` (the group's rules, the advisory
   locks, the candidate query and the scoring: what dedup adds to intake; rolled back) for
   random reports (uniform over the city, a random category; streetlight reports next to a
   streetlight, so the same-asset search runs) with 10 thousand, 1 million and 5 million
   stored reports (one report per incident, spread over three years, 97 % closed within ten
   days). Stored reports are generated set-based in SQL (generate_series). The baseline is
   the 10 thousand row: target p50 at 5 million ≤ 1.5 × p50 at 10 thousand.
2. **Bulk import** — ``geo311 import reports`` in a subprocess on a generated CSV of 1 million
   rows (70 % first reports of a problem, 30 % later reports of one within 15 m and two
   days), into an empty copy of the city (so, a first import: a bulk load): rows per second
   (wall clock, process start included) and the process's peak resident memory. Beside it,
   in the same run: the import with dedup switched off; the schema's write floor — binary
   COPY of the very incidents and reports the dedup-on import wrote (every column) into the
   real tables, every index in place, each row's foreign keys checked as it is written; the
   same with the keys dropped and added back, checked (what the importer's bulk load does);
   and a bare ``COPY`` of the file into an unindexed table. Then the dedup-on import's time by
   phase (as its summary prints it), its own time (process start excluded) and the CLI's
   start alone. Targets: ≥ 20,000 rows/s, peak < 1 GB.

Each measurement is the median of ``--runs`` runs. Sizes and rows are flags:

    uv run python bench/dedup_scale.py [--sizes 10000,1000000,5000000] [--samples 400]
        [--runs 3] [--import-rows 1000000] [--import-runs 1] [--skip-import]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table

from geo311.kernel import migrate
from geo311.kernel.database import Database
from geo311.kernel.embedded import EmbeddedCluster
from geo311.kernel.settings import DedupSettings
from geo311.resident.dedup import placing
from layers import service as layers_service
from work_orders.models import ServiceCategory

REPO = Path(__file__).resolve().parents[1]
# Wide enough for the tables when the output goes to a file (rich assumes 80 columns then).
console = Console(width=int(os.environ.get("COLUMNS", "160")))

T_REF = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MIN_LON, MAX_LON, MIN_LAT, MAX_LAT = -74.25, -73.92, 40.50, 40.75
WARDS_PER_SIDE = 10
LIGHT_DLON, LIGHT_DLAT = 0.0019, 0.0014  # ~160 m × 155 m: 174 × 179 = 31,146 streetlights
N_LON = int((MAX_LON - MIN_LON) / LIGHT_DLON)
N_LAT = int((MAX_LAT - MIN_LAT) / LIGHT_DLAT)
# code, group, asset type, dedup radius m, snap radius m, SLA hours
CATEGORIES = (
    ("pothole", "streets", None, 25, 0, 72),
    ("sidewalk_damage", "streets", None, 30, 0, 336),
    ("sign_damaged", "streets", None, 30, 0, 168),
    ("streetlight_out", "lighting", "streetlight", 40, 40, 120),
    ("graffiti", "cleaning", None, 30, 0, 168),
    ("illegal_dumping", "cleaning", None, 40, 0, 96),
    ("missed_collection", "sanitation", None, 50, 0, 48),
    ("dead_animal", "sanitation", None, 50, 0, 24),
    ("heat", "housing", None, 30, 0, 24),
    ("hydrant_leak", "water", None, 50, 0, 24),
    ("water_main", "water", None, 50, 0, 12),
    ("tree_down", "trees", None, 30, 0, 12),
)
CODES = [c[0] for c in CATEGORIES]


# --- the city -------------------------------------------------------------------------------


@contextmanager
def cluster() -> Iterator[EmbeddedCluster]:
    root = Path(tempfile.mkdtemp(prefix="geo311-dedup-bench-"))
    root.chmod(0o755)
    pg = EmbeddedCluster(root / "pg")
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def make_city(pg: EmbeddedCluster, name: str) -> None:
    """Create database ``name``, migrated, with the synthetic city (no reports)."""
    pg.ensure_database(name)
    migrate.upgrade(pg.url(name))
    with psycopg.connect(pg.conninfo(name)) as conn:
        jid = conn.execute(
            "INSERT INTO jurisdictions (slug, name, timezone) "
            "VALUES ('scale', 'Scale City', 'America/New_York') RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        map_id = conn.execute(
            "INSERT INTO ward_maps (jurisdiction_id, name, valid_from) "
            "VALUES (%s, 'grid', '2000-01-01') RETURNING id",
            (jid,),
        ).fetchone()[0]  # type: ignore[index]
        dx = (MAX_LON - MIN_LON) / WARDS_PER_SIDE
        dy = (MAX_LAT - MIN_LAT) / WARDS_PER_SIDE
        conn.execute(
            """
            INSERT INTO wards (jurisdiction_id, ward_map_id, code, name, geom)
            SELECT %(jid)s, %(map)s, lpad((i * 10 + j)::text, 3, '0'), 'Ward ' || (i * 10 + j),
                   ST_Multi(ST_MakeEnvelope(%(x0)s + i * %(dx)s, %(y0)s + j * %(dy)s,
                                            %(x0)s + (i + 1) * %(dx)s,
                                            %(y0)s + (j + 1) * %(dy)s, 4326))
            FROM generate_series(0, 9) i, generate_series(0, 9) j
            """,
            {"jid": jid, "map": map_id, "x0": MIN_LON, "y0": MIN_LAT, "dx": dx, "dy": dy},
        )
        conn.execute(
            "INSERT INTO asset_types (jurisdiction_id, code, name) "
            "VALUES (%s, 'streetlight', 'Streetlight')",
            (jid,),
        )
        conn.execute(
            """
            INSERT INTO assets (jurisdiction_id, asset_type, external_id, geom)
            SELECT %(jid)s, 'streetlight', 'SL-' || i || '-' || j,
                   ST_SetSRID(ST_MakePoint(%(x0)s + (i + 0.5) * %(dx)s,
                                           %(y0)s + (j + 0.5) * %(dy)s), 4326)
            FROM generate_series(0, %(ni)s - 1) i, generate_series(0, %(nj)s - 1) j
            ORDER BY i, j
            """,
            {
                "jid": jid,
                "x0": MIN_LON,
                "y0": MIN_LAT,
                "dx": LIGHT_DLON,
                "dy": LIGHT_DLAT,
                "ni": N_LON,
                "nj": N_LAT,
            },
        )
        for code, group, asset_type, radius, snap, sla in CATEGORIES:
            conn.execute(
                "INSERT INTO service_categories (jurisdiction_id, code, name, group_code, "
                "asset_type, dedup_radius_m, snap_radius_m, sla_hours) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (jid, code, code.replace("_", " ").title(), group, asset_type, radius, snap, sla),
            )
        conn.execute("ANALYZE")


_GROW = """
WITH base AS (SELECT min(id) AS light0 FROM assets),
gen AS (
    SELECT g,
           (CAST(%(codes)s AS text[]))[1 + floor(random() * %(ncodes)s)::int] AS code,
           floor(random() * %(ni)s)::int AS li, floor(random() * %(nj)s)::int AS lj,
           %(t_ref)s - random() * interval '1095 days' AS t,
           random() AS r_closed, random() AS r_close_s,
           %(x0)s + random() * (%(x1)s - %(x0)s) AS lon,
           %(y0)s + random() * (%(y1)s - %(y0)s) AS lat
    FROM generate_series(1, %(n)s) AS g
),
placed AS (
    SELECT gen.*,
           CASE WHEN code = 'streetlight_out'
                THEN %(x0)s + (li + 0.5) * %(ldx)s + (random() - 0.5) * 0.0002 ELSE lon END AS x,
           CASE WHEN code = 'streetlight_out'
                THEN %(y0)s + (lj + 0.5) * %(ldy)s + (random() - 0.5) * 0.0002 ELSE lat END AS y,
           CASE WHEN code = 'streetlight_out' THEN base.light0 + li * %(nj)s + lj END AS asset,
           CASE WHEN r_closed < 0.97 AND t + r_close_s * interval '10 days' < %(t_ref)s
                THEN t + r_close_s * interval '10 days' END AS closed
    FROM gen, base
)
INSERT INTO incidents (jurisdiction_id, category_code, status, geom, ward_id, asset_id,
                       opened_at, due_at, closed_at, updated_at)
SELECT %(jid)s, code, CASE WHEN closed IS NULL THEN 'new' ELSE 'closed' END,
       ST_SetSRID(ST_MakePoint(x, y), 4326),
       (SELECT min(id) FROM wards) + least(9, floor((x - %(x0)s) / %(wdx)s)::int) * 10
           + least(9, floor((y - %(y0)s) / %(wdy)s)::int),
       asset, t, t + interval '3 days', closed, coalesce(closed, t)
FROM placed
"""

_GROW_REPORTS = """
INSERT INTO reports (jurisdiction_id, tracking_id, incident_id, category_code, geom,
                     location_source, ward_id, asset_id, channel, reported_at)
SELECT jurisdiction_id, 'G-' || id, id, category_code, geom, 'import', ward_id, asset_id,
       'import', opened_at
FROM incidents WHERE id > %(after)s
"""


def grow(pg: EmbeddedCluster, name: str, target: int) -> float:
    """Add generated incidents, one report each, until ``target`` reports are stored.

    Secondary indexes are dropped for the load and built again after it (as pg_restore does).
    Returns the seconds taken.
    """
    started = time.perf_counter()
    with psycopg.connect(pg.conninfo(name)) as conn:
        have = conn.execute("SELECT count(*) FROM reports").fetchone()[0]  # type: ignore[index]
        n = target - have
        if n <= 0:
            return 0.0
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        indexes = conn.execute(
            """
            SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
            FROM pg_index i
            WHERE i.indrelid IN ('incidents'::regclass, 'reports'::regclass)
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            """
        ).fetchall()
        for index_name, _ in indexes:
            conn.execute(f"DROP INDEX {index_name}")
        after = conn.execute("SELECT coalesce(max(id), 0) FROM incidents").fetchone()[0]  # type: ignore[index]
        jid = conn.execute("SELECT id FROM jurisdictions WHERE slug = 'scale'").fetchone()[0]  # type: ignore[index]
        params = {
            "jid": jid,
            "codes": CODES,
            "ncodes": len(CODES),
            "ni": N_LON,
            "nj": N_LAT,
            "t_ref": T_REF,
            "x0": MIN_LON,
            "x1": MAX_LON,
            "y0": MIN_LAT,
            "y1": MAX_LAT,
            "ldx": LIGHT_DLON,
            "ldy": LIGHT_DLAT,
            "wdx": (MAX_LON - MIN_LON) / WARDS_PER_SIDE,
            "wdy": (MAX_LAT - MIN_LAT) / WARDS_PER_SIDE,
            "n": n,
        }
        conn.execute(_GROW, params)
        conn.execute(_GROW_REPORTS, {"after": after})
        for _, ddl in indexes:
            conn.execute(ddl)
        conn.commit()
    with psycopg.connect(pg.conninfo(name), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE incidents")
        conn.execute("VACUUM ANALYZE reports")
    return time.perf_counter() - started


# --- 1. matching step -----------------------------------------------------------------------


def sample_reports(n: int, seed: int) -> list[tuple[str, float, float]]:
    """Return ``n`` (category, lon, lat) reports, the same for every size."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        code = rng.choice(CODES)
        if code == "streetlight_out":
            li, lj = rng.randrange(N_LON), rng.randrange(N_LAT)
            lon = MIN_LON + (li + 0.5) * LIGHT_DLON + rng.uniform(-0.0001, 0.0001)
            lat = MIN_LAT + (lj + 0.5) * LIGHT_DLAT + rng.uniform(-0.0001, 0.0001)
        else:
            lon = rng.uniform(MIN_LON, MAX_LON)
            lat = rng.uniform(MIN_LAT, MAX_LAT)
        out.append((code, lon, lat))
    return out


def measure_matching(
    db: Database, samples: list[tuple[str, float, float]]
) -> tuple[list[float], int]:
    """Return the matching step's time for each sample (milliseconds, after a warm-up) and
    how many samples would join an existing incident."""
    settings = DedupSettings()
    times: list[float] = []
    joined = 0
    with db.sessions() as session:
        jid = layers_service.get_jurisdiction(session, "scale").id  # type: ignore[union-attr]
        session.rollback()
        for k, (code, lon, lat) in enumerate([*samples[:50], *samples]):
            # As intake does: category, ward and asset are found first, in the same
            # transaction; the matching step is what dedup adds.
            category = session.get(ServiceCategory, (jid, code))
            assert category is not None
            asset = None
            if category.asset_type:
                asset = layers_service.nearest_asset(
                    session,
                    jurisdiction_id=jid,
                    asset_type=category.asset_type,
                    lon=lon,
                    lat=lat,
                    radius_m=category.snap_radius_m,
                )
            started = time.perf_counter()
            matcher = placing.Matcher.start(
                session,
                report=placing.IncomingReport(
                    category=category,
                    lon=lon,
                    lat=lat,
                    at=T_REF,
                    asset_id=asset.id if asset else None,
                ),
                settings=settings,
            )
            decision = matcher.decide(session)
            elapsed = time.perf_counter() - started
            session.rollback()
            if k >= 50:
                times.append(elapsed * 1000.0)
                joined += decision.incident_id is not None
    return times, joined


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def bench_matching(
    pg: EmbeddedCluster, sizes: list[int], samples: int, runs: int
) -> list[tuple[int, float, float, float, int]]:
    """Return (size, p50 ms, p99 ms, generation s, matched %) per size."""
    make_city(pg, "scale")
    db = Database.connect(pg.url("scale"), pool_size=2)
    points = sample_reports(samples, seed=7)
    out = []
    try:
        for size in sizes:
            console.print(f"[bold]generating[/bold] {size:,} stored reports …")
            gen_s = grow(pg, "scale", size)
            console.print(f"  {gen_s:.1f} s; measuring {runs} × {samples} reports …")
            p50s, p99s = [], []
            for _ in range(runs):
                times, joined = measure_matching(db, points)
                p50s.append(pct(times, 0.50))
                p99s.append(pct(times, 0.99))
            matched = round(100 * joined / len(points))
            out.append((size, statistics.median(p50s), statistics.median(p99s), gen_s, matched))
            console.print(
                f"  p50 {out[-1][1]:.2f} ms, p99 {out[-1][2]:.2f} ms, matched {matched} %"
            )
    finally:
        db.dispose()
    return out


# --- 2. bulk import --------------------------------------------------------------------------


def write_csv(path: Path, rows: int, seed: int) -> None:
    """Write a city export of ``rows`` reports over a year, 30 % of them later reports of an
    earlier problem (within 15 m and two days), not in time order; streamed."""
    rng = random.Random(seed)
    recent: list[tuple[str, float, float, datetime, str]] = []
    start = T_REF - timedelta(days=365)
    step_s = 365 * 86400 / rows
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "time", "category", "lat", "lon", "address", "status", "closed_at"])
        for k in range(rows):
            t = start + timedelta(seconds=k * step_s + rng.uniform(0, 3600))
            if recent and rng.random() < 0.30:
                code, lon0, lat0, t0, address = rng.choice(recent)
                d = rng.uniform(0, 15.0)
                a = rng.uniform(0, 2 * math.pi)
                lon = lon0 + d * math.sin(a) / 84_400
                lat = lat0 + d * math.cos(a) / 111_050
                t = t0 + timedelta(seconds=rng.uniform(600, 2 * 86400))
                if rng.random() < 0.5:
                    address = ""
            else:
                code = rng.choice(CODES)
                if code == "streetlight_out":
                    li, lj = rng.randrange(N_LON), rng.randrange(N_LAT)
                    lon = MIN_LON + (li + 0.5) * LIGHT_DLON + rng.uniform(-0.0001, 0.0001)
                    lat = MIN_LAT + (lj + 0.5) * LIGHT_DLAT + rng.uniform(-0.0001, 0.0001)
                else:
                    lon = rng.uniform(MIN_LON, MAX_LON)
                    lat = rng.uniform(MIN_LAT, MAX_LAT)
                address = f"{rng.randrange(1, 400)} {rng.choice(STREETS)} St"
                recent.append((code, lon, lat, t, address))
                if len(recent) > 2000:
                    recent.pop(0)
            closed = t + timedelta(hours=rng.uniform(1, 240)) if rng.random() < 0.9 else None
            out.writerow(
                [
                    f"S{k}",
                    t.strftime("%Y-%m-%d %H:%M:%S"),
                    code,
                    f"{lat:.7f}",
                    f"{lon:.7f}",
                    address,
                    "Closed" if closed else "Open",
                    closed.strftime("%Y-%m-%d %H:%M:%S") if closed else "",
                ]
            )


STREETS = ("Elm", "Oak", "Maple", "Cedar", "Pine", "Birch", "Walnut", "Spruce", "Ash", "Willow")


def run_import(
    url: str, csv_path: Path, *, dedup: bool, checkout: Path | None = None
) -> tuple[float, int, float, str]:
    """Run ``geo311 import reports`` in a subprocess; return (seconds, peak RSS bytes, CPU
    seconds of the import process itself, output).

    ``checkout``: run another checkout's importer instead (its ``geo311.cli``, in the same
    environment): the "before" of a change, measured in the same run."""
    command = ["-m", "geo311", "import", "reports", str(csv_path)]
    cwd = REPO
    env = {**os.environ}
    if checkout is not None:
        # The checkout's own ``geo311`` command (its light launcher), or its whole CLI when it
        # has none.
        entry = "geo311" if (checkout / "geo311" / "launch.py").exists() else "geo311.cli"
        command = ["-m", entry, "import", "reports", str(csv_path)]
        cwd = checkout
        env["PYTHONPATH"] = str(checkout)
    env = {
        **env,
        "GEO311_DB__URL": url,
        "GEO311_JURISDICTION": "scale",
        "GEO311_DEDUP__ENABLED": "true" if dedup else "false",
        "COLUMNS": "400",  # the summary's lines unwrapped: the time by phase is read back
    }
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
    )
    assert proc.stdout is not None
    output = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"import failed ({proc.returncode}):\n{output}")
    return elapsed, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime, output


def bare_copy(pg: EmbeddedCluster, name: str, csv_path: Path) -> float:
    """Return the seconds to COPY the file into an unindexed table (the floor of any import)."""
    started = time.perf_counter()
    with psycopg.connect(pg.conninfo(name)) as conn:
        conn.execute(
            "CREATE TEMP TABLE raw (id text, t text, category text, lat text, lon text, "
            "address text, status text, closed_at text)"
        )
        with (
            csv_path.open("rb") as f,
            conn.cursor().copy("COPY raw FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
        ):
            while chunk := f.read(1 << 20):
                copy.write(chunk)
        conn.rollback()
    return time.perf_counter() - started


_WRITTEN = ("incidents", "reports")


def dump_written(pg: EmbeddedCluster, name: str, workdir: Path) -> dict[str, Path]:
    """Save the incidents and reports an import wrote (binary COPY files), for the floor."""
    files = {}
    with psycopg.connect(pg.conninfo(name)) as conn:
        for table in _WRITTEN:
            files[table] = workdir / f"{table}.copy"
            with (
                files[table].open("wb") as f,
                conn.cursor().copy(f"COPY {table} TO STDOUT (FORMAT binary)") as copy,
            ):
                for data in copy:
                    f.write(data)
    return files


def write_floor(
    pg: EmbeddedCluster, name: str, written: dict[str, Path], *, bulk: bool, indexes: bool = False
) -> float:
    """Return the seconds to COPY the very rows the import wrote (every column, as binary)
    into the real tables, every index in place: what the schema alone costs.

    ``bulk``: as the importer's bulk load, the two tables' foreign keys are dropped first and
    added back (checked) after, inside the timing; else each row's keys are checked as it is
    written. ``indexes`` (with ``bulk``): as the importer's bulk load into empty tables, their
    secondary indexes are dropped too and built again after the COPY, inside the timing."""
    with psycopg.connect(pg.conninfo(name)) as conn:
        started = time.perf_counter()
        keys = []
        dropped = []
        if bulk:
            keys = conn.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE contype = 'f' "
                "AND conrelid IN ('incidents'::regclass, 'reports'::regclass)"
            ).fetchall()
            for table, key, _ in keys:
                conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{key}"')
        if bulk and indexes:
            dropped = conn.execute(
                "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indrelid IN ('incidents'::regclass, 'reports'::regclass) "
                "AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
            ).fetchall()
            for index, _ in dropped:
                conn.execute(f'DROP INDEX "{index}"')
        for table in _WRITTEN:
            with (
                written[table].open("rb") as f,
                conn.cursor().copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy,
            ):
                while chunk := f.read(1 << 20):
                    copy.write(chunk)
        if dropped:
            conn.execute("SET LOCAL maintenance_work_mem = '256MB'")  # as the importer
            for _, ddl in dropped:
                conn.execute(ddl)
        for table, key, definition in keys:
            conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{key}" {definition}')
        conn.commit()
        return time.perf_counter() - started


_OWN_TIME = re.compile(r"│ time\s*│\s*([\d.]+) s")
_PHASES_LINE = re.compile(r"time by phase\s*│\s*(.*?)\s*│")


def phases_of(output: str) -> dict[str, float]:
    """Return the import's time by phase, as its summary printed it."""
    found = _PHASES_LINE.search(output)
    if found is None:
        return {}
    text = found.group(1).replace(" (bulk load)", "")
    out = {}
    for part in text.split(", "):
        phase, _, seconds = part.rpartition(" ")[0].rpartition(" ")
        out[phase] = float(seconds)
    return out


def own_seconds(output: str) -> float:
    """Return the import's own time, as its summary printed it (process start excluded)."""
    found = _OWN_TIME.search(output)
    return float(found.group(1)) if found else float("nan")


def process_start(*args: str, cwd: Path = REPO) -> float:
    """Return the seconds ``python <args> --help`` takes: a command's process starting alone
    (in the checkout at ``cwd``)."""
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    subprocess.run(
        [sys.executable, *args, "--help"], cwd=cwd, env=env, capture_output=True, check=True
    )
    return time.perf_counter() - started


Variant = tuple[str, float, float, int, float]
ON_LABEL = "geo311 import reports (dedup on)"


def bench_import(
    pg: EmbeddedCluster, rows: int, runs: int, workdir: Path, baseline: Path | None
) -> tuple[list[Variant], dict[str, dict[str, float]]]:
    """Return (variant, seconds, rows/s, peak RSS bytes, import process CPU s) medians, and
    the median time per phase of the dedup-on import (and of the baseline's, when given)."""
    csv_path = workdir / "import.csv"
    console.print(f"[bold]writing[/bold] a {rows:,}-row CSV …")
    write_csv(csv_path, rows, seed=11)
    make_city(pg, "import_template")
    variants = ["off", "on", "floor", "floor_bulk", "floor_indexes", "copy"]
    if baseline is not None:
        variants.insert(1, "before")
    results: dict[str, list[tuple[float, int, float]]] = {v: [] for v in variants}
    phases: dict[str, dict[str, list[float]]] = {"on": {}, "before": {}}
    written: dict[str, Path] = {}
    for run in range(runs):
        for variant in variants:
            name = f"import_{variant}_{run}"
            pg.ensure_database(name, template="import_template")
            if variant == "copy":
                results[variant].append((bare_copy(pg, name, csv_path), 0, 0.0))
            elif variant.startswith("floor"):
                seconds = write_floor(
                    pg,
                    name,
                    written,
                    bulk=variant != "floor",
                    indexes=variant == "floor_indexes",
                )
                results[variant].append((seconds, 0, 0.0))
            else:
                seconds, rss, cpu, output = run_import(
                    pg.url(name),
                    csv_path,
                    dedup=variant != "off",
                    checkout=baseline if variant == "before" else None,
                )
                results[variant].append((seconds, rss, cpu))
                if variant in phases:
                    if run == 0 and variant == "on":
                        console.print(output)
                    mine = phases[variant]
                    for phase, s in phases_of(output).items():
                        mine.setdefault(phase, []).append(s)
                    mine.setdefault("the import's own time", []).append(own_seconds(output))
                    # What the command costs beyond the import itself: the process starting,
                    # the schema check (or the migrations), loading the categories, the summary.
                    mine.setdefault("wall clock outside the import's own time", []).append(
                        seconds - own_seconds(output)
                    )
                    mine.setdefault("importer process CPU", []).append(cpu)
                if variant == "on":
                    phases["on"].setdefault("process start (geo311 import --help)", []).append(
                        process_start("-m", "geo311", "import")
                    )
                    if baseline is not None:
                        phases["before"].setdefault(
                            "process start (geo311 import --help)", []
                        ).append(process_start("-m", "geo311", "import", cwd=baseline))
                    written = dump_written(pg, name, workdir)
            console.print(
                f"  {variant} run {run + 1}: {results[variant][-1][0]:.1f} s "
                f"(load {os.getloadavg()[0]:.1f})"
            )
            pg.drop_database(name)
    labels = {
        "floor": "write floor: COPY of the same incidents and reports into the real tables, "
        "keys checked row by row",
        "floor_bulk": "write floor, bulk: the same COPY, keys dropped and added back (checked)",
        "floor_indexes": "write floor, bulk as the importer's into empty tables: keys and "
        "secondary indexes dropped, indexes built again, keys added back (checked)",
        "copy": "COPY of the file into an unindexed table",
        "off": "geo311 import reports, dedup off",
        "before": f"before: {baseline}'s geo311 import reports (dedup on)",
        "on": ON_LABEL,
    }
    out = []
    for variant, label in labels.items():
        if variant not in results:
            continue
        seconds = statistics.median(s for s, _, _ in results[variant])
        rss = max(r for _, r, _ in results[variant])
        cpu = statistics.median(c for _, _, c in results[variant])
        out.append((label, seconds, rows / seconds, rss, cpu))
    return out, {
        variant: {phase: statistics.median(v) for phase, v in found.items()}
        for variant, found in phases.items()
    }


def memory_once(pg: EmbeddedCluster, rows: int, workdir: Path) -> Variant:
    """Return the dedup-on import of ``rows`` generated rows, run once: its peak memory."""
    csv_path = workdir / "memory.csv"
    console.print(f"[bold]writing[/bold] a {rows:,}-row CSV for the memory run …")
    write_csv(csv_path, rows, seed=11)
    pg.ensure_database("import_memory", template="import_template")
    seconds, rss, cpu, output = run_import(pg.url("import_memory"), csv_path, dedup=True)
    console.print(output)
    pg.drop_database("import_memory")
    csv_path.unlink()
    return (f"geo311 import reports (dedup on), {rows:,} rows, once", seconds, rows / seconds,
            rss, cpu)  # fmt: skip


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000,5000000")
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--import-runs", type=int, default=3)
    parser.add_argument(
        "--memory-rows", type=int, default=1_000_000, help="one dedup-on import (0: none)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout (e.g. the main branch's) whose importer runs too, as 'before'",
    )
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--skip-matching", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    console.print(f"CPUs: {os.cpu_count()}, load average now: {os.getloadavg()[0]:.1f}")
    with cluster() as pg:
        workdir = Path(tempfile.mkdtemp(prefix="geo311-dedup-bench-csv-"))
        try:
            if not args.skip_matching:
                matching = bench_matching(pg, sizes, args.samples, args.runs)
                table = Table(
                    title="Matching step (rules, locks, candidates, score), "
                    f"{args.samples} reports × {args.runs} runs, median of runs"
                )
                for col in (
                    "stored reports",
                    "p50 ms",
                    "p99 ms",
                    "p50 / p50 at first size",
                    "would join",
                    "generated in",
                ):
                    table.add_column(col, justify="right")
                base = matching[0][1]
                for size, p50, p99, gen_s, matched in matching:
                    table.add_row(
                        f"{size:,}", f"{p50:.2f}", f"{p99:.2f}", f"{p50 / base:.2f}×",
                        f"{matched} %", f"{gen_s:.0f} s",
                    )  # fmt: skip
                console.print(table)
                console.print("target: p50 at 5,000,000 ≤ 1.5 × p50 at 10,000 (the first row)")
            if not args.skip_import:
                results, phases = bench_import(
                    pg, args.import_rows, args.import_runs, workdir, args.baseline
                )
                if args.memory_rows:
                    results.append(memory_once(pg, args.memory_rows, workdir))
                table = Table(
                    title=f"Bulk import of {args.import_rows:,} generated rows, "
                    f"median of {args.import_runs} run(s)"
                )
                for col in (
                    "variant",
                    "seconds",
                    "rows/s",
                    "× write floor",
                    "peak RSS",
                    "importer CPU s",
                ):
                    table.add_column(col, justify="right")
                floor_rate = results[0][2]  # the schema's write floor, measured in this run
                for label, seconds, rate, rss, cpu in results:
                    table.add_row(
                        label,
                        f"{seconds:.1f}",
                        f"{rate:,.0f}",
                        f"{rate / floor_rate:.2f}×",
                        f"{rss / 2**20:,.0f} MiB" if rss else "—",
                        # The import process's own CPU (the rest of its wall time it waits
                        # on PostgreSQL): where the time goes.
                        f"{cpu:.1f}" if cpu else "—",
                    )
                console.print(table)
                on, before = phases["on"], phases["before"]
                table = Table(title="Where the dedup-on import's time goes (median of runs)")
                for col in ("phase", "seconds", "before (baseline)", "after / before"):
                    table.add_column(col, justify="right")
                for phase in dict.fromkeys([*on, *before]):
                    now, then = on.get(phase), before.get(phase)
                    table.add_row(
                        phase,
                        "—" if now is None else f"{now:.1f}",
                        "—" if then is None else f"{then:.1f}",
                        f"{now / then:.2f}×" if now is not None and then else "—",
                    )
                console.print(table)
                own = on.get("the import's own time", float("nan"))
                then = before.get("the import's own time")
                console.print(
                    f"dedup on: {args.import_rows / own:,.0f} rows/s in the import's own time "
                    "(process start excluded)"
                    + (f"; before: {args.import_rows / then:,.0f}" if then else "")
                )
                console.print(
                    "stage: read, check and COPY the file into staging; place: wards, assets "
                    "(set-based); hold: take the tables for a bulk load; dedup: the replay in "
                    "time order, with the writing to the tables overlapped (write (in dedup): "
                    "the writer's own time; decide (in dedup): the replay's own time, the rest "
                    "of the phase it waits for rows or for the writer); report: the --report "
                    "file; indexes: the secondary indexes built again (a bulk load into empty "
                    "tables); constraints: the foreign keys added back and checked (bulk "
                    "load). The rest of the wall "
                    "time is the process starting and loading the categories and models. "
                    "'before' runs the baseline checkout's own geo311 command on the same file "
                    "in the same run."
                )
                rate_of = {label: rate for label, _, rate, _, _ in results}
                floors = [r for label, _, r, _, _ in results if label.startswith("write floor")]
                console.print(
                    f"dedup on, wall clock with process start: "
                    f"{rate_of[ON_LABEL]:,.0f} rows/s; write floors (keys row by row, "
                    "bulk, bulk with indexes built again): "
                    + " / ".join(f"{r:,.0f}" for r in floors)
                    + " rows/s"
                )
                console.print(f"load average at the end: {os.getloadavg()[0]:.1f}")
                console.print("targets: ≥ 20,000 rows/s, peak < 1 GB (the import process)")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
