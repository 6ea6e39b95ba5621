"""Indexes the analytics read model needs on other packages' tables.

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

from sqlalchemy import Index, text

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
