"""maps.analytics: month summaries (counts, and time-to-close buckets per ward and category and
per ward) so a year is read as twelve months, not 365 days; each incident's time-to-close
bucket, with an index by bucket, so a quantile reads only the values of its bucket; the backlog's open cases from an index of
their own.

The summaries are cleared: they are rebuilt, with the buckets, by the next
``geo311 analytics refresh`` (or the worker's periodic refresh). Until then the ward table is
counted from the source tables, exact as always.

Revision ID: m0nth_buckets
Revises: a1ytics_rollup
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "m0nth_buckets"
down_revision: str | None = "a1ytics_rollup"
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


def _clear_summaries() -> None:
    op.execute("DELETE FROM analytics_rollup_days")
    op.execute("DELETE FROM analytics_day_counts")
    op.execute("DELETE FROM analytics_cases")


def upgrade() -> None:
    _clear_summaries()
    op.add_column("analytics_cases", sa.Column("close_bucket", sa.SmallInteger(), nullable=True))
    op.drop_index("ix_analytics_cases_closed", table_name="analytics_cases")
    op.create_index(
        "ix_analytics_cases_buckets",
        "analytics_cases",
        ["jurisdiction_id", "day", "ward_key", "category_code", "close_bucket"],
        postgresql_where=sa.text("close_h IS NOT NULL"),
    )
    op.create_index(
        "ix_analytics_cases_bucket_values",
        "analytics_cases",
        ["jurisdiction_id", "close_bucket", "ward_key", "day"],
        postgresql_include=["category_code", "close_h"],
        postgresql_where=sa.text("close_h IS NOT NULL"),
    )
    op.drop_index("ix_analytics_cases_alive", table_name="analytics_cases")
    op.create_index(
        "ix_analytics_cases_open",
        "analytics_cases",
        ["jurisdiction_id", "day"],
        postgresql_include=["ward_key", "category_code", "opened_at"],
        postgresql_where=sa.text("closed_at IS NULL"),
    )
    op.create_index(
        "ix_analytics_cases_closed_span",
        "analytics_cases",
        [sa.text("tstzrange(opened_at, closed_at, '[]')")],
        postgresql_using="gist",
        postgresql_where=sa.text("closed_at IS NOT NULL"),
    )
    op.create_table(
        "analytics_month_counts",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("ward_key", sa.Integer(), nullable=False),
        sa.Column("category_code", sa.String(length=64), nullable=False),
        *(sa.Column(c, sa.Integer(), server_default="0", nullable=False) for c in _COUNTS),
        _jurisdiction(),
        sa.PrimaryKeyConstraint("jurisdiction_id", "month", "ward_key", "category_code"),
    )
    op.create_table(
        "analytics_month_close",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("ward_key", sa.Integer(), nullable=False),
        sa.Column("category_code", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        _jurisdiction(),
        sa.PrimaryKeyConstraint("jurisdiction_id", "category_code", "month", "ward_key", "bucket"),
    )
    op.create_table(
        "analytics_month_close_wards",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("ward_key", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        _jurisdiction(),
        sa.PrimaryKeyConstraint("jurisdiction_id", "month", "ward_key", "bucket"),
    )


def downgrade() -> None:
    op.drop_table("analytics_month_close_wards")
    op.drop_table("analytics_month_close")
    op.drop_table("analytics_month_counts")
    _clear_summaries()
    op.drop_index("ix_analytics_cases_closed_span", table_name="analytics_cases")
    op.drop_index("ix_analytics_cases_open", table_name="analytics_cases")
    op.create_index(
        "ix_analytics_cases_alive",
        "analytics_cases",
        [sa.text("tstzrange(opened_at, closed_at, '[]')")],
        postgresql_using="gist",
    )
    op.drop_index("ix_analytics_cases_bucket_values", table_name="analytics_cases")
    op.drop_index("ix_analytics_cases_buckets", table_name="analytics_cases")
    op.create_index(
        "ix_analytics_cases_closed",
        "analytics_cases",
        ["jurisdiction_id", "day", "ward_key", "category_code", "close_h"],
        postgresql_where=sa.text("close_h IS NOT NULL"),
    )
    op.drop_column("analytics_cases", "close_bucket")
