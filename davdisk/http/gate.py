"""Waiting without a worker: the connection manager that holds connections until their request
head is in (:class:`Gate`), so that slow or silent clients cost a socket, not a worker thread.

cheroot gives a worker thread to every connection as soon as it is accepted, and to a kept-alive
one as soon as it becomes readable; the worker then blocks in the TLS handshake and in reading
the request head, 60 s per read. With 64 workers, 70 connections that sent nothing (or one byte
of a ClientHello, or a header byte every 10 s) stalled every other client (measured). Here the
accept loop's selector does that waiting, non-blocking, for any number of connections:

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
- a connection closed with part of a request body unread (``http/connection.py``) is not drained
  by its worker: its answer is sent, the sending side shut, and what still arrives is read and
  dropped here until the client hangs up (at most :data:`LINGER_SECONDS` /
  :data:`LINGER_BYTES`), so the client reads the answer rather than a reset - Apache's
  "lingering close", without a thread.

cheroot internals used (checked with cheroot 10 and 11): the connection manager's selector and
``_run`` loop (replaced after ``prepare()``: ``http/httpd.py``).
"""

from __future__ import annotations

import collections
import contextlib
import errno
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

from davdisk.http.heads import HeadReader, head_complete
from davdisk.http.waiting_room import WaitingRoom

logger = logging.getLogger(__name__)

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
        # Only the selector thread touches the room (and close(), once the loop has ended):
        # worker threads hand connections over through the inbox, so that no connection is
        # stepped by one thread while another closes it.
        self._room = WaitingRoom()
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
            if self._room.count:
                self._close(self._room.victim())
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
        late = [c for c in self._room.all() if c.gate_deadline <= now]
        for conn in late:
            if conn.gate_state == HANDSHAKE or (conn.gate_state == HEAD and conn.gate_buffer):
                logger.debug("closing %s: no complete request head in time", conn.remote_addr)
            self._close(conn)

    def _remove_invalid_sockets(self) -> None:
        for conn in self._room.all():
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
        conns = self._room.clear()
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
        conn.gate_addr = str(conn.remote_addr)
        try:
            self._selector.register(conn.socket.fileno(), selectors.EVENT_READ, data=conn)
        except (OSError, ValueError, KeyError):
            conn.gate_state = None
            _close_socket(conn)
            return False
        self._room.add(conn)
        if self._room.count > self.max_waiting:
            victim = self._room.victim()
            logger.info(
                "more than %d connections waiting: closing one of %s's",
                self.max_waiting,
                victim.gate_addr,
            )
            self._close(victim)
        return conn.gate_state is not None

    def _leave(self, conn: Any) -> bool:
        """Stop waiting for ``conn`` (False if it was not waiting)."""
        if not self._room.remove(conn):
            return False
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
        while self._room.buffered > HEAD_BUDGET:
            largest = self._room.largest()
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
            self._room.buffered += len(chunk)
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
        elif self._room.buffered > HEAD_BUDGET:
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
