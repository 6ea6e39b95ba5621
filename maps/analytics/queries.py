"""The planner's ward table and weekly trends, counted in PostGIS.

This is the analytics read model: set-based SQL over other packages' tables, read only. It
reads ``reports`` (intake), ``incidents``, ``work_orders``, ``audit_events`` and
``service_categories`` (work_orders), and ``wards``, ``ward_maps``, ``assets`` (layers). It
writes nothing.

Where each figure comes from (and the choices made):

- A **report** belongs to the ward stored with it (``reports.ward_id``), which intake and the
  importers set from the ward map in force at the report's time; an **incident** to the ward
  stored with it (``incidents.ward_id``, its first report's). A period that crosses a ward-map
  change lists the wards of every map in force in it, each counting its own time's cases.
- Report measures count reports *received* in the period; incident measures follow the cohort
  of incidents *opened* in the period (not cancelled: merged-away incidents are cancelled).
- duplicate share: reports that duplicate detection joined to an existing incident
  (``dedup_decision`` matched or reopened) ÷ reports.
- time to close: ``closed_at − opened_at`` of the cohort's closed incidents (hours), median
  and 90th percentile (``percentile_cont``).
- SLA: the work order's clock as ``work_orders.queries.sla_clock`` has it (frozen on hold and
  at resolution, else now). *Decided* work: resolved, or already past due. Breach share =
  past due ÷ decided; on-time share = resolved before due ÷ decided. The due time is the
  category's own SLA (in its business calendar, pushed back by holds).
- backlog: cohort incidents not closed by the period's end (or now, if sooner), and the
  median age they had then (hours). An incident reopened and closed again counts by its
  latest closure.
- reopen share: cohort incidents with a ``reopened`` event in the audit trail ÷ incidents.
- "fixed?": the residents' answers to closure notices (audit action ``resident_answer``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo311.kernel.errors import FieldError, NotFound, ValidationFailed
from maps.analytics import measures, rollup
from maps.analytics.measures import Compared, Counted, Figures, Quantiles
from work_orders import categories as category_service


@dataclass(frozen=True)
class Period:
    """Local days ``first_day`` … ``last_day`` (inclusive) as instants [start, end)."""

    first_day: date
    last_day: date
    timezone: str
    start: datetime
    end: datetime

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


@dataclass(frozen=True)
class HexGrid:
    """Hexagons of edge ``size_m`` metres in the city's metric SRID, as units of the table."""

    srid: int
    size_m: float


@dataclass(frozen=True)
class Filters:
    """Which categories count: None is every category."""

    category: str | None = None
    group: str | None = None
    codes: tuple[str, ...] | None = None
    asset_type: str | None = None


def resolve_period(
    *,
    first_day: date | None,
    last_day: date | None,
    timezone: str,
    max_days: int,
    today: date | None = None,
) -> Period:
    """Return the period, or raise ValidationFailed naming the bad bound.

    Defaults: up to today, and the 365 days ending there (within ``max_days``)."""
    tz = ZoneInfo(timezone)
    today = today or datetime.now(tz).date()
    last = last_day or (today if first_day is None else min(today, first_day + timedelta(364)))
    first = first_day or last - timedelta(days=min(365, max_days) - 1)
    errors = []
    if first > last:
        errors.append(FieldError("from", f"'from' ({first}) is after 'to' ({last}).", "order"))
    elif (last - first).days + 1 > max_days:
        errors.append(FieldError("to", f"The period may span at most {max_days} days.", "too_long"))
    if errors:
        raise ValidationFailed(errors[0].message, errors=errors)
    start = datetime.combine(first, time(0), tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tz).astimezone(UTC)
    return Period(first, last, timezone, start, end)


def resolve_filters(
    session: Session, *, jurisdiction_id: int, category: str | None, group: str | None
) -> Filters:
    """Return the filters with the category codes they mean, or raise ValidationFailed."""
    if category is None and group is None:
        return Filters()
    known = category_service.list_categories(session, jurisdiction_id=jurisdiction_id)
    errors = []
    chosen = list(known)
    if category is not None:
        chosen = [c for c in chosen if c.code == category]
        if not any(c.code == category for c in known):
            errors.append(FieldError("category", f"No category {category!r}.", "unknown"))
    if group is not None:
        if not any(c.group_code == group for c in known):
            errors.append(FieldError("group", f"No category group {group!r}.", "unknown"))
        chosen = [c for c in chosen if c.group_code == group]
    if errors:
        raise ValidationFailed("; ".join(e.message for e in errors), errors=errors)
    if not chosen:
        raise ValidationFailed(
            f"Category {category!r} is not in group {group!r}.",
            errors=[FieldError("group", "The category is not in this group.", "mismatch")],
        )
    asset_type = chosen[0].asset_type if category is not None else None
    return Filters(category, group, tuple(sorted(c.code for c in chosen)), asset_type)


