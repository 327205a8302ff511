"""Database engines, connection settings and schema migration.

Two engines on one URL: ``read()`` gives a consistent snapshot for queries, ``write()`` a
transaction that holds the database's write lock from its first statement (SQLite ``BEGIN
IMMEDIATE``), so read-then-write sequences never fail half way with "database is locked" and
several server processes on one data dir serialise their writes. Keep write transactions short:
never hold one while reading a request body.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError

from davdisk.errors import InsufficientStorage

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest migration; a unit test checks it against the migrations folder.
HEAD_REVISION = "0004"


def is_disk_full(exc: BaseException) -> bool:
    """Whether a database error says its disk is full (SQLite SQLITE_FULL, PostgreSQL 53100)."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlite_errorcode", None) == 13:  # sqlite3.SQLITE_FULL
        return True
    return "53100" in (getattr(orig, "sqlstate", None), getattr(orig, "pgcode", None))


def _sqlite_engine(url: str, begin: str, pool_size: int) -> Engine:
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_timeout=60)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (the driver's implicit BEGIN is DEFERRED).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed write survives power loss, as the durability promise requires.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


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
            self.reader = _sqlite_engine(url, "BEGIN", pool_size)
            self.writer = _sqlite_engine(url, "BEGIN IMMEDIATE", pool_size)
        else:
            self.reader = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
            self.writer = self.reader

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.reader.begin() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; a full disk fails it (rolled back) as InsufficientStorage."""
        try:
            with self._sqlite_writers or nullcontext(), self.writer.begin() as conn:
                yield conn
        except OperationalError as e:
            if not is_disk_full(e):
                raise
            logger.warning("database disk full: %s", e.orig)
            raise InsufficientStorage("no space left on the server for the database") from None

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
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                if self.is_sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left dangling references: {broken[:5]}")
                conn.commit()
            finally:
                if self.is_sqlite:
                    conn.rollback()
                    conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]

    def dispose(self) -> None:
        self.reader.dispose()
        self.writer.dispose()
