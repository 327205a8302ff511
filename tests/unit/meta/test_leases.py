"""Job leases (meta/store/leases.py) on the real database: who may take, renew and release a job."""

from __future__ import annotations

import threading

from davdisk.files.jobs import Lease
from davdisk.meta.store import leases
from davdisk.services import Services


def _take(svc: Services, holder: str, now: float, ran_before: float | None = None) -> bool:
    with svc.db.write() as conn:
        return leases.take(conn, "gc", holder, now=now, until=now + 10, ran_before=ran_before)


def test_one_holder_at_a_time_until_the_lease_expires(svc: Services) -> None:
    assert _take(svc, "a", now=100)  # no row yet: made, and a's
    assert not _take(svc, "b", now=105)  # a's until 110
    assert _take(svc, "a", now=105)  # a again: extended to 115
    assert not _take(svc, "b", now=112)
    assert _take(svc, "b", now=115)  # expired: b takes it over
    with svc.db.read() as conn:
        row = leases.get(conn, "gc")
    assert row == leases.LeaseRow("gc", "b", 125, None)


def test_renew_and_release_only_by_the_holder(svc: Services) -> None:
    assert _take(svc, "a", now=100)
    with svc.db.write() as conn:
        assert not leases.renew(conn, "gc", "b", until=200)
        assert not leases.release(conn, "gc", "b", ran_at=105)
        assert leases.renew(conn, "gc", "a", until=200)
    assert not _take(svc, "b", now=150)
    with svc.db.write() as conn:
        assert leases.release(conn, "gc", "a", ran_at=160)
        assert not leases.renew(conn, "gc", "a", until=300)  # released: nothing to renew
    assert _take(svc, "b", now=161)  # free at once, long before 200
    with svc.db.read() as conn:
        row = leases.get(conn, "gc")
    assert row is not None and (row.holder, row.last_run_at) == ("b", 160)


def test_a_job_is_taken_only_when_due(svc: Services) -> None:
    assert _take(svc, "a", now=100, ran_before=40)  # never ran: due
    with svc.db.write() as conn:
        leases.release(conn, "gc", "a", ran_at=101)
    assert not _take(svc, "b", now=130, ran_before=70)  # ran at 101, after 70: not due
    assert _take(svc, "b", now=170, ran_before=110)
    # A run that failed records no time: the job stays due for the next one.
    with svc.db.write() as conn:
        leases.release(conn, "gc", "b", ran_at=None)
    assert _take(svc, "a", now=171, ran_before=111)


def test_of_many_threads_taking_at_once_one_wins(svc: Services) -> None:
    """Through Lease.take, as the servers do: one write transaction each, the first take ever
    (which inserts the row) included."""
    won: list[str] = []
    start = threading.Barrier(6)

    def attempt(n: int) -> None:
        lease = Lease(svc.db, "race", f"holder-{n}", 60)
        start.wait()
        if lease.take():
            won.append(lease.holder)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1, won
    row = Lease(svc.db, "race", "x", 60).current()
    assert row is not None and row.holder == won[0]
