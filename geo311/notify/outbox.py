"""The outbox: notices owed in the caller's transaction, and jobs that wake the worker.

``owe`` inserts the notices and defers their delivery jobs on the caller's own database
connection, so both commit with the change they announce, or neither does. A notice whose
idempotency key exists already is not owed twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from procrastinate.jobs import Job
from procrastinate.manager import JobManager
from procrastinate.sync_psycopg_connector import SyncPsycopgConnector
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from geo311.notify.models import Notice

QUEUE: Final = "notices"
DELIVER_TASK: Final = "geo311.notify.deliver"
SWEEP_TASK: Final = "geo311.notify.sweep"
CHUNK: Final = 50
"""Notices per delivery job: one SMTP connection carries a chunk; chunks run in parallel."""

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
    rows = [
        {
            "jurisdiction_id": d.jurisdiction_id,
            "idempotency_key": d.idempotency_key,
            "kind": d.kind,
            "channel": d.channel,
            "recipient": d.recipient,
            "language": d.language,
            "incident_id": d.incident_id,
            "requester_id": d.requester_id,
            "webhook_endpoint_id": d.webhook_endpoint_id,
            "context": dict(d.context),
        }
        for d in drafts
    ]
    session.flush()
    inserted = session.execute(
        pg_insert(Notice)
        .on_conflict_do_nothing(index_elements=["jurisdiction_id", "idempotency_key"])
        .returning(Notice.jurisdiction_id, Notice.id),
        rows,
    ).all()
    by_jurisdiction: dict[int, list[int]] = {}
    for jurisdiction_id, notice_id in inserted:
        by_jurisdiction.setdefault(jurisdiction_id, []).append(notice_id)
    for jurisdiction_id, ids in by_jurisdiction.items():
        defer(session.connection(), jurisdiction_id=jurisdiction_id, notice_ids=ids)
    return [notice_id for _, notice_id in inserted]


def defer(
    connection: Connection,
    *,
    jurisdiction_id: int,
    notice_ids: Iterable[int],
    schedule_at: datetime | None = None,
) -> int:
    """Return how many delivery jobs were deferred for ``notice_ids``, on ``connection``'s
    transaction (nothing is deferred unless it commits)."""
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
        _JOBS.batch_defer_jobs(jobs, connection=connection.connection.driver_connection)
    return len(jobs)
