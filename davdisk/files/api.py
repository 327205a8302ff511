"""Files: THE one API for what users do with files, whatever the face (WebDAV, CLI, later web).

It resolves paths inside the actor's home, lists folders, opens verified plaintext for reading,
writes new content (stream -> hash -> encrypt -> blob -> one commit), and creates, moves, copies
and deletes nodes. Access checks live here and only here (:meth:`Files._allow`). The write path
never holds a database transaction while a request body is read: the blob is written and made
durable first, then one short transaction points the node at it, so a crash or a cut connection
leaves the old content and, at most, an orphan blob for ``davdisk gc``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import mimetypes
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from sqlalchemy import Connection

from davdisk.blobs.base import BlobStore
from davdisk.crypto.envelope import EnvelopeReader, EnvelopeWriter
from davdisk.errors import (
    AlreadyExists,
    ChecksumMismatch,
    Conflict,
    Forbidden,
    IncompleteBody,
    IntegrityError,
    NotFound,
    PreconditionFailed,
)
from davdisk.files.keyring import Keyring
from davdisk.files.names import check_name, split_path
from davdisk.meta import store
from davdisk.meta.db import Database
from davdisk.meta.store import Entry

logger = logging.getLogger(__name__)

Action = Literal["read", "write", "delete", "lock"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an authenticated user (later also share grantees and public links)."""

    id: int
    name: str
    root_id: int


def _guess_type(name: str, sent: str | None) -> str:
    if sent and sent.split(";")[0].strip().lower() not in ("", "application/octet-stream"):
        return sent
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


class VerifiedReader(io.BufferedReader):
    """Buffered plaintext of one blob; a failed verification is logged where it happens, since
    the face that reads (WsgiDAV streaming a GET) reports it only as a dropped response."""

    def __init__(self, raw: EnvelopeReader, blob_id: str) -> None:
        super().__init__(raw, buffer_size=1 << 16)
        self._blob_id = blob_id

    def read(self, size: int | None = -1) -> bytes:
        try:
            return super().read(size)
        except IntegrityError as e:
            logger.error("%s", e.message)
            raise

    def readinto(self, buffer: Any) -> int:
        try:
            return super().readinto(buffer)
        except IntegrityError as e:
            logger.error("%s", e.message)
            raise


