"""What a Citus test's fresh database costs: cloning the demo city's template on the three nodes
and dropping it again, by shard count and by ``CREATE DATABASE`` strategy.

``pytest --citus`` gives every test its own copy of a template (tests/clones.py); on the
local cluster (geo311/kernel/citus.py) that is a ``CREATE DATABASE … TEMPLATE`` on every node
and, after the test, a ``DROP DATABASE`` on every node. This starts one local cluster, builds
the demo city's template once per shard count (``citus.shard_count`` set on the template
before it is migrated, so both live in the same cluster and the same run), and then clones and
drops each template ``--runs`` times per strategy, taking turns: PostgreSQL 15's default
``WAL_LOG`` (every block copied through the buffers and the WAL) and ``FILE_COPY`` (the files
copied, a checkpoint before and after). Each drop follows a few writes in the clone, as a test
leaves dirty buffers behind.

Prints the median clone and drop times and each template's size per node, with the load
average before and after (the machine is shared). The baseline is the harness as it stood:
8 shards, ``WAL_LOG``.

    uv run python bench/citus_clones.py [--runs 5] [--shards 8 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from fixtures.load import load_demo
from geo311.kernel import migrate
from geo311.kernel.citus import CitusCluster, _disconnect, _on_every_node, citus_installed
from geo311.kernel.database import Database
from geo311.kernel.embedded import EmbeddedCluster

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # tests/conftest.py's DEMO_NOW
STRATEGIES = ("WAL_LOG", "FILE_COPY")


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def build_template(cluster: CitusCluster, name: str, shards: int) -> None:
    """Migrate a new database with ``shards`` shards per distributed table; load the demo."""
    cluster.ensure_database(name)
    with psycopg.connect(cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET citus.shard_count = {}").format(
                sql.Identifier(name), sql.Literal(shards)
            )
        )
    migrate.upgrade(cluster.url(name))
    database = Database.connect(cluster.url(name), pool_size=2)
    try:
        load_demo(database, now=NOW)
    finally:
        database.dispose()


def clone(cluster: CitusCluster, name: str, template: str, strategy: str) -> float:
    """Clone ``template`` on every node as the harness does, with ``strategy``; return s."""
    started = time.monotonic()
    for node in cluster.nodes:
        _disconnect(node, template)

    def create(node: EmbeddedCluster) -> None:
        with psycopg.connect(node.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY {}").format(
                    sql.Identifier(name), sql.Identifier(template), sql.SQL(strategy)
                )
            )

    _on_every_node(cluster.nodes, create)
    return time.monotonic() - started


def dirty(cluster: CitusCluster, name: str) -> None:
    """A test's few writes, through the coordinator."""
    with psycopg.connect(cluster.conninfo(name), autocommit=True) as conn:
        row = conn.execute("SELECT id FROM jurisdictions WHERE slug = 'demo'").fetchone()
        assert row is not None
        conn.execute(
            "UPDATE incidents SET status = status WHERE jurisdiction_id = %s",
            (row[0],),
        )


def drop(cluster: CitusCluster, name: str) -> float:
    started = time.monotonic()
    cluster.drop_database(name)
    return time.monotonic() - started


def sizes(cluster: CitusCluster, name: str) -> list[str]:
    out = []
    for node in cluster.nodes:
        with psycopg.connect(node.conninfo("postgres")) as conn:
            row = conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
            assert row is not None
            out.append(f"{row[0] / 2**20:.0f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shards", type=int, nargs="+", default=[8, 4])
    args = parser.parse_args()
    console = Console()
    if not citus_installed():
        console.print("Citus is not installed: `make citus` builds it; nothing measured.")
        sys.exit(0)
    root = Path(tempfile.mkdtemp(prefix="geo311-bench-clones-"))
    root.chmod(0o755)
    cluster = CitusCluster(root / "citus", durable=False)
    console.print(f"before set-up: {_load()} on {os.cpu_count()} CPUs")
    try:
        cluster.start()
        started = time.monotonic()
        templates = {n: f"tpl_{n}_shards" for n in args.shards}
        for n, name in templates.items():
            build_template(cluster, name, n)
        console.print(f"set-up {time.monotonic() - started:.0f} s; {_load()}")
        times: dict[tuple[int, str], tuple[list[float], list[float]]] = {}
        for _ in range(args.runs):
            for n, template in templates.items():
                for strategy in STRATEGIES:
                    name = f"t_{uuid.uuid4().hex[:12]}"
                    clones, drops = times.setdefault((n, strategy), ([], []))
                    clones.append(clone(cluster, name, template, strategy))
                    dirty(cluster, name)
                    drops.append(drop(cluster, name))
        table = Table(title=f"A fresh demo-city database on Citus (1 + 2 nodes), {args.runs} runs")
        for column in ("shards", "strategy", "clone s (median)", "drop s (median)",
                       "clone + drop", "× baseline", "MB per node (c, w1, w2)"):  # fmt: skip
            table.add_column(column)
        base_clone, base_drop = times[(args.shards[0], STRATEGIES[0])]
        baseline = statistics.median(base_clone) + statistics.median(base_drop)
        for (n, strategy), (clones, drops) in times.items():
            both = statistics.median(clones) + statistics.median(drops)
            table.add_row(
                str(n),
                strategy,
                f"{statistics.median(clones):.2f}",
                f"{statistics.median(drops):.2f}",
                f"{both:.2f}",
                f"{both / baseline:.2f}",
                ", ".join(sizes(cluster, templates[n])),
            )
        console.print(table)
        console.print(f"baseline: {args.shards[0]} shards, {STRATEGIES[0]}; after: {_load()}")
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
