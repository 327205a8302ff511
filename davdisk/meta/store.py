"""Queries on the metadata schema: users, keys, nodes, blobs, dead properties.

Every function takes an open :class:`~sqlalchemy.Connection` (from ``Database.read()`` or
``Database.write()``), so callers decide what one transaction covers. Nodes come back as
:class:`Entry` — a plain, immutable snapshot of a row. This module knows nothing of storage,
crypto or HTTP.

Lookups of a node by name (a path, a folder's child) and of a link by its token check the row
they get against the key they asked for. SQLite trusts an index entry once it matched: it takes
the rowid it names, reads the indexed columns from the index itself, and does not test the terms
against the row. A damaged index (one a start's quick check does not see) would hand out another
file or link instead. So these statements join the table a second time by rowid (a table read,
not an index read) and compare that row's name, folder and token; a mismatch is an
:class:`~davdisk.errors.IntegrityError`, logged, never another file's content.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from davdisk import lockkeys
from davdisk.errors import AlreadyExists, IntegrityError
from davdisk.meta import dialects
from davdisk.meta.db import Database
from davdisk.meta.models import (
    AppToken,
    Blob,
    Lock,
    LoginFailure,
    Node,
    Property,
    Share,
    User,
    UserKey,
)

nodes = cast(Table, Node.__table__)
users = cast(Table, User.__table__)
blobs = cast(Table, Blob.__table__)
props = cast(Table, Property.__table__)
user_keys = cast(Table, UserKey.__table__)

_NODE_COLS = (
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


@dataclass(frozen=True, slots=True)
class Entry:
    """A live node as read from the database."""

    id: int
    owner_id: int
    parent_id: int | None
    name: str
    is_dir: bool
    size: int
    mtime: float
    ctime: float
    etag: str
    content_type: str | None
    checksums: bytes | None  # sealed MD5 and SHA-1 (files/checksums.py); None if empty
    blob_id: str | None


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    name: str
    password_hash: str
    root_id: int
    disabled: bool
    quota_bytes: int
    used_bytes: int


def _entry(row: Any) -> Entry:
    return Entry(*row[:_N_NODE_COLS])


def _entry_of_tuple(row: tuple[Any, ...]) -> Entry:
    """An Entry from a driver row (``Database.read_one``), whose booleans are 0/1."""
    values = list(row[:_N_NODE_COLS])
    values[4] = bool(values[4])
    return Entry(*values)


_N_NODE_COLS = len(_NODE_COLS)
_live = nodes.c.deleted_at.is_(None)


def damaged(what: str) -> IntegrityError:
    """The error for a row that is not what its index lookup asked for (see the docstring);
    the face that meets it logs it (web/errors.py) or prints it (the CLI)."""
    return IntegrityError(f"database index damaged: {what}; stop the server and run davdisk fsck")


# The queries every request makes are built once: constructing a select() costs ~250 us of
# Python per call, executing a prebuilt one ~50 us (SQLAlchemy caches the compiled form either
# way; what it cannot cache is the construction).
_USER_COLS = (
    users.c.id,
    users.c.name,
    users.c.password_hash,
    users.c.root_id,
    users.c.disabled,
    users.c.quota_bytes,
    users.c.used_bytes,
)
_GET_USER = select(*_USER_COLS).where(users.c.name == bindparam("name"))
_GET_USER_BY_ID = select(users).where(users.c.id == bindparam("user_id"))
_GET_NODE = select(*_NODE_COLS).where(nodes.c.id == bindparam("node_id"), _live)
# ``_row``: the node again, read from the table by rowid (see the module docstring).
_row = nodes.alias("row")
_GET_CHILD = (
    select(*[_row.c[c.name] for c in _NODE_COLS], _row.c.deleted_at)
    .join_from(nodes, _row, _row.c.id == nodes.c.id)
    .where(nodes.c.parent_id == bindparam("parent_id"), nodes.c.name == bindparam("name"), _live)
)
_LIST_CHILDREN = (
    select(*_NODE_COLS)
    .where(nodes.c.parent_id == bindparam("parent_id"), _live)
    .order_by(nodes.c.name)
)
_CHILD_NAMES = select(nodes.c.name).where(nodes.c.parent_id == bindparam("parent_id"), _live)
_BLOB_KEY_VERSION = select(blobs.c.key_version).where(blobs.c.id == bindparam("blob_id"))
_GET_PROPERTIES = select(props.c.name, props.c.value).where(props.c.node_id == bindparam("node_id"))
_CHILDREN_PROPERTIES = (
    select(props.c.node_id, props.c.name, props.c.value)
    .join(nodes, nodes.c.id == props.c.node_id)
    .where(nodes.c.parent_id == bindparam("parent_id"), _live)
)

# --- users -----------------------------------------------------------------------------------


def _user(row: Any) -> UserRow:
    return UserRow(
        row.id,
        row.name,
        row.password_hash,
        row.root_id,
        row.disabled,
        row.quota_bytes,
        row.used_bytes,
    )


def get_user(conn: Connection, name: str) -> UserRow | None:
    row = conn.execute(_GET_USER, {"name": name}).first()
    if not row:
        return None
    return _user(row)


def get_user_single(db: Database, name: str) -> UserRow | None:
    """:func:`get_user` as a single statement outside any transaction (every request's
    login asks it)."""
    row = db.read_one(_GET_USER, {"name": name})
    if row is None:
        return None
    return UserRow(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6])


def get_user_by_id(conn: Connection, user_id: int) -> UserRow | None:
    row = conn.execute(_GET_USER_BY_ID, {"user_id": user_id}).first()
    return _user(row) if row else None


def list_users(conn: Connection) -> list[tuple[UserRow, int]]:
    """Every user with the number of files they own."""
    counts = (
        select(nodes.c.owner_id, func.count().label("files"))
        .where(_live, nodes.c.is_dir.is_(False))
        .group_by(nodes.c.owner_id)
        .subquery()
    )
    rows = conn.execute(
        select(users, func.coalesce(counts.c.files, 0).label("files"))
        .outerjoin(counts, counts.c.owner_id == users.c.id)
        .order_by(users.c.name)
    ).all()
    return [(_user(r), r.files) for r in rows]


def create_user(conn: Connection, name: str, password_hash: str) -> UserRow:
    """A new user with an empty home; AlreadyExists if the name is taken (also by a writer
    that got there first, which PostgreSQL lets both check for and then refuses here)."""
    now = time.time()
    try:
        user_id = conn.execute(
            insert(users).values(
                name=name,
                password_hash=password_hash,
                created_at=now,
                disabled=False,
                quota_bytes=0,
                used_bytes=0,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    except SAIntegrityError:
        raise AlreadyExists(f"user {name!r}") from None
    root_id = conn.execute(
        insert(nodes).values(
            owner_id=user_id,
            parent_id=None,
            name="",
            is_dir=True,
            size=0,
            mtime=now,
            ctime=now,
            etag="",
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    conn.execute(update(users).where(users.c.id == user_id).values(root_id=root_id))
    user = get_user_by_id(conn, user_id)
    assert user is not None
    return user


def set_password_hash(conn: Connection, user_id: int, password_hash: str) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))


def delete_owner_content(conn: Connection, owner_id: int) -> list[str]:
    """Delete every node (with its properties) and blob row of an owner; return the blob ids,
    whose files are then the caller's to remove (files/content.py, ``Content.drop_owner``)."""
    blob_ids = list(conn.scalars(select(blobs.c.id).where(blobs.c.owner_id == owner_id)))
    conn.execute(delete(nodes).where(nodes.c.owner_id == owner_id))
    conn.execute(delete(blobs).where(blobs.c.owner_id == owner_id))
    return blob_ids


