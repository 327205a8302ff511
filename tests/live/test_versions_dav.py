"""The versions tree over WebDAV, as Nextcloud's clients use it: a file overwritten 5 times has
5 versions in ``/remote.php/dav/versions/<user>/versions/<fileid>/``, each downloadable (whole
and by Range) with the bytes it had; restoring one makes it the file's content again and keeps
the content it replaced as a version; the file keeps its ``oc:fileid``. Plus what the tree
answers to methods it does not serve, to other users and to bad requests.

The server keeps every version (``[versions] retention = "disabled"``): Nextcloud's default
schedule keeps one version per 2 s in a file's first 10 s, which would thin six quick PUTs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import pytest

from tests.live.conftest import (
    ALICE,
    BOB,
    Server,
    ServerFactory,
    get_bytes,
    members,
    parse_multistatus,
    propfind,
    put,
)
from tests.live.history_dav import (
    NC,
    fileid,
    list_versions,
    move,
    version_restore_url,
    versions_url,
)

D = "{DAV:}"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("versions-dav")
    config = base / "keep-all.toml"
    config.write_text('[versions]\nretention = "disabled"\n')
    factory = ServerFactory(base)
    yield factory(config=config)
    factory.finish()


def _contents() -> list[bytes]:
    """Six different non-empty contents of different sizes (the first is the oldest)."""
    return [os.urandom(1000 + 317 * i) + f"-v{i + 1}".encode() for i in range(6)]


def _overwritten(srv: Server, name: str) -> tuple[str, str, list[bytes]]:
    """alice's ``name`` written 6 times: (its URL, its oc:fileid, the contents in order)."""
    s = srv.session(ALICE)
    url = srv.dav + name
    contents = _contents()
    for c in contents:
        put(s, url, c, headers={"Content-Type": "application/x-test"})
    return url, fileid(s, url), contents


def _by_age(found: dict[str, object]) -> list[str]:
    """Version names, oldest first (ids grow with each version kept)."""
    return sorted(found, key=int)


def test_five_overwrites_make_five_versions_readable_whole_and_by_range(srv: Server) -> None:
    s = srv.session(ALICE)
    url, fid, contents = _overwritten(srv, "five.bin")
    vurl = versions_url(srv, ALICE, fid)
    found = list_versions(s, vurl)
    assert len(found) == 5, sorted(found)
    names = _by_age(found)
    etags = set()
    for name, want in zip(names, contents[:5], strict=True):
        v = found[name]
        assert v.size == len(want), name
        assert v.text(D + "getcontenttype") == "application/x-test"
        etag = v.text(D + "getetag") or ""
        assert re.fullmatch(r'"[^"]+"', etag), etag
        etags.add(etag)
        stamp = v.text(D + "getlastmodified")
        assert stamp is not None and parsedate_to_datetime(stamp).year >= 2024
        assert v.text(NC + "version-author") == ALICE
        assert v.text(NC + "version-label") == ""
        assert get_bytes(s, vurl + name) == want, f"version {name}"
        r = s.get(vurl + name, headers={"Range": "bytes=100-299"})
        assert r.status_code == 206, (name, r.status_code)
        assert r.content == want[100:300]
        assert r.headers["Content-Range"] == f"bytes 100-299/{len(want)}"
        tail = s.get(vurl + name, headers={"Range": "bytes=-7"})
        assert tail.status_code == 206 and tail.content == want[-7:]
    assert len(etags) == 5
    # The current content is not a version.
    assert get_bytes(s, url) == contents[5]


def test_restore_version_two_keeps_what_it_replaces(srv: Server) -> None:
    s = srv.session(ALICE)
    url, fid, contents = _overwritten(srv, "restore.bin")
    vurl = versions_url(srv, ALICE, fid)
    names = _by_age(list_versions(s, vurl))
    second = names[1]
    assert get_bytes(s, vurl + second) == contents[1]

    r = move(s, vurl + second, version_restore_url(srv, ALICE))
    assert r.status_code == 201, (r.status_code, r.text[:300])
    assert r.headers.get("ETag", "").startswith('"')

    g = s.get(url)
    assert g.status_code == 200 and g.content == contents[1]
    assert g.headers["ETag"] == r.headers["ETag"]
    assert fileid(s, url) == fid
    after = list_versions(s, vurl)
    assert len(after) == 6, sorted(after)
    newest = _by_age(after)[-1]
    assert get_bytes(s, vurl + newest) == contents[5], "the replaced content is a version"


