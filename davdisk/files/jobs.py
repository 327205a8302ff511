"""Background jobs, each run by exactly one process of all the servers on one database: gc
every ``[jobs] gc_interval`` seconds, and the expiry of old versions and trash items every
``[jobs] expiry_interval`` seconds.

Each job runs under its own lease (``meta/store/leases.py``): a process runs it only if it takes
the lease, which it gets only while no other process holds it and the job has not run for an
interval.
While the job runs, a second thread renews the lease every third of ``[jobs] lease_seconds``;
afterwards it is released with the time the run ended. A holder that crashes stops renewing, so
its lease expires and another process takes the job over. ``davdisk gc`` takes the same lease,
so a manual gc never runs beside a server's.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError as SAIntegrityError

from davdisk.files.admin import Admin, GcReport
from davdisk.files.history import History
from davdisk.meta.db import Database
from davdisk.meta.store import leases

logger = logging.getLogger("davdisk.jobs")

GC = "gc"
EXPIRY = "expiry"  # versions and trash past [versions] retention / [trash] retention_days
# Leftovers younger than this may be an upload a server is finishing (as for `davdisk gc`).
GC_MIN_AGE = 900.0


def holder_name() -> str:
    """Who holds a lease: this host and process, and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    """``holder``'s lease of one job, held for ``seconds`` at a time."""

    def __init__(self, db: Database, job: str, holder: str, seconds: float) -> None:
        self.db = db
        self.job = job
        self.holder = holder
        self.seconds = seconds

    def take(self, *, ran_before: float | None = None) -> bool:
        """Take the lease if it is free (and the job has not run since ``ran_before``)."""
        now = time.time()
        try:
            with self.db.write() as conn:
                return leases.take(
                    conn,
                    self.job,
                    self.holder,
                    now=now,
                    until=now + self.seconds,
                    ran_before=ran_before,
                )
        except SAIntegrityError:
            return False  # another process created the job's row at the same moment: theirs

    def current(self) -> leases.LeaseRow | None:
        with self.db.read() as conn:
            return leases.get(conn, self.job)

    @contextmanager
    def kept(self) -> Iterator[None]:
        """Renew the lease while the body runs; release it afterwards, recording the time the
        body ended if it did not fail."""
        done = threading.Event()
        renewer = threading.Thread(
            target=self._renew_until, args=(done,), name=f"davdisk-lease-{self.job}", daemon=True
        )
        renewer.start()
        ran_at = None
        try:
            yield
            ran_at = time.time()
        finally:
            done.set()
            renewer.join()
            with self.db.write() as conn:
                if not leases.release(conn, self.job, self.holder, ran_at=ran_at):
                    logger.warning("%s: the lease had expired and was taken over", self.job)

    def _renew_until(self, done: threading.Event) -> None:
        while not done.wait(self.seconds / 3):
            try:
                with self.db.write() as conn:
                    renewed = leases.renew(
                        conn, self.job, self.holder, until=time.time() + self.seconds
                    )
            except Exception:
                logger.exception("%s: could not renew the lease", self.job)
                continue
            if not renewed:
                logger.warning("%s: the lease expired and another process took it", self.job)
                return


def gc_under_lease(
    admin: Admin, lease: Lease, min_age: float, *, deep: bool = False
) -> GcReport | None:
    """Run gc if ``lease`` can be taken now (whenever the job last ran); None if it is held."""
    if not lease.take():
        return None
    with lease.kept():
        return admin.gc(min_age, deep=deep)


@dataclass(frozen=True)
class Job:
    """A background job: its name (which names its lease and starts its log lines), seconds
    between runs (0 = never), and the work, which returns what to log about a run."""

    name: str
    interval: float
    work: Callable[[], str]


def gc_job(admin: Admin, interval: float) -> Job:
    """Remove leftovers (blobs no row names, abandoned uploads) older than ``GC_MIN_AGE``."""

    def work() -> str:
        report = admin.gc(GC_MIN_AGE)
        return f"removed {report.blobs} blobs, {report.bytes} bytes"

    return Job(GC, interval, work)


def expiry_job(history: History, interval: float) -> Job:
    """Apply the retention rules to every user's versions and trash. Apart from gc: its own
    lease and interval (a slow gc over a big bucket holds up no expiry, and the reverse), and
    ``davdisk gc`` expires nothing."""

    def work() -> str:
        versions, items = history.expire()
        return f"dropped {versions} versions, purged {items} trash items"

    return Job(EXPIRY, interval, work)


class JobRunner:
    """The server's threads, one per job, that each run their job when due, if they win its
    lease."""

    def __init__(self, db: Database, jobs: list[Job], lease_seconds: float) -> None:
        holder = holder_name()
        # [jobs] ..._interval = 0: this server never runs that job
        self._loops = [
            _JobLoop(job, Lease(db, job.name, holder, lease_seconds))
            for job in jobs
            if job.interval > 0
        ]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for loop in self._loops:
            name = f"davdisk-job-{loop.job.name}"
            thread = threading.Thread(target=loop.run, args=(self._stop,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Start no job any more (one that runs goes on: see :meth:`join`)."""
        self._stop.set()

    def join(self, timeout: float) -> None:
        """Wait at most ``timeout`` seconds in all for the running jobs, if any, after
        :meth:`stop`."""
        deadline = time.monotonic() + timeout
        for thread, loop in zip(self._threads, self._loops, strict=True):
            thread.join(max(deadline - time.monotonic(), 0))
            if thread.is_alive():
                logger.warning("%s still running at shutdown; its lease will expire", loop.job.name)


class _JobLoop:
    """One job's schedule in one server: try when due, run if the lease is ours."""

    def __init__(self, job: Job, lease: Lease) -> None:
        self.job = job
        self._lease = lease
        self._interval = job.interval

    def run(self, stop: threading.Event) -> None:
        # The first run comes an interval after the start (not at it): a restart is no reason
        # to collect, and servers restarted together do not all try at once.
        delay = self._interval + self._jitter()
        while not stop.wait(delay):
            try:
                delay = self._tick()
            except Exception:
                logger.exception("%s job failed", self.job.name)
                delay = self._interval
            delay += self._jitter()

    def _jitter(self) -> float:
        return random.uniform(0, min(self._interval / 20, 5.0))

    def _tick(self) -> float:
        """Run the job if due and the lease is ours; seconds until it is worth trying again."""
        lease = self._lease
        if lease.take(ran_before=time.time() - self._interval):
            started = time.monotonic()
            with lease.kept():
                done = self.job.work()
            logger.info(
                "%s: %s in %.2f s (lease %s)",
                self.job.name,
                done,
                time.monotonic() - started,
                lease.holder,
            )
        row = lease.current()
        now = time.time()
        if row is None:
            return self._interval
        due = (row.last_run_at or now) + self._interval
        if row.holder != lease.holder and row.expires_at > now:
            due = max(due, row.expires_at)  # running elsewhere: until it ends or expires
        return max(due - now, 0.01)
