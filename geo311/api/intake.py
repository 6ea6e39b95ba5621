"""Report intake routes: thin — parse the request, call the service, commit, answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from geo311.flows import join_incident as join_flow
from geo311.flows import submit_report as submit_flow
from geo311.kernel.auth.contact import CONTACT_ROLES, may_see_contact_details
from geo311.kernel.auth.service import Principal
from geo311.kernel.database import Database
from geo311.kernel.deps import (
    DatabaseDep,
    MediaDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    require_roles,
)
from geo311.kernel.errors import (
    FieldError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from geo311.kernel.media.store import LocalMediaStore
from geo311.kernel.settings import Settings
from geo311.resident.intake import service
from geo311.resident.intake.schemas import CategoryOut, ReportOut, StaffReportOut
from layers.deps import JurisdictionDep
from work_orders import categories as category_service
from work_orders import lookups

router = APIRouter()

_FORM_FIELDS = ("category", "lat", "lon", "description", "email", "phone", "language", "address")
_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["category"],
    "properties": {
        "category": {"type": "string", "description": "Service category code, e.g. pothole"},
        "lat": {"type": "number", "description": "WGS84 latitude; optional with a GPS photo"},
        "lon": {"type": "number", "description": "WGS84 longitude; optional with a GPS photo"},
        "description": {"type": "string", "maxLength": 4000},
        "address": {"type": "string", "maxLength": 500},
        "email": {"type": "string", "format": "email", "description": "Kept private"},
        "phone": {"type": "string", "description": "Kept private"},
        "language": {"type": "string", "default": "en", "description": "For notices: en, es …"},
        "photo": {"type": "string", "format": "binary", "description": "JPEG, PNG, WebP, HEIC"},
    },
}


def _media_url(request: Request) -> str:
    # The configured public URL, never the Host header: a forged Host would go into links.
    settings: Settings = request.app.state.settings
    return settings.base_url + "/media"


async def _read_report_request(
    request: Request, max_bytes: int
) -> tuple[dict[str, str | None], bytes | None]:
    """Return the text fields and the photo bytes of a multipart, urlencoded or JSON body."""
    content_type = request.headers.get("content-type", "")
    declared = request.headers.get("content-length")
    # Refuse a huge upload before reading it; 64 KiB covers the text fields and boundaries.
    if declared and declared.isdigit() and int(declared) > max_bytes + 65536:
        raise PayloadTooLarge(
            f"The upload is {int(declared)} bytes; photos may be at most {max_bytes} bytes.",
            extra={"reason": "photo_too_large"},
        )
    if content_type.startswith("application/json"):
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            raise ValidationFailed(f"The body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ValidationFailed("The JSON body must be an object of report fields.")
        if body.get("photo") not in (None, ""):
            raise _photo_not_a_file()
        return {k: None if body.get(k) is None else str(body[k]) for k in _FORM_FIELDS}, None
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise UnsupportedMediaType(
            "Send the report as multipart/form-data (with a photo), "
            "application/x-www-form-urlencoded or application/json."
        )
    form = await request.form(max_files=1, max_fields=len(_FORM_FIELDS) + 4)
    try:
        fields: dict[str, str | None] = {}
        for name in _FORM_FIELDS:
            value = form.get(name)
            fields[name] = value if isinstance(value, str) else None
        upload = form.get("photo")
        photo: bytes | None = None
        if isinstance(upload, str) and upload:
            # Text where a file belongs: a client that forgot the file part, or sent a
            # path or URL. Dropping it would file the report without the photo they meant.
            # Empty text says "no photo", like an empty file input, and loses nothing.
            raise _photo_not_a_file()
        if isinstance(upload, UploadFile):
            photo = await upload.read(max_bytes + 1)
            if upload.filename == "" and not photo:
                photo = None  # an empty file input in a browser form
        return fields, photo
    finally:
        await form.close()


def _photo_not_a_file() -> ValidationFailed:
    message = "the photo must be sent as a file part of a multipart/form-data body"
    return ValidationFailed(
        "The photo was sent as text, not as a file; send it as a file part of a "
        "multipart/form-data body (with a filename).",
        errors=[FieldError("photo", message, "not_a_file")],
    )


# The report form, as multipart (with a photo) or JSON: both report routes take it.
_REPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": _FORM_SCHEMA},
            "application/json": {"schema": _FORM_SCHEMA},
        },
    }
}


@router.post(
    "/api/v1/reports",
    status_code=201,
    response_model=ReportOut,
    summary="Submit a report (a pin and/or a photo with GPS)",
    openapi_extra=_REPORT_BODY,
    tags=["reports"],
)
async def submit_report(
    request: Request,
    settings: SettingsDep,
    media: MediaDep,
    db: DatabaseDep,
) -> ReportOut:
    fields, photo = await _read_report_request(request, settings.media.max_bytes)
    draft = service.parse_report_form(fields, channel="api", settings=settings.intake)
    # Photo decoding and the database work block: keep them off the event loop.
    return await run_in_threadpool(
        _store_report, db, settings, media, draft, photo, _media_url(request)
    )


def _store_report(
    db: Database,
    settings: Settings,
    media: LocalMediaStore,
    draft: service.ReportDraft,
    photo: bytes | None,
    media_url: str,
    follow_tracking_id: str | None = None,
) -> ReportOut:
    """Store the report (joined to request ``follow_tracking_id``'s incident when given) and
    return its view, in one transaction."""
    # Decoded before the session opens: a decode may wait for the process's decode memory,
    # and an upload waiting there must not hold a pooled connection.
    decoded = submit_flow.decode_photo(photo, settings.media)
    with db.sessions() as session:
        jurisdiction = submit_flow.served_jurisdiction(session, settings.jurisdiction)
        try:
            if follow_tracking_id is None:
                submitted = submit_flow.submit(
                    session,
                    jurisdiction_id=jurisdiction.id,
                    jurisdiction_slug=jurisdiction.slug,
                    draft=draft,
                    photo=decoded,
                    media=media,
                    media_settings=settings.media,
                    now=datetime.now(UTC),
                    dedup_settings=settings.dedup,
                    default_service_s=settings.routing.default_service_s,
                )
                assert submitted.shown is not None
                # Built from what was written: nothing read back.
                view = service.shown_view(submitted.report, submitted.shown, media_url=media_url)
                session.commit()
                return view
            report = join_flow.join_incident(
                session,
                jurisdiction_id=jurisdiction.id,
                jurisdiction_slug=jurisdiction.slug,
                follow_tracking_id=follow_tracking_id,
                draft=draft,
                photo=decoded,
                media=media,
                media_settings=settings.media,
                now=datetime.now(UTC),
                dedup_settings=settings.dedup,
            ).report
            # Read the answer inside the same transaction: one connection checkout, and the
            # server keeps its prepared statements (a rollback after commit would drop them).
            view = service.report_view(
                session,
                jurisdiction_id=jurisdiction.id,
                tracking_id=report.tracking_id,
                media_url=media_url,
            )
            session.commit()
        except BaseException:
            # An explicit rollback fires the hook that deletes the staged photo files.
            session.rollback()
            raise
        return view


@router.post(
    "/api/v1/reports/{tracking_id}/join",
    status_code=201,
    response_model=ReportOut,
    summary="Submit a report that joins request {tracking_id} (its sender follows it)",
    description="The same body as POST /api/v1/reports. The report is stored and joins the "
    "incident of request {tracking_id} (an open one of the category's group near the report, "
    "by dedup's rule; otherwise 409 not_joinable and nothing is stored), through an audited, "
    "undoable merge; an e-mail or phone given subscribes the sender to its updates.",
    openapi_extra=_REPORT_BODY,
    tags=["reports"],
)
async def submit_report_joining(
    tracking_id: str,
    request: Request,
    settings: SettingsDep,
    media: MediaDep,
    db: DatabaseDep,
) -> ReportOut:
    fields, photo = await _read_report_request(request, settings.media.max_bytes)
    draft = service.parse_report_form(fields, channel="api", settings=settings.intake)
    return await run_in_threadpool(
        _store_report, db, settings, media, draft, photo, _media_url(request), tracking_id
    )


@router.get(
    "/api/v1/reports/{tracking_id}",
    response_model=ReportOut,
    summary="Follow a report by its tracking id",
    tags=["reports"],
)
def get_report(
    tracking_id: str, request: Request, session: SessionDep, jurisdiction: JurisdictionDep
) -> ReportOut:
    return service.report_view(
        session,
        jurisdiction_id=jurisdiction.id,
        tracking_id=tracking_id,
        media_url=_media_url(request),
    )


@router.get(
    "/api/v1/staff/reports/{tracking_id}",
    response_model=StaffReportOut,
    summary="A report with the requester's contact details (staff only)",
    tags=["staff"],
)
def get_report_for_staff(
    tracking_id: str,
    request: Request,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    principal: Annotated[Principal, Depends(require_roles(*CONTACT_ROLES))],
) -> ReportOut:
    view = service.report_view(
        session,
        jurisdiction_id=jurisdiction.id,
        tracking_id=tracking_id,
        media_url=_media_url(request),
        staff=True,
    )
    if principal.role == "crew" and isinstance(view, StaffReportOut):
        # A requester's contact is for the crew doing the work, not for every crew.
        incident = lookups.get_incident(
            session, jurisdiction_id=jurisdiction.id, incident_id=view.incident_id
        )
        work_order = lookups.current_work_order(session, incident)
        crew_id = work_order.crew_id if work_order else None
        if not may_see_contact_details(principal, work_crew_id=crew_id):
            raise Forbidden(
                f"Report {tracking_id} is not your crew's work: its requester's contact is for "
                "the crew doing it."
            )
    return view


@router.get(
    "/api/v1/categories",
    response_model=list[CategoryOut],
    summary="What can be reported",
    tags=["reports"],
)
def list_categories(session: SessionDep, jurisdiction: JurisdictionDep) -> list[CategoryOut]:
    return [
        CategoryOut(
            code=c.code,
            name=c.name,
            group=c.group_code,
            asset_type=c.asset_type,
            sla_hours=c.sla_hours,
            description=c.description,
        )
        for c in category_service.list_categories(session, jurisdiction_id=jurisdiction.id)
    ]


@router.get("/api/v1/me", summary="Who the token belongs to", tags=["staff"])
def me(principal: PrincipalDep) -> dict[str, str]:
    return {"name": principal.name, "role": principal.role}


@router.get("/media/{key:path}", include_in_schema=False)
def public_media(key: str, media: MediaDep) -> FileResponse:
    path = media.public_file(key)
    if path is None:
        raise NotFound("No such public media file.")
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})
