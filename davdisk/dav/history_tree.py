"""What the Nextcloud-style history trees (``dav/versions.py``, ``dav/trashbin.py``) share.

Both trees are ``/remote.php/dav/<tree>/<user>/...`` as Nextcloud's: a user sees only their own
``<user>`` (any other name is not found, so a 404 tells nothing about who exists), and the
``files.history`` API below them refuses anyone but the owner on its own.

Each tree answers a few methods only, so :class:`HistoryProvider` handles the request itself
rather than through WsgiDAV's generic handlers (which assume a writable, lockable tree):
OPTIONS lists what a resource allows, every other method a resource does not allow is 405 with
``Allow``, PROPFIND and GET go to WsgiDAV (Depth and Range as everywhere else), and MOVE (a
restore) and DELETE (a purge) are answered here by the tree's resources. No locks: the provider
has no lock manager, so nothing here can be locked and no lock is ever looked up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_FORBIDDEN,
    HTTP_METHOD_NOT_ALLOWED,
    HTTP_NOT_FOUND,
    DAVError,
    PRECONDITION_CODE_PropfindFiniteDepth,
)
from wsgidav.dav_provider import DAVCollection, DAVProvider

from davdisk import wsgidav_compat
from davdisk.dav import liveprops
from davdisk.files.api import Files
from davdisk.model import Actor
from davdisk.request_context import context
from davdisk.wsgidav_compat import DAVResource

NC = "{http://nextcloud.org/ns}"
# The properties these trees show beyond WsgiDAV's getters, named here for both trees (their
# resources are versions and trash items, not nodes: dav/properties.py's table is the nodes').
GETETAG = "{DAV:}getetag"  # quoted, as /dav writes it (WsgiDAV's getter would not quote it)
FILEID = liveprops.OC_FILEID
SIZE = liveprops.OC_SIZE
VERSION_LABEL = NC + "version-label"
VERSION_AUTHOR = NC + "version-author"
TRASH_FILENAME = NC + "trashbin-filename"
TRASH_LOCATION = NC + "trashbin-original-location"
TRASH_DELETION_TIME = NC + "trashbin-deletion-time"
TRASH_DELETED_BY = NC + "trashbin-deleted-by-id"
REMOTE_PREFIX = "/remote.php/dav"
FOLDER_PAGE = b"This is a WebDAV folder: open it with a WebDAV client to see what is in it.\n"
# What every resource of these trees answers.
BASE_ALLOW = ("OPTIONS", "PROPFIND")


def options_path(environ: dict[str, Any]) -> str:
    """The path of an OPTIONS request, decoded: cheroot leaves it percent-encoded (its OPTIONS
    branch skips the unquoting every other method gets), so ``a%20b`` would not be found.
    Decoded only while it still is the raw path (``100%25`` arrives as ``100%`` once decoded,
    which the raw path does not end with), so a fixed cheroot is not decoded twice."""
    path: str = environ["PATH_INFO"]
    raw = urlsplit(environ.get("REQUEST_URI") or "").path
    if "%" in path and raw.endswith(path):
        return unquote(path)
    return path


class Done:
    """What a MOVE or DELETE did: its status line and extra headers."""

    def __init__(self, status: str, headers: list[tuple[str, str]] | None = None) -> None:
        self.status = status
        self.headers = headers or []


class Answers:
    """What a resource of these trees answers beyond PROPFIND/GET: the methods it allows
    (``allow``), and what a MOVE (``move_to``) or a DELETE (``remove``) of it does."""

    allow: tuple[str, ...] = BASE_ALLOW

    def move_to(self) -> Done:
        raise DAVError(HTTP_METHOD_NOT_ALLOWED)

    def remove(self) -> Done:
        raise DAVError(HTTP_METHOD_NOT_ALLOWED)


class Fixed(Answers, DAVCollection):
    """A collection with fixed member names (``/<user>``, ``/<user>/versions``...); its members
    come from the provider, by path."""

    allow = (*BASE_ALLOW, "GET", "HEAD")

    def __init__(self, path: str, environ: dict[str, Any], names: list[str]) -> None:
        super().__init__(path, environ)
        self._names = names

    def get_display_name(self) -> str:
        return util.get_uri_name(self.path)

    def get_etag(self) -> None:
        return None

    def get_last_modified(self) -> None:
        return None

    def get_creation_date(self) -> None:
        return None

    def prevent_locking(self) -> bool:
        return True

    def get_member_names(self) -> list[str]:
        return list(self._names)

    def get_member(self, name: str) -> DAVResource | None:
        return self.provider.get_resource_inst(f"{self.path.rstrip('/')}/{name}", self.environ)


class HistoryProvider(DAVProvider):
    """The base of the two trees' providers: the user check, the method gate, MOVE/DELETE."""

    tree = ""  # "versions" or "trashbin": the path segment after /remote.php/dav

    def __init__(self, files: Files) -> None:
        super().__init__()
        self.files = files

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def is_readonly(self) -> bool:
        return False

    def actor(self, environ: dict[str, Any]) -> Actor | None:
        """The logged-in user (never a link: links have no history)."""
        ctx = context(environ)
        if ctx.actor is None:
            name = wsgidav_compat.authenticated_user(environ)
            if name:
                ctx.actor = self.files.actor(name)
        actor = ctx.actor
        return None if actor is None or actor.is_link else actor

    def names(self, path: str, environ: dict[str, Any]) -> tuple[Actor, list[str]] | None:
        """(the user, the path's names after ``<user>``) when the path is in the user's own
        part of the tree; None otherwise (another user's name, not logged in)."""
        actor = self.actor(environ)
        parts = path.strip("/").split("/") if path.strip("/") else []
        if actor is None or not parts or parts[0] != actor.name:
            return None
        return actor, parts[1:]

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> DAVResource | None:
        if path.strip("/") == "":
            actor = self.actor(environ)
            return None if actor is None else Fixed("/", environ, [actor.name])
        found = self.names(path, environ)
        if found is None:
            return None
        actor, rest = found
        return self.resource(path, environ, actor, rest)

    def resource(
        self, path: str, environ: dict[str, Any], actor: Actor, rest: list[str]
    ) -> DAVResource | None:
        """The resource at ``/<user>/<rest...>`` (the tree's own)."""
        raise NotImplementedError

    def destination(self, environ: dict[str, Any], actor: Actor) -> str:
        """The name a MOVE goes to in the user's ``restore`` folder of this tree (the only
        place anything can be moved to): 400 without a Destination, 403 anywhere else."""
        raw = environ.get("HTTP_DESTINATION")
        if not raw:
            raise DAVError(HTTP_BAD_REQUEST, "MOVE needs a Destination")
        path = unquote(urlsplit(raw).path)
        restore = f"{REMOTE_PREFIX}/{self.tree}/{actor.name}/restore/"
        name = path[len(restore) :].strip("/") if path.startswith(restore) else ""
        if not name or "/" in name:
            raise DAVError(HTTP_FORBIDDEN, f"restore by a MOVE into {restore}<name>")
        return name

    def custom_request_handler(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        default_handler: Callable[..., Iterable[bytes]],
    ) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = options_path(environ) if method == "OPTIONS" else environ["PATH_INFO"]
        res = self.get_resource_inst(path, environ)
        if not isinstance(res, Answers):
            raise DAVError(HTTP_NOT_FOUND)
        allow = res.allow
        if method == "OPTIONS":
            headers = [("Allow", ", ".join(allow)), ("DAV", "1"), ("Content-Length", "0")]
            start_response("200 OK", headers)
            return [b""]
        if method not in allow:
            raise DAVError(HTTP_METHOD_NOT_ALLOWED, add_headers=[("Allow", ", ".join(allow))])
        if method in ("GET", "HEAD") and isinstance(res, DAVCollection):
            # As /dav's folders: a hint for a browser, an empty 200 for a client's HEAD probe.
            start_response(
                "200 OK",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(FOLDER_PAGE))),
                ],
            )
            return [FOLDER_PAGE if method == "GET" else b""]
        if method == "PROPFIND":
            if "HTTP_DEPTH" not in environ:
                environ["HTTP_DEPTH"] = "1" if isinstance(res, DAVCollection) else "0"
            if environ["HTTP_DEPTH"] == "infinity":
                raise DAVError(HTTP_FORBIDDEN, err_condition=PRECONDITION_CODE_PropfindFiniteDepth)
        if method in ("MOVE", "DELETE"):
            done = res.move_to() if method == "MOVE" else res.remove()
            start_response(done.status, [*done.headers, ("Content-Length", "0")])
            return [b""]
        return default_handler(environ, start_response)