def delete_user(conn: Connection, user_id: int) -> None:
    """Remove a user with their keys and WebDAV locks; their content goes first
    (:func:`delete_owner_content`)."""
    name = conn.scalar(select(users.c.name).where(users.c.id == user_id))
    # Locks are held by principal, the user name: left behind, a grantee's locks kept the
    # owner out of their own files, and whoever was given the name next could use them.
    # Locks on the user's own tree (anyone's) lock nothing any more.
    home = lockkeys.home(user_id)
    conn.execute(
        delete(locks).where(
            (locks.c.principal == name)
            | (locks.c.root == home)
            | (func.substr(locks.c.root, 1, len(home) + 1) == home + "/")
        )
    )
    conn.execute(delete(user_keys).where(user_keys.c.user_id == user_id))
    conn.execute(delete(users).where(users.c.id == user_id))


_ADD_USED_BYTES = (
    update(users)
    .where(users.c.id == bindparam("user_id"))
    .values(used_bytes=users.c.used_bytes + bindparam("delta"))
)


def add_used_bytes(conn: Connection, user_id: int, delta: int) -> None:
    if delta:
        conn.execute(_ADD_USED_BYTES, {"user_id": user_id, "delta": delta})


# --- user keys -------------------------------------------------------------------------------


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


# --- nodes -----------------------------------------------------------------------------------


