"""``Expect: 100-continue``: the server decides everything it can before it asks for the body.

A client that sends ``Expect: 100-continue`` waits for ``100 Continue`` before it sends the
body. A PUT that will be refused anyway - wrong password (401), over the quota (507), over
``max_upload`` (413), no parent (409), locked (423), read-only share (403) - must get that final
status instead, and never a 100, so the client sends nothing (RFC 9110 10.1.1). Driven over raw
sockets, since ``requests`` never sends ``Expect``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
import requests

from tests.live.clients import RawClient, RawResponse
from tests.live.conftest import (
    ALICE,
    Server,
    ServerFactory,
    copy_data_dir,
    get_bytes,
    lock,
    put,
    q,
)
from tests.live.sharing_helpers import (
    PASSWORDS,
    RO,
    _template_data_dir,
    sess,
    set_quota,
    share_add,
)

MAX_UPLOAD = 1 << 20
QUOTA_USER = "carol"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the sharing test users and a 1 MiB ``max_upload``."""
    template = _template_data_dir(tmp_path_factory)
    base = tmp_path_factory.mktemp("expect")
    data_dir = base / "data"
    copy_data_dir(template, data_dir, ignore=shutil.ignore_patterns(".complete"))
    config = base / "davdisk.toml"
    config.write_text(f'[limits]\nmax_upload = "{MAX_UPLOAD}"\n')
    factory = ServerFactory(base)
    yield factory(data_dir=data_dir, config=config)
    factory.finish()


def expect_put(
    srv: Server,
    path: str,
    data: bytes,
    *,
    user: str = ALICE,
    password: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    length: int | None = None,
) -> tuple[list[int], RawResponse]:
    """PUT with ``Expect: 100-continue``: headers, then the body only after a 100. Returns the
    statuses received (100 included) and the final answer."""
    with RawClient(srv, timeout=10) as c:
        auth = srv.auth_header(user, password if password is not None else PASSWORDS[user])
        c.send_head(
            "PUT",
            path,
            [
                ("Authorization", auth),
                ("Content-Length", str(len(data) if length is None else length)),
                ("Expect", "100-continue"),
                *headers,
            ],
        )
        try:
            first = c.read_response("PUT")
        except TimeoutError:
            pytest.fail(f"PUT {path}: no answer at all within 10 s of the request head")
        seen = [first.status]
        if first.status != 100:
            return seen, first
        c.send(data)
        final = c.read_response("PUT")
        seen.append(final.status)
        return seen, final


def test_valid_put_gets_100_then_its_final_status(srv: Server) -> None:
    s = sess(srv, ALICE)
    data = os.urandom(300_000)
    seen, final = expect_put(srv, "/dav/expect-ok.bin", data)
    assert seen == [100, 201], (seen, final.body[:200])
    assert get_bytes(s, srv.dav + "expect-ok.bin") == data
    data2 = os.urandom(1000)
    seen, _ = expect_put(srv, "/dav/expect-ok.bin", data2)
    assert seen == [100, 204]
    assert get_bytes(s, srv.dav + "expect-ok.bin") == data2


def _refused(srv: Server, seen: list[int], final: RawResponse, status: int) -> None:
    assert seen == [status], f"expected {status} and no 100 Continue, got {seen}"
    assert b"Traceback" not in final.body
    # The client sent no body; the connection is not reused for one that may yet arrive.
    assert final.headers.get("connection", "").lower() == "close", final.headers


def test_wrong_password_is_401_without_100(srv: Server) -> None:
    s = sess(srv, ALICE)
    put(s, srv.dav + "expect-401.bin", b"old")
    seen, final = expect_put(srv, "/dav/expect-401.bin", os.urandom(50_000), password="wrong")
    _refused(srv, seen, final, 401)
    assert "www-authenticate" in final.headers
    assert get_bytes(s, srv.dav + "expect-401.bin") == b"old"


def test_full_quota_is_507_without_100(srv: Server) -> None:
    s = sess(srv, QUOTA_USER)
    set_quota(srv, QUOTA_USER, "100K")
    put(s, srv.dav + "fill.bin", os.urandom(90_000))
    seen, final = expect_put(srv, "/dav/more.bin", os.urandom(50_000), user=QUOTA_USER)
    _refused(srv, seen, final, 507)
    assert s.get(srv.dav + "more.bin").status_code == 404
    # An upload that fits is still asked for.
    seen, _ = expect_put(srv, "/dav/small.bin", b"x" * 1000, user=QUOTA_USER)
    assert seen == [100, 201]


