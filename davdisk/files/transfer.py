"""Transfer: content streaming out of and into files.

Reading opens a node's blob through the content owner and decrypts and verifies it as it is
read (:class:`~davdisk.files.upload.VerifiedReader`); a blob an overwrite removed meanwhile is
followed to the file's newer content. Writing starts an :class:`~davdisk.files.upload.Upload`
after the access and quota checks, so a body that cannot land is refused before it is read; the
upload then commits through the content owner (files/content.py).
"""

from __future__ import annotations

import io
from dataclasses import replace
from typing import BinaryIO

from davdisk.crypto.envelope import cipher_size, cipher_span
from davdisk.errors import Conflict, IntegrityError, NotFound
from davdisk.files import quota
from davdisk.files.access import allow
from davdisk.files.checksums import Checksums
from davdisk.files.content import Content
from davdisk.files.guard import NO_GUARD, WriteGuard
from davdisk.files.keyring import Keyring
from davdisk.files.names import check_name
from davdisk.files.upload import VERIFIED_BUFFER, Upload, VerifiedReader
from davdisk.meta import store
from davdisk.meta.db import Database
from davdisk.model import Actor, Node


class Transfer:
    """Thread-safe; one per application, behind ``Files``."""

    def __init__(
        self, db: Database, content: Content, keyring: Keyring, checksums: Checksums
    ) -> None:
        self.db = db
        self.content = content
        self.keyring = keyring
        self.checksums = checksums

    def open_read(self, actor: Actor, entry: Node, want: tuple[int, int] | None = None) -> BinaryIO:
        """A seekable reader of verified plaintext. ``want``: the plaintext range [start, end)
        the caller will read, if it knows (an HTTP Range), so a store that fetches ranges
        fetches just the segments it needs."""
        allow(self.db, actor, entry, "read")
        if entry.is_dir:
            raise Conflict("a folder has no content")
        if entry.blob_id is None:
            return io.BytesIO(b"")
        # No query for the blob's row: its header names the key version, and a blob that is
        # gone (an overwrite or delete removed it since ``entry`` was read) is not found here.
        # One segment more than wanted: the buffered reader reads ahead up to that much.
        span = None if want is None else cipher_span(want[0], want[1] + VERIFIED_BUFFER, entry.size)
        try:
            src = self.content.open(entry.blob_id, size=cipher_size(entry.size), span=span)
        except FileNotFoundError:
            raise NotFound(f"content of {entry.name!r}") from None
        try:
            reader = self.keyring.reader(src, entry.owner_id, entry.blob_id, entry.size)
        except FileNotFoundError:
            # A store that opens lazily finds a missing blob at the first read: the header's.
            src.close()
            raise NotFound(f"content of {entry.name!r}") from None
        except BaseException:
            src.close()
            raise
        return VerifiedReader(reader, entry.blob_id)

    def open_current(
        self, actor: Actor, entry: Node, want: tuple[int, int] | None = None
    ) -> tuple[Node, BinaryIO]:
        """:meth:`open_read` of the file's current content: (the entry as opened, its reader).

        An overwrite commits a new blob and then removes the old one, so a request that looked
        ``entry`` up just before may find its blob gone; the file then has newer content, which
        this opens instead (with the entry that describes it). Once open, a blob stays readable
        even if it is removed. A blob missing although the file still names it is damage
        (IntegrityError, logged).
        """
        for _ in range(10):
            try:
                return entry, self.open_read(actor, entry, want)
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

    def upload(
        self,
        actor: Actor,
        parent: Node,
        name: str,
        *,
        target: Node | None = None,
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
            allow(self.db, actor, target, "write")
        else:
            allow(self.db, actor, parent, "create")
            name = check_name(name)
        with self.db.read() as conn:  # one snapshot for what is replaced and what is left
            existing = target or store.get_child(conn, parent.id, name)
            if existing is not None and target is None:
                # A name the actor could not find (a file drop's view hides files) is still
                # there: refuse before the body is read, not after (the commit checks again).
                allow(self.db, actor, existing, "write", conn)
            replacing = existing.size if existing is not None else 0
            allowance = quota.allowance(conn, parent.owner_id)
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

    def write(self, actor: Actor, parent: Node, name: str, data: bytes) -> Node:
        """Store ``data`` as ``parent/name`` in one call (small content, CLI, tests)."""
        with self.upload(actor, parent, name, expected_size=len(data)) as up:
            up.write(data)
            return up.commit()
