"""Test session: a real PostGIS cluster started the way the app starts its own, migrated once;
each test that asks for a database gets a fresh clone of the migrated template."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from geo311.kernel import migrate
from geo311.kernel.database import Database
from geo311.kernel.embedded import EmbeddedCluster
from geo311.kernel.settings import Settings
from tests.support import APPS, CHEAP_SIGNIN, pooled_app

if TYPE_CHECKING:
    from tests.clones import ClonePool

T = TypeVar("T")

# An xdist worker starts with COLUMNS=80 in its environment; the CLIs' rich consoles, built at
# import, would fix their width to it and ignore the COLUMNS a test gives CliRunner, as they do
# in a single-process run, where COLUMNS is unset.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)

TEMPLATE = "geo311_template"
DEMO_TEMPLATE = "geo311_demo_template"
# The demo city's history is laid out relative to this instant, so tests see the same month.
DEMO_NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
# Modules whose tests each take 10–30 s (fuzzing every operation, solving day plans).
LONG_TESTS = (
    "tests/test_schemathesis.py",
    "tests/dispatch/test_move_preview.py",
    "tests/dispatch/test_plans.py",
    "tests/dispatch/test_cli.py",
    "tests/dispatch/test_assignment.py",
)
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--citus",
        action="store_true",
        default=os.environ.get("GEO311_TEST_CITUS") == "1",
        help="run the database tests on a local Citus cluster (coordinator + 2 workers); "
        "also GEO311_TEST_CITUS=1",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "not_on_citus(reason): what cannot work on a distributed database (docs/citus.md); "
        "skipped with --citus",
    )


# With --citus, each xdist worker starts its own three-node cluster (about 0.4 GB): at most
# this many, however many -n asks for.
CITUS_MAX_WORKERS = 2
# A statement through the coordinator costs about three times one on a single PostGIS: the
# longest tests (a generated history imported row by row) need more than the usual 300 s.
CITUS_TIMEOUT_S = 900
# Shards per distributed table in the tests' cluster: two a worker still spread the tables over
# both workers and show any multi-shard plan (tests/citus), and a per-test clone of the demo
# city has half the shard files to copy of the development default (8): about a quarter off
# each clone (bench/citus_clones.py, docs/citus.md).
CITUS_SHARD_COUNT = 4


def pytest_cmdline_main(config: pytest.Config) -> None:
    """With --citus, cap the xdist workers and lengthen the per-test timeout."""
    if not config.getoption("citus"):
        return
    if getattr(config.option, "timeout", None) is None:
        config.option.timeout = CITUS_TIMEOUT_S
    # xdist has already turned -n into its list of workers (its hook runs first).
    workers = getattr(config.option, "tx", None)
    if workers and len(workers) > CITUS_MAX_WORKERS:
        config.option.numprocesses = CITUS_MAX_WORKERS
        config.option.tx = workers[:CITUS_MAX_WORKERS]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("citus"):
        _citus_only(config, items)
    _group_shared_fixtures(items)
    # Workers take the tests in this order (after the groups, largest first): the longest
    # single tests go first, so none of them starts last and leaves one worker running alone.
    items.sort(key=lambda item: not item.nodeid.startswith(LONG_TESTS))


def _citus_only(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the database tests only (those that use the cluster), skipping what is marked
    not_on_citus."""
    for item in items:
        for mark in item.iter_markers("not_on_citus"):
            item.add_marker(pytest.mark.skip(reason=f"not on Citus: {mark.args[0]}"))
    keep = [i for i in items if "pg_cluster" in getattr(i, "fixturenames", ())]
    dropped = [i for i in items if "pg_cluster" not in getattr(i, "fixturenames", ())]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def _group_shared_fixtures(items: list[pytest.Item]) -> None:
    """Keep a module's tests on one worker when they share a module- or class-scoped fixture
    (a loaded city, a fitted model, a cluster of their own): under ``--dist loadgroup`` each
    fixture is then built once, not once per worker; the other tests spread one by one."""
    for item in items:
        # pytest has no public way to ask which fixtures an item uses, with their scopes.
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        scopes = {d.scope for defs in info.name2fixturedefs.values() for d in defs}
        if scopes & {"module", "class", "package"}:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.fixture(autouse=True)
def _app_pool() -> Iterator[None]:
    """The apps a test takes with tests.support.pooled_app are its own until it ends; then
    they go back to this process's pool, for the next test to bind to its own database."""
    APPS.begin_test()
    try:
        yield
    finally:
        APPS.end_test()


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest) -> Iterator[EmbeddedCluster]:
    """A throwaway PostgreSQL cluster for the whole test session (with --citus: a local Citus
    cluster, whose coordinator the tests talk to and which clones databases on every node)."""
    # Each xdist worker is its own process with its own cluster (its socket lives in its data
    # directory), so workers share no database, template or lock.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    root = Path(tempfile.mkdtemp(prefix=f"geo311-test-{worker}-"))
    root.chmod(0o755)  # the postgres user must reach it when the tests run as root
    cluster: Any = EmbeddedCluster(root / "pg", durable=False)
    if request.config.getoption("citus"):
        from geo311.kernel.citus import CitusCluster

        cluster = CitusCluster(
            root / "citus", durable=False, repartition_joins=True, shard_count=CITUS_SHARD_COUNT
        )
    with _timed(request.config, "start"):
        cluster.start()
    try:
        yield cluster
    finally:
        pool = _CLONES.pop(id(cluster), None)
        if pool is not None:
            pool.close()
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(request: pytest.FixtureRequest, pg_cluster: EmbeddedCluster) -> str:
    """The name of a database migrated to head, to clone per test."""
    with _timed(request.config, "migrate"):
        pg_cluster.ensure_database(TEMPLATE)
        migrate.upgrade(pg_cluster.url(TEMPLATE))
    return TEMPLATE


