"""Errors of the Open311 API, and the spec's status for each: 404 for a missing resource,
403 for a missing or bad api_key, 400 for anything else."""

from __future__ import annotations

from geo311.kernel.errors import AppError, Forbidden, NotFound, Unauthorized


class BadApiKey(Forbidden):
    code = "bad_api_key"
    title = "Missing, unknown or revoked api_key"


class UnknownJurisdiction(NotFound):
    code = "unknown_jurisdiction"
    title = "This server does not serve that jurisdiction_id"


class UnknownService(NotFound):
    code = "unknown_service"
    title = "No such service_code"


class UnknownRequest(NotFound):
    code = "unknown_request"
    title = "No such service request or token"


class UnknownResource(NotFound):
    code = "unknown_resource"
    title = "No such Open311 resource"


class BadRequest(AppError):
    status = 400
    code = "bad_request"
    title = "The request cannot be processed"


def open311_status(exc: AppError) -> int:
    """Return the HTTP status the spec gives this error."""
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Forbidden | Unauthorized):
        return 403
    if exc.status == 503:  # busy (e.g. photo decoding): try again later, not a bad request
        return 503
    return 400


def descriptions(exc: AppError) -> list[str]:
    """Return one description per ``<error>``: one per bad field, else the detail."""
    return [e.message for e in exc.errors] or [exc.detail]
