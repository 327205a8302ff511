"""The files API over a real SQLite database and blob folder: content, sharing of blobs between
copies, garbage collection and user removal."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest

from davdisk import config as config_mod
from davdisk.errors import (
    AlreadyExists,
    Forbidden,
    IncompleteBody,
    InsufficientStorage,
    IntegrityError,
    InvalidName,
    NotFound,
    PreconditionFailed,
    UsageError,
)
from davdisk.meta import store
from davdisk.model import Actor, Node
from davdisk.services import Services
from tests.pg import use_test_database


def _actor(svc: Services, name: str) -> Actor:
    actor = svc.files.actor(name)
    assert actor is not None
    return actor


def _blob_files(svc: Services) -> set[str]:
    return {b.id for b in svc.content.stored()}


def _drop_versions(svc: Services, entry: Node) -> None:
    """Let a file's versions go, as expiry would."""
    with svc.db.write() as conn:
        dead = svc.content.drop_versions(conn, [v.id for v in store.list_versions(conn, entry.id)])
    svc.content.remove(dead)


def test_write_read_and_hashes(svc: Services) -> None:
    alice = _actor(svc, "alice")
    home = svc.files.resolve(alice, "/")
    assert home is not None
    entry = svc.files.write(alice, home, "a.txt", b"hello")
    assert entry.size == 5
    assert svc.files.checksums.reveal(entry) == (
        "5d41402abc4b2a76b9719d911017c592",
        "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d",
    )
    assert entry.content_type == "text/plain"
    with svc.files.open_read(alice, entry) as f:
        assert f.read() == b"hello"
        f.seek(1)
        assert f.read(3) == b"ell"


def test_copies_share_a_blob_until_the_last_is_gone(svc: Services) -> None:
    alice = _actor(svc, "alice")
    home = svc.files.resolve(alice, "/")
    assert home is not None
    original = svc.files.write(alice, home, "o.bin", os.urandom(100_000))
    copy, created = svc.files.copy(alice, original, home, "c.bin", overwrite=False)
    assert created and copy.blob_id == original.blob_id
    assert _blob_files(svc) == {original.blob_id}
    svc.files.delete(alice, original)
    assert _blob_files(svc) == {original.blob_id}  # still used by the copy
    with svc.files.open_read(alice, copy) as f:
        assert len(f.read()) == 100_000
    svc.files.delete(alice, copy)
    assert _blob_files(svc) == {original.blob_id}  # both in the trash
    assert svc.files.history.empty(alice) == 2
    assert _blob_files(svc) == set()


def test_overwrite_removes_the_old_blob(svc: Services) -> None:
    alice = _actor(svc, "alice")
    home = svc.files.resolve(alice, "/")
    assert home is not None
    first = svc.files.write(alice, home, "f", b"one")
    second = svc.files.write(alice, home, "f", b"two")
    assert second.id == first.id and second.blob_id != first.blob_id
    # The old content is a version until it is let go.
    assert _blob_files(svc) == {first.blob_id, second.blob_id}
    (version,) = svc.files.history.versions(alice, second)
    assert version.blob_id == first.blob_id
    _drop_versions(svc, second)
    assert _blob_files(svc) == {second.blob_id}


def test_incomplete_upload_leaves_nothing(svc: Services) -> None:
    alice = _actor(svc, "alice")
    home = svc.files.resolve(alice, "/")
    assert home is not None
    up = svc.files.upload(alice, home, "partial", expected_size=10)
    up.write(b"12345")
    with pytest.raises(IncompleteBody):
        up.commit()
    assert svc.files.resolve(alice, "/partial") is None
    assert _blob_files(svc) == set()
    assert list((svc.config.blob_dir / "tmp").iterdir()) == []


def test_names_and_conflicts(svc: Services) -> None:
    alice = _actor(svc, "alice")
    home = svc.files.resolve(alice, "/")
    assert home is not None
    for bad in ("", ".", "..", "a/b", "nul\0", "x" * 256):
        with pytest.raises(InvalidName):
            svc.files.mkdir(alice, home, bad)
    folder = svc.files.mkdir(alice, home, "d")
    with pytest.raises(AlreadyExists):
        svc.files.mkdir(alice, home, "d")
    sub = svc.files.mkdir(alice, folder, "sub")
    with pytest.raises(Forbidden):
        svc.files.move(alice, folder, sub, "inside", overwrite=True)
    f = svc.files.write(alice, home, "f", b"f")
    with pytest.raises(PreconditionFailed):
        svc.files.move(alice, f, home, "d", overwrite=False)
    assert svc.files.resolve(alice, "/d/../f") is None


