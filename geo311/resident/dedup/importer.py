"""Bulk import of past reports from CSV: placed in wards and on assets, deduplicated in time
order, stored as incidents and reports.

Memory stays flat whatever the file's size:

1. **stage** — the file is read row by row, checked, mapped (columns, categories, time zone)
   and streamed with COPY into a temporary table; bad rows are kept there with the reason;
2. **place** (in PostGIS, set-based, before any decision) — one statement finds every row's
   ward (on the ward map in force at its time: the wards drive a join over a gist index on
   the staged points), one its asset (KNN within the category's snap radius), one the nearest
   ward of rows in no ward (when such rows are kept or placed); meanwhile, in this process,
   k-d trees find the **lone** rows, which no other row of the file can meet in the replay
   (``importing.lone``): they open incidents without a candidate search, and stay out of the
   live set;
3. **dedup** — PostgreSQL sorts the placed rows by time and streams them back through a
   server-side cursor (a fetcher thread reads the next batch while one is decided); each row
   is replayed against the incidents live at its time, held in a grid of
   cells about two radii wide (and dropped once no later report can match them: a closed
   incident when its reopen window ends), with the same scoring as online intake
   (``geo311.resident.dedup.scoring``); distances are metres on the ellipsoid at the row's
   latitude. The grid is a dict of lists: an R-tree (``rtree``) answering the same calls was
   10–13× slower per row here, its deletes above all (``bench/candidate_index.py``).
   Incidents and reports are written with COPY by a writer thread on its own connection. A
   bulk load (a large first import, or ``bulk=True``) drops the two tables' foreign keys for
   the load and adds them back, checked once over the table, before it commits; into empty
   tables it also drops their secondary indexes and builds each again once, at the end;
4. **report** — one CSV line per input row, in input order: its id, the incident it joined,
   the id of the row it was matched to, the decision, the signals and the ward.

Rows of the same time keep the file's order, or the ``tie_break`` column's. A row whose id
came earlier in the file, or is stored already, is skipped and counted. Rows in no ward but
within ``outside_within_m`` of one are skipped, put in the nearest ward, or kept without a
ward, as ``outside`` says.

The steps live in ``geo311.resident.dedup.importing``: ``mapping`` (how a file is read, what
an import reports back), ``stage``, ``place``, ``lone``, ``replay`` (the dedup state and
decisions) and ``write`` (binary COPY, the bulk load's keys); this module runs them in order,
on three connections and three threads.

Incidents already stored that are live when the file starts are candidates too. The import is
one transaction: it stores everything or nothing. It writes no audit events per row and no
subscriptions (imported reports have no requesters). Reports that arrive through intake
while an import runs are not seen by it (and do not see its rows until it commits): import
history before going live, or accept that overlap.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import queue
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from sqlalchemy import select

from geo311.kernel.database import Database
from geo311.kernel.errors import ValidationFailed
from geo311.kernel.settings import DedupSettings
from geo311.resident.dedup import learning
from geo311.resident.dedup.importing import lone
from geo311.resident.dedup.importing.mapping import (
    FIELD_USES,
    ColumnMap,
    ImportFailed,
    ImportMapping,
    ImportSummary,
    OutsideRule,
    Progress,
)
from geo311.resident.dedup.importing.place import REPLAY_SQL, place, prepare, touched_days
from geo311.resident.dedup.importing.replay import OUTSIDE, Replay, replay_batch
from geo311.resident.dedup.importing.stage import REPEATED_ID, STAGING_DDL, STORED_ID, stage
from geo311.resident.dedup.importing.write import (
    BULK_MIN_ROWS,
    Batch,
    apply_changes,
    hold_for_bulk,
    rebuild_indexes,
    restore_constraints,
    write_batches,
)
from layers.models import Jurisdiction
from work_orders import changes, incidents
from work_orders.models import ServiceCategory

# What the importer's callers (the CLI, fitting from a history file, benches, tests) use.
__all__ = [
    "BATCH_ROWS",
    "BULK_MIN_ROWS",
    "FIELD_USES",
    "REPEATED_ID",
    "REPORT_HEADER",
    "STORED_ID",
    "ColumnMap",
    "ImportFailed",
    "ImportMapping",
    "ImportSummary",
    "OutsideRule",
    "Progress",
    "import_reports",
]

BATCH_ROWS = 20_000
REPORT_HEADER = (
    "id",
    "incident_id",
    "matched_id",
    "decision",
    "score",
    "signals",
    "skipped",
    "ward",
)


def _no_progress(_phase: str, _done: int, _total: int | None) -> None:
    return None


# --- the import --------------------------------------------------------------------------------


def import_reports(
    db: Database,
    *,
    jurisdiction: Jurisdiction,
    path: Path,
    mapping: ImportMapping,
    settings: DedupSettings,
    report_path: Path | None = None,
    progress: Progress = _no_progress,
    bulk: bool | None = None,
    skip_lone: bool = True,
) -> ImportSummary:
    """Import the CSV at ``path``; return what was done. Commits, or stores nothing on error.

    ``bulk``: write the rows as a bulk load (foreign keys checked once, at the end; the tables
    are held for the import's duration, so the service waits). None: only when no report is
    stored yet (a first import, before going live) and the file is large.

    ``skip_lone``: rows that no other row of the file can meet skip the candidate search
    (``importing.lone``; the result is the same). False: every row is searched.

    Raises ImportFailed for a file that cannot be read as mapped (a named column missing),
    ValidationFailed for a mapping that names unknown categories or time zones.
    """
    started = time.perf_counter()
    summary = ImportSummary()
    tz_name = mapping.timezone or jurisdiction.timezone
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(f"timezone {tz_name!r} is not an IANA time zone") from exc

    with db.sessions() as session:
        categories = {
            c.code: c
            for c in session.scalars(
                select(ServiceCategory).where(
                    ServiceCategory.jurisdiction_id == jurisdiction.id, ServiceCategory.active
                )
            )
        }
        models = learning.load_models(session, jurisdiction_id=jurisdiction.id)
        terms = {}
        for cat_code in categories:
            found = incidents.category_terms(
                session, jurisdiction_id=jurisdiction.id, code=cat_code
            )
            if found is not None:
                terms[cat_code] = found.terms
    for source, code in mapping.categories.items():
        if code is not None and code not in categories:
            raise ValidationFailed(
                f"the category mapping sends {source!r} to {code!r}, which is not an active "
                f"category of {jurisdiction.slug!r}"
            )

    # Three connections: the reader holds the staged rows and streams them back in time order
    # with their ward and asset; the writer stores incidents and reports (the transaction that
    # commits); the third hands out ids from the tables' sequences. The reader commits its
    # reads of the stored reports and incidents before the writer may take those tables for a
    # bulk load (its staging tables live as long as its session).
    reader, writer, ids = _raw(db, autocommit=True), _raw(db), _raw(db, autocommit=True)
    try:
        with writer.transaction():
            reader.execute("SET jit = off")
            # Times come back in UTC whatever the server's time zone: differences between them
            # are then real elapsed time (Python subtracts two times of one zone on the wall
            # clock, across a DST change too), and UTC times are the cheapest to compare.
            reader.execute("SET TimeZone = 'UTC'")
            reader.execute(STAGING_DDL)
            replay = Replay(
                jurisdiction_id=jurisdiction.id,
                categories=categories,
                settings=settings,
                summary=summary,
                models=models,
                terms=terms,
                outside_rule=mapping.outside,
                outside_within_m=mapping.outside_within_m,
            )
            with reader.transaction():
                t = time.perf_counter()
                stage(reader, path, mapping, categories, tz, summary, progress)
                # A row whose id is already stored was imported before (a re-run, an
                # overlapping export): storing it again would join it to its own first copy.
                reader.execute(
                    """
                    UPDATE import_rows AS s SET skip = %(why)s
                    FROM reports AS r
                    WHERE s.skip IS NULL AND r.jurisdiction_id = CAST(%(jid)s AS smallint)
                      AND r.external_id = s.ext_id
                    """,
                    {"why": STORED_ID, "jid": jurisdiction.id},
                )
                for reason, n in reader.execute(
                    "SELECT skip, count(*) FROM import_rows WHERE skip IS NOT NULL GROUP BY skip"
                ).fetchall():
                    summary.skipped[reason] = n
                todo = prepare(reader, replay)
                summary.phases_s["stage"] = time.perf_counter() - t
                t = time.perf_counter()
                codes, groups = replay.lone_groups()
                records = lone.read_rows(reader, codes) if skip_lone and any(groups) else None
                # The lone rows are found (in numpy, this process) while PostGIS places the
                # rows (the server's process): one on each core.
                with ThreadPoolExecutor(max_workers=1) as pool:
                    finding = (
                        pool.submit(_find_lone, replay, records, summary.rows + 1)
                        if records is not None and todo
                        else None
                    )
                    place(reader, replay)
                    progress("place", todo, todo)
                    if finding is not None:
                        replay.lone = finding.result()
                    del records  # the staged rows' copy is not needed in the replay
                summary.phases_s["place"] = time.perf_counter() - t

            # From here the reader reads only its own staging tables: a bulk load holds the
            # tables the keys point at too.
            t = time.perf_counter()
            held = hold_for_bulk(writer, rows=todo, bulk=bulk)
            summary.bulk = held is not None
            summary.phases_s["hold"] = time.perf_counter() - t
            with reader.transaction():
                t = time.perf_counter()
                with (
                    tempfile.TemporaryFile("w+", newline="", encoding="utf-8") as results,
                    _no_cyclic_gc(),
                ):
                    if todo:
                        _dedup(
                            reader,
                            writer,
                            ids,
                            replay,
                            results if report_path else None,
                            progress,
                            todo=todo,
                        )
                    summary.phases_s["dedup"] = time.perf_counter() - t
                    if report_path is not None:
                        t = time.perf_counter()
                        _write_report(
                            reader,
                            results,
                            report_path,
                            summary.rows,
                            progress,
                        )
                        summary.phases_s["report"] = time.perf_counter() - t
            # The reader's last reads (the days the rows touch, their span) run beside the
            # writer's index builds and key checks: two server processes, one on each core.
            with ThreadPoolExecutor(max_workers=1) as pool:
                read_back = pool.submit(_days_and_span, reader, tz_name)
                if held is not None:
                    t = time.perf_counter()
                    rebuild_indexes(writer, held)
                    summary.phases_s["indexes"] = time.perf_counter() - t
                    t = time.perf_counter()
                    restore_constraints(writer, held)
                    summary.phases_s["constraints"] = time.perf_counter() - t
                days, span = read_back.result()
            summary.touched_days = days | {at.astimezone(tz).date() for at in replay.unclosed}
            # The planner's summaries: the days of the imported rows and of the incidents they
            # reopened are stale until maps.analytics.rollup.refresh takes them in (noted in
            # the import's own transaction).
            changes.note_bulk(
                writer,
                jurisdiction_id=jurisdiction.id,
                first_at=span[0],
                last_at=span[1],
                incident_ids=list(replay.changed),
            )
    finally:
        for conn in (reader, writer, ids):
            conn.close()
    summary.imported = summary.rows - sum(summary.skipped.values())
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _find_lone(replay: Replay, records: Any, size: int) -> bytearray:
    """Return the lone rows' flags by seq (importing.lone), for the replay's windows."""
    return lone.lone_flags(
        records,
        group_of_code=replay.lone_groups()[1],
        size=size,
        reach_m=replay.reach_m,
        open_s=replay.keep_open.total_seconds(),
        reopen_s=replay.keep_closed.total_seconds(),
    )


def _days_and_span(
    reader: psycopg.Connection[Any], tz_name: str
) -> tuple[set[date], tuple[datetime | None, datetime | None]]:
    """Return the local days the imported rows touch, and their first and last times."""
    days = touched_days(reader, tz_name)
    span = reader.execute("SELECT min(t), max(t) FROM import_rows WHERE skip IS NULL").fetchone()
    return days, (span[0], span[1]) if span else (None, None)


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (reference counting still frees everything).

    The replay allocates millions of small tuples while holding a large live set: the
    collector's full passes over it took 40 % of the time (measured: 52 s → 30 s for a million
    rows). Nothing it builds has reference cycles; one collection runs at the end.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()


def _raw(db: Database, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """Return a psycopg connection of its own (not from the pool) to the database."""
    url = db.engine.url.set(drivername="postgresql")
    return psycopg.connect(url.render_as_string(hide_password=False), autocommit=autocommit)


def _dedup(
    reader: psycopg.Connection[Any],
    writer: psycopg.Connection[Any],
    ids: psycopg.Connection[Any],
    replay: Replay,
    results: IO[str] | None,
    progress: Progress,
    *,
    todo: int,
) -> None:
    """Replay the placed rows in time order; write incidents and reports as it goes."""
    rows_in: queue.Queue[list[tuple[Any, ...]] | BaseException | None] = queue.Queue(maxsize=2)
    batches_out: queue.Queue[Batch | None] = queue.Queue(maxsize=2)
    stop = threading.Event()
    failure: list[BaseException] = []
    fetcher = threading.Thread(target=_fetch_batches, args=(reader, rows_in, stop), daemon=True)
    writer_thread = threading.Thread(
        target=write_batches,
        args=(writer, batches_out, failure, replay.summary.phases_s),
        daemon=True,
    )
    fetcher.start()
    writer_thread.start()
    out = csv.writer(results) if results is not None else None
    done = 0
    deciding = 0.0  # the replay's own time (the rest of the phase it waits for rows)
    try:
        while True:
            rows = rows_in.get()
            if rows is None:
                break
            if isinstance(rows, BaseException):
                raise rows
            started = time.perf_counter()
            batch, lines = replay_batch(ids, replay, rows)
            deciding += time.perf_counter() - started
            if failure:
                raise failure[0]
            batches_out.put(batch)
            if out is not None:
                out.writerows(lines)
            done += len(rows)
            progress("dedup", done, todo)
    finally:
        stop.set()
        while fetcher.is_alive():  # unblock a fetcher waiting for room in the queue
            with contextlib.suppress(queue.Empty):
                rows_in.get(timeout=0.1)
        fetcher.join()
        batches_out.put(None)
        writer_thread.join()
    replay.summary.phases_s["decide (in dedup)"] = deciding
    if failure:
        raise failure[0]
    apply_changes(
        writer,
        jurisdiction_id=replay.jid,
        changed=[(inc.id, inc.status, inc.closed_at) for inc in replay.changed.values()],
    )
    replay.summary.skipped[OUTSIDE] += replay.outside
    replay.summary.lone = replay.lone_rows


def _fetch_batches(
    conn: psycopg.Connection[Any],
    rows_in: queue.Queue[list[tuple[Any, ...]] | BaseException | None],
    stop: threading.Event,
) -> None:
    """Stream the rows in time order, a batch at a time, until done or told to stop."""
    try:
        with conn.cursor(name="import_replay", binary=True) as cursor:
            cursor.execute(REPLAY_SQL)
            while not stop.is_set():
                rows = cursor.fetchmany(BATCH_ROWS)
                if not rows:
                    break
                rows_in.put(rows)
        rows_in.put(None)
    except BaseException as exc:
        rows_in.put(exc)


# --- 3. report -----------------------------------------------------------------------------------


def _write_report(
    reader: psycopg.Connection[Any],
    results: IO[str],
    path: Path,
    total: int,
    progress: Progress,
) -> None:
    """Write one line per input row, in input order (sorted and streamed by the database)."""
    results.seek(0)
    with reader.cursor().copy("COPY import_results FROM STDIN WITH (FORMAT csv)") as copy:
        while chunk := results.read(1 << 20):
            copy.write(chunk)
    done = 0
    with (
        path.open("w", newline="", encoding="utf-8") as f,
        reader.cursor(name="import_report") as cursor,
    ):
        out = csv.writer(f)
        out.writerow(REPORT_HEADER)
        cursor.itersize = BATCH_ROWS
        cursor.execute(
            """
            SELECT s.ext_id, r.incident_id, r.matched_id, r.decision, r.score, r.signals,
                   coalesce(s.skip, r.skip), w.code
            FROM import_rows AS s
            LEFT JOIN import_results AS r USING (seq)
            LEFT JOIN import_ward_pool AS w ON w.id = r.ward_id
            ORDER BY s.seq
            """
        )
        for row in cursor:
            out.writerow(["" if v is None else v for v in row])
            done += 1
            if done % 50_000 == 0:
                progress("report", done, total)
    progress("report", total, total)
