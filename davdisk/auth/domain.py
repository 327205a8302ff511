"""Login: the WsgiDAV domain controller over davdisk's users.

:meth:`Authenticator.login` is the one place a password is checked. Unknown users cost one bcrypt
verification against a dummy hash, like a wrong password, so response times do not reveal which
names exist. A verified pair is cached briefly (see ``passwords.CredentialCache``).
"""

from __future__ import annotations

import logging
from typing import Any, final

from wsgidav.dc.base_dc import BaseDomainController

from davdisk.auth.links import LinkAuthenticator
from davdisk.auth.passwords import CredentialCache, check_password, hash_password
from davdisk.files.api import Actor, Files

logger = logging.getLogger(__name__)

ACTOR_KEY = "davdisk.actor"


class Authenticator:
    def __init__(self, files: Files, *, cost: int, cache_seconds: float, realm: str) -> None:
        self.files = files
        self.realm = realm
        self._cache = CredentialCache(cache_seconds)
        # Same cost as real hashes, so unknown names take as long as wrong passwords.
        self._dummy_hash = hash_password("davdisk-dummy-password", cost)

    @final
    def login(self, user_name: str, password: str) -> Actor | None:
        found = self.files.login_record(user_name)
        if found is None:
            check_password(password, self._dummy_hash)
            logger.info("login failed: unknown user")
            return None
        actor, password_hash = found
        if self._cache.hit(user_name, password, password_hash):
            return actor
        if not check_password(password, password_hash):
            logger.info("login failed for user %r", user_name)
            return None
        self._cache.add(user_name, password, password_hash)
        return actor


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
        if environ is not None and environ.get("wsgidav.provider") is self.public_provider:
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
            environ[ACTOR_KEY] = login.actor
        return login.needs_password

    def basic_auth_user(
        self, realm: str, user_name: str, password: str, environ: dict[str, Any]
    ) -> bool:
        if realm == LINK_REALM:
            actor = self.links.login(self._token(environ), password).actor
        else:
            actor = self.auth.login(user_name, password)
        if actor is None:
            return False
        environ[ACTOR_KEY] = actor
        return True

    def supports_http_digest_auth(self) -> bool:
        return False

    def digest_auth_user(self, realm: str, user_name: str, environ: dict[str, Any]) -> bool:
        return False
