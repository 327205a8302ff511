"""Builds the WSGI application over a data dir's services: a mount table (WsgiDAV at ``/dav``,
``/public/<token>`` and Nextcloud's versions and trash trees under ``/remote.php/dav``, link
pages at ``/s/<token>``, the landing page, the anonymous OPTIONS probes) inside one stack of
middleware every request passes through."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from davdisk.auth.domain import Authenticator, BasicAuthenticator, DavdiskDomainController
from davdisk.auth.links import LinkAuthenticator
from davdisk.auth.principal import ActorPrincipal
from davdisk.auth.throttle import Throttle
from davdisk.config import Config
from davdisk.dav.errors import ErrorPages
from davdisk.dav.locks import SQLLockManager, SQLLockStorage
from davdisk.dav.provider import DavdiskProvider
from davdisk.dav.public import PUBLIC_PREFIX, PublicProvider
from davdisk.dav.trashbin import TRASHBIN_PREFIX, TrashbinProvider
from davdisk.dav.versions import VERSIONS_PREFIX, VersionsProvider
from davdisk.http.audit import AuditLog
from davdisk.http.errors import ServerErrors
from davdisk.http.inert import InertContent
from davdisk.http.limits import BodyAfterLogin, RequestLimits
from davdisk.http.links import LINK_PREFIX, LinkPages
from davdisk.http.mounts import Mount, Mounts, WSGIApp, plain, without_head_bodies
from davdisk.http.transport import Transport
from davdisk.services import Services

logger = logging.getLogger(__name__)

DAV_PREFIX = "/dav"
DAV_HEADERS = [("DAV", "1, 2"), ("MS-Author-Via", "DAV")]
ROOT_ALLOW = "OPTIONS, GET, HEAD, PROPFIND, PROPPATCH, MKCOL, PUT, DELETE, COPY, MOVE, LOCK, UNLOCK"

_OPTIONS = frozenset({"OPTIONS"})
_GET = frozenset({"GET", "HEAD"})
# No version: it would tell anyone who can reach the port which holes to try.
LANDING = (
    f"davdisk\n\nMount {DAV_PREFIX}/ with a WebDAV client (Finder, Explorer, rclone, cadaver...).\n"
).encode()


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
    # Nextcloud's paths only: a /dav/versions alias would hide a user's own folder of that name.
    versions = VersionsProvider(services.files)
    trashbin = TrashbinProvider(services.files)
    links = LinkAuthenticator(services.files, config.get("auth", "cache_seconds"), throttle)
    lock_storage = SQLLockStorage(services.db)
    dav = WsgiDAVApp(
        {
            "provider_mapping": {
                DAV_PREFIX: provider,
                PUBLIC_PREFIX: public,
                VERSIONS_PREFIX: versions,
                TRASHBIN_PREFIX: trashbin,
            },
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
    for history in (versions, trashbin):
        history.set_lock_manager(None)  # nothing there can be locked
    link_pages = LinkPages(services.files, links, dav)

    # Where each request goes: the first mount that matches answers it.
    probe = plain("200 OK", b"", *DAV_HEADERS, ("Allow", ROOT_ALLOW))
    routes = Mounts(
        [
            # Windows' mini-redirector probes these before it sends credentials.
            Mount(probe, at=("*", "/", DAV_PREFIX, DAV_PREFIX + "/"), methods=_OPTIONS),
            Mount(dav, at=(DAV_PREFIX,), under=DAV_PREFIX),  # the users' tree
            Mount(dav, under=PUBLIC_PREFIX),  # the trees of public links
            # a user's versions and trash, as Nextcloud's clients address them
            Mount(dav, at=(VERSIONS_PREFIX,), under=VERSIONS_PREFIX),
            Mount(dav, at=(TRASHBIN_PREFIX,), under=TRASHBIN_PREFIX),
            Mount(link_pages, under=LINK_PREFIX.rstrip("/")),  # links seen in a browser
            Mount(_landing, at=("/",), methods=_GET),
        ],
        fallback=plain("404 Not Found", b"not found\n"),
    )
    return _middleware(routes, config)


def _middleware(app: WSGIApp, config: Config) -> WSGIApp:
    """``app`` inside every layer each request passes through, outermost first: the audit log
    sees every answer, every 5xx is logged with its cause, every answer is inert in a
    browser, the transport policy runs before any limit or login, the limits before any
    work, and no answer to a HEAD has a body. (The login and WebDAV's own layers are inside
    the WsgiDAV app: its middleware_stack above.)"""
    layers: list[Callable[[WSGIApp], WSGIApp]] = [
        lambda inner: AuditLog(inner, config),
        ServerErrors,
        InertContent,
        lambda inner: Transport(inner, config),
        lambda inner: RequestLimits(inner, config),
        without_head_bodies,
    ]
    for layer in reversed(layers):
        app = layer(app)
    return app


def _landing(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    head = environ["REQUEST_METHOD"] == "HEAD"
    return plain("200 OK", b"" if head else LANDING)(environ, start_response)
