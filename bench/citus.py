"""Citus against a single PostGIS, in one run on one machine: intake throughput and a city's
day plan, on ``--cities`` generated cities (the demo city under as many jurisdictions, each
with its own seed).

Sets up, in a temporary directory, a single PostGIS cluster (the baseline) and a local Citus
cluster (a coordinator and 2 workers, geo311/kernel/citus.py), migrates both (the Citus one
comes out distributed by jurisdiction_id) and loads the same cities into each. Then, for each:

- ``intake, one city``: ``--reports`` reports (a pothole at a random point of a random ward,
  no photo) through ``geo311.flows.submit_report.submit``, one transaction each, from
  ``--concurrency`` threads, all in the first city;
- ``intake, N cities``: the same load spread round-robin over every city;
- ``day plan``: ``dispatch.dayplans.commands.make_plan`` for one city's Monday, committed
  (a different city each run, so each run plans a fresh day).

Each figure is the median of ``--runs`` runs (single and Citus taking turns); the ratio is
Citus over the single PostGIS. On one machine the three Citus nodes share the same CPUs, so
this shows Citus's overhead, not its gain. The load average is printed before and after: the
machine is shared.

Alongside the wall-clock figures, the CPU time each database server spent (its postmaster and
every backend, read from /proc) is split by node: per report on the coordinator and on the
workers. That per-shard cost does not depend on how busy the shared machine is, and is what
the last table scales on paper to N worker machines (docs/citus.md).

    uv run python bench/citus.py [--cities 20] [--reports 200] [--concurrency 8] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from dispatch.dayplans import commands
from fixtures.load import load_demo
from geo311.flows.submit_report import submit
from geo311.kernel import migrate
from geo311.kernel.citus import CitusCluster, citus_installed
from geo311.kernel.database import Database
from geo311.kernel.embedded import EmbeddedCluster
from geo311.kernel.media.store import LocalMediaStore
from geo311.kernel.settings import IntakeSettings, MediaSettings, RoutingSettings
from geo311.resident.intake import service as intake_service

DBNAME = "geo311_bench"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = date(2026, 6, 1)


def _cpu_s(data_dir: Path) -> float:
    """Return the CPU seconds a PostgreSQL server has used so far: its postmaster's own and
    its reaped children's (cutime/cstime), plus every live backend's (Linux /proc)."""
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")

    def fields(p: str) -> list[str]:
        with open(f"/proc/{p}/stat") as f:
            return f.read().rpartition(")")[2].split()

    main = fields(str(pid))
    total = sum(int(x) for x in main[11:15])  # utime stime cutime cstime
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or entry == str(pid):
            continue
        try:
            child = fields(entry)
        except OSError:
            continue  # gone meanwhile: its time is in the postmaster's cutime now
        if child[1] == str(pid):  # ppid
            total += int(child[11]) + int(child[12])
    return total / tick


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


class Backend:
    """One database (single or Citus) with the cities loaded."""

    def __init__(self, name: str, cluster: Any, cities: int, media_root: Path) -> None:
        self.name = name
        self.cluster = cluster
        cluster.start()
        cluster.ensure_database(DBNAME)
        migrate.upgrade(cluster.url(DBNAME))
        self.db = Database.connect(cluster.url(DBNAME), pool_size=32, max_overflow=8)
        self.cities: list[tuple[int, str]] = []
        for k in range(cities):
            slug = f"city{k:02d}"
            load_demo(self.db, slug=slug, now=NOW, seed=311 + k)
        with self.db.session() as s:
            self.cities = [
                (int(r.id), str(r.slug))
                for r in s.execute(text("SELECT id, slug FROM jurisdictions ORDER BY slug"))
            ]
            # Points inside the wards of each city (intake refuses a point outside).
            self.points: dict[int, list[tuple[float, float]]] = {}
            for jid, _ in self.cities:
                rows = s.execute(
                    text(
                        "SELECT ST_X(g.geom), ST_Y(g.geom) FROM wards w, "
                        "LATERAL ST_Dump(ST_GeneratePoints(w.geom, 40, 7)) g "
                        "WHERE w.jurisdiction_id = :jid"
                    ),
                    {"jid": jid},
                ).all()
                self.points[jid] = [(float(x), float(y)) for x, y in rows]
        self.media = LocalMediaStore(media_root / name)
        self.planned = 0

    def report(self, city: int, rng: random.Random) -> None:
        jid, slug = self.cities[city]
        lon, lat = rng.choice(self.points[jid])
        form: dict[str, str | None] = {"category": "pothole", "lon": str(lon), "lat": str(lat)}
        draft = intake_service.parse_report_form(form, channel="api", settings=IntakeSettings())
        with self.db.sessions() as session:
            submit(
                session,
                jurisdiction_id=jid,
                jurisdiction_slug=slug,
                draft=draft,
                photo=None,
                media=self.media,
                media_settings=MediaSettings(),
                now=datetime.now(UTC),
            )
            session.commit()

    def intake(self, reports: int, concurrency: int, spread: bool, seed: int) -> float:
        """Return reports per second."""
        rng = random.Random(seed)
        cities = [(i % len(self.cities)) if spread else 0 for i in range(reports)]
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda c: self.report(c, random.Random(rng.random())), cities))
        return reports / (time.perf_counter() - started)

    def day_plan(self, time_limit_s: float) -> float:
        """Return seconds to plan and store a fresh city's Monday."""
        jid, _ = self.cities[self.planned % len(self.cities)]
        self.planned += 1
        routing = RoutingSettings(time_limit_s=time_limit_s)
        started = time.perf_counter()
        with self.db.sessions() as session:
            commands.make_plan(
                session,
                jurisdiction_id=jid,
                day=DAY,
                routing=routing,
                actor="bench",
                now=NOW,
                time_limit_s=time_limit_s,
            )
            session.commit()
        return time.perf_counter() - started

    def node_dirs(self) -> list[Path]:
        nodes = getattr(self.cluster, "nodes", [self.cluster])
        return [n.data_dir for n in nodes]

    def cpu(self) -> list[float]:
        """Return CPU seconds used so far by each node (coordinator first)."""
        return [_cpu_s(d) for d in self.node_dirs()]

    def close(self) -> None:
        self.db.dispose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cities", type=int, default=20)
    ap.add_argument("--reports", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--plan-time-limit", type=float, default=2.0)
    args = ap.parse_args(argv)
    console = Console()
    if not citus_installed():
        console.print("Citus is not installed: `make citus` builds it from ../shared/vendor/citus")
        return 2
    console.print(f"before set-up: {_load()} on {os.cpu_count()} CPUs")
    root = Path(tempfile.mkdtemp(prefix="geo311-bench-citus-"))
    root.chmod(0o755)
    single_cluster = EmbeddedCluster(root / "single", durable=False)
    citus_cluster = CitusCluster(root / "citus", durable=False)
    backends: list[Backend] = []
    try:
        t = time.perf_counter()
        # The two clusters are independent: load them at the same time.
        with ThreadPoolExecutor(2) as pool:
            loading = [
                pool.submit(Backend, "single PostGIS", single_cluster, args.cities, root),
                pool.submit(Backend, "Citus 1+2", citus_cluster, args.cities, root),
            ]
            for future in loading:
                try:
                    backends.append(future.result())
                except Exception:
                    for b in backends:
                        b.close()
                    backends.clear()
                    raise
        console.print(f"set-up ({args.cities} cities on each): {time.perf_counter() - t:.0f} s")
        figures: dict[str, dict[str, list[float]]] = {b.name: {} for b in backends}
        workloads: list[tuple[str, str, Callable[[Backend, int], float]]] = [
            (
                "intake, one city",
                "reports/s",
                lambda b, r: b.intake(args.reports, args.concurrency, False, r),
            ),
            (
                f"intake, {args.cities} cities",
                "reports/s",
                lambda b, r: b.intake(args.reports, args.concurrency, True, r),
            ),
            ("day plan", "s", lambda b, _r: b.day_plan(args.plan_time_limit)),
        ]
        for b in backends:  # warm-up: pools, caches, Citus's connections to the workers
            b.intake(max(args.concurrency * 2, 16), args.concurrency, True, 0)
        # CPU seconds by node (coordinator first) per workload, summed over the runs.
        cpu: dict[str, dict[str, list[float]]] = {b.name: {} for b in backends}
        for run in range(args.runs):
            order = backends if run % 2 == 0 else backends[::-1]
            for name, _, work in workloads:
                for b in order:
                    before = b.cpu()
                    figures[b.name].setdefault(name, []).append(work(b, run + 1))
                    spent = [a - z for a, z in zip(b.cpu(), before, strict=True)]
                    sums = cpu[b.name].setdefault(name, [0.0] * len(spent))
                    cpu[b.name][name] = [x + y for x, y in zip(sums, spent, strict=True)]
        table = Table(
            title=f"Citus (coordinator + 2 workers) beside one PostGIS, same machine, "
            f"median of {args.runs} runs; {args.reports} reports at concurrency "
            f"{args.concurrency}"
        )
        table.add_column("workload")
        table.add_column("unit")
        for b in backends:
            table.add_column(b.name, justify="right")
        table.add_column("Citus / single", justify="right")
        for name, unit, _ in workloads:
            med = [statistics.median(figures[b.name][name]) for b in backends]
            table.add_row(name, unit, *(f"{m:.2f}" for m in med), f"{med[1] / med[0]:.2f}")
        console.print(table)
        single, citus = backends
        per = {"intake": args.reports * args.runs, "day plan": args.runs}
        cost = Table(
            title="CPU time of the database servers, by node (ms per report; s per day plan), "
            f"over the {args.runs} runs"
        )
        cost.add_column("workload")
        cost.add_column(single.name, justify="right")
        cost.add_column("Citus coordinator", justify="right")
        cost.add_column("Citus workers", justify="right")
        cost.add_column("Citus total / single", justify="right")
        for name, _, _ in workloads:
            count = per["day plan"] if name == "day plan" else per["intake"]
            scale = 1.0 if name == "day plan" else 1000.0
            one = cpu[single.name][name][0] / count * scale
            coord = cpu[citus.name][name][0] / count * scale
            workers = sum(cpu[citus.name][name][1:]) / count * scale
            cost.add_row(
                name,
                f"{one:.2f}",
                f"{coord:.2f}",
                f"{workers:.2f}",
                f"{(coord + workers) / one:.2f}",
            )
        console.print(cost)
        # On paper: intake spread over the cities, each worker machine and the coordinator
        # with the same cores; a worker carries its share of the cities' shards.
        spread = f"intake, {args.cities} cities"
        count = per["intake"]
        coord_ms = cpu[citus.name][spread][0] / count * 1000
        worker_ms = sum(cpu[citus.name][spread][1:]) / count * 1000
        single_ms = cpu[single.name][spread][0] / count * 1000
        paper = Table(
            title=f"On paper, from the measured CPU per report ({spread}): reports/s per "
            "8-core machine, database CPU only, all cores busy"
        )
        paper.add_column("worker machines", justify="right")
        paper.add_column("workers carry", justify="right")
        paper.add_column("one coordinator carries", justify="right")
        paper.add_column("cluster (the lower)", justify="right")
        paper.add_column("× one PostGIS", justify="right")
        # Citus also runs a query sent to any worker: then each node does both parts.
        paper.add_column("every node taking queries", justify="right")
        paper.add_column("× one PostGIS", justify="right")
        cores = 8
        one_postgis = cores * 1000 / single_ms
        for n in (1, 2, 4, 8, 16, 32):
            workers_carry = n * cores * 1000 / worker_ms
            coordinator_carries = cores * 1000 / coord_ms
            cluster = min(workers_carry, coordinator_carries)
            every_node = n * cores * 1000 / (coord_ms + worker_ms)
            paper.add_row(
                str(n),
                f"{workers_carry:,.0f}",
                f"{coordinator_carries:,.0f}",
                f"{cluster:,.0f}",
                f"{cluster / one_postgis:.1f}",
                f"{every_node:,.0f}",
                f"{every_node / one_postgis:.1f}",
            )
        console.print(paper)
        console.print(f"after: {_load()}")
        return 0
    finally:
        for b in backends:
            b.close()
        citus_cluster.stop()
        single_cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
