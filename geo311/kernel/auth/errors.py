"""Errors of staff sign-in, each with its HTTP status and stable code (as geo311.kernel.errors)."""

from __future__ import annotations

from geo311.kernel.errors import AppError


class CsrfFailed(AppError):
    """A write that authenticates by the session cookie but did not come from our own pages."""

    status = 403
    code = "csrf_failed"
    title = "Cross-site request refused"
