"""``meta/transfer.py``: what ``davdisk db migrate`` copies, and in what order (the move itself
runs against a real PostgreSQL in tests/live/test_db_migrate.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import inspect, make_url

from davdisk.meta.db import Database
from davdisk.meta.transfer import TABLES, Transfer, TransferError, _in_parent_order


def _migrated(path: Path) -> Database:
    db = Database(f"sqlite:///{path}")
    db.migrate()
    return db


def test_every_table_of_the_schema_is_copied(tmp_path: Path) -> None:
    """A table a migration adds is data the move must carry: it must be in TABLES."""
    db = _migrated(tmp_path / "m.db")
    with db.reader.connect() as conn:
        tables = set(inspect(conn).get_table_names()) - {"alembic_version", "sqlite_sequence"}
    db.dispose()
    assert tables == {t.name for t in TABLES}


def test_a_source_with_a_table_unknown_to_the_move_is_refused(tmp_path: Path) -> None:
    db = _migrated(tmp_path / "m.db")
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE invoices (id INTEGER)")
    db.dispose()
    # Refused before the target is touched (this one does not even exist).
    transfer = Transfer(db.url, make_url("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    with pytest.raises(TransferError, match=r"tables this davdisk does not know.*invoices"):
        transfer.run()


def _row(id_: int, parent: int | None) -> SimpleNamespace:
    return SimpleNamespace(_mapping={"id": id_, "parent_id": parent})


def test_rows_come_after_their_parent_whatever_their_ids() -> None:
    # 2 was moved under 5 (made later); 3 lives in 2; 6 in 3.
    rows = [_row(1, None), _row(2, 5), _row(3, 2), _row(4, 1), _row(5, 1), _row(6, 3)]
    out = [r._mapping["id"] for r in _in_parent_order(rows, "id", "parent_id")]
    assert sorted(out) == [1, 2, 3, 4, 5, 6]
    position = {node: i for i, node in enumerate(out)}
    for r in rows:
        parent = r._mapping["parent_id"]
        if parent is not None:
            assert position[parent] < position[r._mapping["id"]], out


def test_a_row_whose_parent_never_comes_is_refused() -> None:
    rows = [_row(1, None), _row(2, 9)]
    with pytest.raises(TransferError, match="1 rows of the source point at a parent"):
        list(_in_parent_order(rows, "id", "parent_id"))
