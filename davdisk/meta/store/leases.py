"""Leases of background jobs: which server process runs a job (gc, the expiry jobs) until when.

One row per job in ``leases``. A process *takes* a job's lease when nobody holds it (no row yet,
or the holder's lease has expired, as a crashed holder's does) and the job is due; it *renews* it
while the job runs and *releases* it when done, recording when it ran. Of several processes on
one database, exactly one wins each take: every function here is one statement whose WHERE
clause holds the whole condition, run in the caller's write transaction. On PostgreSQL a second,
concurrent UPDATE of the row waits for the first to commit and then tests its WHERE against the
row the first wrote, so it matches nothing; on SQLite writers are serialised anyway. The row is
created by the first take ever: two processes inserting it at once make the second fail with a
unique violation, which the caller takes as "not mine" (see :func:`take`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import Connection, Table, insert, or_, select, true, update

from davdisk.meta.models import Lease

leases = cast(Table, Lease.__table__)

FREE = 0.0  # expires_at of a released lease: expired for anyone


@dataclass(frozen=True, slots=True)
class LeaseRow:
    job: str
    holder: str  # who holds it, or last held it once released
    expires_at: float
    last_run_at: float | None


def get(conn: Connection, job: str) -> LeaseRow | None:
    row = conn.execute(select(leases).where(leases.c.job == job)).first()
    if row is None:
        return None
    return LeaseRow(row.job, row.holder, row.expires_at, row.last_run_at)


def take(
    conn: Connection,
    job: str,
    holder: str,
    *,
    now: float,
    until: float,
    ran_before: float | None = None,
) -> bool:
    """Make ``holder`` the holder of ``job`` until ``until`` if the lease is free or expired at
    ``now`` (or already ``holder``'s), and, with ``ran_before``, only if the job has not run
    since then (it is due). Whether it did.

    When the job has no row yet, this inserts it: a concurrent first take elsewhere makes the
    insert fail with an ``IntegrityError`` (and the transaction with it); the caller takes that
    as a lost race.
    """
    due = (
        or_(leases.c.last_run_at.is_(None), leases.c.last_run_at <= ran_before)
        if ran_before is not None
        else true()
    )
    taken = conn.execute(
        update(leases)
        .where(
            leases.c.job == job,
            or_(leases.c.expires_at <= now, leases.c.holder == holder),
            due,
        )
        .values(holder=holder, expires_at=until)
    )
    if taken.rowcount:
        return True
    if conn.execute(select(leases.c.job).where(leases.c.job == job)).first() is not None:
        return False  # held by another, or not due
    conn.execute(insert(leases).values(job=job, holder=holder, expires_at=until, last_run_at=None))
    return True


def renew(conn: Connection, job: str, holder: str, *, until: float) -> bool:
    """Extend ``holder``'s lease of ``job``; False if it is not theirs any more (it expired
    and another process took it)."""
    renewed = conn.execute(
        update(leases)
        .where(leases.c.job == job, leases.c.holder == holder, leases.c.expires_at > FREE)
        .values(expires_at=until)
    )
    return bool(renewed.rowcount)


def release(conn: Connection, job: str, holder: str, *, ran_at: float | None) -> bool:
    """Free ``holder``'s lease of ``job``, recording that the job ran at ``ran_at`` (None: it
    did not complete, so it stays due). The holder's name stays, as the last one. False if the
    lease was not theirs any more."""
    values: dict[str, object] = {"expires_at": FREE}
    if ran_at is not None:
        values["last_run_at"] = ran_at
    released = conn.execute(
        update(leases).where(leases.c.job == job, leases.c.holder == holder).values(**values)
    )
    return bool(released.rowcount)