def get_node(conn: Connection, node_id: int) -> Entry | None:
    row = conn.execute(_GET_NODE, {"node_id": node_id}).first()
    return _entry(row) if row else None


def get_child(conn: Connection, parent_id: int, name: str) -> Entry | None:
    row = conn.execute(_GET_CHILD, {"parent_id": parent_id, "name": name}).first()
    if not row:
        return None
    _check_member(parent_id, name, row[2], row[3], row[_N_NODE_COLS])
    return _entry(row)


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
    at = _N_NODE_COLS
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
        statement = select(*[rows[-1].c[c.name] for c in _NODE_COLS], *chain).where(*where)
        _resolve_statements[depth] = statement
    return statement


def resolve(conn: Connection, root_id: int, names: Sequence[str]) -> Entry | None:
    """The node ``names`` lead to from ``root_id``; None if any step is missing or not a
    folder. One indexed query for up to ``RESOLVE_STEP`` names, whatever the tree's size."""
    if not names:
        return get_node(conn, root_id)
    entry: Entry | None = None
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
        entry = _entry(row)
        parent_id = entry.id
    return entry


def resolve_single(db: Database, root_id: int, names: Sequence[str]) -> Entry | None:
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
    return _entry_of_tuple(row) if row is not None else None


def list_children(conn: Connection, parent_id: int) -> list[Entry]:
    # Not checked against the table (a listing shows metadata, no content; a second read of
    # every member would cost a big folder's PROPFIND): opening or changing a member resolves
    # it by name, which is checked.
    rows = conn.execute(_LIST_CHILDREN, {"parent_id": parent_id}).all()
    return [_entry(r) for r in rows]


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
        select(nodes.c.id, nodes.c.size, nodes.c.is_dir).where(nodes.c.parent_id == cte.c.id, _live)
    )
    total = conn.scalar(select(func.sum(cte.c.size)).where(cte.c.is_dir.is_(False)))
    return int(total or 0)


def subtree_totals(conn: Connection, node_id: int) -> tuple[int, list[str]]:
    """Bytes a subtree is charged (its files and dead properties), and the blob ids its files
    point to."""
    ids = subtree_ids(conn, node_id)
    total = 0
    blob_ids: list[str] = []
    for chunk in _chunks(ids):
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


def _chunks(ids: list[int], n: int = 500) -> Iterable[list[int]]:
    for i in range(0, len(ids), n):
        yield ids[i : i + n]


_INSERT_NODE = insert(nodes)
_update_node_statements: dict[frozenset[str], Any] = {}


def insert_node(conn: Connection, **values: Any) -> Entry:
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
    conn: Connection, src: Entry, dest_parent_id: int, dest_name: str, *, recursive: bool
) -> Entry:
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


def _copy_row(conn: Connection, src: Entry, parent_id: int, name: str, now: float) -> Entry:
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


# --- content checksums left in clear (before migration 0005; files/checksum_upgrade.py) -----


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


