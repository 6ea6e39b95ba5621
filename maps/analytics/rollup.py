"""The planner's summary tables: the ward table's counts per local day (and month), ward and
category, and one narrow row per incident for what does not add up; how they are kept right,
and how the ward table and the weekly trends read them.

Exact for any period of whole local days, by construction:

- A day is read from the summaries only when it is *built* (``analytics_rollup_days``) and no
  change is pending for it (``analytics_changes``, appended by the writes themselves through
  ``work_orders.changes``: every audited change to an incident, work order or report, and a
  bulk write's span). Every other day of the period is counted from the source tables by the
  *same* SQL that builds a day, so a stale day never shows a stale figure.
- What depends on the time it is asked is never stored: the SLA breach of work whose clock
  still runs (not resolved, not on hold) is counted live from the running work orders (a
  partial index), and the backlog at the period's end (or now) and its age from the incidents
  alive at that instant (the open ones from a partial index of their own, the closed ones
  from a GiST index on their [opened, closed] span).
- ``refresh`` takes the pending changes in: it rebuilds the days they touch (and any day with
  data not built yet), and the months of those days, then deletes exactly the changes it read,
  so a change committed while it ran stays pending. It runs as ``geo311 analytics refresh``
  (cron, or after an import) and every few minutes in the worker (geo311.flows.analytics).
- A local month is also kept summed (``analytics_month_counts``, and how many times to close
  fall in each bucket of ``CLOSE_EDGES``: ``analytics_month_close`` per category,
  ``analytics_month_close_wards`` over all), recomputed from its built days whenever one of
  them is rebuilt. A period reads its whole months there when no day of the month is stale,
  and its other days (the ragged ends, a month with a stale day) day by day.
- The median and 90th percentile of time to close are exact: the bucket counts say which
  bucket holds each quantile and its rank there; only the values of those buckets are then
  read (an index by bucket), ranked, and interpolated as ``percentile_cont`` does.

Day *d* holds the incidents opened and the reports received in [local midnight of *d*, of
*d* + 1), in the jurisdiction's time zone, which is how ``queries.resolve_period`` bounds a
period. A work order counts with its incident when opened the same local day (work orders are
opened with their incident, at the same instant).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from maps.analytics.measures import CategoryCounts, Counted, Quantiles

# More stale days than this in a period: the ward table is counted from the source tables.
MAX_STALE_DAYS = 31

# The time-to-close buckets (hours): bucket k holds [CLOSE_EDGES[k - 1], CLOSE_EDGES[k]), 0
# what is below the first edge, 150 what is beyond the last (42 years; as width_bucket
# numbers them). Geometric (10 % wide): each holds few of a ward's cases wherever its
# quantiles fall, and a ward's month has a few dozen buckets, not a row per case.
# Stored with every case: changing them needs ``geo311 analytics refresh --all``.
CLOSE_EDGES = tuple(0.25 * 1.1**k for k in range(150))
_BUCKET = "CAST(width_bucket({hours}, CAST(:edges AS float8[])) AS smallint)"

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
# query computes it and its bucket, its span, and the due time of its work while the SLA
# clock runs.
_CLOSE_H = "CAST(extract(epoch FROM i.closed_at - i.opened_at) / 3600.0 AS float8)"
_DAY_CASES_SQL = """
WITH d AS ({days})
SELECT d.day, i.id AS incident_id, COALESCE(i.ward_id, 0) AS ward_key,
       i.category_code AS category, i.opened_at, i.closed_at,
       {close_h} AS close_h, {bucket} AS close_bucket,
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
""".replace("{close_h}", _CLOSE_H).replace("{bucket}", _BUCKET.format(hours=_CLOSE_H))

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
SELECT ward_key, category_code AS category{columns}
FROM analytics_cases t
WHERE jurisdiction_id = :jid AND day >= :first AND day <= :last
  AND day <> ALL(CAST(:stale AS date[])){codes} AND {where}
"""
_FRESH_CASES_SQL = """
UNION ALL
SELECT ward_key, category{columns} FROM ({select}) s
WHERE {where}
"""

# SLA breach of work whose clock still runs: decided and breached once now is past due.
_RUNNING_SQL = """
SELECT ward_key, category, count(*) AS late FROM ({cases}) c GROUP BY 1, 2
"""

# An open case's age at an instant, in hours: float8 throughout (date_part, not extract's
# numeric), the same expression in the source-table query (maps.analytics.queries).
AGE_H = "date_part('epoch', {at} - {opened}) / 3600.0"

