"""Content streaming in and out: :class:`Upload` (hash, check, encrypt, store, commit) and
:class:`VerifiedReader` (decrypt, verify, log failures).

A full disk is an answer, not a crash: an upload that cannot fit the blob store's free space is
refused before its body is read, and one that meets ``ENOSPC``/``EDQUOT`` part way (another
upload took the room, the fsync found it late) is aborted — temp file removed, a warning logged —
and reported as :class:`InsufficientStorage` (507). Either way the old content stays.
"""

from __future__ import annotations

import hashlib
import io
import logging
import mimetypes
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from davdisk.blobs.base import is_out_of_space
from davdisk.crypto.envelope import EnvelopeReader, EnvelopeWriter, cipher_size
from davdisk.errors import (
    ChecksumMismatch,
    DavdiskError,
    IncompleteBody,
    InsufficientStorage,
    IntegrityError,
)
from davdisk.files.access import Actor
from davdisk.meta.store import Entry

if TYPE_CHECKING:
    from davdisk.files.api import Files

logger = logging.getLogger(__name__)


def guess_type(name: str, sent: str | None) -> str:
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
        target: Entry | None = None,
        content_type: str | None,
        expected_size: int | None,
        size_hint: int | None = None,
        mtime: float | None,
        checksums: dict[str, str] | None = None,
        allowance: int | None = None,
    ) -> None:
        """``target``: the file to give new content (else ``parent/name`` is created or
        replaced); ``allowance``: bytes the owner's quota still allows (None = no limit),
        checked against ``expected_size`` or ``size_hint`` now and against the body as it
        streams, so an upload that cannot fit stops early and stores nothing."""
        need = expected_size if expected_size is not None else size_hint
        if allowance is not None and need is not None and need > allowance:
            raise InsufficientStorage(f"{need} bytes do not fit in the {allowance} left")
        if need is not None:
            _check_free_space(files, need)
        self._files = files
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
        self._key_version, key = files.keyring.current(self._owner_id)
        self._closed = False
        with _out_of_space_is_507(self.blob_id, cleanup=None):  # no room even for a temp file
            self._blob = files.blobs.upload(self.blob_id)
        try:
            with self._storing():
                self._enc = EnvelopeWriter(
                    self._blob.file,
                    user_key=key,
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

    def write(self, data: bytes) -> int:
        if self._allowance is not None and self.size + len(data) > self._allowance:
            self.abort()
            raise InsufficientStorage("the upload exceeds the quota")
        self._md5.update(data)
        self._sha1.update(data)
        with self._storing():
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
            blob_id, stored_size = None, 0
        else:
            with self._storing():
                self._enc.close()
                stored_size = self._blob.commit()
        self._closed = True
        try:
            entry, dead = self._files._commit_content(
                self._parent,
                self._name,
                target=self._target,
                blob_id=blob_id,
                key_version=self._key_version,
                size=self.size,
                cipher_size=stored_size,
                md5=md5,
                sha1=sha1,
                content_type=self._content_type,
                mtime=self._mtime,
            )
        except DavdiskError:
            # Refused inside the transaction (or at a COMMIT that failed, e.g. a full database):
            # the node was not pointed at the new blob, so it is garbage right away.
            if blob_id is not None:
                self._files.blobs.delete(blob_id)
            raise
        except BaseException:
            # Anything else (a lost database connection) may have hit after the COMMIT went
            # through: deleting the blob could lose the new content. gc removes it if unused.
            if blob_id is not None:
                logger.warning("upload of blob %s ended in doubt; davdisk gc will check", blob_id)
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


def _check_free_space(files: Files, plain_size: int) -> None:
    """Refuse up front content that cannot fit the blob store's free space, so a client does
    not send gigabytes only to hear 507 (and with ``Expect: 100-continue`` sends nothing)."""
    free = files.blobs.free_bytes()
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