# --- staged copies ---------------------------------------------------------------------------
# A big COPY is built in batches, each its own short write transaction, in rows nobody sees
# (``deleted_at`` holds the negated start time of the copy: no live lookup finds them), then
# attached in one short transaction (files/copymove.py, CopyMove._staged_copy).

_COPY_COLS = [
    c.name for c in nodes.columns if c.name not in ("id", "parent_id", "ctime", "deleted_at")
]


def subtree_ids_by_depth(conn: Connection, node_id: int, *, live: bool) -> list[int]:
    """The node and its descendants (only live ones if ``live``), parents before children."""
    tree = select(nodes.c.id, literal(0).label("depth")).where(nodes.c.id == node_id)
    cte = tree.cte("tree", recursive=True)
    step = select(nodes.c.id, (cte.c.depth + 1).label("depth")).where(nodes.c.parent_id == cte.c.id)
    cte = cte.union_all(step.where(_live) if live else step)
    return list(conn.scalars(select(cte.c.id).order_by(cte.c.depth, cte.c.id)))


def reserve_node_ids(conn: Connection, n: int) -> list[int]:
    """``n`` node ids no row has had (inside the caller's write transaction), so a batch of
    copied rows can name its parents without a round trip per row."""
    return dialects.of(conn).reserve_ids(conn, "nodes", n)


