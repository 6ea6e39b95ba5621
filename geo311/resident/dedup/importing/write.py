"""Writing an import: incidents and reports with binary COPY, the bulk load's foreign keys
dropped and added back (checked), the final status of the incidents the import reopened."""

from __future__ import annotations

import json
import queue
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql


@dataclass
class Batch:
    """What a batch of decided rows writes: incidents (opened) and reports."""

    incidents: list[list[Any]] = field(default_factory=list)  # INCIDENT_COLUMNS' values
    reports: list[tuple[Any, ...]] = field(default_factory=list)


_INCIDENT_COLUMNS = (
    "jurisdiction_id",
    "id",
    "category_code",
    "status",
    "geom",
    "ward_id",
    "asset_id",
    "opened_at",
    "due_at",
    "closed_at",
    "updated_at",
)
_REPORT_COLUMNS = (
    "jurisdiction_id",
    "id",
    "tracking_id",
    "incident_id",
    "category_code",
    "description",
    "address",
    "geom",
    "ward_id",
    "asset_id",
    "external_id",
    "reported_at",
    "dedup_decision",
    "dedup_score",
    "dedup_signals",
    "matched_report_id",
    "location_source",
    "channel",
)
OPENED_AT, DUE_AT = _INCIDENT_COLUMNS.index("opened_at"), _INCIDENT_COLUMNS.index("due_at")
_BYTEA_OID = 17
# A point as PostGIS's binary input reads it: extended WKB, little-endian, with the SRID flag
# and SRID 4326. Packed here once per row, the server decodes it without parsing any text.
_EWKB_POINT = struct.Struct("<BIIdd")
_EWKB_POINT_SRID = 0x20000001
# jsonb's binary input: a version byte, then the JSON text.
_JSONB_V1 = b"\x01"


def ewkb_point(lon: float, lat: float) -> bytes:
    """Return a 4326 point as the extended WKB that PostGIS's binary COPY input reads."""
    return _EWKB_POINT.pack(1, _EWKB_POINT_SRID, 4326, lon, lat)


# jsonb keeps no whitespace, so none is written; the decisions hold no cycles to look for.
encode_json = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def jsonb(text: str) -> bytes:
    """Return JSON text as jsonb's binary COPY input."""
    return _JSONB_V1 + text.encode()


def _copy_types(conn: psycopg.Connection[Any], table: str, columns: Sequence[str]) -> list[int]:
    """Return the type oids of ``columns`` for a binary COPY: geometry and jsonb columns are
    sent as bytes already in their binary input form (:func:`ewkb_point`, :func:`jsonb`)."""
    found = dict(
        conn.execute(
            """
            SELECT a.attname, CASE WHEN t.typname IN ('geometry', 'jsonb') THEN %(bytea)s
                                   ELSE CAST(a.atttypid AS integer) END
            FROM pg_attribute AS a JOIN pg_type AS t ON t.oid = a.atttypid
            WHERE a.attrelid = CAST(%(table)s AS regclass) AND a.attnum > 0
              AND NOT a.attisdropped
            """,
            {"table": table, "bytea": _BYTEA_OID},
        ).fetchall()
    )
    return [found[c] for c in columns]


def write_batches(
    conn: psycopg.Connection[Any],
    out: queue.Queue[Batch | None],
    failure: list[BaseException],
    phases_s: dict[str, float],
) -> None:
    """Write each batch (incidents first: the reports point at them) until told to stop; add
    the time spent writing to ``phases_s['write (in dedup)']``.

    Binary COPY: each value goes in its wire form (times, numbers, the point as EWKB, the
    signals as jsonb), so the server parses no text."""
    types: tuple[list[int], list[int]] | None = None
    while True:
        batch = out.get()
        if batch is None:
            return
        if failure:
            continue  # drain the queue so the producer never blocks
        started = time.perf_counter()
        try:
            if types is None:
                types = (
                    _copy_types(conn, "incidents", _INCIDENT_COLUMNS),
                    _copy_types(conn, "reports", _REPORT_COLUMNS),
                )
            for table, columns, row_types, rows in (
                ("incidents", _INCIDENT_COLUMNS, types[0], batch.incidents),
                ("reports", _REPORT_COLUMNS, types[1], batch.reports),
            ):
                with conn.cursor().copy(
                    f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT binary)"
                ) as copy:
                    copy.set_types(row_types)
                    write = copy.write_row
                    for row in rows:
                        write(row)
        except BaseException as exc:
            failure.append(exc)
        phases_s["write (in dedup)"] = (
            phases_s.get("write (in dedup)", 0.0) + time.perf_counter() - started
        )


# A bulk load checks the imported rows' foreign keys once, set-based, at the end instead of
# row by row: the tables' foreign keys are dropped for the load and added back, checked, in
# the same transaction (as pg_restore does). Per-row checks were 60 % of the time writing
# incidents and reports (bench/dedup_scale.py). Dropping a key holds its table and the table
# it points at (jurisdictions, categories, wards, assets …) until the import commits, so the
# whole service waits: taken by default only for a first import (no report stored yet), and
# only if the tables are free right away. Checking a key again reads the whole table, which
# also makes it a poor fit for a small import into a large history.
#
# Into empty tables the bulk load also drops the secondary indexes (not those behind a
# primary key or a unique constraint: other tables' keys and the tracking ids need them) and
# builds each again once, from the whole table, at the end: inserting row by row into the two
# spatial (gist) indexes and the time and status b-trees cost more than building them from
# the finished table (bench/dedup_scale.py's 'write floor, bulk' rows). Into a stored
# history the indexes stay: building them again would read all of it.
BULK_MIN_ROWS = 20_000
_BULK_LOCK_WAIT = "2s"
_BULK_TABLES = ("incidents", "reports")
# Memory for each index build's sort (the session's default is small for a million rows).
_BUILD_MEMORY = "256MB"


