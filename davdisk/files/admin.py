"""Administration: users and garbage collection, used by the CLI.

User names are checked here (one rule for every face); passwords are hashed by ``auth``.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass

from davdisk.config import parse_size as parse_size  # re-exported: sizes in the CLI
from davdisk.crypto.passwords import MIN_PASSWORD_LENGTH, hash_password
from davdisk.errors import AlreadyExists, ConcurrentChange, InvalidName, NotFound, UsageError
from davdisk.files.api import Files
from davdisk.files.content import Collected, Content
from davdisk.files.keyring import Keyring
from davdisk.files.revocation import revoke
from davdisk.meta import store
from davdisk.meta.db import Database

logger = logging.getLogger(__name__)

MAX_USER_NAME = 64


def check_user_name(name: str) -> str:
    if not name:
        raise InvalidName(name=name, why="a user name cannot be empty")
    if len(name) > MAX_USER_NAME:
        raise InvalidName(name=name, why=f"longer than {MAX_USER_NAME} characters")
    if "/" in name or ":" in name:
        raise InvalidName(name=name, why="a user name cannot contain '/' or ':'")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise InvalidName(name=name, why="a user name cannot contain control characters")
    if name != name.strip():
        raise InvalidName(name=name, why="a user name cannot start or end with white space")
    return name


def check_password_policy(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsageError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    return password


@dataclass(frozen=True)
class UserSummary:
    name: str
    files: int
    bytes: int
    quota: int


GcReport = Collected  # what one gc run removed (files/content.py)


class Admin:
    """Users and garbage collection. ``content`` (the one owner of blobs) and ``keyring`` are
    the parts of the files layer it works with; fsck (files/fsck.py) uses them through it."""

    def __init__(
        self,
        db: Database,
        files: Files,
        content: Content,
        keyring: Keyring,
        bcrypt_cost: int = 12,
        default_quota: int = 0,
    ) -> None:
        self.db = db
        self.files = files
        self.content = content
        self.keyring = keyring
        self.bcrypt_cost = bcrypt_cost
        self.default_quota = default_quota

    def add_user(self, name: str, password: str) -> None:
        check_user_name(name)
        check_password_policy(password)
        hashed = hash_password(password, self.bcrypt_cost)
        try:
            with self.db.write() as conn:
                if store.get_user(conn, name) is not None:
                    raise AlreadyExists(f"user {name!r}")
                user = store.create_user(conn, name, hashed)
                self.keyring.create_user_key(conn, user.id)
                if self.default_quota:
                    store.set_quota(conn, user.id, self.default_quota)
        except ConcurrentChange:  # added by another process since the check above
            raise AlreadyExists(f"user {name!r}") from None

    def set_password(self, name: str, password: str) -> None:
        check_password_policy(password)
        hashed = hash_password(password, self.bcrypt_cost)
        with self.db.write() as conn:
            user = store.get_user(conn, name)
            if user is None:
                raise NotFound(f"user {name!r}")
            store.set_password_hash(conn, user.id, hashed)

    def delete_user(self, name: str) -> int:
        """Remove a user, their tree, blobs and keys; return how many blobs were removed."""
        with self.db.write() as conn:
            user = store.get_user(conn, name)
            if user is None:
                raise NotFound(f"user {name!r}")
            # What they received and what they shared on of others' items go with them, and
            # so does what was made through that (their own items' shares go with the items).
            revoke(conn, store.shares_to(conn, user.id) + store.shares_made_by(conn, user.id))
            blob_ids = self.content.drop_owner(conn, user.id)
            store.delete_user(conn, user.id)
        self.keyring.forget(user.id)
        return self.content.remove_all(blob_ids)

    def list_users(self) -> list[UserSummary]:
        with self.db.read() as conn:
            rows = store.list_users(conn)
        return [UserSummary(u.name, files, u.used_bytes, u.quota_bytes) for u, files in rows]

    def set_quota(self, name: str, quota_bytes: int) -> None:
        """Limit what a user's files may take (0 = unlimited); existing files stay."""
        with self.db.write() as conn:
            user = store.get_user(conn, name)
            if user is None:
                raise NotFound(f"user {name!r}")
            store.set_quota(conn, user.id, quota_bytes)

    def gc(self, min_age: float, *, deep: bool = False) -> GcReport:
        """Remove blobs no node points to, uploads abandoned for ``min_age`` seconds, and the
        hidden rows of big COPYs a crash interrupted that long ago.

        A blob file is only removed if it has no row, or a row no node points to; files younger
        than ``min_age`` are left alone, since a running server may be about to commit them.
        ``deep``: list the whole blob store too (see Content.collect).
        """
        import time

        with self.db.read() as conn:
            stale = store.stale_staged_copies(conn, time.time() - min_age)
        for top in stale:  # before the blobs: their rows may hold the last use of some
            self.files.drop_staged_copy(top)
        return self.content.collect(min_age, deep=deep)
