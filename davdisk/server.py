"""Runs the WSGI app on cheroot until SIGINT/SIGTERM (then stops gracefully: http/shutdown.py),
with the background jobs (files/jobs.py) beside it, and sets up logging once."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

from davdisk import tls
from davdisk.app import DAV_PREFIX, build_app
from davdisk.files.jobs import JobRunner, expiry_job, gc_job
from davdisk.http import httpd
from davdisk.http.shutdown import GracefulStop, InFlight
from davdisk.http.transport import startup_notes
from davdisk.services import Services
from davdisk.tls import load_server_tls, tls_settings

_M_ARENA_MAX = -8  # glibc's mallopt parameter numbers
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 4 << 20  # blocks this big get their own mapping: S3 part buffers (>= 5 MiB)

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


def cap_malloc_arenas(arenas: int = 2) -> None:
    """Let glibc keep at most ``arenas`` malloc arenas. By default each thread that allocates
    gets its own (up to 8 per core), and requests rotate over the worker threads, so resident
    memory grew 10-15 MiB over the first few hundred requests for nothing.

    Also fixes the mmap threshold: glibc raises it to the size of each big block freed, so after
    the first S3 part buffer (blobs/s3.py) later ones came from the heap, where small objects
    allocated meanwhile pinned them (32 uploads of 100 MiB held ~90 MiB beyond their budget).
    Best effort: other C libraries have no such knobs."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_ARENA_MAX, arenas)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass


def serve(services: Services, host: str, port: int) -> int:
    cap_malloc_arenas()  # before the worker threads exist
    config = services.config
    try:
        # Checked before anything listens: a bad certificate or key is a one-line error.
        tls_files = tls_settings(config.get("server", "tls_cert"), config.get("server", "tls_key"))
        server_tls = load_server_tls(*tls_files) if tls_files else None
        app = build_app(services)
    except BaseException:
        services.close()
        raise
    in_flight = InFlight()
    server = httpd.build(app, config, host, port, server_tls, in_flight)
    bound_host, bound_port = server.bind_addr[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    logger.info("data dir %s", config.data_dir)
    key_warning = config.master_key_warning()
    if key_warning:
        logger.warning("%s", key_warning)
    for level, note in [
        *(tls.describe(server_tls) if server_tls else []),
        *startup_notes(config, bound_host, tls=server_tls is not None),
        *services.db.startup_notes(),
    ]:
        logger.log(level, "%s", note)
    scheme = "https" if server_tls else "http"
    logger.info("serving %s://%s:%s%s/ (Ctrl-C to stop)", scheme, shown, bound_port, DAV_PREFIX)

    stop = GracefulStop(server, config.get("server", "shutdown_grace"), in_flight)
    stop.install()
    jobs = JobRunner(
        services.db,
        [
            gc_job(services.admin, config.get("jobs", "gc_interval")),
            expiry_job(services.files.history, config.get("jobs", "expiry_interval")),
        ],
        config.get("jobs", "lease_seconds"),
    )
    jobs.start()
    try:
        server.serve()
    finally:
        jobs.stop()  # starts no job any more
        stop.finish()  # returns once no request runs any more
        jobs.join(config.get("server", "shutdown_grace"))  # and running jobs have ended
        services.close()
        logger.info("stopped")
    return 0
