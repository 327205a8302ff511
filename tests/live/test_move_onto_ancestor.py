"""MOVE and COPY whose destination is the source itself or one of its ancestors.

With ``Overwrite: T`` such a request would first delete the destination, and with it the
source. RFC 4918 (9.8.5, 9.9.4): the server answers 403 (or 409) *before anything is touched*.
An early version deleted the destination tree and its blobs and then answered 500 (an
``assert`` after the commit): ``d/keep.txt`` was gone and fsck stayed clean.

Checked in a user's own home, inside a folder shared with another user (the grantee acting on
the owner's tree, and the share's mount point as destination), and through an editable public
link; for files and folders, parents and grandparents, MOVE and COPY, with and without a
trailing slash on the destination.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests

from tests.live.conftest import ALICE, BOB, Server, members, q
from tests.live.sharing_helpers import (
    CAROL,
    mkdirs,
    put_ok,
    sess,
    set_quota,
    share_add,
    share_link,
    snapshot,
    start_share_server,
    uid,
    unchanged,
    used_bytes,
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_share_server(tmp_path_factory, "ancestor")


def _tree(s: requests.Session, top: str) -> None:
    """top/{keep.txt, f.txt, sub/{g.txt, deep/{h.txt}}}."""
    mkdirs(s, top)
    mkdirs(s, top + "sub/")
    mkdirs(s, top + "sub/deep/")
    put_ok(s, top + "keep.txt", b"keep me")
    put_ok(s, top + "f.txt", b"the file f")
    put_ok(s, top + "sub/g.txt", b"the file g")
    put_ok(s, top + "sub/deep/h.txt", b"the file h")


# (source below top, destination relative to top's parent: "" is top itself)
CASES = [
    ("f.txt", ""),  # a file onto its parent
    ("sub/g.txt", ""),  # a file onto its grandparent
    ("sub/deep/h.txt", "sub"),  # a file onto its grandparent, deeper
    ("sub", ""),  # a folder onto its parent
    ("sub/deep", ""),  # a folder onto its grandparent
    ("sub/deep", "sub"),  # a folder onto its parent, deeper
]


def _assert_refused(
    s: requests.Session, method: str, src: str, dest: str, base: str, top: str
) -> None:
    before = snapshot(s, base)
    for overwrite in ("T", "F"):
        for slash in ("", "/"):
            r = s.request(
                method,
                src,
                headers={"Destination": dest + slash, "Overwrite": overwrite},
            )
            # (Overwrite: F may be answered 412 first: the destination exists.)
            allowed = (403, 409) if overwrite == "T" else (403, 409, 412)
            assert r.status_code in allowed, (method, src, dest + slash, overwrite, r.status_code)
            assert "Traceback" not in r.text
    unchanged(before, snapshot(s, base), f"{method} {src} onto its ancestor {dest}")
    # Every file still reads back its bytes (the blobs are there, not only the rows).
    for name, data in [
        ("keep.txt", b"keep me"),
        ("f.txt", b"the file f"),
        ("sub/g.txt", b"the file g"),
        ("sub/deep/h.txt", b"the file h"),
    ]:
        r = s.get(top + name)
        assert r.status_code == 200 and r.content == data, (name, r.status_code)


@pytest.mark.parametrize("method", ["MOVE", "COPY"])
@pytest.mark.parametrize(("src", "dest"), CASES)
def test_own_home(srv: Server, method: str, src: str, dest: str) -> None:
    s = sess(srv, ALICE)
    base = f"{srv.dav}{uid()}/"
    top = base + "d/"
    mkdirs(s, base)
    _tree(s, top)
    target = (base + "d/" + dest).rstrip("/")
    _assert_refused(s, method, top + src, target, base, top)
    # The same request onto the source itself is refused as well, and touches nothing.
    before = snapshot(s, base)
    r = s.request(method, top + src, headers={"Destination": top + src, "Overwrite": "T"})
    assert r.status_code in (403, 409), r.status_code
    unchanged(before, snapshot(s, base), f"{method} onto itself")


@pytest.mark.parametrize("method", ["MOVE", "COPY"])
@pytest.mark.parametrize(("src", "dest"), CASES)
def test_grantee_in_share(srv: Server, method: str, src: str, dest: str) -> None:
    """Bob, with write access to alice's folder, acts inside it; the destination may be the
    mount point itself (bob's ``/dav/<name>``), which is an ancestor of the source too."""
    alice, bob = sess(srv, ALICE), sess(srv, BOB)
    name = f"shared-{uid()}"
    _tree(alice, f"{srv.dav}{name}/")
    share_add(srv, ALICE, f"/{name}", BOB, write=True)
    top = f"{srv.dav}{q(name)}/"
    target = (top + dest).rstrip("/")
    _assert_refused(bob, method, top + src, target, top, top)
    # And alice's own view is intact.
    assert alice.get(f"{srv.dav}{name}/keep.txt").content == b"keep me"


@pytest.mark.parametrize("method", ["MOVE", "COPY"])
@pytest.mark.parametrize(("src", "dest"), [c for c in CASES if c[1]])
def test_upload_link(srv: Server, method: str, src: str, dest: str) -> None:
    """Through a public link that allows uploads (so it may write in the folder)."""
    alice = sess(srv, ALICE)
    name = f"linked-{uid()}"
    _tree(alice, f"{srv.dav}{name}/")
    link = share_link(srv, ALICE, f"/{name}", upload=True)
    anon = srv.session(None)
    target = (link.public + dest).rstrip("/")
    before = snapshot(alice, f"{srv.dav}{name}/")
    for overwrite in ("T", "F"):
        r = anon.request(
            method, link.public + src, headers={"Destination": target, "Overwrite": overwrite}
        )
        allowed = (403, 409) if overwrite == "T" else (403, 409, 412)
        assert r.status_code in allowed, (method, src, dest, overwrite, r.status_code)
    unchanged(before, snapshot(alice, f"{srv.dav}{name}/"), "link request")
    assert anon.get(link.public + "keep.txt").content == b"keep me"


@pytest.mark.parametrize("method", ["COPY", "MOVE"])
def test_across_owners_over_a_folder_out_of_quota(srv: Server, method: str) -> None:
    """Bob copies (or moves) a folder of his over a folder in carol's share: the copy is made
    for carol, within her quota. When it cannot fit, carol's folder must still be there (it
    used to be deleted first, then the copy failed with 507 half way)."""
    carol, bob = sess(srv, CAROL), sess(srv, BOB)
    name = f"carols-{uid()}"
    mkdirs(carol, f"{srv.dav}{name}/")
    mkdirs(carol, f"{srv.dav}{name}/dst/")
    put_ok(carol, f"{srv.dav}{name}/dst/keep.txt", b"keep me")
    share_add(srv, CAROL, f"/{name}", BOB, write=True)
    src = f"{srv.dav}big-{uid()}/"
    mkdirs(bob, src)
    for i in range(3):
        put_ok(bob, f"{src}{i}.bin", os.urandom(100_000))
    set_quota(srv, CAROL, str(used_bytes(carol, srv.dav) + 150_000))
    try:
        before = snapshot(carol, f"{srv.dav}{name}/")
        r = bob.request(
            method, src, headers={"Destination": f"{srv.dav}{q(name)}/dst", "Overwrite": "T"}
        )
        assert r.status_code == 507, r.status_code
        unchanged(before, snapshot(carol, f"{srv.dav}{name}/"), f"{method} over quota")
        assert carol.get(f"{srv.dav}{name}/dst/keep.txt").content == b"keep me"
        assert len(members(bob, src)) == 3
    finally:
        set_quota(srv, CAROL, "0")
