"""PostgreSQL (psycopg 3): one engine, row locks where SQLite has its single writer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, cast

from sqlalchemy import Connection, Table, create_engine, insert, select

from davdisk.meta.dialects.base import Dialect
from davdisk.meta.models import Mutex

mutexes = cast(Table, Mutex.__table__)


class PostgreSQLDialect(Dialect):
    """A PostgreSQL database; reads and writes share one engine."""

    name: ClassVar[str] = "postgresql"

    def __init__(self, url: str, *, pool_size: int) -> None:
        self.reader = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
        self.writer = self.reader

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.reader.begin() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self.writer.begin() as conn:
            yield conn

    def read_one(self, statement: Any, params: dict[str, Any]) -> tuple[Any, ...] | None:
        with self.read() as conn:
            row = conn.execute(statement, params).first()
        return tuple(row) if row is not None else None

    def read_all(self, statement: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self.read() as conn:
            return [tuple(row) for row in conn.execute(statement, params)]

    @contextmanager
    def migration(self) -> Iterator[Connection]:
        with self.writer.connect() as conn:
            yield conn
            conn.commit()

    @property
    def location(self) -> str:
        return self.writer.url.render_as_string(hide_password=True)

    def integrity_problems(self, *, quick: bool) -> list[str]:
        return []  # its own checksums and WAL; an amcheck run would go here

    def erase_freed_space(self) -> None:
        pass  # VACUUM FULL is the operator's call (it locks the table)

    def dispose(self) -> None:
        self.reader.dispose()  # the writer is the same engine

    @classmethod
    def serialise(cls, conn: Connection, name: str) -> None:
        # A row lock on the mutex row ``name``, made on first use.
        row = conn.execute(
            select(mutexes.c.name).where(mutexes.c.name == name).with_for_update()
        ).first()
        if row is None:
            conn.execute(insert(mutexes).values(name=name))

    @classmethod
    def reserve_ids(cls, conn: Connection, table: str, n: int) -> list[int]:
        rows = conn.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            (table, n),
        )
        return [int(r[0]) for r in rows]
