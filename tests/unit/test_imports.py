"""The shape of the code: which module may import which, and where the lock-key scheme is written.

Read from the source (ast), so imports under ``typing.TYPE_CHECKING`` count too: a cycle that
exists only for the type checker still ties the modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import davdisk

PACKAGE = Path(davdisk.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The davdisk modules ``path`` imports, anywhere in it (functions, TYPE_CHECKING too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"  # `from davdisk.dav import listing`
                out.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in modules}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected components of two or more."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while component[-1:] != [v]:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def _graph(prefix: str) -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {m for m in _imports(path, modules) if m.startswith(prefix)}
        for name, path in modules.items()
        if name.startswith(prefix)
    }


def test_no_module_of_davdisk_is_in_an_import_cycle() -> None:
    """Before: files/api.py and files/upload.py imported each other, and so did dav/provider.py,
    dav/resources.py and dav/listing.py."""
    assert _cycles(_graph("davdisk.")) == []


def test_dav_modules_form_no_import_cycle() -> None:
    graph = _graph("davdisk.dav.")
    assert _cycles(graph) == []
    # The provider is on top: resources and the listing (and what they are made of) are what
    # it is built from.
    below = ("resources", "listing", "properties", "uploads", "host")
    for name in (f"davdisk.dav.{m}" for m in below):
        assert "davdisk.dav.provider" not in graph[name], name


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def test_lock_key_scheme_written_once() -> None:
    """Lock keys are ``/u/<user id>/<path>``: built and parsed in davdisk/lockkeys.py only, so
    the server, the lock storage and the cleanups on revocation and user removal agree."""
    writers = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and "/u/" in node.value
                and id(node) not in docs
            ):
                writers.append(f"{name}:{node.lineno}")
    assert writers and all(w.startswith("davdisk.lockkeys:") for w in writers), writers


# Layers, top to bottom; a module may import its own layer and those below it only.
LAYERS = [
    (
        "program",
        ("davdisk.cli", "davdisk.__main__", "davdisk.server", "davdisk.app", "davdisk.commands"),
    ),
    ("faces", ("davdisk.dav", "davdisk.http")),
    ("auth", ("davdisk.auth",)),
    ("request", ("davdisk.services", "davdisk.request_context", "davdisk.wsgidav_compat")),
    ("files", ("davdisk.files",)),
    (
        "ground",
        (
            "davdisk.meta",
            "davdisk.blobs",
            "davdisk.crypto",
            "davdisk.config",
            "davdisk.tls",
            "davdisk.errors",
            "davdisk.progress",
            "davdisk.lockkeys",
            "davdisk.model",
            "davdisk",
        ),
    ),
]


def _layer(module: str) -> int:
    """The depth of ``module``'s layer (0 = top); -1 if it is in none."""
    for depth, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or (prefix != "davdisk" and module.startswith(prefix + ".")):
                return depth
    return -1


def test_no_module_imports_a_layer_above_its_own() -> None:
    """program -> faces (dav, web) -> auth -> request -> files -> meta/blobs/crypto: before,
    files/shares.py and files/admin.py took hash_password from auth/ (now crypto/passwords.py),
    auth/ took WsgiDAV's keys from dav/ and dav/ its error notes from web/."""
    upward = []
    for name, imported in _graph("davdisk").items():
        for target in imported:
            if _layer(target) < _layer(name):
                upward.append(f"{name} -> {target}")
    assert all(_layer(m) >= 0 for m in _graph("davdisk")), "a module in no layer"
    assert upward == []


# Where blobs may be seen: the content owner (files/content.py) and the modules of files/ that
# go through it, the metadata and blob stores themselves, and services.py, which wires them.
_BLOB_KEEPERS = ("davdisk.files", "davdisk.meta", "davdisk.blobs")


