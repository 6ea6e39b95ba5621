"""Schema migrations (Alembic), configured in code so the repository needs no alembic.ini."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

_VERSIONS = Path(__file__).resolve().parents[1] / "migrations" / "versions"
_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)


def alembic_config(url: str) -> Config:
    """Return an Alembic config pointing at ``url`` and geo311's migration scripts."""
    # Alembic is imported on first use: a command that finds the schema current (see
    # is_current) never loads it, nor the migration environment's every model.
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "geo311:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Bring the database at ``url`` up to ``revision``."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def script_heads() -> set[str] | None:
    """Return the head revisions of the migration scripts, read from their text (not
    imported); None when a script does not read as expected."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in _VERSIONS.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(text), _DOWN_REVISION.search(text)
        if revision is None or down is None:
            return None
        try:
            rev = ast.literal_eval(revision.group(1).strip())
            parent = ast.literal_eval(down.group(1).strip())
        except (ValueError, SyntaxError):
            return None
        if not isinstance(rev, str):
            return None
        revisions.add(rev)
        if isinstance(parent, str):
            parents.add(parent)
        elif isinstance(parent, tuple | list):
            parents.update(str(p) for p in parent)
        elif parent is not None:
            return None
    return (revisions - parents) or None


def is_current(url: str) -> bool:
    """Return True when the database at ``url`` is at the scripts' heads already (an upgrade
    would do nothing); False when it is not, or when that cannot be told."""
    import psycopg
    from sqlalchemy.engine import make_url

    heads = script_heads()
    if heads is None:
        return False
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            found = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
            if found is None or not found[0]:
                return False
            stamped = {r for (r,) in conn.execute("SELECT version_num FROM alembic_version")}
    except psycopg.Error:
        return False
    return stamped == heads
