"""The notice worker: a procrastinate worker that runs delivery jobs and a periodic sweep.

Jobs live in PostgreSQL (procrastinate's tables, created by migration 0004) and are deferred
in the same transaction as the notices they deliver. A worker wakes on LISTEN/NOTIFY, runs
``notify.worker_concurrency`` jobs at once (each on an SMTP connection of its own, kept
open for the next job while the server keeps it) and, every
minute and when it starts, sweeps: it retries the jobs of workers that died (their heartbeat
stopped), reports hand-overs that never got an answer as ``uncertain``, and gives owed
notices that have had no job for too long a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import procrastinate
import procrastinate.exceptions
import psycopg
import psycopg_pool
import tenacity
from procrastinate import RetryStrategy

from geo311.kernel.database import Database
from geo311.kernel.media.store import LocalMediaStore
from geo311.kernel.notify import outbox
from geo311.kernel.notify.channels import WebhookSender, sms_provider
from geo311.kernel.notify.delivery import Deliverer
from geo311.kernel.notify.tokens import LinkSigner
from geo311.kernel.settings import Settings

log = logging.getLogger(__name__)

WORKER_NAME = "geo311-notices"

# Registers more tasks (periodic ones too, each on a queue of its own) on the worker's app: how
# the packages above the kernel have the worker run their jobs (geo311.flows.analytics).
TaskRegistration = Callable[[procrastinate.App], None]


def conninfo(db: Database) -> str:
    """Return the libpq connection string of a Database (for the queue's own pool)."""
    url = db.engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def _autocommit(connection: psycopg.AsyncConnection[Any]) -> None:
    # Every query procrastinate runs on its pool is one statement (a call of one of its
    # functions): in autocommit it is one round trip, not BEGIN, the call and COMMIT.
    await connection.set_autocommit(True)


async def _still_open(connection: psycopg.AsyncConnection[Any]) -> None:
    """Refuse a pooled connection the server closed, without a round trip.

    procrastinate's own check sends an empty query each time it takes a connection from its
    pool (three round trips per job): an idle connection has nothing to read unless the
    server hung up (a restart, a stop), so a readable socket, or one the driver knows is
    closed, is refused and the pool opens a fresh one (geo311.kernel.database does the same
    for the API's pool).
    """
    if connection.closed:
        raise psycopg.OperationalError("the connection is closed")
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise psycopg.OperationalError("the server closed the connection")


def _pool(**kwargs: Any) -> psycopg_pool.AsyncConnectionPool[Any]:
    # procrastinate passes its own check (a round trip per use); ours costs none.
    return psycopg_pool.AsyncConnectionPool(**{**kwargs, "check": _still_open})


def build_deliverer(db: Database, settings: Settings) -> Deliverer:
    """Return a Deliverer with the channels the settings describe."""
    return Deliverer(
        db,
        settings,
        LocalMediaStore(settings.media_root),
        signer=LinkSigner.from_settings(settings),
        sms=sms_provider(settings.notify.sms),
        webhooks=WebhookSender(
            timeout_s=settings.notify.webhook_timeout_s,
            allow_private=settings.notify.webhook_allow_private,
        ),
    )


def build_app(
    deliverer: Deliverer,
    *,
    dsn: str,
    concurrency: int,
    tasks: Sequence[TaskRegistration] = (),
) -> procrastinate.App:
    """Return a procrastinate app with the delivery and sweep tasks bound to ``deliverer``,
    and those ``tasks`` register."""
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=dsn,
            min_size=1,
            max_size=concurrency + 4,
            # With the database gone, a query waits this long for a connection before it
            # fails (psycopg_pool's default, 30 s, would hold the worker's restart back).
            timeout=5.0,
            configure=_autocommit,
            pool_factory=_pool,
        )
    )
    stalled_s = deliverer.notify.stalled_worker_s

    # Channel failures are handled per notice inside; this retries a job only when
    # something unexpected (the database going away) stops it half-way.
    @app.task(
        name=outbox.DELIVER_TASK,
        queue=outbox.QUEUE,
        retry=RetryStrategy(max_attempts=8, exponential_wait=2),
    )
    def deliver(jurisdiction_id: int, notice_ids: list[int]) -> dict[str, int]:
        return dict(
            deliverer.deliver(jurisdiction_id=jurisdiction_id, notice_ids=notice_ids).counts
        )

    @app.periodic(cron="* * * * *", periodic_id="sweep")
    @app.task(name=outbox.SWEEP_TASK, queue=outbox.QUEUE, queueing_lock=outbox.SWEEP_TASK)
    async def sweep(timestamp: int) -> dict[str, int]:  # noqa: ARG001 - procrastinate's
        return await sweep_now(app, deliverer, stalled_s=stalled_s)

    for register in tasks:
        register(app)
    return app


