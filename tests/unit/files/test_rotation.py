"""Key rotation over a real data dir (SQLite, blob folder, key files): master key rotation step
by step and resumed from every point a crash can leave, per-row master key choice in a process
that started before the rotation, user key versions taking effect in a running keyring, and
re-encryption (including a concurrent write and an interruption in the middle)."""

from __future__ import annotations

import io
import stat
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from davdisk import config as config_mod
from davdisk.crypto.keys import master_key_id, pending_key_path
from davdisk.errors import Conflict, KeyMaterialError
from davdisk.files.fsck import Fsck
from davdisk.files.rotation import MasterKeyRotation, Reencryption, rotate_user_key
from davdisk.meta import store
from davdisk.meta.tables import user_keys
from davdisk.model import Actor, Node
from davdisk.progress import Progress
from davdisk.services import Services
from tests.pg import use_test_database

SEG = 64 * 1024
USERS = ("alice", "bob", "carol", "dave")


def quiet(label: str, total: int, unit: str) -> Progress:
    return Progress(label, total, unit=unit, stream=io.StringIO())


@pytest.fixture
def cfg(tmp_path: Path) -> config_mod.Config:
    cfg = config_mod.load(None, data_dir=tmp_path / "data")
    cfg.set("auth", "bcrypt_cost", 4, "test")
    use_test_database(cfg)
    return cfg


@pytest.fixture
def svc(cfg: config_mod.Config) -> Iterator[Services]:
    """The data dir with four users who each own two files (one spans several segments)."""
    s = Services.open(cfg, create=True)
    for name in USERS:
        s.admin.add_user(name, f"{name}-password-1")
        write(s, name, "small.txt", f"hello {name}".encode())
        write(s, name, "big.bin", content(name, 3 * SEG + 123))
    yield s
    s.close()


