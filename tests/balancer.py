"""A throwaway nginx load balancer for tests: round robin over N davdisk instances.

Debian's nginx (/usr/sbin/nginx) runs in the foreground on a free loopback port, with its
config, pid file, logs and temp dirs in a temp dir of its own (``-p``, ``-e``), so it needs no
rights on /var/log/nginx or /run and clashes with no installed nginx; as a user too. The config
is the one the docs recommend for davdisk behind nginx, minus TLS:

- request bodies and responses stream (``proxy_request_buffering off``, ``proxy_buffering
  off``, no body size limit): a 10 GB PUT is not spooled to the balancer's disk first;
- ``Host`` is passed as the client sent it, so a MOVE/COPY ``Destination`` (an absolute URL
  the client built from the balancer's address) names the host the instance was asked on;
- HTTP/1.1 with keep-alive to the instances (and chunked request bodies passed unbuffered);
- every method passes (PROPFIND, LOCK, MKCOL...: nginx proxies methods it does not know);
- a request that cannot reach an instance (connection refused: one being restarted) is
  retried on the next one, but only if it is idempotent; see ``proxy_next_upstream`` below.

    with balancer(["127.0.0.1:8081", "127.0.0.1:8082"]) as lb:
        requests.get(lb.url + "/dav/")
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

NGINX = "/usr/sbin/nginx"
START_TIMEOUT = 30.0

_CONFIG = """\
{user}worker_processes 1;
# Two descriptors a proxied connection; a user's soft limit is often 1024.
worker_rlimit_nofile 8192;
pid {root}/nginx.pid;
error_log {root}/error.log notice;

events {{
    worker_connections 1024;
}}

http {{
    # "$upstream_addr": the instance(s) tried, the last one answered (for reading a failed
    # test's log: nginx writes a line as a request ends, after the client has its answer).
    log_format balancer '$remote_addr $status $request_length $request_time "$request" '
                        '"$upstream_addr"';
    access_log {root}/access.log balancer;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;

    upstream davdisk {{
        # A failed instance is left out for 2 s, then tried again: a restarted one is back
        # soon. Round robin is nginx's default.
{servers}
        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{port};
        # No limit on uploads (davdisk has its quotas), and long WebDAV URLs fit.
        client_max_body_size 0;
        large_client_header_buffers 8 64k;

        location / {{
            proxy_pass http://davdisk;
            # Keep-alive to the instances needs 1.1 and no "Connection: close" passed on.
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # Stream both ways: no spooling of uploads to disk, no buffering of downloads.
            proxy_request_buffering off;
            proxy_buffering off;
            # Retry elsewhere when an instance cannot be reached (refused: restarting) or
            # does not answer in time, before any response came back. Not for non-idempotent
            # methods (POST, LOCK, PATCH): nginx's default, as "non_idempotent" is not listed,
            # because the first instance may have done the work before it failed. An upload
            # whose body has started streaming is not retried either (the body is gone).
            proxy_next_upstream error timeout;
            proxy_connect_timeout 5s;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Balancer:
    """nginx started in front of ``upstreams`` (``host:port`` each), its files in ``root``
    (made if missing, left to its owner: a test's tmp_path, say); :meth:`stop` ends it."""

    def __init__(self, upstreams: Sequence[str], root: Path) -> None:
        if not upstreams:
            raise ValueError("a balancer needs at least one upstream")
        self.upstreams = list(upstreams)
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self.port = _free_port()
            try:
                self._start()
                return
            except RuntimeError as exc:
                # Another process took the port between choosing and binding it: a new one.
                if "Address already in use" not in str(exc) or attempt == 2:
                    raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.root / "access.log"

    def _write_config(self) -> None:
        servers = "\n".join(
            f"        server {u} max_fails=1 fail_timeout=2s;" for u in self.upstreams
        )
        # As root the workers would run as "nobody", who may not enter our 0700 temp dir;
        # as anyone else nginx ignores "user" (with a warning), so it is left out.
        user = "user root;\n" if os.geteuid() == 0 else ""
        config = _CONFIG.format(user=user, root=self.root, servers=servers, port=self.port)
        (self.root / "nginx.conf").write_text(config)

    def _start(self, timeout: float = START_TIMEOUT) -> None:
        self._write_config()
        with open(self.root / "stderr.log", "wb") as stderr:
            self.process = self._spawn(stderr)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited ({self.process.returncode}):\n{self.log_tail()}")
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen within {timeout:.0f} s:\n{self.log_tail()}")

    def _spawn(self, stderr: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                NGINX,
                "-p",
                str(self.root),
                "-c",
                str(self.root / "nginx.conf"),
                # Before it reads the config nginx opens its built-in error log path
                # (/var/log/nginx/error.log): -e keeps that in our dir too.
                "-e",
                str(self.root / "error.log"),
                "-g",
                "daemon off;",
            ],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )

    def log_tail(self, size: int = 3000) -> str:
        text = ""
        for name in ("stderr.log", "error.log"):
            path = self.root / name
            if path.exists():
                text += path.read_text(errors="replace")[-size:]
        return text

    def _workers(self) -> set[int]:
        assert self.process is not None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return {int(c) for c in children}

    def reload(self, upstreams: Sequence[str], timeout: float = START_TIMEOUT) -> None:
        """Balance over ``upstreams`` from now on; requests under way finish where they are."""
        assert self.process is not None
        self.upstreams = list(upstreams)
        self._write_config()
        old = self._workers()
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while not self._workers() - old:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"nginx did not reload:\n{self.log_tail()}")
            time.sleep(0.05)
        # The old worker may still take a new connection until the master has told it to stop
        # (after starting the new one); it exits once its requests are done: wait for that, a
        # few seconds at most (a long upload keeps it, and the caller need not wait for that).
        until = time.monotonic() + 5
        while self._workers() & old and time.monotonic() < until:
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            # nginx's fast shutdown (TERM): the data is thrown away, nothing to drain.
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self.process = None


@contextmanager
def balancer(upstreams: Sequence[str]) -> Iterator[Balancer]:
    """A started nginx over ``upstreams``; stopped and its dir removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="davdisk-nginx-"))
    try:
        lb = Balancer(upstreams, root)
        try:
            yield lb
        finally:
            lb.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
