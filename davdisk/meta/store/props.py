"""Queries on dead properties (sealed values, charged sizes)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)

from davdisk.meta.store.rows import LIVE
from davdisk.meta.tables import nodes, props

__all__ = [
    "get_children_properties",
    "get_properties",
    "overlay_properties",
    "property_sizes",
    "replace_properties",
    "set_properties",
]

_GET_PROPERTIES = select(props.c.name, props.c.value).where(props.c.node_id == bindparam("node_id"))


_CHILDREN_PROPERTIES = (
    select(props.c.node_id, props.c.name, props.c.value)
    .join(nodes, nodes.c.id == props.c.node_id)
    .where(nodes.c.parent_id == bindparam("parent_id"), LIVE)
)


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


def overlay_properties(conn: Connection, from_id: int, to_id: int) -> int:
    """Move ``from_id``'s dead properties onto ``to_id``, replacing those of the same names and
    keeping its others (one owner: the sealed values stay valid); returns the quota bytes of
    the replaced ones, for the caller to uncount."""
    same = select(props.c.name).where(props.c.node_id == from_id)
    replaced = conn.scalar(
        select(func.coalesce(func.sum(props.c.size), 0)).where(
            props.c.node_id == to_id, props.c.name.in_(same)
        )
    )
    conn.execute(delete(props).where(props.c.node_id == to_id, props.c.name.in_(same)))
    conn.execute(update(props).where(props.c.node_id == from_id).values(node_id=to_id))
    return int(replaced or 0)
