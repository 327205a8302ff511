"""PostgreSQL (psycopg 3), made to keep SQLite's promises.

- Writers: SQLite runs one write transaction at a time, and davdisk relies on it (a
  read-check-then-write in one write transaction is never raced). PostgreSQL does not, so each
  write transaction first takes a transaction-scoped advisory lock, the writers' lock.
- Reads: a read transaction is REPEATABLE READ, READ ONLY: one snapshot, as SQLite's BEGIN
  gives (PostgreSQL's default, READ COMMITTED, takes a new snapshot for every statement).
- Migrations: a second advisory lock keeps two processes from upgrading the schema at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from sqlalchemy import Connection, Table, create_engine, text
from sqlalchemy.engine import URL

from davdisk.meta.dialects.base import Dialect, DriverError

# Advisory lock keys (any bigint; these spell "davdiskW" and "davdiskM" in ASCII), held to the
# end of the transaction that takes them.
WRITERS_LOCK = 0x6461766469736B57
MIGRATION_LOCK = 0x6461766469736B4D
_TAKE = "SELECT pg_advisory_xact_lock(%s)"


class PostgreSQLDialect(Dialect):
    """A PostgreSQL database; reads and writes share one engine."""

    name: ClassVar[str] = "postgresql"

    def __init__(self, url: str, *, pool_size: int) -> None:
        self.reader = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
        self.writer = self.reader
        # What this process may hold at once: the pool and as many again under a burst (a
        # thread may hold a read and a write connection at the same moment).
        self.max_connections = 2 * pool_size

    @contextmanager
    def read(self) -> Iterator[Connection]:
        # psycopg puts both into its BEGIN: no extra round trip. The pool resets them when
        # the connection goes back.
        with self.reader.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self.writer.begin() as conn:
            # lock_timeout covers every lock the transaction then waits for, the writers' lock
            # first. One round trip: both in one simple-query message (no parameters).
            conn.exec_driver_sql(
                f"SET LOCAL lock_timeout = {int(self.lock_wait_seconds * 1000)};"
                f" SELECT pg_advisory_xact_lock({WRITERS_LOCK})"
            )
            yield conn

    @contextmanager
    def _single(self) -> Iterator[Connection]:
        # One statement sees one snapshot by itself: no BEGIN and COMMIT around it (two round
        # trips of three, on every request's lookups). Autocommit is psycopg's own flag, set
        # and reset without a word to the server.
        with self.reader.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    def read_one(self, statement: Any, params: dict[str, Any]) -> tuple[Any, ...] | None:
        with self._single() as conn:
            row = conn.execute(statement, params).first()
        return tuple(row) if row is not None else None

    def read_all(self, statement: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self._single() as conn:
            return [tuple(row) for row in conn.execute(statement, params)]

    @contextmanager
    def migration(self) -> Iterator[Connection]:
        with self.writer.connect() as conn:
            # Another process upgrading at the same moment finishes first; alembic then reads
            # the revision it left (READ COMMITTED: after the lock) and has nothing to do.
            conn.exec_driver_sql(_TAKE, (MIGRATION_LOCK,))
            yield conn
            conn.commit()

    @property
    def location(self) -> str:
        return self.writer.url.render_as_string(hide_password=True)

    def integrity_problems(self, *, quick: bool) -> list[str]:
        return []  # its own checksums and WAL; an amcheck run would go here

    def erase_freed_space(self) -> None:
        pass  # VACUUM FULL is the operator's call (it locks the table)

    def startup_notes(self) -> list[tuple[int, str]]:
        # Every instance opens up to max_connections; PostgreSQL's default limit is 100 in all
        # (3 kept for superusers), and one more connection than that fails a request.
        with self.reader.connect() as conn:
            limit, reserved, in_use = conn.exec_driver_sql(
                "SELECT current_setting('max_connections')::int,"
                " current_setting('superuser_reserved_connections')::int,"
                " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
            ).one()
        note = (
            f"database {self.location}: up to {self.max_connections} connections from this"
            f" process ([server] threads + 4, twice); the server allows {limit - reserved},"
            f" {in_use} open now"
        )
        if self.max_connections > limit - reserved - in_use:
            return [(logging.WARNING, note + ": lower [server] threads or raise max_connections")]
        return [(logging.INFO, note)]

    def dispose(self) -> None:
        self.reader.dispose()  # the writer is the same engine

    @classmethod
    def reserve_ids(cls, conn: Connection, table: str, n: int) -> list[int]:
        rows = conn.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            (table, n),
        )
        return [int(r[0]) for r in rows]

    # --- a move's target (see Dialect) --------------------------------------------------------

    can_be_move_target: ClassVar[bool] = True

    @classmethod
    def move_target_url(cls, url: URL) -> URL:
        # A plain postgresql:// gets psycopg 3, the driver davdisk installs.
        if url.drivername == "postgresql":
            return url.set(drivername="postgresql+psycopg")
        return url

    @classmethod
    def bulk_insert(cls, conn: Connection, table: Table, rows: Iterable[tuple[Any, ...]]) -> None:
        # COPY, not INSERTs: the rows stream to PostgreSQL with no statement per batch (200 000
        # nodes: 9 s instead of 20). psycopg renders each value by its Python type, exactly.
        import psycopg  # the driver: there once a connection is open

        names = ", ".join(f'"{c.name}"' for c in table.columns)
        sql = f'COPY "{table.name}" ({names}) FROM STDIN'
        driver = conn.connection.driver_connection
        assert driver is not None
        try:
            with driver.cursor() as cursor, cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as e:
            raise DriverError(str(e)) from e

    @classmethod
    def restart_ids(cls, conn: Connection, table: str, column: str, highest: int) -> None:
        sequence = conn.scalar(
            text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table, "c": column}
        )
        if sequence is None:
            return
        if highest:
            conn.execute(text("SELECT setval(:s, :v, true)"), {"s": sequence, "v": highest})
        else:
            conn.execute(text("SELECT setval(:s, 1, false)"), {"s": sequence})
