"""Attack (issue 12, item 6): store more than one's quota through the paths that change stored
bytes without being an upload — COPY or MOVE over an existing file, COPY or MOVE of a folder
into a share whose owner has a small quota.

The attack that worked: with a 1 MiB quota, COPY a 900 KiB file over an empty file (the growth
was counted but never checked), then overwrite the copy with new bytes of the same size (a
change of 0 bytes, so not checked either); five times over, 4.5 MB stored. Every refusal must be
a 507 before anything changes, and the owner's ``quota-used-bytes`` (PROPFIND), the bytes
``davdisk user list`` reports and the bytes of the files really there must agree and stay
within the quota.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests

from tests.live.conftest import ALICE, BOB, Server, members
from tests.live.sharing_helpers import (
    CAROL,
    RO,
    RW,
    cli_ok,
    mkdirs,
    put_ok,
    quota,
    sess,
    set_quota,
    share_add,
    start_share_server,
    uid,
)

K = 1024
M = 1024 * 1024


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_share_server(tmp_path_factory, "quota-bypass")


def tree_bytes(s: requests.Session, url: str) -> int:
    """Bytes of the files really stored below the folder ``url`` (as ``s`` lists them)."""
    total = 0
    for name, e in members(s, url).items():
        if e.is_collection:
            total += tree_bytes(s, url + name + "/")
        else:
            total += e.size or 0
    return total


def listed_bytes(srv: Server, user: str) -> int:
    """The BYTES column of ``davdisk user list`` for ``user``."""
    for line in cli_ok(srv, "user", "list").splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == user:
            return int(fields[2])
    raise AssertionError(f"{user} not in user list")


def accounts_agree(srv: Server, user: str, limit: int) -> int:
    """Assert PROPFIND's quota-used-bytes, ``user list`` and the files of ``user`` agree and
    stay within ``limit``; return the bytes."""
    s = sess(srv, user)
    used, _available = quota(s, srv.dav)
    own = tree_bytes(s, srv.dav)  # (nothing is shared with the owners in these tests)
    assert used <= limit, f"{user} stored {used} bytes with a quota of {limit}"
    assert own <= limit, f"{user}'s files take {own} bytes with a quota of {limit}"
    assert used == own, f"quota-used-bytes says {used}, the files take {own}"
    assert listed_bytes(srv, user) == used, "user list disagrees with quota-used-bytes"
    return used


def copy(s: requests.Session, src: str, dest: str, method: str = "COPY") -> int:
    r = s.request(method, src, headers={"Destination": dest, "Overwrite": "T"})
    assert r.status_code < 500 or r.status_code == 507, (method, src, r.status_code, r.text[:300])
    return r.status_code


def test_copy_over_an_empty_file_then_overwrite(srv: Server) -> None:
    """The issue's attack, step by step: 5 x 900 KiB with a 1 MiB quota."""
    s = sess(srv, CAROL)
    set_quota(srv, CAROL, "1M")
    d = srv.dav + f"attack-{uid()}/"
    mkdirs(s, d)
    put_ok(s, d + "a.bin", os.urandom(900 * K))
    statuses = []
    for i in range(5):
        put_ok(s, d + f"b{i}.bin", b"")
        statuses.append(copy(s, d + "a.bin", d + f"b{i}.bin"))
        r = s.put(d + f"b{i}.bin", data=os.urandom(900 * K))
        statuses.append(r.status_code)
    stored = tree_bytes(s, d)
    assert stored <= M, f"stored {stored} bytes with a 1 MiB quota (answers {statuses})"
    assert statuses == [507] * 10, statuses
    accounts_agree(srv, CAROL, M)

    # A MOVE of a file over another file frees the replaced file's bytes, no more, no less.
    put_ok(s, d + "b0.bin", os.urandom(100 * K))
    assert copy(s, d + "a.bin", d + "b0.bin", "MOVE") == 204
    assert accounts_agree(srv, CAROL, M) == 900 * K
    assert s.put(d + "c.bin", data=os.urandom(124 * K + 1)).status_code == 507
    put_ok(s, d + "c.bin", os.urandom(124 * K))
    assert accounts_agree(srv, CAROL, M) == M


def test_copy_over_a_file_inside_a_share(srv: Server) -> None:
    """A grantee copies the owner's file over another file in the share: the owner's quota."""
    owner, grantee = RW, BOB
    o, g = sess(srv, owner), sess(srv, grantee)
    set_quota(srv, owner, "1M")
    folder = f"shared-{uid()}"
    mkdirs(o, srv.dav + folder + "/")
    put_ok(o, srv.dav + folder + "/big.bin", os.urandom(700 * K))
    put_ok(o, srv.dav + folder + "/empty.bin", b"")
    share_add(srv, owner, "/" + folder, grantee, write=True)
    mount = srv.dav + folder + "/"
    assert copy(g, mount + "big.bin", mount + "empty.bin") == 507
    assert o.get(srv.dav + folder + "/empty.bin").content == b""
    # ... and from the grantee's own home over a file of the share (re-encrypted for the owner)
    put_ok(g, srv.dav + f"mine-{uid()}.bin", os.urandom(700 * K))
    mine = next(n for n in members(g, srv.dav) if n.startswith("mine-"))
    assert copy(g, srv.dav + mine, mount + "empty.bin") == 507
    assert o.get(srv.dav + folder + "/empty.bin").content == b""
    accounts_agree(srv, owner, M)


def test_copy_and_move_of_a_folder_into_a_small_share(srv: Server) -> None:
    """A folder copied or moved across owners must fit as a whole: a 507 half way would leave
    part of it at the destination, charged to the owner of the share."""
    owner, grantee = RO, ALICE
    o, g = sess(srv, owner), sess(srv, grantee)
    set_quota(srv, owner, "1M")
    folder = f"drop-{uid()}"
    mkdirs(o, srv.dav + folder + "/")
    share_add(srv, owner, "/" + folder, grantee, write=True)
    mount = srv.dav + folder + "/"
    src = srv.dav + f"three-{uid()}/"
    mkdirs(g, src)
    for i in range(3):
        put_ok(g, src + f"{i}.bin", os.urandom(400 * K))
    for method in ("COPY", "MOVE"):
        assert copy(g, src, mount + "three/", method) == 507, method
        assert members(o, srv.dav + folder + "/") == {}, f"{method} left part of the folder"
        assert tree_bytes(g, src) == 1200 * K, f"{method} lost the source"
    # replacing a folder of the share by one that does not fit: the old folder stays
    mkdirs(o, mount + "old/")
    put_ok(o, mount + "old/keep.bin", b"keep")
    assert copy(g, src, mount + "old/") == 507
    assert o.get(srv.dav + folder + "/old/keep.bin").content == b"keep"
    accounts_agree(srv, owner, M)
