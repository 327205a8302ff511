"""Everything a data dir holds, opened once: database, blob store, keys, files API, admin.

Shared by the server and the CLI; it imports nothing of the WebDAV face, so CLI commands start fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from davdisk.blobs.local import LocalBlobStore
from davdisk.config import Config
from davdisk.crypto.keys import MasterKeys
from davdisk.errors import UsageError
from davdisk.files.admin import Admin, parse_size
from davdisk.files.api import Files
from davdisk.files.keyring import Keyring
from davdisk.meta.db import Database


@dataclass
class Services:
    config: Config
    db: Database
    files: Files
    admin: Admin

    @classmethod
    def open(cls, config: Config, *, create: bool) -> Services:
        """Open the data dir; with ``create``, make whatever is missing (first start)."""
        data = config.data_dir
        if not data.is_dir():
            if not create:
                raise UsageError(f"no data dir at {data} (start the server or add a user first)")
            data.mkdir(parents=True, mode=0o700)
        masters = MasterKeys.load(config.master_key_file, create=create)
        db = Database(config.database_url, pool_size=config.get("server", "threads") + 4)
        db.migrate()
        blobs = LocalBlobStore(config.blob_dir)
        files = Files(db, blobs, Keyring(db, masters))
        admin = Admin(
            files,
            config.get("auth", "bcrypt_cost"),
            parse_size(config.get("users", "default_quota")),
        )
        return cls(config, db, files, admin)

    def close(self) -> None:
        self.db.dispose()
