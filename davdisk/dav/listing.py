"""PROPFIND Depth 1 on a folder, written straight out instead of through WsgiDAV's generic path.

WsgiDAV answers a PROPFIND by making a resource object per member, asking it for every property
through the generic getters and building an lxml tree of the answer: ~0.6 ms per member with our
provider (a folder of 5 000 files: 3 s). :func:`render` gives the same 207 answer from the
members' rows and dead properties (``Files.children_with_properties``: two queries) as strings.

What it renders: Depth 1 on a :class:`Folder`, for ``allprop`` (an empty body included) and for
``<prop>`` naming any properties (unknown ones answer 404, as WsgiDAV's do). Each property's value
is found as on the generic path, by the table of ``dav/properties.py``; the order of the
properties, the 200 propstat first, the propstat grouping and the namespace prefixes follow
``NodeProperties.get_properties`` (dav/properties.py) and ``util.add_property_response``.

What it leaves to WsgiDAV's own code: the folder itself and any member whose answer needs more
than its row - a lock on it (``lockdiscovery``), a name or dead property lxml would treat
specially - are rendered by WsgiDAV (``get_properties`` + ``add_property_response``) into the
same document; and whole requests it does not handle (``propname``, Depth 0, conditional
headers, bodies WsgiDAV refuses) get ``None``, so the caller hands them to WsgiDAV's handler.

tests/dav/test_listing.py proves both answers equal; ``ENABLED = False`` turns this off.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from wsgidav import util
from wsgidav.dav_error import HTTP_NOT_FOUND, DAVError, as_DAVError, get_http_status_string

from davdisk import lockkeys, wsgidav_compat
from davdisk.dav import properties
from davdisk.dav.host import Host
from davdisk.dav.properties import CHECKSUMS, LOCKDISCOVERY, WHOLE
from davdisk.dav.properties import Generic as _Generic
from davdisk.dav.resources import Folder, make_resource
from davdisk.files.access import owns
from davdisk.model import Node
from davdisk.request_context import context
from davdisk.wsgidav_compat import (
    HREF_SAFE,
    LOCKDISCOVERY_NONE,
    MULTISTATUS_CLOSE,
    MULTISTATUS_HEAD,
    normalize_lock_root,
)

ENABLED = True  # the switch tests flip to get WsgiDAV's own answer for comparison

_OK = "200 OK"
_NOT_FOUND = DAVError(HTTP_NOT_FOUND)
_NOT_FOUND_STATUS = get_http_status_string(_NOT_FOUND)
# Characters lxml escapes in text (and how), and those it refuses outright (ValueError).
_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}
# A namespace URI is written into an attribute; one needing escapes goes the generic way.
_PLAIN_URI = re.compile('[^&<>"\t\n\r\x00-\x1f\ufffe\uffff]*')
_WS = b" \t\r\n"

# Names quote() leaves as they are (letters, digits, "_.-~" and the safe ones).
_HREF_PLAIN = re.compile("[A-Za-z0-9_.~!*'(),$|-]+")


def _text(value: str) -> str:
    """``value`` as lxml writes element text; a member lxml would refuse goes the generic way."""
    if _SPECIAL.search(value) is None:
        return value
    if _REFUSED.search(value) is not None:
        raise _Generic
    return _SPECIAL.sub(lambda m: _ESCAPES[m.group()], value)


def _href_name(name: str) -> str:
    return name if _HREF_PLAIN.fullmatch(name) else quote(name, safe=HREF_SAFE)


Getter = Callable[["_Listing", Node, dict[str, bytes]], Any]


class _Listing(properties.Asker):
    """One request's listing: the folder, who asks, and what is known about its members."""

    def __init__(self, provider: Host, environ: dict[str, Any], folder: Folder) -> None:
        super().__init__(environ, folder.files, folder.actor)
        self.provider = provider
        self.folder = folder
        self.base = folder.path.rstrip("/")
        self.href_prefix = quote(
            provider.mount_path + provider.share_path + self.base + "/", safe=HREF_SAFE
        )
        self.owns_folder = owns(self.actor, folder.entry)
        self.dead: dict[int, dict[str, bytes]] = {}  # members' dead properties, by node id
        # Locks of members by normalised lock root (WsgiDAV's lockdiscovery lists the locks
        # whose root is the resource itself): read in one query for the whole listing.
        self.locked: dict[str, list[dict[str, Any]]] = {}
        self.lock_prefix: str | None = None  # all members' lock roots below it were looked up
        self.owned_ref_prefix: str | None = None
        self.getters: dict[tuple[str, ...], tuple[list[Getter], tuple[None, ...]]] = {}
        self.templates: dict[tuple[tuple[str, ...], tuple[str | None, ...]], str] = {}
        self.allprop: dict[tuple[bool, int], tuple[str, ...]] = {}

    # --- members ---------------------------------------------------------------------------

    def resource(self, entry: Node) -> Any:
        return make_resource(f"{self.base}/{entry.name}", self.environ, entry, self.actor)

    def find_locks(self) -> None:
        """Note which members hold locks: one query for what lies below the folder."""
        lm = self.provider.lock_manager
        assert lm is not None
        prefix = normalize_lock_root(self.folder.get_ref_url())
        self.lock_prefix = lockkeys.below(prefix)
        for lock in lm.storage.get_lock_list(
            prefix, include_root=False, include_children=True, token_only=False
        ):
            self.locked.setdefault(lock["root"], []).append(lock)
        # What _NodeMixin._ref_url says for an owned member, up to its name: when that lies
        # below the folder's, owned members need neither a resource object nor a query.
        owned = lockkeys.of_path(self.actor.id, self.base + "/")
        if self.owns_folder and owned.startswith(self.lock_prefix):
            self.owned_ref_prefix = owned

    def member_locks(self, entry: Node) -> list[dict[str, Any]] | None:
        """The locks on a member; None when they were not read with the listing."""
        assert self.lock_prefix is not None
        if self.owned_ref_prefix is not None and owns(self.actor, entry):
            if not self.locked:
                return []
            return self.locked.get(lockkeys.child(self.owned_ref_prefix, entry.name), [])
        ref = normalize_lock_root(self.resource(entry)._ref_url())
        if ref.startswith(self.lock_prefix):
            return self.locked.get(ref, [])
        return None  # e.g. a share mounted in the top folder: WsgiDAV's code asks

    def lockdiscovery(self, entry: Node) -> str:
        found = self.member_locks(entry)
        if found is None or (found and self.dead.get(entry.id)):
            # Unknown here, or a lock owner's namespaces might meet the dead properties'
            # prefixes on the response (where lxml would declare them differently).
            raise _Generic
        if not found:
            return LOCKDISCOVERY_NONE
        href = self.href_prefix + _href_name(entry.name) + ("/" if entry.is_dir else "")
        return wsgidav_compat.activelocks(found, href)

    def allprop_names(self, e: Node, props: dict[str, bytes]) -> tuple[str, ...]:
        """_DAVResource.get_property_names(is_allprop=True) of a member (and so the same for
        all owned files, and for all folders the actor owns), plus its dead properties. A
        folder shared with the actor has its own: whether it reports quota-available-bytes
        depends on whether the actor may write there (see ``Files.usage``)."""
        key = (e.is_dir, (e.owner_id if e.owner_id == self.actor.id else -e.id) if e.is_dir else 0)
        names = self.allprop.get(key)
        if names is None or e.ctime is None or e.mtime is None or e.etag is None:
            names = properties.allprop_names(self, e)
            if e.ctime is not None and e.mtime is not None and e.etag is not None:
                self.allprop[key] = names
        return names + tuple(props) if props else names

    def compiled(self, names: tuple[str, ...]) -> tuple[list[Getter], tuple[None, ...]]:
        """The getters of ``names``, and the statuses of a member that has them all."""
        found = self.getters.get(names)
        if found is None:
            found = self.getters[names] = ([_getter(n) for n in names], (None,) * len(names))
        return found

    def template(self, names: tuple[str, ...], statuses: tuple[str | None, ...]) -> str:
        """The <response> for members whose properties ``names`` came out as ``statuses``
        (None: found), with a slot ({}) for the href and for each found value."""
        key = (names, statuses)
        found = self.templates.get(key)
        if found is None:
            found = self.templates[key] = _template(names, statuses)
        return found


