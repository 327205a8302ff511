"""The workloads: identical requests against every peer, each returning its figures.

Big transfers go through ``curl`` (fixed length and chunked); everything else uses keep-alive
``http.client`` connections from threads of this process. All data is verified (sha256 for big
files, byte comparison for ranges, member counts for listings, status codes everywhere).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import random
import statistics
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from bench.servers import PASSWORD, USER, Peer

MIB = 1024 * 1024


@dataclass(frozen=True)
class Params:
    """Sizes of the work; ``quick()`` scales them down for a quick look, ``smoke()`` to the
    least that still runs every phase (for scripts/test: does all the work succeed?)."""

    big_mib: int = 1024
    range_requests: int = 1000
    small_puts: int = 2000
    small_clients: int = 8
    get_seconds: float = 5.0
    get_clients: int = 4
    listing_sizes: tuple[int, ...] = (500, 5000, 20000)
    listing_repeats: int = 3
    move_files: int = 10000
    # --blobs s3 only: ranges of 64 KiB to this many KiB, and many big PUTs at once (memory).
    range_max_kib: int = 1024
    many_puts: int = 32
    many_mib: int = 100

    @classmethod
    def quick(cls) -> Params:
        return cls(
            big_mib=64,
            range_requests=200,
            small_puts=200,
            get_seconds=2.0,
            listing_sizes=(500, 5000),
            move_files=2000,
            many_mib=16,
        )

    @classmethod
    def smoke(cls) -> Params:
        return cls(
            big_mib=8,
            range_requests=20,
            small_puts=40,
            get_seconds=0.5,
            listing_sizes=(200,),
            listing_repeats=1,
            move_files=200,
            many_puts=8,
            many_mib=10,  # more than a part (8 MiB): multipart uploads
        )


class Client:
    """One keep-alive HTTP connection with Basic auth; reconnects when the server closes it."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self.auth = "Basic " + token
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Send a request for ``path`` (relative to the base URL); return status and body."""
        all_headers = {"Authorization": self.auth, **(headers or {})}
        url = self.prefix + quote(path)
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
            try:
                self.conn.request(method, url, body=body, headers=all_headers)
                resp = self.conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
                continue
            if resp.will_close:
                self.close()
            return resp.status, data
        raise AssertionError("unreachable")

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{self.prefix}{quote(path)}"

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def check(status: int, expected: tuple[int, ...], what: str) -> None:
    if status not in expected:
        raise RuntimeError(f"{what}: HTTP {status}, expected {expected}")


def warm_up(peer: Peer) -> None:
    """Log in once (a PROPFIND Depth 0 of the root), as a client does when it connects."""
    client = Client(peer.base_url)
    status, _ = client.request("PROPFIND", "", PROPFIND_BODY, {"Depth": "0"})
    check(status, (207,), f"{peer.name}: PROPFIND of the root")
    client.close()


def make_big_file(path: Path, size_mib: int) -> str:
    """Write ``size_mib`` MiB of random bytes to ``path``; return their sha256 (hex)."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(size_mib):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def _curl(args: list[str], stdin_path: Path | None = None) -> float:
    """Run curl with Basic auth; fail on HTTP errors; return the wall time in seconds."""
    argv = ["curl", "-sS", "--fail", "-u", f"{USER}:{PASSWORD}", "-o", "/dev/null", *args]
    start = time.perf_counter()
    if stdin_path is not None:
        with open(stdin_path, "rb") as stdin:
            subprocess.run(argv, stdin=stdin, check=True)
    else:
        subprocess.run(argv, check=True)
    return time.perf_counter() - start


def big_put(peer: Peer, src: Path, size: int, name: str) -> dict[str, float]:
    """PUT ``src`` with a Content-Length (``curl -T file``); MB/s."""
    seconds = _curl(["-T", str(src), Client(peer.base_url).url(name)])
    return {"mb_s": size / seconds / 1e6}


def big_put_chunked(peer: Peer, src: Path, size: int, name: str) -> dict[str, float]:
    """PUT ``src`` from stdin with ``Transfer-Encoding: chunked``; MB/s."""
    url = Client(peer.base_url).url(name)
    seconds = _curl(["-H", "Transfer-Encoding: chunked", "-T", "-", url], stdin_path=src)
    return {"mb_s": size / seconds / 1e6}