def test_other_users_nodes_are_forbidden(svc: Services) -> None:
    alice, bob = _actor(svc, "alice"), _actor(svc, "bob")
    home = svc.files.resolve(alice, "/")
    assert home is not None
    secret = svc.files.write(alice, home, "secret", b"s")
    assert svc.files.resolve(bob, "/secret") is None
    for attempt in (
        lambda: svc.files.open_read(bob, secret),
        lambda: svc.files.delete(bob, secret),
        lambda: svc.files.properties(bob, secret),
        lambda: svc.files.write(bob, home, "planted", b"x"),
    ):
        with pytest.raises(Forbidden):
            attempt()


def test_gc_removes_orphans_and_stale_uploads_only(svc: Services) -> None:
    alice = _actor(svc, "alice")
    home = svc.files.resolve(alice, "/")
    assert home is not None
    kept = svc.files.write(alice, home, "kept", b"keep me")
    orphan = svc.config.blob_dir / "ab" / ("ab" * 16)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"x" * 1000)
    stale = svc.config.blob_dir / "tmp" / "dead.part"
    stale.write_bytes(b"y" * 10)
    report = svc.admin.gc(min_age=3600)
    assert (report.blobs, report.bytes) == (0, 0)  # too young: a server may be committing them
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    os.utime(stale, (old, old))
    report = svc.admin.gc(min_age=3600)
    assert (report.blobs, report.bytes) == (2, 1010)
    assert _blob_files(svc) == {kept.blob_id}


def test_user_rules_and_removal(svc: Services) -> None:
    with pytest.raises(AlreadyExists):
        svc.admin.add_user("alice", "another-password")
    with pytest.raises(UsageError):
        svc.admin.add_user("carol", "short")
    for bad in ("", "a" * 65, "a/b", "a:b", "tab\there"):
        with pytest.raises(InvalidName):
            svc.admin.add_user(bad, "long-enough-password")
    with pytest.raises(NotFound):
        svc.admin.delete_user("nobody")
    alice = _actor(svc, "alice")
    home = svc.files.resolve(alice, "/")
    assert home is not None
    svc.files.write(alice, home, "a", b"aaa")
    assert [(u.name, u.files, u.bytes) for u in svc.admin.list_users()] == [
        ("alice", 1, 3),
        ("bob", 0, 0),
    ]
    assert svc.admin.delete_user("alice") == 1
    assert _blob_files(svc) == set()
    assert svc.files.actor("alice") is None


def test_tampered_blob_is_refused(svc: Services) -> None:
    """(The face that answers the failed read logs it with its request: see
    tests/live/test_server_errors.py.)"""
    alice = _actor(svc, "alice")
    home = svc.files.resolve(alice, "/")
    assert home is not None
    entry = svc.files.write(alice, home, "t.bin", b"A" * 200_000)
    assert entry.blob_id is not None
    path = svc.config.blob_dir / entry.blob_id[:2] / entry.blob_id
    raw = bytearray(path.read_bytes())
    raw[96 + 65536 + 16 + 10] ^= 1  # a byte inside the second segment
    os.chmod(path, 0o600)
    path.write_bytes(bytes(raw))
    with svc.files.open_read(alice, entry) as f:
        assert f.read(1000) == b"A" * 1000  # the first segment is intact and verified
        with pytest.raises(IntegrityError, match="segment 1 failed authentication"):
            f.read()


def test_empty_placeholder_costs_no_blob_and_keeps_its_node(svc: Services) -> None:
    alice = _actor(svc, "alice")
    home = svc.files.resolve(alice, "/")
    assert home is not None
    placeholder = svc.files.write(alice, home, "new.docx", b"")
    assert placeholder.blob_id is None and _blob_files(svc) == set()
    with svc.files.open_read(alice, placeholder) as f:
        assert f.read() == b""
    written = svc.files.write(alice, home, "new.docx", b"real content")
    assert written.id == placeholder.id and written.ctime == placeholder.ctime
    assert written.etag != placeholder.etag
    assert _blob_files(svc) == {written.blob_id}
    emptied = svc.files.write(alice, home, "new.docx", b"")
    assert emptied.blob_id is None and _blob_files(svc) == {written.blob_id}  # a version
    _drop_versions(svc, emptied)
    assert _blob_files(svc) == set()


