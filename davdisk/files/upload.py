"""Content streaming in and out: :class:`Upload` (hash, check, encrypt, store, commit) and
:class:`VerifiedReader` (decrypt, verify, log failures).

A full disk is an answer, not a crash: an upload that cannot fit the blob store's free space is
refused before its body is read, and one that meets ``ENOSPC``/``EDQUOT`` part way (another
upload took the room, the fsync found it late) is aborted — temp file removed, a warning logged —
and reported as :class:`InsufficientStorage` (507). Either way the old content stays.

Big bodies go through :meth:`Upload.write_from`: read in blocks (1 MiB for a local store, less
for one that buffers by itself: ``BlobStore.write_block``) straight into two preallocated
buffers; while this thread encrypts and writes a block and reads the next, a worker thread
computes the block's MD5 and SHA-1 (hashlib releases the GIL, and the two hashes cost
about as much as everything else together, so two cores share the work evenly). The hashes
still see the blocks in order: a block's hashing starts only after the previous one finished.
"""

from __future__ import annotations

import hashlib
import io
import logging
import mimetypes
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from davdisk.blobs.base import BlobStore, is_out_of_space
from davdisk.crypto.envelope import SEGMENT_SIZE, EnvelopeReader, EnvelopeWriter, cipher_size
from davdisk.errors import (
    ChecksumMismatch,
    IncompleteBody,
    InsufficientStorage,
)
from davdisk.files.checksums import Checksums
from davdisk.files.content import Content, NewContent
from davdisk.files.guard import NO_GUARD, WriteGuard
from davdisk.files.keyring import Keyring
from davdisk.model import Actor, Node

logger = logging.getLogger(__name__)

# Blocks at least this big are hashed on a worker thread (when there is a second CPU): below
# it, handing the work over costs more than it saves.
_HASH_ASIDE_MIN = 256 << 10
_HASH_ASIDE = (os.cpu_count() or 1) > 1
_hash_pool: ThreadPoolExecutor | None = None
_hash_pool_lock = threading.Lock()


class Readable(Protocol):
    """What :meth:`Upload.write_from` reads: ``readinto`` returning 0 only at the end."""

    def readinto(self, buffer: Any, /) -> int: ...


def _hash_workers() -> ThreadPoolExecutor:
    """The shared threads that hash blocks aside (each upload has at most one job queued)."""
    global _hash_pool
    with _hash_pool_lock:
        if _hash_pool is None:
            _hash_pool = ThreadPoolExecutor(
                max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="davdisk-hash"
            )
        return _hash_pool


def _hash_aside(hash_block: Callable[[memoryview], None], block: memoryview) -> Future[None] | None:
    """Hash ``block`` on a worker thread; here, if the pool takes no more work (the interpreter
    is exiting: its pools refuse new jobs while a request may still be finishing)."""
    try:
        return _hash_workers().submit(hash_block, block)
    except RuntimeError:
        hash_block(block)
        return None


def _fill(src: Readable, view: memoryview) -> int:
    """Fill ``view`` from ``src`` unless the end comes first; returns the bytes read."""
    done = 0
    while done < len(view):
        n = src.readinto(view[done:])
        if not n:
            break
        done += n
    return done


def guess_type(name: str, sent: str | None) -> str:
    if sent and sent.split(";")[0].strip().lower() not in ("", "application/octet-stream"):
        return sent
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


VERIFIED_BUFFER = 1 << 16  # what a VerifiedReader reads ahead at most: one segment


class VerifiedReader(io.BufferedReader):
    """Buffered plaintext of one blob; a failed verification is logged where it happens, since
    the face that reads (WsgiDAV streaming a GET) reports it only as a dropped response."""

    def __init__(self, raw: EnvelopeReader, blob_id: str) -> None:
        super().__init__(raw, buffer_size=VERIFIED_BUFFER)
        self._blob_id = blob_id


