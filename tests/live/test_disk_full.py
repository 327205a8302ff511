"""A full disk is answered 507 Insufficient Storage, and nothing is lost or left behind.

The blob folder (or, in the last test, the database) lives on a small tmpfs mounted for the
test, so the disk really runs out: uploads bigger than the free space (refused up front when
the length is known, cut off part way when chunked), an upload overtaken by another writer
filling the disk, and database writes on a full disk. Each must answer 507, keep the file's
old content, leave no temporary file, log a warning rather than a traceback, and leave the
server working once there is room again. Needs root (mount); fails, not skips, without it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.live.conftest import (
    ALICE,
    USERS,
    RawConnection,
    Server,
    ServerFactory,
    cli,
    describe,
    get_bytes,
    members,
    put,
    wait_until,
)
from tests.live.integrity import assert_no_traceback, gc_then_fsck

MIB = 1 << 20
TMPFS_SIZE = 8 * MIB


@contextlib.contextmanager
def small_tmpfs(where: Path, size: int) -> Iterator[Path]:
    where.mkdir()
    if os.geteuid() != 0:
        pytest.fail("the disk-full tests mount a tmpfs and must run as root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the disk-full tests: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        # lazy: if a failed test left a server running on it, it goes once that server exits
        subprocess.run(["umount", "-l", str(where)], check=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "small-disk", TMPFS_SIZE) as mnt:
        yield mnt


def write_config(path: Path, **storage: str) -> Path:
    lines = ["[storage]"] + [f'{k} = "{v}"' for k, v in storage.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def fill_up(path: Path) -> int:
    """Write ``path`` until the filesystem is full; returns the bytes it took."""
    written = 0
    block = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                n = f.write(block)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                return written
            written += n or 0


def chunked(data: bytes, piece: int = 256 * 1024) -> Iterator[bytes]:
    """A generator body: requests sends it with Transfer-Encoding: chunked."""
    for off in range(0, len(data), piece):
        yield data[off : off + piece]


def leftovers(blob_root: Path) -> list[Path]:
    tmp = blob_root / "tmp"
    return sorted(tmp.iterdir()) if tmp.exists() else []


def stored_blobs(blob_root: Path) -> list[Path]:
    return sorted(p for p in blob_root.glob("??/*") if p.is_file())


def assert_intact(srv: Server, s: requests.Session, old: bytes, blob_root: Path) -> None:
    assert get_bytes(s, srv.dav + "doc.bin") == old, "the old content was damaged"
    assert set(members(s, srv.dav)) == {"doc.bin"}, "a refused upload left a name behind"
    assert leftovers(blob_root) == [], "a refused upload left a temp file"
    assert len(stored_blobs(blob_root)) == 1, stored_blobs(blob_root)


def test_uploads_larger_than_the_free_space(
    server_factory: ServerFactory, tmpfs: Path, tmp_path: Path
) -> None:
    blob_root = tmpfs / "blobs"
    cfg = write_config(tmp_path / "davdisk.toml", blob_dir=str(blob_root))
    srv = server_factory(users={ALICE: USERS[ALICE]}, config=cfg)
    s = srv.session(ALICE)
    old = os.urandom(MIB + 17)
    put(s, srv.dav + "doc.bin", old, expect=(201,))
    big = os.urandom(12 * MIB)  # more than the whole tmpfs

    # known length: refused before the body is stored
    r = s.put(srv.dav + "doc.bin", data=big)
    assert r.status_code == 507, (r.status_code, r.text[:300])
    assert_intact(srv, s, old, blob_root)

    # chunked: the disk runs out part way
    for name in ("doc.bin", "new.bin"):
        r = s.put(srv.dav + name, data=chunked(big))
        assert r.status_code == 507, (name, r.status_code, r.text[:300])
        assert_intact(srv, s, old, blob_root)

    # the server keeps working: what fits is stored
    smaller = os.urandom(3 * MIB)
    put(s, srv.dav + "doc.bin", smaller, expect=(204,))
    assert get_bytes(s, srv.dav + "doc.bin") == smaller
    put(s, srv.dav + "doc.bin", old, expect=(204,))

    log = srv.log()
    assert "WARNING davdisk.files.upload: blob store full" in log, log
    srv.stop()
    assert_no_traceback(srv)
    gc_then_fsck(srv.data_dir, "--config", str(cfg))


def test_disk_fills_up_during_an_upload(
    server_factory: ServerFactory, tmpfs: Path, tmp_path: Path
) -> None:
    """A PUT whose length fit when it started meets ENOSPC when another writer takes the room
    meanwhile: 507, the old content stays and the temp file goes."""
    blob_root = tmpfs / "blobs"
    cfg = write_config(tmp_path / "davdisk.toml", blob_dir=str(blob_root))
    srv = server_factory(users={ALICE: USERS[ALICE]}, config=cfg)
    s = srv.session(ALICE)
    old = os.urandom(MIB)
    put(s, srv.dav + "doc.bin", old, expect=(201,))

    size = 4 * MIB
    body = os.urandom(size)
    conn = RawConnection(srv)
    conn.send_head(
        "PUT",
        "/dav/doc.bin",
        {"Authorization": srv.auth_header(ALICE), "Content-Length": str(size)},
    )
    conn.send(body[:MIB])
    wait_until(
        lambda: any(p.stat().st_size >= MIB // 2 for p in leftovers(blob_root)),
        30,
        "the upload to reach its temp file",
    )
    ballast = tmpfs / "ballast"
    print(f"ballast: {fill_up(ballast)} bytes")
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        conn.send(body[MIB:])
    answer = conn.sock.recv(4096)
    conn.abort()
    assert answer.startswith(b"HTTP/1.1 507 "), answer[:200]

    ballast.unlink()
    assert_intact(srv, s, old, blob_root)
    assert "WARNING davdisk.files.upload: blob store full while storing blob" in srv.log()
    put(s, srv.dav + "doc.bin", body, expect=(204,))
    assert get_bytes(s, srv.dav + "doc.bin") == body
    srv.stop()
    assert_no_traceback(srv)


def test_database_disk_full(server_factory: ServerFactory, tmpfs: Path, tmp_path: Path) -> None:
    """The database on a full disk: writes answer 507 (not 500), the blobs of refused uploads
    are removed, reads go on, and writes work again once there is room."""
    db = tmpfs / "davdisk.db"
    cfg = write_config(tmp_path / "davdisk.toml", database_url=f"sqlite:///{db}")
    data_dir = tmp_path / "data"
    add = cli(
        data_dir, "--config", str(cfg), "user", "add", ALICE, "--password-stdin",
        input=USERS[ALICE] + "\n",
    )  # fmt: skip
    assert add.returncode == 0, describe(add)
    srv = server_factory(data_dir=data_dir, config=cfg)
    blob_root = data_dir / "blobs"
    s = srv.session(ALICE)
    old = os.urandom(200_000)
    put(s, srv.dav + "doc.bin", old, expect=(201,))

    ballast = tmpfs / "ballast"
    print(f"ballast: {fill_up(ballast)} bytes")
    statuses = []
    for i in range(50):  # the first writes may still fit in pages SQLite already has
        statuses.append(s.put(srv.dav + f"new-{i}.bin", data=os.urandom(50_000)).status_code)
        if statuses[-1] == 507:
            break
    assert set(statuses) <= {201, 507} and statuses[-1] == 507, statuses
    stored = set(members(s, srv.dav))
    assert stored == {"doc.bin"} | {f"new-{i}.bin" for i in range(len(statuses) - 1)}, stored
    r = s.put(srv.dav + "doc.bin", data=os.urandom(300_000))
    assert r.status_code == 507, r.status_code
    r = s.request("MKCOL", srv.dav + "folder/")
    assert r.status_code == 507, r.status_code
    assert get_bytes(s, srv.dav + "doc.bin") == old
    # no blob outlives its refused upload: one per stored file
    assert len(stored_blobs(blob_root)) == len(stored), stored_blobs(blob_root)
    assert leftovers(blob_root) == []

    ballast.unlink()
    put(s, srv.dav + "doc.bin", b"room again", expect=(204,))
    assert get_bytes(s, srv.dav + "doc.bin") == b"room again"
    assert "WARNING davdisk.meta.db: database disk full" in srv.log()
    srv.stop()
    assert_no_traceback(srv)
    gc_then_fsck(data_dir, "--config", str(cfg))
