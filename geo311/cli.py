"""The geo311 command line: run the service, manage the database, load data, issue tokens."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dispatch import service as dispatch_service
from dispatch.cli import crews_app, plan, roads_app
from geo311.app import create_app
from geo311.flows import analytics as analytics_flow
from geo311.flows import categories as category_flow
from geo311.kernel import migrate as migrations
from geo311.kernel.auth import service as auth_service
from geo311.kernel.auth.models import ROLES
from geo311.kernel.auth.passwords import Passwords
from geo311.kernel.database import Database
from geo311.kernel.embedded import EmbeddedCluster
from geo311.kernel.errors import AppError, FieldError, ValidationFailed
from geo311.kernel.notify import runner as notify_runner
from geo311.kernel.notify.cli import app as notices_app
from geo311.kernel.notify.worker import WorkerGaveUp
from geo311.kernel.runtime import database_url, open_database
from geo311.kernel.settings import Settings, get_settings
from geo311.resident.dedup.cli import app as import_app
from geo311.resident.dedup.cli import dedup_app
from geo311.resident.open311.cli import apikey_app
from geo311.user_cli import user_app
from layers import service as layers_service
from layers.cli import app as layers_app
from layers.cli import jurisdictions_app
from maps.analytics.cli import app as analytics_app

app = typer.Typer(help="geo311: 311 field operations on PostGIS.", no_args_is_help=True)
db_app = typer.Typer(help="The embedded PostgreSQL cluster and migrations.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo city.", no_args_is_help=True)
token_app = typer.Typer(help="Staff API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")
app.add_typer(layers_app, name="layers")
app.add_typer(apikey_app, name="apikey")
app.add_typer(notices_app, name="notices")
app.add_typer(import_app, name="import")
app.add_typer(dedup_app, name="dedup")
app.add_typer(roads_app, name="roads")
app.add_typer(crews_app, name="crews")
app.command("plan")(plan)
categories_app = typer.Typer(
    help="Service categories, whole: work orders', dispatch's and Open311's parts.",
    no_args_is_help=True,
)
app.add_typer(categories_app, name="categories")
app.add_typer(jurisdictions_app, name="jurisdictions")
app.add_typer(analytics_app, name="analytics")

console = Console()


def _load_demo(db: Database, settings: Settings, *, quiet: bool = False) -> None:
    from fixtures.load import load_demo

    summary = load_demo(db, slug=settings.jurisdiction)
    if summary.loaded:
        console.print(
            f"[green]Loaded the demo city[/green] as {settings.jurisdiction!r}: {summary}"
        )
    elif summary.dispatch_added:
        console.print(f"[green]Completed the demo city[/green]: {summary}")
    elif not quiet:
        console.print(f"Jurisdiction {settings.jurisdiction!r} already loaded; demo not reloaded.")


def _demo_signins(db: Database, settings: Settings) -> str:
    """Return the banner lines of the demo accounts (one per role): demo city on the embedded
    database only, never a real city or an external database."""
    if settings.db.url is not None:
        return ""
    from fixtures.demo_users import ensure_demo_signins

    usable = ensure_demo_signins(
        db, slug=settings.jurisdiction, passwords=Passwords(settings.signin)
    )
    return "".join(
        escape(f"    demo {d.role:<10}  name {d.name:<16} password {d.password}")
        + (f"  (crew {d.crew})" if d.crew else "")
        + "\n"
        for d in usable
    )


@app.command()
def run(
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on", envvar="PORT")] = None,
    demo: Annotated[bool, typer.Option(help="Load the demo city into an empty database")] = True,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes serving the API, each with its own connection pool "
            "(GEO311_DB__POOL_SIZE each); the notice worker runs once, in this process",
        ),
    ] = 1,
) -> None:
    """Start the database (embedded unless GEO311_DB__URL is set), migrate, serve the API.

    With ``--workers N`` (N > 1) the API is served by N processes sharing the port; this
    process keeps the database, migrations, the demo city and the notice worker."""
    settings = get_settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    logging.basicConfig(level=logging.INFO)
    with (
        open_database(settings) as db,
        notify_runner.embedded(
            settings, db, tasks=[analytics_flow.worker_tasks(db, settings)]
        ) as extras,
    ):
        signins = ""
        if demo:
            # Loads into an empty database; completes a demo city an older geo311 loaded.
            _load_demo(db, settings, quiet=True)
            signins = _demo_signins(db, settings)
        base = f"http://{settings.host}:{settings.port}"
        console.print(
            "\n[bold]geo311 is up[/bold]\n"
            f"  report a problem  {base}/report\n"
            f"  staff sign-in     {base}/login\n"
            + signins
            + f"  map of reports    {base}/map\n"
            + f"  planner           {base}/planner\n"
            + f"  dispatcher's map  {base}/dispatch\n"
            + f"  crew's day        {base}/crew\n"
            + f"  API docs          {base}/docs\n"
            f"  OpenAPI           {base}/openapi.json\n"
            f"  data              {settings.data_dir}\n"
            + "".join(f"  {line}\n" for line in extras.lines)
            + "Press Ctrl+C to stop (the embedded database stops with it).\n"
        )
        if workers > 1:
            # Each serving process builds its own app and pool from the environment (the
            # same settings), pointed at this process's database, already migrated.
            os.environ["GEO311_DB__URL"] = db.engine.url.render_as_string(hide_password=False)
            uvicorn.run(
                "geo311.app:create_served_app",
                factory=True,
                workers=workers,
                # A serving process imports the whole app before it answers the supervisor's
                # first ping; on a busy machine that takes longer than uvicorn's 5 s default,
                # and it would be killed and restarted for ever (30 s wall to import on a
                # loaded 2-core machine was seen).
                timeout_worker_healthcheck=300,
                host=settings.host,
                port=settings.port,
                log_level="info",
                access_log=settings.access_log,
            )
            return
        uvicorn.run(
            create_app(settings, db=db, worker=extras.worker),
            host=settings.host,
            port=settings.port,
            log_level="info",
            access_log=settings.access_log,
            # Pages' live streams stay open: Ctrl+C ends them after this grace.
            timeout_graceful_shutdown=3,
        )


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs at once (default: GEO311_NOTIFY__WORKER_CONCURRENCY)")
    ] = None,
) -> None:
    """Deliver notices (email, SMS, webhooks) from the job queue, and refresh the planner's
    summaries every GEO311_ANALYTICS__REFRESH_CRON, until Ctrl+C.

    Exits 0 when stopped (SIGINT, SIGTERM); 1 when the database stayed unreachable for
    GEO311_NOTIFY__WORKER_GIVE_UP_S (or could not be opened at start), so a supervisor that
    restarts on failure restarts it."""
    logging.basicConfig(level=logging.INFO)
    settings = get_settings()
    try:
        with open_database(settings) as db:
            notify_runner.run_worker(
                settings,
                db,
                concurrency=concurrency,
                tasks=[analytics_flow.worker_tasks(db, settings)],
            )
    except WorkerGaveUp as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


@db_app.command("migrate")
def db_migrate() -> None:
    """Bring the database schema up to date."""
    with database_url(get_settings()) as url:
        migrations.upgrade(url)
    console.print("[green]Schema is up to date.[/green]")


@db_app.command("start")
def db_start() -> None:
    """Start the embedded cluster and leave it running; print its URL."""
    settings = get_settings()
    with database_url(settings, keep_running=True) as url:
        migrations.upgrade(url)
        console.print(url)


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster."""
    EmbeddedCluster(get_settings().cluster_dir).stop()
    console.print("Stopped.")


