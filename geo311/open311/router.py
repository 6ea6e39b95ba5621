"""Open311 GeoReport v2 routes under /open311/v2: thin — read the request, call the service,
answer in the format the path's suffix names. Every failure leaves in the spec's
``<errors>`` shape (JSON: an array of ``{code, description}``), never as problem+json."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from geo311.database import Database
from geo311.deps import (
    DatabaseDep,
    JurisdictionDep,
    MediaDep,
    SessionDep,
    SettingsDep,
    get_jurisdiction,
)
from geo311.errors import AppError
from geo311.http import RETRY_AFTER_S, is_database_outage
from geo311.media import LocalMediaStore
from geo311.open311 import service
from geo311.open311.errors import BadRequest, UnknownResource, descriptions, open311_status
from geo311.open311.formats import FORMATS, MEDIA_TYPES, Format, render_list, render_object
from geo311.open311.query import is_true, parse_requests_query, parse_updates_query
from geo311.open311.schemas import ErrorOut, PostedRequestOut
from geo311.settings import Settings
from layers.models import Jurisdiction

PREFIX = "/open311/v2"
log = logging.getLogger(__name__)
_ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]+)\](\[\])?$")
_MAX_FORM_FIELDS = 200


def _error_response(exc: Exception, path: str) -> Response:
    fmt: Format = "json" if path.endswith(".json") else "xml"
    if isinstance(exc, AppError):
        status, texts = open311_status(exc), descriptions(exc)
    elif isinstance(exc, RequestValidationError):
        status = 400
        texts = [f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors()]
    elif isinstance(exc, HTTPException) and exc.status_code < 500:
        status = exc.status_code if exc.status_code in (403, 404) else 400
        texts = [str(exc.detail)]
    elif is_database_outage(exc):
        body = render_list(
            "errors",
            [ErrorOut(code=503, description="The service is briefly unavailable; try again.")],
            fmt,
            UTC,
        )
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        return Response(body, status_code=503, media_type=MEDIA_TYPES[fmt], headers=headers)
    else:
        log.exception("unhandled error in the Open311 API", exc_info=exc)
        status, texts = 500, ["Something went wrong on our side."]
    body = render_list("errors", [ErrorOut(code=status, description=t) for t in texts], fmt, UTC)
    return Response(body, status_code=status, media_type=MEDIA_TYPES[fmt])


class Open311Route(APIRoute):
    """A route whose every failure is rendered in the spec's error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return _error_response(exc, request.url.path)

        return guarded


router = APIRouter(prefix=PREFIX, tags=["open311"], route_class=Open311Route)

FormatPath = Annotated[str, Path(description="Response format: xml or json")]
_DOCUMENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A GeoReport v2 document",
        "content": {"text/xml": {}, "application/json": {}},
    }
}


def _format(fmt: str) -> Format:
    for known in FORMATS:
        if fmt == known:
            return known
    raise UnknownResource(f"Unknown format .{fmt}: use .xml or .json.")


def _params(request: Request) -> dict[str, str]:
    # "can be declared multiple times, comma delimited": repeated parameters are joined.
    return {k: ",".join(request.query_params.getlist(k)) for k in request.query_params}


def _read(fmt: str, request: Request, jurisdiction: Jurisdiction) -> tuple[Format, dict[str, str]]:
    """Return the answer's format and the query parameters of a GET, once the format is known
    and the jurisdiction_id it names (if any) is the one served."""
    f = _format(fmt)
    params = _params(request)
    service.check_jurisdiction(params.get("jurisdiction_id"), served=jurisdiction.slug)
    return f, params


def _paging(settings: Settings) -> dict[str, int]:
    """Return the date-span and page-size limits the list queries are parsed with."""
    return {
        "max_span_days": settings.open311.max_span_days,
        "page_size_default": settings.open311.page_size_default,
        "page_size_max": settings.open311.page_size_max,
    }


def _tz(jurisdiction: Jurisdiction) -> ZoneInfo:
    return ZoneInfo(jurisdiction.timezone)


def _document(body: bytes, fmt: Format) -> Response:
    return Response(body, media_type=MEDIA_TYPES[fmt])


def _media_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/media"


@router.get("/discovery.{fmt}", summary="Service discovery", responses=_DOCUMENT)
def discovery(fmt: FormatPath, request: Request, settings: SettingsDep) -> Response:
    f = _format(fmt)
    endpoint = str(request.base_url).rstrip("/") + PREFIX
    document = service.discovery(endpoint_url=endpoint, settings=settings.open311)
    return _document(render_object("discovery", document, f, UTC), f)


@router.get(
    "/services.{fmt}", summary="The services (categories) one can request", responses=_DOCUMENT
)
def services(
    fmt: FormatPath, request: Request, session: SessionDep, jurisdiction: JurisdictionDep
) -> Response:
    f, _ = _read(fmt, request, jurisdiction)
    rows = service.list_services(session, jurisdiction_id=jurisdiction.id)
    return _document(render_list("services", rows, f, _tz(jurisdiction)), f)


@router.get(
    "/services/{service_code}.{fmt}",
    summary="A service's definition: the questions it asks",
    responses=_DOCUMENT,
)
def service_definition(
    service_code: str,
    fmt: FormatPath,
    request: Request,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
) -> Response:
    f, _ = _read(fmt, request, jurisdiction)
    definition = service.service_definition(
        session, jurisdiction_id=jurisdiction.id, service_code=service_code
    )
    return _document(render_object("service_definition", definition, f, _tz(jurisdiction)), f)


