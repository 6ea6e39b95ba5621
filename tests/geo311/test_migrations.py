"""The schema built by the migrations is the schema the models describe."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from geo311.kernel.migrate import alembic_config
from geo311.schema import include_object, load_all_models


def test_migrated_schema_matches_models(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_object": include_object,
            },
        )
        diff = compare_metadata(ctx, load_all_models())
    engine.dispose()
    assert diff == []


@pytest.mark.not_on_citus("a distributed schema has no downgrade (migration citus_distribute)")
def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    cfg = alembic_config(db_url)
    command.downgrade(cfg, "base")
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert "reports" not in inspect(conn).get_table_names()
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        assert {"reports", "wards", "assets", "incidents"} <= set(inspect(conn).get_table_names())
    engine.dispose()
