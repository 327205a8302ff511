"""The history command line against a real data dir: ``versions list|restore|pin|unpin`` and
``trash list|restore|purge|empty`` round trips on content a live server wrote, every bad input
as one line on stderr with its exit code (and nothing changed); purges and expiry remove the
blobs they free at once (a local store), so ``gc`` finds nothing left and ``fsck --deep`` is
clean; and the server's expiry job applies a shortened retention: exactly the aged versions
and trash items go, a pinned version stays, and ``davdisk gc`` expires nothing."""

from __future__ import annotations

import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

import requests

from tests.live.conftest import (
    ALICE,
    BOB,
    Server,
    ServerFactory,
    _harness_config,
    blob_files,
    cli,
    describe,
    get_bytes,
    put,
    sql,
    wait_until,
)

DAY = 86400
EXPIRY_RE = re.compile(
    r"INFO davdisk\.jobs: expiry: dropped (\d+) versions, purged (\d+) trash items in "
    r"[\d.]+ s \(lease \S+:(\d+):\w+\)$",
    re.M,
)


def _config(data_dir: Path, path: Path, more: str) -> Path:
    """The harness config (its database too, on a PostgreSQL run) and ``more``."""
    path.write_text(f"{_harness_config(data_dir).read_text()}\n{more}")
    return path


def _ok(srv: Server, config: Path, *args: str) -> list[str]:
    proc = cli(srv.data_dir, "--config", str(config), *args)
    assert proc.returncode == 0, describe(proc)
    assert proc.stderr == "", describe(proc)
    return proc.stdout.splitlines()


def _fails(srv: Server, config: Path, code: int, *args: str) -> str:
    """The one line a bad command prints, after checking its exit code and silence on stdout."""
    proc = cli(srv.data_dir, "--config", str(config), *args)
    assert proc.returncode == code, describe(proc)
    assert proc.stdout == "", describe(proc)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("davdisk: error: "), describe(proc)
    return lines[0]


def _rows(lines: list[str]) -> list[list[str]]:
    """A table's rows (header dropped), split on runs of two or more spaces."""
    assert lines, "no header"
    return [re.split(r" {2,}", line.strip()) for line in lines[1:]]


def _local_time(text: str) -> float:
    """An ISO time the CLI printed: local, to the second, with its UTC offset."""
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None, text
    return parsed.timestamp()


def _blob_path(data_dir: Path, blob_id: str) -> Path:
    return data_dir / "blobs" / blob_id[:2] / blob_id


def _check_clean(srv: Server, config: Path) -> None:
    """After the server stops: gc finds nothing the purges left, and fsck --deep is clean."""
    srv.stop()
    gc = cli(srv.data_dir, "--config", str(config), "gc", "--min-age", "0", "--deep")
    assert gc.returncode == 0, describe(gc)
    assert gc.stdout.startswith("removed 0 blobs"), describe(gc)
    fsck = cli(srv.data_dir, "--config", str(config), "fsck", "--deep")
    assert fsck.returncode == 0, describe(fsck)


