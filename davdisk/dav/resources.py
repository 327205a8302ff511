"""WebDAV resources: a :class:`Folder` or :class:`File` over one node of the ``files`` API.

Thin by design: each method translates a WsgiDAV call into one ``Files`` call and maps errors.
Lock and dead-property keys ("reference URLs") are lock keys (``davdisk/lockkeys.py``), so two
users' equal paths never share a lock. COPY, MOVE and DELETE are handled natively (one database
transaction each) instead of WsgiDAV's member-by-member fallback. A node's properties are
``dav/properties.py``'s, writing content is ``dav/uploads.py``'s. A resource reaches the
provider that made it (``dav/provider.py``, which imports this module) only through
:class:`~davdisk.dav.host.Host`.
"""

from __future__ import annotations

import logging
from typing import Any, BinaryIO

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_CONFLICT,
    HTTP_FORBIDDEN,
    DAVError,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection

from davdisk import lockkeys
from davdisk.dav.errors import dav_errors
from davdisk.dav.host import Host, lock_guard, requested_mtime
from davdisk.dav.memo import forget, remember_ref
from davdisk.dav.properties import NodeProperties, usage
from davdisk.dav.uploads import PendingFile, UploadStream, WritableMixin
from davdisk.files.access import owns
from davdisk.files.api import Files
from davdisk.files.guard import NO_GUARD, WriteGuard
from davdisk.model import Actor, Node
from davdisk.request_context import context
from davdisk.wsgidav_compat import DAVResource

logger = logging.getLogger(__name__)


class _NodeMixin(NodeProperties):
    """What files and folders share: identity, times, properties, locks, delete/copy/move."""

    provider: Host
    environ: dict[str, Any]
    path: str
    is_collection: bool
    entry: Node
    actor: Actor
    files: Files

    def _init_node(self, entry: Node, actor: Actor, files: Files) -> None:
        self.entry = entry
        self.actor = actor
        self.files = files

    # --- identity ----------------------------------------------------------------------------

    def get_ref_url(self) -> str:
        ref = self._ref_url()
        remember_ref(self.environ, ref, self.path)
        return ref

    def _ref_url(self) -> str:
        if owns(self.actor, self.entry):
            return lockkeys.of_path(self.actor.id, self.get_preferred_path())  # type: ignore[attr-defined]
        # Reached through a share or link: key locks by the owner's path, so the owner and every
        # grantee contend for the same locks.
        ref = lockkeys.of_names(self.entry.owner_id, self._owner_names())
        return lockkeys.of_folder(ref) if self.is_collection else ref

    def _owner_names(self) -> list[str]:
        """The names leading to this node in its owner's home (cached for the request)."""
        cache = context(self.environ).dav.owner_names
        names = cache.get(self.entry.id)
        if names is None:
            with dav_errors():
                names = cache[self.entry.id] = self.files.owner_names(self.entry)
        return names

    def get_display_name(self) -> str:
        return util.get_uri_name(self.path) or self.entry.name

    def get_creation_date(self) -> float:
        return self.entry.ctime

    def get_last_modified(self) -> float:
        return self.entry.mtime

    # --- properties: dav/properties.py (NodeProperties) ---------------------------------------

    # --- locks -------------------------------------------------------------------------------

    def prevent_locking(self) -> bool:
        """Refuse LOCK (403) to whoever may not change this node; for other methods, locks
        are always reported."""
        if self.environ.get("REQUEST_METHOD") != "LOCK":
            return False
        with dav_errors():
            return not self.files.may(self.actor, self.entry, "lock")

    def _lock_guard(
        self,
        checks: list[tuple[str, str]],
        drops: list[str],
        *,
        source: str | None = None,
        dest: str | None = None,
    ) -> WriteGuard:
        return lock_guard(self.provider, self.environ, checks, drops, source=source, dest=dest)

    # --- delete / copy / move ----------------------------------------------------------------

    def support_recursive_delete(self) -> bool:
        return True

    def handle_delete(self) -> bool:
        self.delete()
        return True

    def delete(self) -> None:
        ref = self.get_ref_url()
        if self.files.share_of_mount(self.actor, self.entry) is not None:
            # Removing a share's mount hides it and deletes nothing: locks inside don't matter.
            guard = NO_GUARD
        else:
            guard = self._lock_guard([(lockkeys.parent(ref), "0"), (ref, "infinity")], [ref])
        with dav_errors():
            self.files.delete(self.actor, self.entry, guard=guard)
        forget(self.environ)

    def _destination(self, dest_path: str) -> tuple[Folder, str, DAVResource | None]:
        # WsgiDAV refuses a destination at or below the source; one above it (an ancestor,
        # such as a share's mount point, which is no ancestor in the owner's tree) would be
        # replaced together with the source. RFC 4918 9.8.5/9.9.4: 403 before anything is done.
        if self.path.rstrip("/").startswith(dest_path.rstrip("/") + "/"):
            raise DAVError(HTTP_FORBIDDEN, "cannot move or copy onto a folder holding the source")
        parent = self.provider.get_resource_inst(util.get_uri_parent(dest_path), self.environ)
        if not isinstance(parent, Folder):
            raise DAVError(HTTP_CONFLICT, "destination parent must be a folder")
        name = util.get_uri_name(dest_path)
        if not name:
            raise DAVError(HTTP_BAD_REQUEST, "destination needs a name")
        existing = self.provider.get_resource_inst(dest_path, self.environ)
        return parent, name, existing

    def _dest_ref(self, parent: Folder, name: str) -> str:
        """The lock key of ``parent/name``, whether or not anything stands there yet (a LOCK
        may create it while this request runs)."""
        return lockkeys.child(parent.get_ref_url(), name)

    def handle_move(self, dest_path: str) -> bool:
        parent, name, _ = self._destination(dest_path)
        src_ref, dest_ref = self.get_ref_url(), self._dest_ref(parent, name)
        source_checks = [(src_ref, "infinity"), (lockkeys.parent(src_ref), "0")]
        guard = self._lock_guard(
            [*source_checks, (parent.get_ref_url(), "0"), (dest_ref, "infinity")],
            [src_ref, dest_ref],
            source=src_ref,
            dest=dest_ref,
        )
        with dav_errors():
            _, created = self.files.move(
                self.actor,
                self.entry,
                parent.entry,
                name,
                overwrite=self.environ.get("HTTP_OVERWRITE", "T") == "T",
                mtime=self._requested_mtime(),
                guard=guard,
                source_guard=self._lock_guard(source_checks, [src_ref]),
            )
        context(self.environ).dav.created = created
        forget(self.environ)
        return True

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        parent, name, _ = self._destination(dest_path)
        dest_ref = self._dest_ref(parent, name)
        guard = self._lock_guard(
            [(parent.get_ref_url(), "0"), (dest_ref, "infinity")],
            [dest_ref],
        )
        with dav_errors():
            _, created = self.files.copy(
                self.actor,
                self.entry,
                parent.entry,
                name,
                overwrite=self.environ.get("HTTP_OVERWRITE", "T") == "T",
                recursive=depth_infinity,
                mtime=self._requested_mtime(),
                guard=guard,
            )
        context(self.environ).dav.created = created
        forget(self.environ)
        return True

    def support_recursive_move(self, dest_path: str) -> bool:
        return True

    def _requested_mtime(self) -> float | None:
        return requested_mtime(self.environ)


