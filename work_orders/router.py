"""Work-order and incident routes: thin — parse, check the role, call the service, commit.

Staff writes must name the version they saw, as ``expected_version`` or an ``If-Match``
header (428 without one), and get 409 with ``current_version`` when someone else got there
first. A crew user acts only on its own crew's work (403 otherwise, before anything changes).
The "fixed?" pages are public: the signed token in the link is the credential.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from geo311.kernel import fields, idempotency
from geo311.kernel.auth.service import Principal, require_crew_of
from geo311.kernel.deps import MediaDep, SessionDep, SettingsDep, require_roles
from geo311.kernel.errors import (
    FieldError,
    Forbidden,
    PayloadTooLarge,
    PreconditionRequired,
    ValidationFailed,
)
from geo311.kernel.http import idempotent_replay
from geo311.kernel.media import uploads
from geo311.kernel.media.models import Photo
from geo311.kernel.notify.router import SignerDep
from layers.deps import JurisdictionDep
from work_orders import answers, completion, lifecycle, lookups, queries, transitions
from work_orders import categories as category_service
from work_orders.models import RESOLUTION_CODES, Incident, WorkOrder
from work_orders.schemas import (
    AnswerIn,
    AnswerOut,
    CalendarIn,
    CategoryCalendarIn,
    HoldIn,
    IncidentOut,
    ResumeIn,
    SlaSummaryOut,
    TransferIn,
    TransitionIn,
    WorkOrderOut,
)

router = APIRouter()

Staff = Annotated[Principal, Depends(require_roles("dispatcher", "crew", "planner"))]
CrewOrDispatcher = Annotated[Principal, Depends(require_roles("dispatcher", "crew"))]
Dispatcher = Annotated[Principal, Depends(require_roles("dispatcher"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
IfMatch = Annotated[str | None, Header(description='The version you last saw, as an ETag: "3"')]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=idempotency.HEADER,
        description="A key of the caller's own (e.g. a UUID): sent again, the request gets the "
        "first answer back and changes nothing again",
    ),
]


def _actor(principal: Principal) -> str:
    return f"{principal.role}:{principal.name}"


def _expected(body_version: int | None, if_match: str | None) -> int:
    """Return the version the caller expects, from the body or an If-Match header.

    Required: a write without it would silently undo whatever changed since the caller read
    (428, which says how to send it). ``*`` names no version, so it does not count.
    """
    if body_version is not None:
        return body_version
    raw = (if_match or "").strip().removeprefix("W/").strip('"')
    if not raw or raw == "*":
        raise PreconditionRequired(
            "Send the version you read: the work order's (or incident's) `version`, also its "
            'ETag, as If-Match (e.g. If-Match: "3") or as expected_version in the body.'
        )
    if not raw.isdigit():
        raise ValidationFailed(
            'If-Match must be a version ETag such as "3"',
            errors=[FieldError("If-Match", "not a version", "invalid")],
        )
    return int(raw)


def _check_crew_move(principal: Principal, to: str) -> None:
    if principal.role == "crew" and to not in lifecycle.CREW_MOVES:
        raise Forbidden(
            f"A crew can move its work to {', '.join(sorted(lifecycle.CREW_MOVES))}; "
            f"{to!r} is for dispatchers."
        )


def _work_order_out(
    session: SessionDep, request: Request, work_order: WorkOrder, sla_state: str | None = None
) -> WorkOrderOut:
    photo_url = None
    if work_order.after_photo_id is not None:
        photo = session.get(Photo, (work_order.jurisdiction_id, work_order.after_photo_id))
        if photo is not None:
            # The configured public URL, never the Host header (a forged Host went into it).
            base_url: str = request.app.state.settings.base_url
            photo_url = f"{base_url}/media/{photo.public_key}"
    category: str | None = None
    location: tuple[float, float] | None = None
    if sla_state is None:
        rows = queries.list_work_orders(
            session,
            jurisdiction_id=work_order.jurisdiction_id,
            work_order_ids=[work_order.id],
        )
        if rows:
            sla_state = rows[0].sla_state
            category, location = rows[0].category_code, (rows[0].lon, rows[0].lat)
    return WorkOrderOut(
        id=work_order.id,
        incident_id=work_order.incident_id,
        status=work_order.status,
        version=work_order.version,
        department=work_order.department,
        crew_id=work_order.crew_id,
        category=category,
        location=location,
        opened_at=work_order.opened_at,
        due_at=work_order.due_at,
        at_risk_at=work_order.at_risk_at,
        sla_state=sla_state,
        paused_at=work_order.paused_at,
        hold_reason=work_order.hold_reason,
        resolved_at=work_order.resolved_at,
        completed_at=work_order.completed_at,
        completed_by=work_order.completed_by,
        resolution_code=work_order.resolution_code,
        completion_note=work_order.completion_note,
        after_photo_url=photo_url,
    )


def _incident_out(session: SessionDep, request: Request, incident: Incident) -> IncidentOut:
    work_order = lookups.current_work_order(session, incident)
    return IncidentOut(
        id=incident.id,
        status=incident.status,
        version=incident.version,
        category=incident.category_code,
        opened_at=incident.opened_at,
        due_at=incident.due_at,
        closed_at=incident.closed_at,
        work_order=_work_order_out(session, request, work_order) if work_order else None,
    )


def _own_work_order(
    session: Session, principal: Principal, *, jurisdiction_id: int, work_order_id: int
) -> WorkOrder:
    """Return the work order the caller acts on: 404 if none, 403 if not its crew's work."""
    work_order = lookups.get_work_order(
        session, jurisdiction_id=jurisdiction_id, work_order_id=work_order_id
    )
    require_crew_of(principal, work_order.crew_id, what=f"Work order {work_order.id}")
    return work_order


