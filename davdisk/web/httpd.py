"""davdisk's HTTP server: cheroot, made to hold against hostile clients. Everything that extends
or wraps cheroot is here; :func:`build` makes the server ``davdisk serve`` runs.

**Waiting without a worker (the gate).** cheroot gives a worker thread to every connection as
soon as it is accepted, and to a kept-alive one as soon as it becomes readable; the worker then
blocks in the TLS handshake and in reading the request head, 60 s per read. With 64 workers, 70
connections that sent nothing (or one byte of a ClientHello, or a header byte every 10 s)
stalled every other client (measured). Here the accept loop's selector does that waiting,
non-blocking, for any number of connections (:class:`Gate`):

- a new connection is accepted and parked; on HTTPS its handshake runs step by step as the
  client's bytes arrive (a plain-HTTP client on the HTTPS port gets a one-line 400 from here);
- the request head is read into a buffer until its blank line; then the connection goes to a
  worker with the head in its read buffer (:class:`HeadReader`), so the worker parses it
  without waiting;
- deadlines: a connection that has sent nothing is closed after the server's idle timeout
  (``timeout``, as cheroot does with idle keep-alive ones); once a connection has started (its
  first byte, or the handshake), the handshake and the whole head must arrive within
  ``[limits] head_timeout`` seconds, however slowly the bytes trickle;
- at most ``[limits] max_waiting_connections`` wait at once; one more closes the oldest waiting
  connection of the address that holds the most (a flood from one address evicts itself, not
  the idle keep-alive connections of everyone else);
- a connection closed with part of a request body unread is not drained by its worker: its
  answer is sent, the sending side shut, and what still arrives is read and dropped here until
  the client hangs up (at most :data:`LINGER_SECONDS` / :data:`LINGER_BYTES`), so the client
  reads the answer rather than a reset - Apache's "lingering close", without a thread.

**Closing instead of draining.** When an application answers without reading the whole request
body (a 401 to an anonymous PUT, a 409, a refusal by ``web/limits.py``), cheroot reads the rest
before it sends the answer, so the connection can be reused - and reads it with one
``read(remaining)``, which holds the whole remainder in memory: a 1 GiB Content-Length costs
1 GiB of RAM (measured). The gateway puts a callable in every request's context
(``close_connection``, ``request_context.py``) that marks the connection to be closed after
the answer (with a lingering close); servers without it (tests that call the WSGI app
directly) leave it None.

**``Expect: 100-continue``.** cheroot answers ``100 Continue`` as soon as it has read the
request head, before the application has looked at the request, so a client sends its body
into a 401, a full quota or a locked file. Here the request holds the expectation back from
cheroot, and the gateway puts a :class:`Continue` in the request context (``expectation``):
``web/request_body.py`` sends the 100 just before the first read of the body, which comes after
authentication, the size limit, the quota, the lock and permission checks. A request answered
without that read gets its final status and no 100; its client has sent no body (or may still
send it: RFC 9110 10.1.1), so the connection is closed after the answer.

**TLS.** :class:`TLSAdapter` wraps accepted sockets in the context of ``tls.py`` without
handshaking (the gate does that); cheroot's builtin adapter would handshake inside the accept
loop, where one silent client stalled every new connection for a minute.

cheroot internals used (checked with cheroot 10 and 11): the connection manager's selector and
``_run`` loop (replaced after ``prepare()``), ``_pyio.BufferedReader``'s read buffer, and the
request's header reader.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import io
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from cheroot import connections, errors, server, wsgi
from cheroot.makefile import MakeFile, StreamReader
from cheroot.ssl.builtin import BuiltinSSLAdapter

from davdisk.config import Config
from davdisk.request_context import context
from davdisk.tls import ServerTLS
from davdisk.web.errors import quiet_server_log
from davdisk.web.shutdown import InFlight

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the gate


# A lingering close reads and drops at most this much, for at most this long.
LINGER_SECONDS = 5.0
LINGER_BYTES = 16 << 20
_READ_STEP = 1 << 16
# How often deadlines are checked.
_EXPIRY_STEP = 0.5
# The most bytes of unfinished request heads held at once (see Gate._over_budget).
HEAD_BUDGET = 32 << 20
# The selector's data for the socket workers wake it through.
_WAKE = object()

_PLAIN_HTTP_BODY = b"This server speaks HTTPS only: use an https:// URL.\n"
PLAIN_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_PLAIN_HTTP_BODY), _PLAIN_HTTP_BODY)
)

# What a waiting connection waits for.
HANDSHAKE = "handshake"
HEAD = "head"
LINGER = "linger"


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


class Gate(connections.ConnectionManager):
    """cheroot's connection manager, holding connections until their request head is in."""

    # cheroot's own, not in its type stubs.
    _selector: Any
    _stop_requested: bool
    _from_server_socket: Callable[[socket.socket], Any]

    def __init__(self, server: Any, *, head_timeout: float, max_waiting: int) -> None:
        super().__init__(server)
        self.head_timeout = head_timeout
        self.max_waiting = max_waiting
        # Waiting connections by client address, oldest first (dicts keep insertion order).
        # Only the selector thread touches them (and close(), once the loop has ended): worker
        # threads hand connections over through the inbox, so that no connection is stepped
        # by one thread while another closes it.
        self._by_addr: dict[str, dict[Any, None]] = {}
        self._count = 0
        self._buffered = 0  # bytes of request heads held
        self._next_expiry = 0.0
        self._inbox: collections.deque[tuple[Any, str, bytearray, float]] = collections.deque()
        self._inbox_lock = threading.Lock()
        self._closed = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r.fileno(), selectors.EVENT_READ, data=_WAKE)
        self._accept_paused_until = 0.0

    # --- cheroot's interface (worker threads) ------------------------------------------------

    @property
    def can_add_keepalive_connection(self) -> bool:
        # An idle keep-alive connection waits here like any other; max_waiting bounds them all.
        return True

    def put(self, conn: Any) -> None:
        """A worker finished an answer and keeps the connection: wait for its next head."""
        now = time.time()
        conn.last_used = now
        sock = conn.socket
        leftover = conn.rfile.take_buffered() if isinstance(conn.rfile, HeadReader) else b""
        try:
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                # Decrypted bytes the selector cannot see (they arrived with the last record).
                leftover += sock.recv(sock.pending())
            if leftover and (head_complete(leftover) or len(leftover) >= self._max_head()):
                conn.rfile.push_front(leftover)  # a whole pipelined request: serve it now
                self.server.process_conn(conn)
                return
            sock.setblocking(False)
        except OSError:
            _close_socket(conn)
            return
        # A pipelined request begun but not whole has head_timeout to arrive.
        deadline = now + (self.head_timeout if leftover else self.server.timeout)
        if not self._hand_over(conn, HEAD, bytearray(leftover), deadline):
            _close_socket(conn)

    def linger(self, conn: Any) -> bool:
        """Close ``conn`` after its answer without reading the rest of its request (see the
        module docstring). False if the gate is stopping (then close it at once)."""
        if self._closed:
            return False
        try:
            socket.socket.shutdown(conn.socket, socket.SHUT_WR)
            conn.socket.setblocking(False)
        except (OSError, ValueError):
            return False
        return self._hand_over(conn, LINGER, bytearray(), time.time() + LINGER_SECONDS)

    def _hand_over(self, conn: Any, state: str, buffer: bytearray, deadline: float) -> bool:
        with self._inbox_lock:
            if self._closed:
                return False
            self._inbox.append((conn, state, buffer, deadline))
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
            self._wake_w.send(b"\0")
        return True

    # --- the selector thread -----------------------------------------------------------------

    def _run(self, expiration_interval: float) -> None:
        while not self._stop_requested:
            try:
                ready = list(self._selector.select(timeout=expiration_interval))
            except OSError:
                self._remove_invalid_sockets()
                continue
            for _fd, conn in ready:
                if conn is self.server:
                    self._accept()
                elif conn is _WAKE:
                    self._take_inbox()
                elif conn.gate_state is not None:  # (not closed earlier in this round)
                    self._step(conn)
            now = time.time()
            if now >= self._next_expiry:
                self._next_expiry = now + _EXPIRY_STEP
                self._expire_late(now)

    def _accept(self) -> None:
        if time.monotonic() < self._accept_paused_until:
            return
        try:
            new = self._from_server_socket(self.server.socket)
        except OSError as e:
            if e.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                raise
            # Out of descriptors: free one (the busiest address's oldest waiting connection)
            # and take a breath, rather than spin on a listening socket that stays readable.
            logger.warning("cannot accept a connection: %s", e.strerror)
            if self._count:
                self._close(self._victim())
            self._accept_paused_until = time.monotonic() + 0.1
            return
        if new is not None:
            self._admit(new)

    def _take_inbox(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass
        with self._inbox_lock:
            handed, self._inbox = list(self._inbox), collections.deque()
        for conn, state, buffer, deadline in handed:
            if state == LINGER:
                conn.gate_dropped = 0
            self._wait(conn, state, buffer, deadline)

    def _expire_late(self, now: float) -> None:
        late = [c for conns in self._by_addr.values() for c in conns if c.gate_deadline <= now]
        for conn in late:
            if conn.gate_state == HANDSHAKE or (conn.gate_state == HEAD and conn.gate_buffer):
                logger.debug("closing %s: no complete request head in time", conn.remote_addr)
            self._close(conn)

    def _remove_invalid_sockets(self) -> None:
        for conn in [c for conns in self._by_addr.values() for c in conns]:
            try:
                os.fstat(conn.socket.fileno())
            except (OSError, ValueError):
                self._close(conn)

    def close(self) -> None:
        """Close every waiting connection (after the loop has ended: cheroot's stop())."""
        with self._inbox_lock:
            self._closed = True
            handed = list(self._inbox)
            self._inbox.clear()
        conns = [c for conns in self._by_addr.values() for c in conns]
        self._by_addr.clear()
        self._count = 0
        for conn in conns:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(conn.socket.fileno())
        for conn in [*conns, *(c for c, *_ in handed)]:
            _close_socket(conn)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(self._wake_r.fileno())
        self._wake_r.close()
        self._wake_w.close()
        super().close()

    # --- the waiting room ------------------------------------------------------------------

    def _admit(self, conn: Any) -> None:
        """A new connection: handshake (HTTPS) or head, then a worker."""
        now = time.time()
        conn.last_used = now
        try:
            conn.socket.setblocking(False)
        except OSError:
            _close_socket(conn)
            return
        tls = isinstance(conn.socket, ssl.SSLSocket)
        # A handshake has head_timeout from the start; a plain connection may stay idle first.
        deadline = now + (self.head_timeout if tls else self.server.timeout)
        if self._wait(conn, HANDSHAKE if tls else HEAD, bytearray(), deadline):
            # Its first bytes are often there already: no need for another turn of the loop.
            self._step(conn)

    def _wait(self, conn: Any, state: str, buffer: bytearray, deadline: float) -> bool:
        """Park ``conn``; False if that failed (it is closed then)."""
        conn.gate_state = state
        conn.gate_buffer = buffer
        conn.gate_deadline = deadline
        conn.gate_peeked = False
        conn.gate_events = selectors.EVENT_READ
        addr = str(conn.remote_addr)
        conn.gate_addr = addr
        try:
            self._selector.register(conn.socket.fileno(), selectors.EVENT_READ, data=conn)
        except (OSError, ValueError, KeyError):
            conn.gate_state = None
            _close_socket(conn)
            return False
        self._by_addr.setdefault(addr, {})[conn] = None
        self._count += 1
        self._buffered += len(buffer)
        if self._count > self.max_waiting:
            victim = self._victim()
            logger.info(
                "more than %d connections waiting: closing one of %s's",
                self.max_waiting,
                victim.gate_addr,
            )
            self._close(victim)
        return conn.gate_state is not None

    def _victim(self) -> Any:
        """The oldest waiting connection of the address with the most."""
        addr = max(self._by_addr, key=lambda a: len(self._by_addr[a]))
        return next(iter(self._by_addr[addr]))

    def _leave(self, conn: Any) -> bool:
        """Stop waiting for ``conn`` (False if it was not waiting)."""
        conns = self._by_addr.get(conn.gate_addr)
        if conns is None or conn not in conns:
            return False
        del conns[conn]
        if not conns:
            del self._by_addr[conn.gate_addr]
        self._count -= 1
        self._buffered -= len(conn.gate_buffer)
        conn.gate_state = None
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(conn.socket.fileno())
        return True

    def _close(self, conn: Any) -> None:
        if self._leave(conn):
            _close_socket(conn)

    def _dispatch(self, conn: Any) -> None:
        """The head is in: hand the connection to a worker, the head in its read buffer."""
        head = bytes(conn.gate_buffer)
        if not self._leave(conn):
            return
        conn.gate_buffer = bytearray()
        try:
            conn.socket.settimeout(self.server.timeout)
        except OSError:
            _close_socket(conn)
            return
        conn.rfile.push_front(head)
        conn.last_used = time.time()
        self.server.process_conn(conn)

    def _over_budget(self) -> None:
        """Hold at most HEAD_BUDGET bytes of request heads: close the connections holding the
        most until under it (honest heads are a few hundred bytes; 4 096 connections with
        64 KiB each would hold 256 MiB)."""
        while self._buffered > HEAD_BUDGET:
            largest = max(
                (c for conns in self._by_addr.values() for c in conns),
                key=lambda c: len(c.gate_buffer),
            )
            logger.info(
                "request heads take more than %d MiB: closing %s's (%d bytes, not whole)",
                HEAD_BUDGET >> 20,
                largest.gate_addr,
                len(largest.gate_buffer),
            )
            self._close(largest)

    def _max_head(self) -> int:
        return int(self.server.max_request_header_size or 0) or (1 << 20)

    # --- one step of a waiting connection ----------------------------------------------------

    def _step(self, conn: Any) -> None:
        try:
            if conn.gate_state == HANDSHAKE:
                self._handshake(conn)
            elif conn.gate_state == HEAD:
                self._read_head(conn)
            else:
                self._drop_input(conn)
        except Exception:  # a broken connection must never stop the loop
            logger.debug("connection from %s failed while waiting", conn.remote_addr, exc_info=True)
            self._close(conn)

    def _handshake(self, conn: Any) -> None:
        sock: ssl.SSLSocket = conn.socket
        raw = socket.socket  # the plain methods of an SSLSocket reach the TCP stream under TLS
        if not conn.gate_peeked:
            try:
                first = raw.recv(sock, 1, socket.MSG_PEEK)
            except BlockingIOError:
                return
            except OSError:
                self._close(conn)
                return
            if not first:
                self._close(conn)
                return
            if first.isalpha():
                # A TLS stream starts with a record type byte (0x16); a letter is an HTTP
                # method: a plain-HTTP client on the HTTPS port. Tell it so in plain text.
                with contextlib.suppress(OSError):
                    raw.send(sock, PLAIN_HTTP_ANSWER)
                    raw.shutdown(sock, socket.SHUT_WR)
                conn.gate_state = LINGER
                conn.gate_dropped = 0
                conn.gate_deadline = time.time() + LINGER_SECONDS
                return
            conn.gate_peeked = True
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._want(conn, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._want(conn, selectors.EVENT_WRITE)
            return
        except OSError as e:  # ssl.SSLError included: old TLS versions, scanners, resets
            logger.debug("TLS handshake with %s failed: %s", conn.remote_addr, e)
            self._close(conn)
            return
        conn.ssl_env = self.server.ssl_adapter.get_environ(sock)
        conn.gate_state = HEAD  # still within the deadline the handshake started with
        self._want(conn, selectors.EVENT_READ)
        self._read_head(conn)  # the request may have come with the handshake's last flight

    def _want(self, conn: Any, events: int) -> None:
        if conn.gate_events != events:
            conn.gate_events = events
            self._selector.unregister(conn.socket.fileno())
            self._selector.register(conn.socket.fileno(), events, data=conn)

    def _read_head(self, conn: Any) -> None:
        sock = conn.socket
        buffer: bytearray = conn.gate_buffer
        before = len(buffer)
        ended = False
        while True:
            try:
                chunk = sock.recv(_READ_STEP)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except OSError:
                ended = True
                break
            if not chunk:
                ended = True
                break
            buffer += chunk
            self._buffered += len(chunk)
            if len(buffer) >= self._max_head() or head_complete(buffer):
                break
        if ended and (not buffer or not head_complete(buffer)):
            self._close(conn)  # hung up, or sent half a head and stopped: nothing to answer
            return
        if before == 0 and buffer:
            # The head has begun: from now on it has head_timeout to arrive whole.
            conn.gate_deadline = min(conn.gate_deadline, time.time() + self.head_timeout)
        if head_complete(buffer) or len(buffer) >= self._max_head():
            # (A head larger than the limit goes on too: cheroot answers it 413.)
            self._dispatch(conn)
        elif self._buffered > HEAD_BUDGET:
            self._over_budget()

    def _drop_input(self, conn: Any) -> None:
        while True:
            try:
                chunk = socket.socket.recv(conn.socket, _READ_STEP)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            conn.gate_dropped += len(chunk)
            if not chunk or conn.gate_dropped > LINGER_BYTES:
                self._close(conn)  # the client hung up (or would not stop): done
                return


def _close_socket(conn: Any) -> None:
    """Close a connection that waited (no request in flight: nothing to flush)."""
    sock = conn.socket
    with contextlib.suppress(OSError, ValueError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    with contextlib.suppress(OSError, ValueError):
        conn.rfile.close()
    with contextlib.suppress(OSError, ValueError):
        conn.wfile.close()
    with contextlib.suppress(OSError, ValueError):
        sock.close()


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one (every waiting connection holds a
    descriptor); returns the limit now in force."""
    try:
        import resource
    except ImportError:  # not POSIX
        return 1 << 16
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def _install_gate(server: Any, *, head_timeout: float, max_waiting: int) -> Gate:
    """Replace a prepared cheroot server's connection manager with a :class:`Gate`."""
    old = server._connections
    gate = Gate(server, head_timeout=head_timeout, max_waiting=max_waiting)
    server._connections = gate
    with contextlib.suppress(Exception):
        old._selector.close()
    return gate


# --------------------------------------------------------------------------- requests

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
            # answer from outside web/limits.py, such as a 500 from web/errors.py): cheroot
            # would read all the rest into memory to keep the connection. Close it instead.
            self.req.close_connection = True
            self.req.conn.linger_close = True
        if not self.req.server.ready:
            # Stopping (web/shutdown.py): this is the connection's last answer; say so.
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


def _install_connection(http_server: server.HTTPServer, in_flight: InFlight | None = None) -> None:
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


# --------------------------------------------------------------------------- TLS


class TLSAdapter(BuiltinSSLAdapter):
    """cheroot's builtin adapter around our context; the gate does the handshake."""

    def __init__(self, tls: ServerTLS) -> None:
        # Skip BuiltinSSLAdapter.__init__: it would load the files again into a context of its
        # own and handshake with itself over a socket pair just to describe the certificate.
        super(BuiltinSSLAdapter, self).__init__(str(tls.cert_path), str(tls.key_path))
        self.context = tls.context

    def wrap(self, sock: socket.socket) -> tuple[ssl.SSLSocket, dict[str, Any]]:
        wrapped = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return wrapped, {"wsgi.url_scheme": "https", "HTTPS": "on"}

    def get_environ(self, sock: ssl.SSLSocket) -> dict[str, Any]:  # type: ignore[override]
        cipher = sock.cipher()
        env: dict[str, Any] = {"wsgi.url_scheme": "https", "HTTPS": "on"}
        if cipher:
            env.update(SSL_CIPHER=cipher[0], SSL_PROTOCOL=cipher[1])
        return env


# --------------------------------------------------------------------------- the server


def build(
    app: Any,
    config: Config,
    host: str,
    port: int,
    server_tls: ServerTLS | None,
    in_flight: InFlight,
) -> wsgi.Server:
    """A prepared (bound, not yet serving) cheroot server for ``app`` with everything above;
    ``in_flight`` registers the connections serving a request (for a graceful stop:
    web/shutdown.py)."""
    http = wsgi.Server(
        (host, port),
        app,
        numthreads=config.get("server", "threads"),
        server_name="davdisk",
        timeout=60,
        # The listen backlog: cheroot's default of 5 resets clients that open many connections
        # at once (Explorer does; so does the 50-client soak test), and a flood fills it.
        request_queue_size=1024,
    )
    # cheroot answers 413/414 itself when the request line and headers exceed this.
    http.max_request_header_size = config.get("limits", "max_header_bytes")
    quiet_server_log(http)  # web/errors.py logs each failed request once
    if server_tls is not None:
        http.ssl_adapter = TLSAdapter(server_tls)
    _install_connection(http, in_flight)
    # How often cheroot's accept loop looks up (default 0.5 s): a stop waits for it.
    http.expiration_interval = 0.1
    http.prepare()
    # Every waiting connection holds a file descriptor.
    open_files = raise_open_files_limit()
    _install_gate(
        http,
        head_timeout=config.get("limits", "head_timeout"),
        max_waiting=min(
            config.get("limits", "max_waiting_connections"),
            max(64, open_files - 2 * config.get("server", "threads") - 64),
        ),
    )
    return http
