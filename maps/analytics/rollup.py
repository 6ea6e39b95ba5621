"""The planner's summary tables: the ward table's counts per local day, ward and category, and
the narrow time-to-close rows its quantiles sort; how they are kept right, and how the ward
table reads them.

Exact for any period of whole local days, by construction:

- A day is read from the summaries only when it is *built* (``analytics_rollup_days``) and no
  change is pending for it (``analytics_changes``, appended by the writes themselves through
  ``work_orders.changes``: every audited change to an incident, work order or report, and a
  bulk write's span). Every other day of the period is counted from the source tables by the
  *same* SQL that builds a day, so a stale day never shows a stale figure.
- What depends on the time it is asked is never stored: the SLA breach of work whose clock
  still runs (not resolved, not on hold) is counted live from the running work orders (a
  partial index), and the backlog at the period's end (or now) and its age from the incidents
  alive at that instant (a GiST index on their [opened, closed] span).
- ``refresh`` takes the pending changes in: it rebuilds the days they touch (and any day with
  data not built yet), then deletes exactly the changes it read, so a change committed while it
  ran stays pending. It runs as ``geo311 analytics refresh`` (cron, or after an import).

Day *d* holds the incidents opened and the reports received in [local midnight of *d*, of
*d* + 1), in the jurisdiction's time zone, which is how ``queries.resolve_period`` bounds a
period. A work order counts with its incident when opened the same local day (work orders are
opened with their incident, at the same instant).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from maps.analytics.measures import CategoryCounts, Counted, Quantiles

# More stale days than this in a period: the ward table is counted from the source tables.
MAX_STALE_DAYS = 31

_COUNT_COLUMNS = (
    "reports",
    "duplicates",
    "incidents",
    "closed",
    "decided",
    "breached",
    "on_time",
    "reopened",
    "fixed_yes",
    "fixed_no",
)

# The days asked for, as instant ranges: d(day, s, e).
_DAYS = """
    SELECT * FROM unnest(CAST(:days AS date[]), CAST(:starts AS timestamptz[]),
                         CAST(:ends AS timestamptz[])) AS d(day, s, e)
"""

# One row per (day, ward, category) of the given days: what a built day stores. The SLA counts
# are those of stopped clocks only (resolved, or on hold: clock = paused_at or resolved_at, as
# work_orders.queries.sla_clock); running work is counted live (_RUNNING_SQL).
# The incidents reopened, and the residents' "fixed?" answers, from the audit trail since the
# parameter named by ``start``: counted the same way by the
# summaries here and by the ward table's query (maps.analytics.queries).
REOPENED_AND_ANSWERS = """reopened AS (
    SELECT DISTINCT entity_id AS incident_id
    FROM audit_events
    WHERE jurisdiction_id = :jid AND entity = 'incident' AND to_state = 'reopened'
      AND at >= :{start}  -- nothing happens to an incident before it is opened
), answers AS (
    SELECT entity_id AS incident_id,
           count(*) FILTER (WHERE data->>'answer' = 'fixed') AS yes,
           count(*) FILTER (WHERE data->>'answer' = 'not_fixed') AS no
    FROM audit_events
    WHERE jurisdiction_id = :jid AND entity = 'incident' AND action = 'resident_answer'
      AND at >= :{start}
    GROUP BY entity_id
)"""

_DAY_COUNTS_SQL = """
WITH d AS ({days}), cohort AS (
    SELECT d.day, COALESCE(i.ward_id, 0) AS ward_key, i.category_code AS category, i.id,
           i.closed_at, w.status AS wo_status, w.due_at, w.resolved_at,
           COALESCE(w.paused_at, w.resolved_at) AS clock
    FROM d
    JOIN incidents i ON i.jurisdiction_id = :jid AND i.opened_at >= d.s AND i.opened_at < d.e
    LEFT JOIN work_orders w ON w.jurisdiction_id = i.jurisdiction_id AND w.incident_id = i.id
         AND w.opened_at >= d.s AND w.opened_at < d.e
    WHERE i.status <> 'cancelled'{codes}
), {reopened_and_answers}, incident_counts AS (
    SELECT c.day, c.ward_key, c.category,
           count(*) AS incidents,
           count(*) FILTER (WHERE c.closed_at IS NOT NULL) AS closed,
           count(*) FILTER (WHERE c.wo_status <> 'cancelled' AND c.clock IS NOT NULL
                              AND (c.resolved_at IS NOT NULL OR c.clock >= c.due_at)) AS decided,
           count(*) FILTER (WHERE c.wo_status <> 'cancelled' AND c.clock >= c.due_at) AS breached,
           count(*) FILTER (WHERE c.wo_status <> 'cancelled' AND c.resolved_at IS NOT NULL
                              AND c.clock < c.due_at) AS on_time,
           count(ro.incident_id) AS reopened,
           COALESCE(sum(a.yes), 0) AS fixed_yes, COALESCE(sum(a.no), 0) AS fixed_no
    FROM cohort c
    LEFT JOIN reopened ro ON ro.incident_id = c.id
    LEFT JOIN answers a ON a.incident_id = c.id
    GROUP BY 1, 2, 3
), report_counts AS (
    SELECT d.day, COALESCE(r.ward_id, 0) AS ward_key, r.category_code AS category,
           count(*) AS reports,
           count(*) FILTER (WHERE r.dedup_decision IN ('matched', 'reopened')) AS duplicates
    FROM d
    JOIN reports r ON r.jurisdiction_id = :jid AND r.reported_at >= d.s AND r.reported_at < d.e
    WHERE true{report_codes}
    GROUP BY 1, 2, 3
)
SELECT day, ward_key, category,
       COALESCE(rc.reports, 0) AS reports, COALESCE(rc.duplicates, 0) AS duplicates,
       COALESCE(ic.incidents, 0) AS incidents, COALESCE(ic.closed, 0) AS closed,
       COALESCE(ic.decided, 0) AS decided, COALESCE(ic.breached, 0) AS breached,
       COALESCE(ic.on_time, 0) AS on_time, COALESCE(ic.reopened, 0) AS reopened,
       COALESCE(ic.fixed_yes, 0) AS fixed_yes, COALESCE(ic.fixed_no, 0) AS fixed_no