def _act(
    session: Session,
    request: Request,
    response: Response,
    principal: Principal,
    *,
    jurisdiction_id: int,
    work_order_id: int,
    change: Callable[[WorkOrder], object],
    key: str | None = None,
) -> WorkOrderOut | JSONResponse:
    """Return the work order's view after ``change`` moved it and the move was committed (or,
    for an ``Idempotency-Key`` seen before, the answer its first request got)."""
    if key is not None:
        answer = _claim(session, request, principal, jurisdiction_id=jurisdiction_id, key=key)
        if answer is not None:
            return idempotent_replay(answer.status_code, answer.body)
    work_order = _own_work_order(
        session, principal, jurisdiction_id=jurisdiction_id, work_order_id=work_order_id
    )
    change(work_order)
    return _commit(session, request, response, principal, work_order=work_order, key=key)


def _claim(
    session: Session, request: Request, principal: Principal, *, jurisdiction_id: int, key: str
) -> idempotency.Answer | None:
    return idempotency.claim(
        session,
        jurisdiction_id=jurisdiction_id,
        user_id=principal.user_id,
        key=key,
        request=f"{request.method} {request.url.path}",
    )


def _commit(
    session: Session,
    request: Request,
    response: Response,
    principal: Principal,
    *,
    work_order: WorkOrder,
    key: str | None,
) -> WorkOrderOut:
    """Return the moved work order's view, its answer kept under ``key``, all committed."""
    session.flush()
    out = _work_order_out(session, request, work_order)
    if key is not None:
        idempotency.keep(
            session,
            jurisdiction_id=work_order.jurisdiction_id,
            user_id=principal.user_id,
            key=key,
            status_code=200,
            body=out.model_dump(mode="json"),
        )
    session.commit()
    _etag(response, work_order.version)
    return out


def _etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


# --- work orders --------------------------------------------------------------------------