# The period's incidents not closed by the cutoff (its end, or now if sooner): those still
# open (a partial index holds them, read alone), those closed since the cutoff (a GiST index
# on the [opened, closed] span of the closed ones), and any opened after it (only when now is
# before the period's end; they are in the days from the cutoff's on).
_OPEN = "closed_at IS NULL AND opened_at <= CAST(:cutoff AS timestamptz)"
_CLOSED_SINCE = (
    "closed_at IS NOT NULL "
    "AND tstzrange(opened_at, closed_at, '[]') @> CAST(:cutoff AS timestamptz)"
)
_LATER = (
    "day >= :cutoff_day AND opened_at > CAST(:cutoff AS timestamptz) "
    "AND (closed_at IS NULL OR closed_at >= CAST(:cutoff AS timestamptz))"
)
_BACKLOG_SQL = """
WITH c AS MATERIALIZED ({cases})
SELECT ward_key, category, 0 AS level, count(*) AS backlog, NULL AS median_age_h
FROM c GROUP BY 1, 2
UNION ALL
SELECT ward_key, NULL, 1 + GROUPING(ward_key), count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY {age})
FROM c GROUP BY ROLLUP (ward_key)
""".replace("{age}", AGE_H.format(at="CAST(:cutoff AS timestamptz)", opened="opened_at"))

# Exact quantiles without sorting the period: how many times to close fall in each bucket, per
# ward (the city's are their sums): the whole months' from their summaries, the other current
# days' from their cases' index, the stale days' counted afresh...
_BUCKETS_SQL = """
SELECT ward_key, bucket, sum(n) AS n FROM (
    {months}
    UNION ALL
    SELECT ward_key, close_bucket AS bucket, count(*) AS n FROM analytics_cases t
    WHERE jurisdiction_id = :jid AND day = ANY(CAST(:read_days AS date[]))
      AND close_h IS NOT NULL{codes}
    GROUP BY 1, 2{fresh}
) b
GROUP BY 1, 2
"""
_MONTH_BUCKETS_SQL = """SELECT ward_key, bucket, n FROM analytics_month_close_wards
    WHERE jurisdiction_id = :jid AND month = ANY(CAST(:months AS date[]))"""
_MONTH_CATEGORY_BUCKETS_SQL = """SELECT ward_key, bucket, n FROM analytics_month_close t
    WHERE jurisdiction_id = :jid AND month = ANY(CAST(:months AS date[]))
      AND t.category_code = ANY(:codes)"""
_FRESH_BUCKETS_SQL = """
    UNION ALL
    SELECT ward_key, close_bucket, count(*) FROM ({select}) s WHERE close_h IS NOT NULL
    GROUP BY 1, 2"""
# ...then only the values in the buckets that hold a quantile: a ward's own bucket (ward_key,
# bucket pairs), or a city quantile's bucket in every ward (unit -1); ranked there, and only
# the ranks a quantile reads are returned.
_BUCKET_VALUES_SQL = """
WITH v AS (
    SELECT t.ward_key, t.close_bucket AS bucket, t.close_h
    FROM unnest(CAST(:pair_wards AS int[]), CAST(:pair_buckets AS int[])) AS p(ward_key, bucket)
    JOIN analytics_cases t ON t.jurisdiction_id = :jid AND t.close_bucket = p.bucket
         AND t.ward_key = p.ward_key
    WHERE t.close_h IS NOT NULL AND t.day >= :first AND t.day <= :last
      AND t.day <> ALL(CAST(:stale AS date[])){codes}
    UNION ALL
    SELECT t.ward_key, t.close_bucket, t.close_h FROM analytics_cases t
    WHERE t.jurisdiction_id = :jid AND t.close_bucket = ANY(CAST(:city_buckets AS int[]))
      AND t.close_h IS NOT NULL AND t.day >= :first AND t.day <= :last
      AND t.day <> ALL(CAST(:stale AS date[])){codes}{fresh}
), wanted AS (
    SELECT * FROM unnest(CAST(:units AS int[]), CAST(:buckets AS int[]), CAST(:ranks AS int[]))
        AS w(unit, bucket, rank)
), ranked AS (
    SELECT v.ward_key AS unit, v.bucket, v.close_h,
           row_number() OVER (PARTITION BY v.ward_key, v.bucket ORDER BY v.close_h) - 1 AS rank
    FROM v JOIN (SELECT DISTINCT unit, bucket FROM wanted WHERE unit >= 0) u
      ON u.unit = v.ward_key AND u.bucket = v.bucket
    UNION ALL
    SELECT -1, v.bucket, v.close_h,
           row_number() OVER (PARTITION BY v.bucket ORDER BY v.close_h) - 1
    FROM v WHERE v.bucket = ANY(CAST(:city_buckets AS int[]))
)
SELECT r.unit, r.bucket, r.rank, r.close_h FROM ranked r
JOIN wanted w ON w.unit = r.unit AND w.bucket = r.bucket AND w.rank = r.rank
"""
_FRESH_VALUES_SQL = """
    UNION ALL
    SELECT ward_key, close_bucket, close_h FROM ({select}) s
    WHERE close_h IS NOT NULL AND close_bucket = ANY(CAST(:all_buckets AS int[]))"""

