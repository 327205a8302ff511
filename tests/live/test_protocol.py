"""WebDAV/HTTP protocol details at the requests level, against one shared server."""

from __future__ import annotations

import os

import pytest
import requests

from tests.live.conftest import (
    ALICE,
    D,
    RawConnection,
    Server,
    get_bytes,
    lock,
    members,
    parse_multistatus,
    propfind,
    put,
    raw_request,
    url_path,
)

SEG = 64 * 1024


@pytest.fixture
def s(module_server: Server) -> requests.Session:
    return module_server.session(ALICE)


def dav_classes(r: requests.Response) -> set[str]:
    return {c.strip() for c in r.headers.get("DAV", "").split(",") if c.strip()}


@pytest.mark.parametrize("path", ["/", "/dav/"])
def test_options_anonymous(module_server: Server, path: str) -> None:
    r = requests.options(module_server.url + path)
    assert r.status_code == 200, r.status_code
    assert {"1", "2"} <= dav_classes(r), r.headers.get("DAV")
    assert r.headers.get("MS-Author-Via") == "DAV", r.headers


def test_propfind_depth_infinity_forbidden(s: requests.Session, workdir: str) -> None:
    r = s.request("PROPFIND", workdir, headers={"Depth": "infinity"})
    assert r.status_code == 403, (r.status_code, r.text[:300])
    r = s.request(
        "PROPFIND", workdir.rsplit("/dav/", 1)[0] + "/dav/", headers={"Depth": "infinity"}
    )
    assert r.status_code == 403, r.status_code


def test_propfind_without_depth(s: requests.Session, workdir: str) -> None:
    """No Depth header: the file alone on a file, the folder and its members (Depth 1) on a
    folder; an explicit infinity stays refused."""
    put(s, workdir + "f.txt", b"12345", expect=(201,))
    assert s.request("MKCOL", workdir + "sub/").status_code == 201
    put(s, workdir + "sub/deep.txt", b"x", expect=(201,))
    for depth in ("0", None):
        headers = {} if depth is None else {"Depth": depth}
        r = s.request("PROPFIND", workdir + "f.txt", headers=headers)
        assert r.status_code == 207, (depth, r.status_code, r.text[:300])
        assert list(parse_multistatus(r.content)) == [url_path(workdir) + "f.txt"]
    r = s.request("PROPFIND", workdir)
    assert r.status_code == 207, (r.status_code, r.text[:300])
    got = {h.rstrip("/") for h in parse_multistatus(r.content)}
    base = url_path(workdir).rstrip("/")
    assert got == {base, base + "/f.txt", base + "/sub"}, got
    assert s.request("PROPFIND", workdir + "nothing.txt").status_code == 404
    assert s.request("PROPFIND", workdir, headers={"Depth": "Infinity"}).status_code == 403


def test_propfind_depth_0_and_1(s: requests.Session, workdir: str) -> None:
    put(s, workdir + "f.txt", b"12345", expect=(201,))
    assert s.request("MKCOL", workdir + "sub/").status_code == 201
    zero = propfind(s, workdir, "0")
    assert [h.rstrip("/") for h in zero] == [url_path(workdir).rstrip("/")]
    one = members(s, workdir)
    assert set(one) == {"f.txt", "sub"}
    f = one["f.txt"]
    assert f.size == 5 and not f.is_collection
    assert f.text(D + "getetag") and f.text(D + "getlastmodified")
    assert one["sub"].is_collection


