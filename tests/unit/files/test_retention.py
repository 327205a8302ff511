"""The retention rules (``files/retention.py``): Nextcloud's version schedule over synthetic
90-day histories (Hypothesis), each ``[versions] retention`` form, trash expiry and the order
of quota eviction."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from davdisk.files.retention import (
    DAY,
    INTERVALS,
    HistoryItem,
    Rule,
    VersionAge,
    expired,
    make_room,
    parse_rule,
    trash_expired,
)

NOW = 1_800_000_000.0
AUTO = parse_rule("auto")
RULES = [parse_rule(t) for t in ("auto", "7, auto", "auto, 20", "7, 20", "disabled")]

# At most this many versions survive "auto" from any 90-day history: in each interval, the
# kept versions whose interval it is lie at least its step apart, so an interval of length L
# and step s holds at most floor(L / s) + 1 of them. 6 + 6 + 60 + 24 + 30 + 9 = 135.
_EDGES = [0] + [ends for ends, _step in INTERVALS[:-1]] + [90 * DAY]
BOUND_90_DAYS = sum(
    math.floor((hi - lo) / step) + 1
    for lo, hi, (_ends, step) in zip(_EDGES[:-1], _EDGES[1:], INTERVALS, strict=True)
)


def _step(kept_at: float, now: float) -> int:
    """The step of the interval a kept version lies in: the first that has not ended by it."""
    for ends, step in INTERVALS:
        if ends is None or kept_at > now - ends:
            return step
    raise AssertionError("the last interval never ends")


@st.composite
def histories(draw: st.DrawFn, max_size: int = 250) -> list[VersionAge]:
    """Versions of one file over 90 days, made in bursts (seconds apart: an editor's autosave),
    sessions (minutes) and days apart, with some pinned and a few dated in the future."""
    gaps = draw(
        st.lists(
            st.one_of(st.integers(0, 12), st.integers(0, 900), st.floats(0, 2 * DAY), st.just(0)),
            max_size=max_size,
        )
    )
    t = NOW - draw(st.floats(0, 60))
    versions = []
    for i, gap in enumerate(gaps):
        t -= gap
        if t < NOW - 90 * DAY:
            break
        versions.append(VersionAge(i, t, pinned=draw(st.booleans()) and draw(st.booleans())))
    future = draw(st.lists(st.floats(0.001, 400 * DAY), max_size=3))
    versions += [VersionAge(1000 + i, NOW + f) for i, f in enumerate(future)]
    random.Random(draw(st.integers())).shuffle(versions)
    return versions


def _unpinned(versions: list[VersionAge]) -> list[VersionAge]:
    return [VersionAge(v.id, v.at) for v in versions]


@settings(max_examples=300, deadline=None)
@given(histories())
def test_auto_keeps_one_version_per_step_of_each_interval(versions: list[VersionAge]) -> None:
    """Nextcloud's getAutoExpireList restated: walking newest to oldest, a version is kept
    exactly when it lies at least one step (of the interval the last kept one is in) below the
    last kept one. Kept versions are so spaced, and each dropped one lies within a step of the
    kept one before it."""
    versions = _unpinned(versions)
    dropped = set(expired(versions, NOW, AUTO))
    past = sorted((v for v in versions if v.at <= NOW), key=lambda v: (v.at, v.id), reverse=True)
    kept = None
    for v in past:
        if kept is None:
            assert v.id not in dropped  # the newest is always kept
            kept = v
            continue
        step = _step(kept.at, NOW)
        if v.id in dropped:
            assert kept.at - v.at < step
        else:
            assert kept.at - v.at >= step
            kept = v
    assert len(past) - len(dropped) <= BOUND_90_DAYS


@settings(max_examples=200, deadline=None)
@given(histories(), st.sampled_from(RULES))
def test_what_any_rule_drops(versions: list[VersionAge], rule: Rule) -> None:
    """For every rule form: a subset of the ids, ascending, never a pinned or future version,
    independent of the input order, and idempotent (expiring what is left drops nothing)."""
    dropped = expired(versions, NOW, rule)
    by_id = {v.id: v for v in versions}
    assert dropped == sorted(set(dropped))
    assert set(dropped) <= set(by_id)
    assert not any(by_id[i].pinned or by_id[i].at > NOW for i in dropped)
    assert expired(list(reversed(versions)), NOW, rule) == dropped
    left = [v for v in versions if v.id not in set(dropped)]
    assert expired(left, NOW, rule) == []


@settings(max_examples=200, deadline=None)
@given(histories(), st.sampled_from(RULES))
def test_pinning_changes_nothing_for_the_other_versions(
    versions: list[VersionAge], rule: Rule
) -> None:
    """As with Nextcloud's labelled versions: a pinned one is only spared, so the unpinned ones
    dropped are the same as if nothing were pinned."""
    pinned = {v.id for v in versions if v.pinned}
    assert expired(versions, NOW, rule) == sorted(
        set(expired(_unpinned(versions), NOW, rule)) - pinned
    )


@settings(max_examples=200, deadline=None)
@given(histories(), st.integers(1, 60), st.integers(0, 60))
def test_day_limits_of_each_rule(versions: list[VersionAge], low: int, extra: int) -> None:
    high = low + extra
    unpinned_past = {v.id: v.at for v in versions if not v.pinned and v.at <= NOW}
    young = {i for i, at in unpinned_past.items() if at >= NOW - low * DAY}
    old = {i for i, at in unpinned_past.items() if at < NOW - high * DAY}
    # "D, auto": nothing younger than D days goes; "auto, D": everything older does.
    assert not young & set(expired(versions, NOW, parse_rule(f"{low}, auto")))
    assert old <= set(expired(versions, NOW, parse_rule(f"auto, {high}")))
    # "D1, D2": exactly what is older than D2 days, no thinning.
    assert set(expired(versions, NOW, parse_rule(f"{low}, {high}"))) == old
    assert expired(versions, NOW, parse_rule("disabled")) == []


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 24 * 60), st.floats(0, 60))
def test_regular_saves_over_90_days_stay_bounded(minutes: int, offset: float) -> None:
    versions = [
        VersionAge(i, NOW - offset - i * minutes * 60) for i in range(90 * DAY // (minutes * 60))
    ]
    kept = len(versions) - len(expired(versions, NOW, AUTO))
    assert kept <= BOUND_90_DAYS


def test_a_save_every_minute_for_90_days() -> None:
    """129 600 versions: every one of the first hour, then one an hour for a day, one a day
    for 30 days and one a week after: 120 kept, under the bound of 135."""
    versions = [VersionAge(i, NOW - 60 * (i + 1)) for i in range(90 * DAY // 60)]
    dropped = set(expired(versions, NOW, AUTO))
    kept = sorted((v.at for v in versions if v.id not in dropped), reverse=True)
    ages = [NOW - at for at in kept]
    assert BOUND_90_DAYS == 135
    assert len(kept) == 120
    assert sum(age <= 3600 for age in ages) == 60  # every minute of the first hour
    assert sum(3600 < age <= DAY for age in ages) == 23  # one an hour
    assert sum(DAY < age <= 30 * DAY for age in ages) == 29  # one a day
    assert sum(age > 30 * DAY for age in ages) == 8  # one a week: 37, 44... 86 days


def test_nextcloud_walk_by_hand() -> None:
    """Offsets in seconds before now. The newest (1 s) is kept; 2 s is within 2 s of it; 3 s
    is kept; 4 s dropped; 5 s and 8 s kept (step 2 while the last kept is under 10 s old);
    30 s kept (the last kept, 8 s, is still in the first interval); 35 s within 10 s of 30 s
    (now in the second interval); 100 s kept; 130 s within 60 s of 100 s (third interval)."""
    offsets = [1, 2, 3, 4, 5, 8, 30, 35, 100, 130]
    versions = [VersionAge(o, NOW - o) for o in offsets]
    assert expired(versions, NOW, AUTO) == [2, 4, 35, 130]


def test_equal_times_keep_the_highest_id() -> None:
    versions = [VersionAge(7, NOW - 100), VersionAge(3, NOW - 100), VersionAge(5, NOW - 100)]
    assert expired(versions, NOW, AUTO) == [3, 5]


def test_future_versions_are_never_dropped_nor_counted() -> None:
    """A clock set back: versions "from the future" stay, and the walk starts at the newest
    one that is not (it is kept; a future one would otherwise crowd it out)."""
    versions = [
        VersionAge(1, NOW + 1),
        VersionAge(2, NOW + 1.5),
        VersionAge(3, NOW + 400 * DAY),
        VersionAge(4, NOW - 0.5),
        VersionAge(5, NOW - 1),
    ]
    assert expired(versions, NOW, AUTO) == [5]
    assert expired(versions, NOW, parse_rule("auto, 1")) == [5]
    assert expired(versions, NOW + 401 * DAY, parse_rule("auto, 1")) == [1, 2, 4, 5]


def test_a_pinned_version_survives_every_rule_and_is_no_anchor() -> None:
    """2 s is pinned: kept, but 3 s is still measured from 1 s (and kept), as without the pin;
    a pinned version 100 days old survives "auto, 20" and "7, 20"."""
    versions = [
        VersionAge(1, NOW - 1),
        VersionAge(2, NOW - 2, pinned=True),
        VersionAge(3, NOW - 3),
        VersionAge(4, NOW - 4),
        VersionAge(5, NOW - 100 * DAY, pinned=True),
        VersionAge(6, NOW - 100 * DAY - 60),
    ]
    assert expired(versions, NOW, AUTO) == [4, 6]
    assert expired(versions, NOW, parse_rule("auto, 20")) == [4, 6]
    assert expired(versions, NOW, parse_rule("7, 20")) == [6]


def _hourly(days: int) -> list[VersionAge]:
    return [VersionAge(h, NOW - 3600 * (h + 1)) for h in range(days * 24)]


def test_each_rule_form_on_60_days_of_hourly_saves() -> None:
    versions = _hourly(60)
    age = {v.id: NOW - v.at for v in versions}

    def kept(text: str) -> list[float]:
        dropped = set(expired(versions, NOW, parse_rule(text)))
        return sorted(age[v.id] / DAY for v in versions if v.id not in dropped)

    auto = kept("auto")
    # one an hour for a day, one a day for 30 days, one a week for the rest (37... 58 days)
    assert len(auto) == 24 + 29 + 4
    # "10, auto": every hourly version of the last 10 days, thinned after
    keep10 = kept("10, auto")
    assert len([a for a in keep10 if a <= 10]) == 240
    assert len([a for a in keep10 if a > 10]) == 21 + 4  # 10.04... 30.04, then 37.04... 58.04
    # "auto, 20": auto, and nothing older than 20 days
    assert max(kept("auto, 20")) <= 20 and len(kept("auto, 20")) == 24 + 19
    # "10, 20": no thinning, nothing older than 20 days
    assert kept("10, 20") == [a / DAY for a in sorted(age.values()) if a <= 20 * DAY]
    assert len(kept("10, 20")) == 20 * 24
    assert len(kept("disabled")) == 60 * 24


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        expired([VersionAge(1, NOW - 5), VersionAge(1, NOW - 50)], NOW, AUTO)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("auto", Rule()),
        ("  Auto ", Rule()),
        ("auto,auto", Rule()),
        ("7, auto", Rule(keep_days=7)),
        ("auto ,30", Rule(max_days=30)),
        ("7,30", Rule(thin=False, keep_days=7, max_days=30)),
        ("30, 30", Rule(thin=False, keep_days=30, max_days=30)),
        ("disabled", Rule(thin=False, enabled=False)),
    ],
)
def test_parse_rule(text: str, rule: Rule) -> None:
    assert parse_rule(text) == rule


@pytest.mark.parametrize(
    "text",
    [
        *("", "7", "30, 7", "0, auto", "auto, 0", "auto, -1", "1.5, auto", "never"),
        *("auto, 3, 4", "disabled, 3", ",", "\u0663, auto", "7 days, auto"),
    ],
)
def test_parse_rule_refuses_other_values(text: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_rule(text)
    message = str(e.value)
    assert "\n" not in message
    for form in ('"auto"', '"D, auto"', '"auto, D"', '"D1, D2"', '"disabled"'):
        assert form in message


def test_trash_expired() -> None:
    items = [
        (1, NOW - 31 * DAY),
        (2, NOW - 30 * DAY),  # exactly 30 days: not yet
        (3, NOW - 29 * DAY),
        (4, NOW + DAY),
        (5, NOW - 400 * DAY),
    ]
    assert trash_expired(items, NOW, 30) == [1, 5]
    assert trash_expired(items, NOW, 1) == [1, 2, 3, 5]
    assert trash_expired(items, NOW, 0) == []
    with pytest.raises(ValueError):
        trash_expired(items, NOW, -1)


def _v(i: int, size: int, at: float, pinned: bool = False) -> HistoryItem:
    return HistoryItem("version", i, size, at, pinned)


def _t(i: int, size: int, at: float) -> HistoryItem:
    return HistoryItem("trash", i, size, at)


HISTORY = [
    _t(10, 100, NOW - 50 * DAY),  # the oldest item of all, but trash goes after versions
    _v(1, 100, NOW - 3 * DAY),
    _v(2, 100, NOW - 9 * DAY, pinned=True),
    _v(3, 100, NOW - 5 * DAY),
    _t(11, 100, NOW - 1 * DAY),
    _v(4, 100, NOW - 1 * DAY),
]


def _ids(items: list[HistoryItem] | None) -> list[tuple[str, int]] | None:
    return None if items is None else [(i.kind, i.id) for i in items]


def test_make_room_drops_versions_oldest_first_then_trash() -> None:
    # quota 1000: 600 history + 300 live; a write of 200 more does not fit.
    # Down to 50 % (500): one version, the oldest unpinned (3; 2 is pinned).
    room = make_room(HISTORY, quota=1000, live=300, need=200, share_percent=50)
    assert _ids(room) == [("version", 3)]
    # Down to 20 % (200): every unpinned version, oldest first, then the oldest trash item.
    room = make_room(HISTORY, quota=1000, live=300, need=200, share_percent=20)
    assert _ids(room) == [("version", 3), ("version", 1), ("version", 4), ("trash", 10)]
    # 0 %: everything but the pinned version.
    room = make_room(HISTORY, quota=1000, live=300, need=200, share_percent=0)
    assert _ids(room) == [
        *[("version", 3), ("version", 1), ("version", 4)],
        *[("trash", 10), ("trash", 11)],
    ]


def test_make_room_goes_below_the_share_when_the_write_needs_it() -> None:
    # 50 % would be 500, but live 300 + need 450 leave 250 for history: four items go.
    room = make_room(HISTORY, quota=1000, live=300, need=450, share_percent=50)
    assert _ids(room) == [("version", 3), ("version", 1), ("version", 4), ("trash", 10)]
    # 100 %: only what the write needs.
    room = make_room(HISTORY, quota=1000, live=300, need=250, share_percent=100)
    assert _ids(room) == [("version", 3), ("version", 1)]


def test_make_room_drops_nothing_when_it_fits_or_cannot_fit() -> None:
    assert make_room(HISTORY, quota=1000, live=300, need=100, share_percent=0) == []
    # Live bytes alone: 507, and the history stays.
    assert make_room(HISTORY, quota=1000, live=900, need=200, share_percent=50) is None
    # The pinned version leaves too little room even with all else gone: 507 too.
    assert make_room(HISTORY, quota=1000, live=300, need=650, share_percent=50) is None
    # ... but just enough: all but the pinned one goes.
    room = make_room(HISTORY, quota=1000, live=300, need=600, share_percent=50)
    assert room is not None and len(room) == 5 and all(not i.pinned for i in room)
    with pytest.raises(ValueError):
        make_room(HISTORY, quota=0, live=0, need=1, share_percent=50)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 500), st.floats(0, 90 * DAY), st.booleans()),
        max_size=40,
    ),
    st.integers(1, 5000),
    st.integers(0, 5000),
    st.integers(-500, 3000),
    st.integers(0, 100),
)
def test_make_room_properties(
    raw: list[tuple[bool, int, float, bool]], quota: int, live: int, need: int, share: int
) -> None:
    history = [
        HistoryItem("version", i, size, NOW - age, pinned)
        if is_version
        else HistoryItem("trash", i, size, NOW - age)
        for i, (is_version, size, age, pinned) in enumerate(raw)
    ]
    total = sum(i.size for i in history)
    room = make_room(history, quota=quota, live=live, need=need, share_percent=share)
    if live + need + total <= quota:
        assert room == []
        return
    pinned = sum(i.size for i in history if i.pinned)
    if live + need + pinned > quota:
        assert room is None
        return
    assert room is not None
    assert not any(i.pinned for i in room)
    left = total - sum(i.size for i in room)
    assert live + need + left <= quota
    # Unpinned versions oldest first, then trash oldest first: a prefix of that order.
    order = sorted(
        (i for i in history if not i.pinned), key=lambda i: (i.kind == "trash", i.at, i.id)
    )
    assert room == order[: len(room)]
    # Stops as soon as small enough: without its last item the history was too big still.
    limit = max(0, min(quota * share // 100, quota - live - need))
    assert room and left + room[-1].size > limit