def test_versions_round_trip(server_factory: ServerFactory, tmp_path: Path) -> None:
    data_dir = server_factory.new_data_dir()
    # every version kept: five PUTs within a second would otherwise be thinned (auto)
    config = _config(data_dir, tmp_path / "c.toml", '[versions]\nretention = "disabled"\n')
    srv = server_factory(data_dir=data_dir, config=config)
    s = srv.session(ALICE)
    url = srv.dav + "doc.txt"
    contents = [f"content {n} ".encode() * n for n in range(1, 6)]  # sizes tell them apart
    started = time.time()
    for body in contents:
        put(s, url, body)

    rows = _rows(_ok(srv, config, "versions", "list", ALICE, "/doc.txt"))
    # newest first: the four replaced contents, the current one (the fifth) not among them
    assert [int(r[2]) for r in rows] == [len(c) for c in contents[3::-1]], rows
    assert all(r[3] == ALICE and r[4] == "-" for r in rows), rows
    assert all(started - 2 <= _local_time(r[1]) <= time.time() + 1 for r in rows), rows
    by_size = {int(r[2]): int(r[0]) for r in rows}
    second = by_size[len(contents[1])]

    out = _ok(srv, config, "versions", "restore", ALICE, "/doc.txt", str(second))
    assert out[0] == f"restored version {second} of /doc.txt", out
    assert get_bytes(s, url) == contents[1]
    kept = int(out[1].removeprefix("the content it replaced is version "))
    rows = _rows(_ok(srv, config, "versions", "list", ALICE, "/doc.txt"))
    assert len(rows) == 5 and int(rows[0][0]) == kept, rows
    assert int(rows[0][2]) == len(contents[4])  # the fifth content, replaced by the restore

    out = _ok(srv, config, "versions", "pin", ALICE, "/doc.txt", str(kept), "--label", "sent")
    assert out == [f"pinned version {kept} of /doc.txt as 'sent'"]
    rows = _rows(_ok(srv, config, "versions", "list", ALICE, "/doc.txt"))
    assert {r[0]: r[4] for r in rows}[str(kept)] == "pinned sent", rows
    assert _ok(srv, config, "versions", "unpin", ALICE, "/doc.txt", str(kept)) == [
        f"unpinned version {kept} of /doc.txt"
    ]
    rows = _rows(_ok(srv, config, "versions", "list", ALICE, "/doc.txt"))
    assert all(r[4] == "-" for r in rows), rows

    # bad input: one line, its exit code, nothing changed
    s.request("MKCOL", srv.dav + "folder/").raise_for_status()
    _ok(srv, config, "share", "add", ALICE, "/doc.txt", "--with", BOB)
    v = str(kept)
    for code, args, says in [
        (3, ("list", "nobody", "/doc.txt"), "not found: user 'nobody'"),
        (3, ("list", ALICE, "/missing.txt"), "not found: '/missing.txt' in the files of 'alice'"),
        (4, ("list", ALICE, "/folder"), "conflict: a folder has no versions"),
        (3, ("restore", ALICE, "/doc.txt", "99999"), "not found: version 99999 of 'doc.txt'"),
        (3, ("pin", ALICE, "/doc.txt", "99999"), "not found: version 99999"),
        (2, ("restore", ALICE, "/doc.txt", "two"), "VERSION is a number"),
        (2, ("unpin", ALICE, "/doc.txt", "0"), "VERSION is a positive number"),
        (
            4,
            ("pin", ALICE, "/doc.txt", v, "--label", "a\tb"),
            "conflict: a version label is one line",
        ),
        # a grantee sees the shared file, not its history
        (5, ("list", BOB, "/doc.txt"), "forbidden: only the owner"),
        (5, ("restore", BOB, "/doc.txt", v), "forbidden: only the owner"),
        (5, ("delete", BOB, "/doc.txt", v), "forbidden: only the owner"),
        (3, ("delete", ALICE, "/doc.txt", "99999"), "not found: version 99999"),
    ]:
        line = _fails(srv, config, code, "versions", *args)
        assert line.startswith(f"davdisk: error: {says}"), (args, line)
    assert get_bytes(s, url) == contents[1]
    assert len(_rows(_ok(srv, config, "versions", "list", ALICE, "/doc.txt"))) == 5

    # delete lets one version go, pinned or not; its blob goes with it
    _ok(srv, config, "versions", "pin", ALICE, "/doc.txt", v)
    assert _ok(srv, config, "versions", "delete", ALICE, "/doc.txt", v) == [
        f"deleted version {v} of /doc.txt"
    ]
    rows = _rows(_ok(srv, config, "versions", "list", ALICE, "/doc.txt"))
    assert len(rows) == 4 and v not in {r[0] for r in rows}, rows
    _check_clean(srv, config)


def _trash(srv: Server, config: Path) -> dict[str, list[str]]:
    """alice's trash by original path: [id, key, deleted at, bytes, type, deleted by, path]."""
    return {r[6]: r for r in _rows(_ok(srv, config, "trash", "list", ALICE))}


def _delete(s: requests.Session, url: str) -> None:
    r = s.delete(url)
    assert r.status_code == 204, (url, r.status_code, r.text)


