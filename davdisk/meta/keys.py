"""The ``user_keys`` table: each user's root key per version, wrapped by a master key.

Only rows go in and out here; wrapping, unwrapping and caching are files/keyring.py's.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, func, select

from davdisk.meta.db import Database
from davdisk.meta.models import UserKey

user_keys = cast(Table, UserKey.__table__)

# Asked on every upload; built once (see meta/store.py on why).
_NEWEST = (
    select(user_keys.c.version, user_keys.c.wrapped_key, user_keys.c.master_key_id)
    .where(user_keys.c.user_id == bindparam("user_id"))
    .order_by(user_keys.c.version.desc())
    .limit(1)
)


def serialise_key_changes(db: Database, conn: Connection) -> None:
    """Inside a write transaction: exclude every other process adding or rewrapping user
    keys until it ends. Nothing to do: every write transaction already runs alone, on every
    backend (Database.write; PostgreSQL's once took a row lock on ``mutexes`` here)."""


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
