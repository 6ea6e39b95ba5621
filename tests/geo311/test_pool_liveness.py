"""The connection pool's liveness rule costs no round trip. (That it still replaces the
connections a database restart cut is shown in test_worker_faults, which restarts a cluster
of its own.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text

from geo311.kernel.database import Database


@pytest.fixture
def counted_db(db_url: str) -> Iterator[tuple[Database, list[str]]]:
    """A Database whose every connection records each statement sent on it, the pool's own
    included (they go through the connection's cursors too)."""
    sent: list[str] = []

    class Counting(psycopg.Cursor[Any]):
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            sent.append(" ".join(str(query).split()))
            return super().execute(query, *args, **kwargs)

    database = Database.connect(db_url, pool_size=2)

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.cursor_factory = Counting

    event.listen(database.engine, "connect", on_connect)
    try:
        yield database, sent
    finally:
        database.dispose()


def test_a_connection_taken_from_the_pool_costs_no_extra_round_trip(
    counted_db: tuple[Database, list[str]],
) -> None:
    database, sent = counted_db
    with database.sessions() as session:
        assert session.execute(text("SELECT 41")).scalar() == 41
    sent.clear()

    # The pooled connection is taken again: only the request's own statement is sent (a
    # pre-ping would add a SELECT 1 before it, a round trip on every request).
    with database.sessions() as session:
        assert session.execute(text("SELECT 42")).scalar() == 42

    assert sent == ["SELECT 42"]
