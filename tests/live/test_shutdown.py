"""SIGTERM stops the server gracefully: no new connections, running requests finish within
``[server] shutdown_grace``, then exit 0; uploads cut at the deadline leave the old content; a
second signal exits at once; an idle server (keep-alive connections open) exits at once.

Uploads are driven over raw sockets so that a body can be half sent when the signal arrives.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.live.clients import RawClient
from tests.live.conftest import (
    ALICE,
    Server,
    ServerFactory,
    get_bytes,
    put,
    temp_files,
    wait_until,
)

MiB = 1 << 20


def start_upload(srv: Server, path: str, data: bytes, first: int) -> RawClient:
    """A PUT of ``data`` with its head and the first ``first`` bytes sent. ``sendall`` returns
    only once the server has read most of it: the request is being served."""
    c = RawClient(srv, timeout=30)
    c.send_head(
        "PUT",
        path,
        [("Authorization", srv.auth_header(ALICE)), ("Content-Length", str(len(data)))],
    )
    c.send(data[:first])
    return c


def refuses_connections(srv: Server) -> bool:
    try:
        with socket.create_connection((srv.host, srv.port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def exit_code(srv: Server, timeout: float) -> int | None:
    try:
        return srv.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def grace_config(tmp_path: Path, seconds: int) -> Path:
    config = tmp_path / "grace.toml"
    config.write_text(f"[server]\nshutdown_grace = {seconds}\n")
    return config


def test_sigterm_lets_running_uploads_finish(server_factory: ServerFactory) -> None:
    srv = server_factory()
    bodies = {f"/dav/up{i}.bin": os.urandom(4 * MiB) for i in range(4)}
    uploads = {path: start_upload(srv, path, data, 2 * MiB) for path, data in bodies.items()}
    try:
        # Each upload being served has its temp blob open.
        wait_until(lambda: len(temp_files(srv.data_dir)) == 4, 10, "4 uploads in flight")
        srv.proc.send_signal(signal.SIGTERM)
        # Not accepting any more (refused, not accepted and left hanging) ...
        wait_until(lambda: refuses_connections(srv), 5, "new connections to be refused")
        # ... but the uploads already running go on: the rest of each body, then the answer.
        time.sleep(0.5)
        assert srv.running(), "the server exited with 4 uploads in flight\n" + srv.log()
        for path, c in uploads.items():
            c.send(bodies[path][2 * MiB :])
        answers = [c.read_response("PUT") for c in uploads.values()]
    finally:
        for c in uploads.values():
            c.close()
    statuses = [a.status for a in answers]
    assert statuses == [201] * 4, f"{statuses}\n--- log ---\n{srv.log()}"
    assert all(a.headers.get("connection") == "close" for a in answers), answers
    code = exit_code(srv, 10)
    assert code == 0, f"exit {code} after the uploads finished\n--- log ---\n{srv.log()}"
    assert "Traceback" not in srv.log()

    again = server_factory(data_dir=srv.data_dir)
    s = again.session(ALICE)
    for path, data in bodies.items():
        got = get_bytes(s, again.url + path)
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), path


def test_upload_cut_at_the_deadline_keeps_the_old_content(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    srv = server_factory(config=grace_config(tmp_path, 1))
    s = srv.session(ALICE)
    old = os.urandom(3 * MiB)
    put(s, srv.dav + "doc.bin", old)
    new = os.urandom(64 * MiB)
    c = start_upload(srv, "/dav/doc.bin", new, 2 * MiB)
    stop_sending = threading.Event()

    def trickle() -> None:
        """Keep sending, slowly, past the deadline, until the server cuts the connection."""
        sent = 2 * MiB
        with contextlib.suppress(OSError):
            while not stop_sending.is_set() and sent < len(new):
                c.send(new[sent : sent + 64 * 1024])
                sent += 64 * 1024
                time.sleep(0.05)

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        wait_until(lambda: temp_files(srv.data_dir), 10, "the upload to be in flight")
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        code = exit_code(srv, 10)
        took = time.monotonic() - started
    finally:
        stop_sending.set()
        sender.join()
        c.close()
    assert code == 0, f"exit {code}\n--- log ---\n{srv.log()}"
    assert 0.9 < took < 5, f"exited {took:.1f} s after SIGTERM with a 1 s grace"
    assert "Traceback" not in srv.log()

    again = server_factory(data_dir=srv.data_dir)
    s = again.session(ALICE)
    assert get_bytes(s, again.dav + "doc.bin") == old
    assert temp_files(again.data_dir) == []


@pytest.mark.serial
def test_second_signal_exits_at_once(server_factory: ServerFactory) -> None:
    srv = server_factory()
    data = os.urandom(4 * MiB)
    c = start_upload(srv, "/dav/slow.bin", data, 1 * MiB)
    try:
        wait_until(lambda: temp_files(srv.data_dir), 10, "the upload to be in flight")
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert srv.running(), "exited at the first SIGTERM with an upload in flight"
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGINT)
        code = exit_code(srv, 5)
        took = time.monotonic() - started
    finally:
        c.close()
        srv.kill()  # no-op once it exited; the fixture then expects no exit 0
    assert code is not None and code != 0, f"exit {code} after a second signal"
    assert took < 1, f"took {took:.2f} s to exit after the second signal"
    assert "Traceback" not in srv.log()


@pytest.mark.serial
def test_idle_server_exits_at_once_despite_keep_alive_connections(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory()
    sessions = [srv.session(ALICE) for _ in range(3)]
    for s in sessions:  # each keeps an idle keep-alive connection open
        assert s.request("PROPFIND", srv.dav, headers={"Depth": "0"}).status_code == 207
    # Connections that have not sent a request yet (a browser's preconnect) hold nothing either.
    fresh = [socket.create_connection((srv.host, srv.port)) for _ in range(3)]
    time.sleep(0.3)
    try:
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        code = exit_code(srv, 10)
        took = time.monotonic() - started
    finally:
        for sock in fresh:
            sock.close()
    assert code == 0, f"exit {code}\n--- log ---\n{srv.log()}"
    assert took < 0.5, f"an idle server took {took:.2f} s to stop"


def test_download_to_a_stalled_client_is_cut_at_the_deadline(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A worker blocked writing to a client that stopped reading does not hold the exit past
    the grace period (a read-side shutdown alone would leave it blocked until its timeout)."""
    srv = server_factory(config=grace_config(tmp_path, 1))
    put(srv.session(ALICE), srv.dav + "big.bin", os.urandom(48 * MiB))
    with RawClient(srv, timeout=30) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.send_head("GET", "/dav/big.bin", [("Authorization", srv.auth_header(ALICE))])
        c.sock.recv(1024)  # the answer has started; nothing more is read
        time.sleep(0.5)
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        code = exit_code(srv, 10)
        took = time.monotonic() - started
    assert code == 0, f"exit {code}\n--- log ---\n{srv.log()}"
    assert took < 3, f"exited {took:.1f} s after SIGTERM with a 1 s grace"
