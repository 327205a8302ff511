"""Key management against real servers: the master key file's mode is enforced at startup,
``key rotate-master`` (also killed half way and resumed) and ``key rotate-user [--reencrypt]``
run beside a serving server, and every file reads back byte for byte over HTTP — from that
server, which has to follow the rotation, and after a restart when the old key is gone."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest
import requests

from davdisk.crypto.keys import pending_key_path
from tests.live.conftest import (
    ALICE,
    BOB,
    REPO_ROOT,
    Server,
    ServerFactory,
    _env,
    all_files,
    cli,
    davdisk_argv,
    describe,
    get_bytes,
    harness_config,
    master_key_path,
    put,
    sql,
    wait_until,
)

SEG = 64 * 1024


def files_for(user: str) -> dict[str, bytes]:
    seed = user.encode()
    return {
        "empty.txt": b"",
        "small.txt": b"small file of " + seed,
        "one-segment.bin": (seed * SEG)[:SEG],
        "several.bin": os.urandom(3 * SEG + 7),
    }


def upload_all(srv: Server, contents: dict[str, dict[str, bytes]]) -> None:
    for user, files in contents.items():
        s = srv.session(user)
        for name, data in files.items():
            put(s, srv.dav + name, data)


def assert_reads_back(srv: Server, contents: dict[str, dict[str, bytes]]) -> None:
    for user, files in contents.items():
        s = srv.session(user)
        for name, data in files.items():
            assert get_bytes(s, srv.dav + name) == data, f"{user}:/{name} differs"


def master_ids(data_dir: Path) -> dict[str, int]:
    """master_key_id -> number of user_keys rows wrapped under it."""
    rows = sql(data_dir, "SELECT master_key_id, count(*) FROM user_keys GROUP BY 1")
    return dict(rows)


def top_level_blob(data_dir: Path, user: str, name: str) -> Path:
    ((blob_id,),) = sql(
        data_dir,
        "SELECT n.current_blob_id FROM nodes n JOIN users u ON n.parent_id = u.root_id "
        "WHERE u.name = :user AND n.name = :name",
        user=user, name=name,
    )  # fmt: skip
    return data_dir / "blobs" / blob_id[:2] / blob_id


def header_key_version(blob: Path) -> int:
    with open(blob, "rb") as f:
        return int.from_bytes(f.read(16)[12:16], "big")


def etags(srv: Server, user: str, names: list[str]) -> dict[str, str]:
    s = srv.session(user)
    return {n: s.head(srv.dav + n).headers["ETag"] for n in names}


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, describe(proc)
    return proc


def test_group_readable_master_key_is_refused(server_factory: ServerFactory) -> None:
    data_dir = server_factory.new_data_dir({ALICE: "alice-password-1"})
    key = master_key_path(data_dir)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    key.chmod(0o640)
    for args in (("serve", "--port", "0"), ("user", "list")):
        proc = cli(data_dir, *args, timeout=60)
        assert proc.returncode == 7, describe(proc)
        assert f"chmod 600 {key}" in proc.stderr and "Traceback" not in proc.stderr


def test_rotate_master_beside_a_server_then_restart(server_factory: ServerFactory) -> None:
    contents = {ALICE: files_for(ALICE), BOB: files_for(BOB)}
    first = server_factory()
    data_dir = first.data_dir
    upload_all(first, contents)
    first.stop()
    # A server that has unwrapped no user key yet: it must follow the rotation by itself.
    srv = server_factory(data_dir=data_dir)
    key_file = master_key_path(data_dir)
    old_key = key_file.read_bytes()
    (old_id,) = master_ids(data_dir)

    proc = ok(cli(data_dir, "key", "rotate-master"))
    assert "rewrapped 2 user keys" in proc.stdout and "old key is gone" in proc.stdout
    assert "rewrapping user keys [" in proc.stderr and "2/2 keys 100%" in proc.stderr

    new_key = key_file.read_bytes()
    assert new_key != old_key and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not pending_key_path(key_file).exists()
    (new_id,) = master_ids(data_dir)
    assert new_id != old_id
    for path in all_files(data_dir):
        assert old_key not in path.read_bytes(), f"old master key still in {path}"

    assert_reads_back(srv, contents)  # rows under the new key, server started with the old one
    extra = os.urandom(100_000)
    put(srv.session(ALICE), srv.dav + "after-rotation.bin", extra)
    contents[ALICE]["after-rotation.bin"] = extra
    assert master_ids(data_dir) == {new_id: 2}

    srv.stop()
    again = server_factory(data_dir=data_dir)
    assert_reads_back(again, contents)


def add_many_users(data_dir: Path, count: int) -> None:
    """``count`` users with real wrapped keys in one transaction, through the library: the CLI
    would spend a bcrypt hash and a process per user, minutes for a few thousand."""
    from davdisk import config as config_mod
    from davdisk.crypto.passwords import hash_password
    from davdisk.meta import store
    from davdisk.services import Services

    svc = Services.open(config_mod.load(harness_config(data_dir), data_dir), create=True)
    try:
        hashed = hash_password("bulk-password-1", 4)
        with svc.db.write() as conn:
            for i in range(count):
                user = store.create_user(conn, f"u{i:05d}", hashed)
                svc.keyring.create_user_key(conn, user.id)
    finally:
        svc.close()


def test_master_rotation_killed_half_way_resumes(server_factory: ServerFactory) -> None:
    data_dir = server_factory.base / "many"
    # Each row is its own fsynced transaction (~2-15 ms here): 600 rows leave seconds to land
    # the kill in. u00000 is the first row the rotation rewraps.
    add_many_users(data_dir, 600)
    contents = {"u00000": {"first.bin": os.urandom(3 * SEG)}, ALICE: files_for(ALICE)}
    first = server_factory(data_dir=data_dir, users={ALICE: "alice-password-1"})
    passwords = {"u00000": "bulk-password-1", ALICE: "alice-password-1"}
    sessions = {u: requests.Session() for u in contents}
    for user, s in sessions.items():
        s.auth = (user, passwords[user])
        for name, data in contents[user].items():
            put(s, first.dav + name, data)
    first.stop()
    srv = server_factory(data_dir=data_dir)
    key_file = master_key_path(data_dir)
    old_key = key_file.read_bytes()
    (old_id,) = master_ids(data_dir)

    rotation = subprocess.Popen(
        davdisk_argv(data_dir, "key", "rotate-master"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
        cwd=REPO_ROOT,
    )
    try:
        wait_until(
            lambda: len(master_ids(data_dir)) == 2, 60, "the first rewrapped rows", interval=0.005
        )
        rotation.send_signal(signal.SIGKILL)
    finally:
        rotation.kill()
        rotation.wait()
    counts = master_ids(data_dir)
    assert len(counts) == 2 and counts[old_id] > 0, f"not half way: {counts}"
    print(f"killed with {counts[old_id]} of 601 rows left under the old key")
    pending = pending_key_path(key_file)
    assert pending.exists() and stat.S_IMODE(pending.stat().st_mode) == 0o600
    new_key = pending.read_bytes()
    assert key_file.read_bytes() == old_key

    # Half done: u00000's row is under the new key, alice's (added last) still under the old.
    for user, s in sessions.items():
        for name, data in contents[user].items():
            assert get_bytes(s, srv.dav + name) == data

    proc = ok(cli(data_dir, "key", "rotate-master"))
    assert f"resumed: rewrapped {counts[old_id]} user keys" in proc.stdout
    assert key_file.read_bytes() == new_key and not pending.exists()
    assert len(master_ids(data_dir)) == 1
    srv.stop()
    again = server_factory(data_dir=data_dir)
    for user, s in sessions.items():
        for name, data in contents[user].items():
            assert get_bytes(s, again.dav + name) == data
        s.close()


def test_rotate_user_and_reencrypt_beside_a_server(server_factory: ServerFactory) -> None:
    srv = server_factory()
    data_dir = srv.data_dir
    contents = {ALICE: files_for(ALICE), BOB: files_for(BOB)}
    upload_all(srv, contents)
    alice = srv.session(ALICE)
    r = alice.request("COPY", srv.dav + "several.bin", headers={"Destination": "/dav/copy.bin"})
    assert r.status_code == 201, r.status_code
    contents[ALICE]["copy.bin"] = contents[ALICE]["several.bin"]
    stored = [n for n in contents[ALICE] if n != "empty.txt"]
    old_blobs = {n: top_level_blob(data_dir, ALICE, n) for n in stored}
    bob_blob = top_level_blob(data_dir, BOB, "several.bin")
    bob_bytes = bob_blob.read_bytes()

    proc = ok(cli(data_dir, "key", "rotate-user", ALICE))
    assert "now writes with key version 2" in proc.stdout
    new = os.urandom(2 * SEG)
    put(alice, srv.dav + "new.bin", new)  # the running server uses version 2 at once
    contents[ALICE]["new.bin"] = new
    assert header_key_version(top_level_blob(data_dir, ALICE, "new.bin")) == 2
    assert {header_key_version(p) for p in old_blobs.values()} == {1}
    assert_reads_back(srv, contents)

    names = [*stored, "new.bin"]
    before = etags(srv, ALICE, names)
    proc = ok(cli(data_dir, "key", "rotate-user", ALICE, "--reencrypt"))
    # several.bin and copy.bin share one blob: four blobs in all.
    assert "re-encrypted 4 blobs" in proc.stdout and "key version 3" in proc.stdout
    assert "re-encrypting [" in proc.stderr and "4/4 blobs 100%" in proc.stderr
    assert {header_key_version(top_level_blob(data_dir, ALICE, n)) for n in names} == {3}
    assert not any(p.exists() for p in old_blobs.values())
    assert bob_blob.read_bytes() == bob_bytes  # other users are untouched
    assert etags(srv, ALICE, names) == before  # same content, so clients keep their copies
    assert_reads_back(srv, contents)

    proc = ok(cli(data_dir, "key", "reencrypt", ALICE))
    assert "re-encrypted 0 blobs" in proc.stdout
    srv.stop()
    again = server_factory(data_dir=data_dir)
    assert_reads_back(again, contents)
    ok(cli(data_dir, "fsck", "--deep"))


def test_key_file_from_the_environment(tmp_path: Path) -> None:
    """DAVDISK_MASTER_KEY_FILE puts the key outside the data dir; rotation keeps it there."""
    data_dir, keys_dir = tmp_path / "data", tmp_path / "keys"
    keys_dir.mkdir(mode=0o700)
    key_file = keys_dir / "davdisk.key"
    env = {**_env(), "DAVDISK_MASTER_KEY_FILE": str(key_file)}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            davdisk_argv(data_dir, *args),
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO_ROOT,
            timeout=120,
        )

    ok(run("user", "add", ALICE, "--password-stdin", stdin="alice-password-1\n"))
    assert key_file.exists() and not (data_dir / "master.key").exists()
    old = key_file.read_bytes()
    ok(run("key", "rotate-master"))
    assert key_file.read_bytes() != old
    assert sorted(p.name for p in keys_dir.iterdir()) == ["davdisk.key"]
    assert not (data_dir / "master.key").exists()
    ok(run("fsck"))
    proc = cli(data_dir, "user", "list")  # without the variable: no key, a clear error
    assert proc.returncode == 7 and "does not exist" in proc.stderr, describe(proc)


@pytest.mark.parametrize("args", [("rotate-user", "nobody"), ("reencrypt", "nobody")])
def test_unknown_user(server_factory: ServerFactory, args: tuple[str, ...]) -> None:
    data_dir = server_factory.new_data_dir({ALICE: "alice-password-1"})
    proc = cli(data_dir, "key", *args)
    assert proc.returncode == 3 and "davdisk: error: not found: user 'nobody'" in proc.stderr
