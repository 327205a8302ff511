"""App passwords against a real server: ``user token add`` prints a token that logs in as its
user only; ``list`` shows it with its last use; ``rm`` revokes it on the very next request to the
running server; ``passwd`` leaves tokens alone; ``del`` removes them."""

from __future__ import annotations

import re
from pathlib import Path

import requests

from tests.live.conftest import (
    ALICE,
    BOB,
    USERS,
    ServerFactory,
    add_user,
    cli,
    describe,
    get_bytes,
    put,
    sql,
    stored_bytes,
)


def token_add(data_dir: Path, user: str, label: str) -> str:
    proc = cli(data_dir, "user", "token", "add", user, label)
    assert proc.returncode == 0, describe(proc)
    token = proc.stdout.strip()
    assert re.fullmatch(r"davdisk_[A-Za-z0-9_-]{43}", token), describe(proc)  # 256 random bits
    assert "shown only now" in proc.stderr
    return token


def token_list(data_dir: Path, user: str) -> dict[str, tuple[int, str]]:
    """label -> (id, last used) from ``user token list``."""
    proc = cli(data_dir, "user", "token", "list", user)
    assert proc.returncode == 0, describe(proc)
    header, *rows = proc.stdout.splitlines()
    assert header.split() == ["ID", "LABEL", "CREATED", "LAST", "USED"], proc.stdout
    found = {}
    for row in rows:
        m = re.fullmatch(
            r"\s*(\d+)  (.+?)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC)  (never|\d{4}-.+ UTC)", row
        )
        assert m, row
        found[m.group(2)] = (int(m.group(1)), m.group(4))
    return found


def status(url: str, auth: tuple[str, str]) -> int:
    # A fresh connection each time: nothing a client keeps can carry a login over.
    r = requests.request("PROPFIND", url, auth=auth, headers={"Depth": "0"})
    return r.status_code


def stored_tokens(data_dir: Path) -> int:
    ((count,),) = sql(data_dir, "SELECT count(*) FROM app_tokens")
    return int(count)


def test_app_password_lifecycle(server_factory: ServerFactory) -> None:
    srv = server_factory()
    data = srv.data_dir
    laptop = token_add(data, ALICE, "laptop rclone")
    phone = token_add(data, ALICE, "phone")
    assert laptop != phone
    # Only the hash is stored.
    raw = stored_bytes(data)
    assert laptop.encode() not in raw and phone.encode() not in raw

    # The token is alice's password, and only alice's.
    s = requests.Session()
    s.auth = (ALICE, laptop)
    put(s, srv.dav + "from-laptop.txt", b"written with an app password")
    assert get_bytes(srv.session(ALICE), srv.dav + "from-laptop.txt").startswith(b"written")
    for user in (BOB, "nobody", ""):
        assert status(srv.dav, (user, laptop)) == 401, user
    assert status(srv.dav, (ALICE, laptop + "x")) == 401
    listed = token_list(data, ALICE)
    assert listed["laptop rclone"][0] == 1 and listed["laptop rclone"][1] != "never"
    assert listed["phone"] == (2, "never")

    # Errors: one line, non-zero exit; bob cannot revoke alice's token by its id.
    for args, message in [
        (("rm", BOB, "1"), "davdisk: error: not found: app password 1 of user 'bob'"),
        (("add", "nobody", "x"), "davdisk: error: not found: user 'nobody'"),
    ]:
        proc = cli(data, "user", "token", *args)
        assert proc.returncode == 3 and proc.stdout == "", describe(proc)
        assert proc.stderr.strip() == message, describe(proc)

    # A new password leaves tokens working.
    proc = cli(data, "user", "passwd", ALICE, "--password-stdin", input="a-brand-new-pass\n")
    assert proc.returncode == 0, describe(proc)
    assert status(srv.dav, (ALICE, "a-brand-new-pass")) == 207
    assert status(srv.dav, (ALICE, laptop)) == 207

    # Revocation: the running server refuses the token on the very next request (even on a
    # connection that used it a moment ago); the other token keeps working.
    assert s.request("PROPFIND", srv.dav, headers={"Depth": "0"}).status_code == 207
    proc = cli(data, "user", "token", "rm", ALICE, "1")
    assert proc.returncode == 0 and "revoked app password 1" in proc.stdout, describe(proc)
    assert s.request("PROPFIND", srv.dav, headers={"Depth": "0"}).status_code == 401
    assert status(srv.dav, (ALICE, laptop)) == 401
    assert status(srv.dav, (ALICE, phone)) == 207

    # Deleting the user deletes their tokens; a new alice does not inherit them.
    bob_token = token_add(data, BOB, "bob's tablet")
    assert stored_tokens(data) == 2
    proc = cli(data, "user", "del", ALICE, "--yes")
    assert proc.returncode == 0, describe(proc)
    assert stored_tokens(data) == 1
    add_user(data, ALICE, USERS[ALICE])
    assert token_list(data, ALICE) == {}
    assert status(srv.dav, (ALICE, phone)) == 401
    assert status(srv.dav, (BOB, bob_token)) == 207
