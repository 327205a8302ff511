"""Password hashing: bcrypt, with passwords longer than bcrypt's 72 bytes pre-hashed so that
every byte counts. Used for user passwords and public-link passwords; the cache of verified
credentials that keeps bcrypt off the hot path is ``auth/passwords.py``."""

from __future__ import annotations

import hashlib

import bcrypt

MIN_PASSWORD_LENGTH = 8
# bcrypt ignores bytes past 72; longer passwords are pre-hashed so every byte counts.
_BCRYPT_MAX = 72


def _prepare(password: str) -> bytes:
    raw = password.encode("utf-8")
    if len(raw) > _BCRYPT_MAX:
        raw = hashlib.sha256(raw).hexdigest().encode()
    return raw


def hash_password(password: str, cost: int = 12) -> str:
    return bcrypt.hashpw(_prepare(password), bcrypt.gensalt(cost)).decode("ascii")


def check_password(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(_prepare(password), password_hash.encode("ascii"))
    except ValueError:  # a malformed stored hash never matches
        return False
