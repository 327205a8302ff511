"""A BlobStore on the local filesystem.

Layout under the blob folder: ``<id[0:2]>/<id>`` for committed blobs (256 fan-out folders keep
directories small) and ``tmp/<random>.part`` for uploads in progress. A commit is: fsync the file,
link it into place, fsync the folder (and the blob root when the fan-out folder is new) — so a
blob that is visible is complete on disk and stays visible after a power cut. Any failure on the
way (``ENOSPC`` included) removes the temporary file before the error propagates.

Writing out early: the kernel would keep a whole upload in its cache (up to gigabytes) and write
it only when the commit's fsync asks, so a big upload would end with a long wait on the disk.
Each few MiB written are handed to the kernel for writing right away instead (Linux
``sync_file_range``), so the disk works while the body still arrives and the fsync finds little
left to do. Durability does not depend on it: the fsync at commit is what makes a blob durable.
"""

from __future__ import annotations

import ctypes
import io
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from davdisk.blobs.base import BlobInfo, BlobStore, BlobUpload, check_blob_id


def _fsync_dir(path: Path) -> None:
    """Make the entries of folder ``path`` durable (a new name survives a crash only so)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_WRITEBACK_STEP = 8 << 20  # bytes written between two requests to start writing out


def _find_sync_file_range() -> Callable[[int, int, int], object] | None:
    """``sync_file_range(fd, offset, nbytes, SYNC_FILE_RANGE_WRITE)`` from the C library:
    starts writing out a range of a file without waiting for it. None where it is missing."""
    try:
        func = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None
    func.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    func.restype = ctypes.c_int
    write_flag = 2  # SYNC_FILE_RANGE_WRITE

    def start_writeback(fd: int, offset: int, nbytes: int) -> object:
        return func(fd, offset, nbytes, write_flag)

    return start_writeback


_start_writeback = _find_sync_file_range()


class _BlobFile(io.FileIO):
    """The temp file of an upload: unbuffered (the envelope writer hands it whole MiBs), and it
    asks the kernel to start writing out every ``_WRITEBACK_STEP`` bytes (see the module
    docstring). A failure to start writeback is ignored: the fsync at commit still decides."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "xb")
        self._written = 0
        self._kicked = 0

    def write(self, data: Any) -> int:
        n: int = super().write(data)
        self._written += n
        if self._written - self._kicked >= _WRITEBACK_STEP and _start_writeback is not None:
            _start_writeback(self.fileno(), self._kicked, self._written - self._kicked)
            self._kicked = self._written
        return n


class _LocalUpload(BlobUpload):
    def __init__(self, store: LocalBlobStore, blob_id: str) -> None:
        self._store = store
        self._final = store.path_of(blob_id)
        self._tmp = store.tmp_dir / f"{secrets.token_hex(8)}.part"
        self.file = _BlobFile(self._tmp)  # closed by commit/abort
        self._done = False

    def commit(self) -> int:
        if self._done:
            raise RuntimeError("upload already finished")
        try:
            f = self.file
            f.flush()
            # ENOSPC/EDQUOT may surface only here (delayed allocation, network filesystems).
            os.fsync(f.fileno())
            size = f.tell()
            f.close()
            self._store.ensure_fanout(self._final.parent)
            # link() instead of rename(): refuses to replace an existing blob, ids are never
            # reused. Until the unlink below, a crash leaves both names: gc removes the temp one.
            os.link(self._tmp, self._final)
        except BaseException:
            self.abort()
            raise
        self._done = True
        os.unlink(self._tmp)
        _fsync_dir(self._final.parent)
        return size

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            # Closing flushes what is still buffered, which fails again on a full disk; the
            # descriptor is closed either way, and the temp file must go regardless.
            self.file.close()
        except OSError:
            pass
        finally:
            self._tmp.unlink(missing_ok=True)


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._root = str(self.root)
        self.tmp_dir = self.root / "tmp"
        if not self.tmp_dir.is_dir():
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            _fsync_dir(self.root)
            _fsync_dir(self.root.parent)

    def ensure_fanout(self, folder: Path) -> None:
        """Create a fan-out folder durably: its entry in the root must survive a crash too,
        or a committed blob inside it could vanish with it."""
        if folder.is_dir():
            return
        folder.mkdir(exist_ok=True)
        _fsync_dir(self.root)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def path_of(self, blob_id: str) -> Path:
        return Path(self._file_of(blob_id))

    def _file_of(self, blob_id: str) -> str:
        # A string path: opening a blob is on every GET, and pathlib costs more than the open.
        check_blob_id(blob_id)
        return os.path.join(self._root, blob_id[:2], blob_id)

    def upload(self, blob_id: str) -> BlobUpload:
        return _LocalUpload(self, blob_id)

    def open(
        self, blob_id: str, *, size: int | None = None, span: tuple[int, int] | None = None
    ) -> BinaryIO:
        # Unbuffered: the envelope reader reads whole segments into its own buffers.
        return open(self._file_of(blob_id), "rb", buffering=0)

    def delete(self, blob_id: str) -> bool:
        try:
            self.path_of(blob_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def exists(self, blob_id: str) -> bool:
        return self.path_of(blob_id).is_file()

    def stored_at(self, blob_id: str) -> float | None:
        try:
            return self.path_of(blob_id).stat().st_mtime
        except FileNotFoundError:
            return None

    def iter_blobs(self) -> Iterator[BlobInfo]:
        for sub in self.root.iterdir():
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for entry in os.scandir(sub):
                if entry.is_file() and len(entry.name) == 32:
                    st = entry.stat()
                    yield BlobInfo(entry.name, st.st_size, st.st_mtime)

    def remove_stale_uploads(self, min_age: float) -> tuple[int, int]:
        count = size = 0
        limit = time.time() - min_age
        for entry in os.scandir(self.tmp_dir):
            st = entry.stat()
            if st.st_mtime <= limit:
                with_size = st.st_size
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                count += 1
                size += with_size
        return count, size

    def temp_uploads(self) -> list[BlobInfo]:
        found: list[BlobInfo] = []
        if not self.tmp_dir.is_dir():
            return found
        for entry in os.scandir(self.tmp_dir):
            if not entry.is_file(follow_symlinks=False):
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue  # finished or aborted meanwhile
            found.append(BlobInfo(entry.name, st.st_size, st.st_mtime))
        return found

    def free_bytes(self) -> int | None:
        return shutil.disk_usage(self.root).free
