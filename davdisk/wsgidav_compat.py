"""Every reliance on WsgiDAV's internals, in one place: what a WsgiDAV upgrade must be checked
against.

The rest of davdisk uses WsgiDAV's public classes (``DAVProvider``, ``DAVCollection``,
``DAVNonCollection``, ``DAVError``, the middleware base and ``util`` helpers). What it relies on
beyond them is here, each with what it assumes (WsgiDAV 4.4):

- the resource base class ``_DAVResource`` (private in name; every resource is one) and its
  default property methods, which our resources extend;
- the environ keys WsgiDAV's handlers read and write (the If header's lock tokens, the user
  name locks are taken under, the "body read" marks);
- the PUT body takeover: WsgiDAV's ``_stream_data`` generator, recognised by name and state;
- PROPFIND as WsgiDAV reads and writes it: the body's parsing in ``do_PROPFIND``, the href
  quoting of ``get_href``, the dates of ``util.get_rfc1123_time``/``get_rfc3339_time``, the
  elements ``get_property_value`` builds and ``util.add_property_response``'s document, which
  ``dav/listing.py`` writes straight out (tests/dav/test_listing.py compares the two).
"""

from __future__ import annotations

import inspect
import io
import time
from typing import Any, TypeAlias

from lxml import etree
from wsgidav import util, xml_tools
from wsgidav.dav_error import HTTP_NOT_FOUND, DAVError
from wsgidav.dav_provider import _DAVResource
from wsgidav.lock_man.lock_manager import LockManager, normalize_lock_root

# The base of WsgiDAV's DAVCollection and DAVNonCollection, and what its provider API returns.
DAVResource: TypeAlias = _DAVResource

__all__ = ["DAVResource", "LockManagerBase", "normalize_lock_root"]


# --- resources: WsgiDAV's default property methods, which ours extend ---------------------------


def base_properties(res: DAVResource, mode: str, name_list: list[str] | None) -> list[Any]:
    """``_DAVResource.get_properties``: (name, value or DAVError) for each property asked for,
    values from ``res.get_property_value``."""
    return _DAVResource.get_properties(res, mode, name_list=name_list)


def base_property_names(res: DAVResource, *, is_allprop: bool) -> list[str]:
    """``_DAVResource.get_property_names``: the RFC 4918 live properties whose getters answer
    (and the lock properties), without dead ones."""
    return _DAVResource.get_property_names(res, is_allprop=is_allprop)


def base_property_value(res: DAVResource, name: str) -> Any:
    """``_DAVResource.get_property_value`` of a ``{DAV:}`` property, from ``res``'s getters
    (``get_creation_date``...) and the lock manager."""
    try:
        return _DAVResource.get_property_value(res, name)
    except AttributeError:
        if name != "{DAV:}lockdiscovery":
            raise
        # WsgiDAV looks each lock's root up again and does not expect None: the item was
        # moved or deleted by a concurrent request since this one resolved it.
        raise DAVError(HTTP_NOT_FOUND) from None


# --- the request's user and locks -------------------------------------------------------------


def authenticated_user(environ: dict[str, Any]) -> str | None:
    """The user name WsgiDAV's authenticator let in (``auth/principal.py`` sets it to the
    actor's own name); None or "" before a login."""
    name: str | None = environ.get("wsgidav.auth.user_name")
    return name


def set_authenticated_user(environ: dict[str, Any], name: str) -> None:
    """Make ``name`` the user WsgiDAV's handlers see, and so the principal locks are taken
    under (``auth/principal.py``: the actor the login found, not the name the client typed)."""
    environ["wsgidav.auth.user_name"] = name


def request_provider(environ: dict[str, Any]) -> Any:
    """The provider WsgiDAV's request resolver chose for the request (None before it ran)."""
    return environ.get("wsgidav.provider")


def parse_if_header(environ: dict[str, Any]) -> None:
    """Leave the environ as WsgiDAV's ``_evaluate_if_headers`` does (the If header's lock
    tokens parsed), for code answering a request in its place."""
    util.parse_if_header_dict(environ)


def lock_credentials(environ: dict[str, Any]) -> tuple[str, list[str]]:
    """(principal, lock tokens) of a request: the user name WsgiDAV takes locks under and the
    tokens its If header submits (parsed here if WsgiDAV has not yet)."""
    if "wsgidav.conditions.if" not in environ:
        util.parse_if_header_dict(environ)
    return environ["wsgidav.user_name"], environ["wsgidav.ifLockTokenList"]


# --- the PUT body takeover ----------------------------------------------------------------------


