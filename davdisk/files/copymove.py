"""MOVE and COPY: same-owner moves and copies in one short transaction (the content owner hands
blobs over), big copies staged in batches, and copies across owners re-encrypted file by file.

Staged copy: a COPY of a folder with more than ``_COPY_BATCH`` nodes is built as hidden rows in
batches of short transactions and attached in one last short one (see :meth:`CopyMove.copy`),
so other writers never wait long for the database's writers' lock.

Save-by-rename ("save dance"): Word saves ``doc.docx`` by writing ``~WRD0001.tmp``, renaming
``doc.docx`` to ``~WRL0002.tmp``, renaming the temp file onto ``doc.docx`` and deleting
``~WRL0002.tmp``. Taken literally, the document would become a new file (a new ``oc:fileid``,
no history, its shares and lock gone) and its history would go to the trash with the old copy,
as on Nextcloud. So a file renamed within its folder records the name it left
(``vacated_name``/``vacated_at``), and a file written at most ``SAVE_WINDOW`` seconds ago that
is moved onto a free name which a file of that folder left at most ``SAVE_WINDOW`` seconds ago
swaps places with that file (:meth:`CopyMove._swap_back`): the original takes its name back
with the new content (its old content kept as a version), and the new file takes the
temporary name with the old content, a throwaway copy for the client to delete. What a client
sees at each path is what the plain renames would have given; the file id, shares, history
and lock stay with the document.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection

from davdisk.errors import Conflict, Forbidden, InsufficientStorage, PreconditionFailed
from davdisk.files import deadprops, quota
from davdisk.files.access import allow
from davdisk.files.content import Content
from davdisk.files.content import still_there as _still_there
from davdisk.files.guard import NO_GUARD, WriteGuard
from davdisk.files.names import check_name
from davdisk.files.namespace import Namespace, fresh, stamp
from davdisk.files.transfer import Transfer
from davdisk.meta import store
from davdisk.meta.db import Database
from davdisk.model import Action, Actor, Node

# Rows a big COPY writes per transaction: ~10-30 ms each, so other writers wait no longer.
_COPY_BATCH = 1000

# Seconds a save-by-rename may take, from writing the new file (and from renaming the original
# away) to renaming the new file onto the name: an editor does it in well under a second; a
# person renaming files by hand in the same way within two minutes gets the same outcome.
SAVE_WINDOW = 120.0


class CopyMove:
    """Thread-safe; one per application, behind ``Files``."""

    def __init__(
        self,
        db: Database,
        content: Content,
        props: deadprops.PropertyCrypt,
        namespace: Namespace,
        transfer: Transfer,
    ) -> None:
        self.db = db
        self.content = content
        self.props = props
        self._namespace = namespace
        self._transfer = transfer

    def move(
        self,
        actor: Actor,
        entry: Node,
        parent: Node,
        name: str,
        *,
        overwrite: bool,
        mtime: float | None = None,
        guard: WriteGuard = NO_GUARD,
        source_guard: WriteGuard | None = None,
    ) -> tuple[Node, bool]:
        """Move/rename ``entry`` to ``parent/name``; returns (new entry, destination was new).

        ``guard`` runs in the transaction that makes the move. A move across owners is a copy,
        then a delete of the source: ``guard`` runs where the destination is replaced, and
        ``source_guard`` (what concerns the source alone; default ``guard``) where the source
        is deleted.

        A file moved over a file keeps the destination's node id (so what hangs on that id —
        shares, versions — survives an editor's save-by-rename) and takes the source's content,
        times, hashes and dead properties.
        """
        allow(self.db, actor, entry, "delete")
        allow(self.db, actor, parent, "write")
        name = check_name(name)
        if entry.parent_id is None:
            raise Forbidden("the home folder cannot be moved")
        if self._namespace.share_of_mount(actor, entry) is not None:
            raise Forbidden("a shared item cannot be moved by whom it is shared with")
        if entry.owner_id != parent.owner_id:
            # Content is encrypted for its owner: crossing owners means re-encrypting a copy,
            # file by file. The guard is asked first (a quick 423 before a long copy), then in
            # the transaction that replaces the destination, and again where the source goes.
            with self.db.write() as conn:
                guard.check(conn)
            moved, created = self._copy_across(actor, entry, parent, name, overwrite, mtime, guard)
            self._namespace.delete(
                actor, entry, guard=guard if source_guard is None else source_guard
            )
            return moved, created
        dead: list[str] = []
        original: Node | None = None  # the file a save-by-rename gives its name back to
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
                # The moved file's history joins the destination's (the content lives on there).
                store.move_versions(conn, src.id, existing.id)
                store.delete_subtree(conn, src.id)
                result = store.get_node(conn, existing.id)
            elif existing is None and (original := self._vacated_by(conn, src, parent, name)):
                dead = self._swap_back(conn, original, src, name)
                result = store.get_node(conn, original.id)
            else:
                if existing is not None:
                    dead = self.content.trash_tree(conn, existing, actor)
                # A file renamed within its folder may be an editor's save-by-rename: the name
                # it leaves is recorded (any other move forgets an earlier one).
                renamed = existing is None and not src.is_dir and src.parent_id == parent.id
                now = time.time()
                store.update_node(
                    conn,
                    src.id,
                    parent_id=parent.id,
                    name=name,
                    vacated_name=src.name if renamed else None,
                    vacated_at=now if renamed else None,
                )
                if renamed:
                    guard.vacated(conn, src.id, now + SAVE_WINDOW)
                result = store.get_node(conn, src.id)
            result = _still_there(stamp(conn, result, mtime))
            guard.done(conn)
            if original is not None:
                guard.reclaimed(conn, original.id)
        self.content.remove(dead)
        return result, existing is None

    @staticmethod
    def _vacated_by(conn: Connection, src: Node, parent: Node, name: str) -> Node | None:
        """The file of ``parent`` that left ``name`` for a temporary name moments ago, if
        moving ``src`` onto the free ``name`` ends a save-by-rename (see the module
        docstring): ``src`` is a file written within the window, the other was renamed
        within it."""
        now = time.time()
        if src.is_dir or src.ctime < now - SAVE_WINDOW:
            return None
        original = store.vacated_member(conn, parent.id, name, now - SAVE_WINDOW)
        if original is None or original.id == src.id or original.owner_id != src.owner_id:
            return None
        return original

    def _swap_back(self, conn: Connection, original: Node, new: Node, name: str) -> list[str]:
        """End a save-by-rename: ``original`` (under its temporary name) takes back ``name``, which
        it left, with ``new``'s content, its old content kept as a version; ``new`` takes the
        temporary name and the old content (the same immutable blob, shared), a throwaway
        copy for the client to delete. The live bytes stay as they are (the two trade
        contents). ``original`` keeps its dead properties, overlaid by those the client set
        on ``new`` (Windows sets the file times there); ``new``'s history joins it, as for a
        move over a file. Returns the blobs now unused."""
        owner = original.owner_id
        temp_name = original.name
        # Names first, for the unique index: the original onto the free name, then the new
        # file onto the name the original leaves.
        store.update_node(conn, original.id, name=name, vacated_name=None, vacated_at=None)
        store.update_node(
            conn,
            new.id,
            parent_id=original.parent_id,
            name=temp_name,
            vacated_name=None,
            vacated_at=None,
        )
        old_author = store.modified_by(conn, original.id)
        # The new file points at the old blob before the original lets go of it, so the blob
        # is used throughout (whatever expiry does to the version made below).
        self.content.point_at(conn, new.id, original)
        store.move_versions(conn, new.id, original.id)
        dead = self.content.take(conn, original, new)
        store.update_node(conn, new.id, modified_by=old_author)
        store.add_used_bytes(conn, owner, -store.overlay_properties(conn, new.id, original.id))
        return dead

    def copy(
        self,
        actor: Actor,
        entry: Node,
        parent: Node,
        name: str,
        *,
        overwrite: bool,
        recursive: bool = True,
        mtime: float | None = None,
        guard: WriteGuard = NO_GUARD,
    ) -> tuple[Node, bool]:
        """Copy ``entry`` to ``parent/name`` (a folder's members only if ``recursive``).

        A file copied over a file keeps the destination's node id, as for :meth:`move`.
        """
        allow(self.db, actor, entry, "read")
        allow(self.db, actor, parent, "write")
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
                quota.charge(conn, existing.owner_id, src.size - existing.size + props_delta)
                dead = self.content.take(conn, existing, src)
                store.replace_properties(conn, src.id, existing.id, move=False)
                result = store.get_node(conn, existing.id)
            else:
                if existing is not None:
                    dead = self.content.trash_tree(conn, existing, actor)
                result = self.content.copy_tree(conn, src, parent.id, name, recursive=recursive)
                total = store.subtree_bytes(conn, result.id)
                quota.charge(conn, src.owner_id, total)
            result = _still_there(stamp(conn, result, mtime))
            guard.done(conn)
        self.content.remove(dead)
        return result, existing is None

    def _staged_copy(
        self,
        actor: Actor,
        entry: Node,
        parent: Node,
        name: str,
        tree: list[int],
        overwrite: bool,
        mtime: float | None,
        guard: WriteGuard,
    ) -> tuple[Node, bool]:
        """:meth:`copy` of a big folder (``tree``: its live node ids, parents first) without
        holding the database's writers' lock for long: one COPY of 21 000 nodes in a single
        transaction held every other user's writes up for 13 s.

        The copy is built in batches of ``_COPY_BATCH`` rows, each its own short transaction,
        as hidden rows (see meta/store/, staged copies), and attached in one short last
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
            needed = store.subtree_bytes(conn, src.id)
            if existing is not None:
                needed -= store.subtree_bytes(conn, existing.id)
            left = quota.allowance(conn, src.owner_id)
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
                    dead = self.content.trash_tree(conn, existing, actor)
                store.update_node(conn, top, parent_id=parent.id, name=name)
                store.reveal_subtree(conn, top, marker)
                quota.charge(conn, src.owner_id, store.subtree_bytes(conn, top))
                result = _still_there(stamp(conn, store.get_node(conn, top), mtime))
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
        entry: Node,
        parent: Node,
        name: str,
        *,
        overwrite: bool,
        source_right: Action,
    ) -> tuple[Node, Node | None]:
        """Re-read the source and check the destination of a move or copy, in its transaction;
        return (source, what already stands at the destination).

        The actor's rights are asked again here (``source_right`` on the source, write on the
        destination folder): a share revoked since the request began, e.g. while a big copy
        was being built in batches, grants nothing any more."""
        src = fresh(conn, entry)
        allow(self.db, actor, src, source_right, conn)
        allow(self.db, actor, parent, "write", conn)
        if store.get_live_node(conn, parent.id) is None:
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
            allow(self.db, actor, existing, "delete", conn)
        return src, existing

    def _copy_across(
        self,
        actor: Actor,
        entry: Node,
        parent: Node,
        name: str,
        overwrite: bool,
        mtime: float | None,
        guard: WriteGuard = NO_GUARD,
        recursive: bool = True,
        *,
        check_fit: bool = True,
    ) -> tuple[Node, bool]:
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
            left = quota.allowance(conn, parent.owner_id) if check_fit else None
            if left is not None:
                needed = store.subtree_size(conn, entry.id) if recursive or not entry.is_dir else 0
                if existing is not None:
                    needed -= store.subtree_size(conn, existing.id)
                if needed > left:
                    raise InsufficientStorage(f"{needed} more bytes exceed the quota")
        if existing is not None:
            allow(self.db, actor, existing, "delete")  # replacing it deletes it (see _target)
        if existing is not None and (existing.is_dir or entry.is_dir):
            self._namespace.delete(actor, existing, guard=guard)
            existing = None
        elif existing is None:
            with self.db.write() as conn:
                guard.check(conn)  # nothing to replace; the new item lands in its own commit
        if not entry.is_dir:
            with self._transfer.open_read(actor, entry) as src:
                up = self._transfer.upload(
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
        top = self._namespace.mkdir(actor, parent, name)
        if recursive:
            for child in self._namespace.children(actor, entry):
                self._copy_across(actor, child, top, child.name, False, None, check_fit=False)
        self._copy_properties_across(entry, top)
        with self.db.write() as conn:
            stamped = _still_there(stamp(conn, top, entry.mtime if mtime is None else mtime))
        return stamped, True

    def _copy_properties_across(self, src: Node, dest: Node) -> None:
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
            quota.charge(conn, dest.owner_id, delta)
            store.set_properties(conn, dest.id, changes)