def test_over_max_upload_is_413_without_100(srv: Server) -> None:
    seen, final = expect_put(srv, "/dav/huge.bin", b"", length=MAX_UPLOAD + 1)
    _refused(srv, seen, final, 413)
    assert sess(srv, ALICE).get(srv.dav + "huge.bin").status_code == 404


def test_missing_parent_is_409_without_100(srv: Server) -> None:
    seen, final = expect_put(srv, "/dav/no-such-folder/x.bin", os.urandom(10_000))
    _refused(srv, seen, final, 409)


def test_locked_file_is_423_without_100(srv: Server) -> None:
    s = sess(srv, ALICE)
    put(s, srv.dav + "expect-locked.bin", b"locked content")
    _, token = lock(s, srv.dav + "expect-locked.bin")
    assert token
    seen, final = expect_put(srv, "/dav/expect-locked.bin", os.urandom(10_000))
    _refused(srv, seen, final, 423)
    assert get_bytes(s, srv.dav + "expect-locked.bin") == b"locked content"
    # With the lock token the same upload is asked for and stored.
    seen, _ = expect_put(srv, "/dav/expect-locked.bin", b"new", headers=(("If", f"(<{token}>)"),))
    assert seen == [100, 204]


def test_read_only_share_is_403_without_100(srv: Server) -> None:
    s = sess(srv, ALICE)
    r = s.request("MKCOL", srv.dav + "expect-shared/")
    assert r.status_code == 201
    share_add(srv, ALICE, "/expect-shared", RO)
    reader: requests.Session = sess(srv, RO)
    assert reader.request("PROPFIND", srv.dav + "expect-shared/", headers={"Depth": "0"}).ok
    seen, final = expect_put(srv, "/dav/" + q("expect-shared") + "/x.bin", b"data", user=RO)
    _refused(srv, seen, final, 403)


def test_chunked_upload_with_wrong_password_is_401_without_100(srv: Server) -> None:
    with RawClient(srv, timeout=10) as c:
        c.send_head(
            "PUT",
            "/dav/chunked.bin",
            [
                ("Authorization", srv.auth_header(ALICE, "wrong")),
                ("Transfer-Encoding", "chunked"),
                ("Expect", "100-continue"),
            ],
        )
        first = c.read_response("PUT")
    assert first.status == 401, first.status


PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:getetag/></D:prop></D:propfind>"
)
LOCK_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
    b"<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    b"</D:lockinfo>"
)
BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">]>'
    b'<D:propfind xmlns:D="DAV:"><D:prop>&a;</D:prop></D:propfind>'
)


def expect_xml(
    srv: Server, method: str, path: str, body: bytes, password: str | None = None
) -> list[int]:
    """An XML request with ``Expect: 100-continue``; the statuses received (100 included)."""
    with RawClient(srv, timeout=10) as c:
        c.send_head(
            method,
            path,
            [
                ("Authorization", srv.auth_header(ALICE, password or PASSWORDS[ALICE])),
                ("Content-Type", "application/xml"),
                ("Content-Length", str(len(body))),
                ("Depth", "0"),
                ("Expect", "100-continue"),
            ],
        )
        first = c.read_response(method)
        if first.status != 100:
            assert b"Traceback" not in first.body
            return [first.status]
        c.send(body)
        return [100, c.read_response(method).status]


@pytest.mark.parametrize(("method", "body"), [("PROPFIND", PROPFIND_BODY), ("LOCK", LOCK_BODY)])
def test_xml_request_with_wrong_password_is_401_without_100(
    srv: Server, method: str, body: bytes
) -> None:
    """Not only PUT: an XML body is vetted before it is handed on, and that read must not come
    before the login either."""
    put(sess(srv, ALICE), srv.dav + "expect-xml.txt", b"x")
    assert expect_xml(srv, method, "/dav/expect-xml.txt", body, password="wrong") == [401]


def test_xml_request_is_asked_for_and_vetted_after_the_login(srv: Server) -> None:
    put(sess(srv, ALICE), srv.dav + "expect-xml2.txt", b"x")
    assert expect_xml(srv, "PROPFIND", "/dav/expect-xml2.txt", PROPFIND_BODY) == [100, 207]
    # A refused body is still refused (400), once it has been asked for.
    assert expect_xml(srv, "PROPFIND", "/dav/expect-xml2.txt", BOMB) == [100, 400]
