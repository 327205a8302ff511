"""What a database backend must provide (see the package docstring); one subclass per backend."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine


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
