"""Open311 GeoReport v2 routes under /open311/v2: thin — read the request, call the service,
answer in the format the path's suffix names. Every failure leaves in the spec's
``<errors>`` shape (JSON: an array of ``{code, description}``), never as problem+json."""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from typing import Annotated, Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from geo311.api.open311_refusal import refusal
from geo311.flows import submit_report
from geo311.kernel.database import Database
from geo311.kernel.deps import DatabaseDep, MediaDep, SessionDep, SettingsDep
from geo311.kernel.errors import AppError, FieldError
from geo311.kernel.http import RETRY_AFTER_S, is_database_outage
from geo311.kernel.media.store import LocalMediaStore
from geo311.kernel.settings import Settings
from geo311.resident.open311 import service
from geo311.resident.open311.errors import BadRequest, UnknownResource
from geo311.resident.open311.formats import FORMATS, MEDIA_TYPES, Format, render_list, render_object
from geo311.resident.open311.query import is_true, parse_requests_query, parse_updates_query
from geo311.resident.open311.schemas import ErrorOut, PostedRequestOut, PostedUpdateOut
from layers.deps import JurisdictionDep, get_jurisdiction
from layers.models import Jurisdiction

PREFIX = "/open311/v2"
log = logging.getLogger(__name__)
_ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]+)\](\[\])?$")
_MAX_FORM_FIELDS = 200
# FixMyStreet sends a report's photos as file fields photo1, photo2 …; with the spec's
# 'media', at most this many are read (each under the media size cap).
_MAX_PHOTOS = 4
_PHOTO_FIELD = re.compile(r"^photo([1-9][0-9]?)$")
# A form-urlencoded body carries no photo: text fields only.
_FORM_MAX_BYTES = 256 * 1024


def _error_response(exc: Exception, path: str) -> Response:
    fmt: Format = "json" if path.endswith(".json") else "xml"
    if isinstance(exc, AppError):
        return refusal(path, exc)
    if isinstance(exc, RequestValidationError):
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

FormatPath = Annotated[
    str,
    Path(description="Response format: xml or json", json_schema_extra={"enum": list(FORMATS)}),
]
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
    # The configured public URL, never the Host header: a forged Host would go into links.
    settings: Settings = request.app.state.settings
    return settings.base_url + "/media"


@router.get("/discovery.{fmt}", summary="Service discovery", responses=_DOCUMENT)
def discovery(fmt: FormatPath, settings: SettingsDep) -> Response:
    f = _format(fmt)
    endpoint = settings.base_url + PREFIX
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


@dataclass(frozen=True)
class _Posted:
    """What a POST carried: text fields, attribute answers, and photos in the order sent —
    the ``media`` file first, then FixMyStreet's ``photo1``, ``photo2`` …"""

    fields: dict[str, str]
    attributes: dict[str, list[str]]
    photos: list[bytes]


def _declared_charset(content_type: str) -> str:
    """Return the codec name of the body's declared charset (UTF-8 when none is declared),
    or raise BadRequest for a charset Python does not know."""
    header = Message()
    header["content-type"] = content_type
    charset = header.get_param("charset")
    name = charset if isinstance(charset, str) and charset.strip() else "utf-8"
    try:
        return codecs.lookup(name.strip()).name
    except LookupError:
        raise BadRequest(
            f"The body's charset {name!r} is not known; send UTF-8 or declare a known charset."
        ) from None


