"""Day-plan routes: plan a day, read it (whole, or one crew's route for the tablet), move work
between crews, lock stops, re-plan crews. Thin: parse, call dispatch.dayplans, commit, answer."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from dispatch import service
from dispatch.dayplans import appointments, commands, views
from dispatch.schemas import (
    AppointmentIn,
    AppointmentOut,
    BreakOut,
    CantDoIn,
    CantDoOut,
    LatenessOut,
    LeftOutOut,
    LockIn,
    MoveIn,
    MovePreviewOut,
    PlanIn,
    PlanOut,
    ReplanIn,
    RouteOut,
    StopOut,
)
from geo311.kernel import fields, idempotency
from geo311.kernel.auth.service import Principal, require_crew_of
from geo311.kernel.deps import SessionDep, SettingsDep, require_roles
from geo311.kernel.errors import FieldError, PreconditionRequired, ValidationFailed
from geo311.kernel.http import idempotent_replay
from layers.deps import JurisdictionDep
from work_orders import lookups

router = APIRouter(prefix="/api/v1", tags=["plans"])

Staff = Annotated[Principal, Depends(require_roles("dispatcher", "planner", "crew"))]
PlanReader = Annotated[Principal, Depends(require_roles("dispatcher", "planner"))]
Dispatcher = Annotated[Principal, Depends(require_roles("dispatcher"))]
CrewOrDispatcher = Annotated[Principal, Depends(require_roles("dispatcher", "crew"))]
Day = Annotated[fields.Day, Query(alias="date", description="The day to plan, YYYY-MM-DD (local)")]


def _actor(principal: Principal) -> str:
    return f"{principal.role}:{principal.name}"


def _out(view: views.PlanView) -> PlanOut:
    return PlanOut(
        day=view.day,
        version=view.version,
        engine=view.engine,
        matrix_provider=view.matrix_provider,
        matrix_s=round(view.matrix_s, 3),
        solve_s=round(view.solve_s, 3),
        planned_by=view.planned_by,
        updated_at=view.updated_at,
        routes=[
            RouteOut(
                crew=r.crew_code,
                crew_name=r.crew_name,
                depart=r.depart,
                back=r.back,
                travel_s=r.travel_s,
                distance_m=r.distance_m,
                breaks=[BreakOut(start=a, end=b) for a, b in r.breaks],
                line=(
                    {"type": "LineString", "coordinates": [list(c) for c in r.line]}
                    if r.line
                    else None
                ),
                stops=[
                    StopOut(
                        seq=s.seq,
                        work_order_id=s.work_order_id,
                        incident_id=s.incident_id,
                        category=s.category_code,
                        status=s.status,
                        location={"type": "Point", "coordinates": [s.lon, s.lat]},
                        eta=s.arrival,
                        start=s.start,
                        end=s.end,
                        locked=s.locked,
                        due_at=s.due_at,
                    )
                    for s in r.stops
                ],
            )
            for r in view.routes
        ],
        left_out=[
            LeftOutOut(
                work_order_id=u.work_order_id,
                incident_id=u.incident_id,
                category=u.category_code,
                reason=u.reason,
                detail=u.detail,
                due_at=u.due_at,
            )
            for u in view.left_out
        ],
    )


def _answer(session: Session, jurisdiction_id: int, day: date, response: Response) -> PlanOut:
    view = views.plan_view(session, jurisdiction_id=jurisdiction_id, day=day)
    response.headers["ETag"] = f'"{view.version}"'
    return _out(view)


@router.post("/plans", response_model=PlanOut)
def make_plan(
    day: Day,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    settings: SettingsDep,
    response: Response,
    principal: Dispatcher,
    body: PlanIn | None = None,
) -> PlanOut:
    """Plan the day for every crew working then: ordered stops with ETAs, route lines, and
    the work left for another day with the reason."""
    commands.make_plan(
        session,
        jurisdiction_id=jurisdiction.id,
        day=day,
        routing=settings.routing,
        actor=_actor(principal),
        expected_version=body.plan_version if body else None,
    )
    session.commit()
    return _answer(session, jurisdiction.id, day, response)


@router.get("/plans/{day}", response_model=PlanOut)
def get_plan(
    day: fields.Day,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    response: Response,
    _: PlanReader,
) -> PlanOut:
    """Every crew's route of the day (a crew reads its own: ``/plans/{day}/crews/{code}``)."""
    return _answer(session, jurisdiction.id, day, response)


