"""City day: a generated day of work on Monaco, planned, stored and re-planned end to end.

Builds a city on the Monaco extract in ``../shared/data/roads`` (seeded, so every run sees the
same city): a jurisdiction in Europe/Monaco, 6 wards (bands of the ``monaco.poly`` box holding
equal shares of the road), 5 skills, 10 categories mapped to them by skill rules (15–60 min on
site; one with access hours 13:00–15:30), 50 crews (10 per skill, depots on the roads, shift
07:00–15:30 with a 30-min lunch starting 11:30–13:00, each covering 3 neighbouring wards so every
ward × skill has ≥ 2 crews), and 1,000 open work orders at points along the roads (a few metres
off the kerb), opened and assigned to a crew by the rules as intake does
(``geo311.flows.open_incident``), due from a week ago to a
week ahead (so SLA priorities differ), 15 % with a two-hour appointment on the planned day
(``dispatch.dayplans.appointments.set_appointment``).

For each travel-time provider — the road network (the extract loaded with the project's own
``geo311 roads load`` code) and the straight line (the same city with no network loaded) — each
run takes a fresh copy of the city (``CREATE DATABASE … TEMPLATE``) and times, in one process:

1. **day plan** — ``dispatch.dayplans.commands.make_plan`` for the day, committed: the matrix,
   the solve, and everything else (reading the work, storing routes and stops, route lines,
   giving each placed work order its crew and the status ``scheduled`` through the lifecycle,
   the commit).
   Baseline: ``dispatch.planning.solve_day`` on the same jobs (matrix + solve, nothing stored);
   the ratio is what the project adds. Target: ≤ 10 s.
   **Before**: the same ``make_plan`` on another fresh copy, planned as it was before the
   in-process matrix and the split solve: the matrix from pgRouting's
   ``pgr_withPointsCostMatrix`` (``dispatch.matrix.PgRoutingMatrix``), one VROOM search over
   the whole day (no split into independent parts; exploration level 5 up to 300 jobs, else
   1) with the old 10 s budget. Per phase: where the time goes (matrix, solve, store, …)
   and the plan's quality (drive time, route time, jobs placed, left out, and left out though
   due by the day's end), so a faster plan is seen not to be a weaker one.
   With ``--lifecycle-before``, also the plan with the placed work orders moved through the
   lifecycle one ``transition`` at a time (as ``_schedule`` did before the set-based
   ``work_orders.transitions.transition_many``); the "lifecycle" part and its round trips per
   planned job compare the two.
   With ``--rows-before``, also the plan with the route rows written a crew at a time, each
   route's line drawn alone (its own snap, search and read of the edges, as before the lines
   walked the matrix's own search trees in one go), and the stops as ORM objects; the "route
   lines" and "store rows" parts compare the two.
2. **move** — ``dispatch.dayplans.commands.move_work_orders``: 10 jobs from the crew with most
   stops to the crew of the same skill that may take most of them, re-planning just those two crews,
   committed. Baseline: a full-day re-plan (``make_plan`` again) right after; the ratio is what
   re-planning only the crews touched saves. Target: ≤ 2 s.

Medians of ``--runs`` runs (the day plan and its baseline take turns going first); min and max
beside them. The solvers are imported before anything is timed, as a running service has
them. The solver budgets are the ``RoutingSettings`` defaults unless ``--time-limit`` /
``--replan-time-limit`` say otherwise.
Uses ``GEO311_DB__URL``'s server when set (its user must be able to create databases), else a
throwaway embedded cluster.

Usage::

    uv run python bench/city_day.py              # 1,000 jobs, 50 crews, 3 runs
    uv run python bench/city_day.py --quick      # 200 jobs, 10 crews, 1 run
    uv run python bench/city_day.py --runs 5 --time-limit 20
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
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import shapely
from psycopg import sql
from rich.console import Console
from rich.table import Table
from sqlalchemy import event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from dispatch import planning, solver
from dispatch import roads as dispatch_roads
from dispatch import service as dispatch_service
from dispatch.dayplans import appointments, commands
from dispatch.dayplans import store as plan_store
from dispatch.dayplans import work as plan_work
from dispatch.matrix import PgRoutingMatrix
from dispatch.models import DayPlan, PlanLeftOut, PlanRoute, PlanStop
from dispatch.network import RoadLine, build_network, lines_from_osm
from dispatch.schemas import BreakIn, CrewIn, DepotIn, SkillRuleIn
from geo311.flows import open_incident
from geo311.kernel import migrate
from geo311.kernel.database import Database
from geo311.kernel.embedded import EXTENSIONS, EmbeddedCluster
from geo311.kernel.notify import outbox
from geo311.kernel.settings import RoutingSettings
from layers import service as layers_service
from layers.service import WardFeature
from work_orders import lookups, transitions
from work_orders.models import ServiceCategory, WorkOrder

REPO = Path(__file__).resolve().parents[1]
ROADS = REPO.parent / "shared" / "data" / "roads"
PBF = ROADS / "monaco.osm.pbf"
POLY = ROADS / "monaco.poly"
console = Console(width=200)

SLUG = "monaco"
ZONE = ZoneInfo("Europe/Monaco")
DAY = date(2026, 6, 2)  # a Tuesday
# The plan is made before the shifts start: no crew has a job in progress.
NOW = datetime.combine(DAY, wall(6, 0), tzinfo=ZONE)
ACTOR = "bench:city_day"
WARDS = 6
SKILLS = {
    "paving": "Paving",
    "electrical": "Electrical",
    "water": "Water",
    "arborist": "Arborist",
    "sanitation": "Sanitation",
}
# code, name, skill, minutes on site, SLA hours
CATEGORIES = (
    ("pothole", "Pothole", "paving", 20, 72),
    ("sidewalk_damage", "Damaged pavement", "paving", 45, 336),
    ("streetlight_out", "Streetlight out", "electrical", 30, 120),
    ("signal_fault", "Traffic signal fault", "electrical", 60, 24),
    ("hydrant_leak", "Leaking hydrant", "water", 40, 24),
    ("drain_blocked", "Blocked drain", "water", 25, 72),
    ("tree_down", "Fallen tree", "arborist", 60, 12),
    ("pruning", "Overhanging branches", "arborist", 50, 336),
    ("illegal_dumping", "Illegal dumping", "sanitation", 15, 96),
    ("market_cleanup", "Market square cleaning", "sanitation", 30, 48),
)
# After the morning market only: the category with access hours.
ACCESS = {"market_cleanup": (wall(13, 0), wall(15, 30))}
SHIFT = (wall(7, 0), wall(15, 30))
LUNCH = BreakIn(earliest_start=wall(11, 30), latest_start=wall(13, 0), duration_s=1800)
APPOINTMENT_SHARE = 0.15
APPOINTMENT_HOURS = 2
# Road classes jobs are placed along (service roads are car parks and yards).
JOB_ROADS = frozenset(
    {
        "primary",
        "primary_link",
        "secondary",
        "secondary_link",
        "tertiary",
        "tertiary_link",
        "unclassified",
        "residential",
        "living_street",
    }
)
KERB_M = 8.0
MOVE_JOBS = 10
DAY_TARGET_S = 10.0  # issue 11 (it was 30 s before the set-based lifecycle step)
# The day plan's solver budget before the split solve (RoutingSettings.time_limit_s then).
BEFORE_TIME_LIMIT_S = 10.0
MOVE_TARGET_S = 2.0


# --- where the databases live -----------------------------------------------------------------


class Server(Protocol):
    def url(self, dbname: str) -> str: ...
    def create(self, dbname: str, *, template: str | None = None) -> None: ...
    def drop(self, dbname: str) -> None: ...


class Embedded:
    def __init__(self, cluster: EmbeddedCluster) -> None:
        self.cluster = cluster

    def url(self, dbname: str) -> str:
        return self.cluster.url(dbname)

    def create(self, dbname: str, *, template: str | None = None) -> None:
        self.cluster.ensure_database(dbname, template=template)

    def drop(self, dbname: str) -> None:
        self.cluster.drop_database(dbname)


class External:
    """A server named by GEO311_DB__URL: databases are made next to the one it names."""

    def __init__(self, url: str) -> None:
        self.base = make_url(url)

    def url(self, dbname: str) -> str:
        return self.base.set(database=dbname).render_as_string(hide_password=False)

    def _admin(self) -> psycopg.Connection[Any]:
        plain = self.base.set(drivername="postgresql")
        return psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True)

    def create(self, dbname: str, *, template: str | None = None) -> None:
        with self._admin() as conn:
            stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
            if template:
                stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(dbname), sql.Identifier(template)
                )
            conn.execute(stmt)
        if template is None:
            plain = self.base.set(drivername="postgresql", database=dbname)
            with psycopg.connect(
                plain.render_as_string(hide_password=False), autocommit=True
            ) as conn:
                for ext in EXTENSIONS:
                    conn.execute(
                        sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext))
                    )

    def drop(self, dbname: str) -> None:
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )


@contextmanager
def server() -> Iterator[Server]:
    url = os.environ.get("GEO311_DB__URL")
    if url:
        yield External(url)
        return
    root = Path(tempfile.mkdtemp(prefix="geo311-city-day-"))
    root.chmod(0o755)  # the postgres user must reach it when run as root
    cluster = EmbeddedCluster(root / "pg")
    cluster.start()
    try:
        yield Embedded(cluster)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


# --- the city, generated (no I/O) ---------------------------------------------------------------


@dataclass(frozen=True)
class JobSpec:
    category_code: str
    lon: float
    lat: float
    opened_at: datetime
    appointment: tuple[datetime, datetime] | None


@dataclass(frozen=True)
class City:
    wards: list[WardFeature]
    crews: list[CrewIn]
    jobs: list[JobSpec]
    seed: int


def read_poly(path: Path) -> shapely.Polygon:
    """Return the outer ring of an Osmosis .poly file as a polygon (lon, lat)."""
    coords: list[tuple[float, float]] = []
    for line in path.read_text().splitlines()[2:]:
        parts = line.split()
        if not parts or parts[0] == "END":
            break
        coords.append((float(parts[0]), float(parts[1])))
    return shapely.Polygon(coords)


def road_points(
    lines: Sequence[RoadLine], area: shapely.Polygon, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Return ``n`` points (lon, lat) inside ``area``, uniform along the job roads by length,
    each a few metres off the centreline."""
    segments = [
        (a, b)
        for line in lines
        if line.highway in JOB_ROADS
        for a, b in zip(line.coords[:-1], line.coords[1:], strict=True)
    ]
    seg = np.asarray(segments, dtype=np.float64)  # (m, 2, 2)
    cos_lat = np.cos(np.radians(area.centroid.y))
    metres = np.array([111_320.0 * cos_lat, 110_540.0])
    length = np.hypot(*((seg[:, 1] - seg[:, 0]) * metres).T)
    cumulative = np.cumsum(length)
    out = np.empty((0, 2))
    while len(out) < n:
        picks = np.searchsorted(cumulative, rng.uniform(0, cumulative[-1], 2 * n))
        along = rng.uniform(0, 1, len(picks))[:, None]
        xy = seg[picks, 0] + along * (seg[picks, 1] - seg[picks, 0])
        angle = rng.uniform(0, 2 * np.pi, len(picks))
        kerb = rng.uniform(0, KERB_M, len(picks))
        xy += np.column_stack([np.cos(angle), np.sin(angle)]) * kerb[:, None] / metres
        inside = shapely.contains_xy(area, xy[:, 0], xy[:, 1])
        out = np.vstack([out, xy[inside]])
    return out[:n]