class Folder(_NodeMixin, DAVCollection):
    def __init__(self, path: str, environ: dict[str, Any], entry: Node, actor: Actor) -> None:
        DAVCollection.__init__(self, path, environ)
        self._init_node(entry, actor, self.provider.files)

    def get_etag(self) -> None:
        return None

    def _usage(self) -> tuple[int, int | None] | None:
        return usage(self.environ, self.files, self.actor, self.entry)

    def get_used_bytes(self) -> int | None:
        """RFC 4331 quota-used-bytes: what the actor's files take (in a share: what the shared
        folder holds); Finder shows the free space."""
        usage = self._usage()
        return usage[0] if usage else None

    def get_available_bytes(self) -> int | None:
        usage = self._usage()
        return usage[1] if usage else None

    def _children(self) -> list[Node]:
        cache = context(self.environ).dav.children
        found = cache.get(self.entry.id)
        if found is None:
            # Members and their dead properties together: a PROPFIND Depth 1 then costs two
            # queries, not one per member.
            with dav_errors():
                found, props = self.files.children_with_properties(self.actor, self.entry)
            cache[self.entry.id] = found
            prop_cache = context(self.environ).dav.props
            for child in found:
                prop_cache.setdefault(child.id, props.get(child.id, {}))
        return found

    def get_member_names(self) -> list[str]:
        return [c.name for c in self._children()]

    def members(self) -> list[Node]:
        """The members' entries (their dead properties cached for the request), ready to be
        made resources of (dav/listing.py renders them without)."""
        children = self._children()
        if not owns(self.actor, self.entry) and self.entry.id != self.actor.root_id:
            # Inside a share, members' lock keys extend this folder's: derive them here rather
            # than with one path query per member.
            parent = self._owner_names()
            cache = context(self.environ).dav.owner_names
            for c in children:
                cache.setdefault(c.id, [*parent, c.name])
        return children

    def get_member_list(self) -> list[DAVResource]:
        base = self.path.rstrip("/")
        children = self.members()
        return [make_resource(f"{base}/{c.name}", self.environ, c, self.actor) for c in children]

    def get_member(self, name: str) -> DAVResource | None:
        for c in self._children():
            if c.name == name:
                return make_resource(f"{self.path.rstrip('/')}/{name}", self.environ, c, self.actor)
        return None

    def create_empty_resource(self, name: str) -> DAVResource:
        path = f"{self.path.rstrip('/')}/{name}"
        if self.environ.get("REQUEST_METHOD") == "PUT":
            # A PUT makes the file exist only when its body has been stored (atomic writes).
            return PendingFile(path, self.environ, self, name)
        # A LOCK on an unmapped URL (RFC 4918 9.10.4). WsgiDAV creates the file before it asks
        # for the lock, so a refused LOCK used to leave an empty file behind, even in a folder
        # someone else had locked. Decided in the creating transaction: a new member of a
        # locked folder needs the folder's token (7.4, as for PUT), and nothing is created
        # where the lock could not be granted anyway.
        new_ref = self._dest_ref(self, name)
        guard = lock_guard(
            self.provider,
            self.environ,
            [(self.get_ref_url(), "0"), (new_ref, "0")],
            lockable=new_ref,
        )
        with dav_errors():
            entry = self.files.create_empty(self.actor, self.entry, name, guard=guard)
        forget(self.environ)
        return File(path, self.environ, entry, self.actor)

    def create_collection(self, name: str) -> None:
        with dav_errors():
            self.files.mkdir(self.actor, self.entry, name)
        forget(self.environ)


