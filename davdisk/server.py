"""Runs the WSGI app on cheroot until SIGINT/SIGTERM, and sets up logging once."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from cheroot import wsgi

from davdisk.app import DAV_PREFIX, build_app
from davdisk.services import Services

logger = logging.getLogger("davdisk.server")


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # WsgiDAV logs every request at INFO; keep its warnings and errors only.
    for noisy in ("wsgidav", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))
    # WsgiDAV logs a traceback for every PUT that ends early: a client that hangs up, a 507, a
    # checksum mismatch. Those are answered (and real failures logged) by dav/errors.py.
    logging.getLogger("wsgidav.request_server").setLevel(logging.CRITICAL)


def serve(services: Services, host: str, port: int) -> int:
    config = services.config
    app = build_app(services)
    server = wsgi.Server(
        (host, port),
        app,
        numthreads=config.get("server", "threads"),
        server_name="davdisk",
        timeout=60,
    )
    # Large PUTs arrive in big reads; cheroot's default socket buffers are small.
    server.prepare()
    bound_host, bound_port = server.bind_addr[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    logger.info("data dir %s", config.data_dir)
    logger.info("serving http://%s:%s%s/ (Ctrl-C to stop)", shown, bound_port, DAV_PREFIX)

    stopping = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            logger.info("stopping (signal %d)", signum)
            threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server.serve()
    finally:
        server.stop()
        services.close()
        logger.info("stopped")
    return 0
