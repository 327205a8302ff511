"""Encryption at rest against a copy of the data dir (issue 12, item 11): the master key used to be
created inside the data dir, and the README's backup said to copy the data dir, so a plain copy
decrypted every file. By default the key now lives apart from the data dir; a copy of the data
dir alone, served elsewhere, opens nothing. An existing install with its key in the data dir
keeps working, with one warning line at start-up that says how to move it."""

from __future__ import annotations

from pathlib import Path

from tests.live.conftest import (
    ALICE,
    USERS,
    ServerFactory,
    _env,
    copy_data_dir,
    davdisk_argv,
    get_bytes,
    put,
)
from tests.live.test_master_key_missing import SERVE_ARGS, run_to_exit

SECRET = b"the launch code is 0000 " * 100


def key_files_in(data_dir: Path) -> list[Path]:
    return [p for p in data_dir.rglob("*") if "key" in p.name]


def test_fresh_serve_keeps_the_key_out_of_the_data_dir(server_factory: ServerFactory) -> None:
    srv = server_factory()
    alice = srv.session(ALICE, USERS[ALICE])
    put(alice, srv.dav + "secret.txt", SECRET)
    assert key_files_in(srv.data_dir) == [], key_files_in(srv.data_dir)
    assert "master key" not in srv.log()  # a fresh install has nothing to warn about


def test_a_copy_of_the_data_dir_alone_opens_nothing(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    srv = server_factory()
    alice = srv.session(ALICE, USERS[ALICE])
    put(alice, srv.dav + "secret.txt", SECRET)
    srv.stop()

    # The thief's copy, served on another machine: the same layout, none of the server's
    # environment, the harness's configuration (which names no key file). With PostgreSQL, the
    # thief copied the database too.
    stolen = tmp_path / "elsewhere" / "data"
    copy_data_dir(srv.data_dir, stolen, key=False)
    env = _env()
    env.pop("DAVDISK_MASTER_KEY_FILE", None)
    proc = run_to_exit(davdisk_argv(stolen, "serve", *SERVE_ARGS), env)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "master key file" in proc.stderr and "does not exist" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    for path in stolen.rglob("*"):
        if path.is_file():
            assert SECRET[:24] not in path.read_bytes(), path


def test_a_key_left_in_the_data_dir_still_works_and_is_warned_about(
    server_factory: ServerFactory,
) -> None:
    data_dir = server_factory.new_data_dir()
    # An install from before: its key inside the data dir, and nowhere else.
    apart = data_dir.with_name(data_dir.name + ".key")
    if apart.exists():
        apart.rename(data_dir / "master.key")
    srv = server_factory(data_dir)
    alice = srv.session(ALICE, USERS[ALICE])
    put(alice, srv.dav + "secret.txt", SECRET)
    assert get_bytes(alice, srv.dav + "secret.txt") == SECRET
    warnings = [line for line in srv.log().splitlines() if "master key" in line]
    assert len(warnings) == 1, srv.log()
    assert "inside the data dir" in warnings[0] and "mv " in warnings[0], warnings
    assert key_files_in(data_dir) == [data_dir / "master.key"]
