"""``davdisk db migrate --to postgresql+psycopg://...``: a populated SQLite install moves to
PostgreSQL, and the moved install serves the same files, shares, links, locks and properties.

The source is always SQLite (its own config, with no database_url, replaces the harness's, which
in a PostgreSQL run would point the data dir at a PostgreSQL database); the target is a fresh
database on the run's PostgreSQL server (``DAVDISK_TEST_DATABASE_URL``) or on one this module
starts. 10 000 of the files are seeded straight into the stopped install (``bench/seed.py``:
empty files, as a PUT of nothing makes them); the rest, with content, go through the server.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.live.conftest import (
    ALICE,
    BOB,
    CLI_TIMEOUT,
    HARNESS_CONFIG,
    REPO_ROOT,
    USERS,
    D,
    Server,
    ServerFactory,
    cli,
    describe,
    get_bytes,
    keep_on_sqlite,
    lock,
    members,
    propfind,
    put,
)
from tests.pg import URL_ENV, fresh_database, postgres_server

SEEDED = {f"bulk{i}": 2500 for i in range(4)}  # 10 000 files in four folders
PROP_NS = "urn:davdisk-migrate-test"
PROPPATCH = (
    '<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" '
    f'xmlns:t="{PROP_NS}"><D:set><D:prop><t:colour>teal &amp; gold</t:colour>'
    "</D:prop></D:set></D:propertyupdate>"
)


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server to make target databases on: the run's, or one of our own."""
    given = os.environ.get(URL_ENV)
    if given:
        yield given
        return
    with postgres_server() as server:
        yield server.url()


def _config(path: Path, database_url: str | None = None) -> Path:
    storage = f'\n[storage]\ndatabase_url = "{database_url}"\n' if database_url else ""
    path.write_text(HARNESS_CONFIG + storage)
    return path


def _ok(data_dir: Path, config: Path, *args: str, input: str = "") -> str:
    proc = cli(data_dir, "--config", str(config), *args, input=input)
    assert proc.returncode == 0, describe(proc)
    return proc.stdout


def _migrate_argv(data_dir: Path, config: Path, target: str) -> list[str]:
    return [
        *(sys.executable, "-m", "davdisk", "--config", str(config), "--data-dir", str(data_dir)),
        *("db", "migrate", "--to", target),
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}


def _source_dump(db_file: Path) -> str:
    """Every row of the SQLite source, as SQL text: what must not change."""
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def _listing(s: requests.Session, url: str) -> dict[str, tuple[str | None, str | None]]:
    return {
        name: (e.text(D + "getetag"), e.text(D + "getcontentlength"))
        for name, e in members(s, url).items()
    }


def _snapshot(srv: Server) -> dict[str, object]:
    alice = srv.session(ALICE)
    folders = ["", "docs/", "newer/", "newer/old/", *(f"{f}/" for f in SEEDED)]
    return {f: _listing(alice, srv.dav + f) for f in folders} | {
        "bob-root": sorted(members(srv.session(BOB), srv.dav))
    }


def _check_moved_install(
    srv: Server, content: dict[str, bytes], link_path: str, lock_url: str, app_token: str
) -> None:
    alice = srv.session(ALICE)
    for path, data in content.items():  # every file with content reads back identical
        assert get_bytes(alice, srv.dav + path) == data, path
    for folder, count in SEEDED.items():  # seeded folders: counts, and a sample reads back
        names = members(alice, srv.dav + folder + "/")
        assert len(names) == count, (folder, len(names))
        for i in range(0, count, 500):
            assert get_bytes(alice, f"{srv.dav}{folder}/f{i:06d}.txt") == b""
    # the share: bob sees alice's folder and reads it through his own home
    bob = srv.session(BOB)
    assert "docs" in members(bob, srv.dav), sorted(members(bob, srv.dav))
    assert get_bytes(bob, srv.dav + "docs/d00.bin") == content["docs/d00.bin"]
    # the public link
    r = requests.get(srv.url + link_path, timeout=30)
    assert r.status_code == 200 and r.content == content["docs/d01.bin"], r.status_code
    # the lock still blocks a write without its token
    r = alice.put(lock_url, data=b"not without the token")
    assert r.status_code == 423, r.status_code
    # the dead property
    entry = propfind(alice, srv.dav + "docs/d02.bin", "0")["/dav/docs/d02.bin"]
    assert entry.text("{" + PROP_NS + "}colour") == "teal & gold", entry.props
    # the app password
    r = requests.request(
        "PROPFIND", srv.dav, auth=(ALICE, app_token), headers={"Depth": "0"}, timeout=30
    )
    assert r.status_code == 207, r.status_code


