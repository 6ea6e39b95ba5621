"""Live events for open pages: what changed, pushed to browsers within a second of COMMIT.

A change announces itself in its own transaction (``announce``); the announcements go out as
one ``pg_notify`` just before COMMIT, so PostgreSQL delivers them when (and only if) the change
commits, to every app process that listens. Each process keeps one listening connection
(``LiveHub``) and fans the events out to its open Server-Sent-Event streams.

Events carry ids and states only, never residents' text: a page that hears of a change fetches
what it shows through the JSON API, whose role rules then apply as they always do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import event, text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "geo311_live"
_PENDING = "geo311_live_pending"
# pg_notify refuses payloads of 8,000 bytes or more; one transaction's events are sent in
# chunks well under that.
_CHUNK_BYTES = 6000


@dataclass(frozen=True)
class LiveEvent:
    """One change: its kind (``work_order``, ``incident``, ``plan``…), for which jurisdiction,
    and its ids and states as JSON."""

    jurisdiction_id: int
    kind: str
    data: dict[str, Any]


def announce(session: Session, *, jurisdiction_id: int, kind: str, **data: Any) -> None:
    """Queue an event on ``session``'s transaction; it is sent just before COMMIT and dropped
    on ROLLBACK."""
    pending: list[dict[str, Any]] = session.info.setdefault(_PENDING, [])
    pending.append({"j": jurisdiction_id, "k": kind, "d": data})


def _chunks(pending: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    batch: list[str] = []
    size = 0
    for item in pending:
        one = json.dumps(item, separators=(",", ":"), default=str)
        if batch and size + len(one) > _CHUNK_BYTES:
            out.append("[" + ",".join(batch) + "]")
            batch, size = [], 0
        batch.append(one)
        size += len(one) + 1
    if batch:
        out.append("[" + ",".join(batch) + "]")
    return out


@event.listens_for(Session, "before_commit")
def _send_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    # One round trip for the whole transaction, whatever it changed.
    session.execute(
        text("SELECT pg_notify(:channel, payload) FROM unnest(CAST(:payloads AS text[])) payload"),
        {"channel": CHANNEL, "payloads": _chunks(pending)},
    )


@event.listens_for(Session, "after_transaction_end")
def _drop_pending(session: Session, transaction: Any) -> None:
    # The outermost transaction ended without sending (a rollback, or a failed commit). A
    # rolled-back savepoint keeps its events: a needless event only makes a page reload.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def parse(payload: str) -> list[LiveEvent]:
    """Return the events of one notification (an empty list for anything malformed)."""
    try:
        items = json.loads(payload)
        return [LiveEvent(int(i["j"]), str(i["k"]), dict(i["d"])) for i in items]
    except (ValueError, TypeError, KeyError):
        log.warning("live: ignored a malformed notification")
        return []


@dataclass(eq=False)
class _Subscriber:
    jurisdiction_id: int
    queue: asyncio.Queue[LiveEvent | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=256)
    )


class LiveHub:
    """One listening connection per app process, shared by every open stream.

    Started by the first subscriber (an app nobody watches opens no connection), reconnects
    with a growing pause when the database goes away, and ends every stream when it cannot
    keep up (a stream's client then reconnects and reloads: nothing is silently missed)."""

    def __init__(self, conninfo: str, *, channel: str = CHANNEL) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._subscribers: set[_Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    @contextlib.asynccontextmanager
    async def subscription(
        self, jurisdiction_id: int, *, ready_timeout_s: float = 10.0
    ) -> AsyncIterator[asyncio.Queue[LiveEvent | None]]:
        """Yield a queue of this jurisdiction's events, once the hub is listening (so a change
        committed after this returns is never missed). ``None`` in the queue: the stream must
        end and its client reload."""
        if self._task is None or self._task.done():
            self._listening = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="geo311-live")
        subscriber = _Subscriber(jurisdiction_id)
        self._subscribers.add(subscriber)
        try:
            await asyncio.wait_for(self._listening.wait(), timeout=ready_timeout_s)
            yield subscriber.queue
        finally:
            self._subscribers.discard(subscriber)

    async def close(self) -> None:
        """Stop listening and end every open stream."""
        for subscriber in list(self._subscribers):
            _offer(subscriber, None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        pause_s = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {self._channel}")
                    self._listening.set()
                    pause_s = 0.5
                    async for note in conn.notifies():
                        self.deliver(parse(note.payload))
            except asyncio.CancelledError:
                raise
            except Exception:  # the database went away: end the streams, then try again
                log.warning("live: listening connection lost; retrying in %.1f s", pause_s)
            self._listening.clear()
            for subscriber in list(self._subscribers):
                _offer(subscriber, None)
            await asyncio.sleep(pause_s)
            pause_s = min(pause_s * 2, 10.0)

    def deliver(self, events: list[LiveEvent]) -> None:
        """Hand ``events`` to the subscribers of their jurisdiction."""
        for item in events:
            for subscriber in list(self._subscribers):
                if subscriber.jurisdiction_id == item.jurisdiction_id:
                    _offer(subscriber, item)


def _offer(subscriber: _Subscriber, item: LiveEvent | None) -> None:
    try:
        subscriber.queue.put_nowait(item)
    except asyncio.QueueFull:
        # Too slow a client: drop what is queued and tell it to reload instead.
        while not subscriber.queue.empty():
            subscriber.queue.get_nowait()
        subscriber.queue.put_nowait(None)


def sse(item: LiveEvent) -> str:
    """Return ``item`` as one Server-Sent Event."""
    body = json.dumps(item.data, separators=(",", ":"), default=str)
    return f"event: {item.kind}\ndata: {body}\n\n"
