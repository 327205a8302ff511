"""A throwaway PostgreSQL server for tests: a cluster in a temp dir, on a free loopback port.

``initdb`` + ``pg_ctl`` from the PATH (Debian's ``postgresql`` package puts them in
/usr/lib/postgresql/<v>/bin). PostgreSQL refuses to run as root, so as root both run as the
``postgres`` user (runuser), which then owns the temp dir. Trust auth on loopback and on the
unix socket (kept in the temp dir, not /var/run/postgresql, so it needs no rights there and
clashes with no installed cluster); ``fsync`` off: a test cluster need not survive power loss
(``durable=True`` keeps PostgreSQL's defaults, for the benchmark, where it must not get a
head start over SQLite, which davdisk syncs at every commit).

As a program it starts a server, prints its SQLAlchemy URL and either waits for Ctrl-C or runs
a command with ``DAVDISK_TEST_DATABASE_URL`` set, then stops the server and removes its dir:

    python -m tests.pg                      # prints postgresql+psycopg://postgres@127.0.0.1:P/davdisk
    python -m tests.pg -- pytest -q tests/unit/test_pg.py
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from davdisk.config import Config

URL_ENV = "DAVDISK_TEST_DATABASE_URL"
SUPERUSER = "postgres"
# Debian's layout, for when the bin dir is not on the PATH (it is not by default).
_DEBIAN_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        for bin_dir in _DEBIAN_BINS:
            if (bin_dir / name).exists():
                return str(bin_dir / name)
        raise RuntimeError(
            f"{name} not found: install PostgreSQL (Debian: apt-get install postgresql)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One running cluster; :meth:`create_database` gives each test a database of its own."""

    def __init__(self, root: Path, port: int, *, durable: bool = False) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port
        self.durable = durable
        self._counter = 0
        self._lock = threading.Lock()

    def url(self, database: str = "davdisk") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        # Root may not run PostgreSQL's programs; the postgres user may (and owns self.root).
        cmd = [*args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr}{tail}")

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, SUPERUSER)
        self._run(
            _program("initdb"),
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C.UTF-8",
            "--no-sync",
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        )
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            _program("pg_ctl"),
            "--pgdata",
            str(self.data),
            "--log",
            str(self.root / "server.log"),
            "--options",
            options,
            "--wait",
            "start",
        )

    def create_database(self, name: str | None = None) -> str:
        """A new empty database (``davdisk_<n>`` unless named); its URL."""
        if name is None:
            with self._lock:
                self._counter += 1
                name = f"davdisk_{self._counter}"
        self._run(
            _program("createdb"),
            "--host",
            str(self.root),
            "--port",
            str(self.port),
            "--username",
            SUPERUSER,
            name,
        )
        return self.url(name)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            # immediate: the data is thrown away, so no checkpoint is worth waiting for.
            self._run(_program("pg_ctl"), "--pgdata", str(self.data), "-m", "immediate", "stop")


def fresh_database(server_url: str, *, copy_of: str | None = None) -> str:
    """A new database on the server ``server_url`` points at (any database of it), empty or a
    copy of the database ``copy_of`` (a URL: what copying a data dir copies with SQLite); its
    URL. For tests run with ``DAVDISK_TEST_DATABASE_URL``: each gets a database of its own,
    thrown away with the cluster."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    name = f"t_{uuid.uuid4().hex}"
    # Names are ours (hex) or came from here: safe to quote into the statement.
    template = f' TEMPLATE "{make_url(copy_of).database}"' if copy_of else ""
    admin = url.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{template}')
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Remove a database ``fresh_database`` made, once its test is over: each is a copy of the
    template (about 7 MB), and a run makes a thousand. FORCE: connections a test left open
    (a killed server's, say) are ended rather than keeping it."""
    import psycopg
    from sqlalchemy.engine import make_url

    target = make_url(url)
    if not target.drivername.startswith("postgresql"):
        return
    admin = target.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        # Our own names (hex, see fresh_database): safe to quote into the statement.
        conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')


def database_url_for_test(sqlite_file: Path) -> str:
    """The database a test should use: ``sqlite_file``, or a fresh PostgreSQL database when
    the run was given a server in ``DAVDISK_TEST_DATABASE_URL``."""
    server = os.environ.get(URL_ENV)
    return fresh_database(server) if server else f"sqlite:///{sqlite_file}"


def use_test_database(cfg: Config) -> None:
    """Point ``cfg`` at a fresh PostgreSQL database when the run was given a server (else
    leave it on its data dir's SQLite file)."""
    server = os.environ.get(URL_ENV)
    if server:
        cfg.set("storage", "database_url", fresh_database(server), "test")


@contextmanager
def postgres_server(*, durable: bool = False) -> Iterator[PostgresServer]:
    """A started server with an empty database ``davdisk``; stopped and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="davdisk-pg-"))
    server = PostgresServer(root, _free_port(), durable=durable)
    try:
        server.start()
        server.create_database("davdisk")
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str]) -> int:
    command = list(argv[1:]) if argv[:1] == ["--"] else list(argv)
    # A TERM (CI cancelling the run, say) ends this process through the finally of
    # postgres_server(), which stops and removes the server (and subprocess.call kills the
    # command); as the default action would leave a server running with its temp dir.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0 if not command else 128 + signal.SIGTERM))
    with postgres_server() as server:
        print(server.url(), flush=True)
        if command:
            return subprocess.call(command, env={**os.environ, URL_ENV: server.url()})
        # Until Ctrl-C or a TERM: the finally of postgres_server() stops and removes it.
        with suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
