"""Day plans: reading a stored plan back, crew by crew."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from geoalchemy2.shape import to_shape
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from dispatch import service
from dispatch.dayplans.store import crew_by_code, get_plan
from dispatch.models import (
    Crew,
    PlanRoute,
)

# --- reading a plan back ---------------------------------------------------------------------


@dataclass(frozen=True)
class StopView:
    seq: int
    work_order_id: int
    incident_id: int
    category_code: str
    status: str
    lon: float
    lat: float
    arrival: datetime
    start: datetime
    end: datetime
    locked: bool
    due_at: datetime


@dataclass(frozen=True)
class RouteView:
    crew_id: int
    crew_code: str
    crew_name: str
    depart: datetime
    back: datetime
    travel_s: int
    distance_m: int | None
    breaks: list[tuple[datetime, datetime]]
    line: list[tuple[float, float]] | None
    stops: list[StopView]


@dataclass(frozen=True)
class LeftOutView:
    work_order_id: int
    incident_id: int
    category_code: str
    reason: str
    detail: str
    due_at: datetime


@dataclass(frozen=True)
class PlanView:
    day: date
    version: int
    engine: str
    matrix_provider: str
    matrix_s: float
    solve_s: float
    planned_by: str
    updated_at: datetime
    routes: list[RouteView]
    left_out: list[LeftOutView]


def plan_view(
    session: Session, *, jurisdiction_id: int, day: date, crew_code: str | None = None
) -> PlanView:
    """Return the plan of ``day`` as people read it (one crew's route with ``crew_code``)."""
    plan = get_plan(session, jurisdiction_id=jurisdiction_id, day=day)
    crew_filter = (
        crew_by_code(session, jurisdiction_id, crew_code).id if crew_code is not None else None
    )
    zone = service.jurisdiction_zone(session, jurisdiction_id=jurisdiction_id)
    stops: dict[int, list[StopView]] = {}
    for r in session.execute(
        text(
            """
            SELECT s.crew_id, s.seq, s.work_order_id, w.incident_id, i.category_code, w.status,
                   ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, s.arrival, s.start_at, s.end_at,
                   s.locked, w.due_at
            FROM plan_stops s
            JOIN work_orders w ON w.jurisdiction_id = s.jurisdiction_id AND w.id = s.work_order_id
            JOIN incidents i ON i.jurisdiction_id = w.jurisdiction_id AND i.id = w.incident_id
            WHERE s.jurisdiction_id = :jid AND s.plan_id = :plan
              AND (CAST(:crew AS integer) IS NULL OR s.crew_id = :crew)
            ORDER BY s.crew_id, s.seq
            """
        ),
        {"jid": jurisdiction_id, "plan": plan.id, "crew": crew_filter},
    ):
        stops.setdefault(int(r.crew_id), []).append(
            StopView(
                seq=int(r.seq),
                work_order_id=int(r.work_order_id),
                incident_id=int(r.incident_id),
                category_code=str(r.category_code),
                status=str(r.status),
                lon=float(r.lon),
                lat=float(r.lat),
                arrival=r.arrival.astimezone(zone),
                start=r.start_at.astimezone(zone),
                end=r.end_at.astimezone(zone),
                locked=bool(r.locked),
                due_at=r.due_at.astimezone(zone),
            )
        )
    query = (
        select(PlanRoute, Crew.code, Crew.name)
        .join(
            Crew,
            (Crew.jurisdiction_id == PlanRoute.jurisdiction_id) & (Crew.id == PlanRoute.crew_id),
        )
        .where(PlanRoute.jurisdiction_id == jurisdiction_id, PlanRoute.plan_id == plan.id)
        .order_by(Crew.code)
    )
    if crew_filter is not None:
        query = query.where(PlanRoute.crew_id == crew_filter)
    routes = []
    for route, code, name in session.execute(query).all():
        line = None
        if route.geom is not None:
            line = [(float(x), float(y)) for x, y in to_shape(route.geom).coords]
        routes.append(
            RouteView(
                crew_id=route.crew_id,
                crew_code=code,
                crew_name=name,
                depart=route.depart.astimezone(zone),
                back=route.back.astimezone(zone),
                travel_s=route.travel_s,
                distance_m=route.distance_m,
                breaks=[
                    (
                        datetime.fromisoformat(a).astimezone(zone),
                        datetime.fromisoformat(b).astimezone(zone),
                    )
                    for a, b in route.breaks
                ],
                line=line,
                stops=stops.get(route.crew_id, []),
            )
        )
    left_out = []
    if crew_filter is None:
        for r in session.execute(
            text(
                """
                SELECT l.work_order_id, w.incident_id, i.category_code, l.reason, l.detail, w.due_at
                FROM plan_left_out l
                JOIN work_orders w
                  ON w.jurisdiction_id = l.jurisdiction_id AND w.id = l.work_order_id
                JOIN incidents i ON i.jurisdiction_id = w.jurisdiction_id AND i.id = w.incident_id
                WHERE l.jurisdiction_id = :jid AND l.plan_id = :plan
                ORDER BY w.due_at, l.work_order_id
                """
            ),
            {"jid": jurisdiction_id, "plan": plan.id},
        ):
            left_out.append(
                LeftOutView(
                    work_order_id=int(r.work_order_id),
                    incident_id=int(r.incident_id),
                    category_code=str(r.category_code),
                    reason=str(r.reason),
                    detail=str(r.detail),
                    due_at=r.due_at.astimezone(zone),
                )
            )
    return PlanView(
        day=plan.day,
        version=plan.version,
        engine=plan.engine,
        matrix_provider=plan.matrix_provider,
        matrix_s=plan.matrix_s,
        solve_s=plan.solve_s,
        planned_by=plan.planned_by,
        updated_at=plan.updated_at,
        routes=routes,
        left_out=left_out,
    )
