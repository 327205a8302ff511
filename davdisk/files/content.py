"""The content transition: the one place that points a node at a blob and decides which blobs
are no longer used.

A node's content changes in a few ways — an upload commits new content (:meth:`Content.commit`),
a same-owner COPY or MOVE onto a file hands the source's blob over (:meth:`Content.take`), a
restore brings a kept version back (:meth:`Content.restore_version`), a delete moves a subtree
to the trash (:meth:`Content.trash_tree`) and a purge or expiry drops it, key rotation swaps a
blob for its re-encrypted twin (:meth:`Content.swap`) — and each returns (or removes) the blobs
that no node or version uses any more. Blob rows are dropped in the transaction that makes them
unused; the files follow after the commit (:meth:`Content.remove`), so a crash in between
leaves only garbage for ``davdisk gc`` (:meth:`Content.collect`), never a node without its blob.

Nothing replaced is lost here: the content a file had before a replacement becomes a version
(a row naming the immutable blob, in the same transaction), unless it was empty or the very same
blob; a deleted item goes to its owner's trash. What is kept is counted apart from the live
bytes (``version_bytes``, ``trash_bytes``) and thinned by the retention rules
(files/retention.py) after each new version; when the owner's quota is reached, the oldest
unpinned versions and then the oldest trash make room (:meth:`Content.make_room`).

It is also the only way to the blob store: readers open a node's blob here, uploads and key
rotation store new blobs here, and fsck asks here which blobs exist and who uses them. Nothing
outside files/ sees a blob id.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from sqlalchemy import Connection

from davdisk.blobs.base import BlobInfo, BlobStore, BlobUpload
from davdisk.errors import AlreadyExists, Conflict, DavdiskError
from davdisk.files import quota, retention
from davdisk.files.access import require
from davdisk.files.guard import NO_GUARD, WriteGuard
from davdisk.meta import store
from davdisk.meta.db import Database
from davdisk.meta.store import checks
from davdisk.meta.store import keys as key_rows
from davdisk.model import Actor, Node, TrashItem, Version

logger = logging.getLogger(__name__)


def still_there(entry: Node | None) -> Node:
    """The node a write just made or changed, read back inside its transaction. Missing means
    the write went wrong: raising here rolls the whole transaction back (an ``assert`` after
    the commit once reported a 500 for a MOVE that had already deleted a tree)."""
    if entry is None:
        raise Conflict("the item changed while it was being written; nothing was changed")
    return entry


@dataclass(frozen=True)
class NewContent:
    """What an upload stored: its blob (None: empty content, no blob) and what a node records
    of it."""

    blob_id: str | None
    key_version: int
    size: int
    cipher_size: int
    checksums: bytes | None  # sealed (files/checksums.py); None for empty content
    content_type: str
    mtime: float | None  # None: now


@dataclass(frozen=True)
class Keeping:
    """How much history is kept: the ``[versions]`` and ``[trash]`` settings."""

    rule: retention.Rule = field(default_factory=lambda: retention.parse_rule("auto"))
    history_share: int = 50  # percent of the quota history may keep once the quota is full
    trash_days: int = 30  # 0: until purged


class Content:
    """Thread-safe; one per application (services.py wires it into ``Files``, ``Admin`` and
    key rotation)."""

    def __init__(self, db: Database, blobs: BlobStore, keeping: Keeping | None = None) -> None:
        self.db = db
        self.blobs = blobs
        self.keeping = keeping or Keeping()

    # --- the blob store ----------------------------------------------------------------------

    def open(
        self, blob_id: str, *, size: int | None = None, span: tuple[int, int] | None = None
    ) -> BinaryIO:
        """The stored (encrypted) bytes of a blob; FileNotFoundError if it is gone. ``size``
        and ``span``: what the caller knows of the stored size and the range it will read
        (see BlobStore.open)."""
        return self.blobs.open(blob_id, size=size, span=span)

    def new_blob(self, blob_id: str) -> BlobUpload:
        """Start storing a blob; no node points at it until :meth:`commit` or :meth:`swap`.

        A store that cannot be listed cheaply gets the upload recorded as pending first, in a
        transaction of its own: if the commit never comes (a crash, a lost database), gc finds
        the object through that row instead of listing the bucket."""
        if self.blobs.tracks_uploads:
            with self.db.write() as conn:
                store.mark_blob_pending(conn, blob_id, time.time())
        return self.blobs.upload(blob_id)

    def free_bytes(self) -> int | None:
        return self.blobs.free_bytes()

    def stored(self) -> Iterator[BlobInfo]:
        """Every blob file of the store (for fsck)."""
        return self.blobs.iter_blobs()

    def temp_uploads(self) -> list[BlobInfo]:
        """Uploads in progress or abandoned (temp files, unfinished multipart uploads)."""
        return self.blobs.temp_uploads()

    # --- new content from an upload ----------------------------------------------------------

    def commit(
        self,
        parent: Node,
        name: str,
        new: NewContent,
        *,
        target: Node | None,
        guard: WriteGuard = NO_GUARD,
        actor: Actor | None = None,
    ) -> Node:
        """Point ``parent/name`` (or the file ``target``) at ``new`` in one short transaction,
        then remove the blob it replaced.

        ``actor``'s right to write is asked again here: a share revoked while the body was
        arriving grants nothing any more. A refusal removes the new blob (nothing points at
        it); any other failure leaves it to gc, since the COMMIT may have gone through."""
        try:
            entry, dead = self._commit(parent, name, new, target, guard, actor)
        except DavdiskError:
            # Refused inside the transaction (or at a COMMIT that failed, e.g. a full database):
            # the node was not pointed at the new blob, so it is garbage right away.
            if new.blob_id is not None:
                self.blobs.delete(new.blob_id)
            raise
        except BaseException:
            # Anything else (a lost database connection) may have hit after the COMMIT went
            # through: deleting the blob could lose the new content. gc removes it if unused.
            if new.blob_id is not None:
                logger.warning(
                    "upload of blob %s ended in doubt; davdisk gc will check", new.blob_id
                )
            raise
        self.remove(dead)
        return entry

    def _commit(
        self,
        parent: Node,
        name: str,
        new: NewContent,
        target: Node | None,
        guard: WriteGuard,
        actor: Actor | None,
    ) -> tuple[Node, list[str]]:
        blob_id, size = new.blob_id, new.size
        now = time.time()
        with self.db.write() as conn:
            guard.check(conn)  # e.g. a lock granted while the body was arriving
            if target is not None:
                existing = store.get_live_node(conn, target.id)
                if existing is None:
                    raise Conflict("the file is gone")
            else:
                if store.get_live_node(conn, parent.id) is None:
                    raise Conflict("the parent folder is gone")
                existing = store.get_child(conn, parent.id, name)
            if actor is not None:
                if existing is not None:
                    require(conn, actor, existing, "write")
                else:
                    require(conn, actor, parent, "create")
            if existing is not None and existing.is_dir:
                raise AlreadyExists(f"{name!r} is a folder")
            if blob_id is not None:
                if self.blobs.tracks_uploads:
                    store.forget_loose_blobs(conn, [blob_id])  # pending until now
                store.insert_blob(
                    conn,
                    blob_id,
                    owner_id=parent.owner_id,
                    node_id=existing.id if existing else None,
                    key_version=new.key_version,
                    size_plain=size,
                    size_cipher=new.cipher_size,
                )
            content = dict(
                size=size,
                mtime=now if new.mtime is None else new.mtime,
                etag=blob_id or secrets.token_hex(16),
                content_type=new.content_type,
                checksums=new.checksums,
                current_blob_id=blob_id,
            )
            content["modified_by"] = None if actor is None or actor.is_link else actor.id
            if existing is not None:
                author = store.modified_by(conn, existing.id)
                dead = self._keep_version(conn, existing, blob_id, now, author)
                store.update_node(conn, existing.id, **content)
                quota.charge(conn, existing.owner_id, size - existing.size)
                dead += store.drop_unreferenced_blobs(conn, [existing.blob_id])
                dead += self.make_room(conn, existing.owner_id)
                node_id = existing.id
            else:
                node_id = store.insert_node(
                    conn,
                    owner_id=parent.owner_id,
                    parent_id=parent.id,
                    name=name,
                    is_dir=False,
                    ctime=now,
                    **content,
                ).id
                quota.charge(conn, parent.owner_id, size)
                dead = self.make_room(conn, parent.owner_id)
            entry = still_there(store.get_node(conn, node_id))
            guard.done(conn)
        return entry, dead

    # --- transitions inside the caller's transaction -----------------------------------------

    def take(self, conn: Connection, dest: Node, src: Node) -> list[str]:
        """Give file ``dest`` the content, times and hashes of ``src`` (same owner: the blob is
        shared, not copied), keeping what ``dest`` had as a version; return the blobs now
        unused, for :meth:`remove` after the commit. The caller counts the live bytes (a copy
        adds them, a move only moves them), before this call."""
        author = store.modified_by(conn, dest.id)
        dead = self._keep_version(conn, dest, src.blob_id, time.time(), author)
        self.point_at(conn, dest.id, src, modified_by=store.modified_by(conn, src.id))
        dead += store.drop_unreferenced_blobs(conn, [dest.blob_id])
        return dead + self.make_room(conn, dest.owner_id)

    @staticmethod
    def point_at(conn: Connection, node_id: int, src: Node, **also: Any) -> None:
        """Give node ``node_id`` the content ``src`` has (its blob, shared, with its size,
        times and hashes), and the columns in ``also``; no version is kept, nothing counted:
        the callers (:meth:`take`, a save-by-rename's swap) do both."""
        store.update_node(
            conn,
            node_id,
            size=src.size,
            mtime=src.mtime,
            etag=src.etag,
            content_type=src.content_type,
            checksums=src.checksums,
            current_blob_id=src.blob_id,
            **also,
        )

    # --- versions ----------------------------------------------------------------------------

    def _keep_version(
        self,
        conn: Connection,
        node: Node,
        replacement: str | None,
        now: float,
        author: int | None,
    ) -> list[str]:
        """Keep ``node``'s content as read in this transaction (written by ``author``) as a
        version, as it is replaced by blob ``replacement``; then thin the file's versions by
        the retention rule.
        Returns the blobs expiry left unused. Empty content and the same blob again are not
        kept (nothing to get back)."""
        if node.is_dir or node.blob_id is None or node.size == 0 or node.blob_id == replacement:
            return []
        store.insert_version(
            conn,
            node_id=node.id,
            owner_id=node.owner_id,
            blob_id=node.blob_id,
            size=node.size,
            mtime=node.mtime,
            etag=node.etag,
            content_type=node.content_type,
            checksums=node.checksums,
            author_id=author,
            replaced_at=now,
            pinned=False,
        )
        store.add_history_bytes(conn, node.owner_id, versions=node.size)
        return self.expire_versions(conn, node.id, now)[1]

    def expire_versions(self, conn: Connection, node_id: int, now: float) -> tuple[int, list[str]]:
        """Drop the versions of one file that the retention rule lets go (never a pinned or
        labelled one); returns how many, and the blobs now unused."""
        ages = [
            retention.VersionAge(v.id, v.replaced_at, v.pinned or v.label is not None)
            for v in store.list_versions(conn, node_id)
        ]
        gone = retention.expired(ages, now, self.keeping.rule)
        return len(gone), self.drop_versions(conn, gone)

    @staticmethod
    def drop_versions(conn: Connection, version_ids: Sequence[int]) -> list[str]:
        """Delete version rows and uncount them; returns the blobs now unused."""
        if not version_ids:
            return []
        owners = store.version_owners(conn, version_ids)
        blob_ids, _ = store.delete_versions(conn, version_ids)
        for owner_id, size in owners.items():
            store.add_history_bytes(conn, owner_id, versions=-size)
        return store.drop_unreferenced_blobs(conn, blob_ids)

    def restore_version(
        self, conn: Connection, node: Node, version: Version, by: Actor | None
    ) -> list[str]:
        """Make ``version`` the current content of file ``node`` (both read in this
        transaction); what it replaces is kept as a version in turn, so a restore of the wrong
        version loses nothing. Charged like an upload (507 beyond the quota)."""
        now = time.time()
        author = store.modified_by(conn, node.id)
        # The file points at the version's blob first: the retention walk after the old
        # content is kept may drop the restored version's row (it is then the current
        # content), and its blob must not go with it.
        store.update_node(
            conn,
            node.id,
            size=version.size,
            mtime=now,
            etag=version.etag if version.etag != node.etag else secrets.token_hex(16),
            content_type=version.content_type,
            checksums=version.checksums,
            current_blob_id=version.blob_id,
            modified_by=None if by is None or by.is_link else by.id,
        )
        dead = self._keep_version(conn, node, version.blob_id, now, author)
        quota.charge(conn, node.owner_id, version.size - node.size)
        dead += store.drop_unreferenced_blobs(conn, [node.blob_id])
        return dead + self.make_room(conn, node.owner_id)

    # --- the trash ---------------------------------------------------------------------------

    @staticmethod
    def trash_tree(conn: Connection, entry: Node, by: Actor | None) -> list[str]:
        """Move ``entry`` and everything below it into its owner's trash: one UPDATE of its top
        node, whatever the tree's size. Its bytes move from the live count to the trash's;
        shares and links of anything in it end (a trashed item is nobody's to reach). Returns
        the blobs now unused: none (the trash keeps them)."""
        total = store.subtree_bytes(conn, entry.id)
        path = "/" + "/".join(store.node_names(conn, entry.id))
        root = store.ensure_trash_root(conn, entry.owner_id)
        # Whole seconds, later than any item of the same name: the item's name in the trash
        # is <name>.d<seconds>, as Nextcloud's, so it must be unique; and items of one name
        # keep the order they were deleted in (a second deletion in the same second, or one
        # after an item was restored, counts on from the latest).
        deleted_at = float(int(time.time()))
        latest = store.trash_latest(conn, root, entry.name)
        if latest is not None and latest >= deleted_at:
            deleted_at = latest + 1
        store.unshare_subtree(conn, entry.id, entry.owner_id)
        store.trash_node(
            conn,
            entry.id,
            trash_root=root,
            deleted_at=deleted_at,
            deleted_by=entry.owner_id if by is None or by.is_link else by.id,
            parent_id=entry.parent_id or root,
            path=path,
        )
        store.add_used_bytes(conn, entry.owner_id, -total)
        store.add_history_bytes(conn, entry.owner_id, trash=total)
        return []

    @staticmethod
    def restore_trash(conn: Connection, item: TrashItem, parent: Node, name: str) -> None:
        """Put a trashed item back as ``parent/name`` (a free name of a live folder of its
        owner, checked by the caller in this transaction); charged like new content."""
        total = store.subtree_bytes(conn, item.id)
        quota.charge(conn, item.owner_id, total)
        store.add_history_bytes(conn, item.owner_id, trash=-total)
        store.untrash_node(conn, item.id, parent.id, name)

    @staticmethod
    def purge_trash(conn: Connection, item_id: int, owner_id: int) -> list[str]:
        """Delete a trashed item for good, with the versions of its files; returns the blobs
        now unused."""
        ids = store.subtree_ids(conn, item_id)
        total, blob_ids = store.subtree_totals(conn, item_id, ids=ids)
        kept = store.versions_of_nodes(conn, ids)
        store.delete_subtree(conn, item_id)  # versions and properties go with the nodes
        store.add_history_bytes(
            conn, owner_id, trash=-total, versions=-sum(size for _, _, size in kept)
        )
        return store.drop_unreferenced_blobs(conn, blob_ids + [b for _, b, _ in kept])

    # --- room for live content ---------------------------------------------------------------

    def make_room(self, conn: Connection, owner_id: int) -> list[str]:
        """If the owner's live bytes and history together exceed their quota, drop the oldest
        unpinned versions, then the oldest trash, until history fits in what the live bytes
        leave and in ``history_share`` of the quota. Live content never waits for history: a
        write is refused (507) only when live bytes alone would exceed the quota."""
        limit, used, kept, trashed = store.history_totals(conn, owner_id)
        if limit <= 0 or used + kept + trashed <= limit:
            return []
        history = [
            retention.HistoryItem(
                "version", r.id, r.size, r.replaced_at, r.pinned or r.label is not None
            )
            for r in store.owner_versions(conn, owner_id)
        ]
        root = store.trash_root_of(conn, owner_id)
        for trashed_item in store.list_trash(conn, root) if root is not None else []:
            size = store.subtree_bytes(conn, trashed_item.id)
            history.append(
                retention.HistoryItem("trash", trashed_item.id, size, trashed_item.deleted_at)
            )
        drop = retention.make_room(
            history, quota=limit, live=used, need=0, share_percent=self.keeping.history_share
        )
        if drop is None:  # pinned versions fill what the live bytes leave: drop all else
            drop = [i for i in history if not i.pinned]
        dead = self.drop_versions(conn, [i.id for i in drop if i.kind == "version"])
        for dropped in drop:
            if dropped.kind == "trash":
                dead += self.purge_trash(conn, dropped.id, owner_id)
        return dead

    @staticmethod
    def copy_tree(
        conn: Connection, src: Node, parent_id: int, name: str, *, recursive: bool
    ) -> Node:
        """Copy ``src`` (and, if ``recursive``, its members) into ``parent_id`` for the same
        owner: the copies share the source's blobs (immutable; a blob lives while any node
        points at it). Returns the new top node; the caller charges the bytes."""
        return store.copy_subtree(conn, src, parent_id, name, recursive=recursive)

    @staticmethod
    def copy_rows(
        conn: Connection,
        ids: Sequence[int],
        new_parent: Mapping[int, int],
        marker: float,
        now: float,
    ) -> dict[int, int]:
        """One batch of a staged copy (see meta/store/): hidden rows sharing the sources'
        blobs, as :meth:`copy_tree`. Returns old id -> new id."""
        return store.copy_rows(conn, ids, new_parent, marker, now)

    @staticmethod
    def delete_rows(conn: Connection, ids: Sequence[int]) -> list[str]:
        """Delete these node rows (children before parents; charged to nobody, e.g. the hidden
        rows of a staged copy); return the blobs now unused."""
        return store.drop_unreferenced_blobs(conn, store.delete_rows(conn, ids))

    @staticmethod
    def drop_owner(conn: Connection, owner_id: int) -> list[str]:
        """Delete every node and blob row of an owner (a user being deleted); return the blobs,
        for :meth:`remove_all` after the commit."""
        return store.delete_owner_content(conn, owner_id)

    # --- key rotation ------------------------------------------------------------------------

    def on_older_keys(self, owner_id: int) -> list[Any]:
        """(id, node_id, key_version, size_plain) of the owner's blobs under an older key
        version than their newest that a node uses (unused ones are garbage for gc, not worth
        rewriting), oldest first."""
        with self.db.read() as conn:
            return key_rows.used_blobs_on_older_keys(conn, owner_id)

    def swap(
        self,
        old_id: str,
        new_id: str,
        *,
        owner_id: int,
        node_id: int | None,
        key_version: int,
        size_plain: int,
        size_cipher: int,
    ) -> bool:
        """Point every node still on blob ``old_id`` at its re-encrypted twin ``new_id`` (stored,
        durable, without a row yet) in one short transaction, then remove the file no longer
        needed. False (and ``new_id`` removed) if no node uses ``old_id`` any more."""
        with self.db.write() as conn:
            if self.blobs.tracks_uploads:
                store.forget_loose_blobs(conn, [new_id])
            used = store.blob_in_use(conn, old_id)
            if used:
                store.insert_blob(
                    conn,
                    new_id,
                    owner_id=owner_id,
                    node_id=node_id,
                    key_version=key_version,
                    size_plain=size_plain,
                    size_cipher=size_cipher,
                )
                store.repoint_blob(conn, old_id, new_id)
        self.remove([old_id] if used else [new_id])
        return used

    # --- liveness ----------------------------------------------------------------------------

    def in_use(self, blob_id: str) -> bool:
        """Whether a node points at ``blob_id``, against a fresh snapshot (a concurrent write
        may have replaced it meanwhile)."""
        with self.db.read() as conn:
            return store.blob_in_use(conn, blob_id)

    def where_used(self, blob_id: str) -> str:
        """``owner:/path`` of a node using the blob (``owner:/path (version N)`` if it keeps it
        as a version; and how many more), against a fresh snapshot, for messages."""
        with self.db.read() as conn:
            found = checks.blob_users(conn, blob_id)
            if not found:
                return f"blob {blob_id}"
            node_id, _owner, version_id = found[0]
            place = checks.owner_path(conn, node_id)
        if version_id is not None:
            place += f" (version {version_id})"
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        return f"{place}{more}"

    @staticmethod
    def files_with_blobs(conn: Connection) -> list[Any]:
        """Every live file with the blob row it points at (see meta/store/checks.py)."""
        return checks.file_blob_rows(conn)

    def blob_rows(self) -> tuple[set[str], list[str]]:
        """(every blob row, the rows no node points at), in one snapshot."""
        with self.db.read() as conn:
            return set(store.all_blob_rows(conn)), store.unreferenced_blob_ids(conn)

    def blob_sizes(self) -> dict[str, int]:
        """Every blob row: id -> stored size."""
        with self.db.read() as conn:
            return store.all_blob_rows(conn)

    def remove(self, blob_ids: Iterable[str]) -> None:
        """Delete blob files whose rows are gone; a crash here leaves work for ``gc``.

        A store whose deletes cut off readers at once (a bucket) keeps them ``delete_delay``
        seconds first: they are recorded as dead, and gc deletes them when the time is up."""
        if self.blobs.delete_delay > 0:
            ids = list(blob_ids)
            if ids:
                try:
                    with self.db.write() as conn:
                        store.mark_blobs_dead(conn, ids, time.time())
                except Exception:
                    # The request succeeded; only gc --deep finds these objects now.
                    logger.exception("could not record %d dead blobs for gc", len(ids))
            return
        for blob_id in blob_ids:
            try:
                self.blobs.delete(blob_id)
            except Exception:
                # The rows are gone, so the request succeeded; the file is gc's to remove.
                logger.exception("could not remove blob %s; davdisk gc will", blob_id)

    def remove_all(self, blob_ids: Iterable[str]) -> int:
        """Delete the files of blobs whose rows went with their owner (a deleted user); return
        how many were there."""
        return self.blobs.delete_many(list(blob_ids))

    def collect(self, min_age: float, *, deep: bool = False) -> Collected:
        """Remove blobs no node points to and uploads abandoned for ``min_age`` seconds.

        A blob file is only removed if it has no row, or a row no node points to; files younger
        than ``min_age`` are left alone, since a running server may be about to commit them.
        A store that is not cheap to list (a bucket) is listed only when ``deep``; otherwise
        its leftovers are found through the pending and dead records (:meth:`new_blob`,
        :meth:`remove`). ``deep`` also counts blob rows whose object is missing (damage that
        fsck reports in detail).
        """
        done = Collected()
        done.uploads, done.bytes = self.blobs.remove_stale_uploads(min_age)
        done.blobs = done.uploads
        now = time.time()
        if self.blobs.tracks_uploads or self.blobs.delete_delay > 0:
            self._collect_loose(done, now - min_age, now - self.blobs.delete_delay)
        with self.db.write() as conn:
            dead_rows = store.unreferenced_blob_ids(conn)
            store.drop_unreferenced_blobs(conn, dead_rows)
            known = store.all_blob_rows(conn)
        if not (deep or self.blobs.listing_is_cheap):
            done.blobs += self.blobs.delete_many(dead_rows)
            return done
        limit = now - min_age
        listed = set()
        for info in self.blobs.iter_blobs():
            listed.add(info.id)
            if info.id in known:
                continue
            if info.id not in dead_rows and info.mtime > limit:
                continue
            if self.blobs.delete(info.id):
                done.blobs += 1
                done.orphans += 1
                done.bytes += info.size
        if deep:
            done.missing = sum(1 for blob_id in known if blob_id not in listed)
        return done

    def _collect_loose(self, done: Collected, pending_before: float, dead_before: float) -> None:
        """Delete the objects of pending uploads that never committed and of dead blobs whose
        delay is over, then their records."""
        with self.db.read() as conn:
            pending = store.loose_blobs_since(conn, store.PENDING, pending_before)
            dead = store.loose_blobs_since(conn, store.DEAD, dead_before)
            committed = store.blob_rows_among(conn, pending)
        busy = self.blobs.uploads_in_progress() if pending else set()
        settled, stored = [], []
        for blob_id in pending:
            if blob_id in busy or blob_id in committed:
                continue  # a multipart upload still being written; or settled meanwhile
            stored_at = self.blobs.stored_at(blob_id)
            if stored_at is not None:
                if stored_at > pending_before:
                    continue  # stored just now: its commit may still come
                stored.append(blob_id)
            settled.append(blob_id)
        done.pending = self.blobs.delete_many(stored)
        done.blobs += done.pending + self.blobs.delete_many(dead)
        settled += dead
        if settled:
            with self.db.write() as conn:
                # A pending row whose blob got its row meanwhile was settled by that commit.
                store.forget_loose_blobs(conn, settled)


@dataclass
class Collected:
    """What one gc run removed."""

    blobs: int = 0  # objects and temp files removed, all kinds together
    bytes: int = 0  # their size, where the store told it
    uploads: int = 0  # abandoned uploads: temp files, unfinished multipart uploads
    pending: int = 0  # objects of uploads that never committed
    orphans: int = 0  # objects no row knew of, found by listing the store
    missing: int = 0  # blob rows without their object (counted by deep gc only)
