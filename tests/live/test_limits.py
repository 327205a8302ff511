"""Input limits against a real server: XML attacks, oversized bodies and uploads, URL, path,
Destination and header limits - each answered fast, with memory flat and nothing leaked.

Requests go over plain sockets (see :func:`exchange`) so that the body is sent while the answer
is read: a server that refuses early closes the connection while a client like ``requests``
would still be writing, and the point of these tests is to see that early answer.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import select
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.live.conftest import (
    ALICE,
    REPO_ROOT,
    USERS,
    Server,
    ServerFactory,
    get_bytes,
    put,
    raw_request,
    temp_files,
)

MAX_UPLOAD = 1 << 20  # configured for the upload test's server
MAX_DEPTH = 64  # the default max_path_depth
MAX_XML = 1 << 20  # the default max_xml_body
FAST = 0.1  # seconds: the bound for refusing an attack
RSS_SLACK_KIB = 8 * 1024  # what repeated refused attacks may add to the server's peak RSS
BLOCK = b"\x00" * (64 * 1024)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the default limits (no upload limit), and few threads: each thread's
    malloc arena keeps what it once held, so with few the first round of attacks warms all."""
    base = tmp_path_factory.mktemp("limits")
    config = base / "davdisk.toml"
    config.write_text("[server]\nthreads = 4\n")
    factory = ServerFactory(base)
    yield factory(users={ALICE: USERS[ALICE]}, config=config)
    factory.finish()


@pytest.fixture
def s(srv: Server) -> requests.Session:
    return srv.session(ALICE)


# --------------------------------------------------------------------------- raw exchanges


@dataclass
class Exchange:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the first byte sent to the whole answer read
    closed: bool  # the server closed the connection after answering

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _send_body(sock: socket.socket, pieces: Iterable[bytes], chunked: bool) -> None:
    """Send the body until done or until the server closes the connection on us."""
    with contextlib.suppress(OSError):
        for piece in pieces:
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            sock.sendall(b"0\r\n\r\n")


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def exchange(
    srv: Server,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | Iterable[bytes] = b"",
    *,
    chunked: bool = False,
    length: int | None = None,
    user: str | None = ALICE,
) -> Exchange:
    """One request on a fresh connection; the body (``length`` declared, default its size)
    is sent from a thread while the answer is read."""
    pieces = [body] if isinstance(body, bytes) else body
    hdrs = {"Host": srv.netloc}
    if user is not None:
        hdrs["Authorization"] = srv.auth_header(user)
    if chunked:
        hdrs["Transfer-Encoding"] = "chunked"
    else:
        size = length if length is not None else len(body) if isinstance(body, bytes) else 0
        hdrs["Content-Length"] = str(size)
    hdrs.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    sock = socket.create_connection((srv.host, srv.port), timeout=30)
    try:
        started = time.perf_counter()
        sock.sendall((head + "\r\n").encode("latin-1"))
        sender = threading.Thread(target=_send_body, args=(sock, pieces, chunked), daemon=True)
        sender.start()
        resp = http.client.HTTPResponse(sock, method=method)
        resp.begin()
        data = resp.read()
        seconds = time.perf_counter() - started
        answer_headers = {k.lower(): v for k, v in resp.getheaders()}
        closing = answer_headers.get("connection", "").lower() == "close"
        closed = closing and _closed_by_server(sock)
        assert closing == closed, "the server said Connection: close but kept the connection"
        sender.join(30)
        assert not sender.is_alive(), "the server neither read the body nor closed"
        return Exchange(resp.status, answer_headers, data, seconds, closed)
    finally:
        sock.close()


def blocks(total: int) -> Iterator[bytes]:
    """``total`` bytes in 64 KiB pieces, without holding them all."""
    for start in range(0, total, len(BLOCK)):
        yield BLOCK[: min(len(BLOCK), total - start)]


def assert_clean_log(srv: Server) -> None:
    log = srv.log()
    assert "Traceback" not in log, log[-3000:]
    assert " ERROR " not in log and " CRITICAL " not in log, log[-3000:]


# --------------------------------------------------------------------------- XML attacks


def _laughs() -> bytes:
    entities = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)
    )
    return (
        f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]>'
        '<D:propfind xmlns:D="DAV:"><D:prop><x a="&l9;">&l9;</x></D:prop></D:propfind>'
    ).encode()


def _quadratic() -> bytes:
    return (
        '<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "' + "A" * 100_000 + '">]>'
        '<D:propfind xmlns:D="DAV:"><D:prop><x>' + "&a;" * 8_000 + "</x></D:prop></D:propfind>"
    ).encode()