async def _urlencoded(request: Request, codec: str) -> list[tuple[str, str]]:
    """Return the fields of a form-urlencoded body decoded with its declared charset (the
    form parser would read every body as UTF-8), percent-escapes included."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _FORM_MAX_BYTES:
            raise BadRequest(
                f"A form-urlencoded body may be at most {_FORM_MAX_BYTES} bytes; send photos "
                "as multipart/form-data."
            )
    try:
        return parse_qsl(
            bytes(body).decode(codec),
            keep_blank_values=True,
            encoding=codec,
            errors="strict",
            max_num_fields=_MAX_FORM_FIELDS,
        )
    except UnicodeDecodeError:
        raise BadRequest(
            f"The body is not valid {codec}: declare the charset it is written in, e.g. "
            "Content-Type: application/x-www-form-urlencoded; charset=ISO-8859-1."
        ) from None
    except ValueError:
        raise BadRequest(f"A form may carry at most {_MAX_FORM_FIELDS} fields.") from None


async def _read_post(request: Request, max_bytes: int) -> _Posted:
    """Return the text fields, the attribute answers and the photos of a POST."""
    content_type = request.headers.get("content-type", "")
    urlencoded = content_type.lower().startswith("application/x-www-form-urlencoded")
    if not urlencoded and not content_type.lower().startswith("multipart/form-data"):
        raise BadRequest(
            "Send the request as application/x-www-form-urlencoded, or multipart/form-data "
            "with the photo in a 'media' (or 'photo1', 'photo2' …) file field."
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes * _MAX_PHOTOS + 65536:
        raise BadRequest(
            f"The upload is {declared} bytes; at most {_MAX_PHOTOS} photos of at most "
            f"{max_bytes} bytes each may be sent."
        )
    posted = _Posted(fields={}, attributes={}, photos=[])
    numbered: list[tuple[int, bytes]] = []
    if urlencoded:
        items: list[tuple[str, str | UploadFile]] = list(
            await _urlencoded(request, _declared_charset(content_type))
        )
        form = None
    else:
        form = await request.form(max_files=_MAX_PHOTOS, max_fields=_MAX_FORM_FIELDS)
        items = list(form.multi_items())
    try:
        for key, value in items:
            if isinstance(value, UploadFile):
                numbered_photo = _PHOTO_FIELD.match(key)
                if key == "media" or numbered_photo:
                    data = await value.read(max_bytes + 1)
                    if data or value.filename:  # an empty file input is no photo
                        number = int(numbered_photo.group(1)) if numbered_photo else 0
                        numbered.append((number, data))
                continue
            if (key == "media" or _PHOTO_FIELD.match(key)) and value.strip():
                # A photo sent as text (a path, a URL, base64) would be silently dropped.
                raise BadRequest(
                    f"{key} must be an uploaded file (multipart/form-data), not text.",
                    errors=[FieldError(key, f"{key} must be an uploaded file", "not_a_file")],
                )
            match = _ATTRIBUTE.match(key)
            if match:
                posted.attributes.setdefault(match.group(1), []).append(value)
            else:
                posted.fields[key] = value
        posted.photos.extend(data for _, data in sorted(numbered, key=lambda p: p[0]))
        # The spec lets api_key and jurisdiction_id ride in the query string of a POST.
        for name in ("api_key", "jurisdiction_id"):
            if not posted.fields.get(name, "").strip() and request.query_params.get(name):
                posted.fields[name] = request.query_params[name]
        return posted
    finally:
        if form is not None:
            await form.close()


def _store_request(
    db: Database, settings: Settings, media: LocalMediaStore, form: _Posted
) -> tuple[PostedRequestOut, ZoneInfo]:
    fields = form.fields
    now = datetime.now(UTC)
    # Commits on success; any error rolls back, which deletes the staged photo files.
    with db.session() as session:
        jurisdiction = get_jurisdiction(session, settings)
        service.check_jurisdiction(fields.get("jurisdiction_id"), served=jurisdiction.slug)
        key_id = service.authenticate(
            session, jurisdiction_id=jurisdiction.id, key=fields.get("api_key")
        )
        posted = submit_report.submit_open311_request(
            session,
            jurisdiction_id=jurisdiction.id,
            jurisdiction_slug=jurisdiction.slug,
            api_key_id=key_id,
            fields=fields,
            attributes=form.attributes,
            photo=form.photos[0] if form.photos else None,
            more_photos=form.photos[1:],
            media=media,
            settings=settings,
            now=now,
        )
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
    form = await _read_post(request, settings.media.max_bytes)
    # Photo decoding and the database work block: keep them off the event loop.
    posted, tz = await run_in_threadpool(_store_request, db, settings, media, form)
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
    rows = service.list_updates(
        session, jurisdiction_id=jurisdiction.id, query=query, media_url=_media_url(request)
    )
    return _document(render_list("service_request_updates", rows, f, _tz(jurisdiction)), f)


def _store_update(
    db: Database, settings: Settings, media: LocalMediaStore, posted: _Posted
) -> tuple[PostedUpdateOut, ZoneInfo]:
    if len(posted.photos) > 1:
        raise BadRequest("An update carries one photo; send it in 'media' or 'photo1'.")
    # Commits on success; any error rolls back, which deletes the staged photo files.
    with db.session() as session:
        jurisdiction = get_jurisdiction(session, settings)
        service.check_jurisdiction(posted.fields.get("jurisdiction_id"), served=jurisdiction.slug)
        key_id = service.authenticate(
            session, jurisdiction_id=jurisdiction.id, key=posted.fields.get("api_key")
        )
        update = service.post_update(
            session,
            jurisdiction_id=jurisdiction.id,
            jurisdiction_slug=jurisdiction.slug,
            api_key_id=key_id,
            fields=posted.fields,
            photo=posted.photos[0] if posted.photos else None,
            media=media,
            settings=settings,
            now=datetime.now(UTC),
        )
    return update, _tz(jurisdiction)


@router.post(
    "/servicerequestupdates.{fmt}",
    summary="Comment on a request (api_key required; FixMyStreet's extension)",
    description=(
        "FixMyStreet's POST servicerequestupdates: `service_request_id`, `description` "
        "(public), `update_id` (the client's own id: posting it again answers the first "
        "update_id), `status` (only REOPEN changes anything: it reopens a closed request), "
        "`updated_datetime`, and one photo as a file field `media` or `photo1`. A remote "
        "`media_url` is not fetched and is ignored; names, email and phone are not kept."
    ),
    responses=_DOCUMENT,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "media": {"type": "string", "format": "binary"},
                            "photo1": {"type": "string", "format": "binary"},
                        },
                    }
                },
            },
        }
    },
)
async def post_update(
    fmt: FormatPath, request: Request, settings: SettingsDep, media: MediaDep, db: DatabaseDep
) -> Response:
    f = _format(fmt)
    form = await _read_post(request, settings.media.max_bytes)
    posted, tz = await run_in_threadpool(_store_update, db, settings, media, form)
    return _document(render_list("service_request_updates", [posted], f, tz), f)


@router.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
def unknown(path: str, request: Request) -> Response:
    raise UnknownResource(
        f"There is no Open311 resource {request.method} {PREFIX}/{path}; "
        f"GET {PREFIX}/discovery.xml lists what this server offers."
    )
