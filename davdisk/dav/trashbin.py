"""The trash tree, Nextcloud's: ``/remote.php/dav/trashbin/<user>/trash/<name>.d<seconds>``.

PROPFIND of ``trash`` lists the user's deleted items (each the top of what one DELETE removed)
with Nextcloud's ``nc:trashbin-filename``, ``nc:trashbin-original-location`` (the path below
the home, no leading slash), ``nc:trashbin-deletion-time`` (unix seconds), and
``nc:trashbin-deleted-by-id`` (who deleted it: the owner, or a grantee inside a share).
``MOVE <item>`` with ``Destination: /remote.php/dav/trashbin/<user>/restore/<any name>`` puts it
back where it was (under ``name (restored)`` if that name is taken, in the home if its folder
is gone); ``DELETE <item>`` purges it; ``DELETE .../trash`` empties the trash.

A trashed folder shows as an empty collection: what is inside comes back with it, and cannot
be browsed, fetched or restored on its own. Nor can a trashed file be read before it is
restored. The trash is its owner's alone (files/history.py): another user's name is not found.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from wsgidav.dav_error import HTTP_METHOD_NOT_ALLOWED, HTTP_NOT_FOUND, DAVError
from wsgidav.dav_provider import DAVCollection, DAVNonCollection

from davdisk import wsgidav_compat
from davdisk.dav.errors import dav_errors
from davdisk.dav.history_tree import (
    BASE_ALLOW,
    FILEID,
    GETETAG,
    NC,
    SIZE,
    TRASH_DELETED_BY,
    TRASH_DELETION_TIME,
    TRASH_FILENAME,
    TRASH_LOCATION,
    Answers,
    Done,
    Fixed,
    HistoryProvider,
)
from davdisk.dav.liveprops import OC
from davdisk.files.api import Files
from davdisk.model import Actor, TrashItem
from davdisk.wsgidav_compat import DAVResource

TRASHBIN_PREFIX = "/remote.php/dav/trashbin"


class TrashFolder(Answers, DAVCollection):
    """``trash``: the user's deleted items. DELETE empties it."""

    allow = (*BASE_ALLOW, "GET", "HEAD", "DELETE")

    def __init__(self, path: str, environ: dict[str, Any], actor: Actor) -> None:
        super().__init__(path, environ)
        self.actor = actor
        self.files: Files = self.provider.files
        self._items: list[TrashItem] | None = None
        self._deleters: dict[int, str] | None = None

    def get_etag(self) -> None:
        return None

    def prevent_locking(self) -> bool:
        return True

    def items(self) -> list[TrashItem]:
        if self._items is None:
            with dav_errors():
                self._items = self.files.history.trash(self.actor)
        return self._items

    def deleter(self, item: TrashItem) -> str | None:
        """Who deleted the item, by user name (None: not known, or gone)."""
        if self._deleters is None:
            ids = [i.deleted_by for i in self.items() if i.deleted_by is not None]
            self._deleters = self.files.history.user_names(ids)
        return None if item.deleted_by is None else self._deleters.get(item.deleted_by)

    def get_member_names(self) -> list[str]:
        return [i.key for i in self.items()]

    def get_member(self, name: str) -> DAVResource | None:
        if self._items is not None:  # listed already (a PROPFIND): no query per member
            item = next((i for i in self._items if i.key == name), None)
        else:  # one item asked for (a MOVE, a DELETE): no walk of every folder's tree
            try:
                with dav_errors():
                    item = self.files.history.trash_item(self.actor, name)
            except DAVError as e:
                if e.value != HTTP_NOT_FOUND:
                    raise
                item = None
        if item is None or item.key != name:
            return None
        path = f"{self.path.rstrip('/')}/{name}"
        kind = TrashedFolder if item.is_dir else TrashedFile
        return kind(path, self.environ, self, item)

    def remove(self) -> Done:
        with dav_errors():
            self.files.history.empty(self.actor)
        return Done("204 No Content")


