"""davdisk's HTTP server: cheroot, made to hold against hostile clients. :func:`build` makes the
server ``davdisk serve`` runs, out of these parts (each module says why and how):

- ``http/gate.py``: connections wait for their request head (and, on HTTPS, their handshake)
  in the accept loop's selector, not in a worker thread; deadlines, a cap on waiting
  connections (``http/waiting_room.py``), and a lingering close for answers sent with a body
  left unread; the head goes to the worker in its reader's buffer (``http/heads.py``);
- ``http/connection.py``: the connection, request and gateway classes: a connection is closed
  after an answer that left the body unread instead of cheroot reading all of it into memory,
  and ``100 Continue`` is sent only when the application reads the body;
- ``http/tls_adapter.py``: sockets are wrapped in the context of ``tls.py`` without a handshake
  in the accept loop;
- ``http/shutdown.py``: which connections serve a request, for a graceful stop.
"""

from __future__ import annotations

import contextlib
from typing import Any

from cheroot import wsgi

from davdisk.config import Config
from davdisk.http.connection import install_connection
from davdisk.http.errors import quiet_server_log
from davdisk.http.gate import Gate
from davdisk.http.shutdown import InFlight
from davdisk.http.tls_adapter import TLSAdapter
from davdisk.tls import ServerTLS


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
    http/shutdown.py)."""
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
    quiet_server_log(http)  # http/errors.py logs each failed request once
    if server_tls is not None:
        http.ssl_adapter = TLSAdapter(server_tls)
    install_connection(http, in_flight)
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
