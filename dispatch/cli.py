"""``geo311 roads …`` and ``geo311 crews …``: load a road network, manage crews from a file."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, Field, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from dispatch import assignment, roads, service
from dispatch.dayplans import commands, views
from dispatch.network import build_network, lines_from_osm
from dispatch.schemas import CrewIn, ServiceTimeIn, SkillRuleIn
from geo311.kernel.errors import AppError
from geo311.kernel.runtime import open_database
from geo311.kernel.settings import get_settings
from layers import service as layers_service

roads_app = typer.Typer(help="The road network that travel times come from.", no_args_is_help=True)
crews_app = typer.Typer(help="Crews, skills and assignment rules.", no_args_is_help=True)
console = Console()

JurisdictionOpt = Annotated[
    str | None,
    typer.Option(
        "--jurisdiction",
        help="Slug of the jurisdiction. Default: the GEO311_JURISDICTION setting.",
        show_default=False,
    ),
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]{escape(message)}[/red]")
    return typer.Exit(code)


@contextmanager
def _session(slug: str | None) -> Iterator[tuple[Session, int]]:
    """Yield a session in a transaction (committed on success) and the jurisdiction's id."""
    settings = get_settings()
    slug = slug or settings.jurisdiction
    with open_database(settings) as db, db.session() as session:
        jurisdiction = layers_service.get_jurisdiction(session, slug)
        if jurisdiction is None:
            raise _fail(f"No jurisdiction {slug!r}: load its wards first (geo311 layers wards).")
        try:
            yield session, jurisdiction.id
        except AppError as exc:
            details = "".join(f"\n  {e.field}: {e.message}" for e in exc.errors)
            raise _fail(f"{exc.detail}{details}") from exc


@roads_app.command("load")
def roads_load(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="OpenStreetMap extract: .osm.pbf, .osm"),
    ],
    jurisdiction: JurisdictionOpt = None,
) -> None:
    """Build the routable network from an OSM extract (replacing any loaded before)."""
    speeds = get_settings().routing.road_speeds_kmh
    started = time.perf_counter()
    with console.status(f"Reading roads from {file.name}…"):
        try:
            lines = lines_from_osm(str(file))
        except RuntimeError as exc:  # osmium: not an OSM file, or a truncated one
            raise _fail(f"Cannot read {file}: {exc}", 2) from exc
    if not lines:
        raise _fail(f"{file} holds no drivable roads (highway=* ways).", 2)
    network = build_network(lines, speeds_kmh=speeds)
    with _session(jurisdiction) as (session, jid):
        with console.status(f"Loading {len(network.edges)} road segments into PostGIS…"):
            summary = roads.load_network(
                session, jurisdiction_id=jid, network=network, source=file.name
            )
        counts = roads.highway_counts(session, jurisdiction_id=jid)
    table = Table(title=f"Road network from {file.name}")
    table.add_column("highway")
    table.add_column("segments", justify="right")
    for highway, n in counts.items():
        table.add_row(highway, str(n))
    console.print(table)
    console.print(
        f"[green]Loaded[/green] {summary.vertices} junctions, {summary.edges} segments "
        f"({summary.routable_edges} in the connected core that jobs snap to), top speed "
        f"{summary.max_speed_kmh:.0f} km/h, in {time.perf_counter() - started:.1f} s."
    )


@roads_app.command("status")
def roads_status(jurisdiction: JurisdictionOpt = None) -> None:
    """Say which road network is loaded, if any."""
    with _session(jurisdiction) as (session, jid):
        network = roads.get_network(session, jurisdiction_id=jid)
        if network is None:
            console.print("No road network: travel times are straight-line estimates.")
            return
        console.print(
            f"{network.source}: {network.vertices} junctions, {network.edges} segments "
            f"({network.routable_edges} routable), loaded {network.loaded_at:%Y-%m-%d %H:%M}."
        )


class CrewFile(BaseModel):
    """What ``geo311 crews load`` reads: any of skills, crews, skill rules, service times."""

    skills: dict[str, str] = Field(default_factory=dict, description="code → name")
    crews: list[CrewIn] = Field(default_factory=list)
    skill_rules: list[SkillRuleIn] | None = None
    service_times_s: dict[str, int | ServiceTimeIn] = Field(
        default_factory=dict,
        description="category → seconds on site, or {service_s, access_start, access_end, demand}",
    )


@crews_app.command("load")
def crews_load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A JSON file")],
    jurisdiction: JurisdictionOpt = None,
) -> None:
    """Create or replace crews (by code), skills, the skill rules and service times from JSON.

    The file is an object with any of: "skills" {code: name}, "crews" [crew …] (as the API
    takes them; a crew's "staff" [user name …] are the crew users who act for it, and each
    leaves any other crew), "skill_rules" [{category_code, asset_type, skill_code} …] (replaces all
    rules), "service_times_s" {category: seconds, or {service_s, access_start, access_end,
    demand}}. All or nothing: one bad entry loads none.
    """
    try:
        raw: Any = json.loads(file.read_text())
        data = CrewFile.model_validate(raw)
    except (ValueError, ValidationError) as exc:
        raise _fail(f"{file} is not a valid crew file: {exc}", 2) from exc
    with _session(jurisdiction) as (session, jid):
        for code, name in data.skills.items():
            service.put_skill(session, jurisdiction_id=jid, code=code, name=name)
        existing = {c.code for c in service.list_crews(session, jurisdiction_id=jid)}
        for crew in data.crews:
            if crew.code in existing:
                service.replace_crew(session, jurisdiction_id=jid, code=crew.code, data=crew)
            else:
                service.create_crew(session, jurisdiction_id=jid, data=crew)
        if data.skill_rules is not None:
            service.replace_skill_rules(session, jurisdiction_id=jid, rules_in=data.skill_rules)
        for category, given in data.service_times_s.items():
            times = given if isinstance(given, ServiceTimeIn) else ServiceTimeIn(service_s=given)
            service.put_service_time(
                session,
                jurisdiction_id=jid,
                category_code=category,
                service_s=times.service_s,
                access=(times.access_start, times.access_end)
                if times.access_start and times.access_end
                else None,
                demand=times.demand,
            )
    console.print(
        f"[green]Loaded[/green] {len(data.skills)} skills, {len(data.crews)} crews"
        + (f", {len(data.skill_rules)} skill rules" if data.skill_rules is not None else "")
        + f", {len(data.service_times_s)} service times."
    )


