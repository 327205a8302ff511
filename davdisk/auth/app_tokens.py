"""App passwords: per-device tokens that work as a user's Basic-auth password, each revocable.

A token is ``davdisk_`` + 43 URL-safe characters (256 random bits). It is shown once; the
database keeps only its SHA-256 — a token that cannot be guessed needs no slow hash, so checking
one is a single indexed query. Tokens are never cached: revoking one takes effect on the very
next request, in every running server. Changing the user's password leaves them alone; deleting
the user deletes them (ON DELETE CASCADE).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from davdisk.errors import NotFound, UsageError
from davdisk.meta import store
from davdisk.meta.db import Database

PREFIX = "davdisk_"
_RANDOM_BYTES = 32
MAX_LABEL = 100
# last_used_at is written at most this often per token: a busy client costs no write per request.
TOUCH_EVERY = 60.0


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def looks_like_token(password: str) -> bool:
    """Cheap pre-check, so ordinary passwords cost no token lookup."""
    return password.startswith(PREFIX)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_label(label: str) -> str:
    if not label.strip():
        raise UsageError("an app password needs a label, e.g. 'laptop rclone'")
    if len(label) > MAX_LABEL:
        raise UsageError(f"label longer than {MAX_LABEL} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in label):
        raise UsageError("a label cannot contain control characters")
    return label


@dataclass(frozen=True)
class TokenInfo:
    id: int
    label: str
    created_at: float
    last_used_at: float | None


class AppTokens:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def _user_id(self, conn: Connection, user_name: str) -> int:
        user = store.get_user(conn, user_name)
        if user is None:
            raise NotFound(f"user {user_name!r}")
        return user.id

    def add(self, user_name: str, label: str) -> tuple[int, str]:
        """Make an app password; return its id and the token (shown once, never stored)."""
        check_label(label)
        token = new_token()
        with self.db.write() as conn:
            token_id = store.create_app_token(
                conn, self._user_id(conn, user_name), label, token_hash(token)
            )
        return token_id, token

    def list_tokens(self, user_name: str) -> list[TokenInfo]:
        with self.db.read() as conn:
            rows = store.list_app_tokens(conn, self._user_id(conn, user_name))
        return [TokenInfo(r.id, r.label, r.created_at, r.last_used_at) for r in rows]

    def remove(self, user_name: str, token_id: int) -> None:
        with self.db.write() as conn:
            if not store.delete_app_token(conn, self._user_id(conn, user_name), token_id):
                raise NotFound(f"app password {token_id} of user {user_name!r}")

    def verify(self, token: str, user_id: int | None) -> bool:
        """True if ``token`` is a live app password of ``user_id``. Runs the same lookup
        whatever ``user_id`` is (None for an unknown user name), so timing tells nothing."""
        with self.db.read() as conn:
            row = store.app_token_by_hash(conn, token_hash(token))
        if row is None or user_id is None or row.user_id != user_id:
            return False
        now = self.clock()
        if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
            with self.db.write() as conn:
                store.touch_app_token(conn, row.id, now)
        return True
