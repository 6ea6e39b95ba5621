"""FastAPI glue for errors: every failure leaves as application/problem+json (RFC 9457)."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import psycopg
import psycopg_pool
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo311.kernel.errors import AppError, FieldError, ValidationFailed

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)

# Failures that say "the database cannot be reached or is restarting", not "this request is
# wrong": the client should try again shortly. (Deadlocks and statement timeouts are
# psycopg OperationalErrors too; "try again" is the right answer for them as well.)
DATABASE_OUTAGES: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
    sqlalchemy.exc.DisconnectionError,
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
)
RETRY_AFTER_S = 5


def is_database_outage(exc: BaseException) -> bool:
    """Return whether ``exc`` means the database is unavailable for now."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, DATABASE_OUTAGES)


def database_unavailable(exc: BaseException) -> JSONResponse:
    """Return 503 problem+json with Retry-After for a database outage (logged, not shown)."""
    first_line = next(iter(str(exc).strip().splitlines()), type(exc).__name__)
    log.warning("database unavailable: %s", first_line)
    response = problem(
        503,
        "database_unavailable",
        "The database is unavailable",
        "The service cannot reach its database just now; nothing was changed. "
        f"Try again in {RETRY_AFTER_S} seconds.",
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    """Return a problem+json response."""
    body: dict[str, Any] = {
        "type": f"urn:geo311:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "lat") -> "lat"; ("query", "page") -> "page"
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or "request"


def app_error_response(exc: AppError) -> JSONResponse:
    """Return the problem+json response for a user's error."""
    extra: dict[str, Any] = dict(exc.extra)
    if exc.errors:
        extra["errors"] = [
            {"field": e.field, "message": e.message, "code": e.code} for e in exc.errors
        ]
    response = problem(exc.status, exc.code, exc.title, exc.detail, **extra)
    response.headers.update(exc.headers)
    return response


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into problem+json."""

    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        return app_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_name(e.get("loc", ())), "message": e.get("msg", ""), "code": e["type"]}
            for e in exc.errors()
        ]
        return problem(
            422,
            "validation_failed",
            "Some fields are not valid",
            "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            errors=errors,
        )

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc, InputRefused):
            return app_error_response(exc.error)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail))

    # Handlers by class (not only the catch-all below): Starlette answers these without
    # re-raising them to the server as unhandled errors.
    async def _outage(_: Request, exc: Exception) -> JSONResponse:
        return database_unavailable(exc)

    for outage in DATABASE_OUTAGES:
        app.add_exception_handler(outage, _outage)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        if is_database_outage(exc):
            return database_unavailable(exc)
        return _internal_error(exc)


def _internal_error(exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "internal_error", "Internal error", "Something went wrong on our side.")


# --- input every handler can trust: no NUL characters, no JSON nested without end ----------

MAX_JSON_DEPTH = 32
"""Deepest JSON nesting a body may have (GeoJSON polygons need 5)."""

Refusal = Callable[[str, AppError], Response]
"""Renders a refused request's error (problem+json by default; Open311 has its own shape)."""


class InputRefused(HTTPException):
    """A request body found bad while a handler was reading it (a multipart text field with a
    NUL). An HTTPException so that FastAPI's body parsing passes it on unchanged."""

    def __init__(self, error: AppError) -> None:
        super().__init__(status_code=error.status, detail=error.detail)
        self.error = error


def _nul(field: str) -> ValidationFailed:
    return ValidationFailed(
        f"{field} contains a NUL character (\\u0000, %00), which no text may hold.",
        errors=[FieldError(field, f"{field} contains a NUL character", "nul_character")],
    )


def _too_deep() -> ValidationFailed:
    return ValidationFailed(
        f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.",
        errors=[FieldError("body", f"nested deeper than {MAX_JSON_DEPTH} levels", "too_deep")],
    )


def _check_pairs(pairs: list[tuple[str, str]]) -> AppError | None:
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            return _nul(key.replace("\x00", "") or "parameter")
    return None


def _check_json(body: bytes) -> AppError | None:
    """Return the error of a JSON body that nests too deeply or holds a NUL, else None (also
    for a body that is not JSON at all: the handler says what is wrong with it)."""
    try:
        document = json.loads(body)
    except RecursionError:
        return _too_deep()
    except ValueError:
        return None
    # Walked without recursion, so the walk itself cannot run out of stack.
    stack: list[tuple[Any, str, int]] = [(document, "", 1)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, dict | list) and depth > MAX_JSON_DEPTH:
            return _too_deep()
        if isinstance(value, dict):
            for key, item in value.items():
                name = f"{where}.{key}" if where else str(key)
                if "\x00" in key:
                    return _nul(name.replace("\x00", ""))
                stack.append((item, name, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
        elif isinstance(value, str) and "\x00" in value:
            return _nul(where or "body")
    return None


def _charset(content_type: str) -> str:
    _, options = parse_options_header(content_type)
    charset = options.get(b"charset", b"utf-8").decode("latin-1")
    try:
        "".encode(charset)
    except LookupError:
        return "utf-8"
    return charset


class _MultipartScan:
    """A ``receive`` that passes a multipart body through untouched while reading its parts'
    headers and text fields, and raises InputRefused at the first NUL in a field's name, a file
    name or a text field's value. File contents are binary and not looked at; nothing is kept."""

    def __init__(self, receive: Receive, boundary: bytes) -> None:
        self._receive = receive
        self._header = b""
        self._value = b""
        self._name = ""
        self._is_file = False
        self._error: AppError | None = None
        self._broken = False
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_part_data": self._part_data,
            },
        )

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request" and not self._broken and self._error is None:
            try:
                self._parser.write(message.get("body", b""))
            except Exception:
                self._broken = True
        if self._error is not None:
            raise InputRefused(self._error)
        return message

    def _part_begin(self) -> None:
        self._name, self._is_file = "", False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            _, options = parse_options_header(self._value)
            self._name = options.get(b"name", b"").decode("utf-8", "replace")
            filename = options.get(b"filename")
            self._is_file = filename is not None
            if "\x00" in self._name or (filename is not None and b"\x00" in filename):
                self._error = _nul(self._name.replace("\x00", "") or "file name")
        self._header = self._value = b""

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._is_file and self._error is None and b"\x00" in data[start:end]:
            self._error = _nul(self._name or "field")


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """Return the whole body, and whether the client is still there."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class InputGuard:
    """ASGI middleware: refuses, before any handler runs, a request whose path, query string,
    form fields or JSON strings hold a NUL character (PostgreSQL text cannot, so it once ended
    in a 500 deep in a query), or whose JSON nests deeper than MAX_JSON_DEPTH (once a
    RecursionError). The refusal names the field; it is problem+json, or the shape that
    ``shapes`` gives for a path prefix (Open311's own errors)."""

    def __init__(self, app: ASGIApp, *, shapes: Mapping[str, Refusal]) -> None:
        self.app = app
        self.shapes = dict(shapes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = self._check_url(scope)
        if error is None:
            content_type = ""
            for key, value in scope["headers"]:
                if key == b"content-type":
                    content_type = value.decode("latin-1")
            kind = content_type.split(";", 1)[0].strip().lower()
            if kind == "application/json" or kind.endswith("+json"):
                body, connected = await _read_body(receive)
                error = _check_json(body) if connected else None
                receive = _replay(body, receive)
            elif kind == "application/x-www-form-urlencoded":
                body, connected = await _read_body(receive)
                text = body.decode("latin-1")
                pairs = parse_qsl(
                    text, keep_blank_values=True, encoding=_charset(content_type), errors="replace"
                )
                error = _check_pairs(pairs) if connected else None
                receive = _replay(body, receive)
            elif kind == "multipart/form-data":
                boundary = parse_options_header(content_type)[1].get(b"boundary")
                if boundary:
                    receive = _MultipartScan(receive, boundary)
        if error is not None:
            await self._refuse(scope, error)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _check_url(scope: Scope) -> AppError | None:
        if "\x00" in scope["path"]:
            return _nul("path")
        query = scope.get("query_string", b"").decode("latin-1")
        return _check_pairs(parse_qsl(query, keep_blank_values=True, errors="replace"))

    def _refuse(self, scope: Scope, error: AppError) -> Response:
        for prefix, shape in self.shapes.items():
            if scope["path"].startswith(prefix):
                return shape(scope["path"], error)
        return app_error_response(error)


def install_input_guard(app: FastAPI, *, shapes: Mapping[str, Refusal] | None = None) -> None:
    """Refuse NUL characters and bottomless JSON before any handler sees them (InputGuard)."""
    app.add_middleware(InputGuard, shapes=shapes or {})


# --- headers every response carries ----------------------------------------------------------


def content_security_policy(*, nonce: str | None = None, img_src: Sequence[str] = ()) -> str:
    """Return the Content-Security-Policy: scripts from this server only, plus inline scripts
    carrying ``nonce`` when given (never 'unsafe-inline'); ``img_src`` adds image origins
    (a map page's tile server)."""
    scripts = "script-src 'self'" + (f" 'nonce-{nonce}'" if nonce else "")
    return "; ".join(
        (
            "default-src 'self'",
            # No inline script without this response's nonce: text that slipped into a page
            # unescaped could still not run.
            scripts,
            # Inline style blocks and style attributes (Swagger UI sets them) cannot run code.
            "style-src 'self' 'unsafe-inline'",
            # Photos previewed before upload, and the dev mail catcher's inline images.
            " ".join(("img-src 'self' data: blob:", *img_src)),
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


CONTENT_SECURITY_POLICY = content_security_policy()
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # Notice links carry signed tokens in their query string: never pass them to another site.
    # Same-origin (not no-referrer), so that our own pages' form posts carry an Origin, which
    # the CSRF check requires (under no-referrer Chromium sends "Origin: null").
    (b"referrer-policy", b"same-origin"),
)


def csp_nonce(request: Request) -> str:
    """Return this response's script nonce (made on first use); the policy sent with the
    response then allows inline scripts that carry it."""
    nonce: str | None = getattr(request.state, "csp_nonce", None)
    if nonce is None:
        nonce = secrets.token_urlsafe(18)
        request.state.csp_nonce = nonce
    return nonce


def allow_images_from(request: Request, origin: str) -> None:
    """Let this response's page load images from ``origin`` too (e.g. a tile server)."""
    request.state.csp_img_src = [*getattr(request.state, "csp_img_src", []), origin]


def _policy_for(scope: Scope) -> bytes:
    state = scope.get("state") or {}
    nonce, img_src = state.get("csp_nonce"), state.get("csp_img_src", ())
    if nonce is None and not img_src:
        return CONTENT_SECURITY_POLICY.encode()
    return content_security_policy(nonce=nonce, img_src=img_src).encode()


class SecurityHeaders:
    """ASGI middleware: every response gets SECURITY_HEADERS, unless a route set its own; the
    policy names the nonce and image origins a page asked for (csp_nonce, allow_images_from)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend(
                    (k, _policy_for(scope) if k == b"content-security-policy" else v)
                    for k, v in SECURITY_HEADERS
                    if k not in present
                )
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_security_headers(app: FastAPI) -> None:
    """Send CSP, X-Frame-Options, nosniff and Referrer-Policy with every response."""
    app.add_middleware(SecurityHeaders)


# --- the OpenAPI document says what errors look like ----------------------------------------

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `errors` lists every bad field",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "Stable, machine-readable"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message", "code"],
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "code": {"type": "string"},
                },
            },
        },
    },
}


def document_problems(schema: dict[str, Any], *, own_shapes: Mapping[str, dict[str, Any]]) -> None:
    """Say in ``schema`` (an OpenAPI document, changed in place) that every operation may answer
    a 4xx problem+json (FastAPI documents only its own 422, as plain JSON in another shape).
    Operations under a prefix of ``own_shapes`` answer that response instead (Open311)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    problem_response = {
        "description": "The request was refused; nothing was stored",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for path, item in schema.get("paths", {}).items():
        response = next(
            (r for prefix, r in own_shapes.items() if path.startswith(prefix)), problem_response
        )
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for code in [c for c in responses if str(c).startswith("4")]:
                content = responses[code].get("content")
                if content is None or "application/json" in content:
                    del responses[code]  # FastAPI's 422, or an error shown as plain JSON
            responses["4XX"] = response
    components = schema["components"]["schemas"]
    text = json.dumps(schema["paths"])
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{unused}" not in text:
            components.pop(unused, None)


def install_openapi_problems(
    app: FastAPI, *, own_shapes: Mapping[str, dict[str, Any]] | None = None
) -> None:
    """Have the app's OpenAPI document describe its error responses (document_problems)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            document_problems(schema, own_shapes=own_shapes or {})
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def idempotent_replay(status_code: int, body: dict[str, Any]) -> JSONResponse:
    """Return the stored answer of a write sent again with its Idempotency-Key
    (geo311.kernel.idempotency), marked as a replay, its ``version`` as the ETag."""
    headers = {"Idempotent-Replayed": "true"}
    version = body.get("version")
    if isinstance(version, int):
        headers["ETag"] = f'"{version}"'
    return JSONResponse(body, status_code=status_code, headers=headers)
