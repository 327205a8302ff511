"""The WebDAV provider: maps a request path to a resource in the authenticated user's home.

One provider instance serves every thread, so per-request state (the actor, resolved resources,
listings, dead properties: ``dav/memo.py``) lives in ``environ``, never on ``self``. Request
handling that WsgiDAV leaves to providers is adjusted here: ``Depth: infinity`` PROPFIND is
refused (RFC 4918 allows it, and it would let one request walk a whole tree), a PROPFIND without
a Depth header is answered as Depth 0 on a file and Depth 1 on a folder, a Depth 1 PROPFIND of a
folder is answered by ``dav/listing.py`` (WsgiDAV's generic path costs ~0.6 ms per member), and
natively handled COPY/MOVE answer 201 when they created the destination (WsgiDAV reports 204 for
every natively handled one).

The provider is the top of dav/: it imports the resources and the listing, which know it only
as the ``Host`` (resources.py) that serves them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from wsgidav.dav_error import (
    HTTP_FORBIDDEN,
    DAVError,
    PRECONDITION_CODE_PropfindFiniteDepth,
)
from wsgidav.dav_provider import DAVProvider

from davdisk import wsgidav_compat
from davdisk.dav import listing, memo
from davdisk.dav.errors import dav_errors
from davdisk.dav.resources import Folder, make_resource
from davdisk.files.api import Files
from davdisk.model import Actor
from davdisk.request_context import context
from davdisk.wsgidav_compat import DAVResource

logger = logging.getLogger(__name__)


FOLDER_PAGE = b"This is a WebDAV folder: open it with a WebDAV client to see what is in it.\n"


class DavdiskProvider(DAVProvider):
    def __init__(self, files: Files) -> None:
        super().__init__()
        self.files = files
        self._request = threading.local()  # this thread's request, for ref_url_to_path

    def __repr__(self) -> str:
        return "DavdiskProvider()"

    def is_readonly(self) -> bool:
        return False

    def _actor(self, environ: dict[str, Any]) -> Actor | None:
        ctx = context(environ)
        actor = ctx.actor
        if actor is None:
            name = wsgidav_compat.authenticated_user(environ)
            if not name:
                return None
            actor = self.files.actor(name)
            ctx.actor = actor
        return actor

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> DAVResource | None:
        actor = self._actor(environ)
        if actor is None:
            return None
        cache = context(environ).dav.resources
        key = path.rstrip("/") or "/"
        if key in cache:
            return cache[key]
        with dav_errors():
            entry = self.files.resolve(actor, path)
        res = None if entry is None else make_resource(path, environ, entry, actor)
        cache[key] = res
        return res

    def ref_url_to_path(self, ref_url: str) -> str:
        return memo.ref_to_path(getattr(self._request, "environ", None), ref_url)

    def custom_request_handler(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        default_handler: Callable[..., Iterable[bytes]],
    ) -> Iterable[bytes]:
        self._request.environ = environ
        method = environ["REQUEST_METHOD"]
        if method in ("GET", "HEAD"):
            res = self.get_resource_inst(environ["PATH_INFO"], environ)
            if isinstance(res, Folder):
                # Folders have no content; clients probe them with HEAD before writing into
                # them (webdavclient3), and a browser gets a hint instead of an error.
                body = FOLDER_PAGE if method == "GET" else b""
                start_response(
                    "200 OK",
                    [
                        ("Content-Type", "text/plain; charset=utf-8"),
                        ("Content-Length", str(len(FOLDER_PAGE))),
                    ],
                )
                return [body]
        if method == "PROPPATCH":
            # Refuse a PROPPATCH its sender may not make as a whole (403), rather than answer
            # 207 with every property refused.
            res = self.get_resource_inst(environ["PATH_INFO"], environ)
            actor = self._actor(environ)
            entry = getattr(res, "entry", None)
            if actor is not None and entry is not None:
                with dav_errors():
                    if not self.files.may(actor, entry, "write"):
                        raise DAVError(HTTP_FORBIDDEN)
        if method == "PROPFIND":
            if "HTTP_DEPTH" not in environ:
                # RFC 4918 reads a missing Depth as infinity, which is refused below; but
                # clients leave it out to ask about one resource (webdav4's exists, isdir,
                # get_props). On a file the depth changes nothing; on a folder the answer is
                # Depth 1, as SabreDAV (Nextcloud, ownCloud) gives when infinity is disabled.
                res = self.get_resource_inst(environ["PATH_INFO"], environ)
                environ["HTTP_DEPTH"] = "1" if res is not None and res.is_collection else "0"
            if environ["HTTP_DEPTH"] == "infinity":
                raise DAVError(HTTP_FORBIDDEN, err_condition=PRECONDITION_CODE_PropfindFiniteDepth)
            # Folder listings are written straight out; what that does not cover, WsgiDAV does.
            answer = listing.render(self, environ, start_response)
            if answer is not None:
                return answer
        if method in ("PUT", "COPY", "MOVE"):

            def finish(status: str, headers: list[Any], exc_info: Any = None) -> Any:
                if status.startswith("204") and context(environ).dav.created:
                    status = "201 Created"
                if status.startswith("2") and context(environ).dav.oc_mtime_accepted:
                    headers = [*headers, ("X-OC-Mtime", "accepted")]
                return start_response(status, headers, exc_info)

            return default_handler(environ, finish)
        return default_handler(environ, start_response)
