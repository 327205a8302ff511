"""``davdisk fsck`` on data dirs a real server wrote: clean when nothing is wrong (also while the
server runs and after a crashed upload plus gc), each kind of damage found by the check that can
see it with exit status 8, and ``--repair`` fixing garbage and drift while the damaged files keep
their metadata."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.live.conftest import (
    ALICE,
    BOB,
    RawConnection,
    Server,
    ServerFactory,
    cli,
    describe,
    get_bytes,
    members,
    put,
    sql,
    temp_files,
    wait_until,
)

SEG = 64 * 1024
EXIT_PROBLEMS, EXIT_REPAIRED = 8, 9
HOUR_AGO = time.time() - 3600  # older than the default --min-age (900 s)


def fsck(data_dir: Path, *args: str, expect: int) -> list[str]:
    proc = cli(data_dir, "fsck", *args)
    assert proc.returncode == expect, describe(proc)
    assert "Traceback" not in proc.stderr
    return proc.stdout.splitlines()


def summary_counts(lines: list[str]) -> str:
    return lines[-1].split("; ", 1)[1].split(";")[0]


def blob_of(data_dir: Path, user: str, name: str) -> Path:
    ((blob_id,),) = sql(
        data_dir,
        "SELECT n.current_blob_id FROM nodes n JOIN users u ON n.parent_id = u.root_id "
        "WHERE u.name = :user AND n.name = :name",
        user=user, name=name,
    )  # fmt: skip
    return data_dir / "blobs" / blob_id[:2] / blob_id


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def used_bytes(data_dir: Path) -> dict[str, int]:
    return dict(sql(data_dir, "SELECT name, used_bytes FROM users"))


def populate(srv: Server) -> dict[str, bytes]:
    alice = srv.session(ALICE)
    contents = {
        "a.txt": b"alpha",
        "b.bin": os.urandom(2 * SEG + 1),
        "c.bin": os.urandom(3 * SEG),
        "empty.txt": b"",
    }
    for name, data in contents.items():
        put(alice, srv.dav + name, data)
    assert alice.request("MKCOL", srv.dav + "docs/").status_code == 201
    put(alice, srv.dav + "docs/d.txt", b"delta")
    r = alice.request("COPY", srv.dav + "b.bin", headers={"Destination": "/dav/docs/b-copy.bin"})
    assert r.status_code == 201
    put(srv.session(BOB), srv.dav + "e.txt", b"echo")
    return contents


def test_fresh_data_dir_with_files_is_clean(server_factory: ServerFactory) -> None:
    srv = server_factory()
    populate(srv)
    lines = fsck(srv.data_dir, expect=0)  # beside the running server
    assert lines == [
        "fsck: 2 users, 2 user keys, 7 files, 5 blobs checked (headers); "
        "0 errors, 0 fixable, 0 warnings"
    ]
    lines = fsck(srv.data_dir, "--deep", expect=0)
    assert lines[-1].startswith("fsck: 2 users, 2 user keys, 7 files, 5 blobs checked (deep)")
    proc = cli(None, "fsck", "--help")
    assert proc.returncode == 0 and "8  errors or fixable problems remain" in proc.stdout


def test_damage_is_found_and_only_the_safe_part_repaired(server_factory: ServerFactory) -> None:
    srv = server_factory()
    data_dir = srv.data_dir
    populate(srv)
    blobs = data_dir / "blobs"
    os.unlink(blob_of(data_dir, ALICE, "a.txt"))
    flip(blob_of(data_dir, ALICE, "b.bin"), 20)  # header salt: the MAC no longer verifies
    c_blob = blob_of(data_dir, ALICE, "c.bin")
    flip(c_blob, 96 + SEG + 16 + 100)  # inside segment 1: only decrypting notices
    orphan = blobs / "0f" / ("0f" + "e" * 30)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(os.urandom(500))
    os.utime(orphan, (HOUR_AGO, HOUR_AGO))
    stale = blobs / "tmp" / "00000000deadbeef.part"
    stale.write_bytes(os.urandom(300))
    os.utime(stale, (HOUR_AGO, HOUR_AGO))
    sql(data_dir, "UPDATE users SET used_bytes = 12345 WHERE name = 'bob'")
    real_usage = used_bytes(data_dir)
    real_usage["bob"] = 4

    damage = [
        "error: missing-blob: alice:/a.txt: blob ",
        "error: corrupt-blob: alice:/b.bin (and 1 more): blob ",
        "fixable: orphan-file: blob 0f" + "e" * 30 + ": no database row, 500 bytes, ",
        "fixable: stale-temp-file: tmp/00000000deadbeef.part: upload leftover, 300 bytes, ",
        "fixable: quota-drift: user bob: used_bytes is 12345, the files take 4",
    ]
    segment = "error: corrupt-blob: alice:/c.bin: blob "

    def assert_lines(lines: list[str], wanted: list[str]) -> None:
        body = lines[:-1]
        assert len(body) == len(wanted), "\n".join(lines)
        for prefix in wanted:
            assert any(line.startswith(prefix) for line in body), (prefix, lines)

    lines = fsck(data_dir, expect=EXIT_PROBLEMS)
    assert_lines(lines, damage)
    assert "MAC mismatch" in "\n".join(lines)
    assert summary_counts(lines) == "2 errors, 3 fixable, 0 warnings"

    lines = fsck(data_dir, "--deep", expect=EXIT_PROBLEMS)
    assert_lines(lines, [*damage, segment])
    assert "segment 1 failed authentication" in "\n".join(lines)

    listing = {n: e.size for n, e in members(srv.session(ALICE), srv.dav).items()}
    c_bytes = c_blob.read_bytes()
    lines = fsck(data_dir, "--deep", "--repair", expect=EXIT_PROBLEMS)
    assert (
        "repaired: removed 2 leftover files (800 bytes), recomputed the usage of 1 users"
        in (lines[-1])
    )
    assert not orphan.exists() and not stale.exists()
    assert used_bytes(data_dir) == real_usage
    # Damaged files are reported, never "fixed" away: listing, sizes and blob bytes stay.
    assert {n: e.size for n, e in members(srv.session(ALICE), srv.dav).items()} == listing
    assert c_blob.read_bytes() == c_bytes
    after = fsck(data_dir, "--deep", expect=EXIT_PROBLEMS)
    assert_lines(after, [damage[0], damage[1], segment])
    assert summary_counts(after) == "3 errors, 0 fixable, 0 warnings"

    # Users writing the files again ends the errors of the files; the damaged contents they
    # replaced are kept as versions, reported as such, until those versions go too.
    alice = srv.session(ALICE)
    names = ("a.txt", "b.bin", "c.bin", "docs/b-copy.bin")
    for name in names:
        put(alice, srv.dav + name, b"rewritten " + name.encode())
    after = fsck(data_dir, "--deep", expect=EXIT_PROBLEMS)
    assert summary_counts(after) == "3 errors, 0 fixable, 0 warnings", after
    assert all(" (version " in line for line in after[:-1]), after
    for name in names:
        listed = cli(data_dir, "versions", "list", ALICE, "/" + name)
        assert listed.returncode == 0, describe(listed)
        for row in listed.stdout.splitlines()[1:]:
            dropped = cli(data_dir, "versions", "delete", ALICE, "/" + name, row.split()[0])
            assert dropped.returncode == 0, describe(dropped)
    fsck(data_dir, "--deep", expect=0)

    # Only garbage: --repair removes it and says so with its own status.
    orphan.write_bytes(b"left by a crash")
    os.utime(orphan, (HOUR_AGO, HOUR_AGO))
    fsck(data_dir, expect=EXIT_PROBLEMS)
    fsck(data_dir, "--repair", expect=EXIT_REPAIRED)
    fsck(data_dir, expect=0)


def test_killed_upload_then_gc_is_clean(server_factory: ServerFactory) -> None:
    """What a crash leaves is not damage: a fresh temp file is a warning (exit 0), and after
    ``gc --min-age 0`` there is nothing to report at all."""
    srv = server_factory()
    put(srv.session(ALICE), srv.dav + "doc.bin", b"version 1")
    conn = RawConnection(srv)
    conn.send_head(
        "PUT",
        "/dav/doc.bin",
        {"Authorization": srv.auth_header(ALICE), "Content-Length": str(4 << 20)},
    )
    conn.send(os.urandom(1 << 20))
    wait_until(lambda: temp_files(srv.data_dir), 10, "the upload's temp file", interval=0.02)
    srv.kill()
    conn.abort()

    lines = fsck(srv.data_dir, expect=0)
    assert len(lines) == 2 and lines[0].startswith("warning: recent-temp-file: tmp/"), lines
    assert "(in progress?)" in lines[0]
    gc = cli(srv.data_dir, "gc", "--min-age", "0")
    assert gc.returncode == 0, describe(gc)
    assert fsck(srv.data_dir, "--deep", expect=0)[-1].endswith("0 errors, 0 fixable, 0 warnings")
    again = server_factory(data_dir=srv.data_dir)
    assert get_bytes(again.session(ALICE), again.dav + "doc.bin") == b"version 1"