def content(name: str, size: int) -> bytes:
    block = (name.encode() * 64)[:64]
    return (block * (size // 64 + 1))[:size]


def actor(s: Services, name: str) -> Actor:
    found = s.files.actor(name)
    assert found is not None
    return found


def write(s: Services, name: str, path: str, data: bytes) -> Node:
    a = actor(s, name)
    home = s.files.resolve(a, "/")
    assert home is not None
    return s.files.write(a, home, path, data)


def read(s: Services, name: str, path: str) -> bytes:
    a = actor(s, name)
    entry = s.files.resolve(a, "/" + path)
    assert entry is not None, path
    with s.files.open_read(a, entry) as f:
        return f.read()


def expected(name: str) -> dict[str, bytes]:
    return {"small.txt": f"hello {name}".encode(), "big.bin": content(name, 3 * SEG + 123)}


def assert_all_readable(s: Services) -> None:
    for name in USERS:
        for path, data in expected(name).items():
            assert read(s, name, path) == data, (name, path)


def key_ids(s: Services) -> dict[int, str]:
    with s.db.read() as conn:
        rows = conn.execute(select(user_keys.c.user_id, user_keys.c.master_key_id)).all()
    return {r.user_id: r.master_key_id for r in rows}


def user_id(s: Services, name: str) -> int:
    with s.db.read() as conn:
        user = store.get_user(conn, name)
    assert user is not None
    return user.id


def fresh(cfg: config_mod.Config) -> Services:
    """Another process on the same data dir: a server started now, or the next CLI run."""
    return Services.open(cfg, create=False)


# --- master key ----------------------------------------------------------------------------------


def test_rotation_swaps_the_key_file_and_leaves_no_trace_of_the_old_key(
    cfg: config_mod.Config, svc: Services
) -> None:
    key_file = cfg.master_key_file
    old = key_file.read_bytes()
    report = MasterKeyRotation(svc.db, key_file).run(quiet)
    assert report.rewrapped == len(USERS) and not report.resumed
    new = key_file.read_bytes()
    assert new != old and len(new) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert report.new_key_id == master_key_id(new)
    assert set(key_ids(svc).values()) == {master_key_id(new)}
    # Nothing else in the folder holds the old key (no .new, no temp copy).
    assert [p.name for p in key_file.parent.iterdir() if "key" in p.name] == [key_file.name]
    for path in key_file.parent.rglob("*"):
        if path.is_file():
            assert old not in path.read_bytes(), path
    later = fresh(cfg)
    try:
        assert_all_readable(later)
    finally:
        later.close()


def test_process_started_before_rotation_follows_it(cfg: config_mod.Config, svc: Services) -> None:
    server = fresh(cfg)  # holds only the old master key, no user key unwrapped yet
    try:
        rotation = MasterKeyRotation(svc.db, cfg.master_key_file)
        rotation.start()
        rotation.rewrap(user_id(svc, "alice"), 1)
        # Half done: alice's row is under the new key (in .new), the others under the old one.
        assert len(set(key_ids(svc).values())) == 2
        assert read(server, "alice", "big.bin") == expected("alice")["big.bin"]
        assert read(server, "bob", "big.bin") == expected("bob")["big.bin"]
        rotation.run(quiet)
        assert not pending_key_path(cfg.master_key_file).exists()
        # carol's row is now under the new key, which the server reads from the key file.
        assert read(server, "carol", "small.txt") == expected("carol")["small.txt"]
        assert_all_readable(server)
    finally:
        server.close()


def interrupt_after(stage: str, svc: Services, cfg: config_mod.Config) -> str:
    """Run a rotation up to ``stage`` and stop there as a crash would; returns the new key id."""
    rotation = MasterKeyRotation(svc.db, cfg.master_key_file)
    rotation.start()
    if stage in ("some-rows", "all-rows"):
        pending = rotation.pending()
        for uid, version in pending if stage == "all-rows" else pending[:2]:
            assert rotation.rewrap(uid, version)
    return rotation.new_id


@pytest.mark.parametrize("stage", ["new-key-written", "some-rows", "all-rows"])
def test_interrupted_rotation_resumes_with_the_same_new_key(
    cfg: config_mod.Config, svc: Services, stage: str
) -> None:
    old = cfg.master_key_file.read_bytes()
    new_id = interrupt_after(stage, svc, cfg)
    pending = pending_key_path(cfg.master_key_file)
    assert pending.exists() and stat.S_IMODE(pending.stat().st_mode) == 0o600
    assert cfg.master_key_file.read_bytes() == old  # the old key stays until every row is done
    middle = fresh(cfg)  # a server started while the rotation was stopped half way
    try:
        assert_all_readable(middle)
    finally:
        middle.close()
    done = {"new-key-written": 0, "some-rows": 2, "all-rows": len(USERS)}[stage]
    report = MasterKeyRotation(svc.db, cfg.master_key_file).run(quiet)
    assert report.resumed and report.new_key_id == new_id
    assert report.rewrapped == len(USERS) - done
    assert master_key_id(cfg.master_key_file.read_bytes()) == new_id
    assert not pending.exists()
    assert set(key_ids(svc).values()) == {new_id}
    later = fresh(cfg)
    try:
        assert_all_readable(later)
    finally:
        later.close()


def test_rewrap_is_idempotent(cfg: config_mod.Config, svc: Services) -> None:
    rotation = MasterKeyRotation(svc.db, cfg.master_key_file)
    rotation.start()
    uid = user_id(svc, "bob")
    assert rotation.rewrap(uid, 1)
    with svc.db.read() as conn:
        before = conn.execute(select(user_keys).where(user_keys.c.user_id == uid)).all()
    assert not rotation.rewrap(uid, 1)
    with svc.db.read() as conn:
        assert conn.execute(select(user_keys).where(user_keys.c.user_id == uid)).all() == before


def test_user_added_during_rotation_gets_the_new_key(cfg: config_mod.Config, svc: Services) -> None:
    server = fresh(cfg)  # started before: its memory has only the old master key
    try:
        rotation = MasterKeyRotation(svc.db, cfg.master_key_file)
        rotation.start()
        server.admin.add_user("erin", "erin-password-1")
        assert key_ids(svc)[user_id(svc, "erin")] == rotation.new_id
        rotation.run(quiet)
        write(server, "erin", "e.txt", b"erin's")
    finally:
        server.close()
    later = fresh(cfg)
    try:
        assert read(later, "erin", "e.txt") == b"erin's"
    finally:
        later.close()


def test_second_rotation_is_refused_while_one_runs(cfg: config_mod.Config, svc: Services) -> None:
    first = MasterKeyRotation(svc.db, cfg.master_key_file)
    with first.exclusive(), pytest.raises(Conflict, match="another key rotate-master"):
        MasterKeyRotation(svc.db, cfg.master_key_file).run(quiet)


def test_row_under_an_unknown_master_key_stops_the_swap(
    cfg: config_mod.Config, svc: Services
) -> None:
    old = cfg.master_key_file.read_bytes()
    with svc.db.write() as conn:
        conn.execute(
            update(user_keys)
            .where(user_keys.c.user_id == user_id(svc, "dave"))
            .values(master_key_id="00" * 8)
        )
    with pytest.raises(KeyMaterialError, match="1 user keys could not be rewrapped"):
        MasterKeyRotation(svc.db, cfg.master_key_file).run(quiet)
    # The others are done, but the old key is kept and the new one stays pending.
    assert cfg.master_key_file.read_bytes() == old
    assert pending_key_path(cfg.master_key_file).exists()


# --- user keys -----------------------------------------------------------------------------------


def blob_row(s: Services, entry: Node) -> tuple[str, int]:
    with s.db.read() as conn:
        fresh_entry = store.get_node(conn, entry.id)
        assert fresh_entry is not None and fresh_entry.blob_id is not None
        version = store.get_blob_key_version(conn, fresh_entry.blob_id)
    assert version is not None
    return fresh_entry.blob_id, version


def header_version(s: Services, blob_id: str) -> int:
    with s.content.blobs.open(blob_id) as f:
        return int.from_bytes(f.read(16)[12:16], "big")


def test_new_user_key_version_takes_effect_in_a_running_process(
    cfg: config_mod.Config, svc: Services
) -> None:
    server = fresh(cfg)
    try:
        before = write(server, "alice", "before.txt", b"v1 data")  # server has cached version 1
        cli = fresh(cfg)
        try:
            assert rotate_user_key(cli.db, cli.keyring, "alice") == (user_id(svc, "alice"), 2)
        finally:
            cli.close()
        after = write(server, "alice", "after.txt", b"v2 data")
        assert blob_row(server, before)[1] == 1
        blob_id, version = blob_row(server, after)
        assert version == 2 and header_version(server, blob_id) == 2
        assert read(server, "alice", "before.txt") == b"v1 data"
        assert read(server, "alice", "after.txt") == b"v2 data"
        assert_all_readable(server)
    finally:
        server.close()


def test_reencrypt_rewrites_old_blobs_and_keeps_etags(
    cfg: config_mod.Config, svc: Services
) -> None:
    alice = actor(svc, "alice")
    home = svc.files.resolve(alice, "/")
    big = svc.files.resolve(alice, "/big.bin")
    assert home is not None and big is not None
    copy, _ = svc.files.copy(alice, big, home, "copy.bin", overwrite=False)  # shares the blob
    old_blob = blob_row(svc, big)[0]
    etags = {e.name: e.etag for e in svc.files.children(alice, home)}
    bob, bob_home = actor(svc, "bob"), svc.files.resolve(actor(svc, "bob"), "/")
    assert bob_home is not None
    bob_blobs = {blob_row(svc, e) for e in svc.files.children(bob, bob_home)}

    uid, version = rotate_user_key(svc.db, svc.keyring, "alice")
    report = Reencryption(svc.content, svc.keyring, uid).run(quiet)

    assert (report.version, report.rewritten, report.skipped, report.failed) == (2, 2, 0, [])
    assert report.bytes == len(expected("alice")["small.txt"]) + 3 * SEG + 123
    entries = svc.files.children(alice, home)
    assert {e.name: e.etag for e in entries} == etags
    for e in entries:
        blob_id, v = blob_row(svc, e)
        assert v == version and header_version(svc, blob_id) == version
    assert blob_row(svc, copy)[0] == blob_row(svc, big)[0] != old_blob
    assert not svc.content.blobs.exists(old_blob)
    assert read(svc, "alice", "copy.bin") == expected("alice")["big.bin"]
    assert {blob_row(svc, e) for e in svc.files.children(bob, bob_home)} == bob_blobs
    assert_all_readable(svc)
    assert Reencryption(svc.content, svc.keyring, uid).pending() == []
    assert Fsck(svc.admin, deep=True, min_age=0, progress=quiet).check().findings == []


def test_reencrypt_leaves_a_blob_replaced_meanwhile_alone(
    cfg: config_mod.Config, svc: Services
) -> None:
    uid, _ = rotate_user_key(svc.db, svc.keyring, "alice")
    job = Reencryption(svc.content, svc.keyring, uid)
    old = next(b for b in job.pending() if b.size_plain == 3 * SEG + 123)
    new = job.rewrite(old)
    write(svc, "alice", "big.bin", b"written by someone else meanwhile")
    # The replaced content is kept as a version (and re-encrypted with the rest) until it is
    # let go, as expiry does here:
    with svc.db.write() as conn:
        kept = [v.id for v in store.list_versions(conn, old.node_id or 0)]
        kept += [v.id for v in store.owner_versions(conn, uid) if v.node_id != old.node_id]
        dead = svc.content.drop_versions(conn, kept)
    svc.content.remove(dead)
    assert not job.swap(old, new)
    assert not svc.content.blobs.exists(new.id)
    assert read(svc, "alice", "big.bin") == b"written by someone else meanwhile"
    assert Fsck(svc.admin, min_age=0, progress=quiet).check().findings == []


def test_interrupted_reencrypt_leaves_only_garbage_and_resumes(
    cfg: config_mod.Config, svc: Services
) -> None:
    uid, version = rotate_user_key(svc.db, svc.keyring, "alice")
    job = Reencryption(svc.content, svc.keyring, uid)
    first, second = job.pending()
    job.swap(first, job.rewrite(first))  # done
    orphan = job.rewrite(second)  # a crash before the swap: the new blob is referenced by none
    check = Fsck(svc.admin, min_age=0, progress=quiet).check()
    assert [(f.severity, f.kind) for f in check.findings] == [("fixable", "orphan-file")]
    assert_all_readable(svc)

    report = Reencryption(svc.content, svc.keyring, uid).run(
        quiet
    )  # the rerun continues with what is left
    assert report.rewritten == 1
    assert svc.admin.gc(0).blobs == 1 and not svc.content.blobs.exists(orphan.id)
    assert Fsck(svc.admin, deep=True, min_age=0, progress=quiet).check().findings == []
    home = svc.files.resolve(actor(svc, "alice"), "/")
    assert home is not None
    assert {blob_row(svc, e)[1] for e in svc.files.children(actor(svc, "alice"), home)} == {version}
    assert_all_readable(svc)


def test_reencrypt_reports_a_corrupt_blob_and_keeps_it(
    cfg: config_mod.Config, svc: Services
) -> None:
    big = svc.files.resolve(actor(svc, "alice"), "/big.bin")
    assert big is not None and big.blob_id is not None
    path = cfg.blob_dir / big.blob_id[:2] / big.blob_id
    data = bytearray(path.read_bytes())
    data[96 + 10] ^= 1  # inside the first segment: only decryption notices
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    uid, _ = rotate_user_key(svc.db, svc.keyring, "alice")
    report = Reencryption(svc.content, svc.keyring, uid).run(quiet)
    assert report.rewritten == 1 and len(report.failed) == 1
    assert big.blob_id in report.failed[0] and "segment 0" in report.failed[0]
    assert svc.content.blobs.exists(big.blob_id)  # never deleted
    assert read(svc, "alice", "small.txt") == expected("alice")["small.txt"]
    assert not any(p.name.endswith(".part") for p in (cfg.blob_dir / "tmp").iterdir())


def test_reencrypt_memory_stays_flat(cfg: config_mod.Config, svc: Services) -> None:
    size = 24 << 20
    write(svc, "bob", "large.bin", content("bob", size))
    uid, _ = rotate_user_key(svc.db, svc.keyring, "bob")
    tracemalloc.start()
    try:
        report = Reencryption(svc.content, svc.keyring, uid).run(quiet)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.rewritten == 3 and report.bytes > size
    assert peak < 4 << 20, f"peak {peak} bytes while re-encrypting {size} bytes"
