"""Request limits checked before any work: URL length, path and Destination sanity, body sizes.

Every request passes here before authentication or WebDAV handling:

- the request-target may be at most ``max_url_bytes`` long (414);
- the path and the Destination header must be UTF-8 without NUL or an encoded ``/``, with names
  of at most 255 bytes and at most ``max_path_depth`` names (400; see ``files/names.py``); both
  are then rewritten to Unicode NFC, so every later step (WsgiDAV, lock keys, new names) sees
  the spelling names are stored in, whichever one the client sent;
- a PUT body may not be content-coded (415), nor a chunk of ownCloud/Nextcloud chunking v1
  (``OC-Chunked``, 400 with a DAV error body: not implemented, and stored as is it would become
  a file named ``<name>-chunking-...``), and may be at most ``max_upload`` bytes: a larger
  Content-Length or X-Expected-Entity-Length is refused before reading, a chunked body as soon
  as it outgrows the limit (413; nothing is stored, the old content stays);
- every other body (PROPFIND, PROPPATCH, LOCK, and any a client sends with another method) is
  read at most ``max_xml_body`` bytes (413 beyond), and handed on from memory with its exact
  length; XML bodies are vetted by ``http/xml_guard.py`` first (400). It is read only after the
  login (:class:`BodyAfterLogin`), so that nobody can hold a worker thread by sending the body
  of a request that will be refused 401 slowly.

A body the answer to a logged-in request left unread is read and discarded here, in small
steps, up to ``DRAIN_LIMIT`` bytes, so the client (which may still be sending: a PUT refused
with 409 or 423) gets the answer and the connection stays usable. Anything larger, a body the
client has not started to send (``Expect: 100-continue``), or any body of a request nobody
logged in to, closes the connection after the answer instead (``http/connection.py``; the
client still reads the answer: ``http/gate.py`` lingers): a refused 10 GiB upload costs
neither memory nor time. (cheroot itself would read a Content-Length remainder in one
``read()`` - all of it in memory - and would not read a chunked one at all.)
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, unquote, unquote_to_bytes, urlparse, urlsplit
from xml.sax.saxutils import escape

from wsgidav.mw.base_mw import BaseMiddleware

from davdisk.config import Config
from davdisk.errors import DavdiskError, TooLarge
from davdisk.files.admin import parse_size
from davdisk.files.names import check_path, nfc
from davdisk.http.request_body import TrackedInput, read_capped
from davdisk.http.xml_guard import check_xml_body
from davdisk.request_context import context

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Bodies WsgiDAV parses as XML (request_server.py: do_PROPFIND, do_PROPPATCH, do_LOCK).
XML_METHODS = frozenset({"PROPFIND", "PROPPATCH", "LOCK"})
# An unread body up to this size is read and discarded after an answer, keeping the connection.
DRAIN_LIMIT = 16 << 20
_DRAIN_STEP = 64 * 1024


class Refused(Exception):
    """A request this module answers itself (``dav_error``: as a DAV ``error`` body, whose
    ``message`` the ownCloud and Nextcloud clients show, instead of plain text)."""

    def __init__(self, status: int, reason: str, *, dav_error: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.dav_error = dav_error

    @classmethod
    def of(cls, e: DavdiskError) -> Refused:
        return cls(e.http_status, e.message)


def _wsgi_bytes(text: str) -> bytes:
    """The bytes the client sent for a WSGI string (PEP 3333: decoded as latin-1)."""
    return text.encode("latin-1", "replace")


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, f"{what} is not valid UTF-8") from None


def _content_length(environ: dict[str, Any]) -> int | None:
    """The declared body length: 0 if there is no body, None if it is chunked."""
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return None
    raw = environ.get("CONTENT_LENGTH", "").strip()
    if not raw:
        return 0
    if not raw.isdigit():
        raise Refused(400, "bad Content-Length")
    return int(raw)


class RequestLimits:
    def __init__(self, app: WSGIApp, config: Config) -> None:
        self.app = app
        self.max_upload = parse_size(config.get("limits", "max_upload")) or None
        self.max_xml_body = parse_size(config.get("limits", "max_xml_body"))
        self.max_url_bytes: int = config.get("limits", "max_url_bytes")
        self.max_path_depth: int = config.get("limits", "max_path_depth")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        try:
            length = _content_length(environ)
        except Refused as e:
            return self._refuse(environ, start_response, e, None)
        waiting = context(environ).expectation
        body = environ["wsgi.input"] = TrackedInput(
            environ["wsgi.input"], length, before_read=waiting.send if waiting else None
        )
        try:
            self._check_target(environ)
            self._check_destination(environ)
            body.limit = self._upload_limit(environ, length)
            if environ["REQUEST_METHOD"] != "PUT" and body.unread != 0:
                if body.length is not None and body.length > self.max_xml_body:
                    raise TooLarge(f"request bodies may be at most {self.max_xml_body} bytes")
                # Read after the login (BodyAfterLogin), not before: a client that has not
                # logged in cannot hold a worker thread by sending a body slowly.
                context(environ).take_body = functools.partial(
                    self._take_body_after_login, environ, body
                )
        except DavdiskError as e:
            return self._refuse(environ, start_response, Refused.of(e), body)
        except Refused as e:
            return self._refuse(environ, start_response, e, body)

        def answer(status: str, headers: list[Any], exc_info: Any = None) -> Any:
            _settle_unread(environ, body)
            return start_response(status, headers, exc_info)

        return self.app(environ, answer)

    # --- where the request goes ------------------------------------------------------------

    def _check_target(self, environ: dict[str, Any]) -> None:
        target = environ.get("REQUEST_URI")
        if target is None:  # not cheroot: rebuild it from its parts
            target = quote(_wsgi_bytes(environ.get("PATH_INFO", "")), safe="/")
            if environ.get("QUERY_STRING"):
                target += "?" + environ["QUERY_STRING"]
        if len(_wsgi_bytes(target)) > self.max_url_bytes:
            raise Refused(414, f"the URL is longer than {self.max_url_bytes} bytes")
        if "%2f" in target.split("?", 1)[0].lower():
            raise Refused(400, "encoded '/' in path")
        path = _utf8(_wsgi_bytes(environ.get("PATH_INFO", "")), "the path")
        check_path(path, self.max_path_depth)
        if nfc(path) != path:  # macOS sends names decomposed
            environ["PATH_INFO"] = nfc(path).encode("utf-8").decode("latin-1")

    def _check_destination(self, environ: dict[str, Any]) -> None:
        """The Destination of COPY/MOVE names a resource too: the same rules as the path."""
        header = environ.get("HTTP_DESTINATION")
        if header is None:
            return
        raw = _wsgi_bytes(header)
        if len(raw) > self.max_url_bytes:
            raise Refused(400, f"the Destination is longer than {self.max_url_bytes} bytes")
        try:
            parts = urlsplit(header)
        except ValueError:  # e.g. a broken IPv6 literal
            raise Refused(400, "the Destination is not a URL") from None
        path = parts.path
        if not path.startswith("/"):
            raise Refused(400, "the Destination must be an absolute URL or path")
        if "%2f" in path.lower():
            raise Refused(400, "encoded '/' in Destination")
        decoded = _utf8(unquote_to_bytes(path), "the Destination")
        check_path(decoded, self.max_path_depth)
        # WsgiDAV decodes the header before parsing it as a URL, so an encoded '?' starts a
        # query and a ';' in the last name starts "parameters": either is cut off, and a MOVE
        # to "report;v2.txt" would replace "report". Refuse what it would read otherwise.
        if urlparse(unquote(header), allow_fragments=False).path != unquote(path):
            raise Refused(400, "a Destination name with ';' or '?' is not supported")
        if nfc(decoded) != decoded:
            environ["HTTP_DESTINATION"] = parts._replace(path=quote(nfc(decoded))).geturl()

    # --- bodies ------------------------------------------------------------------------------

    def _upload_limit(self, environ: dict[str, Any], length: int | None) -> int | None:
        """The cap on a PUT body (None = none); refuses one declared too large up front."""
        if environ["REQUEST_METHOD"] != "PUT":
            return None
        coding = environ.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if coding and coding != "identity":
            # Stored as sent, a gzip body would become the file. RFC 9110 8.4 answers 415
            # (WsgiDAV would answer 501, a server error).
            raise Refused(415, "Content-Encoding is not supported: send the plain content")
        environ.pop("HTTP_CONTENT_ENCODING", None)
        if "HTTP_OC_CHUNKED" in environ:
            # Chunking v1 sends each chunk as a PUT of its own; stored as is, a chunk becomes a
            # file, and the ETag of its 201 tells the client the whole upload is done. 400 (the
            # request asks for what this server does not do), not 501: a refusal by design is
            # not a server fault, and clients and proxies treat 5xx as one (retries, alerts).
            raise Refused(
                400,
                "chunked uploads (OC-Chunked, chunking v1) are not supported: "
                "upload the file in one PUT",
                dav_error=True,
            )
        if self.max_upload is None:
            return None
        expected = environ.get("HTTP_X_EXPECTED_ENTITY_LENGTH", "").strip()
        for declared in (length, int(expected) if expected.isdigit() else None):
            if declared is not None and declared > self.max_upload:
                raise TooLarge(f"uploads may be at most {self.max_upload} bytes")
        return self.max_upload

    def _take_body_after_login(self, environ: dict[str, Any], body: TrackedInput) -> None:
        waiting = context(environ).expectation
        if waiting is not None and waiting.pending and body.length is not None:
            # The client waits for a 100 before it sends the body: ask for it (and vet it)
            # only when the request is read, after the lock and permission checks too.
            self._take_body_later(environ, body)
        else:
            self._take_body(environ, body)

    def _take_body(self, environ: dict[str, Any], body: TrackedInput) -> None:
        """Read a non-PUT body (bounded), vet it if it is XML, and hand it on from memory."""
        if body.length is not None and body.length > self.max_xml_body:
            raise TooLarge(f"request bodies may be at most {self.max_xml_body} bytes")
        data = read_capped(body, self.max_xml_body)
        if data and environ["REQUEST_METHOD"] in XML_METHODS:
            check_xml_body(data)
        # WsgiDAV reads exactly CONTENT_LENGTH bytes (and ignores a chunked body entirely).
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = True

    def _take_body_later(self, environ: dict[str, Any], body: TrackedInput) -> None:
        """:meth:`_take_body`, done at the first read of ``wsgi.input`` (a fixed-length body):
        a refusal then reaches the face as its DavdiskError (400 or 413)."""
        assert body.length is not None
        if body.length > self.max_xml_body:
            raise TooLarge(f"request bodies may be at most {self.max_xml_body} bytes")
        xml = environ["REQUEST_METHOD"] in XML_METHODS
        environ["wsgi.input"] = _VettedOnRead(body, self.max_xml_body, xml)

    # --- answers -----------------------------------------------------------------------------

    def _refuse(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        refusal: Refused,
        body: TrackedInput | None,
    ) -> list[bytes]:
        logger.info(
            "refused %s (%d): %s", environ.get("REQUEST_METHOD"), refusal.status, refusal.reason
        )
        _settle_unread(environ, body)
        if refusal.dav_error:
            content_type, page = "application/xml; charset=utf-8", _dav_error(refusal.reason)
        else:
            content_type = "text/plain; charset=utf-8"
            page = f"{refusal.status} {HTTPStatus(refusal.status).phrase}\n{refusal.reason}\n"
        data = b"" if environ.get("REQUEST_METHOD") == "HEAD" else page.encode()
        start_response(
            f"{refusal.status} {HTTPStatus(refusal.status).phrase}",
            [("Content-Type", content_type), ("Content-Length", str(len(page.encode())))],
        )
        return [data]


class BodyAfterLogin(BaseMiddleware):
    """Right after the login (in WsgiDAV's stack): read the non-PUT body RequestLimits left
    for later. Requests that never get here (401, 404 outside ``/dav``) leave it unread, and
    their connection is closed after the answer instead of being drained."""

    def is_disabled(self) -> bool:
        return False

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        ctx = context(environ)
        take, ctx.take_body = ctx.take_body, None
        if take is not None:
            take()
        return self.next_app(environ, start_response)


class _VettedOnRead(io.RawIOBase):
    """A non-PUT body read in full, capped and (for XML methods) vetted, at its first read."""

    def __init__(self, body: TrackedInput, cap: int, xml: bool) -> None:
        super().__init__()
        self._body = body
        self._cap = cap
        self._xml = xml
        self._data: io.BytesIO | None = None

    def _loaded(self) -> io.BytesIO:
        if self._data is None:
            data = read_capped(self._body, self._cap)
            if data and self._xml:
                check_xml_body(data)
            self._data = io.BytesIO(data)
        return self._data

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._loaded().read(size)

    def readinto(self, buffer: Any) -> int:
        return self._loaded().readinto(buffer)

    def readline(self, size: int | None = -1) -> bytes:
        return self._loaded().readline(size)


def _dav_error(message: str) -> str:
    """A DAV ``error`` body in the shape SabreDAV (ownCloud, Nextcloud) sends, so that their
    clients show ``message`` to the user."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<d:error xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns">'
        f"<s:message>{escape(message)}</s:message></d:error>\n"
    )


