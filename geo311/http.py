"""FastAPI glue for errors: every failure leaves as application/problem+json (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import psycopg_pool
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from geo311.errors import AppError

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


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into problem+json."""

    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        extra: dict[str, Any] = dict(exc.extra)
        if exc.errors:
            extra["errors"] = [
                {"field": e.field, "message": e.message, "code": e.code} for e in exc.errors
            ]
        return problem(exc.status, exc.code, exc.title, exc.detail, **extra)

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
