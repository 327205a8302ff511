"""Queries on what a user can get back: versions of files and the trash.

A version row names the immutable blob a file had before it was replaced. A trashed item is the
top node of a deleted tree, moved under its owner's trash folder (``users.trash_root_id``) with
``deleted_at`` set; the nodes below it are untouched, so a delete is one UPDATE however big the
tree. ``users.version_bytes``/``trash_bytes`` count both apart from ``used_bytes``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from davdisk.meta.store.rows import chunks
from davdisk.meta.tables import nodes, shares, users, versions
from davdisk.model import TrashItem, Version

__all__ = [
    "add_history_bytes",
    "delete_versions",
    "ensure_trash_root",
    "get_trash_item",
    "get_version",
    "history_totals",
    "insert_version",
    "list_trash",
    "list_versions",
    "modified_by",
    "move_versions",
    "owner_versions",
    "owners_with_history",
    "set_version_flags",
    "trash_latest",
    "trash_node",
    "trash_root_of",
    "trash_roots",
    "unshare_subtree",
    "untrash_node",
    "version_owners",
    "versions_of_nodes",
]

_VERSION_COLS = (
    versions.c.id,
    versions.c.node_id,
    versions.c.owner_id,
    versions.c.blob_id,
    versions.c.size,
    versions.c.mtime,
    versions.c.etag,
    versions.c.content_type,
    versions.c.checksums,
    versions.c.author_id,
    versions.c.replaced_at,
    versions.c.label,
    versions.c.pinned,
)


def _version(row: Any) -> Version:
    return Version(*row[: len(_VERSION_COLS)])


def insert_version(conn: Connection, **values: Any) -> int:
    return int(conn.execute(insert(versions), values).inserted_primary_key[0])  # type: ignore[index]


def list_versions(conn: Connection, node_id: int) -> list[Version]:
    """A file's versions, newest first."""
    rows = conn.execute(
        select(*_VERSION_COLS)
        .where(versions.c.node_id == node_id)
        .order_by(versions.c.replaced_at.desc(), versions.c.id.desc())
    )
    return [_version(r) for r in rows]


def get_version(conn: Connection, node_id: int, version_id: int) -> Version | None:
    row = conn.execute(
        select(*_VERSION_COLS).where(versions.c.id == version_id, versions.c.node_id == node_id)
    ).first()
    return _version(row) if row else None


def delete_versions(conn: Connection, ids: Sequence[int]) -> tuple[list[str], int]:
    """Delete version rows; return (their blob ids, their bytes)."""
    blob_ids: list[str] = []
    total = 0
    for chunk in chunks(list(ids)):
        for blob_id, size in conn.execute(
            select(versions.c.blob_id, versions.c.size).where(versions.c.id.in_(chunk))
        ):
            blob_ids.append(blob_id)
            total += size
        conn.execute(delete(versions).where(versions.c.id.in_(chunk)))
    return blob_ids, total


def versions_of_nodes(conn: Connection, node_ids: Iterable[int]) -> list[tuple[int, str, int]]:
    """(version id, blob id, bytes) of every version of these nodes."""
    found: list[tuple[int, str, int]] = []
    for chunk in chunks(list(node_ids)):
        found.extend(
            (r.id, r.blob_id, r.size)
            for r in conn.execute(
                select(versions.c.id, versions.c.blob_id, versions.c.size).where(
                    versions.c.node_id.in_(chunk)
                )
            )
        )
    return found


def version_owners(conn: Connection, ids: Sequence[int]) -> dict[int, int]:
    """owner id -> bytes of these versions."""
    found: dict[int, int] = {}
    for chunk in chunks(list(ids)):
        for owner_id, size in conn.execute(
            select(versions.c.owner_id, func.sum(versions.c.size))
            .where(versions.c.id.in_(chunk))
            .group_by(versions.c.owner_id)
        ):
            found[owner_id] = found.get(owner_id, 0) + int(size or 0)
    return found


def move_versions(conn: Connection, src_id: int, dest_id: int) -> None:
    """Give ``src_id``'s versions to ``dest_id`` (a file moved over another keeps both
    histories)."""
    conn.execute(update(versions).where(versions.c.node_id == src_id).values(node_id=dest_id))


def set_version_flags(conn: Connection, version_id: int, **values: Any) -> None:
    conn.execute(update(versions).where(versions.c.id == version_id).values(**values))


def owner_versions(conn: Connection, owner_id: int) -> list[Any]:
    """(id, node_id, size, replaced_at, pinned) of an owner's versions, oldest first."""
    return list(
        conn.execute(
            select(
                versions.c.id,
                versions.c.node_id,
                versions.c.size,
                versions.c.replaced_at,
                versions.c.pinned,
                versions.c.label,
            )
            .where(versions.c.owner_id == owner_id)
            .order_by(versions.c.replaced_at, versions.c.id)
        ).all()
    )


def modified_by(conn: Connection, node_id: int) -> int | None:
    return conn.scalar(select(nodes.c.modified_by).where(nodes.c.id == node_id))


_ADD_HISTORY = (
    update(users)
    .where(users.c.id == bindparam("user_id"))
    .values(
        version_bytes=users.c.version_bytes + bindparam("versions"),
        trash_bytes=users.c.trash_bytes + bindparam("trash"),
    )
)