@crews_app.command("list")
def crews_list(jurisdiction: JurisdictionOpt = None) -> None:
    """List the crews: shift, depot, skills and territory."""
    with _session(jurisdiction) as (session, jid):
        crews = service.list_crews(session, jurisdiction_id=jid)
    table = Table()
    for column in ("code", "name", "shift", "depot", "skills", "wards", "staff", "active"):
        table.add_column(column)
    for c in crews:
        table.add_row(
            c.code,
            c.name,
            f"{c.shift_start:%H:%M}-{c.shift_end:%H:%M}",
            c.depot.name or f"{c.depot.lon:.5f}, {c.depot.lat:.5f}",
            ", ".join(c.skills),
            ", ".join(c.territory),
            ", ".join(c.staff),
            "yes" if c.active else "no",
        )
    console.print(table)


@crews_app.command("remove")
def crews_remove(code: str, jurisdiction: JurisdictionOpt = None) -> None:
    """Delete a crew."""
    with _session(jurisdiction) as (session, jid):
        service.delete_crew(session, jurisdiction_id=jid, code=code)
    console.print(f"Removed crew {code!r}.")


def plan(
    day: Annotated[
        str, typer.Option("--date", help="The day to plan, YYYY-MM-DD (local). Default: today.")
    ] = "",
    time_limit_s: Annotated[
        float | None,
        typer.Option("--time-limit", help="Search seconds (default: GEO311_ROUTING__TIME_LIMIT_S)"),
    ] = None,
    jurisdiction: JurisdictionOpt = None,
) -> None:
    """Plan a day: every crew working then gets an ordered route with ETAs; the work that does
    not fit is listed with the reason."""
    settings = get_settings()
    try:
        when = date.fromisoformat(day) if day else date.today()
    except ValueError as exc:
        raise _fail(f"--date must be YYYY-MM-DD, not {day!r}.", 2) from exc
    with _session(jurisdiction) as (session, jid):
        started = time.perf_counter()
        with console.status(f"Planning {when.isoformat()}…"):
            change = commands.make_plan(
                session,
                jurisdiction_id=jid,
                day=when,
                routing=settings.routing,
                actor="cli",
                time_limit_s=time_limit_s,
            )
        view = views.plan_view(session, jurisdiction_id=jid, day=when)
        took = time.perf_counter() - started
    table = Table(title=f"Plan of {when.isoformat()} (version {view.version})")
    for column in ("crew", "stops", "leaves", "back", "driving", "km"):
        table.add_column(column, justify="left" if column == "crew" else "right")
    for r in view.routes:
        table.add_row(
            escape(r.crew_code),
            str(len(r.stops)),
            r.depart.strftime("%H:%M"),
            r.back.strftime("%H:%M"),
            f"{r.travel_s // 60} min",
            "" if r.distance_m is None else f"{r.distance_m / 1000:.1f}",
        )
    console.print(table)
    if view.left_out:
        left = Table(title=f"Left for another day ({len(view.left_out)})")
        for column in ("work order", "category", "due", "why"):
            left.add_column(column)
        for u in view.left_out:
            left.add_row(
                str(u.work_order_id),
                escape(u.category_code),
                u.due_at.strftime("%Y-%m-%d %H:%M"),
                escape(u.detail),
            )
        console.print(left)
    console.print(
        f"{sum(len(r.stops) for r in view.routes)} stops on {len(view.routes)} routes, "
        f"{len(view.left_out)} left out; {view.engine}, travel times from "
        f"{view.matrix_provider} ({change.matrix_s:.1f} s), search {change.solve_s:.1f} s, "
        f"{took:.1f} s in all."
    )


@crews_app.command("assign")
def crews_assign(jurisdiction: JurisdictionOpt = None) -> None:
    """Try the assignment rules again on the dispatcher's queue and on open work with no crew
    (e.g. imported backlog); work a dispatcher queued on purpose is left alone."""
    settings = get_settings()
    with _session(jurisdiction) as (session, jid), console.status("Assigning…"):
        summary = assignment.assign_queued(
            session,
            jurisdiction_id=jid,
            actor=f"{assignment.ACTOR} (geo311 crews assign)",
            default_service_s=settings.routing.default_service_s,
        )
    table = Table(title=f"{summary.examined} work orders through the rules")
    table.add_column("outcome")
    table.add_column("work orders", justify="right")
    for code, n in summary.assigned.items():
        table.add_row(f"assigned to {escape(code)}", str(n))
    for reason, n in summary.queued.items():
        table.add_row(f"waiting: {escape(reason)}", str(n))
    if summary.skipped:
        table.add_row("skipped (moved meanwhile)", str(summary.skipped))
    console.print(table)
    console.print(
        f"[green]Assigned[/green] {sum(summary.assigned.values())}; "
        f"{sum(summary.queued.values())} wait in the queue (GET /api/v1/dispatch/queue)."
    )
