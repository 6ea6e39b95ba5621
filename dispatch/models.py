"""Crews, skills, the assignment rules (as rows, not code) and the road network for pgRouting."""

from __future__ import annotations

from datetime import date, datetime, time

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    Time,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo311.kernel.database import Base


class Skill(Base):
    """Something a crew can do that some work needs: electrical, arborist, paving, water …"""

    __tablename__ = "skills"

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)


class Crew(Base):
    """A field crew: a depot (yard) it leaves from and returns to, a daily shift, workdays.

    ``workdays`` are ISO weekdays (1 Monday … 7 Sunday); shift times are wall-clock times in the
    jurisdiction's time zone. ``capacity`` (None: unlimited) counts the units a vehicle carries
    when that matters (e.g. bulky-item pick-ups). ``version`` grows with every change, so a
    stale edit is refused rather than lost.
    """

    __tablename__ = "crews"
    __table_args__ = (
        UniqueConstraint("jurisdiction_id", "code"),
        CheckConstraint("shift_end > shift_start", name="shift_ordered"),
        CheckConstraint("capacity IS NULL OR capacity >= 0", name="capacity_nonneg"),
        CheckConstraint("workdays <@ ARRAY[1,2,3,4,5,6,7]::smallint[]", name="workdays_iso"),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Text)
    depot_name: Mapped[str] = mapped_column(Text, server_default="")
    depot: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    shift_start: Mapped[time] = mapped_column(Time)
    shift_end: Mapped[time] = mapped_column(Time)
    workdays: Mapped[list[int]] = mapped_column(
        ARRAY(SmallInteger), server_default=text("'{1,2,3,4,5}'::smallint[]")
    )
    capacity: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    version: Mapped[int] = mapped_column(Integer, server_default="1")


class CrewMember(Base):
    """A person on a crew's roster (a name and a role on the crew).

    Who signs in as the crew is not kept here but on the staff user (``staff_users.crew_id``,
    see ``geo311.kernel.auth``): one place, so a user is on exactly one crew.
    """

    __tablename__ = "crew_members"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "crew_id"],
            ["crews.jurisdiction_id", "crews.id"],
            ondelete="CASCADE",
        ),
        Index("ix_crew_members_crew", "jurisdiction_id", "crew_id"),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    crew_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text, server_default="")


class CrewSkill(Base):
    """One skill a crew holds."""

    __tablename__ = "crew_skills"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "crew_id"],
            ["crews.jurisdiction_id", "crews.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["jurisdiction_id", "skill_code"], ["skills.jurisdiction_id", "skills.code"]
        ),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    crew_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    skill_code: Mapped[str] = mapped_column(String(64), primary_key=True)


class CrewBreak(Base):
    """A break a crew takes every shift: ``duration_s`` starting between two wall-clock times."""

    __tablename__ = "crew_breaks"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "crew_id"],
            ["crews.jurisdiction_id", "crews.id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("latest_start >= earliest_start", name="window_ordered"),
        CheckConstraint("duration_s > 0", name="duration_positive"),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    crew_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    earliest_start: Mapped[time] = mapped_column(Time)
    latest_start: Mapped[time] = mapped_column(Time)
    duration_s: Mapped[int] = mapped_column(Integer)


class CrewTerritory(Base):
    """A ward a crew covers; a ward may be shared by several crews.

    Keyed by the ward's code, not its row: a new ward map version with the same codes keeps
    every territory as it was.
    """

    __tablename__ = "crew_territories"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "crew_id"],
            ["crews.jurisdiction_id", "crews.id"],
            ondelete="CASCADE",
        ),
        Index("ix_crew_territories_ward", "jurisdiction_id", "ward_code"),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    crew_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ward_code: Mapped[str] = mapped_column(String(64), primary_key=True)


