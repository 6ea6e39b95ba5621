"""A city's labelled history for ``geo311 dedup fit``: read from its export (the same mapping
as ``geo311 import reports`` plus which rows are duplicates), or from what geo311 itself stored
(each report's incident, after the dispatchers' merges and splits)."""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo311.kernel.errors import ValidationFailed
from geo311.resident.dedup.importer import ImportFailed, ImportMapping
from geo311.resident.dedup.learning import HistoryRow, history_row


@dataclass(frozen=True)
class DupLabel:
    """Which rows the city marked duplicate: those whose ``column`` holds one of ``values``
    (compared without case; an empty ``values`` means true/1/yes)."""

    column: str
    values: frozenset[str] = frozenset()

    @classmethod
    def of(cls, column: str, values: Iterable[str] = ()) -> DupLabel:
        return cls(column, frozenset(v.strip().casefold() for v in values if v.strip()))

    def is_duplicate(self, raw: str) -> bool:
        value = raw.strip().casefold()
        if self.values:
            return value in self.values
        return value in ("true", "1", "yes", "t", "y")


@dataclass
class HistorySummary:
    """What reading the file found."""

    rows: int = 0
    used: int = 0
    duplicates: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def _time(raw: str, fmt: str | None, tz: ZoneInfo) -> datetime | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = datetime.strptime(raw, fmt) if fmt else datetime.fromisoformat(raw)
    except ValueError:
        return None
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def _float(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_history(
    path: Path,
    *,
    mapping: ImportMapping,
    groups: Mapping[str, str],
    label: DupLabel,
    timezone: str,
) -> tuple[list[HistoryRow], HistorySummary]:
    """Return the file's usable rows (time order) and what was skipped.

    ``groups`` is each active category code's group. Raises ImportFailed when the file cannot
    be read or a mapped column (or the label column) is missing.
    """
    tz = ZoneInfo(mapping.timezone or timezone)
    c = mapping.columns
    summary = HistorySummary()
    rows: list[HistoryRow] = []
    closed_statuses = {s.casefold() for s in mapping.closed_statuses}
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ImportFailed(f"{path}: cannot read the file: {exc}") from exc
    with handle:
        reader = csv.DictReader(handle)
        header = set(reader.fieldnames or ())
        needed = {"id": c.id, "time": c.time, "category": c.category, "lat": c.lat, "lon": c.lon}
        missing = [f"{k} ({v!r})" for k, v in needed.items() if v not in header]
        if label.column not in header:
            missing.append(f"duplicate label ({label.column!r})")
        if missing:
            raise ImportFailed(f"{path}: no column for " + ", ".join(missing))

        def opt(rec: dict[str, str], name: str | None) -> str:
            return (rec.get(name) or "") if name and name in header else ""

        for rec in reader:
            summary.rows += 1
            raw_cat = (rec[c.category] or "").strip()
            code = mapping.categories.get(raw_cat) if mapping.categories else raw_cat
            if code is None or code not in groups:
                summary.skipped[f"category {raw_cat!r} not fitted"] += 1
                continue
            at = _time(rec[c.time] or "", mapping.time_format, tz)
            lon, lat = _float(rec[c.lon] or ""), _float(rec[c.lat] or "")
            if at is None:
                summary.skipped["no valid time"] += 1
                continue
            if lon is None or lat is None or not (-180 < lon <= 180 and -90 < lat < 90):
                summary.skipped["no valid location"] += 1
                continue
            if lon == 0.0 and lat == 0.0:
                summary.skipped["no valid location"] += 1
                continue
            closed_at = _time(opt(rec, c.closed), mapping.time_format, tz)
            if closed_at is None and opt(rec, c.status).strip().casefold() in closed_statuses:
                closed_at = at
            is_dup = label.is_duplicate(rec[label.column] or "")
            rows.append(
                history_row(
                    id=rec[c.id] or str(summary.rows),
                    at=at,
                    category=code,
                    group=groups[code],
                    lon=lon,
                    lat=lat,
                    label=is_dup,
                    address=opt(rec, c.address) or None,
                    description=opt(rec, c.description)[:400] or None,
                    closed_at=closed_at,
                )
            )
            summary.used += 1
            summary.duplicates += is_dup
    if not rows:
        raise ValidationFailed(f"{path}: no row of an active category with a time and a place")
    rows.sort(key=lambda r: r.at)
    return rows, summary


# --- geo311's own history ------------------------------------------------------------------------

# A report is a duplicate when an earlier report shares its incident *now*: what intake and the
# importer decided, as the dispatchers left it (a merge moved the report onto the incident it
# repeats; a split took it out onto an incident of its own). Ties on the time go by id, the order
# intake stored them in. The window is partitioned by the city too, so on Citus it runs on one
# shard. A report whose merge or split was undone counts as it is now.
_OWN_HISTORY = text(
    """
    SELECT r.id, r.reported_at, r.category_code, r.address, r.description, r.asset_id,
           ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat, i.closed_at,
           row_number() OVER (
               PARTITION BY r.jurisdiction_id, r.incident_id ORDER BY r.reported_at, r.id
           ) > 1 AS duplicate,
           r.dedup_decision IN ('matched', 'reopened') AS joined_at_intake
    FROM reports AS r
    JOIN incidents AS i ON i.jurisdiction_id = r.jurisdiction_id AND i.id = r.incident_id
    WHERE r.jurisdiction_id = :jid AND r.category_code = ANY(:codes)
    """
)

_MOVE_COUNTS = text(
    """
    SELECT m.kind, count(*) AS n
    FROM incident_moves AS m
    WHERE m.jurisdiction_id = :jid AND m.undone_at IS NULL
    GROUP BY m.kind
    """
)


@dataclass
class OwnHistorySummary:
    """What geo311's own history holds: reports, how many are duplicates, and how many of
    those labels the dispatchers set against what intake decided."""

    rows: int = 0
    duplicates: int = 0
    merges: int = 0
    splits: int = 0
    # Reports whose label differs from intake's decision (a dispatcher corrected it).
    corrected: int = 0


def own_history(
    session: Session, *, jurisdiction_id: int, groups: Mapping[str, str]
) -> tuple[list[HistoryRow], OwnHistorySummary]:
    """Return the reports of the categories in ``groups`` (code → group) as labelled history
    rows (time order), and a summary. Raises ValidationFailed when there are none."""
    summary = OwnHistorySummary()
    rows: list[HistoryRow] = []
    found = session.execute(_OWN_HISTORY, {"jid": jurisdiction_id, "codes": sorted(groups)})
    for r in found:
        rows.append(
            history_row(
                id=str(r.id),
                at=r.reported_at,
                category=r.category_code,
                group=groups[r.category_code],
                lon=r.lon,
                lat=r.lat,
                label=bool(r.duplicate),
                address=r.address,
                description=(r.description or "")[:400] or None,
                closed_at=r.closed_at,
                asset_id=r.asset_id,
            )
        )
        summary.duplicates += bool(r.duplicate)
        summary.corrected += bool(r.duplicate) != bool(r.joined_at_intake)
    summary.rows = len(rows)
    for kind, n in session.execute(_MOVE_COUNTS, {"jid": jurisdiction_id}).all():
        if kind == "merge":
            summary.merges = n
        elif kind == "split":
            summary.splits = n
    if not rows:
        raise ValidationFailed("no stored report of a category with duplicate detection on")
    # Reports stored in one transaction may share a time: keep intake's order among them.
    rows.sort(key=lambda h: (h.at, int(h.id)))
    return rows, summary
