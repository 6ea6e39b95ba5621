"""Per-test databases on the local Citus cluster, cloned ahead and dropped behind.

On Citus a test's fresh database costs a clone on each of the three nodes (1–4 s on the shared
machine) and its drop as much again (``DROP DATABASE`` waits for a checkpoint on each node).
Most of that is waiting, not CPU, so two background threads do it while the tests run: when
a test takes a clone of a template, the next clone of that template is started at once, and a
finished test's database is dropped behind it. The tests see the same thing as before: a fresh
copy of the template each, dropped afterwards.
"""

from __future__ import annotations

import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol


class Cluster(Protocol):
    def ensure_database(self, dbname: str, *, template: str | None = None) -> None: ...

    def drop_database(self, dbname: str) -> None: ...


class ClonePool:
    """One spare clone per template, made in the background; drops done in the background."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        # A thread for clones and one for drops: the next test's clone need not wait behind
        # the last test's drop, which mostly waits for each node's checkpoint.
        self._clones = ThreadPoolExecutor(max_workers=1, thread_name_prefix="citus-clones")
        self._drops_work = ThreadPoolExecutor(max_workers=1, thread_name_prefix="citus-drops")
        self._spares: dict[str, Future[str]] = {}
        self._drops: list[Future[None]] = []

    def take(self, template: str) -> str:
        """Return the name of a fresh clone of ``template``, and start the next one."""
        spare = self._spares.pop(template, None)
        name = spare.result() if spare is not None else self._clone(template)
        self._spares[template] = self._clones.submit(self._clone, template)
        return name

    def give_back(self, name: str) -> None:
        """Drop ``name`` behind the tests."""
        self._drops.append(self._drops_work.submit(self._cluster.drop_database, name))

    def close(self) -> None:
        """Drop the spares and wait for every drop, so the cluster can stop; raise the first
        drop that failed (a database left behind)."""
        for spare in self._spares.values():
            if spare.exception() is None:
                self.give_back(spare.result())
        self._spares.clear()
        self._clones.shutdown(wait=True)
        self._drops_work.shutdown(wait=True)
        for drop in self._drops:
            drop.result()

    def _clone(self, template: str) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self._cluster.ensure_database(name, template=template)
        return name
