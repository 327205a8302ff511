"""The one place where errors become HTTP answers in the WebDAV face.

:func:`dav_errors` turns davdisk's own errors into WsgiDAV ``DAVError``s with their status.
:class:`ErrorPages` (in place of WsgiDAV's ``ErrorPrinter``) renders every ``DAVError`` as a short
page — or the RFC 4918 XML error body when there is a precondition — and turns anything unexpected
into a plain 500 whose details go to the log only: a client never sees a traceback, an exception
text or an internal path. It also strips WsgiDAV's page from the successes WsgiDAV answers with
one (a 201 of PUT or MKCOL): that page names WsgiDAV and its version, which tells a scanner what
to try.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from http import HTTPStatus
from typing import Any

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_INTERNAL_ERROR,
    HTTP_NO_CONTENT,
    HTTP_NOT_MODIFIED,
    DAVError,
    get_http_status_string,
)
from wsgidav.mw.base_mw import BaseMiddleware

from davdisk.errors import DavdiskError, IntegrityError
from davdisk.request_context import record_cause

logger = logging.getLogger(__name__)


def to_dav_error(e: DavdiskError) -> DAVError:
    dav_error = getattr(e, "dav_error", None)  # a refusal made by the WebDAV face itself
    if isinstance(dav_error, DAVError):
        return dav_error
    if isinstance(e, IntegrityError):
        # The client only learns that the server failed; the cause goes to the log.
        return DAVError(e.http_status, src_exception=e)
    return DAVError(e.http_status, e.message, src_exception=e)


@contextmanager
def dav_errors() -> Iterator[None]:
    """Re-raise any :class:`DavdiskError` of the enclosed block as a ``DAVError``."""
    try:
        yield
    except DavdiskError as e:
        raise to_dav_error(e) from None


def _status_line(e: DAVError) -> str:
    """WsgiDAV names only some statuses (429 would be "429 Status"): fill in the standard phrase."""
    line = get_http_status_string(e)
    if line == f"{e.value} Status":
        with suppress(ValueError):  # a code Python does not know either
            return f"{e.value} {HTTPStatus(e.value).phrase}"
    return line


def _bare(status: str, headers: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """The headers of a 201 or 204 answer without its page, or None when the answer keeps its
    body: a 204 never has one (RFC 9110 15.3.5), and a 201's HTML can only be WsgiDAV's status
    page (a LOCK's 201 carries the lock as XML, and keeps it)."""
    code = status[:3]
    if code == "201" and not any(
        k.lower() == "content-type" and v.startswith("text/html") for k, v in headers
    ):
        return None
    if code not in ("201", "204"):
        return None
    kept = [(k, v) for k, v in headers if k.lower() not in ("content-type", "content-length")]
    return [*kept, ("Content-Length", "0")]


def _page(e: DAVError) -> tuple[str, bytes]:
    if e.err_condition is not None:
        return "application/xml; charset=utf-8", e.err_condition.as_string().encode()
    status = _status_line(e)
    detail = "" if e.value == HTTP_INTERNAL_ERROR else (e.context_info or "")
    body = f"<html><head><title>{status}</title></head><body><h1>{status}</h1>"
    if detail:
        body += f"<p>{html.escape(detail)}</p>"
    return "text/html; charset=utf-8", (body + "</body></html>\n").encode()


class ErrorPages(BaseMiddleware):
    """Catches errors from the rest of the WsgiDAV stack and answers them safely."""

    def __init__(self, wsgidav_app: Any, next_app: Any, config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, next_app, config)

    def is_disabled(self) -> bool:
        return False

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        sub = util.SubAppStartResponse()
        started = False
        bare: list[tuple[str, str]] | None = None

        def start() -> None:
            nonlocal bare
            bare = _bare(sub.status, sub.response_headers)
            headers = sub.response_headers if bare is None else bare
            start_response(sub.status, headers, sub.exc_info)

        try:
            try:
                app_iter = self.next_app(environ, sub)
                try:
                    for chunk in app_iter:
                        if not started:
                            start()
                            started = True
                        if bare is None:
                            yield chunk
                finally:
                    if hasattr(app_iter, "close"):
                        app_iter.close()
                if not started:
                    start()
                return
            except DAVError:
                raise
            except DavdiskError as e:
                raise to_dav_error(e) from None
            except Exception as e:
                raise DAVError(HTTP_INTERNAL_ERROR, src_exception=e) from e
        except DAVError as e:
            if e.value >= 500:
                # Logged once, with the request, by http/errors.py (WsgiDAV's own 500s have no
                # other cause than the DAVError itself, whose traceback shows where it arose).
                record_cause(environ, e.src_exception or e.__cause__ or e)
            if started:
                # Headers (and part of the body) are out: all we can do is cut the response.
                raise
            status = _status_line(e)
            if e.value in (HTTP_NOT_MODIFIED, HTTP_NO_CONTENT):
                start_response(status, [("Content-Length", "0")])
                return
            content_type, body = _page(e)
            start_response(
                status,
                [("Content-Type", content_type), ("Content-Length", str(len(body)))]
                + (e.add_headers or []),
            )
            yield body
