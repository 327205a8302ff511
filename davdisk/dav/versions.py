"""The versions tree, Nextcloud's: ``/remote.php/dav/versions/<user>/versions/<fileid>/<id>``.

``<fileid>`` is a file's ``oc:fileid`` (its node id); the folder lists the file's earlier
contents, newest first, each named by its version id, with its size, date (the content's mtime),
ETag, type and Nextcloud's ``nc:version-label`` and ``nc:version-author``. GET reads one (Range
too, through the same ranged blob read as ``/dav``). ``MOVE <version>`` with ``Destination:
/remote.php/dav/versions/<user>/restore/<any name>`` makes it the file's content again; what it
replaces becomes a version in its turn (files/history.py).

Only the owner's own files have versions here: a file id of someone else's file (even one
shared with the user) or of a folder is not found, as is any path below another user's name.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from wsgidav.dav_error import HTTP_NOT_FOUND, DAVError
from wsgidav.dav_provider import DAVCollection, DAVNonCollection

from davdisk import wsgidav_compat
from davdisk.dav.errors import dav_errors
from davdisk.dav.history_tree import (
    BASE_ALLOW,
    GETETAG,
    VERSION_AUTHOR,
    VERSION_LABEL,
    Answers,
    Done,
    Fixed,
    HistoryProvider,
)
from davdisk.dav.resources import wanted_range
from davdisk.files.access import owns
from davdisk.files.api import Files
from davdisk.model import Actor, Node, Version
from davdisk.wsgidav_compat import DAVResource

VERSIONS_PREFIX = "/remote.php/dav/versions"


class VersionsFolder(Answers, DAVCollection):
    """``versions/<fileid>``: the versions of one of the user's files."""

    allow = (*BASE_ALLOW, "GET", "HEAD")

    def __init__(self, path: str, environ: dict[str, Any], entry: Node, actor: Actor) -> None:
        super().__init__(path, environ)
        self.entry = entry
        self.actor = actor
        self.files: Files = self.provider.files
        self._versions: list[Version] | None = None
        self._authors: dict[int, str] | None = None

    def get_display_name(self) -> str:
        return str(self.entry.id)

    def get_etag(self) -> None:
        return None

    def get_last_modified(self) -> float:
        return self.entry.mtime

    def prevent_locking(self) -> bool:
        return True

    def versions(self) -> list[Version]:
        if self._versions is None:
            with dav_errors():
                self._versions = self.files.history.versions(self.actor, self.entry)
        return self._versions

    def author(self, version: Version) -> str | None:
        """Who wrote the version's content, by user name (None: not known, or gone)."""
        if self._authors is None:
            ids = [v.author_id for v in self.versions() if v.author_id is not None]
            self._authors = self.files.history.user_names(ids)
        return None if version.author_id is None else self._authors.get(version.author_id)

    def get_member_names(self) -> list[str]:
        return [str(v.id) for v in self.versions()]

    def get_member(self, name: str) -> DAVResource | None:
        for v in self.versions():
            if str(v.id) == name:
                return VersionFile(f"{self.path.rstrip('/')}/{name}", self.environ, self, v)
        return None


class VersionFile(Answers, DAVNonCollection):
    """One version: its content (GET), its restore (MOVE) and its deletion (DELETE, as
    Nextcloud's versions tree allows)."""

    allow = (*BASE_ALLOW, "GET", "HEAD", "MOVE", "DELETE")

    def __init__(
        self, path: str, environ: dict[str, Any], folder: VersionsFolder, version: Version
    ) -> None:
        super().__init__(path, environ)
        self.folder = folder
        self.version = version

    def get_display_name(self) -> str:
        return str(self.version.id)

    def get_content_length(self) -> int:
        return self.version.size

    def get_content_type(self) -> str:
        return self.version.content_type or "application/octet-stream"

    def get_last_modified(self) -> float:
        return self.version.mtime

    def get_creation_date(self) -> None:
        return None

    def get_etag(self) -> str:
        return self.version.etag

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True

    def prevent_locking(self) -> bool:
        return True

    def get_content(self) -> BinaryIO:
        want = wanted_range(self.environ, self.version.size)
        with dav_errors():
            return self.folder.files.history.open_version(
                self.folder.actor, self.folder.entry, self.version, want
            )

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names = wsgidav_compat.base_property_names(self, is_allprop=is_allprop)
        extra = [VERSION_LABEL] + ([VERSION_AUTHOR] if self.folder.author(self.version) else [])
        return names + extra

    def get_property_value(self, name: str) -> Any:
        if name == VERSION_LABEL:
            return self.version.label or ""
        if name == VERSION_AUTHOR:
            author = self.folder.author(self.version)
            if author is None:
                raise DAVError(HTTP_NOT_FOUND)
            return author
        if name == GETETAG:
            return f'"{self.version.etag}"'  # quoted, as /dav writes it
        return wsgidav_compat.base_property_value(self, name)

    def move_to(self) -> Done:
        folder = self.folder
        folder.provider.destination(self.environ, folder.actor)
        with dav_errors():
            node = folder.files.history.restore_version(folder.actor, folder.entry, self.version.id)
        # The restore target does not exist before (Nextcloud's answer is 201 as well).
        return Done("201 Created", [("ETag", f'"{node.etag}"')])

    def remove(self) -> Done:
        folder = self.folder
        with dav_errors():
            folder.files.history.delete_version(folder.actor, folder.entry, self.version.id)
        return Done("204 No Content")


class VersionsProvider(HistoryProvider):
    tree = "versions"

    def resource(
        self, path: str, environ: dict[str, Any], actor: Actor, rest: list[str]
    ) -> DAVResource | None:
        if rest == []:
            return Fixed(path, environ, ["versions", "restore"])
        if rest in (["versions"], ["restore"]):
            # Neither lists anything: a file's versions are reached by its id.
            return Fixed(path, environ, [])
        if rest[0] != "versions" or len(rest) > 3:
            return None
        entry = self._own_file(actor, rest[1])
        if entry is None:
            return None
        base = "/".join(path.rstrip("/").split("/")[:4])  # /<user>/versions/<fileid>
        folder = VersionsFolder(base, environ, entry, actor)
        if len(rest) == 2:
            return folder
        return folder.get_member(rest[2])

    def _own_file(self, actor: Actor, file_id: str) -> Node | None:
        """The user's own file with this id; None for anything else (a folder, someone
        else's file, a shared one: their versions are the owner's alone)."""
        if not file_id.isascii() or not file_id.isdigit() or len(file_id) > 18:
            return None
        with dav_errors():
            entry = self.files.node(actor, int(file_id))
        if entry is None or entry.is_dir or not owns(actor, entry):
            return None
        return entry
