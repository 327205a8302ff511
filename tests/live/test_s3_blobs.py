"""davdisk with its blobs in an S3 bucket (a real SeaweedFS, tests/s3.py): content goes in and
out whole and by range, the bucket holds only ciphertext under random names, downloads survive
an overwrite, and a server killed in the middle of multipart uploads leaves nothing visible and
nothing that gc does not find and remove. The database is the run's (SQLite or PostgreSQL)."""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.live.conftest import (
    ALICE,
    USERS,
    ServerFactory,
    add_user,
    cli,
    describe,
    get_bytes,
    harness_config,
    put,
    sql,
    use_s3,
    wait_until,
)
from tests.live.history_dav import fileid, list_versions, versions_url
from tests.s3 import SeaweedServer, start_seaweed

MARKER = b"PLAINTEXT-MARKER-8d1f"  # repeated through every uploaded body
NAME_MARKER = "secret-name-7b3c"


def _body(size: int) -> bytes:
    unit = MARKER + os.urandom(1000)
    return (unit * (size // len(unit) + 1))[:size]


def s3_data_dir(base: Path, s3: SeaweedServer, **settings: object) -> tuple[Path, str]:
    data_dir = base / f"s3-{secrets.token_hex(4)}"
    bucket = use_s3(data_dir, s3, **settings)  # type: ignore[arg-type]
    add_user(data_dir, ALICE, USERS[ALICE])
    return data_dir, bucket


def objects(s3: SeaweedServer, bucket: str) -> dict[str, bytes]:
    client = s3.client()
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return found


def unfinished_uploads(s3: SeaweedServer, bucket: str) -> list[str]:
    listed = s3.client().list_multipart_uploads(Bucket=bucket)
    return [u["Key"] for u in listed.get("Uploads", [])]


def loose(data_dir: Path) -> list[tuple[object, ...]]:
    return sql(data_dir, "SELECT state, id FROM loose_blobs ORDER BY state, id")


def test_content_round_trips_and_the_bucket_holds_only_ciphertext(
    server_factory: ServerFactory, seaweed: SeaweedServer
) -> None:
    data_dir, bucket = s3_data_dir(server_factory.base, seaweed)
    srv = server_factory(data_dir)
    s = srv.session()
    bodies = {f"{NAME_MARKER}-{size}.txt": _body(size) for size in (1000, 3 << 20, 20 << 20)}
    for name, body in bodies.items():
        put(s, srv.dav + name, body)
    for name, body in bodies.items():
        assert get_bytes(s, srv.dav + name) == body
    big = bodies[f"{NAME_MARKER}-{20 << 20}.txt"]
    for start, end in [(0, 0), (65535, 65537), (9_000_000, 12_345_678), (len(big) - 10, None)]:
        last = "" if end is None else str(end)
        r = s.get(
            srv.dav + f"{NAME_MARKER}-{20 << 20}.txt", headers={"Range": f"bytes={start}-{last}"}
        )
        assert r.status_code == 206, r.text
        assert r.content == big[start : None if end is None else end + 1]
    stored = objects(seaweed, bucket)
    assert len(stored) == len(bodies)
    for key, raw in stored.items():
        assert NAME_MARKER not in key
        assert MARKER not in raw and NAME_MARKER.encode() not in raw
        assert raw.startswith(b"DAVENC")
    assert unfinished_uploads(seaweed, bucket) == []
    assert loose(data_dir) == []  # every pending record was settled by its commit


def test_a_download_outlives_an_overwrite_and_gc_removes_the_old_blob_later(
    server_factory: ServerFactory, seaweed: SeaweedServer
) -> None:
    data_dir, bucket = s3_data_dir(server_factory.base, seaweed, delete_delay=3)
    srv = server_factory(data_dir)
    s = srv.session()
    old, new = _body(30 << 20), _body(1000)
    put(s, srv.dav + "doc.bin", old)
    versions = versions_url(srv, ALICE, fileid(s, srv.dav + "doc.bin"))
    with s.get(srv.dav + "doc.bin", stream=True) as r:
        assert r.status_code == 200
        got = r.raw.read(1 << 20)
        other = srv.session()
        put(other, srv.dav + "doc.bin", new)  # the old content becomes a version...
        (kept,) = list_versions(other, versions)
        assert other.delete(versions + kept).status_code == 204  # ...which goes: no user left
        got += r.raw.read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(old).digest()
    assert get_bytes(s, srv.dav + "doc.bin") == new
    assert [state for state, _id in loose(data_dir)] == ["dead"]
    assert len(objects(seaweed, bucket)) == 2  # kept for downloads under way
    done = cli(data_dir, "gc", "--min-age", "0")
    assert done.returncode == 0, describe(done)
    assert len(objects(seaweed, bucket)) == 2, "gc removed a blob before its delay was over"
    time.sleep(3.5)
    done = cli(data_dir, "gc", "--min-age", "0")
    assert done.returncode == 0, describe(done)
    assert "removed 1 blobs" in done.stdout, done.stdout
    assert len(objects(seaweed, bucket)) == 1 and loose(data_dir) == []
    assert get_bytes(s, srv.dav + "doc.bin") == new


def _slow_body(size: int, sent: threading.Event, killed: threading.Event) -> Iterator[bytes]:
    chunk = _body(1 << 20)
    for i in range(size >> 20):
        yield chunk
        if i == 12:
            sent.set()  # more than a part (8 MiB) is in the bucket
            killed.wait(60)  # and the rest comes only after the kill


def test_a_server_killed_amid_multipart_uploads_leaves_nothing_visible_and_gc_cleans_up(
    server_factory: ServerFactory, seaweed: SeaweedServer
) -> None:
    data_dir, bucket = s3_data_dir(server_factory.base, seaweed)
    srv = server_factory(data_dir)
    put(srv.session(), srv.dav + "kept.txt", b"kept")
    events = [threading.Event() for _ in range(5)]
    killed = threading.Event()
    results: list[object] = []

    def upload(n: int) -> None:
        try:
            r = srv.session().put(
                srv.dav + f"big{n}.bin", data=_slow_body(40 << 20, events[n], killed)
            )
            results.append(r.status_code)
        except requests.RequestException as e:
            results.append(type(e).__name__)

    threads = [threading.Thread(target=upload, args=(n,), daemon=True) for n in range(5)]
    for t in threads:
        t.start()
    for e in events:
        assert e.wait(60)
    wait_until(lambda: len(unfinished_uploads(seaweed, bucket)) == 5, 30, "5 multipart uploads")
    srv.kill()
    killed.set()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 5 and 201 not in results and 204 not in results, results
    assert [state for state, _id in loose(data_dir)] == ["pending"] * 5
    # An upload that was stored whole but whose commit never came (a kill between the two):
    orphan = secrets.token_hex(16)
    seaweed.client().put_object(Bucket=bucket, Key=f"{orphan[:2]}/{orphan}", Body=b"x" * 100)
    sql(
        data_dir,
        "INSERT INTO loose_blobs (id, state, since) VALUES (:id, 'pending', :t)",
        id=orphan,
        t=time.time() - 5,
    )
    srv = server_factory(data_dir)
    s = srv.session()
    for n in range(5):
        assert s.get(srv.dav + f"big{n}.bin").status_code == 404
    assert get_bytes(s, srv.dav + "kept.txt") == b"kept"
    srv.stop()  # its own gc would race the one below
    done = cli(data_dir, "gc", "--min-age", "0")
    assert done.returncode == 0, describe(done)
    assert "5 unfinished uploads aborted, 1 objects of uploads never committed" in done.stdout
    assert unfinished_uploads(seaweed, bucket) == []
    assert loose(data_dir) == []
    assert len(objects(seaweed, bucket)) == 1  # kept.txt
    deep = cli(data_dir, "gc", "--min-age", "0", "--deep")
    assert deep.returncode == 0, describe(deep)
    assert "blobs missing from the store: 0" in deep.stdout
    assert "removed 0 blobs" in deep.stdout


def test_gc_deep_finds_orphans_and_missing_objects(
    server_factory: ServerFactory, seaweed: SeaweedServer
) -> None:
    data_dir, bucket = s3_data_dir(server_factory.base, seaweed)
    srv = server_factory(data_dir)
    s = srv.session()
    put(s, srv.dav + "a.txt", b"a" * 100)
    put(s, srv.dav + "b.txt", b"b" * 100)
    srv.stop()
    client = seaweed.client()
    keys = sorted(objects(seaweed, bucket))
    client.delete_object(Bucket=bucket, Key=keys[0])  # damage: a file's blob is gone
    stray = secrets.token_hex(16)
    client.put_object(Bucket=bucket, Key=f"{stray[:2]}/{stray}", Body=b"y")  # no row knows it
    shallow = cli(data_dir, "gc", "--min-age", "0")
    assert "removed 0 blobs" in shallow.stdout, describe(shallow)  # no listing without --deep
    deep = cli(data_dir, "gc", "--min-age", "0", "--deep")
    assert deep.returncode == 6, describe(deep)
    assert "1 objects no record knew" in deep.stdout
    assert "blobs missing from the store: 1" in deep.stdout
    assert sorted(objects(seaweed, bucket)) == keys[1:]


def test_the_master_key_may_come_from_the_environment(
    server_factory: ServerFactory, seaweed: SeaweedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = os.urandom(32)
    monkeypatch.setenv("DAVDISK_MASTER_KEY", key.hex())
    data_dir, _bucket = s3_data_dir(server_factory.base, seaweed)
    assert not data_dir.with_name(data_dir.name + ".key").exists()  # nothing on local disk
    srv = server_factory(data_dir)
    put(srv.session(), srv.dav + "x.txt", b"with a key from the environment")
    srv.stop()
    monkeypatch.setenv("DAVDISK_MASTER_KEY", os.urandom(32).hex())
    srv = server_factory(data_dir)
    r = srv.session().get(srv.dav + "x.txt")
    assert r.status_code == 500  # another key opens nothing (and says so in the log)
    srv.stop()
    monkeypatch.setenv("DAVDISK_MASTER_KEY", "too-short")
    bad = cli(data_dir, "user", "list")
    assert bad.returncode != 0 and "DAVDISK_MASTER_KEY must hold" in bad.stderr
    assert "Traceback" not in bad.stderr
    monkeypatch.setenv("DAVDISK_MASTER_KEY", key.hex())
    srv = server_factory(data_dir)
    assert get_bytes(srv.session(), srv.dav + "x.txt") == b"with a key from the environment"


def test_serve_refuses_a_bucket_it_cannot_use_in_one_line(
    server_factory: ServerFactory, seaweed: SeaweedServer
) -> None:
    data_dir, bucket = s3_data_dir(server_factory.base, seaweed)
    config = data_dir.with_name(data_dir.name + ".harness.toml")
    config.write_text(config.read_text().replace(bucket, "no-such-bucket-here"))
    done = cli(data_dir, "serve", "--port", "0", timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "blob store s3://no-such-bucket-here" in lines[0], done.stderr
    assert seaweed.secret_key not in done.stderr + done.stdout


def test_a_range_read_is_one_get_once_the_header_is_known(
    tmp_path: Path, seaweed: SeaweedServer
) -> None:
    """Through the files layer as a GET with a Range reads (its buffered reader reads ahead up
    to a segment): the store fetches the range in one ranged GET, header cached or near."""
    from davdisk import config
    from davdisk.services import Services

    data_dir = tmp_path / "data"
    use_s3(data_dir, seaweed)
    svc = Services.open(config.load(harness_config(data_dir), data_dir), create=True)
    try:
        svc.admin.add_user("carol", "carol-password-1")
        carol = svc.files.actor("carol")
        assert carol is not None
        home = svc.files.resolve(carol, "/")
        assert home is not None
        data = os.urandom(20 << 20)
        entry = svc.files.write(carol, home, "big", data)
        gets: list[str] = []
        svc.content.blobs.client.meta.events.register(  # type: ignore[attr-defined]
            "before-send.s3.GetObject",
            lambda request, **kw: gets.append(request.headers["Range"].decode()),
        )
        for start, end, expected in [
            (9_000_000, 9_100_001, 2),  # the header (first read of this blob), the range
            (5_000_000, 5_000_100, 1),  # the header is cached now
            (100, 200, 1),  # near the start: one GET for the header and the range
            (20_000_000, 20 << 20, 1),  # up to the end (the final segment proves it)
        ]:
            gets.clear()
            _entry, f = svc.files.open_current(carol, entry, (start, end))
            with f:
                f.seek(start)
                got = b""
                while len(got) < end - start:
                    got += f.read(min(1 << 18, end - start - len(got)))
            assert got == data[start:end]
            assert len(gets) == expected, (start, end, gets)
    finally:
        svc.close()


def test_a_bucket_that_goes_away_gives_503_and_a_logged_cause(
    server_factory: ServerFactory,
) -> None:
    """The S3 server stops under a running davdisk: content requests answer 503 (the server
    cannot do it now, not "it failed"), listings still work, and the log says why."""
    s3 = start_seaweed()
    try:
        data_dir, _bucket = s3_data_dir(server_factory.base, s3)
        srv = server_factory(data_dir)
        s = srv.session()
        put(s, srv.dav + "before.txt", b"stored before the outage")
    finally:
        s3.stop()
    r = s.put(srv.dav + "during.txt", data=b"x" * 1000)
    assert r.status_code == 503, r.status_code
    assert "Traceback" not in r.text
    r = s.get(srv.dav + "before.txt")
    assert r.status_code == 503, r.status_code
    r = s.request("PROPFIND", srv.dav, headers={"Depth": "1"})
    assert r.status_code == 207 and "before.txt" in r.text and "during.txt" not in r.text
    assert "the blob store s3://" in srv.log()
