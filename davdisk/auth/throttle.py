"""Login throttling: failed logins counted per (client address, user name) and per client
address, with exponential lockouts. The guesser is throttled, not the user guessed at.

Two counters per attempt:

- the **pair** (address, subject), where the subject is a user name, a user's app passwords
  (``token:<name>``: a separate principal, so a device with a revoked app password does not lock
  out its owner's password) or a public link. After ``free_failures`` failures each further one
  locks the pair for 1, 2, 4, ... seconds, at most ``max_seconds``. While a pair is locked every
  login for it is refused (:class:`LoginThrottled`, answered 429 with Retry-After) before any
  password is looked at — the right one too, even one this process verified before: otherwise
  a locked guesser could test guesses against the credential cache at no cost.
- the **address** over every subject, with a looser limit (``address_free_failures``): it stops
  one address from spraying a few guesses at each of many names. While an address is locked,
  attempts from it that need a bcrypt check are refused without one, but still *counted*
  against their pair; a credential this process verified before (a logged-in client behind the
  same NAT) still gets in. Counting the refused guesses is what keeps that exemption from being
  an oracle: a guess from a locked address is still a guess against its pair, so a guesser
  learns from the cache no more often than its pair's limit allows.

There is no counter per user name alone: whoever knows a name could then lock its owner out
from everywhere (issue 12, item 8). The price is that guessers spread over many addresses get
``free_failures`` guesses per address and name before their lockouts start; passwords must
still hold against that (bcrypt, a minimum length).

Refused attempts are not counted against a locked pair, so a client retrying during a lockout
does not prolong it. A password verified by bcrypt resets its pair's counter, not the
address's: otherwise a sprayer with one account of its own could reset its address by logging
in to it now and then. Counters nobody touches for a day are forgotten. Unknown user names are
counted exactly like real ones, so lockouts do not reveal which exist.

Where the counters live, and what that costs:

- The **database** (table ``login_failures``) is the truth every process on one data dir shares.
  It is touched only on the slow path, around a bcrypt check — next to 250 ms of bcrypt, a few
  indexed statements are free: one read (:meth:`Throttle.check_shared`) refuses during a
  pair's lockout without writing; then the attempt is *reserved* (:meth:`Throttle.reserve`):
  counted as a failure, in one write transaction, before bcrypt runs, and un-counted by
  :meth:`Throttle.success` (one more write) if the password was right. Checking and counting
  are thus one atomic step across threads and processes, so a burst of concurrent guesses gets
  no more bcrypt checks than the same guesses one after another (``free_failures`` + 1: the
  last one starts the lockout). The price: while a right password that arrives after
  ``free_failures`` failures of its pair is being checked, its reservation locks the pair,
  for the ~250 ms of the check.
- **Memory** holds this process's last view of each key (LRU, ``size`` keys per kind).
  :meth:`Throttle.check_local` consults only it, at no cost, before a login's fast path: a
  credential this process verified recently (the credential cache). So a cached right password
  does *not* get a locked pair in. The trade-off: a fast-path login in process B is refused
  only once B has seen the pair's lockout, i.e. after one slow-path attempt for that pair
  reached B. Such a login carries the right password, so the lockout's purpose — stopping
  guesses — holds in every process: each guess is a cache miss, and every miss reads the
  database first. App passwords (256 random bits, unguessable) are not throttled when valid.
- Fast-path logins never write, so they do not reset counters either. The counters are reset by
  the next bcrypt-verified login of the pair instead (at the latest when the cached credential
  expires, ``[auth] cache_seconds``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from davdisk.errors import DavdiskError
from davdisk.meta import store
from davdisk.meta.db import Database
from davdisk.meta.store import FailureCount
from davdisk.request_context import context

logger = logging.getLogger(__name__)

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


def client_ip(environ: MutableMapping[str, Any]) -> str:
    """The client's address as the transport layer established it ("" if unknown)."""
    return str(context(environ).client_ip or environ.get("REMOTE_ADDR") or "")


def _key(kind: str, value: str) -> str:
    # Attackers choose user names of any length: bound what a key costs in memory and database.
    if len(value.encode("utf-8")) > _MAX_KEY_VALUE:
        value = "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()
    return f"{kind}:{value}"


def _is_address(key: str) -> bool:
    return key.startswith("ip:")


def _locked_until(counts: Mapping[str, FailureCount | None]) -> float:
    return max((c.locked_until for c in counts.values() if c is not None), default=0.0)


