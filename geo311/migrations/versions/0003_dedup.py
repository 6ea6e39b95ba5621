"""dedup: per-category settings, decisions stored with reports, staff moves, indexes

Revision ID: 0003
Revises: 0004
Create Date: 2026-11-22 08:10:46.972410
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incident_moves",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("from_incident_id", sa.BigInteger(), nullable=False),
        sa.Column("to_incident_id", sa.BigInteger(), nullable=False),
        sa.Column("report_ids", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_by", sa.Text(), nullable=True),
        sa.Column("undo_reason", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('merge', 'split')", name=op.f("ck_incident_moves_kind_known")),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "from_incident_id"],
            ["incidents.jurisdiction_id", "incidents.id"],
            name=op.f("fk_incident_moves_jurisdiction_id_from_incident_id_incidents"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "to_incident_id"],
            ["incidents.jurisdiction_id", "incidents.id"],
            name=op.f("fk_incident_moves_jurisdiction_id_to_incident_id_incidents"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_incident_moves_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_incident_moves")),
    )
    op.create_index(
        "ix_incident_moves_from",
        "incident_moves",
        ["jurisdiction_id", "from_incident_id"],
        unique=False,
    )
    op.create_index(
        "ix_incident_moves_to",
        "incident_moves",
        ["jurisdiction_id", "to_incident_id"],
        unique=False,
    )
    op.create_index(
        "ix_incidents_asset",
        "incidents",
        ["jurisdiction_id", "asset_id"],
        unique=False,
        postgresql_where=sa.text("asset_id IS NOT NULL"),
    )
    # The incidents' spatial index also carries the closing time, so dedup's candidate search
    # skips incidents closed long ago inside the index; bbox searches use it as before.
    op.drop_index("ix_incidents_geom", table_name="incidents", postgresql_using="gist")
    op.create_index(
        "ix_incidents_geom_closed",
        "incidents",
        ["geom", sa.literal_column("(COALESCE(closed_at, 'infinity'::timestamptz))")],
        unique=False,
        postgresql_using="gist",
    )
    op.add_column("reports", sa.Column("dedup_decision", sa.String(length=16), nullable=True))
    op.add_column("reports", sa.Column("dedup_score", sa.Float(), nullable=True))
    op.add_column(
        "reports",
        sa.Column(
            "dedup_signals",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column("reports", sa.Column("matched_report_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_reports_jurisdiction_id_matched_report_id_reports"),
        "reports",
        "reports",
        ["jurisdiction_id", "matched_report_id"],
        ["jurisdiction_id", "id"],
    )
    op.create_check_constraint(
        op.f("ck_reports_dedup_decision_known"),
        "reports",
        "dedup_decision IN ('new', 'matched', 'reopened', 'off')",
    )
    op.add_column(
        "service_categories",
        sa.Column("dedup_enabled", sa.Boolean(), server_default="true", nullable=False),
    )
    op.add_column("service_categories", sa.Column("dedup_threshold", sa.Float(), nullable=True))
    op.add_column("service_categories", sa.Column("dedup_open_window_h", sa.Float(), nullable=True))
    op.add_column(
        "service_categories", sa.Column("dedup_reopen_window_h", sa.Float(), nullable=True)
    )
    op.add_column(
        "service_categories",
        sa.Column(
            "dedup_weights",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("service_categories", "dedup_weights")
    op.drop_column("service_categories", "dedup_reopen_window_h")
    op.drop_column("service_categories", "dedup_open_window_h")
    op.drop_column("service_categories", "dedup_threshold")
    op.drop_column("service_categories", "dedup_enabled")
    op.drop_constraint(op.f("ck_reports_dedup_decision_known"), "reports", type_="check")
    op.drop_constraint(
        op.f("fk_reports_jurisdiction_id_matched_report_id_reports"), "reports", type_="foreignkey"
    )
    op.drop_column("reports", "matched_report_id")
    op.drop_column("reports", "dedup_signals")
    op.drop_column("reports", "dedup_score")
    op.drop_column("reports", "dedup_decision")
    op.drop_index(
        "ix_incidents_asset",
        table_name="incidents",
        postgresql_where=sa.text("asset_id IS NOT NULL"),
    )
    op.drop_index("ix_incidents_geom_closed", table_name="incidents", postgresql_using="gist")
    op.create_index(
        "ix_incidents_geom", "incidents", ["geom"], unique=False, postgresql_using="gist"
    )
    op.drop_index("ix_incident_moves_to", table_name="incident_moves")
    op.drop_index("ix_incident_moves_from", table_name="incident_moves")
    op.drop_table("incident_moves")
