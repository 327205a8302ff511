"""WebDAV resources: a :class:`Folder` or :class:`File` over one node of the ``files`` API.

Thin by design: each method translates a WsgiDAV call into one ``Files`` call and maps errors.
Lock and dead-property keys ("reference URLs") are lock keys (``davdisk/lockkeys.py``), so two
users' equal paths never share a lock. COPY, MOVE and DELETE are handled natively (one database
transaction each) instead of WsgiDAV's member-by-member fallback. A resource reaches the
provider that made it (``dav/provider.py``, which imports this module) only through
:class:`Host`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote

from lxml import etree
from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_CONFLICT,
    HTTP_FORBIDDEN,
    HTTP_NOT_FOUND,
    DAVError,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection

from davdisk import lockkeys
from davdisk.dav import liveprops, wsgidav_compat
from davdisk.dav.errors import dav_errors
from davdisk.dav.locks import LockGuard, SQLLockManager
from davdisk.dav.memo import forget, remember_ref
from davdisk.dav.wsgidav_compat import DAVResource
from davdisk.files.access import owns
from davdisk.files.api import Actor, Files, Upload
from davdisk.files.guard import NO_GUARD, WriteGuard
from davdisk.meta.store import Entry

logger = logging.getLogger(__name__)

_LOCK_PROPS = ("{DAV:}lockdiscovery", "{DAV:}supportedlock")
_QUOTA_PROPS = ("{DAV:}quota-used-bytes", "{DAV:}quota-available-bytes")


class Host(Protocol):
    """What resources (and dav/listing.py) use of their provider, WsgiDAV's
    ``environ["wsgidav.provider"]``: a :class:`~davdisk.dav.provider.DavdiskProvider`."""

    files: Files
    lock_manager: Any
    mount_path: str
    share_path: str

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> DAVResource | None: ...


def lock_guard(
    provider: Host,
    environ: dict[str, Any],
    checks: list[tuple[str, str]],
    drops: Sequence[str] = (),
    lockable: str | None = None,
) -> WriteGuard:
    """The request's :class:`~davdisk.dav.locks.LockGuard` for a write (see there)."""
    lm = provider.lock_manager
    if not isinstance(lm, SQLLockManager):
        return NO_GUARD
    principal, tokens = wsgidav_compat.lock_credentials(environ)
    return LockGuard(
        lm,
        principal=principal,
        tokens=tokens,
        checks=checks,
        drops=list(drops),
        lockable=lockable,
    )


