"""What the S3 store does beyond the blob store contract, against SeaweedFS (tests/s3.py):
the requests it makes (one ranged GET for a Range, no checksum headers), its bounded memory for
part buffers, and its part sizes."""

from __future__ import annotations

import os
import secrets
import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from davdisk.blobs.s3 import PartBudget, S3BlobStore, S3Settings, part_size_for
from davdisk.crypto.envelope import HEADER_SIZE
from tests.s3 import SeaweedServer


@pytest.fixture
def store(seaweed: SeaweedServer) -> Iterator[S3BlobStore]:
    settings = S3Settings(
        bucket=seaweed.create_bucket(),
        endpoint_url=seaweed.endpoint,
        prefix="p/",
        access_key_id=seaweed.access_key,
        secret_access_key=seaweed.secret_key,
        part_size=5 << 20,
        memory=12 << 20,
    )
    yield S3BlobStore(settings)


class Requests:
    """The S3 operations a client sends, with their headers (botocore's event hooks)."""

    def __init__(self, store: S3BlobStore) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []
        store.client.meta.events.register("before-send.s3.*", self._record)

    def _record(self, request: Any, **kwargs: Any) -> None:
        op = kwargs.get("event_name", "").rsplit(".", 1)[-1]
        headers = {
            k.lower(): v.decode() if isinstance(v, bytes) else str(v)
            for k, v in request.headers.items()
        }
        self.sent.append((op, headers))

    def ops(self, name: str) -> list[dict[str, str]]:
        return [h for op, h in self.sent if op == name]


def _put(store: S3BlobStore, data: bytes) -> str:
    blob_id = secrets.token_hex(16)
    with store.upload(blob_id) as up:
        for i in range(0, len(data), 1 << 20):
            up.file.write(data[i : i + (1 << 20)])
        up.commit()
    return blob_id


def test_a_span_is_one_ranged_get_once_the_header_is_known(store: S3BlobStore) -> None:
    data = os.urandom(5 << 20)
    blob_id = _put(store, data)
    seen = Requests(store)
    start, end = 3_000_000, 3_200_000

    def read_span() -> None:
        with store.open(blob_id, size=len(data), span=(start, end)) as f:
            assert f.read(HEADER_SIZE) == data[:HEADER_SIZE]
            f.seek(start)
            assert f.read(end - start) == data[start:end]

    read_span()
    # The header first (not cached yet, and the span is far from it), then exactly the span.
    ranges = [g["range"] for g in seen.ops("GetObject")]
    assert ranges == [f"bytes=0-{HEADER_SIZE - 1}", f"bytes={start}-{end - 1}"]
    seen.sent.clear()
    read_span()
    assert [g["range"] for g in seen.ops("GetObject")] == [f"bytes={start}-{end - 1}"]
    assert seen.ops("HeadObject") == []  # the size came from the caller


def test_a_span_near_the_start_comes_with_the_header(store: S3BlobStore) -> None:
    data = os.urandom(3 << 20)
    blob_id = _put(store, data)
    seen = Requests(store)
    start, end = 500_000, 600_000
    with store.open(blob_id, size=len(data), span=(start, end)) as f:
        assert f.read(HEADER_SIZE) == data[:HEADER_SIZE]
        f.seek(start)
        assert f.read(end - start) == data[start:end]
    assert [g["range"] for g in seen.ops("GetObject")] == [f"bytes=0-{end - 1}"]


def test_a_whole_small_blob_is_one_get(store: S3BlobStore) -> None:
    data = os.urandom(200_000)
    blob_id = _put(store, data)
    seen = Requests(store)
    with store.open(blob_id, size=len(data)) as f:
        assert f.read() == data
    assert len(seen.ops("GetObject")) == 1


def test_uploads_send_no_checksums_and_small_ones_one_put(store: S3BlobStore) -> None:
    # boto3 >= 1.36 adds CRC32 checksums to every upload unless told "when_required", and
    # many S3-compatible servers refuse them.
    seen = Requests(store)
    _put(store, os.urandom(100_000))
    _put(store, os.urandom(11 << 20))
    assert len(seen.ops("PutObject")) == 1
    assert len(seen.ops("UploadPart")) == 3  # 5 + 5 + 1 MiB
    assert len(seen.ops("CompleteMultipartUpload")) == 1
    for _op, headers in seen.sent:
        assert not any(k.startswith("x-amz-checksum") for k in headers), headers
        assert "x-amz-sdk-checksum-algorithm" not in headers


def test_concurrent_uploads_stay_within_the_memory_budget(store: S3BlobStore) -> None:
    datas = [os.urandom(12 << 20) for _ in range(6)]
    ids: list[str] = [""] * len(datas)
    errors: list[BaseException] = []

    def upload(n: int) -> None:
        try:
            ids[n] = _put(store, datas[n])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(len(datas))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert store.budget.peak <= 12 << 20  # two parts of 5 MiB at a time, never three
    assert store.budget.used == 0
    for blob_id, data in zip(ids, datas, strict=True):
        with store.open(blob_id) as f:
            assert f.read() == data


def test_an_upload_holds_its_part_in_memory_once(store: S3BlobStore) -> None:
    # The budget counts a part once, so it must be in memory once: 32 uploads of 100 MiB took
    # 660 MiB of RSS under a 128 MiB budget when each part was copied to bytes for boto3 and
    # botocore joined that bytes body to the request head (a third copy) before sending it.
    part = store.settings.part_size
    chunk = os.urandom(1 << 20)
    blob_id = secrets.token_hex(16)
    tracemalloc.start()
    try:
        with store.upload(blob_id) as up:
            for _ in range(12):  # two full parts of 5 MiB, then 2 MiB
                up.file.write(chunk)
            up.commit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < part * 1.5, f"{peak / (1 << 20):.1f} MiB held for parts of 5 MiB"
    with store.open(blob_id) as f:
        assert f.read() == chunk * 12


def test_part_sizes_double_each_thousand_parts() -> None:
    base = 8 << 20
    assert [part_size_for(n, base) for n in (1, 1000, 1001, 2001)] == [
        base,
        base,
        2 * base,
        4 * base,
    ]
    total = sum(part_size_for(n, base) for n in range(1, 10_001))
    assert total > 5 << 40  # S3's largest object fits in 10 000 parts
    assert max(part_size_for(n, base) for n in range(1, 10_001)) <= 5 << 30


def test_a_budget_grants_a_request_bigger_than_itself_when_alone() -> None:
    budget = PartBudget(10)
    budget.acquire(25)
    got = threading.Event()

    def second() -> None:
        budget.acquire(1)
        got.set()

    t = threading.Thread(target=second)
    t.start()
    assert not got.wait(0.2)  # waits while the big one holds everything
    budget.release(25)
    assert got.wait(5)
    t.join()


def test_settings_never_show_the_secret(store: S3BlobStore) -> None:
    assert store.settings.secret_access_key not in repr(store.settings)
    assert store.settings.secret_access_key not in repr(store)
