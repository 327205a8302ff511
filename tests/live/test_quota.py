"""Quotas against a live server: 507 Insufficient Storage for fixed-length, chunked and
X-Expected-Entity-Length uploads and for COPY, with nothing stored; RFC 4331 quota properties
that tell the truth on every folder; ``user quota NAME 0`` lifts the limit.

Each test works as its own user (one per test) so the numbers are exact, and sets the quota
with the CLI while the server runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest
import requests

from tests.live.clients import RawClient
from tests.live.conftest import Server, blob_files, members, temp_files
from tests.live.sharing_helpers import (
    CAROL,
    PASSWORDS,
    RO,
    RW,
    get_ok,
    mkdirs,
    put_ok,
    quota,
    sess,
    set_quota,
    snapshot,
    start_share_server,
    uid,
    unchanged,
)

K = 1024
M = 1024 * 1024
SEG = 64 * K


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_share_server(tmp_path_factory, "quota")


def clear_home(s: requests.Session, dav: str) -> None:
    for name, e in members(s, dav).items():
        r = s.delete(dav + name + ("/" if e.is_collection else ""))
        assert r.status_code == 204, (name, r.status_code)


def home(srv: Server, name: str) -> Iterator[requests.Session]:
    """``name``'s emptied home; every test sets the quota it needs first (a CLI run costs
    ~1 s, so there is no reset afterwards: the module's server goes away with it)."""
    s = sess(srv, name)
    clear_home(s, srv.dav)
    yield s
    clear_home(s, srv.dav)


@pytest.fixture
def rw_home(srv: Server) -> Iterator[requests.Session]:
    yield from home(srv, RW)


@pytest.fixture
def ro_home(srv: Server) -> Iterator[requests.Session]:
    yield from home(srv, RO)


@pytest.fixture
def carol_home(srv: Server) -> Iterator[requests.Session]:
    yield from home(srv, CAROL)


def nothing_stored(srv: Server, s: requests.Session, blobs_before: int, before: dict) -> None:
    unchanged(before, snapshot(s, srv.dav), "a refused upload")
    assert len(blob_files(srv.data_dir)) == blobs_before, "a refused upload left a blob"
    assert temp_files(srv.data_dir) == [], "a refused upload left a temp file"


def test_fixed_length_put_over_quota(srv: Server, rw_home: requests.Session) -> None:
    s = rw_home
    set_quota(srv, RW, "1M")
    assert quota(s, srv.dav) == (0, M)
    a = os.urandom(600 * K)
    put_ok(s, srv.dav + "a.bin", a)
    assert quota(s, srv.dav) == (600 * K, M - 600 * K)

    blobs, before = len(blob_files(srv.data_dir)), snapshot(s, srv.dav)
    r = s.put(srv.dav + "b.bin", data=os.urandom(500 * K))  # Content-Length: 500 KiB > 424 KiB
    assert r.status_code == 507, (r.status_code, r.text[:300])
    nothing_stored(srv, s, blobs, before)
    assert s.head(srv.dav + "b.bin").status_code == 404

    # overwriting with more than the quota holds: 507 and the old content stays
    r = s.put(srv.dav + "a.bin", data=os.urandom(M + 1))
    assert r.status_code == 507, r.status_code
    nothing_stored(srv, s, blobs, before)
    assert get_ok(s, srv.dav + "a.bin") == a

    # exactly what is left still fits
    put_ok(s, srv.dav + "c.bin", os.urandom(M - 600 * K))
    assert quota(s, srv.dav) == (M, 0)
    r = s.put(srv.dav + "d.bin", data=b"x")
    assert r.status_code == 507, r.status_code
    # an empty file costs nothing
    put_ok(s, srv.dav + "empty.txt", b"")
    assert quota(s, srv.dav) == (M, 0)


def chunked_put(srv: Server, user: str, path: str, data: bytes, extra=()) -> int:
    """PUT ``data`` with Transfer-Encoding: chunked over a raw connection; the status.
    The server may answer 507 before the body is through and close: that is fine."""
    with RawClient(srv) as c:
        c.send_head(
            "PUT",
            path,
            [
                ("Authorization", srv.auth_header(user, PASSWORDS[user])),
                ("Transfer-Encoding", "chunked"),
                ("Content-Type", "application/octet-stream"),
                *extra,
            ],
        )
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            c.send_chunked(data, [SEG - 7, 1000, 3 * SEG])
        return c.read_response("PUT").status


