"""Schema migrations (Alembic), configured in code so the repository needs no alembic.ini."""

from __future__ import annotations

from alembic import command
from alembic.config import Config


def alembic_config(url: str) -> Config:
    """Return an Alembic config pointing at ``url`` and geo311's migration scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", "geo311:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Bring the database at ``url`` up to ``revision``."""
    command.upgrade(alembic_config(url), revision)
