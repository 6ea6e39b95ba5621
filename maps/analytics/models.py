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
    String,
    func,
    literal_column,
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

# Cases still running at an instant: the backlog at a period's end (or now) is the set of
# incidents whose [opened, closed] span holds that instant, a few per cent of history.
INCIDENTS_ALIVE = Index(
    "ix_incidents_alive",
    func.tstzrange(
        Incident.__table__.c.opened_at, Incident.__table__.c.closed_at, literal_column("'[]'")
    ),
    postgresql_using="gist",
)
# Work whose SLA clock still runs (its breach depends on now): counted live, from this index.
WORK_ORDERS_RUNNING = Index(
    "ix_work_orders_running",
    WorkOrder.__table__.c.jurisdiction_id,
    WorkOrder.__table__.c.opened_at,
    postgresql_include=["incident_id", "due_at"],
    postgresql_where=text("resolved_at IS NULL AND paused_at IS NULL AND status <> 'cancelled'"),
)


class DayCounts(Base):
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


class Closure(Base):
    """One closed incident's time to close (hours), by the local day it was opened: the narrow
    rows the exact median and 90th percentile sort, instead of the incidents table."""

    __tablename__ = "analytics_closures"
    __table_args__ = (
        # Covering: a period's rows come from the index alone.
        Index(
            "ix_analytics_closures_day",
            "jurisdiction_id",
            "day",
            "ward_key",
            "category_code",
            "close_h",
        ),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    incident_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ward_key: Mapped[int] = mapped_column(Integer)
    category_code: Mapped[str] = mapped_column(String(64))
    close_h: Mapped[float] = mapped_column(Float)


class BuiltDay(Base):
    """A local day the summary tables hold (until a change marks it stale again)."""

    __tablename__ = "analytics_rollup_days"

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
