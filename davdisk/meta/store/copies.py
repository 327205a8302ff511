"""Queries for COPY: copying a subtree's rows, and the staged (hidden) copies of big trees."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import (
    Connection,
    delete,
    insert,
    literal,
    select,
    update,
)

from davdisk.meta import dialects
from davdisk.meta.store.rows import LIVE, chunks
from davdisk.meta.tables import nodes, props
from davdisk.model import Node

__all__ = [
    "copy_rows",
    "delete_rows",
    "reserve_node_ids",
    "reveal_subtree",
    "stage_copy_top",
    "staged_copy_exists",
    "stale_staged_copies",
    "subtree_ids_by_depth",
]

_COPY_COLS = [
    c.name
    for c in nodes.columns
    if c.name
    not in (
        "id",
        "parent_id",
        "ctime",
        "deleted_at",
        "trashed_by",
        "trash_parent_id",
        "trash_path",
        "vacated_name",
        "vacated_at",
    )
]


def subtree_ids_by_depth(conn: Connection, node_id: int, *, live: bool) -> list[int]:
    """The node and its descendants (only live ones if ``live``), parents before children."""
    tree = select(nodes.c.id, literal(0).label("depth")).where(nodes.c.id == node_id)
    cte = tree.cte("tree", recursive=True)
    step = select(nodes.c.id, (cte.c.depth + 1).label("depth")).where(nodes.c.parent_id == cte.c.id)
    cte = cte.union_all(step.where(LIVE) if live else step)
    return list(conn.scalars(select(cte.c.id).order_by(cte.c.depth, cte.c.id)))


def reserve_node_ids(conn: Connection, n: int) -> list[int]:
    """``n`` node ids no row has had (inside the caller's write transaction), so a batch of
    copied rows can name its parents without a round trip per row."""
    return dialects.of(conn).reserve_ids(conn, "nodes", n)


def stage_copy_top(conn: Connection, src: Node, parent_id: int, marker: float) -> int:
    """The hidden top of a staged copy of folder ``src`` in ``parent_id``; returns its id."""
    top = reserve_node_ids(conn, 1)[0]
    conn.execute(
        insert(nodes).values(
            id=top,
            owner_id=src.owner_id,
            parent_id=parent_id,
            name=f"/copy {top}",  # no name can hold a "/"; the last transaction names it
            is_dir=True,
            size=0,
            mtime=src.mtime,
            ctime=-marker,
            etag="",
            deleted_at=marker,
        )
    )
    # Every column of the properties (their charged size too), under the new node.
    others = [c for c in props.c if c.name != "node_id"]
    conn.execute(
        insert(props).from_select(
            ["node_id", *[c.name for c in others]],
            select(literal(top), *others).where(props.c.node_id == src.id),
        )
    )
    return top


def staged_copy_exists(conn: Connection, top: int, marker: float) -> bool:
    return (
        conn.scalar(select(nodes.c.id).where(nodes.c.id == top, nodes.c.deleted_at == marker))
        is not None
    )


def copy_rows(
    conn: Connection, ids: Sequence[int], new_parent: Mapping[int, int], marker: float, now: float
) -> dict[int, int]:
    """Copy the live nodes ``ids`` (with their dead properties) as hidden rows (``deleted_at``
    = ``marker``) below the copies of their parents (``new_parent``: old id -> new id; a node
    whose parent is not there, moved away meanwhile, is left out). Returns old id -> new id."""
    rows = conn.execute(
        select(nodes.c.id, nodes.c.parent_id, *[nodes.c[c] for c in _COPY_COLS]).where(
            nodes.c.id.in_(list(ids)), LIVE
        )
    ).all()
    by_id = {r.id: r for r in rows}
    wanted = [by_id[i] for i in ids if i in by_id]  # parents first, as ``ids`` are
    fresh = reserve_node_ids(conn, len(wanted)) if wanted else []
    mapping: dict[int, int] = {}
    values = []
    for row, new_id in zip(wanted, fresh, strict=True):
        parent = new_parent.get(row.parent_id) or mapping.get(row.parent_id)
        if parent is None:
            continue
        mapping[row.id] = new_id
        values.append(
            {
                "id": new_id,
                "parent_id": parent,
                "ctime": now,
                "deleted_at": marker,
                **{c: row._mapping[c] for c in _COPY_COLS},
            }
        )
    if values:
        conn.execute(insert(nodes), values)
        found = conn.execute(select(props).where(props.c.node_id.in_(list(mapping)))).all()
        if found:
            conn.execute(
                insert(props),
                [{**r._mapping, "node_id": mapping[r.node_id]} for r in found],
            )
    return mapping


def reveal_subtree(conn: Connection, node_id: int, marker: float) -> None:
    """Make the hidden rows of a staged copy below (and at) ``node_id`` live."""
    # Level by level, each through the index on parent_id, then updates by primary key. A
    # recursive CTE took PostgreSQL 2.5 s for 10 000 rows just inserted (planned on stale
    # statistics, it scanned the table once per row of the last level), under the writers'
    # lock that every other write waits for.
    ids, level = [node_id], [node_id]
    while level:
        below: list[int] = []
        for batch in chunks(level):
            below += conn.scalars(
                select(nodes.c.id).where(nodes.c.parent_id.in_(batch), nodes.c.deleted_at == marker)
            )
        ids += below
        level = below
    for batch in chunks(ids):
        conn.execute(
            update(nodes)
            .where(nodes.c.id.in_(batch), nodes.c.deleted_at == marker)
            .values(deleted_at=None)
        )


def stale_staged_copies(conn: Connection, started_before: float) -> list[int]:
    """Tops of staged copies begun before ``started_before`` (a crash left them)."""
    parent = nodes.alias("parent")
    return list(
        conn.scalars(
            select(nodes.c.id)
            .join(parent, parent.c.id == nodes.c.parent_id)
            .where(
                nodes.c.deleted_at < 0,
                nodes.c.deleted_at > -started_before,
                parent.c.deleted_at.is_distinct_from(nodes.c.deleted_at),
            )
        )
    )


def delete_rows(conn: Connection, ids: Sequence[int]) -> list[str]:
    """Delete these nodes (children listed before parents); return their blob ids."""
    blob_ids = list(
        conn.scalars(
            select(nodes.c.current_blob_id).where(
                nodes.c.id.in_(list(ids)), nodes.c.current_blob_id.is_not(None)
            )
        )
    )
    conn.execute(delete(nodes).where(nodes.c.id.in_(list(ids))))
    return blob_ids