def _xxe(system_id: str) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "{system_id}">]>'
        '<D:propfind xmlns:D="DAV:"><D:prop><x>&x;</x></D:prop></D:propfind>'
    ).encode()


def _attack_bodies(listener_port: int) -> dict[str, bytes]:
    spy = f"http://127.0.0.1:{listener_port}"
    return {
        "billion laughs": _laughs(),
        "quadratic blowup": _quadratic(),
        "XXE file": _xxe("file:///etc/passwd"),
        "XXE http": _xxe(spy + "/entity"),
        "external DTD": (
            f'<?xml version="1.0"?><!DOCTYPE r SYSTEM "{spy}/dtd">'
            '<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
        ).encode(),
        "parameter entity": (
            f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "{spy}/pe"> %p;]>'
            '<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
        ).encode(),
        "XXE in UTF-16": _xxe(spy + "/utf16").decode().encode("utf-16"),
        "100 000 levels": b"<a>" * 100_000 + b"</a>" * 100_000,
        "200 000 elements": b'<D:propfind xmlns:D="DAV:"><D:prop>'
        + b"<x/>" * 200_000
        + b"</D:prop></D:propfind>",
    }


def _attack_round(srv: Server, bodies: dict[str, bytes]) -> dict[tuple[str, str], float]:
    """Every attack with every XML method; returns the seconds each answer took."""
    ten_mib = 10 << 20
    seconds = {}
    for method in ("PROPFIND", "PROPPATCH", "LOCK"):
        results = [
            (name, exchange(srv, method, "/dav/", {"Depth": "0"}, body))
            for name, body in bodies.items()
        ]
        results.append(
            ("10 MiB", exchange(srv, method, "/dav/", {}, blocks(ten_mib), length=ten_mib))
        )
        results.append(
            ("10 MiB chunked", exchange(srv, method, "/dav/", {}, blocks(ten_mib), chunked=True))
        )
        for name, r in results:
            expected = 413 if name.startswith("10 MiB") else 400
            assert r.status == expected, (method, name, r.status, r.text)
            assert "root:" not in r.text
            if expected == 413:
                assert r.closed, (method, name)  # the rest of the body is not read
            seconds[method, name] = r.seconds
    return seconds


@pytest.mark.serial
def test_xml_attacks_are_refused_fast_with_memory_flat(srv: Server, s: requests.Session) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        bodies = _attack_bodies(listener.getsockname()[1])
        # Twice: the first round also warms up the worker threads (each gets its own malloc
        # arena) and code paths; memory is flat if the second adds (next to) nothing.
        peak_start = srv.peak_rss_kib()
        first = _attack_round(srv, bodies)
        peak_before = srv.peak_rss_kib()
        assert peak_before - peak_start < 4 * RSS_SLACK_KIB, "the first round took too much"
        second = _attack_round(srv, bodies)
        grown = srv.peak_rss_kib() - peak_before
        assert grown < RSS_SLACK_KIB, f"peak RSS grew by {grown} KiB"
        # The better of two tries, so that one descheduling on a busy machine is not a failure.
        slow = {k: f"{min(v, second[k]) * 1000:.0f} ms" for k, v in first.items()}
        slow = {k: v for k, v in slow.items() if min(first[k], second[k]) >= FAST}
        assert not slow, slow
        # No XXE or DTD fetch ever connected to the listener.
        readable, _, _ = select.select([listener], [], [], 0.2)
        assert readable == [], "the server fetched an external entity or DTD"
    finally:
        listener.close()
    assert len(propfind_names(s, srv.dav)) >= 1  # still serving
    assert_clean_log(srv)


def propfind_names(s: requests.Session, url: str) -> list[str]:
    r = s.request("PROPFIND", url, headers={"Depth": "1"})
    assert r.status_code == 207, r.status_code
    return re.findall(r"<D:href>([^<]*)</D:href>", r.text)


def test_legit_xml_still_works(srv: Server, s: requests.Session) -> None:
    put(s, srv.dav + "props.txt", b"x")
    body = (
        '<?xml version="1.0" encoding="utf-16"?><D:propertyupdate xmlns:D="DAV:" '
        'xmlns:Z="urn:x-test:"><D:set><D:prop><Z:colour>blau</Z:colour></D:prop></D:set>'
        "</D:propertyupdate>"
    ).encode("utf-16")
    r = s.request("PROPPATCH", srv.dav + "props.txt", data=body)
    assert r.status_code == 207, r.text
    query = (
        b'<D:propfind xmlns:D="DAV:" xmlns:Z="urn:x-test:"><D:prop><Z:colour/></D:prop>'
        b"</D:propfind>"
    )
    # chunked (a generator body): read whole by the limits, then answered as sent
    r = s.request("PROPFIND", srv.dav + "props.txt", data=iter([query]), headers={"Depth": "0"})
    assert r.status_code == 207 and "blau" in r.text, r.text