def read_only_olap(session: Session) -> None:
    """Set up the request's transaction for these few large aggregate queries.

    PostgreSQL's JIT compiler switches on for plans this size and costs more (about a second
    here) than it saves on a sub-second query, so it is off for the transaction; and the
    quantiles' sort of a year of incidents fits in 64 MB rather than spilling to disk.
    """
    session.execute(text("SET LOCAL jit = off"))
    session.execute(text("SET LOCAL work_mem = '64MB'"))


# --- the counting SQL ---------------------------------------------------------------------

# Unit expressions: fixed strings chosen by code, never built from input.
Unit = Literal["ward", "week", "hex"]
_INCIDENT_UNIT = {
    "ward": "i.ward_id",
    "week": "date_trunc('week', i.opened_at AT TIME ZONE :tz)::date",
    "hex": "hx.cell",
}
_REPORT_UNIT = {
    "ward": "r.ward_id",
    "week": "date_trunc('week', r.reported_at AT TIME ZONE :tz)::date",
    "hex": "hx.cell",
}

# A case's hexagon ("i,j"), for unit "hex": the cell of ST_HexagonGrid(:size) in the city's
# metric SRID (:srid) whose centre is nearest, by arithmetic in ST_HexagonGrid's own layout
# (cell (i, j) centred at (1.5·s·i, √3·s·(j + ½·(i mod 2))); the same rule as the hotspot
# cells, maps.analytics.hotspots). Joined only when the unit is "hex".
_HEX_JOIN = """
    CROSS JOIN LATERAL (
        SELECT CASE WHEN da <= db THEN a || ',' || ja ELSE (a + 1) || ',' || jb END AS cell
        FROM (SELECT a, ja, jb,
                     (x - 1.5 * :size * a) ^ 2 + (y - :h * (ja + 0.5e0 * pa)) ^ 2 AS da,
                     (x - 1.5 * :size * (a + 1)) ^ 2 + (y - :h * (jb + 0.5e0 * pb)) ^ 2 AS db
              FROM (SELECT x, y, a, pa, pb,
                           round(y / :h - 0.5e0 * pa)::bigint AS ja,
                           round(y / :h - 0.5e0 * pb)::bigint AS jb
                    FROM (SELECT x, y, a, ((a % 2) + 2) % 2 AS pa, (((a + 1) % 2) + 2) % 2 AS pb
                          FROM (SELECT ST_X(p) AS x, ST_Y(p) AS y,
                                       floor(ST_X(p) / (1.5 * :size))::bigint AS a
                                FROM (SELECT ST_Transform({alias}.geom, :srid) AS p) t) u) v) w) z
    ) hx"""
_WARD_FILTER = " AND {alias}.ward_id = ANY(:ward_ids)"