@pytest.fixture
def db_url(pg_cluster: EmbeddedCluster, template_db: str) -> Iterator[str]:
    """URL of a fresh database cloned from the migrated template, dropped afterwards."""
    name = _clone(pg_cluster, template_db)
    try:
        yield pg_cluster.url(name)
    finally:
        _drop(pg_cluster, name)


# Per cluster: clones made ahead and drops done behind, in the background (tests/clones.py
# says why). On Citus that hides seconds of waiting per test; on a single PostGIS a clone of the
# demo city still costs 0.3–0.7 s and its drop 0.1–0.2 s on the shared machine, which the next
# clone, made while the test before it runs, no longer adds to each test.
_CLONES: dict[int, ClonePool] = {}


def _timed(config: pytest.Config, step: str) -> AbstractContextManager[None]:
    """On Citus, time a one-off step of the session (tests/clones.py reports it)."""
    if not config.getoption("citus"):
        return nullcontext()
    from tests.clones import timed

    return timed(step)


def _clone(cluster: EmbeddedCluster, template: str) -> str:
    from tests.clones import ClonePool

    pool = _CLONES.get(id(cluster))
    if pool is None:
        pool = _CLONES[id(cluster)] = ClonePool(cluster)
    return pool.take(template)


def _drop(cluster: EmbeddedCluster, name: str) -> None:
    pool = _CLONES.get(id(cluster))
    if pool is not None:
        pool.give_back(name)
    else:
        cluster.drop_database(name)


@pytest.fixture(scope="session")
def demo_template(
    request: pytest.FixtureRequest, pg_cluster: EmbeddedCluster, template_db: str
) -> str:
    """The name of a migrated database with the demo city loaded, to clone per test."""
    from fixtures.load import load_demo

    with _timed(request.config, "demo"):
        pg_cluster.ensure_database(DEMO_TEMPLATE, template=template_db)
        database = Database.connect(pg_cluster.url(DEMO_TEMPLATE), pool_size=2)
        try:
            load_demo(database, now=DEMO_NOW)
        finally:
            database.dispose()
    return DEMO_TEMPLATE


@pytest.fixture
def demo_db(pg_cluster: EmbeddedCluster, demo_template: str) -> Iterator[Database]:
    """A fresh database holding the demo city."""
    with _cloned(pg_cluster, demo_template) as database:
        yield database


@contextmanager
def _cloned(cluster: EmbeddedCluster, template: str) -> Iterator[Database]:
    """A fresh clone of ``template``, connected; dropped on leaving."""
    name = _clone(cluster, template)
    database = Database.connect(cluster.url(name), pool_size=5)
    try:
        yield database
    finally:
        database.dispose()
        _drop(cluster, name)


class DemoTemplates:
    """Databases made once per session (per xdist worker) from the demo city: the city plus
    what many tests start from, built through the app's own code (a planned day, say), then
    cloned per test as demo_db clones the city. Building the same start in every test cost a
    solver run each (several seconds on Citus); a clone costs what demo_db's does."""

    def __init__(self, config: pytest.Config, cluster: EmbeddedCluster, source: str) -> None:
        self._config = config
        self._cluster = cluster
        self._source = source
        self._built: set[str] = set()

    def build(self, name: str, make: Callable[[Database], T]) -> T:
        """Copy the demo city as ``name``, run ``make`` on it (what it commits stays in the
        template) and return what ``make`` returned. Once per name: a session fixture's job."""
        if name in self._built:
            raise RuntimeError(f"the template {name} is built already")
        with _timed(self._config, name):
            self._cluster.ensure_database(name, template=self._source)
            database = Database.connect(self._cluster.url(name), pool_size=2)
            try:
                made = make(database)
            finally:
                # A connection left in the template would refuse every clone of it.
                database.dispose()
        self._built.add(name)
        return made

    @contextmanager
    def clone(self, name: str) -> Iterator[Database]:
        """A fresh clone of the built template ``name``; dropped on leaving."""
        if name not in self._built:
            raise RuntimeError(f"the template {name} is not built")
        with _cloned(self._cluster, name) as database:
            yield database


@pytest.fixture(scope="session")
def demo_templates(
    request: pytest.FixtureRequest, pg_cluster: EmbeddedCluster, demo_template: str
) -> DemoTemplates:
    """Templates made from the demo city once per session, cloned per test (DemoTemplates)."""
    return DemoTemplates(request.config, pg_cluster, demo_template)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database.connect(db_url, pool_size=5)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real open data in ../shared/data; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real open data not found at {SHARED_DATA} (../shared/data is absent)")
    return SHARED_DATA


@dataclass
class LiveServer:
    """The app served by uvicorn on a loopback port, for browsers and HTTP clients."""

    url: str
    settings: Settings


@pytest.fixture
def live_server(demo_db: Database, tmp_path: Path) -> Iterator[LiveServer]:
    """Serve the app on the demo city in a background thread on a free loopback port."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(data_dir=tmp_path, host="127.0.0.1", port=port, signin=CHEAP_SIGNIN)
    app = pooled_app(settings, db=demo_db)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            # Open live streams (/api/v1/live) never end by themselves.
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            APPS.discard(app)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