def test_trash_round_trip_frees_blobs(server_factory: ServerFactory, tmp_path: Path) -> None:
    data_dir = server_factory.new_data_dir()
    config = _config(data_dir, tmp_path / "c.toml", "")
    srv = server_factory(data_dir=data_dir, config=config)
    s = srv.session(ALICE)
    dav = srv.dav
    s.request("MKCOL", dav + "t/").raise_for_status()
    put(s, dav + "t/a.txt", b"a" * 100)
    put(s, dav + "t/b.txt", b"b" * 20)
    put(s, dav + "c.txt", b"old c")
    _delete(s, dav + "c.txt")
    _delete(s, dav + "t/")

    items = _trash(srv, config)
    assert sorted(items) == ["/c.txt", "/t"], items
    t, c = items["/t"], items["/c.txt"]
    assert t[4] == "folder" and int(t[3]) == 120 and t[5] == ALICE, t
    assert c[4] == "file" and int(c[3]) == 5 and re.fullmatch(r"c\.txt\.d\d+", c[1]), c
    assert abs(_local_time(c[2]) - time.time()) < 60, c

    # restore by key: back where it was, every file with it
    assert _ok(srv, config, "trash", "restore", ALICE, t[1]) == [f"restored {t[1]} to /t"]
    assert get_bytes(s, dav + "t/a.txt") == b"a" * 100
    assert get_bytes(s, dav + "t/b.txt") == b"b" * 20
    # restore by id onto a taken name: beside it
    put(s, dav + "c.txt", b"new c")
    assert _ok(srv, config, "trash", "restore", ALICE, c[0]) == [
        f"restored {c[1]} to /c (restored).txt"
    ]
    assert get_bytes(s, dav + "c%20(restored).txt") == b"old c"
    assert get_bytes(s, dav + "c.txt") == b"new c"
    assert _trash(srv, config) == {}

    # purge one: its blob goes at once (a local store removes it after the commit)
    before = set(blob_files(data_dir))
    _delete(s, dav + "t/a.txt")
    a = _trash(srv, config)["/t/a.txt"]
    assert _ok(srv, config, "trash", "purge", ALICE, a[1]) == [f"purged {a[1]} for good"]
    gone = before - set(blob_files(data_dir))
    assert len(gone) == 1 and set(blob_files(data_dir)) < before, gone
    with_versions = set(blob_files(data_dir))

    # empty: a folder and a file with a version, four blobs
    put(s, dav + "t/b.txt", b"b2" * 30)  # b.txt now has a version: two blobs
    _delete(s, dav + "t/")
    _delete(s, dav + "c.txt")
    assert sorted(_trash(srv, config)) == ["/c.txt", "/t"]
    before = set(blob_files(data_dir))
    assert len(before - with_versions) == 1  # the new content of b.txt
    assert _ok(srv, config, "trash", "empty", ALICE) == ["purged 2 items from the trash of 'alice'"]
    assert len(before - set(blob_files(data_dir))) == 3  # b.txt, its version, c.txt
    assert _trash(srv, config) == {}
    assert _ok(srv, config, "trash", "empty", ALICE) == ["purged 0 items from the trash of 'alice'"]

    # bad input: one line, its exit code, nothing changed
    _delete(s, dav + "c (restored).txt")
    kept = _trash(srv, config)["/c (restored).txt"]
    for code, args, says in [
        (3, ("list", "nobody"), "not found: user 'nobody'"),
        (3, ("restore", ALICE, "nothing.d12"), "not found: 'nothing.d12' in the trash"),
        (3, ("purge", ALICE, a[1]), f"not found: {a[1]!r} in the trash"),  # purged before
        (3, ("restore", BOB, kept[1]), f"not found: {kept[1]!r} in the trash"),  # not bob's
        (3, ("empty", "nobody"), "not found: user 'nobody'"),
    ]:
        line = _fails(srv, config, code, "trash", *args)
        assert line == f"davdisk: error: {says}", (args, line)
    assert list(_trash(srv, config)) == ["/c (restored).txt"]
    assert _rows(_ok(srv, config, "trash", "list", BOB)) == []
    _check_clean(srv, config)


def _version_rows(srv: Server, config: Path, path: str) -> dict[int, list[str]]:
    return {int(r[0]): r for r in _rows(_ok(srv, config, "versions", "list", ALICE, path))}