# Counts per (unit, category): a hash aggregate, no sort. Everything the measures need that
# adds up across units and categories.
_INCIDENTS_SQL = """
WITH {reopened_and_answers}, cohort AS (
    SELECT {unit} AS unit, i.category_code AS category, i.closed_at,
           w.status AS wo_status, w.due_at, w.resolved_at,
           -- as work_orders.queries.sla_clock, at :now
           COALESCE(w.paused_at, w.resolved_at, :now) AS clock,
           ro.incident_id IS NOT NULL AS reopened,
           COALESCE(a.yes, 0) AS yes, COALESCE(a.no, 0) AS no
    FROM incidents i
    -- A work order is opened with its incident, at the same instant (work_orders.incidents.
    -- open_incident, create_missing_work_orders): the same range on it lets a short period
    -- read a short range of work orders instead of hashing them all.
    LEFT JOIN work_orders w ON w.jurisdiction_id = i.jurisdiction_id AND w.incident_id = i.id
         AND w.opened_at >= :start AND w.opened_at < :end{unit_join}
    LEFT JOIN reopened ro ON ro.incident_id = i.id
    LEFT JOIN answers a ON a.incident_id = i.id
    WHERE i.jurisdiction_id = :jid AND i.opened_at >= :start AND i.opened_at < :end
      AND i.status <> 'cancelled'{codes}{unit_filter}
)
SELECT unit, category,
       count(*) AS incidents,
       count(*) FILTER (WHERE closed_at IS NOT NULL) AS closed,
       count(*) FILTER (WHERE wo_status <> 'cancelled'
                          AND (resolved_at IS NOT NULL OR clock >= due_at)) AS decided,
       count(*) FILTER (WHERE wo_status <> 'cancelled' AND clock >= due_at) AS breached,
       count(*) FILTER (WHERE wo_status <> 'cancelled' AND resolved_at IS NOT NULL
                          AND clock < due_at) AS on_time,
       count(*) FILTER (WHERE closed_at IS NULL OR closed_at >= :cutoff) AS backlog,
       count(*) FILTER (WHERE reopened) AS reopened,
       sum(yes) AS fixed_yes, sum(no) AS fixed_no
FROM cohort
GROUP BY unit, category
""".replace("{reopened_and_answers}", rollup.REOPENED_AND_ANSWERS.format(start="start"))

# Order statistics per unit and for everything (they do not add up), from incidents alone:
# narrow rows, one sort for both time-to-close quantiles.
_QUANTILES_SQL = """
SELECT {unit} AS unit, GROUPING({unit}) AS level,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (
           ORDER BY extract(epoch FROM i.closed_at - i.opened_at) / 3600.0)
           FILTER (WHERE i.closed_at IS NOT NULL) AS close_h,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY {age})
           FILTER (WHERE i.closed_at IS NULL OR i.closed_at >= :cutoff) AS backlog_median_age_h
FROM incidents i{unit_join}
WHERE i.jurisdiction_id = :jid AND i.opened_at >= :start AND i.opened_at < :end
  AND i.status <> 'cancelled'{codes}{unit_filter}
GROUP BY GROUPING SETS (({unit}), ())
""".replace("{age}", rollup.AGE_H.format(at="CAST(:cutoff AS timestamptz)", opened="i.opened_at"))

_REPORTS_SQL = """
SELECT {unit} AS unit, r.category_code AS category,
       count(*) AS reports,
       count(*) FILTER (WHERE r.dedup_decision IN ('matched', 'reopened')) AS duplicates
FROM reports r{unit_join}
WHERE r.jurisdiction_id = :jid AND r.reported_at >= :start AND r.reported_at < :end
      {codes}{unit_filter}
GROUP BY 1, 2
"""


