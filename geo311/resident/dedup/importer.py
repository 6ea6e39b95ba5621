"""Bulk import of past reports from CSV: placed in wards and on assets, deduplicated in time
order, stored as incidents and reports.

Memory stays flat whatever the file's size:

1. **stage** — the file is read row by row, checked, mapped (columns, categories, time zone)
   and streamed with COPY into a temporary table; bad rows are kept there with the reason;
2. **place** (in PostGIS, set-based, before any decision) — one statement finds every row's
   ward (on the ward map in force at its time: the wards drive a join over a gist index on
   the staged points), one its asset (KNN within the category's snap radius), one the nearest
   ward of rows in no ward (when such rows are kept or placed);
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
   the load and adds them back, checked once over the table, before it commits;
4. **report** — one CSV line per input row, in input order: its id, the incident it joined,
   the id of the row it was matched to, the decision, the signals and the ward.

Rows of the same time keep the file's order, or the ``tie_break`` column's. A row whose id
came earlier in the file, or is stored already, is skipped and counted. Rows in no ward but
within ``outside_within_m`` of one are skipped, put in the nearest ward, or kept without a
ward, as ``outside`` says.

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
import heapq
import itertools
import json
import math
import queue
import struct
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from geo311.kernel.database import Database
from geo311.kernel.errors import AppError, FieldError, ValidationFailed
from geo311.kernel.settings import DedupSettings
from geo311.resident.dedup import grid, learning
from geo311.resident.dedup.placing import rule_of
from geo311.resident.dedup.scoring import (
    UNMATCHABLE_STATUSES,
    Candidate,
    Decision,
    NewReport,
    PairScorer,
    Rule,
    decide,
    fired_text,
    normalise_address,
    normalise_addresses,
)
from geo311.resident.intake.tracking import new_tracking_ids
from layers.models import Jurisdiction
from work_orders import changes
from work_orders import service as work_orders_service
from work_orders.models import ServiceCategory
from work_orders.opening import Terms, due_at_many

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
_CLOSED = "closed"


class ImportFailed(AppError):
    status = 422
    code = "import_failed"
    title = "The file cannot be imported"


# --- mapping -----------------------------------------------------------------------------------


class ColumnMap(BaseModel):
    """Which CSV column holds each field. Optional fields may be None (not in the file)."""

    model_config = ConfigDict(extra="forbid")

    id: str = "id"
    time: str = "time"
    category: str = "category"
    lat: str = "lat"
    lon: str = "lon"
    address: str | None = "address"
    status: str | None = "status"
    closed: str | None = Field(default="closed_at", description="When the report was closed")
    description: str | None = None
    tie_break: str | None = Field(
        default=None,
        description="Orders rows of the same time (e.g. day-only dates) by this column "
        "(e.g. the request number: numerically when it is a number), not by the file's order",
    )


# What each mapped field is used for, in the summary's words.
FIELD_USES = {
    "id": "the row's id (reports' external id; a repeated id is skipped)",
    "time": "the time reported",
    "category": "the category",
    "lat": "the latitude",
    "lon": "the longitude",
    "address": "the address (normalised, a dedup signal)",
    "status": "the status (closed statuses close the report)",
    "closed": "the time closed",
    "description": "the description",
    "tie_break": "the order of rows of the same time",
}

OutsideRule = Literal["nearest-ward", "keep", "skip"]


class ImportMapping(BaseModel):
    """How to read a city's export: columns, categories, time zone and closed statuses."""

    model_config = ConfigDict(extra="forbid")

    columns: ColumnMap = Field(default_factory=ColumnMap)
    categories: dict[str, str | None] = Field(
        default_factory=dict,
        description="Source value (e.g. a complaint type) → category code; null skips the "
        "value's rows. Empty: the values are category codes.",
    )
    timezone: str | None = Field(
        default=None, description="For times without an offset. Default: the jurisdiction's"
    )
    time_format: str | None = Field(
        default=None, description="strptime format; default ISO 8601 (with or without 'T')"
    )
    closed_statuses: list[str] = Field(
        default_factory=lambda: ["closed", "resolved", "completed", "done", "fixed"],
        description="Status values (any case) that mean closed even without a closed time",
    )
    outside: OutsideRule = Field(
        default="skip",
        description="Rows outside every ward of the ward map in force, but within "
        "outside_within_m of one: put them in the nearest ward, keep them without a ward, or "
        "skip them. Farther rows are always skipped.",
    )
    outside_within_m: float = Field(default=50.0, ge=0, le=10_000)

    @classmethod
    def load(cls, path: Path) -> ImportMapping:
        """Return the mapping in a JSON file; ValidationFailed naming what is wrong."""
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            errors = [
                FieldError(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()
            ]
            raise ValidationFailed(
                f"{path}: not a valid mapping: " + "; ".join(e.message for e in errors),
                errors=errors,
            ) from exc
        except OSError as exc:
            raise ValidationFailed(f"{path}: cannot read the mapping file: {exc}") from exc


# --- results -----------------------------------------------------------------------------------


@dataclass
class ImportSummary:
    """What an import did; ``skipped`` counts rows by reason."""

    rows: int = 0
    imported: int = 0
    incidents_opened: int = 0
    matched: int = 0
    reopened: int = 0
    off: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    # (field, column, found by its default name) for every column the import read.
    columns: list[tuple[str, str, bool]] = field(default_factory=list)
    unused_columns: list[str] = field(default_factory=list)
    # Rows outside the ward map but near it: put in the nearest ward, or kept without one.
    nearest_ward: int = 0
    kept_outside: int = 0
    elapsed_s: float = 0.0
    phases_s: dict[str, float] = field(default_factory=dict)
    # Whether the rows were written as a bulk load (foreign keys checked once, at the end).
    bulk: bool = False
    # The local days (the import's time zone) on which imported rows were reported or closed.
    touched_days: set[date] = field(default_factory=set)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0


Progress = Callable[[str, int, int | None], None]
"""Called as progress(phase, done, total): phases 'stage' (bytes), 'place', 'dedup' (rows),
'report' (rows)."""


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
) -> ImportSummary:
    """Import the CSV at ``path``; return what was done. Commits, or stores nothing on error.

    ``bulk``: write the rows as a bulk load (foreign keys checked once, at the end; the tables
    are held for the import's duration, so the service waits). None: only when no report is
    stored yet (a first import, before going live) and the file is large.

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
            found = work_orders_service.category_terms(
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
            reader.execute(_STAGING_DDL)
            replay = _Replay(
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
                _stage(reader, path, mapping, categories, tz, summary, progress)
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
                todo = _prepare(reader, replay)
                summary.phases_s["stage"] = time.perf_counter() - t
                t = time.perf_counter()
                _place(reader, replay)
                progress("place", todo, todo)
                summary.phases_s["place"] = time.perf_counter() - t

            # From here the reader reads only its own staging tables: a bulk load holds the
            # tables the keys point at too.
            t = time.perf_counter()
            held = _hold_for_bulk(writer, rows=todo, bulk=bulk)
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
                summary.touched_days = _touched_days(reader, tz_name) | {
                    at.astimezone(tz).date() for at in replay.unclosed
                }
            if held is not None:
                t = time.perf_counter()
                _restore_constraints(writer, held)
                summary.phases_s["constraints"] = time.perf_counter() - t
            # The planner's summaries: the days of the imported rows and of the incidents they
            # reopened are stale until maps.analytics.rollup.refresh takes them in (noted in
            # the import's own transaction).
            span = reader.execute(
                "SELECT min(t), max(t) FROM import_rows WHERE skip IS NULL"
            ).fetchone()
            changes.note_bulk(
                writer,
                jurisdiction_id=jurisdiction.id,
                first_at=span[0] if span else None,
                last_at=span[1] if span else None,
                incident_ids=list(replay.changed),
            )
    finally:
        for conn in (reader, writer, ids):
            conn.close()
    summary.imported = summary.rows - sum(summary.skipped.values())
    summary.elapsed_s = time.perf_counter() - started
    return summary


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


_STAGING_DDL = """
CREATE TEMP TABLE import_rows (
    seq bigint PRIMARY KEY,
    ext_id text,
    t timestamptz,
    category text,
    lon float8,
    lat float8,
    address text,
    description text,
    closed_at timestamptz,
    skip text,
    asset_type text,
    snap_m float8,
    tie_num float8,
    tie text,
    pt geometry(Point, 4326) GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)) STORED
);
CREATE TEMP TABLE import_results (
    seq bigint,
    incident_id bigint,
    matched_id text,
    decision text,
    score float8,
    signals text,
    skip text,
    ward_id integer
);
"""


# --- 1. stage ------------------------------------------------------------------------------------


class _ByteCounter:
    """A text file wrapper that counts the characters read (for the progress bar)."""

    def __init__(self, f: IO[str]) -> None:
        self.f = f
        self.read_chars = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.f:
            self.read_chars += len(line)
            yield line


def _stage(
    conn: psycopg.Connection[Any],
    path: Path,
    mapping: ImportMapping,
    categories: dict[str, ServiceCategory],
    tz: ZoneInfo,
    summary: ImportSummary,
    progress: Progress,
) -> None:
    try:
        total = path.stat().st_size
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ImportFailed(f"{path}: cannot read the file: {exc}") from exc
    closed_statuses = {s.casefold() for s in mapping.closed_statuses}
    # The asset type each category snaps to, and within how many metres.
    snaps = {
        code: (c.asset_type, float(c.snap_radius_m))
        for code, c in categories.items()
        if c.asset_type is not None and c.snap_radius_m > 0
    }
    cats = mapping.categories
    fmt = mapping.time_format
    with (
        handle,
        conn.cursor().copy(
            "COPY import_rows (seq, ext_id, t, category, lon, lat, address, description, "
            "closed_at, skip, asset_type, snap_m, tie_num, tie) FROM STDIN (FORMAT binary)"
        ) as copy,
    ):
        # Binary: times and numbers go in their wire form, so the server parses no text.
        copy.set_types(_STAGING_TYPES)
        counted = _ByteCounter(handle)
        rows = csv.reader(counted)
        header = next(rows, None)
        if header is None:
            raise ImportFailed(f"{path} is empty: it has no header row")
        pos = _positions(header, mapping.columns, path, summary)
        i_id, i_time, i_cat, i_lat, i_lon = (
            pos["id"],
            pos["time"],
            pos["category"],
            pos["lat"],
            pos["lon"],
        )
        i_addr, i_status, i_closed, i_desc, i_tie = (
            pos.get("address"),
            pos.get("status"),
            pos.get("closed"),
            pos.get("description"),
            pos.get("tie_break"),
        )
        width = max(pos.values()) + 1
        seq = 0
        # Ids of the rows kept so far: a row whose id came before is the same row again
        # (exports that repeat rows, files concatenated with overlap), not a new report.
        seen: set[str] = set()
        for row in rows:
            seq += 1
            if len(row) < width:
                copy.write_row(
                    (
                        seq,
                        row[i_id] if len(row) > i_id else None,
                        *([None] * 7),
                        "short row",
                        *([None] * 4),
                    )
                )
                continue
            ext_id = row[i_id]
            skip = None
            raw_cat = row[i_cat].strip()
            code: str | None
            if cats:
                code = cats.get(raw_cat)
                if code is None:
                    skip = (
                        f"category {raw_cat!r} not imported"
                        if raw_cat in cats
                        else f"category {raw_cat!r} not in the mapping"
                    )
            else:
                code = raw_cat if raw_cat in categories else None
                if code is None:
                    skip = f"unknown category {raw_cat!r}"
            at = _time(row[i_time], fmt, tz)
            if at is None and skip is None:
                skip = "no valid time"
            lon = _float(row[i_lon])
            lat = _float(row[i_lat])
            if not _valid_lon_lat(lon, lat):
                lon = lat = None
                skip = skip or "no valid location"
            closed_at = _time(row[i_closed], fmt, tz) if i_closed is not None else None
            if (
                closed_at is None
                and i_status is not None
                and row[i_status].strip().casefold() in closed_statuses
            ):
                closed_at = at
            if closed_at is not None and at is not None and closed_at < at:
                closed_at = at  # closed before it was opened: a clock slip in the source
            address = (row[i_addr].strip() or None) if i_addr is not None else None
            description = row[i_desc].strip()[:4000] if i_desc is not None else None
            snap = snaps.get(code) if code is not None else None
            if skip is None and ext_id:
                if ext_id in seen:
                    skip = REPEATED_ID
                else:
                    seen.add(ext_id)
            tie = row[i_tie].strip() if i_tie is not None else None
            copy.write_row(
                (
                    seq,
                    ext_id,
                    at,
                    code,
                    lon,
                    lat,
                    address,
                    description,
                    closed_at,
                    skip,
                    *(snap or (None, None)),
                    _float(tie) if tie else None,
                    tie or None,
                )
            )
            if seq % 50_000 == 0:
                progress("stage", counted.read_chars, total)
        summary.rows = seq
    progress("stage", total, total)


_STAGING_TYPES = (
    "int8",
    "text",
    "timestamptz",
    "text",
    "float8",
    "float8",
    "text",
    "text",
    "timestamptz",
    "text",
    "text",
    "float8",
    "float8",
    "text",
)
_REQUIRED = ("id", "time", "category", "lat", "lon")
REPEATED_ID = "repeated id (an earlier row of the file has it)"
STORED_ID = "id already stored (imported before)"


def _positions(
    header: Sequence[str], columns: ColumnMap, path: Path, summary: ImportSummary
) -> dict[str, int]:
    """Return the position of each mapped field's column; note in ``summary`` which columns
    are read for what (and which were picked up by their default name)."""
    names = [h.strip() for h in header]
    found: dict[str, int] = {}
    missing: list[FieldError] = []
    for field_name, column in columns.model_dump().items():
        if column is None:
            continue
        if column in names:
            found[field_name] = names.index(column)
            default = column == ColumnMap.model_fields[field_name].default
            summary.columns.append((field_name, column, default))
        elif field_name in _REQUIRED or column != ColumnMap.model_fields[field_name].default:
            # A required column, or an optional one named explicitly: it must be there.
            missing.append(
                FieldError(field_name, f"column {column!r} (the {field_name}) is not in the file")
            )
    if missing:
        raise ImportFailed(
            f"{path}: " + "; ".join(e.message for e in missing) + f"; its columns are {names}",
            errors=missing,
        )
    used = set(found.values())
    summary.unused_columns = [n for k, n in enumerate(names) if k not in used]
    return found


def _valid_lon_lat(lon: float | None, lat: float | None) -> bool:
    """Return True for a usable WGS84 position (0, 0 is a common placeholder: not usable)."""
    if lon is None or lat is None:
        return False
    return -180 <= lon <= 180 and -90 <= lat <= 90 and (lon, lat) != (0.0, 0.0)


def _float(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _time(raw: str, fmt: str | None, tz: ZoneInfo) -> datetime | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = datetime.strptime(raw, fmt) if fmt else datetime.fromisoformat(raw)
    except ValueError:
        return None
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


# --- 2. dedup ------------------------------------------------------------------------------------


class _Live:
    """An incident that later rows may still match."""

    __slots__ = (
        "addresses",
        "asset_id",
        "category",
        "closed_at",
        "descriptions",
        "expires",
        "group",
        "id",
        "last_t",
        "lat",
        "lon",
        "norm",
        "opened_at",
        "reports",
        "status",
        "token",
    )

    def __init__(
        self,
        *,
        id: int,
        category: str,
        group: str,
        lon: float,
        lat: float,
        asset_id: int | None,
        opened_at: datetime,
        last_t: datetime,
        closed_at: datetime | None,
        status: str,
    ) -> None:
        self.id = id
        self.category = category
        self.group = group
        self.lon = lon
        self.lat = lat
        self.asset_id = asset_id
        self.opened_at = opened_at
        self.last_t = last_t
        self.closed_at = closed_at
        self.status = status
        self.reports: list[tuple[int, float, float, str | None]] = []
        self.addresses: list[str] = []
        self.descriptions: list[str] = []  # kept only for categories with a fitted model
        self.norm: tuple[str, ...] | None = ()
        self.expires = last_t
        self.token = -1

    def normalised(self) -> tuple[str, ...]:
        if self.norm is None:
            self.norm = normalise_addresses(self.addresses)
        return self.norm

    def add_address(self, address: str | None) -> None:
        if address:
            self.addresses.append(address)
            self.norm = None


@dataclass
class _Batch:
    incidents: list[list[Any]] = field(default_factory=list)  # _INCIDENT_COLUMNS' values
    reports: list[tuple[Any, ...]] = field(default_factory=list)


_CELL_ROW = 1 << 32
# A cell's width in radii: a little over two, so a search (a radius and a thousandth each side)
# never spans more than two cells a side.
_CELL_RADII = 2.01


def _matchable(
    inc: _Live,
    at: datetime,
    enabled: frozenset[str],
    open_window: timedelta,
    reopen_window: timedelta,
) -> bool:
    """Return True when a row at ``at`` may join ``inc`` (scoring.is_live's rule)."""
    if inc.category not in enabled or inc.opened_at > at:
        return False
    if inc.status in UNMATCHABLE_STATUSES:
        return False
    closed_at = inc.closed_at
    if closed_at is not None and closed_at <= at:
        return at - closed_at <= reopen_window
    return at - inc.last_t <= open_window


class _Replay:
    """The dedup state while rows are replayed in time order."""

    def __init__(
        self,
        *,
        jurisdiction_id: int,
        categories: dict[str, ServiceCategory],
        settings: DedupSettings,
        summary: ImportSummary,
        models: Mapping[str, PairScorer] | None = None,
        terms: dict[str, Terms] | None = None,
        outside_rule: OutsideRule = "skip",
        outside_within_m: float = 0.0,
    ) -> None:
        self.jid = jurisdiction_id
        self.outside_rule = outside_rule
        self.outside_within_m = outside_within_m
        self.summary = summary
        self.categories = categories
        self.rules: dict[str, Rule] = {
            c: rule_of(cat, settings, (models or {}).get(c)) for c, cat in categories.items()
        }
        self.group_of = {c: cat.group_code for c, cat in categories.items()}
        # How incidents open (the SLA in the category's calendar): the rows intake builds.
        self.terms: dict[str, Terms] = terms or {
            c: Terms.of(cat, None) for c, cat in categories.items()
        }
        self.enabled_in_group: dict[str, frozenset[str]] = {}
        for code, rule in self.rules.items():
            if rule.enabled:
                group = self.group_of[code]
                self.enabled_in_group[group] = self.enabled_in_group.get(group, frozenset()) | {
                    code
                }
        live_rules = [r for r in self.rules.values() if r.enabled] or list(self.rules.values())
        self.max_radius_m = max([1.0, *(r.radius_m for r in live_rules)])
        self.keep = timedelta(
            hours=max([0.0, *(max(r.open_window_h, r.reopen_window_h) for r in live_rules)])
        )
        # How long after its last report an open incident, and after its closing a closed one,
        # can still be matched (the longest window of any category: a row of another category
        # of the group may have a longer one).
        self.keep_open = timedelta(hours=max([0.0, *(r.open_window_h for r in live_rules)]))
        self.keep_closed = timedelta(hours=max([0.0, *(r.reopen_window_h for r in live_rules)]))
        # Cells two radii wide: a search (one radius each side) then meets at most two cells
        # a side, most often one or two in all. Live incidents are sparse (a few per hectare
        # at a large city's rate), so fewer look-ups pay more than smaller cells.
        self.cell_lat = _CELL_RADII * self.max_radius_m / 110_574.0
        self.cell_lon = self.cell_lat  # set per jurisdiction in start()
        # group → cell key (see _key) → the live incidents in the cell.
        self.cells: dict[str, dict[int, list[_Live]]] = {}
        self.by_asset: dict[tuple[str, int], list[_Live]] = {}
        # (when it expires, in seconds since the epoch; token; incident): float keys compare
        # several times faster than aware datetimes in the heap's sifts.
        self.heap: list[tuple[float, int, _Live]] = []
        self.tokens = itertools.count()
        self.changed: dict[int, _Live] = {}
        self.scales: dict[float, tuple[float, float]] = {}
        self.windows = {
            code: (timedelta(hours=r.open_window_h), timedelta(hours=r.reopen_window_h))
            for code, r in self.rules.items()
        }
        self.outside = 0
        # The closing times that reopened incidents lost (their days' figures change too).
        self.unclosed: list[datetime] = []
        # What is stored for a report that had no candidate at all (most of them).
        self.no_candidate_json = {
            code: _jsonb(
                json.dumps(
                    Decision(kind="new", threshold=rule.threshold, radius_m=rule.radius_m).as_json()
                )
            )
            for code, rule in self.rules.items()
        }

    def start(self, max_abs_lat: float) -> None:
        """Size the grid so a cell is at least the largest radius wide everywhere."""
        kx, _ = grid.metres_per_degree(min(89.0, max_abs_lat))
        self.cell_lon = _CELL_RADII * self.max_radius_m / kx

    def _key(self, lon: float, lat: float) -> int:
        # One int per cell (an int hashes faster than a tuple): |row| stays far below 2**31.
        return math.floor(lon / self.cell_lon) * _CELL_ROW + math.floor(lat / self.cell_lat)

    def add_live(self, inc: _Live) -> None:
        self.cells.setdefault(inc.group, {}).setdefault(self._key(inc.lon, inc.lat), []).append(inc)
        if inc.asset_id is not None:
            self.by_asset.setdefault((inc.group, inc.asset_id), []).append(inc)
        self.reschedule(inc)

    def reschedule(self, inc: _Live) -> None:
        """(Re)compute when the incident stops being matchable, from its last report and
        closing.

        An incident the source closes (now or later) is matchable until the reopen window
        after its closing ends: most histories close most incidents within days, so the live
        set is weeks of incidents, not the open window's months. One never closed stays until
        the open window after its last report ends.
        """
        if inc.closed_at is not None:
            inc.expires = inc.closed_at + self.keep_closed
        else:
            inc.expires = inc.last_t + self.keep_open
        inc.token = next(self.tokens)
        heapq.heappush(self.heap, (inc.expires.timestamp(), inc.token, inc))

    def stale_before(self, now: datetime) -> bool:
        """Return True when some incident is due to be forgotten at ``now``."""
        # A second's slack: a float time can round a microsecond either way, and an incident
        # kept a second longer is still judged exactly (in datetimes) by candidates().
        heap = self.heap
        return bool(heap) and heap[0][0] < now.timestamp() - 1.0

    def evict(self, now: datetime) -> None:
        """Forget incidents no row at ``now`` or later can match (with :meth:`stale_before`'s
        slack)."""
        heap = self.heap
        now_s = now.timestamp() - 1.0
        while heap and heap[0][0] < now_s:
            _, token, inc = heapq.heappop(heap)
            if inc.token != token:
                continue  # rescheduled since; a newer entry stands for it
            cells = self.cells[inc.group]
            key = self._key(inc.lon, inc.lat)
            bucket = cells.get(key)
            if bucket is not None:
                bucket.remove(inc)
                if not bucket:
                    del cells[key]
            if inc.asset_id is not None:
                asset = (inc.group, inc.asset_id)
                owners = self.by_asset.get(asset)
                if owners is not None:
                    owners.remove(inc)
                    if not owners:
                        del self.by_asset[asset]

    def scale(self, lat: float) -> tuple[float, float]:
        """Return metres per degree (lon, lat) near ``lat``: computed once per 0.001° band
        (~110 m), within a millimetre over the tens of metres compared."""
        band = round(lat, 3)
        scale = self.scales.get(band)
        if scale is None:
            scale = self.scales[band] = grid.metres_per_degree(band)
        return scale

    def candidates(
        self,
        code: str,
        lon: float,
        lat: float,
        asset_id: int | None,
        at: datetime,
        rule: Rule,
        scale: tuple[float, float],
    ) -> list[tuple[_Live, float]]:
        """Return the incidents of the group, matchable at ``at`` (scoring.is_live's rule),
        within the radius (inclusive) or on the same asset, with their distance in metres."""
        group = self.group_of[code]
        radius = rule.radius_m
        kx, ky = scale
        pad_lon, pad_lat = radius / kx * 1.001, radius / ky * 1.001
        cell_lon, cell_lat = self.cell_lon, self.cell_lat
        x0, x1 = math.floor((lon - pad_lon) / cell_lon), math.floor((lon + pad_lon) / cell_lon)
        y0, y1 = math.floor((lat - pad_lat) / cell_lat), math.floor((lat + pad_lat) / cell_lat)
        near: list[_Live] = []
        cells = self.cells.get(group)
        if cells:
            get = cells.get
            for row in range(x0 * _CELL_ROW, (x1 + 1) * _CELL_ROW, _CELL_ROW):
                for key in range(row + y0, row + y1 + 1):
                    bucket = get(key)
                    if bucket:
                        near += bucket
        if not near and (asset_id is None or (group, asset_id) not in self.by_asset):
            return []  # nothing near: most rows, and nothing else to do for them
        enabled = self.enabled_in_group.get(group, frozenset())
        open_window, reopen_window = self.windows[code]
        seen: dict[int, tuple[_Live, float]] = {}
        for inc in near:
            d = math.hypot((inc.lon - lon) * kx, (inc.lat - lat) * ky)
            if d <= radius and _matchable(inc, at, enabled, open_window, reopen_window):
                seen[inc.id] = (inc, d)
        if asset_id is not None:
            for inc in self.by_asset.get((group, asset_id), ()):
                if inc.id not in seen and _matchable(inc, at, enabled, open_window, reopen_window):
                    seen[inc.id] = (inc, grid.distance_m(lon, lat, inc.lon, inc.lat))
        return list(seen.values())

    def decide(
        self,
        code: str,
        at: datetime,
        lon: float,
        lat: float,
        asset_id: int | None,
        address: str | None,
        scale: tuple[float, float],
        description: str | None = None,
    ) -> tuple[Decision | None, _Live | None]:
        """Return the decision and the incident to join (None: open a new one). The decision
        is None when there was no matchable candidate at all."""
        rule = self.rules[code]
        if not rule.enabled:
            return Decision(kind="off", threshold=rule.threshold, radius_m=rule.radius_m), None
        found = self.candidates(code, lon, lat, asset_id, at, rule, scale)
        if not found:
            return None, None
        by_id = {inc.id: inc for inc, _ in found}
        candidates = [
            Candidate(
                incident_id=inc.id,
                category_code=inc.category,
                status=_CLOSED
                if inc.closed_at is not None and inc.closed_at <= at
                else ("new" if inc.status == _CLOSED else inc.status),
                distance_m=d,
                last_report_at=inc.last_t,
                closed_at=inc.closed_at,
                asset_id=inc.asset_id,
                addresses=inc.normalised() if address else (),
                descriptions=tuple(inc.descriptions) if description else (),
            )
            for inc, d in found
        ]
        new = NewReport(
            category_code=code,
            at=at,
            asset_id=asset_id,
            address=normalise_address(address),
            description=description if rule.model is not None else None,
        )
        decision = decide(new, candidates, rule, at)
        target = by_id.get(decision.incident_id) if decision.incident_id is not None else None
        return decision, target


# Placement, set-based (each statement one pass over the staged rows, using the indexes). The
# jurisdiction's wards (with their map's validity) and the assets of the snapping types within
# the staged rows' extent are first copied beside the staged rows, so that every join is
# between tables of the session (Citus joins no distributed table to a session's own):
# - the ward on the ward map in force at the row's time; on a shared boundary the code that
#   sorts first, as online intake. The wards drive the join, each probing the staged points'
#   own gist index: one ward's polygon meets many points in a row, so PostGIS prepares it once
#   (measured 4.6× faster than one look-up per row);
# - the asset: the nearest of the category's asset type within its snap radius (KNN on
#   geography), for the rows of categories that snap;
# - for rows in no ward, when the import keeps or places such rows, the nearest ward within
#   %(within)s metres (the geometry box only narrows the search to the wards nearby).
_PLACE_SQL = (
    "CREATE INDEX import_rows_pt ON import_rows USING gist (pt) WHERE skip IS NULL",
    "ANALYZE import_rows",
    """
CREATE TEMP TABLE import_ward_pool AS
SELECT w.id, w.code, w.geom, m.valid_from, m.valid_to
FROM wards AS w
JOIN ward_maps AS m ON m.jurisdiction_id = w.jurisdiction_id AND m.id = w.ward_map_id
WHERE w.jurisdiction_id = CAST(%(jid)s AS smallint)
""",
    "CREATE INDEX ON import_ward_pool USING gist (geom)",
    "ANALYZE import_ward_pool",
    """
CREATE TEMP TABLE import_asset_pool AS
SELECT a.id, a.asset_type, a.geom
FROM assets AS a
WHERE a.jurisdiction_id = CAST(%(jid)s AS smallint)
  AND a.asset_type IN (SELECT DISTINCT asset_type FROM import_rows
                       WHERE skip IS NULL AND asset_type IS NOT NULL)
  AND a.geom && (SELECT ST_Expand(ST_SetSRID(CAST(ST_Extent(pt) AS geometry), 4326),
                                  max(snap_m) / (110000.0 * greatest(
                                      cos(radians(max(abs(lat)) + 1.0)), 0.01)))
                 FROM import_rows WHERE skip IS NULL AND asset_type IS NOT NULL)
""",
    "CREATE INDEX ON import_asset_pool USING gist (CAST(geom AS geography))",
    "ANALYZE import_asset_pool",
    """
CREATE TEMP TABLE import_wards AS
SELECT DISTINCT ON (r.seq) r.seq, w.id AS ward_id
FROM import_ward_pool AS w
JOIN import_rows AS r ON ST_Covers(w.geom, r.pt)
 AND w.valid_from <= r.t AND (w.valid_to IS NULL OR r.t < w.valid_to)
WHERE r.skip IS NULL
ORDER BY r.seq, w.code
""",
    "ANALYZE import_wards",
    """
CREATE TEMP TABLE import_assets AS
SELECT r.seq, a.id AS asset_id
FROM import_rows AS r
CROSS JOIN LATERAL (
    SELECT a.id
    FROM import_asset_pool AS a
    WHERE a.asset_type = r.asset_type
      AND ST_DWithin(CAST(a.geom AS geography), CAST(r.pt AS geography), r.snap_m)
    ORDER BY CAST(a.geom AS geography) <-> CAST(r.pt AS geography)
    LIMIT 1
) AS a
WHERE r.skip IS NULL AND r.asset_type IS NOT NULL
""",
    """
CREATE TEMP TABLE import_near AS
SELECT r.seq, n.id AS near_ward_id
FROM import_rows AS r
CROSS JOIN LATERAL (
    SELECT w.id
    FROM import_ward_pool AS w
    WHERE w.valid_from <= r.t AND (w.valid_to IS NULL OR r.t < w.valid_to)
      AND w.geom && ST_Expand(r.pt, %(within)s / (110000.0 * greatest(cos(radians(r.lat)), 0.01)))
      AND ST_DWithin(CAST(w.geom AS geography), CAST(r.pt AS geography), %(within)s)
    ORDER BY ST_Distance(CAST(w.geom AS geography), CAST(r.pt AS geography)), w.code
    LIMIT 1
) AS n
WHERE r.skip IS NULL AND %(near)s
  AND NOT EXISTS (SELECT FROM import_wards AS p WHERE p.seq = r.seq)
""",
    "ANALYZE import_assets",
    "ANALYZE import_near",
)

# The placed rows in time order; rows of the same time keep the tie-break column's order
# (numbers as numbers), then the file's.
_REPLAY_SQL = """
SELECT r.seq, r.ext_id, r.t, r.category, r.lon, r.lat, r.address, r.description, r.closed_at,
       p.ward_id, a.asset_id, n.near_ward_id
FROM import_rows AS r
LEFT JOIN import_wards AS p ON p.seq = r.seq
LEFT JOIN import_assets AS a ON a.seq = r.seq
LEFT JOIN import_near AS n ON n.seq = r.seq
WHERE r.skip IS NULL
ORDER BY r.t, r.tie_num, r.tie, r.seq
"""

_OUTSIDE = "outside the jurisdiction"


def _prepare(reader: psycopg.Connection[Any], replay: _Replay) -> int:
    """Size the grid for the staged rows and load the stored incidents still live when they
    start; return how many rows are to be placed and decided."""
    extent = reader.execute(
        "SELECT min(t), max(abs(lat)), count(*) FROM import_rows WHERE skip IS NULL"
    ).fetchone()
    assert extent is not None
    first_t, max_abs_lat, todo = extent
    if todo:
        replay.start(float(max_abs_lat))
        _load_existing(reader, replay, first_t)
    return int(todo)


def _place(reader: psycopg.Connection[Any], replay: _Replay) -> None:
    """Find every staged row's ward, asset and (outside the wards) nearest ward, set-based."""
    params = {
        "jid": replay.jid,
        "near": replay.outside_rule != "skip",
        "within": replay.outside_within_m,
    }
    for statement in _PLACE_SQL:
        reader.execute(statement, params)


def _dedup(
    reader: psycopg.Connection[Any],
    writer: psycopg.Connection[Any],
    ids: psycopg.Connection[Any],
    replay: _Replay,
    results: IO[str] | None,
    progress: Progress,
    *,
    todo: int,
) -> None:
    """Replay the placed rows in time order; write incidents and reports as it goes."""
    rows_in: queue.Queue[list[tuple[Any, ...]] | BaseException | None] = queue.Queue(maxsize=2)
    batches_out: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
    stop = threading.Event()
    failure: list[BaseException] = []
    fetcher = threading.Thread(target=_fetch_batches, args=(reader, rows_in, stop), daemon=True)
    writer_thread = threading.Thread(
        target=_write_batches,
        args=(writer, batches_out, failure, replay.summary.phases_s),
        daemon=True,
    )
    fetcher.start()
    writer_thread.start()
    out = csv.writer(results) if results is not None else None
    done = 0
    try:
        while True:
            rows = rows_in.get()
            if rows is None:
                break
            if isinstance(rows, BaseException):
                raise rows
            batch, lines = _replay_batch(ids, replay, rows)
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
    if failure:
        raise failure[0]
    _apply_changes(writer, replay)
    replay.summary.skipped[_OUTSIDE] += replay.outside


def _fetch_batches(
    conn: psycopg.Connection[Any],
    rows_in: queue.Queue[list[tuple[Any, ...]] | BaseException | None],
    stop: threading.Event,
) -> None:
    """Stream the rows in time order, a batch at a time, until done or told to stop."""
    try:
        with conn.cursor(name="import_replay", binary=True) as cursor:
            cursor.execute(_REPLAY_SQL)
            while not stop.is_set():
                rows = cursor.fetchmany(BATCH_ROWS)
                if not rows:
                    break
                rows_in.put(rows)
        rows_in.put(None)
    except BaseException as exc:
        rows_in.put(exc)


def _load_existing(reader: psycopg.Connection[Any], replay: _Replay, first_t: datetime) -> None:
    """Make the stored incidents that are still live when the file starts into candidates."""
    rows = reader.execute(
        """
        SELECT i.id, i.category_code, i.status, ST_X(i.geom), ST_Y(i.geom), i.asset_id,
               i.opened_at, i.closed_at, agg.last_t, agg.addresses, agg.reports
        FROM incidents AS i
        CROSS JOIN LATERAL (
            SELECT max(r.reported_at) AS last_t,
                   array_agg(r.address) FILTER (WHERE r.address IS NOT NULL) AS addresses,
                   array_agg(ARRAY[r.id::text, ST_X(r.geom)::text, ST_Y(r.geom)::text,
                                   coalesce(r.external_id, r.tracking_id)]) AS reports
            FROM reports AS r
            WHERE r.jurisdiction_id = i.jurisdiction_id AND r.incident_id = i.id
        ) AS agg
        WHERE i.jurisdiction_id = CAST(%(jid)s AS smallint)
          AND i.status <> ALL (%(dead)s)
          AND (i.closed_at IS NULL OR i.closed_at >= %(since)s)
          AND agg.last_t >= %(since)s
        """,
        {"jid": replay.jid, "dead": list(UNMATCHABLE_STATUSES), "since": first_t - replay.keep},
    ).fetchall()
    for row in rows:
        (inc_id, code, status, lon, lat, asset_id, opened_at, closed_at, last_t, addrs, reps) = row
        if code not in replay.group_of:
            continue
        live = _Live(
            id=inc_id,
            category=code,
            group=replay.group_of[code],
            lon=lon,
            lat=lat,
            asset_id=asset_id,
            opened_at=opened_at,
            last_t=last_t,
            closed_at=closed_at,
            status=status,
        )
        for address in addrs or ():
            live.add_address(address)
        live.reports = [(int(r[0]), float(r[1]), float(r[2]), r[3]) for r in reps]
        replay.add_live(live)


def _replay_batch(
    ids: psycopg.Connection[Any], replay: _Replay, rows: list[tuple[Any, ...]]
) -> tuple[_Batch, list[tuple[Any, ...]]]:
    """Decide a batch of rows (in time order); return what to write and the report lines."""
    jid = replay.jid
    summary = replay.summary
    n = len(rows)
    # Ids from the tables' own sequences, reserved for the batch (a rolled-back import only
    # leaves a gap).
    report_ids = iter(_next_ids(ids, "reports", n))
    incident_ids = iter(_next_ids(ids, "incidents", n))
    tracking = iter(new_tracking_ids(n))
    batch = _Batch()
    lines: list[tuple[Any, ...]] = []
    heap = replay.heap
    terms = replay.terms
    group_of = replay.group_of
    outside_rule = replay.outside_rule
    # The incidents opened in this batch, by category: their due times are counted together.
    opened_by_code: dict[str, list[int]] = {}
    for row in rows:
        (
            seq,
            ext_id,
            at,
            code,
            lon,
            lat,
            address,
            description,
            closed_at,
            ward_id,
            asset_id,
            near,
        ) = row
        if ward_id is None:
            near_ward_id = near
            if near_ward_id is None:
                replay.outside += 1
                lines.append((seq, None, None, None, None, None, _OUTSIDE, None))
                continue
            if outside_rule == "nearest-ward":
                ward_id = near_ward_id
                summary.nearest_ward += 1
            else:
                summary.kept_outside += 1
        if heap and heap[0][0] < at.timestamp() - 1.0:  # replay.stale_before(at), inline
            replay.evict(at)
        scale = replay.scale(lat)
        with_model = replay.rules[code].model is not None
        decision, target = replay.decide(
            code, at, lon, lat, asset_id, address, scale, description if with_model else None
        )
        report_id = next(report_ids)
        point = _ewkb_point(lon, lat)
        matched_report: int | None = None
        matched_ext: str | None = None
        if target is None:
            inc = _Live(
                id=next(incident_ids),
                category=code,
                group=group_of[code],
                lon=lon,
                lat=lat,
                asset_id=asset_id,
                opened_at=at,
                last_t=at,
                closed_at=closed_at,
                status=_CLOSED if closed_at is not None else "new",
            )
            opening = opened_by_code.get(code)
            if opening is None:
                opening = opened_by_code[code] = []
            opening.append(len(batch.incidents))
            batch.incidents.append(
                [
                    jid,
                    inc.id,
                    code,
                    inc.status,
                    point,
                    ward_id,
                    asset_id,
                    at,
                    None,  # due_at, set below for the batch at once
                    closed_at,
                    closed_at or at,
                ]
            )
            summary.incidents_opened += 1
            if decision is not None and decision.kind == "off":
                summary.off += 1
            replay.add_live(inc)
        else:
            inc = target
            assert decision is not None
            reports = inc.reports
            if len(reports) == 1:
                nearest = reports[0]
            else:
                kx, ky = scale
                nearest = min(
                    reports, key=lambda r: (math.hypot((r[1] - lon) * kx, (r[2] - lat) * ky), r[0])
                )
            matched_report, matched_ext = nearest[0], nearest[3]
            if decision.kind == "reopened":
                # The incident was closed when this report came: it is open again from now,
                # until this report's own closing (if the source closed it).
                if inc.closed_at is not None:
                    replay.unclosed.append(inc.closed_at)
                inc.closed_at = closed_at
                inc.status = _CLOSED if closed_at is not None else "reopened"
                replay.changed[inc.id] = inc
                summary.reopened += 1
            else:
                summary.matched += 1
            inc.last_t = at
            replay.reschedule(inc)
        inc.reports.append((report_id, lon, lat, ext_id))
        if address:
            inc.add_address(address)
        if description and with_model and len(inc.descriptions) < 20:
            inc.descriptions.append(description)
        if decision is None:  # no candidate at all: the common case, kept cheap
            kind, score, signals, fired = "new", None, replay.no_candidate_json[code], ""
        else:
            best = decision.best
            kind = decision.kind
            score = None if best is None else round(best.score, 4)
            signals = _jsonb(_encode_json(decision.as_json()))
            fired = "" if best is None else fired_text(best.fired)
        batch.reports.append(
            (
                jid,
                report_id,
                next(tracking),
                inc.id,
                code,
                description or "",
                address,
                point,
                ward_id,
                asset_id,
                ext_id,
                at,
                kind,
                score,
                signals,
                matched_report,
                "import",
                "import",
            )
        )
        lines.append((seq, inc.id, matched_ext, kind, score, fired, None, ward_id))
    incidents = batch.incidents
    for code, positions in opened_by_code.items():
        # Due by the category's SLA in its business calendar, as at intake.
        due = due_at_many(terms[code], [incidents[k][_OPENED_AT] for k in positions])
        for k, due_at in zip(positions, due, strict=True):
            incidents[k][_DUE_AT] = due_at
    return batch, lines


def _next_ids(conn: psycopg.Connection[Any], table: str, n: int) -> list[int]:
    """Return ``n`` new ids from the sequence of ``table``'s id column."""
    row = conn.execute(
        "SELECT array_agg(nextval(CAST(%s AS regclass))) FROM generate_series(1, %s)",
        (_sequence_of(conn, table), n),
    ).fetchone()
    assert row is not None
    ids: list[int] = row[0]
    return ids


def _sequence_of(conn: psycopg.Connection[Any], table: str) -> str:
    # Resolved once per call of _next_ids, not once per id (that is eight times slower).
    row = conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()
    assert row is not None
    name: str = row[0]
    return name


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
_OPENED_AT, _DUE_AT = _INCIDENT_COLUMNS.index("opened_at"), _INCIDENT_COLUMNS.index("due_at")
_BYTEA_OID = 17
# A point as PostGIS's binary input reads it: extended WKB, little-endian, with the SRID flag
# and SRID 4326. Packed here once per row, the server decodes it without parsing any text.
_EWKB_POINT = struct.Struct("<BIIdd")
_EWKB_POINT_SRID = 0x20000001
# jsonb's binary input: a version byte, then the JSON text.
_JSONB_V1 = b"\x01"


def _ewkb_point(lon: float, lat: float) -> bytes:
    """Return a 4326 point as the extended WKB that PostGIS's binary COPY input reads."""
    return _EWKB_POINT.pack(1, _EWKB_POINT_SRID, 4326, lon, lat)


# jsonb keeps no whitespace, so none is written; the decisions hold no cycles to look for.
_encode_json = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def _jsonb(text: str) -> bytes:
    """Return JSON text as jsonb's binary COPY input."""
    return _JSONB_V1 + text.encode()


def _copy_types(conn: psycopg.Connection[Any], table: str, columns: Sequence[str]) -> list[int]:
    """Return the type oids of ``columns`` for a binary COPY: geometry and jsonb columns are
    sent as bytes already in their binary input form (:func:`_ewkb_point`, :func:`_jsonb`)."""
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


def _write_batches(
    conn: psycopg.Connection[Any],
    out: queue.Queue[_Batch | None],
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
BULK_MIN_ROWS = 20_000
_BULK_LOCK_WAIT = "2s"
_BULK_TABLES = ("incidents", "reports")


@dataclass(frozen=True)
class _HeldKey:
    table: str
    name: str
    definition: str


def _hold_for_bulk(
    conn: psycopg.Connection[Any], *, rows: int, bulk: bool | None
) -> list[_HeldKey] | None:
    """Take incidents and reports for a bulk load and drop their foreign keys; return the
    keys to add back (None: the load is written with the keys in place, row by row)."""
    if bulk is False or rows == 0:
        return None
    citus = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'citus'").fetchone()
    if citus is None or citus[0]:
        return None  # Citus checks the keys on the shards, colocated
    found = conn.execute("SELECT EXISTS (SELECT 1 FROM reports)").fetchone()
    assert found is not None
    stored = found[0]
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
    except psycopg.errors.LockNotAvailable:
        return None  # in use: written row by row with the keys in place
    finally:
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (wait[0],))
    return keys


def _restore_constraints(conn: psycopg.Connection[Any], keys: list[_HeldKey]) -> None:
    """Add back the foreign keys dropped for a bulk load, each checked over the whole table
    in one query: a row that breaks one fails the import (nothing is stored)."""
    for table in _BULK_TABLES:
        mine = [k for k in keys if k.table == table]
        if mine:
            conn.execute(
                f"ALTER TABLE {table} "
                + ", ".join(f'ADD CONSTRAINT "{k.name}" {k.definition}' for k in mine)
            )


def _touched_days(reader: psycopg.Connection[Any], tz_name: str) -> set[date]:
    """Return the local days (in the import's time zone) on which imported rows were
    reported or closed: the days whose summaries the import changes."""
    rows = reader.execute(
        """
        SELECT DISTINCT CAST(timezone(%(tz)s, d) AS date)
        FROM import_rows AS r
        LEFT JOIN import_wards AS p ON p.seq = r.seq
        LEFT JOIN import_near AS n ON n.seq = r.seq
        CROSS JOIN LATERAL (VALUES (r.t), (r.closed_at)) AS v (d)
        WHERE r.skip IS NULL AND d IS NOT NULL AND (p.seq IS NOT NULL OR n.seq IS NOT NULL)
        """,
        {"tz": tz_name},
    ).fetchall()
    return {d for (d,) in rows}


def _apply_changes(writer: psycopg.Connection[Any], replay: _Replay) -> None:
    """Store the final status of incidents that imported rows reopened."""
    if not replay.changed:
        return
    writer.execute(
        "CREATE TEMP TABLE import_changes (id bigint, status text, closed_at timestamptz) "
        "ON COMMIT DROP"
    )
    with writer.cursor().copy("COPY import_changes FROM STDIN") as copy:
        for inc in replay.changed.values():
            copy.write_row((inc.id, inc.status, inc.closed_at))
    writer.execute(
        """
        UPDATE incidents AS i SET status = c.status, closed_at = c.closed_at,
               updated_at = now(), version = i.version + 1
        FROM import_changes AS c
        WHERE i.jurisdiction_id = CAST(%(jid)s AS smallint) AND i.id = c.id
        """,
        {"jid": replay.jid},
    )


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
