"""The notice worker: a procrastinate worker that runs delivery jobs and a periodic sweep.

Jobs live in PostgreSQL (procrastinate's tables, created by migration 0004) and are deferred
in the same transaction as the notices they deliver. A worker wakes on LISTEN/NOTIFY, runs
``notify.worker_concurrency`` jobs at once (each on its own SMTP connection) and, every
minute and when it starts, sweeps: it retries the jobs of workers that died (their heartbeat
stopped), reports hand-overs that never got an answer as ``uncertain``, and gives owed
notices that have had no job for too long a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

import procrastinate
from procrastinate import RetryStrategy

from geo311.database import Database
from geo311.media import LocalMediaStore
from geo311.notify import outbox
from geo311.notify.channels import WebhookSender, sms_provider
from geo311.notify.delivery import Deliverer
from geo311.notify.tokens import LinkSigner
from geo311.settings import Settings

log = logging.getLogger(__name__)


def conninfo(db: Database) -> str:
    """Return the libpq connection string of a Database (for the queue's own pool)."""
    url = db.engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def build_deliverer(db: Database, settings: Settings) -> Deliverer:
    """Return a Deliverer with the channels the settings describe."""
    return Deliverer(
        db,
        settings,
        LocalMediaStore(settings.media_root),
        signer=LinkSigner.from_settings(settings),
        sms=sms_provider(settings.notify.sms),
        webhooks=WebhookSender(timeout_s=settings.notify.webhook_timeout_s),
    )


def build_app(deliverer: Deliverer, *, dsn: str, concurrency: int) -> procrastinate.App:
    """Return a procrastinate app with the delivery and sweep tasks bound to ``deliverer``."""
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=dsn, min_size=1, max_size=concurrency + 4)
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


async def run_async(
    settings: Settings,
    db: Database,
    *,
    concurrency: int | None = None,
    install_signal_handlers: bool = True,
    wait: bool = True,
    name: str = "geo311-notices",
) -> None:
    """Run a worker until it is stopped (signal, cancellation) or, with ``wait=False``,
    until the queue is empty."""
    workers = concurrency or settings.notify.worker_concurrency
    deliverer = build_deliverer(db, settings)
    app = build_app(deliverer, dsn=conninfo(db), concurrency=workers)
    try:
        async with app.open_async():
            # Pick up what a worker that crashed left behind before taking new work.
            await sweep_now(app, deliverer, stalled_s=settings.notify.stalled_worker_s)
            await app.run_worker_async(
                queues=[outbox.QUEUE],
                name=name,
                concurrency=workers,
                wait=wait,
                install_signal_handlers=install_signal_handlers,
                delete_jobs="successful",
                fetch_job_polling_interval=settings.notify.poll_interval_s,
                update_heartbeat_interval=settings.notify.heartbeat_interval_s,
                stalled_worker_timeout=settings.notify.stalled_worker_s,
            )
    finally:
        deliverer.close()


def run(settings: Settings, db: Database, *, concurrency: int | None = None) -> None:
    """Run a worker in the foreground until SIGINT or SIGTERM."""
    asyncio.run(run_async(settings, db, concurrency=concurrency))


class BackgroundWorker:
    """A worker on its own thread and event loop: `geo311 run` serves and delivers at once."""

    def __init__(self, settings: Settings, db: Database, *, concurrency: int | None = None) -> None:
        self.settings = settings
        self.db = db
        self.concurrency = concurrency
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._started = threading.Event()
        self.error: BaseException | None = None

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
                run_async(
                    self.settings,
                    self.db,
                    concurrency=self.concurrency,
                    install_signal_handlers=False,
                )
            )
            loop.call_soon(self._started.set)
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # keep it for the owner; a dead thread says nothing
            self.error = exc
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
