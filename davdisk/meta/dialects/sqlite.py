"""SQLite: one file, one writer at a time, and the two things that make it fast here.

- Writers: ``BEGIN IMMEDIATE`` takes SQLite's write lock at the first statement; writers of
  this process queue on an in-process lock first (see :class:`SQLiteDialect`).
- Durability: ``synchronous=NORMAL`` plus :class:`WalSync`, a group commit of the WAL after
  the commit and outside the writers' lock.
- Reads: :class:`SingleReads` runs single SELECTs on a per-thread driver connection, outside
  SQLAlchemy's pool and transactions.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url

from davdisk.meta.dialects.base import Dialect
from davdisk.meta.dialects.sqlite_integrity import sqlite_problems
from davdisk.meta.dialects.sqlite_openers import opener_pid


def _engine(url: str, pool_size: int, dialect: Dialect) -> Engine:
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_timeout=60)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (the driver's implicit BEGIN is DEFERRED, and comes only
        # before a write, so a read would not be one snapshot).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # First: the journal mode below needs a lock another process may hold for a moment.
        cur.execute(f"PRAGMA busy_timeout={int(dialect.lock_wait_seconds * 1000)}")
        cur.execute("PRAGMA journal_mode=WAL")
        # NORMAL: SQLite syncs the WAL at checkpoints, not at each commit. write() syncs it
        # after each commit itself (WalSync), outside the writers' lock, so a committed write
        # survives power loss as with FULL while commits that wait at once share an fsync.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


@contextmanager
def _transaction(engine: Engine, begin: str) -> Iterator[Connection]:
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


class SingleReads:
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


class SQLiteDialect(Dialect):
    """A SQLite file in WAL mode, with a reader and a writer engine."""

    name: ClassVar[str] = "sqlite"

    def __init__(self, url: str, *, pool_size: int) -> None:
        self.reader = _engine(url, pool_size, self)
        self.writer = _engine(url, pool_size, self)
        self.single = SingleReads(self.reader)
        self.wal_sync = WalSync((self.writer.url.database or "") + "-wal")
        # SQLite has one writer at a time, and a writer waiting for it polls (busy_timeout)
        # with growing sleeps, so under a burst of writes one thread can lose every round until
        # its timeout (a 500 in the soak test). Writers of this process queue on this lock
        # instead, and are woken the moment it is free; busy_timeout is left for other
        # processes.
        self._writers = threading.RLock()

    def read(self) -> AbstractContextManager[Connection]:
        return _transaction(self.reader, "BEGIN")

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self._writers, _transaction(self.writer, "BEGIN IMMEDIATE") as conn:
            yield conn
        self.wal_sync.sync()  # committed; durable once this returns

    def read_one(self, statement: Any, params: dict[str, Any]) -> tuple[Any, ...] | None:
        return self.single.one(statement, params)

    def read_all(self, statement: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return self.single.all(statement, params)

    @contextmanager
    def migration(self) -> Iterator[Connection]:
        with self.writer.connect() as conn:
            # Table rebuilds (0004) drop and recreate tables that others reference: with
            # enforcement on, the drop would cascade. The pragma only works outside a
            # transaction, so it goes to the driver before SQLAlchemy begins one.
            driver = conn.connection.driver_connection
            driver.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            # All of the upgrade in one transaction: a failed migration leaves the old schema;
            # IMMEDIATE: a second process migrating at the same time waits for this one, then
            # finds the schema current. SQLAlchemy must know of the transaction: alembic then
            # leaves it alone (otherwise, SQLite's DDL not being "transactional" to alembic, it
            # committed after each migration, and two processes raced through them).
            driver.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
            try:
                transaction = conn.begin()
                yield conn
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left dangling references: {broken[:5]}")
                transaction.commit()
                self.wal_sync.sync()
            finally:
                conn.rollback()
                driver.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]

    @property
    def location(self) -> str:
        return self.writer.url.database or ""

    def integrity_problems(self, *, quick: bool) -> list[str]:
        # integrity_check and foreign_key_check (quick: quick_check), see integrity.py; works
        # on a file too damaged for the engines to open.
        return sqlite_problems(self.location, quick=quick)

    def erase_freed_space(self) -> None:
        # Emptied values stay in free pages and in the WAL: rewrite the file, truncate the log.
        with self.writer.connect() as conn:
            driver = conn.connection.driver_connection
            driver.execute("VACUUM")  # type: ignore[union-attr]
            driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]

    def startup_notes(self) -> list[tuple[int, str]]:
        return []  # a file: no server whose connections could run out

    def dispose(self) -> None:
        self.single.close()
        super().dispose()

    @classmethod
    def reserve_ids(cls, conn: Connection, table: str, n: int) -> list[int]:
        # AUTOINCREMENT: above every id ever given (sqlite_sequence), which then follows ours.
        assert table.isidentifier(), table  # one of ours, never input
        used = conn.exec_driver_sql(
            f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0),"
            f" coalesce((SELECT max(id) FROM {table}), 0))"
        ).scalar_one()
        return list(range(int(used) + 1, int(used) + n + 1))

    # --- a move's source (see Dialect) --------------------------------------------------------

    can_be_move_source: ClassVar[bool] = True
    own_tables: ClassVar[frozenset[str]] = frozenset({"sqlite_sequence"})

    @classmethod
    def opener_elsewhere(cls, url: str) -> int | None:
        return opener_pid(make_url(url).database or "")

    @classmethod
    def snapshot_reader(cls, url: str) -> Engine:
        engine = create_engine(url)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # snapshot() BEGINs itself
            dbapi_conn.execute("PRAGMA query_only=ON")  # a move never writes its source
            dbapi_conn.execute("PRAGMA busy_timeout=30000")

        return engine

    @classmethod
    @contextmanager
    def snapshot(cls, conn: Connection) -> Iterator[None]:
        # One snapshot from the first read on. Nothing was written: ROLLBACK ends it. (After an
        # error, closing the connection does.)
        conn.exec_driver_sql("BEGIN")
        yield
        conn.exec_driver_sql("ROLLBACK")

    @classmethod
    def change_count(cls, conn: Connection) -> int:
        # Changes when another connection commits to the file.
        return int(conn.exec_driver_sql("PRAGMA data_version").scalar_one())

    @classmethod
    def id_high_water(cls, conn: Connection) -> dict[str, int]:
        # AUTOINCREMENT (migration 0004) records every table's highest id in sqlite_sequence,
        # made with the first such id.
        if not inspect(conn).has_table("sqlite_sequence"):
            return {}
        rows = conn.exec_driver_sql("SELECT name, seq FROM sqlite_sequence")
        return {str(name): int(seq or 0) for name, seq in rows}
