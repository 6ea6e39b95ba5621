"""FastAPI glue for errors: every failure leaves as application/problem+json (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from geo311.errors import AppError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


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
        response = problem(exc.status, exc.code, exc.title, exc.detail, **extra)
        response.headers.update(exc.headers)
        return response

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

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem(500, "internal_error", "Internal error", "Something went wrong on our side.")
