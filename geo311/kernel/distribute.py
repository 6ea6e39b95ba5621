"""The schema on Citus: which table is distributed, which is a reference table, which stays on
the coordinator — applied by a migration and again after every migration run, so a table a
later migration creates is distributed in the same run. Does nothing without the citus
extension, so a plain PostGIS never sees any of it.

The rule (docs/citus.md says why for each table):
- a table whose primary key starts with ``jurisdiction_id`` is a tenant table: distributed by
  ``jurisdiction_id``, all of them co-located, so one city's rows of every table live in one
  shard group and every query of one city (joins, foreign keys, transactions) stays on one node;
- ``REFERENCE_TABLES``: small, read on every path, and keyed across cities (a unique name,
  token or key hash that must hold for the whole service): a copy on every node;
- everything else stays on the coordinator (``LOCAL_TABLES``); one that references a
  reference table becomes a Citus local table so that foreign key still holds.
"""

from __future__ import annotations

from graphlib import TopologicalSorter
from typing import Any

from sqlalchemy import Connection, ForeignKeyConstraint, Table, text

DISTRIBUTION_COLUMN = "jurisdiction_id"
REFERENCE_TABLES = ("jurisdictions", "staff_users", "api_tokens", "open311_api_keys")
# Staff sessions and the sign-in throttle are per-service, written on every sign-in and seen
# only by the coordinator; the job queue is procrastinate's, whose SQL and triggers are
# single-node; alembic's own table is the coordinator's.
LOCAL_TABLES = (
    "staff_sessions",
    "signin_throttle",
    "alembic_version",
    "procrastinate_jobs",
    "procrastinate_events",
    "procrastinate_periodic_defers",
    "procrastinate_workers",
)


def citus_present(conn: Connection) -> bool:
    """Return whether the database has the citus extension."""
    return bool(conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'citus'")).scalar())


def hook_create_table(impl: Any, conn: Connection) -> None:
    """Make ``impl`` (an Alembic migration context's impl) place every table it creates once
    the schema is distributed: the table is created without its foreign keys, placed, and
    then gets them. Needed because Citus refuses a new table with foreign keys to both a
    reference table (jurisdictions) and a distributed one; before the schema is distributed
    (a fresh database's first run), tables are created as usual and placed by the migration
    ``citus_distribute``. Asks the database nothing until a table is created (a query here
    would open the connection's transaction before Alembic does)."""
    create = impl.create_table

    def create_table(table: Table, **kw: Any) -> Any:
        if not (citus_present(conn) and _distributed_yet(conn)):
            return create(table, **kw)
        fkeys = [c for c in table.constraints if isinstance(c, ForeignKeyConstraint)]
        for fk in fkeys:
            table.constraints.discard(fk)
        try:
            result = create(table, **kw)
        finally:
            for fk in fkeys:
                table.constraints.add(fk)
        distribute(conn)
        for fk in fkeys:
            impl.add_constraint(fk)
        return result

    impl.create_table = create_table


def _distributed_yet(conn: Connection) -> bool:
    return bool(
        conn.execute(text("SELECT 1 FROM pg_dist_partition WHERE partmethod = 'h' LIMIT 1")).first()
    )


def distribute(conn: Connection) -> list[str]:
    """Place every table not yet placed; return what was done, one line per table."""
    if not citus_present(conn):
        return []
    done: list[str] = []
    # Distributed and reference tables; not the Citus local tables Citus makes by itself of
    # a new table with a foreign key to a reference table (jurisdictions): those still need
    # placing.
    placed = {
        name
        for (name,) in conn.execute(
            text(
                "SELECT logicalrelid::regclass::text FROM pg_dist_partition "
                "WHERE partmethod = 'h' OR repmodel = 't'"
            )
        )
    }
    tenant = _tenant_tables(conn)
    todo = [t for t in _referenced_first(conn, tenant | set(REFERENCE_TABLES)) if t not in placed]
    if not todo:
        return done
    # One connection per node for the rest of the transaction: Citus's rule when a foreign
    # key to a reference table is added in a transaction that already touched shards.
    conn.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))
    # Citus places a table only when every foreign key around it fits at that moment (and
    # turns a table that references a reference table into a Citus local table at once), so
    # the foreign keys of the tables to place come off first and go back on once all are
    # placed; Citus then creates them on every shard.
    fkeys = _drop_foreign_keys(conn, todo)
    for name in todo:
        if name in tenant:
            _identity_to_sequence(conn, name)
    for name in todo:
        if name in REFERENCE_TABLES:
            conn.execute(text("SELECT create_reference_table(CAST(:t AS regclass))"), {"t": name})
            done.append(f"{name}: reference")
            continue
        # Co-located with the tenant tables placed before (a later migration's table too).
        colocate = next((t for t in placed if t in tenant), "default")
        conn.execute(
            text(
                "SELECT create_distributed_table(CAST(:t AS regclass), :col, "
                "colocate_with => :with)"
            ),
            {"t": name, "col": DISTRIBUTION_COLUMN, "with": colocate},
        )
        placed.add(name)
        done.append(f"{name}: distributed by {DISTRIBUTION_COLUMN}")
    for table, name, definition in fkeys:
        # A coordinator table referencing a reference table becomes a Citus local table here.
        conn.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    return done


