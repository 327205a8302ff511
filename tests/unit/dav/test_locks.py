"""SQLLockStorage: which locks are on and under a URL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, insert

from davdisk.dav.locks import SQLLockStorage
from davdisk.meta.db import Database
from davdisk.meta.models import Lock
from tests.pg import database_url_for_test


@pytest.fixture
def storage(tmp_path: Path) -> SQLLockStorage:
    db = Database(database_url_for_test(tmp_path / "l.db"))
    db.migrate()
    return SQLLockStorage(db)


def _lock(storage: SQLLockStorage, root: str, timeout: float = 60) -> str:
    lock = {"type": "write", "scope": "exclusive", "depth": "infinity", "owner": b"o"}
    lock.update(principal="p", timeout=timeout)
    return str(storage.create(root, lock)["root"])


def test_lock_lists_on_and_under_a_url_match_whole_path_segments(
    storage: SQLLockStorage,
) -> None:
    # Neighbours that share a prefix but not a path segment ("ab", "a0", "a.", "a ü") must not
    # count as under "a"; "0" is the character after "/", so "a0" sits at the range's edge.
    for root in ("/u/1/a", "/u/1/a/b", "/u/1/a/b/c", "/u/1/ab", "/u/1/a0", "/u/1/a.", "/u/1/a ü"):
        _lock(storage, root)

    def roots(**kw: bool) -> list[str]:
        found = storage.get_lock_list("/u/1/a/", token_only=False, **kw)
        return sorted(lock["root"] for lock in found)

    assert roots(include_root=True, include_children=False) == ["/u/1/a"]
    assert roots(include_root=False, include_children=True) == ["/u/1/a/b", "/u/1/a/b/c"]
    assert roots(include_root=True, include_children=True) == ["/u/1/a", "/u/1/a/b", "/u/1/a/b/c"]
    assert roots(include_root=False, include_children=False) == []
    tokens = storage.get_lock_list(
        "/u/1/ab", include_root=True, include_children=True, token_only=True
    )
    assert len(tokens) == 1 and isinstance(tokens[0], str)


def test_expired_locks_are_not_listed(storage: SQLLockStorage) -> None:
    _lock(storage, "/u/1/old", timeout=60)
    with storage._db.write() as conn:
        conn.exec_driver_sql("UPDATE locks SET expire = 1")
    assert (
        storage.get_lock_list("/u/1", include_root=False, include_children=True, token_only=True)
        == []
    )


def _plan(conn: Any, statement: Any, params: dict[str, Any]) -> str:
    """The query plan the database picks for ``statement`` with ``params``, as one string."""
    compiled = statement.compile(dialect=conn.dialect)
    values = compiled.construct_params(params)
    if compiled.positional:  # SQLite
        args: Any = tuple(values[n] for n in compiled.positiontup)
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), args)
        return "\n".join(str(r[-1]) for r in rows)
    rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), values)
    return "\n".join(str(r[0]) for r in rows)


def test_locks_under_a_url_are_found_through_the_index_on_root(
    storage: SQLLockStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The query for the locks below a URL is a range of roots (``root >= 'p/' AND root <
    'p0'``) that the index on root answers, on PostgreSQL too (locks.root is in the C collation
    there). Before: PostgreSQL compared ``substr(root, 1, n)``, a scan of every lock."""
    db = storage._db
    with db.write() as conn:
        conn.execute(
            insert(cast(Table, Lock.__table__)),
            [
                dict(
                    token=f"t{i}",
                    root=f"/u/{i % 50}/d{i}",
                    scope="shared",
                    depth="0",
                    owner=b"",
                    principal=str(i % 50),
                    timeout=60.0,
                    expire=time.time() + 60,
                )
                for i in range(5000)
            ],
        )
    with db.write() as conn:
        conn.exec_driver_sql("ANALYZE")
    seen: list[tuple[Any, dict[str, Any]]] = []
    read_all = db.read_all

    def recording(statement: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        seen.append((statement, params))
        return read_all(statement, params)

    monkeypatch.setattr(db, "read_all", recording)
    for root, children in ((False, True), (True, True)):
        seen.clear()
        storage.get_lock_list(
            "/u/7/d7", include_root=root, include_children=children, token_only=True
        )
        ((statement, params),) = seen
        with db.read() as conn:
            plan = _plan(conn, statement, params)
        assert "ix_locks_root" in plan and "SCAN locks" not in plan, plan
        assert "Seq Scan" not in plan, plan
