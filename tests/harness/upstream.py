"""A stand-in instance behind the balancer in tests/harness/test_balancer.py: answers any
method with what it received, as JSON, and touches ``<marker dir>/<name>`` as soon as the
first bytes of a request body arrive (before the client has sent the rest, if it streams).

    python tests/harness/upstream.py NAME MARKER_DIR   # prints its port, serves until killed
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the balancer's connections to instances
    name = ""
    markers = Path()

    def __getattr__(self, attr: str) -> Any:
        # http.server dispatches to do_<METHOD>: every method, PROPFIND and LOCK too.
        if attr.startswith("do_"):
            return self._answer
        raise AttributeError(attr)

    def _body(self) -> tuple[int, bool]:
        """Read the body (by length or chunked); its size and whether it came chunked."""
        received = 0

        def got(data: bytes) -> None:
            nonlocal received
            if data and received == 0:
                (self.markers / self.name).touch()
            received += len(data)

        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return received, True
                while size:
                    data = self.rfile.read(min(size, 65536))
                    got(data)
                    size -= len(data)
                self.rfile.readline()
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining:
            data = self.rfile.read1(min(remaining, 65536))
            if not data:
                break
            got(data)
            remaining -= len(data)
        return received, False

    def _answer(self) -> None:
        received, chunked = self._body()
        answer = json.dumps(
            {
                "name": self.name,
                "method": self.command,
                "path": self.path,
                "host": self.headers.get("Host"),
                "destination": self.headers.get("Destination"),
                "received": received,
                "chunked": chunked,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(name: str, markers: str) -> None:
    Handler.name = name
    Handler.markers = Path(markers)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
