"""History: a file's versions and a user's trash, for whoever may see them — the owner alone.

Versions and trash are the owner's: an old version may hold what the owner removed before
sharing the file, and the trash holds what they deleted. So a grantee or a link may use
neither, even of a shared file or of an item deleted inside a share (Nextcloud lets sharees
see versions; davdisk does not, since that reveals content the owner took out). What a grantee
deletes in a share goes to the owner's trash, where the owner can restore it.

The transitions themselves (keep a version, restore one, trash, restore, purge, make room)
are the content owner's (files/content.py); this module asks who may, finds the rows, and
runs each change in one transaction.
"""

from __future__ import annotations

import contextlib
import posixpath
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import BinaryIO

from sqlalchemy import Connection

from davdisk.errors import Conflict, Forbidden, NotFound
from davdisk.files import retention
from davdisk.files.access import owns
from davdisk.files.content import Content, still_there
from davdisk.files.transfer import Transfer
from davdisk.meta import store
from davdisk.meta.db import Database
from davdisk.model import Actor, Node, TrashItem, Version


def _owner_only(actor: Actor, entry: Node) -> None:
    if not owns(actor, entry):
        raise Forbidden("only the owner may see or restore versions")


def _restored_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name (restored).ext``, ``name (restored 2).ext``, ... if taken (the
    suffix Nextcloud gives)."""
    if name not in taken:
        return name
    stem, ext = posixpath.splitext(name)
    if not stem:  # ".profile"
        stem, ext = name, ""
    n = 1
    while True:
        candidate = f"{stem} (restored{'' if n == 1 else f' {n}'}){ext}"
        if candidate not in taken:
            return candidate
        n += 1


class History:
    """Thread-safe; one per application, behind ``Files`` (``files.history``)."""

    def __init__(self, db: Database, content: Content, transfer: Transfer) -> None:
        self.db = db
        self.content = content
        self.transfer = transfer

    # --- versions ----------------------------------------------------------------------------

    def versions(self, actor: Actor, entry: Node) -> list[Version]:
        """A file's versions, newest first (not its current content)."""
        _owner_only(actor, entry)
        if entry.is_dir:
            raise Conflict("a folder has no versions")
        with self.db.read() as conn:
            return store.list_versions(conn, entry.id)

    def version(self, actor: Actor, entry: Node, version_id: int) -> Version:
        _owner_only(actor, entry)
        with self.db.read() as conn:
            found = store.get_version(conn, entry.id, version_id)
        if found is None:
            raise NotFound(f"version {version_id} of {entry.name!r}")
        return found

    def open_version(
        self, actor: Actor, entry: Node, version: Version, want: tuple[int, int] | None = None
    ) -> BinaryIO:
        """Verified plaintext of a version (``want``: the range to be read, as for
        ``Files.open_read``)."""
        _owner_only(actor, entry)
        as_file = replace(entry, blob_id=version.blob_id, size=version.size)
        try:
            return self.transfer.open_read(actor, as_file, want)
        except NotFound:
            raise NotFound(f"version {version.id} of {entry.name!r}") from None

    def restore_version(self, actor: Actor, entry: Node, version_id: int) -> Node:
        """Make a version the file's current content; what it replaces becomes a version."""
        _owner_only(actor, entry)
        with self.db.write() as conn:
            node = store.get_live_node(conn, entry.id)
            if node is None:
                raise NotFound(repr(entry.name))
            version = store.get_version(conn, node.id, version_id)
            if version is None:
                raise NotFound(f"version {version_id} of {entry.name!r}")
            dead = self.content.restore_version(conn, node, version, actor)
            result = still_there(store.get_node(conn, node.id))
        self.content.remove(dead)
        return replace(result, name=entry.name)

    def delete_version(self, actor: Actor, entry: Node, version_id: int) -> None:
        """Let one version go now (pinned or not): its blob is freed if nothing else uses it."""
        self.version(actor, entry, version_id)
        with self.db.write() as conn:
            if store.get_version(conn, entry.id, version_id) is None:
                raise NotFound(f"version {version_id} of {entry.name!r}")
            dead = self.content.drop_versions(conn, [version_id])
        self.content.remove(dead)

    def pin_version(
        self, actor: Actor, entry: Node, version_id: int, *, pinned: bool, label: str | None = None
    ) -> Version:
        """Pin (and label) a version so that no expiry drops it, or unpin it (and drop its
        label)."""
        self.version(actor, entry, version_id)
        if label is not None and (len(label) > 255 or any(ord(c) < 32 for c in label)):
            raise Conflict("a version label is one line of at most 255 characters")
        with self.db.write() as conn:
            store.set_version_flags(
                conn, version_id, pinned=pinned, label=label if pinned else None
            )
            found = store.get_version(conn, entry.id, version_id)
        if found is None:
            raise NotFound(f"version {version_id} of {entry.name!r}")
        return found

    def user_names(self, user_ids: Iterable[int]) -> dict[int, str]:
        """The names of these users, where they still exist: who wrote a version or deleted a
        trashed item, as faces show it."""
        found: dict[int, str] = {}
        with self.db.read() as conn:
            for user_id in set(user_ids):
                user = store.get_user_by_id(conn, user_id)
                if user is not None:
                    found[user_id] = user.name
        return found

    # --- the trash ---------------------------------------------------------------------------

    def trash(self, actor: Actor, *, sizes: bool = True) -> list[TrashItem]:
        """The actor's trash, newest first; a folder's size is its tree's (0 unless
        ``sizes``: each takes a walk of the tree)."""
        if actor.is_link:
            raise Forbidden("a link has no trash")
        with self.db.read() as conn:
            root = store.trash_root_of(conn, actor.id)
            if root is None:
                return []
            items = store.list_trash(conn, root)
            if not sizes:
                return items
            return [
                replace(i, size=store.subtree_size(conn, i.id)) if i.is_dir else i for i in items
            ]

    def trash_item(self, actor: Actor, key: str) -> TrashItem:
        """An item of the actor's trash by its key (``<name>.d<seconds>``) or its id."""
        for item in self.trash(actor, sizes=False):
            if key in (item.key, str(item.id)):
                if not item.is_dir:
                    return item
                with self.db.read() as conn:
                    return replace(item, size=store.subtree_size(conn, item.id))
        raise NotFound(f"{key!r} in the trash")

    def restore(self, actor: Actor, item: TrashItem) -> tuple[Node, str]:
        """Put a trashed item back where it was; under ``name (restored).ext`` if that name is
        taken, in the home if its folder is gone. Returns (the node, its path)."""
        if actor.is_link or item.owner_id != actor.id:
            raise Forbidden("only the owner may restore from the trash")
        with self.db.write() as conn:
            root = store.trash_root_of(conn, actor.id)
            current = None if root is None else store.get_trash_item(conn, root, item.id)
            if current is None:
                raise NotFound(f"{item.key!r} in the trash")
            home = store.get_user_by_id(conn, actor.id)
            assert home is not None
            parent = self._live_folder(conn, current.parent_id, home.root_id)
            if parent is None:
                parent = store.get_node(conn, home.root_id)
            assert parent is not None
            name = _restored_name(current.name, set(store.child_names(conn, parent.id)))
            self.content.restore_trash(conn, current, parent, name)
            node = still_there(store.get_node(conn, current.id))
            path = "/" + "/".join(store.node_names(conn, node.id))
        return node, path

    @staticmethod
    def _live_folder(conn: Connection, folder_id: int | None, home_id: int) -> Node | None:
        """The folder, if it is still a live folder of the home (not gone, not in the trash)."""
        if folder_id is None:
            return None
        folder = store.get_live_node(conn, folder_id)
        if folder is None or not folder.is_dir:
            return None
        chain = store.ancestors(conn, folder.id)
        return folder if chain and chain[-1] == home_id else None

    def purge(self, actor: Actor, item: TrashItem) -> None:
        """Delete a trashed item for good (with its files' versions)."""
        if actor.is_link or item.owner_id != actor.id:
            raise Forbidden("only the owner may purge the trash")
        with self.db.write() as conn:
            root = store.trash_root_of(conn, actor.id)
            if root is None or store.get_trash_item(conn, root, item.id) is None:
                raise NotFound(f"{item.key!r} in the trash")
            dead = self.content.purge_trash(conn, item.id, actor.id)
        self.content.remove(dead)

    def empty(self, actor: Actor) -> int:
        """Purge the whole trash; returns how many items went."""
        items = self.trash(actor, sizes=False)
        for item in items:
            with contextlib.suppress(NotFound):  # purged or restored meanwhile
                self.purge(actor, item)
        return len(items)

    # --- expiry ------------------------------------------------------------------------------

    def expire(self, now: float | None = None) -> tuple[int, int]:
        """Apply the retention rules to every user's versions and trash (the periodic job);
        returns (versions dropped, trash items purged). One short transaction per file and per
        item, so writers are not held up."""
        now = time.time() if now is None else now
        keeping = self.content.keeping
        versions = items = 0
        with self.db.read() as conn:
            owners = store.owners_with_history(conn)
        for owner_id in owners:
            with self.db.read() as conn:
                node_ids = sorted({r.node_id for r in store.owner_versions(conn, owner_id)})
                root = store.trash_root_of(conn, owner_id)
                trashed = [] if root is None else store.list_trash(conn, root)
            for node_id in node_ids:
                with self.db.write() as conn:
                    dropped, dead = self.content.expire_versions(conn, node_id, now)
                versions += dropped
                self.content.remove(dead)
            gone = retention.trash_expired(
                [(i.id, i.deleted_at) for i in trashed], now, keeping.trash_days
            )
            for item_id in gone:
                with self.db.write() as conn:
                    if root is None or store.get_trash_item(conn, root, item_id) is None:
                        continue
                    dead = self.content.purge_trash(conn, item_id, owner_id)
                items += 1
                self.content.remove(dead)
        return versions, items
