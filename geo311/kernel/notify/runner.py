"""What `geo311 run` and `geo311 worker` start besides the API: the notice worker and, for
development, the mail catcher."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from geo311.kernel.database import Database
from geo311.kernel.notify import worker as notice_worker
from geo311.kernel.notify.mailcatcher import MailCatcher, maildir_path
from geo311.kernel.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Embedded:
    """What `geo311 run` started beside the API: banner lines, and the in-process worker
    (for /healthz) when there is one."""

    lines: list[str] = field(default_factory=list)
    worker: notice_worker.BackgroundWorker | None = None


@contextmanager
def embedded(
    settings: Settings, db: Database, *, tasks: Sequence[notice_worker.TaskRegistration] = ()
) -> Iterator[Embedded]:
    """Run the dev mail catcher (when enabled) and an in-process worker (unless disabled),
    which also runs ``tasks``, for the life of the block; yield what runs."""
    extras = Embedded()
    lines = extras.lines
    catcher: MailCatcher | None = None
    background: notice_worker.BackgroundWorker | None = None
    try:
        if settings.dev_mail_enabled:
            dev = settings.notify.dev_mail
            catcher = MailCatcher(maildir_path(settings), host=dev.host, port=dev.port)
            if catcher.start():
                lines.append(f"caught mail       {settings.base_url}/dev/mail")
                smtp = settings.notify.smtp
                if not {"host", "port"} & smtp.model_fields_set:
                    # Nobody chose a mail server: notices go to the catcher, wherever it is.
                    smtp.host, smtp.port = dev.host, dev.port
            else:
                catcher = None
        if settings.notify.embedded_worker:
            # One line per job is useful from `geo311 worker`, noise beside the API's log.
            logging.getLogger("procrastinate").setLevel(logging.WARNING)
            background = notice_worker.BackgroundWorker(settings, db, tasks=tasks).start()
            extras.worker = background
            smtp = settings.notify.smtp
            lines.append(f"notices           worker in-process, SMTP {smtp.host}:{smtp.port}")
        yield extras
    finally:
        if background is not None:
            background.stop()
        if catcher is not None:
            catcher.stop()


class _OutcomesOnly(logging.Filter):
    """Drops procrastinate's "Starting job" line: the line with the job's outcome names it
    too, with how long it took, so the log keeps one line per job, not two."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "action", None) != "start_job"


def run_worker(
    settings: Settings,
    db: Database,
    *,
    concurrency: int | None = None,
    tasks: Sequence[notice_worker.TaskRegistration] = (),
) -> None:
    """Run the notice worker (and ``tasks``) in the foreground until SIGINT or SIGTERM; raise
    ``notice_worker.WorkerGaveUp`` when the database stayed away too long."""
    log.info("notice worker: SMTP %s:%s", settings.notify.smtp.host, settings.notify.smtp.port)
    logging.getLogger(f"procrastinate.worker.{notice_worker.WORKER_NAME}").addFilter(
        _OutcomesOnly()
    )
    notice_worker.run(settings, db, concurrency=concurrency, tasks=tasks)
