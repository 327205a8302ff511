"""Revocation cascades: what a grantee shared on lasts only as long as their right to share it.

A grantee allowed to re-share makes shares and links of the owner's item (``created_by`` is
them). Those rest on the grantee's own share: when it is removed (``share rm``), loses the
rights they needed (``share add`` without ``--reshare`` or ``--write``), or its grantee is
deleted (``user del``), every share and link its maker may no longer make goes too - and so on
down the chain, for the grantees of what went. What another share still allows its maker to
make stays. The owner's own shares never go this way: an owner's rights do not change.

Everything happens in the caller's write transaction, so no request sees half a cascade.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from davdisk.files.access import Access, Actor
from davdisk.files.api import lock_root
from davdisk.meta import store
from davdisk.meta.store import ShareRow


def unsupported(conn: Connection, maker_id: int) -> list[ShareRow]:
    """What ``maker_id`` made that they may no longer make (all of it if they are gone)."""
    made = store.shares_made_by(conn, maker_id)
    user = store.get_user_by_id(conn, maker_id)
    if user is None or not made:
        return made
    maker = Actor(user.id, user.name, user.root_id)
    gone = []
    for share in made:
        entry = store.get_node(conn, share.node_id)
        if entry is None:
            continue  # the item is gone, and its shares with it
        may_share = Access.allowed(conn, maker, entry, "share")
        if not may_share or (share.can_write and not Access.allowed(conn, maker, entry, "write")):
            gone.append(share)
    return gone


def revoke(conn: Connection, shares: Iterable[ShareRow]) -> list[int]:
    """Remove ``shares`` and everything made through them; return the ids removed.

    A removed share grants nothing from the next request on, and its grantee's locks in it are
    released (a lock is a write its holder may no longer finish)."""
    todo = list(shares)
    removed: list[int] = []
    while todo:
        share = todo.pop()
        if share.id in removed or store.get_share(conn, share.id) is None:
            continue
        store.delete_share(conn, share.id)
        removed.append(share.id)
        if share.grantee_id is None:
            continue  # a link makes nothing
        grantee = store.get_user_by_id(conn, share.grantee_id)
        if grantee is not None:
            names = store.node_names(conn, share.node_id)
            store.delete_locks_under(conn, lock_root(share.owner_id, names), principal=grantee.name)
        todo.extend(unsupported(conn, share.grantee_id))
    return removed