@dataclass(frozen=True)
class _HeldKey:
    table: str
    name: str
    definition: str


@dataclass(frozen=True)
class Held:
    """What a bulk load dropped and :func:`restore_constraints` puts back."""

    keys: list[_HeldKey]
    # (name, CREATE INDEX statement) of the secondary indexes dropped for the load.
    indexes: list[tuple[str, str]] = field(default_factory=list)


def hold_for_bulk(conn: psycopg.Connection[Any], *, rows: int, bulk: bool | None) -> Held | None:
    """Take incidents and reports for a bulk load and drop their foreign keys (and, when
    both are empty, their secondary indexes); return what to put back (None: the load is
    written with the keys and indexes in place, row by row)."""
    if bulk is False or rows == 0:
        return None
    citus = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'citus'").fetchone()
    if citus is None or citus[0]:
        return None  # Citus checks the keys on the shards, colocated
    found = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM reports), EXISTS (SELECT 1 FROM incidents)"
    ).fetchone()
    assert found is not None
    stored, any_incident = found
    if bulk is None and (stored or rows < BULK_MIN_ROWS):
        return None  # a live service, or a small file: keys checked row by row
    wait = conn.execute("SELECT current_setting('lock_timeout')").fetchone()
    assert wait is not None
    try:
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{_BULK_LOCK_WAIT}'")
            conn.execute("LOCK TABLE incidents, reports IN ACCESS EXCLUSIVE MODE")
            keys = [
                _HeldKey(table, name, definition)
                for table, name, definition in conn.execute(
                    """
                    SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
                    FROM pg_constraint
                    WHERE contype = 'f' AND conrelid = ANY (CAST(%s AS regclass[]))
                    ORDER BY conrelid::regclass::text, conname
                    """,
                    (list(_BULK_TABLES),),
                ).fetchall()
            ]
            for key in keys:
                # Dropping a key also takes the table it points at (wards, assets, …).
                conn.execute(f'ALTER TABLE {key.table} DROP CONSTRAINT "{key.name}"')
            indexes: list[tuple[str, str]] = []
            if not stored and not any_incident:
                indexes = [
                    (name, definition)
                    for name, definition in conn.execute(
                        """
                        SELECT c.relname, pg_get_indexdef(i.indexrelid)
                        FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
                        WHERE i.indrelid = ANY (CAST(%s AS regclass[]))
                          AND NOT EXISTS (SELECT FROM pg_constraint AS k
                                          WHERE k.conindid = i.indexrelid)
                        ORDER BY 1
                        """,
                        (list(_BULK_TABLES),),
                    ).fetchall()
                ]
                for name, _ in indexes:
                    conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    except psycopg.errors.LockNotAvailable:
        return None  # in use: written row by row with the keys in place
    finally:
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (wait[0],))
    return Held(keys, indexes)


def rebuild_indexes(conn: psycopg.Connection[Any], held: Held) -> None:
    """Build again, each from the whole table, the indexes dropped for a bulk load."""
    if not held.indexes:
        return
    # For the import's transaction only (it commits next).
    conn.execute(f"SET LOCAL maintenance_work_mem = '{_BUILD_MEMORY}'")
    for _, definition in held.indexes:
        conn.execute(definition)


def restore_constraints(conn: psycopg.Connection[Any], held: Held) -> None:
    """Add back the foreign keys dropped for a bulk load, each checked over the whole table
    in one query: a row that breaks one fails the import (nothing is stored)."""
    for table in _BULK_TABLES:
        mine = [k for k in held.keys if k.table == table]
        if mine:
            conn.execute(
                f"ALTER TABLE {table} "
                + ", ".join(f'ADD CONSTRAINT "{k.name}" {k.definition}' for k in mine)
            )


def apply_changes(
    writer: psycopg.Connection[Any],
    *,
    jurisdiction_id: int,
    changed: Sequence[tuple[int, str, datetime | None]],
) -> None:
    """Store the final status of incidents that imported rows reopened: (id, status, closed
    at) each."""
    if not changed:
        return
    writer.execute(
        "CREATE TEMP TABLE import_changes (id bigint, status text, closed_at timestamptz) "
        "ON COMMIT DROP"
    )
    with writer.cursor().copy("COPY import_changes FROM STDIN") as copy:
        for row in changed:
            copy.write_row(row)
    writer.execute(
        """
        UPDATE incidents AS i SET status = c.status, closed_at = c.closed_at,
               updated_at = now(), version = i.version + 1
        FROM import_changes AS c
        WHERE i.jurisdiction_id = CAST(%(jid)s AS smallint) AND i.id = c.id
        """,
        {"jid": jurisdiction_id},
    )
