"""Queries on login failures (the throttle's counters, shared by every process)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    Connection,
    delete,
    insert,
    select,
    update,
)

from davdisk.meta.tables import login_failures

__all__ = [
    "FailureCount",
    "clear_login_failures",
    "login_failures_for",
    "prune_login_failures",
    "save_login_failure",
]


@dataclass(frozen=True, slots=True)
class FailureCount:
    failures: int
    locked_until: float
    last_failure: float


def login_failures_for(conn: Connection, keys: Sequence[str]) -> dict[str, FailureCount]:
    rows = conn.execute(select(login_failures).where(login_failures.c.key.in_(list(keys))))
    return {r.key: FailureCount(r.failures, r.locked_until, r.last_failure) for r in rows}


def save_login_failure(conn: Connection, key: str, count: FailureCount) -> None:
    """Insert or replace one key's counter (callers hold a write transaction)."""
    values = {
        "failures": count.failures,
        "locked_until": count.locked_until,
        "last_failure": count.last_failure,
    }
    updated = conn.execute(
        update(login_failures).where(login_failures.c.key == key).values(**values)
    )
    if not updated.rowcount:
        conn.execute(insert(login_failures).values(key=key, **values))


def clear_login_failures(conn: Connection, keys: Sequence[str]) -> None:
    conn.execute(delete(login_failures).where(login_failures.c.key.in_(list(keys))))


def prune_login_failures(conn: Connection, before: float, now: float) -> int:
    """Forget counters whose last failure is older than ``before`` and that lock nothing."""
    result = conn.execute(
        delete(login_failures).where(
            login_failures.c.last_failure < before, login_failures.c.locked_until < now
        )
    )
    return int(result.rowcount or 0)
