"""App passwords over a real data dir: made, listed, verified for their user only, touched at
most once a minute, revoked, and removed with their user; and the login flow around them."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest

from davdisk import config as config_mod
from davdisk.auth.app_tokens import TOUCH_EVERY, AppTokens, token_hash
from davdisk.auth.domain import Authenticator
from davdisk.auth.throttle import LoginThrottled, Throttle
from davdisk.errors import NotFound, UsageError
from davdisk.services import Services


def user_id(svc: Services, name: str) -> int:
    actor = svc.files.actor(name)
    assert actor is not None
    return actor.id


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_add_list_verify_remove(svc: Services) -> None:
    clock = Clock()
    tokens = AppTokens(svc.db, clock)
    first_id, first = tokens.add("alice", "laptop")
    second_id, second = tokens.add("alice", "phone")
    assert re.fullmatch(r"davdisk_[A-Za-z0-9_-]{43}", first) and first != second
    assert [(t.id, t.label, t.last_used_at) for t in tokens.list_tokens("alice")] == [
        (first_id, "laptop", None),
        (second_id, "phone", None),
    ]
    assert tokens.list_tokens("bob") == []

    alice, bob = user_id(svc, "alice"), user_id(svc, "bob")
    assert tokens.verify(first, alice)
    assert not tokens.verify(first, bob)
    assert not tokens.verify(first, None)
    assert not tokens.verify(first + "x", alice)
    assert tokens.list_tokens("alice")[0].last_used_at == clock.now

    # last use is written at most once a minute
    used = clock.now
    clock.now += TOUCH_EVERY - 1
    assert tokens.verify(first, alice)
    assert tokens.list_tokens("alice")[0].last_used_at == used
    clock.now += 1
    assert tokens.verify(first, alice)
    assert tokens.list_tokens("alice")[0].last_used_at == clock.now

    with pytest.raises(NotFound, match="app password 1 of user 'bob'"):
        tokens.remove("bob", first_id)
    tokens.remove("alice", first_id)
    assert not tokens.verify(first, alice)
    assert tokens.verify(second, alice)
    with pytest.raises(NotFound):
        tokens.remove("alice", first_id)


def test_only_the_hash_is_stored(tmp_path: Path) -> None:
    # About the bytes of the SQLite file (and its WAL): on SQLite even in a run on PostgreSQL.
    cfg = config_mod.load(None, data_dir=tmp_path / "data")
    cfg.set("auth", "bcrypt_cost", 4, "test")
    with contextlib.closing(Services.open(cfg, create=True)) as svc:
        svc.admin.add_user("alice", "alice-password-1")
        _id, token = AppTokens(svc.db).add("alice", "laptop")
        raw = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("davdisk.db*"))
    assert token.encode() not in raw
    assert token_hash(token).encode() in raw


def test_errors(svc: Services) -> None:
    tokens = AppTokens(svc.db)
    for call in (
        lambda: tokens.add("nobody", "x"),
        lambda: tokens.list_tokens("nobody"),
        lambda: tokens.remove("nobody", 1),
    ):
        with pytest.raises(NotFound, match="user 'nobody'"):
            call()
    for label in ("", "   ", "x" * 101, "a\nb", "a\u200eb"):
        with pytest.raises(UsageError):
            tokens.add("alice", label)


def test_passwd_keeps_tokens_and_del_removes_them(svc: Services) -> None:
    tokens = AppTokens(svc.db)
    _id, token = tokens.add("alice", "laptop")
    tokens.add("bob", "tablet")
    svc.admin.set_password("alice", "another-password")
    assert tokens.verify(token, user_id(svc, "alice"))
    svc.admin.delete_user("alice")
    with svc.db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM app_tokens").scalar() == 1
    svc.admin.add_user("alice", "alice-password-1")
    assert tokens.list_tokens("alice") == []
    assert not tokens.verify(token, user_id(svc, "alice"))


def make_authenticator(svc: Services, free: int = 1) -> Authenticator:
    throttle = Throttle(svc.db, free_failures=free, max_seconds=60)
    return Authenticator(svc.files, svc.db, cost=4, cache_seconds=300, realm="r", throttle=throttle)


def test_login_with_passwords_and_tokens(svc: Services) -> None:
    auth = make_authenticator(svc, free=100)
    _id, token = AppTokens(svc.db).add("alice", "laptop")
    alice = auth.login("alice", "alice-password-1", "10.0.0.1")
    assert alice is not None and alice.name == "alice"
    assert auth.login("alice", "alice-password-1", "10.0.0.1") == alice  # from the cache
    assert auth.login("alice", token, "10.0.0.1") == alice
    assert auth.login("bob", token, "10.0.0.1") is None
    assert auth.login("nobody", token, "10.0.0.1") is None
    assert auth.login("alice", "wrong-password", "10.0.0.1") is None
    # revoked: refused on the very next login, although it worked a moment ago
    AppTokens(svc.db).remove("alice", _id)
    assert auth.login("alice", token, "10.0.0.1") is None


def test_lockout_refuses_even_the_cached_right_password_but_not_app_passwords(
    svc: Services,
) -> None:
    # Issue 12, item 8: the lockout is per (address, name), and app passwords are principals of
    # their own. (It used to lock the name from every address, app passwords included.)
    auth = make_authenticator(svc, free=1)
    _id, token = AppTokens(svc.db).add("alice", "laptop")
    assert auth.login("alice", "alice-password-1", "10.0.0.1") is not None  # now cached
    assert auth.login("alice", "wrong", "10.0.0.2") is None
    assert auth.login("alice", "wrong", "10.0.0.2") is None  # second failure: locked 1 s
    for password in ("alice-password-1", "wrong"):
        with pytest.raises(LoginThrottled):
            auth.login("alice", password, "10.0.0.2")
    assert auth.login("alice", token, "10.0.0.2") is not None
    assert auth.login("alice", "alice-password-1", "10.0.0.1") is not None
    assert auth.login("alice", "alice-password-1", "10.0.0.4") is not None
    assert auth.login("bob", "bob-password-22", "10.0.0.2") is not None
    # wrong app passwords count apart from the password: they do not lock it
    bad = "davdisk_" + "x" * 43
    assert auth.login("alice", bad, "10.0.0.5") is None
    assert auth.login("alice", bad, "10.0.0.5") is None
    with pytest.raises(LoginThrottled):
        auth.login("alice", bad, "10.0.0.5")
    assert auth.login("alice", "alice-password-1", "10.0.0.5") is not None
    # unknown users are counted and locked exactly like known ones
    assert auth.login("nobody", "x", "10.0.1.1") is None
    assert auth.login("nobody", "x", "10.0.1.1") is None
    with pytest.raises(LoginThrottled):
        auth.login("nobody", "x", "10.0.1.1")
