"""Revocation cascades: a share lasts only as long as its maker may still make it.

A grantee allowed to re-share makes shares and links of the owner's item (``created_by`` is
them). Those rest on the grantee's own shares: when one is removed (``share rm``), loses the
rights they needed (``share add`` without ``--reshare`` or ``--write``), or its grantee is
deleted (``user del``), every share and link its maker may no longer make goes too - and so on
down the chain, for the grantees of what went.

Which shares stay is decided from the owner down, never by asking each maker's rights as they
stand: shares can hold each other up in a circle (bob re-shares to carol, carol shares back to
bob), and a circle would keep itself alive after the owner's share that started it was gone.
So the owner's own shares stay (rows from before migration 0007, with no maker, are the
owner's), then, again and again, every share whose maker holds the rights it needs through
shares already kept: ``share`` for any share or link, and ``write`` too for one that writes
(a write share, an editable link, a file drop). Whatever is not reached this way goes.

Everything happens in the caller's write transaction, so no request sees half a cascade.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from davdisk import lockkeys
from davdisk.meta import store
from davdisk.model import Share


def unreached(conn: Connection, owner_id: int) -> list[Share]:
    """The shares and links of ``owner_id``'s items that no chain from the owner holds up."""
    rows = store.shares_of_owner(conn, owner_id)
    kept = {s.id for s in rows if s.creator_id == owner_id}
    chains: dict[int, set[int]] = {}  # node id -> it and its ancestors

    def chain(node_id: int) -> set[int]:
        if node_id not in chains:
            chains[node_id] = set(store.ancestors(conn, node_id))
        return chains[node_id]

    grew = True
    while grew:
        grew = False
        for share in rows:
            if share.id in kept:
                continue
            grants = [
                g
                for g in rows
                if g.id in kept
                and g.grantee_id == share.creator_id
                and g.node_id in chain(share.node_id)
            ]
            if any(g.can_reshare for g in grants) and (
                not share.can_write or any(g.can_write for g in grants)
            ):
                kept.add(share.id)
                grew = True
    return [s for s in rows if s.id not in kept]


def revoke(conn: Connection, shares: Iterable[Share]) -> list[int]:
    """Remove ``shares`` and everything no longer held up without them; return the ids removed.

    A removed share grants nothing from the next request on, and its grantee's locks in it are
    released (a lock is a write its holder may no longer finish)."""
    removed: list[int] = []
    owners: set[int] = set()
    for share in shares:
        if _remove(conn, share):
            removed.append(share.id)
        owners.add(share.owner_id)
    for owner_id in sorted(owners):
        removed += [s.id for s in unreached(conn, owner_id) if _remove(conn, s)]
    return removed


def settle(conn: Connection, owner_id: int) -> list[int]:
    """Remove what the owner's shares, as they now are, no longer hold up (after rights were
    taken away from a share); return the ids removed."""
    return revoke(conn, unreached(conn, owner_id))


def _remove(conn: Connection, share: Share) -> bool:
    if store.get_share(conn, share.id) is None:
        return False
    store.delete_share(conn, share.id)
    if share.grantee_id is not None:  # a link holds no locks of a user
        grantee = store.get_user_by_id(conn, share.grantee_id)
        if grantee is not None:
            names = store.node_names(conn, share.node_id)
            store.delete_locks_under(
                conn, lockkeys.of_names(share.owner_id, names), principal=grantee.name
            )
    return True
