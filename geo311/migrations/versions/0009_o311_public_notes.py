"""audit trail: a public note, chosen on purpose, apart from the staff's reason

Revision ID: o311_public_note
Revises: 0008
Create Date: 2026-12-04 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "o311_public_note"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("public_note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_events", "public_note")
