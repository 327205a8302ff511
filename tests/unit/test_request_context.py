"""The request context (davdisk/request_context.py): the one environ key davdisk writes."""

from __future__ import annotations

import ast
from pathlib import Path

import davdisk
from davdisk.request_context import KEY, RequestContext, context

PACKAGE = Path(davdisk.__file__).parent


_LOOKUPS = frozenset({"get", "setdefault", "pop"})


def _key_uses(tree: ast.AST) -> list[ast.Constant]:
    """The string constants ``tree`` uses as mapping keys: ``environ[K]``,
    ``environ.get/setdefault/pop(K)``, ``K in environ``, ``{K: ...}``, or named (``X_KEY = K``,
    also in a tuple of them). Not logger names, file names or docstrings."""
    parent: dict[int, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parent[id(child)] = node
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        up = parent.get(id(node))
        if isinstance(up, ast.Tuple | ast.List | ast.Set):
            holder = parent.get(id(up))
            used = isinstance(holder, ast.Assign | ast.AnnAssign)
        elif isinstance(up, ast.Subscript):
            used = up.slice is node
        elif isinstance(up, ast.Call):
            used = (
                isinstance(up.func, ast.Attribute)
                and up.func.attr in _LOOKUPS
                and up.args[:1] == [node]
            )
        elif isinstance(up, ast.Dict):
            used = any(k is node for k in up.keys)
        else:
            used = isinstance(up, ast.Compare | ast.Assign | ast.AnnAssign)
        if used:
            found.append(node)
    return found


def test_no_environ_key_of_davdisk_but_the_context() -> None:
    """Before: 13 loose ``environ["davdisk.*"]`` keys (davdisk.actor, davdisk.auth,
    davdisk.client_ip, davdisk.props, ...) written and read across 8 modules."""
    loose = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE.parent)
        for node in _key_uses(ast.parse(path.read_text())):
            if node.value.startswith("davdisk.") and not (
                node.value == KEY and path.name == "request_context.py"
            ):
                loose.append(f"{where}:{node.lineno} {node.value!r}")
    assert loose == []


def test_context_is_made_once_per_environ_and_shared_by_copies() -> None:
    environ: dict[str, object] = {}
    ctx = context(environ)
    assert isinstance(ctx, RequestContext) and context(environ) is ctx
    assert context(dict(environ)) is ctx  # a copy is still the same request
    assert [k for k in environ if k.startswith("davdisk.")] == [KEY]


def test_forget_drops_what_describes_the_tree_only() -> None:
    memo = context({}).dav
    memo.resources["/a"] = None
    memo.props[1] = {}
    memo.children[1] = []
    memo.refs["/u/1/a"] = "/a"
    memo.owner_names[1] = ["a"]
    props = memo.props
    memo.forget()
    assert memo.resources == memo.children == memo.props == {}
    assert props == {1: {}}  # a listing holding the old mapping keeps it
    assert memo.refs == {"/u/1/a": "/a"} and memo.owner_names == {1: ["a"]}
