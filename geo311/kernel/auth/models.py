"""Staff accounts and their API tokens (only a hash of each token is stored)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from geo311.kernel.database import Base

ROLES = ("crew", "dispatcher", "planner", "admin")


class StaffUser(Base):
    """A member of staff with one role; a crew user belongs to at most one crew.

    ``crew_id`` is the crew a crew user works on (None: none yet, so it can read but act on
    nothing). A plain number, not a foreign key: crews belong to the dispatch package above
    the kernel, which writes this column and keeps it consistent when crews go (as
    ``work_orders.crew_id`` does).
    """

    __tablename__ = "staff_users"
    __table_args__ = (
        CheckConstraint("role IN (" + ", ".join(f"'{r}'" for r in ROLES) + ")", name="role_known"),
        Index("ix_staff_users_crew", "crew_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    role: Mapped[str] = mapped_column(String(16))
    jurisdiction_id: Mapped[int | None] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE")
    )
    crew_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # argon2id, in its own encoded form (parameters and salt included); None: no page sign-in.
    password_hash: Mapped[str | None] = mapped_column(Text)
    # A disabled user's sessions and tokens stop working; the row stays for the audit trail.
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    """A bearer token of a staff user; revoked tokens stay for the audit trail."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StaffSession(Base):
    """A signed-in browser: only a hash of the cookie's id is stored, never the id itself."""

    __tablename__ = "staff_sessions"
    __table_args__ = (
        Index("ix_staff_sessions_user", "user_id"),
        Index("ix_staff_sessions_expires", "expires_at"),
    )

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Pages send it back with every write (a form field or X-CSRF-Token header).
    csrf_secret: Mapped[str] = mapped_column(String(64))


class SigninThrottle(Base):
    """Recent failed sign-ins of one account ("name:…") or one client address ("addr:…")."""

    __tablename__ = "signin_throttle"
    __table_args__ = (Index("ix_signin_throttle_last_failure", "last_failure_at"),)

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
    last_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
