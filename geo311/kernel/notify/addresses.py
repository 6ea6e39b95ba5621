"""E-mail addresses: one rule for what is accepted, stored and sent to. Pure.

A resident's address is checked with email-validator (the library pydantic's ``EmailStr``
uses) when it comes in, and again right before a message goes out, because smtplib and mail
clients re-parse what they are given: ``victim<attacker@evil.example>.com`` reads to them as
``attacker@evil.example``. Only a bare address (no display name, no angle brackets, no quoted
local part, no IP literal) is accepted, so the stored text is exactly where mail goes.
"""

from __future__ import annotations

from email.utils import parseaddr

import email_validator


class NotAnAddress(ValueError):
    """The text is not exactly one e-mail address; the message says why."""


def normalize_email(value: str) -> str:
    """Return the address to store (the domain lower-cased); raise NotAnAddress."""
    try:
        result = email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise NotAnAddress(str(exc)) from exc
    return result.normalized


def sendable(value: str) -> bool:
    """Return whether mail to ``value`` goes to exactly ``value``: it is one valid address,
    and the SMTP library's own parsing of it finds that same address."""
    try:
        normalize_email(value)
    except NotAnAddress:
        return False
    return parseaddr(value)[1] == value
