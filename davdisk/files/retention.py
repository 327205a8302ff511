"""Retention rules: which old versions and trash items to drop. Pure functions, no I/O.

The callers (expiry after a new version, the periodic sweep, a write that needs room under the
quota) read the rows, ask here, and delete what they are told through the content owner.

Versions follow Nextcloud's ``files_versions`` (``Storage::getAutoExpireList``,
``Expiration``), so that people who know its schedule get the same one:

* ``auto`` walks the versions from newest to oldest and keeps one per step of the interval the
  last kept version lies in: one per 2 s for its first 10 s, per 10 s up to a minute, per
  minute up to an hour, per hour up to a day, per day up to 30 days, then one per week.
* ``"D, auto"`` keeps every version of the last D days and thins the older ones so;
  ``"auto, D"`` thins, and drops every version older than D days; ``"D1, D2"`` thins nothing
  and drops every version older than D2 days; ``"disabled"`` drops nothing by age.
  The grammar is :func:`davdisk.config.parse_rule` (re-exported here).

Beyond Nextcloud: a version dated in the future (a clock set back, servers whose clocks
disagree) is never dropped and does not take part in the walk, and quota eviction
(:func:`make_room`) never drops a pinned version (Nextcloud's does, oldest first).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from davdisk.config import Rule as Rule
from davdisk.config import parse_rule as parse_rule

DAY = 86400

# (the interval ends this many seconds before now, one version per this many seconds); the
# last interval never ends. Nextcloud's $max_versions_per_interval.
INTERVALS: tuple[tuple[int | None, int], ...] = (
    (10, 2),
    (60, 10),
    (3600, 60),
    (DAY, 3600),
    (30 * DAY, DAY),
    (None, 7 * DAY),
)


@dataclass(frozen=True)
class VersionAge:
    """One version of one file: its id, when it was made (unix time: when its content was
    replaced by a newer one) and whether the user pinned (labelled) it."""

    id: int
    at: float
    pinned: bool = False


def expired(versions: Sequence[VersionAge], now: float, rule: Rule) -> list[int]:
    """The ids of the versions of one file that ``rule`` drops at ``now``, ascending.

    Never a pinned version, never one dated after ``now``. The order of ``versions`` does not
    matter (ties in time are broken by id, the higher id counting as the newer). Expiring again
    what is left drops nothing more (at the same ``now``).

    Pinned versions take part in the walk exactly as Nextcloud's labelled ones do: the walk
    runs over all of them, and a pinned version it would drop is kept but does not become the
    version the next one is spaced from. So pinning or unpinning one version changes nothing
    for the others: the unpinned ones kept are the same as if no version were pinned. (The
    alternative, spacing over the unpinned ones only, makes pinning a version keep neighbours
    it would otherwise have replaced, and unpinning it later drop them again.)
    """
    if not rule.enabled:
        return []
    past = [v for v in _unique(versions) if v.at <= now]
    drop: set[int] = set()
    if rule.thin:
        if rule.keep_days is None:
            drop |= _thinned(past, now)
        else:
            # Nextcloud's getMinAgeAsTimestamp filter: the walk sees only the old enough ones,
            # its newest is kept as any walk's newest is.
            old_enough = now - rule.keep_days * DAY
            drop |= _thinned([v for v in past if v.at < old_enough], now)
    if rule.max_days is not None:
        too_old = now - rule.max_days * DAY
        drop |= {v.id for v in past if v.at < too_old}
    pinned = {v.id for v in past if v.pinned}
    return sorted(drop - pinned)


def _unique(versions: Sequence[VersionAge]) -> Sequence[VersionAge]:
    if len({v.id for v in versions}) != len(versions):
        raise ValueError("version ids must be unique")
    return versions


def _thinned(versions: Iterable[VersionAge], now: float) -> set[int]:
    """Nextcloud's getAutoExpireList: newest first, drop a version closer than the step to the
    last one kept; the step is that of the interval the last kept one lies in."""
    walk = sorted(versions, key=lambda v: (v.at, v.id), reverse=True)
    if not walk:
        return set()
    drop = set()
    interval = 0
    kept = walk[0].at  # the newest is always kept
    for v in walk[1:]:
        # Move on while the last kept version lies beyond the current interval's end (Nextcloud
        # compares the last kept one, not the version at hand, and so does this).
        while True:
            ends, step = INTERVALS[interval]
            if ends is None or kept > now - ends:
                break
            interval += 1
        if v.at > kept - step:
            drop.add(v.id)
        else:
            kept = v.at
    return drop


def trash_expired(items: Sequence[tuple[int, float]], now: float, retention_days: int) -> list[int]:
    """The ids of the trash items, ``(id, deleted_at)``, deleted more than ``retention_days``
    ago, ascending; ``retention_days`` 0 keeps them until the trash is emptied."""
    if retention_days < 0:
        raise ValueError("retention_days must be >= 0")
    if retention_days == 0:
        return []
    limit = now - retention_days * DAY
    return sorted(item_id for item_id, deleted_at in items if deleted_at < limit)


@dataclass(frozen=True)
class HistoryItem:
    """Something in a user's history that quota eviction may drop: a version or a trash item
    (a whole trashed tree counts as one, with the bytes of all its files)."""

    kind: Literal["version", "trash"]
    id: int
    size: int
    at: float  # a version: when it was made; a trash item: when it was deleted
    pinned: bool = False  # trash items are never pinned


def make_room(
    history: Sequence[HistoryItem], *, quota: int, live: int, need: int, share_percent: int
) -> list[HistoryItem] | None:
    """What to drop from a user's history so that a write of ``need`` more live bytes fits in
    ``quota``: ``[]`` if it fits already, ``None`` if it cannot fit even with every droppable
    item gone (answer 507 and drop nothing: history is not thrown away for a write that fails
    anyway), else the items to drop, in the order to drop them.

    ``live`` is the user's live bytes before the write; ``need`` what the write adds to them
    (an overwrite: new size - old size, and the replaced content is already in ``history`` as
    the version it becomes). Once eviction is needed, it goes down to ``share_percent`` of the
    quota (and at least to what the write needs), not just to what this write needs: the next
    writes then find room without evicting one version each. Order: unpinned versions oldest
    first, then trash items oldest first; pinned versions are never dropped. It stops as soon
    as the history is small enough.
    """
    if quota <= 0:
        raise ValueError("quota must be > 0 (an unlimited quota never needs room)")
    if not 0 <= share_percent <= 100:
        raise ValueError("share_percent must be between 0 and 100")
    total = sum(item.size for item in history)
    if live + need + total <= quota:
        return []
    keep_at_most = max(0, min(quota * share_percent // 100, quota - live - need))
    versions = sorted(
        (i for i in history if i.kind == "version" and not i.pinned), key=lambda i: (i.at, i.id)
    )
    trash = sorted(
        (i for i in history if i.kind == "trash" and not i.pinned), key=lambda i: (i.at, i.id)
    )
    drop = []
    for item in versions + trash:
        if total <= keep_at_most:
            break
        drop.append(item)
        total -= item.size
    if live + need + total > quota:
        return None  # the pinned versions (or the live bytes alone) leave no room
    return drop
