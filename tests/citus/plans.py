"""Record every statement the app sends while a user does something, then ask the Citus
coordinator how it would run each one: on one shard (one task), or on many."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import event

from geo311.kernel.database import Database

_DML = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)
_TABLE = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)


@dataclass
class Plan:
    statement: str
    tasks: list[int]  # the Task Count of every distributed step (none: the coordinator alone)

    @property
    def single_shard(self) -> bool:
        return all(n <= 1 for n in self.tasks)

    def __str__(self) -> str:
        return f"tasks={self.tasks}: {' '.join(self.statement.split())[:300]}"


@dataclass
class Recorder:
    db: Database
    statements: list[tuple[str, Any]] = field(default_factory=list)

    def plans(self) -> list[Plan]:
        """Return the coordinator's plan of every recorded data statement."""
        out: list[Plan] = []
        seen: set[str] = set()
        raw = self.db.engine.raw_connection()
        try:
            cur = raw.cursor()
            assert isinstance(raw.driver_connection, psycopg.Connection)
            inline = psycopg.ClientCursor(raw.driver_connection)
            for statement, params in self.statements:
                if not _DML.match(statement) or statement in seen:
                    continue
                seen.add(statement)
                explain = "EXPLAIN (FORMAT JSON) " + statement
                try:
                    cur.execute(explain, params)
                except psycopg.errors.FeatureNotSupported:
                    # Citus cannot EXPLAIN an INSERT … SELECT it runs through the coordinator
                    # while the parameters are still bound separately ("could not create
                    # distributed plan … parameters in SQL functions"), though it runs it; with
                    # the same values inlined by the client it plans it as it runs it.
                    raw.rollback()
                    inline.execute(explain, params)
                    row = inline.fetchone()
                else:
                    row = cur.fetchone()
                assert row is not None
                doc = row[0] if not isinstance(row[0], str) else json.loads(row[0])
                out.append(Plan(statement, list(_task_counts(doc))))
            raw.rollback()
        finally:
            raw.close()
        return out

    def tables(self) -> set[str]:
        return {t.lower() for s, _ in self.statements for t in _TABLE.findall(s)}


@contextmanager
def recording(db: Database, *, driver: bool = False) -> Iterator[Recorder]:
    """Record what ``db``'s engine sends inside the block; with ``driver``, also what is sent
    on the driver's own cursors of connections taken from its pool (the notice worker runs
    its statements on the driver; a statement seen both ways is planned once)."""
    recorder = Recorder(db)

    def before(conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
        if many and isinstance(params, (list, tuple)) and params:
            params = params[0]
        recorder.statements.append((statement, params))

    class Recording(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Recording:
            if isinstance(query, str):
                recorder.statements.append((query, params))
            super().execute(query, params, **kwargs)
            return self

    def checkout(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.cursor_factory = Recording

    def checkin(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.cursor_factory = psycopg.Cursor

    listeners: list[tuple[str, Any]] = [("before_cursor_execute", before)]
    if driver:
        listeners += [("checkout", checkout), ("checkin", checkin)]
    for name, listener in listeners:
        event.listen(db.engine, name, listener)
    try:
        yield recorder
    finally:
        for name, listener in listeners:
            event.remove(db.engine, name, listener)


def _task_counts(node: Any) -> Iterator[int]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Task Count":
                yield int(value)
            else:
                yield from _task_counts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _task_counts(item)


def assert_single_shard(recorder: Recorder, *, must_touch: set[str]) -> list[Plan]:
    """Fail, listing them, if any recorded statement runs on more than one shard; and make
    sure the path did reach the distributed tables it is about."""
    plans = recorder.plans()
    multi = [str(p) for p in plans if not p.single_shard]
    assert not multi, "multi-shard plans on a hot path:\n" + "\n".join(multi)
    missing = must_touch - recorder.tables()
    assert not missing, f"the path never touched {sorted(missing)}"
    assert any(p.tasks == [1] for p in plans), "no statement reached a shard"
    return plans
