"""Queries on blob rows: which blob holds which content, under which key version."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from davdisk.meta.tables import blobs, loose_blobs, nodes, versions

__all__ = [
    "DEAD",
    "PENDING",
    "all_blob_rows",
    "blob_in_use",
    "blob_rows_among",
    "drop_unreferenced_blobs",
    "forget_loose_blobs",
    "get_blob_key_version",
    "insert_blob",
    "loose_blobs_since",
    "mark_blob_pending",
    "mark_blobs_dead",
    "repoint_blob",
    "unreferenced_blob_ids",
]

_BLOB_KEY_VERSION = select(blobs.c.key_version).where(blobs.c.id == bindparam("blob_id"))


_INSERT_BLOB = insert(blobs)


def insert_blob(
    conn: Connection,
    blob_id: str,
    *,
    owner_id: int,
    node_id: int | None,
    key_version: int,
    size_plain: int,
    size_cipher: int,
) -> None:
    conn.execute(
        _INSERT_BLOB,
        {
            "id": blob_id,
            "owner_id": owner_id,
            "node_id": node_id,
            "key_version": key_version,
            "size_plain": size_plain,
            "size_cipher": size_cipher,
            "created_at": time.time(),
        },
    )


def get_blob_key_version(conn: Connection, blob_id: str) -> int | None:
    return conn.scalar(_BLOB_KEY_VERSION, {"blob_id": blob_id})


# A blob is in use while a node's current content or a kept version names it: a trashed file's
# node still points at its blob, so the trash needs no term of its own.


def drop_unreferenced_blobs(conn: Connection, blob_ids: Iterable[str | None]) -> list[str]:
    """Delete the rows of those blobs no node or version points to; return the ids deleted."""
    ids = list({i for i in blob_ids if i})
    if not ids:
        return []
    dead: list[str] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        referenced = set(
            conn.scalars(
                select(nodes.c.current_blob_id).where(nodes.c.current_blob_id.in_(chunk)).distinct()
            )
        )
        referenced.update(
            conn.scalars(select(versions.c.blob_id).where(versions.c.blob_id.in_(chunk)).distinct())
        )
        gone = [i for i in chunk if i not in referenced]
        if gone:
            conn.execute(delete(blobs).where(blobs.c.id.in_(gone)))
            dead += gone
    return dead


def blob_in_use(conn: Connection, blob_id: str) -> bool:
    """Whether any node or version points at this blob."""
    return bool(
        conn.scalar(
            select(func.count()).select_from(nodes).where(nodes.c.current_blob_id == blob_id)
        )
        or conn.scalar(
            select(func.count()).select_from(versions).where(versions.c.blob_id == blob_id)
        )
    )


def repoint_blob(conn: Connection, old_id: str, new_id: str) -> None:
    """Point every node and version on blob ``old_id`` at ``new_id`` (whose row exists) and
    delete the old row."""
    conn.execute(
        update(nodes).where(nodes.c.current_blob_id == old_id).values(current_blob_id=new_id)
    )
    conn.execute(update(versions).where(versions.c.blob_id == old_id).values(blob_id=new_id))
    conn.execute(delete(blobs).where(blobs.c.id == old_id))


def all_blob_rows(conn: Connection) -> dict[str, int]:
    """Every blob row: id -> ciphertext size."""
    return {r.id: r.size_cipher for r in conn.execute(select(blobs.c.id, blobs.c.size_cipher))}


def unreferenced_blob_ids(conn: Connection) -> list[str]:
    ref = select(nodes.c.id).where(nodes.c.current_blob_id == blobs.c.id).exists()
    kept = select(versions.c.id).where(versions.c.blob_id == blobs.c.id).exists()
    return list(conn.scalars(select(blobs.c.id).where(~ref, ~kept)))


# --- loose blobs: uploads under way and deferred deletes (models.LooseBlob) -------------------

PENDING = "pending"
DEAD = "dead"


def mark_blob_pending(conn: Connection, blob_id: str, now: float) -> None:
    conn.execute(insert(loose_blobs), {"id": blob_id, "state": PENDING, "since": now})


def mark_blobs_dead(conn: Connection, blob_ids: Iterable[str], now: float) -> None:
    rows = [{"id": i, "state": DEAD, "since": now} for i in blob_ids]
    if rows:
        conn.execute(insert(loose_blobs), rows)


def forget_loose_blobs(conn: Connection, blob_ids: Iterable[str]) -> None:
    ids = list(blob_ids)
    for start in range(0, len(ids), 500):
        conn.execute(delete(loose_blobs).where(loose_blobs.c.id.in_(ids[start : start + 500])))


def loose_blobs_since(conn: Connection, state: str, before: float) -> list[str]:
    """Ids of loose blobs in ``state`` since before ``before``, oldest first."""
    query = (
        select(loose_blobs.c.id)
        .where(loose_blobs.c.state == state, loose_blobs.c.since <= before)
        .order_by(loose_blobs.c.since)
    )
    return list(conn.scalars(query))


def blob_rows_among(conn: Connection, blob_ids: Iterable[str]) -> set[str]:
    """Those of ``blob_ids`` that have a blob row."""
    ids, found = list(blob_ids), set[str]()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(conn.scalars(select(blobs.c.id).where(blobs.c.id.in_(chunk))))
    return found
