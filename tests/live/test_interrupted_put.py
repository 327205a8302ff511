"""A PUT whose client disconnects mid-body changes nothing: old content stays, no partial
file appears, and ``davdisk gc`` clears the temp files it left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.live.conftest import (
    ALICE,
    RawConnection,
    Server,
    ServerFactory,
    blob_files,
    cli,
    describe,
    get_bytes,
    members,
    put,
    temp_files,
    wait_until,
)

SEG = 64 * 1024
V1 = os.urandom(5 * SEG + 321)
V2_SIZE = 2 * 1024 * 1024


def blob_fds(srv: Server) -> list[str]:
    root = str(srv.data_dir.resolve() / "blobs")
    return [t for t in srv.open_fds() if t.startswith(root)]


def interrupted_put(srv: Server, path: str, mode: str) -> None:
    """Start a PUT of V2_SIZE bytes, send about half, then drop the connection.

    Waits (bounded) until the server has the upload's file open, so the cut really happens
    mid-write, then until the server has let go of it again after the disconnect."""
    conn = RawConnection(srv)
    body = os.urandom(V2_SIZE)
    half = V2_SIZE // 2
    headers = {"Authorization": srv.auth_header(ALICE), "Content-Type": "application/octet-stream"}
    if mode == "length":
        conn.send_head("PUT", path, {**headers, "Content-Length": str(V2_SIZE)})
        conn.send(body[:half])
    else:
        conn.send_head("PUT", path, {**headers, "Transfer-Encoding": "chunked"})
        for off in range(0, half, SEG):
            conn.send(b"%x\r\n" % SEG + body[off : off + SEG] + b"\r\n")
        if mode == "chunked-mid-chunk":
            conn.send(b"%x\r\n" % SEG + body[half : half + SEG // 3])
        else:
            assert mode == "chunked-no-last-chunk"
    # the server is writing this upload somewhere under blobs/ (a temp file) by now
    opened = wait_until(
        lambda: blob_fds(srv), 10, "the server to open the upload's temp file", interval=0.02
    )
    print(f"server holds open during upload: {opened}")
    conn.abort()
    wait_until(
        lambda: not blob_fds(srv),
        30,
        "the server to close the upload's temp file after the client disconnected",
    )


def assert_v1_intact(srv: Server, names_before: set[str]) -> None:
    s = srv.session(ALICE)
    assert get_bytes(s, srv.dav + "doc.bin") == V1
    r = s.head(srv.dav + "doc.bin")
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(V1)
    listing = members(s, srv.dav)
    assert set(listing) == names_before, f"listing changed: {sorted(listing)}"
    assert listing["doc.bin"].size == len(V1)
    r = s.get(srv.dav + "new.bin")
    assert r.status_code == 404, f"interrupted PUT created new.bin: {r.status_code}"


@pytest.mark.parametrize("mode", ["length", "chunked-mid-chunk", "chunked-no-last-chunk"])
def test_interrupted_put_leaves_old_content(server_factory: ServerFactory, mode: str) -> None:
    srv = server_factory()
    s = srv.session(ALICE)
    put(s, srv.dav + "doc.bin", V1, expect=(201,))
    names_before = set(members(s, srv.dav))
    assert names_before == {"doc.bin"}
    blobs_before = blob_files(srv.data_dir)

    interrupted_put(srv, "/dav/doc.bin", mode)
    assert_v1_intact(srv, names_before)

    interrupted_put(srv, "/dav/new.bin", mode)
    assert_v1_intact(srv, names_before)

    # the server is still healthy: a normal PUT after the aborted ones works
    put(s, srv.dav + "after.bin", b"after", expect=(201,))
    assert get_bytes(s, srv.dav + "after.bin") == b"after"
    assert s.delete(srv.dav + "after.bin").status_code == 204
    # out of the trash too, so that its blob goes (the trash keeps a deleted file's blob)
    assert s.delete(f"{srv.url}/remote.php/dav/trashbin/{ALICE}/trash").status_code == 204

    print(f"temp files before gc: {temp_files(srv.data_dir)}")
    gc = cli(srv.data_dir, "gc", "--min-age", "0")
    assert gc.returncode == 0, describe(gc)
    assert "Traceback" not in gc.stderr + gc.stdout, describe(gc)
    assert temp_files(srv.data_dir) == [], "temp files left in blobs/tmp after gc"
    assert blob_files(srv.data_dir) == blobs_before, "gc must keep exactly the live blob"
    assert_v1_intact(srv, names_before)  # gc kept the live blob
    srv.stop()
    gc = cli(srv.data_dir, "gc", "--min-age", "0")
    assert gc.returncode == 0, describe(gc)
    assert temp_files(srv.data_dir) == []


def test_gc_keeps_recent_temp_files_and_all_live_blobs(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """gc --min-age only removes orphans older than min-age; live blobs always stay."""
    srv = server_factory()
    s = srv.session(ALICE)
    put(s, srv.dav + "doc.bin", V1, expect=(201,))
    put(s, srv.dav + "doc.bin", V1[::-1], expect=(204,))  # the first content: now a version
    interrupted_put(srv, "/dav/new.bin", "length")
    live = get_bytes(s, srv.dav + "doc.bin")
    assert live == V1[::-1]

    blobs_before, temps_before = blob_files(srv.data_dir), temp_files(srv.data_dir)
    gc = cli(srv.data_dir, "gc", "--min-age", "3600")
    assert gc.returncode == 0, describe(gc)
    assert blob_files(srv.data_dir) == blobs_before, "gc --min-age 3600 removed young blobs"
    assert temp_files(srv.data_dir) == temps_before, "gc --min-age 3600 removed young temp files"
    gc = cli(srv.data_dir, "gc", "--min-age", "0")
    assert gc.returncode == 0, describe(gc)
    assert temp_files(srv.data_dir) == []
    assert len(blob_files(srv.data_dir)) == 2, blob_files(srv.data_dir)  # live, and its version
    assert get_bytes(s, srv.dav + "doc.bin") == live
    print(f"before gc: {len(blobs_before)} blobs, temp files {temps_before}")


def test_server_killed_mid_put_then_gc(server_factory: ServerFactory) -> None:
    """SIGKILL during an upload: after a restart the old content is intact, the half-written
    temp file is invisible, gc --min-age 3600 keeps it (too young) and gc --min-age 0 removes
    it."""
    srv = server_factory()
    s = srv.session(ALICE)
    put(s, srv.dav + "doc.bin", V1, expect=(201,))
    blobs_before = blob_files(srv.data_dir)

    conn = RawConnection(srv)
    conn.send_head(
        "PUT",
        "/dav/doc.bin",
        {"Authorization": srv.auth_header(ALICE), "Content-Length": str(V2_SIZE)},
    )
    conn.send(os.urandom(V2_SIZE // 2))
    wait_until(
        lambda: blob_fds(srv), 10, "the server to open the upload's temp file", interval=0.02
    )
    srv.kill()
    conn.abort()
    leftovers = temp_files(srv.data_dir)
    assert leftovers, "expected the killed upload's temp file under blobs/tmp"

    srv2 = server_factory(data_dir=srv.data_dir)
    assert_v1_intact(srv2, {"doc.bin"})
    gc = cli(srv.data_dir, "gc", "--min-age", "3600")
    assert gc.returncode == 0, describe(gc)
    assert temp_files(srv.data_dir) == leftovers, "gc --min-age 3600 removed a fresh temp file"
    gc = cli(srv.data_dir, "gc", "--min-age", "0")
    assert gc.returncode == 0, describe(gc)
    assert temp_files(srv.data_dir) == []
    assert blob_files(srv.data_dir) == blobs_before
    assert_v1_intact(srv2, {"doc.bin"})