class SkillRule(Base):
    """An assignment rule as data: work of this category and/or asset type needs this skill.

    Either field may be empty (a wildcard) but not both. For a job, the matching rules of the
    most specific kind win: category and asset type, then category alone, then asset type
    alone; the job needs every skill those rules name (see ``dispatch.rules``).
    """

    __tablename__ = "skill_rules"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "skill_code"], ["skills.jurisdiction_id", "skills.code"]
        ),
        ForeignKeyConstraint(
            ["jurisdiction_id", "category_code"],
            ["service_categories.jurisdiction_id", "service_categories.code"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["jurisdiction_id", "asset_type"],
            ["asset_types.jurisdiction_id", "asset_types.code"],
            ondelete="CASCADE",
        ),
        CheckConstraint(
            "category_code IS NOT NULL OR asset_type IS NOT NULL", name="matches_something"
        ),
        UniqueConstraint(
            "jurisdiction_id",
            "category_code",
            "asset_type",
            "skill_code",
            postgresql_nulls_not_distinct=True,
        ),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    category_code: Mapped[str | None] = mapped_column(String(64))
    asset_type: Mapped[str | None] = mapped_column(String(64))
    skill_code: Mapped[str] = mapped_column(String(64))


class CategoryServiceTime(Base):
    """How long a job of this category keeps a crew on site, and the hours it may be done in
    (``access_start``–``access_end``, wall-clock, e.g. a school street only while school is
    out; None: any time in the crew's shift), for planning."""

    __tablename__ = "category_service_times"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "category_code"],
            ["service_categories.jurisdiction_id", "service_categories.code"],
            ondelete="CASCADE",
        ),
        CheckConstraint("service_s >= 0", name="service_nonneg"),
        CheckConstraint("demand >= 0", name="demand_nonneg"),
        CheckConstraint(
            "(access_start IS NULL) = (access_end IS NULL) AND access_end > access_start",
            name="access_whole_and_ordered",
        ),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    category_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_s: Mapped[int] = mapped_column(Integer)
    # Units of a crew vehicle's capacity one job takes (e.g. a bulky-item pick-up: 1); 0: none.
    demand: Mapped[int] = mapped_column(Integer, server_default="0")
    access_start: Mapped[time | None] = mapped_column(Time)
    access_end: Mapped[time | None] = mapped_column(Time)


class RoadNetwork(Base):
    """The routable road network of a jurisdiction: where it came from and what it holds."""

    __tablename__ = "road_networks"

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[str] = mapped_column(Text)
    vertices: Mapped[int] = mapped_column(Integer)
    edges: Mapped[int] = mapped_column(Integer)
    routable_edges: Mapped[int] = mapped_column(Integer)
    max_speed_kmh: Mapped[float] = mapped_column(Float)
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RoadVertex(Base):
    """A junction or dead end of the road network."""

    __tablename__ = "road_vertices"
    __table_args__ = (Index("ix_road_vertices_geom", "geom", postgresql_using="gist"),)

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    osm_node_id: Mapped[int | None] = mapped_column(BigInteger)
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))


