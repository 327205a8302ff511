"""``scripts/bench --scale``: do PROPFIND and GET stay as fast on a million-node database?

Builds two data dirs of the same shape (see ``bench.seed.seed_tree``): one of 1 000 nodes and one
of 1 000 000, seeded directly through the store. The file fetched is PUT through WebDAV, so it
has a real encrypted blob. Both servers then run at once and the client alternates between them
request by request, so load from elsewhere on the machine falls on both alike. Prints medians of
PROPFIND Depth 1 on a folder of 100 entries and of a GET 10 path segments deep, with the ratio
big/small (target: at most 1.5x), and writes the JSON to ``--out`` like the normal run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import report, seed
from bench.servers import PASSWORD, REPO_ROOT, USER, Peer, rss_kib, start_davdisk
from bench.work import PROPFIND_BODY, Client, check

SMALL_NODES = 1_000
TARGET_RATIO = 1.5
FOLDER = "/".join(seed.SPINE) + "/"  # 9 folders deep, FOLDER_SIZE entries
GET_FILE = FOLDER + "small.txt"  # 10 path segments
GET_BYTES = 4096


@dataclass(frozen=True)
class ScaleParams:
    small_nodes: int = SMALL_NODES
    big_nodes: int = 1_000_000
    warmup: int = 20
    repeats: int = 200
    folder_entries: int = seed.FOLDER_SIZE
    get_segments: int = GET_FILE.count("/") + 1
    get_bytes: int = GET_BYTES


def label(nodes: int) -> str:
    """1000 -> "1k", 1000000 -> "1M"."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if nodes >= size and nodes % size == 0:
            return f"{nodes // size}{suffix}"
    return str(nodes)


def metrics() -> list[report.Metric]:
    return [
        report.Metric("propfind.p50_ms", "PROPFIND depth 1, 100 entries, p50", "ms", False),
        report.Metric("propfind.p90_ms", "PROPFIND depth 1, 100 entries, p90", "ms", False),
        report.Metric("get.p50_ms", "GET 4 KiB, 10 segments deep, p50", "ms", False),
        report.Metric("get.p90_ms", "GET 4 KiB, 10 segments deep, p90", "ms", False),
        report.Metric("nodes", "nodes in the database", "", False),
        report.Metric("properties", "dead properties", "", False),
        report.Metric("seed.s", "seeding time", "s", False),
        report.Metric("db.mib", "database size on disk", "MiB", False),
        report.Metric("start.s", "server start", "s", False),
        report.Metric("rss.mib", "server RSS after the run", "MiB", False),
    ]


# The rows whose big/small ratio the target applies to.
TARGETED = ("propfind.p50_ms", "get.p50_ms")


def make_db(work: Path, nodes: int, out: dict[str, float]) -> Path:
    """A data dir with the bench user (made by davdisk's CLI, so its own schema and keys) and a
    tree grown to ``nodes`` nodes, the GET file (PUT later) counted in."""
    data_dir = work / "davdisk-data"
    argv = [sys.executable, "-m", "davdisk", "--data-dir", str(data_dir)]
    subprocess.run(
        [*argv, "user", "add", USER, "--password-stdin"],
        input=(PASSWORD + "\n").encode(),
        check=True,
        capture_output=True,
        cwd=REPO_ROOT,
    )
    stats = seed.seed_tree(str(data_dir), USER, nodes - 1)
    out["seed.s"] = stats.seconds
    out["properties"] = stats.properties
    db_files = [data_dir / f"davdisk.db{suffix}" for suffix in ("", "-wal", "-shm")]
    out["db.mib"] = sum(p.stat().st_size for p in db_files if p.exists()) / 2**20
    return data_dir


def start(work: Path, out: dict[str, float], body: bytes) -> Peer:
    """Serve the data dir and PUT the GET file into the PROPFIND folder (its 100th entry)."""
    started = time.perf_counter()
    peer = start_davdisk(work)
    out["start.s"] = time.perf_counter() - started
    try:
        client = Client(peer.base_url)
        status, _ = client.request("PUT", GET_FILE, body=body)
        check(status, (201,), f"PUT {GET_FILE}")
        client.close()
    except BaseException:
        peer.stop()  # the caller only stops the servers it got back
        raise
    return peer


