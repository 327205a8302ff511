"""User-to-user shares against a live server: how mounts are named and marked, hiding a mount,
revocation (and the locks it drops), locks shared by owner and grantee, moves and copies across
the share boundary with the quota bytes they carry, re-sharing, and a real WebDAV client
(webdavclient3) seeing a share made with the CLI.

Every test makes its own uniquely named folders, so tests share one server.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import pytest
import requests
from webdav3.client import Client

from tests.live.conftest import ALICE, BOB, Server, cli, q
from tests.live.sharing_helpers import (
    CAROL,
    PASSWORDS,
    RO,
    RW,
    assert_clean_error,
    do_lock,
    get_ok,
    mkdirs,
    permissions,
    put_ok,
    root_names,
    sess,
    set_quota,
    share_add,
    share_list,
    share_rm,
    snapshot,
    start_share_server,
    token_of,
    uid,
    unchanged,
    unlock,
    used_bytes,
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_share_server(tmp_path_factory, "sharing")


def make_folder(srv: Server, name: str, files: dict[str, bytes]) -> str:
    """alice's folder ``name`` with ``files`` (relative paths; parents made); its URL."""
    a = sess(srv, ALICE)
    base = srv.dav + q(name) + "/"
    mkdirs(a, base)
    made = set()
    for rel, data in files.items():
        parts = rel.split("/")[:-1]
        for i in range(len(parts)):
            sub = "/".join(parts[: i + 1])
            if sub not in made:
                mkdirs(a, base + sub + "/")
                made.add(sub)
        put_ok(a, base + rel, data)
    return base


def status(s: requests.Session, method: str, url: str, **headers: str) -> int:
    return s.request(method, url, headers=headers).status_code


# --------------------------------------------------------------------------- naming


def test_mount_appears_in_grantee_root_with_S(srv: Server) -> None:
    name = "Projects-" + uid()
    make_folder(srv, name, {"plan.txt": b"the plan"})
    share_add(srv, ALICE, "/" + name, BOB)
    b = sess(srv, BOB)
    roots = root_names(b, srv.dav)
    assert name in roots, roots
    perm = roots[name]
    assert perm is not None and "S" in (perm.text or ""), f"oc:permissions of the mount: {perm}"
    assert "S" in permissions(b, srv.dav + q(name) + "/")
    assert get_ok(b, srv.dav + q(name) + "/plan.txt") == b"the plan"
    # the owner's own folder is not a mount for her
    assert "S" not in permissions(sess(srv, ALICE), srv.dav + q(name) + "/")


def test_file_share_mount(srv: Server) -> None:
    name = f"notes-{uid()}.txt"
    put_ok(sess(srv, ALICE), srv.dav + q(name), b"some notes")
    share_add(srv, ALICE, "/" + name, BOB)
    b = sess(srv, BOB)
    roots = root_names(b, srv.dav)
    assert name in roots, roots
    perm = roots[name]
    assert perm is not None and "S" in (perm.text or ""), perm
    assert get_ok(b, srv.dav + q(name)) == b"some notes"


def test_mount_name_clash_gets_owner_suffix(srv: Server) -> None:
    name = "Docs-" + uid()
    # carol already has a folder of that name: alice's share is "NAME (alice)"
    c = sess(srv, CAROL)
    mkdirs(c, srv.dav + q(name) + "/")
    put_ok(c, srv.dav + q(name) + "/carols.txt", b"carol's own")
    make_folder(srv, name, {"alices.txt": b"alice's"})
    share_add(srv, ALICE, "/" + name, CAROL)
    roots = root_names(c, srv.dav)
    suffixed = f"{name} (alice)"
    assert name in roots and suffixed in roots, roots
    assert get_ok(c, srv.dav + q(suffixed) + "/alices.txt") == b"alice's"
    assert get_ok(c, srv.dav + q(name) + "/carols.txt") == b"carol's own"

    # two shares of the same name for one grantee: each is suffixed with its owner (a share
    # that came first keeping the plain name let a forger take it; issue 12, item 16)
    other = "Same-" + uid()
    make_folder(srv, other, {"from-alice.txt": b"A"})
    b = sess(srv, BOB)
    mkdirs(b, srv.dav + q(other) + "/")
    put_ok(b, srv.dav + q(other) + "/from-bob.txt", b"B")
    share_add(srv, ALICE, "/" + other, RO)
    share_add(srv, BOB, "/" + other, RO)
    ro = sess(srv, RO)
    roots = root_names(ro, srv.dav)
    assert other not in roots and f"{other} (alice)" in roots and f"{other} (bob)" in roots, roots
    assert get_ok(ro, srv.dav + q(f"{other} (alice)") + "/from-alice.txt") == b"A"
    assert get_ok(ro, srv.dav + q(f"{other} (bob)") + "/from-bob.txt") == b"B"
    for mount in (f"{other} (alice)", f"{other} (bob)"):
        assert roots[mount] is not None and "S" in (roots[mount].text or ""), mount


