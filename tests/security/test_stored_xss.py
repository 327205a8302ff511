"""Content a user or link holder uploads is inert in a browser (issue 12, item 3).

``invoice.png`` PUT with ``Content-Type: text/html``, or an ``.svg``, was served inline on the
server's origin with no CSP, no nosniff and no Content-Disposition, by ``/dav/`` and
``/public/``: a script in it ran with the origin of a browser that had logged in to ``/dav/``.
Now every answer says ``nosniff``; user content comes with a sandboxing CSP, and as an
attachment unless its type is one a browser shows without running anything; davdisk's own HTML
pages carry CSP, frame-ancestors, X-Frame-Options and Referrer-Policy.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.live.conftest import ALICE, Server
from tests.live.sharing_helpers import mkdirs, sess, share_link, start_share_server, uid

SCRIPT = b"<html><body><script>fetch('/dav/', {method: 'PROPFIND'})</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>'
ACTIVE = [
    ("invoice.png", "text/html", SCRIPT),
    ("page.html", None, SCRIPT),
    ("drawing.svg", None, SVG),
    ("drawing2.svg", "image/svg+xml", SVG),
    ("data.xml", "application/xml", b"<?xml version='1.0'?><x/>"),
    ("code.js", "text/javascript", b"alert(1)"),
    ("page.xhtml", "application/xhtml+xml", SCRIPT),
]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_share_server(tmp_path_factory, "xss")


def _assert_inert(r: requests.Response, what: str) -> None:
    assert r.status_code == 200, (what, r.status_code)
    assert r.headers.get("X-Content-Type-Options") == "nosniff", (what, r.headers)
    csp = r.headers.get("Content-Security-Policy", "")
    assert "sandbox" in csp and "default-src 'none'" in csp, (what, csp)
    assert r.headers.get("Content-Disposition", "").startswith("attachment"), (what, r.headers)


@pytest.mark.parametrize(("name", "ctype", "body"), ACTIVE)
def test_active_content_is_an_attachment_in_a_sandbox(
    srv: Server, name: str, ctype: str | None, body: bytes
) -> None:
    alice = sess(srv, ALICE)
    folder = f"xss-{uid()}"
    mkdirs(alice, f"{srv.dav}{folder}/")
    headers = {"Content-Type": ctype} if ctype else {}
    assert alice.put(f"{srv.dav}{folder}/{name}", data=body, headers=headers).status_code == 201
    _assert_inert(alice.get(f"{srv.dav}{folder}/{name}"), f"/dav/ {name}")
    link = share_link(srv, ALICE, f"/{folder}", upload=True)
    anon = srv.session(None)
    _assert_inert(anon.get(link.public + name), f"/public/ {name}")
    # Uploaded through the link by a stranger: the same.
    assert anon.put(link.public + "x" + name, data=body, headers=headers).status_code == 201
    _assert_inert(anon.get(link.public + "x" + name), f"/public/ x{name}")


def test_passive_content_stays_inline_but_sandboxed(srv: Server) -> None:
    alice = sess(srv, ALICE)
    name = f"photo-{uid()}.png"
    assert alice.put(srv.dav + name, data=b"\x89PNG\r\n\x1a\n", headers={}).status_code == 201
    r = alice.get(srv.dav + name)
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    assert "sandbox" in r.headers.get("Content-Security-Policy", "")
    assert "Content-Disposition" not in r.headers  # an image may be shown


def test_own_pages_carry_security_headers(srv: Server) -> None:
    alice = sess(srv, ALICE)
    folder = f"page-{uid()}"
    mkdirs(alice, f"{srv.dav}{folder}/")
    link = share_link(srv, ALICE, f"/{folder}")
    for url in (link.s + "/", srv.url + "/", srv.dav + "no-such-file"):
        r = alice.get(url) if url.startswith(srv.dav) else srv.session(None).get(url)
        assert r.headers.get("X-Content-Type-Options") == "nosniff", url
        csp = r.headers.get("Content-Security-Policy", "")
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, (url, csp)
        assert r.headers.get("X-Frame-Options") == "DENY", url
        assert r.headers.get("Referrer-Policy") == "no-referrer", url
