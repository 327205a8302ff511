"""Attack (issue 12, item 20, first half): learn what the server runs from its answers.

A PUT or MKCOL that created something answered 201 with WsgiDAV's HTML status page, which names
WsgiDAV and its version (and the server's clock); the landing page named davdisk's version to
anyone. A scanner matches such strings against lists of known holes. Every answer here — 201
and 204 of every method, error pages, the landing page, an upload link's answers — must carry
no server name with a version, and no WsgiDAV at all: 204 never a body, 201 no page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib.metadata import version

import pytest
import requests

from tests.live.conftest import ALICE, RawConnection, Server, lock, raw_request
from tests.live.sharing_helpers import sess, share_link, start_share_server, uid

LOCK_OWNER = "fingerprint-test"
_VERSIONS = {version("wsgidav"), version("cheroot"), version("davdisk")}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_share_server(tmp_path_factory, "fingerprint")


def revealing(headers: dict[str, str], body: bytes) -> list[str]:
    """What in an answer names the software behind it or a version of it."""
    found = []
    text = "\n".join(f"{k}: {v}" for k, v in headers.items()) + "\n" + body.decode("latin-1")
    if "wsgidav" in text.lower():
        found.append("WsgiDAV")
    if "cheroot" in text.lower():
        found.append("cheroot")
    found += [f"version {v}" for v in _VERSIONS if re.search(rf"(?<![\d.]){re.escape(v)}", text)]
    server = headers.get("Server", headers.get("server", ""))
    if re.search(r"\d", server):
        found.append(f"Server: {server}")
    return found


class Answers:
    """Every answer of a scenario, checked as it comes."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def check(self, what: str, r: requests.Response, status: int | None = None) -> None:
        self.take(what, r.status_code, dict(r.headers), r.content, status)

    def take(
        self, what: str, code: int, headers: dict[str, str], body: bytes, status: int | None
    ) -> None:
        if status is not None and code != status:
            self.problems.append(f"{what}: status {code}, expected {status}")
        for leak in revealing(headers, body):
            self.problems.append(f"{what} ({code}) reveals {leak}: {body[:120]!r}")
        if code == 204 and body:
            self.problems.append(f"{what}: a 204 with a body {body[:80]!r}")
        if code == 201 and body and "LOCK" not in what:  # a LOCK's 201 carries the lock
            self.problems.append(f"{what}: a 201 with a body {body[:80]!r}")


def test_no_answer_names_the_software_or_its_version(srv: Server) -> None:
    s = sess(srv, ALICE)
    a = Answers()
    d = srv.dav + f"fp-{uid()}/"
    a.check("MKCOL", s.request("MKCOL", d), 201)
    a.check("PUT new", s.put(d + "a.txt", data=b"a"), 201)
    a.check("PUT over", s.put(d + "a.txt", data=b"aa"), 204)
    a.check("COPY new", s.request("COPY", d + "a.txt", headers={"Destination": d + "b.txt"}), 201)
    a.check("COPY over", s.request("COPY", d + "a.txt", headers={"Destination": d + "b.txt"}), 204)
    a.check("MOVE new", s.request("MOVE", d + "b.txt", headers={"Destination": d + "c.txt"}), 201)
    a.check("MOVE over", s.request("MOVE", d + "c.txt", headers={"Destination": d + "a.txt"}), 204)
    a.check("MKCOL sub", s.request("MKCOL", d + "sub/"), 201)
    a.check("COPY folder", s.request("COPY", d + "sub/", headers={"Destination": d + "s2/"}), 201)
    a.check(
        "PROPPATCH",
        s.request(
            "PROPPATCH",
            d + "a.txt",
            data=b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:T="urn:t">'
            b"<D:set><D:prop><T:x>1</T:x></D:prop></D:set></D:propertyupdate>",
        ),
        207,
    )
    r, token = lock(s, d + "locked.txt", owner=LOCK_OWNER, expect=(201,))
    a.check("LOCK new", r, 201)
    a.check("PUT locked", s.put(d + "locked.txt", data=b"x"), 423)
    a.check("UNLOCK", s.request("UNLOCK", d + "locked.txt", headers={"Lock-Token": f"<{token}>"}))
    a.check("DELETE", s.delete(d + "a.txt"), 204)
    a.check("DELETE folder", s.delete(d + "s2/"), 204)
    a.check("MKCOL exists", s.request("MKCOL", d + "sub/"), 405)
    a.check("GET missing", s.get(d + "nothing"), 404)
    a.check("GET folder", s.get(d), 200)
    a.check("OPTIONS", s.options(d), 200)
    a.check("landing page", srv.session(None).get(srv.url + "/"), 200)
    a.check("401", srv.session(None).get(srv.dav), 401)
    a.check("wrong password", srv.session(ALICE, "wrong-password").get(srv.dav), 401)
    a.check("unknown path", srv.session(None).get(srv.url + "/nope"), 404)
    code, headers, body = raw_request(srv, "GET", "/dav/../../etc/passwd")
    a.take("path escaping the root", code, headers, body, None)
    code, headers, body = raw_request(srv, "BREW", "/dav/")
    a.take("unknown method", code, headers, body, None)

    for junk in (b"NONSENSE\r\n\r\n", b"GET /dav/ HTTP/1.1\r\nHost\r\n\r\n"):
        raw = RawConnection(srv)
        raw.send(junk)
        answer = b""
        while chunk := raw.sock.recv(65536):
            answer += chunk
        raw.abort()
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        a.take(f"malformed request {junk[:12]!r}", int(lines[0].split()[1]), fields, body, 400)

    link = share_link(srv, ALICE, "/" + d.rstrip("/").rsplit("/", 1)[-1], upload=True)
    anon = srv.session(None)
    a.check("link PUT", anon.put(link.public + "dropped.txt", data=b"d"), 201)
    a.check("link MKCOL", anon.request("MKCOL", link.public + "made/"), 201)
    a.check("link page", anon.get(link.s))
    assert not a.problems, "\n".join(a.problems)
