"""Authenticator.login: the credential cache and one bcrypt check per new credentials."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from davdisk.auth import domain
from davdisk.auth.domain import Authenticator
from davdisk.auth.throttle import Throttle
from davdisk.services import Services


def _authenticator(svc: Services) -> Authenticator:
    throttle = Throttle(svc.db, free_failures=1000, max_seconds=900)
    return Authenticator(svc.files, svc.db, cost=4, cache_seconds=60, realm="t", throttle=throttle)


def _counting_checks(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Count bcrypt checks; the first is slowed so concurrent logins surely overlap it."""
    real = domain.check_password
    calls: list[bool] = []

    def check(password: str, password_hash: str) -> bool:
        calls.append(True)
        if len(calls) == 1:
            time.sleep(0.3)
        return real(password, password_hash)

    monkeypatch.setattr(domain, "check_password", check)
    return calls


def test_concurrent_logins_with_new_credentials_share_one_bcrypt_check(
    svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = _authenticator(svc)
    calls = _counting_checks(monkeypatch)
    start = threading.Barrier(8)

    def login(_: int) -> str | None:
        start.wait()
        actor = auth.login("alice", "alice-password-1", "127.0.0.1")
        return actor.name if actor else None

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(login, range(8))) == ["alice"] * 8
    assert len(calls) == 1


def test_concurrent_wrong_passwords_are_each_checked_and_refused(
    svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Waiting for another request's verdict never turns a failure into a pass.
    auth = _authenticator(svc)
    calls = _counting_checks(monkeypatch)
    start = threading.Barrier(4)

    def login(_: int) -> object:
        start.wait()
        return auth.login("alice", "wrong-password", "127.0.0.1")

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(login, range(4))) == [None] * 4
    assert len(calls) == 4
    assert auth.login("alice", "alice-password-1", "127.0.0.1") is not None
