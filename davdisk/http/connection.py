"""The request side of davdisk's cheroot: its connection, request and gateway classes.

**Closing instead of draining.** When an application answers without reading the whole request
body (a 401 to an anonymous PUT, a 409, a refusal by ``http/limits.py``), cheroot reads the rest
before it sends the answer, so the connection can be reused - and reads it with one
``read(remaining)``, which holds the whole remainder in memory: a 1 GiB Content-Length costs
1 GiB of RAM (measured). The gateway puts a callable in every request's context
(``close_connection``, ``request_context.py``) that marks the connection to be closed after
the answer, with a lingering close by the gate (``http/gate.py``); servers without it (tests
that call the WSGI app directly) leave it None.

**``Expect: 100-continue``.** cheroot answers ``100 Continue`` as soon as it has read the
request head, before the application has looked at the request, so a client sends its body
into a 401, a full quota or a locked file. Here the request holds the expectation back from
cheroot, and the gateway puts a :class:`Continue` in the request context (``expectation``):
``http/request_body.py`` sends the 100 just before the first read of the body, which comes after
authentication, the size limit, the quota, the lock and permission checks. A request answered
without that read gets its final status and no 100; its client has sent no body (or may still
send it: RFC 9110 10.1.1), so the connection is closed after the answer.

cheroot internals used (checked with cheroot 10 and 11): the request's header reader, its
``sent_headers``, ``chunked_read`` and ``rfile``.
"""

from __future__ import annotations

import io
from typing import Any

from cheroot import errors, server, wsgi
from cheroot.makefile import MakeFile

from davdisk.http.gate import Gate
from davdisk.http.heads import HeadReader
from davdisk.http.shutdown import InFlight
from davdisk.request_context import context

_CONTINUE_LINE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Continue:
    """The ``100 Continue`` a request's client waits for, sent at most once."""

    def __init__(self, request: server.HTTPRequest) -> None:
        self._request = request
        self.pending = True  # the client waits and nothing was sent yet

    def send(self) -> None:
        """Ask the client for the body (before the first read of it)."""
        if not self.pending:
            return
        self.pending = False
        if self._request.sent_headers:  # a final answer went out already: too late to ask
            return
        try:
            self._request.conn.wfile.write(_CONTINUE_LINE)
        except OSError as e:
            # The client is gone; the read that follows will notice.
            if e.args[0] not in errors.socket_errors_to_ignore:
                raise


class _ExpectHoldingReader:
    """cheroot's header reader, minus ``Expect: 100-continue`` (noted on the request), so that
    cheroot does not send ``100 Continue`` on its own."""

    def __init__(self, request: DeferredContinueRequest, inner: Any) -> None:
        self._request = request
        self._inner = inner

    def __call__(self, rfile: Any, hdict: dict[bytes, bytes] | None = None) -> Any:
        headers = self._inner(rfile, hdict)
        expect = headers.get(b"Expect")
        if expect is not None and expect.strip().lower() == b"100-continue":
            del headers[b"Expect"]
            self._request.expects_continue = True
        return headers


class DeferredContinueRequest(server.HTTPRequest):
    expects_continue = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_reader = _ExpectHoldingReader(self, self.header_reader)

    def read_request_headers(self) -> bool:
        # The request line is in: from now on a graceful stop waits for this request.
        started = getattr(self.conn, "request_started", None)
        if started is not None:
            started()
        return bool(super().read_request_headers())


class ClosingGateway(wsgi.Gateway_10):
    def get_environ(self) -> dict[str, Any]:  # type: ignore[override]  # stub says None
        environ: dict[str, Any] = super().get_environ()
        request = self.req

        def close_connection() -> None:
            request.close_connection = True
            # Part of the body may still be on its way: close without reading it (the gate).
            request.conn.linger_close = True

        ctx = context(environ)
        ctx.close_connection = close_connection
        # An HTTP/1.0 client never waits for a 100 (RFC 9110 10.1.1): its Expect is ignored.
        if getattr(request, "expects_continue", False) and request.response_protocol == "HTTP/1.1":
            environ["HTTP_EXPECT"] = "100-continue"
            ctx.expectation = Continue(request)
        return environ

    def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        waiting = context(self.env).expectation
        if waiting is not None and waiting.pending and _has_body(self.req):
            # Answered without asking for the body: the client may still send it (after its
            # own wait for the 100 runs out), so nothing more is read from this connection.
            waiting.pending = False
            self.req.close_connection = True
            self.req.conn.linger_close = True
        elif _body_unread(self.req):
            # Answered with part of the body unread and nobody said what to do with it (an
            # answer from outside http/limits.py, such as a 500 from http/errors.py): cheroot
            # would read all the rest into memory to keep the connection. Close it instead.
            self.req.close_connection = True
            self.req.conn.linger_close = True
        if not self.req.server.ready:
            # Stopping (http/shutdown.py): this is the connection's last answer; say so.
            self.req.close_connection = True
        return super().start_response(status, headers, exc_info)


def _body_unread(request: server.HTTPRequest) -> bool:
    rfile = getattr(request, "rfile", None)
    if isinstance(rfile, server.ChunkedRFile):
        return not rfile.closed
    return bool(getattr(rfile, "remaining", 0))


def _has_body(request: server.HTTPRequest) -> bool:
    if request.chunked_read:
        return True
    try:
        return int(request.inheaders.get(b"Content-Length", b"0")) > 0
    except ValueError:
        return True


def install_connection(http_server: server.HTTPServer, in_flight: InFlight | None = None) -> None:
    """Make a not yet prepared cheroot server use this module's connection, request and
    gateway."""
    base: type[server.HTTPConnection] = http_server.ConnectionClass
    tracked = in_flight

    class Connection(base):  # type: ignore[valid-type,misc]  # a class chosen at run time
        RequestHandlerClass = DeferredContinueRequest
        linger_close = False

        def __init__(self, server: Any, sock: Any, makefile: Any = MakeFile) -> None:
            def files(sock: Any, mode: str = "r", bufsize: int = io.DEFAULT_BUFFER_SIZE) -> Any:
                # The gate puts the request head it read into the reader's buffer.
                if "r" in mode:
                    return HeadReader(sock, mode, bufsize)
                return makefile(sock, mode, bufsize)

            super().__init__(server, sock, files)

        def close(self) -> None:
            gate = getattr(self.server, "_connections", None)
            if self.linger_close and isinstance(gate, Gate):
                self.linger_close = False
                if gate.linger(self):
                    return
            super().close()

        def communicate(self) -> bool:
            """One request, from the wait for its first line to the end of its answer."""
            if tracked is None:
                return bool(super().communicate())
            with tracked.serving(self):
                return bool(super().communicate())

        def request_started(self) -> None:
            if tracked is not None:
                tracked.started(self)

    http_server.ConnectionClass = Connection
    http_server.gateway = ClosingGateway
