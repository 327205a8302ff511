"""Small builders the metadata contract tests share: users, nodes and blob rows made through
the store's own functions, as the files layer makes them."""

from __future__ import annotations

import secrets
import time

from sqlalchemy import Connection

from davdisk.meta import store
from davdisk.meta.db import Database
from davdisk.model import Node, User


def add_user(db: Database, name: str) -> User:
    with db.write() as conn:
        return store.create_user(conn, name, f"hash-of-{name}")


def add_node(
    conn: Connection,
    owner_id: int,
    parent_id: int,
    name: str,
    *,
    is_dir: bool = False,
    size: int = 0,
    blob_id: str | None = None,
) -> Node:
    now = time.time()
    return store.insert_node(
        conn,
        owner_id=owner_id,
        parent_id=parent_id,
        name=name,
        is_dir=is_dir,
        size=size,
        mtime=now,
        ctime=now,
        etag=f"etag-{name}",
        content_type=None if is_dir else "application/octet-stream",
        current_blob_id=blob_id,
    )


def add_blob(conn: Connection, owner_id: int, size: int = 10, *, key_version: int = 1) -> str:
    blob_id = secrets.token_hex(16)
    store.insert_blob(
        conn,
        blob_id,
        owner_id=owner_id,
        node_id=None,
        key_version=key_version,
        size_plain=size,
        size_cipher=size + 40,
    )
    return blob_id


def add_file(conn: Connection, owner_id: int, parent_id: int, name: str, size: int = 10) -> Node:
    """A file with a blob row of its own."""
    blob_id = add_blob(conn, owner_id, size)
    return add_node(conn, owner_id, parent_id, name, size=size, blob_id=blob_id)


def blob_ids(*entries: Node) -> list[str]:
    """The sorted blob ids of files (each has one)."""
    found = [e.blob_id for e in entries]
    assert None not in found
    return sorted(e for e in found if e is not None)
