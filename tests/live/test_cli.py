"""The ``davdisk`` command line: user management, help, and clean errors on bad input."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.live.conftest import (
    ALICE,
    BOB,
    CLI_TIMEOUT,
    USERS,
    ServerFactory,
    _env,
    add_user,
    blob_files,
    cli,
    davdisk_argv,
    describe,
    get_bytes,
    keep_on_sqlite,
    put,
    wait_until,
)
from tests.live.terminal import cli_on_tty


def assert_clean_error(proc: subprocess.CompletedProcess[str]) -> str:
    """Non-zero exit, exactly one non-empty line on stderr, no traceback anywhere."""
    assert proc.returncode != 0, f"expected failure\n{describe(proc)}"
    assert "Traceback" not in proc.stderr + proc.stdout, describe(proc)
    err = proc.stderr.strip()
    assert err, f"no error message on stderr\n{describe(proc)}"
    assert "\n" not in err, f"error message is not one line\n{describe(proc)}"
    return err


def user_list(data_dir: Path) -> str:
    proc = cli(data_dir, "user", "list")
    assert proc.returncode == 0, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    return proc.stdout


def listed(data_dir: Path, name: str) -> bool:
    """Is there a line in ``user list`` whose first field is ``name``?"""
    return any(
        re.split(r"[\s|,;]+", line.strip())[0] == name
        for line in user_list(data_dir).splitlines()
        if line.strip()
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    add_user(d, ALICE, USERS[ALICE])
    return d


@pytest.fixture
def sqlite_data_dir(tmp_path: Path) -> Path:
    """The same on SQLite in any run, for the tests of what becomes of its davdisk.db file."""
    d = keep_on_sqlite(tmp_path / "data")
    add_user(d, ALICE, USERS[ALICE])
    return d


BAD_NAMES = {
    "empty": "",
    "too long": "x" * 65,
    "slash": "a/b",
    "colon": "a:b",
    "control char": "a\x01b",
    "newline": "a\nb",
    "tab": "a\tb",
    "delete char": "a\x7fb",
}


@pytest.fixture(scope="module")
def shared_data_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A data dir with alice, and its ``user list`` output (nothing here may change it)."""
    d = tmp_path_factory.mktemp("cli") / "data"
    add_user(d, ALICE, USERS[ALICE])
    return d, user_list(d)


