"""PUT bodies as clients frame them: chunked with odd chunk sizes, extensions and trailers,
``Expect: 100-continue``, and requests pipelined behind a body on the same connection. The
server reads bodies straight from the connection (http/request_body.py), so it must take exactly
the body's bytes, leave the next request alone, and refuse broken chunk framing with a 400
that leaves the old content in place."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest

from tests.live.conftest import (
    ALICE,
    Server,
    get_bytes,
    members,
    put,
)

SEG = 64 * 1024


class Wire:
    """One raw connection: requests are written as given, answers parsed one by one."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.sock = socket.create_connection((srv.host, srv.port), timeout=60)
        self.rfile = self.sock.makefile("rb")

    def head(self, method: str, path: str, headers: dict[str, str]) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.srv.netloc}"]
        lines.append(f"Authorization: {self.srv.auth_header(ALICE)}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        status_line = self.rfile.readline()
        assert status_line.startswith(b"HTTP/1.1 "), status_line
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := self.rfile.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if status == 100:
            return status, headers, b""
        body = self.rfile.read(int(headers.get("content-length", "0")))
        return status, headers, body

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


def chunked(
    data: bytes, sizes: list[int], *, extension: bytes = b"", trailer: bytes = b""
) -> bytes:
    """``data`` framed in chunks of the given sizes (cycled), then the last chunk."""
    out, pos, i = [], 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        out.append(
            b"%x%s\r\n%s\r\n"
            % (n if pos + n <= len(data) else len(data) - pos, extension, data[pos : pos + n])
        )
        pos += n
        i += 1
    out.append(b"0\r\n" + trailer + b"\r\n")
    return b"".join(out)


@pytest.mark.parametrize(
    ("size", "sizes", "extension", "trailer"),
    [
        (0, [1], b"", b""),
        (1, [1], b"", b""),
        (5 * SEG + 321, [65_524], b"", b""),
        (3 * SEG + 7, [1, 2, 4093, 70_000, 300_000], b";name=value", b"X-Checksum: abc\r\n"),
        (2 * (1 << 20) + 5, [1 << 20], b"", b"A: 1\r\nB: 2\r\n"),
    ],
)
def test_chunked_put_then_pipelined_get(
    server: Server, size: int, sizes: list[int], extension: bytes, trailer: bytes
) -> None:
    data = os.urandom(size)
    wire = Wire(server)
    try:
        body = chunked(data, sizes, extension=extension, trailer=trailer)
        put_head = wire.head("PUT", "/dav/c.bin", {"Transfer-Encoding": "chunked"})
        get_head = wire.head("GET", "/dav/c.bin", {})
        # Both requests in one go: the next request must not be taken for body bytes.
        wire.send(put_head + body + get_head)
        status, _, _ = wire.answer()
        assert status == 201
        status, headers, got = wire.answer()
        assert status == 200, got[:200]
        assert got == data
        assert headers["content-length"] == str(size)
    finally:
        wire.close()
    s = server.session(ALICE)
    entry = members(s, server.dav)["c.bin"]
    assert entry.size == size


def test_fixed_length_put_then_pipelined_requests(server: Server) -> None:
    data = os.urandom(3 * SEG + 99)
    wire = Wire(server)
    try:
        wire.send(
            wire.head("PUT", "/dav/f.bin", {"Content-Length": str(len(data))})
            + data
            + wire.head("GET", "/dav/f.bin", {})
            + wire.head("PUT", "/dav/g.bin", {"Content-Length": "3"})
            + b"abc"
            + wire.head("GET", "/dav/g.bin", {})
        )
        assert wire.answer()[0] == 201
        status, _, got = wire.answer()
        assert status == 200 and got == data
        assert wire.answer()[0] == 201
        assert wire.answer()[2] == b"abc"
    finally:
        wire.close()


def test_chunked_put_with_expect_continue(server: Server) -> None:
    data = os.urandom(4 * SEG + 1)
    wire = Wire(server)
    try:
        wire.send(
            wire.head(
                "PUT",
                "/dav/e.bin",
                {"Transfer-Encoding": "chunked", "Expect": "100-continue"},
            )
        )
        assert wire.answer()[0] == 100
        wire.send(chunked(data, [65_524]))
        assert wire.answer()[0] == 201
    finally:
        wire.close()
    s = server.session(ALICE)
    assert hashlib.sha256(get_bytes(s, server.dav + "e.bin")).digest() == (
        hashlib.sha256(data).digest()
    )


@pytest.mark.parametrize(
    "broken",
    [
        b"0x10\r\n" + bytes(16) + b"\r\n0\r\n\r\n",  # int(..., 16) would accept these three
        b"+10\r\n" + bytes(16) + b"\r\n0\r\n\r\n",
        b"1_0\r\n" + bytes(16) + b"\r\n0\r\n\r\n",
        b"zz\r\n\r\n0\r\n\r\n",
        b"\r\n0\r\n\r\n",  # no size at all
        b"10\r\n" + bytes(16) + b"XX0\r\n\r\n",  # no CRLF after the data
        b"1" * 5000 + b"\r\n",  # a size line longer than any real one
    ],
)
def test_broken_chunk_framing_is_400_and_keeps_old_content(server: Server, broken: bytes) -> None:
    s = server.session(ALICE)
    old = os.urandom(SEG + 5)
    put(s, server.dav + "doc.bin", old, expect=(201,))
    wire = Wire(server)
    try:
        good = chunked(os.urandom(2 * SEG), [SEG])[: -len(b"0\r\n\r\n")]
        wire.send(wire.head("PUT", "/dav/doc.bin", {"Transfer-Encoding": "chunked"}))
        wire.send(good + broken)
        status, _, text = wire.answer()
        assert status == 400, text[:300]
    finally:
        wire.close()
    assert get_bytes(s, server.dav + "doc.bin") == old
    assert set(members(s, server.dav)) == {"doc.bin"}
    assert "Traceback" not in server.log()
