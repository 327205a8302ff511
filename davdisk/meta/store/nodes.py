"""Queries on the node tree: lookups by id, name and path, listings, subtrees, ancestors."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from davdisk.meta.db import Database
from davdisk.meta.store.rows import (
    LIVE,
    N_NODE_COLS,
    NODE_COLS,
    chunks,
    damaged,
    entry_of_row,
    entry_of_tuple,
)
from davdisk.meta.tables import nodes, props
from davdisk.model import Node

__all__ = [
    "RESOLVE_STEP",
    "ancestors",
    "child_names",
    "copy_subtree",
    "delete_subtree",
    "get_child",
    "get_live_node",
    "get_node",
    "insert_node",
    "is_ancestor",
    "list_children",
    "node_names",
    "nodes_with_clear_checksums",
    "replace_clear_checksums",
    "resolve",
    "resolve_single",
    "subtree_bytes",
    "subtree_ids",
    "subtree_size",
    "subtree_totals",
    "update_node",
    "vacated_member",
]

_GET_NODE = select(*NODE_COLS).where(nodes.c.id == bindparam("node_id"), LIVE)


# ``_row``: the node again, read from the table by rowid (see the module docstring).
_row = nodes.alias("row")


_GET_CHILD = (
    select(*[_row.c[c.name] for c in NODE_COLS], _row.c.deleted_at)
    .join_from(nodes, _row, _row.c.id == nodes.c.id)
    .where(nodes.c.parent_id == bindparam("parent_id"), nodes.c.name == bindparam("name"), LIVE)
)


_LIST_CHILDREN = (
    select(*NODE_COLS)
    .where(nodes.c.parent_id == bindparam("parent_id"), LIVE)
    .order_by(nodes.c.name)
)


_CHILD_NAMES = select(nodes.c.name).where(nodes.c.parent_id == bindparam("parent_id"), LIVE)


def get_node(conn: Connection, node_id: int) -> Node | None:
    row = conn.execute(_GET_NODE, {"node_id": node_id}).first()
    return entry_of_row(row) if row else None


def get_child(conn: Connection, parent_id: int, name: str) -> Node | None:
    row = conn.execute(_GET_CHILD, {"parent_id": parent_id, "name": name}).first()
    if not row:
        return None
    _check_member(parent_id, name, row[2], row[3], row[N_NODE_COLS])
    return entry_of_row(row)


def _check_member(
    parent_id: int, name: str, got_parent: int, got_name: str, deleted: float | None
) -> None:
    """Is the row an index lookup found the live member ``name`` of folder ``parent_id``?"""
    if got_parent != parent_id or got_name != name or deleted is not None:
        raise damaged(
            f"looking up {name!r} in folder {parent_id} found {got_name!r} in folder {got_parent}"
            + (" (deleted)" if deleted is not None else "")
        )


def _check_path(row: Sequence[Any], parent_id: int, names: Sequence[str]) -> None:
    """A :func:`_resolve_statement` row: each level's (id, parent_id, name, deleted_at) follows
    the node's columns; each must be the member asked for of the level above."""
    at = N_NODE_COLS
    for name in names:
        node_id, got_parent, got_name, deleted = row[at : at + 4]
        _check_member(parent_id, name, got_parent, got_name, deleted)
        parent_id, at = node_id, at + 4


# Paths this deep are resolved in one query; deeper ones (rare; limits.max_path_depth bounds
# them) in several of this many steps each.
RESOLVE_STEP = 12


_resolve_statements: dict[int, Any] = {}


def _resolve_statement(depth: int) -> Any:
    """SELECT the node at ``depth`` names below ``:parent_id`` (``:name0`` ... ), joining one
    alias per level over the (parent_id, name) index; every level but the last a live folder.
    Each level is read once more from the table by rowid: the node's columns, then per level
    (id, parent_id, name, deleted_at) as stored, for :func:`_check_path`."""
    statement = _resolve_statements.get(depth)
    if statement is None:
        levels = [nodes.alias(f"n{i}") for i in range(depth)]
        where = [levels[0].c.parent_id == bindparam("parent_id")]
        for i, level in enumerate(levels):
            where.append(level.c.name == bindparam(f"name{i}"))
            where.append(level.c.deleted_at.is_(None))
            if i > 0:
                where.append(level.c.parent_id == levels[i - 1].c.id)
            if i < depth - 1:
                where.append(level.c.is_dir.is_(True))
        rows = [nodes.alias(f"r{i}") for i in range(depth)]
        where += [row.c.id == level.c.id for row, level in zip(rows, levels, strict=True)]
        chain = [
            c for row in rows for c in (row.c.id, row.c.parent_id, row.c.name, row.c.deleted_at)
        ]
        statement = select(*[rows[-1].c[c.name] for c in NODE_COLS], *chain).where(*where)
        _resolve_statements[depth] = statement
    return statement


