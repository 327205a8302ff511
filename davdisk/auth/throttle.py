"""Login throttling: failed logins counted per user name and per client address, with
exponential lockouts.

After ``free_failures`` failures on a key, each further failure locks that key for 1, 2, 4, ...
seconds, at most ``max_seconds``. While a user name or an address is locked, every login for it
is refused (:class:`LoginThrottled`, answered 429 with Retry-After) before any password is looked
at — no bcrypt runs, and the right password is refused too. Refused attempts are not counted,
so a client retrying during a lockout does not prolong it. A password verified by bcrypt resets
the user name's counter and the address's. Counters nobody touches for a day are forgotten.
Unknown user names are counted exactly like real ones, so lockouts do not reveal which exist.

Where the counters live, and what that costs:

- The **database** (table ``login_failures``) is the truth every process on one data dir shares.
  It is touched only on the slow path, around a bcrypt check — next to 250 ms of bcrypt, a few
  indexed statements are free: one read (:meth:`Throttle.check_shared`) refuses during a
  lockout without writing; then the attempt is *reserved* (:meth:`Throttle.reserve`): counted
  as a failure, in one write transaction, before bcrypt runs, and un-counted by
  :meth:`Throttle.success` if the password was right. Checking and counting are thus one atomic
  step across threads and processes, so a burst of concurrent guesses gets no more bcrypt checks
  than the same guesses one after another (``free_failures`` + 1: the last one starts the
  lockout). The price: while a right password that arrives after ``free_failures`` failures is
  being checked, its reservation locks the name for others, for the ~250 ms of the check.
- **Memory** holds this process's last view of each key (LRU, ``size`` keys per kind).
  :meth:`Throttle.check_local` consults only it, at no cost, before every login — including the
  fast paths that run no bcrypt: a credential this process verified recently (the credential
  cache) and an app password. So a cached right password does *not* get a locked-out name in.
  The trade-off: a fast-path login in process B is refused only once B has seen the lockout,
  i.e. after one slow-path attempt for that name or address reached B. Such a login carries the
  right password or a valid app password (unguessable: 256 random bits), so the lockout's
  purpose — stopping guesses — holds in every process: each guess is a cache miss, and every
  miss reads the database first.
- Fast-path logins never write, so they do not reset counters either. That is also safer: if
  every request of the real user's busy client reset the name's counter, guessers spread over
  many addresses would get ``free_failures`` fresh guesses after each of them. The counters are
  reset by the next bcrypt-verified login instead (at the latest when the cached credential
  expires, ``[auth] cache_seconds``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from davdisk.errors import DavdiskError
from davdisk.meta import store
from davdisk.meta.db import Database
from davdisk.meta.store import FailureCount

logger = logging.getLogger(__name__)

# environ key the login code sets for the audit log: "failed" or "throttled".
AUTH_EVENT = "davdisk.auth"
# Counters whose last failure is older than this are forgotten.
FORGET_AFTER = 24 * 3600.0
PRUNE_EVERY = 60.0
_MAX_KEY_VALUE = 100


class LoginThrottled(DavdiskError):
    """too many failed logins; try again in {retry_after} s"""

    http_status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after=retry_after)
        self.retry_after = retry_after


def client_ip(environ: Mapping[str, Any]) -> str:
    """The client's address as the transport layer established it ("" if unknown)."""
    return str(environ.get("davdisk.client_ip") or environ.get("REMOTE_ADDR") or "")


def _key(kind: str, value: str) -> str:
    # Attackers choose user names of any length: bound what a key costs in memory and database.
    if len(value.encode("utf-8")) > _MAX_KEY_VALUE:
        value = "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()
    return f"{kind}:{value}"


def _locked_until(counts: Mapping[str, FailureCount | None]) -> float:
    return max((c.locked_until for c in counts.values() if c is not None), default=0.0)


@dataclass(frozen=True)
class Attempt:
    """One login attempt: whose password is tried (a user name, or a public link) and from
    which address. Its failures count against both."""

    subject: str  # counter key: "user:<name>" or "link:<share id>"
    address: str  # "" when unknown (an in-process call): then only the subject counts
    shown: str  # how the log names the subject

    @classmethod
    def user(cls, user_name: str, address: str) -> Attempt:
        return cls(_key("user", user_name), address, repr(user_name))

    @classmethod
    def link(cls, share_id: int, address: str) -> Attempt:
        return cls(_key("link", str(share_id)), address, f"public link {share_id}")

    @property
    def keys(self) -> list[str]:
        return [self.subject, _key("ip", self.address)] if self.address else [self.subject]