def _settle_unread(environ: dict[str, Any], body: TrackedInput | None) -> None:
    """Before an answer that left (part of) the body unread: read and discard up to
    DRAIN_LIMIT of it; if more remains, or the client awaits a 100 Continue we never sent, or
    nobody logged in (anyone may send a body slowly: no worker waits for it), close the
    connection after the answer."""
    unread = None if body is None else body.unread
    small = unread is None or unread <= DRAIN_LIMIT  # None: chunked, size unknown
    logged_in = context(environ).actor is not None
    if (
        body is not None
        and unread != 0
        and small
        and logged_in
        and not _awaits_continue(environ, body)
    ):
        body.limit = None  # draining is not storing: no TooLarge here
        left = DRAIN_LIMIT
        try:
            while body.unread != 0 and left > 0:
                chunk = body.read(min(_DRAIN_STEP, left))
                if not chunk:
                    break
                left -= len(chunk)
        except Exception:  # a client that hangs up or sends a broken body: just close
            logger.debug("could not drain a request body", exc_info=True)
    if body is None or body.unread != 0:
        close = context(environ).close_connection
        if close is not None:
            close()


def _awaits_continue(environ: dict[str, Any], body: TrackedInput) -> bool:
    # Reading would send "100 Continue" and make the client send the whole body for nothing.
    waiting = context(environ).expectation
    if waiting is not None:
        return bool(waiting.pending)
    return body.consumed == 0 and "100-continue" in environ.get("HTTP_EXPECT", "").lower()
