"""What the ``versions`` and ``trash`` commands share: the actor a user name stands for, user
names for the ids history rows keep, and times as the operator reads them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from davdisk.errors import NotFound, UsageError
from davdisk.model import Actor, Node


def actor(services: Any, name: str) -> Actor:
    """The user ``name`` acting on their own files (as if logged in)."""
    found: Actor | None = services.files.actor(name)
    if found is None:
        raise NotFound(f"user {name!r}")
    return found


def entry(services: Any, who: Actor, path: str) -> Node:
    """What stands at ``path`` in ``who``'s files."""
    found: Node | None = services.files.resolve(who, path)
    if found is None:
        raise NotFound(f"{path!r} in the files of {who.name!r}")
    return found


def number(value: str, what: str) -> int:
    """A numeric argument, checked here for a one-line message (argparse prints its usage)."""
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"{what} is a number (see the list command), not {value!r}") from None
    if n < 1:
        raise UsageError(f"{what} is a positive number, not {value!r}")
    return n


def user_names(services: Any, ids: set[int | None]) -> dict[int | None, str]:
    """Names of the users with these ids; ``-`` for an unknown author (older content) and
    ``#ID`` for a user deleted since (a shared folder's grantee, say)."""
    from davdisk.meta import store

    names: dict[int | None, str] = {None: "-"}
    with services.db.read() as conn:
        for user_id in ids - {None}:
            assert user_id is not None
            user = store.get_user_by_id(conn, user_id)
            names[user_id] = user.name if user is not None else f"#{user_id}"
    return names


def when(t: float) -> str:
    """Local time, ISO 8601 with its UTC offset, to the second."""
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")