@db_app.command("status")
def db_status() -> None:
    """Say whether the embedded cluster is running, and where it lives."""
    settings = get_settings()
    cluster = EmbeddedCluster(settings.cluster_dir)
    state = "running" if cluster.is_running() else "stopped"
    console.print(f"{settings.cluster_dir}: {state}")


@demo_app.command("load")
def demo_load() -> None:
    """Load the demo city (does nothing if the jurisdiction is already there)."""
    settings = get_settings()
    with open_database(settings) as db:
        _load_demo(db, settings)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="Staff user name (created if new)")],
    role: Annotated[str, typer.Option(help="crew, dispatcher, planner or admin")],
    label: Annotated[str, typer.Option(help="What the token is for")] = "",
    crew: Annotated[
        str | None,
        typer.Option(help="Crew code: the crew user belongs to it (and leaves any other)"),
    ] = None,
) -> None:
    """Issue a bearer token for a staff user; it is printed once and only its hash is kept.

    A crew user acts only on its crew's work: give ``--crew`` (or set it later with
    ``PUT /api/v1/staff/NAME/crew``); without one it can read but act on nothing.
    """
    settings = get_settings()
    if role not in ROLES:
        console.print(f"[red]--role must be one of {', '.join(ROLES)}[/red]")
        raise typer.Exit(2)
    if crew is not None and role != "crew":
        console.print("[red]--crew is for crew users (--role crew)[/red]")
        raise typer.Exit(2)
    with open_database(settings) as db, db.session() as session:
        jurisdiction = layers_service.get_jurisdiction(session, settings.jurisdiction)
        if crew is not None and jurisdiction is None:
            console.print(f"[red]No jurisdiction {settings.jurisdiction!r}, so no crews.[/red]")
            raise typer.Exit(1)
        token = auth_service.create_token(
            session,
            name=name,
            role=role,
            label=label,
            jurisdiction_id=jurisdiction.id if jurisdiction else None,
        )
        if crew is not None and jurisdiction is not None:
            try:
                dispatch_service.set_membership(
                    session, jurisdiction_id=jurisdiction.id, user_name=name, crew_code=crew
                )
            except AppError as exc:
                # Leaving the block with an error rolls back: no token for a user who is not
                # on the crew it was asked to be on.
                console.print(f"[red]{escape(exc.detail)}[/red]")
                raise typer.Exit(1) from exc
    console.print(token, soft_wrap=True)