def test_chunked_put_crossing_the_limit(srv: Server, ro_home: requests.Session) -> None:
    s = ro_home
    set_quota(srv, RO, "1M")
    put_ok(s, srv.dav + "first.bin", os.urandom(300 * K))
    blobs, before = len(blob_files(srv.data_dir)), snapshot(s, srv.dav)
    status = chunked_put(srv, RO, "/dav/over.bin", os.urandom(800 * K))
    assert status == 507, status
    nothing_stored(srv, s, blobs, before)
    assert s.head(srv.dav + "over.bin").status_code == 404
    assert quota(s, srv.dav) == (300 * K, M - 300 * K)

    # overwrite of an existing file, chunked, crossing the limit: old content intact
    old = get_ok(s, srv.dav + "first.bin")
    status = chunked_put(srv, RO, "/dav/first.bin", os.urandom(2 * M))
    assert status == 507, status
    nothing_stored(srv, s, blobs, before)
    assert get_ok(s, srv.dav + "first.bin") == old

    # a chunked body that fits is stored
    fits = os.urandom(M - 300 * K)
    assert chunked_put(srv, RO, "/dav/fits.bin", fits) == 201
    assert get_ok(s, srv.dav + "fits.bin") == fits
    assert quota(s, srv.dav) == (M, 0)


def test_expected_entity_length_refused_up_front(srv: Server, carol_home: requests.Session) -> None:
    """Finder announces the size of a chunked upload in X-Expected-Entity-Length."""
    s = carol_home
    set_quota(srv, CAROL, "64K")
    blobs, before = len(blob_files(srv.data_dir)), snapshot(s, srv.dav)
    data = os.urandom(100 * K)
    status = chunked_put(
        srv, CAROL, "/dav/finder.bin", data, [("X-Expected-Entity-Length", str(len(data)))]
    )
    assert status == 507, status
    nothing_stored(srv, s, blobs, before)


def test_copy_over_quota(srv: Server, rw_home: requests.Session) -> None:
    s = rw_home
    set_quota(srv, RW, "1M")
    mkdirs(s, srv.dav + "dir/")
    data = os.urandom(400 * K)
    put_ok(s, srv.dav + "dir/x.bin", data)
    put_ok(s, srv.dav + "dir/y.bin", os.urandom(200 * K))
    # a file copy that fits
    r = s.request("COPY", srv.dav + "dir/x.bin", headers={"Destination": srv.dav + "x2.bin"})
    assert r.status_code == 201, r.status_code
    assert quota(s, srv.dav) == (1000 * K, M - 1000 * K)
    blobs, before = len(blob_files(srv.data_dir)), snapshot(s, srv.dav)
    for src, dest in (("dir/x.bin", "x3.bin"), ("dir/", "dir2/")):
        r = s.request("COPY", srv.dav + src, headers={"Destination": srv.dav + dest})
        assert r.status_code == 507, (src, r.status_code)
        nothing_stored(srv, s, blobs, before)
        assert s.request("PROPFIND", srv.dav + dest, headers={"Depth": "0"}).status_code == 404
    # MOVE inside one's own tree costs nothing
    r = s.request("MOVE", srv.dav + "x2.bin", headers={"Destination": srv.dav + "dir/x2.bin"})
    assert r.status_code == 201, r.status_code
    assert quota(s, srv.dav) == (1000 * K, M - 1000 * K)


def test_quota_properties_on_every_folder(srv: Server, ro_home: requests.Session) -> None:
    s = ro_home
    set_quota(srv, RO, "500M")
    mkdirs(s, srv.dav + "a/")
    mkdirs(s, srv.dav + "a/b/")
    put_ok(s, srv.dav + "top.bin", os.urandom(1234))
    put_ok(s, srv.dav + "a/mid.bin", os.urandom(SEG + 1))
    put_ok(s, srv.dav + "a/b/deep.bin", os.urandom(10 * K))
    used = 1234 + SEG + 1 + 10 * K
    for folder in ("", "a/", "a/b/"):
        assert quota(s, srv.dav + folder) == (used, 500 * M - used), folder
    # deleting frees, overwriting counts the new size
    assert s.delete(srv.dav + "a/b/deep.bin").status_code == 204
    put_ok(s, srv.dav + "top.bin", os.urandom(34))
    used = 34 + SEG + 1
    for folder in ("", "a/", "a/b/"):
        assert quota(s, srv.dav + folder) == (used, 500 * M - used), folder
    # a quota below what is used: nothing available (never negative, never above the quota)
    set_quota(srv, RO, "64K")
    assert quota(s, srv.dav) == (used, 0)
    r = s.put(srv.dav + "more.bin", data=b"x")
    assert r.status_code == 507, r.status_code
    # lifted again
    set_quota(srv, RO, "0")
    put_ok(s, srv.dav + "more.bin", os.urandom(2 * M))
    used += 2 * M
    got_used, available = quota(s, srv.dav)
    assert got_used == used
    assert available > 0


def test_unlimited_again_after_quota_0(srv: Server, carol_home: requests.Session) -> None:
    s = carol_home
    set_quota(srv, CAROL, "64K")
    r = s.put(srv.dav + "big-" + uid() + ".bin", data=os.urandom(100 * K))
    assert r.status_code == 507
    set_quota(srv, CAROL, "0")
    data = os.urandom(3 * M)
    put_ok(s, srv.dav + "big.bin", data)
    assert get_ok(s, srv.dav + "big.bin") == data
    assert quota(s, srv.dav)[0] == 3 * M
