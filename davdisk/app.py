"""Builds the WSGI application: WsgiDAV mounted at ``/dav`` over a data dir's services, plus the
few answers outside ``/dav`` (landing page, anonymous OPTIONS probes)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote

from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from davdisk.auth.domain import Authenticator, BasicAuthenticator, DavdiskDomainController
from davdisk.auth.links import LinkAuthenticator
from davdisk.auth.principal import ActorPrincipal
from davdisk.auth.throttle import Throttle
from davdisk.dav.errors import ErrorPages
from davdisk.dav.locks import SQLLockManager, SQLLockStorage
from davdisk.dav.provider import DavdiskProvider
from davdisk.dav.public import PUBLIC_PREFIX, PublicProvider
from davdisk.services import Services
from davdisk.web.audit import AuditLog
from davdisk.web.errors import ServerErrors
from davdisk.web.inert import InertContent
from davdisk.web.limits import BodyAfterLogin, RequestLimits
from davdisk.web.links import LINK_PREFIX, LinkPages
from davdisk.web.transport import Transport

logger = logging.getLogger(__name__)

DAV_PREFIX = "/dav"
DAV_HEADERS = [("DAV", "1, 2"), ("MS-Author-Via", "DAV")]
ROOT_ALLOW = "OPTIONS, GET, HEAD, PROPFIND, PROPPATCH, MKCOL, PUT, DELETE, COPY, MOVE, LOCK, UNLOCK"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _simple(start_response: Callable[..., Any], status: str, body: bytes, extra=()) -> list[bytes]:
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        *extra,
    ]
    start_response(status, headers)
    return [body]


def _without_body(chunks: Iterable[bytes]) -> Iterator[bytes]:
    try:
        for _ in chunks:
            pass
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    yield b""


def build_app(services: Services) -> WSGIApp:
    config = services.config
    # One throttle for user and link logins, so an address's failures count across both.
    throttle = Throttle(
        services.db,
        free_failures=config.get("auth", "throttle_free_failures"),
        address_free_failures=config.get("auth", "throttle_address_free_failures"),
        max_seconds=config.get("auth", "throttle_max_seconds"),
    )
    authenticator = Authenticator(
        services.files,
        services.db,
        cost=config.get("auth", "bcrypt_cost"),
        cache_seconds=config.get("auth", "cache_seconds"),
        realm=config.get("auth", "realm"),
        throttle=throttle,
    )
    provider = DavdiskProvider(services.files)
    public = PublicProvider(services.files)
    links = LinkAuthenticator(services.files, config.get("auth", "cache_seconds"), throttle)
    lock_storage = SQLLockStorage(services.db)
    dav = WsgiDAVApp(
        {
            "provider_mapping": {DAV_PREFIX: provider, PUBLIC_PREFIX: public},
            "http_authenticator": {
                "domain_controller": DavdiskDomainController,
                "accept_basic": True,
                "accept_digest": False,
                "default_to_digest": False,
            },
            "davdisk": {
                "authenticator": authenticator,
                "links": links,
                "public_provider": public,
            },
            "lock_storage": lock_storage,
            "property_manager": None,
            # ActorPrincipal: locks belong to who logged in, not to the name the client typed.
            # BodyAfterLogin: a request body is read only once its sender has logged in.
            "middleware_stack": [
                ErrorPages,
                BasicAuthenticator,
                ActorPrincipal,
                BodyAfterLogin,
                RequestResolver,
            ],
            "block_size": config.get("dav", "block_size"),
            "add_header_MS_Author_Via": True,
            "suppress_version_info": True,
            "verbose": 1,
            "logging": {"enable": False},
        }
    )
    # Replace WsgiDAV's in-process lock manager with one that serialises through the database.
    lock_manager = SQLLockManager(
        lock_storage,
        lambda ref: quote(DAV_PREFIX) + quote(provider.ref_url_to_path(ref)),
        services.files.exists_at_lock_root,
    )
    dav.lock_manager = lock_manager
    provider.set_lock_manager(lock_manager)
    public.set_lock_manager(lock_manager)
    link_pages = LinkPages(services.files, links, dav)

    landing = (
        # No version: it would tell anyone who can reach the port which holes to try.
        f"davdisk\n\nMount {DAV_PREFIX}/ with a WebDAV client "
        "(Finder, Explorer, rclone, cadaver...).\n"
    ).encode()

    def heads(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "HEAD":
            # Whatever answers (401 pages included), a HEAD response carries no body.
            return _without_body(route(environ, start_response))
        return route(environ, start_response)

    def route(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ["REQUEST_METHOD"]
        if method == "OPTIONS" and path in ("/", "*", DAV_PREFIX, DAV_PREFIX + "/"):
            # Windows' mini-redirector probes these before it sends credentials.
            return _simple(start_response, "200 OK", b"", [*DAV_HEADERS, ("Allow", ROOT_ALLOW)])
        if path == DAV_PREFIX or path.startswith(DAV_PREFIX + "/"):
            return dav(environ, start_response)
        if path.startswith(PUBLIC_PREFIX + "/"):
            return dav(environ, start_response)
        if path.startswith(LINK_PREFIX):
            return link_pages(environ, start_response)
        if path == "/" and method in ("GET", "HEAD"):
            return _simple(start_response, "200 OK", b"" if method == "HEAD" else landing)
        return _simple(start_response, "404 Not Found", b"not found\n")

    # Outermost first: the audit log sees every answer, every 5xx is logged with its cause,
    # every answer is inert in a browser, the transport policy runs before any limit or login,
    # and the limits before any work.
    return AuditLog(
        ServerErrors(InertContent(Transport(RequestLimits(heads, config), config))), config
    )