# --------------------------------------------------------------------------- hide, revoke


def test_delete_of_mount_hides_it(srv: Server) -> None:
    name = "Hide-" + uid()
    base = make_folder(srv, name, {"keep.txt": b"keep me", "sub/deep.txt": b"deep"})
    share_id = share_add(srv, ALICE, "/" + name, BOB, write=True)
    share_add(srv, ALICE, "/" + name, CAROL)
    a, b = sess(srv, ALICE), sess(srv, BOB)
    before = snapshot(a, base)
    alice_used = used_bytes(a, srv.dav)
    r = b.delete(srv.dav + q(name) + "/")
    assert r.status_code == 204, r.status_code
    assert name not in root_names(b, srv.dav)
    assert status(b, "PROPFIND", srv.dav + q(name) + "/", Depth="0") == 404
    unchanged(before, snapshot(a, base), "bob's DELETE of his mount")
    assert used_bytes(a, srv.dav) == alice_used
    # the share itself remains (hidden, not declined into deletion), carol unaffected
    assert any(ln.split()[0] == str(share_id) for ln in share_list(srv)), share_list(srv)
    assert get_ok(sess(srv, CAROL), srv.dav + q(name) + "/keep.txt") == b"keep me"


def test_revoke_takes_effect_and_drops_locks(srv: Server) -> None:
    name = "Revoke-" + uid()
    base = make_folder(srv, name, {"doc.txt": b"v1"})
    share_id = share_add(srv, ALICE, "/" + name, BOB, write=True)
    a, b = sess(srv, ALICE), sess(srv, BOB)
    mount = srv.dav + q(name) + "/"
    assert get_ok(b, mount + "doc.txt") == b"v1"  # b's connection and credentials are warm
    token = token_of(do_lock(b, mount + "doc.txt"))
    assert a.put(base + "doc.txt", data=b"blocked").status_code == 423
    share_rm(srv, share_id)
    assert status(b, "PROPFIND", mount, Depth="0") == 404
    assert b.get(mount + "doc.txt").status_code == 404
    assert name not in root_names(b, srv.dav)
    assert b.put(mount + "doc.txt", data=b"x", headers={"If": f"(<{token}>)"}).status_code in (
        404,
        409,
    )
    # bob's lock went with the share: alice writes without a token
    put_ok(a, base + "doc.txt", b"v2")
    assert get_ok(a, base + "doc.txt") == b"v2"
    assert snapshot(a, base)["doc.txt"].locks == ()


def test_owner_and_grantee_share_locks(srv: Server) -> None:
    name = "Locks-" + uid()
    base = make_folder(srv, name, {"f.txt": b"start"})
    share_add(srv, ALICE, "/" + name, BOB, write=True)
    a, b = sess(srv, ALICE), sess(srv, BOB)
    mount = srv.dav + q(name) + "/"
    # grantee locks: the owner is locked out without the token
    tok = token_of(do_lock(b, mount + "f.txt"))
    assert a.put(base + "f.txt", data=b"owner").status_code == 423
    assert do_lock(a, base + "f.txt").status_code == 423
    assert a.delete(base + "f.txt").status_code == 423
    assert get_ok(a, base + "f.txt") == b"start"
    r = b.put(mount + "f.txt", data=b"by bob", headers={"If": f"(<{tok}>)"})
    assert r.status_code == 204, r.status_code
    assert get_ok(a, base + "f.txt") == b"by bob"
    assert tok in snapshot(a, base)["f.txt"].locks
    assert unlock(b, mount + "f.txt", tok).status_code == 204
    put_ok(a, base + "f.txt", b"owner again")
    # owner locks: the grantee is locked out
    tok = token_of(do_lock(a, base + "f.txt"))
    assert b.put(mount + "f.txt", data=b"bob").status_code == 423
    assert get_ok(b, mount + "f.txt") == b"owner again"
    assert unlock(a, base + "f.txt", tok).status_code == 204
    put_ok(b, mount + "f.txt", b"bob after unlock")
    assert get_ok(a, base + "f.txt") == b"bob after unlock"


# --------------------------------------------------------------------------- across the boundary


