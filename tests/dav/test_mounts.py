"""Which face answers which path (app.py's mount table), as seen from outside: the probes,
the WebDAV tree and its edges, the public trees, link pages, the landing page, and 404."""

from __future__ import annotations

import pytest

from tests.dav.conftest import Client

LANDING = b"Mount /dav/ with a WebDAV client"


@pytest.mark.parametrize("path", ["*", "/", "/dav", "/dav/"])
def test_anonymous_options_probes_are_answered_before_any_face(anon: Client, path: str) -> None:
    r = anon.request("OPTIONS", path)
    assert (r.status, r.body) == (200, b"")
    assert r.headers["dav"] == "1, 2" and "PROPFIND" in r.headers["allow"]


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", "/", 200, LANDING),
        ("HEAD", "/", 200, b""),
        ("POST", "/", 404, b"not found\n"),
        ("PUT", "/", 404, b"not found\n"),
        ("GET", "/davx", 404, b"not found\n"),
        ("GET", "/dav.txt", 404, b"not found\n"),
        ("GET", "/public", 404, b"not found\n"),
        ("GET", "/s", 404, b"not found\n"),
        ("GET", "/index.html", 404, b"not found\n"),
        ("OPTIONS", "/other", 404, b"not found\n"),
        ("GET", "/s/", 404, b"<p>No such link.</p>"),
        ("GET", "/s/no-such-token", 404, b"<p>No such link.</p>"),
        ("PUT", "/s/no-such-token", 405, b""),
    ],
)
def test_paths_outside_the_trees(
    anon: Client, method: str, path: str, status: int, body: bytes
) -> None:
    r = anon.request(method, path)
    assert r.status == status
    assert body in r.body if body else r.body == b""


def test_the_trees_go_to_webdav(anon: Client, alice: Client) -> None:
    # /dav itself and everything below it is the users' tree: a login is asked for.
    for path in ("/dav", "/dav/", "/dav/x/y"):
        r = anon.request("PROPFIND", path, headers={"Depth": "0"})
        assert r.status == 401 and "davdisk" in r.headers["www-authenticate"], path
    assert alice.request("PROPFIND", "/dav", headers={"Depth": "0"}).status == 207
    # Below /public/ a token names a link: an unknown one names nothing.
    assert anon.request("PROPFIND", "/public/nope/", headers={"Depth": "0"}).status == 404


def test_a_head_answer_has_no_body_whoever_answers(anon: Client) -> None:
    for path in ("/", "/dav/", "/nowhere", "/s/nope"):
        r = anon.request("HEAD", path)
        assert r.body == b"", path
