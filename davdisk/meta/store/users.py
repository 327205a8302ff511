"""Queries on users: accounts, password hashes, quotas and the bytes they use."""

from __future__ import annotations

import time
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
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from davdisk import lockkeys
from davdisk.errors import AlreadyExists
from davdisk.meta.db import Database
from davdisk.meta.store.locks import on_or_under
from davdisk.meta.store.rows import LIVE
from davdisk.meta.tables import blobs, locks, nodes, user_keys, users
from davdisk.model import User

__all__ = [
    "User",
    "add_used_bytes",
    "create_user",
    "delete_owner_content",
    "delete_user",
    "get_user",
    "get_user_by_id",
    "get_user_single",
    "list_users",
    "set_password_hash",
    "set_quota",
]


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


def _user(row: Any) -> User:
    return User(
        row.id,
        row.name,
        row.password_hash,
        row.root_id,
        row.disabled,
        row.quota_bytes,
        row.used_bytes,
    )


def get_user(conn: Connection, name: str) -> User | None:
    row = conn.execute(_GET_USER, {"name": name}).first()
    if not row:
        return None
    return _user(row)


def get_user_single(db: Database, name: str) -> User | None:
    """:func:`get_user` as a single statement outside any transaction (every request's
    login asks it)."""
    row = db.read_one(_GET_USER, {"name": name})
    if row is None:
        return None
    return User(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6])


def get_user_by_id(conn: Connection, user_id: int) -> User | None:
    row = conn.execute(_GET_USER_BY_ID, {"user_id": user_id}).first()
    return _user(row) if row else None


def list_users(conn: Connection) -> list[tuple[User, int]]:
    """Every user with the number of files they own."""
    counts = (
        select(nodes.c.owner_id, func.count().label("files"))
        .where(LIVE, nodes.c.is_dir.is_(False))
        .group_by(nodes.c.owner_id)
        .subquery()
    )
    rows = conn.execute(
        select(users, func.coalesce(counts.c.files, 0).label("files"))
        .outerjoin(counts, counts.c.owner_id == users.c.id)
        .order_by(users.c.name)
    ).all()
    return [(_user(r), r.files) for r in rows]


def create_user(conn: Connection, name: str, password_hash: str) -> User:
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
    conn.execute(
        delete(locks).where((locks.c.principal == name) | on_or_under(lockkeys.home(user_id)))
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


def set_quota(conn: Connection, user_id: int, quota_bytes: int) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(quota_bytes=quota_bytes))
