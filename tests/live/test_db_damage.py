"""A damaged ``davdisk.db``: ``fsck`` reports it (exit 8, naming the database file) without
crashing, ``serve`` refuses to start with one line that says what to do, and damage SQLite's
quick check cannot see (an index entry pointing at another row) never makes a GET answer with
another file's content.

The data dir is written by a real server and stopped (so the WAL is checkpointed into the file),
then copied per case and damaged with deterministic bytes in pages that hold the data: the root
page of a table or index (with this little data, its only page). Each case checks with Python's
own sqlite3 that the damage is real before it looks at davdisk.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.live.conftest import (
    ALICE,
    BOB,
    REPO_ROOT,
    USERS,
    ServerFactory,
    _env,
    add_user,
    cli,
    copy_data_dir,
    davdisk_argv,
    describe,
    put,
)

EXIT_PROBLEMS = 8
FILES = {
    **{f"file-{i}.txt": f"content of top-level file {i}\n".encode() * (i + 1) for i in range(6)},
    **{f"docs/file-{i}.txt": f"content of docs file {i}\n".encode() * (i + 2) for i in range(3)},
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stopped data dir with alice's files (distinct contents), WAL checkpointed."""
    factory = ServerFactory(tmp_path_factory.mktemp("dbdamage"))
    srv = factory(users={ALICE: USERS[ALICE]}, sqlite=True)  # damage to the SQLite file
    alice = srv.session(ALICE)
    assert alice.request("MKCOL", srv.dav + "docs/").status_code == 201
    for name, data in FILES.items():
        put(alice, srv.dav + name, data)
    factory.finish()
    wal = srv.data_dir / "davdisk.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0, "the WAL was not checkpointed"
    return srv.data_dir


def copy_of(pristine: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    copy_data_dir(pristine, data)
    return data


def sqlite_check(db: Path, pragma: str) -> list[str]:
    """Python's sqlite3 on the file: the PRAGMA's messages (["ok"] when clean)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute(f"PRAGMA {pragma}")]
    except sqlite3.DatabaseError as e:
        return [f"error: {e}"]
    finally:
        conn.close()


def root_page(db: Path, name: str) -> tuple[int, int]:
    """(page number, page size) of the root page of table or index ``name``."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        (page,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)
        ).fetchone()
        (size,) = conn.execute("PRAGMA page_size").fetchone()
    return page, size


def overwrite_page(db: Path, page: int, size: int, seed: int) -> None:
    with open(db, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(random.Random(seed).randbytes(size))


def assert_fsck_names_the_database(data: Path) -> None:
    proc = cli(data, "fsck")
    assert proc.returncode == EXIT_PROBLEMS, describe(proc)
    assert "Traceback" not in proc.stdout + proc.stderr, describe(proc)
    db = str(data / "davdisk.db")
    found = [line for line in proc.stdout.splitlines() if line.startswith("error:") and db in line]
    assert found, f"no error line names {db}\n{describe(proc)}"


def assert_serve_refuses(data: Path) -> None:
    try:
        proc = subprocess.run(
            davdisk_argv(data, "serve", "--host", "127.0.0.1", "--port", "0"),
            capture_output=True,
            text=True,
            env=_env(),
            cwd=REPO_ROOT,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"serve started on a damaged database\n{e.stdout!r}\n{e.stderr!r}")
    assert proc.returncode != 0, describe(proc)
    assert "Traceback" not in proc.stdout + proc.stderr, describe(proc)
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, f"expected one error line\n{describe(proc)}"
    assert str(data / "davdisk.db") in errors[0], describe(proc)
    assert "backup" in errors[0] and "fsck" in errors[0], describe(proc)


@pytest.mark.parametrize(
    ("target", "seed"),
    [("nodes", 1), ("blobs", 2), ("ux_nodes_parent_name", 3), ("user_keys", 4)],
)
def test_garbage_page(pristine: Path, tmp_path: Path, target: str, seed: int) -> None:
    data = copy_of(pristine, tmp_path)
    db = data / "davdisk.db"
    page, size = root_page(db, target)
    assert 1 < page < db.stat().st_size // size, "not a page in the middle"
    overwrite_page(db, page, size, seed)
    assert sqlite_check(db, "integrity_check") != ["ok"], "the damage is not real"
    assert_fsck_names_the_database(data)
    assert_serve_refuses(data)
    # Other commands may not touch the damaged page; if they do, one line and no traceback.
    proc = cli(data, "user", "list")
    assert "Traceback" not in proc.stderr, describe(proc)
    assert proc.returncode == 0 or len(proc.stderr.strip().splitlines()) == 1, describe(proc)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """SQLite's big-endian base-128 varint at ``pos``: (value, position after it)."""
    value = 0
    for i in range(9):
        byte = buf[pos + i]
        if i == 8:
            return (value << 8) | byte, pos + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos + i + 1
    raise AssertionError("unreachable")


_INT_SIZES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8, 8: 0, 9: 0}