async def _read_post(
    request: Request, max_bytes: int
) -> tuple[dict[str, str], dict[str, list[str]], bytes | None]:
    """Return the text fields, the attribute answers and the media file of a POST."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        raise BadRequest(
            "Send the request as application/x-www-form-urlencoded, or multipart/form-data "
            "with the photo in a 'media' file field."
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + 65536:
        raise BadRequest(f"The upload is {declared} bytes; media may be at most {max_bytes} bytes.")
    form = await request.form(max_files=1, max_fields=_MAX_FORM_FIELDS)
    try:
        fields: dict[str, str] = {}
        attributes: dict[str, list[str]] = {}
        photo: bytes | None = None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key == "media":
                    photo = await value.read(max_bytes + 1)
                    if not photo and not value.filename:
                        photo = None  # an empty file input
                continue
            match = _ATTRIBUTE.match(key)
            if match:
                attributes.setdefault(match.group(1), []).append(value)
            else:
                fields[key] = value
        # The spec lets api_key and jurisdiction_id ride in the query string of a POST.
        for name in ("api_key", "jurisdiction_id"):
            if not fields.get(name, "").strip() and request.query_params.get(name):
                fields[name] = request.query_params[name]
        return fields, attributes, photo
    finally:
        await form.close()


def _store_request(
    db: Database,
    settings: Settings,
    media: LocalMediaStore,
    fields: dict[str, str],
    attributes: dict[str, list[str]],
    photo: bytes | None,
) -> tuple[PostedRequestOut, ZoneInfo]:
    now = datetime.now(UTC)
    with db.sessions() as session:
        jurisdiction = get_jurisdiction(session, settings)
        service.check_jurisdiction(fields.get("jurisdiction_id"), served=jurisdiction.slug)
        try:
            key_id = service.authenticate(
                session, jurisdiction_id=jurisdiction.id, key=fields.get("api_key")
            )
            posted = service.submit_request(
                session,
                jurisdiction_id=jurisdiction.id,
                jurisdiction_slug=jurisdiction.slug,
                api_key_id=key_id,
                fields=fields,
                attributes=attributes,
                photo=photo,
                media=media,
                settings=settings,
                now=now,
            )
            session.commit()
        except BaseException:
            # An explicit rollback fires the hook that deletes the staged photo files.
            session.rollback()
            raise
        return posted, _tz(jurisdiction)


@router.post(
    "/requests.{fmt}",
    summary="Create a service request (api_key required)",
    responses=_DOCUMENT,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"media": {"type": "string", "format": "binary"}},
                    }
                },
            },
        }
    },
)
async def post_request(
    fmt: FormatPath, request: Request, settings: SettingsDep, media: MediaDep, db: DatabaseDep
) -> Response:
    f = _format(fmt)
    fields, attributes, photo = await _read_post(request, settings.media.max_bytes)
    # Photo decoding and the database work block: keep them off the event loop.
    posted, tz = await run_in_threadpool(
        _store_request, db, settings, media, fields, attributes, photo
    )
    return _document(render_list("service_requests", [posted], f, tz), f)


@router.get(
    "/tokens/{token}.{fmt}", summary="The service_request_id behind a token", responses=_DOCUMENT
)
def token(
    token: str,
    fmt: FormatPath,
    request: Request,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
) -> Response:
    f, _ = _read(fmt, request, jurisdiction)
    found = service.token_request(session, jurisdiction_id=jurisdiction.id, token=token)
    return _document(render_list("service_requests", [found], f, _tz(jurisdiction)), f)


@router.get(
    "/requests.{fmt}",
    summary="Service requests: by id, service_code, dates, status, updates; paged",
    responses=_DOCUMENT,
)
def list_requests(
    fmt: FormatPath,
    request: Request,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    settings: SettingsDep,
) -> Response:
    f, params = _read(fmt, request, jurisdiction)
    query = parse_requests_query(
        params,
        now=datetime.now(UTC),
        **_paging(settings),
    )
    rows = service.list_requests(
        session, jurisdiction_id=jurisdiction.id, query=query, media_url=_media_url(request)
    )
    return _document(render_list("service_requests", rows, f, _tz(jurisdiction)), f)


@router.get(
    "/requests/{service_request_id}.{fmt}", summary="One service request", responses=_DOCUMENT
)
def get_request(
    service_request_id: str,
    fmt: FormatPath,
    request: Request,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
) -> Response:
    f, params = _read(fmt, request, jurisdiction)
    found = service.get_request(
        session,
        jurisdiction_id=jurisdiction.id,
        service_request_id=service_request_id,
        extensions=is_true(params.get("extensions")),
        media_url=_media_url(request),
    )
    return _document(render_list("service_requests", [found], f, _tz(jurisdiction)), f)


@router.get(
    "/servicerequestupdates.{fmt}",
    summary="Updates to requests in a window, oldest first (FixMyStreet's extension)",
    responses=_DOCUMENT,
)
def request_updates(
    fmt: FormatPath,
    request: Request,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    settings: SettingsDep,
) -> Response:
    f, params = _read(fmt, request, jurisdiction)
    query = parse_updates_query(
        params,
        now=datetime.now(UTC),
        **_paging(settings),
    )
    rows = service.list_updates(session, jurisdiction_id=jurisdiction.id, query=query)
    return _document(render_list("service_request_updates", rows, f, _tz(jurisdiction)), f)


@router.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
def unknown(path: str, request: Request) -> Response:
    raise UnknownResource(
        f"There is no Open311 resource {request.method} {PREFIX}/{path}; "
        f"GET {PREFIX}/discovery.xml lists what this server offers."
    )
