"""Login throttling over a real SQLite database: free failures, exponential lockouts capped at
the maximum, success resets, counting per (address, name) and per address, sharing between
processes, bounded memory and forgetting."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from davdisk.auth.throttle import FORGET_AFTER, Attempt, LoginThrottled, Throttle, client_ip
from davdisk.meta import store
from davdisk.meta.db import Database
from davdisk.request_context import KEY, RequestContext
from tests.pg import database_url_for_test


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(database_url_for_test(tmp_path / "t.db"))
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(
    db: Database,
    clock: Clock,
    free: int = 2,
    max_seconds: float = 10,
    size: int = 100,
    address_free: int | None = None,
) -> Throttle:
    return Throttle(
        db,
        free_failures=free,
        max_seconds=max_seconds,
        address_free_failures=address_free,
        size=size,
        clock=clock,
    )


def failures(db: Database, key: str) -> int:
    with db.read() as conn:
        found = store.login_failures_for(conn, [key]).get(key)
    return 0 if found is None else found.failures


def locked_for(throttle: Throttle, attempt: Attempt, shared: bool = True) -> int:
    """Seconds of Retry-After, 0 if not locked."""
    try:
        (throttle.check_shared if shared else throttle.check_local)(attempt)
    except LoginThrottled as e:
        assert e.http_status == 429 and str(e.retry_after) in e.message
        return e.retry_after
    return 0


def test_lockouts_double_up_to_the_maximum(db: Database, clock: Clock) -> None:
    throttle = make(db, clock, free=2, max_seconds=10)
    assert [throttle.lockout_seconds(n) for n in range(1, 9)] == [0, 0, 1, 2, 4, 8, 10, 10]
    alice = Attempt.user("alice", "10.0.0.1")
    for _ in range(2):
        throttle.failure(alice)
        assert locked_for(throttle, alice) == 0
    for expected in (1, 2, 4, 8, 10, 10):
        throttle.failure(alice)
        assert locked_for(throttle, alice) == expected
        assert locked_for(throttle, alice, shared=False) == expected
        clock.now += expected - 0.5
        assert locked_for(throttle, alice) == 1
        clock.now += 0.5
        assert locked_for(throttle, alice) == 0


def test_pairs_and_addresses_are_counted_separately(db: Database, clock: Clock) -> None:
    throttle = make(db, clock, free=1, address_free=2)
    throttle.failure(Attempt.user("alice", "10.0.0.1"))
    throttle.failure(Attempt.user("alice", "10.0.0.2"))  # each pair and each address: 1
    # No counter per name alone: nobody locks alice out by guessing from many addresses.
    assert locked_for(throttle, Attempt.user("alice", "10.0.0.9")) == 0
    assert locked_for(throttle, Attempt.user("alice", "10.0.0.1")) == 0
    throttle.failure(Attempt.user("alice", "10.0.0.1"))  # the pair's second failure: 1 s
    assert locked_for(throttle, Attempt.user("alice", "10.0.0.1")) == 1
    assert locked_for(throttle, Attempt.user("alice", "10.0.0.2")) == 0
    assert locked_for(throttle, Attempt.user("bob", "10.0.0.1")) == 0
    throttle.failure(Attempt.user("carol", "10.0.0.1"))  # the address's third failure: 1 s
    # A locked address does not refuse fast paths (check_*), only reservations, and those are
    # still counted against their pair; the address's own count does not grow meanwhile.
    bob = Attempt.user("bob", "10.0.0.1")
    assert locked_for(throttle, bob) == 0
    with pytest.raises(LoginThrottled):
        throttle.reserve(bob)
    assert (failures(db, bob.pair), failures(db, "ip:10.0.0.1")) == (1, 3)
    throttle.reserve(Attempt.user("bob", "10.0.0.3"))  # elsewhere: not refused
    # links, app passwords and users with the same name do not share a counter
    throttle.failure(Attempt.link(7, "10.0.0.4"))
    throttle.failure(Attempt.link(7, "10.0.0.4"))
    assert locked_for(throttle, Attempt.link(7, "10.0.0.4")) == 1
    assert locked_for(throttle, Attempt.user("7", "10.0.0.4")) == 0
    throttle.failure(Attempt.app_password("dave", "10.0.0.5"))
    throttle.failure(Attempt.app_password("dave", "10.0.0.5"))
    assert locked_for(throttle, Attempt.app_password("dave", "10.0.0.5")) == 1
    assert locked_for(throttle, Attempt.user("dave", "10.0.0.5")) == 0
    # an unknown address (in-process call) counts against the subject only
    throttle.failure(Attempt.user("erin", ""))
    throttle.failure(Attempt.user("erin", ""))
    assert Attempt.user("erin", "").keys == ["user:erin"]
    assert locked_for(throttle, Attempt.user("erin", "")) == 1


def test_success_resets_the_pair_not_the_address(db: Database, clock: Clock) -> None:
    throttle = make(db, clock, free=2, address_free=2)
    alice = Attempt.user("alice", "10.0.0.1")
    throttle.failed(alice, throttle.reserve(alice))
    throttle.failed(alice, throttle.reserve(alice))
    throttle.check_shared(alice)
    throttle.reserve(alice)  # the address's third failure would lock it ...
    throttle.success(alice)  # ... but the password was right: that one is taken back
    # The address's earlier failures stay: a sprayer could reset them with an account of its
    # own. The reservation's failure does not: logins that succeed never lock an address.
    assert (failures(db, alice.pair), failures(db, "ip:10.0.0.1")) == (0, 2)
    throttle.reserve(Attempt.user("bob", "10.0.0.1"))  # not refused: the address is not locked
    throttle.failure(alice)
    throttle.failure(alice)
    assert locked_for(throttle, alice) == 0  # counting started again from zero


def test_two_processes_share_lockouts_through_the_database(db: Database, clock: Clock) -> None:
    first, second = make(db, clock, free=0), make(db, clock, free=0)
    alice = Attempt.user("alice", "10.0.0.1")
    first.failure(alice)
    # The second process learns of it when it reads the database (before any bcrypt check) ...
    assert locked_for(second, alice, shared=False) == 0
    assert locked_for(second, alice) == 1
    # ... and from then on refuses even its fast paths.
    assert locked_for(second, alice, shared=False) == 1
    # A success in one process clears the shared counters.
    clock.now += 1
    second.check_shared(alice)
    second.success(alice)
    first.failure(alice)
    assert locked_for(second, alice) == 1  # a first failure again: 1 s, not 2


def test_a_reservation_counts_before_the_check_in_every_process(db: Database, clock: Clock) -> None:
    first, second = make(db, clock, free=2), make(db, clock, free=2)
    alice = Attempt.user("alice", "10.0.0.1")
    # Three attempts in flight at once, in two processes: each is counted as it is reserved,
    # and the third (past the free two) starts the lockout that refuses the fourth.
    first.reserve(alice)
    second.reserve(alice)
    held = first.reserve(alice)
    with pytest.raises(LoginThrottled):
        second.reserve(alice)
    with db.read() as conn:
        assert store.login_failures_for(conn, alice.keys)[alice.pair].failures == 3
    first.failed(alice, held)  # a failed reservation stays counted
    assert locked_for(second, alice) == 1
    # A right password un-counts what it reserved: counting starts again from zero.
    clock.now += 1
    first.reserve(alice)
    first.success(alice)
    assert failures(db, alice.pair) == 0


def test_memory_is_bounded_per_kind(db: Database, clock: Clock) -> None:
    throttle = make(db, clock, size=5)
    for i in range(50):
        throttle.failure(Attempt.user(f"user{i}", f"10.0.{i}.1"))
    assert throttle.remembered() == (5, 5)
    huge = "x" * 100_000
    throttle.failure(Attempt.user(huge, "10.0.0.1"))
    with db.read() as conn:
        keys = list(store.login_failures_for(conn, [Attempt.user(huge, "10.0.0.1").pair]))
    assert len(keys) == 1 and len(keys[0]) < 120


def test_old_failures_are_forgotten(db: Database, clock: Clock) -> None:
    throttle = make(db, clock, free=1)
    alice = Attempt.user("alice", "10.0.0.1")
    throttle.failure(alice)
    clock.now += FORGET_AFTER + 1
    throttle.failure(alice)  # counts as the first again: no lockout
    assert locked_for(throttle, alice) == 0
    # and rows nobody touched for a day are pruned when failures are written
    throttle.failure(Attempt.user("bob", "10.9.9.9"))
    clock.now += FORGET_AFTER + 120
    throttle.failure(Attempt.user("carol", "10.8.8.8"))
    with db.read() as conn:
        left = store.login_failures_for(
            conn,
            [
                "user:alice@10.0.0.1",
                "user:bob@10.9.9.9",
                "ip:10.9.9.9",
                "user:carol@10.8.8.8",
                "ip:10.8.8.8",
            ],
        )
    assert sorted(left) == ["ip:10.8.8.8", "user:carol@10.8.8.8"]


def test_a_lockout_is_logged_without_secrets(
    db: Database, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    throttle = make(db, clock, free=1)
    alice = Attempt.user("alice\nfake line", "10.0.0.1")
    with caplog.at_level(logging.WARNING, "davdisk.auth.throttle"):
        throttle.failure(alice)
        assert caplog.records == []
        throttle.failure(alice)
    [record] = caplog.records
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert "locked for 1 s" in message and "10.0.0.1" in message
    assert "'alice\\nfake line'" in message and "\n" not in message


def test_client_ip_prefers_the_transport_layers_answer() -> None:
    environ = {"REMOTE_ADDR": "127.0.0.1", KEY: RequestContext(client_ip="203.0.113.9")}
    assert client_ip(environ) == "203.0.113.9"
    assert client_ip({"REMOTE_ADDR": "127.0.0.1"}) == "127.0.0.1"
    assert client_ip({}) == ""