@router.get("/plans/{day}/crews/{code}", response_model=PlanOut)
def get_crew_route(
    day: fields.Day,
    code: str,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    response: Response,
    principal: Staff,
) -> PlanOut:
    """One crew's route of the day (what the crew's tablet shows); a crew reads only its own."""
    if principal.role == "crew":
        crew_id = service.crew_id_of(session, jurisdiction_id=jurisdiction.id, code=code)
        require_crew_of(principal, crew_id, what=f"The route of crew {code!r}")
    view = views.plan_view(session, jurisdiction_id=jurisdiction.id, day=day, crew_code=code)
    response.headers["ETag"] = f'"{view.version}"'
    return _out(view)


@router.post("/plans/{day}/moves", response_model=PlanOut)
def move(
    day: fields.Day,
    body: MoveIn,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    settings: SettingsDep,
    response: Response,
    principal: Dispatcher,
) -> PlanOut:
    """Move work orders to another crew (or back to the queue) and re-plan the crews it
    touched; a stale ``plan_version`` gets 409 and changes nothing."""
    commands.move_work_orders(
        session,
        jurisdiction_id=jurisdiction.id,
        day=day,
        work_order_ids=body.work_order_ids,
        to_crew=body.to_crew,
        expected_version=body.plan_version,
        routing=settings.routing,
        actor=_actor(principal),
        reason=body.reason,
    )
    session.commit()
    return _answer(session, jurisdiction.id, day, response)


@router.post("/plans/{day}/moves/preview", response_model=MovePreviewOut)
def preview_move(
    day: fields.Day,
    body: MoveIn,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    settings: SettingsDep,
    principal: Dispatcher,
) -> MovePreviewOut:
    """What the same move would do, solved but not stored (the what-if before a commit): the
    affected crews' routes and ETAs before and after, the work it would push off the day, and
    the SLA breaches it would cause or avoid by predicted arrival. Same errors as the move."""
    preview = commands.preview_move(
        session,
        jurisdiction_id=jurisdiction.id,
        day=day,
        work_order_ids=body.work_order_ids,
        to_crew=body.to_crew,
        expected_version=body.plan_version,
        routing=settings.routing,
        actor=_actor(principal),
    )
    session.rollback()
    before, after = _out(preview.before), _out(preview.after)
    left = _out(replace(preview.after, routes=[], left_out=preview.newly_left_out))
    return MovePreviewOut(
        day=before.day,
        version=before.version,
        before=before.routes,
        after=after.routes,
        left_out=left.left_out,
        breaches_caused=[LatenessOut(**asdict(x)) for x in preview.breaches_caused],
        breaches_avoided=[LatenessOut(**asdict(x)) for x in preview.breaches_avoided],
    )


@router.post("/plans/{day}/stops/{work_order_id}/lock", response_model=PlanOut)
def lock(
    day: fields.Day,
    work_order_id: fields.Id,
    body: LockIn,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    response: Response,
    principal: Dispatcher,
) -> PlanOut:
    """Lock a stop in place (its crew and time stay through re-plans), or unlock it."""
    commands.lock_stop(
        session,
        jurisdiction_id=jurisdiction.id,
        day=day,
        work_order_id=work_order_id,
        locked=body.locked,
        expected_version=body.plan_version,
        actor=_actor(principal),
    )
    session.commit()
    return _answer(session, jurisdiction.id, day, response)


@router.post("/plans/{day}/replan", response_model=PlanOut)
def replan(
    day: fields.Day,
    body: ReplanIn,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    settings: SettingsDep,
    response: Response,
    principal: Dispatcher,
) -> PlanOut:
    """Plan these crews' day again, sharing out their open stops and the day's left-out work."""
    commands.replan_crews(
        session,
        jurisdiction_id=jurisdiction.id,
        day=day,
        crew_codes=body.crews,
        expected_version=body.plan_version,
        routing=settings.routing,
        actor=_actor(principal),
    )
    session.commit()
    return _answer(session, jurisdiction.id, day, response)


