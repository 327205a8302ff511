"""Lock keys: the ``/u/<user id>/<path>`` strings WebDAV locks (and their rows) are filed under.

A key names a node by its owner and its quoted path in the owner's home, so two users' equal
paths never share a lock, and the owner and everyone a folder is shared with contend for the
same ones. The server writes them (WsgiDAV's reference URLs), the lock storage looks them up,
and revocation and user removal delete by them: all build and read them here, so they agree.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

# Group 2: the quoted path. ``$`` (not \Z) as the provider's parsing always had it.
_KEY = re.compile(r"/u/(\d+)(/.*)?$")


def home(user_id: int) -> str:
    """The key of a user's home; every key of the user's nodes is it or starts with it + '/'."""
    return f"/u/{user_id}"


def of_path(user_id: int, path: str) -> str:
    """The key of ``path`` (unquoted, starting with '/') in the home of ``user_id``."""
    return home(user_id) + quote(path)


def of_names(owner_id: int, names: list[str]) -> str:
    """The key of the node at ``names`` in its owner's home ([] is the home itself)."""
    return of_path(owner_id, "/" + "/".join(names))


def of_folder(key: str) -> str:
    """A folder's key as the server files locks under it: ending with '/' (as WsgiDAV's
    preferred path of a collection does)."""
    return key if key.endswith("/") else key + "/"


def below(key: str) -> str:
    """What the keys of everything below ``key``'s node start with."""
    return key.rstrip("/") + "/"


def child(key: str, name: str) -> str:
    """The key of the member ``name`` (unquoted) of the folder whose key is ``key``, whether
    or not anything stands there yet."""
    return below(key) + quote(name)


def parent(key: str) -> str:
    """The key of the folder holding ``key``'s node, ending with '/' (its last segment cut
    off, as WsgiDAV's ``util.get_uri_parent`` does)."""
    return key.rstrip("/").rsplit("/", 1)[0] + "/"


def of_link(link_id: int, *, drop: bool = False) -> str:
    """The reference URL of a public link's folder (its file drop's, with ``drop``). No lock is
    taken there (the link's folders prevent locking) and it names no node: not a key."""
    return f"/link/{link_id}/drop/" if drop else f"/link/{link_id}/"


def parked(key: str, node_id: int) -> str:
    """Where the locks on ``key`` wait while node ``node_id``, renamed away from it, may come
    back (an editor's save-by-rename, see dav/locks.py): not a key, so they cover nothing
    meanwhile. The node's id keeps two files that left the same name apart."""
    return f"/vacated/{node_id}{key}"


def parse(key: str) -> tuple[int, list[str]] | None:
    """(owner id, names) of a key; None if it is not one."""
    m = _KEY.fullmatch(key)
    if m is None:
        return None
    return int(m.group(1)), [unquote(p) for p in (m.group(2) or "").split("/") if p]


def path_of(key: str) -> str:
    """The path a key names in its user's home; '/' when it is not a key."""
    m = _KEY.match(key)
    return unquote(m.group(2) or "/") if m else "/"