class _Lru:
    """This process's view of some keys' counters, the least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, FailureCount] = OrderedDict()

    def get(self, key: str) -> FailureCount | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: str, count: FailureCount | None) -> None:
        if count is None:
            self._entries.pop(key, None)
            return
        self._entries[key] = count
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class Throttle:
    def __init__(
        self,
        db: Database,
        *,
        free_failures: int,
        max_seconds: float,
        size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.free_failures = free_failures
        self.max_seconds = max_seconds
        self.clock = clock  # wall clock: lockouts are shared with other processes
        # One LRU per kind, so a flood of addresses cannot push user names out (and vice versa).
        self._names = _Lru(size)
        self._addresses = _Lru(size)
        self._lock = threading.Lock()
        self._last_prune = 0.0

    def _memory(self, key: str) -> _Lru:
        return self._addresses if key.startswith("ip:") else self._names

    def lockout_seconds(self, failures: int) -> float:
        """How long the ``failures``-th failure in a row locks its key (0 for the free ones)."""
        over = failures - self.free_failures
        if over <= 0:
            return 0.0
        return float(min(self.max_seconds, 2 ** min(over - 1, 62)))

    # --- checks ------------------------------------------------------------------------------

    def _refuse_if_locked(
        self, counts: Mapping[str, FailureCount | None], now: float | None = None
    ) -> None:
        now = self.clock() if now is None else now
        until = _locked_until(counts)
        if until > now:
            raise LoginThrottled(max(1, math.ceil(until - now)))

    def check_local(self, attempt: Attempt) -> None:
        """Refuse if this process knows that the subject or the address is locked (no I/O)."""
        with self._lock:
            counts = {k: self._memory(k).get(k) for k in attempt.keys}
        self._refuse_if_locked(counts)

    def check_shared(self, attempt: Attempt) -> None:
        """Refuse if the subject or the address is locked according to the database (one
        indexed read); refresh this process's view of both on the way."""
        with self.db.read() as conn:
            found = store.login_failures_for(conn, attempt.keys)
        counts = {k: found.get(k) for k in attempt.keys}
        self._remember(counts)
        self._refuse_if_locked(counts)

    def reserve(self, attempt: Attempt) -> dict[str, FailureCount]:
        """Count the attempt as a failure before its password is checked, or refuse it if the
        subject or the address is locked: one write transaction, so concurrent attempts, in
        this process or another, each see the ones before. Without it, a burst of guesses all
        read "not locked" before the first of them failed, and every one was checked. A
        reservation that passes the free failures starts the lockout that refuses the next; it
        is undone by :meth:`success` if the password is right, and stands as the failure if
        not (then call :meth:`failed`). Returns the counts, for :meth:`failed`."""
        now = self.clock()
        with self.db.write() as conn:
            old = store.login_failures_for(conn, attempt.keys)
            current = {k: old.get(k) for k in attempt.keys}
            locked = _locked_until(current) > now
            counts = {} if locked else self._count(conn, attempt, old, now)
        self._remember(current if locked else counts)
        self._refuse_if_locked(current, now)
        return counts

    def failed(self, attempt: Attempt, counts: Mapping[str, FailureCount]) -> None:
        """A reserved attempt's password was wrong: it stays counted; log the lockout it
        started, if any."""
        self._log_lockout(attempt, counts, self.clock())

    # --- outcomes ----------------------------------------------------------------------------

    def failure(self, attempt: Attempt) -> None:
        """Count a failed login against the subject and the address; log a lockout if one
        starts."""
        now = self.clock()
        with self.db.write() as conn:
            old = store.login_failures_for(conn, attempt.keys)
            counts = self._count(conn, attempt, old, now)
        self._remember(counts)
        self._log_lockout(attempt, counts, now)

    def _count(
        self, conn: Any, attempt: Attempt, old: Mapping[str, FailureCount], now: float
    ) -> dict[str, FailureCount]:
        """Add one failure to each key of ``attempt`` (in the caller's write transaction)."""
        counts: dict[str, FailureCount] = {}
        for k in attempt.keys:
            prev = old.get(k)
            fresh = prev is None or prev.last_failure < now - FORGET_AFTER
            n = 1 if fresh or prev is None else prev.failures + 1
            lock = self.lockout_seconds(n)
            counts[k] = FailureCount(n, now + lock if lock else 0.0, now)
            store.save_login_failure(conn, k, counts[k])
        if now - self._last_prune > PRUNE_EVERY:
            self._last_prune = now
            store.prune_login_failures(conn, now - FORGET_AFTER, now)
        return counts

    def _remember(self, counts: Mapping[str, FailureCount | None]) -> None:
        with self._lock:
            for k, count in counts.items():
                self._memory(k).put(k, count)

    def _log_lockout(
        self, attempt: Attempt, counts: Mapping[str, FailureCount], now: float
    ) -> None:
        until = _locked_until(counts)
        if until > now:
            who = f"{attempt.shown} ({counts[attempt.subject].failures} failures)"
            if attempt.address:
                failures = counts[attempt.keys[1]].failures
                who += f", address {attempt.address} ({failures} failures)"
            logger.warning("login locked for %.0f s: %s", until - now, who)

    def success(self, attempt: Attempt) -> None:
        """Reset the subject's and the address's counters after a verified password. Writes
        only if there is something to reset (:meth:`check_shared` refreshed this process's
        view just before)."""
        with self._lock:
            dirty = [k for k in attempt.keys if self._memory(k).get(k) is not None]
            for k in dirty:
                self._memory(k).put(k, None)
        if dirty:
            with self.db.write() as conn:
                store.clear_login_failures(conn, dirty)

    def remembered(self) -> tuple[int, int]:
        """How many subject keys and address keys this process remembers."""
        with self._lock:
            return len(self._names), len(self._addresses)
