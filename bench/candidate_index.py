"""The import replay's in-memory candidate index: the grid it uses against an R-tree.

The bulk importer (``geo311.resident.dedup.importer``) replays rows in time order against the
incidents still matchable at each row's time: every row searches the index around its
point, most rows add an incident, and incidents leave as their windows end. This drives the
importer's own ``Replay`` (its rules, scoring and eviction; no database) on generated rows
with the shape of ``bench/dedup_scale.py``'s import (a 28 km city, 12 categories, 70 % first
reports, 30 % later reports of one within 15 m and two days, 90 % closed within ten days),
once with its grid of cells and once with the same index calls answered by an R-tree
(``rtree``, libspatialindex: the index the product brief names; inserts and deletes as
incidents open and close), with default and with tuned node sizes.

Prints one table: seconds and microseconds per row for each index, median of ``--runs``,
and the ratio to the grid in the same run, with the machine's load.

    uv run python bench/candidate_index.py [--rows 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import heapq
import math
import os
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import rtree.index
from rich.console import Console
from rich.table import Table

from geo311.kernel.settings import DedupSettings
from geo311.resident.dedup.importer import ImportSummary
from geo311.resident.dedup.importing.replay import Live, Replay
from geo311.resident.dedup.scoring import Rule
from work_orders.models import ServiceCategory

console = Console()
T0 = datetime(2025, 6, 1, tzinfo=UTC)
MIN_LON, MAX_LON, MIN_LAT, MAX_LAT = -74.25, -73.92, 40.50, 40.75
# code, group, dedup radius m (bench/dedup_scale.py's categories, without the assets)
CATEGORIES = (
    ("pothole", "streets", 25),
    ("sidewalk_damage", "streets", 30),
    ("sign_damaged", "streets", 30),
    ("streetlight_out", "lighting", 40),
    ("graffiti", "cleaning", 30),
    ("illegal_dumping", "cleaning", 40),
    ("missed_collection", "sanitation", 50),
    ("dead_animal", "sanitation", 50),
    ("heat", "housing", 30),
    ("hydrant_leak", "water", 50),
    ("water_main", "water", 50),
    ("tree_down", "trees", 30),
)
Row = tuple[datetime, str, float, float, str | None, datetime | None]


def categories() -> dict[str, ServiceCategory]:
    return {
        code: ServiceCategory(
            jurisdiction_id=1,
            code=code,
            name=code,
            group_code=group,
            asset_type=None,
            dedup_radius_m=float(radius),
            dedup_enabled=True,
            dedup_threshold=None,
            dedup_open_window_h=None,
            dedup_reopen_window_h=None,
            dedup_weights={},
            snap_radius_m=0.0,
            sla_hours=72.0,
            active=True,
        )
        for code, group, radius in CATEGORIES
    }


def generate(n: int, seed: int) -> list[Row]:
    """Return ``n`` rows over a year, in time order."""
    rng = random.Random(seed)
    recent: list[tuple[str, float, float, datetime, str]] = []
    out: list[Row] = []
    step_s = 365 * 86400 / n
    codes = [c for c, _, _ in CATEGORIES]
    for k in range(n):
        t = T0 + timedelta(seconds=k * step_s + rng.uniform(0, 3600))
        if recent and rng.random() < 0.30:
            code, lon0, lat0, t0, address = rng.choice(recent)
            d, a = rng.uniform(0, 15.0), rng.uniform(0, 2 * math.pi)
            lon = lon0 + d * math.sin(a) / 84_400
            lat = lat0 + d * math.cos(a) / 111_050
            t = t0 + timedelta(seconds=rng.uniform(600, 2 * 86400))
        else:
            code = rng.choice(codes)
            lon, lat = rng.uniform(MIN_LON, MAX_LON), rng.uniform(MIN_LAT, MAX_LAT)
            address = f"{rng.randrange(1, 400)} Elm St"
            recent.append((code, lon, lat, t, address))
            if len(recent) > 2000:
                recent.pop(0)
        closed = t + timedelta(hours=rng.uniform(1, 240)) if rng.random() < 0.9 else None
        out.append((t, code, lon, lat, address, closed))
    out.sort(key=lambda r: r[0])
    return out


class RtreeReplay(Replay):
    """The importer's replay with its grid of cells swapped for one R-tree per category group
    (the same add, evict and search calls; the asset index is unchanged)."""

    def __init__(self, *, tuned: bool, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.tuned = tuned
        self.trees: dict[str, rtree.index.Index] = {}
        self.live_by_id: dict[int, Live] = {}

    def _tree(self, group: str) -> rtree.index.Index:
        tree = self.trees.get(group)
        if tree is None:
            props = rtree.index.Property()
            if self.tuned:
                props.leaf_capacity = 32
                props.index_capacity = 32
            tree = self.trees[group] = rtree.index.Index(properties=props)
        return tree

    def add_live(self, inc: Live) -> None:
        self._tree(inc.group).insert(inc.id, (inc.lon, inc.lat, inc.lon, inc.lat))
        self.live_by_id[inc.id] = inc
        self.reschedule(inc)

    def evict(self, now: datetime) -> None:
        heap = self.heap
        now_s = now.timestamp() - 1.0  # the importer's own slack (see Replay.stale_before)
        while heap and heap[0][0] < now_s:
            _, token, inc = heapq.heappop(heap)
            if inc.token != token:
                continue
            self._tree(inc.group).delete(inc.id, (inc.lon, inc.lat, inc.lon, inc.lat))
            del self.live_by_id[inc.id]

    def candidates(
        self,
        code: str,
        lon: float,
        lat: float,
        asset_id: int | None,
        at: datetime,
        rule: Rule,
        scale: tuple[float, float],
    ) -> list[tuple[Live, float]]:
        group = self.group_of[code]
        enabled = self.enabled_in_group.get(group, frozenset())
        radius = rule.radius_m
        open_window, reopen_window = self.windows[code]
        kx, ky = scale
        pad_lon, pad_lat = radius / kx * 1.001, radius / ky * 1.001
        tree = self.trees.get(group)
        if tree is None:
            return []
        found: list[tuple[Live, float]] = []
        for inc_id in tree.intersection(
            (lon - pad_lon, lat - pad_lat, lon + pad_lon, lat + pad_lat)
        ):
            inc = self.live_by_id[inc_id]
            d = math.hypot((inc.lon - lon) * kx, (inc.lat - lat) * ky)
            if d > radius or inc.category not in enabled or inc.opened_at > at:
                continue
            closed_at = inc.closed_at
            if closed_at is not None and closed_at <= at:
                if at - closed_at > reopen_window:
                    continue
            elif at - inc.last_t > open_window:
                continue
            found.append((inc, d))
        if asset_id is not None:  # the same asset index as the grid's (no assets here)
            seen = {inc.id for inc, _ in found}
            for inc in self.by_asset.get((group, asset_id), ()):
                if inc.id not in seen:
                    found.append((inc, math.hypot((inc.lon - lon) * kx, (inc.lat - lat) * ky)))
        return found


def replay(rows: list[Row], make: Callable[..., Replay]) -> float:
    """Return the seconds the replay takes over ``rows`` (decide, open or join, evict)."""
    cats = categories()
    r = make(jurisdiction_id=1, categories=cats, settings=DedupSettings(), summary=ImportSummary())
    r.start(MAX_LAT)
    ids = iter(range(1, len(rows) + 1))
    started = time.perf_counter()
    for at, code, lon, lat, address, closed_at in rows:
        if r.stale_before(at):
            r.evict(at)
        scale = r.scale(lat)
        _, target = r.decide(code, at, lon, lat, None, address, scale)
        if target is None:
            inc = Live(
                id=next(ids),
                category=code,
                group=r.group_of[code],
                lon=lon,
                lat=lat,
                asset_id=None,
                opened_at=at,
                last_t=at,
                closed_at=closed_at,
                status="closed" if closed_at is not None else "new",
            )
            r.add_live(inc)
        else:
            inc = target
            inc.last_t = at
            r.reschedule(inc)
        inc.add_address(address)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = generate(args.rows, seed=7)
    variants: dict[str, Callable[..., Replay]] = {
        "grid of cells (the importer's)": Replay,
        "R-tree, default node size": lambda **kw: RtreeReplay(tuned=False, **kw),
        "R-tree, 32 entries a node": lambda **kw: RtreeReplay(tuned=True, **kw),
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.runs):
        for name, make in variants.items():
            seconds[name].append(replay(rows, make))
    table = Table(
        title=f"Import replay over {args.rows:,} generated rows, median of {args.runs} runs "
        f"(load {load_before:.1f} → {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    for col in ("candidate index", "seconds", "µs per row", "rows/s", "× grid"):
        table.add_column(col, justify="right")
    base = statistics.median(seconds["grid of cells (the importer's)"])
    for name, values in seconds.items():
        s = statistics.median(values)
        table.add_row(
            name, f"{s:.2f}", f"{s / args.rows * 1e6:.1f}", f"{args.rows / s:,.0f}",
            f"{s / base:.2f}×",
        )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
