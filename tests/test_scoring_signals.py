"""Signals: decay halves a signal per half-life, bursts are cut at long pauses, and the O(1)
running sums equal a full rescore."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.config import DEFAULT_SIGNALS, ModelSettings, SignalSpec
from scoring.signals import (
    DAY_SECONDS,
    Activities,
    DecayedSum,
    RunningSums,
    SignalCatalog,
    decayed_totals,
    decayed_values,
)

CATALOG = SignalCatalog.from_settings(DEFAULT_SIGNALS, ModelSettings())
TOPICS = ("security", "ai")
NOW = 1_800_000_000
PRICING = CATALOG.index("pricing_page")
WEBINAR = CATALOG.index("webinar")
BLOG = CATALOG.index("blog_visit")
BURST_FIELDS = ("burst_start_s", "burst_size")


def _activities(rows: list[tuple[int, int, int, int]]) -> Activities:
    """Activities from (account, signal, occurred_s, topic) rows."""
    account, signal, occurred, topic = (
        np.array(c, dtype=np.int64) for c in zip(*rows, strict=True)
    )
    return Activities(account, signal.astype(np.int16), occurred, topic.astype(np.int8), TOPICS)


def test_a_signal_is_worth_half_after_its_half_life() -> None:
    days = ModelSettings().default_half_life_days
    totals = decayed_totals(
        CATALOG, _activities([(0, PRICING, NOW - days * DAY_SECONDS, -1)]), 1, NOW
    )
    assert totals.signals[0, PRICING] == pytest.approx(0.5)
    running = DecayedSum().added(NOW - int(days * DAY_SECONDS), days)
    assert running.value_at(NOW, days) == pytest.approx(0.5)


def test_a_signal_can_decay_at_its_own_rate() -> None:
    fast = SignalSpec(
        activity="pricing_page", label="Visited pricing", intent="high", points=15, half_life_days=7
    )
    catalog = SignalCatalog.from_settings([fast], ModelSettings())
    totals = decayed_totals(catalog, _activities([(0, 0, NOW - 14 * DAY_SECONDS, -1)]), 1, NOW)
    assert totals.signals[0, 0] == pytest.approx(0.25)
    assert totals.memory[0, 0] == pytest.approx(2 ** (-14 / 180))


def test_signals_without_a_half_life_take_the_default() -> None:
    catalog = SignalCatalog.from_settings(DEFAULT_SIGNALS, ModelSettings(default_half_life_days=9))
    assert set(catalog.half_lives) == {9.0}
    assert catalog.topic_half_life_days == 9.0


def test_a_burst_last_week_outranks_the_same_burst_last_quarter() -> None:
    week = [(0, PRICING, NOW - d * DAY_SECONDS, -1) for d in (5, 6, 7)]
    quarter = [(1, PRICING, NOW - d * DAY_SECONDS, -1) for d in (85, 86, 87)]
    totals = decayed_totals(CATALOG, _activities(week + quarter), 2, NOW)
    assert totals.signals[0, PRICING] > 10 * totals.signals[1, PRICING]


def test_activities_at_or_after_the_moment_do_not_count() -> None:
    rows = [(0, PRICING, NOW - DAY_SECONDS, -1)]
    later = [(0, PRICING, NOW, -1), (0, WEBINAR, NOW + DAY_SECONDS, 0)]
    before = decayed_totals(CATALOG, _activities(rows), 1, NOW)
    after = decayed_totals(CATALOG, _activities(rows + later), 1, NOW)
    for name in ("signals", "memory", "topics", *BURST_FIELDS):
        assert np.array_equal(getattr(before, name), getattr(after, name)), name


def _days_ago(days: float) -> int:
    return NOW - int(days * DAY_SECONDS)


@pytest.mark.parametrize(
    ("rows", "started_days_ago", "size"),
    [
        pytest.param([], None, 0, id="no-activity"),
        pytest.param([(PRICING, 30), (PRICING, 25), (WEBINAR, 5), (PRICING, 3)], 5, 2, id="split"),
        pytest.param([(PRICING, 30), (WEBINAR, 21), (PRICING, 12), (PRICING, 3)], 30, 4, id="run"),
        pytest.param([(PRICING, 13), (PRICING, 3)], 13, 2, id="pause-of-exactly-the-gap"),
        pytest.param([(PRICING, 13.5), (PRICING, 3)], 3, 1, id="pause-just-over-the-gap"),
        pytest.param([(PRICING, 20), *((BLOG, d) for d in (8, 6, 4, 2))], 20, 1, id="passive"),
        pytest.param([(PRICING, 200), (PRICING, 195)], 200, 2, id="long-ago"),
    ],
)
def test_the_latest_burst_is_cut_at_the_last_pause_longer_than_the_gap(
    rows: list[tuple[int, float]], started_days_ago: float | None, size: int
) -> None:
    activities = [(0, signal, _days_ago(days), -1) for signal, days in rows]
    padding = [(1, BLOG, _days_ago(1), -1)]
    totals = decayed_totals(CATALOG, _activities(activities + padding), 2, NOW)
    assert totals.burst_size.tolist() == [size, 0]
    if started_days_ago is not None:
        assert totals.burst_start_s[0] == _days_ago(started_days_ago)
        assert totals.burst_age_days[0] == pytest.approx(started_days_ago)
    assert totals.burst_age_days[1] == np.inf


def test_a_running_sum_cannot_be_read_before_its_last_update() -> None:
    with pytest.raises(ValueError, match="before its last update"):
        DecayedSum().added(NOW, 14).value_at(NOW - 1, 14)


def test_many_running_sums_read_at_once_as_each_reads_alone() -> None:
    sums = [
        DecayedSum(),
        DecayedSum().added(NOW - 9 * DAY_SECONDS, 14).added(NOW - DAY_SECONDS, 14),
    ]
    sums.append(DecayedSum().added(NOW - 30 * DAY_SECONDS, 14))
    value = np.array([s.value for s in sums])
    at_s = np.array([s.at_s for s in sums])

    read = decayed_values(value, at_s, 14.0, NOW)

    assert read == pytest.approx([s.value_at(NOW, 14) for s in sums])
    with pytest.raises(ValueError, match="before its last update"):
        decayed_values(value, at_s, 14.0, NOW - 2 * DAY_SECONDS)


_ROWS = st.lists(
    st.tuples(
        st.integers(0, 4),
        st.integers(0, len(CATALOG.signals) - 1),
        st.integers(NOW - 400 * DAY_SECONDS, NOW - 1),
        st.integers(-1, len(TOPICS) - 1),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(rows=_ROWS, seed=st.integers(0, 2**16))
def test_incremental_updates_equal_the_batch_rescore(
    rows: list[tuple[int, int, int, int]], seed: int
) -> None:
    arrival = np.random.default_rng(seed).permutation(len(rows))
    running = [RunningSums.empty(CATALOG, len(TOPICS)) for _ in range(5)]
    for i in arrival:
        account, signal, at, topic = rows[i]
        running[account] = running[account].added(CATALOG, signal, at, topic)
    batch = decayed_totals(CATALOG, _activities([rows[i] for i in arrival]), 5, NOW)
    for account, sums in enumerate(running):
        one = sums.totals(CATALOG, NOW, TOPICS)
        for name in ("signals", "memory", "topics"):
            expected = getattr(batch, name)[account]
            assert getattr(one, name)[0] == pytest.approx(expected, rel=1e-4, abs=1e-6), name


def _bursts_equal(running: list[RunningSums], rows: list[tuple[int, int, int, int]]) -> None:
    """Each account's running burst equals the batch rescore's."""
    batch = decayed_totals(CATALOG, _activities(rows), len(running), NOW)
    for account, sums in enumerate(running):
        one = sums.totals(CATALOG, NOW, TOPICS)
        for name in BURST_FIELDS:
            assert getattr(one, name)[0] == getattr(batch, name)[account], (account, name)


@settings(max_examples=60, deadline=None)
@given(rows=_ROWS)
def test_incremental_bursts_equal_the_batch_rescore_when_activities_arrive_in_time_order(
    rows: list[tuple[int, int, int, int]],
) -> None:
    running = [RunningSums.empty(CATALOG, len(TOPICS)) for _ in range(5)]
    for account, signal, at, topic in sorted(rows, key=lambda row: row[2]):
        running[account] = running[account].added(CATALOG, signal, at, topic)
    _bursts_equal(running, rows)


@pytest.mark.parametrize(
    ("in_order", "late"),
    [
        pytest.param((30, 9, 5, 2), 7, id="inside-the-latest-burst"),
        pytest.param((30, 9, 5, 2), 17, id="a-gap-before-its-start"),
        pytest.param((30, 9, 5, 2), 25, id="with-an-earlier-burst"),
        pytest.param((9, 5, 2), 60, id="long-before"),
    ],
)
def test_a_late_activity_updates_the_running_burst_as_a_rescore_would(
    in_order: tuple[float, ...], late: float
) -> None:
    rows = [(0, PRICING, _days_ago(days), -1) for days in (*in_order, late)]
    running = RunningSums.empty(CATALOG, len(TOPICS))
    for _, signal, at, topic in rows:
        running = running.added(CATALOG, signal, at, topic)
    _bursts_equal([running], rows)


@settings(max_examples=30, deadline=None)
@given(rows=_ROWS, seed=st.integers(0, 2**16))
def test_ordered_and_unordered_activities_give_the_same_totals(
    rows: list[tuple[int, int, int, int]], seed: int
) -> None:
    ordered = sorted(rows)
    shuffled = [ordered[i] for i in np.random.default_rng(seed).permutation(len(rows))]
    one = decayed_totals(CATALOG, _activities(ordered), 5, NOW)
    other = decayed_totals(CATALOG, _activities(shuffled), 5, NOW)
    np.testing.assert_allclose(one.signals, other.signals, rtol=1e-5)
    np.testing.assert_allclose(one.topics, other.topics, rtol=1e-5)
    for name in BURST_FIELDS:
        np.testing.assert_array_equal(getattr(one, name), getattr(other, name))


def test_the_batch_rescore_is_exact_across_blocks_of_accounts() -> None:
    rng = np.random.default_rng(5)
    n, size = 50_000, 200_000
    account = rng.integers(0, n, size)
    signal = rng.integers(0, len(CATALOG.signals), size)
    occurred = NOW - rng.integers(1, 300 * DAY_SECONDS, size)
    topic = rng.integers(-1, len(TOPICS), size)
    activities = Activities(
        account, signal.astype(np.int16), occurred, topic.astype(np.int8), TOPICS
    )
    expected = np.zeros((n, len(CATALOG.signals)))
    np.add.at(expected, (account, signal), 2.0 ** (-(NOW - occurred) / DAY_SECONDS / 14))
    totals = decayed_totals(CATALOG, activities, n, NOW)
    np.testing.assert_allclose(totals.signals, expected, rtol=1e-5, atol=1e-7)
    order = np.argsort(account, kind="stable")
    ordered = decayed_totals(CATALOG, activities.gathered(order), n, NOW)
    np.testing.assert_allclose(ordered.signals, expected, rtol=1e-5, atol=1e-7)
    start, size = _bursts_one_by_one(activities, n)
    for found in (totals, ordered):
        np.testing.assert_array_equal(found.burst_start_s, start)
        np.testing.assert_array_equal(found.burst_size, size)


def _bursts_one_by_one(activities: Activities, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Latest bursts the straightforward way: walk each account's intent activities in time."""
    start, size = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int32)
    last = np.zeros(n, dtype=np.int64)
    gap_s = ModelSettings().burst_gap_days * DAY_SECONDS
    intent = CATALOG.forms_bursts[activities.signal]
    rows = zip(activities.account[intent], activities.occurred_s[intent], strict=True)
    for account, at in sorted(rows):
        if size[account] and at - last[account] <= gap_s:
            size[account] += 1
        else:
            start[account], size[account] = at, 1
        last[account] = at
    return start, size
