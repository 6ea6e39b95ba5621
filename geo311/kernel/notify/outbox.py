"""The outbox: notices owed in the caller's transaction, and jobs that wake the worker.

``owe`` inserts the notices and defers their delivery jobs on the caller's own database
connection, so both commit with the change they announce, or neither does. A notice whose
idempotency key exists already is not owed twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import psycopg
from procrastinate.jobs import Job
from procrastinate.manager import JobManager
from procrastinate.sync_psycopg_connector import SyncPsycopgConnector
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

QUEUE: Final = "notices"
DELIVER_TASK: Final = "geo311.kernel.notify.deliver"
SWEEP_TASK: Final = "geo311.kernel.notify.sweep"
CHUNK: Final = 50
"""Notices per delivery job: one SMTP connection carries a chunk; chunks run in parallel."""

_INSERT = text(
    """
    INSERT INTO notices (jurisdiction_id, idempotency_key, kind, channel, recipient, language,
                         incident_id, requester_id, webhook_endpoint_id, context)
    SELECT * FROM unnest(
        CAST(:jid AS smallint[]), CAST(:key AS text[]), CAST(:kind AS varchar[]),
        CAST(:channel AS varchar[]), CAST(:recipient AS text[]), CAST(:language AS varchar[]),
        CAST(:incident AS bigint[]), CAST(:requester AS bigint[]), CAST(:endpoint AS bigint[]),
        CAST(CAST(:context AS text[]) AS jsonb[]))
    ON CONFLICT (jurisdiction_id, idempotency_key) DO NOTHING
    RETURNING jurisdiction_id, id
    """
)

# Only ever used with an explicit connection: it never opens a pool of its own.
_JOBS: Final = JobManager(SyncPsycopgConnector())


@dataclass(frozen=True)
class NoticeDraft:
    """A notice to owe: who gets what, about which event, through which channel."""

    jurisdiction_id: int
    idempotency_key: str
    kind: str
    channel: str
    recipient: str
    language: str = "en"
    incident_id: int | None = None
    requester_id: int | None = None
    webhook_endpoint_id: int | None = None
    context: Mapping[str, Any] = field(default_factory=dict)


def owe(session: Session, drafts: Sequence[NoticeDraft]) -> list[int]:
    """Return the ids of the notices newly owed; flushes, and defers their delivery jobs in
    the session's transaction (drafts whose key is owed already are skipped)."""
    if not drafts:
        return []
    session.flush()
    # One statement however many notices: the columns travel as arrays and are unnested
    # by the server (10,000 rows in one round trip, not 10 batches of parameters).
    inserted = session.execute(
        _INSERT,
        {
            "jid": [d.jurisdiction_id for d in drafts],
            "key": [d.idempotency_key for d in drafts],
            "kind": [d.kind for d in drafts],
            "channel": [d.channel for d in drafts],
            "recipient": [d.recipient for d in drafts],
            "language": [d.language for d in drafts],
            "incident": [d.incident_id for d in drafts],
            "requester": [d.requester_id for d in drafts],
            "endpoint": [d.webhook_endpoint_id for d in drafts],
            "context": [json.dumps(dict(d.context), default=str) for d in drafts],
        },
    ).all()
    by_jurisdiction: dict[int, list[int]] = {}
    for jurisdiction_id, notice_id in inserted:
        by_jurisdiction.setdefault(jurisdiction_id, []).append(notice_id)
    for jurisdiction_id, ids in by_jurisdiction.items():
        defer(session.connection(), jurisdiction_id=jurisdiction_id, notice_ids=ids)
    return [notice_id for _, notice_id in inserted]


def defer(
    connection: Connection | psycopg.Connection[Any],
    *,
    jurisdiction_id: int,
    notice_ids: Iterable[int],
    schedule_at: datetime | None = None,
) -> int:
    """Return how many delivery jobs were deferred for ``notice_ids``, on ``connection``'s
    transaction (nothing is deferred unless it commits); an SQLAlchemy connection or the
    driver's own."""
    ids = sorted(set(notice_ids))
    chunks: list[list[Any]] = [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]
    jobs = [
        Job(
            queue=QUEUE,
            lock=None,
            queueing_lock=None,
            task_name=DELIVER_TASK,
            task_kwargs={"jurisdiction_id": jurisdiction_id, "notice_ids": chunk},
            scheduled_at=schedule_at,
        )
        for chunk in chunks
    ]
    if jobs:
        driver = (
            connection
            if isinstance(connection, psycopg.Connection)
            else connection.connection.driver_connection
        )
        _JOBS.batch_defer_jobs(jobs, connection=driver)
    return len(jobs)
