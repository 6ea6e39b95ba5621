"""Errors of staff sign-in; each carries its HTTP status and stable code (see geo311.errors)."""

from __future__ import annotations

from geo311.errors import AppError


class CsrfFailed(AppError):
    """A write that authenticates by the session cookie but did not come from our own pages."""

    status = 403
    code = "csrf_failed"
    title = "Cross-site request refused"


class TooManyAttempts(AppError):
    """Sign-in tried again before the wait set by earlier failures was over."""

    status = 429
    code = "too_many_attempts"
    title = "Too many failed sign-ins"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"Too many failed sign-ins. Try again in {retry_after_s} seconds.",
            extra={"retry_after_s": retry_after_s},
        )
        self.retry_after_s = retry_after_s
