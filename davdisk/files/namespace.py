"""The namespace: what stands where, as an actor sees it, and the changes that need no content.

It resolves paths inside the actor's home (with the items shared with them mounted in its top
folder), lists folders with their dead properties, reads and sets those properties (sealed,
charged to the owner), makes folders and empty files, and deletes. Every operation asks
:func:`~davdisk.files.access.allow` first. What a delete does to blobs is the content owner's
business (files/content.py).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy import Connection

from davdisk import lockkeys
from davdisk.errors import AlreadyExists, Conflict, Forbidden, InsufficientStorage, NotFound
from davdisk.files import deadprops, quota
from davdisk.files.access import Access, allow, owns
from davdisk.files.content import Content
from davdisk.files.guard import NO_GUARD, WriteGuard
from davdisk.files.mount_names import mount_names
from davdisk.files.names import check_name, split_path
from davdisk.files.upload import guess_type
from davdisk.meta import store
from davdisk.meta.db import Database
from davdisk.model import Actor, Node, Share


def stamp(conn: Connection, entry: Node | None, mtime: float | None) -> Node | None:
    """Set the modification time a client asked for (a MOVE or COPY with one), in the caller's
    transaction; the node as it now is."""
    if entry is None or mtime is None:
        return entry
    store.update_node(conn, entry.id, mtime=mtime)
    return store.get_node(conn, entry.id)


def fresh(conn: Connection, entry: Node) -> Node:
    """``entry`` read again in the caller's transaction; NotFound if it is gone (or in the
    trash, or below a folder that is)."""
    current = store.get_live_node(conn, entry.id)
    if current is None:
        raise NotFound(entry.name)
    return current


class Namespace:
    """Thread-safe; one per application, behind ``Files``."""

    def __init__(self, db: Database, content: Content, props: deadprops.PropertyCrypt) -> None:
        self.db = db
        self.content = content
        self.props = props

    def actor(self, user_name: str) -> Actor | None:
        found = self.login_record(user_name)
        return found[0] if found else None

    def login_record(self, user_name: str) -> tuple[Actor, str] | None:
        """The actor a user name stands for and its password hash; None if unknown/disabled."""
        user = store.get_user_single(self.db, user_name)
        if user is None or user.disabled:
            return None
        return Actor(user.id, user.name, user.root_id), user.password_hash

    def resolve(self, actor: Actor, path: str) -> Node | None:
        """The node at ``path`` in the actor's namespace, or None.

        A user's namespace is their home plus, in its top folder, the items shared with them
        (named as :meth:`mounts` says); a link's namespace is the shared item. A mounted item
        comes back with its mount name in ``name``.
        """
        names = split_path(path)
        if names is None:
            return None
        if actor.link is None and len(names) <= store.RESOLVE_STEP:
            # The common case, a user's own item: one statement (the owner may read it).
            entry = store.resolve_single(self.db, actor.root_id, names)
            if entry is not None and owns(actor, entry):
                return entry
            # Missing below an item of the user's own top folder, which no mount shadows
            # (mounts take other names): no need to look at shares (a PUT of a new file).
            if (
                entry is None
                and len(names) > 1
                and store.resolve_single(self.db, actor.root_id, names[:1]) is not None
            ):
                return None
        with self.db.read() as conn:
            entry = store.resolve(conn, actor.root_id, names)
            if entry is None and names and actor.link is None:
                mount = self._mounts_in(conn, actor).get(names[0])
                if mount is not None:
                    entry = store.resolve(conn, mount[1].id, names[1:])
                    if entry is not None and len(names) == 1:
                        entry = replace(entry, name=names[0])
            # "find", not "read": a file drop finds the folders it may add to, and nothing else.
            if entry is not None and not Access.allowed(conn, actor, entry, "find"):
                return None
        return entry

    def exists_at_lock_root(self, conn: Connection, root: str) -> bool:
        """Whether a node stands at the lock key ``root`` (:mod:`davdisk.lockkeys`), in the
        caller's transaction (a LOCK decides this together with granting the lock)."""
        found = lockkeys.parse(root)
        if found is None:
            return False
        owner_id, names = found
        user = store.get_user_by_id(conn, owner_id)
        return user is not None and store.resolve(conn, user.root_id, names) is not None

    def link_share(self, token_hash: str) -> Share | None:
        """The link share with this token hash (expired or not; callers check)."""
        with self.db.read() as conn:
            return store.share_by_token_hash(conn, token_hash)

    def node(self, actor: Actor, node_id: int) -> Node | None:
        """A node by id, if it exists and the actor may find it (see :meth:`resolve`)."""
        with self.db.read() as conn:
            entry = store.get_live_node(conn, node_id)
            if entry is None or not Access.allowed(conn, actor, entry, "find"):
                return None
        return entry

    def mounts(self, actor: Actor) -> dict[str, tuple[Share, Node]]:
        """The items shared with a user, by the name they have in the user's top folder."""
        with self.db.read() as conn:
            return self._mounts_in(conn, actor)

    def _mounts_in(self, conn: Connection, actor: Actor) -> dict[str, tuple[Share, Node]]:
        # Runs on every request that leaves the user's own tree: one query for the names of the
        # top folder, a few indexed lookups per received share.
        received = store.shares_received(conn, actor.id) if actor.link is None else []
        if not received:
            return {}
        owners: dict[int, str] = {}
        for share, _entry in received:
            if share.owner_id not in owners:
                owner = store.get_user_by_id(conn, share.owner_id)
                owners[share.owner_id] = owner.name if owner else str(share.owner_id)
        by_id = {share.id: (share, entry) for share, entry in received}
        named = mount_names(
            store.child_names(conn, actor.root_id),
            [(share.id, entry.name, owners[share.owner_id]) for share, entry in received],
        )
        return {name: by_id[share_id] for name, share_id in named.items()}

    def share_of_mount(self, actor: Actor, entry: Node) -> Share | None:
        """The share that mounts ``entry`` in the actor's top folder, if it is such a mount."""
        if actor.link is not None or owns(actor, entry):
            return None
        for share, mounted in self.mounts(actor).values():
            if mounted.id == entry.id:
                return share
        return None

    def children(self, actor: Actor, folder: Node) -> list[Node]:
        return self.children_with_properties(actor, folder)[0]

    def children_with_properties(
        self, actor: Actor, folder: Node
    ) -> tuple[list[Node], dict[int, dict[str, bytes]]]:
        """A folder's members and their dead properties, in one snapshot; a user's top folder
        also holds what is shared with them, under its mount name."""
        allow(self.db, actor, folder, "read")
        with self.db.read() as conn:
            members = store.list_children(conn, folder.id)
            stored = store.get_children_properties(conn, folder.id)
            if folder.id == actor.root_id and actor.link is None:
                for name, (_share, entry) in self._mounts_in(conn, actor).items():
                    members.append(replace(entry, name=name))
                    stored[entry.id] = store.get_properties(conn, entry.id)
        owners = {m.id: m.owner_id for m in members}
        props = {
            node_id: self.props.open_all(owners.get(node_id, folder.owner_id), values)
            for node_id, values in stored.items()
        }
        return members, props

    def usage(self, actor: Actor, folder: Node | None = None) -> tuple[int, int | None]:
        """(bytes used, bytes still available) for ``folder`` (default: the actor's home).

        In the actor's own tree: all they store, and their quota's remainder, or the blob
        store's free space if that is smaller. In a folder shared with the actor, the owner's
        total is none of the actor's business: used is what that folder holds (the actor can
        list it anyway), and available the owner's room only if the actor may write there
        (its uploads fill it), else None.
        """
        owner_id = folder.owner_id if folder is not None else actor.id
        with self.db.read() as conn:
            user = store.get_user_by_id(conn, owner_id)
            if folder is not None and not owns(actor, folder):
                if not Access.allowed(conn, actor, folder, "read"):
                    raise Forbidden("read not allowed")
                used = store.subtree_size(conn, folder.id)
                if not Access.allowed(conn, actor, folder, "write"):
                    return used, None
            else:
                used = user.used_bytes if user else 0
        free = self.content.free_bytes()
        if user is not None and user.quota_bytes > 0:
            left = max(0, user.quota_bytes - user.used_bytes)
            free = left if free is None else min(free, left)
        return used, free

    def tree_size(self, actor: Actor, folder: Node) -> int:
        """Bytes of all files below ``folder``."""
        allow(self.db, actor, folder, "read")
        with self.db.read() as conn:
            return store.subtree_size(conn, folder.id)

    def owner_names(self, entry: Node) -> list[str]:
        """The names leading to ``entry`` in its owner's home."""
        with self.db.read() as conn:
            return store.node_names(conn, entry.id)

    def parent_of(self, actor: Actor, entry: Node) -> Node:
        """The folder holding ``entry``."""
        if entry.parent_id is None:
            raise Conflict("the home folder has no parent")
        with self.db.read() as conn:
            parent = store.get_node(conn, entry.parent_id)
        if parent is None:
            raise Conflict("the parent folder is gone")
        allow(self.db, actor, parent, "read")
        return parent

    def properties(self, actor: Actor, entry: Node) -> dict[str, bytes]:
        allow(self.db, actor, entry, "read")
        with self.db.read() as conn:
            stored = store.get_properties(conn, entry.id)
        return self.props.open_all(entry.owner_id, stored)

    def create_empty(
        self, actor: Actor, parent: Node, name: str, *, guard: WriteGuard = NO_GUARD
    ) -> Node:
        """Create an empty file (a LOCK on an unmapped URL creates one). A file that another
        request created meanwhile is returned as it is: the LOCK then simply comes second.
        ``guard`` is asked only when the file is really created."""
        allow(self.db, actor, parent, "create")
        name = check_name(name)
        now = time.time()
        with self.db.write() as conn:
            if store.get_live_node(conn, parent.id) is None:
                raise Conflict("the parent folder is gone")
            existing = store.get_child(conn, parent.id, name)
            if existing is not None:
                if existing.is_dir:
                    raise AlreadyExists(name)
                return existing
            guard.check(conn)
            return store.insert_node(
                conn,
                owner_id=parent.owner_id,
                parent_id=parent.id,
                name=name,
                is_dir=False,
                size=0,
                mtime=now,
                ctime=now,
                etag=secrets.token_hex(16),
                content_type=guess_type(name, None),
            )

    def mkdir(self, actor: Actor, parent: Node, name: str) -> Node:
        allow(self.db, actor, parent, "create")
        name = check_name(name)
        now = time.time()
        with self.db.write() as conn:
            if store.get_live_node(conn, parent.id) is None:
                raise Conflict("the parent folder is gone")
            if store.get_child(conn, parent.id, name) is not None:
                raise AlreadyExists(name)
            return store.insert_node(
                conn,
                owner_id=parent.owner_id,
                parent_id=parent.id,
                name=name,
                is_dir=True,
                size=0,
                mtime=now,
                ctime=now,
                etag="",
            )

    def set_times(
        self, actor: Actor, entry: Node, *, mtime: float | None = None, ctime: float | None = None
    ) -> None:
        allow(self.db, actor, entry, "write")
        values = {k: v for k, v in (("mtime", mtime), ("ctime", ctime)) if v is not None}
        if values:
            with self.db.write() as conn:
                store.update_node(conn, entry.id, **values)

    def check_properties(self, actor: Actor, entry: Node, changes: dict[str, bytes | None]) -> None:
        """Raise what :meth:`set_properties` of ``changes`` would raise (access, limits,
        quota), changing nothing: PROPPATCH asks this for all its changes before making any."""
        allow(self.db, actor, entry, "write")
        with self.db.read() as conn:
            current = store.property_sizes(conn, entry.id)
            deadprops.check_limits(current, changes)
            delta = deadprops.growth(current, changes)
            left = quota.allowance(conn, entry.owner_id) if delta > 0 else None
        if left is not None and delta > left:
            raise InsufficientStorage(f"{delta} more bytes exceed the quota")

    def set_properties(self, actor: Actor, entry: Node, changes: dict[str, bytes | None]) -> None:
        """Set (name -> serialised element) or remove (name -> None) dead properties: within
        the limits of files/deadprops.py, charged to the owner, sealed at rest."""
        allow(self.db, actor, entry, "write")
        sealed = {
            name: None
            if value is None
            else (self.props.seal(entry.owner_id, name, value), deadprops.cost(name, value))
            for name, value in changes.items()
        }
        with self.db.write() as conn:
            fresh(conn, entry)  # not charged to the live bytes once it is in the trash
            current = store.property_sizes(conn, entry.id)
            deadprops.check_limits(current, changes)
            quota.charge(conn, entry.owner_id, deadprops.growth(current, changes))
            store.set_properties(conn, entry.id, sealed)

    def delete(self, actor: Actor, entry: Node, *, guard: WriteGuard = NO_GUARD) -> None:
        """Delete a file, or a folder with everything in it.

        Deleting an item shared with the actor where it is mounted (their top folder) hides the
        share from them; the owner's data stays (``share rm`` or the owner revokes it).
        """
        mount = self.share_of_mount(actor, entry)
        if mount is not None:
            with self.db.write() as conn:
                store.set_share_hidden(conn, mount.id, True)
            return
        allow(self.db, actor, entry, "delete")
        if entry.parent_id is None:
            raise Forbidden("the home folder cannot be deleted")
        with self.db.write() as conn:
            guard.check(conn)
            dead = self.content.trash_tree(conn, fresh(conn, entry), actor)
            guard.done(conn)
        self.content.remove(dead)

    def walk_entries(self, actor: Actor, folder: Node) -> Iterable[tuple[str, Node]]:
        """(relative path, entry) for every node below ``folder``, parents first."""
        stack = [("", folder)]
        while stack:
            prefix, current = stack.pop()
            for child in self.children(actor, current):
                path = f"{prefix}/{child.name}"
                yield path, child
                if child.is_dir:
                    stack.append((path, child))
