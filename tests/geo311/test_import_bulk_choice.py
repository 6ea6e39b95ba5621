"""``geo311 import reports`` run as an admin runs it (the ``geo311`` command, in a process of
its own): left to choose, a large first import is written as a bulk load, and an import into a
city that already has reports is not."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from geo311.kernel.database import Database
from geo311.resident.dedup.importer import BULK_MIN_ROWS
from tests.geo311.dedup_support import execute, jurisdiction_id, one, rows

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 1, 1, tzinfo=UTC)
_KEYS = (
    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE contype = 'f' AND conrelid IN ('incidents'::regclass, 'reports'::regclass) "
    "ORDER BY 1, 2"
)
_INDEXES = (
    "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
    "WHERE indrelid IN ('incidents'::regclass, 'reports'::regclass) ORDER BY 1"
)
# The spatial search intake's dedup runs for every report, and how it reads it.
_NEAR = (
    "SELECT count(*) FROM reports WHERE ST_DWithin(geom, "
    "(SELECT geom FROM reports ORDER BY id LIMIT 1), 0.001)"
)


def _export(db: Database, path: Path, *, n: int, prefix: str, seed: float) -> None:
    """Write ``n`` pothole reports at random points of the demo city's wards, a minute apart."""
    # The city named, and the points drawn outside the aggregate: one shard's query on Citus.
    points = rows(
        db,
        "SELECT ST_X(d.geom), ST_Y(d.geom) FROM (SELECT ST_Union(geom) AS city FROM wards "
        "WHERE jurisdiction_id = :jid) AS w, ST_Dump(ST_GeneratePoints(w.city, :n, :seed)) AS d",
        jid=jurisdiction_id(db),
        n=n,
        seed=int(seed),
    )
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "time", "category", "lat", "lon"])
        for k, (lon, lat) in enumerate(points):
            at = T0 + timedelta(minutes=k)
            out.writerow([f"{prefix}{k}", at.isoformat(), "pothole", lat, lon])


def _import(db: Database, path: Path) -> str:
    env = {
        **os.environ,
        "GEO311_DB__URL": db.engine.url.render_as_string(hide_password=False),
        "GEO311_JURISDICTION": "demo",
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [sys.executable, "-m", "geo311", "import", "reports", str(path)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.not_on_citus(
    "a bulk load drops the foreign keys, which Citus checks on the shards: the importer never "
    "bulk-loads there (importing.write.hold_for_bulk)"
)
def test_a_large_first_import_is_a_bulk_load_and_a_later_one_is_not(
    demo_db: Database, tmp_path: Path
) -> None:
    # A city before going live: none of its history imported yet.
    execute(demo_db, "TRUNCATE incidents, reports CASCADE")
    keys, indexes = rows(demo_db, _KEYS), rows(demo_db, _INDEXES)
    first, later = tmp_path / "first.csv", tmp_path / "later.csv"
    _export(demo_db, first, n=BULK_MIN_ROWS, prefix="A", seed=1)
    _export(demo_db, later, n=BULK_MIN_ROWS, prefix="B", seed=2)

    output = _import(demo_db, first)
    assert "(bulk load)" in output, output
    assert one(demo_db, "SELECT count(*) FROM reports") == BULK_MIN_ROWS
    assert rows(demo_db, _KEYS) == keys  # every foreign key is back, as it was
    # The empty tables' indexes were built again from the loaded rows: all there, as they
    # were, and the spatial one answers intake's search.
    assert "indexes" in output.split("time by phase", 1)[1], output
    assert rows(demo_db, _INDEXES) == indexes
    plan = "\n".join(str(r[0]) for r in rows(demo_db, "EXPLAIN " + _NEAR))
    assert "ix_reports_geom" in plan, plan
    assert one(demo_db, _NEAR) >= 1

    # Reports are stored now (a live service): the same size is written with the keys in place.
    output = _import(demo_db, later)
    assert "(bulk load)" not in output, output
    assert "time by phase" in output
    assert one(demo_db, "SELECT count(*) FROM reports") == 2 * BULK_MIN_ROWS
    # Both loads stored whole incidents: every report belongs to one, each is due in time.
    assert (
        one(
            demo_db,
            "SELECT count(*) FROM reports r JOIN incidents i "
            "ON i.jurisdiction_id = r.jurisdiction_id AND i.id = r.incident_id "
            "WHERE i.due_at > i.opened_at",
        )
        == 2 * BULK_MIN_ROWS
    )


def test_the_import_command_starts_without_the_web_app() -> None:
    # What the admin waits for before a line is read: the import loads its own commands only.
    probe = (
        "import sys\n"
        "sys.argv = ['geo311', 'import', 'reports', '--help']\n"
        "from geo311.launch import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('web app loaded:', 'geo311.app' in sys.modules, 'fastapi' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "--tie-break-col" in done.stdout  # the import's own options are there
    assert "web app loaded: False False" in done.stdout


def test_an_import_into_a_current_schema_runs_no_migration_and_loads_no_other_domain(
    demo_db: Database, tmp_path: Path
) -> None:
    # A real import, in a process of its own: with the schema current it checks the stamped
    # revision and goes on, without Alembic (whose environment loads every model: dispatch,
    # maps, the web app's) and without the dispatch domain.
    export = tmp_path / "few.csv"
    _export(demo_db, export, n=20, prefix="F", seed=3)
    probe = (
        "import sys\n"
        f"sys.argv = ['geo311', 'import', 'reports', {str(export)!r}]\n"
        "from geo311.launch import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print('loaded:', sorted({m.split('.')[0] for m in sys.modules} & "
        "{'alembic', 'dispatch', 'maps', 'fastapi'}))\n"
    )
    env = {
        **os.environ,
        "GEO311_DB__URL": demo_db.engine.url.render_as_string(hide_password=False),
        "GEO311_JURISDICTION": "demo",
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "loaded: []" in done.stdout, done.stdout
    assert one(demo_db, "SELECT count(*) FROM reports WHERE external_id LIKE 'F%'") == 20
