"""Day plans: the open work a day's plan may take, read in one query, and where each crew starts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from dispatch import rules, service
from dispatch.planning import (
    CrewStart,
    DayJob,
    sla_priority,
    territory_skill,
)
from geo311.kernel.settings import RoutingSettings

# Open work a plan may place. On hold and transferred work waits for someone else first.
PLANNABLE = ("new", "triaged", "assigned", "scheduled", "reopened")
# Stops a re-plan never touches: the crew is on it, or it is done.
FROZEN = ("in_progress", "completed", "closed")
# SLA urgency fills priorities up to 90; above it are the stops a dispatcher fixed (locked, an
# appointment, or just moved to a crew), which the solver keeps even on a day with more overdue
# work than hours.
SLA_PRIORITY_SHARE = 0.9
MUST_PRIORITY = 100


@dataclass(frozen=True)
class WorkFacts:
    """What planning needs to know of one open work order, read in one query."""

    work_order_id: int
    incident_id: int
    status: str
    crew_id: int | None
    category_code: str
    lon: float
    lat: float
    ward_code: str | None
    asset_type: str | None
    due_at: datetime
    service_s: int | None
    demand: int
    access: tuple[time, time] | None
    pinned_crew_id: int | None
    appointment: tuple[datetime, datetime] | None
    stop_crew_id: int | None
    locked: bool
    stop_start: datetime | None


def day_bounds(session: Session, *, jurisdiction_id: int, day: date) -> tuple[datetime, datetime]:
    """Return the start and end of ``day`` in the jurisdiction's time zone."""
    zone = service.jurisdiction_zone(session, jurisdiction_id=jurisdiction_id)
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start, end


# --- reading the work ---------------------------------------------------------------------------

_WORK_SQL = """
SELECT w.id, w.incident_id, w.status, w.crew_id, w.due_at, i.category_code,
       ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, wd.code AS ward_code,
       COALESCE(a.asset_type, c.asset_type) AS asset_type,
       st.service_s, COALESCE(st.demand, 0) AS demand, st.access_start, st.access_end,
       t.pinned_crew_id, t.window_start, t.window_end,
       ps.crew_id AS stop_crew_id, COALESCE(ps.locked, false) AS locked, ps.start_at
FROM work_orders w
JOIN incidents i ON i.jurisdiction_id = w.jurisdiction_id AND i.id = w.incident_id
JOIN service_categories c
  ON c.jurisdiction_id = i.jurisdiction_id AND c.code = i.category_code
LEFT JOIN wards wd ON wd.jurisdiction_id = i.jurisdiction_id AND wd.id = i.ward_id
LEFT JOIN assets a ON a.jurisdiction_id = i.jurisdiction_id AND a.id = i.asset_id
LEFT JOIN category_service_times st
  ON st.jurisdiction_id = c.jurisdiction_id AND st.category_code = c.code
LEFT JOIN work_order_terms t ON t.jurisdiction_id = w.jurisdiction_id AND t.work_order_id = w.id
LEFT JOIN plan_stops ps
  ON ps.jurisdiction_id = w.jurisdiction_id AND ps.plan_id = :plan AND ps.work_order_id = w.id
WHERE w.jurisdiction_id = :jid
  AND w.status = ANY(:statuses)
  AND NOT EXISTS (SELECT 1 FROM dispatch_queue q
                  WHERE q.jurisdiction_id = w.jurisdiction_id AND q.work_order_id = w.id)
"""


def _read_work(session: Session, sql: str, params: Mapping[str, Any]) -> list[WorkFacts]:
    rows = session.execute(text(sql), params).all()
    return [
        WorkFacts(
            work_order_id=int(r.id),
            incident_id=int(r.incident_id),
            status=str(r.status),
            crew_id=None if r.crew_id is None else int(r.crew_id),
            category_code=str(r.category_code),
            lon=float(r.lon),
            lat=float(r.lat),
            ward_code=r.ward_code,
            asset_type=r.asset_type,
            due_at=r.due_at,
            service_s=r.service_s,
            demand=int(r.demand),
            access=(r.access_start, r.access_end) if r.access_start is not None else None,
            pinned_crew_id=r.pinned_crew_id,
            appointment=(r.window_start, r.window_end) if r.window_start is not None else None,
            stop_crew_id=r.stop_crew_id,
            locked=bool(r.locked),
            stop_start=r.start_at,
        )
        for r in rows
    ]


def work_for_day(
    session: Session,
    *,
    jurisdiction_id: int,
    day: date,
    plan_id: int,
    horizon_days: int,
    today: date,
) -> list[WorkFacts]:
    """Return the open work a plan of ``day`` takes: due within the horizon, already scheduled,
    pinned to a crew, or with an appointment that day; not queued for a dispatcher, not on the
    plan of another day that is still to come (work left undone on a past day's plan comes
    back), and no appointment on another day. ``today`` is the jurisdiction's date now."""
    start, end = day_bounds(session, jurisdiction_id=jurisdiction_id, day=day)
    # Constant SQL; every value is a bound parameter.
    sql = (
        _WORK_SQL  # noqa: S608
        + """
  AND NOT EXISTS (SELECT 1 FROM plan_stops s2
                  JOIN day_plans p2
                    ON p2.jurisdiction_id = s2.jurisdiction_id AND p2.id = s2.plan_id
                  WHERE s2.jurisdiction_id = w.jurisdiction_id AND s2.work_order_id = w.id
                    AND p2.day <> :day AND p2.day >= :today)
  AND (t.window_start IS NULL OR (t.window_end >= :start AND t.window_start < :end))
  AND (w.due_at < :horizon OR w.status = 'scheduled' OR t.pinned_crew_id IS NOT NULL
       OR t.window_start IS NOT NULL OR ps.work_order_id IS NOT NULL)
ORDER BY w.id
"""
    )
    return _read_work(
        session,
        sql,
        {
            "jid": jurisdiction_id,
            "plan": plan_id,
            "statuses": list(PLANNABLE),
            "day": day,
            "today": today,
            "start": start,
            "end": end,
            "horizon": end + timedelta(days=horizon_days),
        },
    )


