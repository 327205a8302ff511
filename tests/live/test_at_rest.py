"""Encryption at rest: plaintext never reaches the disk, and tampering is detected on read."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import requests

from tests.live.conftest import (
    ALICE,
    Server,
    ServerFactory,
    all_files,
    blob_files,
    get_bytes,
    put,
    stored_bytes,
)

SEG = 64 * 1024


def assert_marker_absent(data_dir: Path, markers: list[bytes]) -> int:
    files = all_files(data_dir)
    assert files, f"nothing stored under {data_dir}"
    for path in files:
        data = path.read_bytes()
        for m in markers:
            assert m not in data, f"plaintext marker {m[:20]!r}... found in {path}"
    # The database too, wherever it is (on PostgreSQL it is not in the data dir).
    database = stored_bytes(data_dir)
    for m in markers:
        assert m not in database, f"plaintext marker {m[:20]!r}... found in the database"
    return len(files)


def test_plaintext_never_on_disk(server_factory: ServerFactory) -> None:
    srv = server_factory()
    s = srv.session(ALICE)
    marker = ("DAVDISK-PLAINTEXT-MARKER-" + uuid.uuid4().hex).encode()
    # several sizes: tiny, segment-crossing, and a chunked upload
    small = marker
    multi = (marker + b"|") * (3 * SEG // len(marker) + 7)
    put(s, srv.dav + "small.txt", small)
    assert s.request("MKCOL", srv.dav + "dir/").status_code == 201
    put(s, srv.dav + "dir/multi.txt", multi)
    put(s, srv.dav + "dir/chunked.txt", (multi[i : i + 10000] for i in range(0, len(multi), 10000)))
    put(s, srv.dav + "small.txt", small + b" v2")  # overwrite leaves an old blob behind too
    assert get_bytes(s, srv.dav + "dir/chunked.txt") == multi
    assert get_bytes(s, srv.dav + "small.txt") == small + b" v2"

    # while running (DB, WAL, blobs, temp files) and after a clean stop
    markers = [marker, marker[-24:]]
    n = assert_marker_absent(srv.data_dir, markers)
    print(f"scanned {n} files while running")
    srv.stop()
    assert_marker_absent(srv.data_dir, markers)
    assert blob_files(srv.data_dir), "no blob files under blobs/"


def fetch(s: requests.Session, url: str) -> tuple[int, bytes, str | None]:
    """GET, reading as much body as the server sends; (status, body, error-or-None)."""
    try:
        r = s.get(url, stream=True, timeout=30)
    except requests.ConnectionError as exc:
        return -1, b"", f"connection error before response: {exc}"
    body = bytearray()
    err = None
    try:
        for chunk in r.raw.stream(65536, decode_content=False):
            body += chunk
    except Exception as exc:
        err = f"{type(exc).__name__}: {exc}"
    finally:
        r.close()
    declared = r.headers.get("Content-Length")
    if err is None and declared is not None and int(declared) != len(body):
        err = f"short body: {len(body)} of {declared}"
    return r.status_code, bytes(body), err


def assert_not_served(
    status: int, body: bytes, err: str | None, original: bytes, what: str
) -> None:
    if status >= 400 or status == -1:
        return  # an error status is the expected answer
    assert status == 200, f"{what}: unexpected status {status}"
    # a 200 whose body is cut short is acceptable (the server noticed mid-stream) as long as
    # every byte delivered is genuine and the client can tell the body is incomplete
    assert body != original, f"{what}: tampered blob served in full as 200"
    assert original.startswith(body), f"{what}: server returned altered bytes"
    assert err is not None or len(body) < len(original), f"{what}: no sign of truncation"


def test_tampered_blob_is_never_served(server_factory: ServerFactory) -> None:
    srv: Server = server_factory()
    s = srv.session(ALICE)
    url = srv.dav + "victim.bin"
    plain = os.urandom(3 * SEG + 12345)  # three full segments and a short last one
    before = set(blob_files(srv.data_dir))
    put(s, url, plain)
    new = [p for p in blob_files(srv.data_dir) if p not in before]
    assert len(new) == 1, f"expected exactly one new blob file, got {new}"
    blob = new[0]
    stored = blob.read_bytes()
    assert len(stored) > len(plain), "blob is not larger than the plaintext"
    assert get_bytes(s, url) == plain

    n = len(stored)
    positions = {
        "magic": 0,
        "version": 6,
        "aead id": 7,
        "segment size": 8,
        "key version": 15,
        "salt": 20,
        "blob id": 50,
        "header mac": 70,
        "first segment start": 96,
        "first segment middle": 96 + SEG // 2,
        "first segment tag": 96 + SEG + 15,
        "second segment": 96 + (SEG + 16) + 1000,
        "last segment first byte": 96 + 3 * (SEG + 16),
        "last ciphertext byte": n - 17,
        "last byte": n - 1,
    }
    failures = []
    for label, pos in positions.items():
        assert 0 <= pos < n, (label, pos, n)
        tampered = bytearray(stored)
        tampered[pos] ^= 0x01
        blob.write_bytes(tampered)
        try:
            status, body, err = fetch(s, url)
            try:
                assert_not_served(status, body, err, plain, f"flip byte {pos} ({label})")
            except AssertionError as exc:
                failures.append(str(exc))
            print(f"flip {label:25s} @ {pos:6d}: status {status}, {len(body)} bytes, {err}")
        finally:
            blob.write_bytes(stored)
        assert get_bytes(s, url) == plain, f"after restoring byte {pos} the file reads wrong"

    # truncation: drop the final segment (a segment boundary) and drop the last byte
    for label, size in (
        ("drop last segment", 96 + 3 * (SEG + 16)),
        ("drop last byte", n - 1),
        ("header only", 96),
        ("empty", 0),
    ):
        blob.write_bytes(stored[:size])
        try:
            status, body, err = fetch(s, url)
            try:
                assert_not_served(status, body, err, plain, f"truncate to {size} ({label})")
            except AssertionError as exc:
                failures.append(str(exc))
            print(f"truncate {label:21s} to {size:6d}: status {status}, {len(body)} bytes, {err}")
        finally:
            blob.write_bytes(stored)
    assert get_bytes(s, url) == plain
    if failures:
        pytest.fail("\n".join(failures))