_SUMS = ", ".join(f"sum({c}) AS {c}" for c in _COUNT_COLUMNS)
_COLUMNS = ", ".join(_COUNT_COLUMNS)

_DELETE_SQL = "DELETE FROM {table} WHERE jurisdiction_id = :jid AND day = ANY(:days)"
_INSERT_COUNTS_SQL = """
INSERT INTO analytics_day_counts (jurisdiction_id, day, ward_key, category_code, {columns})
SELECT :jid, day, ward_key, category, {columns} FROM ({select}) t
"""
_INSERT_CASES_SQL = """
INSERT INTO analytics_cases (jurisdiction_id, day, incident_id, ward_key, category_code,
                             opened_at, closed_at, close_h, close_bucket, running_due_at)
SELECT :jid, day, incident_id, ward_key, category, opened_at, closed_at, close_h, close_bucket,
       running_due_at
FROM ({select}) t
"""
# A month's summaries, from its built days (recomputed whole whenever one of them is rebuilt).
_MONTH = "CAST(date_trunc('month', CAST(day AS timestamp)) AS date)"
_MONTHS_OF_DAYS = """jurisdiction_id = :jid AND day >= :months_from AND day < :months_to
  AND {month} = ANY(CAST(:months AS date[]))""".replace("{month}", _MONTH)
