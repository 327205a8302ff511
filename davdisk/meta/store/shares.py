"""Queries on shares: user shares and public links, what covers a node."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    insert,
    select,
    update,
)

from davdisk.meta.store.nodes import ancestors
from davdisk.meta.store.rows import LIVE, NODE_COLS, by_token_hash, row_by_token_hash
from davdisk.meta.tables import nodes, shares
from davdisk.model import Node, Share

__all__ = [
    "Share",
    "create_share",
    "delete_share",
    "get_share",
    "list_shares",
    "set_share_hidden",
    "share_by_token_hash",
    "shares_covering",
    "shares_made_by",
    "shares_of_owner",
    "shares_received",
    "shares_to",
    "update_share",
    "user_shares_of",
]


def _share(row: Any) -> Share:
    return Share(
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


def user_shares_of(conn: Connection, node_id: int, grantee_id: int) -> list[Share]:
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


def get_share(conn: Connection, share_id: int) -> Share | None:
    row = conn.execute(select(shares).where(shares.c.id == share_id)).first()
    return _share(row) if row else None


_SHARE_BY_TOKEN = by_token_hash(shares)


def share_by_token_hash(conn: Connection, token_hash: str) -> Share | None:
    row = row_by_token_hash(conn, _SHARE_BY_TOKEN, token_hash, "a link token")
    return _share(row) if row else None


def delete_share(conn: Connection, share_id: int) -> None:
    conn.execute(delete(shares).where(shares.c.id == share_id))


def set_share_hidden(conn: Connection, share_id: int, hidden: bool) -> None:
    conn.execute(update(shares).where(shares.c.id == share_id).values(hidden=hidden))


def list_shares(conn: Connection, user_id: int | None = None) -> list[Share]:
    """Every share, or those a user owns, receives or made."""
    query = select(shares).order_by(shares.c.id)
    if user_id is not None:
        query = query.where(
            (shares.c.owner_id == user_id)
            | (shares.c.grantee_id == user_id)
            | (shares.c.created_by == user_id)
        )
    return [_share(r) for r in conn.execute(query)]


def shares_made_by(conn: Connection, user_id: int) -> list[Share]:
    """The shares and links a user made of items that are not theirs (re-shares)."""
    query = select(shares).where(shares.c.created_by == user_id, shares.c.owner_id != user_id)
    return [_share(r) for r in conn.execute(query.order_by(shares.c.id))]


def shares_of_owner(conn: Connection, owner_id: int) -> list[Share]:
    """Every share and link of a user's items, whoever made it."""
    query = select(shares).where(shares.c.owner_id == owner_id).order_by(shares.c.id)
    return [_share(r) for r in conn.execute(query)]


def shares_to(conn: Connection, grantee_id: int) -> list[Share]:
    """Every share a user receives, hidden ones too (they grant as much)."""
    query = select(shares).where(shares.c.grantee_id == grantee_id).order_by(shares.c.id)
    return [_share(r) for r in conn.execute(query)]


_SHARES_RECEIVED = (
    select(shares, *[c.label(f"n_{c.name}") for c in NODE_COLS])
    .join(nodes, nodes.c.id == shares.c.node_id)
    .where(shares.c.grantee_id == bindparam("grantee_id"), shares.c.hidden.is_(False), LIVE)
    .order_by(shares.c.id)
)


def shares_received(conn: Connection, grantee_id: int) -> list[tuple[Share, Node]]:
    """The visible user shares a user receives, with the shared node (oldest share first)."""
    rows = conn.execute(_SHARES_RECEIVED, {"grantee_id": grantee_id}).all()
    return [(_share(r), Node(*r[-len(NODE_COLS) :])) for r in rows]


def shares_covering(
    conn: Connection, node_id: int, *, grantee_id: int | None = None, share_id: int | None = None
) -> list[Share]:
    """Shares on the node or an ancestor, to one grantee or with one id."""
    chain = ancestors(conn, node_id)
    query = select(shares).where(shares.c.node_id.in_(chain))
    if grantee_id is not None:
        query = query.where(shares.c.grantee_id == grantee_id)
    if share_id is not None:
        query = query.where(shares.c.id == share_id)
    return [_share(r) for r in conn.execute(query)]