def take_over_put_body(environ: dict[str, Any], chunks: Any) -> Any | None:
    """The request body (``wsgi.input``) to read a PUT from in place of ``chunks``, or None.

    WsgiDAV hands ``writelines`` a generator (request_server.py ``_stream_data``) that would
    read the body in block_size ``bytes`` objects. If that is what ``chunks`` is and it has not
    read anything yet, it is closed, the body is marked read as the generator would have, and
    the body is returned for the caller to read straight into its own buffers (which saves a
    copy and an allocation per block). Anything else (another generator, one already started,
    a body without ``readinto``) is left alone: None. The body object itself reads directly
    from the connection only when it is exactly cheroot's (``http/request_body.py``).
    """
    body = environ.get("wsgi.input")
    if body is None or not hasattr(body, "readinto"):
        return None
    if not (
        inspect.isgenerator(chunks)
        and chunks.gi_code.co_name == "_stream_data"
        and inspect.getgeneratorstate(chunks) == inspect.GEN_CREATED
    ):
        return None
    chunks.close()
    environ["wsgidav.some_input_read"] = environ["wsgidav.all_input_read"] = 1
    return body


# --- PROPFIND as WsgiDAV reads it (do_PROPFIND) ------------------------------------------------

# Headers WsgiDAV evaluates before a PROPFIND (_evaluate_if_headers).
CONDITIONAL_HEADERS = (
    "HTTP_IF",
    "HTTP_IF_MATCH",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_UNMODIFIED_SINCE",
)


def dumps_bodies(environ: dict[str, Any]) -> bool:
    """Whether WsgiDAV was asked to log this request's bodies (its own handler does that)."""
    return bool(
        environ.get("wsgidav.dump_request_body") or environ.get("wsgidav.dump_response_body")
    )


def mark_body_read(environ: dict[str, Any]) -> None:
    """Tell WsgiDAV the request body was read (it drains an unread one after the answer)."""
    environ["wsgidav.all_input_read"] = 1


def _propfind_body(environ: dict[str, Any]) -> tuple[bool, etree._Element | None]:
    """(handled, root) of the PROPFIND body as util.parse_xml_body reads it; the body stays
    readable for WsgiDAV's handler should the caller not answer."""
    length = environ.get("CONTENT_LENGTH", "").strip()
    if length == "":
        return True, None
    if not length.isdigit():
        return False, None
    size = int(length)
    if size == 0:
        return True, None
    data = environ["wsgi.input"].read(size)
    environ["wsgi.input"] = io.BytesIO(data)  # unread again, for WsgiDAV's handler
    if not data:
        return False, None  # WsgiDAV tries to parse b"" (400)
    try:
        # The parser of util.parse_xml_body; the body has passed http/xml_guard.py already.
        root = etree.XML(data, parser=etree.XMLParser(resolve_entities=False))
    except Exception:
        return False, None  # WsgiDAV answers 400
    return True, root


def propfind_names(environ: dict[str, Any]) -> tuple[bool, list[str] | None]:
    """(handled, names) of a PROPFIND body as do_PROPFIND reads it; names None means allprop.
    Not handled: what WsgiDAV refuses, ``propname`` and other rarities, left to its handler."""
    handled, root = _propfind_body(environ)
    if not handled or root is None:
        return handled, None
    if root.tag != "{DAV:}propfind":
        return False, None
    mode = None
    names: list[str] = []
    for node in root:
        if node.tag == "{DAV:}allprop":
            if mode:
                return False, None
            mode = "allprop"
        elif node.tag == "{DAV:}name":
            return False, None  # WsgiDAV's spelling of propname: rare, left to it
        elif node.tag == "{DAV:}prop":
            if mode not in (None, "named"):
                return False, None
            mode = "named"
            for prop in node:
                if not isinstance(prop.tag, str):
                    return False, None  # a comment or processing instruction
                names.append(prop.tag)
    if mode == "allprop":
        return True, None
    if mode == "named" and names:
        return True, names
    return False, None


# --- PROPFIND as WsgiDAV writes it --------------------------------------------------------------

# get_href's quoting: Nautilus chokes on '(' as '%28'.
HREF_SAFE = "/" + "!*'()," + "$-_|."
MULTISTATUS_OPEN = '<D:multistatus xmlns:D="DAV:">'
MULTISTATUS_CLOSE = "</D:multistatus>"
MULTISTATUS_HEAD = b"<?xml version='1.0' encoding='UTF-8'?>\n" + MULTISTATUS_OPEN.encode()

# Whole property elements as get_property_value builds them (lxml writes an empty text as <a></a>).
RESOURCETYPE_DIR = "<D:resourcetype><D:collection/></D:resourcetype>"
RESOURCETYPE_FILE = "<D:resourcetype></D:resourcetype>"
SUPPORTEDLOCK = (
    "<D:supportedlock><D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype>"
    "<D:write/></D:locktype></D:lockentry><D:lockentry><D:lockscope><D:shared/></D:lockscope>"
    "<D:locktype><D:write/></D:locktype></D:lockentry></D:supportedlock>"
)
LOCKDISCOVERY_NONE = "<D:lockdiscovery/>"

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# %-formatting of time.gmtime's fields is ~3x faster than the datetime and strftime detours
# WsgiDAV's helpers take, and writes the same text.
_HTTP_DATE = "%s, %02d %s %04d %02d:%02d:%02d GMT"
_ISO_DATE = "%d-%02d-%02dT%02d:%02d:%02dZ"


