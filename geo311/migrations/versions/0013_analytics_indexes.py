"""maps.analytics: indexes for the planner's ward table, trends and hotspots

Range scans by time on incidents and work orders (reports have one already), and partial indexes on the audit trail for
reopen events and "fixed?" answers (declared in maps/analytics/models.py).

Revision ID: a1ytics_indexes
Revises: track_follow_confirm
Create Date: 2026-12-05 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1ytics_indexes"
down_revision: str | None = "track_follow_confirm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_incidents_opened_at", "incidents", ["jurisdiction_id", "opened_at"])
    op.create_index("ix_work_orders_opened_at", "work_orders", ["jurisdiction_id", "opened_at"])
    op.create_index(
        "ix_audit_events_reopened",
        "audit_events",
        ["jurisdiction_id", "at", "entity_id"],
        postgresql_where=sa.text("entity = 'incident' AND to_state = 'reopened'"),
    )
    op.create_index(
        "ix_audit_events_answers",
        "audit_events",
        ["jurisdiction_id", "at", "entity_id"],
        postgresql_where=sa.text("entity = 'incident' AND action = 'resident_answer'"),
    )


def downgrade() -> None:
    op.drop_index("ix_audit_events_answers", table_name="audit_events")
    op.drop_index("ix_audit_events_reopened", table_name="audit_events")
    op.drop_index("ix_work_orders_opened_at", table_name="work_orders")
    op.drop_index("ix_incidents_opened_at", table_name="incidents")
