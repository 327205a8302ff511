"""Locking a user out (issue 12, item 8): wrong passwords sent from one address must throttle
that address, not the user they name. The real user, from another address, logs in with the
right password; their clients that are logged in keep working, from anywhere; their app
passwords are principals of their own and keep working even from the attacking address. An
address that sprays guesses over many names is capped as a whole, without shutting out the
logged-in clients behind it — and that exemption gives a guesser nothing: a guess is never
checked against the cache of verified credentials more often than its (address, name) counter
allows."""

from __future__ import annotations

import time
from pathlib import Path

from tests.live.conftest import ALICE, BOB, USERS, Server, ServerFactory, cli, describe
from tests.live.test_throttle import WRONG, fresh_lockout, login, retry_after

ATTACKER = "127.0.0.1"
ALICE_LAPTOP = "127.0.0.2"
ALICE_NEW_PHONE = "127.0.0.3"
FREE = 3


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "lockout.toml"
    # Long lockouts: whatever the attacker starts lasts the whole test.
    path.write_text(
        f"[auth]\nthrottle_free_failures = {FREE}\nthrottle_max_seconds = 600\n"
        f"bcrypt_cost = 4\n{extra}"
    )
    return path


def app_password(data_dir: Path, user: str) -> str:
    proc = cli(data_dir, "user", "token", "add", user, "sync client")
    assert proc.returncode == 0, describe(proc)
    return proc.stdout.strip()


def test_wrong_passwords_from_one_address_lock_out_that_address_not_the_user(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    data_dir = server_factory.new_data_dir()
    token = app_password(data_dir, ALICE)
    srv = server_factory(data_dir, config=config(tmp_path))
    assert login(srv, ALICE, USERS[ALICE], ALICE_LAPTOP)[0] == 207  # a logged-in client

    statuses = [login(srv, ALICE, WRONG, ATTACKER)[0] for _ in range(100)]
    assert statuses[:FREE] == [401] * FREE and statuses.count(429) >= 50, statuses
    fresh_lockout(srv, ALICE, ATTACKER)  # a lockout with its whole length ahead

    # The attacker's address is locked for alice, even with the right password ...
    assert login(srv, ALICE, USERS[ALICE], ATTACKER)[0] == 429
    # ... but alice is not: her logged-in client, a new device with her password (checked by
    # bcrypt), and her app password, from the attacking address too, all get in.
    assert login(srv, ALICE, USERS[ALICE], ALICE_LAPTOP)[0] == 207
    assert login(srv, ALICE, USERS[ALICE], ALICE_NEW_PHONE)[0] == 207
    assert login(srv, ALICE, token, ALICE_LAPTOP)[0] == 207
    assert login(srv, ALICE, token, ATTACKER)[0] == 207
    # Guessing one name does not lock the address for everybody else behind it.
    assert login(srv, BOB, USERS[BOB], ATTACKER)[0] == 207
    # And alice's logins reset nothing of the attacker's: still locked.
    assert login(srv, ALICE, WRONG, ATTACKER)[0] == 429
    log = srv.log()
    assert "login locked for" in log and ATTACKER in log and "Traceback" not in log


def lock_address(srv: Server, seconds: int) -> None:
    """Spray more names until the attacker's address is locked for ``seconds`` or more: what
    follows then happens during one lockout."""
    for i in range(1000):
        status, headers, _ = login(srv, f"sprayed{i:03d}", WRONG, ATTACKER)
        if status == 429 and retry_after(headers) >= seconds:
            return
        assert status in (401, 429), status
        if status == 429:
            time.sleep(0.25)
    raise AssertionError("the attacker's address was never locked")


def test_spraying_many_names_from_one_address_is_capped(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    srv = server_factory(config=config(tmp_path, "throttle_address_free_failures = 10\n"))
    assert login(srv, ALICE, USERS[ALICE], ALICE_LAPTOP)[0] == 207  # alice's password is cached

    # One guess per name: no (address, name) counter gets near its limit, the address's does.
    sprayed = [login(srv, f"user{i:03d}", WRONG, ATTACKER)[0] for i in range(11)]
    assert sprayed == [401] * 11, sprayed  # the 11th was checked, and started a lockout
    lock_address(srv, 4)
    # The address is locked for names it never tried, even with the right password ...
    assert login(srv, BOB, USERS[BOB], ATTACKER)[0] == 429
    # ... and not elsewhere.
    assert login(srv, BOB, USERS[BOB], ALICE_NEW_PHONE)[0] == 207

    # A credential verified earlier still gets in from the locked address (a logged-in client
    # behind the same NAT keeps working) ...
    assert login(srv, ALICE, USERS[ALICE], ATTACKER)[0] == 207
    # ... which is no oracle for guesses: each guess from the locked address is refused without
    # a check but still counted against (address, alice), and after FREE of them the right,
    # cached password is refused from there too.
    assert [login(srv, ALICE, WRONG, ATTACKER)[0] for _ in range(FREE + 1)] == [429] * (FREE + 1)
    assert login(srv, ALICE, USERS[ALICE], ATTACKER)[0] == 429
    assert login(srv, ALICE, USERS[ALICE], ALICE_LAPTOP)[0] == 207
    assert "Traceback" not in srv.log()
