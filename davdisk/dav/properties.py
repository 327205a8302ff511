"""A node's WebDAV properties: the one table of live properties, and the dead ones it stores.

Both ways a PROPFIND is answered read :data:`LIVE` (through :func:`lookup`): WsgiDAV's generic
path, which asks each resource (:class:`NodeProperties`, mixed into ``dav/resources.py``'s
resources), and the fast Depth-1 renderer (``dav/listing.py``), which writes members straight
from their rows. Each entry says how a property's value is found for a node (``value``: its
text, or None when the node has none, answered 404), how that text goes into the property's
element (``form``) and whether it needs escaping. For the RFC 4918 properties WsgiDAV builds
from a resource's getters (``by_wsgidav``), the generic path keeps WsgiDAV's own code and
``value`` says the same for the fast path; tests/dav/test_listing.py holds the two equal.

Any other name is a dead property: stored with the node (``Files.properties``), an XML element.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree
from wsgidav.dav_error import HTTP_FORBIDDEN, HTTP_NOT_FOUND, DAVError

from davdisk import wsgidav_compat
from davdisk.dav import liveprops
from davdisk.dav.errors import dav_errors
from davdisk.dav.memo import forget
from davdisk.files.access import owns
from davdisk.files.api import Files
from davdisk.model import Actor, Node
from davdisk.request_context import context
from davdisk.wsgidav_compat import (
    RESOURCETYPE_DIR,
    RESOURCETYPE_FILE,
    SUPPORTEDLOCK,
    http_date,
    iso_date,
)

# How a found value goes into its property element (tag: the element's qualified name).
TEXT = "text"  # <tag>value</tag>
WHOLE = "whole"  # the value is the whole element, as WsgiDAV writes it
CHECKSUMS = "checksums"  # <tag><oc:checksum>value</oc:checksum></tag>

QUOTA_USED = "{DAV:}quota-used-bytes"
QUOTA_AVAILABLE = "{DAV:}quota-available-bytes"
LOCKDISCOVERY = "{DAV:}lockdiscovery"


class Generic(Exception):
    """The fast path cannot write this value exactly: WsgiDAV's code must answer the member."""


class Asker:
    """Who asks for properties, in which request: what values are computed with. The fast
    path's listing extends it with the members' locks it read in one query."""

    def __init__(self, environ: dict[str, Any], files: Files, actor: Actor) -> None:
        self.environ = environ
        self.files = files
        self.actor = actor
        self.owned_permissions: dict[bool, str] = {}

    def lockdiscovery(self, entry: Node) -> str:
        """<D:lockdiscovery> of ``entry`` as WsgiDAV writes it; :class:`Generic` when not known
        here (then WsgiDAV's code looks the locks up)."""
        raise Generic


Value = Callable[[Asker, Node], str | None]


@dataclass(frozen=True)
class Live:
    """A live property: ``value`` of a node (None: it has none, 404), written as ``form``;
    ``escape``: the text may hold characters XML escapes; ``by_wsgidav``: the generic path
    has WsgiDAV's own code compute it; ``allprop``: whether an ``allprop`` PROPFIND lists it
    for a node (as WsgiDAV's get_property_names does: where its getter answers); None: never."""

    value: Value
    form: str = TEXT
    escape: bool = True
    by_wsgidav: bool = False
    allprop: Callable[[Asker, Node], bool] | None = None


def _always(a: Asker, e: Node) -> bool:
    return True


def _file(a: Asker, e: Node) -> bool:
    return not e.is_dir


def usage(
    environ: dict[str, Any], files: Files, actor: Actor, entry: Node
) -> tuple[int, int | None] | None:
    """(used, available) bytes for a folder's RFC 4331 quota properties, once per owner (per
    folder in a share: see ``Files.usage``) and request; None for a link holder, who has no
    business with the owner's quota."""
    if actor.is_link:
        return None
    cache = context(environ).dav.usage
    key = entry.owner_id if entry.owner_id == actor.id else ("shared", entry.id)
    found = cache.get(key)
    if found is None:
        with dav_errors():
            found = cache[key] = files.usage(actor, entry)
    return found


def _usage(a: Asker, e: Node) -> tuple[int, int | None] | None:
    return usage(a.environ, a.files, a.actor, e) if e.is_dir else None


def _quota_used(a: Asker, e: Node) -> str | None:
    found = _usage(a, e)
    return None if found is None else str(found[0])


def _quota_available(a: Asker, e: Node) -> str | None:
    found = _usage(a, e)
    return None if found is None or found[1] is None else str(found[1])


def _permissions(a: Asker, e: Node) -> str:
    owned = owns(a.actor, e)
    if owned and e.is_dir in a.owned_permissions:
        # An owner may do everything to what it owns (files/access.py): the same letters for
        # every owned file (and every owned folder), without asking once per member.
        return a.owned_permissions[e.is_dir]
    with dav_errors():
        letters = liveprops.permissions(
            is_dir=e.is_dir,
            shared=not owned,
            allowed=lambda action: a.files.may(a.actor, e, action),
        )
    if owned:
        a.owned_permissions[e.is_dir] = letters
    return letters


def _size(a: Asker, e: Node) -> str:
    if not e.is_dir:
        return str(e.size)
    with dav_errors():
        return str(a.files.tree_size(a.actor, e))


def _checksums(a: Asker, e: Node) -> str | None:
    found = a.files.checksums.reveal(e)
    return None if found is None else liveprops.checksum_text(*found)