def territories(crews: int, wards: int) -> list[list[int]]:
    """Return each crew's wards: neighbouring wards round the ring, as few as give every ward
    at least two crews (or all of them)."""
    for width in range(min(3, wards), wards + 1):
        out = [[(k * wards // crews + j) % wards for j in range(width)] for k in range(crews)]
        cover = Counter(w for t in out for w in t)
        if all(cover[w] >= 2 for w in range(wards)) or width == wards:
            return out
    raise AssertionError("unreachable")


def generate(
    lines: Sequence[RoadLine], area: shapely.Polygon, *, jobs: int, crews: int, seed: int
) -> City:
    """Return the city: wards, crews and open work, the same for the same arguments."""
    rng = np.random.default_rng(seed)
    pool = road_points(lines, area, max(5 * (jobs + crews), 5000), rng)
    # Ward bands of equal road share, across the box of the .poly (so they tile it).
    x0, y0, x1, y1 = area.bounds
    cuts = [x0, *np.quantile(pool[:, 0], np.arange(1, WARDS) / WARDS), x1]
    wards = [
        WardFeature(
            code=str(k + 1),
            name=f"Ward {k + 1}",
            geom=shapely.MultiPolygon([shapely.box(cuts[k], y0, cuts[k + 1], y1)]),
        )
        for k in range(WARDS)
    ]
    band = np.clip(np.searchsorted(cuts, pool[:, 0], side="right") - 1, 0, WARDS - 1)

    skills = list(SKILLS)
    per_skill = max(crews // len(skills), 1)
    crew_list: list[CrewIn] = []
    for s, skill in enumerate(skills):
        for k, territory in enumerate(territories(per_skill, WARDS)):
            home = territory[len(territory) // 2]
            candidates = np.flatnonzero(band == home)
            lon, lat = pool[rng.choice(candidates)]
            crew_list.append(
                CrewIn(
                    code=f"{skill}-{k + 1:02d}",
                    name=f"{SKILLS[skill]} crew {k + 1}",
                    depot=DepotIn(lon=float(lon), lat=float(lat), name=f"Yard {s + 1}.{k + 1}"),
                    shift_start=SHIFT[0],
                    shift_end=SHIFT[1],
                    workdays=[1, 2, 3, 4, 5, 6, 7],
                    skills=[skill],
                    territory=[str(w + 1) for w in territory],
                    breaks=[LUNCH],
                )
            )

    day_start = datetime.combine(DAY, wall(0), tzinfo=ZONE)
    job_list = []
    for k in range(jobs):
        code, _, _, _, sla_hours = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        sla = timedelta(hours=sla_hours)
        # Due from a week ago to a week ahead; short-SLA work cannot be due far ahead, as it
        # would have to be reported in the future: it was reported in the last day instead.
        due = day_start + timedelta(days=float(rng.uniform(-7, 7)))
        opened = due - sla
        if opened > NOW - timedelta(hours=1):
            opened = NOW - timedelta(hours=float(rng.uniform(1, 24)))
        appointment = None
        if rng.uniform() < APPOINTMENT_SHARE:
            start = datetime.combine(DAY, wall(int(rng.integers(8, 14))), tzinfo=ZONE)
            appointment = (start, start + timedelta(hours=APPOINTMENT_HOURS))
        lon, lat = pool[k]
        job_list.append(JobSpec(code, float(lon), float(lat), opened, appointment))
    return City(wards=wards, crews=crew_list, jobs=job_list, seed=seed)


# --- the city, stored ---------------------------------------------------------------------------


def store_city(session: Session, city: City) -> int:
    """Store the city through the project's services; return the jurisdiction id."""
    jid = layers_service.create_jurisdiction(
        session, slug=SLUG, name="Monaco", timezone=ZONE.key
    ).id
    layers_service.load_ward_map(
        session,
        jurisdiction_id=jid,
        name="Bench wards",
        valid_from=datetime(2020, 1, 1, tzinfo=ZONE),
        valid_to=None,
        wards=city.wards,
        source=f"bench/city_day.py, seed {city.seed}",
    )
    for code, name in SKILLS.items():
        dispatch_service.put_skill(session, jurisdiction_id=jid, code=code, name=name)
    categories = {}
    for code, name, _, _, sla_hours in CATEGORIES:
        categories[code] = ServiceCategory(
            jurisdiction_id=jid,
            code=code,
            name=name,
            group_code="public_works",
            sla_hours=sla_hours,
        )
        session.add(categories[code])
    session.flush()
    dispatch_service.replace_skill_rules(
        session,
        jurisdiction_id=jid,
        rules_in=[SkillRuleIn(category_code=c[0], skill_code=c[2]) for c in CATEGORIES],
    )
    for code, _, _, minutes, _ in CATEGORIES:
        dispatch_service.put_service_time(
            session,
            jurisdiction_id=jid,
            category_code=code,
            service_s=minutes * 60,
            access=ACCESS.get(code),
        )
    for crew in city.crews:
        dispatch_service.create_crew(session, jurisdiction_id=jid, data=crew)
    for k, job in enumerate(city.jobs):
        if k % 200 == 0:
            # Fresh planner statistics as the tables grow, as autovacuum keeps them in a running
            # service; without them the crew-load query of each assignment slows to a scan.
            session.execute(text("ANALYZE work_orders, incidents, audit_events"))
        ward = layers_service.ward_at(
            session, jurisdiction_id=jid, lon=job.lon, lat=job.lat, at=job.opened_at
        )
        # As intake does: the new work order goes to a crew by the rules (or the queue).
        incident = open_incident.open_incident(
            session,
            category=categories[job.category_code],
            lon=job.lon,
            lat=job.lat,
            ward_id=ward.id if ward else None,
            asset_id=None,
            opened_at=job.opened_at,
        )
        if job.appointment is not None:
            order = lookups.current_work_order(session, incident)
            assert order is not None
            appointments.set_appointment(
                session,
                jurisdiction_id=jid,
                work_order_id=order.id,
                window=job.appointment,
                actor=ACTOR,
            )
    session.flush()
    return jid


# --- timing the project's code from inside --------------------------------------------------


@dataclass
class Parts:
    """Seconds spent in named parts of one call."""

    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    # Statements sent to the server inside each part (SQLAlchemy's, plus each job deferral
    # the outbox sends on the driver's connection, which SQLAlchemy does not see).
    statements: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    inside: list[str] = field(default_factory=list)

    def count(self, *_: Any) -> None:
        if self.inside:
            self.statements[self.inside[-1]] += 1

    @contextmanager
    def watch(self, module: Any, name: str, label: str) -> Iterator[None]:
        original = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            self.inside.append(label)
            try:
                return original(*args, **kwargs)
            finally:
                self.inside.pop()
                self.seconds[label] += time.perf_counter() - started

        setattr(module, name, timed)
        try:
            yield
        finally:
            setattr(module, name, original)

    @contextmanager
    def count_calls(self, module: Any, name: str) -> Iterator[None]:
        """Count each call of ``module.name`` as one statement of the part it is made in."""
        original = getattr(module, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count()
            return original(*args, **kwargs)

        setattr(module, name, counted)
        try:
            yield
        finally:
            setattr(module, name, original)

    def settle(self, wall_s: float, matrix_s: float, solve_s: float) -> None:
        """Split what was watched into parts that add up to ``wall_s``: the stored rows are
        the store less its route lines and lifecycle; the rest of the call is "other"."""
        s = self.seconds
        s["rows"] = s["store"] - s["lines"] - s["lifecycle"]
        s["other"] = wall_s - matrix_s - solve_s - s["read"] - s["store"] - s["commit"]


@contextmanager
def watched(parts: Parts, db: Database | None = None) -> Iterator[None]:
    if db is not None:
        event.listen(db.engine, "before_cursor_execute", parts.count)
    with (
        # Each name where it is looked up: the commands call the reader and the store, the
        # store calls the lifecycle step and the route lines.
        parts.watch(commands, "work_for_day", "read"),
        parts.watch(commands, "work_by_id", "read"),
        parts.watch(commands, "store_solution", "store"),
        parts.watch(plan_store, "_schedule", "lifecycle"),
        parts.watch(plan_store, "route_geometries", "lines"),
        parts.count_calls(outbox, "defer"),
    ):
        try:
            yield
        finally:
            if db is not None:
                event.remove(db.engine, "before_cursor_execute", parts.count)


def one_transition_at_a_time(
    session: Session, *, jurisdiction_id: int, solved: planning.DaySolution, actor: str
) -> None:
    """The "before" of the lifecycle step: ``dispatch.dayplans.store._schedule`` as it was,
    one ``work_orders.transitions.transition`` per status change of each placed work order."""
    crew_of = {s.job_id: r.crew_id for r in solved.routes for s in r.stops}
    dropped = {u.job_id for u in solved.unassigned}
    if not crew_of and not dropped:
        return
    orders = session.scalars(
        select(WorkOrder)
        .where(
            WorkOrder.jurisdiction_id == jurisdiction_id,
            WorkOrder.id.in_(list(crew_of) + list(dropped)),
        )
        .order_by(WorkOrder.id)
    )
    for order in orders:
        if order.id in dropped:
            if order.status == "scheduled":
                transitions.transition(
                    session, incident_or_work_order=order, to="assigned", actor=actor
                )
            continue
        order.crew_id = crew_of[order.id]
        if order.status in ("new", "triaged"):
            transitions.transition(
                session, incident_or_work_order=order, to="assigned", actor=actor
            )
        if order.status != "scheduled":
            transitions.transition(
                session,
                incident_or_work_order=order,
                to="scheduled",
                actor=actor,
                notice_context={"scheduled_for": solved.day.isoformat()},
            )
    session.flush()


@contextmanager
def lifecycle_before() -> Iterator[None]:
    """Store day plans with the one-at-a-time lifecycle step (inside ``watched``, so the
    watch times and counts this one)."""
    original = plan_store._schedule
    plan_store._schedule = one_transition_at_a_time
    try:
        yield
    finally:
        plan_store._schedule = original


def routes_one_at_a_time(
    session: Session,
    *,
    plan: DayPlan,
    solved: planning.DaySolution,
    crew_ids: Sequence[int],
    kept: Mapping[int, int],
) -> None:
    """The "before" of the route rows: ``dispatch.dayplans.store._write_routes`` as it was, a
    crew at a time: its row read, its line drawn alone (its points snapped, the graph joined
    and searched, its edges read), an ORM object written."""
    jid = plan.jurisdiction_id
    routes = {r.crew_id: r for r in solved.routes}
    now = datetime.now(UTC)
    for crew_id in crew_ids:
        route = routes.get(crew_id)
        row = session.get(PlanRoute, (jid, plan.id, crew_id))
        if route is None:
            if row is not None and crew_id not in kept:
                session.delete(row)
            continue
        # Each route snapped its own points and searched the network for itself then.
        dispatch_roads._SNAPS.clear()
        dispatch_roads._TREES.clear()
        line = plan_store.route_geometries(session, jurisdiction_id=jid, routes=[route])[0]  # type: ignore[attr-defined]
        values = {
            "depart": route.depart,
            "back": route.back,
            "travel_s": route.travel_s,
            "distance_m": route.distance_m,
            "breaks": [[a.isoformat(), b.isoformat()] for a, b in route.breaks],
            "geom": plan_store._line(line),
            "planned_at": now,
        }
        if row is None:
            session.add(PlanRoute(jurisdiction_id=jid, plan_id=plan.id, crew_id=crew_id, **values))
        else:
            for key, value in values.items():
                setattr(row, key, value)
    session.flush()


def stops_as_objects(
    session: Session,
    *,
    plan: DayPlan,
    solved: planning.DaySolution,
    first: Mapping[int, int],
    locked: set[int],
    left_out: Mapping[int, str],
) -> None:
    """The "before" of the stop rows: ``dispatch.dayplans.store._write_stops`` as it was, an
    ORM object per stop and per left-out job."""
    jid = plan.jurisdiction_id
    session.add_all(
        PlanStop(
            jurisdiction_id=jid,
            plan_id=plan.id,
            work_order_id=s.job_id,
            crew_id=r.crew_id,
            seq=first[r.crew_id] + s.seq,
            arrival=s.arrival,
            start_at=s.start,
            end_at=s.end,
            locked=s.job_id in locked,
        )
        for r in solved.routes
        for s in r.stops
    )
    session.add_all(
        PlanLeftOut(
            jurisdiction_id=jid,
            plan_id=plan.id,
            work_order_id=u.job_id,
            reason=u.reason,
            detail=left_out[u.job_id],
        )
        for u in solved.unassigned
    )
    session.flush()


@contextmanager
def rows_before() -> Iterator[None]:
    """Store day plans with the route rows and lines a crew at a time and the stops as ORM
    objects (inside ``watched``, so the watch times the lines as it does now)."""
    routes, stops = plan_store._write_routes, plan_store._write_stops
    plan_store._write_routes = routes_one_at_a_time
    plan_store._write_stops = stops_as_objects
    try:
        yield
    finally:
        plan_store._write_routes, plan_store._write_stops = routes, stops


@contextmanager
def solver_before() -> Iterator[None]:
    """Solve as before the split: one search over the whole day, VROOM's width by the number
    of jobs (level 5 up to 300, else 1)."""
    parts, level = solver.independent_parts, solver._exploration_level

    def one_part(
        problem: solver.Problem, jobs: Sequence[solver.Job]
    ) -> list[tuple[tuple[solver.Vehicle, ...], list[solver.Job]]]:
        return [(problem.vehicles, list(jobs))] if jobs else []

    solver.independent_parts = one_part
    solver._exploration_level = lambda jobs, search_s: 5 if jobs <= 300 else 1  # noqa: ARG005
    try:
        yield
    finally:
        solver.independent_parts = parts
        solver._exploration_level = level


@dataclass(frozen=True)
class Quality:
    """What a plan is worth: hours driven and on the road (depart to back) over all crews,
    jobs placed, jobs left out, and those left out though due by the end of the day."""

    drive_h: float = 0.0
    route_h: float = 0.0
    placed: int = 0
    left_out: int = 0
    urgent_left_out: int = 0


def _urgent(session: Session, jid: int, ids: Sequence[int]) -> int:
    day_end = datetime.combine(DAY + timedelta(days=1), wall(0), tzinfo=ZONE)
    return int(
        session.execute(
            text(
                "SELECT count(*) FROM work_orders WHERE jurisdiction_id = :jid "
                "AND id = ANY(:ids) AND due_at < :end"
            ),
            {"jid": jid, "ids": list(ids), "end": day_end},
        ).scalar_one()
    )


def stored_quality(session: Session, jid: int, left_out: Sequence[int]) -> Quality:
    """Return the quality of the day's stored plan."""
    row = session.execute(
        text(
            "SELECT coalesce(sum(r.travel_s), 0), "
            "coalesce(sum(extract(epoch FROM r.back - r.depart)), 0), "
            "(SELECT count(*) FROM plan_stops s WHERE s.jurisdiction_id = p.jurisdiction_id "
            " AND s.plan_id = p.id) "
            "FROM day_plans p LEFT JOIN plan_routes r "
            "ON r.jurisdiction_id = p.jurisdiction_id AND r.plan_id = p.id "
            "WHERE p.jurisdiction_id = :jid AND p.day = :day GROUP BY p.jurisdiction_id, p.id"
        ),
        {"jid": jid, "day": DAY},
    ).one()
    return Quality(
        drive_h=float(row[0]) / 3600,
        route_h=float(row[1]) / 3600,
        placed=int(row[2]),
        left_out=len(left_out),
        urgent_left_out=_urgent(session, jid, left_out),
    )


@dataclass
class Measure:
    wall_s: float
    matrix_s: float = 0.0
    solve_s: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    placed: int = 0
    left_out: Counter[str] = field(default_factory=Counter)
    note: str = ""
    lifecycle_statements: int = 0
    scheduled: int = 0
    quality: Quality = field(default_factory=Quality)


def _placed(session: Session, jid: int, crews: Sequence[int] | None = None) -> int:
    return int(
        session.execute(
            text(
                "SELECT count(*) FROM plan_stops s JOIN day_plans p "
                "ON p.jurisdiction_id = s.jurisdiction_id AND p.id = s.plan_id "
                "WHERE s.jurisdiction_id = :jid AND p.day = :day "
                "AND (CAST(:crews AS int[]) IS NULL OR s.crew_id = ANY(:crews))"
            ),
            {"jid": jid, "day": DAY, "crews": list(crews) if crews is not None else None},
        ).scalar_one()
    )


def jurisdiction_id(session: Session) -> int:
    return int(
        session.execute(
            text("SELECT id FROM jurisdictions WHERE slug = :s"), {"s": SLUG}
        ).scalar_one()
    )


def raw_plan(db: Database, routing: RoutingSettings) -> Measure:
    """The baseline of the day plan: the same jobs, matrix and solve, nothing stored."""
    with db.session() as session:
        jid = jurisdiction_id(session)
        day_start, day_end = plan_work.day_bounds(session, jurisdiction_id=jid, day=DAY)
        work = plan_work.work_for_day(
            session,
            jurisdiction_id=jid,
            day=DAY,
            plan_id=0,
            horizon_days=routing.horizon_days,
            today=NOW.astimezone(day_start.tzinfo).date(),
        )
        rule_set = dispatch_service.rule_set(session, jurisdiction_id=jid)
        jobs = [
            plan_work.to_day_job(
                w,
                rule_set=rule_set,
                routing=routing,
                day=DAY,
                day_start=day_start,
                day_end=day_end,
            )
            for w in work
        ]
        starts = plan_work.crew_starts(
            session, jurisdiction_id=jid, day=DAY, now=NOW, routing=routing
        )
        started = time.perf_counter()
        solved = planning.solve_day(
            session, jurisdiction_id=jid, day=DAY, jobs=jobs, routing=routing, starts=starts
        )
        wall_s = time.perf_counter() - started
        left_out = [u.job_id for u in solved.unassigned]
        quality = Quality(
            drive_h=sum(r.travel_s for r in solved.routes) / 3600,
            route_h=sum((r.back - r.depart).total_seconds() for r in solved.routes) / 3600,
            placed=sum(len(r.stops) for r in solved.routes),
            left_out=len(left_out),
            urgent_left_out=_urgent(session, jid, left_out),
        )
    return Measure(
        wall_s=wall_s,
        matrix_s=solved.matrix_s,
        solve_s=solved.solve_s,
        placed=sum(len(r.stops) for r in solved.routes),
        left_out=Counter(u.reason for u in solved.unassigned),
        note=f"{len(jobs)} jobs, engine {solved.engine}",
        quality=quality,
    )


def day_plan(
    db: Database, routing: RoutingSettings, *, before: str | None = None
) -> tuple[Measure, int]:
    """make_plan for the day, committed; return the measure and the plan's version. Before
    ``"lifecycle"``: the placed work orders move one transition at a time; before ``"plan"``:
    pgRouting's matrix and one search over the whole day with the old budget."""
    parts = Parts()
    started = time.perf_counter()
    with (
        lifecycle_before() if before == "lifecycle" else nullcontext(),
        rows_before() if before == "rows" else nullcontext(),
        solver_before() if before == "plan" else nullcontext(),
        watched(parts, db),
        db.session() as session,
    ):
        jid = jurisdiction_id(session)
        change = commands.make_plan(
            session,
            jurisdiction_id=jid,
            day=DAY,
            routing=routing,
            actor=ACTOR,
            now=NOW,
            provider=PgRoutingMatrix(
                session, jurisdiction_id=jid, access_speed_kmh=routing.speed_kmh
            )
            if before == "plan" and dispatch_roads.get_network(session, jurisdiction_id=jid)
            else None,
            time_limit_s=BEFORE_TIME_LIMIT_S if before == "plan" else None,
        )
        version = change.plan.version
        commit_at = time.perf_counter()
    parts.seconds["commit"] = time.perf_counter() - commit_at
    wall_s = time.perf_counter() - started
    parts.settle(wall_s, change.matrix_s, change.solve_s)
    with db.session() as session:
        placed = _placed(session, jid)
        quality = stored_quality(session, jid, [u.job_id for u in change.left_out])
        scheduled = session.execute(
            text(
                "SELECT count(*) FROM audit_events WHERE jurisdiction_id = :jid "
                "AND entity = 'work_order' AND to_state = 'scheduled' AND actor = :actor"
            ),
            {"jid": jid, "actor": ACTOR},
        ).scalar_one()
    return (
        Measure(
            wall_s=wall_s,
            matrix_s=change.matrix_s,
            solve_s=change.solve_s,
            parts=dict(parts.seconds),
            placed=placed,
            left_out=Counter(u.reason for u in change.left_out),
            lifecycle_statements=parts.statements["lifecycle"],
            scheduled=int(scheduled),
            quality=quality,
        ),
        version,
    )


@dataclass(frozen=True)
class Move:
    work_order_ids: list[int]
    from_crew: str
    to_crew: str


def pick_move(db: Database) -> Move:
    """Return up to 10 jobs of the crew with most stops, and the crew of the same skill that
    may take most of them (fewest stops on a tie)."""
    with db.session() as session:
        jid = jurisdiction_id(session)
        rows = session.execute(
            text(
                """
                SELECT s.crew_id, s.work_order_id, wd.code AS ward
                FROM plan_stops s
                JOIN day_plans p ON p.jurisdiction_id = s.jurisdiction_id AND p.id = s.plan_id
                JOIN work_orders w
                  ON w.jurisdiction_id = s.jurisdiction_id AND w.id = s.work_order_id
                JOIN incidents i ON i.jurisdiction_id = w.jurisdiction_id AND i.id = w.incident_id
                LEFT JOIN wards wd ON wd.jurisdiction_id = i.jurisdiction_id AND wd.id = i.ward_id
                WHERE s.jurisdiction_id = :jid AND p.day = :day AND NOT s.locked
                ORDER BY s.crew_id, s.seq
                """
            ),
            {"jid": jid, "day": DAY},
        ).all()
        crews = {c.id: c for c in dispatch_service.list_crews(session, jurisdiction_id=jid)}
    stops: dict[int, list[tuple[int, str]]] = {}
    for r in rows:
        stops.setdefault(int(r.crew_id), []).append((int(r.work_order_id), str(r.ward)))
    source = max(stops, key=lambda c: (len(stops[c]), -c))
    best: tuple[tuple[int, int], int, list[int]] | None = None
    for crew in crews.values():
        if crew.id == source or set(crew.skills) != set(crews[source].skills):
            continue
        movable = [wo for wo, ward in stops[source] if ward in crew.territory][:MOVE_JOBS]
        key = (len(movable), -len(stops.get(crew.id, [])))
        if best is None or key > best[0]:
            best = (key, crew.id, movable)
    if best is None or not best[2]:
        raise RuntimeError("no crew may take the busiest crew's jobs")
    return Move(best[2], crews[source].code, crews[best[1]].code)


def move(db: Database, routing: RoutingSettings, picked: Move, version: int) -> tuple[Measure, int]:
    """move_work_orders of the picked jobs, committed; return the measure and the version."""
    parts = Parts()
    started = time.perf_counter()
    with watched(parts), db.session() as session:
        jid = jurisdiction_id(session)
        change = commands.move_work_orders(
            session,
            jurisdiction_id=jid,
            day=DAY,
            work_order_ids=picked.work_order_ids,
            to_crew=picked.to_crew,
            expected_version=version,
            routing=routing,
            actor=ACTOR,
            now=NOW,
        )
        version = change.plan.version
        commit_at = time.perf_counter()
    parts.seconds["commit"] = time.perf_counter() - commit_at
    wall_s = time.perf_counter() - started
    parts.settle(wall_s, change.matrix_s, change.solve_s)
    with db.session() as session:
        placed = _placed(session, jid, change.crews)
        landed = session.execute(
            text(
                "SELECT count(*) FROM plan_stops s JOIN crews c "
                "ON c.jurisdiction_id = s.jurisdiction_id AND c.id = s.crew_id "
                "WHERE s.jurisdiction_id = :jid AND c.code = :crew AND s.work_order_id = ANY(:ids)"
            ),
            {"jid": jid, "crew": picked.to_crew, "ids": picked.work_order_ids},
        ).scalar_one()
    return (
        Measure(
            wall_s=wall_s,
            matrix_s=change.matrix_s,
            solve_s=change.solve_s,
            parts=dict(parts.seconds),
            placed=placed,
            left_out=Counter(u.reason for u in change.left_out),
            note=(
                f"{len(picked.work_order_ids)} jobs {picked.from_crew} → {picked.to_crew}, "
                f"{landed} on its route"
            ),
        ),
        version,
    )


def replan_all(db: Database, routing: RoutingSettings, version: int) -> Measure:
    """The baseline of the move: make_plan of the whole day again, committed."""
    parts = Parts()
    started = time.perf_counter()
    with watched(parts), db.session() as session:
        jid = jurisdiction_id(session)
        change = commands.make_plan(
            session,
            jurisdiction_id=jid,
            day=DAY,
            routing=routing,
            actor=ACTOR,
            now=NOW,
            expected_version=version,
        )
        commit_at = time.perf_counter()
    parts.seconds["commit"] = time.perf_counter() - commit_at
    wall_s = time.perf_counter() - started
    parts.settle(wall_s, change.matrix_s, change.solve_s)
    with db.session() as session:
        placed = _placed(session, jid)
    return Measure(
        wall_s=wall_s,
        matrix_s=change.matrix_s,
        solve_s=change.solve_s,
        parts=dict(parts.seconds),
        placed=placed,
        left_out=Counter(u.reason for u in change.left_out),
    )


PHASES = (
    "day plan",
    "baseline: solve_day",
    "before: day plan",
    "before: lifecycle",
    "before: rows",
    "move",
    "baseline: full re-plan",
)


def run_once(
    srv: Server,
    template: str,
    routing: RoutingSettings,
    *,
    baseline_first: bool,
    lifecycle: bool = False,
    rows: bool = False,
) -> dict[str, Measure]:
    """One run on a fresh copy of the city. The day plan and its baseline take turns going
    first (the baseline stores nothing, so the plan sees the same work either way), so
    neither always meets the colder cache; the "before" plans go first or last in turn."""
    out: dict[str, Measure] = {}
    if not baseline_first:
        out["before: day plan"] = day_plan_before(srv, template, routing, "plan")
        if lifecycle:
            out["before: lifecycle"] = day_plan_before(srv, template, routing, "lifecycle")
        if rows:
            out["before: rows"] = day_plan_before(srv, template, routing, "rows")
    name = f"city_{uuid.uuid4().hex[:10]}"
    srv.create(name, template=template)
    db = Database.connect(srv.url(name), pool_size=2)
    try:
        if baseline_first:
            out["baseline: solve_day"] = raw_plan(db, routing)
        out["day plan"], version = day_plan(db, routing)
        if not baseline_first:
            out["baseline: solve_day"] = raw_plan(db, routing)
        picked = pick_move(db)
        out["move"], version = move(db, routing, picked, version)
        out["baseline: full re-plan"] = replan_all(db, routing, version)
    finally:
        db.dispose()
        srv.drop(name)
    if baseline_first:
        out["before: day plan"] = day_plan_before(srv, template, routing, "plan")
        if lifecycle:
            out["before: lifecycle"] = day_plan_before(srv, template, routing, "lifecycle")
        if rows:
            out["before: rows"] = day_plan_before(srv, template, routing, "rows")
    return out


def day_plan_before(srv: Server, template: str, routing: RoutingSettings, what: str) -> Measure:
    """The day plan as it was before (see ``day_plan``), on a fresh copy of its own."""
    name = f"city_{uuid.uuid4().hex[:10]}"
    srv.create(name, template=template)
    db = Database.connect(srv.url(name), pool_size=2)
    try:
        return day_plan(db, routing, before=what)[0]
    finally:
        db.dispose()
        srv.drop(name)


# --- the report ---------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def _reasons(measures: Sequence[Measure]) -> str:
    total = Counter[str]()
    for m in measures:
        total.update(m.left_out)
    median = sorted(sum(m.left_out.values()) for m in measures)[len(measures) // 2]
    if not total:
        return "0"
    share = ", ".join(f"{r} {n / len(measures):.0f}" for r, n in total.most_common())
    return f"{median} ({share})"


def report(results: dict[str, list[dict[str, Measure]]], routing: RoutingSettings) -> None:
    table = Table(title=f"City day on Monaco, {DAY.isoformat()}: median of runs")
    for col, justify in (
        ("provider", "left"),
        ("phase", "left"),
        ("median s", "right"),
        ("min–max s", "right"),
        ("placed", "right"),
        ("unassigned: median (mean by reason)", "left"),
        ("vs baseline", "right"),
        ("target", "right"),
        ("met", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    parts_table = Table(title="Where the time goes: median seconds per part")
    for col in (
        "provider",
        "phase",
        "wall",
        "matrix",
        "solve",
        "read work",
        "store rows",
        "route lines",
        "lifecycle",
        "commit",
        "other",
    ):
        parts_table.add_column(col, justify="left" if col in ("provider", "phase") else "right")
    lifecycle_table = Table(
        title="The lifecycle step of a day plan: placed work orders to scheduled (median)"
    )
    for col in (
        "provider",
        "phase",
        "lifecycle s",
        "work orders scheduled",
        "statements",
        "per scheduled job",
    ):
        lifecycle_table.add_column(col, justify="left" if col in ("provider", "phase") else "right")
    quality_table = Table(title="The plan's quality (median of runs)")
    for col in (
        "provider",
        "phase",
        "drive h",
        "route h (depart→back)",
        "jobs placed",
        "left out",
        "left out, due by the day's end",
    ):
        quality_table.add_column(col, justify="left" if col in ("provider", "phase") else "right")
    notes: list[str] = []
    for provider, runs in results.items():
        by_phase = {p: [r[p] for r in runs] for p in PHASES if all(p in r for r in runs)}
        med = {p: _median([m.wall_s for m in ms]) for p, ms in by_phase.items()}
        targets = {"day plan": DAY_TARGET_S, "move": MOVE_TARGET_S}
        baseline_of = {
            "day plan": "baseline: solve_day",
            "before: day plan": "baseline: solve_day",
            "before: lifecycle": "baseline: solve_day",
            "before: rows": "baseline: solve_day",
            "move": "baseline: full re-plan",
        }
        labels = {
            "day plan": "day plan: make_plan (stored)",
            "baseline: solve_day": "  baseline: solve_day (matrix+solve)",
            "before: day plan": "  before: pgRouting matrix, one 10 s search",
            "before: lifecycle": "  before: make_plan, one transition per job",
            "before: rows": "  before: make_plan, route rows and lines a crew at a time",
            "move": f"move {MOVE_JOBS} jobs: move_work_orders",
            "baseline: full re-plan": "  baseline: full re-plan (make_plan)",
        }
        for phase in by_phase:
            ms = by_phase[phase]
            walls = [m.wall_s for m in ms]
            target = targets.get(phase)
            ratio = f"{med[phase] / med[baseline_of[phase]]:.2f}×" if phase in baseline_of else ""
            table.add_row(
                provider,
                labels[phase],
                f"{med[phase]:.2f}",
                f"{min(walls):.2f}–{max(walls):.2f}",
                f"{_median([m.placed for m in ms]):.0f}",
                _reasons(ms),
                ratio,
                f"≤ {target:.0f} s" if target else "",
                ("[green]met[/green]" if med[phase] <= target else "[red]missed[/red]")
                if target
                else "",
            )
            # Each part's median over the runs; "store rows" and "other" are worked out per
            # run first, so they are medians of their own too.
            cells: list[float | None] = [
                _median([m.matrix_s for m in ms]),
                _median([m.solve_s for m in ms]),
            ]
            if phase == "baseline: solve_day":
                cells += [None] * 5 + [_median([m.wall_s - m.matrix_s - m.solve_s for m in ms])]
            else:
                cells += [
                    _median([m.parts.get(key, 0.0) for m in ms])
                    for key in ("read", "rows", "lines", "lifecycle", "commit", "other")
                ]
            parts_table.add_row(
                provider,
                labels[phase].strip(),
                f"{med[phase]:.2f}",
                *("" if c is None else f"{c:.2f}" for c in cells),
            )
            for m in ms[:1]:
                if m.note:
                    notes.append(f"{provider}, {phase}: {m.note} (run 1)")
            if phase in ("day plan", "before: day plan", "before: rows", "baseline: solve_day"):
                q = [m.quality for m in ms]
                quality_table.add_row(
                    provider,
                    labels[phase].strip(),
                    f"{_median([x.drive_h for x in q]):.2f}",
                    f"{_median([x.route_h for x in q]):.2f}",
                    f"{_median([x.placed for x in q]):.0f}",
                    f"{_median([x.left_out for x in q]):.0f}",
                    f"{_median([x.urgent_left_out for x in q]):.0f}",
                )
            if phase in ("day plan", "before: lifecycle"):
                lifecycle_table.add_row(
                    provider,
                    labels[phase].strip(),
                    f"{_median([m.parts.get('lifecycle', 0.0) for m in ms]):.2f}",
                    f"{_median([m.scheduled for m in ms]):.0f}",
                    f"{_median([m.lifecycle_statements for m in ms]):.0f}",
                    f"{_median([m.lifecycle_statements / max(m.scheduled, 1) for m in ms]):.2f}",
                )
    console.print(table)
    console.print(parts_table)
    console.print(quality_table)
    if any("before: lifecycle" in r for runs in results.values() for r in runs):
        console.print(lifecycle_table)
    for note in notes:
        console.print(f"  {note}")
    console.print(
        f"solver budgets: day plan {routing.time_limit_s:g} s (before: "
        f"{BEFORE_TIME_LIMIT_S:g} s), move re-plan "
        f"{routing.replan_time_limit_s:g} s; engine {routing.engine}, {routing.threads} threads; "
        "placed = stops on the plan after the phase (the move: on the two crews re-planned)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help="runs per provider (default 3)")
    parser.add_argument("--jobs", type=int, default=None, help="open work orders (default 1000)")
    parser.add_argument("--crews", type=int, default=None, help="crews, 5 skills (default 50)")
    parser.add_argument(
        "--time-limit", type=float, default=None, help="solver budget of the day plan, s"
    )
    parser.add_argument(
        "--replan-time-limit", type=float, default=None, help="solver budget of a move, s"
    )
    parser.add_argument("--quick", action="store_true", help="200 jobs, 10 crews, 1 run")
    parser.add_argument("--providers", default="road_network,straight_line", help="comma-separated")
    parser.add_argument("--seed", type=int, default=311)
    parser.add_argument(
        "--lifecycle-before",
        action="store_true",
        help="also time the plan with one lifecycle transition per job",
    )
    parser.add_argument(
        "--rows-before",
        action="store_true",
        help="also time the plan with route rows and lines written a crew at a time",
    )
    args = parser.parse_args(argv)
    jobs = args.jobs or (200 if args.quick else 1000)
    crews = args.crews or (10 if args.quick else 50)
    runs = args.runs or (1 if args.quick else 3)
    defaults = RoutingSettings()
    routing = RoutingSettings(
        time_limit_s=args.time_limit or defaults.time_limit_s,
        replan_time_limit_s=args.replan_time_limit or defaults.replan_time_limit_s,
    )
    if not PBF.is_file():
        print(f"no road data at {PBF}", file=sys.stderr)
        return 2
    providers = [p for p in args.providers.split(",") if p]
    console.print(
        f"CPUs: {os.cpu_count()}, load average now: "
        + ", ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    # A running service has imported its solvers long before it plans a day: so does the bench
    # (the engines are imported on first use, and importing one takes seconds on a busy box).
    import pyvrp  # noqa: F401
    import vroom  # noqa: F401

    started = time.perf_counter()
    lines = lines_from_osm(str(PBF))
    area = read_poly(POLY)
    city = generate(lines, area, jobs=jobs, crews=crews, seed=args.seed)
    console.print(
        f"generated {len(city.jobs)} jobs ({sum(j.appointment is not None for j in city.jobs)} "
        f"with an appointment), {len(city.crews)} crews, {len(city.wards)} wards from "
        f"{len(lines)} road lines in {time.perf_counter() - started:.1f} s"
    )
    results: dict[str, list[dict[str, Measure]]] = {}
    with server() as srv:
        base = f"city_tpl_{uuid.uuid4().hex[:8]}"
        templates = {"straight_line": base + "_sl", "road_network": base + "_rn"}
        made: list[str] = []
        try:
            srv.create(templates["straight_line"])
            made.append(templates["straight_line"])
            migrate.upgrade(srv.url(templates["straight_line"]))
            db = Database.connect(srv.url(templates["straight_line"]), pool_size=1)
            try:
                started = time.perf_counter()
                with db.session() as session:
                    store_city(session, city)
                console.print(
                    f"stored the city (incidents through open_incident, appointments through "
                    f"set_appointment) in {time.perf_counter() - started:.1f} s"
                )
            finally:
                db.dispose()
            if "road_network" in providers:
                srv.create(templates["road_network"], template=templates["straight_line"])
                made.append(templates["road_network"])
                db = Database.connect(srv.url(templates["road_network"]), pool_size=1)
                try:
                    started = time.perf_counter()
                    network = build_network(lines, speeds_kmh=routing.road_speeds_kmh)
                    with db.session() as session:
                        summary = dispatch_roads.load_network(
                            session,
                            jurisdiction_id=jurisdiction_id(session),
                            network=network,
                            source=PBF.name,
                        )
                    console.print(
                        f"loaded the road network: {summary.vertices} junctions, "
                        f"{summary.edges} segments ({summary.routable_edges} routable) in "
                        f"{time.perf_counter() - started:.1f} s"
                    )
                finally:
                    db.dispose()
            for provider in providers:
                results[provider] = []
                for k in range(runs):
                    measures = run_once(
                        srv,
                        templates[provider],
                        routing,
                        baseline_first=k % 2 == 0,
                        lifecycle=args.lifecycle_before,
                        rows=args.rows_before,
                    )
                    results[provider].append(measures)
                    console.print(
                        f"{provider} run {k + 1}: "
                        + ", ".join(f"{p} {m.wall_s:.2f} s" for p, m in measures.items())
                    )
        finally:
            for name in reversed(made):
                srv.drop(name)
    report(results, routing)
    console.print("load average now: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
