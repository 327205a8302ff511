"""``/s/<token>``: what a browser sees of a public link.

A file link downloads the file; a folder link shows a plain HTML listing whose entries download
(``/s/<token>/<path>``) or open. Downloads are served by the link's WebDAV tree
(``/public/<token>/...``), so Range, ETag and conditional requests behave exactly as there.

WSGI strings carry the raw bytes of the URL as latin-1 (PEP 3333); names are UTF-8, so the path
is decoded before it is looked up and encoded back before it is handed to WsgiDAV (which decodes
it again), and headers name a file only in ASCII (RFC 6266 ``filename*``).
"""

from __future__ import annotations

import base64
import binascii
import html
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from davdisk.auth.links import LinkAuthenticator
from davdisk.auth.throttle import LoginThrottled, client_ip
from davdisk.files.api import Files
from davdisk.files.names import split_path
from davdisk.request_context import context

LINK_PREFIX = "/s/"
StartResponse = Callable[..., Any]


def basic_password(environ: dict[str, Any]) -> str | None:
    """The password of a Basic ``Authorization`` header (any user name), if there is one."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _user, sep, password = decoded.partition(":")
    return password if sep else None


def from_wsgi(text: str) -> str | None:
    """The UTF-8 text of a WSGI string (None if the client's bytes are not UTF-8)."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return None


def to_wsgi(text: str) -> str:
    """``text`` as a WSGI string: its UTF-8 bytes read as latin-1."""
    return text.encode("utf-8").decode("latin-1")


def content_disposition(name: str) -> str:
    """``attachment`` with ``name`` (RFC 6266): ``filename*`` in UTF-8 for current browsers and an
    ASCII ``filename`` for old ones. Header values must be latin-1, so no raw name goes in."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\%' else "_" for c in name
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _answer(start_response: StartResponse, status: str, body: bytes, *headers: Any) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *headers,
        ],
    )
    return [body]


class LinkPages:
    def __init__(
        self, files: Files, links: LinkAuthenticator, dav: Callable[..., Iterable[bytes]]
    ) -> None:
        self.files = files
        self.links = links
        self.dav = dav

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            return _answer(start_response, "405 Method Not Allowed", b"", ("Allow", "GET, HEAD"))
        path = from_wsgi(environ["PATH_INFO"])
        if path is None:  # RequestLimits refuses these first; never look up mojibake
            return _answer(start_response, "404 Not Found", b"<p>Not found.</p>")
        token, _, rest = path[len(LINK_PREFIX) :].partition("/")
        password = basic_password(environ)
        try:
            login = self.links.login(token, password, client_ip(environ))
        except LoginThrottled as e:
            context(environ).auth_event = "throttled"
            return _answer(
                start_response,
                "429 Too Many Requests",
                f"<p>{html.escape(e.message)}</p>".encode(),
                ("Retry-After", str(e.retry_after)),
            )
        if login.actor is None:
            if login.needs_password:
                if password is not None:
                    context(environ).auth_event = "failed"
                return _answer(
                    start_response,
                    "401 Unauthorized",
                    b"<p>This link needs its password (any user name).</p>",
                    ("WWW-Authenticate", 'Basic realm="davdisk link", charset="UTF-8"'),
                )
            return _answer(start_response, "404 Not Found", b"<p>No such link.</p>")
        actor = login.actor
        context(environ).actor = actor  # for the audit log
        assert actor.link is not None
        root = self.files.node(actor, actor.link.node_id)
        names = split_path(rest)
        if root is None or names is None:
            return _answer(start_response, "404 Not Found", b"<p>No such link.</p>")
        if not root.is_dir:
            if names not in ([], [root.name]):
                return _answer(start_response, "404 Not Found", b"<p>Not found.</p>")
            return self._download(environ, start_response, token, [root.name])
        if actor.link.file_drop:
            # Nothing in a file drop can be seen: say how to add to it instead.
            body = (
                b"<!DOCTYPE html><html><head><meta charset='utf-8'><title>File drop</title>"
                b"</head><body><p>This link is a file drop: add files to it with a WebDAV "
                b"client at <code>/public/" + html.escape(token).encode() + b"/</code>. "
                b"What is in it cannot be seen.</p></body></html>\n"
            )
            return _answer(
                start_response, "200 OK", b"" if environ["REQUEST_METHOD"] == "HEAD" else body
            )
        entry = self.files.resolve(actor, rest)
        if entry is None:
            return _answer(start_response, "404 Not Found", b"<p>Not found.</p>")
        if not entry.is_dir:
            return self._download(environ, start_response, token, names)
        if not path.endswith("/"):
            # Relative links in the listing need the trailing slash.
            location = quote(path) + "/"
            return _answer(start_response, "301 Moved Permanently", b"", ("Location", location))
        title = html.escape("/" + "/".join(names))
        rows = []
        if names:
            rows.append('<li><a href="../">../</a></li>')
        for child in self.files.children(actor, entry):
            label = child.name + ("/" if child.is_dir else "")
            href = quote(child.name) + ("/" if child.is_dir else "")
            size = "" if child.is_dir else f" ({child.size} bytes)"
            rows.append(f'<li><a href="{href}">{html.escape(label)}</a>{size}</li>')
        body = (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h1>{title}</h1><ul>{''.join(rows)}</ul></body></html>\n"
        ).encode()
        return _answer(
            start_response, "200 OK", b"" if environ["REQUEST_METHOD"] == "HEAD" else body
        )

    def _download(
        self, environ: dict[str, Any], start_response: StartResponse, token: str, names: list[str]
    ) -> Iterable[bytes]:
        environ = dict(environ)  # (the same request: the copy shares its context)
        environ["PATH_INFO"] = to_wsgi("/public/" + token + "/" + "/".join(names))
        environ["SCRIPT_NAME"] = ""
        disposition = content_disposition(names[-1])

        def with_disposition(status: str, headers: list[Any], exc_info: Any = None) -> Any:
            if status.startswith(("200", "206")):
                headers = [*headers, ("Content-Disposition", disposition)]
            return start_response(status, headers, exc_info)

        return self.dav(environ, with_disposition)
