"""work orders, SLA calendars, the notice outbox and the job queue's schema

Revision ID: 0004
Revises: 0006
Create Date: 2026-11-22 08:15:23.322591
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "business_calendars",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("hours", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("holidays", postgresql.ARRAY(sa.Date()), server_default="{}", nullable=False),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_business_calendars_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "code", name=op.f("pk_business_calendars")),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("kinds", postgresql.ARRAY(sa.String(length=16)), nullable=False),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_webhook_endpoints_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "notice_preferences",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("requester_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "muted_kinds",
            postgresql.ARRAY(sa.String(length=16)),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "requester_id"],
            ["requesters.jurisdiction_id", "requesters.id"],
            name=op.f("fk_notice_preferences_jurisdiction_id_requester_id_requesters"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_notice_preferences_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "jurisdiction_id", "requester_id", name=op.f("pk_notice_preferences")
        ),
    )
    op.create_table(
        "notices",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=True),
        sa.Column("requester_id", sa.BigInteger(), nullable=True),
        sa.Column("webhook_endpoint_id", sa.BigInteger(), nullable=True),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=16), server_default="en", nullable=False),
        sa.Column(
            "context",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("claim_token", sa.UUID(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_ref", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "channel IN ('email', 'sms', 'webhook')", name=op.f("ck_notices_channel_known")
        ),
        sa.CheckConstraint(
            "kind IN ('received', 'scheduled', 'closed')", name=op.f("ck_notices_kind_known")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'retry', 'sending', 'sent', 'failed', 'uncertain', 'skipped')",
            name=op.f("ck_notices_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "requester_id"],
            ["requesters.jurisdiction_id", "requesters.id"],
            name=op.f("fk_notices_jurisdiction_id_requester_id_requesters"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "webhook_endpoint_id"],
            ["webhook_endpoints.jurisdiction_id", "webhook_endpoints.id"],
            name="fk_notices_webhook_endpoint",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_notices_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_notices")),
        sa.UniqueConstraint(
            "jurisdiction_id",
            "idempotency_key",
            name=op.f("uq_notices_jurisdiction_id_idempotency_key"),
        ),
    )
    op.create_index(
        "ix_notices_incident", "notices", ["jurisdiction_id", "incident_id"], unique=False
    )
    op.create_index(
        "ix_notices_owed",
        "notices",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'retry')"),
    )
    op.create_index(
        "ix_notices_sending",
        "notices",
        ["claimed_at"],
        unique=False,
        postgresql_where=sa.text("status = 'sending'"),
    )
    op.create_table(
        "work_orders",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), server_default="new", nullable=False),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("crew_id", sa.BigInteger(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("at_risk_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hold_reason", sa.Text(), nullable=True),
        sa.Column("held_from", sa.String(length=32), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_by", sa.Text(), nullable=True),
        sa.Column("resolution_code", sa.String(length=32), nullable=True),
        sa.Column("completion_note", sa.Text(), nullable=True),
        sa.Column("after_photo_id", sa.BigInteger(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "resolution_code IS NULL OR resolution_code IN ('repaired', 'replaced', 'cleaned', 'removed', 'temporary_fix', 'no_issue_found', 'not_city_asset', 'referred')",
            name=op.f("ck_work_orders_resolution_code_known"),
        ),
        sa.CheckConstraint(
            "status IN ('new', 'triaged', 'assigned', 'scheduled', 'in_progress', 'completed', 'closed', 'cancelled', 'on_hold', 'transferred', 'reopened')",
            name=op.f("ck_work_orders_status_known"),
        ),
        sa.CheckConstraint("at_risk_at <= due_at", name=op.f("ck_work_orders_at_risk_before_due")),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "after_photo_id"],
            ["photos.jurisdiction_id", "photos.id"],
            name=op.f("fk_work_orders_jurisdiction_id_after_photo_id_photos"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "incident_id"],
            ["incidents.jurisdiction_id", "incidents.id"],
            name=op.f("fk_work_orders_jurisdiction_id_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_work_orders_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_work_orders")),
    )
    op.create_index(
        "ix_work_orders_crew", "work_orders", ["jurisdiction_id", "crew_id"], unique=False
    )
    op.create_index(
        "ix_work_orders_due", "work_orders", ["jurisdiction_id", "due_at"], unique=False
    )
    op.create_index(
        "ix_work_orders_incident", "work_orders", ["jurisdiction_id", "incident_id"], unique=False
    )
    op.create_index(
        "ix_work_orders_queue",
        "work_orders",
        ["jurisdiction_id", "department", "status"],
        unique=False,
    )
    op.add_column(
        "service_categories", sa.Column("calendar_code", sa.String(length=64), nullable=True)
    )
    op.create_foreign_key(
        "fk_service_categories_calendar",
        "service_categories",
        "business_calendars",
        ["jurisdiction_id", "calendar_code"],
        ["jurisdiction_id", "code"],
    )
    # Incidents opened before this revision get their work order, in step with their status.
    op.execute(_BACKFILL_WORK_ORDERS)
    _raw(_queue_schema())


def _raw(sql: str) -> None:
    """Run SQL as it is, several statements at once (no parameter parsing of '%' or ':')."""
    driver = op.get_bind().connection.driver_connection
    assert driver is not None
    driver.execute(sql)


def _queue_schema() -> str:
    """Return the job queue's schema (procrastinate's own SQL, of the installed version).

    A later procrastinate that changes its schema needs a new revision applying its
    migration files (procrastinate/sql/migrations) to databases created before it.
    """
    from procrastinate.schema import SchemaManager

    return str(SchemaManager.get_schema())


_BACKFILL_WORK_ORDERS = """
INSERT INTO work_orders (jurisdiction_id, incident_id, status, department, opened_at,
                         due_at, at_risk_at, resolved_at, completed_at)
