"""Failed sign-ins slow down further tries, per account and per client address.

After ``free`` failures within the window, each further try must wait: the base delay, then
twice that, and so on up to a cap. A quiet window (no failure for ``window_s``) starts the
count again, so nobody is ever locked out for good; a successful sign-in clears the account's
count (not the address's: signing in to one's own account must not buy more guesses at
others').
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from geo311.kernel.auth.models import SigninThrottle
from geo311.kernel.settings import SigninSettings


@dataclass(frozen=True)
class Policy:
    """How many failures are free, and how the wait grows after them."""

    window_s: float
    account_free: int
    address_free: int
    base_delay_s: float
    max_delay_s: float

    @classmethod
    def from_settings(cls, settings: SigninSettings) -> Policy:
        return cls(
            window_s=settings.throttle_window_s,
            account_free=settings.throttle_account_free,
            address_free=settings.throttle_address_free,
            base_delay_s=settings.throttle_base_delay_s,
            max_delay_s=settings.throttle_max_delay_s,
        )


def account_key(name: str) -> str:
    """Return the throttle key of the account called ``name`` (case and outer spaces aside,
    so "Ada " and "ada" share one count)."""
    return "name:" + name.strip().casefold()


def address_key(address: str) -> str:
    """Return the throttle key of a client address."""
    return "addr:" + address


def delay_s(failures: int, *, free: int, policy: Policy) -> float:
    """Return how long the next try must wait after ``failures`` failures in the window."""
    if failures < free:
        return 0.0
    # Capped before the power so that a long run of failures cannot overflow the float.
    steps = min(failures - free, 64)
    return float(min(policy.max_delay_s, policy.base_delay_s * 2.0**steps))


def serialise(session: Session, *, key: str) -> None:
    """Make concurrent tries at one account take turns until the transaction ends, so that
    each sees the failures of the ones before it (no burst of parallel guesses)."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": "geo311.api.signin:" + key}
    )


def wait_s(session: Session, *, keys: list[str], now: datetime) -> float:
    """Return how many seconds the longest wait among ``keys`` still has to run (0: none)."""
    until = session.scalar(
        select(func.max(SigninThrottle.blocked_until)).where(SigninThrottle.key.in_(keys))
    )
    if until is None or until <= now:
        return 0.0
    return (until - now).total_seconds()


def record_failure(
    session: Session, *, keys: dict[str, int], policy: Policy, now: datetime
) -> None:
    """Count one failure against each key (mapped to its free failures) and set its wait."""
    window_start = now - timedelta(seconds=policy.window_s)
    for key, free in keys.items():
        upsert = insert(SigninThrottle).values(key=key, failures=1, last_failure_at=now)
        statement = upsert.on_conflict_do_update(
            index_elements=[SigninThrottle.key],
            set_={
                # A failure after a quiet window starts the count again.
                "failures": case(
                    (SigninThrottle.last_failure_at < window_start, 1),
                    else_=SigninThrottle.failures + 1,
                ),
                "last_failure_at": now,
            },
        ).returning(SigninThrottle.failures)
        failures = int(session.execute(statement).scalar_one())
        wait = delay_s(failures, free=free, policy=policy)
        session.execute(
            update(SigninThrottle)
            .where(SigninThrottle.key == key)
            .values(blocked_until=now + timedelta(seconds=wait) if wait else None)
        )
    session.flush()


def reset(session: Session, *, key: str) -> None:
    """Forget the failures counted against ``key``."""
    session.execute(delete(SigninThrottle).where(SigninThrottle.key == key))


def purge(session: Session, *, policy: Policy, now: datetime) -> None:
    """Drop counts whose window has passed and whose wait is over (names tried once by
    someone guessing would otherwise pile up)."""
    session.execute(
        delete(SigninThrottle).where(
            SigninThrottle.last_failure_at < now - timedelta(seconds=policy.window_s),
            or_(SigninThrottle.blocked_until.is_(None), SigninThrottle.blocked_until < now),
        )
    )
