"""The one place server errors are logged.

Every answer with a 5xx status leaves exactly one line in the server log: the request's method,
its path (public-link tokens redacted, no query string, no header) and the status, with the
cause. A 500, or any 5xx whose cause is not one of davdisk's own expected conditions (a full
disk's 507, say), carries the cause's traceback. A response cut after it started (a blob found
damaged half way through a download) is logged the same way. Faces do not log 5xx themselves:
they hand the cause over with :func:`record_cause`, and an exception that escapes every face is
answered with a plain 500 here. (Before this, 500s made inside WsgiDAV and key errors turned into
``DAVError(500)`` left no line at all.)
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from wsgidav.dav_error import DAVError

from davdisk.errors import DavdiskError
from davdisk.http.audit import redact_path, request_path
from davdisk.request_context import context, record_cause

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_Request = tuple[str, str, str]  # method, SCRIPT_NAME, PATH_INFO as the request came in

_PAGE = b"500 Internal Server Error\n"


class ServerErrors:
    """WSGI middleware; wrap it around every face, inside the audit log."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        # Taken as they are (formatted only if something is logged): faces rewrite them.
        what = (
            environ.get("REQUEST_METHOD", "?"),
            environ.get("SCRIPT_NAME", ""),
            environ.get("PATH_INFO", ""),
        )
        status: list[str] = []

        def start(line: str, headers: list[Any], exc_info: Any = None) -> Any:
            if not status and line[:1] == "5":
                self._log(environ, what, f"answered {line[:3]}", line[:3] == "500")
            status[:] = [line]
            return start_response(line, headers, exc_info)

        try:
            result = self.app(environ, start)
        except Exception as e:
            record_cause(environ, e)
            if status:
                self._log(environ, what, "failed after its answer started", True)
                e.davdisk_logged = True  # type: ignore[attr-defined]
                raise
            return self._answer_500(start)
        return self._body(result, environ, what, status)

    def _body(
        self, result: Iterable[bytes], environ: dict[str, Any], what: _Request, status: list[str]
    ) -> Iterator[bytes]:
        try:
            yield from result
        except Exception as e:
            record_cause(environ, e)
            if status and status[0][:1] != "5":
                self._log(environ, what, f"cut its {status[0][:3]} answer", True)
            elif not status:
                self._log(environ, what, "failed before answering", True)
            e.davdisk_logged = True  # type: ignore[attr-defined]
            raise  # the server closes the connection: the client sees the answer cut
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    @staticmethod
    def _answer_500(start: Callable[..., Any]) -> list[bytes]:
        start(
            "500 Internal Server Error",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(_PAGE)))],
        )
        return [_PAGE]

    @staticmethod
    def _log(environ: dict[str, Any], request: _Request, outcome: str, server_fault: bool) -> None:
        method, script, path = request
        what = f"{method} {redact_path(request_path({'SCRIPT_NAME': script, 'PATH_INFO': path}))}"
        cause = context(environ).error_cause
        if cause is None:
            logger.error("%s %s (no cause recorded)", what, outcome)
            return
        # davdisk's own conditions (507 for a full disk) and WsgiDAV's deliberate answers (502
        # for a Destination on another server) are not faults: one line, no traceback.
        expected = (isinstance(cause, DavdiskError) and cause.http_status != 500) or (
            isinstance(cause, DAVError) and cause.value != 500
        )
        text = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
        if expected and not server_fault:
            logger.warning("%s %s: %s", what, outcome, text)
        else:
            logger.error("%s %s: %s", what, outcome, text, exc_info=cause)


def quiet_server_log(server: Any) -> None:
    """Keep cheroot from logging again (as a second traceback) an exception this module has
    already logged with its request when it cut a response."""
    original = server.error_log

    def error_log(msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        if getattr(sys.exc_info()[1], "davdisk_logged", False):
            return
        original(msg, level, traceback)

    server.error_log = error_log
