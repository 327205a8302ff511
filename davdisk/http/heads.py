"""A request head read ahead of its worker: whether bytes hold a whole head, and the socket
reader into whose buffer the gate (``http/gate.py``) puts what it read, so that the worker
parses the head without waiting for it.

cheroot internals used (checked with cheroot 10 and 11): ``_pyio.BufferedReader``'s read
buffer, under which cheroot's ``StreamReader`` reads the socket.
"""

from __future__ import annotations

from cheroot.makefile import StreamReader


class HeadReader(StreamReader):
    """cheroot's socket reader, into whose buffer the gate puts the bytes it read for the
    worker (the request head, and whatever followed it), and out of which it takes what a
    worker left there (the start of a pipelined request) when the connection waits again."""

    def push_front(self, data: bytes) -> None:
        with self._read_lock:  # type: ignore[attr-defined]  # _pyio.BufferedReader's own
            self._read_buf = bytes(data) + self._read_buf[self._read_pos :]  # type: ignore[has-type]
            self._read_pos = 0

    def take_buffered(self) -> bytes:
        with self._read_lock:  # type: ignore[attr-defined]
            data: bytes = self._read_buf[self._read_pos :]
            self._read_buf = b""
            self._read_pos = 0
            return data


def head_complete(data: bytes | bytearray) -> bool:
    """Whether ``data`` holds a whole request head (RFC 9112 2.2: empty lines before the
    request line are ignored)."""
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    return data.find(b"\r\n\r\n", start) >= 0