def resolve(conn: Connection, root_id: int, names: Sequence[str]) -> Node | None:
    """The node ``names`` lead to from ``root_id``; None if any step is missing or not a
    folder. One indexed query for up to ``RESOLVE_STEP`` names, whatever the tree's size."""
    if not names:
        return get_node(conn, root_id)
    entry: Node | None = None
    parent_id = root_id
    for start in range(0, len(names), RESOLVE_STEP):
        step = names[start : start + RESOLVE_STEP]
        if entry is not None and not entry.is_dir:
            return None
        params: dict[str, Any] = {f"name{i}": name for i, name in enumerate(step)}
        params["parent_id"] = parent_id
        row = conn.execute(_resolve_statement(len(step)), params).first()
        if row is None:
            return None
        _check_path(row, parent_id, step)
        entry = entry_of_row(row)
        parent_id = entry.id
    return entry


def resolve_single(db: Database, root_id: int, names: Sequence[str]) -> Node | None:
    """:func:`resolve` as a single statement outside any transaction, for paths of up to
    ``RESOLVE_STEP`` names (None beyond: use :func:`resolve`)."""
    if not names:
        row = db.read_one(_GET_NODE, {"node_id": root_id})
    elif len(names) <= RESOLVE_STEP:
        params: dict[str, Any] = {f"name{i}": name for i, name in enumerate(names)}
        params["parent_id"] = root_id
        row = db.read_one(_resolve_statement(len(names)), params)
        if row is not None:
            _check_path(row, root_id, names)
    else:
        return None
    return entry_of_tuple(row) if row is not None else None


def list_children(conn: Connection, parent_id: int) -> list[Node]:
    # Not checked against the table (a listing shows metadata, no content; a second read of
    # every member would cost a big folder's PROPFIND): opening or changing a member resolves
    # it by name, which is checked.
    rows = conn.execute(_LIST_CHILDREN, {"parent_id": parent_id}).all()
    return [entry_of_row(r) for r in rows]


_VACATED_MEMBER = (
    select(*NODE_COLS)
    .where(
        nodes.c.parent_id == bindparam("parent_id"),
        nodes.c.vacated_name == bindparam("name"),
        nodes.c.vacated_at >= bindparam("since"),
        nodes.c.is_dir.is_(False),
        LIVE,
    )
    .order_by(nodes.c.vacated_at.desc())
    .limit(1)
)


def vacated_member(conn: Connection, parent_id: int, name: str, since: float) -> Node | None:
    """The live file of folder ``parent_id`` most recently renamed away from ``name``, if that
    was at ``since`` or later. Found over the (parent_id) index among the folder's members: it
    is asked only when a file just written is moved to a free name, so no index of its own.
    The node is read again by id, and must be in that folder (see the module docstring)."""
    row = conn.execute(
        _VACATED_MEMBER, {"parent_id": parent_id, "name": name, "since": since}
    ).first()
    if row is None:
        return None
    entry = get_node(conn, row[0])
    if entry is None or entry.parent_id != parent_id:
        raise damaged(
            f"looking up the file that left {name!r} in folder {parent_id} found {row[0]}"
        )
    return entry


def child_names(conn: Connection, parent_id: int) -> list[str]:
    """The names of a folder's live members (one indexed query, names only)."""
    return list(conn.scalars(_CHILD_NAMES, {"parent_id": parent_id}))


def subtree_ids(conn: Connection, node_id: int) -> list[int]:
    """The node and every descendant (one recursive query)."""
    tree = select(nodes.c.id).where(nodes.c.id == node_id).cte("tree", recursive=True)
    tree = tree.union_all(select(nodes.c.id).where(nodes.c.parent_id == tree.c.id))
    return list(conn.scalars(select(tree.c.id)))


