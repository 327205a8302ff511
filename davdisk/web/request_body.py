"""A request body as the application reads it: counted, optionally capped, never read unbounded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from davdisk.errors import TooLarge

_STEP = 64 * 1024  # what a read of "everything" asks of the server at a time


class TrackedInput:
    """Wraps ``wsgi.input``: counts the bytes read, notes the end of the body, and raises
    :class:`TooLarge` as soon as more than ``limit`` bytes arrive (None = no limit).

    ``length`` is the Content-Length, or None for a chunked body (its end is known only once
    a read returns nothing).
    """

    def __init__(self, raw: Any, length: int | None, limit: int | None = None) -> None:
        self._raw = raw
        self.length = length
        self.limit = limit
        self.consumed = 0
        self._at_end = length == 0

    @property
    def unread(self) -> int | None:
        """Bytes of the body nobody has read: 0 when all is read, None when unknown."""
        if self._at_end:
            return 0
        if self.length is not None:
            return max(0, self.length - self.consumed)
        return None

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            # Read "everything" in steps: cheroot would pass -1 on to the socket and read past
            # the body (Content-Length) or all of it into one buffer.
            return b"".join(iter(lambda: self.read(_STEP), b""))
        if self._at_end or size == 0:
            return b""
        if self.length is not None:
            size = min(size, self.length - self.consumed)
        data = self._raw.read(size) if size else b""
        self._count(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        if self._at_end:
            return b""
        if size is None or size < 0:
            size = _STEP
        if self.length is not None:
            size = min(size, self.length - self.consumed)
        data = self._raw.readline(size) if size else b""
        self._count(data)
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(self)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def _count(self, data: bytes) -> None:
        if not data:
            self._at_end = True
            return
        self.consumed += len(data)
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