async def sweep_now(
    app: procrastinate.App, deliverer: Deliverer, *, stalled_s: float
) -> dict[str, int]:
    """Return what one sweep did (see the module docstring)."""
    stalled = list(
        await app.job_manager.get_stalled_jobs(
            queue=outbox.QUEUE, task_name=outbox.DELIVER_TASK, seconds_since_heartbeat=stalled_s
        )
    )
    for job in stalled:
        await app.job_manager.retry_job(job)
    result = await asyncio.to_thread(deliverer.sweep)
    result["stalled_jobs"] = len(stalled)
    if any(result.values()):
        log.info("notice sweep: %s", result)
    return result


@dataclass
class WorkerState:
    """What an in-process worker is doing, for /healthz (written on the worker's thread)."""

    status: str = "starting"
    since: float = field(default_factory=time.time)
    detail: str | None = None

    def running(self, *, since: float) -> None:
        self.status, self.since, self.detail = "running", since, None

    def lost(self, detail: str) -> None:
        self.status, self.since, self.detail = "reconnecting", time.time(), detail

    def gave_up(self, detail: str) -> None:
        self.status, self.since, self.detail = "stopped", time.time(), detail


def _reason(exc: BaseException) -> str:
    """Return the first line of the innermost cause (procrastinate wraps psycopg's errors
    in one that says only "Database error")."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return next(iter(str(exc).strip().splitlines()), type(exc).__name__)


class WorkerGaveUp(RuntimeError):
    """The worker could not get back to the database within ``notify.worker_give_up_s``."""


class _WorkerLost(Exception):
    """One run of the worker ended without being asked to: the database went away."""

    def __init__(self, message: str, *, was_running: bool) -> None:
        super().__init__(message)
        # Whether the run got as far as taking jobs: losing such a run starts a new outage
        # (a fresh back-off and give-up clock); failing to get there continues the last one.
        self.was_running = was_running


async def run_async(
    settings: Settings,
    db: Database,
    *,
    concurrency: int | None = None,
    wait: bool = True,
    name: str = WORKER_NAME,
    give_up_s: float | None = None,
    state: WorkerState | None = None,
    tasks: Sequence[TaskRegistration] = (),
) -> None:
    """Run a worker until it is cancelled or, with ``wait=False``, until the queue is empty.
    It runs the notices' jobs and those of ``tasks`` (every queue they use).

    When the database goes away (a restart, a fail-over) procrastinate stops its worker; this
    starts a new one as soon as the database answers again, waiting longer between tries
    (up to ``notify.reconnect_max_wait_s``). After ``give_up_s`` without the database it
    raises WorkerGaveUp; ``None`` tries for ever. Cancel the task to stop: jobs under way
    are let finish first.
    """
    notify = settings.notify
    workers = concurrency or notify.worker_concurrency
    deliverer = build_deliverer(db, settings)
    dsn = conninfo(db)
    state = state or WorkerState()
    first_wait_s = min(0.5, notify.reconnect_max_wait_s)

    async def one_run() -> None:
        was_running = False
        app = build_app(deliverer, dsn=dsn, concurrency=workers, tasks=tasks)
        try:
            # Fail fast while the database is away: opening the queue's pool waits 30 s.
            async with await psycopg.AsyncConnection.connect(dsn, connect_timeout=5) as probe:
                await probe.execute("SELECT 1")
            async with app.open_async():
                # Pick up what a worker that crashed left behind before taking new work.
                await sweep_now(app, deliverer, stalled_s=notify.stalled_worker_s)
                state.running(since=time.time())
                was_running = True
                await app.run_worker_async(
                    queues=sorted({task.queue for task in app.tasks.values()}),
                    name=name,
                    concurrency=workers,
                    wait=wait,
                    install_signal_handlers=False,
                    delete_jobs="successful",
                    fetch_job_polling_interval=notify.poll_interval_s,
                    update_heartbeat_interval=notify.heartbeat_interval_s,
                    stalled_worker_timeout=notify.stalled_worker_s,
                )
        except (psycopg.Error, procrastinate.exceptions.ProcrastinateException, OSError) as exc:
            reason = _reason(exc)
            state.lost(reason)
            raise _WorkerLost(f"lost the database: {reason}", was_running=was_running) from exc
        if wait:
            # With wait=True procrastinate returns only when a side task (its LISTEN
            # connection, its heartbeat) failed, i.e. the database went away.
            state.lost("the queue worker stopped by itself")
            raise _WorkerLost("the queue worker stopped", was_running=True)

    def log_retry(retry_state: tenacity.RetryCallState) -> None:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        wait_s = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.warning("notice worker %s; trying again in %.1f s", error, wait_s)

    try:
        while True:
            retrying = tenacity.AsyncRetrying(
                retry=tenacity.retry_if_exception(
                    lambda e: isinstance(e, _WorkerLost) and not e.was_running
                ),
                wait=tenacity.wait_exponential_jitter(
                    multiplier=first_wait_s, max=notify.reconnect_max_wait_s, jitter=first_wait_s
                ),
                stop=(
                    tenacity.stop_after_delay(give_up_s)
                    if give_up_s is not None
                    else tenacity.stop_never
                ),
                before_sleep=log_retry,
                reraise=True,
            )
            try:
                await retrying(one_run)
                return
            except _WorkerLost as exc:
                if not exc.was_running:
                    state.gave_up(str(exc))
                    raise WorkerGaveUp(
                        f"the notice worker gave up after {give_up_s:g} s without the "
                        f"database ({exc})"
                    ) from exc
                # A new outage: its first try comes after a short pause, not at once.
                log.warning("notice worker %s; starting again", exc)
                await asyncio.sleep(first_wait_s)
    finally:
        deliverer.close()


def run(
    settings: Settings,
    db: Database,
    *,
    concurrency: int | None = None,
    tasks: Sequence[TaskRegistration] = (),
) -> None:
    """Run a worker in the foreground until SIGINT or SIGTERM (then return); raise
    WorkerGaveUp when the database stayed away for ``notify.worker_give_up_s``."""

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        # Our own handlers: a stop we asked for cancels the run, which procrastinate turns
        # into a graceful stop; its own handlers would look like a worker that died.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        try:
            await run_async(
                settings,
                db,
                concurrency=concurrency,
                give_up_s=settings.notify.worker_give_up_s,
                tasks=tasks,
            )
        except asyncio.CancelledError:
            log.info("notice worker stopped")
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    asyncio.run(main())


class BackgroundWorker:
    """A worker on its own thread and event loop: `geo311 run` serves and delivers at once."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        concurrency: int | None = None,
        tasks: Sequence[TaskRegistration] = (),
    ) -> None:
        self.settings = settings
        self.db = db
        self.concurrency = concurrency
        self.tasks = tasks
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._started = threading.Event()
        self.error: BaseException | None = None
        self.state = WorkerState()

    def start(self) -> BackgroundWorker:
        """Start the worker thread; return self once its loop runs."""
        self._thread = threading.Thread(target=self._main, name="geo311-notices", daemon=True)
        self._thread.start()
        self._started.wait(timeout=30)
        return self

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(
                # Never gives up: the server stays up, and /healthz says what the worker does.
                run_async(
                    self.settings,
                    self.db,
                    concurrency=self.concurrency,
                    give_up_s=None,
                    state=self.state,
                    tasks=self.tasks,
                )
            )
            loop.call_soon(self._started.set)
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # keep it for the owner; a dead thread says nothing
            self.error = exc
            self.state.gave_up(repr(exc))
            log.exception("the notice worker stopped")
        finally:
            self._started.set()
            loop.close()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop taking jobs, let running ones finish (up to ``timeout_s``), and join."""
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop finished already
                loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> BackgroundWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