class RoadEdge(Base):
    """A road segment between two vertices, with pgRouting's costs in seconds of driving.

    ``cost_s`` runs source → target and ``reverse_cost_s`` target → source; a negative cost
    means that direction is closed (one-way street). ``routable`` marks the edges of the
    largest strongly connected part of the network: only those take snapped job locations, so
    every job can be reached from every other.
    """

    __tablename__ = "road_edges"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "source"],
            ["road_vertices.jurisdiction_id", "road_vertices.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["jurisdiction_id", "target"],
            ["road_vertices.jurisdiction_id", "road_vertices.id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("length_m >= 0", name="length_nonneg"),
        # Nearest routable edge to a point, in metres (geography KNN), per jurisdiction.
        Index(
            "ix_road_edges_geog",
            "jurisdiction_id",
            text("(geom::geography)"),
            postgresql_using="gist",
            postgresql_where=text("routable"),
        ),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source: Mapped[int] = mapped_column(BigInteger)
    target: Mapped[int] = mapped_column(BigInteger)
    cost_s: Mapped[float] = mapped_column(Float)
    reverse_cost_s: Mapped[float] = mapped_column(Float)
    length_m: Mapped[float] = mapped_column(Float)
    highway: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(Text)
    osm_way_id: Mapped[int | None] = mapped_column(BigInteger)
    routable: Mapped[bool] = mapped_column(Boolean, server_default="false")
    geom: Mapped[WKBElement] = mapped_column(Geometry("LINESTRING", srid=4326, spatial_index=False))


# --- the dispatcher's queue, pins and appointments, and the stored day plans ----------------


class QueuedWorkOrder(Base):
    """A work order waiting for a dispatcher: no crew was eligible, or a dispatcher sent it back.

    ``reason`` is the rule step that left no crew (``no_skill``, ``no_territory``, ``no_ward``,
    ``not_working``) or ``dispatcher``; ``detail`` is the sentence a dispatcher acts on. The
    daily plan leaves queued work orders alone until a crew is given to them.
    """

    __tablename__ = "dispatch_queue"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "work_order_id"],
            ["work_orders.jurisdiction_id", "work_orders.id"],
            ondelete="CASCADE",
        ),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    work_order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    skills: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default="{}")
    actor: Mapped[str] = mapped_column(Text)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WorkOrderTerms(Base):
    """What a dispatcher fixed about a work order for planning: the crew it must go to (a
    pin, set by moving it) and an appointment window its work must start in."""

    __tablename__ = "work_order_terms"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "work_order_id"],
            ["work_orders.jurisdiction_id", "work_orders.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["jurisdiction_id", "pinned_crew_id"],
            ["crews.jurisdiction_id", "crews.id"],
            ondelete="CASCADE",
        ),
        CheckConstraint(
            "(window_start IS NULL) = (window_end IS NULL) AND window_end >= window_start",
            name="window_whole_and_ordered",
        ),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    work_order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    pinned_crew_id: Mapped[int | None] = mapped_column(Integer)
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class DayPlan(Base):
    """The plan of one day: every crew's route, and the work left for another day.

    ``version`` grows with every change (a plan, a re-plan, a move, a lock), so a dispatcher
    acting on a plan they no longer see gets a conflict rather than undoing someone's move.
    """

    __tablename__ = "day_plans"
    __table_args__ = (UniqueConstraint("jurisdiction_id", "day"),)

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    engine: Mapped[str] = mapped_column(String(16))
    matrix_provider: Mapped[str] = mapped_column(String(32))
    matrix_s: Mapped[float] = mapped_column(Float)
    solve_s: Mapped[float] = mapped_column(Float)
    planned_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PlanRoute(Base):
    """One crew's route on a day plan: when it leaves and is back, its breaks, its line."""

    __tablename__ = "plan_routes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "plan_id"],
            ["day_plans.jurisdiction_id", "day_plans.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["jurisdiction_id", "crew_id"],
            ["crews.jurisdiction_id", "crews.id"],
            ondelete="CASCADE",
        ),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    plan_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    crew_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    depart: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    back: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    travel_s: Mapped[int] = mapped_column(Integer)
    distance_m: Mapped[int | None] = mapped_column(Integer)
    # [[start, end], …] ISO datetimes of the breaks, in order.
    breaks: Mapped[list[list[str]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    geom: Mapped[WKBElement | None] = mapped_column(
        Geometry("LINESTRING", srid=4326, spatial_index=False)
    )
    planned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PlanStop(Base):
    """A work order's place on a crew's route: its order, ETA, and whether it is locked.

    A work order is on a day's plan at most once. A locked stop keeps its crew and (within the
    configured slack) its time when the crew's day is planned again.
    """

    __tablename__ = "plan_stops"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "plan_id", "crew_id"],
            ["plan_routes.jurisdiction_id", "plan_routes.plan_id", "plan_routes.crew_id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["jurisdiction_id", "work_order_id"],
            ["work_orders.jurisdiction_id", "work_orders.id"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("jurisdiction_id", "plan_id", "crew_id", "seq"),
        Index("ix_plan_stops_work_order", "jurisdiction_id", "work_order_id"),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    plan_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    work_order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    crew_id: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(SmallInteger)
    arrival: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    start_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locked: Mapped[bool] = mapped_column(Boolean, server_default="false")


class PlanLeftOut(Base):
    """A work order the day's plan could not place, and why (listed, never silently dropped)."""

    __tablename__ = "plan_left_out"
    __table_args__ = (
        ForeignKeyConstraint(
            ["jurisdiction_id", "plan_id"],
            ["day_plans.jurisdiction_id", "day_plans.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["jurisdiction_id", "work_order_id"],
            ["work_orders.jurisdiction_id", "work_orders.id"],
            ondelete="CASCADE",
        ),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    plan_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    work_order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
