"""The trash tree over WebDAV, as Nextcloud's clients use it: a DELETE of a folder is one item
in ``/remote.php/dav/trashbin/<user>/trash/`` with Nextcloud's properties; MOVE into
``restore/`` brings it back byte for byte with the same file ids (under ``name (restored)`` when
the name was taken meanwhile, in the home when its folder is gone); DELETE purges one item,
DELETE of ``trash`` empties it. Plus what the tree answers to other methods and users."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests

from tests.live.conftest import (
    ALICE,
    BOB,
    Server,
    ServerFactory,
    get_bytes,
    members,
    parse_multistatus,
    put,
)
from tests.live.history_dav import (
    NC,
    OC,
    fileid,
    list_trash,
    move,
    trash_restore_url,
    trash_url,
)

D = "{DAV:}"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    factory = ServerFactory(tmp_path_factory.mktemp("trash-dav"))
    yield factory()
    factory.finish()


def _mkcol(s: requests.Session, url: str) -> None:
    r = s.request("MKCOL", url)
    assert r.status_code == 201, (url, r.status_code)


def _tree(srv: Server, s: requests.Session, top: str) -> dict[str, bytes]:
    """``top/`` holding two files and a sub-folder with a third; {path below top: bytes}."""
    files = {"a.txt": b"alpha " * 100, "b.bin": os.urandom(5000), "sub/c.bin": os.urandom(70000)}
    _mkcol(s, srv.dav + top + "/")
    _mkcol(s, srv.dav + top + "/sub/")
    for rel, data in files.items():
        put(s, f"{srv.dav}{top}/{rel}", data)
    return files


def test_delete_folder_then_restore_brings_everything_back(srv: Server) -> None:
    s = srv.session(ALICE)
    _mkcol(s, srv.dav + "work/")
    files = _tree(srv, s, "work/proj")
    ids = {rel: fileid(s, f"{srv.dav}work/proj/{rel}") for rel in files}
    folder_id = fileid(s, srv.dav + "work/proj/")

    before = time.time()
    r = s.delete(srv.dav + "work/proj/")
    assert r.status_code == 204
    assert s.request("PROPFIND", srv.dav + "work/proj/").status_code == 404

    items = list_trash(s, trash_url(srv, ALICE))
    mine = {k: v for k, v in items.items() if v.text(NC + "trashbin-filename") == "proj"}
    assert len(mine) == 1, sorted(items)
    ((key, item),) = mine.items()
    stamp = item.text(NC + "trashbin-deletion-time")
    assert stamp is not None and before - 1 <= int(stamp) <= time.time() + 1
    assert key == f"proj.d{stamp}"
    assert item.text(NC + "trashbin-original-location") == "work/proj"
    assert item.text(NC + "trashbin-deleted-by-id") == ALICE
    assert item.is_collection
    assert item.text(OC + "fileid") == folder_id
    assert item.text(OC + "size") == str(sum(len(d) for d in files.values()))
    assert item.text(D + "getlastmodified")

    # Inside a trashed folder nothing is browsable on its own.
    inside = s.request("PROPFIND", trash_url(srv, ALICE) + key + "/", headers={"Depth": "1"})
    assert inside.status_code == 207 and len(parse_multistatus(inside.content)) == 1
    deeper = trash_url(srv, ALICE) + key + "/a.txt"
    assert s.request("PROPFIND", deeper, headers={"Depth": "0"}).status_code == 404

    r = move(s, trash_url(srv, ALICE) + key, trash_restore_url(srv, ALICE, "proj"))
    assert r.status_code == 201, (r.status_code, r.text[:300])
    for rel, data in files.items():
        assert get_bytes(s, f"{srv.dav}work/proj/{rel}") == data, rel
        assert fileid(s, f"{srv.dav}work/proj/{rel}") == ids[rel], rel
    assert fileid(s, srv.dav + "work/proj/") == folder_id
    assert key not in list_trash(s, trash_url(srv, ALICE))


def test_deleted_file_item_and_restore_under_a_taken_name(srv: Server) -> None:
    s = srv.session(ALICE)
    _mkcol(s, srv.dav + "clash/")
    old, new = os.urandom(3000), b"the newer one"
    url = srv.dav + "clash/report.txt"
    put(s, url, old, headers={"Content-Type": "text/plain"})
    old_id = fileid(s, url)
    assert s.delete(url).status_code == 204
    put(s, url, new)

    items = list_trash(s, trash_url(srv, ALICE))
    ((key, item),) = [
        (k, v)
        for k, v in items.items()
        if v.text(NC + "trashbin-original-location") == "clash/report.txt"
    ]
    assert not item.is_collection
    assert item.size == len(old)
    assert item.text(D + "getcontenttype") == "text/plain"
    assert item.text(OC + "fileid") == old_id
    # A trashed file is not read before it is restored.
    assert s.get(trash_url(srv, ALICE) + key).status_code == 405

    r = move(s, trash_url(srv, ALICE) + key, trash_restore_url(srv, ALICE, "report.txt"))
    assert r.status_code == 201
    assert r.headers.get("ETag", "").startswith('"')
    assert r.headers.get("OC-FileId") == old_id
    assert get_bytes(s, url) == new
    restored = srv.dav + "clash/report%20(restored).txt"
    assert get_bytes(s, restored) == old
    assert fileid(s, restored) == old_id

    # Its folder gone (in the trash too): back into the home.
    put(s, srv.dav + "clash/lonely.txt", b"lonely")
    assert s.delete(srv.dav + "clash/lonely.txt").status_code == 204
    assert s.delete(srv.dav + "clash/").status_code == 204
    items = list_trash(s, trash_url(srv, ALICE))
    (lonely,) = [k for k, v in items.items() if v.text(NC + "trashbin-filename") == "lonely.txt"]
    r = move(s, trash_url(srv, ALICE) + lonely, trash_restore_url(srv, ALICE, "lonely.txt"))
    assert r.status_code == 201
    assert get_bytes(s, srv.dav + "lonely.txt") == b"lonely"


def test_purge_one_then_empty_the_trash(srv: Server) -> None:
    b = srv.session(BOB)
    for name in ("one.txt", "two.txt", "three.txt"):
        put(b, srv.dav + name, name.encode() * 10)
        assert b.delete(srv.dav + name).status_code == 204
    _tree(srv, b, "gone")
    assert b.delete(srv.dav + "gone/").status_code == 204
    items = list_trash(b, trash_url(srv, BOB))
    assert len(items) == 4, sorted(items)
    (two,) = [k for k, v in items.items() if v.text(NC + "trashbin-filename") == "two.txt"]

    r = b.delete(trash_url(srv, BOB) + two)
    assert r.status_code == 204
    left = list_trash(b, trash_url(srv, BOB))
    assert sorted(v.text(NC + "trashbin-filename") for v in left.values()) == [
        "gone",
        "one.txt",
        "three.txt",
    ]
    assert b.delete(trash_url(srv, BOB) + two).status_code == 404
    assert move(b, trash_url(srv, BOB) + two, trash_restore_url(srv, BOB, "x")).status_code == 404

    r = b.delete(trash_url(srv, BOB).rstrip("/"))
    assert r.status_code == 204
    assert list_trash(b, trash_url(srv, BOB)) == {}
    assert b.request("PROPFIND", srv.dav + "one.txt").status_code == 404


def test_methods_and_strangers(srv: Server) -> None:
    a = srv.session(ALICE)
    name = "sé cret #1.txt"  # escaped in URLs, in hrefs and in Destination
    put(a, srv.dav + quote(name), b"alice's secret")
    assert a.delete(srv.dav + quote(name)).status_code == 204
    items = list_trash(a, trash_url(srv, ALICE))
    (key,) = [k for k, v in items.items() if v.text(NC + "trashbin-filename") == name]
    member = trash_url(srv, ALICE) + quote(key)
    # allprop, and no Depth (1 on a folder, 0 on an item), answer too.
    assert key in members(a, trash_url(srv, ALICE))
    r = a.request("PROPFIND", member)
    assert r.status_code == 207 and len(parse_multistatus(r.content)) == 1

    o = a.options(trash_url(srv, ALICE))
    assert o.status_code == 200 and "DELETE" in o.headers["Allow"]
    o = a.options(member)
    assert set(o.headers["Allow"].replace(" ", "").split(",")) == {
        "OPTIONS",
        "PROPFIND",
        "MOVE",
        "DELETE",
    }
    assert a.head(trash_url(srv, ALICE)).status_code == 200
    for method, target in [
        ("GET", member),
        ("HEAD", member),
        ("PUT", member),
        ("COPY", member),
        ("PROPPATCH", member),
        ("MKCOL", trash_url(srv, ALICE) + "new/"),
        ("MOVE", trash_url(srv, ALICE)),
    ]:
        r = a.request(method, target, data=b"x" if method == "PUT" else None)
        assert r.status_code in (404, 405), (method, target, r.status_code)
        if r.status_code == 405:
            assert "Allow" in r.headers
    for method in ("LOCK", "UNLOCK", "BREW"):
        assert a.request(method, member).status_code == 405, method
    assert a.request("MOVE", member).status_code == 400
    assert move(a, member, srv.dav + "secret.txt").status_code == 403
    assert move(a, member, trash_url(srv, ALICE) + "elsewhere").status_code == 403
    assert move(a, member, trash_restore_url(srv, BOB, "secret.txt")).status_code == 403

    # bob sees neither alice's trash nor her items, under her name or his.
    b = srv.session(BOB)
    for target in (trash_url(srv, ALICE), member, trash_url(srv, BOB) + quote(key)):
        r = b.request("PROPFIND", target, headers={"Depth": "1"})
        assert r.status_code == 404, (target, r.status_code)
    assert move(b, member, trash_restore_url(srv, ALICE, "x")).status_code == 404
    assert b.delete(member).status_code == 404
    assert b.delete(trash_url(srv, ALICE)).status_code == 404
    assert key not in list_trash(b, trash_url(srv, BOB))
    assert srv.session(None).request("PROPFIND", trash_url(srv, ALICE)).status_code == 401
    # Still there, untouched; and it comes back under its name.
    assert key in list_trash(a, trash_url(srv, ALICE))
    restore = trash_restore_url(srv, ALICE, name)
    assert move(a, member, restore).status_code == 201
    assert get_bytes(a, srv.dav + quote(name)) == b"alice's secret"
    assert "Traceback" not in srv.log()
