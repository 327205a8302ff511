"""Queries of key rotation (files/rotation.py): the ``user_keys`` rows a new master key has
not yet rewrapped, the compare-and-set that rewraps one, and the blobs of a user still under
an older key version that a node uses.

The callers choose the transaction, and take the key writers' mutex (files/keyring.py) where
a row is changed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select, update

from davdisk.meta.store import blobs, nodes, user_keys


def keys_not_under(conn: Connection, master_key_id: str) -> list[tuple[int, int]]:
    """(user id, version) of every user key row not wrapped under ``master_key_id``."""
    rows = conn.execute(
        select(user_keys.c.user_id, user_keys.c.version)
        .where(user_keys.c.master_key_id != master_key_id)
        .order_by(user_keys.c.user_id, user_keys.c.version)
    ).all()
    return [(r.user_id, r.version) for r in rows]


def count_keys_not_under(conn: Connection, master_key_id: str) -> int:
    return (
        conn.scalar(
            select(func.count())
            .select_from(user_keys)
            .where(user_keys.c.master_key_id != master_key_id)
        )
        or 0
    )


def wrapped_key(conn: Connection, user_id: int, version: int) -> tuple[bytes, str] | None:
    """(wrapped key, id of the master key wrapping it) of one row; None if there is none."""
    row = conn.execute(
        select(user_keys.c.wrapped_key, user_keys.c.master_key_id).where(
            user_keys.c.user_id == user_id, user_keys.c.version == version
        )
    ).first()
    return None if row is None else (row.wrapped_key, row.master_key_id)


def rewrap(
    conn: Connection,
    user_id: int,
    version: int,
    *,
    old_master_id: str,
    wrapped: bytes,
    new_master_id: str,
) -> None:
    """Store a row's key wrapped anew, if the row is still under ``old_master_id``."""
    conn.execute(
        update(user_keys)
        .where(
            user_keys.c.user_id == user_id,
            user_keys.c.version == version,
            user_keys.c.master_key_id == old_master_id,
        )
        .values(wrapped_key=wrapped, master_key_id=new_master_id)
    )


def used_blobs_on_older_keys(conn: Connection, owner_id: int) -> list[Any]:
    """(id, node_id, key_version, size_plain) of the owner's blobs under an older key version
    than their newest that a node points at, oldest first."""
    newest = conn.scalar(
        select(func.max(user_keys.c.version)).where(user_keys.c.user_id == owner_id)
    )
    if newest is None:
        return []
    used = select(nodes.c.id).where(nodes.c.current_blob_id == blobs.c.id).exists()
    return list(
        conn.execute(
            select(blobs.c.id, blobs.c.node_id, blobs.c.key_version, blobs.c.size_plain)
            .where(blobs.c.owner_id == owner_id, blobs.c.key_version < newest, used)
            .order_by(blobs.c.created_at)
        ).all()
    )
