"""The planner's summary tables (maintained by maps.analytics.rollup), and the indexes the
analytics read model needs on other packages' tables.

They are declared here, with the queries that need them, rather than in the owners' models:
the owners' own queries do not use them. ``geo311.schema`` imports this module so the schema
test sees them; migration ``a1ytics_indexes`` creates them.

- ``incidents (jurisdiction_id, opened_at)`` and ``work_orders (jurisdiction_id,
  opened_at)``: a month out of years of history is a range scan, not a full scan (reports
  have ``ix_reports_reported_at`` already, from the Open311 package).
- the two partial indexes on ``audit_events`` hold only the reopen events and the residents'
  "fixed?" answers, so finding them reads a few pages, not the whole trail.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

import work_orders.changes  # noqa: F401  (its table is in the schema wherever this module is)
from geo311.kernel.database import Base
from work_orders.models import AuditEvent, Incident, WorkOrder

INCIDENTS_BY_TIME = Index(
    "ix_incidents_opened_at", Incident.__table__.c.jurisdiction_id, Incident.__table__.c.opened_at
)
WORK_ORDERS_BY_TIME = Index(
    "ix_work_orders_opened_at",
    WorkOrder.__table__.c.jurisdiction_id,
    WorkOrder.__table__.c.opened_at,
)
REOPEN_EVENTS = Index(
    "ix_audit_events_reopened",
    AuditEvent.__table__.c.jurisdiction_id,
    AuditEvent.__table__.c.at,
    AuditEvent.__table__.c.entity_id,
    postgresql_where=text("entity = 'incident' AND to_state = 'reopened'"),
)
ANSWER_EVENTS = Index(
    "ix_audit_events_answers",
    AuditEvent.__table__.c.jurisdiction_id,
    AuditEvent.__table__.c.at,
    AuditEvent.__table__.c.entity_id,
    postgresql_where=text("entity = 'incident' AND action = 'resident_answer'"),
)


class _Sums:
    """The settled counts a day row holds and a month row sums (the same columns in both)."""

    reports: Mapped[int] = mapped_column(Integer, server_default="0")
    duplicates: Mapped[int] = mapped_column(Integer, server_default="0")
    incidents: Mapped[int] = mapped_column(Integer, server_default="0")
    closed: Mapped[int] = mapped_column(Integer, server_default="0")
    decided: Mapped[int] = mapped_column(Integer, server_default="0")
    breached: Mapped[int] = mapped_column(Integer, server_default="0")
    on_time: Mapped[int] = mapped_column(Integer, server_default="0")
    reopened: Mapped[int] = mapped_column(Integer, server_default="0")
    fixed_yes: Mapped[int] = mapped_column(Integer, server_default="0")
    fixed_no: Mapped[int] = mapped_column(Integer, server_default="0")


class DayCounts(_Sums, Base):
    """What the ward table adds up, per local day, ward and category, as settled: reports by
    the day received, incidents by the day opened; the SLA counts of work whose clock has
    stopped (resolved or on hold). Work still running and the backlog are counted live."""

    __tablename__ = "analytics_day_counts"

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    # 0: no ward (a case outside every ward); ids start at 1.
    ward_key: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_code: Mapped[str] = mapped_column(String(64), primary_key=True)


class Case(Base):
    """One incident of a built day, narrow: what the figures that are not sums need. The exact
    median and 90th percentile of time to close sort these rows (only the ones near each
    quantile, see maps.analytics.rollup), the backlog at an instant is the rows whose [opened,
    closed] span holds it, the breach of running work compares ``running_due_at`` with now."""

    __tablename__ = "analytics_cases"
    __table_args__ = (
        # Closed cases only, both covering. By day: the time-to-close buckets of the days
        # read one by one (a period's ragged ends). By bucket: the few values of the buckets
        # that hold a quantile, per ward or for the city, without reading the others.
        Index(
            "ix_analytics_cases_buckets",
            "jurisdiction_id",
            "day",
            "ward_key",
            "category_code",
            "close_bucket",
            postgresql_where=text("close_h IS NOT NULL"),
        ),
        Index(
            "ix_analytics_cases_bucket_values",
            "jurisdiction_id",
            "close_bucket",
            "ward_key",
            "day",
            postgresql_include=["category_code", "close_h"],
            postgresql_where=text("close_h IS NOT NULL"),
        ),
        Index(
            "ix_analytics_cases_running",
            "jurisdiction_id",
            "day",
            postgresql_include=["ward_key", "category_code", "running_due_at"],
            postgresql_where=text("running_due_at IS NOT NULL"),
        ),
        # The backlog at an instant: the open cases of a period from this index alone, and
        # the closed ones whose span holds the instant.
        Index(
            "ix_analytics_cases_open",
            "jurisdiction_id",
            "day",
            postgresql_include=["ward_key", "category_code", "opened_at"],
            postgresql_where=text("closed_at IS NULL"),
        ),
        Index(
            "ix_analytics_cases_closed_span",
            text("tstzrange(opened_at, closed_at, '[]')"),
            postgresql_using="gist",
            postgresql_where=text("closed_at IS NOT NULL"),
        ),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    incident_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ward_key: Mapped[int] = mapped_column(Integer)
    category_code: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Hours from opened to closed (None: open), as the source query computes them.
    close_h: Mapped[float | None] = mapped_column(Float)
    # Which of maps.analytics.rollup.CLOSE_EDGES' buckets close_h falls in (None: open).
    close_bucket: Mapped[int | None] = mapped_column(SmallInteger)
    # The due time of its work order while the SLA clock runs (None: stopped, or no work).
    running_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BuiltDay(Base):
    """A local day the summary tables hold (until a change marks it stale again)."""

    __tablename__ = "analytics_rollup_days"

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MonthCounts(_Sums, Base):
    """The sums of ``analytics_day_counts`` over each local month (the days of it built so
    far): a period's whole months are read here, a row per ward and category instead of one
    per day. Recomputed whenever a day of the month is rebuilt."""

    __tablename__ = "analytics_month_counts"

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    # The month's first day.
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    ward_key: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_code: Mapped[str] = mapped_column(String(64), primary_key=True)


class MonthClose(Base):
    """How many of a local month's closed incidents (its built days') fall in each
    time-to-close bucket, per ward and category: where a quantile lies, for a category
    filter. Recomputed with the month."""

    __tablename__ = "analytics_month_close"

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    # Category first: a category filter reads its own rows only.
    category_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    ward_key: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class MonthCloseWard(Base):
    """``analytics_month_close`` summed over every category: what the table without a
    category filter reads (fifteen categories' rows would be as many as the cases)."""

    __tablename__ = "analytics_month_close_wards"

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    ward_key: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
