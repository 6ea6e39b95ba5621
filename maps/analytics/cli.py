"""``geo311 analytics``: keep the planner's summary tables current."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console

from geo311.kernel.runtime import open_database
from geo311.kernel.settings import get_settings
from layers import service as layers_service
from maps.analytics import rollup

app = typer.Typer(help="The planner's analytics.", no_args_is_help=True)
console = Console()


@app.command("refresh")
def refresh(
    jurisdiction: Annotated[
        str | None, typer.Option(help="Jurisdiction slug (default: every jurisdiction).")
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--all", help="Rebuild every day, not only the stale ones.")
    ] = False,
) -> None:
    """Take the pending changes into the summary tables and build the days not built yet.

    Safe to run at any time and as often as wished (cron, after an import): the ward table is
    exact without it, only slower for the days it has not taken in."""
    settings = get_settings()
    with open_database(settings) as db:
        with db.session() as session:
            found = layers_service.list_jurisdictions(session)
        chosen = [j for j in found if jurisdiction is None or j.slug == jurisdiction]
        if not chosen:
            console.print(f"[red]No jurisdiction {jurisdiction!r}.[/red]")
            raise typer.Exit(1)
        for j in chosen:
            started = time.perf_counter()
            with db.session() as session:
                done = rollup.refresh(session, jurisdiction_id=j.id, rebuild_all=rebuild)
            console.print(
                f"{j.slug}: {done.days} day(s) rebuilt, {done.changes} change(s) taken in, "
                f"{time.perf_counter() - started:.1f} s"
            )
