"""auth: staff sign-in for pages — passwords, disabled users, sessions, failed-sign-in throttle

Revision ID: signin_sessions
Revises: 0009_crew_membership
Create Date: 2026-12-12 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "signin_sessions"
down_revision: str | None = "0009_crew_membership"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("staff_users", sa.Column("password_hash", sa.Text(), nullable=True))
    op.add_column(
        "staff_users", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "staff_sessions",
        sa.Column("id_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("csrf_secret", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["staff_users.id"],
            name=op.f("fk_staff_sessions_user_id_staff_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_sha256", name=op.f("pk_staff_sessions")),
    )
    op.create_index("ix_staff_sessions_user", "staff_sessions", ["user_id"], unique=False)
    op.create_index("ix_staff_sessions_expires", "staff_sessions", ["expires_at"], unique=False)
    op.create_table(
        "signin_throttle",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_signin_throttle")),
    )
    op.create_index(
        "ix_signin_throttle_last_failure", "signin_throttle", ["last_failure_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_signin_throttle_last_failure", table_name="signin_throttle")
    op.drop_table("signin_throttle")
    op.drop_index("ix_staff_sessions_expires", table_name="staff_sessions")
    op.drop_index("ix_staff_sessions_user", table_name="staff_sessions")
    op.drop_table("staff_sessions")
    op.drop_column("staff_users", "disabled_at")
    op.drop_column("staff_users", "password_hash")
