"""Health and readiness: what a supervisor (/healthz) and a load balancer (/readyz) ask.

``/healthz`` says whether this process can do its work: the database answers, and, where a
notice worker is expected, one has heartbeated lately. ``/readyz`` says whether to send
traffic here: the database answers and its schema is at this code's migration head.
Each answers 200 when every check passes and 503 otherwise, with a JSON body that names
each check. Neither is in the OpenAPI document: they are for machines, not API clients.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import NullPool, create_engine, text
from sqlalchemy.engine import URL, Connection, Engine

from geo311.kernel.migrate import alembic_config
from geo311.kernel.notify.worker import WorkerState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """One named check: whether it passed and, in words, what was found."""

    name: str
    ok: bool
    detail: str


def probe_engine(url: URL, *, timeout_s: float) -> Engine:
    """Return an engine for health checks: no pool (a check never waits behind busy
    requests for a connection), and a bounded connect and statement time."""
    timeout = max(1, round(timeout_s))
    return create_engine(
        url,
        poolclass=NullPool,
        connect_args={
            "connect_timeout": timeout,
            "options": f"-c statement_timeout={int(timeout_s * 1000)}",
        },
    )


@lru_cache(maxsize=1)
def migration_heads() -> frozenset[str]:
    """Return the revisions this code's migrations end at."""
    return frozenset(ScriptDirectory.from_config(alembic_config("postgresql://")).get_heads())


def migrated(connection: Connection) -> Check:
    """Return whether the schema is at this code's migration head."""
    heads = migration_heads()
    current = frozenset(
        connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
    )
    if current == heads:
        return Check("migrations", True, f"at {', '.join(sorted(heads))}")
    return Check(
        "migrations",
        False,
        f"schema at {', '.join(sorted(current)) or 'nothing'}; this code needs "
        f"{', '.join(sorted(heads))} (run `geo311 db migrate`)",
    )


def worker_heartbeat(
    connection: Connection, *, stalled_s: float, in_process: WorkerState | None
) -> Check:
    """Return whether notices are being sent.

    A worker is expected when this process runs one, or when any worker has registered
    (procrastinate keeps one row per running worker, heartbeated every
    ``notify.heartbeat_interval_s``, removed when the worker stops cleanly). Expected and no
    heartbeat within ``stalled_s``: unhealthy. Not expected (no worker has ever run, or all
    stopped cleanly): healthy, since notices wait safely in the outbox.
    """
    registered, fresh = connection.execute(
        text(
            "SELECT count(*), count(*) FILTER (WHERE last_heartbeat >= "
            "now() - make_interval(secs => :stalled)) FROM procrastinate_workers"
        ),
        {"stalled": stalled_s},
    ).one()
    if in_process is not None and in_process.status != "running":
        # Its reason (a driver message naming hosts) goes to the log, not to this public page.
        return Check("worker", False, f"the in-process worker is {in_process.status}")
    if in_process is None and registered == 0:
        return Check("worker", True, "no worker expected (none in-process, none registered)")
    if fresh == 0:
        return Check("worker", False, f"no worker has sent a heartbeat in the last {stalled_s:g} s")
    return Check("worker", True, f"{fresh} worker(s) heartbeating")


def run_checks(
    engine: Engine,
    *,
    stalled_s: float,
    in_process: WorkerState | None,
    readiness: bool,
) -> list[Check]:
    """Return the database check and then, if it passed, the worker check (liveness) or the
    migrations check (readiness)."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            checks = [Check("database", True, "answers")]
            if readiness:
                checks.append(migrated(connection))
            else:
                checks.append(
                    worker_heartbeat(connection, stalled_s=stalled_s, in_process=in_process)
                )
            return checks
    except Exception as exc:  # any failure to reach or query it means the same: not healthy
        # The driver's message names hosts and sockets: logged, not shown on a public page.
        log.warning("health check: the database is unreachable: %s", exc)
        cause = getattr(exc, "orig", None) or exc
        checks = [Check("database", False, f"unreachable ({type(cause).__name__})")]
        if not readiness:
            state = in_process.status if in_process is not None else "unknown"
            checks.append(
                Check("worker", False, f"cannot be checked without the database ({state})")
            )
        return checks


def body(checks: list[Check]) -> dict[str, Any]:
    """Return the JSON body: an overall status and each check by name."""
    return {
        "status": "ok" if all(c.ok for c in checks) else "unhealthy",
        "checks": {c.name: {k: v for k, v in asdict(c).items() if k != "name"} for c in checks},
    }
