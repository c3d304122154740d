"""How good a model is on held-out history: ranking, lift, calibration, tiers and drift (D6)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "auc",
    "conversion_by_tier",
    "expected_calibration_error",
    "population_stability",
    "top_decile_lift",
]


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Chance that a converting account outranks a non-converting one (0.5: no better than luck)."""
    from sklearn.metrics import roc_auc_score  # a second to import: only when measuring

    return float(roc_auc_score(labels, scores))


def top_decile_lift(labels: np.ndarray, scores: np.ndarray) -> float:
    """Conversion in the best-scored tenth of accounts over the overall conversion."""
    top = np.argsort(-scores, kind="stable")[: max(1, len(scores) // 10)]
    return float(labels[top].mean() / labels.mean())


def conversion_by_tier(
    labels: np.ndarray, tiers: np.ndarray, keys: Sequence[str]
) -> dict[str, float | None]:
    """Share of accounts in each tier that converted (None for an empty tier)."""
    return {
        key: float(labels[tiers == key].mean()) if (tiers == key).any() else None for key in keys
    }


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = 10
) -> float:
    """Average gap between forecast and observed conversion over equal-width probability bins,
    weighted by how many accounts fall in each."""
    which = np.minimum((probabilities * bins).astype(np.int64), bins - 1)
    forecast = np.bincount(which, weights=probabilities, minlength=bins)
    observed = np.bincount(which, weights=labels.astype(np.float64), minlength=bins)
    return float(np.abs(forecast - observed).sum() / len(labels))


def population_stability(before: np.ndarray, after: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `after` against `before` over `before`'s deciles
    (under 0.1: stable; over 0.25: a large shift)."""
    edges = np.unique(np.quantile(before, np.linspace(0, 1, bins + 1)[1:-1]))
    share_before = _shares(np.searchsorted(edges, before, side="right"), len(edges) + 1)
    share_after = _shares(np.searchsorted(edges, after, side="right"), len(edges) + 1)
    return float(np.sum((share_after - share_before) * np.log(share_after / share_before)))


def _shares(bucket: np.ndarray, n: int) -> np.ndarray:
    """Share per bucket, floored so an empty bucket does not divide by zero."""
    return np.maximum(np.bincount(bucket, minlength=n) / len(bucket), 1e-4)
