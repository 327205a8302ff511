"""The audit log: one JSON line per request, with no secrets.

``[logging] audit`` names the target: "" = off (the middleware then costs nothing), "-" =
standard output, anything else = a file, opened for appending. Each line is one ``os.write`` of
a whole line under a lock, so lines never interleave, not even between processes appending to
one file (O_APPEND), and nothing sits in a buffer.

A line has: ``ts`` (ISO 8601 UTC, when the request arrived), ``user`` (who the request acted
as: a user name, ``link:<share id>`` for a public link, or null), ``ip``, ``method``, ``path``,
``status``, ``bytes_in`` (request body bytes the server read), ``bytes_out`` (response body
bytes handed to the server and taken back for more, i.e. sent), ``ms``, and ``auth``:
``"failed"`` or ``"throttled"`` when a login failed or was refused by a lockout.

What never appears: the Authorization header or any password, the query string, and public-link
tokens — ``/s/<token>`` and ``/public/<token>/...`` are logged as ``<link:…>`` with the first 8
hex digits of the token's SHA-256, enough to match requests to one link, useless to open it.

The line is written when the server closes the response, so a streamed download is logged once,
after its last byte, and a client that hangs up mid-way is logged with what it really got.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from davdisk.auth.throttle import client_ip
from davdisk.config import Config
from davdisk.request_context import context

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Path prefixes whose next segment is a public-link token.
LINK_PREFIXES = ("/s/", "/public/")


def redact_path(path: str) -> str:
    """``path`` with a public-link token replaced by ``<link:`` + 8 hex of its SHA-256 + ``>``."""
    for prefix in LINK_PREFIXES:
        if path.startswith(prefix):
            token, slash, rest = path[len(prefix) :].partition("/")
            if token:
                digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
                return f"{prefix}<link:{digest[:8]}>{slash}{rest}"
    return path


def request_path(environ: dict[str, Any]) -> str:
    # PEP 3333 hands the path over as latin-1 text of its raw bytes; they are UTF-8 for us.
    raw = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    try:
        return raw.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return raw


class _Sink:
    """Where lines go: whole lines, one write each, under a lock."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._broken = False
        if target == "-":
            self._fd = sys.stdout.fileno()
        else:
            self._fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        data = line.encode("utf-8", "backslashreplace")
        with self._lock:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
                self._broken = False
            except OSError as e:
                # A full disk must not fail requests; say so once per outage.
                if not self._broken:
                    logger.error("cannot write the audit log %s: %s", self.target, e)
                self._broken = True


class _CountingInput:
    """``wsgi.input`` that counts the body bytes the application reads."""

    def __init__(self, stream: Any, entry: _Entry) -> None:
        self._stream = stream
        self._entry = entry

    def read(self, *args: Any) -> bytes:
        data: bytes = self._stream.read(*args)
        self._entry.bytes_in += len(data)
        return data

    def readline(self, *args: Any) -> bytes:
        data: bytes = self._stream.readline(*args)
        self._entry.bytes_in += len(data)
        return data

    def readlines(self, *args: Any) -> list[bytes]:
        lines: list[bytes] = self._stream.readlines(*args)
        self._entry.bytes_in += sum(len(line) for line in lines)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        for line in self._stream:
            self._entry.bytes_in += len(line)
            yield line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Entry:
    """What is known of one request so far."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.started = time.monotonic()
        self.ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.method = environ.get("REQUEST_METHOD", "")
        # Taken now: WsgiDAV rewrites SCRIPT_NAME/PATH_INFO as it dispatches.
        self.path = redact_path(request_path(environ))
        self.status: int | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.done = False

    def record(self) -> dict[str, Any]:
        actor = context(self.environ).actor
        record: dict[str, Any] = {
            "ts": self.ts,
            "user": getattr(actor, "name", None),
            "ip": client_ip(self.environ) or None,
            "method": self.method,
            "path": self.path,
            # No status means the application failed before answering: the server sends a 500.
            "status": self.status or 500,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "ms": round((time.monotonic() - self.started) * 1000, 1),
        }
        event = context(self.environ).auth_event
        if event:
            record["auth"] = event
        return record


class _CountedBody:
    """The response body, counting each chunk once the server comes back for the next one
    (the previous write succeeded) or finishes; logs the request when the server closes it."""

    def __init__(self, body: Iterable[bytes], entry: _Entry, finish: Callable[[_Entry], None]):
        self._body = body
        self._iter: Iterator[bytes] | None = None
        self._entry = entry
        self._finish = finish
        self._pending = 0

    def __iter__(self) -> _CountedBody:
        self._iter = iter(self._body)
        return self

    def __next__(self) -> bytes:
        assert self._iter is not None
        self._entry.bytes_out += self._pending
        self._pending = 0
        chunk = next(self._iter)
        self._pending = len(chunk)
        return chunk

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._finish(self._entry)


class AuditLog:
    def __init__(self, app: WSGIApp, config: Config) -> None:
        self.app = app
        self.config = config
        target = config.get("logging", "audit")
        self.sink = _Sink(target) if target else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.sink is None:
            return self.app(environ, start_response)
        entry = _Entry(environ)
        if "wsgi.input" in environ:
            environ["wsgi.input"] = _CountingInput(environ["wsgi.input"], entry)

        def recording_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], Any]:
            entry.status = int(status[:3])
            write = start_response(status, headers, exc_info)

            def counting_write(data: bytes) -> Any:
                result = write(data)
                entry.bytes_out += len(data)
                return result

            return counting_write

        try:
            body = self.app(environ, recording_start_response)
        except BaseException:
            self._finish(entry)
            raise
        return _CountedBody(body, entry, self._finish)

    def _finish(self, entry: _Entry) -> None:
        if entry.done or self.sink is None:
            return
        entry.done = True
        self.sink.write(entry.record())
