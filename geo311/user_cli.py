"""``geo311 user``: staff accounts that sign in to pages (passwords, crews, disabling)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dispatch import service as dispatch_service
from geo311.kernel.auth import accounts
from geo311.kernel.auth.models import ROLES
from geo311.kernel.auth.passwords import Passwords
from geo311.kernel.errors import AppError
from geo311.kernel.runtime import open_database
from geo311.kernel.settings import get_settings
from layers import service as layers_service

user_app = typer.Typer(help="Staff accounts that sign in to pages.", no_args_is_help=True)
console = Console()

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input"
    ),
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]{escape(message)}[/red]")
    return typer.Exit(code)


def _read_password(*, from_stdin: bool, name: str, passwords: Passwords) -> str:
    """Return a new password, from stdin or asked twice on a terminal; check it is acceptable."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = typer.prompt(
            f"New password for {name}", hide_input=True, confirmation_prompt=True
        )
    else:
        raise _fail("No terminal to ask for the password on: give --password-stdin.", 2)
    try:
        passwords.check_new(password, name=name)
    except AppError as exc:
        raise _fail(exc.detail, 2) from exc
    return password


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Option(help="Staff user name (what they sign in with)")],
    role: Annotated[str, typer.Option(help="crew, dispatcher, planner or admin")],
    crew: Annotated[
        str | None, typer.Option(help="Crew code: a crew user belongs to that crew")
    ] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Create a staff user who signs in to pages with a password (asked twice on a terminal).

    A crew user acts only on its crew's work: give --crew (or set it later with
    PUT /api/v1/staff/NAME/crew, or a crews file); without one it can read but act on nothing.
    """
    settings = get_settings()
    if role not in ROLES:
        raise _fail(f"--role must be one of {', '.join(ROLES)}", 2)
    if crew is not None and role != "crew":
        raise _fail("--crew is for crew users (--role crew)", 2)
    passwords = Passwords(settings.signin)
    password = _read_password(from_stdin=password_stdin, name=name, passwords=passwords)
    with open_database(settings) as db, db.session() as session:
        jurisdiction = layers_service.get_jurisdiction(session, settings.jurisdiction)
        if crew is not None and jurisdiction is None:
            raise _fail(f"No jurisdiction {settings.jurisdiction!r}, so no crews.")
        try:
            accounts.create_user(
                session,
                name=name,
                role=role,
                password_hash=passwords.hash(password),
                jurisdiction_id=jurisdiction.id if jurisdiction else None,
            )
            if crew is not None and jurisdiction is not None:
                dispatch_service.set_membership(
                    session, jurisdiction_id=jurisdiction.id, user_name=name.strip(), crew_code=crew
                )
        except AppError as exc:
            # Leaving the block with an error rolls back: no user half made.
            raise _fail(exc.detail) from exc
    on_crew = f" on crew {crew}" if crew else ""
    console.print(f"Created {escape(name.strip())} ({role}{on_crew}); they sign in at /login.")


@user_app.command("passwd")
def user_passwd(
    name: Annotated[str, typer.Option(help="Staff user name")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Set a staff user's password (also for a user made by `token create`); signs them out."""
    settings = get_settings()
    passwords = Passwords(settings.signin)
    password = _read_password(from_stdin=password_stdin, name=name, passwords=passwords)
    with open_database(settings) as db, db.session() as session:
        try:
            ended = accounts.set_password(
                session, name=name, password_hash=passwords.hash(password)
            )
        except AppError as exc:
            raise _fail(exc.detail) from exc
    console.print(f"Password set for {escape(name)}; {ended} session(s) ended.")


@user_app.command("disable")
def user_disable(name: Annotated[str, typer.Option(help="Staff user name")]) -> None:
    """Disable a staff user: their sessions end now and their API tokens stop working."""
    with open_database(get_settings()) as db, db.session() as session:
        try:
            ended = accounts.disable_user(session, name=name, now=datetime.now(UTC))
        except AppError as exc:
            raise _fail(exc.detail) from exc
    console.print(
        f"Disabled {escape(name)}: {ended} session(s) ended, and their tokens stop working."
    )


@user_app.command("enable")
def user_enable(name: Annotated[str, typer.Option(help="Staff user name")]) -> None:
    """Let a disabled staff user sign in again (their unrevoked tokens work again too)."""
    with open_database(get_settings()) as db, db.session() as session:
        try:
            accounts.enable_user(session, name=name)
        except AppError as exc:
            raise _fail(exc.detail) from exc
    console.print(f"Enabled {escape(name)}.")


@user_app.command("list")
def user_list() -> None:
    """List staff users: role, crew, whether they can sign in, live sessions and tokens."""
    settings = get_settings()
    with open_database(settings) as db, db.session() as session:
        jurisdiction = layers_service.get_jurisdiction(session, settings.jurisdiction)
        rows = accounts.list_accounts(session, now=datetime.now(UTC))
        crews = {
            r.crew_id: dispatch_service.crew_code_of(
                session, jurisdiction_id=jurisdiction.id, crew_id=r.crew_id
            )
            for r in rows
            if jurisdiction is not None and r.crew_id is not None
        }
    table = Table("name", "role", "crew", "password", "status", "sessions", "tokens")
    for r in rows:
        table.add_row(
            escape(r.name),
            r.role,
            escape(crews.get(r.crew_id) or "") if r.crew_id is not None else "",
            "set" if r.has_password else "none",
            f"disabled {r.disabled_at:%Y-%m-%d}" if r.disabled_at else "active",
            str(r.live_sessions),
            str(r.live_tokens),
        )
    console.print(table)