def test_range_requests(s: requests.Session, workdir: str) -> None:
    data = os.urandom(16 * SEG + 12345)  # ~1 MiB, not segment aligned
    n = len(data)
    url = workdir + "ranged.bin"
    put(s, url, data, expect=(201,))
    cases = [
        (0, 0),
        (0, 99),
        (SEG - 10, SEG + 9),
        (SEG, 2 * SEG - 1),
        (SEG - 1, SEG),
        (2 * SEG - 3, 5 * SEG + 3),
        (3 * SEG + 17, 3 * SEG + 17),
        (n - 100, n - 1),
        (0, n - 1),
        (15 * SEG + 1, n - 1),
    ]
    for start, end in cases:
        r = s.get(url, headers={"Range": f"bytes={start}-{end}"})
        assert r.status_code == 206, (start, end, r.status_code)
        assert r.headers["Content-Range"] == f"bytes {start}-{end}/{n}"
        assert int(r.headers["Content-Length"]) == end - start + 1
        assert r.content == data[start : end + 1], (start, end)
    # open-ended and suffix ranges
    r = s.get(url, headers={"Range": f"bytes={n - SEG - 5}-"})
    assert r.status_code == 206 and r.content == data[n - SEG - 5 :]
    assert r.headers["Content-Range"] == f"bytes {n - SEG - 5}-{n - 1}/{n}"
    r = s.get(url, headers={"Range": "bytes=-70000"})
    assert r.status_code == 206 and r.content == data[-70000:]
    assert r.headers["Content-Range"] == f"bytes {n - 70000}-{n - 1}/{n}"
    # an end beyond the file is clipped
    r = s.get(url, headers={"Range": f"bytes={n - 10}-{n + 1000}"})
    assert r.status_code == 206 and r.content == data[n - 10 :]
    # unsatisfiable
    r = s.get(url, headers={"Range": f"bytes={n}-{n + 10}"})
    assert r.status_code == 416, r.status_code
    # a plain GET is the whole thing, and advertises ranges
    r = s.get(url)
    assert r.status_code == 200 and r.content == data
    assert r.headers.get("Accept-Ranges") == "bytes"


def test_etags_and_conditional_requests(s: requests.Session, workdir: str) -> None:
    url = workdir + "etag.txt"
    put(s, url, b"version one", expect=(201,))
    r = s.get(url)
    etag = r.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/"), etag
    assert s.head(url).headers["ETag"] == etag
    (entry,) = propfind(s, url, "0").values()
    # RFC 4918 writes getetag quoted; WsgiDAV writes it bare. Either way the same tag.
    assert (entry.text(D + "getetag") or "").strip('"') == etag.strip('"')

    r = s.get(url, headers={"If-None-Match": etag})
    assert r.status_code == 304, r.status_code
    assert r.content == b""
    r = s.get(url, headers={"If-None-Match": '"something-else"'})
    assert r.status_code == 200 and r.content == b"version one"
    r = s.get(url, headers={"If-Match": '"wrong-etag"'})
    assert r.status_code == 412, r.status_code
    r = s.put(url, data=b"must not land", headers={"If-Match": '"wrong-etag"'})
    assert r.status_code == 412, r.status_code
    assert get_bytes(s, url) == b"version one"
    r = s.put(url, data=b"version two", headers={"If-Match": etag})
    assert r.status_code in (200, 204), r.status_code
    r = s.get(url)
    assert r.content == b"version two"
    etag2 = r.headers["ETag"]
    assert etag2 != etag and not etag2.startswith("W/")
    r = s.put(url, data=b"v3", headers={"If-Match": etag})  # stale etag
    assert r.status_code == 412
    # If-None-Match: * on PUT means "create only"
    r = s.put(url, data=b"overwrite?", headers={"If-None-Match": "*"})
    assert r.status_code == 412, r.status_code
    r = s.put(workdir + "fresh.txt", data=b"created", headers={"If-None-Match": "*"})
    assert r.status_code == 201, r.status_code
    assert get_bytes(s, url) == b"version two"


