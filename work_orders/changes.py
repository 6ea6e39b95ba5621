"""Changes the planner's summary tables have not taken in yet: one row per change, appended in
the transaction that makes it, consumed by the summaries' refresh (maps.analytics.rollup).

Why a list of changes and not a trigger: the tenant tables are distributed on Citus, where
row-level triggers are not an option, and the writes that matter already pass through a few
service functions (the audit trail records every change to an incident, work order or report).
Rows are only ever inserted by writers and deleted, by id, by the refresh that took them in, so
writers never wait on each other or on the refresh.

A change names an entity (``incident``, ``work_order`` or ``report``: the local days of the
incident's opening and of its reports are stale) or a period (``period``: every local day that
overlaps [start_at, end_at) is stale, e.g. after a bulk import).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, String, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from geo311.kernel.database import Base

# The entities whose changes move the planner's figures; others (crews, day plans) do not.
TRACKED = frozenset({"incident", "work_order", "report"})


class AnalyticsChange(Base):
    """A change the planner's summary tables have yet to take in."""

    __tablename__ = "analytics_changes"

    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[int | None] = mapped_column(BigInteger)
    start_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def note(session: Session, *, jurisdiction_id: int, entity: str, entity_ids: Iterable[int]) -> None:
    """Record that these entities changed (flushed with the change; nothing for an untracked
    entity). Added to the session, not executed, so the caller's flush order stays its own."""
    if entity not in TRACKED:
        return
    session.add_all(
        AnalyticsChange(jurisdiction_id=jurisdiction_id, entity=entity, entity_id=entity_id)
        for entity_id in entity_ids
    )


def note_many(
    session: Session, *, jurisdiction_id: int, entities: Mapping[str, Collection[int]]
) -> None:
    """Record that these entities changed (entity kind → ids), in one statement however many,
    executed now (a bulk writer's, after its flush); untracked kinds are left out."""
    pairs = [(kind, i) for kind, ids in entities.items() if kind in TRACKED for i in sorted(ids)]
    if not pairs:
        return
    session.execute(
        text(
            "INSERT INTO analytics_changes (jurisdiction_id, entity, entity_id) "
            "SELECT :jid, u.entity, u.entity_id "
            "FROM unnest(CAST(:entities AS text[]), CAST(:ids AS bigint[])) AS u(entity, entity_id)"
        ),
        {"jid": jurisdiction_id, "entities": [k for k, _ in pairs], "ids": [i for _, i in pairs]},
    )


def note_period(
    session: Session, *, jurisdiction_id: int, start_at: datetime, end_at: datetime
) -> None:
    """Record that anything in [start_at, end_at) may have changed (a bulk write's span)."""
    session.add(
        AnalyticsChange(
            jurisdiction_id=jurisdiction_id, entity="period", start_at=start_at, end_at=end_at
        )
    )


def note_bulk(
    conn: psycopg.Connection[Any],
    *,
    jurisdiction_id: int,
    first_at: datetime | None,
    last_at: datetime | None,
    incident_ids: Sequence[int],
) -> None:
    """Record, on a bulk writer's own connection (e.g. the importer's), that its rows span
    [first_at, last_at] and that it changed these incidents (opened before the span, say)."""
    if first_at is not None and last_at is not None:
        conn.execute(
            "INSERT INTO analytics_changes (jurisdiction_id, entity, start_at, end_at) "
            "VALUES (%s, 'period', %s, %s + interval '1 microsecond')",
            (jurisdiction_id, first_at, last_at),
        )
    if incident_ids:
        conn.execute(
            "INSERT INTO analytics_changes (jurisdiction_id, entity, entity_id) "
            "SELECT %s, 'incident', unnest(CAST(%s AS bigint[]))",
            (jurisdiction_id, list(incident_ids)),
        )