_DELETE_MONTHS_SQL = (
    "DELETE FROM {table} WHERE jurisdiction_id = :jid AND month = ANY(CAST(:months AS date[]))"
)
_INSERT_MONTH_COUNTS_SQL = """
INSERT INTO analytics_month_counts (jurisdiction_id, month, ward_key, category_code, {columns})
SELECT jurisdiction_id, {month}, ward_key, category_code, {sums}
FROM analytics_day_counts
WHERE {months_of_days}
GROUP BY 1, 2, 3, 4
"""
_INSERT_MONTH_CLOSE_SQL = """
INSERT INTO analytics_month_close (jurisdiction_id, month, ward_key, category_code, bucket, n)
SELECT jurisdiction_id, {month}, ward_key, category_code, close_bucket, count(*)
FROM analytics_cases
WHERE {months_of_days} AND close_h IS NOT NULL
GROUP BY 1, 2, 3, 4, 5
"""
_INSERT_MONTH_CLOSE_WARDS_SQL = """
INSERT INTO analytics_month_close_wards (jurisdiction_id, month, ward_key, bucket, n)
SELECT jurisdiction_id, month, ward_key, bucket, sum(n)
FROM analytics_month_close
WHERE jurisdiction_id = :jid AND month = ANY(CAST(:months AS date[]))
GROUP BY 1, 2, 3, 4
"""
# The period's counts: its whole current months' rows, its other current days', the stale
# days counted afresh.
_STORED_COUNTS_SQL = """
SELECT ward_key, category_code AS category, {sums} FROM (
    SELECT ward_key, category_code, {columns} FROM analytics_month_counts t
    WHERE jurisdiction_id = :jid AND month = ANY(CAST(:months AS date[])){codes}
    UNION ALL
    SELECT ward_key, category_code, {columns} FROM analytics_day_counts t
    WHERE jurisdiction_id = :jid AND day = ANY(CAST(:read_days AS date[])){codes}
) t
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
        "edges": list(CLOSE_EDGES),
    }


def _next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def layout(first_day: date, last_day: date, stale: Iterable[date]) -> tuple[list[date], list[date]]:
    """Return how a period is read: the first days of its whole months with no stale day
    (read from the month summaries), and its other days that are not stale (read day by
    day)."""
    stale_months = {d.replace(day=1) for d in stale}
    stale_days = set(stale)
    months: list[date] = []
    month = first_day.replace(day=1)
    if month < first_day:
        month = _next_month(month)
    while _next_month(month) - timedelta(days=1) <= last_day:
        if month not in stale_months:
            months.append(month)
        month = _next_month(month)
    whole = set(months)
    days = (last_day - first_day).days + 1
    read = [
        d
        for d in (first_day + timedelta(n) for n in range(days))
        if d not in stale_days and d.replace(day=1) not in whole
    ]
    return months, read


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
    _rebuild_months(session, jurisdiction_id=jurisdiction_id, days=chosen)
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


def _rebuild_months(session: Session, *, jurisdiction_id: int, days: Sequence[date]) -> None:
    """Recompute the month summaries of the months of ``days`` from their built days."""
    months = sorted({d.replace(day=1) for d in days})
    params = {
        "jid": jurisdiction_id,
        "months": months,
        "months_from": months[0],
        "months_to": _next_month(months[-1]),
    }
    for table in (
        "analytics_month_counts",
        "analytics_month_close",
        "analytics_month_close_wards",
    ):
        session.execute(text(_DELETE_MONTHS_SQL.format(table=table)), params)
    fill = {"month": _MONTH, "months_of_days": _MONTHS_OF_DAYS, "columns": _COLUMNS, "sums": _SUMS}
    for sql in (_INSERT_MONTH_COUNTS_SQL, _INSERT_MONTH_CLOSE_SQL, _INSERT_MONTH_CLOSE_WARDS_SQL):
        session.execute(text(sql.format(**fill)), params)


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
    months, read_days = layout(first_day, last_day, stale)
    params: dict[str, Any] = {
        "jid": jurisdiction_id,
        "first": first_day,
        "last": last_day,
        "stale": stale,
        "months": months,
        "read_days": read_days,
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
        _STORED_COUNTS_SQL.format(
            sums=_SUMS, columns=_COLUMNS, codes=_codes("t", "category_code", codes)
        )
        + fresh
    )
    for row in session.execute(text(counts_sql), params):
        c = out.counts(_unit(row.ward_key), row.category)
        c.add(CategoryCounts(**{k: int(getattr(row, k) or 0) for k in _COUNT_COLUMNS}))

    def cases(where: str, columns: str = "") -> str:
        """The period's cases meeting ``where``: ward_key, category and ``columns`` (only
        what the query needs, so that the indexes alone answer it)."""
        sql = _CASES_SQL.format(
            codes=_codes("t", "category_code", codes), where=where, columns=columns
        )
        if stale:
            fresh = _DAY_CASES_SQL.format(days=_DAYS, codes=_codes("i", "category_code", codes))
            sql += _FRESH_CASES_SQL.format(select=fresh, where=where, columns=columns)
        return sql

    running = cases("running_due_at <= CAST(:now AS timestamptz)")
    for row in session.execute(text(_RUNNING_SQL.format(cases=running)), params):
        c = out.counts(_unit(row.ward_key), row.category)
        c.decided += row.late
        c.breached += row.late
    params["cutoff_day"] = params["cutoff"].astimezone(ZoneInfo(timezone)).date()
    alive = cases(_OPEN, ", opened_at") + " UNION ALL " + cases(_CLOSED_SINCE, ", opened_at")
    if params["cutoff"] < end:
        alive += " UNION ALL " + cases(_LATER, ", opened_at")
    backlog_age: dict[int | None, float | None] = {}
    city_backlog_age: float | None = None
    for row in session.execute(text(_BACKLOG_SQL.format(cases=alive)), params):
        if row.level == 0:
            out.counts(_unit(row.ward_key), row.category).backlog += row.backlog
        elif row.level == 1:
            backlog_age[_unit(row.ward_key)] = row.median_age_h
        else:
            city_backlog_age = row.median_age_h
    fresh_cases = (
        _DAY_CASES_SQL.format(days=_DAYS, codes=_codes("i", "category_code", codes))
        if stale
        else None
    )
    close, city_close = _close_quantiles(session, params, codes=codes, fresh=fresh_cases)
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
    session: Session, params: dict[str, Any], *, codes: Sequence[str] | None, fresh: str | None
) -> tuple[dict[int | None, tuple[float | None, float | None]], tuple[float | None, float | None]]:
    """Return the median and 90th percentile of time to close per ward and for the city, the
    same numbers percentile_cont gives, reading only the buckets that hold them.

    ``fresh``: the stale days' cases, counted from the source tables (None: no stale day)."""
    months = _MONTH_BUCKETS_SQL if codes is None else _MONTH_CATEGORY_BUCKETS_SQL
    buckets_sql = _BUCKETS_SQL.format(
        months=months,
        codes=_codes("t", "category_code", codes),
        fresh=_FRESH_BUCKETS_SQL.format(select=fresh) if fresh else "",
    )
    counts: dict[Any, dict[int, int]] = {}
    for row in session.execute(text(buckets_sql), params):
        ward = counts.setdefault(_unit(row.ward_key), {})
        ward[int(row.bucket)] = ward.get(int(row.bucket), 0) + int(row.n)
        city = counts.setdefault(_CITY, {})
        city[int(row.bucket)] = city.get(int(row.bucket), 0) + int(row.n)
    # Each quantile is read from (bucket, rank within the bucket); collect the buckets needed.
    plans: dict[Any, list[tuple[tuple[int, int], tuple[int, int], float, bool]]] = {}
    needed: set[tuple[Any, int]] = set()
    for unit, by_bucket in counts.items():
        ordered = sorted(by_bucket.items())
        starts, total = [], 0
        for _, c in ordered:
            starts.append(total)
            total += c

        def place(
            row_index: int, ordered: list[tuple[int, int]] = ordered, starts: list[int] = starts
        ) -> tuple[int, int]:
            k = bisect.bisect_right(starts, row_index) - 1
            return ordered[k][0], row_index - starts[k]

        plans[unit] = []
        for first, second, weight in _positions(total):
            a, b = place(first), place(second)
            needed |= {(unit, a[0]), (unit, b[0])}
            plans[unit].append((a, b, weight, second > first))
    if not plans:
        return {}, (None, None)
    city_buckets = sorted(b for unit, b in needed if unit == _CITY)
    pairs = sorted(
        ((0 if unit is None else unit, b) for unit, b in needed
         if unit != _CITY and b not in city_buckets),
    )  # fmt: skip

    def key(unit: Any) -> int:
        return -1 if unit == _CITY else 0 if unit is None else int(unit)

    wanted = sorted(
        {(key(unit), b, r) for unit, plan in plans.items() for q in plan for b, r in q[:2]}
    )
    values_sql = _BUCKET_VALUES_SQL.format(
        codes=_codes("t", "category_code", codes),
        fresh=_FRESH_VALUES_SQL.format(select=fresh) if fresh else "",
    )
    values = {
        (int(row.unit), int(row.bucket), int(row.rank)): float(row.close_h)
        for row in session.execute(
            text(values_sql),
            params
            | {
                "pair_wards": [w for w, _ in pairs],
                "pair_buckets": [b for _, b in pairs],
                "city_buckets": city_buckets,
                "all_buckets": sorted({b for _, b in needed}),
                "units": [u for u, _, _ in wanted],
                "buckets": [b for _, b, _ in wanted],
                "ranks": [r for _, _, r in wanted],
            },
        )
    }

    def quantiles(unit: Any) -> tuple[float | None, float | None]:
        out: list[float | None] = []
        for (b1, r1), (b2, r2), weight, interpolate in plans[unit]:
            low = values[(key(unit), b1, r1)]
            high = values[(key(unit), b2, r2)]
            # As PostgreSQL's float8 lerp: low + (high - low) × weight.
            out.append(low + (high - low) * weight if interpolate else low)
        return out[0], out[1]

    per_ward = {unit: quantiles(unit) for unit in plans if unit != _CITY}
    return per_ward, quantiles(_CITY) if _CITY in plans else (None, None)


