"""A file's content checksums as clients see them, from the sealed value the database holds.

:class:`Checksums` seals the MD5 and SHA-1 an upload computed with the owner's key
(:mod:`davdisk.crypto.checksums`) and opens them again for ``oc:checksums``. The per-user,
per-version ciphers are derived once and kept: a PROPFIND of a big folder opens one value per
file, each a single AES-GCM decryption of 36 bytes.
"""

from __future__ import annotations

import hashlib
import logging
import threading

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from davdisk.crypto import checksums as sealing
from davdisk.errors import DavdiskError
from davdisk.files.keyring import Keyring
from davdisk.meta.store import Entry

logger = logging.getLogger(__name__)

# Empty content is stored with no blob and no sealed value: its hashes are no secret.
EMPTY = (
    hashlib.md5(b"", usedforsecurity=False).hexdigest(),
    hashlib.sha1(b"", usedforsecurity=False).hexdigest(),
)


class Checksums:
    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._ciphers: dict[tuple[int, int, bytes], AESGCM] = {}
        self._lock = threading.Lock()

    def _cipher(self, user_id: int, version: int, urk: bytes) -> AESGCM:
        # Keyed by the URK too: a key row replaced under the same version (the keyring unwraps
        # it afresh) must not be answered with the old cipher.
        key = (user_id, version, urk)
        with self._lock:
            found = self._ciphers.get(key)
        if found is None:
            found = sealing.checksum_cipher(urk, user_id)
            with self._lock:
                self._ciphers[key] = found
        return found

    def seal(self, user_id: int, version: int, urk: bytes, *, md5: str, sha1: str) -> bytes:
        """The value to store for content with these hex digests, owned by ``user_id``."""
        cipher = self._cipher(user_id, version, urk)
        return sealing.seal(cipher, user_id=user_id, key_version=version, md5=md5, sha1=sha1)

    def seal_current(self, user_id: int, *, md5: str, sha1: str) -> bytes:
        """:meth:`seal` under the user's newest key version."""
        version, urk = self._keyring.current(user_id)
        return self.seal(user_id, version, urk, md5=md5, sha1=sha1)

    def reveal(self, entry: Entry) -> tuple[str, str] | None:
        """(md5, sha1) hex of a file's content; None for a folder, or if they are unknown or
        cannot be opened (logged: a property missing is better than a failed listing)."""
        if entry.is_dir:
            return None
        if entry.checksums is None:
            return EMPTY if entry.size == 0 else None
        try:
            version = sealing.key_version_of(entry.checksums)
            urk = self._keyring.key(entry.owner_id, version)
            cipher = self._cipher(entry.owner_id, version, urk)
            return sealing.open_sealed(cipher, entry.checksums, user_id=entry.owner_id)
        except DavdiskError as e:
            logger.warning("checksums of node %d cannot be read: %s", entry.id, e)
            return None
