"""``davdisk storage migrate --to s3``: an install with 10 000 files in its local blob folder
moves them into a bucket (a real SeaweedFS) while its server keeps serving, is interrupted and
resumed, and after the switch every file reads back identical from the bucket."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from davdisk import config
from davdisk.services import Services
from tests.live.conftest import (
    REPO_ROOT,
    ServerFactory,
    _env,
    cli,
    davdisk_argv,
    describe,
    get_bytes,
    harness_config,
    put,
    set_blobs,
)
from tests.s3 import SeaweedServer

FOLDERS, PER_FOLDER = 10, 1000


def _content(n: int) -> bytes:
    # Sizes from 1 byte to a few segments; every file different.
    return hashlib.sha256(str(n).encode()).digest() * (1 + (n * 7919) % 300)


def _seed(data_dir: Path) -> dict[str, str]:
    """10 000 files with content, written in this process through the files layer."""
    svc = Services.open(config.load(harness_config(data_dir), data_dir), create=False)
    try:
        alice = svc.files.actor("alice")
        assert alice is not None
        home = svc.files.resolve(alice, "/")
        assert home is not None
        digests: dict[str, str] = {}
        for f in range(FOLDERS):
            folder = svc.files.mkdir(alice, home, f"f{f}")

            def write(i: int, folder: object = folder, f: int = f) -> tuple[str, str]:
                data = _content(f * PER_FOLDER + i)
                svc.files.write(alice, folder, f"n{i}.bin", data)  # type: ignore[arg-type]
                return f"f{f}/n{i}.bin", hashlib.sha256(data).hexdigest()

            with ThreadPoolExecutor(4) as pool:
                digests.update(pool.map(write, range(PER_FOLDER)))
        return digests
    finally:
        svc.close()


def _read_all(data_dir: Path, digests: dict[str, str]) -> dict[str, str]:
    """Every file's SHA-256 as the install (now on the bucket) reads it."""
    svc = Services.open(config.load(harness_config(data_dir), data_dir), create=False)
    try:
        alice = svc.files.actor("alice")
        assert alice is not None

        def read(path: str) -> tuple[str, str]:
            entry = svc.files.resolve(alice, "/" + path)
            assert entry is not None, path
            with svc.files.open_read(alice, entry) as f:
                return path, hashlib.sha256(f.read()).hexdigest()

        with ThreadPoolExecutor(8) as pool:
            return dict(pool.map(read, sorted(digests)))
    finally:
        svc.close()


def test_storage_migrate_moves_10000_files_into_a_bucket_without_losing_a_byte(
    server_factory: ServerFactory, seaweed: SeaweedServer
) -> None:
    data_dir = server_factory.new_data_dir()
    started = time.monotonic()
    digests = _seed(data_dir)
    seeded = time.monotonic() - started
    bucket = seaweed.create_bucket()
    set_blobs(data_dir, seaweed, bucket, backend="local")  # named, not used yet

    # The server keeps serving from the folder while the blobs are copied; the first run is
    # interrupted part way.
    srv = server_factory(data_dir)
    s = srv.session()
    move = subprocess.Popen(
        davdisk_argv(data_dir, "storage", "migrate", "--to", "s3"),
        env=_env(),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = seaweed.client()

    def objects() -> int:
        return sum(
            page.get("KeyCount", 0)
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        )

    while objects() < 2000 and move.poll() is None:
        time.sleep(0.2)
    move.send_signal(signal.SIGKILL)
    move.wait()
    copied_before = objects()
    assert 0 < copied_before < len(digests)
    put(s, srv.dav + "during.txt", b"written while the blobs were moving")
    digests["during.txt"] = hashlib.sha256(b"written while the blobs were moving").hexdigest()

    started = time.monotonic()
    again = cli(data_dir, "storage", "migrate", "--to", "s3", timeout=600)
    moved = time.monotonic() - started
    assert again.returncode == 0, describe(again)
    assert "were there already" in again.stdout
    srv.stop()
    last = cli(data_dir, "storage", "migrate", "--to", "s3", timeout=600)
    assert last.returncode == 0, describe(last)
    assert "copied 0 blobs" in last.stdout, last.stdout  # nothing new since the second run
    assert f"{len(digests)} were there already" in last.stdout, last.stdout

    set_blobs(data_dir, seaweed, bucket)  # the switch: backend = "s3"
    assert _read_all(data_dir, digests) == digests
    srv = server_factory(data_dir)
    s = srv.session()
    assert get_bytes(s, srv.dav + "during.txt") == b"written while the blobs were moving"
    assert get_bytes(s, srv.dav + "f3/n7.bin") == _content(3 * PER_FOLDER + 7)
    print(
        f"seeded {len(digests)} files in {seeded:.1f} s; {copied_before} copied before the "
        f"kill; the rest copied and all verified in {moved:.1f} s"
    )
    blobs_dir = data_dir / "blobs"
    assert sum(1 for _ in blobs_dir.rglob("*") if _.is_file()) >= len(digests)  # only read
    assert os.path.isdir(blobs_dir)
