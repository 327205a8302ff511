"""Small values sealed under a user's root key, for those kept in the database: dead property
values and content checksums.

A blob is a stream (:mod:`davdisk.crypto.envelope`); such a value is short and read whole, so it
gets a single AES-256-GCM message instead::

    off  len  field
    0    4    magic b"\\x00DP1" (a stored XML value never starts with a NUL byte)
    4    4    user-key version (big-endian)
    8    12   random nonce
    20   ...  ciphertext || 16-byte tag

The key is derived from the user's root key (HKDF-SHA256, info ``davdisk/sealed/v1`` || user
id), never stored. The associated data binds the header, the user id and a caller's label (a
property's name; ``\0checksums`` for checksums), so a value copied onto another property, into
another column or onto another user's row fails to open. It does not bind the node: values
follow their node through MOVE and are copied by COPY.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from davdisk.errors import IntegrityError

MAGIC = b"\x00DP1"
HEADER_SIZE = 4 + 4 + 12
OVERHEAD = HEADER_SIZE + 16
_INFO = b"davdisk/sealed/v1"


def derive_key(user_key: bytes, user_id: int) -> bytes:
    """The sealing key of one user key (cache it: HKDF per value would dominate a listing)."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO + user_id.to_bytes(8, "big")
    ).derive(user_key)


def _aad(header: bytes, user_id: int, label: bytes) -> bytes:
    return header + user_id.to_bytes(8, "big") + label


def is_sealed(stored: bytes) -> bool:
    return stored.startswith(MAGIC)


def key_version(stored: bytes) -> int:
    return int(struct.unpack(">I", stored[4:8])[0])


def seal(key: bytes, version: int, user_id: int, label: bytes, plain: bytes) -> bytes:
    header = MAGIC + struct.pack(">I", version) + os.urandom(12)
    return header + AESGCM(key).encrypt(header[8:], plain, _aad(header, user_id, label))


def open_sealed(key: bytes, user_id: int, label: bytes, stored: bytes) -> bytes:
    header = stored[:HEADER_SIZE]
    if len(stored) < OVERHEAD or not is_sealed(stored):
        raise IntegrityError("a sealed value is truncated")
    try:
        return AESGCM(key).decrypt(header[8:], stored[HEADER_SIZE:], _aad(header, user_id, label))
    except InvalidTag:
        raise IntegrityError(
            "a sealed value failed authentication (tampered or misplaced)"
        ) from None
