"""Database engines, connection settings and schema migration.

Two engines on one URL: ``read()`` gives a consistent snapshot for queries, ``write()`` a
transaction that holds the database's write lock from its first statement (SQLite ``BEGIN
IMMEDIATE``), so read-then-write sequences never fail half way with "database is locked" and
several server processes on one data dir serialise their writes. Keep write transactions short:
never hold one while reading a request body.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError

from davdisk.errors import InsufficientStorage
from davdisk.meta.integrity import is_damage_code, sqlite_problems

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest migration; a unit test checks it against the migrations folder.
HEAD_REVISION = "0009"


def is_disk_full(exc: BaseException) -> bool:
    """Whether a database error says its disk is full (SQLite SQLITE_FULL, PostgreSQL 53100)."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlite_errorcode", None) == 13:  # sqlite3.SQLITE_FULL
        return True
    return "53100" in (getattr(orig, "sqlstate", None), getattr(orig, "pgcode", None))


def is_damaged(exc: BaseException) -> bool:
    """Whether a database error says its file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB)."""
    driver_error = getattr(exc, "orig", exc)  # SQLAlchemy wraps it, except in connect hooks
    return is_damage_code(getattr(driver_error, "sqlite_errorcode", None))


def _sqlite_engine(url: str, pool_size: int) -> Engine:
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_timeout=60)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (the driver's implicit BEGIN is DEFERRED, and comes only
        # before a write, so a read would not be one snapshot).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # NORMAL: SQLite syncs the WAL at checkpoints, not at each commit. Database.write()
        # syncs it after each commit itself (WalSync), outside the writers' lock, so a committed
        # write survives power loss as with FULL while commits that wait at once share an fsync.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


@contextmanager
def _sqlite_transaction(engine: Engine, begin: str) -> Iterator[Connection]:
    """A transaction opened with ``begin`` sent straight to the driver. (The documented recipe,
    a "begin" event listener, puts every statement of the engine through event dispatch: it cost
    half of a short read transaction.) SQLAlchemy's commit and rollback go to the driver, which
    ends the transaction it finds open."""
    with engine.connect() as conn:
        conn.connection.driver_connection.execute(begin)  # type: ignore[union-attr]
        with conn.begin():
            yield conn


class WalSync:
    """Group commit for SQLite's write-ahead log: :meth:`sync` returns once an fsync of the WAL
    that started after the caller's commit has finished.

    What ``synchronous=FULL`` does inside each commit, done after it: under a lock that
    serialises writers, a per-commit fsync made every writer wait for every earlier writer's
    fsync (4 KiB PUTs from 8 clients: ~50/s). Here one fsync covers every commit made before it
    started, and the next writers commit meanwhile. fsync acts on the file, not the descriptor,
    so a descriptor of our own serves; a WAL that is gone was checkpointed into the database
    (and synced) by SQLite, so there is nothing left to sync.
    """

    def __init__(self, wal_path: str) -> None:
        self._path = wal_path
        self._cond = threading.Condition()
        self._requested = 0  # commits that asked for a sync
        self._synced = 0  # commits covered by a finished sync
        self._syncing = False
        self.fsyncs = 0  # fsyncs done (for tests and curiosity)

    def sync(self) -> None:
        with self._cond:
            self._requested += 1
            ticket = self._requested
            while True:
                if self._synced >= ticket:
                    return
                if not self._syncing:
                    break
                self._cond.wait()
            self._syncing = True
            covers = self._requested
        done = False
        try:
            self._fsync()
            done = True
        finally:
            with self._cond:
                self._syncing = False
                if done:
                    self._synced = max(self._synced, covers)
                    self.fsyncs += 1
                self._cond.notify_all()

    def _fsync(self) -> None:
        try:
            fd = os.open(self._path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _SingleReads:
    """Single SELECT statements on SQLite, each on its own outside any transaction (one
    statement is its own consistent snapshot), through a per-thread driver connection.

    For the few queries every request makes (the user's login record, a path's node): through
    a pooled SQLAlchemy connection and transaction each cost ~100 us of Python, here ~10 us.
    The statements are built and compiled by SQLAlchemy once; rows come back as plain tuples
    in the statement's column order, without SQLAlchemy's type processing (booleans are 0/1).
    """

    def __init__(self, engine: Engine) -> None:
        self._database = engine.url.database or ""
        self._dialect = engine.dialect
        self._compiled: dict[int, tuple[Any, str, tuple[str, ...], dict[str, Any]]] = {}
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._database, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA query_only=ON")  # these connections never write
            # One per server thread: a small page cache each (the OS caches the file anyway).
            conn.execute("PRAGMA cache_size=-256")
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def _execute(self, statement: Any, params: dict[str, Any]) -> sqlite3.Cursor:
        found = self._compiled.get(id(statement))
        if found is None or found[0] is not statement:
            compiled = statement.compile(dialect=self._dialect)
            # Literal values (a LIMIT) are bound parameters too, with their values here;
            # bindparam()s without a value are required from the caller.
            fixed = {n: b.value for n, b in compiled.binds.items() if not b.required}
            found = (statement, str(compiled), tuple(compiled.positiontup or ()), fixed)
            self._compiled[id(statement)] = found
        _, sql, order, fixed = found
        return self._connection().execute(
            sql, [params[n] if n in params else fixed[n] for n in order]
        )

    def one(self, statement: Any, params: dict[str, Any]) -> tuple[Any, ...] | None:
        row = self._execute(statement, params).fetchone()
        return tuple(row) if row is not None else None

    def all(self, statement: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._execute(statement, params).fetchall()]

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            # Threads' connections: closing one from another thread is refused; it then goes
            # with its thread.
            with suppress(sqlite3.ProgrammingError):
                conn.close()


class Database:
    """The metadata database of one data dir (or one PostgreSQL URL)."""

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # SQLite has one writer at a time, and a writer waiting for it polls (busy_timeout) with
        # growing sleeps, so under a burst of writes one thread can lose every round until its
        # timeout (a 500 in the soak test). Writers of this process queue on this lock instead,
        # and are woken the moment it is free; busy_timeout is left for other processes.
        self._sqlite_writers = threading.RLock() if url.startswith("sqlite") else None
        if self.is_sqlite:
            self.reader = _sqlite_engine(url, pool_size)
            self.writer = _sqlite_engine(url, pool_size)
            self._single: _SingleReads | None = _SingleReads(self.reader)
            self.wal_sync: WalSync | None = WalSync((self.writer.url.database or "") + "-wal")
        else:
            self.reader = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
            self.writer = self.reader
            self._single = None
            self.wal_sync = None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        if self.is_sqlite:
            with _sqlite_transaction(self.reader, "BEGIN") as conn:
                yield conn
        else:
            with self.reader.begin() as conn:
                yield conn

    def read_one(self, statement: Any, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row of one SELECT, as a tuple in the statement's column order (None if no
        row). Cheaper than :meth:`read` on SQLite, where it runs outside any transaction: use it
        only for a query that needs no snapshot shared with another, and convert booleans."""
        if self._single is not None:
            return self._single.one(statement, params)
        with self.read() as conn:
            row = conn.execute(statement, params).first()
        return tuple(row) if row is not None else None

    def read_all(self, statement: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Every row of one SELECT, as :meth:`read_one` gives the first."""
        if self._single is not None:
            return self._single.all(statement, params)
        with self.read() as conn:
            return [tuple(row) for row in conn.execute(statement, params)]

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; a full disk fails it (rolled back) as InsufficientStorage."""
        try:
            if self.is_sqlite:
                writers = self._sqlite_writers or nullcontext()
                with writers, _sqlite_transaction(self.writer, "BEGIN IMMEDIATE") as conn:
                    yield conn
                assert self.wal_sync is not None
                self.wal_sync.sync()  # committed; durable once this returns
            else:
                with self.writer.begin() as conn:
                    yield conn
        except OperationalError as e:
            if not is_disk_full(e):
                raise
            logger.warning("database disk full: %s", e.orig)
            raise InsufficientStorage("no space left on the server for the database") from None

    @property
    def location(self) -> str:
        """Where the database is, for messages: its file, or its URL without the password."""
        if self.is_sqlite:
            return self.writer.url.database or ""
        return self.writer.url.render_as_string(hide_password=True)

    def integrity_problems(self, *, quick: bool = False) -> list[str]:
        """The database's own consistency check, one line per problem ([] if sound): on SQLite
        ``integrity_check`` and ``foreign_key_check``, or with ``quick`` only ``quick_check``
        (see ``integrity.py``). Works on a file too damaged for the engines to open."""
        if self.is_sqlite:
            return sqlite_problems(self.location, quick=quick)
        return []  # PostgreSQL: its own checksums and WAL; an amcheck run would go here

    def schema_revision(self) -> str | None:
        """The alembic revision the database is at; None for an empty database."""
        with self.reader.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def migrate(self) -> None:
        """Bring the schema to the newest alembic revision (creates it on first start)."""
        if self.schema_revision() == HEAD_REVISION:
            return  # the common case: skip importing alembic (it costs every CLI call ~0.3 s)
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.writer.connect() as conn:
            if self.is_sqlite:
                # Table rebuilds (0004) drop and recreate tables that others reference: with
                # enforcement on, the drop would cascade. The pragma only works outside a
                # transaction, so it goes to the driver before SQLAlchemy begins one.
                driver = conn.connection.driver_connection
                driver.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
                # All of the upgrade in one transaction: a failed migration leaves the old schema.
                driver.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                if self.is_sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left dangling references: {broken[:5]}")
                conn.commit()
                if self.wal_sync is not None:
                    self.wal_sync.sync()
            finally:
                if self.is_sqlite:
                    conn.rollback()
                    conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]

    def dispose(self) -> None:
        if self._single is not None:
            self._single.close()
        self.reader.dispose()
        self.writer.dispose()