class File(WritableMixin, _NodeMixin, DAVNonCollection):
    def __init__(self, path: str, environ: dict[str, Any], entry: Node, actor: Actor) -> None:
        DAVNonCollection.__init__(self, path, environ)
        self._init_node(entry, actor, self.provider.files)
        self._stream = None
        self._pinned = False
        self._reader: BinaryIO | None = None

    def _pin_for_get(self) -> None:
        """On a GET, open the content before the first header is computed from ``entry``, so
        headers and bytes come from one version: a concurrent overwrite removes the blob
        ``entry`` names (an open blob survives that; one already gone means newer content,
        which is then opened and described instead)."""
        if not self._pinned and self.environ.get("REQUEST_METHOD") == "GET":
            self._pinned = True
            want = wanted_range(self.environ, self.entry.size)
            with dav_errors():
                self.entry, self._reader = self.files.open_current(self.actor, self.entry, want)

    def get_content_length(self) -> int:
        self._pin_for_get()
        return self.entry.size

    def get_content_type(self) -> str:
        self._pin_for_get()
        return self.entry.content_type or "application/octet-stream"

    def get_etag(self) -> str:
        self._pin_for_get()
        return self.entry.etag

    def get_last_modified(self) -> float:
        self._pin_for_get()
        return self.entry.mtime

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True

    def get_content(self) -> BinaryIO:
        self._pin_for_get()
        if self._reader is not None:
            reader, self._reader = self._reader, None
            return reader
        with dav_errors():
            return self.files.open_read(self.actor, self.entry)

    def begin_write(self, *, content_type: str | None = None) -> UploadStream:
        return self._start_upload(
            self.entry, self.entry.name, self.actor, content_type, target=self.entry
        )

    def _committed(self, entry: Node) -> None:
        self.entry = entry

    def _write_checks(self) -> list[tuple[str, str]]:
        return [(self.get_ref_url(), "0")]


def wanted_range(environ: dict[str, Any], size: int) -> tuple[int, int] | None:
    """The byte range [start, end) a GET's single ``Range`` will read, parsed as WsgiDAV's GET
    parses it (a hint for the blob store: a wrong guess costs speed, never bytes); None for no
    Range, several ranges or an ``If-Range`` (which may ask for the whole file)."""
    header = environ.get("HTTP_RANGE")
    if not header or environ.get("HTTP_IF_RANGE"):
        return None
    try:
        ranges, _length = util.obtain_content_ranges(header, size)
    except DAVError:
        return None  # unsatisfiable: WsgiDAV's GET answers 416 itself
    if len(ranges) != 1:
        return None
    start, last, _n = ranges[0]
    return start, last + 1


def make_resource(path: str, environ: dict[str, Any], entry: Node, actor: Actor) -> DAVResource:
    """The resource for ``entry``, reached at request path ``path``."""
    if entry.is_dir:
        return Folder(path, environ, entry, actor)
    return File(path, environ, entry, actor)