@router.get(
    "/api/v1/work-orders",
    response_model=list[WorkOrderOut],
    summary="Work orders, earliest due first; filter by status, queue and SLA state",
    tags=["work orders"],
)
def list_work_orders(
    request: Request,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    _: Staff,
    status: Annotated[list[str], Query(description="One or more statuses")] = [],  # noqa: B006
    department: Annotated[str | None, Query(description="A department's queue")] = None,
    sla: Annotated[
        Literal["breached", "at_risk", "on_track", "met", "cancelled"] | None,
        Query(description="SLA state, computed in SQL"),
    ] = None,
    open: Annotated[bool, Query(description="Only work still to do")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[fields.Count, Query()] = 0,
) -> list[WorkOrderOut]:
    bad = [s for s in status if not lifecycle.as_status(s)]
    if bad:
        raise ValidationFailed(
            f"unknown status {bad[0]!r}; the statuses are {', '.join(lifecycle.STATUSES)}",
            errors=[FieldError("status", "unknown status", "unknown")],
        )
    rows = queries.list_work_orders(
        session,
        jurisdiction_id=jurisdiction.id,
        statuses=status,
        department=department,
        sla_filter=sla,
        open_only=open,
        limit=limit,
        offset=offset,
    )
    out = []
    for row in rows:
        item = _work_order_out(session, request, row.work_order, row.sla_state)
        item.category = row.category_code
        item.location = (row.lon, row.lat)
        out.append(item)
    return out


@router.get(
    "/api/v1/work-orders/sla-summary",
    response_model=list[SlaSummaryOut],
    summary="Per queue: open, on hold, at risk, breached and met — counted in SQL",
    tags=["work orders"],
)
def sla_summary(
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    _: Staff,
    department: str | None = None,
) -> list[SlaSummaryOut]:
    return [
        SlaSummaryOut(**row)
        for row in queries.sla_summary(
            session, jurisdiction_id=jurisdiction.id, department=department
        )
    ]


@router.get(
    "/api/v1/work-orders/{work_order_id}",
    response_model=WorkOrderOut,
    summary="One work order (its version is also the ETag)",
    tags=["work orders"],
)
def get_work_order(
    work_order_id: fields.Id,
    request: Request,
    response: Response,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    _: Staff,
) -> WorkOrderOut:
    work_order = lookups.get_work_order(
        session, jurisdiction_id=jurisdiction.id, work_order_id=work_order_id
    )
    _etag(response, work_order.version)
    return _work_order_out(session, request, work_order)


@router.post(
    "/api/v1/work-orders/{work_order_id}/transitions",
    response_model=WorkOrderOut,
    summary="Change a work order's status (its incident follows)",
    tags=["work orders"],
)
def transition_work_order(
    work_order_id: fields.Id,
    body: TransitionIn,
    request: Request,
    response: Response,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    principal: CrewOrDispatcher,
    if_match: IfMatch = None,
    key: IdempotencyKey = None,
) -> WorkOrderOut | JSONResponse:
    _check_crew_move(principal, body.to)
    return _act(
        session,
        request,
        response,
        principal,
        jurisdiction_id=jurisdiction.id,
        work_order_id=work_order_id,
        key=key,
        change=lambda work_order: transitions.transition(
            session,
            incident_or_work_order=work_order,
            to=body.to,
            actor=_actor(principal),
            reason=body.reason,
            expected_version=_expected(body.expected_version, if_match),
        ),
    )


@router.post(
    "/api/v1/work-orders/{work_order_id}/hold",
    response_model=WorkOrderOut,
    summary="Put a work order on hold (its SLA clock stops)",
    tags=["work orders"],
)
def hold_work_order(
    work_order_id: fields.Id,
    body: HoldIn,
    request: Request,
    response: Response,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    principal: CrewOrDispatcher,
    if_match: IfMatch = None,
    key: IdempotencyKey = None,
) -> WorkOrderOut | JSONResponse:
    return _act(
        session,
        request,
        response,
        principal,
        jurisdiction_id=jurisdiction.id,
        work_order_id=work_order_id,
        key=key,
        change=lambda work_order: transitions.hold(
            session,
            work_order=work_order,
            reason=body.reason,
            actor=_actor(principal),
            expected_version=_expected(body.expected_version, if_match),
        ),
    )


@router.post(
    "/api/v1/work-orders/{work_order_id}/resume",
    response_model=WorkOrderOut,
    summary="Resume held work (back to where it was; due later by the time held)",
    tags=["work orders"],
)
def resume_work_order(
    work_order_id: fields.Id,
    body: ResumeIn,
    request: Request,
    response: Response,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    principal: CrewOrDispatcher,
    if_match: IfMatch = None,
    key: IdempotencyKey = None,
) -> WorkOrderOut | JSONResponse:
    return _act(
        session,
        request,
        response,
        principal,
        jurisdiction_id=jurisdiction.id,
        work_order_id=work_order_id,
        key=key,
        change=lambda work_order: transitions.resume(
            session,
            work_order=work_order,
            actor=_actor(principal),
            reason=body.reason,
            expected_version=_expected(body.expected_version, if_match),
        ),
    )


@router.post(
    "/api/v1/work-orders/{work_order_id}/transfer",
    response_model=WorkOrderOut,
    summary="Send a work order to another department's or agency's queue",
    tags=["work orders"],
)
def transfer_work_order(
    work_order_id: fields.Id,
    body: TransferIn,
    request: Request,
    response: Response,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    principal: Dispatcher,
    if_match: IfMatch = None,
) -> WorkOrderOut | JSONResponse:
    return _act(
        session,
        request,
        response,
        principal,
        jurisdiction_id=jurisdiction.id,
        work_order_id=work_order_id,
        change=lambda work_order: transitions.transfer(
            session,
            work_order=work_order,
            department=body.department,
            actor=_actor(principal),
            reason=body.reason,
            expected_version=_expected(body.expected_version, if_match),
        ),
    )


@router.post(
    "/api/v1/work-orders/{work_order_id}/complete",
    response_model=WorkOrderOut,
    summary="Complete with an after-photo, a note and a resolution code; closes the incident",
    tags=["work orders"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["photo", "resolution_code"],
                        "properties": {
                            "photo": {"type": "string", "format": "binary"},
                            "note": {"type": "string", "maxLength": 2000},
                            "resolution_code": {
                                "type": "string",
                                "enum": list(RESOLUTION_CODES),
                            },
                            "expected_version": {"type": "integer"},
                        },
                    }
                }
            },
        }
    },
)
def complete_work_order(
    work_order_id: fields.Id,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    media: MediaDep,
    jurisdiction: JurisdictionDep,
    principal: CrewOrDispatcher,
    photo: Annotated[UploadFile | None, File()] = None,
    note: Annotated[str | None, Form()] = None,
    resolution_code: Annotated[str | None, Form()] = None,
    expected_version: Annotated[fields.Count | None, Form()] = None,
    if_match: IfMatch = None,
    key: IdempotencyKey = None,
) -> WorkOrderOut | JSONResponse:
    if key is not None:
        # A completion sent again (a tablet back online) gets the first answer: its photo is
        # never decoded nor stored twice.
        answer = _claim(session, request, principal, jurisdiction_id=jurisdiction.id, key=key)
        if answer is not None:
            return idempotent_replay(answer.status_code, answer.body)
    # Who may act and on which version first: a refused caller's photo is never decoded.
    work_order = _own_work_order(
        session, principal, jurisdiction_id=jurisdiction.id, work_order_id=work_order_id
    )
    version = _expected(expected_version, if_match)
    max_bytes = settings.media.max_bytes
    data = photo.file.read(max_bytes + 1) if photo is not None else b""
    errors: list[FieldError] = []
    if not data:
        errors.append(FieldError("photo", "an after-photo is required", "missing"))
    try:
        text_note, code = completion.check_completion(note=note, resolution_code=resolution_code)
    except ValidationFailed as exc:
        errors += exc.errors
    if errors:
        raise ValidationFailed("; ".join(e.message for e in errors), errors=errors)
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"The photo is larger than {max_bytes} bytes.", extra={"reason": "photo_too_large"}
        )
    processed = uploads.process_upload(data, settings.media)
    try:
        completion.complete_work_order(
            session,
            work_order=work_order,
            actor=_actor(principal),
            photo=processed,
            note=text_note,
            resolution_code=code,
            media=media,
            jurisdiction_slug=jurisdiction.slug,
            expected_version=version,
        )
        return _commit(session, request, response, principal, work_order=work_order, key=key)
    except BaseException:
        # An explicit rollback fires the hook that deletes the staged photo files.
        session.rollback()
        raise