@token_app.command("revoke")
def token_revoke(token: str) -> None:
    """Revoke a token."""
    with open_database(get_settings()) as db, db.session() as session:
        revoked = auth_service.revoke_token(session, token=token)
    if not revoked:
        console.print("[red]No live token matches.[/red]")
        raise typer.Exit(1)
    console.print("Revoked.")


@categories_app.command("load")
def categories_load(
    file: Annotated[
        Path,
        typer.Argument(
            help="YAML or JSON: a list of categories (or {categories: [...]}), each with code, "
            "name, group, sla_hours and optionally description, asset_type, calendar, "
            "snap_radius_m, active, dedup {enabled, radius_m, threshold, open_window_h, "
            "reopen_window_h}, service {service_s, demand, access_start, access_end}, skills "
            "[...], attributes [{code, datatype, description, order, required, choices}]."
        ),
    ],
    jurisdiction: Annotated[
        str | None,
        typer.Option(help="Slug of the jurisdiction. Default: the GEO311_JURISDICTION setting."),
    ] = None,
) -> None:
    """Create or update categories from a file: all of them or, on any problem, none."""
    settings = get_settings()
    slug = jurisdiction or settings.jurisdiction
    try:
        specs = category_flow.read_file(file)
        with open_database(settings) as db, db.session() as session:
            found = layers_service.get_jurisdiction(session, slug)
            if found is None:
                console.print(
                    f"[red]No jurisdiction {slug!r}: create it with "
                    "`geo311 jurisdictions create`.[/red]"
                )
                raise typer.Exit(1)
            result = category_flow.load_categories(session, jurisdiction_id=found.id, specs=specs)
    except ValidationFailed as exc:
        console.print(f"[red]{escape(file.name)}: nothing stored.[/red]")
        for error in exc.errors or [FieldError("file", exc.detail)]:
            console.print(f"[red]  {escape(error.field)}: {escape(error.message)}[/red]")
        raise typer.Exit(2) from exc
    except AppError as exc:
        console.print(f"[red]{escape(exc.detail)}[/red]")
        raise typer.Exit(2) from exc
    for label, codes in (
        ("created", result.created),
        ("updated", result.updated),
        ("unchanged", result.unchanged),
    ):
        if codes:
            console.print(f"{label} ({len(codes)}): {escape(', '.join(codes))}")


@categories_app.command("list")
def categories_list(
    jurisdiction: Annotated[
        str | None,
        typer.Option(help="Slug of the jurisdiction. Default: the GEO311_JURISDICTION setting."),
    ] = None,
) -> None:
    """List the categories: code, group, SLA, calendar, dedup radius, service time, skills."""
    settings = get_settings()
    slug = jurisdiction or settings.jurisdiction
    with open_database(settings) as db, db.session() as session:
        found = layers_service.get_jurisdiction(session, slug)
        if found is None:
            console.print(f"[red]No jurisdiction {slug!r}.[/red]")
            raise typer.Exit(1)
        specs = category_flow.list_category_specs(session, jurisdiction_id=found.id)
    table = Table(title=f"Categories of {slug}")
    for col in ("code", "name", "group", "SLA h", "calendar", "dedup m", "on site", "skills"):
        table.add_column(col)
    for c in specs:
        table.add_row(
            escape(c.code) + ("" if c.active else " (inactive)"),
            escape(c.name),
            escape(c.group),
            f"{c.sla_hours:g}",
            escape(c.calendar or "—"),
            f"{c.dedup.radius_m:g}" if c.dedup.enabled else "off",
            f"{c.service.service_s // 60} min" if c.service else "—",
            escape(", ".join(c.skills or ())),
        )
    console.print(table)


if __name__ == "__main__":
    app()
