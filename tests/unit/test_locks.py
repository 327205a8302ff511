"""SQLLockStorage: which locks are on and under a URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from davdisk.dav.locks import SQLLockStorage
from davdisk.meta.db import Database
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
