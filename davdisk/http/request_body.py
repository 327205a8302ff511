"""A request body as the application reads it: counted, optionally capped, never read unbounded.

Big bodies (PUT) are read with :meth:`TrackedInput.readinto`, into the caller's buffer. Under
cheroot that reads straight from the connection: cheroot's own reader (``_pyio`` based) returns
a new ``bytes`` per read after joining and slicing what it received, which costs more CPU than
encrypting and hashing the data together. A Content-Length body is read here (what cheroot
had already buffered through its public reader API, the rest with the socket's ``readinto``),
a chunked one by ``http/chunked.py``; neither reads past the end of the body, so a pipelined
next request stays in cheroot's buffer.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

from cheroot.makefile import StreamReader
from cheroot.server import ChunkedRFile, KnownLengthRFile

from davdisk.errors import TooLarge
from davdisk.http.chunked import ChunkedBody

_STEP = 64 * 1024  # what a read of "everything" asks of the server at a time


class TrackedInput:
    """Wraps ``wsgi.input``: counts the bytes read, notes the end of the body, and raises
    :class:`TooLarge` as soon as more than ``limit`` bytes arrive (None = no limit).

    ``length`` is the Content-Length, or None for a chunked body (its end is known only once
    a read returns nothing). ``before_read`` runs once, before the first read that may need the
    client: it sends the ``100 Continue`` a client may wait for (``http/connection.py``).
    """

    def __init__(
        self,
        raw: Any,
        length: int | None,
        limit: int | None = None,
        before_read: Callable[[], None] | None = None,
    ) -> None:
        self._raw = raw
        self._before_read = before_read
        self.length = length
        self.limit = limit
        self.consumed = 0
        self._at_end = length == 0
        # The direct reader, once readinto() has chosen one; from then on every read uses it.
        self._direct: _KnownLengthBody | ChunkedBody | None = None
        self._direct_checked = False
        self._raw_used = False  # cheroot's chunked reader holds state: no direct reader then

    @property
    def unread(self) -> int | None:
        """Bytes of the body nobody has read: 0 when all is read, None when unknown."""
        if self._at_end:
            return 0
        if self.length is not None:
            return max(0, self.length - self.consumed)
        return None

    def readinto(self, buffer: Any) -> int:
        """Read up to ``len(buffer)`` body bytes into ``buffer``; 0 only at the end. The part of
        ``buffer`` past the bytes returned may be overwritten."""
        view = memoryview(buffer).cast("B")
        if self._at_end or not view:
            return 0
        if self.length is not None:
            view = view[: self.length - self.consumed]
        self._started()
        direct = self._direct_reader()
        if direct is not None:
            n = direct.readinto(view)
        else:
            # Behind another wrapper (the audit log's counter): cheroot's reader costs more per
            # byte the more is asked of it at once (it joins and slices), so ask in steps.
            data = self._raw_read(min(len(view), _STEP))
            n = len(data)
            view[:n] = data
        self._count(n)
        return n

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            # Read "everything" in steps: cheroot would pass -1 on to the socket and read past
            # the body (Content-Length) or all of it into one buffer.
            return b"".join(iter(lambda: self.read(_STEP), b""))
        if self._at_end or size == 0:
            return b""
        if self.length is not None:
            size = min(size, self.length - self.consumed)
        self._started()
        if self._direct is not None:
            buf = bytearray(size)
            del buf[self.readinto(buf) :]
            return bytes(buf)
        data = self._raw_read(size) if size else b""
        self._count(len(data))
        return data

    def readline(self, size: int | None = -1) -> bytes:
        if self._at_end:
            return b""
        if isinstance(self._direct, ChunkedBody):
            raise io.UnsupportedOperation("readline() after readinto() on a chunked body")
        if size is None or size < 0:
            size = _STEP
        if self.length is not None:
            size = min(size, self.length - self.consumed)
        self._started()
        self._raw_used = True
        data = self._raw.readline(size) if size else b""
        self._count(len(data))
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(self)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def _started(self) -> None:
        if self._before_read is not None:
            before, self._before_read = self._before_read, None
            before()

    def _raw_read(self, size: int) -> bytes:
        self._raw_used = True
        data: bytes = self._raw.read(size)
        return data

    def _direct_reader(self) -> _KnownLengthBody | ChunkedBody | None:
        if not self._direct_checked:
            self._direct_checked = True
            self._direct = _direct_body(self._raw, fresh=not self._raw_used)
        return self._direct

    def _count(self, n: int) -> None:
        if not n:
            self._at_end = True
            return
        self.consumed += n
        if self.length is not None and self.consumed >= self.length:
            self._at_end = True
        if self.limit is not None and self.consumed > self.limit:
            raise TooLarge(f"the request body is larger than {self.limit} bytes")


def read_capped(body: TrackedInput, cap: int) -> bytes:
    """The whole body, or :class:`TooLarge` once it passes ``cap`` bytes (cap + 1 read at most)."""
    chunks: list[bytes] = []
    got = 0
    while got <= cap:
        data = body.read(min(_STEP, cap + 1 - got))
        if not data:
            return b"".join(chunks)
        chunks.append(data)
        got += len(data)
    raise TooLarge(f"the request body is larger than {cap} bytes")


# --- direct readers over cheroot's connection ------------------------------------------------


def _direct_body(raw: Any, *, fresh: bool) -> _KnownLengthBody | ChunkedBody | None:
    """A direct reader for cheroot's body object ``raw``, or None for anything else (another
    server, a test's BytesIO, a wrapper such as the audit log's counter)."""
    if type(raw) is KnownLengthRFile and isinstance(raw.rfile, StreamReader):
        return _KnownLengthBody(raw)
    if (
        type(raw) is ChunkedRFile
        and isinstance(raw.rfile, StreamReader)
        and fresh
        and raw.bytes_read == 0
        and not raw.buffer
        and not raw.closed
    ):
        # cheroot's reader, bypassed, must still know when the body has been read to its end
        # (http/connection.py closes a connection whose body was left unread).
        return ChunkedBody(raw.rfile, on_end=lambda: setattr(raw, "closed", True))
    return None


def _take(stream: StreamReader, view: memoryview) -> int:
    """Fill the start of ``view`` from the connection: first from what cheroot has buffered,
    else straight from the socket. Returns 0 at EOF (the client went away)."""
    if stream.has_data():
        # peek(0) returns the buffered bytes without reading the socket.
        data = stream.read(min(len(view), len(stream.peek(0))))
        n = len(data)
        view[:n] = data
        return n
    n = stream.raw.readinto(view) or 0  # None would mean "would block": not on cheroot's sockets
    stream.bytes_read += n
    return n


class _KnownLengthBody:
    """A Content-Length body; keeps cheroot's count of what remains right (cheroot reads and
    discards that remainder itself after the answer)."""

    def __init__(self, rfile: KnownLengthRFile) -> None:
        self._rfile = rfile
        self._stream: StreamReader = rfile.rfile

    def readinto(self, view: memoryview) -> int:
        rfile = self._rfile
        want = min(len(view), rfile.remaining)
        if want <= 0:
            return 0
        n = _take(self._stream, view[:want])
        rfile.remaining -= n
        return n