def _template(names: tuple[str, ...], statuses: tuple[str | None, ...]) -> str:
    """The <response> as NodeProperties.get_properties and util.add_property_response write it:
    found properties first, then one propstat per error status (in order of appearance);
    namespaces other than DAV: declared on the response as NS1, NS2... in that order."""
    good = [n for n, s in zip(names, statuses, strict=True) if s is None]
    bad = [(n, s) for n, s in zip(names, statuses, strict=True) if s is not None]
    prefixes: dict[str, str] = {}
    tags: dict[str, str] = {}
    for name in good + [n for n, _ in bad]:
        ns, local = util.split_namespace(name)
        if ns == "DAV:":
            tags[name] = "D:" + local
        elif ns == "":
            tags[name] = local
        else:
            if ns not in prefixes:
                if _PLAIN_URI.fullmatch(ns) is None:
                    raise _Generic  # lxml would escape it in the declaration
                prefixes[ns] = f"NS{len(prefixes) + 1}"
            tags[name] = f"{prefixes[ns]}:{local}"

    def lit(text: str) -> str:  # literal text in a str.format template
        return text.replace("{", "{{").replace("}", "}}")

    decl = "".join(f' xmlns:{p}="{ns}"' for ns, p in prefixes.items())
    out = [lit(f"<D:response{decl}>"), "<D:href>{}</D:href>"]
    if good:
        out.append("<D:propstat><D:prop>")
        for name in good:
            tag = lit(tags[name])
            live = properties.lookup(name)
            form = live.form if live is not None else WHOLE  # a dead one: its element
            if form == WHOLE:
                out.append("{}")
            elif form == CHECKSUMS:
                pfx = tag[: tag.find(":") + 1]
                out.append(f"<{tag}><{pfx}checksum>{{}}</{pfx}checksum></{tag}>")
            else:
                out.append(f"<{tag}>{{}}</{tag}>")
        out.append(f"</D:prop><D:status>HTTP/1.1 {_OK}</D:status></D:propstat>")
    while bad:
        status = bad[0][1]
        out.append("<D:propstat><D:prop>")
        out += [f"<{lit(tags[n])}/>" for n, s in bad if s == status]
        out.append(f"</D:prop><D:status>HTTP/1.1 {lit(status)}</D:status></D:propstat>")
        bad = [(n, s) for n, s in bad if s != status]
    out.append("</D:response>")
    return "".join(out)


