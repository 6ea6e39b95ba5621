"""dispatch: units of vehicle capacity a category's job takes

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 11:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "category_service_times",
        sa.Column("demand", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_category_service_times_demand_nonneg"), "category_service_times", "demand >= 0"
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_category_service_times_demand_nonneg"), "category_service_times", type_="check"
    )
    op.drop_column("category_service_times", "demand")
