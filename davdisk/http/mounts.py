"""A mount table: which WSGI app answers which path, read top to bottom, first match wins.

``app.py`` declares davdisk's table; this module only matches requests against one, so the
routes can be read (and extended: a web UI, ``/remote.php``) as data rather than an if-chain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class Mount:
    """``app`` answers the paths in ``at``, and every path below ``under`` (``under + "/..."``);
    only for ``methods`` if given."""

    app: WSGIApp
    at: tuple[str, ...] = ()
    under: str | None = None
    methods: frozenset[str] | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return path in self.at or (self.under is not None and path.startswith(self.under + "/"))


class Mounts:
    """The WSGI app of a mount table; ``fallback`` answers what no mount does."""

    def __init__(self, table: Sequence[Mount], fallback: WSGIApp) -> None:
        self.table = tuple(table)
        self.fallback = fallback

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        for mount in self.table:
            if mount.matches(method, path):
                return mount.app(environ, start_response)
        return self.fallback(environ, start_response)


def plain(status: str, body: bytes = b"", *headers: tuple[str, str]) -> WSGIApp:
    """An app that always answers ``status`` with a plain-text ``body``."""
    fixed = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        *headers,
    ]

    def answer(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response(status, list(fixed))
        return [body]

    return answer


def without_head_bodies(app: WSGIApp) -> WSGIApp:
    """``app``, except that whatever answers a HEAD (401 pages included) sends no body."""

    def heads(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "HEAD":
            return _without_body(app(environ, start_response))
        return app(environ, start_response)

    return heads


def _without_body(chunks: Iterable[bytes]) -> Iterator[bytes]:
    try:
        for _ in chunks:
            pass
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    yield b""
