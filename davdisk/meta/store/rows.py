"""How rows become values, shared by the repositories: node columns, damaged-index errors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    select,
)

from davdisk.errors import IntegrityError
from davdisk.meta.tables import nodes
from davdisk.model import Node

__all__ = [
    "Node",
    "damaged",
]

NODE_COLS = (
    nodes.c.id,
    nodes.c.owner_id,
    nodes.c.parent_id,
    nodes.c.name,
    nodes.c.is_dir,
    nodes.c.size,
    nodes.c.mtime,
    nodes.c.ctime,
    nodes.c.etag,
    nodes.c.content_type,
    nodes.c.checksums,
    nodes.c.current_blob_id,
)


def entry_of_row(row: Any) -> Node:
    return Node(*row[:N_NODE_COLS])


def entry_of_tuple(row: tuple[Any, ...]) -> Node:
    """An Node from a driver row (``Database.read_one``), whose booleans are 0/1."""
    values = list(row[:N_NODE_COLS])
    values[4] = bool(values[4])
    return Node(*values)


N_NODE_COLS = len(NODE_COLS)


LIVE = nodes.c.deleted_at.is_(None)


def damaged(what: str) -> IntegrityError:
    """The error for a row that is not what its index lookup asked for (see the docstring);
    the face that meets it logs it (http/errors.py) or prints it (the CLI)."""
    return IntegrityError(f"database index damaged: {what}; stop the server and run davdisk fsck")


def chunks(ids: list[int], n: int = 500) -> Iterable[list[int]]:
    for i in range(0, len(ids), n):
        yield ids[i : i + n]


def by_token_hash(table: Table) -> Any:
    """SELECT the row of ``table`` whose ``token_hash`` is ``:token_hash``: found through the
    index, then read again from the table by rowid (see the module docstring)."""
    row = table.alias("row")
    return (
        select(row)
        .join_from(table, row, row.c.id == table.c.id)
        .where(table.c.token_hash == bindparam("token_hash"))
    )


def row_by_token_hash(conn: Connection, statement: Any, token_hash: str, what: str) -> Any:
    row = conn.execute(statement, {"token_hash": token_hash}).first()
    if row is not None and row.token_hash != token_hash:
        # A link or an app password must never stand for another one.
        raise damaged(f"looking up {what} found row {row.id}, which has another hash")
    return row
