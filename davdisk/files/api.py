"""Files: THE one API for what users do with files, whatever the face (WebDAV, CLI, later web).

It resolves paths inside the actor's home, lists folders, opens verified plaintext for reading,
writes new content (stream -> hash -> encrypt -> blob -> one commit), and creates, moves, copies
and deletes nodes. Access checks live here and only here (:meth:`Files._allow`). The write path
never holds a database transaction while a request body is read: the blob is written and made
durable first, then one short transaction points the node at it, so a crash or a cut connection
leaves the old content and, at most, an orphan blob for ``davdisk gc``. Which blob a node points
at, and which blobs are no longer used, is decided only in files/content.py.
"""

from __future__ import annotations

import io
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import BinaryIO

from sqlalchemy import Connection

from davdisk import lockkeys
from davdisk.blobs.base import BlobStore
from davdisk.crypto.envelope import EnvelopeReader
from davdisk.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InsufficientStorage,
    IntegrityError,
    NotFound,
    PreconditionFailed,
)
from davdisk.files import deadprops, quota
from davdisk.files.access import Access, Action, Actor, owns, require
from davdisk.files.checksums import Checksums
from davdisk.files.content import Content
from davdisk.files.content import still_there as _still_there
from davdisk.files.guard import NO_GUARD, WriteGuard
from davdisk.files.keyring import Keyring
from davdisk.files.mount_names import mount_names
from davdisk.files.names import check_name, split_path
from davdisk.files.upload import Upload, VerifiedReader, guess_type
from davdisk.meta import store
from davdisk.meta.db import Database
from davdisk.meta.store import Entry, ShareRow

logger = logging.getLogger(__name__)

# Rows a big COPY writes per transaction: ~10-30 ms each, so other writers wait no longer.
_COPY_BATCH = 1000

__all__ = ["Action", "Actor", "Files", "Upload"]


