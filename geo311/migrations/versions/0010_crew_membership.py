"""auth: a crew user belongs to one crew (staff_users.crew_id)

The membership is the kernel's, so the caller's crew comes with the token in one look-up and
every package can check it; the dispatch package writes it. ``crew_members.staff_user_id``
(a roster line's login, never written by name and a second place for the same fact) goes:
its links are carried over first.

Revision ID: 0009_crew_membership
Revises: o311_public_note
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_crew_membership"
down_revision: str | None = "o311_public_note"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("staff_users", sa.Column("crew_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_staff_users_crew", "staff_users", ["crew_id"], unique=False)
    # A crew user linked from a roster keeps that crew (the lowest, if linked from several).
    op.execute(
        """
        UPDATE staff_users u SET crew_id = m.crew_id, jurisdiction_id = m.jurisdiction_id
        FROM (
            SELECT DISTINCT ON (staff_user_id) staff_user_id, crew_id, jurisdiction_id
            FROM crew_members WHERE staff_user_id IS NOT NULL
            ORDER BY staff_user_id, crew_id
        ) m
        WHERE m.staff_user_id = u.id AND u.role = 'crew'
        """
    )
    op.drop_constraint(
        op.f("fk_crew_members_staff_user_id_staff_users"), "crew_members", type_="foreignkey"
    )
    op.drop_column("crew_members", "staff_user_id")


def downgrade() -> None:
    op.add_column("crew_members", sa.Column("staff_user_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_crew_members_staff_user_id_staff_users"),
        "crew_members",
        "staff_users",
        ["staff_user_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.drop_index("ix_staff_users_crew", table_name="staff_users")
    op.drop_column("staff_users", "crew_id")