def test_nothing_outside_files_touches_blobs() -> None:
    """Nothing outside files/ (and meta/, blobs/) imports the blob store or the content owner,
    nor names a blob id: faces see files, not how they are stored."""
    found = []
    modules = _modules()
    for name, path in modules.items():
        if name == "davdisk.services" or any(
            name == p or name.startswith(p + ".") for p in _BLOB_KEEPERS
        ):
            continue
        for target in _imports(path, modules):
            if target.startswith("davdisk.blobs") or target == "davdisk.files.content":
                found.append(f"{name} imports {target}")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("blob_id", "current_blob_id"):
                found.append(f"{name}:{node.lineno} .{node.attr}")
    assert found == []


_FILES_INTERNALS = {"db", "blobs", "keyring", "content", "props"}


def test_no_module_reaches_into_files() -> None:
    """``Files`` is a facade: what a module needs (the database, the content owner, the
    keyring) it is given, not taken out of a ``Files`` (``files.db``, ``files.keyring``...),
    and nothing calls its private methods. Before: rotation, admin, fsck, shares and the
    authenticator did."""
    found = []
    for name, path in _modules().items():
        if name == "davdisk.files.api":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            owner = node.value
            owner_name = (
                owner.id
                if isinstance(owner, ast.Name)
                else owner.attr
                if isinstance(owner, ast.Attribute)
                else ""
            )
            if owner_name == "files" and (
                node.attr in _FILES_INTERNALS or node.attr.startswith("_")
            ):
                found.append(f"{name}:{node.lineno} files.{node.attr}")
    assert found == []


def _dialect_tests(tree: ast.AST) -> list[int]:
    """Lines that ask which database backend this is: ``is_sqlite``, ``<x>.dialect.name``, or
    a backend's name ("sqlite", "postgresql", as a word or a URL scheme) in a comparison or a
    ``startswith``."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr == "is_sqlite") or (
            isinstance(node, ast.Attribute)
            and node.attr == "name"
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "dialect"
        ):
            found.append(node.lineno)
        elif isinstance(node, ast.Compare | ast.Call):
            for sub in ast.walk(node):
                if (
                    isinstance(sub, ast.Constant)
                    and isinstance(sub.value, str)
                    and sub.value.lower().startswith(("sqlite", "postgres"))
                ):
                    found.append(node.lineno)
    return found


def test_no_dialect_branch_outside_meta_dialects() -> None:
    """Every difference between SQLite and PostgreSQL is in davdisk/meta/dialects/. Migrations
    are exempt: each is a fixed script, run as written against whichever database it meets.
    Before: db.py, dav/locks.py, files/keyring.py, files/checksum_upgrade.py, meta/store.py
    and cli.py each asked ``is_sqlite`` or the dialect's name; meta/transfer.py and
    commands/db.py (``db migrate``) checked URL schemes and read sqlite_sequence themselves
    (now the dialects' move methods: kind_of, id_high_water, bulk_insert, restart_ids...)."""
    branches = []
    for name, path in _modules().items():
        if name.startswith(("davdisk.meta.dialects", "davdisk.meta.migrations")):
            continue
        branches += [f"{name}:{line}" for line in _dialect_tests(ast.parse(path.read_text()))]
    assert branches == []
    # The check itself sees a branch where there is one.
    assert _dialect_tests(ast.parse("if db.is_sqlite: pass"))
    assert _dialect_tests(ast.parse("x = conn.dialect.name"))
    assert _dialect_tests(ast.parse("url.startswith('sqlite:///')"))


# SQL statement builders; a module that imports none of them builds no SQL.
_SQL_BUILDERS = {"select", "insert", "update", "delete", "text", "func", "bindparam", "or_"}


def test_no_sql_built_outside_meta() -> None:
    """Every SQL statement is built in meta/: lock rows in meta/store/locks.py, user keys in
    meta/store/keys.py, fsck's queries in meta/store/checks.py... Before: dav/locks.py built 15
    statements, files/rotation.py 10, files/fsck.py 9, files/keyring.py 5."""
    builders = []
    for name, path in _modules().items():
        if name.startswith("davdisk.meta"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                builders += [f"{name}: {a.name}" for a in node.names if a.name in _SQL_BUILDERS]
    assert builders == []
