"""The database's own checks (meta/dialects/sqlite_integrity.py) on real SQLite files: paths
that a raw URI would misread, and the extended result codes that say a file is damaged."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from davdisk.meta.dialects.sqlite_integrity import is_damage_code, sqlite_problems


def _database(path: Path, rows: int = 2000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("CREATE INDEX t_name ON t (name)")
        db.executemany("INSERT INTO t (name) VALUES (?)", [(f"name-{i}",) for i in range(rows)])
    db.close()


@pytest.mark.parametrize("folder", ["data#1", "100% data", "what?", "plain"])
def test_paths_are_checked_where_they_are(tmp_path: Path, folder: str) -> None:
    """A raw ``file:`` URI cuts a path at '#' or '?' (and checked, or created, another file)
    and decodes '%' escapes (and refused a sound database)."""
    path = tmp_path / folder / "davdisk.db"
    _database(path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert sqlite_problems(str(path), quick=True) == []
    assert sqlite_problems(str(path), quick=False) == []
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "the check created a file"
    # Damage in that file is found there: garbage over a page of the index.
    raw = bytearray(path.read_bytes())
    page = 4096
    raw[-3 * page : -2 * page] = bytes(range(256)) * (page // 256)
    path.write_bytes(bytes(raw))
    assert sqlite_problems(str(path), quick=False), "damage not found"


@pytest.mark.parametrize(
    ("code", "damaged"),
    [
        (11, True),
        (26, True),
        (779, True),
        (523, True),
        (267, True),
        (5, False),
        (1, False),
        (None, False),
    ],
)
def test_extended_codes_of_damage(code: int | None, damaged: bool) -> None:
    # 779 SQLITE_CORRUPT_INDEX, 523 SQLITE_CORRUPT_SEQUENCE, 267 SQLITE_CORRUPT_VTAB; 5 BUSY.
    assert is_damage_code(code) is damaged
