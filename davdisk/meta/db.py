"""The metadata database: its transactions and schema migration, on any backend.

``read()`` gives a consistent snapshot for queries, ``write()`` a transaction that holds the
writers' lock from its first statement, so read-then-write sequences never fail half way and
several server processes on one database serialise their writes. How each backend does that
is its dialect's business (meta/dialects/). Keep write transactions short: never hold one while
reading a request body.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import IntegrityError, OperationalError

from davdisk.errors import ConcurrentChange, InsufficientStorage
from davdisk.meta import dialects
from davdisk.meta.dialects import Dialect, is_damaged, is_disk_full, is_unique_violation

__all__ = ["HEAD_REVISION", "MIGRATIONS", "Database", "is_damaged", "is_disk_full"]

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest migration; a unit test checks it against the migrations folder.
HEAD_REVISION = "0011"


class Database:
    """The metadata database of one data dir (or one PostgreSQL URL)."""

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = url
        # Every difference between the backends is in the dialect (meta/dialects/).
        self.dialect: Dialect = dialects.for_url(url, pool_size=pool_size)
        self.reader = self.dialect.reader
        self.writer = self.dialect.writer

    def read(self) -> AbstractContextManager[Connection]:
        """A read transaction: one snapshot for all its statements."""
        return self.dialect.read()

    def read_one(self, statement: Any, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row of one SELECT, as a tuple in the statement's column order (None if no
        row). Cheaper than :meth:`read` on SQLite, where it runs outside any transaction: use it
        only for a query that needs no snapshot shared with another, and convert booleans."""
        return self.dialect.read_one(statement, params)

    def read_all(self, statement: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Every row of one SELECT, as :meth:`read_one` gives the first."""
        return self.dialect.read_all(statement, params)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, alone among the write transactions of every process; a full
        disk fails it (rolled back) as InsufficientStorage, a row refused by a unique index as
        ConcurrentChange (409)."""
        try:
            with self.dialect.write() as conn:
                yield conn
        except OperationalError as e:
            if not is_disk_full(e):
                raise
            logger.warning("database disk full: %s", e.orig)
            raise InsufficientStorage("no space left on the server for the database") from None
        except IntegrityError as e:
            # Writers run one at a time, so a row a unique index refuses was made by a change
            # the caller did not check for inside this transaction: the request lost a race.
            if not is_unique_violation(e):
                raise
            logger.warning("write refused by a unique index (a concurrent change): %s", e.orig)
            raise ConcurrentChange(str(e.orig).strip().splitlines()[0]) from None

    @property
    def location(self) -> str:
        """Where the database is, for messages: its file, or its URL without the password."""
        return self.dialect.location

    def integrity_problems(self, *, quick: bool = False) -> list[str]:
        """The database's own consistency check, one line per problem ([] if sound): on SQLite
        ``integrity_check`` and ``foreign_key_check``, or with ``quick`` only ``quick_check``
        (see ``integrity.py``). Works on a file too damaged for the engines to open."""
        return self.dialect.integrity_problems(quick=quick)

    def startup_notes(self) -> list[tuple[int, str]]:
        """(log level, message) lines for the server's start (e.g. PostgreSQL's connections)."""
        return self.dialect.startup_notes()

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
        with self.dialect.migration() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.dialect.dispose()
