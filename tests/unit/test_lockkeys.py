"""Lock keys: what is built from names reads back as the same names and path."""

from __future__ import annotations

import ast
import re

import pytest

from davdisk import lockkeys
from tests.unit.test_imports import _modules

NAMES = [[], ["a"], ["Documents", "Q3 report (final).odt"], ["%41", "ü", "a#b?c", "x y"]]


@pytest.mark.parametrize("names", NAMES)
def test_keys_read_back(names: list[str]) -> None:
    key = lockkeys.of_names(7, names)
    assert key == lockkeys.of_path(7, "/" + "/".join(names))
    assert key == lockkeys.home(7) or key.startswith(lockkeys.home(7) + "/")
    assert lockkeys.parse(key) == (7, names)
    assert lockkeys.path_of(key) == "/" + "/".join(names)


@pytest.mark.parametrize("ref", ["", "/", "/link/3/", "/u/", "/u/x/a", "/v/1/a"])
def test_what_is_not_a_key(ref: str) -> None:
    assert lockkeys.parse(ref) is None
    assert lockkeys.path_of(ref) == "/"


def test_home_alone_is_the_root() -> None:
    assert lockkeys.parse("/u/12") == (12, [])
    assert lockkeys.path_of("/u/12") == "/"


@pytest.mark.parametrize("names", NAMES[1:])
def test_members_and_parents(names: list[str]) -> None:
    """child/parent/below as the WebDAV face uses them: a member's key from its folder's key,
    whether that ends with '/' (a folder's, :func:`lockkeys.of_folder`) or not."""
    folder = lockkeys.of_names(7, names[:-1])
    key = lockkeys.of_names(7, names)
    assert lockkeys.child(folder, names[-1]) == key
    assert lockkeys.child(lockkeys.of_folder(folder), names[-1]) == key
    assert lockkeys.of_folder(lockkeys.of_folder(folder)) == lockkeys.of_folder(folder)
    assert lockkeys.parent(key) == lockkeys.of_folder(folder)
    assert lockkeys.parent(lockkeys.of_folder(key)) == lockkeys.of_folder(folder)
    assert key.startswith(lockkeys.below(folder)) and lockkeys.below(key) == key + "/"
    assert lockkeys.parse(lockkeys.of_folder(key)) == (7, names)


def test_link_folders_are_no_keys() -> None:
    assert lockkeys.parse(lockkeys.of_link(3)) is None
    assert lockkeys.parse(lockkeys.of_link(3, drop=True)) is None
    assert lockkeys.of_link(3) != lockkeys.of_link(3, drop=True)


def _key_building(name: str, tree: ast.AST) -> list[str]:
    """Places in ``tree`` that build a lock key from strings: an f-string holding a key's
    fixed part, or '+' on a reference URL (``get_ref_url()``, ``_ref_url()`` or a variable
    named ``ref``, ``*_ref``, ``*_ref_prefix``)."""

    def is_ref(node: ast.AST) -> bool:
        while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("get_ref_url", "_ref_url"):
                return True
            node = node.func.value  # e.g. x.get_ref_url().rstrip("/")
        ident = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
        return re.search(r"(^|_)ref(_prefix)?$", ident) is not None

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and any(
            isinstance(v, ast.Constant) and ("/u/" in str(v.value) or "/link/" in str(v.value))
            for v in node.values
        ):
            found.append(f"{name}:{node.lineno} f-string")
        elif (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Add)
            and (is_ref(node.left) or is_ref(node.right))
        ):
            found.append(f"{name}:{node.lineno} +")
    return found


def test_the_webdav_face_builds_no_lock_key_itself() -> None:
    """Before: dav/resources.py, dav/uploads.py (then in resources.py), dav/listing.py,
    dav/memo.py and dav/public.py each joined keys from strings."""
    found = []
    for name, path in _modules().items():
        if name.startswith("davdisk.dav.") and name != "davdisk.dav.locks":
            found += _key_building(name, ast.parse(path.read_text()))
    assert found == []
    planted = "def f(parent, name):\n    return parent.get_ref_url().rstrip('/') + '/' + name\n"
    assert _key_building("planted", ast.parse(planted)), "the check finds nothing, even there"