def big_get(peer: Peer, name: str, size: int, dest: Path, sha256: str) -> dict[str, float]:
    """GET ``name`` into ``dest`` with curl; MB/s; the copy's sha256 must match."""
    url = Client(peer.base_url).url(name)
    argv = ["curl", "-sS", "--fail", "-u", f"{USER}:{PASSWORD}", "-o", str(dest), url]
    start = time.perf_counter()
    subprocess.run(argv, check=True)
    seconds = time.perf_counter() - start
    got = sha256_file(dest)
    dest.unlink()
    if got != sha256:
        raise RuntimeError(f"{peer.name}: GET {name}: sha256 mismatch")
    return {"mb_s": size / seconds / 1e6}


def verify_sha256(peer: Peer, name: str, sha256: str) -> None:
    """Stream ``name`` back (untimed) and compare its sha256."""
    client = Client(peer.base_url)
    conn = http.client.HTTPConnection(client.host, client.port, timeout=300)
    conn.request("GET", client.prefix + quote(name), headers={"Authorization": client.auth})
    resp = conn.getresponse()
    check(resp.status, (200,), f"GET {name}")
    digest = hashlib.sha256()
    while chunk := resp.read(MIB):
        digest.update(chunk)
    conn.close()
    if digest.hexdigest() != sha256:
        raise RuntimeError(f"{peer.name}: {name}: sha256 mismatch")


def range_gets(
    peer: Peer, name: str, src: Path, size: int, count: int, max_kib: int = 64
) -> dict[str, float]:
    """``count`` GETs of 64 KiB (up to ``max_kib`` KiB, random lengths) at random offsets on
    one connection; p50/p99 in ms."""
    shortest = 64 * 1024
    longest = min(max_kib * 1024, size)
    rng = random.Random(6)  # same spans for every peer
    spans = []
    for _ in range(count):
        length = rng.randrange(shortest, longest + 1) if longest > shortest else shortest
        spans.append((rng.randrange(0, size - length), length))
    client = Client(peer.base_url)
    latencies = []
    with open(src, "rb") as f:
        for offset, length in spans:
            headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
            start = time.perf_counter()
            status, body = client.request("GET", name, headers=headers)
            latencies.append(time.perf_counter() - start)
            check(status, (206,), f"{peer.name}: range GET")
            if body != os.pread(f.fileno(), length, offset):
                raise RuntimeError(f"{peer.name}: range GET at {offset}: wrong bytes")
    client.close()
    q = statistics.quantiles(latencies, n=100)
    return {"p50_ms": statistics.median(latencies) * 1e3, "p99_ms": q[98] * 1e3}


def _parallel(
    peer: Peer, clients: int, items: list[str], action: Callable[[Client, str], None]
) -> float:
    """Run ``action`` on every item from ``clients`` threads, one connection each; seconds."""
    local = threading.local()
    made: list[Client] = []
    lock = threading.Lock()

    def run(item: str) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = Client(peer.base_url)
            with lock:
                made.append(client)
        action(client, item)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run, items))
    seconds = time.perf_counter() - start
    for client in made:
        client.close()
    return seconds


def mkcol(peer: Peer, path: str) -> None:
    status, _ = Client(peer.base_url).request("MKCOL", path)
    check(status, (201,), f"{peer.name}: MKCOL {path}")


def small_puts(peer: Peer, count: int, clients: int) -> dict[str, float]:
    """``count`` PUTs of 4 KiB new files from ``clients`` parallel connections; ops/s."""
    mkcol(peer, "small/")
    body = os.urandom(4096)

    def put(client: Client, name: str) -> None:
        status, _ = client.request("PUT", name, body=body)
        check(status, (201, 204), f"{peer.name}: PUT {name}")

    seconds = _parallel(peer, clients, [f"small/f{i:06d}" for i in range(count)], put)
    return {"ops_s": count / seconds}