def test_expiry_job_applies_a_shortened_retention(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    data_dir = server_factory.new_data_dir()
    # Every version kept for a day, none older than two; trash items for a day. The job runs
    # every second, but only while the second server runs.
    retention = '[versions]\nretention = "1, 2"\n[trash]\nretention_days = 1\n'
    quiet = _config(data_dir, tmp_path / "quiet.toml", retention)
    config = _config(
        data_dir,
        tmp_path / "c.toml",
        f"{retention}[jobs]\nexpiry_interval = 1\nlease_seconds = 3\n",
    )
    srv = server_factory(data_dir=data_dir, config=quiet)
    s = srv.session(ALICE)
    for n in range(1, 6):
        put(s, srv.dav + "r.txt", f"r{n} ".encode() * n)
    put(s, srv.dav + "old.txt", b"old, deleted long ago")
    put(s, srv.dav + "new.txt", b"new, deleted now")
    _delete(s, srv.dav + "old.txt")
    _delete(s, srv.dav + "new.txt")
    oldest, old_pinned, middle, recent = sorted(_version_rows(srv, quiet, "/r.txt"))
    _ok(srv, quiet, "versions", "pin", ALICE, "/r.txt", str(old_pinned), "--label", "keep")
    trashed = _trash(srv, quiet)
    srv.stop()

    now = time.time()
    for version_id, age in [(oldest, 3 * DAY), (old_pinned, 3 * DAY), (middle, 1.5 * DAY)]:
        sql(
            data_dir,
            "UPDATE versions SET replaced_at = :t WHERE id = :id",
            t=now - age,
            id=version_id,
        )
    sql(
        data_dir,
        "UPDATE nodes SET deleted_at = :t WHERE id = :id",
        t=now - 2 * DAY,
        id=int(trashed["/old.txt"][0]),
    )
    (dropped_blob,) = sql(data_dir, "SELECT blob_id FROM versions WHERE id = :id", id=oldest)[0]
    (purged_blob,) = sql(
        data_dir, "SELECT current_blob_id FROM nodes WHERE id = :id", id=int(trashed["/old.txt"][0])
    )[0]
    doomed = [_blob_path(data_dir, str(b)) for b in (dropped_blob, purged_blob)]
    assert all(p.exists() for p in doomed)

    # gc is not expiry: it leaves every aged version and item alone
    gc = cli(data_dir, "--config", str(quiet), "gc", "--min-age", "0")
    assert gc.returncode == 0 and gc.stdout.startswith("removed 0 blobs"), describe(gc)
    assert all(p.exists() for p in doomed)

    srv = server_factory(data_dir=data_dir, config=config)

    def totals() -> tuple[int, int]:
        runs = EXPIRY_RE.findall(srv.log())
        return sum(int(r[0]) for r in runs), sum(int(r[1]) for r in runs)

    wait_until(lambda: totals() == (1, 1), 20, "the expiry job to drop a version and an item")
    wait_until(lambda: len(EXPIRY_RE.findall(srv.log())) >= 3, 20, "two more runs")
    assert totals() == (1, 1), srv.log()  # and nothing more: what is left is within the rules
    assert {int(r[2]) for r in EXPIRY_RE.findall(srv.log())} == {srv.pid}

    left = _version_rows(srv, config, "/r.txt")
    assert sorted(left) == [old_pinned, middle, recent], left
    assert left[old_pinned][4] == "pinned keep"
    assert list(_trash(srv, config)) == ["/new.txt"]
    assert not any(p.exists() for p in doomed)  # freed by the expiry itself
    _check_clean(srv, config)


def test_cli_needs_an_existing_data_dir(tmp_path: Path) -> None:
    """No data dir: one line, nothing made (the history commands open it, never create it)."""
    missing = tmp_path / "none"
    for args in (("versions", "list", ALICE, "/x"), ("trash", "list", ALICE)):
        proc: subprocess.CompletedProcess[str] = cli(missing, *args)
        assert proc.returncode == 2, describe(proc)
        assert proc.stderr.startswith("davdisk: error: no data dir at"), describe(proc)
        assert not missing.exists()
