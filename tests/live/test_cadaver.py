"""cadaver (the command-line WebDAV client) driven non-interactively against davdisk."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.live.conftest import ALICE, USERS, Server, get_bytes, members


@pytest.fixture
def cadaver_home(tmp_path: Path, server: Server) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(f"machine {server.host} login {ALICE} password {USERS[ALICE]}\n")
    netrc.chmod(0o600)
    return home


def run_cadaver(srv: Server, home: Path, cwd: Path, *commands: str) -> str:
    exe = shutil.which("cadaver")
    if exe is None:
        pytest.fail(
            "cadaver is not installed; scripts/test installs it (Debian/Ubuntu package 'cadaver')"
        )
    env = dict(os.environ, HOME=str(home))
    env.pop("http_proxy", None)
    env.pop("HTTP_PROXY", None)
    script = "\n".join([*commands, "quit"]) + "\n"
    proc = subprocess.run(
        [exe, srv.dav], input=script, cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    out = proc.stdout + proc.stderr
    print(f"$ cadaver {srv.dav} <<< {commands!r}\n{out}")
    assert "Could not authenticate" not in out and "Authentication required" not in out, out
    assert "Could not access" not in out, out
    assert out.count("succeeded") == len(commands), f"not every command succeeded:\n{out}"
    return out


def test_cadaver_mkcol_put_move_get_delete(
    server: Server, cadaver_home: Path, tmp_path: Path
) -> None:
    s = server.session(ALICE)
    work = tmp_path / "work"
    work.mkdir()
    payload = b"cadaver payload\n" + bytes(range(256)) * 300
    (work / "local.bin").write_bytes(payload)

    run_cadaver(server, cadaver_home, work, "mkcol stuff")
    listing = members(s, server.dav)
    assert set(listing) == {"stuff"} and listing["stuff"].is_collection

    run_cadaver(server, cadaver_home, work, "put local.bin stuff/up.bin")
    assert get_bytes(s, server.dav + "stuff/up.bin") == payload
    assert members(s, server.dav + "stuff/")["up.bin"].size == len(payload)

    run_cadaver(server, cadaver_home, work, "move stuff/up.bin stuff/moved.bin")
    assert set(members(s, server.dav + "stuff/")) == {"moved.bin"}
    assert s.get(server.dav + "stuff/up.bin").status_code == 404
    assert get_bytes(s, server.dav + "stuff/moved.bin") == payload

    run_cadaver(server, cadaver_home, work, "get stuff/moved.bin fetched.bin")
    assert (work / "fetched.bin").read_bytes() == payload

    run_cadaver(server, cadaver_home, work, "delete stuff/moved.bin")
    assert members(s, server.dav + "stuff/") == {}
    assert s.get(server.dav + "stuff/moved.bin").status_code == 404

    run_cadaver(server, cadaver_home, work, "rmcol stuff")
    assert members(s, server.dav) == {}