class Probe:
    """One keep-alive client per server, timing the two requests and checking their answers."""

    def __init__(self, peer: Peer, body: bytes, entries: int) -> None:
        self.client = Client(peer.base_url)
        self.body = body
        self.entries = entries
        self.times: dict[str, list[float]] = {"propfind": [], "get": []}

    def propfind(self, keep: bool) -> None:
        headers = {"Depth": "1", "Content-Type": "application/xml"}
        started = time.perf_counter()
        status, body = self.client.request("PROPFIND", FOLDER, PROPFIND_BODY, headers)
        seconds = time.perf_counter() - started
        check(status, (207,), f"PROPFIND {FOLDER}")
        responses = len(ET.fromstring(body).findall("{DAV:}response"))
        if responses != self.entries + 1:
            raise RuntimeError(f"PROPFIND {FOLDER}: {responses} responses")
        if keep:
            self.times["propfind"].append(seconds)

    def get(self, keep: bool) -> None:
        started = time.perf_counter()
        status, body = self.client.request("GET", GET_FILE)
        seconds = time.perf_counter() - started
        check(status, (200,), f"GET {GET_FILE}")
        if body != self.body:
            raise RuntimeError(f"GET {GET_FILE}: wrong body")
        if keep:
            self.times["get"].append(seconds)

    def figures(self, out: dict[str, float]) -> None:
        for name, times in self.times.items():
            out[f"{name}.p50_ms"] = statistics.median(times) * 1e3
            out[f"{name}.p90_ms"] = statistics.quantiles(times, n=10)[8] * 1e3
        self.client.close()


def measure(probes: list[Probe], params: ScaleParams) -> None:
    """Warm up, then alternate: each round sends both requests to every server, in an order
    that flips each round so neither server always goes first."""
    for i in range(params.warmup + params.repeats):
        keep = i >= params.warmup
        for probe in probes if i % 2 else reversed(probes):
            probe.propfind(keep)
            probe.get(keep)


def run(out_dir: Path, big_nodes: int) -> int:
    """The whole scale run; the exit status is non-zero only if some work failed."""
    params = ScaleParams(big_nodes=big_nodes)
    if big_nodes <= 10 * params.small_nodes:
        print(f"error: --scale needs more than {10 * params.small_nodes} nodes", file=sys.stderr)
        return 2
    info = report.machine()
    print(report.banner(info), flush=True)
    started = time.perf_counter()
    sizes = {label(params.small_nodes): params.small_nodes, label(big_nodes): big_nodes}
    results: dict[str, dict[str, float]] = {name: {} for name in sizes}
    errors: dict[str, str] = {}
    body = os.urandom(params.get_bytes)
    tmp = Path(tempfile.mkdtemp(prefix="davdisk-scale-"))
    peers: dict[str, Peer] = {}
    try:
        for name, nodes in sizes.items():
            print(f"== {name} nodes: seeding", flush=True)
            (tmp / name).mkdir()
            make_db(tmp / name, nodes, results[name])
            print(
                f"   {results[name]['seed.s']:.2f} s, {results[name]['db.mib']:.1f} MiB", flush=True
            )
        for name in sizes:
            peers[name] = start(tmp / name, results[name], body)
            results[name]["nodes"] = sizes[name]
        print(f"== PROPFIND and GET, {params.repeats} rounds, alternating servers", flush=True)
        probes = [Probe(peer, body, params.folder_entries) for peer in peers.values()]
        measure(probes, params)
        for name, probe in zip(peers, probes, strict=True):
            probe.figures(results[name])
            results[name]["rss.mib"] = rss_kib(peers[name].pid) / 1024
    except Exception as exc:  # report what was measured, and fail
        errors["scale"] = f"{type(exc).__name__}: {exc}"
        print(f"error: {errors['scale']} (logs in {tmp})", file=sys.stderr)
    finally:
        for peer in peers.values():
            peer.stop()
        if not errors:
            shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started

    rows = metrics()
    print()
    print(report.banner(info))
    ratio = "/".join(reversed(sizes))
    print(f"mode: scale, run time {elapsed:.0f} s, target: {ratio} <= {TARGET_RATIO}x")
    print(report.scale_table(rows, results, TARGETED, TARGET_RATIO))
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"results-{time.strftime('%Y%m%d-%H%M%S')}-scale.json"
    payload: dict[str, Any] = {
        "machine": info,
        "mode": "scale",
        "params": asdict(params),
        "seconds": elapsed,
        "metrics": [asdict(m) for m in rows],
        "results": results,
        "errors": errors,
    }
    report.write_json(json_path, payload)
    print(f"wrote {json_path}")
    return report.exit_code(errors)
