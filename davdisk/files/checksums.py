"""A file's content checksums: sealed at rest like its content, opened for ``oc:checksums``.

``oc:checksums`` must answer a file's real MD5 and SHA-1, so they cannot be stored keyed one-way;
and an unkeyed hash of a small file (a PIN, a short password) gives its content away to whoever
holds a copy of the database. So ``nodes.checksums`` holds ``md5 (16) || sha1 (20)`` sealed
(:mod:`davdisk.crypto.sealed`) under the owner's user key, with :data:`LABEL` as the label. The
seal binds the owner, not the node or the blob: copies share the sealed value as they share the
blob, and re-encrypting a blob leaves it valid. A user's older key versions are never dropped,
so a sealed value stays readable after ``key rotate-user``.
"""

from __future__ import annotations

import hashlib
import logging

from davdisk.crypto import sealed
from davdisk.errors import DavdiskError, IntegrityError
from davdisk.files.keyring import Keyring
from davdisk.model import Node

logger = logging.getLogger(__name__)

# The seal's label. Dead properties are labelled with their names, which never hold a NUL (XML
# cannot), so a sealed checksum cannot pass for a property value, nor one for it.
LABEL = b"\0checksums"
_MD5, _SHA1 = 16, 20

# Empty content is stored with no blob and no sealed value: its hashes are no secret.
EMPTY = (
    hashlib.md5(b"", usedforsecurity=False).hexdigest(),
    hashlib.sha1(b"", usedforsecurity=False).hexdigest(),
)


class Checksums:
    """Thread-safe (the keys are the keyring's)."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    def seal(self, user_id: int, version: int, *, md5: str, sha1: str) -> bytes:
        """The value to store for content with these hex digests, owned by ``user_id``."""
        key = self._keyring.sealing_key(user_id, version)
        return sealed.seal(key, version, user_id, LABEL, bytes.fromhex(md5) + bytes.fromhex(sha1))

    def seal_current(self, user_id: int, *, md5: str, sha1: str) -> bytes:
        """:meth:`seal` under the user's newest key version."""
        version, _urk = self._keyring.current(user_id)
        return self.seal(user_id, version, md5=md5, sha1=sha1)

    def reveal(self, entry: Node) -> tuple[str, str] | None:
        """(md5, sha1) hex of a file's content; None for a folder, or if they are unknown or
        cannot be opened (logged: a property missing is better than a failed listing)."""
        if entry.is_dir:
            return None
        if entry.checksums is None:
            return EMPTY if entry.size == 0 else None
        try:
            version = sealed.key_version(entry.checksums)
            key = self._keyring.sealing_key(entry.owner_id, version)
            plain = sealed.open_sealed(key, entry.owner_id, LABEL, entry.checksums)
            if len(plain) != _MD5 + _SHA1:
                raise IntegrityError(f"sealed checksums of {len(plain)} bytes")
            return plain[:_MD5].hex(), plain[_MD5:].hex()
        except DavdiskError as e:
            logger.warning("checksums of node %d cannot be read: %s", entry.id, e)
            return None