def test_migrate_populated_install_to_postgresql(
    server_factory: ServerFactory, pg_server: str, tmp_path: Path
) -> None:
    data_dir = keep_on_sqlite(tmp_path / "data")  # the install to move is on SQLite
    source_cfg = _config(tmp_path / "sqlite.toml")
    for name in (ALICE, BOB):
        _ok(data_dir, source_cfg, "user", "add", name, "--password-stdin", input=USERS[name] + "\n")
    seed = subprocess.run(
        [
            *(sys.executable, "-m", "bench.seed", str(data_dir), ALICE),
            *(f"{folder}:{count}" for folder, count in SEEDED.items()),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO_ROOT,
        timeout=CLI_TIMEOUT,
    )
    assert seed.returncode == 0, seed.stderr

    srv = server_factory(data_dir, config=source_cfg)
    alice = srv.session(ALICE)
    content: dict[str, bytes] = {}
    # An early folder moved under a later one: a child whose id is below its parent's.
    assert alice.request("MKCOL", srv.dav + "old/").status_code == 201
    put(alice, srv.dav + "old/inner.txt", b"moved with its folder")
    for folder in ("docs/", "newer/"):
        assert alice.request("MKCOL", srv.dav + folder).status_code == 201
    r = alice.request("MOVE", srv.dav + "old/", headers={"Destination": srv.dav + "newer/old/"})
    assert r.status_code == 201, r.status_code
    content["newer/old/inner.txt"] = b"moved with its folder"
    for i in range(30):
        data = hashlib.sha256(str(i).encode()).digest() * (1 + i * 997)  # up to ~0.9 MB
        put(alice, f"{srv.dav}docs/d{i:02d}.bin", data)
        content[f"docs/d{i:02d}.bin"] = data
    # The node with the highest id goes: the target must not hand that id out again.
    put(alice, srv.dav + "docs/last.txt", b"gone")
    assert alice.delete(srv.dav + "docs/last.txt").status_code == 204
    r = alice.request("PROPPATCH", srv.dav + "docs/d02.bin", data=PROPPATCH.encode())
    assert r.status_code == 207 and "200" in r.text, r.text
    _, token = lock(alice, srv.dav + "docs/d03.bin", timeout="Second-86400")
    assert token
    _ok(data_dir, source_cfg, "share", "add", ALICE, "/docs", "--with", BOB)
    link = _ok(data_dir, source_cfg, "share", "link", ALICE, "/docs/d01.bin", "--base-url", srv.url)
    link_path = link.strip().removeprefix(srv.url)
    app_token = _ok(data_dir, source_cfg, "user", "token", "add", ALICE, "laptop").strip()
    before = _snapshot(srv)
    srv.stop()

    db_file = data_dir / "davdisk.db"
    dump = _source_dump(db_file)
    with closing(sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)) as conn:
        nodes_given = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='nodes'").fetchone()
    target = fresh_database(pg_server)

    # Killed midway (after the users table, before the nodes): a run that resumes.
    proc = subprocess.Popen(
        _migrate_argv(data_dir, source_cfg, target),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=REPO_ROOT,
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.strip().startswith("users:"):
                proc.send_signal(signal.SIGKILL)
                break
        else:
            pytest.fail(f"no progress line for users: {proc.stderr.read()}")  # type: ignore[union-attr]
    finally:
        proc.wait(CLI_TIMEOUT)
        proc.stdout.close()
        proc.stderr.close()  # type: ignore[union-attr]
    engine = create_engine(target)
    try:
        with engine.connect() as conn:
            users = conn.scalar(text("SELECT count(*) FROM users"))
            nodes = conn.scalar(text("SELECT count(*) FROM nodes"))
        assert (users, nodes) == (2, 0), (users, nodes)  # a table is all or nothing

        started = time.perf_counter()
        again = cli(data_dir, "--config", str(source_cfg), "db", "migrate", "--to", target)
        seconds = time.perf_counter() - started
        assert again.returncode == 0, describe(again)
        assert re.search(r"users: 2 rows already copied", again.stdout), again.stdout
        assert re.search(r"nodes: 100\d\d rows copied", again.stdout), again.stdout
        assert "counts and contents equal" in again.stdout, again.stdout
        print(f"\nresumed migration of {sum(SEEDED.values())} seeded files: {seconds:.1f} s")
        assert _source_dump(db_file) == dump  # the source was only read
        m = re.search(r'^\s*database_url = "(.+)"$', again.stdout, re.M)
        assert m and m.group(1) == target, again.stdout

        # The moved install: the same server on PostgreSQL, its blobs and key where they were.
        pg_cfg = _config(tmp_path / "pg.toml", target)
        moved = server_factory(data_dir, config=pg_cfg)
        assert _snapshot(moved) == before
        _check_moved_install(moved, content, link_path, moved.dav + "docs/d03.bin", app_token)
        assert moved.session(ALICE).request("MKCOL", moved.dav + "after/").status_code == 201
        with engine.connect() as conn:
            newest = conn.scalar(text("SELECT max(id) FROM nodes"))
        assert nodes_given is not None and newest > nodes_given[0], (newest, nodes_given)
        moved.stop()
        fsck = cli(data_dir, "--config", str(pg_cfg), "fsck")
        assert fsck.returncode == 0, describe(fsck)

        # The target now differs from the source: a further run refuses it, touching nothing.
        refused = cli(data_dir, "--config", str(source_cfg), "db", "migrate", "--to", target)
        assert refused.returncode != 0, describe(refused)
        assert re.fullmatch(r"davdisk: error: table \w+ of the target .*\n", refused.stderr)
    finally:
        engine.dispose()


def test_migrate_refuses_bad_targets(pg_server: str, tmp_path: Path) -> None:
    data_dir = keep_on_sqlite(tmp_path / "data")  # the install to move is on SQLite
    cfg = _config(tmp_path / "sqlite.toml")
    _ok(data_dir, cfg, "user", "add", ALICE, "--password-stdin", input=USERS[ALICE] + "\n")
    foreign = fresh_database(pg_server)
    engine = create_engine(foreign)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE invoices (id integer)"))
    engine.dispose()
    down = re.sub(r"@([^:/]+):\d+/", r"@\1:1/", fresh_database(pg_server))
    cases = {
        "not a url": "is not a database URL",
        "sqlite:////tmp/x.db": "must be a PostgreSQL URL",
        down: "cannot use the target database",
        foreign: "tables that are not davdisk's",
    }
    for url, why in cases.items():
        proc = cli(data_dir, "--config", str(cfg), "db", "migrate", "--to", url)
        assert proc.returncode != 0, describe(proc)
        assert proc.stderr.count("\n") == 1 and why in proc.stderr, describe(proc)
    # a refused target got nothing
    engine = create_engine(foreign)
    with engine.connect() as conn:
        tables = conn.scalar(text("SELECT count(*) FROM pg_tables WHERE schemaname='public'"))
    engine.dispose()
    assert tables == 1


def test_migrate_refuses_a_source_a_server_has_open(
    server_factory: ServerFactory, pg_server: str, tmp_path: Path
) -> None:
    """Writes made after the copy would be lost on the switch: the server must be stopped."""
    data_dir = keep_on_sqlite(tmp_path / "data")  # the install to move is on SQLite
    cfg = _config(tmp_path / "sqlite.toml")
    _ok(data_dir, cfg, "user", "add", ALICE, "--password-stdin", input=USERS[ALICE] + "\n")
    srv = server_factory(data_dir, config=cfg)
    put(srv.session(ALICE), srv.dav + "a.txt", b"written while serving")
    target = fresh_database(pg_server)
    proc = cli(data_dir, "--config", str(cfg), "db", "migrate", "--to", target)
    assert proc.returncode != 0, describe(proc)
    assert re.fullmatch(
        rf"davdisk: error: .* is open in another process \(pid {srv.pid}, .*\n", proc.stderr
    ), describe(proc)
    engine = create_engine(target)
    with engine.connect() as conn:
        tables = conn.scalar(text("SELECT count(*) FROM pg_tables WHERE schemaname='public'"))
    engine.dispose()
    assert tables == 0  # refused before the target was touched
    srv.stop()
    done = cli(data_dir, "--config", str(cfg), "db", "migrate", "--to", target)
    assert done.returncode == 0, describe(done)


def test_migrate_refuses_a_row_the_target_cannot_hold(
    server_factory: ServerFactory, pg_server: str, tmp_path: Path
) -> None:
    """A name with a NUL (what an interrupted folder COPY leaves) cannot go into PostgreSQL's
    text: the table's copy is refused in one line, with the way out, and leaves it empty."""
    data_dir = keep_on_sqlite(tmp_path / "data")  # the install to move is on SQLite
    cfg = _config(tmp_path / "sqlite.toml")
    _ok(data_dir, cfg, "user", "add", ALICE, "--password-stdin", input=USERS[ALICE] + "\n")
    srv = server_factory(data_dir, config=cfg)
    put(srv.session(ALICE), srv.dav + "a.txt", b"a")
    srv.stop()
    with closing(sqlite3.connect(data_dir / "davdisk.db")) as conn, conn:
        conn.execute("UPDATE nodes SET name = 'a' || char(0) || 'b' WHERE name = 'a.txt'")
    target = fresh_database(pg_server)
    proc = cli(data_dir, "--config", str(cfg), "db", "migrate", "--to", target)
    assert proc.returncode != 0, describe(proc)
    assert re.fullmatch(
        r"davdisk: error: cannot copy table nodes: .*NUL.* \(run davdisk gc .*\)\n", proc.stderr
    ), describe(proc)
    engine = create_engine(target)
    with engine.connect() as conn:
        nodes = conn.scalar(text("SELECT count(*) FROM nodes"))
    engine.dispose()
    assert nodes == 0  # all or nothing