def work_by_id(
    session: Session, *, jurisdiction_id: int, plan_id: int, work_order_ids: Iterable[int]
) -> list[WorkFacts]:
    """Return the plannable, unqueued work orders among ``work_order_ids``."""
    return _read_work(
        session,
        _WORK_SQL + " AND w.id = ANY(:ids) ORDER BY w.id",
        {
            "jid": jurisdiction_id,
            "plan": plan_id,
            "statuses": list(PLANNABLE),
            "ids": sorted(set(work_order_ids)),
        },
    )


def clip(
    window: tuple[datetime, datetime], start: datetime, end: datetime
) -> tuple[datetime, datetime] | None:
    a, b = max(window[0], start), min(window[1], end)
    return (a, b) if a <= b else None


def to_day_job(
    facts: WorkFacts,
    *,
    rule_set: Sequence[rules.SkillRule],
    routing: RoutingSettings,
    day: date,
    day_start: datetime,
    day_end: datetime,
    crew_id: int | None = None,
    priority: int | None = None,
) -> DayJob:
    """Return the work order as the solver sees it.

    Skills: what the rules give its category and asset type, plus its ward as a territory
    skill. Window: a locked stop's start ± the slack, else the appointment, else the
    category's access hours that day. Crew: ``crew_id``, else the locked stop's crew, else
    the dispatcher's pin.
    """
    skills = set(
        rules.required_skills(
            rule_set, category_code=facts.category_code, asset_type=facts.asset_type
        )
    )
    if facts.ward_code is not None:
        skills.add(territory_skill(facts.ward_code))
    window: tuple[datetime, datetime] | None = None
    pinned = crew_id
    urgency = round(
        sla_priority(facts.due_at, day_start=day_start, day_end=day_end) * SLA_PRIORITY_SHARE
    )
    if facts.locked and facts.stop_start is not None:
        slack = timedelta(seconds=routing.lock_slack_s)
        window = (facts.stop_start - slack, facts.stop_start + slack)
        pinned = pinned or facts.stop_crew_id
        urgency = MUST_PRIORITY
    elif facts.appointment is not None:
        window = clip(facts.appointment, day_start, day_end)
        urgency = MUST_PRIORITY  # a promise made to a resident comes before the backlog
    elif facts.access is not None:
        zone = day_start.tzinfo
        window = (
            datetime.combine(day, facts.access[0], tzinfo=zone),
            datetime.combine(day, facts.access[1], tzinfo=zone),
        )
    pinned = pinned or facts.pinned_crew_id
    return DayJob(
        id=facts.work_order_id,
        lon=facts.lon,
        lat=facts.lat,
        service_s=routing.default_service_s if facts.service_s is None else facts.service_s,
        skills=frozenset(skills),
        priority=urgency if priority is None else priority,
        window=window,
        crew_id=pinned,
        demand=facts.demand,
    )


# --- in-progress work: where a crew starts from ---------------------------------------------


def crew_starts(
    session: Session,
    *,
    jurisdiction_id: int,
    day: date,
    now: datetime,
    routing: RoutingSettings,
) -> dict[int, CrewStart]:
    """Return, for a plan of today, where each crew with a job in progress becomes free.

    The job stays the crew's (it is never moved); the crew is free when the time on site has
    passed since it started, and not before ``now``. Other days: nobody is busy yet.
    """
    start, end = day_bounds(session, jurisdiction_id=jurisdiction_id, day=day)
    if not start <= now < end:
        return {}
    rows = session.execute(
        text(
            """
            SELECT DISTINCT ON (w.crew_id) w.crew_id, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat,
                   COALESCE(st.service_s, :default_s) AS service_s,
                   COALESCE((SELECT max(e.at) FROM audit_events e
                             WHERE e.jurisdiction_id = w.jurisdiction_id
                               AND e.entity = 'work_order' AND e.entity_id = w.id
                               AND e.to_state = 'in_progress'), w.updated_at) AS started_at
            FROM work_orders w
            JOIN incidents i ON i.jurisdiction_id = w.jurisdiction_id AND i.id = w.incident_id
            LEFT JOIN category_service_times st
              ON st.jurisdiction_id = i.jurisdiction_id AND st.category_code = i.category_code
            WHERE w.jurisdiction_id = :jid AND w.status = 'in_progress' AND w.crew_id IS NOT NULL
            ORDER BY w.crew_id, started_at DESC
            """
        ),
        {"jid": jurisdiction_id, "default_s": routing.default_service_s},
    ).all()
    return {
        int(r.crew_id): CrewStart(
            lon=float(r.lon),
            lat=float(r.lat),
            free_at=max(now, r.started_at + timedelta(seconds=int(r.service_s))),
        )
        for r in rows
    }
