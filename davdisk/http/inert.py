"""Everything davdisk answers is inert in a browser.

Files are uploaded by users and by anyone holding an upload link, with whatever
``Content-Type`` the client chose, and served from the same origin as ``/dav/``, where a browser
may hold a user's credentials. Served inline, an HTML or SVG file could run a script with that
user's rights (stored XSS). So this middleware adds to every answer:

- ``X-Content-Type-Options: nosniff``: a browser takes the type as given, never guesses "HTML"
  from the bytes;
- a Content Security Policy: ``sandbox`` (no script, no same-origin rights, no forms) with
  ``default-src 'none'`` for the content of ``/dav/``, ``/public/`` and ``/remote.php/dav/``
  (old versions); for davdisk's own pages
  (link pages, error pages) ``default-src 'none'`` with inline styles only, and
  ``frame-ancestors 'none'``, with ``X-Frame-Options: DENY`` and ``Referrer-Policy:
  no-referrer`` (a page's URL may hold a link token);
- ``Content-Disposition: attachment`` on a file's content (GET of ``/dav/`` or ``/public/``)
  unless its type is one a browser shows without running anything (images other than SVG,
  audio, video, plain text, PDF). WebDAV clients ignore the header; browsers download.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

CONTENT_PREFIXES = ("/dav/", "/public/", "/remote.php/dav/")
CONTENT_CSP = "sandbox; default-src 'none'"
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)
# Shown inline: what a browser renders without running anything from the file.
_PASSIVE_PREFIXES = ("image/", "audio/", "video/")
_PASSIVE_TYPES = {"text/plain", "application/pdf", "application/octet-stream"}
_ACTIVE_IMAGES = {"image/svg+xml"}


def passive(content_type: str) -> bool:
    """Whether a browser shows this type without running anything in it."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in _ACTIVE_IMAGES:
        return False
    return kind in _PASSIVE_TYPES or kind.startswith(_PASSIVE_PREFIXES)


class InertContent:
    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        content = path.startswith(CONTENT_PREFIXES) or path in ("/dav", "/public")
        download = content and environ.get("REQUEST_METHOD") in ("GET", "HEAD")

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            names = {k.lower() for k, _ in headers}
            added = [("X-Content-Type-Options", "nosniff")]
            ctype = next((v for k, v in headers if k.lower() == "content-type"), "")
            own_page = not content or (ctype.lower().startswith("text/html") and status[:1] != "2")
            if own_page:
                added += [
                    ("Content-Security-Policy", PAGE_CSP),
                    ("X-Frame-Options", "DENY"),
                    ("Referrer-Policy", "no-referrer"),
                ]
            else:
                added.append(("Content-Security-Policy", CONTENT_CSP))
                if (
                    download
                    and status[:3] in ("200", "206")
                    and "content-disposition" not in names
                    and not passive(ctype)
                ):
                    added.append(("Content-Disposition", "attachment"))
            headers = [*headers, *(h for h in added if h[0].lower() not in names)]
            return start_response(status, headers, exc_info)

        return self.app(environ, start)