def is_ancestor(conn: Connection, ancestor_id: int, node_id: int) -> bool:
    """True if ``ancestor_id`` is ``node_id`` or one of its ancestors."""
    return ancestor_id in ancestors(conn, node_id)


def subtree_size(conn: Connection, node_id: int) -> int:
    """Bytes of the files in a subtree (one recursive query)."""
    tree = select(nodes.c.id, nodes.c.size, nodes.c.is_dir).where(nodes.c.id == node_id)
    cte = tree.cte("tree", recursive=True)
    cte = cte.union_all(
        select(nodes.c.id, nodes.c.size, nodes.c.is_dir).where(nodes.c.parent_id == cte.c.id, LIVE)
    )
    total = conn.scalar(select(func.sum(cte.c.size)).where(cte.c.is_dir.is_(False)))
    return int(total or 0)


def subtree_bytes(conn: Connection, node_id: int) -> int:
    """Bytes a subtree is charged (its files and dead properties), as :func:`subtree_totals`,
    in one statement (its tree walked once): what a move into the trash counts."""
    tree = select(nodes.c.id, nodes.c.size, nodes.c.is_dir).where(nodes.c.id == node_id)
    cte = tree.cte("tree", recursive=True)
    cte = cte.union_all(
        select(nodes.c.id, nodes.c.size, nodes.c.is_dir).where(nodes.c.parent_id == cte.c.id)
    )
    files = select(func.coalesce(func.sum(cte.c.size), 0)).where(cte.c.is_dir.is_(False))
    properties = select(func.coalesce(func.sum(props.c.size), 0)).where(
        props.c.node_id.in_(select(cte.c.id))
    )
    return int(conn.scalar(select(files.scalar_subquery() + properties.scalar_subquery())) or 0)


def subtree_totals(
    conn: Connection, node_id: int, *, ids: list[int] | None = None
) -> tuple[int, list[str]]:
    """Bytes a subtree is charged (its files and dead properties), and the blob ids its files
    point to. ``ids``: the subtree's node ids, if the caller has them already."""
    if ids is None:
        ids = subtree_ids(conn, node_id)
    total = 0
    blob_ids: list[str] = []
    for chunk in chunks(ids):
        for size, blob_id in conn.execute(
            select(nodes.c.size, nodes.c.current_blob_id).where(
                nodes.c.id.in_(chunk), nodes.c.is_dir.is_(False)
            )
        ):
            total += size
            if blob_id:
                blob_ids.append(blob_id)
        # Dead properties are charged to the quota too (files/deadprops.py).
        total += int(
            conn.scalar(
                select(func.coalesce(func.sum(props.c.size), 0)).where(props.c.node_id.in_(chunk))
            )
            or 0
        )
    return total, blob_ids


_INSERT_NODE = insert(nodes)


_update_node_statements: dict[frozenset[str], Any] = {}


def insert_node(conn: Connection, **values: Any) -> Node:
    node_id = conn.execute(_INSERT_NODE, values).inserted_primary_key[0]  # type: ignore[index]
    entry = get_node(conn, node_id)
    assert entry is not None
    return entry


def update_node(conn: Connection, node_id: int, **values: Any) -> None:
    columns = frozenset(values)
    statement = _update_node_statements.get(columns)
    if statement is None:  # one per set of columns callers change (a handful)
        statement = update(nodes).where(nodes.c.id == bindparam("node_id_"))
        statement = statement.values({c: bindparam(c) for c in sorted(columns)})
        _update_node_statements[columns] = statement
    conn.execute(statement, {"node_id_": node_id, **values})


def delete_subtree(conn: Connection, node_id: int) -> None:
    """Delete a node; descendants and properties go with it (ON DELETE CASCADE)."""
    conn.execute(delete(nodes).where(nodes.c.id == node_id))


def copy_subtree(
    conn: Connection, src: Node, dest_parent_id: int, dest_name: str, *, recursive: bool
) -> Node:
    """Copy a node (and, if ``recursive``, its descendants) with dead properties; blobs are
    shared, not duplicated (they are immutable). Returns the new top node."""
    now = time.time()
    top = _copy_row(conn, src, dest_parent_id, dest_name, now)
    if recursive and src.is_dir:
        stack = [(src.id, top.id)]
        while stack:
            old_parent, new_parent = stack.pop()
            for child in list_children(conn, old_parent):
                new = _copy_row(conn, child, new_parent, child.name, now)
                if child.is_dir:
                    stack.append((child.id, new.id))
    return top


