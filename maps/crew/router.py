"""The crew page's JSON routes (``maps.crew`` has what they call) and its service worker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse

from dispatch import service as dispatch_service
from geo311.kernel import fields, idempotency
from geo311.kernel.auth.service import Principal
from geo311.kernel.deps import MediaDep, SessionDep, SettingsDep, require_roles
from geo311.kernel.errors import PayloadTooLarge
from geo311.kernel.http import idempotent_replay
from geo311.kernel.media import service as media_service
from geo311.kernel.media import uploads
from layers.deps import JurisdictionDep
from maps.assets import STATIC_DIR
from maps.crew import (
    MAX_NOTE_CHARS,
    CrewDayOut,
    KeptOut,
    crew_day,
    crew_of_request,
    etag_of,
    keep_leftover,
    list_kept,
)
from work_orders import lookups

router = APIRouter()

CrewReader = Annotated[Principal, Depends(require_roles("crew", "dispatcher"))]
KeptReader = Annotated[Principal, Depends(require_roles("dispatcher", "crew"))]


# --- routes ------------------------------------------------------------------------------------


@router.post(
    "/api/v1/crew/kept",
    response_model=KeptOut,
    status_code=201,
    tags=["crew"],
    summary="Keep a crew's photo and note about a job it could no longer act on",
)
def post_kept(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    media: MediaDep,
    jurisdiction: JurisdictionDep,
    principal: KeptReader,
    work_order_id: Annotated[int, Form(ge=1, le=2**63 - 1)],
    action: Annotated[str, Form(pattern=r"^(start|complete|cant_do|hold)$")],
    note: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
    refusal: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
    photo: Annotated[UploadFile | None, File()] = None,
    key: Annotated[str | None, Header(alias=idempotency.HEADER)] = None,
) -> Response:
    """A queued action the API refused (the job went to another crew meanwhile, or changed):
    its photo and note are kept on the work order for the dispatcher (``GET`` this path)."""
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
    photo_id = None
    data = photo.file.read(settings.media.max_bytes + 1) if photo is not None else b""
    if len(data) > settings.media.max_bytes:
        raise PayloadTooLarge(f"The photo is larger than {settings.media.max_bytes} bytes.")
    try:
        if data:
            processed = uploads.process_upload(data, settings.media)
            photo_id = media_service.store_photo(
                session,
                media,
                processed,
                jurisdiction_id=jurisdiction.id,
                jurisdiction_slug=jurisdiction.slug,
                kind="after",
                report_id=None,
                now=datetime.now(UTC),
            ).id
        crew_code = dispatch_service.crew_code_of(
            session, jurisdiction_id=jurisdiction.id, crew_id=principal.crew_id
        )
        keep_leftover(
            session,
            work_order=work_order,
            action=action,
            note=note.strip(),
            refusal=refusal.strip(),
            photo_id=photo_id,
            crew_code=crew_code,
            actor=f"{principal.role}:{principal.name}",
        )
        kept = list_kept(session, jurisdiction_id=jurisdiction.id, limit=1)[0]
        if key is not None:
            idempotency.keep(
                session,
                jurisdiction_id=jurisdiction.id,
                user_id=principal.user_id,
                key=key,
                status_code=201,
                body=kept.model_dump(mode="json"),
            )
        session.commit()
    except BaseException:
        session.rollback()  # deletes the staged photo files
        raise
    return Response(kept.model_dump_json(), status_code=201, media_type="application/json")


@router.get(
    "/api/v1/crew/kept",
    response_model=list[KeptOut],
    tags=["crew"],
    summary="What crews' tablets kept when an action was refused: photos and notes, newest first",
)
def get_kept(
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    _: KeptReader,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[KeptOut]:
    return list_kept(session, jurisdiction_id=jurisdiction.id, limit=limit)


@router.get("/crew-sw.js", include_in_schema=False)
def crew_service_worker() -> FileResponse:
    """The crew page's service worker, served from the root so that it may control /crew
    (a worker's scope cannot reach above its script's folder)."""
    return FileResponse(
        STATIC_DIR / "crew-sw.js",
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/crew"},
    )


# After /api/v1/crew/kept: a day is matched last.
@router.get(
    "/api/v1/crew/{day}",
    response_model=CrewDayOut,
    tags=["crew"],
    summary="A crew's day as its tablet shows it: the route and every stop's details",
)
def get_crew_day(
    day: fields.Day,
    request: Request,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    principal: CrewReader,
    crew: Annotated[str | None, Query(max_length=64, description="Default: your own")] = None,
) -> Response:
    """The crew's route of ``day`` (its own crew for a crew user: another crew's is 403) with
    each stop's details; an ETag, so a page asking again with If-None-Match gets a 304."""
    row = crew_of_request(session, principal, jurisdiction_id=jurisdiction.id, code=crew)
    out = crew_day(session, jurisdiction_id=jurisdiction.id, crew=row, day=day)
    body = out.model_dump_json().encode()
    tag = etag_of(body)
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
