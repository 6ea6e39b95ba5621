"""The worker's periodic refresh of the planner's summary tables (maps.analytics.rollup).

The ward table is exact without it (a day with a pending change is counted from the source
tables); the refresh only keeps it fast: it takes the changes the writes noted into the
summaries, and builds the days not built yet (a new day, an import's). It runs on the worker
every ``analytics.refresh_cron`` (default every five minutes), on a queue of its own with a
queueing lock, so a slow refresh never piles up a second one; ``geo311 analytics refresh``
does the same by hand or from cron.

It is registered here, above maps, because the worker lives in the kernel, which imports no
domain package: ``geo311 run`` and ``geo311 worker`` hand ``worker_tasks`` to it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import procrastinate

from geo311.kernel.database import Database
from geo311.kernel.notify.worker import TaskRegistration
from geo311.kernel.settings import Settings
from layers import service as layers_service
from maps.analytics import rollup

log = logging.getLogger(__name__)

QUEUE = "analytics"
REFRESH_TASK = "analytics.refresh"


def refresh_all(db: Database) -> dict[str, int]:
    """Refresh every jurisdiction's summaries, one transaction each; return the days
    rebuilt and the changes taken in, in all."""
    with db.session() as session:
        jurisdictions = [j.id for j in layers_service.list_jurisdictions(session)]
    done = {"jurisdictions": len(jurisdictions), "days": 0, "changes": 0}
    for jurisdiction_id in jurisdictions:
        with db.session() as session:
            refreshed = rollup.refresh(session, jurisdiction_id=jurisdiction_id)
        done["days"] += refreshed.days
        done["changes"] += refreshed.changes
    return done


def worker_tasks(db: Database, settings: Settings) -> TaskRegistration:
    """Return what registers the periodic refresh on the worker's app (nothing when
    ``analytics.refresh_cron`` is empty)."""

    def register(app: procrastinate.App) -> None:
        cron = settings.analytics.refresh_cron.strip()
        if not cron:
            return

        @app.periodic(cron=cron, periodic_id="refresh")
        @app.task(name=REFRESH_TASK, queue=QUEUE, queueing_lock=REFRESH_TASK)
        def refresh(timestamp: int) -> dict[str, Any]:
            done: dict[str, Any] = dict(refresh_all(db))
            if done["days"] or done["changes"]:
                log.info("planner summaries: %s", done)
            done["scheduled_at"] = datetime.fromtimestamp(timestamp, UTC).isoformat()
            return done

    return register
