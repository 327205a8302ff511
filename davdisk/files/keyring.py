"""Per-user root keys: created, versioned, unwrapped with the right master key, cached in memory.

The database holds each user's root key (URK) of each version only wrapped by a master key; this
is the one place that wraps and unwraps them. Each row names the master key it is wrapped under
(``master_key_id``), so during a master key rotation rows under the old and the new key are both
readable (:class:`~davdisk.crypto.keys.MasterKeys` re-reads the key files when it meets a key id
it does not hold, which is how a running server follows a rotation).

Which version new blobs use is asked of the database at the start of every upload
(:meth:`Keyring.current`): one primary-key lookup, a few tens of microseconds next to the several
queries an upload makes anyway, and in exchange ``davdisk key rotate-user`` takes effect in every
running server at once, with no cache to expire and no window in which new blobs still get the
old version. Unwrapped keys stay in process memory; the cached wrapped bytes are compared with the
row on that lookup, so a rewrapped or replaced row is unwrapped afresh.
"""

from __future__ import annotations

import threading
from typing import BinaryIO

from sqlalchemy import Connection

from davdisk.crypto import keys, sealed
from davdisk.crypto.envelope import EnvelopeReader
from davdisk.errors import UnknownKeyVersion
from davdisk.meta import store
from davdisk.meta.db import Database
from davdisk.meta.store import keys as key_rows


class Keyring:
    def __init__(self, db: Database, masters: keys.MasterKeys) -> None:
        self._db = db
        self.masters = masters
        # (user id, version) -> (wrapped bytes it was unwrapped from, URK)
        self._cache: dict[tuple[int, int], tuple[bytes, bytes]] = {}
        self._sealing: dict[tuple[int, int, bytes], bytes] = {}  # (user, version, URK) -> key
        self._lock = threading.Lock()

    # --- adding keys ---------------------------------------------------------------------------

    def create_user_key(self, conn: Connection, user_id: int) -> None:
        """Give a new user their first root key (inside the caller's write transaction)."""
        self._add(conn, user_id, 1)

    def add_version(self, conn: Connection, user_id: int) -> int:
        """Add the user's next key version (inside the caller's write transaction); new blobs
        of the user use it from the moment that transaction commits. Returns the version."""
        newest = key_rows.newest_version(conn, user_id)
        if newest is None:
            raise UnknownKeyVersion(version=1, user_id=user_id)
        self._add(conn, user_id, newest + 1)
        return int(newest + 1)

    def _add(self, conn: Connection, user_id: int, version: int) -> None:
        # Chosen inside the write transaction: a master key rotation swaps key files only in
        # one too, so this row cannot end up under a key the rotation has just removed.
        master = self.masters.for_wrapping()
        wrapped = keys.wrap_user_key(master, keys.new_user_key(), user_id=user_id, version=version)
        store.add_user_key(conn, user_id, version, wrapped, keys.master_key_id(master))

    # --- using keys ----------------------------------------------------------------------------

    def current(self, user_id: int) -> tuple[int, bytes]:
        """(version, key) that new blobs of this user are written with: the newest version."""
        row = key_rows.newest(self._db, user_id)
        if row is None:
            raise UnknownKeyVersion(version=1, user_id=user_id)
        version, wrapped, master_key_id = row
        return version, self._unwrap(user_id, version, wrapped, master_key_id)

    def key(self, user_id: int, version: int) -> bytes:
        """The user's key of ``version`` (to read a blob written with it)."""
        with self._lock:
            found = self._cache.get((user_id, version))
        if found is not None:
            return found[1]
        row = key_rows.wrapped(self._db, user_id, version)
        if row is None:
            raise UnknownKeyVersion(version=version, user_id=user_id)
        return self._unwrap(user_id, version, *row)

    def _unwrap(self, user_id: int, version: int, wrapped: bytes, master_id: str) -> bytes:
        with self._lock:
            found = self._cache.get((user_id, version))
        if found is not None and found[0] == wrapped:
            return found[1]
        master = self.masters.get(master_id)
        urk = keys.unwrap_user_key(master, wrapped, user_id=user_id, version=version)
        with self._lock:
            self._cache[(user_id, version)] = (wrapped, urk)
        return urk

    def sealing_key(self, user_id: int, version: int) -> bytes:
        """The key that seals the user's small values (dead properties, content checksums:
        crypto/sealed.py) under ``version``, derived once and kept: a listing opens one value
        per file."""
        urk = self.key(user_id, version)
        # Keyed by the URK too: a key row replaced under the same version must not be answered
        # with the old key.
        with self._lock:
            found = self._sealing.get((user_id, version, urk))
        if found is None:
            found = sealed.derive_key(urk, user_id)
            with self._lock:
                self._sealing[(user_id, version, urk)] = found
        return found

    def forget(self, user_id: int) -> None:
        with self._lock:
            for k in [k for k in self._cache if k[0] == user_id]:
                del self._cache[k]
            for s in [s for s in self._sealing if s[0] == user_id]:
                del self._sealing[s]

    def reader(self, src: BinaryIO, owner_id: int, blob_id: str, plain_size: int) -> EnvelopeReader:
        """A verifying reader of ``src``, the stored bytes of blob ``blob_id`` of ``owner_id``,
        sealed under whichever of their key versions its header names."""
        return EnvelopeReader(
            src,
            key_for_version=lambda v: self.key(owner_id, v),
            user_id=owner_id,
            blob_id=bytes.fromhex(blob_id),
            expected_plain_size=plain_size,
        )
