"""notify: a "confirm you want updates" notice kind (follow by e-mail, double opt-in)

Revision ID: track_follow_confirm
Revises: signin_sessions
Create Date: 2026-12-13 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "track_follow_confirm"
down_revision: str | None = "signin_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_notices_kind_known"), "notices", type_="check")
    op.create_check_constraint(
        op.f("ck_notices_kind_known"),
        "notices",
        "kind IN ('received', 'scheduled', 'closed', 'follow')",
    )


def downgrade() -> None:
    op.execute("DELETE FROM notices WHERE kind = 'follow'")
    op.drop_constraint(op.f("ck_notices_kind_known"), "notices", type_="check")
    op.create_check_constraint(
        op.f("ck_notices_kind_known"), "notices", "kind IN ('received', 'scheduled', 'closed')"
    )
