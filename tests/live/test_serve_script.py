"""``scripts/serve``: the newcomer's way in. It takes davdisk's global options (``--config``,
``--data-dir``) anywhere among the ``serve`` options and uses that data dir for its first run.

The script runs from a copy of the repository's ``scripts/`` beside a stand-in ``.venv`` whose
``davdisk`` runs this checkout (and whose install stamp is fresh), so no test builds a venv or
runs pip, and the real script logic (argument handling, first-run user, exec) is what runs.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.live.conftest import (
    HARNESS_CONFIG,
    REPO_ROOT,
    SERVING_RE,
    START_TIMEOUT,
    STOP_TIMEOUT,
    cli,
    describe,
    keep_on_sqlite,
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A directory laid out like the repository, as far as scripts/serve looks."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "scripts" / "serve", root / "scripts" / "serve")
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    wrapper = bin_dir / "davdisk"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH='{REPO_ROOT}' exec '{sys.executable}' -m davdisk "
        f"--config '{root / 'harness.toml'}' \"$@\"\n"
    )
    wrapper.chmod(0o755)
    (root / "harness.toml").write_text(HARNESS_CONFIG)  # cheap bcrypt for the first-run user
    (root / ".venv" / ".davdisk-installed").touch()  # and no pyproject.toml: nothing to install
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_serve(repo: Path, *args: str) -> tuple[str, str]:
    """Run scripts/serve ARGS until it serves; SIGTERM it; return (its output, the URL)."""
    log = repo / f"serve-{time.monotonic_ns()}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAVDISK_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", str(repo / "scripts" / "serve"), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=repo.parent,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not (m := SERVING_RE.search(log.read_text(errors="replace"))):
                if proc.poll() is not None:
                    pytest.fail(f"scripts/serve exited with {proc.returncode}:\n{log.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"scripts/serve did not serve:\n{log.read_text()}")
                time.sleep(0.05)
            r = requests.request("OPTIONS", m.group(1) + "/dav/", timeout=10)
            assert r.status_code == 200, r.status_code
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # the script exec'd the server: its pid
            proc.wait(STOP_TIMEOUT)
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, text
    assert "Traceback" not in text, text
    return text, m.group(1)


def users_of(data_dir: Path) -> list[str]:
    proc = cli(data_dir, "user", "list")
    assert proc.returncode == 0, describe(proc)
    return [line.split()[0] for line in proc.stdout.splitlines()[1:] if line.strip()]


def test_serve_script_takes_data_dir_and_config(repo: Path, tmp_path: Path) -> None:
    data = keep_on_sqlite(tmp_path / "my-data")  # scripts/serve runs on its embedded defaults
    # --data-dir before the serve options, relative to where the script is run (tmp_path): the
    # first run creates admin there
    out, url = run_serve(repo, "--data-dir", "my-data", "--port", "0")
    assert "First run: created user 'admin'" in out, out
    assert users_of(data) == ["admin"]
    assert not (repo / "data").exists(), "the first run went to the default data dir"

    # --config and --data-dir=D mixed with serve options: the config's port is used, and the
    # data dir (which has a user now) gets no second admin
    port = free_port()
    config = tmp_path / "server.toml"
    config.write_text(f"[server]\nport = {port}\n")
    out, url = run_serve(repo, "--host", "127.0.0.1", "--config", str(config), f"--data-dir={data}")
    assert url == f"http://127.0.0.1:{port}", out
    assert "First run" not in out, out
    assert users_of(data) == ["admin"]

    # --config=F, relative
    port = free_port()
    config.write_text(f"[server]\nport = {port}\n")
    out, url = run_serve(repo, "--config=server.toml", "--data-dir", str(data))
    assert url == f"http://127.0.0.1:{port}", out


def test_serve_script_bad_arguments(repo: Path) -> None:
    for args in (("--data-dir",), ("--config",), ("--config", str(repo / "missing.toml"))):
        proc = subprocess.run(
            ["bash", str(repo / "scripts" / "serve"), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode != 0, describe(proc)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert re.search(r"--data-dir|--config|missing\.toml", proc.stderr), proc.stderr
    assert not (repo / "data").exists()