class Upload:
    """New content for one file, streamed in; nothing is visible until :meth:`commit`.

    Use as a context manager or call :meth:`abort` on failure: the blob is discarded.
    """

    def __init__(
        self,
        files: Files,
        actor: Actor,
        parent: Entry,
        name: str,
        *,
        content_type: str | None,
        expected_size: int | None,
        mtime: float | None,
        checksums: dict[str, str] | None = None,
    ) -> None:
        self._files = files
        self._checksums = checksums or {}
        self._actor = actor
        self._parent = parent
        self._name = name
        self._content_type = _guess_type(name, content_type)
        self._expected = expected_size
        self._mtime = mtime
        self.blob_id = secrets.token_hex(16)
        self._key_version, key = files.keyring.current(actor.id)
        self._blob = files.blobs.upload(self.blob_id)
        self._enc = EnvelopeWriter(
            self._blob.file,
            user_key=key,
            user_id=actor.id,
            key_version=self._key_version,
            blob_id=bytes.fromhex(self.blob_id),
        )
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        self.size = 0
        self._closed = False

    def write(self, data: bytes) -> int:
        self._md5.update(data)
        self._sha1.update(data)
        self._enc.write(data)
        self.size += len(data)
        return len(data)

    def writelines(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def commit(self) -> Entry:
        """Check the length, make the blob durable, then point the node at it."""
        if self._closed:
            raise RuntimeError("upload already finished")
        if self._expected is not None and self.size != self._expected:
            self.abort()
            raise IncompleteBody(got=self.size, expected=self._expected)
        md5, sha1 = self._md5.hexdigest(), self._sha1.hexdigest()
        for algo, actual in (("md5", md5), ("sha1", sha1)):
            expected = self._checksums.get(algo)
            if expected is not None and expected != actual:
                self.abort()
                raise ChecksumMismatch(algo=algo.upper(), expected=expected, actual=actual)
        blob_id: str | None = self.blob_id
        if self.size == 0:
            # Empty content needs no blob (Windows and Finder create every file as an empty
            # placeholder first, then write it; that placeholder should cost nothing).
            self.abort()
            blob_id, cipher_size = None, 0
        else:
            self._enc.close()
            cipher_size = self._blob.commit()
        self._closed = True
        try:
            entry, dead = self._files._commit_content(
                self._actor,
                self._parent,
                self._name,
                blob_id=blob_id,
                key_version=self._key_version,
                size=self.size,
                cipher_size=cipher_size,
                md5=md5,
                sha1=sha1,
                content_type=self._content_type,
                mtime=self._mtime,
            )
        except BaseException:
            # The node was not pointed at the new blob: it is garbage right away.
            if blob_id is not None:
                self._files.blobs.delete(blob_id)
            raise
        self._files._remove_blobs(dead)
        return entry

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            self._blob.abort()

    def __enter__(self) -> Upload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class Files:
    """Thread-safe; one per application."""

    def __init__(self, db: Database, blobs: BlobStore, keyring: Keyring) -> None:
        self.db = db
        self.blobs = blobs
        self.keyring = keyring

    # --- access ------------------------------------------------------------------------------

    def _allow(self, actor: Actor, entry: Entry, action: Action) -> None:
        """The access-control choke point: may ``actor`` do ``action`` on ``entry``?"""
        if entry.owner_id != actor.id:
            raise Forbidden(f"{action} not allowed")

    # --- reading -----------------------------------------------------------------------------

    def actor(self, user_name: str) -> Actor | None:
        found = self.login_record(user_name)
        return found[0] if found else None

    def login_record(self, user_name: str) -> tuple[Actor, str] | None:
        """The actor a user name stands for and its password hash; None if unknown/disabled."""
        with self.db.read() as conn:
            user = store.get_user(conn, user_name)
        if user is None or user.disabled:
            return None
        return Actor(user.id, user.name, user.root_id), user.password_hash

    def resolve(self, actor: Actor, path: str) -> Entry | None:
        """The node at ``path`` (relative to the actor's home), or None."""
        names = split_path(path)
        if names is None:
            return None
        with self.db.read() as conn:
            entry = store.resolve(conn, actor.root_id, names)
        if entry is not None:
            self._allow(actor, entry, "read")
        return entry

    def children(self, actor: Actor, folder: Entry) -> list[Entry]:
        self._allow(actor, folder, "read")
        with self.db.read() as conn:
            return store.list_children(conn, folder.id)

    def children_with_properties(
        self, actor: Actor, folder: Entry
    ) -> tuple[list[Entry], dict[int, dict[str, bytes]]]:
        """A folder's members and their dead properties, in one snapshot (two queries)."""
        self._allow(actor, folder, "read")
        with self.db.read() as conn:
            return (
                store.list_children(conn, folder.id),
                store.get_children_properties(conn, folder.id),
            )

    def open_read(self, actor: Actor, entry: Entry) -> BinaryIO:
        """A seekable reader of verified plaintext."""
        self._allow(actor, entry, "read")
        if entry.is_dir:
            raise Conflict("a folder has no content")
        if entry.blob_id is None:
            return io.BytesIO(b"")
        with self.db.read() as conn:
            version = store.get_blob_key_version(conn, entry.blob_id)
        if version is None:
            raise NotFound(f"content of {entry.name!r}")
        src = self.blobs.open(entry.blob_id)
        try:
            reader = EnvelopeReader(
                src,
                key_for_version=lambda v: self.keyring.key(entry.owner_id, v),
                user_id=entry.owner_id,
                blob_id=bytes.fromhex(entry.blob_id),
                expected_plain_size=entry.size,
            )
        except IntegrityError as e:
            src.close()
            logger.error("%s", e.message)
            raise
        except BaseException:
            src.close()
            raise
        return VerifiedReader(reader, entry.blob_id)

    def usage(self, actor: Actor) -> tuple[int, int | None]:
        """(bytes the actor's files take, bytes still free for new content or None)."""
        with self.db.read() as conn:
            user = store.get_user_by_id(conn, actor.id)
        used = user.used_bytes if user else 0
        return used, self.blobs.free_bytes()

    def tree_size(self, actor: Actor, folder: Entry) -> int:
        """Bytes of all files below ``folder``."""
        self._allow(actor, folder, "read")
        with self.db.read() as conn:
            return store.subtree_size(conn, folder.id)

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
            return store.get_properties(conn, entry.id)

    # --- writing -----------------------------------------------------------------------------

    def upload(
        self,
        actor: Actor,
        parent: Entry,
        name: str,
        *,
        content_type: str | None = None,
        expected_size: int | None = None,
        mtime: float | None = None,
        checksums: dict[str, str] | None = None,
    ) -> Upload:
        """Start new content for ``parent/name`` (created or replaced on commit).

        ``checksums`` ({"md5"|"sha1": hex}) are verified against the body before anything is
        committed; ``mtime`` (unix seconds) is the modification time to record, default now.
        """
        self._allow(actor, parent, "write")
        check_name(name)
        return Upload(
            self,
            actor,
            parent,
            name,
            content_type=content_type,
            expected_size=expected_size,
            mtime=mtime,
            checksums=checksums,
        )

    def write(self, actor: Actor, parent: Entry, name: str, data: bytes) -> Entry:
        """Store ``data`` as ``parent/name`` in one call (small content, CLI, tests)."""
        with self.upload(actor, parent, name, expected_size=len(data)) as up:
            up.write(data)
            return up.commit()

    def _commit_content(
        self,
        actor: Actor,
        parent: Entry,
        name: str,
        *,
        blob_id: str | None,
        key_version: int,
        size: int,
        cipher_size: int,
        md5: str,
        sha1: str,
        content_type: str,
        mtime: float | None,
    ) -> tuple[Entry, list[str]]:
        """Point ``parent/name`` at a stored blob; return the entry and blobs now unused."""
        now = time.time()
        with self.db.write() as conn:
            if store.get_node(conn, parent.id) is None:
                raise Conflict("the parent folder is gone")
            existing = store.get_child(conn, parent.id, name)
            if existing is not None and existing.is_dir:
                raise AlreadyExists(f"{name!r} is a folder")
            if blob_id is not None:
                store.insert_blob(
                    conn,
                    blob_id,
                    owner_id=parent.owner_id,
                    node_id=existing.id if existing else None,
                    key_version=key_version,
                    size_plain=size,
                    size_cipher=cipher_size,
                )
            content = dict(
                size=size,
                mtime=now if mtime is None else mtime,
                etag=blob_id or secrets.token_hex(16),
                content_type=content_type,
                md5=md5,
                sha1=sha1,
                current_blob_id=blob_id,
            )
            if existing is not None:
                store.update_node(conn, existing.id, **content)
                store.add_used_bytes(conn, parent.owner_id, size - existing.size)
                dead = store.drop_unreferenced_blobs(conn, [existing.blob_id])
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
                store.add_used_bytes(conn, parent.owner_id, size)
                dead = []
            entry = store.get_node(conn, node_id)
        assert entry is not None
        return entry, dead

    def create_empty(self, actor: Actor, parent: Entry, name: str) -> Entry:
        """Create an empty file (a LOCK on an unmapped URL creates one)."""
        self._allow(actor, parent, "write")
        check_name(name)
        now = time.time()
        with self.db.write() as conn:
            if store.get_child(conn, parent.id, name) is not None:
                raise AlreadyExists(name)
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
                content_type=_guess_type(name, None),
                md5=hashlib.md5(b"", usedforsecurity=False).hexdigest(),
                sha1=hashlib.sha1(b"", usedforsecurity=False).hexdigest(),
            )

    def mkdir(self, actor: Actor, parent: Entry, name: str) -> Entry:
        self._allow(actor, parent, "write")
        check_name(name)
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

    def set_properties(self, actor: Actor, entry: Entry, changes: dict[str, bytes | None]) -> None:
        self._allow(actor, entry, "write")
        with self.db.write() as conn:
            store.set_properties(conn, entry.id, changes)

    def delete(self, actor: Actor, entry: Entry) -> None:
        """Delete a file, or a folder with everything in it."""
        self._allow(actor, entry, "delete")
        if entry.parent_id is None:
            raise Forbidden("the home folder cannot be deleted")
        with self.db.write() as conn:
            dead = self._delete_in(conn, entry)
        self._remove_blobs(dead)

    def _delete_in(self, conn: Connection, entry: Entry) -> list[str]:
        total, blob_ids = store.subtree_totals(conn, entry.id)
        store.delete_subtree(conn, entry.id)
        store.add_used_bytes(conn, entry.owner_id, -total)
        return store.drop_unreferenced_blobs(conn, blob_ids)

    def move(
        self,
        actor: Actor,
        entry: Entry,
        parent: Entry,
        name: str,
        *,
        overwrite: bool,
        mtime: float | None = None,
    ) -> tuple[Entry, bool]:
        """Move/rename ``entry`` to ``parent/name``; returns (new entry, destination was new).

        A file moved over a file keeps the destination's node id (so what hangs on that id —
        shares, versions — survives an editor's save-by-rename) and takes the source's content,
        times, hashes and dead properties.
        """
        self._allow(actor, entry, "delete")
        self._allow(actor, parent, "write")
        check_name(name)
        if entry.parent_id is None:
            raise Forbidden("the home folder cannot be moved")
        dead: list[str] = []
        with self.db.write() as conn:
            src, existing = self._target(conn, entry, parent, name, overwrite=overwrite)
            if existing is not None and existing.id == src.id:
                return src, False
            if existing is not None and not existing.is_dir and not src.is_dir:
                dead = self._take_content(conn, existing, src)
                store.move_properties(conn, src.id, existing.id)
                store.delete_subtree(conn, src.id)
                store.add_used_bytes(conn, src.owner_id, -src.size)
                result = store.get_node(conn, existing.id)
            else:
                if existing is not None:
                    dead = self._delete_in(conn, existing)
                store.update_node(conn, src.id, parent_id=parent.id, name=name)
                result = store.get_node(conn, src.id)
            result = self._stamp(conn, result, mtime)
        self._remove_blobs(dead)
        assert result is not None
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
    ) -> tuple[Entry, bool]:
        """Copy ``entry`` to ``parent/name`` (a folder's members only if ``recursive``).

        A file copied over a file keeps the destination's node id, as for :meth:`move`.
        """
        self._allow(actor, entry, "read")
        self._allow(actor, parent, "write")
        check_name(name)
        dead: list[str] = []
        with self.db.write() as conn:
            src, existing = self._target(conn, entry, parent, name, overwrite=overwrite)
            if existing is not None and existing.id == src.id:
                raise Forbidden("cannot copy onto itself")
            if existing is not None and not existing.is_dir and not src.is_dir:
                dead = self._take_content(conn, existing, src)
                replaced = dict.fromkeys(store.get_properties(conn, existing.id))
                store.set_properties(
                    conn, existing.id, {**replaced, **store.get_properties(conn, src.id)}
                )
                result = store.get_node(conn, existing.id)
            else:
                if existing is not None:
                    dead = self._delete_in(conn, existing)
                result = store.copy_subtree(conn, src, parent.id, name, recursive=recursive)
                total, _ = store.subtree_totals(conn, result.id)
                store.add_used_bytes(conn, src.owner_id, total)
            result = self._stamp(conn, result, mtime)
        self._remove_blobs(dead)
        assert result is not None
        return result, existing is None

    def _target(
        self, conn: Connection, entry: Entry, parent: Entry, name: str, *, overwrite: bool
    ) -> tuple[Entry, Entry | None]:
        """Re-read the source and check the destination of a move or copy, in its transaction;
        return (source, what already stands at the destination)."""
        src = self._fresh(conn, entry)
        if store.get_node(conn, parent.id) is None:
            raise Conflict("the destination folder is gone")
        if src.is_dir and store.is_ancestor(conn, src.id, parent.id):
            raise Forbidden("cannot move or copy a folder into itself")
        existing = store.get_child(conn, parent.id, name)
        if existing is not None and existing.id != src.id and not overwrite:
            raise PreconditionFailed("destination exists")
        return src, existing

    @staticmethod
    def _take_content(conn: Connection, dest: Entry, src: Entry) -> list[str]:
        """Give file ``dest`` the content, times and hashes of ``src``; return unused blobs."""
        store.update_node(
            conn,
            dest.id,
            size=src.size,
            mtime=src.mtime,
            etag=src.etag,
            content_type=src.content_type,
            md5=src.md5,
            sha1=src.sha1,
            current_blob_id=src.blob_id,
        )
        store.add_used_bytes(conn, dest.owner_id, src.size - dest.size)
        return store.drop_unreferenced_blobs(conn, [dest.blob_id])

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

    def _remove_blobs(self, blob_ids: Iterable[str]) -> None:
        """Delete blob files whose rows are gone; a crash here leaves work for ``gc``."""
        for blob_id in blob_ids:
            try:
                self.blobs.delete(blob_id)
            except Exception:
                # The rows are gone, so the request succeeded; the file is gc's to remove.
                logger.exception("could not remove blob %s; davdisk gc will", blob_id)

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
