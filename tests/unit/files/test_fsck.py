"""fsck over a real data dir: each kind of damage is found (and only by the check that can see
it), repair fixes only what is safe, and a write racing the check is not mistaken for damage."""

from __future__ import annotations

import io
import os
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from davdisk import config as config_mod
from davdisk.files.fsck import Fsck, FsckReport
from davdisk.meta import store, tables
from davdisk.meta.tables import user_keys
from davdisk.model import Actor, Node
from davdisk.progress import Progress
from davdisk.services import Services
from tests.pg import use_test_database

SEG = 64 * 1024
HOUR_AGO = time.time() - 3600


def quiet(label: str, total: int, unit: str) -> Progress:
    return Progress(label, total, unit=unit, stream=io.StringIO())


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    cfg = config_mod.load(None, data_dir=tmp_path / "data")
    cfg.set("auth", "bcrypt_cost", 4, "test")
    use_test_database(cfg)
    s = Services.open(cfg, create=True)
    for name in ("alice", "bob"):
        s.admin.add_user(name, f"{name}-password-1")
    a = actor(s, "alice")
    home = s.files.resolve(a, "/")
    assert home is not None
    s.files.write(a, home, "a.txt", b"alpha")
    s.files.write(a, home, "b.bin", os.urandom(2 * SEG + 5))
    c = s.files.write(a, home, "c.bin", os.urandom(3 * SEG))
    s.files.copy(a, c, home, "c-copy.bin", overwrite=False)
    s.files.write(a, home, "empty.txt", b"")
    folder = s.files.mkdir(a, home, "docs")
    s.files.write(a, folder, "d.txt", b"delta")
    b = actor(s, "bob")
    bob_home = s.files.resolve(b, "/")
    assert bob_home is not None
    s.files.write(b, bob_home, "e.txt", b"echo")
    yield s
    s.close()


def actor(s: Services, name: str) -> Actor:
    found = s.files.actor(name)
    assert found is not None
    return found


def entry(s: Services, path: str, user: str = "alice") -> Node:
    found = s.files.resolve(actor(s, user), path)
    assert found is not None and found.blob_id is not None, path
    return found


def blob_path(s: Services, e: Node) -> Path:
    assert e.blob_id is not None
    return Path(s.config.blob_dir) / e.blob_id[:2] / e.blob_id


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def kinds(report: FsckReport) -> list[tuple[str, str, str]]:
    return sorted((f.severity, f.kind, f.where) for f in report.findings)


def fsck(s: Services, *, deep: bool = False, min_age: float = 900) -> FsckReport:
    return Fsck(s.admin, deep=deep, min_age=min_age, progress=quiet).check()


def test_clean_data_dir(svc: Services) -> None:
    for deep in (False, True):
        report = fsck(svc, deep=deep)
        assert report.findings == [] and report.problems == 0
        assert (report.users, report.keys, report.files) == (2, 2, 7)
        assert report.blobs == 5  # the copy shares its blob, the empty file has none
    assert report.bytes_verified == 5 + 2 * SEG + 5 + 3 * SEG + 5 + 4
    assert "0 errors, 0 fixable, 0 warnings" in report.summary()


def test_each_kind_of_damage_is_found(svc: Services) -> None:
    blobs_dir = Path(svc.config.blob_dir)
    os.unlink(blob_path(svc, entry(svc, "/a.txt")))
    flip(blob_path(svc, entry(svc, "/b.bin")), 70)  # in the header's MAC-covered bytes
    flip(blob_path(svc, entry(svc, "/c.bin")), 96 + SEG + 16 + 3)  # inside segment 1
    orphan = blobs_dir / "ab" / ("ab" + "0" * 30)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"x" * 200)
    os.utime(orphan, (HOUR_AGO, HOUR_AGO))
    young = blobs_dir / "ab" / ("ab" + "1" * 30)
    young.write_bytes(b"y" * 10)
    stale = blobs_dir / "tmp" / "0123456789abcdef.part"
    stale.write_bytes(b"z" * 30)
    os.utime(stale, (HOUR_AGO, HOUR_AGO))
    (blobs_dir / "tmp" / "fedcba9876543210.part").write_bytes(b"in progress")
    bob = actor(svc, "bob")
    with svc.db.write() as conn:
        conn.execute(
            update(tables.users).where(tables.users.c.name == "alice").values(used_bytes=7)
        )
        store.insert_blob(
            conn, "cd" * 16, owner_id=bob.id, node_id=None, key_version=1, size_plain=1,
            size_cipher=113,
        )  # fmt: skip
        conn.execute(
            update(user_keys).where(user_keys.c.user_id == bob.id).values(wrapped_key=b"\0" * 60)
        )
    svc.keyring.forget(bob.id)
    d = entry(svc, "/docs/d.txt")
    with svc.db.write() as conn:
        store.update_node(conn, d.id, size=6)

    shallow = fsck(svc)
    expected = [
        ("error", "bad-user-key", "user bob version 1"),
        ("error", "corrupt-blob", "alice:/b.bin"),
        ("error", "corrupt-blob", "bob:/e.txt"),  # its key does not unwrap
        ("error", "missing-blob", "alice:/a.txt"),
        ("error", "size-mismatch", "alice:/docs/d.txt"),
        ("fixable", "orphan-file", f"blob ab{'0' * 30}"),
        ("fixable", "quota-drift", "user alice"),
        ("fixable", "stale-temp-file", "tmp/0123456789abcdef.part"),
        ("fixable", "unreferenced-blob-row", f"blob {'cd' * 16}"),
        ("warning", "recent-file", f"blob ab{'1' * 30}"),
        ("warning", "recent-temp-file", "tmp/fedcba9876543210.part"),
    ]
    assert kinds(shallow) == sorted(expected)
    messages = {f.kind + f.where: f.detail for f in shallow.findings}
    assert "MAC mismatch" in messages["corrupt-blobalice:/b.bin"]
    assert "used_bytes is 7, the files take" in messages["quota-driftuser alice"]

    deep = fsck(svc, deep=True)
    assert kinds(deep) == sorted(
        [*expected, ("error", "corrupt-blob", "alice:/c.bin (and 1 more)")]
    )
    assert "segment 1 failed authentication" in str(deep.findings)