class _Trashed(Answers):
    """What a trashed file and a trashed folder share: their properties, restore and purge."""

    allow = (*BASE_ALLOW, "MOVE", "DELETE")
    environ: dict[str, Any]
    trash: TrashFolder
    item: TrashItem

    def _init_item(self, trash: TrashFolder, item: TrashItem) -> None:
        self.trash = trash
        self.item = item

    def get_display_name(self) -> str:
        return self.item.key

    def get_last_modified(self) -> float:
        return self.item.mtime

    def get_creation_date(self) -> None:
        return None

    def prevent_locking(self) -> bool:
        return True

    def _nc_value(self, name: str) -> str | None:
        """A Nextcloud/ownCloud property's text; None: not one of those."""
        item = self.item
        values = {
            TRASH_FILENAME: lambda: item.name,
            TRASH_LOCATION: lambda: item.path.lstrip("/"),
            TRASH_DELETION_TIME: lambda: str(int(item.deleted_at)),
            TRASH_DELETED_BY: lambda: self.trash.deleter(item),
            FILEID: lambda: str(item.id),
            SIZE: lambda: str(item.size),
        }
        found = values.get(name)
        return None if found is None else found()

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names = wsgidav_compat.base_property_names(self, is_allprop=is_allprop)
        extra = [TRASH_FILENAME, TRASH_LOCATION, TRASH_DELETION_TIME]
        return names + extra + ([TRASH_DELETED_BY] if self.trash.deleter(self.item) else [])

    def get_property_value(self, name: str) -> Any:
        if name.startswith((NC, OC)):
            value = self._nc_value(name)
            if value is None:
                raise DAVError(HTTP_NOT_FOUND)
            return value
        if name == GETETAG:
            if self.item.is_dir:
                raise DAVError(HTTP_NOT_FOUND)
            return f'"{self.item.etag}"'  # quoted, as /dav writes it
        return wsgidav_compat.base_property_value(self, name)

    def move_to(self) -> Done:
        trash = self.trash
        trash.provider.destination(self.environ, trash.actor)
        with dav_errors():
            node, _path = trash.files.history.restore(trash.actor, self.item)
        headers = [] if node.is_dir else [("ETag", f'"{node.etag}"')]
        return Done("201 Created", [*headers, ("OC-FileId", str(node.id))])

    def remove(self) -> Done:
        trash = self.trash
        with dav_errors():
            trash.files.history.purge(trash.actor, self.item)
        return Done("204 No Content")


class TrashedFile(_Trashed, DAVNonCollection):
    def __init__(
        self, path: str, environ: dict[str, Any], trash: TrashFolder, item: TrashItem
    ) -> None:
        DAVNonCollection.__init__(self, path, environ)
        self._init_item(trash, item)

    def get_content_length(self) -> int:
        return self.item.size

    def get_content_type(self) -> str:
        return self.item.content_type or "application/octet-stream"

    def get_etag(self) -> str:
        return self.item.etag

    def support_etag(self) -> bool:
        return True

    def get_content(self) -> BinaryIO:
        # Never asked: GET is not among what a trashed item allows (the method gate says 405).
        raise DAVError(HTTP_METHOD_NOT_ALLOWED)


class TrashedFolder(_Trashed, DAVCollection):
    """A trashed folder: shown empty (its content comes back with it)."""

    def __init__(
        self, path: str, environ: dict[str, Any], trash: TrashFolder, item: TrashItem
    ) -> None:
        DAVCollection.__init__(self, path, environ)
        self._init_item(trash, item)

    def get_etag(self) -> None:
        return None

    def get_member_names(self) -> list[str]:
        return []

    def get_member(self, name: str) -> DAVResource | None:
        return None


class TrashbinProvider(HistoryProvider):
    tree = "trashbin"

    def resource(
        self, path: str, environ: dict[str, Any], actor: Actor, rest: list[str]
    ) -> DAVResource | None:
        if rest == []:
            return Fixed(path, environ, ["trash", "restore"])
        if rest == ["restore"]:
            return Fixed(path, environ, [])
        if rest[0] != "trash" or len(rest) > 2:
            return None
        base = "/".join(path.rstrip("/").split("/")[:3])  # /<user>/trash
        trash = TrashFolder(base, environ, actor)
        return trash if len(rest) == 1 else trash.get_member(rest[1])
