"""dispatch: crews, skills, assignment rules, service times, road network

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-22 08:23:18.581882
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # pgRouting computes travel-time matrices on road_edges.
    op.execute("CREATE EXTENSION IF NOT EXISTS pgrouting")
    op.create_geospatial_table(
        "crews",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("depot_name", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "depot",
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
        sa.Column("shift_start", sa.Time(), nullable=False),
        sa.Column("shift_end", sa.Time(), nullable=False),
        sa.Column(
            "workdays",
            postgresql.ARRAY(sa.SmallInteger()),
            server_default=sa.text("'{1,2,3,4,5}'::smallint[]"),
            nullable=False,
        ),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
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
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.CheckConstraint(
            "capacity IS NULL OR capacity >= 0", name=op.f("ck_crews_capacity_nonneg")
        ),
        sa.CheckConstraint("shift_end > shift_start", name=op.f("ck_crews_shift_ordered")),
        sa.CheckConstraint(
            "workdays <@ ARRAY[1,2,3,4,5,6,7]::smallint[]", name=op.f("ck_crews_workdays_iso")
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_crews_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_crews")),
        sa.UniqueConstraint("jurisdiction_id", "code", name=op.f("uq_crews_jurisdiction_id_code")),
    )
    op.create_table(
        "road_networks",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("vertices", sa.Integer(), nullable=False),
        sa.Column("edges", sa.Integer(), nullable=False),
        sa.Column("routable_edges", sa.Integer(), nullable=False),
        sa.Column("max_speed_kmh", sa.Float(), nullable=False),
        sa.Column(
            "loaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_road_networks_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", name=op.f("pk_road_networks")),
    )
    op.create_geospatial_table(
        "road_vertices",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("osm_node_id", sa.BigInteger(), nullable=True),
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
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_road_vertices_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_road_vertices")),
    )
    op.create_geospatial_index(
        "ix_road_vertices_geom",
        "road_vertices",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_table(
        "skills",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_skills_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "code", name=op.f("pk_skills")),
    )
    op.create_table(
        "crew_breaks",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("crew_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.SmallInteger(), nullable=False),
        sa.Column("earliest_start", sa.Time(), nullable=False),
        sa.Column("latest_start", sa.Time(), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.CheckConstraint("duration_s > 0", name=op.f("ck_crew_breaks_duration_positive")),
        sa.CheckConstraint(
            "latest_start >= earliest_start", name=op.f("ck_crew_breaks_window_ordered")
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "crew_id"],
            ["crews.jurisdiction_id", "crews.id"],
            name=op.f("fk_crew_breaks_jurisdiction_id_crew_id_crews"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_crew_breaks_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "crew_id", "seq", name=op.f("pk_crew_breaks")),
    )
    op.create_table(
        "crew_members",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("crew_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), server_default="", nullable=False),
        sa.Column("staff_user_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "crew_id"],
            ["crews.jurisdiction_id", "crews.id"],
            name=op.f("fk_crew_members_jurisdiction_id_crew_id_crews"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_crew_members_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["staff_user_id"],
            ["staff_users.id"],
            name=op.f("fk_crew_members_staff_user_id_staff_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_crew_members")),
    )
    op.create_index(
        "ix_crew_members_crew", "crew_members", ["jurisdiction_id", "crew_id"], unique=False
    )
    op.create_table(
        "crew_skills",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("crew_id", sa.Integer(), nullable=False),
        sa.Column("skill_code", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "crew_id"],
            ["crews.jurisdiction_id", "crews.id"],
            name=op.f("fk_crew_skills_jurisdiction_id_crew_id_crews"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "skill_code"],
            ["skills.jurisdiction_id", "skills.code"],
            name=op.f("fk_crew_skills_jurisdiction_id_skill_code_skills"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_crew_skills_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "jurisdiction_id", "crew_id", "skill_code", name=op.f("pk_crew_skills")
        ),
    )
    op.create_table(
        "crew_territories",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("crew_id", sa.Integer(), nullable=False),
        sa.Column("ward_code", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "crew_id"],
            ["crews.jurisdiction_id", "crews.id"],
            name=op.f("fk_crew_territories_jurisdiction_id_crew_id_crews"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_crew_territories_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "jurisdiction_id", "crew_id", "ward_code", name=op.f("pk_crew_territories")
        ),
    )
    op.create_index(
        "ix_crew_territories_ward",
        "crew_territories",
        ["jurisdiction_id", "ward_code"],
        unique=False,
    )
    op.create_geospatial_table(
        "road_edges",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.BigInteger(), nullable=False),
        sa.Column("target", sa.BigInteger(), nullable=False),
        sa.Column("cost_s", sa.Float(), nullable=False),
        sa.Column("reverse_cost_s", sa.Float(), nullable=False),
        sa.Column("length_m", sa.Float(), nullable=False),
        sa.Column("highway", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("osm_way_id", sa.BigInteger(), nullable=True),
        sa.Column("routable", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="LINESTRING",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.CheckConstraint("length_m >= 0", name=op.f("ck_road_edges_length_nonneg")),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "source"],
            ["road_vertices.jurisdiction_id", "road_vertices.id"],
            name=op.f("fk_road_edges_jurisdiction_id_source_road_vertices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "target"],
            ["road_vertices.jurisdiction_id", "road_vertices.id"],
            name=op.f("fk_road_edges_jurisdiction_id_target_road_vertices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_road_edges_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_road_edges")),
    )
    op.create_index(
        "ix_road_edges_geog",
        "road_edges",
        ["jurisdiction_id", sa.literal_column("(geom::geography)")],
        unique=False,
        postgresql_using="gist",
        postgresql_where=sa.text("routable"),
    )
    op.create_table(
        "category_service_times",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("category_code", sa.String(length=64), nullable=False),
        sa.Column("service_s", sa.Integer(), nullable=False),
        sa.CheckConstraint("service_s >= 0", name=op.f("ck_category_service_times_service_nonneg")),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "category_code"],
            ["service_categories.jurisdiction_id", "service_categories.code"],
            name=op.f("fk_category_service_times_jurisdiction_id_category_code_service_categories"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_category_service_times_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "jurisdiction_id", "category_code", name=op.f("pk_category_service_times")
        ),
    )
    op.create_table(
        "skill_rules",
        sa.Column("jurisdiction_id", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("category_code", sa.String(length=64), nullable=True),
        sa.Column("asset_type", sa.String(length=64), nullable=True),
        sa.Column("skill_code", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "category_code IS NOT NULL OR asset_type IS NOT NULL",
            name=op.f("ck_skill_rules_matches_something"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "asset_type"],
            ["asset_types.jurisdiction_id", "asset_types.code"],
            name=op.f("fk_skill_rules_jurisdiction_id_asset_type_asset_types"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "category_code"],
            ["service_categories.jurisdiction_id", "service_categories.code"],
            name=op.f("fk_skill_rules_jurisdiction_id_category_code_service_categories"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id", "skill_code"],
            ["skills.jurisdiction_id", "skills.code"],
            name=op.f("fk_skill_rules_jurisdiction_id_skill_code_skills"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_skill_rules_jurisdiction_id_jurisdictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", "id", name=op.f("pk_skill_rules")),
        sa.UniqueConstraint(
            "jurisdiction_id",
            "category_code",
            "asset_type",
            "skill_code",
            name=op.f("uq_skill_rules_jurisdiction_id_category_code_asset_type_skill_code"),
            postgresql_nulls_not_distinct=True,
        ),
    )


def downgrade() -> None:
    op.drop_table("skill_rules")
    op.drop_table("category_service_times")
    op.drop_index(
        "ix_road_edges_geog",
        table_name="road_edges",
        postgresql_using="gist",
        postgresql_where=sa.text("routable"),
    )
    op.drop_geospatial_table("road_edges")
    op.drop_index("ix_crew_territories_ward", table_name="crew_territories")
    op.drop_table("crew_territories")
    op.drop_table("crew_skills")
    op.drop_index("ix_crew_members_crew", table_name="crew_members")
    op.drop_table("crew_members")
    op.drop_table("crew_breaks")
    op.drop_table("skills")
    op.drop_geospatial_index(
        "ix_road_vertices_geom",
        table_name="road_vertices",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("road_vertices")
    op.drop_table("road_networks")
    op.drop_geospatial_table("crews")
