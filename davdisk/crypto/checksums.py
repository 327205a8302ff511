"""Sealed content checksums: a file's MD5 and SHA-1, encrypted at rest like its content.

``oc:checksums`` must answer a file's real hashes, so they cannot be stored keyed one-way; and an
unkeyed hash of a small file (a PIN, a short password) gives its content away to whoever holds a
copy of the database. So the database holds them only sealed with a key derived from the owner's
root key (URK) of one version::

    sealed = 0x01 || key version (4) || nonce (12) || AES-256-GCM(CK, md5 (16) || sha1 (20), AAD)
    CK     = HKDF-SHA256(URK, info=b"davdisk/checksums/v1" || user id (8))
    AAD    = b"davdisk/checksums/v1" || user id (8) || key version (4)

The AAD binds the owner, not the node or the blob: copies share the sealed value as they share
the blob (a COPY stays a row copy), and re-encrypting a blob leaves it valid. A user's older key
versions are never dropped, so a sealed value stays readable after ``key rotate-user``.
No database here, no key lookup: callers hand in the URK.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from davdisk.errors import KeyMaterialError

FORMAT = 1
_INFO = b"davdisk/checksums/v1"
_NONCE = 12
_PLAIN = 16 + 20  # md5 || sha1
SEALED_SIZE = 1 + 4 + _NONCE + _PLAIN + 16


def checksum_cipher(urk: bytes, user_id: int) -> AESGCM:
    """The AEAD that seals one user's checksums under one key version (callers cache it)."""
    ck = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO + user_id.to_bytes(8, "big")
    ).derive(urk)
    return AESGCM(ck)


def _aad(user_id: int, key_version: int) -> bytes:
    return _INFO + user_id.to_bytes(8, "big") + key_version.to_bytes(4, "big")


def seal(cipher: AESGCM, *, user_id: int, key_version: int, md5: str, sha1: str) -> bytes:
    """Seal hex digests (``cipher`` from :func:`checksum_cipher` of that user and version)."""
    nonce = os.urandom(_NONCE)
    plain = bytes.fromhex(md5) + bytes.fromhex(sha1)
    return (
        bytes([FORMAT])
        + key_version.to_bytes(4, "big")
        + nonce
        + cipher.encrypt(nonce, plain, _aad(user_id, key_version))
    )


def key_version_of(sealed: bytes) -> int:
    """Which of the owner's key versions sealed this value."""
    if len(sealed) != SEALED_SIZE or sealed[0] != FORMAT:
        raise KeyMaterialError(f"sealed checksums of {len(sealed)} bytes, format {sealed[:1]!r}")
    return int.from_bytes(sealed[1:5], "big")


def open_sealed(cipher: AESGCM, sealed: bytes, *, user_id: int) -> tuple[str, str]:
    """(md5, sha1) as hex; KeyMaterialError unless the value verifies for this user."""
    version = key_version_of(sealed)
    nonce, body = sealed[5 : 5 + _NONCE], sealed[5 + _NONCE :]
    try:
        plain = cipher.decrypt(nonce, body, _aad(user_id, version))
    except InvalidTag:
        raise KeyMaterialError(
            f"sealed checksums of user {user_id} do not verify under key version {version}"
        ) from None
    return plain[:16].hex(), plain[16:].hex()
