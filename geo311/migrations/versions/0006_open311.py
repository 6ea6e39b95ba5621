"""open311: API keys, service definition attributes, submissions; report attributes

Revision ID: 0006
Revises: 0002
Create Date: 2026-11-22 08:11:14.655001
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "open311_api_keys",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("application", sa.Text(), nullable=False),
        sa.Column("key_sha256", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_open311_api_keys_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_open311_api_keys")),
        sa.UniqueConstraint("key_sha256", name=op.f("uq_open311_api_keys_key_sha256")),
    )
    op.create_table(
        "service_attributes",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("category_code", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("datatype", sa.String(length=16), nullable=False),
        sa.Column("variable", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("required", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("display_order", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("datatype_description", sa.Text(), nullable=True),
        sa.Column(
            "choices",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "datatype IN ('singlevaluelist', 'multivaluelist') OR jsonb_array_length(choices) = 0",
            name=op.f("ck_service_attributes_choices_only_for_lists"),
        ),
        sa.CheckConstraint(
            "datatype IN ('string', 'number', 'datetime', 'text', 'singlevaluelist', 'multivaluelist')",
            name=op.f("ck_service_attributes_datatype_known"),
        ),
        sa.CheckConstraint(
            "jsonb_typeof(choices) = 'array'", name=op.f("ck_service_attributes_choices_array")
        ),
        sa.CheckConstraint(
            "display_order > 0", name=op.f("ck_service_attributes_display_order_positive")
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "category_code"],
            ["service_categories.jurisdiction_id", "service_categories.code"],
            name=op.f("fk_service_attributes_jurisdiction_id_category_code_service_categories"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_service_attributes_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "jurisdiction_id", "category_code", "code", name=op.f("pk_service_attributes")
        ),
    )
    op.create_table(
        "open311_submissions",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("report_id", sa.BigInteger(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("api_key_id", sa.BigInteger(), nullable=False),
        sa.Column("media_url", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "api_key_id"],
            ["open311_api_keys.jurisdiction_id", "open311_api_keys.id"],
            name=op.f("fk_open311_submissions_jurisdiction_id_api_key_id_open311_api_keys"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "report_id"],
            ["reports.jurisdiction_id", "reports.id"],
            name=op.f("fk_open311_submissions_jurisdiction_id_report_id_reports"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_open311_submissions_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "jurisdiction_id", "report_id", name=op.f("pk_open311_submissions")
        ),
        sa.UniqueConstraint(
            "jurisdiction_id", "token", name=op.f("uq_open311_submissions_jurisdiction_id_token")
        ),
    )
    op.create_index(
        "ix_audit_events_at", "audit_events", ["jurisdiction_id", "entity", "at"], unique=False
    )
    op.add_column(
        "reports",
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_reports_reported_at", "reports", ["jurisdiction_id", "reported_at"], unique=False
    )
    op.add_column("requesters", sa.Column("name", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("requesters", "name")
    op.drop_index("ix_reports_reported_at", table_name="reports")
    op.drop_column("reports", "attributes")
    op.drop_index("ix_audit_events_at", table_name="audit_events")
    op.drop_table("open311_submissions")
    op.drop_table("service_attributes")
    op.drop_table("open311_api_keys")