def add_history_bytes(conn: Connection, user_id: int, *, versions: int = 0, trash: int = 0) -> None:
    if versions or trash:
        conn.execute(_ADD_HISTORY, {"user_id": user_id, "versions": versions, "trash": trash})


def history_totals(conn: Connection, user_id: int) -> tuple[int, int, int, int]:
    """(quota_bytes, used_bytes, version_bytes, trash_bytes) of a user."""
    row = conn.execute(
        select(
            users.c.quota_bytes, users.c.used_bytes, users.c.version_bytes, users.c.trash_bytes
        ).where(users.c.id == user_id)
    ).first()
    return (0, 0, 0, 0) if row is None else tuple(row)


def owners_with_history(conn: Connection) -> list[int]:
    """Users with versions or trash."""
    return list(
        conn.scalars(
            select(users.c.id).where(
                (users.c.version_bytes > 0)
                | (users.c.trash_bytes > 0)
                | users.c.trash_root_id.is_not(None)
            )
        )
    )


# --- the trash ---------------------------------------------------------------------------


def ensure_trash_root(conn: Connection, user_id: int) -> int:
    """The user's trash folder, made on first use (inside the caller's write transaction)."""
    root = conn.scalar(select(users.c.trash_root_id).where(users.c.id == user_id))
    if root is not None:
        return int(root)
    now = time.time()
    root = conn.execute(
        insert(nodes).values(
            owner_id=user_id,
            parent_id=None,
            name="",
            is_dir=True,
            size=0,
            mtime=now,
            ctime=now,
            etag="",
            # Marked as the items in it are: no lookup of live nodes ever returns it.
            deleted_at=now,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    conn.execute(update(users).where(users.c.id == user_id).values(trash_root_id=root))
    return int(root)


def trash_root_of(conn: Connection, user_id: int) -> int | None:
    return conn.scalar(select(users.c.trash_root_id).where(users.c.id == user_id))


def trash_roots(conn: Connection) -> set[int]:
    return set(
        conn.scalars(select(users.c.trash_root_id).where(users.c.trash_root_id.is_not(None)))
    )


def trash_latest(conn: Connection, trash_root: int, name: str) -> float | None:
    """The latest deletion time of the items of that name in the trash, if any."""
    return conn.scalar(
        select(func.max(nodes.c.deleted_at)).where(
            nodes.c.parent_id == trash_root, nodes.c.name == name
        )
    )


def trash_node(
    conn: Connection,
    node_id: int,
    *,
    trash_root: int,
    deleted_at: float,
    deleted_by: int,
    parent_id: int,
    path: str,
) -> None:
    conn.execute(
        update(nodes)
        .where(nodes.c.id == node_id)
        .values(
            parent_id=trash_root,
            deleted_at=deleted_at,
            trashed_by=deleted_by,
            trash_parent_id=parent_id,
            trash_path=path,
        )
    )


def untrash_node(conn: Connection, node_id: int, parent_id: int, name: str) -> None:
    conn.execute(
        update(nodes)
        .where(nodes.c.id == node_id)
        .values(
            parent_id=parent_id,
            name=name,
            deleted_at=None,
            trashed_by=None,
            trash_parent_id=None,
            trash_path=None,
        )
    )


def unshare_subtree(conn: Connection, node_id: int, owner_id: int) -> None:
    """Delete the shares and links of a subtree's nodes (it goes to the trash). An owner who
    shares nothing (most) costs one indexed probe, not a walk of the tree."""
    if conn.scalar(select(shares.c.id).where(shares.c.owner_id == owner_id).limit(1)) is None:
        return
    tree = select(nodes.c.id).where(nodes.c.id == node_id).cte("tree", recursive=True)
    tree = tree.union_all(select(nodes.c.id).where(nodes.c.parent_id == tree.c.id))
    conn.execute(delete(shares).where(shares.c.node_id.in_(select(tree.c.id))))


_TRASH_COLS = (
    nodes.c.id,
    nodes.c.owner_id,
    nodes.c.name,
    nodes.c.is_dir,
    nodes.c.size,
    nodes.c.mtime,
    nodes.c.etag,
    nodes.c.content_type,
    nodes.c.deleted_at,
    nodes.c.trashed_by,
    nodes.c.trash_parent_id,
    nodes.c.trash_path,
)


def _item(row: Any) -> TrashItem:
    return TrashItem(*row[: len(_TRASH_COLS)])


def list_trash(conn: Connection, trash_root: int) -> list[TrashItem]:
    """The items in a trash folder, newest first."""
    rows = conn.execute(
        select(*_TRASH_COLS)
        .where(nodes.c.parent_id == trash_root, nodes.c.deleted_at > 0)
        .order_by(nodes.c.deleted_at.desc(), nodes.c.id.desc())
    )
    return [_item(r) for r in rows]


def get_trash_item(conn: Connection, trash_root: int, item_id: int) -> TrashItem | None:
    row = conn.execute(
        select(*_TRASH_COLS).where(
            nodes.c.id == item_id, nodes.c.parent_id == trash_root, nodes.c.deleted_at > 0
        )
    ).first()
    return _item(row) if row else None
