"""``geo311 apikey``: API keys for the applications that POST Open311 requests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from geo311.kernel.runtime import open_database
from geo311.kernel.settings import Settings, get_settings
from geo311.resident.open311 import service
from layers import service as layers_service

apikey_app = typer.Typer(
    help="Open311 API keys: one per application, revocable; only a hash is kept.",
    no_args_is_help=True,
)
console = Console()


def _jurisdiction_id(session: Session, settings: Settings) -> int:
    jurisdiction = layers_service.get_jurisdiction(session, settings.jurisdiction)
    if jurisdiction is None:
        console.print(
            f"[red]Jurisdiction {settings.jurisdiction!r} is not loaded: "
            "load it (e.g. `geo311 demo load`) first.[/red]"
        )
        raise typer.Exit(1)
    return jurisdiction.id


@apikey_app.command("create")
def create(
    app_name: Annotated[str, typer.Option("--app", help="The application the key is for")],
) -> None:
    """Issue a key for an application; it is printed once and only its hash is kept."""
    settings = get_settings()
    if not app_name.strip():
        console.print("[red]--app needs a name.[/red]")
        raise typer.Exit(2)
    with open_database(settings) as db, db.session() as session:
        key = service.create_api_key(
            session, jurisdiction_id=_jurisdiction_id(session, settings), application=app_name
        )
    console.print(key, soft_wrap=True)


@apikey_app.command("revoke")
def revoke(
    key: Annotated[str | None, typer.Argument(help="The key to revoke")] = None,
    app_name: Annotated[
        str | None, typer.Option("--app", help="Revoke every live key of this application")
    ] = None,
) -> None:
    """Revoke one key, or every live key of an application (--app)."""
    if (key is None) == (app_name is None):
        console.print("[red]Give either a KEY or --app NAME.[/red]")
        raise typer.Exit(2)
    settings = get_settings()
    with open_database(settings) as db, db.session() as session:
        revoked = service.revoke_api_keys(
            session,
            jurisdiction_id=_jurisdiction_id(session, settings),
            now=datetime.now(UTC),
            key=key,
            application=app_name,
        )
    if not revoked:
        console.print("[red]No live key matches.[/red]")
        raise typer.Exit(1)
    console.print(f"Revoked {revoked} key{'s' if revoked != 1 else ''}.")


@apikey_app.command("list")
def list_keys() -> None:
    """List the keys: application, the key's first characters, when issued, used, revoked."""
    settings = get_settings()
    with open_database(settings) as db, db.session() as session:
        keys = service.list_api_keys(session, jurisdiction_id=_jurisdiction_id(session, settings))
        table = Table("application", "key", "created", "last used", "revoked")
        for row in keys:
            table.add_row(
                row.application,
                row.key_prefix + "…",
                f"{row.created_at:%Y-%m-%d %H:%M}",
                f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "",
                f"{row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "",
            )
    console.print(table)
