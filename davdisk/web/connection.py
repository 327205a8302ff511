"""Lets the application close a connection after its answer, instead of draining the request body.

When an application answers without reading the whole request body (a 401 to an anonymous PUT,
a 409, a refusal by ``web/limits.py``), cheroot reads the rest before it sends the answer, so the
connection can be reused - and reads it with one ``read(remaining)``, which holds the whole
remainder in memory: a 1 GiB Content-Length costs 1 GiB of RAM (measured). Only a 413 makes
cheroot close instead. This gateway puts a callable under :data:`CLOSE_CONNECTION` in every
request's environ that marks the connection to be closed after the answer (so no draining);
servers without it (tests that call the WSGI app directly) simply lack the key.
"""

from __future__ import annotations

from typing import Any

from cheroot import wsgi

CLOSE_CONNECTION = "davdisk.close_connection"


class ClosingGateway(wsgi.Gateway_10):
    def get_environ(self) -> dict[str, Any]:  # type: ignore[override]  # stub says None
        environ: dict[str, Any] = super().get_environ()
        request = self.req

        def close_connection() -> None:
            request.close_connection = True

        environ[CLOSE_CONNECTION] = close_connection
        return environ