class Upload:
    """New content for one file, streamed in; nothing is visible until :meth:`commit`.

    Use as a context manager or call :meth:`abort` on failure: the blob is discarded.
    """

    def __init__(
        self,
        content: Content,
        keyring: Keyring,
        sealer: Checksums,
        actor: Actor,
        parent: Node,
        name: str,
        *,
        target: Node | None = None,
        content_type: str | None,
        expected_size: int | None,
        size_hint: int | None = None,
        mtime: float | None,
        checksums: dict[str, str] | None = None,
        allowance: int | None = None,
        guard: WriteGuard = NO_GUARD,
    ) -> None:
        """``content``: where the stored blob is committed (files/content.py); ``keyring`` and
        ``sealer``: the owner's key and the sealing of the hashes. ``target``: the file to give
        new content (else ``parent/name`` is created or replaced); ``allowance``: bytes the
        owner's quota still allows (None = no limit), checked against ``expected_size`` or
        ``size_hint`` now and against the body as it streams, so an upload that cannot fit
        stops early and stores nothing."""
        need = expected_size if expected_size is not None else size_hint
        if allowance is not None and need is not None and need > allowance:
            raise InsufficientStorage(f"{need} bytes do not fit in the {allowance} left")
        if need is not None:
            _check_free_space(content.blobs, need)
        self._content = content
        self._block = content.blobs.write_block  # read, encrypted and written per step
        self._sealer = sealer
        self._guard = guard
        self._checksums = checksums or {}
        self._actor = actor
        self._parent = parent
        self._name = name
        self._target = target
        self._allowance = allowance
        self._content_type = guess_type(name, content_type)
        self._expected = expected_size
        self._mtime = mtime
        # Content is encrypted for the node's owner, whoever writes it (a share grantee, a link).
        self._owner_id = parent.owner_id
        self.blob_id = secrets.token_hex(16)
        self._key_version, self._key = keyring.current(self._owner_id)
        self._closed = False
        with _out_of_space_is_507(self.blob_id, cleanup=None):  # no room even for a temp file
            self._blob = content.new_blob(self.blob_id)
        try:
            with self._storing():
                self._enc = EnvelopeWriter(
                    self._blob.file,
                    batch=self._block // SEGMENT_SIZE,
                    user_key=self._key,
                    user_id=self._owner_id,
                    key_version=self._key_version,
                    blob_id=bytes.fromhex(self.blob_id),
                )
        except BaseException:
            self.abort()
            raise
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        self.size = 0

    def _storing(self) -> AbstractContextManager[None]:
        """Around writes to the blob store: out of space aborts the upload, then a 507."""
        return _out_of_space_is_507(self.blob_id, cleanup=self.abort)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        self._admit(n)
        self._hash(data)
        with self._storing():
            self._enc.write(data)
        self.size += n
        return n

    def write_from(self, src: Readable) -> int:
        """Store everything ``src`` yields until its ``readinto`` returns 0 (see the module
        docstring); returns the number of bytes read."""
        remaining = None if self._expected is None else self._expected - self.size
        buffers: list[memoryview] = []
        hash_job: Future[None] | None = None
        total = turn = 0
        try:
            while True:
                if turn == len(buffers):
                    # Two buffers, each sized for what is announced (a 4 KiB PUT needs no MiB).
                    step = self._block
                    size = step if remaining is None else min(step, max(remaining - total, 1))
                    buffers.append(memoryview(bytearray(size)))
                buf = buffers[turn]
                turn ^= 1
                n = _fill(src, buf)
                if not n:
                    break
                block = buf[:n]
                self._admit(n)
                if hash_job is not None:
                    hash_job.result()
                if _HASH_ASIDE and n >= _HASH_ASIDE_MIN:
                    # The other buffer is filled next; this one is reused only after its hashes
                    # are done (waited for above, one block later).
                    hash_job = _hash_aside(self._hash, block)
                else:
                    self._hash(block)
                with self._storing():
                    self._enc.write(block)
                self.size += n
                total += n
        finally:
            if hash_job is not None:
                wait((hash_job,))
        return total

    def _hash(self, data: bytes | bytearray | memoryview) -> None:
        self._md5.update(data)
        self._sha1.update(data)

    def writelines(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _admit(self, n: int) -> None:
        """Refuse (and abort) before storing ``n`` more bytes than the quota allows."""
        if self._allowance is not None and self.size + n > self._allowance:
            self.abort()
            raise InsufficientStorage("the upload exceeds the quota")

    def commit(self) -> Node:
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
        sealed: bytes | None = None
        if self.size == 0:
            # Empty content needs no blob (Windows and Finder create every file as an empty
            # placeholder first, then write it; that placeholder should cost nothing), nor
            # sealed hashes (those of nothing are no secret).
            self.abort()
            blob_id, stored_size = None, 0
        else:
            # Hashes of the plaintext are stored sealed, like the content: in clear, a copy of
            # the database gave small files (a PIN) away.
            sealed = self._sealer.seal(self._owner_id, self._key_version, md5=md5, sha1=sha1)
            with self._storing():
                self._enc.close()
                stored_size = self._blob.commit()
        self._closed = True
        # Points the node at the blob; a refusal there removes the blob, see Content.commit.
        stored = NewContent(
            blob_id,
            self._key_version,
            self.size,
            stored_size,
            sealed,
            self._content_type,
            self._mtime,
        )
        return self._content.commit(
            self._parent,
            self._name,
            stored,
            target=self._target,
            guard=self._guard,
            actor=self._actor,
        )

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            self._blob.abort()

    def __enter__(self) -> Upload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


def _check_free_space(blobs: BlobStore, plain_size: int) -> None:
    """Refuse up front content that cannot fit the blob store's free space, so a client does
    not send gigabytes only to hear 507 (and with ``Expect: 100-continue`` sends nothing)."""
    free = blobs.free_bytes()
    need = cipher_size(plain_size)
    if free is not None and need > free:
        logger.warning("blob store full: refused an upload of %d bytes (%d free)", need, free)
        raise InsufficientStorage(f"{plain_size} bytes do not fit in the space left on the server")


@contextmanager
def _out_of_space_is_507(blob_id: str, cleanup: Callable[[], None] | None) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        if not is_out_of_space(e):
            raise
        if cleanup is not None:
            cleanup()
        logger.warning("blob store full while storing blob %s: %s", blob_id, e)
        raise InsufficientStorage("no space left on the server to store the upload") from None
