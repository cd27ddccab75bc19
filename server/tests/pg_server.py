"""A real PostgreSQL server for tests and benchmarks, in a temporary directory.

`PgServer` runs the distribution's initdb and pg_ctl (`pg_config --bindir`,
else /usr/lib/postgresql/*/bin) on a free loopback port, with its unix socket
in the same directory, as the `postgres` user when running as root (initdb
refuses root). fsync is off: the data is thrown away, and commits are the
tests' bottleneck otherwise. `template` is a database migrated once; each
test gets a fresh copy of it (CREATE DATABASE ... TEMPLATE, a file copy).
It never touches a PostgreSQL already running on the machine.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Final

_TIMEOUT_S: Final = 60


class PgMissingError(RuntimeError):
    pass


def pg_bindir() -> Path:
    """The directory of initdb and pg_ctl; PgMissingError says how to get them."""
    candidates: list[str] = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and os.access(os.path.join(candidate, "initdb"), os.X_OK):
            return Path(candidate)
    raise PgMissingError(
        "PostgreSQL's initdb and pg_ctl were not found (pg_config --bindir, /usr/lib/postgresql/*/bin); "
        "install them: `bash .ci/install --dev` as root, or `apt-get install postgresql`"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """Start with start(), stop with stop(); `url(db)` names a database."""

    def __init__(self, *, durable: bool = False) -> None:
        """`durable`: fsync and synchronous commit on, as in production
        (benchmarks); tests leave them off."""
        self.durable = durable
        self.bindir = pg_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="mnemo-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "mnemo"
        self._as_postgres = os.geteuid() == 0
        self._created = 0

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip() or done.stdout}")

    def start(self) -> PgServer:
        if self._as_postgres:
            shutil.chown(self.root, user="postgres", group="postgres")
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start_server()
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, *, template: str | None = None) -> str:
        """A new empty (or template-copied) database; returns its URL."""
        import psycopg

        self._created += 1
        name = f"t{self._created}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            suffix = f" TEMPLATE {template}" if template else ""
            conn.execute(f"CREATE DATABASE {name}{suffix}")
        return self.url(name)

    def restart(self) -> None:
        self.stop_server()
        self.start_server()

    def stop_server(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def start_server(self) -> None:
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
            " -c max_connections=200"
        )
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "start")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop_server()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


#: The database every test database is copied from: migrated once.
TEMPLATE: Final = "mnemo_template"
_SHARED: list[PgServer] = []


def shared() -> PgServer:
    """The session's server (started on first use, stopped by stop_shared()
    or at exit), with TEMPLATE migrated to the current schema."""
    if not _SHARED:
        import atexit

        import psycopg

        from mnemo_server.store.pg_schema import migrate

        server = PgServer().start()
        atexit.register(server.stop)
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        with psycopg.connect(server.url(TEMPLATE), autocommit=True) as conn:
            migrate(conn)
        _SHARED.append(server)
    return _SHARED[0]


def fresh_database_url() -> str:
    """A new database with the current schema (a copy of TEMPLATE)."""
    return shared().create_database(template=TEMPLATE)


def stop_shared() -> None:
    while _SHARED:
        _SHARED.pop().stop()
