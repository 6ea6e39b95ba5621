"""Staff users and bearer tokens. Role checks live here and only here."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from geo311.auth.models import ROLES, ApiToken, StaffUser
from geo311.errors import Forbidden, Unauthorized, ValidationFailed

TOKEN_PREFIX = "g311_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class Principal:
    """Who is calling: a staff user and their role."""

    user_id: int
    name: str
    role: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session, *, name: str, role: str, label: str = "", jurisdiction_id: int | None = None
) -> str:
    """Return a new bearer token for staff user ``name`` (created with ``role`` if new).

    Only the token's hash is stored: the plain token is shown this once.
    """
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    user = session.scalar(select(StaffUser).where(StaffUser.name == name))
    if user is None:
        user = StaffUser(name=name, role=role, jurisdiction_id=jurisdiction_id)
        session.add(user)
        session.flush()
    elif user.role != role:
        user.role = role
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_sha256=_digest(token), label=label))
    session.flush()
    return token


def revoke_token(session: Session, *, token: str) -> bool:
    """Revoke a token; return whether it existed and was live."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == _digest(token)))
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = datetime.now(UTC)
    session.flush()
    return True


def authenticate(session: Session, token: str) -> Principal:
    """Return the principal of a live token, or raise Unauthorized."""
    row = session.execute(
        select(StaffUser.id, StaffUser.name, StaffUser.role)
        .join(ApiToken, ApiToken.user_id == StaffUser.id)
        .where(ApiToken.token_sha256 == _digest(token), ApiToken.revoked_at.is_(None))
    ).one_or_none()
    if row is None:
        raise Unauthorized("The token is unknown or revoked.")
    return Principal(user_id=row.id, name=row.name, role=row.role)


def require_role(principal: Principal, allowed: Iterable[str]) -> None:
    """Raise Forbidden unless the principal's role is allowed. Admins are always allowed."""
    allowed = tuple(allowed)
    if principal.role == "admin" or principal.role in allowed:
        return
    raise Forbidden(
        f"This needs one of the roles {', '.join(allowed)}; your role is {principal.role}."
    )
