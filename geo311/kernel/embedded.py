"""The embedded PostGIS: a private PostgreSQL cluster started from the system binaries.

It listens on a unix socket only (no TCP port to clash with), trusts local connections, and is
owned by an unprivileged user when geo311 runs as root, because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

SUPERUSER = "geo311"
EXTENSIONS = ("postgis", "btree_gist", "pgrouting")
PG_PORT = 5432  # only names the socket file; nothing listens on TCP


class EmbeddedError(RuntimeError):
    """The embedded cluster could not be set up or started."""


def _pg_bindir() -> Path:
    """Return the directory of the newest system PostgreSQL's server binaries."""
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise EmbeddedError(
        "PostgreSQL server binaries not found: install postgresql and postgresql-15-postgis-3 "
        "(`make setup` does it on Debian)."
    )


@dataclass
class EmbeddedCluster:
    """A PostgreSQL cluster in ``data_dir`` that this process can start and stop."""

    data_dir: Path
    bindir: Path = field(default_factory=_pg_bindir)
    started_here: bool = False
    # A throwaway cluster (the test session's) may skip what only protects data from a crash.
    durable: bool = True

    @property
    def socket_dir(self) -> Path:
        return self.data_dir

    @property
    def _run_as(self) -> str | None:
        # Root cannot run postgres: hand the cluster to the system's postgres user.
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            try:
                pwd.getpwnam(name)
            except KeyError:
                continue
            return name
        raise EmbeddedError("running as root and no unprivileged user to own the cluster")

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            user=self._run_as,
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
        )
        if check and proc.returncode != 0:
            raise EmbeddedError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def _prepare_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        user = self._run_as
        if user is not None:
            pw = pwd.getpwnam(user)
            for parent in self.data_dir.parents:
                st = parent.stat()
                # The postgres user must be able to walk down to its data directory.
                if st.st_uid != pw.pw_uid and not st.st_mode & 0o001:
                    raise EmbeddedError(
                        f"{parent} is not searchable by user {user}: choose a cluster_dir "
                        "outside it (GEO311_DB__CLUSTER_DIR)"
                    )
            os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)

    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster files (initdb) when they are not there yet."""
        if self.initialised:
            return
        self._prepare_dir()
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as f:
            f.write(
                "\n# geo311 embedded cluster\n"
                "listen_addresses = ''\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "max_connections = 200\n"
                "shared_buffers = 256MB\n"
                "fsync = on\n"
            )
            if not self.durable:
                f.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")

    def is_running(self) -> bool:
        if not self.initialised:
            return False
        return self._run("pg_ctl", "status", "-D", str(self.data_dir), check=False).returncode == 0

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the server if it is not running; remember whether we started it."""
        self.init()
        if self.is_running():
            return
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data_dir),
            "-w",
            "-t",
            str(int(timeout_s)),
            "-l",
            str(self.data_dir / "server.log"),
        )
        self.started_here = True
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with psycopg.connect(self.conninfo("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server (fast shutdown) if it is running."""
        if self.is_running():
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")
        self.started_here = False

    def conninfo(self, dbname: str) -> str:
        return f"host={self.socket_dir} port={PG_PORT} user={SUPERUSER} dbname={dbname}"

    def url(self, dbname: str) -> str:
        """Return the SQLAlchemy URL of ``dbname`` on this cluster."""
        return f"postgresql+psycopg://{SUPERUSER}@/{dbname}?host={self.socket_dir}&port={PG_PORT}"

    def ensure_database(self, dbname: str, *, template: str | None = None) -> None:
        """Create ``dbname`` (with PostGIS) when it does not exist."""
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)
            ).fetchone()
            if exists:
                return
            stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
            if template:
                stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(dbname), sql.Identifier(template)
                )
            conn.execute(stmt)
        if template is None:
            with psycopg.connect(self.conninfo(dbname), autocommit=True) as conn:
                for ext in EXTENSIONS:
                    conn.execute(
                        sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext))
                    )

    def drop_database(self, dbname: str) -> None:
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
