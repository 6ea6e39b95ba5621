"""Telling whether a database's schema is current without loading Alembic (what lets
``geo311 import`` start without the migrations' environment)."""

from __future__ import annotations

import psycopg
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from geo311.kernel import migrate


def _execute(url: str, sql: str) -> None:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql)


def test_the_heads_read_from_the_scripts_text_are_alembics() -> None:
    alembic_heads = ScriptDirectory.from_config(migrate.alembic_config("postgresql://")).get_heads()
    assert migrate.script_heads() == set(alembic_heads)


def test_a_migrated_database_is_current_and_one_stamped_earlier_is_not(db_url: str) -> None:
    assert migrate.is_current(db_url)
    _execute(db_url, "UPDATE alembic_version SET version_num = '0001'")
    assert not migrate.is_current(db_url)
    _execute(db_url, "DROP TABLE alembic_version")
    assert not migrate.is_current(db_url)