def http_date(t: float) -> str:
    """util.get_rfc1123_time (email.utils.formatdate)."""
    if 0.0 <= t % 1 < 0.999999:  # else datetime's rounding to microseconds may carry
        y, mo, d, h, mi, sec, wd, _, _ = time.gmtime(t)
        if 1000 <= y <= 9999:
            return _HTTP_DATE % (_DAYS[wd], d, _MONTHS[mo - 1], y, h, mi, sec)
    return util.get_rfc1123_time(t)


def iso_date(t: float) -> str:
    """util.get_rfc3339_time (time.strftime of time.gmtime)."""
    y, mo, d, h, mi, sec, _, _, _ = time.gmtime(t)
    if 1000 <= y <= 9999:
        return _ISO_DATE % (y, mo, d, h, mi, sec)
    return util.get_rfc3339_time(t)


def _inner(multistatus: etree._Element) -> str:
    """What a multistatus element holds, as the text between its tags."""
    xml = etree.tostring(multistatus, encoding="unicode")
    assert xml.startswith(MULTISTATUS_OPEN) and xml.endswith(MULTISTATUS_CLOSE), xml[:100]
    return xml[len(MULTISTATUS_OPEN) : -len(MULTISTATUS_CLOSE)]


def activelocks(found: list[dict[str, Any]], href: str) -> str:
    """<D:lockdiscovery> of these locks as _DAVResource.get_property_value builds it (the
    lock root of a direct lock is the resource itself, so its href is the resource's)."""
    el = etree.Element("{DAV:}lockdiscovery")
    for lock in found:
        active = etree.SubElement(el, "{DAV:}activelock")
        etree.SubElement(etree.SubElement(active, "{DAV:}locktype"), "{DAV:}" + lock["type"])
        etree.SubElement(etree.SubElement(active, "{DAV:}lockscope"), "{DAV:}" + lock["scope"])
        etree.SubElement(active, "{DAV:}depth").text = lock["depth"]
        if lock["owner"]:
            active.append(xml_tools.string_to_xml(lock["owner"]))
        timeout = lock["timeout"]
        etree.SubElement(active, "{DAV:}timeout").text = (
            "Infinite" if timeout < 0 else "Second-" + str(int(lock["expire"] - time.time()))
        )
        etree.SubElement(etree.SubElement(active, "{DAV:}locktoken"), "{DAV:}href").text = lock[
            "token"
        ]
        etree.SubElement(etree.SubElement(active, "{DAV:}lockroot"), "{DAV:}href").text = href
    multistatus = xml_tools.make_multistatus_el()
    multistatus.append(el)
    return _inner(multistatus)


def property_response(res: DAVResource, names: list[str] | None) -> str:
    """The <response> of ``res`` made by WsgiDAV's own code, as do_PROPFIND makes it."""
    if names is None:
        props = res.get_properties("allprop")
    else:
        props = res.get_properties("named", name_list=names)
    multistatus = xml_tools.make_multistatus_el()
    util.add_property_response(multistatus, res.get_href(), props)
    return _inner(multistatus)


class LockManagerBase(LockManager):
    """WsgiDAV's ``LockManager`` with the private steps davdisk changes given names of their
    own: ``begin_write_transaction`` (the step every write request takes before it starts),
    ``write_conflicts`` (the locks that keep ``url`` from being written) and
    ``check_lock_permission`` (whether a lock could be granted). dav/locks.py overrides these,
    so a WsgiDAV upgrade that renames the private methods breaks here, not there."""

    def _begin_write_transaction(self, **kwargs: Any) -> None:
        self.begin_write_transaction(**kwargs)

    def begin_write_transaction(self, **kwargs: Any) -> None:
        super()._begin_write_transaction(**kwargs)

    def _get_write_conflicts(
        self, url: str, depth: str, token_list: list[str], principal: str
    ) -> Any:
        return self.write_conflicts(url, depth, token_list, principal)

    def write_conflicts(self, url: str, depth: str, token_list: list[str], principal: str) -> Any:
        return super()._get_write_conflicts(url, depth, token_list, principal)

    def check_lock_permission(
        self, url: str, lock_type: str, lock_scope: str, lock_depth: str, tokens: list[str],
        principal: str,
    ) -> None:  # fmt: skip
        self._check_lock_permission(url, lock_type, lock_scope, lock_depth, tokens, principal)
