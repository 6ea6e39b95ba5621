"""Opening the database for a process: the configured server, or the embedded cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from geo311.kernel import migrate
from geo311.kernel.database import Database
from geo311.kernel.embedded import EmbeddedCluster
from geo311.kernel.settings import Settings


@contextmanager
def database_url(settings: Settings, *, keep_running: bool = False) -> Iterator[str]:
    """Yield the database URL, starting (and afterwards stopping) the embedded cluster if needed.

    A cluster that was already running (another geo311 process started it) is left running.
    """
    if settings.db.url is not None:
        yield settings.db.url.get_secret_value()
        return
    cluster = EmbeddedCluster(settings.cluster_dir)
    cluster.start()
    try:
        cluster.ensure_database(settings.db.name)
        yield cluster.url(settings.db.name)
    finally:
        if cluster.started_here and not keep_running:
            cluster.stop()


@contextmanager
def open_database(
    settings: Settings, *, run_migrations: bool = True, unless_current: bool = False
) -> Iterator[Database]:
    """Yield a migrated Database for this process; clean up the pool and cluster afterwards.

    ``unless_current``: first check, from the scripts' text and the stamped revision, whether
    the schema is current, and only then run Alembic (which loads every model): a command
    that must start fast (``geo311 import``) saves that second.
    """
    with database_url(settings) as url:
        if run_migrations and not (unless_current and migrate.is_current(url)):
            migrate.upgrade(url)
        db = Database.connect(url, pool_size=settings.db.pool_size)
        try:
            yield db
        finally:
            db.dispose()