@pytest.mark.parametrize("name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
def test_user_add_rejects_bad_names(shared_data_dir: tuple[Path, str], name: str) -> None:
    data_dir, before = shared_data_dir
    err = assert_clean_error(
        cli(data_dir, "user", "add", name, "--password-stdin", input="good-password-1\n")
    )
    print(f"{name!r}: {err}")
    assert user_list(data_dir) == before, "a rejected user add changed the user list"


def test_user_add_accepts_64_char_name(data_dir: Path) -> None:
    name = "n" * 64
    proc = cli(data_dir, "user", "add", name, "--password-stdin", input="good-password-1\n")
    assert proc.returncode == 0, describe(proc)
    assert listed(data_dir, name) and listed(data_dir, ALICE)


def test_user_errors(data_dir: Path) -> None:
    before = user_list(data_dir)
    cases = {
        "duplicate user": ("user", "add", ALICE, "--password-stdin"),
        "passwd unknown": ("user", "passwd", "ghost", "--password-stdin"),
        "del unknown": ("user", "del", "ghost", "--yes"),
        "del unknown, unconfirmed": ("user", "del", "ghost"),
    }
    for label, args in cases.items():
        err = assert_clean_error(cli(data_dir, *args, input="another-password\n"))
        print(f"{label}: {err}")
    for pw in ("", "short", "7-chars"):
        err = assert_clean_error(
            cli(data_dir, "user", "add", "carol", "--password-stdin", input=pw + "\n")
        )
        print(f"password {pw!r}: {err}")
        err = assert_clean_error(
            cli(data_dir, "user", "passwd", ALICE, "--password-stdin", input=pw + "\n")
        )
        print(f"passwd {pw!r}: {err}")
    assert user_list(data_dir) == before, "failed commands changed the user list"
    # exactly 8 characters is enough
    proc = cli(data_dir, "user", "add", "carol", "--password-stdin", input="8-chars!\n")
    assert proc.returncode == 0, describe(proc)
    assert listed(data_dir, "carol") and listed(data_dir, ALICE)


def test_help_exits_zero(tmp_path: Path) -> None:
    for args in (
        ("--help",),
        ("serve", "--help"),
        ("user", "--help"),
        ("user", "add", "--help"),
        ("user", "passwd", "--help"),
        ("user", "del", "--help"),
        ("user", "list", "--help"),
        ("gc", "--help"),
    ):
        proc = cli(None, *args)
        assert proc.returncode == 0, describe(proc)
        assert "usage" in proc.stdout.lower(), describe(proc)
        assert "Traceback" not in proc.stderr


def find_line(text: str, name: str) -> str:
    for line in text.splitlines():
        tokens = re.split(r"[\s|,;]+", line.strip())
        if tokens and tokens[0] == name:
            return line
    raise AssertionError(f"no line for {name!r} in user list:\n{text}")


def numbers(line: str) -> list[int]:
    return [int(n.replace(",", "").replace("_", "")) for n in re.findall(r"\b\d[\d,_]*\b", line)]


def test_user_list_counts_and_user_del(server_factory: ServerFactory) -> None:
    srv = server_factory()
    a = srv.session(ALICE)
    b = srv.session(BOB)
    blobs_empty = len(blob_files(srv.data_dir))
    assert a.request("MKCOL", srv.dav + "folder/").status_code == 201
    put(a, srv.dav + "one.bin", b"1" * 1000, expect=(201,))
    put(a, srv.dav + "folder/two.bin", b"2" * 2345, expect=(201,))
    put(b, srv.dav + "bobs.bin", b"b" * 77, expect=(201,))

    proc = cli(srv.data_dir, "user", "list")
    assert proc.returncode == 0, describe(proc)
    print(proc.stdout)
    alice_line = find_line(proc.stdout, ALICE)
    bob_line = find_line(proc.stdout, BOB)
    assert 2 in numbers(alice_line) and 3345 in numbers(alice_line), (
        f"alice has 2 files, 3345 bytes: {alice_line!r}"
    )
    assert 1 in numbers(bob_line) and 77 in numbers(bob_line), (
        f"bob has 1 file, 77 bytes: {bob_line!r}"
    )

    blobs_before = len(blob_files(srv.data_dir))
    assert blobs_before == blobs_empty + 3
    proc = cli(srv.data_dir, "user", "del", ALICE, "--yes")
    assert proc.returncode == 0, describe(proc)
    assert "Traceback" not in proc.stderr
    assert len(blob_files(srv.data_dir)) == blobs_before - 2, "alice's 2 blobs must be removed"
    assert not listed(srv.data_dir, ALICE) and listed(srv.data_dir, BOB)

    # the running server stops accepting alice (allowing for a short credential cache)
    def alice_refused() -> bool:
        return (
            requests.request(
                "PROPFIND", srv.dav, auth=(ALICE, USERS[ALICE]), headers={"Depth": "0"}
            ).status_code
            == 401
        )

    wait_until(alice_refused, 30, "the deleted user's login to be refused", interval=0.25)
    assert get_bytes(b, srv.dav + "bobs.bin") == b"b" * 77

    # and a fresh server never knew her
    srv.stop()
    srv2 = server_factory(data_dir=srv.data_dir)
    r = requests.request("PROPFIND", srv2.dav, auth=(ALICE, USERS[ALICE]), headers={"Depth": "0"})
    assert r.status_code == 401
    assert get_bytes(srv2.session(BOB), srv2.dav + "bobs.bin") == b"b" * 77
    # a re-created alice starts empty
    add_user(srv.data_dir, ALICE, "a-new-password")
    r = requests.request(
        "PROPFIND", srv2.dav, auth=(ALICE, "a-new-password"), headers={"Depth": "1"}
    )
    assert r.status_code == 207
    assert "one.bin" not in r.text and "folder" not in r.text


def test_user_del_asks_for_confirmation(data_dir: Path) -> None:
    add_user(data_dir, BOB, USERS[BOB])
    # no terminal and no --yes: refused, even when the name is piped in
    for piped in ("", ALICE + "\n", "y\n"):
        err = assert_clean_error(cli(data_dir, "user", "del", ALICE, input=piped))
        print(f"piped {piped!r}: {err}")
        assert "--yes" in err
    assert listed(data_dir, ALICE)
    # on a terminal: anything but the user's name, or Ctrl-D, deletes nothing
    for answer in ("y\n", "yes\n", BOB + "\n", "\n", "\x04"):
        run = cli_on_tty(data_dir, "user", "del", ALICE, dialog=[("to confirm:", answer)])
        print(f"answer {answer!r}: {run}")
        assert run.returncode != 0, str(run)
        assert "Traceback" not in run.output, str(run)
        assert run.output.strip().splitlines()[-1].startswith("davdisk: error: "), str(run)
        assert listed(data_dir, ALICE)
    run = cli_on_tty(data_dir, "user", "del", ALICE, dialog=[("to confirm:", ALICE + "\n")])
    assert run.returncode == 0 and "removed user" in run.output, str(run)
    assert not listed(data_dir, ALICE) and listed(data_dir, BOB)
    # --yes: no question
    proc = cli(data_dir, "user", "del", BOB, "--yes")
    assert proc.returncode == 0, describe(proc)
    assert not listed(data_dir, BOB)


def test_user_passwd(server_factory: ServerFactory) -> None:
    srv = server_factory()
    r = requests.request("PROPFIND", srv.dav, auth=(BOB, USERS[BOB]), headers={"Depth": "0"})
    assert r.status_code == 207
    proc = cli(srv.data_dir, "user", "passwd", BOB, "--password-stdin", input="new-bob-pass\n")
    assert proc.returncode == 0, describe(proc)
    r = requests.request("PROPFIND", srv.dav, auth=(BOB, "new-bob-pass"), headers={"Depth": "0"})
    assert r.status_code == 207, r.status_code

    def old_refused() -> bool:
        return (
            requests.request(
                "PROPFIND", srv.dav, auth=(BOB, USERS[BOB]), headers={"Depth": "0"}
            ).status_code
            == 401
        )

    wait_until(old_refused, 30, "the old password to be refused", interval=0.25)


# --------------------------------------------------------------------------- unusable data dir


@contextlib.contextmanager
def read_only_mount(target: Path, *, bind: bool) -> Iterator[None]:
    """Make ``target`` really read-only, for root too: a bind mount of it remounted ``ro``
    (``bind``), or a tmpfs holding a copy of the directory, remounted ``ro``. Needs root (as the
    disk-full tests do); fails, not skips, without it."""
    if os.geteuid() != 0:
        pytest.fail("the read-only tests mount file systems and must run as root")

    def run(*argv: str) -> None:
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(argv)}: {proc.stderr.strip()}")

    if bind:
        run("mount", "--bind", str(target), str(target))
        run("mount", "-o", "remount,ro,bind", str(target))
    else:
        copy = target.with_name(target.name + ".copy")
        shutil.copytree(target, copy)
        run("mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", str(target))
        shutil.copytree(copy, target, dirs_exist_ok=True)
        run("mount", "-o", "remount,ro", str(target))
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True)


