"""How connections wait for their request head (http/gate.py): deadlines, eviction, pipelining,
and answers to bodies nobody logged in to send (issue 12, item 1)."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

from tests.live.conftest import HARNESS_CONFIG, Server, ServerFactory, read_status
from tests.live.test_tls import make_cert


def _config(tmp_path: Path, **limits: int) -> Path:
    path = tmp_path / "gate.toml"
    lines = "".join(f"{k} = {v}\n" for k, v in limits.items())
    path.write_text(f"{HARNESS_CONFIG}\n[limits]\n{lines}")
    return path


def _connect(srv: Server) -> socket.socket:
    return socket.create_connection((srv.host, srv.port), timeout=10)


def _closed(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except OSError:
        pass
    return True


def _honest_propfind(srv: Server) -> int | None:
    with _connect(srv) as sock:
        sock.sendall(
            b"PROPFIND /dav/ HTTP/1.1\r\nHost: x\r\nDepth: 0\r\nContent-Length: 0\r\n"
            + f"Authorization: {srv.auth_header()}\r\n\r\n".encode()
        )
        return read_status(sock)


def test_a_trickled_head_is_closed_at_the_head_deadline(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    srv = server_factory(config=_config(tmp_path, head_timeout=2))
    trickled = _connect(srv)
    started = time.monotonic()
    trickled.sendall(b"GET /dav/ HTTP/1.1\r\n")
    closed_at = None
    # A header byte every 0.2 s: each read would succeed, but the whole head takes too long.
    for _ in range(40):
        try:
            trickled.sendall(b"X")
        except OSError:
            closed_at = time.monotonic() - started
            break
        time.sleep(0.2)
    assert closed_at is not None and closed_at < 5, closed_at
    # A head sent slowly but whole in time is served.
    slow = _connect(srv)
    head = (
        b"PROPFIND /dav/ HTTP/1.1\r\nHost: x\r\nDepth: 0\r\nContent-Length: 0\r\n"
        + f"Authorization: {srv.auth_header()}\r\n\r\n".encode()
    )
    for i in range(0, len(head), 16):
        slow.sendall(head[i : i + 16])
        time.sleep(0.05)
    assert read_status(slow) == 207
    slow.close()


def test_a_flood_from_one_address_evicts_its_own_oldest_connections(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    srv = server_factory(config=_config(tmp_path, max_waiting_connections=20))
    flood = [_connect(srv) for _ in range(40)]
    time.sleep(0.5)
    assert _honest_propfind(srv) == 207
    # The oldest were closed to make room; the newest still wait.
    assert _closed(flood[0], within=5)
    assert not _closed(flood[-1], within=0.5)
    for sock in flood:
        sock.close()
    assert "connections waiting: closing one of 127.0.0.1's" in srv.log()


def test_pipelined_requests_are_all_answered(server: Server) -> None:
    auth = f"Authorization: {server.auth_header()}\r\n".encode()
    one = b"PROPFIND /dav/ HTTP/1.1\r\nHost: x\r\nDepth: 0\r\nContent-Length: 0\r\n" + auth
    with _connect(server) as sock:
        sock.sendall(one + b"\r\n" + one + b"\r\n" + one[:20])  # two whole, the third begun
        time.sleep(0.3)
        sock.sendall(one[20:] + b"\r\n")
        answers = b""
        deadline = time.monotonic() + 10
        while answers.count(b"HTTP/1.1 207") < 3 and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answers += chunk
    assert answers.count(b"HTTP/1.1 207") == 3, answers[:300]


def test_a_body_sent_before_any_login_is_not_waited_for(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """With 2 worker threads, 10 clients that send a PROPFIND or PUT body a byte a second and
    never log in: each gets its 401 at once, and an honest client is served meanwhile."""
    config = _config(tmp_path)
    config.write_text(config.read_text() + "\n[server]\nthreads = 2\n")
    srv = server_factory(config=config)
    slow = []
    for i in range(10):
        sock = _connect(srv)
        method = b"PUT /dav/x.bin" if i % 2 else b"PROPFIND /dav/"
        sock.sendall(method + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab")
        slow.append(sock)
    for sock in slow:
        assert read_status(sock) == 401
    assert _honest_propfind(srv) == 207
    for sock in slow:
        sock.close()


def test_unfinished_heads_are_held_within_a_byte_budget(server: Server) -> None:
    """700 connections that each send 60 KiB of headers and never end them would have the
    server hold 42 MB; it keeps at most 32 MiB, closing those that hold the most."""
    line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    heads = []
    for _ in range(700):
        sock = _connect(server)
        sock.sendall(b"GET /dav/ HTTP/1.1\r\n" + line * 60)
        heads.append(sock)
    assert _honest_propfind(server) == 207
    closed = sum(_closed(sock, within=0.01) for sock in heads)
    for sock in heads:
        sock.close()
    head = len(b"GET /dav/ HTTP/1.1\r\n" + line * 60)
    assert closed >= (700 * head - (32 << 20)) // head, closed  # about 147 of them
    assert "request heads take more than 32 MiB" in server.log()


def test_a_tls_connection_idle_after_its_handshake_has_the_head_deadline(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    cert, key, _ = make_cert(tmp_path / "certs")
    config = _config(tmp_path, head_timeout=2)
    config.write_text(config.read_text() + f'\n[server]\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    srv = server_factory(config=config)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    started = time.monotonic()
    with ctx.wrap_socket(_connect(srv)) as tls:  # the handshake, then nothing
        assert _closed(tls, within=10)
    assert time.monotonic() - started < 5
