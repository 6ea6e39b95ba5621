"""Signed-in browser sessions of staff users: sign in, look up, sign out. No web framework.

The cookie carries a random id; the table keeps only its SHA-256, so a copy of the database
signs nobody in. A session ends when unused for the idle timeout, at its absolute expiry, at
sign-out, when its user is disabled or changes password. Each session has its own CSRF
secret, which pages send back with every write.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from geo311.kernel.auth import throttle
from geo311.kernel.auth.models import StaffSession, StaffUser
from geo311.kernel.auth.passwords import Passwords
from geo311.kernel.auth.service import Principal
from geo311.kernel.settings import SigninSettings

TOUCH_EVERY_S = 60.0
"""A session's last use is written at most this often (not on every request)."""


@dataclass(frozen=True)
class Lifetimes:
    """How long a session lasts: unused, and at most."""

    idle_s: float
    max_age_s: float

    @classmethod
    def from_settings(cls, settings: SigninSettings) -> Lifetimes:
        return cls(idle_s=settings.session_idle_timeout_s, max_age_s=settings.session_max_age_s)


@dataclass(frozen=True)
class SignedIn:
    """A live session: who it is, the CSRF token its pages send back, and when it ends."""

    principal: Principal
    csrf_token: str
    expires_at: datetime
    idle_expires_at: datetime
    needs_touch: bool = False


@dataclass(frozen=True)
class Attempt:
    """The outcome of a sign-in: ``session_id`` (the cookie's value) and ``signed_in`` on
    success; ``retry_after_s`` when it was refused unchecked because of earlier failures;
    neither when the name and password do not match an active account."""

    session_id: str | None = None
    signed_in: SignedIn | None = None
    retry_after_s: int | None = None


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def sign_in(
    session: Session,
    *,
    name: str,
    password: str,
    address: str | None,
    passwords: Passwords,
    policy: throttle.Policy,
    lifetimes: Lifetimes,
    now: datetime,
    replaces: str | None = None,
) -> Attempt:
    """Check ``name`` and ``password``, throttled per account and per ``address``; on success
    open a new session (dropping the one ``replaces`` names, so an id planted before sign-in
    is never the signed-in one) and return it. The caller commits either way: failures count.
    """
    account = throttle.account_key(name)
    keys = {account: policy.account_free}
    if address:
        keys[throttle.address_key(address)] = policy.address_free
    throttle.serialise(session, key=account)
    throttle.purge(session, policy=policy, now=now)
    wait = throttle.wait_s(session, keys=list(keys), now=now)
    if wait > 0:
        return Attempt(retry_after_s=max(1, math.ceil(wait)))
    user = session.scalar(select(StaffUser).where(StaffUser.name == name.strip()))
    if user is None:
        passwords.burn(password)
        verdict_ok = False
    else:
        verdict = passwords.verify(user.password_hash, password)
        # A disabled user's right password is a failure like any other, after the same work.
        verdict_ok = verdict.ok and user.disabled_at is None
        if verdict_ok and verdict.new_hash is not None:
            user.password_hash = verdict.new_hash
    if not verdict_ok or user is None:
        throttle.record_failure(session, keys=keys, policy=policy, now=now)
        return Attempt()
    throttle.reset(session, key=account)
    if replaces:
        sign_out(session, session_id=replaces)
    _purge_expired(session, lifetimes=lifetimes, now=now)
    session_id = secrets.token_urlsafe(32)
    row = StaffSession(
        id_sha256=_digest(session_id),
        user_id=user.id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=lifetimes.max_age_s),
        csrf_secret=secrets.token_urlsafe(32),
    )
    session.add(row)
    session.flush()
    principal = Principal(user_id=user.id, name=user.name, role=user.role, crew_id=user.crew_id)
    return Attempt(session_id=session_id, signed_in=_signed_in(principal, row, lifetimes, now))


def _signed_in(
    principal: Principal, row: StaffSession, lifetimes: Lifetimes, now: datetime
) -> SignedIn:
    return SignedIn(
        principal=principal,
        csrf_token=row.csrf_secret,
        expires_at=row.expires_at,
        idle_expires_at=min(row.expires_at, row.last_seen_at + timedelta(seconds=lifetimes.idle_s)),
        needs_touch=(now - row.last_seen_at).total_seconds() >= TOUCH_EVERY_S,
    )


def resolve(
    session: Session, *, session_id: str, lifetimes: Lifetimes, now: datetime
) -> SignedIn | None:
    """Return the live session the cookie value ``session_id`` names, or None (unknown,
    expired, idle too long, or its user disabled)."""
    found = session.execute(
        select(StaffSession, StaffUser)
        .join(StaffUser, StaffUser.id == StaffSession.user_id)
        .where(
            StaffSession.id_sha256 == _digest(session_id),
            StaffSession.expires_at > now,
            StaffSession.last_seen_at > now - timedelta(seconds=lifetimes.idle_s),
            StaffUser.disabled_at.is_(None),
        )
    ).one_or_none()
    if found is None:
        return None
    row, user = found
    principal = Principal(user_id=user.id, name=user.name, role=user.role, crew_id=user.crew_id)
    return _signed_in(principal, row, lifetimes, now)


def touch(session: Session, *, session_id: str, now: datetime) -> None:
    """Record that the session was used now (its idle timeout starts again)."""
    session.execute(
        update(StaffSession)
        .where(StaffSession.id_sha256 == _digest(session_id))
        .values(last_seen_at=now)
    )


def sign_out(session: Session, *, session_id: str) -> bool:
    """End the session ``session_id`` names; return whether there was one."""
    gone = session.execute(
        delete(StaffSession)
        .where(StaffSession.id_sha256 == _digest(session_id))
        .returning(StaffSession.user_id)
    ).all()
    session.flush()
    return bool(gone)


def end_sessions_of(session: Session, *, user_id: int) -> int:
    """End every session of a user (disabled, or a new password); return how many."""
    gone = session.execute(
        delete(StaffSession).where(StaffSession.user_id == user_id).returning(StaffSession.user_id)
    ).all()
    session.flush()
    return len(gone)


def _purge_expired(session: Session, *, lifetimes: Lifetimes, now: datetime) -> None:
    session.execute(
        delete(StaffSession).where(
            or_(
                StaffSession.expires_at <= now,
                StaffSession.last_seen_at <= now - timedelta(seconds=lifetimes.idle_s),
            )
        )
    )
