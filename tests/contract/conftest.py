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
worker) has one migrated database of its own, put back before each test to the rows and id
sequence positions it had just after the migration: as a fresh one would be (a few ms).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
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


class _PostgresBaseline:
    """The rows and id sequence positions of a database just migrated (most tables empty; a
    migration may seed some), and the way back to them before each test. DELETE and INSERT of
    these few rows take a few ms; TRUNCATE, which gives every table and index a new file, took
    ~0.3 s a test on a busy machine."""

    def __init__(self, url: str) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        models = [t.name for t in Base.metadata.sorted_tables]  # parents before children
        with psycopg.connect(self.dsn) as conn:
            present = {
                row[0]
                for row in conn.execute(
                    "SELECT tablename FROM pg_tables"
                    " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            }
            self.tables = [t for t in models if t in present] + sorted(present - set(models))
            self.rows: dict[str, tuple[list[str], list[Any]]] = {}
            for table in self.tables:
                cur = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
                rows = cur.fetchall()
                if rows:
                    assert cur.description is not None
                    self.rows[table] = ([d.name for d in cur.description], rows)
            self.sequences: list[tuple[str, int, bool]] = []
            for (name,) in conn.execute(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
            ).fetchall():
                query = sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(name))
                found = conn.execute(query).fetchone()
                assert found is not None
                self.sequences.append((name, found[0], found[1]))

    def restore(self) -> None:
        with psycopg.connect(self.dsn) as conn:
            for table in reversed(self.tables):
                conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
            for table, (columns, rows) in self.rows.items():
                insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    sql.Identifier(table),
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                    sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                )
                conn.cursor().executemany(insert, rows)
            for name, value, called in self.sequences:
                regclass = sql.Identifier(name).as_string(conn)
                conn.execute("SELECT setval(%s::regclass, %s, %s)", (regclass, value, called))


@pytest.fixture(scope="session")
def pg_session_database(pg_server_url: str) -> tuple[str, _PostgresBaseline]:
    """This session's database on the server, migrated to the newest schema, and its state
    then."""
    url = fresh_database(pg_server_url)
    db = Database(url)
    db.migrate()
    db.dispose()
    return url, _PostgresBaseline(url)


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
def postgresql_db(
    pg_session_database: tuple[str, _PostgresBaseline],
) -> Iterator[Database]:
    url, baseline = pg_session_database
    baseline.restore()
    db = Database(url)
    yield db
    db.dispose()  # closes every connection the test left open: the next test empties it
