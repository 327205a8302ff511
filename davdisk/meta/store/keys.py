"""The ``user_keys`` table: each user's root key per version, wrapped by a master key.

Only rows go in and out here; wrapping, unwrapping and caching are files/keyring.py's.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    func,
    insert,
    select,
    update,
)

from davdisk.meta.db import Database
from davdisk.meta.tables import blobs, nodes, user_keys, versions

__all__ = [
    "add_user_key",
    "get_user_keys",
    "users_with_keys",
]


def get_user_keys(conn: Connection, user_id: int) -> list[tuple[int, bytes]]:
    """All (version, wrapped key) of a user, newest first."""
    rows = conn.execute(
        select(user_keys.c.version, user_keys.c.wrapped_key)
        .where(user_keys.c.user_id == user_id)
        .order_by(user_keys.c.version.desc())
    ).all()
    return [(r.version, r.wrapped_key) for r in rows]


def users_with_keys(conn: Connection) -> int:
    """How many users have a wrapped key: if any, the master key they need must exist."""
    return conn.scalar(select(func.count(func.distinct(user_keys.c.user_id)))) or 0


def add_user_key(
    conn: Connection, user_id: int, version: int, wrapped: bytes, master_key_id: str
) -> None:
    conn.execute(
        insert(user_keys).values(
            user_id=user_id,
            version=version,
            wrapped_key=wrapped,
            master_key_id=master_key_id,
            created_at=time.time(),
        )
    )


# Asked on every upload; built once (see meta/store/ on why).
_NEWEST = (
    select(user_keys.c.version, user_keys.c.wrapped_key, user_keys.c.master_key_id)
    .where(user_keys.c.user_id == bindparam("user_id"))
    .order_by(user_keys.c.version.desc())
    .limit(1)
)


def newest(db: Database, user_id: int) -> tuple[int, bytes, str] | None:
    """(version, wrapped key, master key id) of the user's newest key; None if they have none."""
    row = db.read_one(_NEWEST, {"user_id": user_id})
    return None if row is None else (row[0], row[1], row[2])


def newest_version(conn: Connection, user_id: int) -> int | None:
    return conn.scalar(select(func.max(user_keys.c.version)).where(user_keys.c.user_id == user_id))


def wrapped(db: Database, user_id: int, version: int) -> tuple[bytes, str] | None:
    """(wrapped key, master key id) of the user's key ``version``; None if there is none."""
    with db.read() as conn:
        row: Any = conn.execute(
            select(user_keys.c.wrapped_key, user_keys.c.master_key_id).where(
                user_keys.c.user_id == user_id, user_keys.c.version == version
            )
        ).first()
    return None if row is None else (row.wrapped_key, row.master_key_id)


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
    than their newest that a node or a kept version points at, oldest first."""
    newest = conn.scalar(
        select(func.max(user_keys.c.version)).where(user_keys.c.user_id == owner_id)
    )
    if newest is None:
        return []
    current = select(nodes.c.id).where(nodes.c.current_blob_id == blobs.c.id).exists()
    kept = select(versions.c.id).where(versions.c.blob_id == blobs.c.id).exists()
    return list(
        conn.execute(
            select(blobs.c.id, blobs.c.node_id, blobs.c.key_version, blobs.c.size_plain)
            .where(blobs.c.owner_id == owner_id, blobs.c.key_version < newest, current | kept)
            .order_by(blobs.c.created_at)
        ).all()
    )
