"""Idempotency keys: a write sent again with the same ``Idempotency-Key`` gets the first
answer back and changes nothing again.

A tablet that sends its queued actions when the connection returns cannot know whether an
earlier attempt landed (the answer may have been lost on the way back), so it sends each
action with a key of its own and may send it again. The key is claimed in the same
transaction as the change it guards: a refused or failed request rolls the claim back with
everything else (and may be sent again), a committed one keeps the answer it gave. Two
requests with one key at the same instant: the second waits on the first's row lock and then
reads its answer. Keys are scoped by jurisdiction and staff user, so one user's key never
answers another's request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, Text, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from geo311.kernel.database import Base
from geo311.kernel.errors import FieldError, ValidationFailed

HEADER: Final = "Idempotency-Key"
MAX_KEY_CHARS: Final = 200


class IdempotencyKey(Base):
    """One key a staff user sent with a write, and the answer that write gave."""

    __tablename__ = "idempotency_keys"

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("staff_users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    # "POST /api/v1/work-orders/7/complete": a key sent again with another request is refused.
    request: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


@dataclass(frozen=True)
class Answer:
    """The answer the first request with a key gave."""

    status_code: int
    body: dict[str, Any]


def check_key(key: str) -> str:
    """Return ``key`` if it is a usable idempotency key (1-200 printable ASCII characters)."""
    if not (0 < len(key) <= MAX_KEY_CHARS and key.isascii() and key.isprintable()):
        raise ValidationFailed(
            f"{HEADER} must be 1 to {MAX_KEY_CHARS} printable ASCII characters, e.g. a UUID.",
            errors=[FieldError(HEADER, "not a usable key", "invalid")],
        )
    return key


def claim(
    session: Session, *, jurisdiction_id: int, user_id: int, key: str, request: str
) -> Answer | None:
    """Return the answer an earlier request with ``key`` gave, or None once the key is claimed
    for this request (which then :func:`keep`s its answer before committing).

    Raises ValidationFailed (422) when the key was used for another request. Flushes.
    """
    check_key(key)
    claimed = session.execute(
        pg_insert(IdempotencyKey)
        .values(jurisdiction_id=jurisdiction_id, user_id=user_id, key=key, request=request)
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    ).scalar_one_or_none()
    if claimed is not None:
        return None
    row = session.execute(
        select(IdempotencyKey.request, IdempotencyKey.status_code, IdempotencyKey.body)
        .where(
            IdempotencyKey.jurisdiction_id == jurisdiction_id,
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.key == key,
        )
        .with_for_update()
    ).one()
    if row.request != request:
        raise ValidationFailed(
            f"This {HEADER} was already used for another request ({row.request}); "
            "send a new key with each action.",
            errors=[FieldError(HEADER, "used for another request", "key_reused")],
        )
    return Answer(status_code=int(row.status_code or 200), body=dict(row.body or {}))


def keep(
    session: Session,
    *,
    jurisdiction_id: int,
    user_id: int,
    key: str,
    status_code: int,
    body: dict[str, Any],
) -> None:
    """Store the answer of the request that claimed ``key`` (in its transaction). Flushes."""
    row = session.get(IdempotencyKey, (jurisdiction_id, user_id, key))
    if row is None:
        raise LookupError(f"idempotency key {key!r} was not claimed")
    row.status_code = status_code
    row.body = body
    session.flush()