def _none(a: Asker, e: Node) -> None:
    return None


# In the order WsgiDAV's get_property_names lists them for allprop.
LIVE: dict[str, Live] = {
    # RFC 4918, as WsgiDAV's _DAVResource.get_property_value builds them from the getters
    # (``get_creation_date``...) of dav/resources.py's resources, which read the same row.
    "{DAV:}resourcetype": Live(
        lambda a, e: RESOURCETYPE_DIR if e.is_dir else RESOURCETYPE_FILE,
        WHOLE,
        by_wsgidav=True,
        allprop=_always,
    ),
    "{DAV:}creationdate": Live(
        lambda a, e: None if e.ctime is None else iso_date(e.ctime),
        escape=False,
        by_wsgidav=True,
        allprop=lambda a, e: e.ctime is not None,
    ),
    "{DAV:}getcontentlength": Live(
        lambda a, e: None if e.is_dir else str(e.size), escape=False, by_wsgidav=True, allprop=_file
    ),
    "{DAV:}getcontenttype": Live(
        lambda a, e: None if e.is_dir else e.content_type or "application/octet-stream",
        by_wsgidav=True,
        allprop=_file,
    ),
    # RFC 4331 quotas are properties of collections, and only where a quota applies.
    QUOTA_USED: Live(_quota_used, escape=False, allprop=lambda a, e: _usage(a, e) is not None),
    QUOTA_AVAILABLE: Live(
        _quota_available, escape=False, allprop=lambda a, e: _quota_available(a, e) is not None
    ),
    "{DAV:}getlastmodified": Live(
        lambda a, e: None if e.mtime is None else http_date(e.mtime),
        escape=False,
        by_wsgidav=True,
        allprop=lambda a, e: e.mtime is not None,
    ),
    # util.get_uri_name of the request path: the name (get_display_name).
    "{DAV:}displayname": Live(lambda a, e: e.name, by_wsgidav=True, allprop=_always),
    # RFC 4918 writes entity tags in PROPFIND as in the ETag header: quoted. Folders have none.
    "{DAV:}getetag": Live(
        lambda a, e: None if e.is_dir or e.etag is None else f'"{e.etag}"',
        allprop=lambda a, e: not e.is_dir and e.etag is not None,
    ),
    LOCKDISCOVERY: Live(lambda a, e: a.lockdiscovery(e), WHOLE, by_wsgidav=True, allprop=_always),
    "{DAV:}supportedlock": Live(
        lambda a, e: SUPPORTEDLOCK, WHOLE, by_wsgidav=True, allprop=_always
    ),
    # ownCloud/Nextcloud (dav/liveprops.py): only when asked for by name.
    liveprops.OC_FILEID: Live(lambda a, e: str(e.id), escape=False),
    liveprops.OC_PERMISSIONS: Live(_permissions, escape=False),
    liveprops.OC_SIZE: Live(_size, escape=False),
    liveprops.OC_CHECKSUMS: Live(_checksums, CHECKSUMS),
}
# Other names in a live namespace: none, not even a dead property of that name. WsgiDAV
# answers those of DAV: itself.
_UNKNOWN_DAV = Live(_none, by_wsgidav=True)
_UNKNOWN_OC = Live(_none)


def lookup(name: str) -> Live | None:
    """The live property ``name``; None for a dead one."""
    live = LIVE.get(name)
    if live is not None:
        return live
    if name.startswith("{DAV:}"):
        return _UNKNOWN_DAV
    if name.startswith(liveprops.OC):
        return _UNKNOWN_OC
    return None


def allprop_names(a: Asker, e: Node) -> tuple[str, ...]:
    """The live properties an ``allprop`` PROPFIND lists for ``e``: what the generic path's
    ``_DAVResource.get_property_names(is_allprop=True)`` gives (without dead properties)."""
    return tuple(name for name, live in LIVE.items() if live.allprop and live.allprop(a, e))


def _element(name: str, live: Live, value: str) -> Any:
    """A found value as WsgiDAV's get_property_value returns it: text or an element."""
    if live.form == CHECKSUMS:
        el = etree.Element(name)
        etree.SubElement(el, liveprops.OC + "checksum").text = value
        return el
    return value


class NodeProperties:
    """The generic path's property methods of a resource over a node (WsgiDAV calls them)."""

    environ: dict[str, Any]
    entry: Node
    actor: Actor
    files: Files

    def _dead_props(self) -> dict[str, bytes]:
        cache = context(self.environ).dav.props
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
        live = lookup(name)
        if live is None:
            raw = self._dead_props().get(name)
            if raw is None:
                raise DAVError(HTTP_NOT_FOUND)
            return etree.fromstring(raw)
        if live.by_wsgidav:
            return wsgidav_compat.base_property_value(self, name)
        value = live.value(Asker(self.environ, self.files, self.actor), self.entry)
        if value is None:
            raise DAVError(HTTP_NOT_FOUND)
        return _element(name, live, value)

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
            planned = context(self.environ).dav.proppatch.setdefault(self.entry.id, {})
            with dav_errors():
                self.files.check_properties(self.actor, self.entry, {**planned, name: raw})
            planned[name] = raw
            return None
        with dav_errors():
            self.files.set_properties(self.actor, self.entry, {name: raw})
        context(self.environ).dav.props.pop(self.entry.id, None)
        return None

    def remove_all_properties(self, *, recursive: bool) -> None:
        pass  # properties live on the node and go with it
