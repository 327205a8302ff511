"""Stopping the server on SIGTERM or Ctrl-C without cutting the requests it is serving.

The first signal stops accepting (the listening socket is closed, so new connections are
refused rather than left hanging), closes idle keep-alive connections and those that have not
sent a request yet, and gives the running requests ``[server] shutdown_grace`` seconds to
finish; their answers say ``Connection: close``. Whatever still runs at the deadline is cut: its
connection is shut down, so an upload reads the end of its body early and is aborted (the old
content stays; see ``files/upload.py``). Then ``serve`` returns and the process exits 0. A
second signal exits at once (status 128 + signal number), like a process killed by it: SQLite
keeps the database consistent, and ``davdisk gc`` removes the temp files of uploads cut that way.

cheroot's ``stop()`` does the stopping and waits for its worker threads; it runs on a thread of
its own because the signal arrives on the main thread, which runs cheroot's accept loop and
must return from it. The main thread then waits here, so nothing the requests need (the database,
the hashing threads of ``files/upload.py``) is torn down under them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from cheroot import server as cheroot_server

logger = logging.getLogger("davdisk.server")

# After the cut, how long requests get to notice it (a read or write fails at once) and end.
_AFTER_CUT = 5.0
# How often, while waiting, connections that have not sent a request are closed.
_POLL = 0.05


class InFlight:
    """The connections a worker thread is serving: from the wait for a request's first line to
    the end of its answer. One whose request line has not arrived yet (a fresh connection, or a
    kept-alive one that just became readable) is *waiting*; the others are *running*."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: dict[Any, bool] = {}  # connection -> its request has started

    @contextlib.contextmanager
    def serving(self, conn: Any) -> Iterator[None]:
        with self._lock:
            self._conns[conn] = False
        try:
            yield
        finally:
            with self._lock:
                self._conns.pop(conn, None)

    def started(self, conn: Any) -> None:
        """``conn``'s request line has arrived."""
        with self._lock:
            if conn in self._conns:
                self._conns[conn] = True

    def count(self) -> int:
        """The running requests."""
        with self._lock:
            return sum(self._conns.values())

    def cut(self, *, waiting_only: bool = False) -> int:
        """Shut down the connections served (or only those still waiting for a request):
        blocked reads and writes fail at once."""
        with self._lock:
            conns = [c for c, running in self._conns.items() if not (waiting_only and running)]
        if waiting_only:
            # A request that has arrived but whose line is not parsed yet is not waiting: a
            # reset would lose it (a MOVE or LOCK a client may not simply send again).
            conns = [c for c in conns if not _bytes_waiting(c)]
        for conn in conns:
            with contextlib.suppress(OSError, AttributeError):
                conn.socket.shutdown(socket.SHUT_RDWR)
        return len(conns)


def _bytes_waiting(conn: Any) -> bool:
    """Whether the client has sent something this connection has not parsed yet."""
    rfile = getattr(conn, "rfile", None)
    has_data = getattr(rfile, "has_data", None)
    if has_data is not None and has_data():
        return True
    try:
        readable, _, _ = select.select([conn.socket], [], [], 0)
    except (OSError, ValueError, AttributeError):
        return False
    return bool(readable)


class GracefulStop:
    """Signal handling and the stop sequence of one cheroot server (see the module docstring)."""

    def __init__(self, server: cheroot_server.HTTPServer, grace: int, in_flight: InFlight) -> None:
        self._server = server
        self._grace = grace
        self._in_flight = in_flight
        self._stopper: threading.Thread | None = None
        self._deadline = 0.0
        # cheroot's own deadline, a backstop for a connection accepted just before the stop and
        # not yet picked up by a worker: it starts counting a little later than ours.
        server.shutdown_timeout = grace

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self._stopper is not None:
            # No InFlight.count() here: the handler runs on the main thread, which may hold
            # InFlight's lock (finish() cuts waiting connections under it) - a deadlock.
            logger.warning("signal %d again: stopping now, cutting what still runs", signum)
            os._exit(128 + signum)
        running = self._in_flight.count()
        if running:
            logger.info(
                "stopping (signal %d): no new connections; waiting up to %g s for %d running "
                "request(s) (send the signal again to stop at once)",
                signum,
                self._grace,
                running,
            )
        else:
            logger.info("stopping (signal %d)", signum)
        self._begin()

    def _begin(self) -> threading.Thread:
        self._deadline = time.monotonic() + self._grace
        stopper = threading.Thread(target=self._server.stop, name="davdisk-stop", daemon=True)
        self._stopper = stopper
        stopper.start()
        return stopper

    def finish(self) -> None:
        """After ``serve()`` returned (or failed): stop if no signal did, and wait for the
        running requests until the deadline; cut the rest. Returns once all have ended."""
        stopper = self._stopper or self._begin()
        while stopper.is_alive():
            # A connection still waiting for a request would hold a worker until the deadline
            # for nothing: close it, as cheroot closes the idle ones it holds (a client retries
            # on another connection, RFC 9112 9.3.1). Again and again: one may just have been
            # picked up from cheroot's queue.
            self._in_flight.cut(waiting_only=True)
            left = self._deadline - time.monotonic()
            if left <= 0:
                break
            stopper.join(min(_POLL, left))
        if not stopper.is_alive():
            return
        cut = self._in_flight.cut()
        logger.warning(
            "shutdown grace of %g s is over: cut %d running request(s)", self._grace, cut
        )
        stopper.join(_AFTER_CUT)
        if stopper.is_alive():
            logger.error("requests still running %g s after the cut; exiting anyway", _AFTER_CUT)
            os._exit(1)
