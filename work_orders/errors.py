"""Errors of the work-order domain, each rendered as problem+json by the web layer."""

from __future__ import annotations

from geo311.kernel.errors import AppError


class IllegalTransition(AppError):
    status = 409
    code = "illegal_transition"
    title = "This status change is not allowed"


class StaleVersion(AppError):
    status = 409
    code = "stale_version"
    title = "Someone else changed it first"
