"""Public links: from a token (and, if set, a password) to the actor that reads through it.

Tokens are looked up by their hash, so an unknown, revoked or expired token costs the same one
indexed query; all three answer "no such link" alike. Link passwords are bcrypt hashes, checked
with the same cache as user passwords and throttled like them: failures count against the link
and the client's address (see ``throttle``). Tokens themselves (192 random bits) cannot be
guessed, so unknown tokens are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from davdisk.auth.passwords import CredentialCache
from davdisk.auth.throttle import Attempt, Throttle
from davdisk.crypto.passwords import check_password
from davdisk.files.access import link_usable
from davdisk.files.api import Files
from davdisk.files.shares import token_hash
from davdisk.model import Actor, Share


@dataclass(frozen=True)
class LinkLogin:
    """What a token gives: nothing (``actor`` None and not ``needs_password``), a request for
    the link's password, or the actor."""

    actor: Actor | None
    needs_password: bool = False


class LinkAuthenticator:
    def __init__(self, files: Files, cache_seconds: float, throttle: Throttle) -> None:
        self.files = files
        self.throttle = throttle
        self._cache = CredentialCache(cache_seconds)

    def _share(self, token: str) -> Share | None:
        share = self.files.link_share(token_hash(token))
        return share if share is not None and link_usable(share) else None

    def login(self, token: str, password: str | None, address: str = "") -> LinkLogin:
        """What ``token`` (with ``password``, if the link has one) gives; raises
        :class:`~davdisk.auth.throttle.LoginThrottled` while this address is locked out for
        the link (or altogether) after failed passwords."""
        share = self._share(token)
        if share is None:
            return LinkLogin(None)
        if share.password_hash is not None:
            if password is None:
                return LinkLogin(None, needs_password=True)
            attempt = Attempt.link(share.id, address)
            self.throttle.check_local(attempt)
            if not self._cache.hit(token, password, share.password_hash):
                self.throttle.check_shared(attempt)
                reserved = self.throttle.reserve(attempt)  # see Throttle.reserve
                if not check_password(password, share.password_hash):
                    self.throttle.failed(attempt, reserved)
                    return LinkLogin(None, needs_password=True)
                self.throttle.success(attempt)
                self._cache.add(token, password, share.password_hash)
        return LinkLogin(Actor(0, f"link:{share.id}", share.node_id, link=share))
