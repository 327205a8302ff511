"""Who may do what: the one access-control decision of davdisk.

Every operation of the files API asks :meth:`Access.allowed` (through :func:`allow`) before it
touches a node; no other code compares owners. A node is reachable by its owner, by a user it is
shared with (a share on it or on a folder above it), or through a public link (a share with a
token, on it or above it). What each may do:

====================  ======  ===========================  ===========  ============================
action                owner   grantee (read-only / write)  + reshare    link (read / upload / drop)
====================  ======  ===========================  ===========  ============================
find (by its path)    yes     yes / yes                    yes          yes / yes / folders
read (content, list)  yes     yes / yes                    yes          yes / yes / no
create (new name in)  yes     no / yes                     as granted   no / yes / yes (folders)
write (change)        yes     no / yes                     as granted   no / yes / no
delete                yes     no / yes                     as granted   no / no / no
lock                  yes     no / yes                     as granted   no / no / no
share                 yes     no / no                      yes          no / no / no
====================  ======  ===========================  ===========  ============================

A COPY or MOVE onto an existing item replaces it, which needs ``delete`` on that item: an upload
link may add files and change their content, but never replace or remove anything. A file drop
("upload-only" link) may only add: it finds folders (to add into them) but no file, and can
neither read nor change anything that is there, what it added itself included.
"""

from __future__ import annotations

import time
from dataclasses import replace

from sqlalchemy import Connection

from davdisk.errors import Forbidden
from davdisk.meta import store
from davdisk.meta.db import Database
from davdisk.model import Action, Actor, Node, Share


def link_usable(share: Share, now: float | None = None) -> bool:
    """A link share that has not expired."""
    return share.token_hash is not None and (
        share.expires_at is None or share.expires_at > (now or time.time())
    )


def owns(actor: Actor, entry: Node) -> bool:
    """The actor is the node's owner (and acts as a user, not through a link)."""
    return actor.link is None and entry.owner_id == actor.id


class Access:
    @staticmethod
    def allowed(conn: Connection, actor: Actor, entry: Node, action: Action) -> bool:
        if owns(actor, entry):
            return True
        if actor.link is not None:
            link = actor.link
            if not link_usable(link) or link.node_id not in store.ancestors(conn, entry.id):
                return False
            if link.file_drop:
                return action in ("find", "create") and entry.is_dir
            return action in ("find", "read") or (action in ("create", "write") and link.can_write)
        grants = store.shares_covering(conn, entry.id, grantee_id=actor.id)
        if not grants:
            return False
        if action in ("find", "read"):
            return True
        if action == "share":
            return any(g.can_reshare for g in grants)
        return any(g.can_write for g in grants)


def require(conn: Connection, actor: Actor, entry: Node, action: Action) -> None:
    """Raise Forbidden unless ``actor`` may do ``action`` on ``entry``, asked inside a write
    transaction, late in a long request: a link removed since the request began must count as
    gone, so its row is read again."""
    if owns(actor, entry):
        return
    if actor.link is not None:
        link = store.get_share(conn, actor.link.id)
        ok = link is not None and Access.allowed(conn, replace(actor, link=link), entry, action)
    else:
        ok = Access.allowed(conn, actor, entry, action)
    if not ok:
        raise Forbidden(f"{action} not allowed")


def allow(
    db: Database, actor: Actor, entry: Node, action: Action, conn: Connection | None = None
) -> None:
    """The access-control choke point of the files API: raise Forbidden unless ``actor`` may
    do ``action`` on ``entry``. Inside a transaction (``conn``) a link's row is read again
    (see :func:`require`)."""
    if owns(actor, entry):
        return  # the common case needs no query
    if conn is not None:
        require(conn, actor, entry, action)
        return
    with db.read() as c:
        ok = Access.allowed(c, actor, entry, action)
    if not ok:
        raise Forbidden(f"{action} not allowed")


def allowed(db: Database, actor: Actor, entry: Node, action: Action) -> bool:
    """Whether ``actor`` may do ``action`` on ``entry`` (for faces that show permissions)."""
    try:
        allow(db, actor, entry, action)
    except Forbidden:
        return False
    return True