def chunks(data: bytes, sizes: list[int]):
    off = 0
    i = 0
    while off < len(data):
        size = sizes[i % len(sizes)]
        yield data[off : off + size]
        off += size
        i += 1


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 3 * SEG + 4321])
def test_chunked_put(s: requests.Session, workdir: str, size: int) -> None:
    data = os.urandom(size)
    url = workdir + f"chunked-{size}.bin"
    r = s.put(url, data=chunks(data, [1000, 7, SEG, 33333]))
    assert r.status_code == 201, (r.status_code, r.text[:300])
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert get_bytes(s, url) == data
    assert members(s, workdir)[f"chunked-{size}.bin"].size == size
    # overwrite with a different chunked body
    data2 = os.urandom(size // 2 + 3)
    r = s.put(url, data=chunks(data2, [SEG + 1]))
    assert r.status_code in (200, 204)
    assert get_bytes(s, url) == data2


def proppatch_body(value: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>'
        f'<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:davdisk-test">'
        f"<D:set><D:prop><Z:color>{value}</Z:color></D:prop></D:set>"
        f"</D:propertyupdate>"
    ).encode()


COLOR = "{urn:davdisk-test}color"
FIND_COLOR = (
    b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" '
    b'xmlns:Z="urn:davdisk-test"><D:prop><Z:color/></D:prop></D:propfind>'
)


def color(s: requests.Session, url: str) -> str | None:
    (e,) = propfind(s, url, "0", FIND_COLOR).values()
    return e.text(COLOR)


def test_dead_property_follows_move(s: requests.Session, workdir: str) -> None:
    put(s, workdir + "p.txt", b"props", expect=(201,))
    r = s.request(
        "PROPPATCH",
        workdir + "p.txt",
        data=proppatch_body("purple"),
        headers={"Content-Type": "application/xml"},
    )
    assert r.status_code == 207, r.status_code
    assert color(s, workdir + "p.txt") == "purple"
    r = s.request("MOVE", workdir + "p.txt", headers={"Destination": workdir + "q.txt"})
    assert r.status_code == 201, r.status_code
    assert color(s, workdir + "q.txt") == "purple"
    assert s.request("PROPFIND", workdir + "p.txt", headers={"Depth": "0"}).status_code == 404
    # on a folder, moved with its parent
    assert s.request("MKCOL", workdir + "d1/").status_code == 201
    assert s.request("MKCOL", workdir + "d1/inner/").status_code == 201
    r = s.request(
        "PROPPATCH",
        workdir + "d1/inner/",
        data=proppatch_body("green"),
        headers={"Content-Type": "application/xml"},
    )
    assert r.status_code == 207
    r = s.request("MOVE", workdir + "d1/", headers={"Destination": workdir + "d2/"})
    assert r.status_code == 201
    assert color(s, workdir + "d2/inner/") == "green"
    # a new file at the old name does not inherit it
    put(s, workdir + "p.txt", b"new", expect=(201,))
    assert color(s, workdir + "p.txt") is None


def test_lock_put_unlock(s: requests.Session, workdir: str) -> None:
    url = workdir + "locked.txt"
    put(s, url, b"original", expect=(201,))
    r, token = lock(s, url)
    assert r.status_code == 200
    assert token and token.startswith(("opaquelocktoken:", "urn:uuid:")), token
    assert token in r.text  # lockdiscovery in the body carries the token
    put(s, url, b"no token", expect=(423,))
    assert s.delete(url).status_code == 423
    r = s.request("MOVE", url, headers={"Destination": workdir + "elsewhere.txt"})
    assert r.status_code == 423
    assert get_bytes(s, url) == b"original"
    put(s, url, b"with token", expect=(200, 204), headers={"If": f"(<{token}>)"})
    assert get_bytes(s, url) == b"with token"
    # the lock shows up in lockdiscovery
    (e,) = propfind(s, url, "0").values()
    assert e.props.get(D + "lockdiscovery") is not None
    held = e.props[D + "lockdiscovery"].findtext(f".//{D}locktoken/{D}href") or ""
    assert held.strip() == token, held
    # refresh
    r = s.request("LOCK", url, headers={"If": f"(<{token}>)", "Timeout": "Second-300"})
    assert r.status_code == 200, r.status_code
    r = s.request("UNLOCK", url, headers={"Lock-Token": f"<{token}>"})
    assert r.status_code == 204, r.status_code
    put(s, url, b"after unlock", expect=(200, 204))
    assert get_bytes(s, url) == b"after unlock"
    r = s.request("UNLOCK", url, headers={"Lock-Token": f"<{token}>"})
    assert r.status_code in (409, 412), r.status_code


def test_lock_null_creates_empty_resource(s: requests.Session, workdir: str) -> None:
    url = workdir + "lock-null.txt"
    assert s.get(url).status_code == 404
    r, token = lock(s, url)
    assert r.status_code in (200, 201), r.status_code
    assert token
    entries = members(s, workdir)
    assert "lock-null.txt" in entries
    assert entries["lock-null.txt"].size == 0
    r = s.get(url)
    assert r.status_code == 200 and r.content == b""
    put(s, url, b"no token", expect=(423,))
    put(s, url, b"filled", expect=(200, 201, 204), headers={"If": f"(<{token}>)"})
    r = s.request("UNLOCK", url, headers={"Lock-Token": f"<{token}>"})
    assert r.status_code == 204
    assert get_bytes(s, url) == b"filled"
    # a lock-null resource whose parent is missing is a conflict
    lock(s, workdir + "missing/parent.txt", expect=(409,))


def test_copy_depth_0_copies_only_the_folder(s: requests.Session, workdir: str) -> None:
    assert s.request("MKCOL", workdir + "src/").status_code == 201
    assert s.request("MKCOL", workdir + "src/sub/").status_code == 201
    put(s, workdir + "src/a.txt", b"a", expect=(201,))
    r = s.request(
        "COPY", workdir + "src/", headers={"Destination": workdir + "dst0/", "Depth": "0"}
    )
    assert r.status_code == 201, r.status_code
    assert members(s, workdir + "dst0/") == {}
    assert set(members(s, workdir + "src/")) == {"sub", "a.txt"}
    r = s.request(
        "COPY", workdir + "src/", headers={"Destination": workdir + "dstinf/", "Depth": "infinity"}
    )
    assert r.status_code == 201, r.status_code
    assert set(members(s, workdir + "dstinf/")) == {"sub", "a.txt"}
    assert get_bytes(s, workdir + "dstinf/a.txt") == b"a"


def test_overwrite_f_and_t(s: requests.Session, workdir: str) -> None:
    put(s, workdir + "one.txt", b"one", expect=(201,))
    put(s, workdir + "two.txt", b"two", expect=(201,))
    for method in ("COPY", "MOVE"):
        r = s.request(
            method,
            workdir + "one.txt",
            headers={"Destination": workdir + "two.txt", "Overwrite": "F"},
        )
        assert r.status_code == 412, (method, r.status_code)
        assert get_bytes(s, workdir + "one.txt") == b"one"
        assert get_bytes(s, workdir + "two.txt") == b"two"
    r = s.request(
        "COPY", workdir + "one.txt", headers={"Destination": workdir + "two.txt", "Overwrite": "T"}
    )
    assert r.status_code == 204, r.status_code
    assert get_bytes(s, workdir + "two.txt") == b"one"
    put(s, workdir + "three.txt", b"three", expect=(201,))
    r = s.request("MOVE", workdir + "three.txt", headers={"Destination": workdir + "one.txt"})
    assert r.status_code == 204, r.status_code  # Overwrite defaults to T
    assert get_bytes(s, workdir + "one.txt") == b"three"
    assert s.get(workdir + "three.txt").status_code == 404
    # a folder onto a file and a file onto a folder, with Overwrite F
    assert s.request("MKCOL", workdir + "fold/").status_code == 201
    for src, dst in (("fold/", "two.txt"), ("two.txt", "fold/")):
        r = s.request(
            "MOVE", workdir + src, headers={"Destination": workdir + dst, "Overwrite": "F"}
        )
        assert r.status_code == 412, (src, dst, r.status_code)


def test_basic_status_codes(s: requests.Session, workdir: str) -> None:
    assert s.request("MKCOL", workdir + "c/").status_code == 201
    assert s.request("MKCOL", workdir + "c/").status_code == 405
    assert s.request("MKCOL", workdir + "nope/c/").status_code == 409
    assert s.put(workdir + "nope/x.txt", data=b"x").status_code == 409
    put(s, workdir + "c/x.txt", b"xyz", expect=(201,))
    r = s.head(workdir + "c/x.txt")
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == 3 and r.content == b""
    assert s.delete(workdir + "c/").status_code == 204
    assert s.get(workdir + "c/x.txt").status_code == 404
    assert s.delete(workdir + "c/").status_code == 404
    assert (
        s.request(
            "MOVE", workdir + "gone.txt", headers={"Destination": workdir + "x.txt"}
        ).status_code
        == 404
    )
    # PROPFIND right after PUT sees the file (macOS Finder relies on it)
    put(s, workdir + "seen.txt", b"hello", expect=(201,))
    assert members(s, workdir)["seen.txt"].size == 5


def read_raw_response(conn: RawConnection) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = bytearray()
    while chunk := conn.sock.recv(65536):
        out += chunk
    return bytes(out)


def test_head_responses_carry_no_body(
    module_server: Server, s: requests.Session, workdir: str
) -> None:
    """A body after a HEAD response corrupts keep-alive connections (RFC 9110 9.3.2)."""
    put(s, workdir + "h.txt", b"hello head", expect=(201,))
    path = url_path(workdir)
    cases = [
        ("anonymous", path + "h.txt", None),
        ("wrong password", path + "h.txt", module_server.auth_header(ALICE, "wrong-password")),
        ("file", path + "h.txt", module_server.auth_header(ALICE)),
        ("missing", path + "missing.txt", module_server.auth_header(ALICE)),
        ("collection", path, module_server.auth_header(ALICE)),
    ]
    failures = []
    for label, target, auth in cases:
        conn = RawConnection(module_server)
        headers = {"Connection": "close"}
        if auth:
            headers["Authorization"] = auth
        conn.send_head("HEAD", target, headers)
        raw = read_raw_response(conn)
        conn.abort()
        head, sep, rest = raw.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if not sep or rest:
            failures.append(
                f"HEAD {target} ({label}): {status!r} followed by {len(rest)} "
                f"body bytes: {rest[:60]!r}"
            )
    assert not failures, "\n".join(failures)


def test_encoded_slash_in_a_name_is_not_stored_literally(
    module_server: Server, s: requests.Session, workdir: str
) -> None:
    """'%2F' decodes to '/', which no name may contain: refuse it (or treat it as a path
    separator), but never store a name with a literal '%2F' in it."""
    path = url_path(workdir)
    status, _, body = raw_request(module_server, "PUT", path + "a%2fb.txt", body=b"slash")
    assert status in (400, 403, 404, 409), (status, body[:200])
    assert members(s, workdir) == {}
    status, _, body = raw_request(module_server, "MKCOL", path + "c%2Fd/")
    assert status in (400, 403, 404, 409), (status, body[:200])
    assert members(s, workdir) == {}
    # a real '%' in a name round-trips: sent as %25
    put(s, workdir + "50%25 off.txt", b"percent", expect=(201,))
    assert set(members(s, workdir)) == {"50% off.txt"}
    assert get_bytes(s, workdir + "50%25 off.txt") == b"percent"


@pytest.mark.parametrize("method", ["MOVE", "COPY"])
@pytest.mark.parametrize("encoded", ["report%3Bv2.txt", "report;v2.txt", "report%3Fv2.txt"])
def test_destination_name_with_semicolon_or_question_mark(
    s: requests.Session, workdir: str, method: str, encoded: str
) -> None:
    """WsgiDAV decodes the Destination before parsing it, so ';' and an encoded '?' cut the
    name short: a MOVE to ``report;v2.txt`` replaced the file ``report`` (found by a test of
    the webdav4 client). Either the request lands on the name it gave, or it is refused."""
    put(s, workdir + "report", b"KEEP ME", expect=(201,))
    put(s, workdir + "x.txt", b"moving", expect=(201,))
    r = s.request(
        method, workdir + "x.txt", headers={"Destination": workdir + encoded, "Overwrite": "T"}
    )
    assert r.status_code in (201, 400), r.status_code
    assert get_bytes(s, workdir + "report") == b"KEEP ME"
    names = set(members(s, workdir))
    if r.status_code == 400:
        assert names == {"report", "x.txt"}, names
    else:
        assert "report" in names and len(names) == (3 if method == "COPY" else 2), names
