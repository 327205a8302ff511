"""Every difference between the database backends, behind one interface.

:class:`Dialect` says what a backend must provide: its engines, a read transaction that is one
snapshot, a write transaction that excludes every other writer (in any process), the cheap path
for single SELECTs, its migration transaction, its way to reserve ids, and so on. Each backend
implements it once (``sqlite.py``, ``postgresql.py``); :func:`for_url` picks one from the
database URL, once, when the :class:`~davdisk.meta.db.Database` is made. Nothing outside this
package asks which backend it is on: it asks the dialect to do the thing instead.
"""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from davdisk.meta.dialects.base import Dialect, DriverError
from davdisk.meta.dialects.postgresql import PostgreSQLDialect
from davdisk.meta.dialects.sqlite import SQLiteDialect
from davdisk.meta.dialects.sqlite_integrity import is_damage_code

__all__ = [
    "Dialect",
    "DriverError",
    "for_url",
    "is_damaged",
    "is_disk_full",
    "is_unique_violation",
    "kind_of",
    "location",
    "of",
]


def for_url(url: str, *, pool_size: int) -> Dialect:
    """The dialect of the database at ``url`` (SQLite file or PostgreSQL)."""
    if url.startswith("sqlite"):
        return SQLiteDialect(url, pool_size=pool_size)
    return PostgreSQLDialect(url, pool_size=pool_size)


def kind_of(url: str | URL) -> type[Dialect] | None:
    """The dialect class of the database at ``url``, without opening it; None if ``url`` is no
    database URL or names a backend davdisk does not speak."""
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        return None
    return {"sqlite": SQLiteDialect, "postgresql": PostgreSQLDialect}.get(backend)


def of(conn: Connection) -> type[Dialect]:
    """The dialect a connection speaks (for code given a connection, not the Database)."""
    return SQLiteDialect if conn.dialect.name == "sqlite" else PostgreSQLDialect


def location(url: str) -> str:
    """Where the database at ``url`` is, for messages, without opening it: a SQLite file's
    path, or the URL without its password."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


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


def is_unique_violation(exc: BaseException) -> bool:
    """Whether a database error is a unique index or primary key refusing a row (SQLite
    SQLITE_CONSTRAINT_UNIQUE or _PRIMARYKEY, PostgreSQL 23505)."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlite_errorcode", None) in (2067, 1555):
        return True
    return getattr(orig, "sqlstate", None) == "23505"
