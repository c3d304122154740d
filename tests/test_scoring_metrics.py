"""Metrics: the figures a model is judged by behave as their textbook definitions."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.metrics import (
    auc,
    conversion_by_tier,
    expected_calibration_error,
    population_stability,
    top_decile_lift,
)


def test_a_perfectly_calibrated_forecast_has_no_calibration_error() -> None:
    probability = np.repeat([0.05, 0.25, 0.75], 400)
    labels = np.concatenate([np.arange(400) < k for k in (20, 100, 300)])
    assert expected_calibration_error(labels, probability) == pytest.approx(0.0)
    assert expected_calibration_error(labels, np.full(1200, 0.9)) == pytest.approx(0.9 - 420 / 1200)


def test_top_decile_lift_and_auc_reward_ranking_converters_first() -> None:
    labels = np.zeros(1000, dtype=bool)
    labels[:50] = True
    ranked = -np.arange(1000.0)
    assert top_decile_lift(labels, ranked) == pytest.approx(10.0)
    assert auc(labels, ranked) == pytest.approx(1.0)
    assert auc(labels, np.zeros(1000)) == pytest.approx(0.5)


def test_conversion_by_tier_reports_each_tier_and_empty_ones() -> None:
    tiers = np.array(["nurture", "nurture", "ae", "ae"])
    labels = np.array([False, True, True, True])
    rates = conversion_by_tier(labels, tiers, ("nurture", "sdr", "ae"))
    assert rates == {"nurture": 0.5, "sdr": None, "ae": 1.0}


def test_population_stability_is_zero_for_the_same_scores_and_grows_with_a_shift() -> None:
    scores = np.random.default_rng(0).normal(50, 10, 5000)
    assert population_stability(scores, scores) == pytest.approx(0.0)
    assert population_stability(scores, scores + 10) > 0.25