def check_commands_fail_cleanly(
    data_dir: Path, commands: list[tuple[str, ...]], reason: str
) -> None:
    for args in commands:
        err = assert_clean_error(cli(data_dir, *args, input="another-password\n"))
        print(f"{' '.join(args)}: {err}")
        assert str(data_dir / "davdisk.db") in err, f"the error must name the database: {err}"
        assert reason in err, f"{reason!r} not in {err!r}"


WRITERS: list[tuple[str, ...]] = [
    ("user", "add", BOB, "--password-stdin"),
    ("user", "passwd", ALICE, "--password-stdin"),
    ("user", "quota", ALICE, "1G"),
]
READERS: list[tuple[str, ...]] = [("user", "list"), ("share", "list"), ("gc",)]


def test_database_that_is_a_directory_is_a_one_line_error(sqlite_data_dir: Path) -> None:
    data_dir = sqlite_data_dir
    for leftover in data_dir.glob("davdisk.db*"):
        leftover.unlink()
    (data_dir / "davdisk.db").mkdir()
    commands = [*READERS, *WRITERS, ("serve", "--port", "0")]
    check_commands_fail_cleanly(data_dir, commands, "unable to open database file")


def test_read_only_data_dir_is_a_one_line_error(sqlite_data_dir: Path) -> None:
    data_dir = sqlite_data_dir
    with read_only_mount(data_dir, bind=False):
        commands = [*READERS, *WRITERS, ("serve", "--port", "0")]
        check_commands_fail_cleanly(data_dir, commands, "unable to open database file")
    assert listed(data_dir, ALICE)


def test_read_only_database_file_is_a_one_line_error(sqlite_data_dir: Path) -> None:
    data_dir = sqlite_data_dir
    before = user_list(data_dir)
    with read_only_mount(data_dir / "davdisk.db", bind=True):
        assert user_list(data_dir) == before  # reading still works
        check_commands_fail_cleanly(data_dir, WRITERS, "attempt to write a readonly database")
    assert user_list(data_dir) == before


# --------------------------------------------------------------------------- password prompts


def test_password_prompt_without_a_terminal(tmp_path: Path, data_dir: Path) -> None:
    # a password piped in without --password-stdin: no prompt can be shown, and the pipe is
    # not silently taken for the answer
    for args in (("user", "passwd", ALICE), ("user", "add", BOB)):
        err = assert_clean_error(cli(data_dir, *args, input="piped-password-1\n"))
        print(f"{' '.join(args)}: {err}")
        assert "--password-stdin" in err
    # stdin at end of file (< /dev/null), on a data dir that does not exist yet: nothing made
    fresh = tmp_path / "fresh"
    proc = subprocess.run(
        davdisk_argv(fresh, "user", "add", "x"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=CLI_TIMEOUT,
    )
    assert "--password-stdin" in assert_clean_error(proc)
    assert not fresh.exists(), "a refused user add created the data dir"
    assert not listed(data_dir, BOB)


def test_password_prompt_on_a_terminal(data_dir: Path) -> None:
    # Ctrl-D at the first and at the second prompt
    for dialog in (
        [("New password:", "\x04")],
        [("New password:", "first-password\n"), ("Repeat password:", "\x04")],
    ):
        run = cli_on_tty(data_dir, "user", "passwd", ALICE, dialog=dialog)
        print(run)
        assert run.returncode != 0, str(run)
        assert "Traceback" not in run.output, str(run)
        assert run.output.strip().splitlines()[-1].startswith("davdisk: error: "), str(run)
    # and typing it twice works
    run = cli_on_tty(
        data_dir,
        "user",
        "passwd",
        ALICE,
        dialog=[("New password:", "typed-password\n"), ("Repeat password:", "typed-password\n")],
    )
    assert run.returncode == 0 and "changed the password" in run.output, str(run)
