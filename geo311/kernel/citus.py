"""A local Citus cluster: a coordinator and N workers, each a private PostgreSQL cluster started
from the system binaries like the embedded database (unix sockets only, trust, no TCP port).

For development and tests only; production points ``GEO311_DB__URL`` at a real coordinator.
The nodes reach each other through their socket directories: Citus passes a node name to
libpq as ``host``, and a host that starts with ``/`` is a socket directory.

Databases are cloned node by node (``CREATE DATABASE … TEMPLATE`` on each node, the same name
everywhere): Citus finds a shard by node and shard name in the database of the same name, so a
clone on every node is a complete distributed database, as cheap as a plain template clone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from geo311.kernel.embedded import EXTENSIONS, PG_PORT, EmbeddedCluster, EmbeddedError, _pg_bindir

# Per node: citus first (it must be the first extension created in a database it loads into).
CITUS_EXTENSIONS = ("citus", *EXTENSIONS)
# Enough shards to spread 20 cities over 2 workers, few enough that a per-test clone of every
# node stays quick; a production cluster keeps Citus's default (32) or more.
DEV_SHARD_COUNT = 8


class CitusUnavailable(EmbeddedError):
    """Citus is not installed in the system PostgreSQL."""


def citus_installed(bindir: Path | None = None) -> bool:
    """Return whether the system PostgreSQL has the citus extension installed."""
    bindir = bindir or _pg_bindir()
    share = Path("/usr/share/postgresql") / bindir.parent.name / "extension"
    lib = Path("/usr/lib/postgresql") / bindir.parent.name / "lib"
    return (share / "citus.control").exists() and (lib / "citus.so").exists()


@dataclass
class CitusCluster:
    """A coordinator and ``workers`` workers under ``root``, started and stopped together."""

    root: Path
    workers: int = 2
    durable: bool = True
    shard_count: int = DEV_SHARD_COUNT
    # Let Citus run joins that do not match on jurisdiction_id by reshuffling rows between
    # nodes: the test suite's own checking SQL was written for one database. The app's hot
    # paths are held to one shard by tests/citus, which this does not relax.
    repartition_joins: bool = False
    nodes: list[EmbeddedCluster] = field(init=False)

    def __post_init__(self) -> None:
        names = ["coordinator", *(f"worker{i}" for i in range(1, self.workers + 1))]
        self.nodes = [EmbeddedCluster(self.root / n, durable=self.durable) for n in names]

    @property
    def coordinator(self) -> EmbeddedCluster:
        return self.nodes[0]

    @property
    def worker_nodes(self) -> list[EmbeddedCluster]:
        return self.nodes[1:]

    # The interface of EmbeddedCluster that the app and the tests use: the coordinator's.
    @property
    def socket_dir(self) -> Path:
        return self.coordinator.socket_dir

    @property
    def data_dir(self) -> Path:
        return self.coordinator.data_dir

    def conninfo(self, dbname: str) -> str:
        return self.coordinator.conninfo(dbname)

    def url(self, dbname: str) -> str:
        """Return the SQLAlchemy URL of ``dbname`` on the coordinator."""
        return self.coordinator.url(dbname)

    def is_running(self) -> bool:
        return all(n.is_running() for n in self.nodes)

    def start(self, timeout_s: float = 60.0) -> None:
        """Initialise (first time) and start every node."""
        if not citus_installed(self.coordinator.bindir):
            raise CitusUnavailable(
                "Citus is not installed in the system PostgreSQL: `make test-citus` builds it "
                "from ../shared/vendor/citus"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        repartition = "on" if self.repartition_joins else "off"
        for node in self.nodes:
            if not node.initialised:
                node.init()
                with (node.data_dir / "postgresql.conf").open("a") as f:
                    f.write(
                        "\n# geo311 local Citus node\n"
                        "shared_preload_libraries = 'citus'\n"
                        f"citus.shard_count = {self.shard_count}\n"
                        # One machine: no point in extra parallel connections per query.
                        "citus.max_adaptive_executor_pool_size = 4\n"
                        "max_prepared_transactions = 200\n"
                        f"citus.enable_repartition_joins = {repartition}\n"
                    )
            node.start(timeout_s)

    def stop(self) -> None:
        """Stop every node (coordinator first, so it holds no connection to the workers)."""
        for node in self.nodes:
            node.stop()

    def ensure_database(self, dbname: str, *, template: str | None = None) -> None:
        """Create ``dbname`` on every node: cloned from ``template`` node by node, or new with
        citus, postgis & co. and the workers registered with the coordinator."""
        if template is not None:
            # Every daemon and cached connection into the template must go before it is
            # copied; the coordinator's first, as it holds connections into the workers'.
            for node in self.nodes:
                _disconnect(node, template)
            # The nodes are separate servers: copy on all of them at once.
            _on_every_node(self.nodes, lambda node: _clone(node, dbname, template))
            return
        for node in self.nodes:
            with psycopg.connect(node.conninfo("postgres"), autocommit=True) as conn:
                if conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)
                ).fetchone():
                    continue
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
            with psycopg.connect(node.conninfo(dbname), autocommit=True) as conn:
                for ext in CITUS_EXTENSIONS:
                    conn.execute(
                        sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext))
                    )
        with psycopg.connect(self.conninfo(dbname), autocommit=True) as conn:
            conn.execute(
                "SELECT citus_set_coordinator_host(%s, %s)",
                (str(self.coordinator.socket_dir), PG_PORT),
            )
            known = {
                row[0]
                for row in conn.execute("SELECT nodename FROM pg_dist_node WHERE groupid > 0")
            }
            for worker in self.worker_nodes:
                if str(worker.socket_dir) not in known:
                    conn.execute("SELECT citus_add_node(%s, %s)", (str(worker.socket_dir), PG_PORT))

    def drop_database(self, dbname: str) -> None:
        # The coordinator first: its maintenance daemon and cached connections reach into the
        # workers' database of the same name, and dropping it (WITH (FORCE)) ends them.
        _drop(self.coordinator, dbname)
        _on_every_node(self.worker_nodes, lambda node: _drop(node, dbname))


def _on_every_node(nodes: list[EmbeddedCluster], work: Callable[[EmbeddedCluster], None]) -> None:
    """Run ``work`` on every node at once; raise the first error."""
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        for future in [pool.submit(work, node) for node in nodes]:
            future.result()


def _clone(node: EmbeddedCluster, dbname: str, template: str, attempts: int = 10) -> None:
    """Clone ``template`` as ``dbname`` on ``node``, ending sessions in the template again if
    one came back meanwhile (a Citus maintenance daemon restarting there: "source database …
    is being accessed by other users")."""
    for attempt in range(attempts):
        try:
            node.ensure_database(dbname, template=template)
            return
        except psycopg.errors.ObjectInUse:
            if attempt == attempts - 1:
                raise
            _disconnect(node, template)


def _drop(node: EmbeddedCluster, dbname: str, attempts: int = 20) -> None:
    """Drop ``dbname`` on ``node``, again if a connection on its way in (a test server's pool,
    the coordinator's 2PC recovery) slipped past WITH (FORCE) ("is being accessed by other
    users")."""
    for attempt in range(attempts):
        try:
            node.drop_database(dbname)
            return
        except psycopg.errors.ObjectInUse:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1)


def _disconnect(node: EmbeddedCluster, dbname: str, timeout_s: float = 10.0) -> None:
    """End every session in ``dbname`` on ``node`` (Citus's maintenance daemon included, which
    exits cleanly on SIGTERM and comes back only when a session opens there again)."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(node.conninfo("postgres"), autocommit=True) as conn:
        while True:
            left = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            ).fetchone()
            if not left or not left[0] or time.monotonic() > deadline:
                return
            time.sleep(0.05)
