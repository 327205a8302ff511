"""Background jobs under a lease: of two ``davdisk serve`` processes on one database exactly one
runs each gc (and each expiry of old versions and trash), a crashed holder's lease expires and
the other takes over, and ``davdisk gc`` refuses to run beside a server's."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest

from davdisk import config as config_mod
from davdisk.files.jobs import EXPIRY, GC, Lease
from davdisk.meta.db import Database
from davdisk.meta.store.leases import LeaseRow
from tests.live.conftest import (
    Server,
    ServerFactory,
    _harness_config,
    cli,
    put,
    sql,
    wait_until,
)

INTERVAL = 1  # [jobs] gc_interval
LEASE = 3  # [jobs] lease_seconds
ORPHANS = 30_000  # leftovers that make one gc run last a second or more
HOUR_AGO = time.time() - 3600
RUN_RE = re.compile(
    r"^(\S+ \S+) INFO davdisk\.jobs: gc: removed (\d+) blobs, \d+ bytes in [\d.]+ s "
    r"\(lease \S+:(\d+):\w+\)$",
    re.M,
)
EXPIRY_RE = re.compile(
    r"^(\S+ \S+) INFO davdisk\.jobs: expiry: dropped (\d+) versions, purged (\d+) trash items "
    r"in [\d.]+ s \(lease \S+:(\d+):\w+\)$",
    re.M,
)


def _jobs_config(data_dir: Path, path: Path) -> Path:
    """The harness config (its database too, on a PostgreSQL run) with a fast gc."""
    base = _harness_config(data_dir).read_text()
    path.write_text(f"{base}\n[jobs]\ngc_interval = {INTERVAL}\nlease_seconds = {LEASE}\n")
    return path


@pytest.fixture
def database(
    server_factory: ServerFactory, tmp_path: Path
) -> Iterator[tuple[Path, Path, Database]]:
    """A data dir with alice and bob, its fast-gc config, and its database opened here."""
    data_dir = server_factory.new_data_dir()
    config = _jobs_config(data_dir, tmp_path / "jobs.toml")
    db = Database(config_mod.load(config, data_dir).database_url, pool_size=2)
    yield data_dir, config, db
    db.dispose()


def _lease(db: Database) -> LeaseRow | None:
    return Lease(db, GC, "test", LEASE).current()


def _stage_orphans(data_dir: Path, count: int, stage: str) -> list[Path]:
    """``count`` blob files no row names, an hour old (what a crash leaves), made in a folder
    beside the blobs; :func:`_move_in` puts them where they count. Their future paths."""
    staging = data_dir / stage
    staging.mkdir()
    # Hard links of one file: one system call each (they share its old mtime).
    original = staging / "original"
    original.write_bytes(b"left by a crash")
    os.utime(original, (HOUR_AGO, HOUR_AGO))
    made = []
    for n in range(count):
        blob_id = f"{n % 256:02x}{stage[:4]}{n:026x}"
        path = staging / blob_id[:2] / blob_id
        if n < 256:
            path.parent.mkdir()
        os.link(original, path)
        made.append(data_dir / "blobs" / blob_id[:2] / blob_id)
    original.unlink()
    return made


def _move_in(data_dir: Path, stage: str) -> None:
    """Move staged orphans into the blob store in a moment, so no gc sees half of them."""
    for sub in (data_dir / stage).iterdir():
        target = data_dir / "blobs" / sub.name
        if target.exists():
            for f in sub.iterdir():
                f.rename(target / f.name)
        else:
            sub.rename(target)


def _orphans(data_dir: Path, count: int, stage: str) -> list[Path]:
    made = _stage_orphans(data_dir, count, stage)
    _move_in(data_dir, stage)
    return made


def _runs(*servers: Server) -> list[tuple[datetime, int, int]]:
    """Every gc run the servers logged: (when it ended, blobs removed, pid), oldest first."""
    found = []
    for srv in servers:
        for when, removed, pid in RUN_RE.findall(srv.log()):
            found.append((datetime.strptime(when, "%Y-%m-%d %H:%M:%S,%f"), int(removed), int(pid)))
    return sorted(found)


def test_of_two_servers_one_runs_each_gc(
    server_factory: ServerFactory, database: tuple[Path, Path, Database]
) -> None:
    data_dir, config, db = database
    leftovers = _orphans(data_dir, 20, "aaaa")
    a = server_factory(data_dir=data_dir, config=config)
    b = server_factory(data_dir=data_dir, config=config)

    wait_until(lambda: not any(p.exists() for p in leftovers), 20, "gc to collect the leftovers")
    wait_until(lambda: len(_runs(a, b)) >= 6, 30, "six runs of gc")
    runs = _runs(a, b)
    # One run per interval over both servers: each starts an interval after the last one
    # ended (whoever ran it), never twice at the same moment.
    gaps = [(later[0] - earlier[0]).total_seconds() for earlier, later in pairwise(runs)]
    assert min(gaps) >= INTERVAL * 0.8, (gaps, runs)
    assert sum(removed for _, removed, _ in runs) == len(leftovers), runs
    assert {pid for _, _, pid in runs} <= {a.pid, b.pid}
    row = _lease(db)
    assert row is not None and row.last_run_at is not None
    assert int(row.holder.split(":")[1]) in (a.pid, b.pid)


def test_a_crashed_holder_s_gc_is_taken_over_when_its_lease_expires(
    server_factory: ServerFactory, database: tuple[Path, Path, Database]
) -> None:
    data_dir, config, db = database
    servers = [server_factory(data_dir=data_dir, config=config) for _ in range(2)]
    # Enough leftovers that a run takes a while, so that its holder can be killed in it.
    leftovers = _stage_orphans(data_dir, ORPHANS, "bbbb")
    first = wait_until(lambda: _lease(db) and _lease(db).last_run_at, 20, "a first run of gc")
    # Moved in just after a run ended, so the next run (an interval later) is the one that
    # finds them: the holder seen below is in that long run, not a short one before it.
    wait_until(lambda: _lease(db).last_run_at != first, 20, "a second run", interval=0.002)
    _move_in(data_dir, "bbbb")

    def running() -> LeaseRow | None:
        row = _lease(db)
        now = time.time()
        # held, and taken (or renewed) a moment ago: the run has just begun
        if row is not None and row.expires_at > now and row.expires_at - LEASE > now - 0.2:
            return row
        return None

    holding = wait_until(running, 20, "a server to start a gc run", interval=0.002)
    assert isinstance(holding, LeaseRow)
    pid = int(holding.holder.split(":")[1])
    (dead,) = [s for s in servers if s.pid == pid]
    (survivor,) = [s for s in servers if s.pid != pid]
    dead.kill()
    killed_at = time.time()
    after = _lease(db)
    assert after is not None and after.holder == holding.holder, "the run ended before the kill"
    assert after.expires_at > killed_at  # the dead process still holds it

    def taken_over() -> LeaseRow | None:
        row = _lease(db)
        ran = row is not None and row.last_run_at is not None and row.last_run_at > killed_at
        return row if ran and int(row.holder.split(":")[1]) == survivor.pid else None

    row = wait_until(taken_over, 30, "the other server to take gc over")
    assert isinstance(row, LeaseRow) and row.last_run_at is not None
    # Not before the dead holder's lease ran out (a run ends after it starts).
    assert row.last_run_at >= after.expires_at
    assert not any(p.exists() for p in leftovers)
    assert [r for r in _runs(survivor) if r[1] > 0], survivor.log()


def test_cli_gc_refuses_to_run_beside_another(database: tuple[Path, Path, Database]) -> None:
    data_dir, _config, db = database
    leftovers = _orphans(data_dir, 3, "cccc")
    server_gc = Lease(db, GC, "otherhost:4242:cafe", LEASE * 100)
    assert server_gc.take()
    done = cli(data_dir, "gc")
    assert done.returncode == 4, done
    assert done.stderr.startswith("davdisk: error: conflict: gc is running in otherhost:4242:cafe")
    assert all(p.exists() for p in leftovers)  # nothing was collected

    with server_gc.kept():  # released when done: the CLI may run
        pass
    done = cli(data_dir, "gc")
    assert done.returncode == 0, done
    assert "removed 3 blobs" in done.stdout
    assert not any(p.exists() for p in leftovers)
    row = _lease(db)
    assert row is not None and row.last_run_at is not None and row.expires_at == 0


def _expiry_runs(*servers: Server) -> list[tuple[datetime, int, int]]:
    """Every expiry run the servers logged: (when it ended, versions dropped, pid), oldest
    first."""
    found = []
    for srv in servers:
        for when, dropped, _items, pid in EXPIRY_RE.findall(srv.log()):
            found.append((datetime.strptime(when, "%Y-%m-%d %H:%M:%S,%f"), int(dropped), int(pid)))
    return sorted(found)


def test_of_two_servers_one_runs_each_expiry(
    server_factory: ServerFactory, database: tuple[Path, Path, Database], tmp_path: Path
) -> None:
    data_dir, _config, db = database
    config = tmp_path / "expiry.toml"
    config.write_text(
        f"{_harness_config(data_dir).read_text()}\n"
        '[versions]\nretention = "auto, 1"\n'
        f"[jobs]\ngc_interval = 0\nexpiry_interval = {INTERVAL}\nlease_seconds = {LEASE}\n"
    )
    a = server_factory(data_dir=data_dir, config=config)
    b = server_factory(data_dir=data_dir, config=config)
    s = a.session()
    for body in (b"first", b"second"):
        put(s, a.dav + "f.txt", body)
    # the version two days old, past "auto, 1": the next run, whichever server's, drops it
    aged = sql(
        data_dir,
        "UPDATE versions SET replaced_at = :t RETURNING id",
        t=time.time() - 2 * 86400,
    )
    assert len(aged) == 1, aged

    wait_until(lambda: sum(r[1] for r in _expiry_runs(a, b)), 20, "the version to expire")
    wait_until(lambda: len(_expiry_runs(a, b)) >= 6, 30, "six runs of the expiry")
    runs = _expiry_runs(a, b)
    gaps = [(later[0] - earlier[0]).total_seconds() for earlier, later in pairwise(runs)]
    assert min(gaps) >= INTERVAL * 0.8, (gaps, runs)
    assert sum(dropped for _, dropped, _ in runs) == 1, runs  # dropped once
    assert {pid for _, _, pid in runs} <= {a.pid, b.pid}
    assert sql(data_dir, "SELECT count(*) FROM versions") == [(0,)]
    row = Lease(db, EXPIRY, "test", LEASE).current()
    assert row is not None and row.last_run_at is not None
    assert int(row.holder.split(":")[1]) in (a.pid, b.pid)
    assert _lease(db) is None  # gc_interval = 0: gc never ran, under its own lease
    assert not _runs(a, b)