def _count(
    session: Session,
    *,
    jurisdiction_id: int,
    period: Period,
    filters: Filters,
    unit: Unit,
    now: datetime,
    ward_ids: Sequence[int] | None = None,
    grid: HexGrid | None = None,
    summaries: bool = False,
) -> Counted:
    if (unit == "hex") != (grid is not None):
        raise ValueError("the hexagon unit needs its grid, and only it does")
    if summaries and unit == "week":
        counted = rollup.count_weeks(
            session,
            jurisdiction_id=jurisdiction_id,
            timezone=period.timezone,
            first_day=period.first_day,
            last_day=period.last_day,
            end=period.end,
            codes=filters.codes,
            now=now,
            ward_ids=ward_ids,
        )
        if counted is not None:
            return counted
    if summaries and unit == "ward" and ward_ids is None:
        counted = rollup.count_wards(
            session,
            jurisdiction_id=jurisdiction_id,
            timezone=period.timezone,
            first_day=period.first_day,
            last_day=period.last_day,
            start=period.start,
            end=period.end,
            codes=filters.codes,
            now=now,
        )
        if counted is not None:
            return counted
    params: dict[str, Any] = {
        "jid": jurisdiction_id,
        "start": period.start,
        "end": period.end,
        "now": now,
        "cutoff": min(period.end, now),
        "tz": period.timezone,
        "codes": list(filters.codes or ()),
        "ward_ids": list(ward_ids or ()),
    }
    if grid is not None:
        params |= {"srid": grid.srid, "size": grid.size_m, "h": math.sqrt(3) * grid.size_m}
    out = Counted()
    incidents_sql = _INCIDENTS_SQL.format(
        unit=_INCIDENT_UNIT[unit],
        unit_join=_HEX_JOIN.format(alias="i") if unit == "hex" else "",
        codes=" AND i.category_code = ANY(:codes)" if filters.codes is not None else "",
        unit_filter=_WARD_FILTER.format(alias="i") if ward_ids is not None else "",
    )
    for row in session.execute(text(incidents_sql), params):
        c = out.counts(row.unit, row.category)
        c.incidents, c.closed, c.decided = row.incidents, row.closed, row.decided
        c.breached, c.on_time, c.backlog = row.breached, row.on_time, row.backlog
        c.reopened, c.fixed_yes, c.fixed_no = row.reopened, row.fixed_yes, row.fixed_no
    quantiles_sql = _QUANTILES_SQL.format(
        unit=_INCIDENT_UNIT[unit],
        unit_join=_HEX_JOIN.format(alias="i") if unit == "hex" else "",
        codes=" AND i.category_code = ANY(:codes)" if filters.codes is not None else "",
        unit_filter=_WARD_FILTER.format(alias="i") if ward_ids is not None else "",
    )
    for row in session.execute(text(quantiles_sql), params):
        close_h = row.close_h or [None, None]
        quantiles = Quantiles(close_h[0], close_h[1], row.backlog_median_age_h)
        if row.level == 1:
            out.city_quantiles = quantiles
        else:
            out.quantiles[row.unit] = quantiles
    reports_sql = _REPORTS_SQL.format(
        unit=_REPORT_UNIT[unit],
        unit_join=_HEX_JOIN.format(alias="r") if unit == "hex" else "",
        codes=" AND r.category_code = ANY(:codes)" if filters.codes is not None else "",
        unit_filter=_WARD_FILTER.format(alias="r") if ward_ids is not None else "",
    )
    for row in session.execute(text(reports_sql), params):
        c = out.counts(row.unit, row.category)
        c.reports, c.duplicates = row.reports, row.duplicates
    return out


# --- wards and maps -----------------------------------------------------------------------


@dataclass(frozen=True)
class MapInForce:
    """A ward map in force during (part of) the period."""

    id: int
    name: str
    valid_from: datetime
    valid_to: datetime | None
    in_force_from: datetime
    in_force_to: datetime
    whole_period: bool


@dataclass(frozen=True)
class WardInfo:
    id: int
    code: str
    name: str
    map_id: int
    population: int | None


def maps_in_force(session: Session, *, jurisdiction_id: int, period: Period) -> list[MapInForce]:
    """Return the ward maps in force at some time in the period, oldest first."""
    rows = session.execute(
        text(
            """
            SELECT id, name, valid_from, valid_to FROM ward_maps
            WHERE jurisdiction_id = :jid AND valid_from < :end
              AND (valid_to IS NULL OR valid_to > :start)
            ORDER BY valid_from
            """
        ),
        {"jid": jurisdiction_id, "start": period.start, "end": period.end},
    ).all()
    return [
        MapInForce(
            id=r.id,
            name=r.name,
            valid_from=r.valid_from,
            valid_to=r.valid_to,
            in_force_from=max(r.valid_from, period.start),
            in_force_to=period.end if r.valid_to is None else min(r.valid_to, period.end),
            whole_period=r.valid_from <= period.start
            and (r.valid_to is None or r.valid_to >= period.end),
        )
        for r in rows
    ]


def _wards(session: Session, *, jurisdiction_id: int, map_ids: Sequence[int]) -> list[WardInfo]:
    rows = session.execute(
        text(
            """
            SELECT id, code, name, ward_map_id, population FROM wards
            WHERE jurisdiction_id = :jid AND ward_map_id = ANY(:maps)
            ORDER BY ward_map_id, code
            """
        ),
        {"jid": jurisdiction_id, "maps": list(map_ids)},
    ).all()
    return [WardInfo(r.id, r.code, r.name, r.ward_map_id, r.population) for r in rows]


