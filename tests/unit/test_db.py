"""Schema migrations: a fresh database reaches the newest revision, and the shortcut that skips
alembic for an up-to-date database names the real newest revision."""

from pathlib import Path

from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from davdisk.meta.db import HEAD_REVISION, MIGRATIONS, Database


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
        sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    assert mode == "wal" and sync == 2  # 2 = FULL: a commit survives power loss
    db.dispose()