SELECT i.jurisdiction_id, i.id,
       CASE WHEN i.status = 'closed' THEN 'completed' ELSE i.status END,
       c.group_code, i.opened_at, d.due_at,
       LEAST(d.due_at, d.due_at - (d.due_at - i.opened_at) * 0.25),
       CASE WHEN i.status IN ('completed', 'closed', 'cancelled')
            THEN COALESCE(i.closed_at, i.updated_at) END,
       CASE WHEN i.status IN ('completed', 'closed')
            THEN COALESCE(i.closed_at, i.updated_at) END
FROM incidents i
JOIN service_categories c
  ON c.jurisdiction_id = i.jurisdiction_id AND c.code = i.category_code
CROSS JOIN LATERAL (
    SELECT COALESCE(i.due_at, i.opened_at + make_interval(secs => c.sla_hours * 3600)) AS due_at
) d
WHERE NOT EXISTS (
    SELECT 1 FROM work_orders w
    WHERE w.jurisdiction_id = i.jurisdiction_id AND w.incident_id = i.id
)
"""

_DROP_QUEUE_SCHEMA = r"""
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\_%'
    LOOP
        EXECUTE 'DROP FUNCTION IF EXISTS ' || r.signature || ' CASCADE';
    END LOOP;
END $$;
DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers,
    procrastinate_jobs, procrastinate_workers CASCADE;
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT t.typname FROM pg_type t
             JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate\_%'
               AND t.typtype IN ('e', 'c')
    LOOP
        EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', r.typname);
    END LOOP;
END $$;
"""


def downgrade() -> None:
    _raw(_DROP_QUEUE_SCHEMA)
    op.drop_constraint("fk_service_categories_calendar", "service_categories", type_="foreignkey")
    op.drop_column("service_categories", "calendar_code")
    op.drop_index("ix_work_orders_queue", table_name="work_orders")
    op.drop_index("ix_work_orders_incident", table_name="work_orders")
    op.drop_index("ix_work_orders_due", table_name="work_orders")
    op.drop_index("ix_work_orders_crew", table_name="work_orders")
    op.drop_table("work_orders")
    op.drop_index(
        "ix_notices_sending", table_name="notices", postgresql_where=sa.text("status = 'sending'")
    )
    op.drop_index(
        "ix_notices_owed",
        table_name="notices",
        postgresql_where=sa.text("status IN ('pending', 'retry')"),
    )
    op.drop_index("ix_notices_incident", table_name="notices")
    op.drop_table("notices")
    op.drop_table("notice_preferences")
    op.drop_table("webhook_endpoints")
    op.drop_table("business_calendars")