FROM incident_counts ic FULL JOIN report_counts rc USING (day, ward_key, category)
""".replace("{reopened_and_answers}", REOPENED_AND_ANSWERS.format(start="first_start"))

# One narrow row per incident of the given days: its time to close (None: open) as the source
# query computes it, its span, and the due time of its work while the SLA clock runs.
_DAY_CASES_SQL = """
WITH d AS ({days})
SELECT d.day, i.id AS incident_id, COALESCE(i.ward_id, 0) AS ward_key,
       i.category_code AS category, i.opened_at, i.closed_at,
       CAST(extract(epoch FROM i.closed_at - i.opened_at) / 3600.0 AS float8) AS close_h,
       w.due_at AS running_due_at
FROM d
JOIN incidents i ON i.jurisdiction_id = :jid AND i.opened_at >= d.s AND i.opened_at < d.e
LEFT JOIN (
    -- Grouped, not a LATERAL with an aggregate: Citus cannot push that one down.
    SELECT dw.day, w.incident_id, min(w.due_at) AS due_at
    FROM d AS dw
    JOIN work_orders w ON w.jurisdiction_id = :jid
      AND w.opened_at >= dw.s AND w.opened_at < dw.e
    WHERE w.resolved_at IS NULL AND w.paused_at IS NULL AND w.status <> 'cancelled'
    GROUP BY 1, 2
) w ON w.day = d.day AND w.incident_id = i.id
WHERE i.status <> 'cancelled'{codes}
"""

# The days a change touches: its incident's opening day and the days of that incident's
# reports (a report moved by a merge or split counts on its own day); a bulk write's span.
_CHANGED_DAYS_SQL = """
WITH changed AS (
    SELECT entity, entity_id, start_at, end_at FROM analytics_changes
    WHERE jurisdiction_id = :jid{ids}
), touched AS (
    SELECT entity_id AS incident_id FROM changed WHERE entity = 'incident'
    UNION
    SELECT w.incident_id FROM changed c
    JOIN work_orders w ON w.jurisdiction_id = :jid AND w.id = c.entity_id
    WHERE c.entity = 'work_order'
    UNION
    SELECT r.incident_id FROM changed c
    JOIN reports r ON r.jurisdiction_id = :jid AND r.id = c.entity_id
    WHERE c.entity = 'report' AND r.incident_id IS NOT NULL
), instants AS (
    SELECT i.opened_at AS at FROM touched t
    JOIN incidents i ON i.jurisdiction_id = :jid AND i.id = t.incident_id
    UNION ALL
    SELECT r.reported_at FROM touched t
    JOIN reports r ON r.jurisdiction_id = :jid AND r.incident_id = t.incident_id
    UNION ALL
    SELECT r.reported_at FROM changed c
    JOIN reports r ON r.jurisdiction_id = :jid AND r.id = c.entity_id
    WHERE c.entity = 'report'
)
SELECT (at AT TIME ZONE :tz)::date AS day FROM instants
UNION
SELECT generate_series((start_at AT TIME ZONE :tz)::date,
                       ((end_at - interval '1 microsecond') AT TIME ZONE :tz)::date,
                       interval '1 day')::date
