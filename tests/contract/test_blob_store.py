"""The blob store contract (davdisk/blobs/base.py): what the files layer and ``davdisk gc``
rely on, the same for every store. A store joins by one subclass that provides the ``blobs``
fixture: the local filesystem store, and the S3 store against SeaweedFS (a real S3 server,
tests/s3.py).

Blobs are immutable and opaque; a blob becomes visible under its id only when its upload
commits, complete; an upload that is aborted, left, or removed as stale by gc leaves nothing
visible.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path

import pytest

from davdisk.blobs.base import BlobStore
from davdisk.blobs.local import LocalBlobStore
from davdisk.blobs.s3 import S3BlobStore, S3Settings
from tests.s3 import SeaweedServer


def new_id() -> str:
    return secrets.token_hex(16)


def put(blobs: BlobStore, data: bytes, blob_id: str | None = None) -> str:
    blob_id = blob_id or new_id()
    with blobs.upload(blob_id) as up:
        up.file.write(data)
        assert up.commit() == len(data)
    return blob_id


def read(blobs: BlobStore, blob_id: str) -> bytes:
    with blobs.open(blob_id) as f:
        return f.read()


def listed(blobs: BlobStore) -> dict[str, int]:
    return {info.id: info.size for info in blobs.iter_blobs()}


class BlobStoreContract:
    """Tests every blob store must pass; a subclass provides the ``blobs`` fixture (an empty
    store of its own)."""

    # Bytes an abandoned upload must hold before the store keeps anything of it: a local
    # store's temp file has every byte; an S3 upload has sent nothing before its first part.
    STALE_BYTES = 3000

    @pytest.fixture
    def blobs(self) -> BlobStore:
        raise NotImplementedError

    def test_a_committed_blob_can_be_read_back(self, blobs: BlobStore) -> None:
        data = os.urandom(100_000)
        blob_id = new_id()
        with blobs.upload(blob_id) as up:
            up.file.write(data[:1000])
            up.file.write(data[1000:])
            assert up.commit() == len(data)
        assert blobs.exists(blob_id)
        assert read(blobs, blob_id) == data
        with blobs.open(blob_id) as f:  # seekable, for ranges
            f.seek(50_000)
            assert f.read(10) == data[50_000:50_010]
            f.seek(-10, os.SEEK_END)
            assert f.read() == data[-10:]
        assert listed(blobs) == {blob_id: len(data)}

    def test_an_empty_blob(self, blobs: BlobStore) -> None:
        blob_id = put(blobs, b"")
        assert blobs.exists(blob_id) and read(blobs, blob_id) == b""
        assert listed(blobs) == {blob_id: 0}

    def test_an_upload_is_invisible_until_it_commits(self, blobs: BlobStore) -> None:
        blob_id = new_id()
        with blobs.upload(blob_id) as up:
            up.file.write(b"x" * 5000)
            assert not blobs.exists(blob_id)
            with pytest.raises(FileNotFoundError):
                blobs.open(blob_id)
            assert listed(blobs) == {}
            up.commit()
        assert blobs.exists(blob_id)

    def test_an_aborted_upload_leaves_nothing(self, blobs: BlobStore) -> None:
        blob_id = new_id()
        up = blobs.upload(blob_id)
        up.file.write(b"half of it")
        up.abort()
        up.abort()  # idempotent
        assert not blobs.exists(blob_id)
        with pytest.raises(FileNotFoundError):
            blobs.open(blob_id)
        assert listed(blobs) == {}
        assert blobs.remove_stale_uploads(0) == (0, 0)  # nothing left for gc either
        put(blobs, b"the id is free again", blob_id)
        assert read(blobs, blob_id) == b"the id is free again"

    def test_leaving_an_upload_without_commit_aborts_it(self, blobs: BlobStore) -> None:
        left, failed = new_id(), new_id()
        with blobs.upload(left) as up:
            up.file.write(b"never committed")
        with pytest.raises(RuntimeError), blobs.upload(failed) as up:
            up.file.write(b"the body broke off")
            raise RuntimeError("client went away")
        assert not blobs.exists(left) and not blobs.exists(failed)
        assert listed(blobs) == {}
        assert blobs.remove_stale_uploads(0) == (0, 0)

    def test_abort_after_commit_keeps_the_blob(self, blobs: BlobStore) -> None:
        blob_id = new_id()
        up = blobs.upload(blob_id)
        up.file.write(b"kept")
        up.commit()
        up.abort()
        assert read(blobs, blob_id) == b"kept"

    def test_a_blob_is_visible_only_complete(self, blobs: BlobStore) -> None:
        # A reader polling while a big blob commits must never find it short.
        data = os.urandom(9 << 20)  # more than the local store's write-out step
        blob_id = new_id()
        seen: list[int] = []
        done = threading.Event()

        def poll() -> None:
            while True:
                finished = done.is_set()  # before looking: the last look is after the commit
                if blobs.exists(blob_id):
                    seen.append(len(read(blobs, blob_id)))
                    return
                if finished:
                    return
                time.sleep(0.001)

        reader = threading.Thread(target=poll)
        reader.start()
        try:
            with blobs.upload(blob_id) as up:
                for i in range(0, len(data), 256 << 10):
                    up.file.write(data[i : i + (256 << 10)])
                    time.sleep(0.002)  # as a body arrives: give the reader its chances
                up.commit()
        finally:
            done.set()
            reader.join(timeout=30)
        assert seen == [len(data)]
        assert read(blobs, blob_id) == data

    def test_a_blob_is_never_replaced(self, blobs: BlobStore) -> None:
        blob_id = put(blobs, b"first")
        with pytest.raises(FileExistsError), blobs.upload(blob_id) as up:
            up.file.write(b"second")
            up.commit()
        assert read(blobs, blob_id) == b"first"
        assert blobs.remove_stale_uploads(0) == (0, 0)

    def test_uploads_of_several_blobs_interleave(self, blobs: BlobStore) -> None:
        ids = [new_id() for _ in range(3)]
        ups = [blobs.upload(i) for i in ids]
        for round_ in range(3):
            for n, up in enumerate(ups):
                up.file.write(bytes([n]) * (round_ + 1) * 100)
        ups[1].abort()
        ups[0].commit()
        ups[2].commit()
        assert listed(blobs) == {ids[0]: 600, ids[2]: 600}
        assert read(blobs, ids[2]) == b"\x02" * 600

    def test_delete(self, blobs: BlobStore) -> None:
        gone, kept = put(blobs, b"gone"), put(blobs, b"kept")
        assert blobs.delete(gone) is True
        assert not blobs.exists(gone)
        with pytest.raises(FileNotFoundError):
            blobs.open(gone)
        assert blobs.delete(gone) is False
        assert blobs.delete(new_id()) is False  # never there
        assert listed(blobs) == {kept: 4}

    def test_delete_many(self, blobs: BlobStore) -> None:
        a, b, c = (put(blobs, bytes([n]) * 10) for n in range(3))
        removed = blobs.delete_many([a, b, new_id()])
        assert removed in (2, 3)  # a store may count what it was asked to delete
        assert listed(blobs) == {c: 10}
        assert blobs.delete_many([]) == 0

    def test_stored_at(self, blobs: BlobStore) -> None:
        before = time.time()
        blob_id = put(blobs, b"when")
        stored = blobs.stored_at(blob_id)
        assert stored is not None and before - 5 <= stored <= time.time() + 5
        assert blobs.stored_at(new_id()) is None

    def test_reads_seek_and_honour_a_span(self, blobs: BlobStore) -> None:
        data = os.urandom(300_000)
        blob_id = put(blobs, data)
        with blobs.open(blob_id, size=len(data), span=(100_000, 200_000)) as f:
            assert f.read(96) == data[:96]
            f.seek(100_000)
            assert f.read(100_000) == data[100_000:200_000]
            f.seek(250_000)  # outside the span: still read right
            assert f.read() == data[250_000:]
            assert f.seek(0, os.SEEK_END) == len(data)
            f.seek(5)
            assert f.read(10) == data[5:15]

    def test_iter_blobs_lists_every_committed_blob(self, blobs: BlobStore) -> None:
        before = time.time()
        made = {put(blobs, os.urandom(n)): n for n in (1, 10, 1000, 4096)}
        infos = list(blobs.iter_blobs())
        assert {i.id: i.size for i in infos} == made
        assert len(infos) == len(made)
        # The age gc compares against (with a little slack for coarse clocks).
        assert all(before - 5 <= i.mtime <= time.time() + 5 for i in infos)

    def test_stale_uploads_are_removed_by_age(self, blobs: BlobStore) -> None:
        committed = put(blobs, b"committed")
        blob_id = new_id()
        up = blobs.upload(blob_id)
        up.file.write(b"y" * self.STALE_BYTES)
        up.file.flush()
        assert blobs.remove_stale_uploads(3600) == (0, 0)  # too young
        assert len(blobs.temp_uploads()) == 1
        count, size = blobs.remove_stale_uploads(0)
        assert count == 1 and 0 < size <= self.STALE_BYTES
        assert blobs.temp_uploads() == []
        # An upload gc took away cannot commit into a blob.
        with pytest.raises(OSError):
            up.commit()
        up.abort()
        assert not blobs.exists(blob_id)
        assert listed(blobs) == {committed: 9}
        assert blobs.remove_stale_uploads(0) == (0, 0)

    def test_free_bytes(self, blobs: BlobStore) -> None:
        free = blobs.free_bytes()
        assert free is None or (isinstance(free, int) and free > 0)

    @pytest.mark.parametrize("bad", ["", "../" + "0" * 29, "A" * 32, "0" * 31, "0" * 33, "g" * 32])
    def test_ids_other_than_32_lowercase_hex_digits_are_refused(
        self, blobs: BlobStore, bad: str
    ) -> None:
        for call in (blobs.upload, blobs.open, blobs.exists, blobs.delete):
            with pytest.raises(ValueError):
                call(bad)
        assert listed(blobs) == {}


class TestLocalBlobStore(BlobStoreContract):
    @pytest.fixture
    def blobs(self, tmp_path: Path) -> BlobStore:
        return LocalBlobStore(tmp_path / "blobs")


class _S3Contract(BlobStoreContract):
    STALE_BYTES = (5 << 20) + 1  # one part of 5 MiB sent, the rest buffered

    @staticmethod
    def store(endpoint: str, key: str, secret: str, bucket: str) -> S3BlobStore:
        settings = S3Settings(
            bucket=bucket,
            endpoint_url=endpoint,
            prefix="blobs/",
            access_key_id=key,
            secret_access_key=secret,
            part_size=5 << 20,
        )
        return S3BlobStore(settings)


class TestS3BlobStoreOnSeaweedFS(_S3Contract):
    @pytest.fixture
    def blobs(self, seaweed: SeaweedServer) -> BlobStore:
        return self.store(
            seaweed.endpoint, seaweed.access_key, seaweed.secret_key, seaweed.create_bucket()
        )