def _copy_row(conn: Connection, src: Node, parent_id: int, name: str, now: float) -> Node:
    new = insert_node(
        conn,
        owner_id=src.owner_id,
        parent_id=parent_id,
        name=name,
        is_dir=src.is_dir,
        size=src.size,
        mtime=src.mtime,
        ctime=now,
        etag=src.etag,
        content_type=src.content_type,
        checksums=src.checksums,
        current_blob_id=src.blob_id,
    )
    conn.execute(
        insert(props).from_select(
            ["node_id", "name", "value", "size"],
            select(literal(new.id), props.c.name, props.c.value, props.c.size).where(
                props.c.node_id == src.id
            ),
        )
    )
    return new


def nodes_with_clear_checksums(conn: Connection, limit: int) -> list[Any]:
    """Up to ``limit`` rows (id, owner_id, is_dir, size, md5, sha1) that still hold an MD5 or
    SHA-1 in clear (a partial index finds them)."""
    return list(
        conn.execute(
            select(
                nodes.c.id,
                nodes.c.owner_id,
                nodes.c.is_dir,
                nodes.c.size,
                nodes.c.md5,
                nodes.c.sha1,
            )
            .where(or_(nodes.c.md5.is_not(None), nodes.c.sha1.is_not(None)))
            .limit(limit)
        )
    )


def replace_clear_checksums(conn: Connection, node_id: int, sealed: bytes | None) -> None:
    """Store the node's checksums sealed (or none) and empty the clear columns."""
    conn.execute(
        update(nodes).where(nodes.c.id == node_id).values(checksums=sealed, md5=None, sha1=None)
    )


def _chain() -> Any:
    """A recursive CTE of the node ``:chain_node_id`` and its ancestors: id, parent_id, name,
    depth (0 = node)."""
    chain = (
        select(nodes.c.id, nodes.c.parent_id, nodes.c.name, literal(0).label("depth"))
        .where(nodes.c.id == bindparam("chain_node_id"))
        .cte("chain", recursive=True)
    )
    return chain.union_all(
        select(
            nodes.c.id, nodes.c.parent_id, nodes.c.name, (chain.c.depth + 1).label("depth")
        ).where(nodes.c.id == chain.c.parent_id)
    )


_CHAIN = _chain()


_ANCESTORS = select(_CHAIN.c.id).order_by(_CHAIN.c.depth)


_NAMES_DOWN = select(_CHAIN.c.name, _CHAIN.c.parent_id).order_by(_CHAIN.c.depth.desc())


def _chain_with_marks() -> Any:
    """The node ``:chain_node_id`` and its ancestors with their ``deleted_at``."""
    chain = (
        select(nodes.c.id, nodes.c.parent_id, nodes.c.deleted_at)
        .where(nodes.c.id == bindparam("chain_node_id"))
        .cte("marked", recursive=True)
    )
    return chain.union_all(
        select(nodes.c.id, nodes.c.parent_id, nodes.c.deleted_at).where(
            nodes.c.id == chain.c.parent_id
        )
    )


_MARKED = _chain_with_marks()
_MARKS_IN_CHAIN = select(func.count()).select_from(_MARKED).where(_MARKED.c.deleted_at.is_not(None))


def get_live_node(conn: Connection, node_id: int) -> Node | None:
    """The node, if it is in its owner's tree: not in the trash, not below a trashed folder
    (whose members keep their rows as they were: a delete moves only the top), not part of a
    staged copy. Write transactions re-read what they change through this: a request that
    looked a node up before its folder went to the trash must not write into the trash."""
    entry = get_node(conn, node_id)
    if entry is None or entry.parent_id is None:
        return entry
    if conn.scalar(_MARKS_IN_CHAIN, {"chain_node_id": node_id}):
        return None
    return entry


def ancestors(conn: Connection, node_id: int) -> list[int]:
    """The node and all its ancestors, nearest first (one recursive query)."""
    return list(conn.scalars(_ANCESTORS, {"chain_node_id": node_id}))


def node_names(conn: Connection, node_id: int) -> list[str]:
    """Names from the owner's home down to the node ([] for a home)."""
    rows = conn.execute(_NAMES_DOWN, {"chain_node_id": node_id}).all()
    return [r.name for r in rows if r.parent_id is not None]
