"""Errors the domain raises; the web layer turns each into RFC 9457 problem+json.

Each class carries its HTTP status, a stable machine-readable ``code`` and a short ``title``,
so the mapping from error to response lives here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldError:
    """One bad input field and what is wrong with it."""

    field: str
    message: str
    code: str = "invalid"


class AppError(Exception):
    """Base of every error a user can cause; never a bug."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.extra = extra or {}
        self.headers = headers or {}
        """Response headers the answer must carry, e.g. Retry-After on a 503."""


class ValidationFailed(AppError):
    status = 422
    code = "validation_failed"
    title = "Some fields are not valid"


class NotFound(AppError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(AppError):
    status = 409
    code = "conflict"
    title = "Conflict with the current state"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    title = "Not allowed for this role"


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"
    title = "Upload too large"


class UnsupportedMediaType(AppError):
    status = 415
    code = "unsupported_media_type"
    title = "Not a supported image"


class PreconditionRequired(AppError):
    """A staff write that names no version: without one, a concurrent edit would be lost."""

    status = 428
    code = "precondition_required"
    title = "Send the version you read"
