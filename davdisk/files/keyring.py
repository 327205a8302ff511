"""Per-user root keys: created, unwrapped with the master key, and cached in memory.

The database holds each user's root key (URK) only wrapped by the master key; this is the one
place that unwraps them. Unwrapped keys stay in process memory for the life of the process.
"""

from __future__ import annotations

import threading

from sqlalchemy import Connection

from davdisk.crypto import keys
from davdisk.errors import UnknownKeyVersion
from davdisk.meta import store
from davdisk.meta.db import Database


class Keyring:
    def __init__(self, db: Database, master_key: bytes) -> None:
        self._db = db
        self._master = master_key
        self._master_id = keys.master_key_id(master_key)
        self._cache: dict[tuple[int, int], bytes] = {}
        self._current: dict[int, int] = {}
        self._lock = threading.Lock()

    def create_user_key(self, conn: Connection, user_id: int) -> None:
        """Give a new user their first root key (inside the caller's transaction)."""
        urk = keys.new_user_key()
        wrapped = keys.wrap_user_key(self._master, urk, user_id=user_id, version=1)
        store.add_user_key(conn, user_id, 1, wrapped, self._master_id)

    def _load(self, user_id: int) -> None:
        with self._db.read() as conn:
            rows = store.get_user_keys(conn, user_id)
        loaded = {
            (user_id, version): keys.unwrap_user_key(
                self._master, wrapped, user_id=user_id, version=version
            )
            for version, wrapped in rows
        }
        with self._lock:
            self._cache.update(loaded)
            if rows:
                self._current[user_id] = rows[0][0]

    def current(self, user_id: int) -> tuple[int, bytes]:
        """(version, key) that new blobs of this user are written with."""
        with self._lock:
            version = self._current.get(user_id)
        if version is None:
            self._load(user_id)
            with self._lock:
                version = self._current.get(user_id)
            if version is None:
                raise UnknownKeyVersion(version=1, user_id=user_id)
        return version, self.key(user_id, version)

    def key(self, user_id: int, version: int) -> bytes:
        with self._lock:
            found = self._cache.get((user_id, version))
        if found is None:
            self._load(user_id)
            with self._lock:
                found = self._cache.get((user_id, version))
            if found is None:
                raise UnknownKeyVersion(version=version, user_id=user_id)
        return found

    def forget(self, user_id: int) -> None:
        with self._lock:
            for k in [k for k in self._cache if k[0] == user_id]:
                del self._cache[k]
            self._current.pop(user_id, None)