def test_move_from_share_to_own_tree_and_back(srv: Server) -> None:
    name = "Cross-" + uid()
    data = os.urandom(300 * 1024 + 17)
    base = make_folder(srv, name, {"big.bin": data, "keep.txt": b"k"})
    share_add(srv, ALICE, "/" + name, RW, write=True)
    a, g = sess(srv, ALICE), sess(srv, RW)
    mount = srv.dav + q(name) + "/"
    a0, g0 = used_bytes(a, srv.dav), used_bytes(g, srv.dav)
    mine = srv.dav + f"mine-{uid()}.bin"

    r = g.request("MOVE", mount + "big.bin", headers={"Destination": mine})
    assert r.status_code == 201, (r.status_code, r.text[:300])
    assert get_ok(g, mine) == data
    assert a.head(base + "big.bin").status_code == 404
    assert used_bytes(a, srv.dav) == a0 - len(data)
    assert used_bytes(g, srv.dav) == g0 + len(data)
    # the grantee owns it now: alice cannot see it anywhere
    assert snapshot(a, base).keys() == {".", "keep.txt"}

    r = g.request("MOVE", mine, headers={"Destination": mount + "back.bin"})
    assert r.status_code == 201, (r.status_code, r.text[:300])
    assert get_ok(a, base + "back.bin") == data
    assert g.head(mine).status_code == 404
    assert used_bytes(a, srv.dav) == a0
    assert used_bytes(g, srv.dav) == g0

    # a folder across and back, with its members
    mkdirs(g, mount + "dir/")
    put_ok(g, mount + "dir/x.txt", b"x" * 1000)
    a1, g1 = used_bytes(a, srv.dav), used_bytes(g, srv.dav)
    own_dir = srv.dav + f"own-{uid()}/"
    assert g.request("MOVE", mount + "dir/", headers={"Destination": own_dir}).status_code == 201
    assert (used_bytes(a, srv.dav), used_bytes(g, srv.dav)) == (a1 - 1000, g1 + 1000)
    assert g.request("MOVE", own_dir, headers={"Destination": mount + "dir/"}).status_code == 201
    assert get_ok(a, base + "dir/x.txt") == b"x" * 1000
    assert (used_bytes(a, srv.dav), used_bytes(g, srv.dav)) == (a1, g1)


def test_copy_out_of_read_only_share(srv: Server) -> None:
    name = "ROCopy-" + uid()
    data = os.urandom(70_000)
    base = make_folder(srv, name, {"src.bin": data, "d/inner.txt": b"inner"})
    share_add(srv, ALICE, "/" + name, RO)
    a, g = sess(srv, ALICE), sess(srv, RO)
    mount = srv.dav + q(name) + "/"
    a0, g0 = used_bytes(a, srv.dav), used_bytes(g, srv.dav)
    before = snapshot(a, base)
    own = srv.dav + f"copied-{uid()}.bin"
    r = g.request("COPY", mount + "src.bin", headers={"Destination": own})
    assert r.status_code == 201, (r.status_code, r.text[:300])
    assert get_ok(g, own) == data
    assert used_bytes(g, srv.dav) == g0 + len(data)
    assert used_bytes(a, srv.dav) == a0
    unchanged(before, snapshot(a, base), "COPY out of a read-only share")
    # the copy is the grantee's own: writable, deletable, and not alice's
    put_ok(g, own, b"mine now")
    assert get_ok(a, base + "src.bin") == data
    own_dir = srv.dav + f"copied-dir-{uid()}/"
    assert g.request("COPY", mount + "d/", headers={"Destination": own_dir}).status_code == 201
    assert get_ok(g, own_dir + "inner.txt") == b"inner"
    # but nothing goes into the share, and nothing leaves it
    checks = [
        ("COPY", own, mount + "in.bin"),
        ("MOVE", own, mount + "in.bin"),
        ("MOVE", mount + "src.bin", srv.dav + f"stolen-{uid()}.bin"),
        ("MOVE", mount + "d/", srv.dav + f"stolen-{uid()}/"),
    ]
    for method, src, dest in checks:
        r = g.request(method, src, headers={"Destination": dest})
        assert r.status_code == 403, (method, src, dest, r.status_code)
        unchanged(before, snapshot(a, base), f"{method} {src} -> {dest}")
    assert get_ok(g, own) == b"mine now"
    assert g.delete(own).status_code == 204
    assert g.delete(own_dir).status_code == 204
    assert used_bytes(g, srv.dav) == g0