FROM changed WHERE entity = 'period' AND end_at > start_at
"""

# The period's cases meeting {where}: the stored rows of its current days, and the stale days'
# counted afresh.
_CASES_SQL = """
SELECT ward_key, category_code AS category, opened_at, closed_at, close_h, running_due_at
FROM analytics_cases t
WHERE jurisdiction_id = :jid AND day >= :first AND day <= :last
  AND day <> ALL(CAST(:stale AS date[])){codes} AND {where}
"""
_FRESH_CASES_SQL = """
UNION ALL
SELECT ward_key, category, opened_at, closed_at, close_h, running_due_at FROM ({select}) s
WHERE {where}
"""

# SLA breach of work whose clock still runs: decided and breached once now is past due.
_RUNNING_SQL = """
SELECT ward_key, category, count(*) AS late FROM ({cases}) c GROUP BY 1, 2
"""

# The period's incidents not closed by the cutoff (its end, or now if sooner): those whose
# [opened, closed] span holds the cutoff, and any opened after it (only when now is before
# the period's end), with their age then.
_ALIVE = "tstzrange(opened_at, closed_at, '[]') @> CAST(:cutoff AS timestamptz)"
_LATER = (
    "opened_at > CAST(:cutoff AS timestamptz) "
    "AND (closed_at IS NULL OR closed_at >= CAST(:cutoff AS timestamptz))"
)
_BACKLOG_SQL = """
SELECT ward_key, category, GROUPING(ward_key, category) AS level, count(*) AS backlog,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM CAST(:cutoff AS timestamptz) - opened_at) / 3600.0
       ) AS median_age_h
FROM ({cases}) c
GROUP BY GROUPING SETS ((ward_key, category), (ward_key), ())
"""

# Exact quantiles without sorting the period: how many times to close fall in each whole hour,
# per ward (the city's are their sums); then only the hours holding a quantile's rows are read
# and sorted.
_HOURS_SQL = """
SELECT ward_key, floor(close_h)::bigint AS hour, count(*) AS n FROM ({cases}) c GROUP BY 1, 2
"""
_IN_HOURS_SQL = """
SELECT ward_key, floor(close_h)::bigint AS hour, close_h FROM ({cases}) c
"""

_SUMS = ", ".join(f"sum({c}) AS {c}" for c in _COUNT_COLUMNS)
_COLUMNS = ", ".join(_COUNT_COLUMNS)

_DELETE_SQL = "DELETE FROM {table} WHERE jurisdiction_id = :jid AND day = ANY(:days)"
_INSERT_COUNTS_SQL = """
INSERT INTO analytics_day_counts (jurisdiction_id, day, ward_key, category_code, {columns})
SELECT :jid, day, ward_key, category, {columns} FROM ({select}) t
"""
_INSERT_CASES_SQL = """
INSERT INTO analytics_cases (jurisdiction_id, day, incident_id, ward_key, category_code,
                             opened_at, closed_at, close_h, running_due_at)
SELECT :jid, day, incident_id, ward_key, category, opened_at, closed_at, close_h,
       running_due_at
FROM ({select}) t
"""
# The period's counts: the stored rows of its current days, the stale days counted afresh.
_STORED_COUNTS_SQL = """
SELECT ward_key, category_code AS category, {sums} FROM analytics_day_counts t
WHERE jurisdiction_id = :jid AND day >= :first AND day <= :last
  AND day <> ALL(CAST(:stale AS date[])){codes}
