"""Per-test databases, cloned ahead and dropped behind: on a single PostGIS and on the local
Citus cluster alike.

On Citus a test's fresh database costs a clone on each of the three nodes (1–4 s on the shared
machine) and its drop as much again (``DROP DATABASE`` waits for a checkpoint on each node).
Most of that is waiting, not CPU, so two background threads do it while the tests run: when
a test takes a clone of a template, the next clone of that template is started at once, and a
finished test's database is dropped behind it. The tests see the same thing as before: a fresh
copy of the template each, dropped afterwards.

With ``GEO311_CITUS_TIMINGS`` naming a file, the pool appends what it spent there when it
closes (one JSON line per cluster: each clone's and drop's seconds, and how long each test
waited for its clone), so a run says where its time went.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Protocol

# The session's one-off steps on the cluster (start, migrating the template, loading the demo
# city), in seconds, reported with the pool's figures.
SESSION: dict[str, float] = {}


@contextmanager
def timed(step: str) -> Iterator[None]:
    """Add the block's seconds to ``SESSION[step]``."""
    started = time.monotonic()
    try:
        yield
    finally:
        SESSION[step] = SESSION.get(step, 0.0) + time.monotonic() - started


class Cluster(Protocol):
    def ensure_database(self, dbname: str, *, template: str | None = None) -> None: ...

    def drop_database(self, dbname: str) -> None: ...


class ClonePool:
    """One spare clone per template, made in the background; drops done in the background."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        # A thread for clones and one for drops: the next test's clone need not wait behind
        # the last test's drop, which mostly waits for each node's checkpoint.
        self._clones = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-clones")
        self._drops_work = ThreadPoolExecutor(max_workers=1, thread_name_prefix="citus-drops")
        self._spares: dict[str, Future[str]] = {}
        self._drops: list[Future[None]] = []
        self.timings: dict[str, list[float]] = {"clone": [], "drop": [], "wait": []}

    def take(self, template: str) -> str:
        """Return the name of a fresh clone of ``template``, and start the next one."""
        started = time.monotonic()
        spare = self._spares.pop(template, None)
        name = spare.result() if spare is not None else self._clone(template)
        self.timings["wait"].append(time.monotonic() - started)
        self._spares[template] = self._clones.submit(self._clone, template)
        return name

    def give_back(self, name: str) -> None:
        """Drop ``name`` behind the tests."""
        self._drops.append(self._drops_work.submit(self._drop, name))

    def close(self) -> None:
        """Drop the spares and wait for every drop, so the cluster can stop; raise the first
        drop that failed (a database left behind)."""
        for spare in self._spares.values():
            if spare.exception() is None:
                self.give_back(spare.result())
        self._spares.clear()
        self._clones.shutdown(wait=True)
        self._drops_work.shutdown(wait=True)
        self._report()
        for drop in self._drops:
            drop.result()

    def _clone(self, template: str) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        started = time.monotonic()
        self._cluster.ensure_database(name, template=template)
        self.timings["clone"].append(time.monotonic() - started)
        return name

    def _drop(self, name: str) -> None:
        started = time.monotonic()
        self._cluster.drop_database(name)
        self.timings["drop"].append(time.monotonic() - started)

    def _report(self) -> None:
        path = os.environ.get("GEO311_CITUS_TIMINGS")
        if not path:
            return
        line = {
            "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
            "session": SESSION,
            **self.timings,
        }
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")