# --------------------------------------------------------------------------- uploads


@pytest.mark.serial
def test_upload_limit_refuses_early_and_keeps_old_content(
    srv: Server, server_factory: ServerFactory, tmp_path: Path
) -> None:
    config = tmp_path / "davdisk.toml"
    config.write_text(f'[limits]\nmax_upload = "{MAX_UPLOAD}"\n')
    # A second process on the module server's data dir (supported, and quicker to start).
    limited = server_factory(data_dir=srv.data_dir, config=config)
    s = limited.session(ALICE)
    put(s, limited.dav + "keep.bin", b"old content")
    put(s, limited.dav + "exact.bin", bytes(MAX_UPLOAD))  # at the limit: stored
    peak_before = limited.peak_rss_kib()
    declared = exchange(limited, "PUT", "/dav/keep.bin", body=blocks(64 << 20), length=1 << 30)
    chunked_over = exchange(limited, "PUT", "/dav/keep.bin", body=blocks(3 << 20), chunked=True)
    chunked_new = exchange(limited, "PUT", "/dav/new.bin", body=blocks(3 << 20), chunked=True)
    finder = exchange(
        limited,
        "PUT",
        "/dav/keep.bin",
        {"X-Expected-Entity-Length": str(MAX_UPLOAD + 1)},
        blocks(MAX_UPLOAD + 1),
        chunked=True,
    )
    for r in (declared, chunked_over, chunked_new, finder):
        assert r.status == 413, r.text
        assert r.closed
        assert "Traceback" not in r.text
    assert declared.seconds < FAST and finder.seconds < FAST  # refused before the body
    assert chunked_over.seconds < 2  # refused once 1 MiB has arrived, not after 3 MiB
    assert limited.peak_rss_kib() - peak_before < RSS_SLACK_KIB
    assert get_bytes(s, limited.dav + "keep.bin") == b"old content"
    assert s.get(limited.dav + "new.bin").status_code == 404
    assert temp_files(limited.data_dir) == []
    assert_clean_log(limited)


@pytest.mark.serial
def test_unread_bodies_close_the_connection_instead_of_filling_memory(srv: Server) -> None:
    peak_before = srv.peak_rss_kib()
    # cheroot would read a 1 GiB remainder in one read() to keep the connection: 1 GiB of RAM.
    anonymous = exchange(srv, "PUT", "/dav/x.bin", body=blocks(64 << 20), length=1 << 30, user=None)
    no_parent = exchange(srv, "PUT", "/dav/missing/x.bin", body=blocks(64 << 20), length=1 << 30)
    assert (anonymous.status, no_parent.status) == (401, 409)
    assert anonymous.closed and no_parent.closed
    assert anonymous.seconds < 1 and no_parent.seconds < 1
    assert srv.peak_rss_kib() - peak_before < RSS_SLACK_KIB
    # A small body a logged-in request left unread is drained: the connection stays open.
    small = exchange(srv, "PUT", "/dav/missing/x.bin", body=b"tiny")
    assert small.status == 409 and not small.closed
    # Nobody logged in: nothing is read (a slow sender would hold a worker), the connection closes.
    anonymous_small = exchange(srv, "PUT", "/dav/x.bin", body=b"tiny", user=None)
    assert anonymous_small.status == 401 and anonymous_small.closed


def test_anonymous_bodies_still_sending_get_their_answer(srv: Server) -> None:
    """An anonymous PUT or PROPFIND whose client sends the whole body before it reads the answer
    (as requests does): its body is not read, yet the client gets the 401, not a reset."""
    body = os.urandom(3 << 20)
    for _ in range(3):
        r = requests.put(srv.dav + "x.bin", data=body, timeout=30)
        assert r.status_code == 401
        r = requests.request("PROPFIND", srv.dav, data=b"<x/>" * 50_000, timeout=30)
        assert r.status_code == 401


