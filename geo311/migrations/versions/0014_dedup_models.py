"""dedup: each category's fitted duplicate model (features, coefficients, threshold) as JSON

Revision ID: dedup_models
Revises: a1ytics_indexes
Create Date: 2026-12-05 02:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "dedup_models"
down_revision: str | None = "a1ytics_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dedup_models",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("category_code", sa.String(length=64), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "fitted_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("fitted_by", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_dedup_models_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "category_code", name=op.f("pk_dedup_models")),
    )


def downgrade() -> None:
    op.drop_table("dedup_models")
