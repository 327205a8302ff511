"""Quota: what an owner's quota still allows, and charging bytes against it.

Used in the write transactions of the files API and of the content transition
(files/content.py), so that a change is charged in the same transaction that makes it.
"""

from __future__ import annotations

from sqlalchemy import Connection

from davdisk.errors import InsufficientStorage
from davdisk.meta import store


def allowance(conn: Connection, owner_id: int) -> int | None:
    """Bytes the owner's quota still allows; None if unlimited."""
    user = store.get_user_by_id(conn, owner_id)
    if user is None or user.quota_bytes <= 0:
        return None
    return max(0, user.quota_bytes - user.used_bytes)


def charge(conn: Connection, owner_id: int, delta: int) -> None:
    """Count ``delta`` bytes against the owner; refuse growth beyond the quota."""
    if delta > 0:
        left = allowance(conn, owner_id)
        if left is not None and delta > left:
            raise InsufficientStorage(f"{delta} more bytes exceed the quota")
    store.add_used_bytes(conn, owner_id, delta)
