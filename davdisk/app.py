"""Builds the WSGI application: services for a data dir, and WsgiDAV mounted at ``/dav``.

:class:`Services` opens everything a data dir holds (database, blob store, master key) and is
shared by the server and the CLI. :func:`build_app` puts the WebDAV face in front of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from wsgidav.error_printer import ErrorPrinter
from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from davdisk import __version__
from davdisk.auth.domain import Authenticator, DavdiskDomainController
from davdisk.blobs.local import LocalBlobStore
from davdisk.config import Config
from davdisk.crypto.keys import load_master_key
from davdisk.dav.locks import SQLLockManager, SQLLockStorage
from davdisk.dav.provider import DavdiskProvider
from davdisk.errors import UsageError
from davdisk.files.admin import Admin
from davdisk.files.api import Files
from davdisk.files.keyring import Keyring
from davdisk.meta.db import Database

logger = logging.getLogger(__name__)

DAV_PREFIX = "/dav"
DAV_HEADERS = [("DAV", "1, 2"), ("MS-Author-Via", "DAV")]
ROOT_ALLOW = "OPTIONS, GET, HEAD, PROPFIND, PROPPATCH, MKCOL, PUT, DELETE, COPY, MOVE, LOCK, UNLOCK"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class Services:
    config: Config
    db: Database
    files: Files
    admin: Admin

    @classmethod
    def open(cls, config: Config, *, create: bool) -> Services:
        """Open the data dir; with ``create``, make whatever is missing (first start)."""
        data = config.data_dir
        if not data.is_dir():
            if not create:
                raise UsageError(f"no data dir at {data} (start the server or add a user first)")
            data.mkdir(parents=True, mode=0o700)
        master = load_master_key(config.master_key_file, create=create)
        db = Database(config.database_url, pool_size=config.get("server", "threads") + 4)
        db.migrate()
        blobs = LocalBlobStore(config.blob_dir)
        files = Files(db, blobs, Keyring(db, master))
        return cls(config, db, files, Admin(files, config.get("auth", "bcrypt_cost")))

    def close(self) -> None:
        self.db.dispose()


def _simple(start_response: Callable[..., Any], status: str, body: bytes, extra=()) -> list[bytes]:
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        *extra,
    ]
    start_response(status, headers)
    return [body]


def build_app(services: Services) -> WSGIApp:
    config = services.config
    authenticator = Authenticator(
        services.files,
        cost=config.get("auth", "bcrypt_cost"),
        cache_seconds=config.get("auth", "cache_seconds"),
        realm=config.get("auth", "realm"),
    )
    provider = DavdiskProvider(services.files)
    lock_storage = SQLLockStorage(services.db)
    dav = WsgiDAVApp(
        {
            "provider_mapping": {DAV_PREFIX: provider},
            "http_authenticator": {
                "domain_controller": DavdiskDomainController,
                "accept_basic": True,
                "accept_digest": False,
                "default_to_digest": False,
            },
            "davdisk": {"authenticator": authenticator},
            "lock_storage": lock_storage,
            "property_manager": None,
            "middleware_stack": [ErrorPrinter, HTTPAuthenticator, RequestResolver],
            "block_size": config.get("dav", "block_size"),
            "add_header_MS_Author_Via": True,
            "suppress_version_info": True,
            "verbose": 1,
            "logging": {"enable": False},
        }
    )
    # Replace WsgiDAV's in-process lock manager with one that serialises through the database.
    lock_manager = SQLLockManager(
        lock_storage, lambda ref: quote(DAV_PREFIX) + quote(provider.ref_url_to_path(ref))
    )
    dav.lock_manager = lock_manager
    provider.set_lock_manager(lock_manager)

    landing = (
        f"davdisk {__version__}\n\nMount {DAV_PREFIX}/ with a WebDAV client "
        "(Finder, Explorer, rclone, cadaver...).\n"
    ).encode()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ["REQUEST_METHOD"]
        if method == "OPTIONS" and path in ("/", "*", DAV_PREFIX, DAV_PREFIX + "/"):
            # Windows' mini-redirector probes these before it sends credentials.
            return _simple(start_response, "200 OK", b"", [*DAV_HEADERS, ("Allow", ROOT_ALLOW)])
        if path == DAV_PREFIX or path.startswith(DAV_PREFIX + "/"):
            return dav(environ, start_response)
        if path == "/" and method in ("GET", "HEAD"):
            return _simple(start_response, "200 OK", b"" if method == "HEAD" else landing)
        return _simple(start_response, "404 Not Found", b"not found\n")

    return app
