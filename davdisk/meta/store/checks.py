"""Queries of ``davdisk fsck`` (files/fsck.py): every user key, every file with its blob row,
where a blob is used, and what each user's files really take.

Read-only except :func:`recompute_usage`, which sets ``users.used_bytes`` to what
:func:`_usage_sum` finds (the one definition of what a user is charged).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, literal, or_, select, union_all, update

from davdisk.meta import store
from davdisk.meta.tables import blobs, nodes, props, user_keys, users, versions


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
    """Every file (live or in the trash) and every kept version, with the blob row it points
    at (None columns if it has none): id (the node's), owner_id, size, current_blob_id, row_id,
    blob_owner, key_version, size_plain, size_cipher."""
    joined = nodes.outerjoin(blobs, blobs.c.id == nodes.c.current_blob_id)
    files = (
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
        # Not the hidden rows of a staged copy (a negative deleted_at): gc's to remove.
        .where(nodes.c.is_dir.is_(False), or_(nodes.c.deleted_at.is_(None), nodes.c.deleted_at > 0))
    )
    kept = select(
        versions.c.node_id,
        versions.c.owner_id,
        versions.c.size,
        versions.c.blob_id,
        blobs.c.id,
        blobs.c.owner_id,
        blobs.c.key_version,
        blobs.c.size_plain,
        blobs.c.size_cipher,
    ).select_from(versions.outerjoin(blobs, blobs.c.id == versions.c.blob_id))
    return list(conn.execute(union_all(files, kept)).all())


def owner_path(conn: Connection, node_id: int) -> str:
    """``owner:/path`` of a node, for messages; ``owner:trash:/path`` in the trash (the path
    it has there: the item's name first)."""
    row = conn.execute(
        select(users.c.name, users.c.trash_root_id)
        .join(nodes, nodes.c.owner_id == users.c.id)
        .where(nodes.c.id == node_id)
    ).first()
    if row is None:
        return f"node {node_id}:/"
    chain = store.ancestors(conn, node_id)
    where = "trash:" if row.trash_root_id is not None and chain[-1] == row.trash_root_id else ""
    return f"{row.name}:{where}/" + "/".join(store.node_names(conn, node_id))


def blob_users(conn: Connection, blob_id: str) -> list[tuple[int, str, int | None]]:
    """(node id, owner name, version id or None for current content) of every node pointing
    at the blob and every version keeping it, in node id order."""
    current = (
        select(nodes.c.id, users.c.name, literal(None).label("version_id"))
        .join(users, users.c.id == nodes.c.owner_id)
        .where(nodes.c.current_blob_id == blob_id)
    )
    kept = (
        select(versions.c.node_id, users.c.name, versions.c.id)
        .join(users, users.c.id == versions.c.owner_id)
        .where(versions.c.blob_id == blob_id)
    )
    rows = conn.execute(union_all(current, kept)).all()
    return sorted({(r[0], r[1], r[2]) for r in rows}, key=lambda r: (r[0], r[2] or 0))


def _trashed() -> Any:
    """Every node in a trash: the trashed items and everything below them."""
    tree = (
        select(nodes.c.id)
        .where(nodes.c.parent_id.in_(select(users.c.trash_root_id)), nodes.c.deleted_at > 0)
        .cte("trashed", recursive=True)
    )
    return tree.union_all(select(nodes.c.id).where(nodes.c.parent_id == tree.c.id))


def _bytes_of(where: Any) -> Any:
    """Files' bytes and their dead properties' (see files/deadprops.py) of a user's nodes
    matching ``where``."""
    files = (
        select(func.coalesce(func.sum(nodes.c.size), 0))
        .where(nodes.c.owner_id == users.c.id, nodes.c.is_dir.is_(False), where)
        .scalar_subquery()
    )
    properties = (
        select(func.coalesce(func.sum(props.c.size), 0))
        .select_from(props.join(nodes, nodes.c.id == props.c.node_id))
        .where(nodes.c.owner_id == users.c.id, where)
        .scalar_subquery()
    )
    return files + properties


def _usage_sums() -> tuple[Any, Any, Any]:
    """What a user is charged (live files and properties, outside the trash), what their
    trash holds, and what their kept versions take."""
    trashed = select(_trashed().c.id)
    used = _bytes_of(nodes.c.deleted_at.is_(None) & nodes.c.id.not_in(trashed))
    trash = _bytes_of(nodes.c.id.in_(trashed))
    kept = (
        select(func.coalesce(func.sum(versions.c.size), 0))
        .where(versions.c.owner_id == users.c.id)
        .scalar_subquery()
    )
    return used, trash, kept


def usage(conn: Connection) -> list[tuple[str, str, int, int]]:
    """(user name, counter, recorded, actual) for each user's used_bytes, trash_bytes and
    version_bytes, by name."""
    used, trash, kept = _usage_sums()
    rows = conn.execute(
        select(
            users.c.name,
            users.c.used_bytes,
            used.label("used"),
            users.c.trash_bytes,
            trash.label("trash"),
            users.c.version_bytes,
            kept.label("kept"),
        ).order_by(users.c.name)
    ).all()
    found = []
    for r in rows:
        found.append((r.name, "used_bytes", r.used_bytes, r.used))
        found.append((r.name, "trash_bytes", r.trash_bytes, r.trash))
        found.append((r.name, "version_bytes", r.version_bytes, r.kept))
    return found


def recompute_usage(conn: Connection) -> int:
    """Set every user's counters to what their files, trash and versions take; returns how many
    users changed."""
    used, trash, kept = _usage_sums()
    drifted = (
        (users.c.used_bytes != used)
        | (users.c.trash_bytes != trash)
        | (users.c.version_bytes != kept)
    )
    # Counted apart: sqlite3 reports no rowcount for an UPDATE that starts with WITH.
    changed = int(conn.scalar(select(func.count()).select_from(users).where(drifted)) or 0)
    if changed:
        conn.execute(
            update(users)
            .where(drifted)
            .values(used_bytes=used, trash_bytes=trash, version_bytes=kept)
        )
    return changed
