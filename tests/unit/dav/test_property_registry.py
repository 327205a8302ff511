"""Live properties are defined once, in dav/properties.py's table, for both PROPFIND paths.

Before, dav/resources.py (WsgiDAV's generic path) and dav/listing.py (the fast Depth-1 renderer)
each wrote which live properties there are and how their values are found, kept equal only by
tests/dav/test_listing.py. Read from the source (ast): no other module names a live property
(a ``{DAV:}...`` or ownCloud name, or ``liveprops.OC_*``), except those whose job is to name
them: the client names (dav/liveprops.py), WsgiDAV's own elements (wsgidav_compat.py) and the
properties of versions and trash items (dav/history_tree.py).
"""

from __future__ import annotations

import ast

from tests.unit.test_imports import _docstrings, _modules

NAMERS = {
    "davdisk.dav.properties",
    "davdisk.dav.liveprops",
    "davdisk.wsgidav_compat",
    # The versions and trash trees' resources are not nodes: their few properties are named
    # there, once for both trees.
    "davdisk.dav.history_tree",
}
LIVE_NAMESPACES = ("{DAV:}", "{http://owncloud.org/ns}")


def _namings(name: str, tree: ast.AST) -> list[str]:
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith(LIVE_NAMESPACES)
            and node.value not in LIVE_NAMESPACES  # a namespace test, no property
            and id(node) not in docs
        ):
            found.append(f"{where} {node.value}")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("OC_")
            and isinstance(node.value, ast.Name)
            and node.value.id == "liveprops"
        ):
            found.append(f"{where} liveprops.{node.attr}")
    return found


def test_live_properties_are_named_in_the_registry_only() -> None:
    found = []
    for name, path in _modules().items():
        if name not in NAMERS:
            found += _namings(name, ast.parse(path.read_text()))
    assert found == []


def test_the_registry_holds_every_live_property() -> None:
    from davdisk.dav import liveprops, properties

    oc = {liveprops.OC_FILEID, liveprops.OC_PERMISSIONS, liveprops.OC_SIZE, liveprops.OC_CHECKSUMS}
    dav = {
        "{DAV:}" + n
        for n in [
            "resourcetype",
            "creationdate",
            "getcontentlength",
            "getcontenttype",
            "quota-used-bytes",
            "quota-available-bytes",
            "getlastmodified",
            "displayname",
            "getetag",
            "lockdiscovery",
            "supportedlock",
        ]
    }
    assert set(properties.LIVE) == dav | oc
    # allprop lists RFC 4918's (and RFC 4331's) where they apply, never the ownCloud ones.
    assert all(properties.LIVE[n].allprop is not None for n in dav)
    assert all(properties.LIVE[n].allprop is None for n in oc)
    # Unknown names in a live namespace are no dead properties: both paths answer 404.
    assert properties.lookup("{DAV:}nosuch") is not None
    assert properties.lookup(liveprops.OC + "nosuch") is not None
    assert properties.lookup("{urn:x}dead") is None