def test_refused_puts_still_sending_get_their_answer(srv: Server) -> None:
    """A PUT refused before its body was read (no parent: 409), by a client that sends the whole
    body before it reads the answer, as requests does: the client gets the 409, not a reset
    (found by the soak test), with Content-Length and chunked, and the connection stays open."""
    s = srv.session(ALICE)
    body = os.urandom(3 << 20)
    for attempt in range(3):
        r = s.put(srv.dav + f"missing-parent/x{attempt}.bin", data=body)
        assert r.status_code == 409, r.text
        r = s.put(srv.dav + f"missing-parent/y{attempt}.bin", data=iter([body[:1000], body]))
        assert r.status_code == 409, r.text
    kept = exchange(srv, "PUT", "/dav/missing-parent/z.bin", body=body)
    assert kept.status == 409 and not kept.closed
    chunked = exchange(srv, "PUT", "/dav/missing-parent/z.bin", body=[body], chunked=True)
    assert chunked.status == 409 and not chunked.closed


# --------------------------------------------------------------------------- URL, path, headers


def test_url_path_and_destination_limits(srv: Server, s: requests.Session) -> None:
    put(s, srv.dav + "src.txt", b"source")
    dest = srv.url + "/dav/"
    long_name = "%C3%A9" * 128  # 256 bytes of UTF-8
    deep = "/dav/" + "d/" * MAX_DEPTH
    cases = [
        (("GET", "/dav/" + "a" * 8200), 414),
        (("PROPFIND", deep), 400),
        (("MKCOL", deep), 400),
        (("GET", "/dav/a%00b"), 400),
        (("PUT", "/dav/a%00b"), 400),
        (("GET", "/dav/%FF"), 400),  # invalid UTF-8: a dropped connection before the limits
        (("PROPFIND", "/dav/%C3%28"), 400),
        (("PUT", "/dav/" + long_name), 400),
        (("MKCOL", "/dav/" + long_name), 400),
        (("GET", "/dav/a%2Fb"), 400),
    ]
    for (method, path), status in cases:
        code, _, body = raw_request(srv, method, path, {"Depth": "0"})
        assert code == status, (method, path[:60], code, body[:200])
    for destination in (
        dest + "x%00y",
        dest + long_name,
        dest + "a%2Fb",
        dest + "%FF",
        dest + "d/" * MAX_DEPTH + "x",
        dest + "x" * 8200,
    ):
        for method in ("COPY", "MOVE"):
            code, _, body = raw_request(srv, method, "/dav/src.txt", {"Destination": destination})
            assert code == 400, (method, destination[:80], code, body[:200])
    assert get_bytes(s, srv.dav + "src.txt") == b"source"
    names = propfind_names(s, srv.dav)
    assert not any("x" * 100 in n or "%C3%A9" * 100 in n or "%EF%BF%BD" in n for n in names)
    assert_clean_log(srv)


def _raw_head(srv: Server, head: bytes) -> tuple[bytes, float]:
    """Send a request head, return the status line and the time it took."""
    with socket.create_connection((srv.host, srv.port), timeout=10) as sock:
        started = time.perf_counter()
        with contextlib.suppress(OSError):
            sock.sendall(head)
        reply = sock.makefile("rb").readline()
        return reply.strip(), time.perf_counter() - started


def test_oversized_request_heads_are_refused(srv: Server, s: requests.Session) -> None:
    host = f"Host: {srv.netloc}\r\n".encode()
    many = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 1000) for i in range(80))
    one_huge = b"X-Huge: " + b"v" * 1_000_000 + b"\r\n"
    tiny_many = b"".join(b"X-%d: v\r\n" % i for i in range(20_000))
    for label, head, status in [
        ("80 KB of headers", b"GET /dav/ HTTP/1.1\r\n" + host + many + b"\r\n", b"413"),
        ("one 1 MB header", b"GET /dav/ HTTP/1.1\r\n" + host + one_huge + b"\r\n", b"413"),
        ("20 000 headers", b"GET /dav/ HTTP/1.1\r\n" + host + tiny_many + b"\r\n", b"413"),
        (
            "70 KB request line",
            b"GET /dav/" + b"a" * 70_000 + b" HTTP/1.1\r\n" + host + b"\r\n",
            b"414",
        ),
    ]:
        line, seconds = _raw_head(srv, head)
        assert line.split()[1:2] == [status], (label, line)
        assert seconds < 1, (label, seconds)
    assert propfind_names(s, srv.dav)  # still serving
    assert_clean_log(srv)


# --------------------------------------------------------------------------- no leaks


EXCEPTION_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception|Exceeded)\b|Traceback|File \"")


