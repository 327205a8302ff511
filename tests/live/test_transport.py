"""Plain HTTP from other machines, and reverse proxies, against a real server.

The server listens on a non-loopback address of this machine. A client connecting from that
address is, to the server, another machine (REMOTE_ADDR is not loopback); the same client
connecting from 127.0.0.1 to the same listener is this machine. Without a global address and as
root, a /32 test address is added to ``lo`` for the module and removed after.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live.conftest import (
    ALICE,
    HARNESS_CONFIG,
    USERS,
    Server,
    ServerFactory,
    cli,
    describe,
)

FALLBACK_ADDRESS = "198.51.100.77"  # TEST-NET-2
ALICE_ONLY = {ALICE: USERS[ALICE]}
HSTS = "max-age=31536000"
PROXY_HEADERS = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "public.example",
}


def _global_ipv4() -> str | None:
    try:
        out = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "scope", "global"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except OSError:
        out = ""
    m = re.search(r"\binet (\d+\.\d+\.\d+\.\d+)/", out)
    return m.group(1) if m else None


@pytest.fixture(scope="module")
def remote_address() -> Iterator[str]:
    """A non-loopback IPv4 address of this machine."""
    found = _global_ipv4()
    if found:
        yield found
        return
    if os.geteuid() != 0:
        pytest.fail("no global IPv4 address, and not root to add one to lo for this test")
    subprocess.run(["ip", "addr", "add", f"{FALLBACK_ADDRESS}/32", "dev", "lo"], check=True)
    try:
        yield FALLBACK_ADDRESS
    finally:
        subprocess.run(["ip", "addr", "del", f"{FALLBACK_ADDRESS}/32", "dev", "lo"], check=True)


def _config(directory: Path, server_settings: str) -> Path:
    path = directory / f"transport-{uuid.uuid4().hex[:8]}.toml"
    path.write_text(HARNESS_CONFIG + "\n[server]\n" + server_settings)
    return path


@pytest.fixture(scope="module")
def public_server(
    tmp_path_factory: pytest.TempPathFactory, remote_address: str
) -> Iterator[Server]:
    """Plain HTTP on the non-loopback address; 127.0.0.1 is a trusted proxy."""
    base = tmp_path_factory.mktemp("transport")
    factory = ServerFactory(base)
    config = _config(base, 'trusted_proxies = ["127.0.0.1"]\n')
    srv = factory(users=ALICE_ONLY, extra_args=("--host", remote_address), config=config)
    assert srv.host == remote_address
    yield srv
    factory.finish()


def request(
    srv: Server,
    source: str,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    user: str | None = ALICE,
) -> tuple[int, dict[str, str], bytes]:
    """One request to ``srv`` sent from the local address ``source``."""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=30, source_address=(source, 0))
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        hdrs = {"Host": srv.netloc, "Content-Length": str(len(body or b""))}
        if user is not None:
            hdrs["Authorization"] = srv.auth_header(user)
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def assert_refused(answer: tuple[int, dict[str, str], bytes]) -> None:
    status, headers, body = answer
    assert status == 403, answer
    assert "www-authenticate" not in headers, headers
    assert "strict-transport-security" not in headers, headers
    assert b"https://" in body, body


def test_remote_plain_http_is_refused_and_nothing_is_written(
    public_server: Server, remote_address: str
) -> None:
    srv, remote, local = public_server, remote_address, "127.0.0.1"
    assert "clients on other machines are refused (403)" in srv.log()
    name = f"/dav/remote-{uuid.uuid4().hex[:8]}.txt"

    assert_refused(request(srv, remote, "PUT", name, body=b"over plain http"))
    assert_refused(request(srv, remote, "PROPFIND", "/dav/", {"Depth": "1"}))
    # No password offered: still no 401 challenge that would make a client send one.
    assert_refused(request(srv, remote, "PROPFIND", "/dav/", {"Depth": "1"}, user=None))
    assert_refused(request(srv, remote, "GET", name, user=None))
    # cheroot takes wsgi.url_scheme from an absolute-form OPTIONS target (other methods get a
    # 400 from it): a plain-HTTP request saying https:// must not count as HTTPS.
    assert_refused(request(srv, remote, "OPTIONS", f"https://{srv.netloc}/dav/folder/"))
    # Forwarding headers from an address that is not a trusted proxy are not believed.
    spoof = {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "https"}
    assert_refused(request(srv, remote, "PUT", name, spoof, body=b"x"))
    assert_refused(request(srv, remote, "PUT", name, PROXY_HEADERS, body=b"x"))

    # What needs no credentials still answers.
    for target in ("/", "/dav/"):
        status, headers, _ = request(srv, remote, "OPTIONS", target, user=None)
        assert status == 200 and headers["dav"] == "1, 2", (target, status)
    # Whatever OPTIONS * answers, the transport does not stand in its way.
    star = request(srv, remote, "OPTIONS", "*", user=None)[0]
    assert star != 403 and star == request(srv, local, "OPTIONS", "*", user=None)[0]
    assert request(srv, remote, "GET", "/", user=None)[0] == 200

    # Nothing was written; the same requests from this machine work.
    assert request(srv, local, "GET", name)[0] == 404
    assert request(srv, local, "PUT", name, body=b"from loopback")[0] == 201
    status, _, body = request(srv, local, "GET", name)
    assert (status, body) == (200, b"from loopback")


def test_remote_plain_http_cannot_use_a_public_link(
    public_server: Server, remote_address: str
) -> None:
    srv = public_server
    name = f"/dav/linked-{uuid.uuid4().hex[:8]}.txt"
    assert request(srv, "127.0.0.1", "PUT", name, body=b"shared")[0] == 201
    proc = cli(srv.data_dir, "share", "link", ALICE, name.removeprefix("/dav"))
    assert proc.returncode == 0, describe(proc)
    token = proc.stdout.strip().rsplit("/s/", 1)[1]
    for target in (f"/s/{token}", f"/public/{token}/{name.rsplit('/', 1)[1]}"):
        assert_refused(request(srv, remote_address, "GET", target, user=None))
        assert request(srv, "127.0.0.1", "GET", target, user=None)[0] == 200, target


def test_a_refused_upload_is_not_read(public_server: Server, remote_address: str) -> None:
    """The refusal answers at once and hangs up: it does not wait for (or store) the body."""
    srv = public_server
    with socket.create_connection((srv.host, srv.port), 30, (remote_address, 0)) as sock:
        head = (
            f"PUT /dav/huge.bin HTTP/1.1\r\nHost: {srv.netloc}\r\n"
            f"Authorization: {srv.auth_header()}\r\nContent-Length: {1 << 30}\r\n\r\n"
        )
        started = time.monotonic()
        sock.sendall(head.encode() + os.urandom(65536))
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 403 "), answer[:200]
    assert elapsed < 10, elapsed
    assert srv.running()


def test_trusted_proxy_forwarding_https(public_server: Server) -> None:
    srv, proxy = public_server, "127.0.0.1"
    folder = f"/dav/proxied-{uuid.uuid4().hex[:8]}"
    status, headers, _ = request(srv, proxy, "MKCOL", folder + "/", PROXY_HEADERS)
    assert status == 201 and headers["strict-transport-security"] == HSTS
    status, headers, _ = request(srv, proxy, "PUT", folder + "/a.txt", PROXY_HEADERS, b"moved")
    assert status == 201 and headers["strict-transport-security"] == HSTS

    # COPY and MOVE with the Destination the client saw: https://public.example/...
    dest = {**PROXY_HEADERS, "Destination": f"https://public.example{folder}/b.txt"}
    status, headers, body = request(srv, proxy, "COPY", folder + "/a.txt", dest)
    assert status == 201, body
    dest = {**PROXY_HEADERS, "Destination": f"https://public.example{folder}/c.txt"}
    status, headers, body = request(srv, proxy, "MOVE", folder + "/b.txt", dest)
    assert status == 201, body
    assert headers["strict-transport-security"] == HSTS
    assert request(srv, proxy, "GET", folder + "/c.txt", PROXY_HEADERS)[2] == b"moved"
    assert request(srv, proxy, "GET", folder + "/b.txt", PROXY_HEADERS)[0] == 404

    # The proxy forwarding a remote client that spoke plain HTTP to it: refused.
    plain = {**PROXY_HEADERS, "X-Forwarded-Proto": "http"}
    assert_refused(request(srv, proxy, "PUT", folder + "/d.txt", plain, b"x"))
    assert_refused(
        request(srv, proxy, "PUT", folder + "/d.txt", {"X-Forwarded-For": "203.0.113.7"}, b"x")
    )
    assert request(srv, proxy, "GET", folder + "/d.txt")[0] == 404


def test_allow_insecure_http(server_factory: ServerFactory, remote_address: str) -> None:
    config = _config(server_factory.base, "allow_insecure_http = true\n")
    srv = server_factory(users=ALICE_ONLY, extra_args=("--host", remote_address), config=config)
    assert re.search(r"WARNING .*allow_insecure_http = true: passwords", srv.log()), srv.log()
    status, headers, _ = request(srv, remote_address, "PUT", "/dav/plain.txt", body=b"ok")
    assert status == 201 and "strict-transport-security" not in headers
    assert request(srv, remote_address, "GET", "/dav/plain.txt")[2] == b"ok"
    # No password, no access: the usual challenge.
    assert request(srv, remote_address, "GET", "/dav/plain.txt", user=None)[0] == 401