@router.put("/dispatch/work-orders/{work_order_id}/appointment", response_model=AppointmentOut)
def set_appointment(
    work_order_id: fields.Id,
    body: AppointmentIn,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    principal: Dispatcher,
) -> AppointmentOut:
    """Book the window the work must start in (an appointment with the resident, access)."""
    appointments.set_appointment(
        session,
        jurisdiction_id=jurisdiction.id,
        work_order_id=work_order_id,
        window=(body.start, body.end),
        actor=_actor(principal),
    )
    session.commit()
    return AppointmentOut(work_order_id=work_order_id, start=body.start, end=body.end)


@router.delete("/dispatch/work-orders/{work_order_id}/appointment", response_model=AppointmentOut)
def clear_appointment(
    work_order_id: fields.Id,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    principal: Dispatcher,
) -> AppointmentOut:
    appointments.set_appointment(
        session,
        jurisdiction_id=jurisdiction.id,
        work_order_id=work_order_id,
        window=None,
        actor=_actor(principal),
    )
    session.commit()
    return AppointmentOut(work_order_id=work_order_id, start=None, end=None)


def _work_order_version(body_version: int | None, if_match: str | None) -> int:
    """Return the work order's version the caller saw: the body's, else If-Match's (428)."""
    if body_version is not None:
        return body_version
    raw = (if_match or "").strip().removeprefix("W/").strip('"')
    if not raw or raw == "*":
        raise PreconditionRequired(
            "Send the work order's version you read, as expected_version or If-Match."
        )
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise ValidationFailed(
            'If-Match must be a version ETag such as "3"',
            errors=[FieldError("If-Match", "not a version", "invalid")],
        )
    return int(raw)


@router.post(
    "/work-orders/{work_order_id}/cant-do",
    response_model=CantDoOut,
    tags=["work orders"],
    summary="A crew cannot do a job: back to the dispatcher's queue with the reason",
)
def cant_do(
    work_order_id: fields.Id,
    body: CantDoIn,
    request: Request,
    response: Response,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    principal: CrewOrDispatcher,
    if_match: Annotated[str | None, Header()] = None,
    key: Annotated[str | None, Header(alias=idempotency.HEADER)] = None,
) -> CantDoOut | JSONResponse:
    """The job leaves the crew and every day plan and waits in the dispatcher's queue
    (``GET /api/v1/dispatch/queue``) with the crew's reason; a crew acts on its own work only.
    Sent again with the same ``Idempotency-Key``: the first answer, nothing done again."""
    if key is not None:
        answer = idempotency.claim(
            session,
            jurisdiction_id=jurisdiction.id,
            user_id=principal.user_id,
            key=key,
            request=f"{request.method} {request.url.path}",
        )
        if answer is not None:
            return idempotent_replay(answer.status_code, answer.body)
    work_order = lookups.get_work_order(
        session, jurisdiction_id=jurisdiction.id, work_order_id=work_order_id
    )
    require_crew_of(principal, work_order.crew_id, what=f"Work order {work_order.id}")
    commands.cant_do(
        session,
        work_order=work_order,
        reason=body.reason,
        note=body.note,
        actor=_actor(principal),
        expected_version=_work_order_version(body.expected_version, if_match),
    )
    out = CantDoOut(
        work_order_id=work_order.id,
        status=work_order.status,
        version=work_order.version,
        queue_reason=commands.CANT_DO,
        detail=commands.queue_detail(body.reason, body.note),
    )
    if key is not None:
        idempotency.keep(
            session,
            jurisdiction_id=jurisdiction.id,
            user_id=principal.user_id,
            key=key,
            status_code=200,
            body=out.model_dump(mode="json"),
        )
    session.commit()
    response.headers["ETag"] = f'"{out.version}"'
    return out
