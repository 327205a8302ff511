"""A cache of verified credentials (the hashing itself is ``crypto/passwords.py``).

Stored passwords are bcrypt hashes. Every WebDAV request carries Basic credentials, and bcrypt at
cost 12 takes ~0.25 s, so a verified (user, password) pair is remembered for a short while — keyed
by an HMAC of both under a per-process random secret, so the cache never holds a password or
anything that would let one be tested offline after the process ends.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class CredentialCache:
    """Remembers verified (user, password) pairs for ``ttl`` seconds, at most ``size`` of them."""

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self._ttl = ttl
        self._size = size
        self._secret = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        # Pairs being verified now: a lock each, and how many threads hold or wait for it.
        self._verifying: dict[bytes, list[Any]] = {}

    def _key(self, user: str, password: str) -> bytes:
        msg = user.encode("utf-8") + b"\0" + password.encode("utf-8")
        return hmac.new(self._secret, msg, hashlib.sha256).digest()

    @contextmanager
    def verifying(self, user: str, password: str) -> Iterator[None]:
        """Held while one (user, password) pair is checked with bcrypt: a client that opens
        several connections at once (Explorer, rclone's transfers, a benchmark's threads) sends
        the same new credentials on each, and all but the first then wait for its verdict and
        find it in the cache instead of each spending a bcrypt check (~0.25 s of CPU)."""
        key = self._key(user, password)
        with self._lock:
            waiting = self._verifying.get(key)
            if waiting is None:
                waiting = self._verifying[key] = [threading.Lock(), 0]
            waiting[1] += 1
        try:
            with waiting[0]:
                yield
        finally:
            with self._lock:
                waiting[1] -= 1
                if waiting[1] == 0:
                    del self._verifying[key]

    def hit(self, user: str, password: str, password_hash: str) -> bool:
        """True if this pair was verified against this very hash within the ttl."""
        key = self._key(user, password)
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return False
            expires, for_hash = found
            if expires < time.monotonic() or not hmac.compare_digest(for_hash, password_hash):
                del self._entries[key]
                return False
            self._entries.move_to_end(key)
            return True

    def add(self, user: str, password: str, password_hash: str) -> None:
        key = self._key(user, password)
        with self._lock:
            self._entries[key] = (time.monotonic() + self._ttl, password_hash)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
