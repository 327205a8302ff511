"""Where connections wait without a worker thread: TLS handshakes, request heads, idle keep-alive
connections and lingering closes all sit in cheroot's selector; a worker is given a connection
only once a complete request head has arrived.

Why. cheroot gives a worker thread to every connection as soon as it is accepted, and to a
kept-alive one as soon as it becomes readable; the worker then blocks in the TLS handshake and in
reading the request head, 60 s per read. With 64 workers, 70 connections that send nothing (or
one byte of a ClientHello, or a header byte every 10 s) stalled every other client (measured).
Here the accept loop's selector does that waiting, non-blocking, for any number of connections:

- a new connection is accepted and parked; on HTTPS its handshake runs step by step as the
  client's bytes arrive (a plain-HTTP client on the HTTPS port gets a one-line 400 from here);
- the request head is read into a buffer until its blank line; then the connection goes to a
  worker with the head in its read buffer, so the worker parses it without waiting;
- deadlines: a connection that has sent nothing is closed after the server's idle timeout
  (``timeout``, as cheroot does with idle keep-alive ones); once a connection has started (its
  first byte, or the handshake), the handshake and the whole head must arrive within
  ``head_timeout`` seconds, however slowly the bytes trickle;
- at most ``max_waiting`` connections wait at once; one more closes the oldest waiting
  connection of the address that holds the most (a flood from one address evicts itself, not
  the idle keep-alive connections of everyone else);
- a connection closed with part of a request body unread (an answer to a request that was not
  logged in, a refused upload: ``web/connection.py``) is not drained by its worker: its answer
  is sent, the sending side shut, and what still arrives is read and dropped here until the
  client hangs up (at most :data:`LINGER_SECONDS` / :data:`LINGER_BYTES`), so the client reads
  the answer rather than a reset - Apache's "lingering close", without a thread.

This module is the only one that reaches into cheroot's connection manager (its selector and
its ``_run`` loop, cheroot 10-11); ``install`` replaces the manager after ``prepare()``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from cheroot import connections
from cheroot.makefile import StreamReader

logger = logging.getLogger(__name__)

# A lingering close reads and drops at most this much, for at most this long.
LINGER_SECONDS = 5.0
LINGER_BYTES = 16 << 20
_READ_STEP = 1 << 16
# How often deadlines are checked.
_EXPIRY_STEP = 0.5

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
        self._lock = threading.Lock()
        # Waiting connections by client address, oldest first (dicts keep insertion order).
        self._by_addr: dict[str, dict[Any, None]] = {}
        self._count = 0
        self._next_expiry = 0.0
        self._running = True

    # --- cheroot's interface ---------------------------------------------------------------

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
        self._wait(conn, HEAD, bytearray(leftover), deadline)

    def linger(self, conn: Any) -> bool:
        """Close ``conn`` after its answer without reading the rest of its request (see the
        module docstring). False if the gate is stopping (then close it at once)."""
        if not self._running:
            return False
        sock = conn.socket
        try:
            socket.socket.shutdown(sock, socket.SHUT_WR)
            sock.setblocking(False)
        except (OSError, ValueError):
            return False
        conn.gate_dropped = 0
        self._wait(conn, LINGER, bytearray(), time.time() + LINGER_SECONDS)
        return True

    def stop(self) -> None:
        self._running = False
        super().stop()

    def _run(self, expiration_interval: float) -> None:
        while not self._stop_requested:
            try:
                ready = list(self._selector.select(timeout=expiration_interval))
            except OSError:
                self._remove_invalid_sockets()
                continue
            for _fd, conn in ready:
                if conn is self.server:
                    new = self._from_server_socket(self.server.socket)
                    if new is not None:
                        self._admit(new)
                else:
                    self._step(conn)
            now = time.time()
            if now >= self._next_expiry:
                self._next_expiry = now + _EXPIRY_STEP
                self._expire_late(now)

    def _expire_late(self, now: float) -> None:
        with self._lock:
            late = [c for conns in self._by_addr.values() for c in conns if c.gate_deadline <= now]
        for conn in late:
            if conn.gate_state == HANDSHAKE or (conn.gate_state == HEAD and conn.gate_buffer):
                logger.debug("closing %s: no complete request head in time", conn.remote_addr)
            self._close(conn)

    def _remove_invalid_sockets(self) -> None:
        with self._lock:
            conns = [c for conns in self._by_addr.values() for c in conns]
        for conn in conns:
            try:
                os.fstat(conn.socket.fileno())
            except (OSError, ValueError):
                self._close(conn)

    def close(self) -> None:
        self._running = False
        with self._lock:
            conns = [c for conns in self._by_addr.values() for c in conns]
            self._by_addr.clear()
            self._count = 0
        for conn in conns:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(conn.socket.fileno())
            _close_socket(conn)
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
        self._wait(conn, HANDSHAKE if tls else HEAD, bytearray(), deadline)
        # Its first bytes are often there already: no need for another turn of the loop.
        self._step(conn)

    def _wait(self, conn: Any, state: str, buffer: bytearray, deadline: float) -> None:
        conn.gate_state = state
        conn.gate_buffer = buffer
        conn.gate_deadline = deadline
        conn.gate_peeked = False
        conn.gate_events = selectors.EVENT_READ
        addr = str(conn.remote_addr)
        conn.gate_addr = addr
        with self._lock:
            self._by_addr.setdefault(addr, {})[conn] = None
            self._count += 1
            victim = self._victim() if self._count > self.max_waiting else None
        try:
            self._selector.register(conn.socket.fileno(), selectors.EVENT_READ, data=conn)
        except (OSError, ValueError, KeyError):
            self._close(conn)
        if victim is not None:
            logger.info(
                "more than %d connections waiting: closing one of %s's",
                self.max_waiting,
                victim.gate_addr,
            )
            self._close(victim)

    def _victim(self) -> Any:
        """The oldest waiting connection of the address with the most (under the lock)."""
        addr = max(self._by_addr, key=lambda a: len(self._by_addr[a]))
        return next(iter(self._by_addr[addr]))

    def _leave(self, conn: Any) -> bool:
        """Stop waiting for ``conn`` (False if it was not waiting)."""
        with self._lock:
            conns = self._by_addr.get(conn.gate_addr)
            if conns is None or conn not in conns:
                return False
            del conns[conn]
            if not conns:
                del self._by_addr[conn.gate_addr]
            self._count -= 1
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(conn.socket.fileno())
        return True

    def _close(self, conn: Any) -> None:
        if self._leave(conn):
            _close_socket(conn)

    def _dispatch(self, conn: Any) -> None:
        """The head is in: hand the connection to a worker, the head in its read buffer."""
        if not self._leave(conn):
            return
        try:
            conn.socket.settimeout(self.server.timeout)
        except OSError:
            _close_socket(conn)
            return
        conn.rfile.push_front(bytes(conn.gate_buffer))
        conn.gate_buffer = bytearray()
        conn.last_used = time.time()
        self.server.process_conn(conn)

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
                if self._leave(conn) and not self.linger(conn):
                    _close_socket(conn)
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
        conn.gate_state = HEAD
        conn.gate_buffer = bytearray()
        conn.gate_deadline = time.time() + self.server.timeout
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


def install(server: Any, *, head_timeout: float, max_waiting: int) -> Gate:
    """Replace a prepared cheroot server's connection manager with a :class:`Gate`."""
    old = server._connections
    gate = Gate(server, head_timeout=head_timeout, max_waiting=max_waiting)
    server._connections = gate
    with contextlib.suppress(Exception):
        old._selector.close()
    return gate
