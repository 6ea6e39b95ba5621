"""Staff users and bearer tokens. Role checks live here and only here."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from geo311.kernel.auth.models import ROLES, ApiToken, StaffUser
from geo311.kernel.errors import Forbidden, Unauthorized, ValidationFailed

TOKEN_PREFIX = "g311_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class Principal:
    """Who is calling: a staff user, their role and (crew users) the crew they belong to."""

    user_id: int
    name: str
    role: str
    crew_id: int | None = None


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
        # Only crew users belong to a crew: a user who changes role leaves it.
        user.crew_id = None
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
        select(StaffUser.id, StaffUser.name, StaffUser.role, StaffUser.crew_id)
        .join(ApiToken, ApiToken.user_id == StaffUser.id)
        .where(
            ApiToken.token_sha256 == _digest(token),
            ApiToken.revoked_at.is_(None),
            StaffUser.disabled_at.is_(None),
        )
    ).one_or_none()
    if row is None:
        raise Unauthorized("The token is unknown or revoked, or its user is disabled.")
    return Principal(user_id=row.id, name=row.name, role=row.role, crew_id=row.crew_id)


def require_role(principal: Principal, allowed: Iterable[str]) -> None:
    """Raise Forbidden unless the principal's role is allowed. Admins are always allowed."""
    allowed = tuple(allowed)
    if principal.role == "admin" or principal.role in allowed:
        return
    raise Forbidden(
        f"This needs one of the roles {', '.join(allowed)}; your role is {principal.role}."
    )


def require_crew_of(principal: Principal, crew_id: int | None, *, what: str) -> None:
    """Raise Forbidden when a crew user acts on ``what`` while it is not their crew's work.

    Other roles pass: who else may act is the route's role check. A crew user in no crew acts
    on nothing; work with no crew (the dispatcher's queue) is nobody's crew's work.
    """
    if principal.role != "crew":
        return
    if principal.crew_id is None:
        raise Forbidden(
            f"Your staff user {principal.name!r} belongs to no crew, so it can read but not act. "
            "An admin adds you to one (geo311 token create --crew CODE, or "
            f"PUT /api/v1/staff/{principal.name}/crew)."
        )
    if crew_id != principal.crew_id:
        raise Forbidden(f"{what} is not your crew's work: only its own crew may do this.")


# --- crew membership: written by the dispatch package, which owns crews --------------------


def get_user(session: Session, *, name: str) -> StaffUser | None:
    """Return the staff user called ``name``, or None."""
    return session.scalar(select(StaffUser).where(StaffUser.name == name))


def users_named(session: Session, *, names: Iterable[str]) -> dict[str, StaffUser]:
    """Return the staff users among ``names``, by name (locked: their crew is about to change)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = session.scalars(
        select(StaffUser).where(StaffUser.name.in_(wanted)).order_by(StaffUser.id).with_for_update()
    )
    return {u.name: u for u in rows}


def crew_members(session: Session, *, crew_ids: Iterable[int]) -> dict[int, list[str]]:
    """Return the names of the staff users of each crew in ``crew_ids``, by name."""
    ids = sorted(set(crew_ids))
    if not ids:
        return {}
    out: dict[int, list[str]] = {}
    for user in session.scalars(
        select(StaffUser).where(StaffUser.crew_id.in_(ids)).order_by(StaffUser.name)
    ):
        if user.crew_id is not None:
            out.setdefault(user.crew_id, []).append(user.name)
    return out


def set_crew(
    session: Session, *, user: StaffUser, crew_id: int | None, jurisdiction_id: int | None
) -> int | None:
    """Put ``user`` on crew ``crew_id`` (None: on none); return the crew it was on before.

    The caller checks the crew exists and the user is a crew user: this layer knows no crews.
    """
    before = user.crew_id
    user.crew_id = crew_id
    if crew_id is not None and jurisdiction_id is not None:
        user.jurisdiction_id = jurisdiction_id
    session.flush()
    return before


def clear_crew(session: Session, *, crew_id: int) -> list[str]:
    """Take every staff user off crew ``crew_id`` (it is going); return their names."""
    names = list(
        session.scalars(
            update(StaffUser)
            .where(StaffUser.crew_id == crew_id)
            .values(crew_id=None)
            .returning(StaffUser.name)
        )
    )
    session.flush()
    return sorted(names)