def many_puts(peer: Peer, count: int, size_mib: int) -> dict[str, float]:
    """``count`` PUTs of ``size_mib`` MiB at once, one connection each, every other one chunked
    and the rest with a Content-Length; aggregate MB/s. The bodies are made as they are sent
    (one random MiB over and over: it is encrypted anyway), so this process holds little.
    Every file's length is checked afterwards, and one file's sha256."""
    mkcol(peer, "many/")
    block = os.urandom(MIB)
    size = size_mib * MIB
    client = Client(peer.base_url)

    def body() -> Iterator[bytes]:
        for _ in range(size_mib):
            yield block

    def put(index: int) -> None:
        headers = {"Authorization": client.auth}
        if index % 2 == 0:
            headers["Content-Length"] = str(size)  # else http.client sends it chunked
        conn = http.client.HTTPConnection(client.host, client.port, timeout=600)
        try:
            conn.request("PUT", client.prefix + f"many/f{index:03d}", body=body(), headers=headers)
            resp = conn.getresponse()
            resp.read()
        finally:
            conn.close()
        check(resp.status, (201, 204), f"{peer.name}: PUT many/f{index:03d}")

    start = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(put, range(count)))
    seconds = time.perf_counter() - start
    conn = http.client.HTTPConnection(client.host, client.port, timeout=60)
    auth = {"Authorization": client.auth}
    for index in range(count):
        conn.request("HEAD", client.prefix + f"many/f{index:03d}", headers=auth)
        resp = conn.getresponse()
        resp.read()
        check(resp.status, (200,), f"{peer.name}: HEAD many/f{index:03d}")
        if resp.getheader("Content-Length") != str(size):
            raise RuntimeError(f"{peer.name}: many/f{index:03d}: wrong length")
    conn.close()
    digest = hashlib.sha256()
    for _ in range(size_mib):
        digest.update(block)
    verify_sha256(peer, "many/f001", digest.hexdigest())
    return {"mb_s": count * size / seconds / 1e6}


def auth_gets(peer: Peer, seconds: float, clients: int) -> dict[str, float]:
    """Authenticated keep-alive GETs of a 1-byte file from ``clients`` threads; requests/s."""
    status, _ = Client(peer.base_url).request("PUT", "one-byte", body=b"x")
    check(status, (201, 204), f"{peer.name}: PUT one-byte")
    counts = [0] * clients
    deadline = time.perf_counter() + seconds

    def loop(index: int) -> None:
        client = Client(peer.base_url)
        while time.perf_counter() < deadline:
            status, body = client.request("GET", "one-byte")
            check(status, (200,), f"{peer.name}: GET one-byte")
            if body != b"x":
                raise RuntimeError(f"{peer.name}: GET one-byte: wrong body")
            counts[index] += 1
        client.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(loop, range(clients)))
    return {"req_s": sum(counts) / (time.perf_counter() - start)}


PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
)


def propfind(peer: Peer, folder: str, count: int, repeats: int) -> dict[str, float]:
    """PROPFIND Depth 1 (allprop) on a folder of ``count`` files; median latency in ms."""
    client = Client(peer.base_url)
    headers = {"Depth": "1", "Content-Type": "application/xml"}
    status, _ = client.request("PROPFIND", folder + "/", PROPFIND_BODY, {"Depth": "0"})
    check(status, (207,), f"{peer.name}: PROPFIND depth 0 {folder}")  # warm-up: login, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        status, body = client.request("PROPFIND", folder + "/", PROPFIND_BODY, headers)
        times.append(time.perf_counter() - start)
        check(status, (207,), f"{peer.name}: PROPFIND {folder}")
        responses = len(ET.fromstring(body).findall("{DAV:}response"))
        if responses != count + 1:
            raise RuntimeError(f"{peer.name}: PROPFIND {folder}: {responses} responses")
    client.close()
    return {"ms": statistics.median(times) * 1e3}


def move_folder(peer: Peer, folder: str, count: int, repeats: int = 3) -> dict[str, float]:
    """MOVE a folder of ``count`` files to a new name and back, ``repeats`` times; median latency
    in ms (the first write after a server start costs extra on any server)."""
    client = Client(peer.base_url)
    names = [folder, folder + "-moved"]
    times = []
    for i in range(2 * repeats):
        src, dst = names[i % 2], names[(i + 1) % 2]
        headers = {"Destination": client.url(dst + "/"), "Overwrite": "F"}
        start = time.perf_counter()
        status, _ = client.request("MOVE", src + "/", headers=headers)
        times.append(time.perf_counter() - start)
        check(status, (201, 204), f"{peer.name}: MOVE {src}")
        status, body = client.request("PROPFIND", dst + "/", PROPFIND_BODY, {"Depth": "1"})
        check(status, (207,), f"{peer.name}: PROPFIND after MOVE")
        if len(ET.fromstring(body).findall("{DAV:}response")) != count + 1:
            raise RuntimeError(f"{peer.name}: MOVE {src}: members lost")
    client.close()
    return {"ms": statistics.median(times) * 1e3}
