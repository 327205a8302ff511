"""The ``locks`` table: WebDAV lock rows, and the queries WsgiDAV's lock storage needs.

Rows come back as dicts keyed by column name; what a lock means to WebDAV (WsgiDAV's lock
dictionaries, conflict rules, limits) is dav/locks.py's business. Queries that take a
``conn`` run on the caller's transaction; with ``conn=None`` a single query reads on its own
(:meth:`~davdisk.meta.db.Database.read_all`: no transaction needed for one statement).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    update,
)

from davdisk.meta.db import Database
from davdisk.meta.tables import locks

__all__ = [
    "delete_locks_under",
]


COLUMNS = tuple(c.name for c in locks.c)


# WsgiDAV asks for the locks on and around a URL several times per write request (nine for
# a PUT): built once, these cost ~50 us each instead of ~400 (see meta/store/).
_NOT_EXPIRED = locks.c.expire >= bindparam("now")


_ON_ROOT = locks.c.root == bindparam("root")


# Roots starting with "<path>/" are those from "<path>/" up to "<path>0" ("0" follows "/"): a
# range the index on root answers, instead of a scan of every lock. It needs text compared
# bytewise: SQLite does; on PostgreSQL locks.root is in the "C" collation (migration 0009).
_UNDER = (locks.c.root >= bindparam("prefix")) & (locks.c.root < bindparam("prefix_end"))


_LISTS = {
    (True, False): select(locks).where(_ON_ROOT, _NOT_EXPIRED),
    (False, True): select(locks).where(_UNDER, _NOT_EXPIRED),
    (True, True): select(locks).where(_ON_ROOT | _UNDER, _NOT_EXPIRED),
}


_on_any: dict[int, Any] = {}


def _under(root: str) -> tuple[str, str]:
    """The range of roots strictly below ``root``: [prefix, prefix_end)."""
    prefix = root.rstrip("/") + "/"
    return prefix, prefix[:-1] + "0"


def _rows(db: Database, conn: Connection | None, statement: Any, params: dict[str, Any]) -> Any:
    if conn is not None:
        rows = [tuple(r) for r in conn.execute(statement, params)]
    else:
        rows = db.read_all(statement, params)
    return [dict(zip(COLUMNS, r, strict=True)) for r in rows]


def live_on_or_under(
    db: Database,
    conn: Connection | None,
    root: str,
    *,
    on_root: bool,
    under: bool,
    now: float,
) -> list[dict[str, Any]]:
    """The live locks on ``root`` (``on_root``) and/or strictly below it (``under``)."""
    prefix, prefix_end = _under(root)
    params = {"root": root, "prefix": prefix, "prefix_end": prefix_end, "now": now}
    return _rows(db, conn, _LISTS[on_root, under], params)


def live_on_any(
    db: Database, conn: Connection | None, roots: list[str], *, now: float
) -> list[dict[str, Any]]:
    """The live locks whose root is one of ``roots``, in one statement."""
    statement = _on_any.get(len(roots))
    if statement is None:  # built once per length: a URL and its parents, a handful
        binds: list[Any] = [bindparam(f"r{i}") for i in range(len(roots))]
        statement = select(locks).where(locks.c.root.in_(binds), _NOT_EXPIRED)
        _on_any[len(roots)] = statement
    params: dict[str, Any] = {f"r{i}": root for i, root in enumerate(roots)}
    params["now"] = now
    return _rows(db, conn, statement, params)


def get(conn: Connection, token: str) -> dict[str, Any] | None:
    """The lock ``token``, expired or not."""
    row = conn.execute(select(locks).where(locks.c.token == token)).first()
    return None if row is None else dict(row._mapping)


def count_held(conn: Connection, principal: str) -> int:
    return conn.scalar(select(func.count()).where(locks.c.principal == principal)) or 0


def count_on(conn: Connection, root: str) -> int:
    return conn.scalar(select(func.count()).where(locks.c.root == root)) or 0


def add(conn: Connection, values: dict[str, Any]) -> None:
    """A new lock row; ``values`` holds every column."""
    conn.execute(insert(locks).values({c: values[c] for c in COLUMNS}))


def refresh(conn: Connection, token: str, *, timeout: float, expire: float) -> None:
    conn.execute(update(locks).where(locks.c.token == token).values(timeout=timeout, expire=expire))


def remove(conn: Connection, token: str) -> bool:
    """Drop the lock ``token``; whether there was one."""
    return conn.execute(delete(locks).where(locks.c.token == token)).rowcount > 0


def park(conn: Connection, root: str, parked: str, *, until: float) -> None:
    """File the locks on ``root`` under ``parked`` (a root no resource has), to expire by
    ``until`` at the latest."""
    expire = case((locks.c.expire < until, locks.c.expire), else_=until)
    conn.execute(update(locks).where(locks.c.root == root).values(root=parked, expire=expire))


def unpark(conn: Connection, parked: str, root: str, *, now: float) -> None:
    """Put the live locks filed under ``parked`` back on ``root``, each for its full timeout
    again from ``now``."""
    conn.execute(
        update(locks)
        .where(locks.c.root == parked, locks.c.expire >= now)
        .values(root=root, expire=locks.c.timeout + now)
    )


def remove_expired(conn: Connection, now: float) -> None:
    conn.execute(delete(locks).where(locks.c.expire < now))


def remove_all(conn: Connection) -> None:
    conn.execute(delete(locks))


def on_or_under(root: str) -> Any:
    """The condition "a lock on ``root`` or below it", as a range the index on root answers."""
    prefix, prefix_end = _under(root)
    return (locks.c.root == root) | ((locks.c.root >= prefix) & (locks.c.root < prefix_end))


def remove_on_and_under(conn: Connection, root: str) -> None:
    """Drop every lock on ``root`` and below it."""
    conn.execute(delete(locks).where(on_or_under(root)))


def delete_locks_under(conn: Connection, root: str, *, principal: str) -> None:
    """Drop one principal's WebDAV locks on ``root`` and below."""
    conn.execute(delete(locks).where(locks.c.principal == principal, on_or_under(root)))