def stage_copy_top(conn: Connection, src: Entry, parent_id: int, marker: float) -> int:
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
            nodes.c.id.in_(list(ids)), _live
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
    tree = select(nodes.c.id).where(nodes.c.id == node_id).cte("tree", recursive=True)
    tree = tree.union_all(
        select(nodes.c.id).where(nodes.c.parent_id == tree.c.id, nodes.c.deleted_at == marker)
    )
    conn.execute(
        update(nodes)
        .where(nodes.c.id.in_(select(tree.c.id)), nodes.c.deleted_at == marker)
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


# --- blobs -----------------------------------------------------------------------------------


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


def drop_unreferenced_blobs(conn: Connection, blob_ids: Iterable[str | None]) -> list[str]:
    """Delete the rows of those blobs no node points to; return the ids deleted."""
    ids = list({i for i in blob_ids if i})
    if not ids:
        return []
    referenced = set(
        conn.scalars(
            select(nodes.c.current_blob_id).where(nodes.c.current_blob_id.in_(ids)).distinct()
        )
    )
    dead = [i for i in ids if i not in referenced]
    if dead:
        conn.execute(delete(blobs).where(blobs.c.id.in_(dead)))
    return dead


def blob_in_use(conn: Connection, blob_id: str) -> bool:
    """Whether any node points at this blob."""
    return bool(
        conn.scalar(
            select(func.count()).select_from(nodes).where(nodes.c.current_blob_id == blob_id)
        )
    )


def repoint_blob(conn: Connection, old_id: str, new_id: str) -> None:
    """Point every node on blob ``old_id`` at ``new_id`` (whose row exists) and delete the old
    row."""
    conn.execute(
        update(nodes).where(nodes.c.current_blob_id == old_id).values(current_blob_id=new_id)
    )
    conn.execute(delete(blobs).where(blobs.c.id == old_id))


def all_blob_rows(conn: Connection) -> dict[str, int]:
    """Every blob row: id -> ciphertext size."""
    return {r.id: r.size_cipher for r in conn.execute(select(blobs.c.id, blobs.c.size_cipher))}


def unreferenced_blob_ids(conn: Connection) -> list[str]:
    ref = select(nodes.c.id).where(nodes.c.current_blob_id == blobs.c.id).exists()
    return list(conn.scalars(select(blobs.c.id).where(~ref)))


# --- dead properties -------------------------------------------------------------------------


def get_properties(conn: Connection, node_id: int) -> dict[str, bytes]:
    rows = conn.execute(_GET_PROPERTIES, {"node_id": node_id})
    return {name: value for name, value in rows}


def get_children_properties(conn: Connection, parent_id: int) -> dict[int, dict[str, bytes]]:
    """Dead properties of every live child of a folder, by node id (one query)."""
    rows = conn.execute(_CHILDREN_PROPERTIES, {"parent_id": parent_id})
    found: dict[int, dict[str, bytes]] = {}
    for node_id, name, value in rows:
        found.setdefault(node_id, {})[name] = value
    return found


def property_sizes(conn: Connection, node_id: int) -> dict[str, int]:
    """name -> quota bytes of a node's dead properties."""
    rows = conn.execute(select(props.c.name, props.c.size).where(props.c.node_id == node_id))
    return {name: size for name, size in rows}


def set_properties(
    conn: Connection, node_id: int, changes: Mapping[str, tuple[bytes, int] | None]
) -> None:
    """Set (name -> (stored value, quota bytes)) or remove (name -> None) dead properties; the
    caller charges the bytes."""
    for name, change in changes.items():
        conn.execute(delete(props).where(and_(props.c.node_id == node_id, props.c.name == name)))
        if change is not None:
            value, size = change
            conn.execute(insert(props).values(node_id=node_id, name=name, value=value, size=size))


def replace_properties(conn: Connection, from_id: int, to_id: int, *, move: bool) -> None:
    """Give ``to_id`` exactly ``from_id``'s dead properties (moved, or copied: one owner, so
    the sealed values stay valid)."""
    conn.execute(delete(props).where(props.c.node_id == to_id))
    if move:
        conn.execute(update(props).where(props.c.node_id == from_id).values(node_id=to_id))
        return
    conn.execute(
        insert(props).from_select(
            ["node_id", "name", "value", "size"],
            select(literal(to_id), props.c.name, props.c.value, props.c.size).where(
                props.c.node_id == from_id
            ),
        )
    )


# --- shares ----------------------------------------------------------------------------------

shares = cast(Table, Share.__table__)
locks = cast(Table, Lock.__table__)


@dataclass(frozen=True, slots=True)
class ShareRow:
    id: int
    owner_id: int
    node_id: int
    grantee_id: int | None
    token_hash: str | None
    can_write: bool
    can_reshare: bool
    password_hash: str | None
    expires_at: float | None
    hidden: bool
    created_at: float
    file_drop: bool  # a link that may only add new names
    created_by: int | None  # who made it (None: before migration 0007, the owner)

    @property
    def creator_id(self) -> int:
        """Who made it: the owner, or a grantee who re-shared it."""
        return self.owner_id if self.created_by is None else self.created_by


def _share(row: Any) -> ShareRow:
    return ShareRow(
        row.id,
        row.owner_id,
        row.node_id,
        row.grantee_id,
        row.token_hash,
        row.can_write,
        row.can_reshare,
        row.password_hash,
        row.expires_at,
        row.hidden,
        row.created_at,
        row.file_drop,
        row.created_by,
    )


def create_share(conn: Connection, **values: Any) -> int:
    values.setdefault("created_at", time.time())
    values.setdefault("hidden", False)
    return int(conn.execute(insert(shares).values(**values)).inserted_primary_key[0])  # type: ignore[index]


def user_shares_of(conn: Connection, node_id: int, grantee_id: int) -> list[ShareRow]:
    """The shares of one node with one user, oldest first (one, or none; databases from before
    ``share add`` reused an existing share may hold several)."""
    query = (
        select(shares)
        .where(shares.c.node_id == node_id, shares.c.grantee_id == grantee_id)
        .order_by(shares.c.id)
    )
    return [_share(r) for r in conn.execute(query)]


def update_share(conn: Connection, share_id: int, **values: Any) -> None:
    conn.execute(update(shares).where(shares.c.id == share_id).values(**values))


def get_share(conn: Connection, share_id: int) -> ShareRow | None:
    row = conn.execute(select(shares).where(shares.c.id == share_id)).first()
    return _share(row) if row else None


def _by_token_hash(table: Table) -> Any:
    """SELECT the row of ``table`` whose ``token_hash`` is ``:token_hash``: found through the
    index, then read again from the table by rowid (see the module docstring)."""
    row = table.alias("row")
    return (
        select(row)
        .join_from(table, row, row.c.id == table.c.id)
        .where(table.c.token_hash == bindparam("token_hash"))
    )


def _row_by_token_hash(conn: Connection, statement: Any, token_hash: str, what: str) -> Any:
    row = conn.execute(statement, {"token_hash": token_hash}).first()
    if row is not None and row.token_hash != token_hash:
        # A link or an app password must never stand for another one.
        raise damaged(f"looking up {what} found row {row.id}, which has another hash")
    return row


_SHARE_BY_TOKEN = _by_token_hash(shares)


def share_by_token_hash(conn: Connection, token_hash: str) -> ShareRow | None:
    row = _row_by_token_hash(conn, _SHARE_BY_TOKEN, token_hash, "a link token")
    return _share(row) if row else None


def delete_share(conn: Connection, share_id: int) -> None:
    conn.execute(delete(shares).where(shares.c.id == share_id))


def set_share_hidden(conn: Connection, share_id: int, hidden: bool) -> None:
    conn.execute(update(shares).where(shares.c.id == share_id).values(hidden=hidden))


def list_shares(conn: Connection, user_id: int | None = None) -> list[ShareRow]:
    """Every share, or those a user owns, receives or made."""
    query = select(shares).order_by(shares.c.id)
    if user_id is not None:
        query = query.where(
            (shares.c.owner_id == user_id)
            | (shares.c.grantee_id == user_id)
            | (shares.c.created_by == user_id)
        )
    return [_share(r) for r in conn.execute(query)]


def shares_made_by(conn: Connection, user_id: int) -> list[ShareRow]:
    """The shares and links a user made of items that are not theirs (re-shares)."""
    query = select(shares).where(shares.c.created_by == user_id, shares.c.owner_id != user_id)
    return [_share(r) for r in conn.execute(query.order_by(shares.c.id))]


def shares_of_owner(conn: Connection, owner_id: int) -> list[ShareRow]:
    """Every share and link of a user's items, whoever made it."""
    query = select(shares).where(shares.c.owner_id == owner_id).order_by(shares.c.id)
    return [_share(r) for r in conn.execute(query)]


def shares_to(conn: Connection, grantee_id: int) -> list[ShareRow]:
    """Every share a user receives, hidden ones too (they grant as much)."""
    query = select(shares).where(shares.c.grantee_id == grantee_id).order_by(shares.c.id)
    return [_share(r) for r in conn.execute(query)]


_SHARES_RECEIVED = (
    select(shares, *[c.label(f"n_{c.name}") for c in _NODE_COLS])
    .join(nodes, nodes.c.id == shares.c.node_id)
    .where(shares.c.grantee_id == bindparam("grantee_id"), shares.c.hidden.is_(False), _live)
    .order_by(shares.c.id)
)


def shares_received(conn: Connection, grantee_id: int) -> list[tuple[ShareRow, Entry]]:
    """The visible user shares a user receives, with the shared node (oldest share first)."""
    rows = conn.execute(_SHARES_RECEIVED, {"grantee_id": grantee_id}).all()
    return [(_share(r), Entry(*r[-len(_NODE_COLS) :])) for r in rows]


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


def ancestors(conn: Connection, node_id: int) -> list[int]:
    """The node and all its ancestors, nearest first (one recursive query)."""
    return list(conn.scalars(_ANCESTORS, {"chain_node_id": node_id}))


def shares_covering(
    conn: Connection, node_id: int, *, grantee_id: int | None = None, share_id: int | None = None
) -> list[ShareRow]:
    """Shares on the node or an ancestor, to one grantee or with one id."""
    chain = ancestors(conn, node_id)
    query = select(shares).where(shares.c.node_id.in_(chain))
    if grantee_id is not None:
        query = query.where(shares.c.grantee_id == grantee_id)
    if share_id is not None:
        query = query.where(shares.c.id == share_id)
    return [_share(r) for r in conn.execute(query)]


def node_names(conn: Connection, node_id: int) -> list[str]:
    """Names from the owner's home down to the node ([] for a home)."""
    rows = conn.execute(_NAMES_DOWN, {"chain_node_id": node_id}).all()
    return [r.name for r in rows if r.parent_id is not None]


def set_quota(conn: Connection, user_id: int, quota_bytes: int) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(quota_bytes=quota_bytes))