class Files:
    """Thread-safe; one per application."""

    def __init__(self, db: Database, blobs: BlobStore, keyring: Keyring) -> None:
        self.db = db
        self.blobs = blobs
        self.keyring = keyring
        self.props = deadprops.PropertyCrypt(keyring)
        self.checksums = Checksums(keyring)
        # The one owner of "which blob a node points at" (upload, copy, move, delete, gc).
        self.content = Content(db, blobs)

    # --- access ------------------------------------------------------------------------------

    def _allow(
        self, actor: Actor, entry: Entry, action: Action, conn: Connection | None = None
    ) -> None:
        """The access-control choke point: may ``actor`` do ``action`` on ``entry``?"""
        if owns(actor, entry):
            return  # the common case needs no query
        if conn is not None:
            require(conn, actor, entry, action)  # a link's row read again, late in a request
            return
        with self.db.read() as c:
            ok = Access.allowed(c, actor, entry, action)
        if not ok:
            raise Forbidden(f"{action} not allowed")

    def may(self, actor: Actor, entry: Entry, action: Action) -> bool:
        """Whether ``actor`` may do ``action`` on ``entry`` (for faces that show permissions)."""
        return self._allowed(actor, entry, action)

    def _allowed(self, actor: Actor, entry: Entry, action: Action) -> bool:
        try:
            self._allow(actor, entry, action)
        except Forbidden:
            return False
        return True

    # --- reading -----------------------------------------------------------------------------

    def actor(self, user_name: str) -> Actor | None:
        found = self.login_record(user_name)
        return found[0] if found else None

    def login_record(self, user_name: str) -> tuple[Actor, str] | None:
        """The actor a user name stands for and its password hash; None if unknown/disabled."""
        user = store.get_user_single(self.db, user_name)
        if user is None or user.disabled:
            return None
        return Actor(user.id, user.name, user.root_id), user.password_hash

    def resolve(self, actor: Actor, path: str) -> Entry | None:
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
            if entry is not None and not self._allowed_in(conn, actor, entry, "find"):
                return None
        return entry

    def _allowed_in(self, conn: Connection, actor: Actor, entry: Entry, action: Action) -> bool:
        return Access.allowed(conn, actor, entry, action)

    def exists_at_lock_root(self, conn: Connection, root: str) -> bool:
        """Whether a node stands at the lock key ``root`` (:mod:`davdisk.lockkeys`), in the
        caller's transaction (a LOCK decides this together with granting the lock)."""
        found = lockkeys.parse(root)
        if found is None:
            return False
        owner_id, names = found
        user = store.get_user_by_id(conn, owner_id)
        return user is not None and store.resolve(conn, user.root_id, names) is not None

    def link_share(self, token_hash: str) -> ShareRow | None:
        """The link share with this token hash (expired or not; callers check)."""
        with self.db.read() as conn:
            return store.share_by_token_hash(conn, token_hash)

    def node(self, actor: Actor, node_id: int) -> Entry | None:
        """A node by id, if it exists and the actor may find it (see :meth:`resolve`)."""
        with self.db.read() as conn:
            entry = store.get_node(conn, node_id)
            if entry is None or not self._allowed_in(conn, actor, entry, "find"):
                return None
        return entry

    def mounts(self, actor: Actor) -> dict[str, tuple[ShareRow, Entry]]:
        """The items shared with a user, by the name they have in the user's top folder."""
        with self.db.read() as conn:
            return self._mounts_in(conn, actor)

    def _mounts_in(self, conn: Connection, actor: Actor) -> dict[str, tuple[ShareRow, Entry]]:
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

    def share_of_mount(self, actor: Actor, entry: Entry) -> ShareRow | None:
        """The share that mounts ``entry`` in the actor's top folder, if it is such a mount."""
        if actor.link is not None or owns(actor, entry):
            return None
        for share, mounted in self.mounts(actor).values():
            if mounted.id == entry.id:
                return share
        return None

    def children(self, actor: Actor, folder: Entry) -> list[Entry]:
        return self.children_with_properties(actor, folder)[0]

    def children_with_properties(
        self, actor: Actor, folder: Entry
    ) -> tuple[list[Entry], dict[int, dict[str, bytes]]]:
        """A folder's members and their dead properties, in one snapshot; a user's top folder
        also holds what is shared with them, under its mount name."""
        self._allow(actor, folder, "read")
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

    def open_read(self, actor: Actor, entry: Entry) -> BinaryIO:
        """A seekable reader of verified plaintext."""
        self._allow(actor, entry, "read")
        if entry.is_dir:
            raise Conflict("a folder has no content")
        if entry.blob_id is None:
            return io.BytesIO(b"")
        # No query for the blob's row: its header names the key version, and a blob that is
        # gone (an overwrite or delete removed it since ``entry`` was read) is not found here.
        try:
            src = self.blobs.open(entry.blob_id)
        except FileNotFoundError:
            raise NotFound(f"content of {entry.name!r}") from None
        try:
            reader = EnvelopeReader(
                src,
                key_for_version=lambda v: self.keyring.key(entry.owner_id, v),
                user_id=entry.owner_id,
                blob_id=bytes.fromhex(entry.blob_id),
                expected_plain_size=entry.size,
            )
        except BaseException:
            src.close()
            raise
        return VerifiedReader(reader, entry.blob_id)

    def open_current(self, actor: Actor, entry: Entry) -> tuple[Entry, BinaryIO]:
        """:meth:`open_read` of the file's current content: (the entry as opened, its reader).

        An overwrite commits a new blob and then removes the old one, so a request that looked
        ``entry`` up just before may find its blob gone; the file then has newer content, which
        this opens instead (with the entry that describes it). Once open, a blob stays readable
        even if it is removed. A blob missing although the file still names it is damage
        (IntegrityError, logged).
        """
        for _ in range(10):
            try:
                return entry, self.open_read(actor, entry)
            except NotFound:
                with self.db.read() as conn:
                    fresh = store.get_node(conn, entry.id)
                if fresh is None:
                    raise NotFound(repr(entry.name)) from None
                if fresh.blob_id == entry.blob_id:
                    raise IntegrityError(
                        f"blob {entry.blob_id} of node {entry.id} is missing"
                        " (davdisk fsck lists such damage)"
                    ) from None
                entry = replace(fresh, name=entry.name)  # a share mount keeps its name
        raise Conflict(f"{entry.name!r} changes faster than it can be read")

    def usage(self, actor: Actor, folder: Entry | None = None) -> tuple[int, int | None]:
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
        free = self.blobs.free_bytes()
        if user is not None and user.quota_bytes > 0:
            left = max(0, user.quota_bytes - user.used_bytes)
            free = left if free is None else min(free, left)
        return used, free

    def allowance(self, owner_id: int, conn: Connection | None = None) -> int | None:
        """Bytes the owner's quota still allows; None if unlimited."""
        if conn is None:
            with self.db.read() as c:
                return quota.allowance(c, owner_id)
        return quota.allowance(conn, owner_id)

    @staticmethod
    def _charge(conn: Connection, owner_id: int, delta: int) -> None:
        """Count ``delta`` bytes against the owner; refuse growth beyond the quota."""
        quota.charge(conn, owner_id, delta)

    def tree_size(self, actor: Actor, folder: Entry) -> int:
        """Bytes of all files below ``folder``."""
        self._allow(actor, folder, "read")
        with self.db.read() as conn:
            return store.subtree_size(conn, folder.id)

    def owner_names(self, entry: Entry) -> list[str]:
        """The names leading to ``entry`` in its owner's home."""
        with self.db.read() as conn:
            return store.node_names(conn, entry.id)

    def parent_of(self, actor: Actor, entry: Entry) -> Entry:
        """The folder holding ``entry``."""
        if entry.parent_id is None:
            raise Conflict("the home folder has no parent")
        with self.db.read() as conn:
            parent = store.get_node(conn, entry.parent_id)
        if parent is None:
            raise Conflict("the parent folder is gone")
        self._allow(actor, parent, "read")
        return parent

    def properties(self, actor: Actor, entry: Entry) -> dict[str, bytes]:
        self._allow(actor, entry, "read")
        with self.db.read() as conn:
            stored = store.get_properties(conn, entry.id)
        return self.props.open_all(entry.owner_id, stored)

    # --- writing -----------------------------------------------------------------------------

    def upload(
        self,
        actor: Actor,
        parent: Entry,
        name: str,
        *,
        target: Entry | None = None,
        content_type: str | None = None,
        expected_size: int | None = None,
        size_hint: int | None = None,
        mtime: float | None = None,
        checksums: dict[str, str] | None = None,
        guard: WriteGuard = NO_GUARD,
    ) -> Upload:
        """Start new content for ``parent/name`` (created or replaced on commit), or for the
        file ``target`` (then ``parent``/``name`` only name it for content-type guessing).

        ``checksums`` ({"md5"|"sha1": hex}) are verified against the body before anything is
        committed; ``mtime`` (unix seconds) is the modification time to record, default now.
        ``expected_size`` (Content-Length) or ``size_hint`` (X-Expected-Entity-Length) let an
        upload that cannot fit the owner's quota be refused before its body is read.
        """
        if target is not None:
            self._allow(actor, target, "write")
        else:
            self._allow(actor, parent, "create")
            name = check_name(name)
        with self.db.read() as conn:  # one snapshot for what is replaced and what is left
            existing = target or store.get_child(conn, parent.id, name)
            if existing is not None and target is None:
                # A name the actor could not find (a file drop's view hides files) is still
                # there: refuse before the body is read, not after (the commit checks again).
                self._allow(actor, existing, "write", conn)
            replacing = existing.size if existing is not None else 0
            allowance = self.allowance(parent.owner_id, conn)
        return Upload(
            self.content,
            self.keyring,
            self.checksums,
            actor,
            parent,
            name,
            target=target,
            content_type=content_type,
            expected_size=expected_size,
            size_hint=size_hint,
            mtime=mtime,
            checksums=checksums,
            allowance=None if allowance is None else allowance + replacing,
            guard=guard,
        )

    def write(self, actor: Actor, parent: Entry, name: str, data: bytes) -> Entry:
        """Store ``data`` as ``parent/name`` in one call (small content, CLI, tests)."""
        with self.upload(actor, parent, name, expected_size=len(data)) as up:
            up.write(data)
            return up.commit()

    def create_empty(
        self, actor: Actor, parent: Entry, name: str, *, guard: WriteGuard = NO_GUARD
    ) -> Entry:
        """Create an empty file (a LOCK on an unmapped URL creates one). A file that another
        request created meanwhile is returned as it is: the LOCK then simply comes second.
        ``guard`` is asked only when the file is really created."""
        self._allow(actor, parent, "create")
        name = check_name(name)
        now = time.time()
        with self.db.write() as conn:
            if store.get_node(conn, parent.id) is None:
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

    def mkdir(self, actor: Actor, parent: Entry, name: str) -> Entry:
        self._allow(actor, parent, "create")
        name = check_name(name)
        now = time.time()
        with self.db.write() as conn:
            if store.get_node(conn, parent.id) is None:
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
        self, actor: Actor, entry: Entry, *, mtime: float | None = None, ctime: float | None = None
    ) -> None:
        self._allow(actor, entry, "write")
        values = {k: v for k, v in (("mtime", mtime), ("ctime", ctime)) if v is not None}
        if values:
            with self.db.write() as conn:
                store.update_node(conn, entry.id, **values)

    def check_properties(
        self, actor: Actor, entry: Entry, changes: dict[str, bytes | None]
    ) -> None:
        """Raise what :meth:`set_properties` of ``changes`` would raise (access, limits,
        quota), changing nothing: PROPPATCH asks this for all its changes before making any."""
        self._allow(actor, entry, "write")
        with self.db.read() as conn:
            current = store.property_sizes(conn, entry.id)
            deadprops.check_limits(current, changes)
            delta = deadprops.growth(current, changes)
            left = self.allowance(entry.owner_id, conn) if delta > 0 else None
        if left is not None and delta > left:
            raise InsufficientStorage(f"{delta} more bytes exceed the quota")

    def set_properties(self, actor: Actor, entry: Entry, changes: dict[str, bytes | None]) -> None:
        """Set (name -> serialised element) or remove (name -> None) dead properties: within
        the limits of files/deadprops.py, charged to the owner, sealed at rest."""
        self._allow(actor, entry, "write")
        sealed = {
            name: None
            if value is None
            else (self.props.seal(entry.owner_id, name, value), deadprops.cost(name, value))
            for name, value in changes.items()
        }
        with self.db.write() as conn:
            current = store.property_sizes(conn, entry.id)
            deadprops.check_limits(current, changes)
            self._charge(conn, entry.owner_id, deadprops.growth(current, changes))
            store.set_properties(conn, entry.id, sealed)

    def delete(self, actor: Actor, entry: Entry, *, guard: WriteGuard = NO_GUARD) -> None:
        """Delete a file, or a folder with everything in it.

        Deleting an item shared with the actor where it is mounted (their top folder) hides the
        share from them; the owner's data stays (``share rm`` or the owner revokes it).
        """
        mount = self.share_of_mount(actor, entry)
        if mount is not None:
            with self.db.write() as conn:
                store.set_share_hidden(conn, mount.id, True)
            return
        self._allow(actor, entry, "delete")
        if entry.parent_id is None:
            raise Forbidden("the home folder cannot be deleted")
        with self.db.write() as conn:
            guard.check(conn)
            dead = self.content.delete_tree(conn, self._fresh(conn, entry))
            guard.done(conn)
        self.content.remove(dead)

    def move(
        self,
        actor: Actor,
        entry: Entry,
        parent: Entry,
        name: str,
        *,
        overwrite: bool,
        mtime: float | None = None,
        guard: WriteGuard = NO_GUARD,
        source_guard: WriteGuard | None = None,
    ) -> tuple[Entry, bool]:
        """Move/rename ``entry`` to ``parent/name``; returns (new entry, destination was new).

        ``guard`` runs in the transaction that makes the move. A move across owners is a copy,
        then a delete of the source: ``guard`` runs where the destination is replaced, and
        ``source_guard`` (what concerns the source alone; default ``guard``) where the source
        is deleted.

        A file moved over a file keeps the destination's node id (so what hangs on that id —
        shares, versions — survives an editor's save-by-rename) and takes the source's content,
        times, hashes and dead properties.
        """
        self._allow(actor, entry, "delete")
        self._allow(actor, parent, "write")
        name = check_name(name)
        if entry.parent_id is None:
            raise Forbidden("the home folder cannot be moved")
        if self.share_of_mount(actor, entry) is not None:
            raise Forbidden("a shared item cannot be moved by whom it is shared with")
        if entry.owner_id != parent.owner_id:
            # Content is encrypted for its owner: crossing owners means re-encrypting a copy,
            # file by file. The guard is asked first (a quick 423 before a long copy), then in
            # the transaction that replaces the destination, and again where the source goes.
            with self.db.write() as conn:
                guard.check(conn)
            moved, created = self._copy_across(actor, entry, parent, name, overwrite, mtime, guard)
            self.delete(actor, entry, guard=guard if source_guard is None else source_guard)
            return moved, created
        dead: list[str] = []
        with self.db.write() as conn:
            guard.check(conn)
            src, existing = self._target(
                conn, actor, entry, parent, name, overwrite=overwrite, source_right="delete"
            )
            if existing is not None and existing.id == src.id:
                return src, False
            if existing is not None and not existing.is_dir and not src.is_dir:
                # The destination's bytes go; the source's only change place.
                replaced = sum(store.property_sizes(conn, existing.id).values())
                store.add_used_bytes(conn, src.owner_id, -existing.size - replaced)
                dead = self.content.take(conn, existing, src)
                store.replace_properties(conn, src.id, existing.id, move=True)
                store.delete_subtree(conn, src.id)
                result = store.get_node(conn, existing.id)
            else:
                if existing is not None:
                    dead = self.content.delete_tree(conn, existing)
                store.update_node(conn, src.id, parent_id=parent.id, name=name)
                result = store.get_node(conn, src.id)
            result = _still_there(self._stamp(conn, result, mtime))
            guard.done(conn)
        self.content.remove(dead)
        return result, existing is None

    def copy(
        self,
        actor: Actor,
        entry: Entry,
        parent: Entry,
        name: str,
        *,
        overwrite: bool,
        recursive: bool = True,
        mtime: float | None = None,
        guard: WriteGuard = NO_GUARD,
    ) -> tuple[Entry, bool]:
        """Copy ``entry`` to ``parent/name`` (a folder's members only if ``recursive``).

        A file copied over a file keeps the destination's node id, as for :meth:`move`.
        """
        self._allow(actor, entry, "read")
        self._allow(actor, parent, "write")
        name = check_name(name)
        if entry.owner_id != parent.owner_id:
            with self.db.write() as conn:
                guard.check(conn)  # a quick 423 before a long copy; asked again as it lands
            return self._copy_across(actor, entry, parent, name, overwrite, mtime, guard, recursive)
        if entry.is_dir and recursive:
            with self.db.read() as conn:
                tree = store.subtree_ids_by_depth(conn, entry.id, live=True)
            if len(tree) > _COPY_BATCH:
                return self._staged_copy(actor, entry, parent, name, tree, overwrite, mtime, guard)
        dead: list[str] = []
        with self.db.write() as conn:
            guard.check(conn)
            src, existing = self._target(
                conn, actor, entry, parent, name, overwrite=overwrite, source_right="read"
            )
            if existing is not None and existing.id == src.id:
                raise Forbidden("cannot copy onto itself")
            if existing is not None and not existing.is_dir and not src.is_dir:
                # Charged (and refused) before anything changes: the copy is a new file's
                # worth of bytes even though it shares the source's blob.
                props_delta = sum(store.property_sizes(conn, src.id).values()) - sum(
                    store.property_sizes(conn, existing.id).values()
                )
                self._charge(conn, existing.owner_id, src.size - existing.size + props_delta)
                dead = self.content.take(conn, existing, src)
                store.replace_properties(conn, src.id, existing.id, move=False)
                result = store.get_node(conn, existing.id)
            else:
                if existing is not None:
                    dead = self.content.delete_tree(conn, existing)
                result = self.content.copy_tree(conn, src, parent.id, name, recursive=recursive)
                total, _ = store.subtree_totals(conn, result.id)
                self._charge(conn, src.owner_id, total)
            result = _still_there(self._stamp(conn, result, mtime))
            guard.done(conn)
        self.content.remove(dead)
        return result, existing is None

    def _staged_copy(
        self,
        actor: Actor,
        entry: Entry,
        parent: Entry,
        name: str,
        tree: list[int],
        overwrite: bool,
        mtime: float | None,
        guard: WriteGuard,
    ) -> tuple[Entry, bool]:
        """:meth:`copy` of a big folder (``tree``: its live node ids, parents first) without
        holding the database's writers' lock for long: one COPY of 21 000 nodes in a single
        transaction held every other user's writes up for 13 s.

        The copy is built in batches of ``_COPY_BATCH`` rows, each its own short transaction,
        as hidden rows (see meta/store.py, staged copies), and attached in one short last
        transaction, which checks the destination, the lock guard and the quota again, replaces
        what stands there and makes the rows live. Nobody sees a half-made copy: a failure
        removes the hidden rows, a crash leaves them to ``davdisk gc``. Each batch copies the
        source's rows as they are then (an item changed meanwhile is copied as changed, one
        deleted meanwhile is left out), as a copy made by a client file by file would.
        """
        with self.db.write() as conn:  # quick refusals before the long part
            guard.check(conn)
            src, existing = self._target(
                conn, actor, entry, parent, name, overwrite=overwrite, source_right="read"
            )
            # Files and dead properties, as the last transaction charges them.
            needed = store.subtree_totals(conn, src.id)[0]
            if existing is not None:
                needed -= store.subtree_totals(conn, existing.id)[0]
            left = self.allowance(src.owner_id, conn)
            if left is not None and needed > left:
                raise InsufficientStorage(f"{needed} more bytes exceed the quota")
            # The negated start time marks the copy's rows (a real deletion time is positive).
            marker = -time.time()
            top = store.stage_copy_top(conn, src, parent.id, marker)
        try:
            copied = {src.id: top}
            for start in range(1, len(tree), _COPY_BATCH):
                with self.db.write() as conn:
                    if not store.staged_copy_exists(conn, top, marker):
                        raise Conflict("the copy was removed while it was being made")
                    batch = tree[start : start + _COPY_BATCH]
                    copied.update(self.content.copy_rows(conn, batch, copied, marker, -marker))
            dead: list[str] = []
            with self.db.write() as conn:
                guard.check(conn)
                src, existing = self._target(
                    conn, actor, entry, parent, name, overwrite=overwrite, source_right="read"
                )
                if existing is not None:
                    dead = self.content.delete_tree(conn, existing)
                store.update_node(conn, top, parent_id=parent.id, name=name)
                store.reveal_subtree(conn, top, marker)
                self._charge(conn, src.owner_id, store.subtree_totals(conn, top)[0])
                result = _still_there(self._stamp(conn, store.get_node(conn, top), mtime))
                guard.done(conn)
        except BaseException:
            self.drop_staged_copy(top)
            raise
        self.content.remove(dead)
        return result, existing is None

    def drop_staged_copy(self, top: int) -> None:
        """Remove the hidden rows of a staged copy that will not be attached, in batches."""
        with self.db.read() as conn:
            ids = store.subtree_ids_by_depth(conn, top, live=False)
        dead: list[str] = []
        for end in range(len(ids), 0, -_COPY_BATCH):  # children before their parents
            with self.db.write() as conn:
                dead += self.content.delete_rows(conn, ids[max(0, end - _COPY_BATCH) : end])
        self.content.remove(dead)

    def _target(
        self,
        conn: Connection,
        actor: Actor,
        entry: Entry,
        parent: Entry,
        name: str,
        *,
        overwrite: bool,
        source_right: Action,
    ) -> tuple[Entry, Entry | None]:
        """Re-read the source and check the destination of a move or copy, in its transaction;
        return (source, what already stands at the destination).

        The actor's rights are asked again here (``source_right`` on the source, write on the
        destination folder): a share revoked since the request began, e.g. while a big copy
        was being built in batches, grants nothing any more."""
        src = self._fresh(conn, entry)
        self._allow(actor, src, source_right, conn)
        self._allow(actor, parent, "write", conn)
        if store.get_node(conn, parent.id) is None:
            raise Conflict("the destination folder is gone")
        if src.is_dir and store.is_ancestor(conn, src.id, parent.id):
            raise Forbidden("cannot move or copy a folder into itself")
        existing = store.get_child(conn, parent.id, name)
        if existing is not None and existing.id != src.id:
            # Replacing a folder that holds the source would delete the source with it
            # (RFC 4918 9.8.5/9.9.4: 403, before anything is touched).
            if existing.is_dir and store.is_ancestor(conn, existing.id, src.id):
                raise Forbidden("cannot move or copy onto a folder that holds the source")
            if not overwrite:
                raise PreconditionFailed("destination exists")
            # Replacing what stands there deletes it: an upload link (which may add, not
            # delete) once wiped a folder by copying a file onto it.
            self._allow(actor, existing, "delete", conn)
        return src, existing

    def _copy_across(
        self,
        actor: Actor,
        entry: Entry,
        parent: Entry,
        name: str,
        overwrite: bool,
        mtime: float | None,
        guard: WriteGuard = NO_GUARD,
        recursive: bool = True,
        *,
        check_fit: bool = True,
    ) -> tuple[Entry, bool]:
        """Copy into another owner's tree: every file is decrypted and encrypted anew for the
        destination's owner (and counted against their quota). Each file lands atomically; a
        failure part way (another upload took the room meanwhile, a full disk) leaves what was
        copied so far. ``guard`` is run in the transaction that replaces or deletes what stood
        at the destination. ``check_fit``: whether the whole copy's size is still to be checked
        against the quota (the members of a folder were checked with it)."""
        with self.db.read() as conn:
            existing = store.get_child(conn, parent.id, name)
            if existing is not None and not overwrite:
                raise PreconditionFailed("destination exists")
            # The whole copy must fit before any of it lands (or what it replaces is deleted):
            # each file is charged as it lands, so one that ran out of quota half way would
            # leave part of a folder, or a deleted destination, behind its 507.
            left = self.allowance(parent.owner_id, conn) if check_fit else None
            if left is not None:
                needed = store.subtree_size(conn, entry.id) if recursive or not entry.is_dir else 0
                if existing is not None:
                    needed -= store.subtree_size(conn, existing.id)
                if needed > left:
                    raise InsufficientStorage(f"{needed} more bytes exceed the quota")
        if existing is not None:
            self._allow(actor, existing, "delete")  # replacing it deletes it (see _target)
        if existing is not None and (existing.is_dir or entry.is_dir):
            self.delete(actor, existing, guard=guard)
            existing = None
        elif existing is None:
            with self.db.write() as conn:
                guard.check(conn)  # nothing to replace; the new item lands in its own commit
        if not entry.is_dir:
            with self.open_read(actor, entry) as src:
                up = self.upload(
                    actor,
                    parent,
                    name,
                    target=existing,
                    content_type=entry.content_type,
                    expected_size=entry.size,
                    mtime=entry.mtime if mtime is None else mtime,
                    guard=guard if existing is not None else NO_GUARD,
                )
                with up:
                    while chunk := src.read(1 << 20):
                        up.write(chunk)
                    result = up.commit()
            self._copy_properties_across(entry, result)
            return result, existing is None
        top = self.mkdir(actor, parent, name)
        if recursive:
            for child in self.children(actor, entry):
                self._copy_across(actor, child, top, child.name, False, None, check_fit=False)
        self._copy_properties_across(entry, top)
        with self.db.write() as conn:
            stamped = _still_there(self._stamp(conn, top, entry.mtime if mtime is None else mtime))
        return stamped, True

    def _copy_properties_across(self, src: Entry, dest: Entry) -> None:
        """Give ``dest`` exactly ``src``'s dead properties, sealed anew for ``dest``'s owner
        and charged to them."""
        with self.db.read() as conn:
            plain = self.props.open_all(src.owner_id, store.get_properties(conn, src.id))
        sealed = {
            name: (self.props.seal(dest.owner_id, name, value), deadprops.cost(name, value))
            for name, value in plain.items()
        }
        with self.db.write() as conn:
            current = store.property_sizes(conn, dest.id)
            changes: dict[str, tuple[bytes, int] | None] = dict.fromkeys(current)
            changes.update(sealed)
            delta = sum(size for _, size in sealed.values()) - sum(current.values())
            self._charge(conn, dest.owner_id, delta)
            store.set_properties(conn, dest.id, changes)

    # --- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _stamp(conn: Connection, entry: Entry | None, mtime: float | None) -> Entry | None:
        if entry is None or mtime is None:
            return entry
        store.update_node(conn, entry.id, mtime=mtime)
        return store.get_node(conn, entry.id)

    @staticmethod
    def _fresh(conn: Connection, entry: Entry) -> Entry:
        current = store.get_node(conn, entry.id)
        if current is None:
            raise NotFound(entry.name)
        return current

    def walk_entries(self, actor: Actor, folder: Entry) -> Iterable[tuple[str, Entry]]:
        """(relative path, entry) for every node below ``folder``, parents first."""
        stack = [("", folder)]
        while stack:
            prefix, current = stack.pop()
            for child in self.children(actor, current):
                path = f"{prefix}/{child.name}"
                yield path, child
                if child.is_dir:
                    stack.append((path, child))
