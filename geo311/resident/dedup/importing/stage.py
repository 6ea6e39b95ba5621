"""Step 1 of an import, **stage**: the file read row by row, checked, mapped and streamed with
binary COPY into a temporary table; bad rows kept there with the reason."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import psycopg

from geo311.kernel.errors import FieldError
from geo311.resident.dedup.importing.mapping import (
    ColumnMap,
    ImportFailed,
    ImportMapping,
    ImportSummary,
    Progress,
)
from work_orders.models import ServiceCategory

STAGING_DDL = """
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


def stage(
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
