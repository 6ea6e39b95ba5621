"""maps.analytics: the planner's summary tables (counts per local day, ward and category; one
narrow row per incident for the quantiles, the backlog and running SLA clocks), the list of
built days and the list of changes not yet taken in.

The tables start empty: a day not built yet is counted from the source tables, so the answer
is right before the first ``geo311 analytics refresh`` and only faster after it.

Revision ID: a1ytics_rollup
Revises: citus_distribute
Create Date: 2026-12-05 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1ytics_rollup"
down_revision: str | None = "citus_distribute"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = (
    "reports",
    "duplicates",
    "incidents",
    "closed",
    "decided",
    "breached",
    "on_time",
    "reopened",
    "fixed_yes",
    "fixed_no",
)


def _jurisdiction() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdictions.id"], ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "analytics_changes",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("entity_id", sa.BigInteger(), nullable=True),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        _jurisdiction(),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id"),
    )
    op.create_table(
        "analytics_day_counts",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("ward_key", sa.Integer(), nullable=False),
        sa.Column("category_code", sa.String(length=64), nullable=False),
        *(sa.Column(c, sa.Integer(), server_default="0", nullable=False) for c in _COUNTS),
        _jurisdiction(),
        sa.PrimaryKeyConstraint("jurisdiction_id", "day", "ward_key", "category_code"),
    )
    op.create_table(
        "analytics_cases",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("ward_key", sa.Integer(), nullable=False),
        sa.Column("category_code", sa.String(length=64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_h", sa.Float(), nullable=True),
        sa.Column("running_due_at", sa.DateTime(timezone=True), nullable=True),
        _jurisdiction(),
        sa.PrimaryKeyConstraint("jurisdiction_id", "day", "incident_id"),
    )
    op.create_index(
        "ix_analytics_cases_closed",
        "analytics_cases",
        ["jurisdiction_id", "day", "ward_key", "category_code", "close_h"],
        postgresql_where=sa.text("close_h IS NOT NULL"),
    )
    op.create_index(
        "ix_analytics_cases_running",
        "analytics_cases",
        ["jurisdiction_id", "day"],
        postgresql_include=["ward_key", "category_code", "running_due_at"],
        postgresql_where=sa.text("running_due_at IS NOT NULL"),
    )
    op.create_index(
        "ix_analytics_cases_alive",
        "analytics_cases",
        [sa.text("tstzrange(opened_at, closed_at, '[]')")],
        postgresql_using="gist",
    )
    op.create_table(
        "analytics_rollup_days",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column(
            "built_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        _jurisdiction(),
        sa.PrimaryKeyConstraint("jurisdiction_id", "day"),
    )


def downgrade() -> None:
    op.drop_table("analytics_rollup_days")
    op.drop_table("analytics_cases")
    op.drop_table("analytics_day_counts")
    op.drop_table("analytics_changes")