@dataclass(frozen=True)
class Attempt:
    """One login attempt: whose password is tried (a user name, a user's app passwords, or a
    public link) and from which address. Its failures count against the pair (address,
    subject) and against the address."""

    subject: str  # "user:<name>", "token:<name>" or "link:<share id>"
    address: str  # "" when unknown (an in-process call): then only the subject counts
    shown: str  # how the log names the subject

    @classmethod
    def user(cls, user_name: str, address: str) -> Attempt:
        return cls(_key("user", user_name), address, repr(user_name))

    @classmethod
    def app_password(cls, user_name: str, address: str) -> Attempt:
        return cls(_key("token", user_name), address, f"app password of {user_name!r}")

    @classmethod
    def link(cls, share_id: int, address: str) -> Attempt:
        return cls(_key("link", str(share_id)), address, f"public link {share_id}")

    @property
    def pair(self) -> str:
        """The counter of this subject from this address ("user:alice@10.0.0.1")."""
        if not self.address:
            return self.subject
        pair = f"{self.subject}@{self.address}"
        if len(pair.encode("utf-8")) > _MAX_KEY_VALUE:
            kind = self.subject.partition(":")[0]
            pair = f"{kind}@:sha256:" + hashlib.sha256(pair.encode("utf-8")).hexdigest()
        return pair

    @property
    def keys(self) -> list[str]:
        return [self.pair, _key("ip", self.address)] if self.address else [self.pair]


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
        address_free_failures: int | None = None,
        size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.free_failures = free_failures
        # Looser than a pair's: many users may share an address (NAT), and each mistypes.
        self.address_free_failures = (
            free_failures * 10 if address_free_failures is None else address_free_failures
        )
        self.max_seconds = max_seconds
        self.clock = clock  # wall clock: lockouts are shared with other processes
        # One LRU per kind, so a flood of addresses cannot push pairs out (and vice versa).
        self._names = _Lru(size)
        self._addresses = _Lru(size)
        self._lock = threading.Lock()
        self._last_prune = 0.0

    def _memory(self, key: str) -> _Lru:
        return self._addresses if _is_address(key) else self._names

    def lockout_seconds(self, failures: int, key: str = "") -> float:
        """How long the ``failures``-th failure in a row locks ``key`` (0 for the free ones)."""
        free = self.address_free_failures if _is_address(key) else self.free_failures
        over = failures - free
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
        """Refuse if this process knows that the attempt's pair is locked (no I/O). Enough for
        a credential this process verified before: a locked address alone does not refuse it."""
        with self._lock:
            count = self._names.get(attempt.pair)
        self._refuse_if_locked({attempt.pair: count})

    def check_shared(self, attempt: Attempt) -> None:
        """Refuse if the attempt's pair is locked according to the database (one indexed
        read); refresh this process's view of the pair and the address on the way. A locked
        address is refused by :meth:`reserve`, which counts the attempt against its pair."""
        with self.db.read() as conn:
            found = store.login_failures_for(conn, attempt.keys)
        counts = {k: found.get(k) for k in attempt.keys}
        self._remember(counts)
        self._refuse_if_locked({attempt.pair: counts[attempt.pair]})

    def reserve(self, attempt: Attempt) -> dict[str, FailureCount]:
        """Count the attempt as a failure before its password is checked, or refuse it if its
        pair or its address is locked: one write transaction, so concurrent attempts, in this
        process or another, each see the ones before. Without it, a burst of guesses all read
        "not locked" before the first of them failed, and every one was checked. A reservation
        that passes the free failures starts the lockout that refuses the next; it is undone by
        :meth:`success` if the password is right, and stands as the failure if not (then call
        :meth:`failed`). Returns the counts, for :meth:`failed`.

        An attempt refused because its address is locked is still counted against its pair
        (see the module's docstring: this is what makes the cache no oracle)."""
        now = self.clock()
        with self.db.write() as conn:
            old = store.login_failures_for(conn, attempt.keys)
            current = {k: old.get(k) for k in attempt.keys}
            pair_locked = _locked_until({attempt.pair: current[attempt.pair]}) > now
            address_locked = _locked_until(current) > now
            if pair_locked:
                counts = {}
            else:
                # A locked address is not counted further: its lockout would only grow from
                # the attempts it already refuses.
                keys = [attempt.pair] if address_locked else attempt.keys
                counts = self._count(conn, keys, old, now)
        self._remember({**current, **counts})
        if address_locked and counts:
            self._log_lockout(attempt, counts, now)
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
            counts = self._count(conn, attempt.keys, old, now)
        self._remember(counts)
        self._log_lockout(attempt, counts, now)

    def _count(
        self, conn: Any, keys: list[str], old: Mapping[str, FailureCount], now: float
    ) -> dict[str, FailureCount]:
        """Add one failure to each of ``keys`` (in the caller's write transaction)."""
        counts: dict[str, FailureCount] = {}
        for k in keys:
            prev = old.get(k)
            fresh = prev is None or prev.last_failure < now - FORGET_AFTER
            n = 1 if fresh or prev is None else prev.failures + 1
            lock = self.lockout_seconds(n, k)
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
            who = attempt.shown
            if attempt.address:
                who += f" from address {attempt.address}"
            pair = counts.get(attempt.pair)
            if pair is not None:
                who += f" ({pair.failures} failures)"
            address = counts.get(_key("ip", attempt.address)) if attempt.address else None
            if address is not None:
                who += f"; the address has {address.failures} failures over all names"
            logger.warning("login locked for %.0f s: %s", until - now, who)

    def success(self, attempt: Attempt) -> None:
        """A reserved attempt's password was right: reset the pair's counter, and take back
        the one failure the reservation added to the address — but not the address's earlier
        failures (see the module's docstring)."""
        address = _key("ip", attempt.address) if attempt.address else None
        with self.db.write() as conn:
            store.clear_login_failures(conn, [attempt.pair])
            undone = None
            if address is not None:
                prev = store.login_failures_for(conn, [address]).get(address)
                undone = self._uncount(address, prev) if prev is not None else None
                if undone is None:
                    store.clear_login_failures(conn, [address])
                else:
                    store.save_login_failure(conn, address, undone)
        self._remember({attempt.pair: None, **({address: undone} if address else {})})

    def _uncount(self, key: str, count: FailureCount) -> FailureCount | None:
        """``count`` less one failure; a lockout that failure started is lifted."""
        n = count.failures - 1
        if n <= 0:
            return None
        locked_until = count.locked_until if self.lockout_seconds(n, key) else 0.0
        return FailureCount(n, locked_until, count.last_failure)

    def remembered(self) -> tuple[int, int]:
        """How many pair keys and address keys this process remembers."""
        with self._lock:
            return len(self._names), len(self._addresses)