# --- property values, as dav/properties.py finds them --------------------------------------
# A getter returns the value (escaped text, or the whole element), or _NOT_FOUND; it raises
# DAVError for other failures and _Generic when WsgiDAV's code must write the member.


def _getter(name: str) -> Getter:
    """How to get ``name`` of a member, from its entry in dav/properties.py's table."""
    live = properties.lookup(name)
    if live is None:

        def dead(ls: _Listing, e: Node, props: dict[str, bytes]) -> Any:
            return _dead(props.get(name))

        return dead
    value = live.value
    if live.escape and live.form != WHOLE:

        def escaped(ls: _Listing, e: Node, props: dict[str, bytes]) -> Any:
            found = value(ls, e)
            return _NOT_FOUND if found is None else _text(found)

        return escaped

    def plain(ls: _Listing, e: Node, props: dict[str, bytes]) -> Any:
        found = value(ls, e)
        return _NOT_FOUND if found is None else found

    return plain


def _dead(raw: bytes | None) -> Any:
    """A stored dead property as its element. Values are stored as ``etree.tostring`` wrote
    them: the element, then its tail (escaped text, so without '>'). WsgiDAV parses the value
    (``etree.fromstring``), which ignores a whitespace tail and fails on any other."""
    if raw is None:
        return _NOT_FOUND
    end = raw.rfind(b">") + 1
    if not raw.startswith(b"<") or raw.startswith(b"<?") or raw[end:].strip(_WS):
        raise _Generic
    try:
        return raw[:end].decode("utf-8")
    except UnicodeDecodeError:
        raise _Generic from None


