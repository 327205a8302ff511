"""Backends for the contract tests: every backend of a contract passes the same tests.

A contract is a base class of tests that asks for its backend through one fixture; each backend
is a small subclass that provides that fixture (WsgiDAV's lock-storage tests are laid out so).

The metadata database comes as a migrated :class:`~davdisk.meta.db.Database`, a fresh one per
test, on SQLite (a file in the test's tmp dir) and on PostgreSQL. PostgreSQL is the server
``DAVDISK_TEST_DATABASE_URL`` names when set (``python -m tests.pg -- pytest ...``), else a
cluster this session starts (``tests/pg.py``) and stops at its end; under pytest-xdist each
worker is a session and starts its own.

Migrating costs ~0.5 s a database and a ``CREATE DATABASE`` ~0.2-0.7 s (more on a busy
machine: a minute for this tier's PostgreSQL half alone), so each backend migrates once per
session. On SQLite every test gets a copy of that file. On PostgreSQL the session (the xdist
worker) has one migrated database of its own, emptied before each test: every row deleted
and every id sequence restarted, which leaves it as a fresh one would be (a few ms).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from davdisk.meta.db import Database
from davdisk.meta.models import Base
from tests.pg import URL_ENV, fresh_database, postgres_server


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A URL of the PostgreSQL server the contract tests use (any database of it)."""
    given = os.environ.get(URL_ENV)
    if given:
        yield given
        return
    with postgres_server() as server:
        yield server.url()


@pytest.fixture(scope="session")
def pg_session_url(pg_server_url: str) -> str:
    """This session's database on the server, migrated to the newest schema."""
    url = fresh_database(pg_server_url)
    db = Database(url)
    db.migrate()
    db.dispose()
    return url


def _empty_postgresql(url: str) -> None:
    """Remove every row but the schema revision, and restart the id sequences (so a test sees
    the ids a new database gives). DELETE, children before parents: on tables this small it
    is several times faster than TRUNCATE, which gives every table and index a new file."""
    import psycopg

    driver_url = make_url(url).set(drivername="postgresql")
    order = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with psycopg.connect(driver_url.render_as_string(hide_password=False)) as conn:
        present = {
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables"
                " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        }
        # Names come from the catalog and the models, not from input: safe to quote in.
        for table in [t for t in order if t in present] + sorted(present - set(order)):
            conn.execute(f'DELETE FROM "{table}"')
        for (sequence,) in conn.execute(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
        ).fetchall():
            conn.execute(f'ALTER SEQUENCE "{sequence}" RESTART')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "meta.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    db.dispose()  # the last connection to close checkpoints the WAL into the file
    assert not Path(f"{path}-wal").exists()
    return path


@pytest.fixture
def sqlite_db(sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "meta.db"
    shutil.copyfile(sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    yield db
    db.dispose()


@pytest.fixture
def postgresql_db(pg_session_url: str) -> Iterator[Database]:
    _empty_postgresql(pg_session_url)
    db = Database(pg_session_url)
    yield db
    db.dispose()  # closes every connection the test left open: the next test empties it