def test_bad_requests_never_leak_internals(srv: Server, s: requests.Session) -> None:
    put(s, srv.dav + "f.txt", b"hello")
    host = srv.url
    # A Destination on another server is 502 by RFC 4918 (9.8.5): the one 5xx expected here.
    code, _, answer = raw_request(
        srv, "COPY", "/dav/f.txt", {"Destination": "http://elsewhere.example/dav/x"}
    )
    assert code == 502 and not EXCEPTION_NAME.search(answer.decode())
    lockinfo = (
        b'<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
        b"<D:locktype><D:write/></D:locktype></D:lockinfo>"
    )
    attempts: list[tuple[str, str, dict[str, str], bytes | None]] = [
        ("PROPFIND", "/dav/", {"Depth": "0"}, b"<not xml"),
        ("PROPFIND", "/dav/", {"Depth": "0"}, b"\xff\xfe\x00garbage"),
        (
            "PROPFIND",
            "/dav/",
            {"Depth": "0"},
            b'<D:propfind xmlns:D="DAV:"><D:bogus/></D:propfind>',
        ),
        (
            "PROPPATCH",
            "/dav/f.txt",
            {},
            b'<D:propertyupdate xmlns:D="DAV:"><D:set/></D:propertyupdate>',
        ),
        ("LOCK", "/dav/f.txt", {}, b"<D:lockinfo xmlns:D='DAV:'/>"),
        ("PROPFIND", "/dav/", {"Depth": "2"}, None),
        ("PROPFIND", "/dav/", {"Depth": "banana"}, None),
        ("PROPFIND", "/dav/", {"Depth": "infinity"}, None),
        ("GET", "/dav/f.txt", {"Range": "bytes=zz"}, None),
        ("GET", "/dav/f.txt", {"Range": "bytes=9-2"}, None),
        ("GET", "/dav/f.txt", {"Range": "bytes=" + ",".join(["0-1"] * 2000)}, None),
        ("GET", "/dav/f.txt", {"If-Match": '"' * 100}, None),
        ("GET", "/dav/f.txt", {"If-Modified-Since": "yesterday"}, None),
        ("COPY", "/dav/f.txt", {"Destination": "::::"}, None),
        ("COPY", "/dav/f.txt", {"Destination": host + "/dav/f.txt", "Overwrite": "maybe"}, None),
        ("MOVE", "/dav/f.txt", {}, None),
        ("MOVE", "/dav/f.txt", {"Destination": host + "/dav/x%00y"}, None),
        ("DELETE", "/dav/nothing.txt", {"If": "(<garbage"}, None),
        ("PUT", "/dav/g.txt", {"If": '<http://x/> (Not <urn:x> ["e"]'}, b"x"),
        ("LOCK", "/dav/g.txt", {"Timeout": "Second-abc, Infinite-x"}, lockinfo),
        ("LOCK", "/dav/h.txt", {"Timeout": "Second-" + "9" * 40}, lockinfo),
        ("UNLOCK", "/dav/f.txt", {"Lock-Token": "garbage"}, None),
        ("PUT", "/dav/f.txt", {"Content-Range": "bytes 0-1/2"}, b"xx"),
        ("PUT", "/dav/f.txt", {"Content-Encoding": "gzip"}, b"xx"),
        ("PUT", "/dav/f.txt", {"X-OC-Mtime": "soon"}, b"xx"),
        ("PUT", "/dav/f.txt", {"OC-Checksum": "SHA1:nothex"}, b"xx"),
        ("MKCOL", "/dav/newdir", {}, b"<x/>"),
        ("GET", "/dav/%FF%FE", {}, None),
        ("GET", "/dav/" + "%C3%A9" * 200, {}, None),
        ("GET", "/dav/" + "a" * 9000, {}, None),
        ("GET", "/dav/../../etc/passwd", {}, None),
        ("GET", "/dav/%2e%2e/%2e%2e/etc/passwd", {}, None),
        ("BREW", "/dav/f.txt", {}, None),
        ("TRACE", "/dav/f.txt", {}, None),
        ("SEARCH", "/dav/", {}, b"<x/>"),
        ("GET", "/nowhere", {}, None),
    ]
    forbidden = [str(srv.data_dir), str(REPO_ROOT), sys.prefix, "site-packages", "/etc/passwd:"]
    for method, path, headers, body in attempts:
        code, _, answer = raw_request(srv, method, path, headers, body)
        label = (method, path[:50], headers)
        assert code < 500, (label, code, answer[:300])
        text = answer.decode("utf-8", "replace")
        assert not EXCEPTION_NAME.search(text), (label, text[:500])
        for secret in forbidden:
            assert secret not in text, (label, secret)
        assert "root:x:" not in text
    assert_clean_log(srv)
