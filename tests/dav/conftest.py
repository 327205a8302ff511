"""In-process WebDAV tests: the real WSGI app over a temp data dir, called without sockets."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from davdisk import config as config_mod
from davdisk.app import build_app
from davdisk.services import Services
from tests.pg import drop_database, use_test_database

PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-22"}


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Client:
    """Calls the WSGI app like a server would, as one user (or anonymously)."""

    def __init__(self, app: Any, user: str | None) -> None:
        self.app = app
        self.user = user

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        chunked: bool = False,
    ) -> Response:
        environ: dict[str, Any] = {}
        setup_testing_defaults(environ)
        environ.update(
            REQUEST_METHOD=method,
            # As a real server does: the raw (UTF-8) bytes of the path, as latin-1 text (PEP 3333).
            PATH_INFO=path.encode("utf-8").decode("latin-1"),
            SERVER_NAME="localhost",
            SERVER_PORT="80",
            HTTP_HOST="localhost",
            # As cheroot does; a loopback client may log in over plain HTTP (http/transport.py).
            REMOTE_ADDR="127.0.0.1",
        )
        environ["wsgi.input"] = io.BytesIO(body)
        if chunked:
            environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        else:
            environ["CONTENT_LENGTH"] = str(len(body))
        if self.user:
            token = base64.b64encode(f"{self.user}:{PASSWORDS[self.user]}".encode()).decode()
            environ["HTTP_AUTHORIZATION"] = f"Basic {token}"
        for k, v in (headers or {}).items():
            key = k.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = v
            else:
                environ[f"HTTP_{key}"] = v
        captured: dict[str, Any] = {}

        def start_response(status: str, hdrs: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = int(status.split()[0])
            captured["headers"] = {k.lower(): v for k, v in hdrs}
            return lambda data: None

        result = self.app(environ, start_response)
        try:
            data = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return Response(captured["status"], captured["headers"], data)

    def __getattr__(self, method: str) -> Any:
        def call(path: str, body: bytes = b"", **headers: str) -> Response:
            return self.request(
                method.upper(), path, body, {k.replace("_", "-"): v for k, v in headers.items()}
            )

        return call


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    cfg = config_mod.load(None, data_dir=tmp_path / "data")
    cfg.set("auth", "bcrypt_cost", 4, "test")
    use_test_database(cfg)  # PostgreSQL in a run given one (python -m tests.pg -- pytest ...)
    svc = Services.open(cfg, create=True)
    for name, password in PASSWORDS.items():
        svc.admin.add_user(name, password)
    yield svc
    svc.close()
    drop_database(cfg.database_url)


@pytest.fixture
def app(services: Services) -> Any:
    return build_app(services)


@pytest.fixture
def alice(app: Any) -> Client:
    return Client(app, "alice")


@pytest.fixture
def bob(app: Any) -> Client:
    return Client(app, "bob")


@pytest.fixture
def anon(app: Any) -> Client:
    return Client(app, None)