def swap_index_rowids(db: Path, index: str, name_a: str, name_b: str, key_column: int = 1) -> None:
    """In the leaf page of ``index`` (by default (parent_id, name) -> rowid; ``key_column`` is
    the text column that names an entry, the rowid follows it), make the entries of two keys
    point at each other's rows: a well-formed page that quick_check does not question."""
    page, size = root_page(db, index)
    raw = bytearray(db.read_bytes())
    base = (page - 1) * size
    assert raw[base] == 0x0A, "the index is not a single leaf page"
    cells = int.from_bytes(raw[base + 3 : base + 5], "big")
    rowid_at: dict[str, tuple[int, int]] = {}  # name -> (offset, length) of its rowid
    for i in range(cells):
        pos = base + int.from_bytes(raw[base + 8 + 2 * i : base + 10 + 2 * i], "big")
        _payload, pos = _varint(raw, pos)
        header_size, p = _varint(raw, pos)
        types = []
        while p < pos + header_size:
            t, p = _varint(raw, p)
            types.append(t)
        body = pos + header_size
        sizes = [_INT_SIZES[t] if t in _INT_SIZES else (t - 13) // 2 for t in types]
        offsets = [body + sum(sizes[:k]) for k in range(len(sizes))]
        k = key_column
        name = bytes(raw[offsets[k] : offsets[k] + sizes[k]]).decode()
        if name in (name_a, name_b) and name not in rowid_at:  # the first (top-level) entry
            assert types[k + 1] in (1, 2), types
            rowid_at[name] = (offsets[k + 1], sizes[k + 1])
    (oa, la), (ob, lb) = rowid_at[name_a], rowid_at[name_b]
    assert la == lb
    raw[oa : oa + la], raw[ob : ob + lb] = raw[ob : ob + lb], raw[oa : oa + la]
    db.write_bytes(bytes(raw))


def test_index_pointing_at_another_row(
    pristine: Path, tmp_path: Path, server_factory: ServerFactory
) -> None:
    data = copy_of(pristine, tmp_path)
    db = data / "davdisk.db"
    swap_index_rowids(db, "ux_nodes_parent_name", "file-1.txt", "file-2.txt")
    assert sqlite_check(db, "quick_check") == ["ok"], "meant to be damage quick_check misses"
    assert sqlite_check(db, "integrity_check") != ["ok"], "the damage is not real"
    assert_fsck_names_the_database(data)

    srv = server_factory(data_dir=data)  # quick_check passes: it starts
    alice = srv.session(ALICE)
    for name, data_bytes in FILES.items():
        r = alice.get(srv.dav + name)
        if r.status_code == 200:
            assert r.content == data_bytes, f"GET {name} answered another file's content"
        else:
            assert r.status_code >= 500, (name, r.status_code)
    # Only the two damaged entries fail; everything else still reads.
    ok = {name for name in FILES if alice.get(srv.dav + name).status_code == 200}
    assert ok == set(FILES) - {"file-1.txt", "file-2.txt"}


def test_app_password_index_pointing_at_another_users_token(
    pristine: Path, tmp_path: Path, server_factory: ServerFactory
) -> None:
    """An app password whose index entry points at another user's token row must not log in
    as that user (the lookup compares the row it read with the hash it asked for)."""
    data = copy_of(pristine, tmp_path)
    add_user(data, BOB, USERS[BOB])
    # A first token takes rowid 1, which SQLite stores in no bytes at all: the two swapped
    # below (rowids 2 and 3) take one byte each.
    assert cli(data, "user", "token", "add", ALICE, "first").returncode == 0
    tokens = {}
    for user in (ALICE, BOB):
        proc = cli(data, "user", "token", "add", user, "laptop")
        assert proc.returncode == 0, describe(proc)
        tokens[user] = proc.stdout.split()[-1]
    db = data / "davdisk.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (index,) = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'app_tokens'"
        " AND sql IS NULL"  # the unique constraint's own index
    ).fetchone()
    hashes = {
        u: h
        for u, h in conn.execute(
            "SELECT users.name, token_hash FROM app_tokens JOIN users ON users.id = user_id"
        )
    }
    conn.close()
    swap_index_rowids(db, index, hashes[ALICE], hashes[BOB], key_column=0)
    assert sqlite_check(db, "integrity_check") != ["ok"], "the damage is not real"
    srv = server_factory(data_dir=data)
    # Alice's app password, offered as bob's: never bob's files.
    r = srv.session(BOB, tokens[ALICE]).request("PROPFIND", srv.dav, headers={"Depth": "0"})
    assert r.status_code not in (200, 207), r.status_code
