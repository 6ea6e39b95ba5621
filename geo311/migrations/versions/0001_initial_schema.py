"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 07:52:10.117070
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # On an external server these need a role allowed to create extensions; the embedded
    # cluster has them already.
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "jurisdictions",
        sa.Column("id", sa.SmallInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jurisdictions")),
        sa.UniqueConstraint("slug", name=op.f("uq_jurisdictions_slug")),
    )
    op.create_table(
        "asset_types",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_asset_types_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "code", name=op.f("pk_asset_types")),
    )
    op.create_table(
        "requesters",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("language", sa.String(length=16), server_default="en", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_requesters_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_requesters")),
    )
    op.create_table(
        "staff_users",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('crew', 'dispatcher', 'planner', 'admin')",
            name=op.f("ck_staff_users_role_known"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_staff_users_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_users")),
        sa.UniqueConstraint("name", name=op.f("uq_staff_users_name")),
    )
    op.create_table(
        "ward_maps",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        postgresql.ExcludeConstraint(
            (sa.column("jurisdiction_id"), "="),
            (sa.text("tstzrange(valid_from, valid_to)"), "&&"),
            using="gist",
            name="ex_ward_maps_no_overlap",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_ward_maps_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_ward_maps")),
        sa.UniqueConstraint(
            "jurisdiction_id", "name", name=op.f("uq_ward_maps_jurisdiction_id_name")
        ),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("label", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["staff_users.id"],
            name=op.f("fk_api_tokens_user_id_staff_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_tokens_token_sha256")),
    )
    op.create_geospatial_table(
        "assets",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("asset_type", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "asset_type"],
            ["asset_types.jurisdiction_id", "asset_types.code"],
            name=op.f("fk_assets_jurisdiction_id_asset_type_asset_types"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_assets_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_assets")),
        sa.UniqueConstraint(
            "jurisdiction_id",
            "asset_type",
            "external_id",
            name=op.f("uq_assets_jurisdiction_id_asset_type_external_id"),
        ),
    )
    op.create_index(
        "ix_assets_type_geog",
        "assets",
        ["jurisdiction_id", "asset_type", sa.literal_column("(geom::geography)")],
        unique=False,
        postgresql_using="gist",
    )
    op.create_table(
        "service_categories",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("group_code", sa.String(length=64), nullable=False),
        sa.Column("asset_type", sa.String(length=64), nullable=True),
        sa.Column("dedup_radius_m", sa.Float(), server_default="50", nullable=False),
        sa.Column("snap_radius_m", sa.Float(), server_default="30", nullable=False),
        sa.Column("sla_hours", sa.Float(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.CheckConstraint(
            "dedup_radius_m >= 0", name=op.f("ck_service_categories_dedup_radius_nonneg")
        ),
        sa.CheckConstraint("sla_hours > 0", name=op.f("ck_service_categories_sla_hours_positive")),
        sa.CheckConstraint(
            "snap_radius_m >= 0", name=op.f("ck_service_categories_snap_radius_nonneg")
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "asset_type"],
            ["asset_types.jurisdiction_id", "asset_types.code"],
            name=op.f("fk_service_categories_jurisdiction_id_asset_type_asset_types"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_service_categories_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "code", name=op.f("pk_service_categories")),
    )
    op.create_geospatial_table(
        "wards",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("ward_map_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("population", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "ward_map_id"],
            ["ward_maps.jurisdiction_id", "ward_maps.id"],
            name=op.f("fk_wards_jurisdiction_id_ward_map_id_ward_maps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_wards_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_wards")),
        sa.UniqueConstraint(
            "jurisdiction_id",
            "ward_map_id",
            "code",
            name=op.f("uq_wards_jurisdiction_id_ward_map_id_code"),
        ),
    )
    op.create_geospatial_index(
        "ix_wards_geom", "wards", ["geom"], unique=False, postgresql_using="gist", postgresql_ops={}
    )
    op.create_geospatial_table(
        "incidents",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("category_code", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), server_default="new", nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("ward_id", sa.Integer(), nullable=True),
        sa.Column("asset_id", sa.BigInteger(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.CheckConstraint(
            "status IN ('new', 'triaged', 'assigned', 'scheduled', 'in_progress', 'completed', 'closed', 'cancelled', 'on_hold', 'transferred', 'reopened')",
            name=op.f("ck_incidents_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "asset_id"],
            ["assets.jurisdiction_id", "assets.id"],
            name=op.f("fk_incidents_jurisdiction_id_asset_id_assets"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "category_code"],
            ["service_categories.jurisdiction_id", "service_categories.code"],
            name=op.f("fk_incidents_jurisdiction_id_category_code_service_categories"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "ward_id"],
            ["wards.jurisdiction_id", "wards.id"],
            name=op.f("fk_incidents_jurisdiction_id_ward_id_wards"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_incidents_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_incidents")),
    )
    op.create_geospatial_index(
        "ix_incidents_geom",
        "incidents",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index("ix_incidents_status", "incidents", ["jurisdiction_id", "status"], unique=False)
    op.create_geospatial_table(
        "reports",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tracking_id", sa.String(length=32), nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("requester_id", sa.BigInteger(), nullable=True),
        sa.Column("category_code", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("location_source", sa.String(length=16), nullable=False),
        sa.Column("ward_id", sa.Integer(), nullable=True),
        sa.Column("asset_id", sa.BigInteger(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=16), server_default="en", nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "channel IN ('web', 'api', 'open311', 'phone', 'import')",
            name=op.f("ck_reports_channel_known"),
        ),
        sa.CheckConstraint(
            "location_source IN ('pin', 'exif', 'address', 'import')",
            name=op.f("ck_reports_location_source_known"),
        ),
        sa.CheckConstraint(
            "char_length(description) <= 4000", name=op.f("ck_reports_description_length")
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "asset_id"],
            ["assets.jurisdiction_id", "assets.id"],
            name=op.f("fk_reports_jurisdiction_id_asset_id_assets"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "category_code"],
            ["service_categories.jurisdiction_id", "service_categories.code"],
            name=op.f("fk_reports_jurisdiction_id_category_code_service_categories"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "incident_id"],
            ["incidents.jurisdiction_id", "incidents.id"],
            name=op.f("fk_reports_jurisdiction_id_incident_id_incidents"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "requester_id"],
            ["requesters.jurisdiction_id", "requesters.id"],
            name=op.f("fk_reports_jurisdiction_id_requester_id_requesters"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "ward_id"],
            ["wards.jurisdiction_id", "wards.id"],
            name=op.f("fk_reports_jurisdiction_id_ward_id_wards"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_reports_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_reports")),
        sa.UniqueConstraint(
            "jurisdiction_id", "tracking_id", name=op.f("uq_reports_jurisdiction_id_tracking_id")
        ),
    )
    op.create_geospatial_index(
        "ix_reports_geom",
        "reports",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        "ix_reports_incident", "reports", ["jurisdiction_id", "incident_id"], unique=False
    )
    op.create_geospatial_table(
        "photos",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("report_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=16), server_default="report", nullable=False),
        sa.Column("original_key", sa.Text(), nullable=False),
        sa.Column("original_type", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("thumb_key", sa.Text(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("phash", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("taken_at", sa.DateTime(), nullable=True),
        sa.Column(
            "exif_geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("kind IN ('report', 'after')", name=op.f("ck_photos_kind_known")),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "report_id"],
            ["reports.jurisdiction_id", "reports.id"],
            name=op.f("fk_photos_jurisdiction_id_report_id_reports"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_photos_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_photos")),
    )
    op.create_index("ix_photos_report", "photos", ["jurisdiction_id", "report_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_photos_report", table_name="photos")
    op.drop_geospatial_table("photos")
    op.drop_index("ix_reports_incident", table_name="reports")
    op.drop_geospatial_index(
        "ix_reports_geom", table_name="reports", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("reports")
    op.drop_index("ix_incidents_status", table_name="incidents")
    op.drop_geospatial_index(
        "ix_incidents_geom", table_name="incidents", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("incidents")
    op.drop_geospatial_index(
        "ix_wards_geom", table_name="wards", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("wards")
    op.drop_table("service_categories")
    op.drop_index("ix_assets_type_geog", table_name="assets", postgresql_using="gist")
    op.drop_geospatial_table("assets")
    op.drop_table("api_tokens")
    op.drop_table("ward_maps")
    op.drop_table("staff_users")
    op.drop_table("requesters")
    op.drop_table("asset_types")
    op.drop_table("jurisdictions")
