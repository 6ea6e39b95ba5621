"""Citus: distribute the tenant tables by jurisdiction_id, co-located; reference and
coordinator tables as geo311/kernel/distribute.py lists them. Nothing happens without the citus
extension. Later migrations' new tables are placed by the same rule as Alembic creates them
(geo311/migrations/env.py hooks create_table), so no later migration has to remember it.

Revision ID: citus_distribute
Revises: crew_idem_keys
Create Date: 2026-12-05 03:00:00
"""

from collections.abc import Sequence

from alembic import op

from geo311.kernel import distribute

revision: str = "citus_distribute"
down_revision: str | None = "crew_idem_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    distribute.distribute(op.get_bind())


def downgrade() -> None:
    # Undistributing would pull every city's rows back onto the coordinator; downgrading
    # earlier migrations works on distributed tables (Citus propagates the DDL).
    pass