# --- incidents ----------------------------------------------------------------------------


@router.get(
    "/api/v1/incidents/{incident_id}",
    response_model=IncidentOut,
    summary="One incident with its work order",
    tags=["work orders"],
)
def get_incident(
    incident_id: fields.Id,
    request: Request,
    response: Response,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    _: Staff,
) -> IncidentOut:
    incident = lookups.get_incident(
        session, jurisdiction_id=jurisdiction.id, incident_id=incident_id
    )
    _etag(response, incident.version)
    return _incident_out(session, request, incident)


@router.post(
    "/api/v1/incidents/{incident_id}/transitions",
    response_model=IncidentOut,
    summary="Change an incident's status (its work order follows)",
    tags=["work orders"],
)
def transition_incident(
    incident_id: fields.Id,
    body: TransitionIn,
    request: Request,
    response: Response,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    principal: Dispatcher,
    if_match: IfMatch = None,
) -> IncidentOut:
    incident = lookups.get_incident(
        session, jurisdiction_id=jurisdiction.id, incident_id=incident_id
    )
    transitions.transition(
        session,
        incident_or_work_order=incident,
        to=body.to,
        actor=_actor(principal),
        reason=body.reason,
        expected_version=_expected(body.expected_version, if_match),
    )
    session.commit()
    _etag(response, incident.version)
    return _incident_out(session, request, incident)


