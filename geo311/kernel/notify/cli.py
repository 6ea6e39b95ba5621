"""`geo311 notices …`: see the outbox and owe again what did not get through."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from geo311.kernel.notify import service as notify_service
from geo311.kernel.runtime import open_database
from geo311.kernel.settings import get_settings

app = typer.Typer(help="Notices to residents and webhooks: the outbox.", no_args_is_help=True)
console = Console()


@app.command("status")
def status() -> None:
    """Count notices by delivery status."""
    with open_database(get_settings()) as db, db.session() as session:
        counts = notify_service.status_counts(session)
    table = Table("status", "notices")
    for name, count in sorted(counts.items()):
        table.add_row(name, str(count))
    console.print(table)


@app.command("requeue")
def requeue(
    status: Annotated[
        list[str],
        typer.Option(help="Statuses to owe again: failed, uncertain, skipped"),
    ],
) -> None:
    """Owe notices again (e.g. after fixing the SMTP settings). Requeueing 'uncertain' ones
    may deliver some twice: they were handed over and the answer was lost."""
    allowed = {"failed", "uncertain", "skipped"}
    bad = [s for s in status if s not in allowed]
    if bad:
        console.print(f"[red]--status must be among {', '.join(sorted(allowed))}[/red]")
        raise typer.Exit(2)
    with open_database(get_settings()) as db, db.session() as session:
        count = notify_service.requeue(session, statuses=status)
    console.print(f"{count} notice(s) owed again; a worker will send them.")