def test_methods_and_strangers(srv: Server) -> None:
    s = srv.session(ALICE)
    _url, fid, contents = _overwritten(srv, "methods.bin")
    vurl = versions_url(srv, ALICE, fid)
    name = _by_age(list_versions(s, vurl))[0]
    member = vurl + name

    # OPTIONS says what each resource allows; HEAD is a GET without the body.
    o = s.options(member)
    assert o.status_code == 200
    assert set(o.headers["Allow"].replace(" ", "").split(",")) == {
        "OPTIONS",
        "PROPFIND",
        "GET",
        "HEAD",
        "MOVE",
        "DELETE",
    }
    o = s.options(vurl)
    assert o.status_code == 200 and "MOVE" not in o.headers["Allow"]
    h = s.head(member)
    assert h.status_code == 200 and h.content == b""
    assert int(h.headers["Content-Length"]) == len(contents[0])
    assert s.head(vurl).status_code == 200

    # What the tree does not serve: 405 with Allow, never a 500. (LOCK and UNLOCK are refused
    # by WsgiDAV itself, before the tree is asked, without Allow: nothing here has locks.)
    for method in ("LOCK", "UNLOCK", "BREW"):
        r = s.request(method, member)
        assert r.status_code == 405, (method, r.status_code)
    for method, target in [
        ("PUT", member),
        ("PROPPATCH", member),
        ("COPY", member),
        ("MKCOL", vurl),
        ("POST", member),
        ("DELETE", vurl),
    ]:
        r = s.request(method, target, data=b"x" if method == "PUT" else None)
        assert r.status_code == 405, (method, target, r.status_code, r.text[:200])
        assert "Allow" in r.headers, (method, target)

    # Bad restores: no Destination (400), a Destination elsewhere (403), a missing version.
    assert s.request("MOVE", member).status_code == 400
    assert move(s, member, srv.dav + "elsewhere.bin").status_code == 403
    assert move(s, member, version_restore_url(srv, BOB)).status_code == 403
    assert move(s, vurl + "999999", version_restore_url(srv, ALICE)).status_code == 404
    assert s.request("PROPFIND", vurl, headers={"Depth": "infinity"}).status_code == 403
    # allprop, and no Depth (1 on the folder, 0 on a version), answer too.
    assert name in members(s, vurl)
    r = s.request("PROPFIND", member)
    assert r.status_code == 207 and len(parse_multistatus(r.content)) == 1
    for up in ("", f"{ALICE}/", f"{ALICE}/versions/", f"{ALICE}/restore/"):
        found = propfind(s, f"{srv.url}/remote.php/dav/versions/{up}", "1")
        assert found, up

    # A folder's id, an unknown id, a non-number: not found.
    folder_id = fileid(s, srv.dav)
    for bad in (folder_id, "99999999", "abc", "-1"):
        r = s.request("PROPFIND", versions_url(srv, ALICE, bad), headers={"Depth": "1"})
        assert r.status_code == 404, (bad, r.status_code)

    # Another user: neither through alice's name nor with alice's file id under their own.
    b = srv.session(BOB)
    for target in (vurl, member, versions_url(srv, BOB, fid), versions_url(srv, BOB, fid) + name):
        r = b.request("PROPFIND", target, headers={"Depth": "1"})
        assert r.status_code == 404, (target, r.status_code)
        assert b.get(target).status_code == 404, target
    assert move(b, member, version_restore_url(srv, ALICE)).status_code == 404
    own_tree = versions_url(srv, BOB, fid) + name
    assert move(b, own_tree, version_restore_url(srv, BOB)).status_code == 404
    assert srv.session(None).request("PROPFIND", vurl).status_code == 401
    assert b.delete(member).status_code == 404

    # DELETE lets one version go (Nextcloud's tree allows it); the file is untouched.
    count = len(members(s, vurl))
    assert s.delete(member).status_code == 204
    assert name not in members(s, vurl) and len(members(s, vurl)) == count - 1
    assert s.delete(member).status_code == 404
    assert "Traceback" not in srv.log()


def test_an_old_version_is_inert_in_a_browser(srv: Server) -> None:
    """An HTML version is served as /dav serves files: sandboxed, and as a download."""
    s = srv.session(ALICE)
    url = srv.dav + "page.html"
    put(s, url, b"<script>alert(document.cookie)</script>", headers={"Content-Type": "text/html"})
    put(s, url, b"<p>harmless now</p>", headers={"Content-Type": "text/html"})
    vurl = versions_url(srv, ALICE, fileid(s, url))
    (name,) = list_versions(s, vurl)
    r = s.get(vurl + name)
    assert r.status_code == 200 and r.content.startswith(b"<script>")
    assert r.headers["Content-Type"].startswith("text/html")
    assert "sandbox" in r.headers["Content-Security-Policy"]
    assert r.headers["Content-Disposition"] == "attachment"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