# --- SLA calendars ------------------------------------------------------------------------


@router.put(
    "/api/v1/sla-calendars/{code}",
    status_code=204,
    summary="Create or replace a business calendar (opening hours, holidays)",
    tags=["work orders"],
)
def put_calendar(
    code: str, body: CalendarIn, session: SessionDep, jurisdiction: JurisdictionDep, _: Admin
) -> None:
    category_service.put_calendar(
        session,
        jurisdiction_id=jurisdiction.id,
        code=code,
        name=body.name,
        timezone=body.timezone,
        hours={day: [list(span) for span in spans] for day, spans in body.hours.items()},
        holidays=body.holidays,
    )
    session.commit()


@router.put(
    "/api/v1/categories/{code}/sla-calendar",
    status_code=204,
    summary="Count a category's SLA in a business calendar (null: round the clock)",
    tags=["work orders"],
)
def put_category_calendar(
    code: str,
    body: CategoryCalendarIn,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    _: Admin,
) -> None:
    category_service.set_category_calendar(
        session, jurisdiction_id=jurisdiction.id, category_code=code, calendar_code=body.calendar
    )
    session.commit()


# --- "fixed?" answers (public, from the closure notice) -----------------------------------


@router.post(
    "/api/v1/notices/answer",
    response_model=AnswerOut,
    summary='Answer a closure notice\'s "fixed?" (not_fixed reopens the incident)',
    tags=["notices"],
)
def answer_api(body: AnswerIn, session: SessionDep, signer: SignerDep) -> AnswerOut:
    link = signer.read_answer(body.token)
    result = answers.answer_closure(session, link=link, answer=body.answer, now=datetime.now(UTC))
    session.commit()
    return AnswerOut(outcome=result.outcome, incident_id=result.incident_id)