def _drop_foreign_keys(conn: Connection, tables: list[str]) -> list[tuple[str, str, str]]:
    """Drop the foreign keys from or to ``tables``; return (table, name, definition) of each."""
    rows = conn.execute(
        text(
            """
            SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
            FROM pg_constraint
            WHERE contype = 'f' AND connamespace = 'public'::regnamespace
              AND (conrelid::regclass::text = ANY(:t) OR confrelid::regclass::text = ANY(:t))
            ORDER BY 1, 2
            """
        ),
        {"t": tables},
    ).all()
    for table, name, _ in rows:
        conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    return [(t, n, d) for t, n, d in rows]


def _tenant_tables(conn: Connection) -> set[str]:
    """Return the public tables whose primary key starts with the distribution column."""
    rows = conn.execute(
        text(
            """
            SELECT c.relname
            FROM pg_constraint k
            JOIN pg_class c ON c.oid = k.conrelid
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.conkey[1]
            WHERE k.contype = 'p' AND c.relnamespace = 'public'::regnamespace
              AND c.relkind = 'r' AND a.attname = :col
            """
        ),
        {"col": DISTRIBUTION_COLUMN},
    )
    return {name for (name,) in rows} - set(REFERENCE_TABLES)


def _referenced_first(conn: Connection, tables: set[str]) -> list[str]:
    """Return ``tables`` ordered so a table comes after every table it references (Citus
    distributes a referencing table only once its referenced tables are placed)."""
    graph: dict[str, set[str]] = {t: set() for t in tables}
    rows = conn.execute(
        text(
            """
            SELECT conrelid::regclass::text, confrelid::regclass::text
            FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace
            """
        )
    )
    for child, parent in rows:
        if child in graph and parent in graph and child != parent:
            graph[child].add(parent)
    ordered = list(TopologicalSorter(graph).static_order())
    return sorted(ordered, key=lambda t: (t not in REFERENCE_TABLES, ordered.index(t)))


def _identity_to_sequence(conn: Connection, name: str) -> None:
    """Turn an int/smallint identity column into a sequence default: Citus distributes tables
    whose identity columns are bigint only. The column's values and next value are kept."""
    rows = conn.execute(
        text(
            """
            SELECT a.attname, s.last_value
            FROM pg_attribute a
            LEFT JOIN pg_sequences s
              ON s.schemaname || '.' || s.sequencename
                 = pg_get_serial_sequence(CAST(:t AS text), a.attname)
            WHERE a.attrelid = CAST(:t AS regclass) AND a.attidentity <> ''
              AND a.atttypid <> 'bigint'::regtype
            """
        ),
        {"t": name},
    ).all()
    for column, last_value in rows:
        new_seq = f"{name}_{column}_seq"
        conn.execute(text(f'ALTER TABLE {name} ALTER COLUMN "{column}" DROP IDENTITY'))
        conn.execute(text(f"CREATE SEQUENCE {new_seq} AS integer OWNED BY {name}.{column}"))
        if last_value is not None:  # None: never drawn from yet
            conn.execute(
                text("SELECT setval(CAST(:s AS regclass), :v)"), {"s": new_seq, "v": last_value}
            )
        conn.execute(
            text(
                f'ALTER TABLE {name} ALTER COLUMN "{column}" '
                f"SET DEFAULT nextval('{new_seq}'::regclass)"
            )
        )
