"""What a database backend must provide (see the package docstring); one subclass per backend."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from itertools import islice
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.engine import URL


class DriverError(Exception):
    """An error of the database driver met outside SQLAlchemy (a bulk insert's COPY), with the
    driver's message."""


class Dialect:
    """One database backend, for one database URL."""

    name: ClassVar[str]
    reader: Engine  # read transactions
    writer: Engine  # write transactions (the same engine where the backend needs no second)
    # How long a write transaction waits for the writers' lock before it fails (a lock that is
    # never released must not hang requests for ever). Read when a connection is made.
    lock_wait_seconds: float = 30

    def read(self) -> AbstractContextManager[Connection]:
        """A read transaction: every statement in it sees one snapshot of the database."""
        raise NotImplementedError

    def write(self) -> AbstractContextManager[Connection]:
        """A write transaction that holds the writers' lock from its first statement, so that
        write transactions of every process run one at a time (a read-check-then-write in one
        is never raced), and whose commit is durable when the context exits."""
        raise NotImplementedError

    def read_one(self, statement: Any, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row of one SELECT (no snapshot shared with another statement), as a
        tuple in the statement's column order; booleans may come back as 0/1."""
        raise NotImplementedError

    def read_all(self, statement: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Every row of one SELECT, as :meth:`read_one` gives the first."""
        raise NotImplementedError

    def migration(self) -> AbstractContextManager[Connection]:
        """The connection alembic upgrades on: one transaction, committed when the context
        exits without error, and exclusive against a migration run by another process."""
        raise NotImplementedError

    @property
    def location(self) -> str:
        """Where the database is, for messages (never with a password)."""
        raise NotImplementedError

    def integrity_problems(self, *, quick: bool) -> list[str]:
        """The backend's own consistency check, one line per problem ([] if sound)."""
        raise NotImplementedError

    def erase_freed_space(self) -> None:
        """Make values just emptied unreadable in the database's files too, if the backend
        can do that without locking out the server for long."""
        raise NotImplementedError

    def startup_notes(self) -> list[tuple[int, str]]:
        """(log level, message) lines for the server's start: what an operator should know
        about this database's limits."""
        raise NotImplementedError

    def dispose(self) -> None:
        self.reader.dispose()
        self.writer.dispose()

    # --- for code that holds only a connection (classmethods) -------------------------------

    @classmethod
    def reserve_ids(cls, conn: Connection, table: str, n: int) -> list[int]:
        """``n`` ids of ``table`` no row has had (inside a write transaction); the table's
        own id sequence then continues above them."""
        raise NotImplementedError

    # --- moving an install's database (``davdisk db migrate``, meta/transfer.py) -------------
    # Which end of a move the backend can be: a SQLite file moves out, into PostgreSQL. A
    # backend that implements the source's methods below can be a source too.
    can_be_move_source: ClassVar[bool] = False
    can_be_move_target: ClassVar[bool] = False
    # Tables the backend keeps for itself in davdisk's database: no data of an install.
    own_tables: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def move_target_url(cls, url: URL) -> URL:
        """``url`` with the driver davdisk installs for this backend, where it names none."""
        return url

    @classmethod
    def opener_elsewhere(cls, url: str) -> int | None:
        """The pid of another process that has the database open (a running server), found
        without opening it; None if there is none, or if the backend cannot tell."""
        return None

    @classmethod
    def snapshot_reader(cls, url: str) -> Engine:
        """An engine for a move's source, whose connections never write."""
        raise NotImplementedError

    @classmethod
    def snapshot(cls, conn: Connection) -> AbstractContextManager[None]:
        """One snapshot for every statement on ``conn`` (of :meth:`snapshot_reader`) inside."""
        raise NotImplementedError

    @classmethod
    def change_count(cls, conn: Connection) -> int:
        """A number that changes when another connection commits to the database (``conn``
        of :meth:`snapshot_reader`, outside a snapshot)."""
        raise NotImplementedError

    @classmethod
    def id_high_water(cls, conn: Connection) -> dict[str, int]:
        """Per table, the highest id the database has given out, deleted rows' too (tables it
        keeps no record for are left out)."""
        raise NotImplementedError

    @classmethod
    def bulk_insert(cls, conn: Connection, table: Table, rows: Iterable[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (values in ``table.columns`` order) into the empty ``table``, inside
        a write transaction. Here: executemany, a batch at a time."""
        names = [c.name for c in table.columns]
        batches = iter(rows)
        while batch := list(islice(batches, 5000)):
            conn.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in batch])

    @classmethod
    def restart_ids(cls, conn: Connection, table: str, column: str, highest: int) -> None:
        """The id sequence of ``table.column`` continues above ``highest`` (from 1 if 0)."""
        raise NotImplementedError