# --- reading: the weekly trends -------------------------------------------------------------

# A local day's ISO week, as its Monday (what date_trunc('week', …) gives the source query).
_WEEK = "CAST(day - (CAST(extract(isodow FROM day) AS int) - 1) AS date)"
_WEEK_COUNTS_SQL = """
SELECT {week} AS week, category_code AS category, {sums} FROM analytics_day_counts t
WHERE jurisdiction_id = :jid AND day >= :first AND day <= :last
  AND day <> ALL(CAST(:stale AS date[])){codes}{wards}
GROUP BY 1, 2{fresh}
"""
_FRESH_WEEK_COUNTS_SQL = """
UNION ALL
SELECT {week}, category, {sums} FROM ({select}) s WHERE true{wards} GROUP BY 1, 2
"""
_WEEK_RUNNING_SQL = """
SELECT {week} AS week, category, count(*) AS late FROM ({cases}) c GROUP BY 1, 2
"""
_WEEK_BACKLOG_SQL = """
WITH c AS MATERIALIZED ({cases})
SELECT {week} AS week, category, count(*) AS backlog, NULL AS median_age_h
FROM c GROUP BY 1, 2
UNION ALL
SELECT {week}, NULL, NULL, percentile_cont(0.5) WITHIN GROUP (ORDER BY {age})
FROM c GROUP BY 1
""".replace("{age}", AGE_H.format(at="CAST(:cutoff AS timestamptz)", opened="opened_at"))
# Stored close_h is the source query's own float8 value, so percentile_cont gives its answer.
_WEEK_CLOSE_SQL = """
SELECT {week} AS week, percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY close_h) AS q
FROM ({cases}) c GROUP BY 1
"""


