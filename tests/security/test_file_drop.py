"""A file-drop link lets strangers hand files in and nothing else (issue 12, item 2).

Before, a folder could be linked read-only or editable (``--upload``: read, add and change),
so asking strangers for files meant showing them everything already in the folder. A file drop
(``share link --file-drop``) may create new files and folders; it may not read, list, overwrite,
lock, change properties of, move, copy or delete anything - not even what it dropped itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.live.conftest import ALICE, Server, lock
from tests.live.sharing_helpers import (
    Link,
    cli_err,
    cli_ok,
    mkdirs,
    parse_link,
    put_ok,
    sess,
    share_add,
    share_link,
    share_list,
    snapshot,
    start_share_server,
    uid,
    unchanged,
)

SECRET = b"the secret already in the folder"
PROPPATCH_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" '
    b'xmlns:t="urn:davdisk-share-test"><D:set><D:prop><t:note>x</t:note></D:prop></D:set>'
    b"</D:propertyupdate>"
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_share_server(tmp_path_factory, "filedrop")


def drop_link(srv: Server, path: str) -> Link:
    out = cli_ok(srv, "share", "link", ALICE, path, "--file-drop", "--base-url", srv.url)
    return parse_link(out, srv.url)


def inbox(srv: Server) -> tuple[requests.Session, str, str]:
    """Alice's folder with a file and a subfolder in it: (alice, its URL, its path)."""
    alice = sess(srv, ALICE)
    name = f"inbox-{uid()}"
    top = f"{srv.dav}{name}/"
    mkdirs(alice, top)
    mkdirs(alice, top + "sub/")
    put_ok(alice, top + "secret.txt", SECRET)
    put_ok(alice, top + "sub/inner.txt", SECRET)
    return alice, top, f"/{name}"


def propfind(s: requests.Session, url: str, depth: str) -> requests.Response:
    return s.request("PROPFIND", url, headers={"Depth": depth})


def test_help_and_list_say_which_link_is_which(srv: Server) -> None:
    text = cli_ok(srv, "share", "link", "--help")
    assert "--file-drop" in text and "--upload" in text, text
    _alice, _top, path = inbox(srv)
    drop_link(srv, path)
    line = next(ln for ln in share_list(srv) if path in ln.split())
    assert "drop" in line and "read" not in line, line


def test_drop_creates_new_names_only(srv: Server) -> None:
    alice, top, path = inbox(srv)
    link = drop_link(srv, path)
    anon = srv.session(None)
    r = anon.put(link.public + "handed-in.txt", data=b"for alice")
    assert r.status_code == 201, (r.status_code, r.text[:300])
    assert alice.get(top + "handed-in.txt").content == b"for alice"
    # New folders too, and files in them (a client uploading a folder).
    assert anon.request("MKCOL", link.public + "batch/").status_code == 201
    assert anon.put(link.public + "batch/one.txt", data=b"1").status_code == 201
    assert alice.get(top + "batch/one.txt").content == b"1"
    before = snapshot(alice, top)
    # Nothing that is there can be replaced: alice's file, nor what the drop handed in.
    for name in ("secret.txt", "handed-in.txt", "sub/inner.txt", "batch/one.txt"):
        r = anon.put(link.public + name, data=b"overwritten")
        assert r.status_code == 403, (name, r.status_code)
    unchanged(before, snapshot(alice, top), "PUT over existing files through a file drop")


