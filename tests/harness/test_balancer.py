"""The nginx balancer of the multi-instance tests (tests/balancer.py): round robin over the
instances, every WebDAV method and the client's Host passed on, uploads streamed through
unbuffered (with a length or chunked), and an instance that refuses connections skipped."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.balancer import Balancer

UPSTREAM = Path(__file__).with_name("upstream.py")
MIB = 1 << 20


class Upstreams:
    """Stand-in instances (upstream.py), each touching ``markers/<name>`` when a body starts."""

    def __init__(self, markers: Path) -> None:
        self.markers = markers
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.addrs: dict[str, str] = {}

    def start(self, name: str) -> str:
        proc = subprocess.Popen(
            [sys.executable, str(UPSTREAM), name, str(self.markers)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        self.procs[name] = proc
        self.addrs[name] = f"127.0.0.1:{proc.stdout.readline().strip()}"
        return self.addrs[name]

    def kill(self, name: str) -> None:
        self.procs[name].kill()
        self.procs[name].wait()

    def stop(self) -> None:
        for name in self.procs:
            self.kill(name)


@pytest.fixture
def upstreams(tmp_path: Path) -> Iterator[Upstreams]:
    markers = tmp_path / "markers"
    markers.mkdir()
    ups = Upstreams(markers)
    try:
        yield ups
    finally:
        ups.stop()


@pytest.fixture
def lb(tmp_path: Path, upstreams: Upstreams) -> Iterator[Balancer]:
    balancer = Balancer([upstreams.start("a"), upstreams.start("b")], tmp_path / "nginx")
    try:
        yield balancer
    finally:
        balancer.stop()


def test_round_robin_passes_every_method_and_the_host(lb: Balancer, upstreams: Upstreams) -> None:
    session = requests.Session()  # one kept-alive client connection: still spread
    served = [session.get(f"{lb.url}/f").json()["name"] for _ in range(6)]
    assert served in (["a", "b"] * 3, ["b", "a"] * 3)

    destination = f"{lb.url}/dav/new%20name"
    for method in ("PROPFIND", "LOCK", "UNLOCK", "MKCOL", "MOVE", "COPY", "PROPPATCH", "DELETE"):
        answer = session.request(
            method, f"{lb.url}/dav/a%20file", headers={"Destination": destination}
        ).json()
        assert answer["method"] == method
        assert answer["path"] == "/dav/a%20file"  # as sent, not decoded or normalised
        # The instance sees the host the client used: Destination is on it.
        assert answer["host"] == lb.netloc
        assert answer["destination"] == destination


def _put_waiting_for_upstream(
    lb: Balancer, upstreams: Upstreams, size: int, *, chunked: bool
) -> tuple[bool, dict[str, Any]]:
    """PUT ``size`` bytes: the first 256 KiB, then wait (10 s at most) until an instance has
    seen body bytes, then the rest. Whether it had, before the body was complete; the answer."""
    head = 256 * 1024
    body = b"x" * size
    conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=60)
    conn.putrequest("PUT", "/big")
    if chunked:
        conn.putheader("Transfer-Encoding", "chunked")
    else:
        conn.putheader("Content-Length", str(size))
    conn.endheaders()

    def send(data: bytes) -> None:
        conn.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)

    send(body[:head])
    deadline = time.monotonic() + 10
    while not any(upstreams.markers.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    seen_early = any(upstreams.markers.iterdir())
    for offset in range(head, size, MIB):
        send(body[offset : offset + MIB])
    if chunked:
        conn.send(b"0\r\n\r\n")
    answer = conn.getresponse()
    assert answer.status == 200
    result = json.loads(answer.read())
    conn.close()
    return seen_early, result


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_upload_streams_through_unbuffered(
    lb: Balancer, upstreams: Upstreams, chunked: bool
) -> None:
    size = 32 * MIB
    seen_early, answer = _put_waiting_for_upstream(lb, upstreams, size, chunked=chunked)
    # Buffered, nginx would pass nothing on until it had the whole body (spooled to disk).
    assert seen_early
    assert answer["received"] == size
    assert answer["chunked"] == chunked
    assert list((lb.root / "client_body").iterdir()) == []


def test_instance_refusing_connections_is_skipped(lb: Balancer, upstreams: Upstreams) -> None:
    """A stopped instance (a rolling restart): GETs go to the other one, none fails."""
    upstreams.kill("b")
    served = [requests.get(f"{lb.url}/f", timeout=30).json()["name"] for _ in range(6)]
    assert served == ["a"] * 6
    # And back in rotation once it is up again, after reload() names its new address.
    lb.reload([upstreams.addrs["a"], upstreams.start("b")])
    served = [requests.get(f"{lb.url}/f", timeout=30).json()["name"] for _ in range(4)]
    assert sorted(served) == ["a", "a", "b", "b"]
