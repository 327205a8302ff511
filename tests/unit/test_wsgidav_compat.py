"""What davdisk relies on of WsgiDAV beyond its public API is in davdisk/wsgidav_compat.py.

Read from the source (ast): outside that module, no module imports a private name of WsgiDAV
(``_DAVResource``...), calls a private method of a WsgiDAV base class through ``super()``, or
reads or writes one of WsgiDAV's ``environ["wsgidav.*"]`` keys. A WsgiDAV upgrade is then
checked against one module (and tests/dav/test_listing.py, which compares the fast listing with
WsgiDAV's own answers).
"""

from __future__ import annotations

import ast

from tests.unit.test_imports import PACKAGE, _docstrings, _modules

COMPAT = "davdisk.wsgidav_compat"


def _reliances(name: str, tree: ast.AST) -> list[str]:
    found = []
    docs = _docstrings(tree)
    loggers = {
        id(arg)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "getLogger"
        for arg in node.args
    }
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("wsgidav"):
            found += [f"{where} imports {a.name}" for a in node.names if a.name.startswith("_")]
        elif (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "super"
        ):
            found.append(f"{where} super().{node.attr}")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("wsgidav.")
            and id(node) not in docs
            and id(node) not in loggers
        ):
            found.append(f"{where} {node.value!r}")
    return found


def test_reliance_on_wsgidav_internals_is_in_the_compat_module() -> None:
    """Before: dav/resources.py, dav/listing.py, dav/provider.py, dav/public.py and auth/ each
    imported ``_DAVResource`` or used WsgiDAV's environ keys themselves, and dav/locks.py
    overrode two private methods of WsgiDAV's LockManager (now LockManagerBase's hooks)."""
    found = []
    for name, path in _modules().items():
        if name != COMPAT:
            found += _reliances(name, ast.parse(path.read_text()))
    assert found == []
    compat = ast.parse((PACKAGE / "wsgidav_compat.py").read_text())
    assert _reliances(COMPAT, compat), "the check finds nothing, even where it must"