def _assets_per_ward(
    session: Session, *, jurisdiction_id: int, asset_type: str, ward_ids: Sequence[int]
) -> tuple[dict[int, int], int]:
    """Return assets of the type per ward (covered by its polygon), and in the whole city."""
    rows = session.execute(
        text(
            """
            SELECT w.id, count(a.id) AS n
            FROM wards w
            LEFT JOIN assets a ON a.jurisdiction_id = w.jurisdiction_id
                 AND a.asset_type = :type AND ST_Covers(w.geom, a.geom)
            WHERE w.jurisdiction_id = :jid AND w.id = ANY(:wards)
            GROUP BY w.id
            """
        ),
        {"jid": jurisdiction_id, "type": asset_type, "wards": list(ward_ids)},
    ).all()
    total = session.scalar(
        text("SELECT count(*) FROM assets WHERE jurisdiction_id = :jid AND asset_type = :type"),
        {"jid": jurisdiction_id, "type": asset_type},
    )
    return {r.id: int(r.n) for r in rows}, int(total or 0)


# --- the ward table -----------------------------------------------------------------------


@dataclass(frozen=True)
class WardRow:
    ward: WardInfo
    map_name: str
    whole_period: bool
    assets: int | None
    compared: Compared


@dataclass(frozen=True)
class WardTable:
    period: Period
    filters: Filters
    maps: list[MapInForce]
    rows: list[WardRow]
    city: Figures
    city_population: int | None
    unplaced_reports: int
    min_cases: int
    # Not None: the rows are hexagons of this grid (those holding any case), not wards.
    grid: HexGrid | None = None


def _cells(keys: Sequence[Any], map_id: int) -> list[WardInfo]:
    """Return hexagon cells ("i,j" keys) as table rows: numbered in (i, j) order, the key as
    the code."""
    ordered = sorted(keys, key=lambda k: tuple(int(n) for n in str(k).split(",")))
    return [
        WardInfo(id=n, code=str(k), name=f"Hexagon {k}", map_id=map_id, population=None)
        for n, k in enumerate(ordered, start=1)
    ]


def ward_table(
    session: Session,
    *,
    jurisdiction_id: int,
    period: Period,
    filters: Filters,
    min_cases: int,
    now: datetime | None = None,
    grid: HexGrid | None = None,
    summaries: bool = True,
) -> WardTable:
    """Return every ward of the maps in force in the period with its measures beside the city's.

    The city's figures count every case, also those outside any ward (``unplaced_reports``).
    Its population is that of the latest map in force (None if any of its wards has none);
    per-asset rates need one category whose asset type is set.

    With ``grid``, the rows are the grid's hexagons holding any case of the period (code
    "i,j" as ST_HexagonGrid numbers them; empty cells are left out) instead of wards: same
    measures, no population or assets, ranked among themselves.

    ``summaries`` (the default) reads the ward rows from the summary tables
    (maps.analytics.rollup) wherever they are current; False counts everything from the source
    tables. The answer is the same either way.
    """
    now = now or datetime.now(UTC)
    read_only_olap(session)
    maps = maps_in_force(session, jurisdiction_id=jurisdiction_id, period=period)
    wards = _wards(session, jurisdiction_id=jurisdiction_id, map_ids=[m.id for m in maps])
    latest = [w for w in wards if maps and w.map_id == maps[-1].id]
    city_population = (
        sum(w.population or 0 for w in latest)
        if latest and all(w.population for w in latest)
        else None
    )
    counted = _count(
        session,
        jurisdiction_id=jurisdiction_id,
        period=period,
        filters=filters,
        unit="ward" if grid is None else "hex",
        now=now,
        grid=grid,
        summaries=summaries,
    )
    if grid is not None and maps:
        # Cells are the same whatever the ward maps: one "map" for all, in force throughout.
        whole = replace(maps[-1], in_force_from=period.start, in_force_to=period.end,
                        whole_period=True)  # fmt: skip
        maps = [whole]
        wards = _cells([k for k in counted.per_unit if k is not None], whole.id)
        counted.per_unit = {w.id: counted.per_unit[w.code] for w in wards}
        counted.quantiles = {w.id: counted.quantiles.get(w.code, Quantiles()) for w in wards}
    city_per_category = measures.merge(counted.per_unit.values())
    assets: dict[int, int] = {}
    city_assets: int | None = None
    if filters.asset_type is not None and grid is None:
        assets, city_assets = _assets_per_ward(
            session,
            jurisdiction_id=jurisdiction_id,
            asset_type=filters.asset_type,
            ward_ids=[w.id for w in wards],
        )
    city = measures.figures(
        city_per_category,
        counted.city_quantiles,
        city_per_category=city_per_category,
        population=city_population,
        assets=city_assets,
    )
    by_map = {m.id: m for m in maps}
    unit_figures = [
        (
            measures.figures(
                counted.per_unit.get(w.id, {}),
                counted.quantiles.get(w.id, Quantiles()),
                city_per_category=city_per_category,
                population=w.population,
                assets=assets.get(w.id) if filters.asset_type is not None else None,
            ),
            by_map[w.map_id].whole_period,
        )
        for w in wards
    ]
    compared = measures.compare(unit_figures, city, min_cases=min_cases)
    unplaced = sum(c.reports for c in counted.per_unit.get(None, {}).values())
    return WardTable(
        period=period,
        filters=filters,
        maps=maps,
        rows=[
            WardRow(
                ward=w,
                map_name=by_map[w.map_id].name,
                whole_period=by_map[w.map_id].whole_period,
                assets=assets.get(w.id) if filters.asset_type is not None else None,
                compared=c,
            )
            for w, c in zip(wards, compared, strict=True)
        ],
        city=city,
        city_population=city_population,
        unplaced_reports=unplaced,
        min_cases=min_cases,
        grid=grid,
    )