def test_default_quota_from_config(tmp_path: Path) -> None:
    cfg = config_mod.load(None, data_dir=tmp_path / "q")
    cfg.set("auth", "bcrypt_cost", 4, "test")
    cfg.set("users", "default_quota", "2K", "test")
    use_test_database(cfg)
    s = Services.open(cfg, create=True)
    try:
        s.admin.add_user("dora", "dora-password-4")
        assert [(u.name, u.quota) for u in s.admin.list_users()] == [("dora", 2048)]
        dora = _actor(s, "dora")
        home = s.files.resolve(dora, "/")
        assert home is not None
        with pytest.raises(InsufficientStorage):
            s.files.write(dora, home, "big", b"x" * 3000)
        assert s.files.resolve(dora, "/big") is None
    finally:
        s.close()


def test_a_stale_node_id_never_names_a_newer_node(svc: Services) -> None:
    # SQLite used to hand a deleted row's id (when it was the largest) to the next insert, so a
    # request holding the old entry acted on the newcomer (found by the soak test).
    alice = _actor(svc, "alice")
    home = svc.files.resolve(alice, "/")
    assert home is not None
    svc.files.write(alice, home, "x.txt", b"x")
    stale = svc.files.resolve(alice, "/x.txt")
    assert stale is not None
    svc.files.delete(alice, stale)
    folder = svc.files.mkdir(alice, home, "Important")
    svc.files.write(alice, folder, "thesis.doc", b"chapter one")
    assert folder.id != stale.id
    with contextlib.suppress(NotFound):  # deleting what is gone may be refused or a no-op
        svc.files.delete(alice, stale)
    thesis = svc.files.resolve(alice, "/Important/thesis.doc")
    assert thesis is not None
    with svc.files.open_read(alice, thesis) as f:
        assert f.read() == b"chapter one"


def test_open_current_follows_an_overwrite_that_removed_the_old_blob(svc: Services) -> None:
    # A GET that looked the file up just before a PUT replaced it (and removed the old blob)
    # used to fail with a 500 (found by the soak test); it now reads the new version.
    alice = _actor(svc, "alice")
    home = svc.files.resolve(alice, "/")
    assert home is not None
    svc.files.write(alice, home, "doc.txt", b"old content")
    stale = svc.files.resolve(alice, "/doc.txt")
    assert stale is not None
    svc.files.write(alice, home, "doc.txt", b"new, longer content")
    _drop_versions(svc, stale)
    with pytest.raises(NotFound):
        svc.files.open_read(alice, stale).close()  # the old blob is gone
    entry, reader = svc.files.open_current(alice, stale)
    with reader:
        assert reader.read() == b"new, longer content"
    assert (entry.id, entry.size) == (stale.id, len(b"new, longer content"))
    assert entry.etag != stale.etag
    # ... and once open, a reader keeps its version through the next overwrite.
    entry, reader = svc.files.open_current(alice, entry)
    svc.files.write(alice, home, "doc.txt", b"third")
    with reader:
        assert reader.read() == b"new, longer content"
    svc.files.delete(alice, entry)
    svc.files.history.empty(alice)
    with pytest.raises(NotFound):
        svc.files.open_current(alice, entry)


def test_a_missing_blob_the_file_still_names_is_damage(svc: Services) -> None:
    # Not a 404: the file is listed, its content lost; the server logs it and answers 500.
    alice = _actor(svc, "alice")
    home = svc.files.resolve(alice, "/")
    assert home is not None
    entry = svc.files.write(alice, home, "doc.txt", b"content")
    assert entry.blob_id is not None
    svc.content.blobs.delete(entry.blob_id)
    with pytest.raises(IntegrityError, match="missing"):
        svc.files.open_current(alice, entry)


@pytest.mark.parametrize("method", ["move", "copy"])
@pytest.mark.parametrize("overwrite", [True, False])
def test_move_or_copy_onto_an_ancestor_touches_nothing(
    svc: Services, method: str, overwrite: bool
) -> None:
    """Whatever the face, the files API refuses a destination that holds the source before any
    change (it once deleted the destination tree, source included, then failed an assert)."""
    alice = _actor(svc, "alice")
    home = svc.files.resolve(alice, "/")
    assert home is not None
    d = svc.files.mkdir(alice, home, "d")
    sub = svc.files.mkdir(alice, d, "sub")
    keep = svc.files.write(alice, d, "keep.txt", b"keep me")
    f = svc.files.write(alice, sub, "f.txt", b"f")
    blobs = _blob_files(svc)
    for source in (f, sub):
        with pytest.raises(Forbidden):
            getattr(svc.files, method)(alice, source, home, "d", overwrite=overwrite)
    assert svc.files.resolve(alice, "/d/keep.txt") == keep
    assert svc.files.resolve(alice, "/d/sub/f.txt") == f
    assert _blob_files(svc) == blobs