def test_drop_reveals_nothing(srv: Server) -> None:
    _alice, _top, path = inbox(srv)
    link = drop_link(srv, path)
    anon = srv.session(None)
    assert anon.put(link.public + "handed-in.txt", data=b"for alice").status_code == 201
    names = (b"secret.txt", b"sub", b"inner.txt", b"handed-in.txt")
    for url, hidden in ((link.public, names), (link.public + "sub/", names[2:])):
        for depth in ("0", "1", None):
            r = anon.request("PROPFIND", url, headers={"Depth": depth} if depth else {})
            assert not any(n in r.content for n in hidden), (url, depth, r.content[:500])
            assert r.status_code in (207, 403, 404), (url, depth, r.status_code)
    # A client checks the drop is a folder before uploading: the root answers, as a folder.
    r = propfind(anon, link.public, "0")
    assert r.status_code == 207 and b"collection" in r.content, (r.status_code, r.content)
    for name in ("secret.txt", "sub/inner.txt", "handed-in.txt"):
        for method in ("GET", "HEAD"):
            r = anon.request(method, link.public + name)
            assert r.status_code in (403, 404), (method, name, r.status_code)
            assert SECRET not in r.content and b"for alice" not in r.content
        r = propfind(anon, link.public + name, "0")
        assert r.status_code in (403, 404), (name, r.status_code)
    # The /s/ download page of the link serves nothing either.
    r = anon.get(link.s)
    assert SECRET not in r.content and b"secret.txt" not in r.content, r.content[:300]


@pytest.mark.parametrize("target", ["secret.txt", "sub/", "handed-in.txt", ""])
def test_drop_cannot_change_anything(srv: Server, target: str) -> None:
    alice, top, path = inbox(srv)
    link = drop_link(srv, path)
    anon = srv.session(None)
    assert anon.put(link.public + "handed-in.txt", data=b"for alice").status_code == 201
    before = snapshot(alice, top)
    url = link.public + target
    attempts = {
        "DELETE": anon.delete(url),
        "COPY": anon.request("COPY", url, headers={"Destination": link.public + f"c-{uid()}"}),
        "MOVE": anon.request("MOVE", url, headers={"Destination": link.public + f"m-{uid()}"}),
        "PROPPATCH": anon.request(
            "PROPPATCH", url, data=PROPPATCH_BODY, headers={"Content-Type": "application/xml"}
        ),
        "LOCK": lock(anon, url, expect=(200, 201, 403, 404, 423))[0],
        # A LOCK on a new name would create an empty file that the drop then holds a lock on.
        "LOCK new": lock(anon, link.public + f"new-{uid()}.txt", expect=(200, 201, 403))[0],
    }
    for what, r in attempts.items():
        assert r.status_code == 403, (what, target, r.status_code, r.text[:300])
    unchanged(before, snapshot(alice, top), f"writes to {target!r} through a file drop")


def test_editable_and_read_only_links_unchanged(srv: Server) -> None:
    alice, top, path = inbox(srv)
    editable = share_link(srv, ALICE, path, upload=True)
    read_only = share_link(srv, ALICE, path)
    drop = drop_link(srv, path)
    anon = srv.session(None)
    for link in (editable, read_only):
        assert anon.get(link.public + "secret.txt").content == SECRET
        assert b"secret.txt" in propfind(anon, link.public, "1").content
    assert anon.put(editable.public + "secret.txt", data=b"changed").status_code == 204
    assert alice.get(top + "secret.txt").content == b"changed"
    assert anon.put(read_only.public + "new.txt", data=b"x").status_code == 403
    lines = [ln.split() for ln in share_list(srv) if path in ln.split()]
    perms = sorted(f for fields in lines for f in fields if f.split(",")[0] in ("read", "drop"))
    assert perms == ["drop", "read", "read,upload"], lines
    assert anon.get(drop.public + "secret.txt").status_code in (403, 404)


def test_drop_needs_a_folder_and_the_right_to_write(srv: Server) -> None:
    alice, top, path = inbox(srv)
    cli_err(srv, "share", "link", ALICE, path + "/secret.txt", "--file-drop")
    cli_err(srv, "share", "link", ALICE, path, "--file-drop", "--upload")
    share_add(srv, ALICE, path, "bob", reshare=True)  # read-only, may share on
    err = cli_err(srv, "share", "link", "bob", path, "--file-drop")
    assert "may not" in err, err
    assert alice.get(top + "secret.txt").content == SECRET
