"""Queries of ``davdisk fsck`` (files/fsck.py): every user key, every file with its blob row,
where a blob is used, and what each user's files really take.

Read-only except :func:`recompute_usage`, which sets ``users.used_bytes`` to what
:func:`_usage_sum` finds (the one definition of what a user is charged).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select, update

from davdisk.meta import store
from davdisk.meta.tables import blobs, nodes, props, user_keys, users


def user_count(conn: Connection) -> int:
    return conn.scalar(select(func.count()).select_from(users)) or 0


def key_rows(conn: Connection) -> list[Any]:
    """Every user key row: (user_id, version, name of its user), in user and version order."""
    return list(
        conn.execute(
            select(user_keys.c.user_id, user_keys.c.version, users.c.name)
            .join(users, users.c.id == user_keys.c.user_id)
            .order_by(user_keys.c.user_id, user_keys.c.version)
        ).all()
    )


def file_blob_rows(conn: Connection) -> list[Any]:
    """Every live file with the blob row it points at (None columns if it has none): id,
    owner_id, size, current_blob_id, row_id, blob_owner, key_version, size_plain,
    size_cipher."""
    joined = nodes.outerjoin(blobs, blobs.c.id == nodes.c.current_blob_id)
    return list(
        conn.execute(
            select(
                nodes.c.id,
                nodes.c.owner_id,
                nodes.c.size,
                nodes.c.current_blob_id,
                blobs.c.id.label("row_id"),
                blobs.c.owner_id.label("blob_owner"),
                blobs.c.key_version,
                blobs.c.size_plain,
                blobs.c.size_cipher,
            )
            .select_from(joined)
            .where(nodes.c.is_dir.is_(False), nodes.c.deleted_at.is_(None))
        ).all()
    )


def owner_path(conn: Connection, node_id: int) -> str:
    """``owner:/path`` of a node, for messages."""
    owner = conn.scalar(
        select(users.c.name)
        .join(nodes, nodes.c.owner_id == users.c.id)
        .where(nodes.c.id == node_id)
    )
    return f"{owner}:/" + "/".join(store.node_names(conn, node_id))


def blob_users(conn: Connection, blob_id: str) -> list[tuple[int, str]]:
    """(node id, owner name) of every node pointing at the blob, in node id order."""
    rows = conn.execute(
        select(nodes.c.id, users.c.name)
        .join(users, users.c.id == nodes.c.owner_id)
        .where(nodes.c.current_blob_id == blob_id)
        .order_by(nodes.c.id)
    ).all()
    return [(r.id, r.name) for r in rows]


def _usage_sum() -> Any:
    """What a user is charged: their files' bytes and their dead properties' (see
    files/deadprops.py)."""
    files = (
        select(func.coalesce(func.sum(nodes.c.size), 0))
        .where(
            nodes.c.owner_id == users.c.id,
            nodes.c.is_dir.is_(False),
            nodes.c.deleted_at.is_(None),
        )
        .scalar_subquery()
    )
    properties = (
        select(func.coalesce(func.sum(props.c.size), 0))
        .select_from(props.join(nodes, nodes.c.id == props.c.node_id))
        .where(nodes.c.owner_id == users.c.id, nodes.c.deleted_at.is_(None))
        .scalar_subquery()
    )
    return files + properties


def usage(conn: Connection) -> list[tuple[str, int, int]]:
    """(user name, used_bytes recorded, bytes their files and properties take), by name."""
    rows = conn.execute(
        select(users.c.name, users.c.used_bytes, _usage_sum().label("actual")).order_by(
            users.c.name
        )
    ).all()
    return [(r.name, r.used_bytes, r.actual) for r in rows]


def recompute_usage(conn: Connection) -> int:
    """Set every user's used_bytes to what their files take; returns how many changed."""
    total = _usage_sum()
    result = conn.execute(update(users).where(users.c.used_bytes != total).values(used_bytes=total))
    return int(result.rowcount or 0)