def test_repair_fixes_only_what_is_safe(svc: Services) -> None:
    blobs_dir = Path(svc.config.blob_dir)
    a, b = entry(svc, "/a.txt"), entry(svc, "/b.bin")
    os.unlink(blob_path(svc, a))
    flip(blob_path(svc, b), 20)
    corrupt = blob_path(svc, b).read_bytes()
    orphan = blobs_dir / "ab" / ("ab" + "0" * 30)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"x" * 200)
    os.utime(orphan, (HOUR_AGO, HOUR_AGO))
    young = blobs_dir / "tmp" / "fedcba9876543210.part"
    young.write_bytes(b"in progress")
    with svc.db.write() as conn:
        conn.execute(update(tables.users).values(used_bytes=0))

    fsck_ = Fsck(svc.admin, min_age=900, progress=quiet)
    report = fsck_.repair(fsck_.check())
    assert report.problems_found == 5  # missing, corrupt, orphan, two users' usage
    assert kinds(report) == [
        ("error", "corrupt-blob", "alice:/b.bin"),
        ("error", "missing-blob", "alice:/a.txt"),
        ("warning", "recent-temp-file", "tmp/fedcba9876543210.part"),
    ]
    assert report.repaired == [
        "removed 1 leftover files (200 bytes)",
        "recomputed the usage of 2 users",
    ]
    assert not orphan.exists() and young.exists()
    # The damaged files keep their metadata and the corrupt blob its bytes, for a human.
    assert entry(svc, "/a.txt") == a and entry(svc, "/b.bin") == b
    assert blob_path(svc, b).read_bytes() == corrupt
    again = fsck(svc)
    assert kinds(again) == kinds(report)


def test_a_write_during_the_check_is_not_damage(svc: Services) -> None:
    """A file overwritten while fsck runs loses its old blob between the snapshot and the check
    of that blob: fsck must look again rather than report it missing."""
    alice = actor(svc, "alice")
    home = svc.files.resolve(alice, "/")
    assert home is not None

    class Writer(Progress):
        def advance(self, n: int = 1, *, nbytes: int = 0) -> None:
            super().advance(n, nbytes=nbytes)
            if self.done == 1:  # after the first blob: replace every other file's content
                for e in svc.files.children(alice, home):
                    if not e.is_dir and e.blob_id is not None:
                        svc.files.write(alice, home, e.name, b"replaced " + e.name.encode())

    def racing(label: str, total: int, unit: str) -> Progress:
        return Writer(label, total, unit=unit, stream=io.StringIO())

    report = Fsck(svc.admin, min_age=0, progress=racing).check()
    assert report.findings == []
    assert fsck(svc, deep=True, min_age=0).findings == []


def test_deep_check_memory_stays_flat(svc: Services) -> None:
    alice = actor(svc, "alice")
    home = svc.files.resolve(alice, "/")
    assert home is not None
    with svc.files.upload(alice, home, "large.bin") as up:
        chunk = os.urandom(1 << 20)
        for _ in range(24):
            up.write(chunk)
        up.commit()
    tracemalloc.start()
    try:
        report = fsck(svc, deep=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.findings == [] and report.bytes_verified > 24 << 20
    assert peak < 4 << 20, peak
