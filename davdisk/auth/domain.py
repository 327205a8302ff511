"""Login: the WsgiDAV domain controller over davdisk's users.

:meth:`Authenticator.login` is the one place a user's password is checked. In order:

1. an app password of this user passes (one indexed query; never cached, so a revoked one
   fails on the next request). App passwords are principals of their own: 256 random bits
   cannot be guessed, so a valid one is never throttled, and failures of token-shaped passwords
   count against their own counters, not against the user's password (see ``throttle``);
2. a lockout this process knows of for this (address, user) refuses at once;
3. a credential this process verified recently passes (``passwords.CredentialCache``);
4. otherwise the database's lockout state is read, the attempt is counted as a failure in the
   database before it is checked (a reservation, undone if the password is right: concurrent
   guesses cannot all pass the throttle at once), and the password is checked with bcrypt,
   one check at a time per (user, password): concurrent requests with the same new
   credentials wait for the first one's verdict rather than each paying for bcrypt.

Unknown users go through the same steps (a token lookup, a bcrypt check against a dummy hash, a
counted failure), so response times and lockouts do not reveal which names exist.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Iterable
from typing import Any, final

from wsgidav.dav_error import DAVError
from wsgidav.dc.base_dc import BaseDomainController
from wsgidav.http_authenticator import HTTPAuthenticator

from davdisk import wsgidav_compat
from davdisk.auth.app_tokens import AppTokens, looks_like_token
from davdisk.auth.links import LinkAuthenticator
from davdisk.auth.passwords import CredentialCache
from davdisk.auth.throttle import Attempt, LoginThrottled, Throttle, client_ip
from davdisk.crypto.passwords import check_password, hash_password
from davdisk.files.api import Files
from davdisk.meta.db import Database
from davdisk.model import Actor
from davdisk.request_context import context

logger = logging.getLogger(__name__)


class Authenticator:
    def __init__(
        self,
        files: Files,
        db: Database,
        *,
        cost: int,
        cache_seconds: float,
        realm: str,
        throttle: Throttle,
    ) -> None:
        self.files = files
        self.realm = realm
        self.throttle = throttle
        self.tokens = AppTokens(db)
        self._cache = CredentialCache(cache_seconds)
        # Same cost as real hashes, so unknown names take as long as wrong passwords.
        self._dummy_hash = hash_password("davdisk-dummy-password", cost)

    @final
    def login(self, user_name: str, password: str, address: str = "") -> Actor | None:
        """The user these credentials log in, or None; raises :class:`LoginThrottled` while
        this address is locked out for the name, or (unless the credentials were verified
        before) locked out altogether."""
        found = self.files.login_record(user_name)
        actor, password_hash = found if found is not None else (None, self._dummy_hash)
        token = looks_like_token(password)
        if token and self.tokens.verify(password, actor.id if actor is not None else None):
            return actor
        if token:
            attempt = Attempt.app_password(user_name, address)
        else:
            attempt = Attempt.user(user_name, address)
        self.throttle.check_local(attempt)
        if actor is not None and self._cache.hit(user_name, password, password_hash):
            return actor
        with self._cache.verifying(user_name, password):
            if actor is not None and self._cache.hit(user_name, password, password_hash):
                return actor  # verified by another request while this one waited
            # A cheap read refuses during a lockout; the reservation (a write) makes concurrent
            # guesses count one after another (see Throttle.reserve).
            self.throttle.check_shared(attempt)
            reserved = self.throttle.reserve(attempt)
            if check_password(password, password_hash) and actor is not None:
                self.throttle.success(attempt)
                self._cache.add(user_name, password, password_hash)
                return actor
            self.throttle.failed(attempt, reserved)
        if actor is None:
            logger.info("login failed: unknown user")
        else:
            logger.info("login failed for user %r", user_name)
        return None


LINK_REALM = "davdisk public link"


class DavdiskDomainController(BaseDomainController):
    """Basic auth only: bcrypt hashes cannot answer Digest challenges.

    Users log in under ``/dav``. Under ``/public/<token>`` the token is the credential: no login
    for links without a password; for links with one, Basic auth with any user name and the
    link's password. An unknown token needs no login and then finds nothing (404).
    """

    def __init__(self, wsgidav_app: Any, config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, config)
        self.auth: Authenticator = config["davdisk"]["authenticator"]
        self.links: LinkAuthenticator = config["davdisk"]["links"]
        self.public_provider: Any = config["davdisk"]["public_provider"]

    def get_domain_realm(self, path_info: str, environ: dict[str, Any] | None) -> str:
        if environ is not None and wsgidav_compat.request_provider(environ) is self.public_provider:
            return LINK_REALM
        return self.auth.realm

    @staticmethod
    def _token(environ: dict[str, Any]) -> str:
        return environ["PATH_INFO"].lstrip("/").partition("/")[0]

    def require_authentication(self, realm: str, environ: dict[str, Any] | None) -> bool:
        if realm != LINK_REALM or environ is None:
            return True
        login = self.links.login(self._token(environ), None)
        if login.actor is not None:
            context(environ).actor = login.actor
        return login.needs_password

    def basic_auth_user(
        self, realm: str, user_name: str, password: str, environ: dict[str, Any]
    ) -> bool:
        address = client_ip(environ)
        try:
            if realm == LINK_REALM:
                actor = self.links.login(self._token(environ), password, address).actor
            else:
                actor = self.auth.login(user_name, password, address)
        except LoginThrottled as e:
            context(environ).auth_event = "throttled"
            # Raised through HTTPAuthenticator to dav/errors.py's ErrorPages, which answers it.
            raise DAVError(
                e.http_status, e.message, add_headers=[("Retry-After", str(e.retry_after))]
            ) from None
        if actor is None:
            context(environ).auth_event = "failed"
            return False
        context(environ).actor = actor
        return True

    def supports_http_digest_auth(self) -> bool:
        return False

    def digest_auth_user(self, realm: str, user_name: str, environ: dict[str, Any]) -> bool:
        return False


class BasicAuthenticator(HTTPAuthenticator):
    """WsgiDAV's authenticator, except that a malformed Basic header (bad base64, not UTF-8, no
    colon) is a failed login answered 401, not an internal error."""

    def handle_basic_auth_request(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        try:
            encoded = environ["HTTP_AUTHORIZATION"][len("Basic ") :].strip()
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if ":" not in decoded:
            context(environ).auth_event = "failed"
            return self.send_basic_auth_response(environ, start_response)
        return super().handle_basic_auth_request(environ, start_response)