class _NodeMixin:
    """What files and folders share: identity, times, dead properties, locks, delete/copy/move."""

    provider: Host
    environ: dict[str, Any]
    path: str
    is_collection: bool
    entry: Entry
    actor: Actor
    files: Files

    def _init_node(self, entry: Entry, actor: Actor, files: Files) -> None:
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
        return ref + "/" if self.is_collection and not ref.endswith("/") else ref

    def _owner_names(self) -> list[str]:
        """The names leading to this node in its owner's home (cached for the request)."""
        cache = self.environ.setdefault("davdisk.owner_names", {})
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

    # --- dead properties ---------------------------------------------------------------------

    def _dead_props(self) -> dict[str, bytes]:
        cache = self.environ.setdefault("davdisk.props", {})
        found = cache.get(self.entry.id)
        if found is None:
            with dav_errors():
                found = self.files.properties(self.actor, self.entry)
            cache[self.entry.id] = found
        return found

    def get_properties(self, mode: str, *, name_list: list[str] | None = None) -> list[Any]:
        props = wsgidav_compat.base_properties(self, mode, name_list)
        # Found properties first, so the 200 propstat leads each response: rclone reads only the
        # first propstat's status, and a later 404 propstat must not shadow good values.
        return sorted(props, key=lambda p: isinstance(p[1], DAVError))

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names = wsgidav_compat.base_property_names(self, is_allprop=is_allprop)
        return names + list(self._dead_props())

    def get_property_value(self, name: str) -> Any:
        if name == "{DAV:}getetag":
            # RFC 4918 writes entity tags in PROPFIND as in the ETag header: quoted.
            etag = self.get_etag()  # type: ignore[attr-defined]
            if etag is None:
                raise DAVError(HTTP_NOT_FOUND)
            return f'"{etag}"'
        if name.startswith(liveprops.OC):
            return self._oc_property(name)
        if name in _QUOTA_PROPS:
            # RFC 4331 quotas are properties of collections, and only where a quota applies.
            value = (
                None
                if not self.is_collection
                else self.get_used_bytes()  # type: ignore[attr-defined]
                if name == _QUOTA_PROPS[0]
                else self.get_available_bytes()  # type: ignore[attr-defined]
            )
            if value is None:
                raise DAVError(HTTP_NOT_FOUND)
            return str(value)
        if name.startswith("{DAV:}") or name in _LOCK_PROPS:
            return wsgidav_compat.base_property_value(self, name)
        value = self._dead_props().get(name)
        if value is None:
            raise DAVError(HTTP_NOT_FOUND)
        return etree.fromstring(value)

    def _oc_property(self, name: str) -> Any:
        entry = self.entry
        if name == liveprops.OC_FILEID:
            return str(entry.id)
        if name == liveprops.OC_PERMISSIONS:
            with dav_errors():
                return liveprops.permissions(
                    is_dir=entry.is_dir,
                    shared=not owns(self.actor, entry),
                    allowed=lambda action: self.files.may(self.actor, entry, action),
                )
        if name == liveprops.OC_SIZE:
            if not entry.is_dir:
                return str(entry.size)
            with dav_errors():
                return str(self.files.tree_size(self.actor, entry))
        if name == liveprops.OC_CHECKSUMS:
            found = self.files.checksums.reveal(entry)
            if found is not None:
                el = etree.Element(name)
                etree.SubElement(el, liveprops.OC + "checksum").text = liveprops.checksum_text(
                    *found
                )
                return el
        raise DAVError(HTTP_NOT_FOUND)

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> Any:
        if name in liveprops.TIME_PROPS:
            which, stamp = liveprops.parse_time_prop(name, None if value is None else value.text)
            if not dry_run:
                with dav_errors():
                    self.files.set_times(self.actor, self.entry, **{which: stamp})
                forget(self.environ)
            return None
        if name.startswith("{DAV:}"):
            # Live properties are computed by the server (RFC 4918 "protected").
            raise DAVError(HTTP_FORBIDDEN)
        # Without the tail: text after the element in the PROPPATCH body is not part of the
        # value (stored with it, the value would no longer parse as one element).
        raw = None if value is None else etree.tostring(value, with_tail=False)
        if dry_run:
            # WsgiDAV tries every change of a PROPPATCH before making any: check this one
            # together with those tried before it, so the one that would pass a limit (count,
            # size, quota) is refused (507) and none is made.
            planned = self.environ.setdefault("davdisk.proppatch", {}).setdefault(self.entry.id, {})
            with dav_errors():
                self.files.check_properties(self.actor, self.entry, {**planned, name: raw})
            planned[name] = raw
            return None
        with dav_errors():
            self.files.set_properties(self.actor, self.entry, {name: raw})
        self.environ.get("davdisk.props", {}).pop(self.entry.id, None)
        return None

    def remove_all_properties(self, *, recursive: bool) -> None:
        pass  # properties live on the node and go with it

    # --- locks -------------------------------------------------------------------------------

    def prevent_locking(self) -> bool:
        """Refuse LOCK (403) to whoever may not change this node; for other methods, locks
        are always reported."""
        if self.environ.get("REQUEST_METHOD") != "LOCK":
            return False
        with dav_errors():
            return not self.files.may(self.actor, self.entry, "lock")

    def _lock_guard(self, checks: list[tuple[str, str]], drops: list[str]) -> WriteGuard:
        return lock_guard(self.provider, self.environ, checks, drops)

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
            guard = self._lock_guard([(util.get_uri_parent(ref), "0"), (ref, "infinity")], [ref])
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
        return parent.get_ref_url().rstrip("/") + "/" + quote(name)

    def handle_move(self, dest_path: str) -> bool:
        parent, name, _ = self._destination(dest_path)
        src_ref, dest_ref = self.get_ref_url(), self._dest_ref(parent, name)
        source_checks = [(src_ref, "infinity"), (util.get_uri_parent(src_ref), "0")]
        guard = self._lock_guard(
            [*source_checks, (parent.get_ref_url(), "0"), (dest_ref, "infinity")],
            [src_ref, dest_ref],
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
        self.environ["davdisk.created"] = created
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
        self.environ["davdisk.created"] = created
        forget(self.environ)
        return True

    def support_recursive_move(self, dest_path: str) -> bool:
        return True

    def _requested_mtime(self) -> float | None:
        return _requested_mtime(self.environ)


def _requested_mtime(environ: dict[str, Any]) -> float | None:
    """``X-OC-Mtime`` of this request; noted so the answer can say it was accepted."""
    mtime = liveprops.oc_mtime(environ)
    if mtime is not None:
        environ["davdisk.oc_mtime_accepted"] = True
    return mtime


class Folder(_NodeMixin, DAVCollection):
    def __init__(self, path: str, environ: dict[str, Any], entry: Entry, actor: Actor) -> None:
        DAVCollection.__init__(self, path, environ)
        self._init_node(entry, actor, self.provider.files)

    def get_etag(self) -> None:
        return None

    @staticmethod
    def usage_of(
        environ: dict[str, Any], files: Files, actor: Actor, entry: Entry
    ) -> tuple[int, int | None] | None:
        """(used, available) bytes for a folder's RFC 4331 quota properties, once per owner
        (per folder in a share: see ``Files.usage``) and request; None for a link holder, who
        has no business with the owner's quota."""
        if actor.is_link:
            return None
        cache = environ.setdefault("davdisk.usage", {})
        key = entry.owner_id if entry.owner_id == actor.id else ("shared", entry.id)
        found = cache.get(key)
        if found is None:
            with dav_errors():
                found = cache[key] = files.usage(actor, entry)
        return found

    def _usage(self) -> tuple[int, int | None] | None:
        return self.usage_of(self.environ, self.files, self.actor, self.entry)

    def get_used_bytes(self) -> int | None:
        """RFC 4331 quota-used-bytes: what the actor's files take (in a share: what the shared
        folder holds); Finder shows the free space."""
        usage = self._usage()
        return usage[0] if usage else None

    def get_available_bytes(self) -> int | None:
        usage = self._usage()
        return usage[1] if usage else None

    def _children(self) -> list[Entry]:
        cache = self.environ.setdefault("davdisk.children", {})
        found = cache.get(self.entry.id)
        if found is None:
            # Members and their dead properties together: a PROPFIND Depth 1 then costs two
            # queries, not one per member.
            with dav_errors():
                found, props = self.files.children_with_properties(self.actor, self.entry)
            cache[self.entry.id] = found
            prop_cache = self.environ.setdefault("davdisk.props", {})
            for child in found:
                prop_cache.setdefault(child.id, props.get(child.id, {}))
        return found

    def get_member_names(self) -> list[str]:
        return [c.name for c in self._children()]

    def members(self) -> list[Entry]:
        """The members' entries (their dead properties cached for the request), ready to be
        made resources of (dav/listing.py renders them without)."""
        children = self._children()
        if not owns(self.actor, self.entry) and self.entry.id != self.actor.root_id:
            # Inside a share, members' lock keys extend this folder's: derive them here rather
            # than with one path query per member.
            parent = self._owner_names()
            cache = self.environ["davdisk.owner_names"]
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


class _UploadStream:
    """What WsgiDAV writes a PUT body into; closing it commits the upload."""

    def __init__(self, owner: File | PendingFile, upload: Upload) -> None:
        self._owner = owner
        self._upload = upload

    def write(self, data: bytes) -> int:
        with dav_errors():  # e.g. 507 when a chunked body outgrows the quota
            return self._upload.write(data)

    def writelines(self, chunks: Any) -> None:
        # Straight from the body into the upload's buffers, when WsgiDAV's reader allows it.
        body = wsgidav_compat.take_over_put_body(self._owner.environ, chunks)
        if body is not None:
            with dav_errors():
                self._upload.write_from(body)
            return
        with dav_errors():
            self._upload.writelines(chunks)

    def close(self) -> None:
        with dav_errors():
            entry = self._upload.commit()
        self._owner._committed(entry)

    def abort(self) -> None:
        self._upload.abort()


def _expected_length(environ: dict[str, Any]) -> int | None:
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return None
    raw = environ.get("CONTENT_LENGTH")
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise DAVError(HTTP_BAD_REQUEST, "bad Content-Length") from None


def _size_hint(environ: dict[str, Any]) -> int | None:
    """Finder's ``X-Expected-Entity-Length`` for chunked bodies: a hint, used for early quota
    refusal only (the body itself decides the size)."""
    raw = environ.get("HTTP_X_EXPECTED_ENTITY_LENGTH")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


class _WritableMixin:
    environ: dict[str, Any]
    provider: Host
    _stream: _UploadStream | None

    def _start_upload(
        self,
        parent: Entry,
        name: str,
        actor: Actor,
        content_type: str | None,
        target: Entry | None = None,
    ) -> _UploadStream:
        files: Files = self.provider.files
        with dav_errors():
            upload = files.upload(
                actor,
                parent,
                name,
                target=target,
                content_type=content_type,
                expected_size=_expected_length(self.environ),
                size_hint=_size_hint(self.environ),
                mtime=_requested_mtime(self.environ),
                checksums=liveprops.oc_checksums(self.environ),
                guard=lock_guard(self.provider, self.environ, self._write_checks()),
            )
        self._stream = _UploadStream(self, upload)  # type: ignore[arg-type]
        return self._stream

    def _write_checks(self) -> list[tuple[str, str]]:
        """What must not be locked against this request when new content is committed."""
        raise NotImplementedError

    def end_write(self, *, with_errors: bool) -> None:
        if with_errors and self._stream is not None:
            self._stream.abort()
        self._stream = None
        forget(self.environ)


class File(_WritableMixin, _NodeMixin, DAVNonCollection):
    def __init__(self, path: str, environ: dict[str, Any], entry: Entry, actor: Actor) -> None:
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
            with dav_errors():
                self.entry, self._reader = self.files.open_current(self.actor, self.entry)

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

    def begin_write(self, *, content_type: str | None = None) -> _UploadStream:
        return self._start_upload(
            self.entry, self.entry.name, self.actor, content_type, target=self.entry
        )

    def _committed(self, entry: Entry) -> None:
        self.entry = entry

    def _write_checks(self) -> list[tuple[str, str]]:
        return [(self.get_ref_url(), "0")]


class PendingFile(_WritableMixin, DAVNonCollection):
    """The target of a PUT to a new name: exists only once the body is stored."""

    def __init__(self, path: str, environ: dict[str, Any], parent: Folder, name: str) -> None:
        DAVNonCollection.__init__(self, path, environ)
        self._parent = parent
        self._name = name
        self._entry: Entry | None = None
        self._stream = None

    def get_ref_url(self) -> str:
        return self._parent.get_ref_url() + quote(self._name)

    def _write_checks(self) -> list[tuple[str, str]]:
        # A new member changes its folder; a LOCK may also have created the name meanwhile.
        return [(self._parent.get_ref_url(), "0"), (self.get_ref_url(), "0")]

    def get_content_length(self) -> int:
        return self._entry.size if self._entry else 0

    def get_content_type(self) -> str:
        return "application/octet-stream"

    def get_etag(self) -> str | None:
        return self._entry.etag if self._entry else None

    def support_etag(self) -> bool:
        return True

    def get_last_modified(self) -> float | None:
        return self._entry.mtime if self._entry else None

    def get_content(self) -> BinaryIO:
        raise DAVError(HTTP_NOT_FOUND)

    def begin_write(self, *, content_type: str | None = None) -> _UploadStream:
        return self._start_upload(self._parent.entry, self._name, self._parent.actor, content_type)

    def _committed(self, entry: Entry) -> None:
        self._entry = entry


def make_resource(path: str, environ: dict[str, Any], entry: Entry, actor: Actor) -> DAVResource:
    """The resource for ``entry``, reached at request path ``path``."""
    if entry.is_dir:
        return Folder(path, environ, entry, actor)
    return File(path, environ, entry, actor)
