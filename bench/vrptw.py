"""VRPTW benchmarks: geo311's planning path beside the raw solvers, against best known solutions.

Reads the Solomon (100 customers) and Gehring & Homberger (200, 400) instances from
``../shared/data/vrptw`` and, for each, in the same process and with the same time budget:

* ``geo311/pyvrp`` — ``dispatch.solver.solve`` (the project's code path: dataclasses in, a
  checked Solution out) with the PyVRP engine and the hierarchical objective;
* ``raw/pyvrp``    — PyVRP called directly: ``minimise_fleet`` then ``solve`` on a ``Model``;
* ``geo311/vroom`` — the project's path with the VROOM engine (the one that plans breaks;
  exploration level by the search time per job: see ``solver.VROOM_LEVELS``);
* ``raw/vroom``    — pyvroom called directly at exploration level 5, a fixed cost per vehicle
  for the hierarchy.

Objective: fewest vehicles, then least distance (the convention of the best known solutions
in ``bks_table.csv``; never the DIMACS one-decimal files). Distances are the double-precision
Euclidean lengths of the returned routes; the solvers see them ×1000, rounded (the
vroom-scripts convention), and each route is re-checked for time windows and capacity in double
precision ("dp-feasible").

Usage::

    uv run python bench/vrptw.py              # all 56 Solomon + first of each G&H 200/400 class
    uv run python bench/vrptw.py --quick      # 6 Solomon (one per class) + r1_2_1 + r1_4_1
    uv run python bench/vrptw.py --only R101 --solvers geo311/pyvrp,raw/pyvrp
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

from dispatch import solver

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "vrptw"
SCALE = 1000
SOLVERS = ("geo311/pyvrp", "raw/pyvrp", "geo311/vroom", "raw/vroom")
CLASSES = ("c1", "c2", "r1", "r2", "rc1", "rc2")
QUICK = ("C101", "C201", "R101", "R201", "RC101", "RC201", "r1_2_1", "r1_4_1")


@dataclass(frozen=True)
class Instance:
    name: str
    group: str
    fleet: int
    capacity: int
    xy: np.ndarray  # (n+1, 2), row 0 the depot
    demand: np.ndarray
    ready: np.ndarray
    due: np.ndarray
    service: np.ndarray

    @property
    def dist(self) -> np.ndarray:
        diff = self.xy[:, None, :] - self.xy[None, :, :]
        dist: np.ndarray = np.sqrt((diff**2).sum(-1))
        return dist


@dataclass(frozen=True)
class Result:
    routes: list[list[int]]  # customer indices 1..n per route
    wall_s: float


def read_instance(path: Path, group: str) -> Instance:
    lines = path.read_text().splitlines()
    fleet, capacity = (int(v) for v in lines[4].split())
    rows = np.array([[float(v) for v in ln.split()] for ln in lines[9:] if ln.strip()])
    return Instance(
        name=path.stem,
        group=group,
        fleet=fleet,
        capacity=capacity,
        xy=rows[:, 1:3],
        demand=rows[:, 3].astype(int),
        ready=rows[:, 4],
        due=rows[:, 5],
        service=rows[:, 6],
    )


def best_known() -> dict[str, tuple[int, float]]:
    """Return (vehicles, distance) per instance: the better of the two hierarchical sources."""
    out: dict[str, tuple[int, float]] = {}
    with (DATA / "bks_table.csv").open() as f:
        for row in csv.DictReader(f):
            candidates = []
            for v, d in (
                ("bks_hier_vehicles", "bks_hier_distance"),
                ("cuopt_repo_bks_vehicles", "cuopt_repo_bks_distance"),
            ):
                if row[v] and row[d]:
                    candidates.append((int(row[v]), float(row[d])))
            if candidates:
                out[row["instance"]] = min(candidates)
    return out


def instances(quick: bool, only: list[str] | None) -> list[Instance]:
    paths: list[tuple[Path, str]] = sorted((p, "solomon") for p in (DATA / "solomon").glob("*.txt"))
    for size in ("200", "400"):
        for cls in CLASSES:
            paths.append((DATA / f"homberger_{size}" / f"{cls}_{size[0]}_1.txt", f"gh{size}"))
    chosen = [
        (p, g)
        for p, g in paths
        if (not quick or p.stem in QUICK) and (only is None or p.stem in only)
    ]
    return [read_instance(p, g) for p, g in chosen]


def budget_s(inst: Instance, args: argparse.Namespace) -> float:
    budgets = {"solomon": args.solomon_s, "gh200": args.gh200_s, "gh400": args.gh400_s}
    return float(budgets[inst.group])


# --- the four ways to solve ------------------------------------------------------------------


def scaled(inst: Instance) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    d = np.round(inst.dist * SCALE).astype(np.int64)
    ready = np.round(inst.ready * SCALE).astype(np.int64)
    due = np.round(inst.due * SCALE).astype(np.int64)
    service = np.round(inst.service * SCALE).astype(np.int64)
    return d, ready, due, service


def run_geo311(inst: Instance, secs: float, engine: solver.Engine, seed: int) -> Result:
    started = time.perf_counter()
    d, ready, due, service = scaled(inst)
    horizon = solver.TimeWindow(int(ready[0]), int(due[0]))
    problem = solver.Problem(
        vehicles=tuple(
            solver.Vehicle(id=k, start=0, end=0, shift=horizon, capacity=inst.capacity)
            for k in range(inst.fleet)
        ),
        jobs=tuple(
            solver.Job(
                id=i,
                location=i,
                service_s=int(service[i]),
                time_window=solver.TimeWindow(int(ready[i]), int(due[i])),
                demand=int(inst.demand[i]),
                required=True,
            )
            for i in range(1, len(inst.xy))
        ),
        durations_s=d,
        coords=inst.xy,
        minimise_vehicles=True,
    )
    plan = solver.solve(problem, time_limit_s=secs, engine=engine, seed=seed, threads=2)
    if plan.unassigned:
        raise RuntimeError(f"{inst.name}: {len(plan.unassigned)} customers left out")
    routes = [[s.job_id for s in r.stops] for r in plan.routes if r.stops]
    return Result(routes, time.perf_counter() - started)


def run_raw_pyvrp(inst: Instance, secs: float, seed: int) -> Result:
    import pyvrp
    from pyvrp.stop import MaxRuntime

    started = time.perf_counter()
    d, ready, due, service = scaled(inst)
    data = pyvrp.ProblemData(
        locations=[pyvrp.Location(x=float(x), y=float(y)) for x, y in inst.xy],
        clients=[
            pyvrp.Client(
                location=i,
                delivery=[int(inst.demand[i])],
                service_duration=int(service[i]),
                tw_early=int(ready[i]),
                tw_late=int(due[i]),
            )
            for i in range(1, len(d))
        ],
        depots=[pyvrp.Depot(location=0)],
        vehicle_types=[
            pyvrp.VehicleType(
                num_available=inst.fleet,
                capacity=[inst.capacity],
                tw_early=int(ready[0]),
                tw_late=int(due[0]),
            )
        ],
        distance_matrices=[d],  # type: ignore[list-item]  # the stub's ndarray[int]
        duration_matrices=[d],  # type: ignore[list-item]
    )
    remaining = secs - (time.perf_counter() - started)
    fleet = pyvrp.minimise_fleet(data, MaxRuntime(remaining * solver.FLEET_SHARE), seed=seed)
    data = data.replace(vehicle_types=[fleet])
    remaining = max(secs - (time.perf_counter() - started), 0.01)
    best = pyvrp.solve(data, stop=MaxRuntime(remaining), seed=seed, display=False).best
    if not best.is_feasible():
        raise RuntimeError(f"{inst.name}: raw PyVRP found no feasible solution")
    routes = [[a.idx + 1 for a in r.schedule() if a.is_client()] for r in best.routes()]
    return Result(routes, time.perf_counter() - started)


def run_raw_vroom(inst: Instance, secs: float) -> Result:
    import vroom

    started = time.perf_counter()
    d, ready, due, service = scaled(inst)
    inp = vroom.Input()
    inp.set_durations_matrix(profile="car", matrix_input=d.astype(np.uint32))
    fixed = int(d.max()) * (len(d) + 1)
    for k in range(inst.fleet):
        inp.add_vehicle(
            vroom.Vehicle(
                k,
                start=0,
                end=0,
                capacity=[inst.capacity],
                time_window=vroom.TimeWindow(int(ready[0]), int(due[0])),
                costs=vroom.VehicleCosts(fixed=fixed),
            )
        )
    for i in range(1, len(d)):
        inp.add_job(
            vroom.Job(
                i,
                location=i,
                default_service=int(service[i]),
                delivery=[int(inst.demand[i])],
                time_windows=[vroom.TimeWindow(int(ready[i]), int(due[i]))],
            )
        )
    sol = inp.solve(exploration_level=5, nb_threads=2, timeout=timedelta(seconds=secs))
    out = sol.to_dict()
    routes = [[int(s["id"]) for s in r["steps"] if s["type"] == "job"] for r in out["routes"]]
    if out["unassigned"]:
        raise RuntimeError(f"{inst.name}: raw VROOM left {len(out['unassigned'])} out")
    return Result(routes, time.perf_counter() - started)


def evaluate(inst: Instance, routes: list[list[int]]) -> tuple[int, float, bool]:
    """Return (vehicles, distance, feasible) in double precision."""
    dist = inst.dist
    total = 0.0
    feasible = sorted(c for r in routes for c in r) == list(range(1, len(inst.xy)))
    for route in routes:
        t, here, load = inst.ready[0], 0, 0
        for c in route:
            total += dist[here, c]
            t = max(t + dist[here, c], inst.ready[c])
            feasible &= t <= inst.due[c] + 1e-6
            t += inst.service[c]
            load += inst.demand[c]
            here = c
        total += dist[here, 0]
        feasible &= t + dist[here, 0] <= inst.due[0] + 1e-6 and load <= inst.capacity
    return len([r for r in routes if r]), total, bool(feasible)


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Row:
    instance: str
    group: str
    solver: str
    vehicles: int
    distance: float
    bks_vehicles: int
    bks_distance: float
    wall_s: float
    feasible: bool

    @property
    def gap_pct(self) -> float:
        return 100.0 * (self.distance - self.bks_distance) / self.bks_distance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="one instance per class: " + ",".join(QUICK)
    )
    parser.add_argument("--only", help="comma-separated instance names")
    parser.add_argument("--solvers", default=",".join(SOLVERS), help="comma-separated")
    parser.add_argument("--solomon-s", type=float, default=10.0, help="budget per run, s")
    parser.add_argument("--gh200-s", type=float, default=20.0)
    parser.add_argument("--gh400-s", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--csv", type=Path, help="also write every row here")
    args = parser.parse_args(argv)
    from pyvrp.exceptions import PenaltyBoundWarning

    # The raw baseline's fleet minimisation pushes PyVRP's penalties to their bound on purpose.
    warnings.filterwarnings("ignore", category=PenaltyBoundWarning)
    if not DATA.is_dir():
        print(f"no benchmark data at {DATA}", file=sys.stderr)
        return 2
    bks = best_known()
    wanted = [s for s in args.solvers.split(",") if s]
    runners: dict[str, Callable[[Instance, float], Result]] = {
        "geo311/pyvrp": lambda i, s: run_geo311(i, s, "pyvrp", args.seed),
        "raw/pyvrp": lambda i, s: run_raw_pyvrp(i, s, args.seed),
        "geo311/vroom": lambda i, s: run_geo311(i, s, "vroom", args.seed),
        "raw/vroom": lambda i, s: run_raw_vroom(i, s),
    }
    rows: list[Row] = []
    print(
        f"{'instance':<9} {'solver':<13} {'veh':>4} {'bks':>4} {'distance':>10} "
        f"{'bks dist':>10} {'gap %':>7} {'wall s':>7} dp-feasible",
        flush=True,
    )
    for inst in instances(args.quick, args.only.split(",") if args.only else None):
        bv, bd = bks[inst.name]
        for name in wanted:
            result = runners[name](inst, budget_s(inst, args))
            vehicles, distance, feasible = evaluate(inst, result.routes)
            row = Row(
                inst.name, inst.group, name, vehicles, distance, bv, bd, result.wall_s, feasible
            )
            rows.append(row)
            print(
                f"{row.instance:<9} {row.solver:<13} {row.vehicles:>4} {bv:>4} "
                f"{row.distance:>10.2f} {bd:>10.2f} {row.gap_pct:>7.2f} {row.wall_s:>7.2f} "
                f"{'yes' if feasible else 'NO'}",
                flush=True,
            )
    summarise(rows, wanted)
    if args.csv:
        with args.csv.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["instance", "group", "solver", "vehicles", "distance", "bks_vehicles",
                        "bks_distance", "gap_pct", "wall_s", "dp_feasible"])  # fmt: skip
            for r in rows:
                w.writerow([r.instance, r.group, r.solver, r.vehicles, f"{r.distance:.2f}",
                            r.bks_vehicles, r.bks_distance, f"{r.gap_pct:.3f}",
                            f"{r.wall_s:.2f}", r.feasible])  # fmt: skip
    return 0


def summarise(rows: list[Row], solvers: list[str]) -> None:
    print()
    print("Summary (medians over instances; gap = distance vs best known, vehicles first)")
    print(
        f"{'group':<8} {'solver':<13} {'n':>3} {'veh=bks':>8} {'veh>bks':>8} {'veh<bks':>8} "
        f"{'med gap %':>9} {'med gap % (veh=bks)':>20} {'med wall s':>10} {'max wall s':>10} "
        f"{'dp-feas':>7}"
    )
    for group in ("solomon", "gh200", "gh400"):
        for name in solvers:
            sel = [r for r in rows if r.group == group and r.solver == name]
            if not sel:
                continue
            same = [r for r in sel if r.vehicles == r.bks_vehicles]
            print(
                f"{group:<8} {name:<13} {len(sel):>3} "
                f"{100 * len(same) / len(sel):>7.0f}% "
                f"{sum(r.vehicles > r.bks_vehicles for r in sel):>8} "
                f"{sum(r.vehicles < r.bks_vehicles for r in sel):>8} "
                f"{statistics.median(r.gap_pct for r in sel):>9.2f} "
                f"{statistics.median(r.gap_pct for r in same) if same else float('nan'):>20.2f} "
                f"{statistics.median(r.wall_s for r in sel):>10.2f} "
                f"{max(r.wall_s for r in sel):>10.2f} "
                f"{sum(r.feasible for r in sel):>4}/{len(sel)}"
            )
    pairs = [("geo311/pyvrp", "raw/pyvrp"), ("geo311/vroom", "raw/vroom")]
    for ours, raw in pairs:
        if ours not in solvers or raw not in solvers:
            continue
        a = {r.instance: r for r in rows if r.solver == ours}
        b = {r.instance: r for r in rows if r.solver == raw}
        common = sorted(a.keys() & b.keys())
        if not common:
            continue
        dq = [100 * (a[k].distance - b[k].distance) / b[k].distance for k in common]
        dv = [a[k].vehicles - b[k].vehicles for k in common]
        dt = [100 * (a[k].wall_s - b[k].wall_s) / b[k].wall_s for k in common]
        print(
            f"{ours} vs {raw}: median distance {statistics.median(dq):+.2f}%, "
            f"vehicles {sum(dv):+d} in total ({sum(v > 0 for v in dv)} instances worse, "
            f"{sum(v < 0 for v in dv)} better), median wall time {statistics.median(dt):+.1f}%"
        )


if __name__ == "__main__":
    raise SystemExit(main())