def count_weeks(
    session: Session,
    *,
    jurisdiction_id: int,
    timezone: str,
    first_day: date,
    last_day: date,
    end: datetime,
    codes: Sequence[str] | None,
    now: datetime,
    ward_ids: Sequence[int] | None = None,
) -> Counted | None:
    """Return per ISO week (its Monday) and category what ``queries`` counts for the trends,
    for the city or the wards ``ward_ids``: from the day summaries for the current days, from
    the source tables for the stale ones; running work and the backlog live. None when more
    than ``MAX_STALE_DAYS`` are stale (the caller then counts from the source tables)."""
    stale = stale_days(
        session,
        jurisdiction_id=jurisdiction_id,
        timezone=timezone,
        first_day=first_day,
        last_day=last_day,
    )
    if len(stale) > MAX_STALE_DAYS:
        return None
    cutoff = min(end, now)
    params: dict[str, Any] = {
        "jid": jurisdiction_id,
        "first": first_day,
        "last": last_day,
        "stale": stale,
        "codes": list(codes or ()),
        "ward_ids": list(ward_ids or ()),
        "now": now,
        "cutoff": cutoff,
        "cutoff_day": cutoff.astimezone(ZoneInfo(timezone)).date(),
        **_day_params(stale, timezone),
    }
    wards = " AND ward_key = ANY(CAST(:ward_ids AS int[]))" if ward_ids is not None else ""
    out = Counted()
    fresh = ""
    if stale:
        fresh = _FRESH_WEEK_COUNTS_SQL.format(
            week=_WEEK, sums=_SUMS, wards=wards,
            select=_DAY_COUNTS_SQL.format(
                days=_DAYS, codes=_codes("i", "category_code", codes),
                report_codes=_codes("r", "category_code", codes),
            ),
        )  # fmt: skip
    counts_sql = _WEEK_COUNTS_SQL.format(
        week=_WEEK, sums=_SUMS, codes=_codes("t", "category_code", codes), wards=wards, fresh=fresh
    )
    for row in session.execute(text(counts_sql), params):
        c = out.counts(row.week, row.category)
        c.add(CategoryCounts(**{k: int(getattr(row, k) or 0) for k in _COUNT_COLUMNS}))

    def cases(where: str, columns: str) -> str:
        where += wards
        sql = _CASES_SQL.format(
            codes=_codes("t", "category_code", codes), where=where, columns=columns
        )
        if stale:
            fresh = _DAY_CASES_SQL.format(days=_DAYS, codes=_codes("i", "category_code", codes))
            sql += _FRESH_CASES_SQL.format(select=fresh, where=where, columns=columns)
        return sql

    running = cases("running_due_at <= CAST(:now AS timestamptz)", ", day")
    for row in session.execute(text(_WEEK_RUNNING_SQL.format(week=_WEEK, cases=running)), params):
        c = out.counts(row.week, row.category)
        c.decided += row.late
        c.breached += row.late
    alive = (
        cases(_OPEN, ", day, opened_at") + " UNION ALL " + cases(_CLOSED_SINCE, ", day, opened_at")
    )
    if cutoff < end:
        alive += " UNION ALL " + cases(_LATER, ", day, opened_at")
    ages: dict[date, float | None] = {}
    for row in session.execute(text(_WEEK_BACKLOG_SQL.format(week=_WEEK, cases=alive)), params):
        if row.category is not None:
            out.counts(row.week, row.category).backlog += row.backlog
        else:
            ages[row.week] = row.median_age_h
    closed = cases("close_h IS NOT NULL", ", day, close_h")
    close: dict[date, list[float | None]] = {
        row.week: row.q
        for row in session.execute(text(_WEEK_CLOSE_SQL.format(week=_WEEK, cases=closed)), params)
    }
    for week in set(close) | set(ages):
        q = close.get(week) or [None, None]
        out.quantiles[week] = Quantiles(q[0], q[1], ages.get(week))
    return out
