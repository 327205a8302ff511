"""Making and removing shares: user-to-user shares and public links (used by the CLI).

What a share lets its holder do is decided in ``access.py``; this module only creates, lists and
revokes them, checking that whoever shares may share (the owner, or a grantee allowed to
re-share) and never grants more than they hold. Each share records who made it; taking a right
away takes away what was made with it (``revocation.py``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from davdisk.crypto.passwords import hash_password
from davdisk.errors import Forbidden, NotFound, UsageError
from davdisk.files.api import Files
from davdisk.files.revocation import revoke, settle
from davdisk.meta import store
from davdisk.meta.db import Database
from davdisk.model import Actor, Node

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def token_hash(token: str) -> str:
    """Links are looked up by a hash of their token, so the database never holds a usable link."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_expiry(text: str, now: float | None = None) -> float:
    """``7d``/``12h``/``30m``/``2w`` from now, or a date ``2026-12-31`` (end of that day, UTC)."""
    now = time.time() if now is None else now
    m = _DURATION.match(text.strip())
    if m:
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
        if seconds <= 0:
            raise UsageError(f"expiry {text!r} is not in the future")
        return now + seconds
    try:
        day = datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise UsageError(
            f"bad expiry {text!r}: use a duration like 7d, 12h, 30m or a date like 2026-12-31"
        ) from None
    end = (day + timedelta(days=1)).timestamp()
    if end <= now:
        raise UsageError(f"expiry {text!r} is in the past")
    return end


@dataclass(frozen=True)
class ShareInfo:
    id: int
    owner: str
    made_by: str  # the owner, or the grantee who shared it on
    path: str
    grantee: str | None  # None for a link
    permissions: list[str]
    expires_at: float | None
    hidden: bool


class Shares:
    def __init__(self, db: Database, files: Files, bcrypt_cost: int = 12) -> None:
        self.db = db
        self.files = files
        self.bcrypt_cost = bcrypt_cost

    def _actor(self, name: str) -> Actor:
        actor = self.files.actor(name)
        if actor is None:
            raise NotFound(f"user {name!r}")
        return actor

    def _shareable(self, actor: Actor, path: str) -> Node:
        entry = self.files.resolve(actor, path)
        if entry is None:
            raise NotFound(f"{path!r} in the files of {actor.name!r}")
        if entry.parent_id is None:
            raise Forbidden("a home folder cannot be shared; share a folder in it")
        if not self.files.may(actor, entry, "share"):
            raise Forbidden(f"{actor.name!r} may not share {path!r}")
        return entry

    def add(self, sharer: str, path: str, grantee: str, *, write: bool, reshare: bool) -> int:
        """Share ``path`` (in ``sharer``'s namespace) with ``grantee``; return the share id.

        An item has at most one share per grantee: if there is one, it gets these rights and is
        shown again if the grantee had hidden it (its id, and where it is mounted, stay)."""
        actor = self._actor(sharer)
        target = self._actor(grantee)
        entry = self._shareable(actor, path)
        if target.id in (actor.id, entry.owner_id):
            raise UsageError("an item cannot be shared with its own owner")
        if write and not self.files.may(actor, entry, "write"):
            raise Forbidden(f"{sharer!r} may not grant write access to {path!r}")
        with self.db.write() as conn:
            existing = store.user_shares_of(conn, entry.id, target.id)
            if existing:
                keep, *extra = existing
                # A share is changed only by whom it rests on: its maker, or the owner, who
                # takes it over (the owner's word outlasts any grantee's share). Another
                # grantee able to share the item would otherwise become its maker, and it
                # would go when their own share does.
                if actor.id not in (entry.owner_id, keep.creator_id):
                    made_by = store.get_user_by_id(conn, keep.creator_id)
                    maker = made_by.name if made_by is not None else "its maker"
                    raise Forbidden(
                        f"share {keep.id} of {path!r} with {grantee!r} was made by {maker!r}:"
                        " only they or the owner may change it"
                    )
                store.update_share(
                    conn,
                    keep.id,
                    can_write=write,
                    can_reshare=reshare,
                    hidden=False,
                    created_by=actor.id,
                )
                for dup in extra:  # left by older versions; same item, same grantee
                    store.delete_share(conn, dup.id)
                # Fewer rights: what the grantee made with the ones taken away goes.
                settle(conn, entry.owner_id)
                return keep.id
            return store.create_share(
                conn,
                owner_id=entry.owner_id,
                node_id=entry.id,
                grantee_id=target.id,
                can_write=write,
                can_reshare=reshare,
                created_by=actor.id,
            )

    def add_link(
        self,
        sharer: str,
        path: str,
        *,
        expires_at: float | None = None,
        password: str | None = None,
        upload: bool = False,
        file_drop: bool = False,
    ) -> tuple[int, str]:
        """A public link to ``path``; returns (share id, token). The token is shown once.

        Read-only by default; ``upload``: editable (read, add and change files); ``file_drop``:
        upload-only (add new files and folders, see and change nothing)."""
        if upload and file_drop:
            raise UsageError("a link is either editable (--upload) or a file drop, not both")
        option = "--upload" if upload else "--file-drop"
        actor = self._actor(sharer)
        entry = self._shareable(actor, path)
        if (upload or file_drop) and not self.files.may(actor, entry, "write"):
            raise Forbidden(f"{sharer!r} may not allow uploads to {path!r}")
        if (upload or file_drop) and not entry.is_dir:
            raise UsageError(f"{option} needs a folder")
        token = secrets.token_urlsafe(24)  # 192 bits
        with self.db.write() as conn:
            share_id = store.create_share(
                conn,
                owner_id=entry.owner_id,
                node_id=entry.id,
                token_hash=token_hash(token),
                can_write=upload or file_drop,
                can_reshare=False,
                file_drop=file_drop,
                created_by=actor.id,
                password_hash=hash_password(password, self.bcrypt_cost) if password else None,
                expires_at=expires_at,
            )
        return share_id, token

    def list(self, user: str | None = None) -> list[ShareInfo]:
        user_id = self._actor(user).id if user is not None else None
        with self.db.read() as conn:
            rows = store.list_shares(conn, user_id)
            names = {u.id: u.name for u, _ in store.list_users(conn)}
            found = []
            for r in rows:
                perms = ["read"]
                if r.file_drop:
                    perms = ["drop"]  # adds new names; reads nothing
                elif r.can_write:
                    perms.append("upload" if r.token_hash else "write")
                if r.can_reshare:
                    perms.append("reshare")
                found.append(
                    ShareInfo(
                        r.id,
                        names.get(r.owner_id, str(r.owner_id)),
                        names.get(r.creator_id, str(r.creator_id)),
                        "/" + "/".join(store.node_names(conn, r.node_id)),
                        None if r.grantee_id is None else names.get(r.grantee_id, "?"),
                        perms,
                        r.expires_at,
                        r.hidden,
                    )
                )
        return found

    def remove(self, share_id: int) -> tuple[int, ...]:
        """Revoke a share: from the next request on it grants nothing, the grantee's locks in
        it are released, and what the grantee shared on through it goes too (see
        ``revocation.py``). Returns the ids of the other shares and links that went with it."""
        with self.db.write() as conn:
            share = store.get_share(conn, share_id)
            if share is None:
                raise NotFound(f"share {share_id}")
            return tuple(i for i in revoke(conn, [share]) if i != share_id)
