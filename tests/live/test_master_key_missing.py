"""A data dir whose users' keys are wrapped under a master key that is gone: ``serve``, ``user add``
and ``scripts/serve`` must stop with one line naming the missing key file and how to provide it,
and must not make a new key (it would open none of the stored keys, and every later write of an
existing user would fail). The first run on an empty data dir still creates the key and admin."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.live.conftest import (
    ALICE,
    REPO_ROOT,
    SERVING_RE,
    USERS,
    _env,
    add_user,
    cli,
    davdisk_argv,
    describe,
    keep_on_sqlite,
    master_key_path,
    sql,
    wait_until,
)

SERVE_ARGS = ("--host", "127.0.0.1", "--port", "0")


def assert_missing_key_error(proc: subprocess.CompletedProcess[str], key: Path) -> None:
    assert proc.returncode != 0, f"expected failure\n{describe(proc)}"
    assert "Traceback" not in proc.stdout + proc.stderr, describe(proc)
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, f"expected one error line\n{describe(proc)}"
    assert str(key) in errors[0] and "DAVDISK_MASTER_KEY_FILE" in errors[0], describe(proc)
    assert "First run" not in proc.stdout, describe(proc)
    assert not key.exists(), f"a new master key was created\n{describe(proc)}"


def run_to_exit(
    argv: list[str], env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run a command that must exit by itself; one that starts serving instead fails the test."""
    try:
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=30
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{argv} did not exit (it serves on a new master key?)\n{e.stdout!r}")


@pytest.fixture
def keyless(tmp_path: Path) -> Path:
    """A data dir with alice whose master key was removed."""
    return _without_key(tmp_path / "data")


@pytest.fixture
def keyless_sqlite(tmp_path: Path) -> Path:
    """The same on SQLite in any run: scripts/serve runs on its embedded defaults (the data
    dir's davdisk.db), and must find alice there."""
    return _without_key(keep_on_sqlite(tmp_path / "data"))


def _without_key(data: Path) -> Path:
    add_user(data, ALICE, USERS[ALICE])
    master_key_path(data).unlink()
    return data


def scripts_serve_env(data: Path) -> dict[str, str]:
    env = {**_env(), "DAVDISK_DATA_DIR": str(data)}
    env.pop("DAVDISK_MASTER_KEY_FILE", None)
    return env


def test_serve_refuses(keyless: Path) -> None:
    proc = run_to_exit(davdisk_argv(keyless, "serve", *SERVE_ARGS), _env())
    assert_missing_key_error(proc, master_key_path(keyless))


def test_user_add_refuses(keyless: Path) -> None:
    proc = cli(keyless, "user", "add", "bob", "--password-stdin", input="bob-password-22\n")
    assert_missing_key_error(proc, master_key_path(keyless))


def test_scripts_serve_shows_the_error(keyless_sqlite: Path) -> None:
    keyless = keyless_sqlite
    proc = run_to_exit(
        ["bash", str(REPO_ROOT / "scripts" / "serve"), *SERVE_ARGS], scripts_serve_env(keyless)
    )
    assert_missing_key_error(proc, master_key_path(keyless))
    # alice is still the only user: no admin was added on top of the key-less database.
    assert sql(keyless, "SELECT name FROM users") == [(ALICE,)]


def test_scripts_serve_first_run(tmp_path: Path) -> None:
    data = keep_on_sqlite(tmp_path / "data")  # scripts/serve's embedded defaults
    out = tmp_path / "serve.log"
    with open(out, "wb") as log:
        proc = subprocess.Popen(
            ["bash", str(REPO_ROOT / "scripts" / "serve"), *SERVE_ARGS],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=scripts_serve_env(data),
            cwd=REPO_ROOT,
        )
        try:
            wait_until(
                lambda: SERVING_RE.search(out.read_text()) or proc.poll() is not None,
                60,
                "scripts/serve to serve",
            )
            text = out.read_text()
            assert SERVING_RE.search(text), text
            assert re.search(r"First run: created user 'admin' with password: \S+", text), text
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert master_key_path(data).exists() and not (data / "master.key").exists()
    users = cli(data, "user", "list")
    assert users.returncode == 0 and re.search(r"^admin\s", users.stdout, re.M), describe(users)