def delete_locks_under(conn: Connection, root: str, *, principal: str) -> None:
    """Drop one principal's WebDAV locks on ``root`` and below."""
    prefix = root.rstrip("/") + "/"
    conn.execute(
        delete(locks).where(
            locks.c.principal == principal,
            (locks.c.root == root) | (func.substr(locks.c.root, 1, len(prefix)) == prefix),
        )
    )


# --- app passwords ---------------------------------------------------------------------------

app_tokens = cast(Table, AppToken.__table__)


@dataclass(frozen=True, slots=True)
class AppTokenRow:
    id: int
    user_id: int
    label: str
    created_at: float
    last_used_at: float | None


def _app_token(row: Any) -> AppTokenRow:
    return AppTokenRow(row.id, row.user_id, row.label, row.created_at, row.last_used_at)


def create_app_token(conn: Connection, user_id: int, label: str, token_hash: str) -> int:
    return int(
        conn.execute(
            insert(app_tokens).values(
                user_id=user_id, label=label, token_hash=token_hash, created_at=time.time()
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    )


_APP_TOKEN_BY_HASH = _by_token_hash(app_tokens)


def app_token_by_hash(conn: Connection, token_hash: str) -> AppTokenRow | None:
    row = _row_by_token_hash(conn, _APP_TOKEN_BY_HASH, token_hash, "an app password")
    return _app_token(row) if row else None


def list_app_tokens(conn: Connection, user_id: int) -> list[AppTokenRow]:
    rows = conn.execute(
        select(app_tokens).where(app_tokens.c.user_id == user_id).order_by(app_tokens.c.id)
    )
    return [_app_token(r) for r in rows]


def delete_app_token(conn: Connection, user_id: int, token_id: int) -> bool:
    """Revoke one of a user's app passwords; False if the user has none with that id."""
    result = conn.execute(
        delete(app_tokens).where(app_tokens.c.id == token_id, app_tokens.c.user_id == user_id)
    )
    return bool(result.rowcount)


def touch_app_token(conn: Connection, token_id: int, when: float) -> None:
    conn.execute(update(app_tokens).where(app_tokens.c.id == token_id).values(last_used_at=when))


# --- login throttling ------------------------------------------------------------------------

login_failures = cast(Table, LoginFailure.__table__)


@dataclass(frozen=True, slots=True)
class FailureCount:
    failures: int
    locked_until: float
    last_failure: float


def login_failures_for(conn: Connection, keys: Sequence[str]) -> dict[str, FailureCount]:
    rows = conn.execute(select(login_failures).where(login_failures.c.key.in_(list(keys))))
    return {r.key: FailureCount(r.failures, r.locked_until, r.last_failure) for r in rows}


def save_login_failure(conn: Connection, key: str, count: FailureCount) -> None:
    """Insert or replace one key's counter (callers hold a write transaction)."""
    values = {
        "failures": count.failures,
        "locked_until": count.locked_until,
        "last_failure": count.last_failure,
    }
    updated = conn.execute(
        update(login_failures).where(login_failures.c.key == key).values(**values)
    )
    if not updated.rowcount:
        conn.execute(insert(login_failures).values(key=key, **values))


def clear_login_failures(conn: Connection, keys: Sequence[str]) -> None:
    conn.execute(delete(login_failures).where(login_failures.c.key.in_(list(keys))))


def prune_login_failures(conn: Connection, before: float, now: float) -> int:
    """Forget counters whose last failure is older than ``before`` and that lock nothing."""
    result = conn.execute(
        delete(login_failures).where(
            login_failures.c.last_failure < before, login_failures.c.locked_until < now
        )
    )
    return int(result.rowcount or 0)
