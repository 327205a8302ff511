"""Schema migrations: a fresh database reaches the newest revision, and the shortcut that skips
alembic for an up-to-date database names the real newest revision."""

from pathlib import Path

from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from davdisk.meta.db import HEAD_REVISION, MIGRATIONS, Database
from davdisk.meta.dialects.sqlite import SQLiteDialect


def test_head_revision_constant_matches_the_migrations() -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_heads() == [HEAD_REVISION]


def test_migrate_creates_every_table_and_is_idempotent(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    assert db.schema_revision() is None
    db.migrate()
    db.migrate()
    assert db.schema_revision() == HEAD_REVISION
    with db.reader.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert {"users", "user_keys", "nodes", "blobs", "properties", "locks"} <= tables
    with db.read() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert mode == "wal"
    db.dispose()


def test_every_write_transaction_waits_for_an_fsync_of_the_wal_after_its_commit(
    tmp_path: Path,
) -> None:
    """SQLite runs with synchronous=NORMAL (no fsync inside COMMIT); Database.write() does the
    fsync after the commit instead, and concurrent commits share one (group commit)."""
    import threading

    from sqlalchemy import text

    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    db.migrate()
    with db.writer.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    assert isinstance(db.dialect, SQLiteDialect)
    sync = db.dialect.wal_sync
    assert sync is not None
    insert = text(
        "INSERT INTO users (name, password_hash, created_at, disabled, quota_bytes, used_bytes)"
        " VALUES (:n, 'x', 0, 0, 0, 0)"
    )
    before = sync.fsyncs
    with db.write() as conn:
        conn.execute(insert, {"n": "one"})
    assert sync.fsyncs == before + 1  # a lone commit: one fsync of its own

    # Hold the fsync of one commit while 7 more commit: they all wait, then share one fsync.
    real_fsync = sync._fsync
    release, entered = threading.Event(), threading.Event()

    def slow_fsync() -> None:
        if not entered.is_set():
            entered.set()
            release.wait(10)
        real_fsync()

    sync._fsync = slow_fsync  # type: ignore[method-assign]
    finished: list[str] = []

    def writer(name: str) -> None:
        with db.write() as conn:
            conn.execute(insert, {"n": name})
        finished.append(name)

    first = threading.Thread(target=writer, args=("first",))
    first.start()
    assert entered.wait(10)
    others = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(7)]
    for t in others:
        t.start()
    # The 7 commit (the writers' lock is free during the fsync) and then wait for a sync.
    for _ in range(1000):
        if sync._requested >= sync._synced + 8:
            break
        threading.Event().wait(0.01)
    assert finished == []  # nobody answered before its commit was synced
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert sorted(finished) == sorted(["first", *[f"w{i}" for i in range(7)]])
    assert sync.fsyncs == before + 1 + 2  # the held one, then one for all seven
    db.dispose()


def test_migration_0004_keeps_every_row_and_reference(tmp_path: Path) -> None:
    """A database made before ids were AUTOINCREMENT keeps its rows and foreign keys when the
    tables are rebuilt, and from then on never reuses an id."""
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    db = Database(url)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    with db.writer.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
        conn.commit()
    with db.write() as conn:
        conn.exec_driver_sql(
            "INSERT INTO users (id, name, password_hash, created_at, disabled, quota_bytes,"
            " used_bytes, root_id) VALUES (1, 'alice', 'h', 0, 0, 0, 0, 1)"
        )
        for node_id, parent, name, is_dir in [(1, None, "", 1), (2, 1, "a", 1), (3, 2, "b", 0)]:
            conn.exec_driver_sql(
                "INSERT INTO nodes (id, owner_id, parent_id, name, is_dir, size, mtime, ctime,"
                " etag) VALUES (?, 1, ?, ?, ?, 0, 0, 0, 'e')",
                (node_id, parent, name, is_dir),
            )
        conn.exec_driver_sql("INSERT INTO properties VALUES (3, '{x}y', x'00')")
        conn.exec_driver_sql(
            "INSERT INTO shares (id, owner_id, node_id, token_hash, can_write, can_reshare,"
            " hidden, created_at) VALUES (1, 1, 2, 'abc', 0, 0, 0, 0)"
        )
    db.migrate()
    assert db.schema_revision() == HEAD_REVISION
    with db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM nodes").scalar() == 3
        assert conn.exec_driver_sql("SELECT count(*) FROM properties").scalar() == 1
        assert conn.exec_driver_sql("SELECT count(*) FROM shares").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        indexes = {r[1] for r in conn.exec_driver_sql("PRAGMA index_list(nodes)")}
    assert {"ux_nodes_parent_name", "ix_nodes_parent_id"} <= indexes
    with db.write() as conn:
        conn.exec_driver_sql("DELETE FROM nodes WHERE id = 3")  # the largest id
        conn.exec_driver_sql(
            "INSERT INTO nodes (owner_id, parent_id, name, is_dir, size, mtime, ctime, etag)"
            " VALUES (1, 1, 'new', 1, 0, 0, 0, 'e')"
        )
        new_id = conn.exec_driver_sql("SELECT id FROM nodes WHERE name = 'new'").scalar()
        # the cascade still works after the rebuild
        conn.exec_driver_sql("DELETE FROM nodes WHERE id = 2")
        assert conn.exec_driver_sql("SELECT count(*) FROM shares").scalar() == 0
    assert new_id == 4
    db.dispose()


def test_single_statement_reads_see_every_commit_and_do_not_write(tmp_path: Path) -> None:
    import sqlite3
    import threading

    import pytest
    from sqlalchemy import bindparam, select, text

    from davdisk.meta.tables import users

    db = Database(f"sqlite:///{tmp_path / 's.db'}")
    db.migrate()
    by_name = select(users.c.id, users.c.disabled).where(users.c.name == bindparam("name"))
    assert db.read_one(by_name, {"name": "ann"}) is None
    for name in ("ann", "bob"):
        with db.write() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (name, password_hash, created_at, disabled, quota_bytes,"
                    " used_bytes) VALUES (:n, 'x', 0, 1, 0, 0)"
                ),
                {"n": name},
            )
        # Committed by another connection a moment ago: seen at once, booleans as 0/1.
        row = db.read_one(by_name, {"name": name})
        assert row is not None and row[1] == 1
    # A literal LIMIT is a bound parameter of the compiled statement, filled in by itself.
    assert db.read_all(select(users.c.name).order_by(users.c.name).limit(1), {}) == [("ann",)]
    # Another thread has its own connection (SQLite connections are per thread).
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(db.read_one(by_name, {"name": "bob"})))
    thread.start()
    thread.join()
    assert seen and seen[0] is not None
    with pytest.raises(KeyError):  # a forgotten parameter is an error, not a NULL
        db.read_one(by_name, {})
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        db.read_one(text("DELETE FROM users RETURNING id"), {})
    db.dispose()