GROUP BY 1, 2
"""
_FRESH_COUNTS_SQL = """
UNION ALL
SELECT ward_key, category, {sums} FROM ({select}) s GROUP BY 1, 2
"""


@dataclass(frozen=True)
class Refreshed:
    """What a refresh did: days rebuilt, changes taken in."""

    days: int
    changes: int


def _timezone(session: Session, jurisdiction_id: int) -> str:
    tz = session.scalar(
        text("SELECT timezone FROM jurisdictions WHERE id = :jid"), {"jid": jurisdiction_id}
    )
    if tz is None:
        raise LookupError(f"no jurisdiction {jurisdiction_id}")
    return str(tz)


def _day_params(days: Sequence[date], timezone: str) -> dict[str, Any]:
    """Return the days as the instant ranges _DAYS unnests (local midnights, as UTC)."""
    tz = ZoneInfo(timezone)
    starts = [datetime.combine(d, time(0), tz).astimezone(UTC) for d in days]
    ends = [datetime.combine(d + timedelta(days=1), time(0), tz).astimezone(UTC) for d in days]
    return {
        "days": list(days),
        "starts": starts,
        "ends": ends,
        # Before any of the days: bounds the audit trail's partial indexes.
        "first_start": min(starts) if starts else datetime.now(UTC),
    }


def _codes(alias: str, column: str, codes: Sequence[str] | None) -> str:
    return f" AND {alias}.{column} = ANY(:codes)" if codes is not None else ""


def changed_days(
    session: Session, *, jurisdiction_id: int, timezone: str, ids: Sequence[int] | None = None
) -> set[date]:
    """Return the local days pending changes touch (those with ``ids``, or all)."""
    sql = _CHANGED_DAYS_SQL.format(ids=" AND id = ANY(:ids)" if ids is not None else "")
    params = {"jid": jurisdiction_id, "tz": timezone, "ids": list(ids or ())}
    return {row.day for row in session.execute(text(sql), params)}


def stale_days(
    session: Session, *, jurisdiction_id: int, timezone: str, first_day: date, last_day: date
) -> list[date]:
    """Return the days of [first_day, last_day] the summaries cannot answer for: not built,
    or touched by a pending change."""
    built = set(
        session.scalars(
            text(
                "SELECT day FROM analytics_rollup_days WHERE jurisdiction_id = :jid "
                "AND day >= :first AND day <= :last"
            ),
            {"jid": jurisdiction_id, "first": first_day, "last": last_day},
        )
    )
    changed = changed_days(session, jurisdiction_id=jurisdiction_id, timezone=timezone)
    days = (last_day - first_day).days + 1
    return [
        d for d in (first_day + timedelta(n) for n in range(days)) if d not in built or d in changed
    ]


def rebuild_days(session: Session, *, jurisdiction_id: int, days: Iterable[date]) -> int:
    """Recount the given local days from the source tables into the summaries; return how
    many. Set-based: three statements whatever the number of days."""
    chosen = sorted(set(days))
    if not chosen:
        return 0
    timezone = _timezone(session, jurisdiction_id)
    params = {"jid": jurisdiction_id, **_day_params(chosen, timezone)}
    for table in ("analytics_day_counts", "analytics_cases"):
        session.execute(text(_DELETE_SQL.format(table=table)), params)
    counts = _DAY_COUNTS_SQL.format(days=_DAYS, codes="", report_codes="")
    session.execute(text(_INSERT_COUNTS_SQL.format(columns=_COLUMNS, select=counts)), params)
    cases = _DAY_CASES_SQL.format(days=_DAYS, codes="")
    session.execute(text(_INSERT_CASES_SQL.format(select=cases)), params)
    session.execute(
        text(
            # The time is a parameter: Citus refuses now() in DO UPDATE SET (not immutable).
            "INSERT INTO analytics_rollup_days (jurisdiction_id, day, built_at) "
            "SELECT :jid, unnest(CAST(:days AS date[])), :built_at "
            "ON CONFLICT (jurisdiction_id, day) DO UPDATE SET built_at = EXCLUDED.built_at"
        ),
        {**params, "built_at": datetime.now(UTC)},
    )
    session.flush()
    return len(chosen)


def refresh(
    session: Session, *, jurisdiction_id: int, today: date | None = None, rebuild_all: bool = False
) -> Refreshed:
    """Take the pending changes in; return what was done.

    Rebuilds the days the pending changes touch and every day from the first report or
    incident up to ``today`` (local) not built yet (all of them with ``rebuild_all``), then
    deletes the changes it read — by id, so one committed meanwhile stays pending. One refresh
    at a time per jurisdiction (a transaction-scoped advisory lock); writers never wait.
    """
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('geo311.analytics.rollup'), :jid)"),
        {"jid": jurisdiction_id},
    )
    timezone = _timezone(session, jurisdiction_id)
    today = today or datetime.now(ZoneInfo(timezone)).date()
    ids = list(
        session.scalars(
            text("SELECT id FROM analytics_changes WHERE jurisdiction_id = :jid"),
            {"jid": jurisdiction_id},
        )
    )
    days = changed_days(session, jurisdiction_id=jurisdiction_id, timezone=timezone, ids=ids)
    first = session.execute(
        text(
            "SELECT (least((SELECT min(opened_at) FROM incidents WHERE jurisdiction_id = :jid),"
            " (SELECT min(reported_at) FROM reports WHERE jurisdiction_id = :jid))"
            " AT TIME ZONE :tz)::date AS day"
        ),
        {"jid": jurisdiction_id, "tz": timezone},
    ).scalar_one()
    if first is not None and first <= today:
        built = (
            set()
            if rebuild_all
            else set(
                session.scalars(
                    text("SELECT day FROM analytics_rollup_days WHERE jurisdiction_id = :jid"),
                    {"jid": jurisdiction_id},
                )
            )
        )
        span = (today - first).days + 1
        days |= {first + timedelta(n) for n in range(span)} - built
    rebuilt = rebuild_days(session, jurisdiction_id=jurisdiction_id, days=days)
    if ids:
        session.execute(
            text("DELETE FROM analytics_changes WHERE jurisdiction_id = :jid AND id = ANY(:ids)"),
            {"jid": jurisdiction_id, "ids": ids},
        )
    return Refreshed(days=rebuilt, changes=len(ids))


# --- reading: the ward table's counts ----------------------------------------------------


def _unit(ward_key: int) -> int | None:
    return None if ward_key == 0 else ward_key


def count_wards(
    session: Session,
    *,
    jurisdiction_id: int,
    timezone: str,
    first_day: date,
    last_day: date,
    start: datetime,
    end: datetime,
    codes: Sequence[str] | None,
    now: datetime,
) -> Counted | None:
    """Return per ward and category what ``queries`` counts, from the summaries for the built
    days without pending changes and from the source tables for the rest; running work and
    the backlog live. Unit None: cases outside every ward.

    None when more than ``MAX_STALE_DAYS`` of the period are stale (before the first refresh,
    say): counting those day by day would be slower than the source-table query, which the
    caller then runs."""
    stale = stale_days(
        session,
        jurisdiction_id=jurisdiction_id,
        timezone=timezone,
        first_day=first_day,
        last_day=last_day,
    )
    if len(stale) > MAX_STALE_DAYS:
        return None
    params: dict[str, Any] = {
        "jid": jurisdiction_id,
        "first": first_day,
        "last": last_day,
        "stale": stale,
        "codes": list(codes or ()),
        "start": start,
        "end": end,
        "now": now,
        "cutoff": min(end, now),
        **_day_params(stale, timezone),
    }
    out = Counted()
    fresh = ""
    if stale:
        fresh = _FRESH_COUNTS_SQL.format(
            sums=_SUMS,
            select=_DAY_COUNTS_SQL.format(
                days=_DAYS, codes=_codes("i", "category_code", codes),
                report_codes=_codes("r", "category_code", codes),
            ),
        )  # fmt: skip
    counts_sql = (
        _STORED_COUNTS_SQL.format(sums=_SUMS, codes=_codes("t", "category_code", codes)) + fresh
    )
    for row in session.execute(text(counts_sql), params):
        c = out.counts(_unit(row.ward_key), row.category)
        c.add(CategoryCounts(**{k: int(getattr(row, k) or 0) for k in _COUNT_COLUMNS}))

    def cases(where: str) -> str:
        sql = _CASES_SQL.format(codes=_codes("t", "category_code", codes), where=where)
        if stale:
            fresh = _DAY_CASES_SQL.format(days=_DAYS, codes=_codes("i", "category_code", codes))
            sql += _FRESH_CASES_SQL.format(select=fresh, where=where)
        return sql

    running = cases("running_due_at <= CAST(:now AS timestamptz)")
    for row in session.execute(text(_RUNNING_SQL.format(cases=running)), params):
        c = out.counts(_unit(row.ward_key), row.category)
        c.decided += row.late
        c.breached += row.late
    alive = cases(_ALIVE)
    if params["cutoff"] < end:
        alive += " UNION ALL " + cases(_LATER)
    backlog_age: dict[int | None, float | None] = {}
    city_backlog_age: float | None = None
    for row in session.execute(text(_BACKLOG_SQL.format(cases=alive)), params):
        if row.level == 0:
            out.counts(_unit(row.ward_key), row.category).backlog += row.backlog
        elif row.level == 1:
            backlog_age[_unit(row.ward_key)] = row.median_age_h
        else:
            city_backlog_age = row.median_age_h
    close, city_close = _close_quantiles(session, params, cases)
    for unit in set(close) | set(backlog_age):
        q = close.get(unit, (None, None))
        out.quantiles[unit] = Quantiles(q[0], q[1], backlog_age.get(unit))
    out.city_quantiles = Quantiles(city_close[0], city_close[1], city_backlog_age)
    return out


_FRACTIONS = (0.5, 0.9)
_CITY = "city"


def _positions(n: int) -> list[tuple[int, int, float]]:
    """Return, per fraction, the 0-based rows percentile_cont reads among ``n`` sorted values
    and the interpolation weight, computed as PostgreSQL does (so the result is the same to the
    last bit)."""
    out = []
    for f in _FRACTIONS:
        pos = f * (n - 1)
        out.append((math.floor(pos), math.ceil(pos), pos - math.floor(pos)))
    return out


def _close_quantiles(
    session: Session, params: dict[str, Any], cases: Callable[[str], str]
) -> tuple[dict[int | None, tuple[float | None, float | None]], tuple[float | None, float | None]]:
    """Return the median and 90th percentile of time to close per ward and for the city, the
    same numbers percentile_cont gives, reading only the hours that hold them."""
    hours: dict[Any, list[tuple[int, int]]] = {}
    for row in session.execute(text(_HOURS_SQL.format(cases=cases("close_h IS NOT NULL"))), params):
        hours.setdefault(_unit(row.ward_key), []).append((int(row.hour), int(row.n)))
    city: dict[int, int] = {}
    for counts in hours.values():
        for hour, n in counts:
            city[hour] = city.get(hour, 0) + n
    if city:
        hours[_CITY] = list(city.items())
    # Each quantile is read from rows (hour, rank within the hour); collect the hours needed.
    plans: dict[Any, list[tuple[tuple[int, int], tuple[int, int], float, bool]]] = {}
    needed_hours: set[int] = set()
    for unit, counts in hours.items():
        counts.sort()
        starts, total = [], 0
        for _, c in counts:
            starts.append(total)
            total += c

        def place(
            row_index: int, counts: list[tuple[int, int]] = counts, starts: list[int] = starts
        ) -> tuple[int, int]:
            k = bisect.bisect_right(starts, row_index) - 1
            return counts[k][0], row_index - starts[k]

        plans[unit] = []
        for first, second, weight in _positions(total):
            a, b = place(first), place(second)
            needed_hours |= {a[0], b[0]}
            plans[unit].append((a, b, weight, second > first))
    if not plans:
        return {}, (None, None)
    values: dict[tuple[Any, int], list[float]] = {}
    where = "close_h IS NOT NULL AND floor(close_h)::bigint = ANY(CAST(:hours AS bigint[]))"
    for row in session.execute(
        text(_IN_HOURS_SQL.format(cases=cases(where))),
        params | {"hours": sorted(needed_hours)},
    ):
        hour, value = int(row.hour), float(row.close_h)
        values.setdefault((_unit(row.ward_key), hour), []).append(value)
        values.setdefault((_CITY, hour), []).append(value)
    for held in values.values():
        held.sort()

    def quantiles(unit: Any) -> tuple[float | None, float | None]:
        out: list[float | None] = []
        for (h1, r1), (h2, r2), weight, interpolate in plans[unit]:
            low = values[(unit, h1)][r1]
            high = values[(unit, h2)][r2]
            # As PostgreSQL's float8 lerp: low + (high - low) × weight.
            out.append(low + (high - low) * weight if interpolate else low)
        return out[0], out[1]

    per_ward = {unit: quantiles(unit) for unit in plans if unit != _CITY}
    return per_ward, quantiles(_CITY) if _CITY in plans else (None, None)