# --- trends -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Week:
    week: date
    figures: Figures
    too_few: bool


def trends(
    session: Session,
    *,
    jurisdiction_id: int,
    period: Period,
    filters: Filters,
    ward_code: str | None,
    min_cases: int,
    now: datetime | None = None,
    summaries: bool = True,
) -> tuple[list[WardInfo], list[Week]]:
    """Return the ward(s) followed and the measures per ISO week (Monday, local time).

    ``ward_code`` follows the wards with that code on every map in force in the period (a
    ward keeps its code across a redrawing); None follows the whole city. Every week of the
    period is listed, empty ones with zero counts. The on-time score uses the period's
    city-wide category mix as weights, so weeks compare with each other.

    ``summaries``: as for ``ward_table`` (the weeks' days from the day summaries); False
    counts from the source tables. The answer is the same either way.
    """
    now = now or datetime.now(UTC)
    read_only_olap(session)
    maps = maps_in_force(session, jurisdiction_id=jurisdiction_id, period=period)
    followed: list[WardInfo] = []
    if ward_code is not None:
        followed = [
            w
            for w in _wards(session, jurisdiction_id=jurisdiction_id, map_ids=[m.id for m in maps])
            if w.code == ward_code
        ]
        if not followed:
            raise NotFound(f"No ward {ward_code!r} on the ward maps in force in the period.")
    city = _count(
        session,
        jurisdiction_id=jurisdiction_id,
        period=period,
        filters=filters,
        unit="week",
        now=now,
        summaries=summaries,
    )
    city_mix = measures.merge(city.per_unit.values())
    counted = city
    if ward_code is not None:
        counted = _count(
            session,
            jurisdiction_id=jurisdiction_id,
            period=period,
            filters=filters,
            unit="week",
            now=now,
            ward_ids=[w.id for w in followed],
            summaries=summaries,
        )
    population = (
        followed[-1].population if followed and len({w.population for w in followed}) == 1 else None
    )
    weeks = []
    monday = period.first_day - timedelta(days=period.first_day.weekday())
    while monday <= period.last_day:
        fig = measures.figures(
            counted.per_unit.get(monday, {}),
            counted.quantiles.get(monday, Quantiles()),
            city_per_category=city_mix,
            population=population,
            assets=None,
        )
        weeks.append(Week(monday, fig, fig.incidents < min_cases))
        monday += timedelta(days=7)
    return followed, weeks


def ward_geometries(
    session: Session, *, jurisdiction_id: int, ward_ids: Sequence[int]
) -> dict[int, bytes]:
    """Return each ward's polygon as WKB (EPSG:4326), for exports."""
    rows = session.execute(
        text(
            "SELECT id, ST_AsBinary(geom) AS wkb FROM wards "
            "WHERE jurisdiction_id = :jid AND id = ANY(:ids)"
        ),
        {"jid": jurisdiction_id, "ids": list(ward_ids)},
    ).all()
    return {r.id: bytes(r.wkb) for r in rows}
