"""Everything a data dir holds, opened once: database, blob store, keys, files API, admin.

Shared by the server and the CLI; it imports nothing of the WebDAV face, so CLI commands start fast.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import DatabaseError

from davdisk import blobs
from davdisk.config import Config, parse_rule
from davdisk.crypto.keys import MasterKeys, master_key_from_env, pending_key_path
from davdisk.errors import IntegrityError, KeyMaterialError, UsageError
from davdisk.files.admin import Admin, parse_size
from davdisk.files.api import Files
from davdisk.files.checksum_upgrade import seal_clear_checksums
from davdisk.files.content import Content, Keeping
from davdisk.files.keyring import Keyring
from davdisk.meta import store
from davdisk.meta.db import Database, is_damaged


@dataclass
class Services:
    config: Config
    db: Database
    files: Files
    admin: Admin
    content: Content  # the one owner of blobs: for key rotation and fsck (through admin)
    keyring: Keyring

    @classmethod
    def open(cls, config: Config, *, create: bool, check_database: bool = False) -> Services:
        """Open the data dir; with ``create``, make whatever is missing (first start). With
        ``check_database`` (the server), refuse a database that fails its quick check rather
        than keep writing into it."""
        data = config.data_dir
        if not data.is_dir():
            if not create:
                raise UsageError(f"no data dir at {data} (start the server or add a user first)")
            data.mkdir(parents=True, mode=0o700)
        db = Database(config.database_url, pool_size=config.get("server", "threads") + 4)
        try:
            if check_database:
                _refuse_damaged(db)
            try:
                db.migrate()
            except (DatabaseError, sqlite3.DatabaseError) as e:
                if not is_damaged(e):
                    raise
                raise IntegrityError(_damaged_message(db, str(getattr(e, "orig", e)))) from None
            masters = _master_keys(config.master_key_file, db, create=create)
        except BaseException:
            db.dispose()
            raise
        try:
            store = blobs.load(config)
            store.check()  # an unreachable bucket: one line now, not a 503 per request
        except BaseException:
            db.dispose()
            raise
        keeping = Keeping(
            rule=parse_rule(config.get("versions", "retention")),
            history_share=config.get("versions", "history_share"),
            trash_days=config.get("trash", "retention_days"),
        )
        content = Content(db, store, keeping)
        keyring = Keyring(db, masters)
        files = Files(db, content, keyring)
        try:
            seal_clear_checksums(db, files.checksums)  # left in clear by an older version
        except BaseException:
            db.dispose()
            raise
        admin = Admin(
            db,
            files,
            content,
            keyring,
            config.get("auth", "bcrypt_cost"),
            parse_size(config.get("users", "default_quota")),
        )
        return cls(config, db, files, admin, content, keyring)

    def close(self) -> None:
        self.db.dispose()


def _refuse_damaged(db: Database) -> None:
    problems = db.integrity_problems(quick=True)
    if problems:
        more = f"; and {len(problems) - 1} more" if len(problems) > 1 else ""
        raise IntegrityError(_damaged_message(db, problems[0] + more))


def _damaged_message(db: Database, problem: str) -> str:
    return (
        f"the database {db.location} is damaged ({problem}); davdisk will not write into it: "
        "restore it from a backup, then run davdisk fsck"
    )


def _master_keys(key_file: Path, db: Database, *, create: bool) -> MasterKeys:
    from_env = master_key_from_env()
    if from_env is not None:
        return MasterKeys(None, [from_env])  # fixed: a rotation needs the key in a file
    return _master_keys_from_file(key_file, db, create=create)


def _master_keys_from_file(key_file: Path, db: Database, *, create: bool) -> MasterKeys:
    """The data dir's master keys; a missing key file is created only while no user has a key.

    Once users exist their keys are wrapped under one particular master key: a new one would
    open none of them (and every write of theirs would fail), so its absence is an error that
    says where the key is expected and how to provide it.
    """
    if not key_file.exists() and not pending_key_path(key_file).exists():
        with db.read() as conn:
            holders = store.users_with_keys(conn)
        if holders:
            raise KeyMaterialError(
                f"master key file {key_file} does not exist, but the keys of {holders} "
                f"user{'s' if holders != 1 else ''} are wrapped under it: restore it from a "
                "backup, or set DAVDISK_MASTER_KEY_FILE (or [storage] master_key_file) to where "
                "it is; a new key would open none of them"
            )
    return MasterKeys.load(key_file, create=create)
