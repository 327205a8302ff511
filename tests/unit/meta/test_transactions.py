"""What Database.read() and write() promise, on every backend: a write transaction runs alone
(so a read-check-then-write in one is never raced), a read transaction is one snapshot, and a
unique index refusing a row that a concurrent change made is a 409, not an internal error.

Two Database objects on one database stand for two server processes."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from davdisk.errors import ConcurrentChange, Conflict
from davdisk.meta.db import HEAD_REVISION, Database
from tests.pg import database_url_for_test

_ADD_USER = text(
    "INSERT INTO users (name, password_hash, created_at, disabled, quota_bytes, used_bytes)"
    " VALUES (:n, 'x', 0, false, 0, 0)"
)


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    url = database_url_for_test(tmp_path / "t.db")
    first, second = Database(url), Database(url)
    first.migrate()
    yield first, second
    first.dispose()
    second.dispose()


def test_read_check_then_write_transactions_never_lose_an_update(
    two: tuple[Database, Database],
) -> None:
    """Two processes each add 1 to a counter 25 times, reading it and writing it back in one
    write transaction: all 50 count. Before, on PostgreSQL (READ COMMITTED, no writers' lock),
    both read the same value and one increment was lost (29 of 50 in one run)."""
    first = two[0]
    with first.write() as conn:
        conn.execute(_ADD_USER, {"n": "counter"})
    read = text("SELECT used_bytes FROM users WHERE name = 'counter'")
    write = text("UPDATE users SET used_bytes = :v WHERE name = 'counter'")

    def add(db: Database) -> None:
        for _ in range(25):
            with db.read() as conn:  # the same pooled connection serves reads in between
                conn.execute(read)
            with db.write() as conn:
                value = conn.execute(read).scalar_one()
                time.sleep(0.002)  # the window another writer would use
                conn.execute(write, {"v": value + 1})

    threads = [threading.Thread(target=add, args=(db,)) for db in two]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with first.read() as conn:
        assert conn.execute(read).scalar_one() == 50


def test_a_read_transaction_is_one_snapshot(two: tuple[Database, Database]) -> None:
    """A commit made while a read transaction runs is not seen by it. Before, on PostgreSQL
    (READ COMMITTED), the second count in one read() saw the row committed in between."""
    first, second = two
    count = text("SELECT count(*) FROM users")
    with first.read() as conn:
        before = conn.execute(count).scalar_one()
        with second.write() as other:
            other.execute(_ADD_USER, {"n": "meanwhile"})
        assert conn.execute(count).scalar_one() == before
    with first.read() as conn:
        assert conn.execute(count).scalar_one() == before + 1


def test_a_row_a_unique_index_refuses_is_a_conflict(two: tuple[Database, Database]) -> None:
    """What a concurrent change inserted first (same user name, same file name in a folder)
    makes the second insert fail its unique index: that is a 409 Conflict for the request, not
    the driver's IntegrityError (a 500). Before: sqlalchemy.exc.IntegrityError."""
    first, second = two
    with first.write() as conn:
        conn.execute(_ADD_USER, {"n": "twice"})
    with pytest.raises(ConcurrentChange) as caught, second.write() as conn:
        conn.execute(_ADD_USER, {"n": "twice"})
    assert isinstance(caught.value, Conflict) and caught.value.http_status == 409
    with second.write() as conn:  # the refused transaction was rolled back; the next one works
        conn.execute(_ADD_USER, {"n": "once"})


def test_processes_migrating_an_empty_database_at_once_all_succeed(tmp_path: Path) -> None:
    """Servers started together on a new database all create the schema: one does, the others
    wait for it and find nothing left to do. Before, on SQLite too, alembic committed after each
    migration and the processes raced through them: one failed ("table app_tokens already
    exists", "duplicate column name: checksums"; on PostgreSQL a relation that already existed).
    Processes, not threads: alembic keeps its migration context in a module global."""
    code = "import sys; from davdisk.meta.db import Database; Database(sys.argv[1]).migrate()"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    for round_ in range(3):  # a race: a few rounds, each on a new database
        url = database_url_for_test(tmp_path / f"m{round_}.db")
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, url], env=env, stderr=subprocess.PIPE, text=True
            )
            for _ in range(3)
        ]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], errors
        db = Database(url)
        try:
            assert db.schema_revision() == HEAD_REVISION
        finally:
            db.dispose()


def test_the_connections_a_server_may_open_are_told_at_start(tmp_path: Path) -> None:
    """On PostgreSQL the start log says how many connections this process may open against
    how many the server allows, as a warning when they do not fit (several instances with the
    default 64 threads, 136 each, exceed PostgreSQL's default 100). A SQLite file has no such
    limit: nothing to say."""
    url = database_url_for_test(tmp_path / "c.db")
    small, big = Database(url, pool_size=10), Database(url, pool_size=1000)
    try:
        if small.dialect.name == "sqlite":
            assert small.startup_notes() == big.startup_notes() == []
            return
        ((level, note),) = small.startup_notes()
        assert level == logging.INFO and "up to 20 connections" in note, note
        ((level, note),) = big.startup_notes()
        assert level == logging.WARNING and "up to 2000 connections" in note, note
        assert "raise max_connections" in note
    finally:
        small.dispose()
        big.dispose()


def test_a_write_waits_for_the_writers_lock_only_so_long(tmp_path: Path) -> None:
    """A write transaction that cannot get the writers' lock (another process holds it, stuck)
    fails after the dialect's wait (SQLite's busy_timeout, PostgreSQL's lock_timeout) instead
    of hanging its request for ever. Before, PostgreSQL had no writers' lock: DID NOT RAISE."""
    url = database_url_for_test(tmp_path / "w.db")
    first = Database(url)
    first.migrate()
    second = Database(url)
    second.dialect.lock_wait_seconds = 0.5  # before its first connection
    try:
        with first.write() as conn:
            conn.execute(text("SELECT 1"))
            started = time.monotonic()
            # (SQLite's BEGIN goes to the driver: its error comes unwrapped)
            refused = (OperationalError, sqlite3.OperationalError)
            with pytest.raises(refused, match=r"locked|lock timeout"), second.write():
                pass
            assert time.monotonic() - started < 5
    finally:
        first.dispose()
        second.dispose()
