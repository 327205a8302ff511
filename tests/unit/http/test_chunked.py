"""The chunked-body decoder (http/chunked.py) over a scripted connection: whatever the chunk
sizes, extensions, trailers and however the bytes arrive, it yields exactly the body's data and
never reads a byte past the body's end (a pipelined request behind it stays unread)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from davdisk.errors import UsageError
from davdisk.http.chunked import ChunkedBody, parse_framing

NEXT_REQUEST = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"


class Wire:
    """The socket side: hands out the stream in pieces of the scripted sizes (cycled)."""

    def __init__(self, data: bytes, pieces: list[int]) -> None:
        self.data = data
        self.pos = 0
        self._pieces = pieces or [1 << 30]
        self._turn = 0

    def readinto(self, view: Any) -> int:
        step = self._pieces[self._turn % len(self._pieces)]
        self._turn += 1
        n = min(len(view), step, len(self.data) - self.pos)
        view[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


class Stream:
    """What the decoder uses of cheroot's ``StreamReader``: bytes it buffered with the request
    head (``has_data``/``peek(0)``/``read``), then its socket (``raw``)."""

    def __init__(self, buffered: bytes, wire: Wire) -> None:
        self._buffered = buffered
        self.raw = wire
        self.bytes_read = 0

    def has_data(self) -> bool:
        return bool(self._buffered)

    def peek(self, size: int = 0) -> bytes:
        assert self._buffered, "the decoder peeks only when cheroot holds data"
        return self._buffered

    def read(self, size: int) -> bytes:
        assert size <= len(self._buffered), "the decoder reads only what cheroot holds"
        data, self._buffered = self._buffered[:size], self._buffered[size:]
        return data


def frame(data: bytes, sizes: list[int], ext: bytes, trailers: list[bytes]) -> bytes:
    out, pos, i = [], 0, 0
    while pos < len(data):
        n = min(sizes[i % len(sizes)], len(data) - pos)
        out.append(b"%x%s\r\n%s\r\n" % (n, ext, data[pos : pos + n]))
        pos, i = pos + n, i + 1
    out.append(b"0%s\r\n%s\r\n" % (ext, b"".join(t + b"\r\n" for t in trailers)))
    return b"".join(out)


def decode(stream: Stream, reads: list[int]) -> bytes:
    body = ChunkedBody(stream)  # type: ignore[arg-type]
    got = bytearray()
    turn = 0
    while True:
        buf = memoryview(bytearray(reads[turn % len(reads)]))
        turn += 1
        n = body.readinto(buf)
        if not n:
            return bytes(got)
        got += buf[:n]


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=300_000),
    sizes=st.lists(st.integers(1, 200_000), min_size=1, max_size=4),
    ext=st.sampled_from([b"", b";a=b", b" ;x", b';name="v"']),
    trailers=st.lists(st.sampled_from([b"X-A: 1", b"Y:", b"Z: " + b"z" * 100]), max_size=3),
    head=st.integers(0, 9000),
    pieces=st.lists(st.integers(1, 150_000), max_size=5),
    reads=st.lists(st.integers(1, 1 << 20), min_size=1, max_size=3),
)
def test_decodes_exactly_the_body(
    data: bytes,
    sizes: list[int],
    ext: bytes,
    trailers: list[bytes],
    head: int,
    pieces: list[int],
    reads: list[int],
) -> None:
    wire_bytes = frame(data, sizes, ext, trailers) + NEXT_REQUEST
    head = min(head, len(wire_bytes))
    # cheroot may have buffered part of the body (or all, and the next request) with the head
    wire = Wire(wire_bytes[head:], pieces)
    stream = Stream(wire_bytes[:head], wire)
    assert decode(stream, reads) == data
    body_end = len(wire_bytes) - len(NEXT_REQUEST)
    consumed = head - len(stream._buffered) + wire.pos
    assert consumed == body_end  # nothing of the next request was read
    assert stream.bytes_read == wire.pos


@pytest.mark.parametrize(
    "broken",
    [
        b"0x10\r\n",
        b"+10\r\n",
        b"1_0\r\n",
        b"zz\r\n",
        b"\r\n",
        b"-1\r\n",
        b"1" * 16 + b"\r\n",
        b"1" * 5000,
        b"10\rX\n",
        b"10;ext\r\n" + bytes(16) + b"XX",
    ],
)
def test_broken_framing_raises(broken: bytes) -> None:
    wire = Wire(broken + b"0\r\n\r\n", [7])
    with pytest.raises(UsageError):
        decode(Stream(b"", wire), [1 << 16])


@pytest.mark.parametrize(
    "cut",
    [b"", b"5", b"5\r\n", b"5\r\nab", b"5\r\nabcde", b"5\r\nabcde\r\n", b"5\r\nabcde\r\n0\r\n"],
)
def test_a_body_cut_short_raises(cut: bytes) -> None:
    with pytest.raises(UsageError, match="ended"):
        decode(Stream(b"", Wire(cut, [3])), [100])


def test_parse_framing_reports_what_may_safely_follow() -> None:
    assert parse_framing(b"", crlf_due=False) == (False, 0, 4)
    assert parse_framing(b"\r\nff", crlf_due=True) == (False, 0, 2 + 0xFF + 2 + 5)
    assert parse_framing(b"\r\nfff4\r", crlf_due=True) == (False, 0, 1 + 0xFFF4 + 7)
    assert parse_framing(b"\r", crlf_due=True) == (False, 0, 1 + 5)
    assert parse_framing(b"\r\nfff4\r\nDATA", crlf_due=True) == (True, 8, 0xFFF4)
    assert parse_framing(b"0\r\n", crlf_due=False) == (False, 0, 1)
    assert parse_framing(b"0\r\nA: 1\r\n\r\nGET", crlf_due=False) == (True, 11, 0)
