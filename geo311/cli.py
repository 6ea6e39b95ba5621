"""The geo311 command line: run the service, manage the database, load data, issue tokens."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.markup import escape

from dispatch import service as dispatch_service
from dispatch.cli import crews_app, plan, roads_app
from geo311.app import create_app
from geo311.kernel import migrate as migrations
from geo311.kernel.auth import service as auth_service
from geo311.kernel.auth.models import ROLES
from geo311.kernel.auth.passwords import Passwords
from geo311.kernel.database import Database
from geo311.kernel.embedded import EmbeddedCluster
from geo311.kernel.errors import AppError
from geo311.kernel.notify import runner as notify_runner
from geo311.kernel.notify.cli import app as notices_app
from geo311.kernel.notify.worker import WorkerGaveUp
from geo311.kernel.runtime import database_url, open_database
from geo311.kernel.settings import Settings, get_settings
from geo311.resident.dedup.cli import app as import_app
from geo311.resident.open311.cli import apikey_app
from geo311.user_cli import user_app
from layers import service as layers_service
from layers.cli import app as layers_app

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
app.add_typer(roads_app, name="roads")
app.add_typer(crews_app, name="crews")
app.command("plan")(plan)

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
) -> None:
    """Start the database (embedded unless GEO311_DB__URL is set), migrate, serve the API."""
    settings = get_settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    logging.basicConfig(level=logging.INFO)
    with open_database(settings) as db, notify_runner.embedded(settings, db) as extras:
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
            + f"  API docs          {base}/docs\n"
            f"  OpenAPI           {base}/openapi.json\n"
            f"  data              {settings.data_dir}\n"
            + "".join(f"  {line}\n" for line in extras.lines)
            + "Press Ctrl+C to stop (the embedded database stops with it).\n"
        )
        uvicorn.run(
            create_app(settings, db=db, worker=extras.worker),
            host=settings.host,
            port=settings.port,
            log_level="info",
            # Pages' live streams stay open: Ctrl+C ends them after this grace.
            timeout_graceful_shutdown=3,
        )


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs at once (default: GEO311_NOTIFY__WORKER_CONCURRENCY)")
    ] = None,
) -> None:
    """Deliver notices (email, SMS, webhooks) from the job queue until Ctrl+C.

    Exits 0 when stopped (SIGINT, SIGTERM); 1 when the database stayed unreachable for
    GEO311_NOTIFY__WORKER_GIVE_UP_S (or could not be opened at start), so a supervisor that
    restarts on failure restarts it."""
    logging.basicConfig(level=logging.INFO)
    settings = get_settings()
    try:
        with open_database(settings) as db:
            notify_runner.run_worker(settings, db, concurrency=concurrency)
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


if __name__ == "__main__":
    app()