# --- responses ------------------------------------------------------------------------------


def _member(ls: _Listing, e: Node, props: dict[str, bytes], names: tuple[str, ...] | None) -> str:
    """The <response> of one member, as WsgiDAV would write it."""
    if names is None:
        names = ls.allprop_names(e, props)
    getters, all_found = ls.compiled(names)
    try:
        values = [get(ls, e, props) for get in getters]
    except _Generic:
        raise
    except Exception:
        values, statuses = _each(ls, e, props, getters)
    else:
        if _NOT_FOUND not in values:  # the common case: every property found
            statuses = all_found
        else:
            statuses = tuple([_NOT_FOUND_STATUS if v is _NOT_FOUND else None for v in values])
    if statuses is not all_found:
        values = [v for v, s in zip(values, statuses, strict=True) if s is None]
    href = ls.href_prefix + _href_name(e.name) + ("/" if e.is_dir else "")
    return ls.template(names, statuses).format(href, *values)


def _each(
    ls: _Listing, e: Node, props: dict[str, bytes], getters: list[Getter]
) -> tuple[list[Any], tuple[str | None, ...]]:
    """Values and statuses property by property, failures as _DAVResource.get_properties
    reports them: a propstat with the error's status."""
    values: list[Any] = []
    statuses: list[str | None] = []
    for get in getters:
        try:
            value = get(ls, e, props)
        except _Generic:
            raise
        except DAVError as err:
            value = err
        except Exception as err:
            value = as_DAVError(err)
        values.append(value)
        statuses.append(get_http_status_string(value) if isinstance(value, DAVError) else None)
    return values, tuple(statuses)


def _generic(res: Any, names: list[str] | None) -> str:
    """The <response> of ``res`` made by WsgiDAV's own code (tests/dav/test_listing.py counts
    the calls)."""
    return wsgidav_compat.property_response(res, names)


# --- the request ----------------------------------------------------------------------------


def render(
    provider: Host, environ: dict[str, Any], start_response: Callable[..., Any]
) -> list[bytes] | None:
    """Answer a PROPFIND Depth 1 on a folder; None when WsgiDAV's handler should answer."""
    if not ENABLED or environ.get("HTTP_DEPTH") != "1":
        return None
    if any(h in environ for h in wsgidav_compat.CONDITIONAL_HEADERS):
        return None
    if wsgidav_compat.dumps_bodies(environ):
        return None
    lm = provider.lock_manager
    if lm is None or not hasattr(lm, "storage"):
        return None
    folder = provider.get_resource_inst(environ["PATH_INFO"], environ)
    if not isinstance(folder, Folder):
        return None
    handled, names = wsgidav_compat.propfind_names(environ)
    if not handled:
        return None
    wsgidav_compat.mark_body_read(environ)
    wsgidav_compat.parse_if_header(environ)

    ls = _Listing(provider, environ, folder)
    children = folder.members()
    dead: dict[int, dict[str, bytes]] = context(environ).dav.props
    ls.dead = dead
    if names is None or LOCKDISCOVERY in names:
        ls.find_locks()
    member_names = None if names is None else tuple(names)
    parts = [_generic(folder, names)]
    for child in children:
        props = dead.get(child.id)
        try:
            if props is None:
                raise _Generic
            parts.append(_member(ls, child, props, member_names))
        except _Generic:
            parts.append(_generic(ls.resource(child), names))
    parts.append(MULTISTATUS_CLOSE)
    body = MULTISTATUS_HEAD + "".join(parts).encode("utf-8")
    start_response(
        "207 Multi-Status",
        [
            ("Content-Type", "application/xml; charset=utf-8"),
            ("Date", util.get_rfc1123_time()),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]