def test_grantee_writes_count_against_owner_quota(srv: Server) -> None:
    name = "QShare-" + uid()
    base = make_folder(srv, name, {})
    share_add(srv, ALICE, "/" + name, RW, write=True)
    a, g = sess(srv, ALICE), sess(srv, RW)
    mount = srv.dav + q(name) + "/"
    a0, g0 = used_bytes(a, srv.dav), used_bytes(g, srv.dav)
    put_ok(g, mount + "w.bin", os.urandom(5000))
    assert used_bytes(a, srv.dav) == a0 + 5000
    assert used_bytes(g, srv.dav) == g0
    # inside the mount, used is what the shared folder holds, not the owner's total (issue 12)
    assert used_bytes(g, mount) == 5000
    try:
        set_quota(srv, ALICE, str(a0 + 5000 + 10_000))
        before = snapshot(a, base)
        r = g.put(mount + "too-big.bin", data=os.urandom(20_000))
        assert r.status_code == 507, r.status_code
        unchanged(before, snapshot(a, base), "a grantee PUT over the owner's quota")
        # the grantee's own space is not limited by alice's quota
        own = srv.dav + f"own-{uid()}.bin"
        put_ok(g, own, os.urandom(20_000))
        # ... but moving it into the share is, and moves nothing
        r = g.request("MOVE", own, headers={"Destination": mount + "moved-in.bin"})
        assert r.status_code == 507, r.status_code
        unchanged(before, snapshot(a, base), "a MOVE into a share over the owner's quota")
        assert g.head(own).status_code == 200
        assert g.delete(own).status_code == 204
    finally:
        set_quota(srv, ALICE, "0")


def test_copy_and_move_out_of_a_share_count_against_grantee_quota(srv: Server) -> None:
    name = "GQuota-" + uid()
    data = os.urandom(50_000)
    base = make_folder(srv, name, {"big.bin": data})
    share_add(srv, ALICE, "/" + name, CAROL, write=True)
    a, g = sess(srv, ALICE), sess(srv, CAROL)
    mount = srv.dav + q(name) + "/"
    g0 = used_bytes(g, srv.dav)
    try:
        set_quota(srv, CAROL, str(g0 + 20_000))
        before_owner, before_own = snapshot(a, base), snapshot(g, srv.dav)
        for method in ("COPY", "MOVE"):
            dest = srv.dav + f"{method.lower()}-{uid()}.bin"
            r = g.request(method, mount + "big.bin", headers={"Destination": dest})
            assert r.status_code == 507, (method, r.status_code)
            assert g.head(dest).status_code == 404
            unchanged(before_owner, snapshot(a, base), f"{method} out over the grantee's quota")
            assert used_bytes(g, srv.dav) == g0
        assert snapshot(g, srv.dav).keys() == before_own.keys()
    finally:
        set_quota(srv, CAROL, "0")


# --------------------------------------------------------------------------- reshare


def test_reshare_refused_without_flag_allowed_with_it(srv: Server) -> None:
    plain, sharable = "NoReshare-" + uid(), "Reshare-" + uid()
    make_folder(srv, plain, {"a.txt": b"a"})
    make_folder(srv, sharable, {"b.txt": b"b"})
    share_add(srv, ALICE, "/" + plain, BOB, write=True)
    share_add(srv, ALICE, "/" + sharable, BOB, reshare=True)
    listed = share_list(srv)
    err = assert_clean_error(cli(srv.data_dir, "share", "add", BOB, "/" + plain, "--with", CAROL))
    assert err
    assert share_list(srv) == listed
    assert plain not in root_names(sess(srv, CAROL), srv.dav)

    share_add(srv, BOB, "/" + sharable, CAROL)
    c = sess(srv, CAROL)
    assert sharable in root_names(c, srv.dav)
    assert get_ok(c, srv.dav + q(sharable) + "/b.txt") == b"b"
    # a re-share is no more than what was received: read-only
    assert c.put(srv.dav + q(sharable) + "/new.txt", data=b"x").status_code == 403


# --------------------------------------------------------------------------- a real client


def test_webdavclient3_sees_cli_share(srv: Server) -> None:
    name = "Client-" + uid()
    data = os.urandom(200_000)
    make_folder(srv, name, {"report.bin": data, "sub/readme.txt": b"read me"})
    share_add(srv, ALICE, "/" + name, CAROL)
    client = Client(
        {
            "webdav_hostname": srv.url,
            "webdav_login": CAROL,
            "webdav_password": PASSWORDS[CAROL],
            "webdav_root": "/dav/",
            "webdav_timeout": 60,
        }
    )
    assert name in {n.rstrip("/") for n in client.list("/")}
    assert {n.rstrip("/") for n in client.list(name)} == {"report.bin", "sub"}
    assert client.is_dir(name)
    buf = io.BytesIO()
    client.download_from(buf, f"{name}/report.bin")
    assert buf.getvalue() == data
    buf = io.BytesIO()
    client.download_from(buf, f"{name}/sub/readme.txt")
    assert buf.getvalue() == b"read me"
    assert int(client.info(f"{name}/report.bin")["size"]) == len(data)
