"""Signals: decay halves a signal per half-life, and the O(1) running sums equal a full rescore."""

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
)

CATALOG = SignalCatalog.from_settings(DEFAULT_SIGNALS, ModelSettings())
TOPICS = ("security", "ai")
NOW = 1_800_000_000
PRICING = CATALOG.index("pricing_page")
WEBINAR = CATALOG.index("webinar")


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
    for name in ("signals", "memory", "topics"):
        assert np.array_equal(getattr(before, name), getattr(after, name)), name


def test_a_running_sum_cannot_be_read_before_its_last_update() -> None:
    with pytest.raises(ValueError, match="before its last update"):
        DecayedSum().added(NOW, 14).value_at(NOW - 1, 14)


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
