"""Staff accounts that sign in to pages: create, set a password, disable, list.

Crew membership is not kept here: it is ``staff_users.crew_id``, which the dispatch package
writes (``dispatch.service.set_membership``), the same membership API tokens use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geo311.kernel.auth import sessions
from geo311.kernel.auth.models import ROLES, ApiToken, StaffSession, StaffUser
from geo311.kernel.errors import Conflict, FieldError, NotFound, ValidationFailed


@dataclass(frozen=True)
class Account:
    """One staff user as ``geo311 user list`` shows it."""

    name: str
    role: str
    crew_id: int | None
    has_password: bool
    disabled_at: datetime | None
    live_sessions: int
    live_tokens: int


def _user(session: Session, name: str) -> StaffUser:
    user = session.scalar(select(StaffUser).where(StaffUser.name == name))
    if user is None:
        raise NotFound(f"No staff user {name!r}.")
    return user


def create_user(
    session: Session, *, name: str, role: str, password_hash: str, jurisdiction_id: int | None
) -> StaffUser:
    """Create staff user ``name`` with ``role`` and a password (its hash); return it.

    A user who already has API tokens but no password gets one with ``set_password``.
    """
    name = name.strip()
    if not name:
        raise ValidationFailed(
            "A staff user needs a name.", errors=[FieldError("name", "is empty", "missing")]
        )
    if role not in ROLES:
        raise ValidationFailed(
            f"role must be one of {', '.join(ROLES)}, not {role!r}",
            errors=[FieldError("role", f"one of {', '.join(ROLES)}", "unknown_role")],
        )
    if session.scalar(select(StaffUser.id).where(StaffUser.name == name)) is not None:
        raise Conflict(
            f"Staff user {name!r} exists already: set its password with `geo311 user passwd`."
        )
    user = StaffUser(
        name=name, role=role, jurisdiction_id=jurisdiction_id, password_hash=password_hash
    )
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, *, name: str, password_hash: str) -> int:
    """Give staff user ``name`` a new password (its hash); end its sessions (a password
    changed because it leaked must also sign out whoever used it). Return how many ended."""
    user = _user(session, name)
    user.password_hash = password_hash
    session.flush()
    return sessions.end_sessions_of(session, user_id=user.id)


def disable_user(session: Session, *, name: str, now: datetime) -> int:
    """Disable staff user ``name``: its sessions end now and its tokens stop working (they
    are kept, revoked or not, for the audit trail). Return how many sessions ended."""
    user = _user(session, name)
    if user.disabled_at is None:
        user.disabled_at = now
    session.flush()
    return sessions.end_sessions_of(session, user_id=user.id)


def enable_user(session: Session, *, name: str) -> None:
    """Let a disabled staff user sign in again (its unrevoked tokens work again too)."""
    user = _user(session, name)
    user.disabled_at = None
    session.flush()


def list_accounts(session: Session, *, now: datetime) -> list[Account]:
    """Return every staff user, by name, with its live sessions and tokens counted."""
    live_sessions = (
        select(func.count())
        .where(StaffSession.user_id == StaffUser.id, StaffSession.expires_at > now)
        .scalar_subquery()
    )
    live_tokens = (
        select(func.count())
        .where(ApiToken.user_id == StaffUser.id, ApiToken.revoked_at.is_(None))
        .scalar_subquery()
    )
    rows = session.execute(
        select(StaffUser, live_sessions, live_tokens).order_by(StaffUser.name)
    ).all()
    return [
        Account(
            name=user.name,
            role=user.role,
            crew_id=user.crew_id,
            has_password=user.password_hash is not None,
            disabled_at=user.disabled_at,
            live_sessions=int(n_sessions),
            live_tokens=int(n_tokens),
        )
        for user, n_sessions, n_tokens in rows
    ]
