"""Moving an install's blobs from one store into another (``davdisk storage migrate``).

Every blob a row names is copied from the store in use into the target, byte for byte (blobs
are opaque ciphertext: no key is needed, and the target holds exactly what the source did), and
then verified: each copy is read back and its SHA-256 compared with the source's. A blob the
target already holds at its full size is not copied again, so an interrupted move resumes where
it stopped (an object store stores an object whole or not at all, and the upload that stored
it was checked by its signature; a run killed between a copy and its check leaves a complete
copy). The source is only read; the server may keep running on it, and a
second run (with the server stopped, just before switching ``[blobs] backend``) copies what it
stored meanwhile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from davdisk import blobs
from davdisk.blobs.base import BlobStore
from davdisk.config import Config
from davdisk.errors import IntegrityError, UsageError
from davdisk.files.content import Content

_CHUNK = 1 << 20


@dataclass
class Moved:
    blobs: int = 0  # blobs the database names
    copied: int = 0  # of them, copied by this run
    present: int = 0  # found already in the target (an earlier run)
    bytes_copied: int = 0
    missing: list[str] | None = None  # named by a row, absent from the source (damage)
    extra: int = 0  # objects in the target that no row names (gc --deep removes them)


def target_store(config: Config, backend: str) -> BlobStore:
    """The store ``[blobs]`` would open with ``backend`` (the rest of the settings as they are)."""
    if backend == config.get("blobs", "backend"):
        raise UsageError(f'[blobs] backend is "{backend}" already: there is nothing to move')
    moved = type(config)(config.data_dir, dict(config.values), config.source)
    moved.values[("blobs", "backend")] = backend
    store = blobs.load(moved)
    store.check()
    return store


def _digest(src: BinaryIO) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    while chunk := src.read(_CHUNK):
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest(), n


def move_blobs(
    content: Content,
    target: BlobStore,
    on_blob: Callable[[int], None] = lambda n: None,
    *,
    workers: int = 8,
) -> Moved:
    """Copy and verify every blob of ``content``'s store into ``target`` (see the module
    docstring), ``workers`` at a time (an object store answers each request after a round
    trip: one at a time would leave the link idle); ``on_blob(stored size)`` after each."""
    source = content.blobs
    sizes = content.blob_sizes()
    present = {info.id: info.size for info in target.iter_blobs()}
    done = Moved(blobs=len(sizes), missing=[])

    def move(blob_id: str) -> str:
        size = sizes[blob_id]
        try:
            if present.get(blob_id) == size:
                return "present"
            if blob_id in present:
                target.delete(blob_id)  # not as long as it should be: copy it again
            with source.open(blob_id) as src, target.upload(blob_id) as up:
                while chunk := src.read(_CHUNK):
                    up.file.write(chunk)
                up.commit()
            with source.open(blob_id) as a, target.open(blob_id, size=size) as b:
                if _digest(a) != _digest(b):
                    raise IntegrityError(f"the copy of blob {blob_id} differs from the original")
        except FileNotFoundError:
            return "missing"
        return "copied"

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="davdisk-move") as pool:
        ids = sorted(sizes)
        for blob_id, state in zip(ids, pool.map(move, ids), strict=True):
            if state == "copied":
                done.copied += 1
                done.bytes_copied += sizes[blob_id]
            elif state == "present":
                done.present += 1
            else:
                done.missing.append(blob_id)  # type: ignore[union-attr]
            on_blob(sizes[blob_id])
    done.extra = sum(1 for blob_id in present if blob_id not in sizes)
    return done
