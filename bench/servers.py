"""Start and stop the servers under test, and sample their resident memory from /proc.

Each peer runs as a subprocess on 127.0.0.1 with HTTP Basic auth for one user. davdisk gets a
fresh data dir (and, with ``use_database``, a metadata database elsewhere; with ``use_bucket``,
its blobs in an S3 bucket); WsgiDAV
(FilesystemProvider) and rclone serve a plain folder, which the work may fill directly
(``Peer.root``) instead of through WebDAV.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

USER = "bench"
PASSWORD = "bench-password-1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
SERVING_RE = re.compile(rb"serving (https?://[^\s/]+)/dav/")
REPO_ROOT = Path(__file__).resolve().parents[1]
DAVDISK_CONFIG = "davdisk.toml"  # in the peer's work dir, when it has one


@dataclass
class Peer:
    """A running server: its name, WebDAV base URL (ending in ``/``) and process."""

    name: str
    base_url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    root: Path | None = None  # folder served as-is (filesystem peers), None for davdisk
    _log_file: object = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM the server, then SIGKILL it if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None


def free_port() -> int:
    """A TCP port that was free a moment ago (for servers that cannot be given port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(peer: Peer, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if peer.proc.poll() is not None:
            raise RuntimeError(f"{peer.name} exited early; see {peer.log_path}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{peer.name} did not listen on port {port}; see {peer.log_path}")


def _serving(peer: Peer, port: int, root: Path) -> Peer:
    """A filesystem peer once it accepts connections on ``port`` (stopped if it never does)."""
    peer.base_url = f"http://127.0.0.1:{port}/"
    peer.root = root
    try:
        _wait_port(peer, port)
    except RuntimeError:
        peer.stop()
        raise
    return peer


def _spawn(name: str, argv: list[str], work: Path, env: dict[str, str] | None = None) -> Peer:
    log_path = work / f"{name}.log"
    log_file = open(log_path, "ab")  # noqa: SIM115 - closed by Peer.stop; restarts append
    proc = subprocess.Popen(
        argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
    )
    return Peer(name, "", proc, log_path, _log_file=log_file)


def _add_config(work: Path, text: str) -> None:
    # Each use_* adds its own section, so they combine (--db and --blobs).
    with open(work / DAVDISK_CONFIG, "a") as f:
        f.write(text)


def use_database(work: Path, url: str) -> None:
    """Keep the metadata of the davdisk run in ``work`` in the database ``url`` (an empty one)
    instead of its data dir's SQLite file; everything else stays at its default."""
    _add_config(work, f'[storage]\ndatabase_url = "{url}"\n')


@dataclass(frozen=True)
class Bucket:
    """An S3 bucket for davdisk's blobs and how to reach it."""

    endpoint_url: str
    bucket: str
    access_key_id: str
    secret_access_key: str


def use_bucket(work: Path, bucket: Bucket) -> None:
    """Keep the blobs of the davdisk run in ``work`` in ``bucket`` (an empty one) instead of its
    data dir; the other ``[blobs]`` settings (part size, memory budget) stay at their defaults."""
    _add_config(
        work,
        "[blobs]\n"
        'backend = "s3"\n'
        f'endpoint_url = "{bucket.endpoint_url}"\n'
        f'bucket = "{bucket.bucket}"\n'
        f'access_key_id = "{bucket.access_key_id}"\n'
        f'secret_access_key = "{bucket.secret_access_key}"\n',
    )


def _davdisk_argv(work: Path) -> list[str]:
    """``python -m davdisk`` with the data dir (and config, if any) of ``work``."""
    argv = [sys.executable, "-m", "davdisk", "--data-dir", str(work / "davdisk-data")]
    if (work / DAVDISK_CONFIG).exists():
        argv += ["--config", str(work / DAVDISK_CONFIG)]
    return argv


def start_davdisk(work: Path) -> Peer:
    """``davdisk serve`` with default settings on port 0; the first start makes the data dir and
    its one user."""
    data_dir = work / "davdisk-data"
    env = os.environ.copy()
    env["PYTHONUNBUFFERED"] = "1"
    base = _davdisk_argv(work)
    if not data_dir.exists():
        subprocess.run(
            [*base, "user", "add", USER, "--password-stdin"],
            input=(PASSWORD + "\n").encode(),
            check=True,
            capture_output=True,
            env=env,
            cwd=REPO_ROOT,
        )
    log_path = work / "davdisk.log"
    log_start = log_path.stat().st_size if log_path.exists() else 0
    peer = _spawn("davdisk", [*base, "serve", "--host", "127.0.0.1", "--port", "0"], work, env)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        m = SERVING_RE.search(peer.log_path.read_bytes()[log_start:])
        if m:
            peer.base_url = m.group(1).decode() + "/dav/"
            return peer
        if peer.proc.poll() is not None:
            break
        time.sleep(0.05)
    peer.stop()
    raise RuntimeError(f"davdisk did not start; see {peer.log_path}")


def start_wsgidav(work: Path) -> Peer:
    """Plain WsgiDAV 4 with its FilesystemProvider, Basic auth, no dir browser, quiet logs."""
    root = work / "wsgidav-root"
    root.mkdir(exist_ok=True)
    port = free_port()
    config = {
        "host": "127.0.0.1",
        "port": port,
        "server": "cheroot",
        "provider_mapping": {"/": str(root)},
        "http_authenticator": {
            "domain_controller": None,  # SimpleDomainController
            "accept_basic": True,
            "accept_digest": False,
            "default_to_digest": False,
        },
        "simple_dc": {"user_mapping": {"*": {USER: {"password": PASSWORD}}}},
        "dir_browser": {"enable": False},
        "verbose": 1,
        "logging": {"enable": False, "enable_loggers": []},
    }
    config_path = work / "wsgidav.json"
    config_path.write_text(json.dumps(config))
    wsgidav = Path(sys.executable).with_name("wsgidav")
    peer = _spawn("wsgidav", [str(wsgidav), "--config", str(config_path)], work)
    return _serving(peer, port, root)


def start_rclone(work: Path) -> Peer:
    """``rclone serve webdav`` of a local folder (no VFS cache), Basic auth."""
    root = work / "rclone-root"
    root.mkdir(exist_ok=True)
    port = free_port()
    argv = [
        "rclone",
        "serve",
        "webdav",
        str(root),
        "--addr",
        f"127.0.0.1:{port}",
        "--user",
        USER,
        "--pass",
        PASSWORD,
        "--config",
        str(work / "rclone.conf"),  # missing file: no user config is read
    ]
    peer = _spawn("rclone", argv, work)
    return _serving(peer, port, root)


def seed_folders(name: str, work: Path, specs: list[tuple[str, int]]) -> None:
    """Make top-level folders of empty files (name, count) for a *stopped* peer: on disk for
    the filesystem peers, through davdisk's store for davdisk (see ``bench.seed``)."""
    if is_davdisk(name):
        argv = [sys.executable, "-m", "bench.seed", str(work / "davdisk-data"), USER]
        if (work / DAVDISK_CONFIG).exists():
            argv[3:3] = ["--config", str(work / DAVDISK_CONFIG)]
        subprocess.run(argv + [f"{f}:{n}" for f, n in specs], check=True, cwd=REPO_ROOT)
        return
    root = work / f"{name}-root"
    for folder, count in specs:
        (root / folder).mkdir()
        for i in range(count):
            (root / folder / f"f{i:06d}.txt").touch()


STARTERS = {"davdisk": start_davdisk, "wsgidav": start_wsgidav, "rclone": start_rclone}
# davdisk with its blobs in an S3 bucket (scripts/bench --blobs s3): another run of davdisk.
DAVDISK_S3 = "davdisk-s3"


def is_davdisk(name: str) -> bool:
    return name in ("davdisk", DAVDISK_S3)


def starter(name: str) -> Callable[[Path], Peer]:
    """The function that starts the server called ``name``."""
    return start_davdisk if is_davdisk(name) else STARTERS[name]


def rss_kib(pid: int) -> int:
    """Current VmRSS of ``pid`` in KiB (0 if the process is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    m = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.M)
    return int(m.group(1)) if m else 0


class RssSampler:
    """Samples a process's VmRSS every ``interval`` s in a thread; ``phase()`` yields its peak.

    VmHWM is cumulative over the process's life, so per-phase peaks come from sampling.
    """

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self._peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            value = rss_kib(self.pid)
            with self._lock:
                self._peak = max(self._peak, value)
            self._stop.wait(self.interval)

    @contextlib.contextmanager
    def phase(self) -> Iterator[dict[str, float]]:
        """Reset the peak; on exit put the phase's peak RSS in MiB into the yielded dict."""
        with self._lock:
            self._peak = rss_kib(self.pid)
        out: dict[str, float] = {}
        try:
            yield out
        finally:
            with self._lock:
                self._peak = max(self._peak, rss_kib(self.pid))
                out["peak_rss_mib"] = self._peak / 1024

    def peak_mib(self) -> float:
        """The highest sample since the start or the last ``phase()``, in MiB."""
        with self._lock:
            return self._peak / 1024

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
