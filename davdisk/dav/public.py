"""The WebDAV tree of a public link: ``/public/<token>/...``.

The link's actor (set by the domain controller from the token and, if the link has one, its
password) reads — and for upload links writes — through the same resources and the same access
decision as users. A link to a file shows as a folder holding just that file, so that every
WebDAV client (rclone, cadaver) can open it.

A file drop may only add new names, so its tree answers only the methods that add (PUT, MKCOL)
or that a client asks before it adds (OPTIONS, PROPFIND of a folder, which shows the folder as
empty; GET/HEAD, which find no file); every other method is refused with 403 whatever the path,
so a refusal tells nothing about what is there. ``access.py`` refuses the same on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from wsgidav.dav_error import HTTP_FORBIDDEN, HTTP_NOT_FOUND, DAVError
from wsgidav.dav_provider import DAVCollection

from davdisk import lockkeys
from davdisk.dav.provider import DavdiskProvider
from davdisk.dav.resources import File, make_resource
from davdisk.files.names import split_path
from davdisk.files.shares import token_hash
from davdisk.model import Actor, Node
from davdisk.request_context import context
from davdisk.wsgidav_compat import DAVResource

PUBLIC_PREFIX = "/public"
# What a file drop's holder may send (see the module docstring).
DROP_METHODS = frozenset({"OPTIONS", "GET", "HEAD", "PROPFIND", "PUT", "MKCOL"})


class LinkFolder(DAVCollection):
    """The read-only folder that presents a link to a single file."""

    def __init__(self, path: str, environ: dict[str, Any], file: Node, actor: Actor) -> None:
        super().__init__(path, environ)
        self._file = file
        self._actor = actor

    def get_ref_url(self) -> str:
        assert self._actor.link is not None
        return lockkeys.of_link(self._actor.link.id)

    def get_display_name(self) -> str:
        return ""

    def get_etag(self) -> None:
        return None

    def get_last_modified(self) -> float:
        return self._file.mtime

    def get_creation_date(self) -> float:
        return self._file.ctime

    def prevent_locking(self) -> bool:
        return True

    def get_member_names(self) -> list[str]:
        return [self._file.name]

    def get_member(self, name: str) -> DAVResource | None:
        if name != self._file.name:
            return None
        return File(f"{self.path.rstrip('/')}/{name}", self.environ, self._file, self._actor)

    def support_recursive_delete(self) -> bool:
        return False

    def handle_delete(self) -> bool:
        raise DAVError(HTTP_FORBIDDEN)

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        raise DAVError(HTTP_FORBIDDEN)

    def handle_move(self, dest_path: str) -> bool:
        raise DAVError(HTTP_FORBIDDEN)


class DropFolder(DAVCollection):
    """A folder of a file drop as PROPFIND shows it: a folder, with nothing in it and no dates,
    sizes or properties (a client checks that it may upload there; it learns nothing else)."""

    def __init__(self, path: str, environ: dict[str, Any], link_id: int) -> None:
        super().__init__(path, environ)
        self._link_id = link_id

    def get_ref_url(self) -> str:
        return lockkeys.of_link(self._link_id, drop=True)  # never locked (prevent_locking)

    def get_display_name(self) -> str:
        return ""

    def get_etag(self) -> None:
        return None

    def prevent_locking(self) -> bool:
        return True

    def get_member_names(self) -> list[str]:
        return []

    def get_member(self, name: str) -> DAVResource | None:
        return None


class PublicProvider(DavdiskProvider):
    def __repr__(self) -> str:
        return "PublicProvider()"

    def custom_request_handler(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        default_handler: Callable[..., Iterable[bytes]],
    ) -> Iterable[bytes]:
        # An unknown, revoked or expired token names nothing, whatever the method (a PUT must
        # not learn "409: no parent" where a GET learns "404").
        actor = self._actor(environ)
        token = environ["PATH_INFO"].lstrip("/").partition("/")[0]
        if actor is None or actor.link is None or token_hash(token) != actor.link.token_hash:
            raise DAVError(HTTP_NOT_FOUND)
        if actor.link.file_drop and environ["REQUEST_METHOD"] not in DROP_METHODS:
            raise DAVError(HTTP_FORBIDDEN)
        return super().custom_request_handler(environ, start_response, default_handler)

    def _actor(self, environ: dict[str, Any]) -> Actor | None:
        actor = context(environ).actor
        return actor if actor is not None and actor.link is not None else None

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> DAVResource | None:
        actor = self._actor(environ)
        if actor is None or actor.link is None:
            return None
        token, _, rest = path.lstrip("/").partition("/")
        if token_hash(token) != actor.link.token_hash:
            return None
        cache = context(environ).dav.resources
        key = path.rstrip("/") or "/"
        if key in cache:
            return cache[key]
        res: DAVResource | None = None
        root = self.files.node(actor, actor.link.node_id)
        if root is not None and root.is_dir:
            entry = self.files.resolve(actor, rest)
            drop_view = actor.link.file_drop and environ["REQUEST_METHOD"] == "PROPFIND"
            if entry is not None and drop_view:
                res = DropFolder(path, environ, actor.link.id)  # a drop finds only folders
            elif entry is not None:
                res = make_resource(path, environ, entry, actor)
        elif root is not None:
            names = split_path(rest)
            if names == []:
                res = LinkFolder(f"/{token}/", environ, root, actor)
            elif names == [root.name]:
                res = File(path, environ, root, actor)
        cache[key] = res
        return res
