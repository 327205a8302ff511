"""``Transfer-Encoding: chunked`` request bodies, decoded straight from cheroot's connection.

cheroot's ``ChunkedRFile`` builds each read by concatenating ``bytes`` (quadratic in the read
size), and reading chunk framing through its ``_pyio`` buffer costs several small socket reads
and Python calls per chunk. :class:`ChunkedBody` reads the socket itself, usually once per
chunk: the rest of a chunk's data together with the framing that follows it.

It never reads past the end of the body, so a request pipelined behind it stays unread for
cheroot: every socket read asks for at most what any valid body must still contain
(:func:`parse_framing` says how much that is when framing is incomplete; after a chunk's data
come at least its CRLF and a last chunk, ``0\\r\\n\\r\\n``). Bytes cheroot had already buffered
(with the request head) are taken from its buffer first, through its public reader API.

Malformed framing, or a connection that ends before the last chunk, raises :class:`UsageError`
(400). Chunk extensions are ignored; trailer lines are read and dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from cheroot.makefile import StreamReader

from davdisk.errors import UsageError

_SCRATCH = 128 * 1024  # received, not yet handed out: one chunk's data and the next framing
_MAX_LINE = 4096  # a chunk-size line (with extensions) or a trailer line
_MAX_TRAILERS = 64
_LAST_CHUNK = 5  # len(b"0\r\n\r\n"): the least a body holds after any chunk's CRLF
_HEX = b"0123456789abcdefABCDEF"
_SIZE_END = (b";", b" ", b"\t", b"\r")
_AFTER_DATA = re.compile(rb"\r\n([0-9a-fA-F]{1,15})\r(\n)?")
_FIRST = re.compile(rb"([0-9a-fA-F]{1,15})\r(\n)?")


def _bad(what: str) -> UsageError:
    return UsageError(f"bad chunked transfer coding: {what}")


def _size_digits(line: bytes) -> tuple[bytes, bytes]:
    """Split a (possibly partial) chunk-size line into its hex digits and what follows."""
    end = len(line) - len(line.lstrip(_HEX))
    if end > 15:
        raise _bad("chunk size too large")
    return line[:end], line[end:]


def parse_framing(data: bytes | memoryview, crlf_due: bool) -> tuple[bool, int, int]:
    """Parse the framing at the start of ``data``: the CRLF ending a chunk (if ``crlf_due``),
    then a chunk-size line, and after the last chunk (size 0) its trailer lines and final CRLF.

    Returns ``(True, consumed, size)`` once all of it is there (size 0: the body ended), else
    ``(False, 0, need)``: the framing continues past ``data``, and any valid body holds at
    least ``need`` (>= 1) more bytes, which may safely be read. Raises on malformed framing.
    """
    # The common cases first, without copying: CRLF and a plain size line (curl and most
    # clients), or the same still missing its LF.
    common = (_AFTER_DATA if crlf_due else _FIRST).match(data)
    if common is not None:
        size = int(common[1], 16)
        if common[2] and size:
            return True, common.end(), size
        if not common[2] and common.end() == len(data):
            return False, 0, 1 + (size + 2 + _LAST_CHUNK if size else 2)
    whole = data
    data = bytes(data[: 2 + _MAX_LINE])  # all a chunk's framing can be (bar trailers)
    pos = 0
    if crlf_due:
        if data[:2] != b"\r\n"[: len(data[:2])]:
            raise _bad("no CRLF after a chunk's data")
        if len(data) < 2:
            return False, 0, 2 - len(data) + _LAST_CHUNK
        pos = 2
    end = data.find(b"\n", pos, pos + _MAX_LINE)
    if end < 0:
        line = data[pos:]
        if len(line) >= _MAX_LINE:
            raise _bad("chunk-size line too long")
        digits, rest = _size_digits(line)
        lower = int(digits, 16) if digits else 0  # more digits only make the size larger
        if rest:
            if rest[:1] not in _SIZE_END or b"\r" in rest[:-1] or not digits:
                raise _bad(f"chunk size {line[:20]!r}")
            line_rest = 1 if rest.endswith(b"\r") else 2  # the CRLF ending the size line
        else:
            line_rest = 2
        # After the size line: the data, its CRLF and a last chunk; or, for size 0, a CRLF.
        return False, 0, line_rest + (lower + 2 + _LAST_CHUNK if lower else 2)
    digits, rest = _size_digits(data[pos:end])
    rest = rest.rstrip(b"\r")
    if not digits or (rest and (rest[:1] not in _SIZE_END or b"\r" in rest)):
        raise _bad(f"chunk size {data[pos:end][:20]!r}")
    size = int(digits, 16)
    pos = end + 1
    if size:
        return True, pos, size
    data = bytes(whole)  # the last chunk: its trailers may be longer
    for _ in range(_MAX_TRAILERS + 1):  # trailer lines, then the empty line ending the body
        end = data.find(b"\n", pos, pos + _MAX_LINE)
        if end < 0:
            if len(data) - pos >= _MAX_LINE:
                raise _bad("trailer line too long")
            return False, 0, 1
        line, pos = data[pos:end], end + 1
        if line in (b"", b"\r"):
            return True, pos, 0
    raise _bad("too many trailer lines")


class ChunkedBody:
    """Reads one chunked body from cheroot's connection ``stream`` (its ``StreamReader``)."""

    def __init__(self, stream: StreamReader, on_end: Callable[[], None] | None = None) -> None:
        self._stream = stream
        self._on_end = on_end  # called once the last chunk (and its trailers) is read
        self._buf = memoryview(bytearray(_SCRATCH))
        self._pos = self._end = 0  # received and not yet used: _buf[_pos:_end]
        self._left = 0  # data bytes still to come in the current chunk
        self._crlf_due = False  # the current chunk's data is done: its CRLF comes next
        self._done = False

    def readinto(self, view: memoryview) -> int:
        """Up to ``len(view)`` bytes of body data; 0 at the end of the body. ``view`` past the
        bytes returned may be written to (framing read along with the data)."""
        while not self._done:
            if self._left:
                return self._data(view)
            self._framing()
        return 0

    def _data(self, view: memoryview) -> int:
        want = min(len(view), self._left)
        if self._pos < self._end:
            n = min(want, self._end - self._pos)
            view[:n] = self._buf[self._pos : self._pos + n]
            self._pos += n
        elif self._stream.has_data():
            # Bytes cheroot read with the request head; peek(0) returns them without reading.
            data = self._stream.read(min(want, len(self._stream.peek(0))))
            n = len(data)
            view[:n] = data
        elif self._left + 2 + _LAST_CHUNK <= len(view):
            # The rest of the chunk and the framing after it, in one read straight into the
            # caller's buffer; the framing bytes (past the data) are moved aside.
            got = self._recv(view[: self._left + 2 + _LAST_CHUNK])
            n = min(got, self._left)
            self._pos, self._end = 0, got - n
            self._buf[: self._end] = view[n:got]
        elif self._left + 2 + _LAST_CHUNK > len(self._buf):
            n = self._recv(view[:want])  # a big chunk: straight into the caller's buffer
        else:
            # The rest of the chunk and the framing after it, in one read (bounded: see above).
            self._pos = 0
            self._end = self._recv(self._buf[: self._left + 2 + _LAST_CHUNK])
            return self._data(view) if self._end else self._data_ended()
        if not n:
            return self._data_ended()
        self._left -= n
        self._crlf_due = not self._left
        return n

    def _data_ended(self) -> int:
        raise UsageError("the chunked request body ended inside a chunk")

    def _framing(self) -> None:
        while True:
            if self._pos < self._end:
                pending: bytes | memoryview = self._buf[self._pos : self._end]
                from_cheroot = False
            elif self._stream.has_data():
                pending, from_cheroot = self._stream.peek(0), True
            else:
                pending, from_cheroot = b"", False
            complete, consumed, value = parse_framing(pending, self._crlf_due)
            if complete:
                if from_cheroot:
                    self._stream.read(consumed)
                else:
                    self._pos += consumed
                self._crlf_due = False
                self._left = value
                self._done = not value
                if self._done and self._on_end is not None:
                    self._on_end()
                return
            if from_cheroot:
                # All of cheroot's buffered bytes are framing still incomplete, so body bytes:
                # move them here and read on from the socket.
                pending = self._stream.read(len(pending))
                self._pos, self._end = 0, len(pending)
                self._buf[: self._end] = pending
            elif self._pos:
                tail = bytes(self._buf[self._pos : self._end])  # a few bytes of framing
                self._pos, self._end = 0, len(tail)
                self._buf[: self._end] = tail
            room = len(self._buf) - self._end
            if not room:
                raise _bad("chunk framing longer than the server accepts")
            got = self._recv(self._buf[self._end : self._end + min(value, room)])
            if not got:
                raise UsageError("the chunked request body ended before its last chunk")
            self._end += got

    def _recv(self, view: memoryview) -> int:
        n: int = self._stream.raw.readinto(view) or 0  # None ("would block"): not with cheroot
        self._stream.bytes_read += n
        return n
