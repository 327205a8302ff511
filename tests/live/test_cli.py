"""The ``davdisk`` command line: user management, help, and clean errors on bad input."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import requests

from tests.live.conftest import (
    ALICE,
    BOB,
    USERS,
    ServerFactory,
    add_user,
    blob_files,
    cli,
    describe,
    get_bytes,
    put,
    wait_until,
)


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
        "del unknown": ("user", "del", "ghost"),
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
    proc = cli(srv.data_dir, "user", "del", ALICE)
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
