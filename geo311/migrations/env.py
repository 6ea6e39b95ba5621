"""Alembic environment: runs migrations on the connection or URL the caller put in the config."""

from __future__ import annotations

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy import Connection, create_engine

from geo311.kernel import distribute
from geo311.schema import include_object, load_all_models

config = context.config
target_metadata = load_all_models()


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
        compare_type=True,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        distribute.hook_create_table(context.get_context().impl, connection)
        with context.begin_transaction():
            context.run_migrations()
            distribute.distribute(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _configure(conn)
        # On Citus: a table a later migration creates is placed as it is created.
        distribute.hook_create_table(context.get_context().impl, conn)
        with context.begin_transaction():
            context.run_migrations()
            # On Citus: a table a migration just created is placed in the same transaction.
            distribute.distribute(conn)
    engine.dispose()


run_migrations_online()
