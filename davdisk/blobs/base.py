"""BlobStore: where encrypted blobs live.

A blob store keeps opaque ciphertext under random ids and knows nothing of users, paths or keys.
Writes go to a temporary object that becomes visible under its id only by :meth:`BlobUpload.commit`,
after its bytes are durable; an upload that is aborted or cut by a crash leaves at most a temporary
object, which :meth:`BlobStore.remove_stale_uploads` (``davdisk gc``) removes.

A store that runs out of room raises ``OSError`` with ``ENOSPC`` or ``EDQUOT`` (see
:func:`is_out_of_space`) from writes to :attr:`BlobUpload.file` or from :meth:`BlobUpload.commit`;
the caller aborts the upload and reports the store as full.
"""

from __future__ import annotations

import errno
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO

_OUT_OF_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_HEX = frozenset("0123456789abcdef")


def check_blob_id(blob_id: str) -> str:
    """``blob_id`` if it is 32 lowercase hex digits (what every store names a blob by), else
    ValueError: an id is part of a path or an object key."""
    if len(blob_id) != 32 or not _HEX.issuperset(blob_id):
        raise ValueError("blob ids are 32 lowercase hex digits")
    return blob_id


def is_out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` says the storage is full (no space left, or a disk quota reached)."""
    return isinstance(exc, OSError) and exc.errno in _OUT_OF_SPACE


@dataclass(frozen=True)
class BlobInfo:
    id: str
    size: int
    mtime: float


class BlobUpload(ABC):
    """A blob being written. Use as a context manager: leaving it without commit() aborts."""

    file: BinaryIO

    @abstractmethod
    def commit(self) -> int:
        """Make the bytes durable, then visible under the blob id; return the stored size.
        If it fails, the upload is aborted (nothing of it stays but what gc removes)."""

    @abstractmethod
    def abort(self) -> None:
        """Discard the upload (idempotent; a no-op after commit)."""

    def __enter__(self) -> BlobUpload:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()


class BlobStore(ABC):
    """Opaque, immutable blobs under hex ids."""

    #: Whether uploads in progress must be recorded in the database (files/content.py) for gc to
    #: find what a crash left: a local store's temp folder is its own record; a bucket is not.
    tracks_uploads: bool = False
    #: Whether :meth:`iter_blobs` is cheap enough for every gc run (a local folder), or only for
    #: ``gc --deep`` (a bucket of millions of objects, listed a thousand per request).
    listing_is_cheap: bool = True
    #: Seconds a blob no node uses must stay readable before it is deleted. A local file stays
    #: readable to whoever opened it after it is unlinked (0: delete at once); an object is gone
    #: for every reader, so a download that began before an overwrite needs it kept a while.
    delete_delay: float = 0.0
    #: Bytes an upload reads, encrypts and writes per step: big for a file (fewer system calls),
    #: small for a store that buffers parts itself (each upload's steps cost memory, and dozens
    #: run at once).
    write_block: int = 1 << 20

    def check(self) -> None:  # noqa: B027 (a store that needs no check keeps this one)
        """Raise :class:`~davdisk.errors.BlobStoreUnavailable` unless the store can be used."""

    @abstractmethod
    def upload(self, blob_id: str) -> BlobUpload:
        """Start writing blob ``blob_id``; it must not exist yet."""

    @abstractmethod
    def open(
        self, blob_id: str, *, size: int | None = None, span: tuple[int, int] | None = None
    ) -> BinaryIO:
        """Open a stored blob for reading; seekable. Raises FileNotFoundError if absent (here or,
        for a store that opens lazily, at the first read).

        ``size``: the blob's stored size, if the caller knows it (saves a store a request);
        ``span``: the byte range [start, end) the caller will read after the header, if it
        knows (a store that fetches ranges then fetches exactly that)."""

    @abstractmethod
    def delete(self, blob_id: str) -> bool:
        """Remove a blob; return False if it was not there."""

    def delete_many(self, blob_ids: Iterable[str]) -> int:
        """Remove these blobs (absent ones are skipped); return how many were removed, or for a
        store that cannot tell cheaply, how many were asked for."""
        return sum(1 for blob_id in blob_ids if self.delete(blob_id))

    @abstractmethod
    def exists(self, blob_id: str) -> bool: ...

    @abstractmethod
    def stored_at(self, blob_id: str) -> float | None:
        """When the blob was stored (unix time), or None if it is not there."""

    @abstractmethod
    def iter_blobs(self) -> Iterator[BlobInfo]:
        """Every committed blob (order unspecified)."""

    @abstractmethod
    def remove_stale_uploads(self, min_age: float) -> tuple[int, int]:
        """Remove temporary objects older than ``min_age`` seconds; return (count, bytes)."""

    @abstractmethod
    def temp_uploads(self) -> list[BlobInfo]:
        """Uploads in progress or abandoned (for fsck's report)."""

    def uploads_in_progress(self) -> set[str]:
        """Ids of blobs whose upload is under way (gc leaves their pending records alone)."""
        return set()

    @abstractmethod
    def free_bytes(self) -> int | None:
        """Free space for new blobs, or None if unknown."""
