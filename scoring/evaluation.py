"""A model against held-out history: its metrics, its changelog, and whether to promote it (D6).

Promotion compares both models on the same held-out snapshots, so a candidate never wins on an
easier period than the one the current model was judged on. Ranking better is not enough: a
candidate whose forecasts are off, or whose tiers do not convert in rising order, would send
Sales the wrong accounts, so it is kept aside and the changelog says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any, Protocol, runtime_checkable

import numpy as np

from scoring.config import ModelSettings, TierSettings
from scoring.features import Examples, Snapshot
from scoring.metrics import (
    auc,
    conversion_by_tier,
    expected_calibration_error,
    population_stability,
    top_decile_lift,
)
from scoring.scorecard import Contributions
from scoring.tiers import TIERS, assign_tiers, tier_label

__all__ = [
    "Forecaster",
    "ScoringModel",
    "changelog",
    "changelog_changes",
    "evaluate",
    "holdout_auc",
    "promotion_refusals",
    "reasons_counted",
]


class ScoringModel(Protocol):
    """What scoring, explaining and promotion need from either model."""

    @property
    def version(self) -> str: ...

    def contributions(self, snapshot: Snapshot) -> Contributions: ...

    def reference_points(self) -> dict[str, float]: ...


@runtime_checkable
class Forecaster(Protocol):
    """A model that also forecasts the chance of an opportunity."""

    def predict_proba(self, snapshot: Snapshot) -> np.ndarray: ...


def _stacked(model: ScoringModel, holdout: Examples) -> tuple[np.ndarray, np.ndarray]:
    """Unbounded and whole-number scores of the eligible held-out rows."""
    parts = [
        (model.contributions(s), e)
        for s, e in zip(holdout.snapshots, holdout.eligible, strict=True)
    ]
    raw = np.concatenate([c.raw[e] for c, e in parts])
    return raw, np.concatenate([c.rounded()[e] for c, e in parts])


def holdout_auc(model: ScoringModel, holdout: Examples) -> float:
    """The model's AUC on the eligible held-out rows."""
    return auc(holdout.stacked_labels(), _stacked(model, holdout)[0])


def evaluate(
    model: ScoringModel,
    holdout: Examples,
    tiers: TierSettings,
    previous: ScoringModel | None = None,
) -> dict[str, Any]:
    """AUC, top-decile lift, conversion, rows and share per tier, calibration error (forecasters)
    and drift against `previous` (population stability of scores, share of accounts changing
    tier)."""
    labels = holdout.stacked_labels()
    raw, scores = _stacked(model, holdout)
    tier = assign_tiers(scores, np.zeros(len(scores), dtype=bool), tiers)
    metrics: dict[str, Any] = {
        "rows": len(labels),
        "conversions": int(labels.sum()),
        "base_rate": float(labels.mean()),
        "auc": auc(labels, raw),
        "top_decile_lift": top_decile_lift(labels, raw),
        "tier_conversion": conversion_by_tier(labels, tier, TIERS),
        "tier_rows": {key: int((tier == key).sum()) for key in TIERS},
        "tier_share": {key: float((tier == key).mean()) for key in TIERS},
    }
    if isinstance(model, Forecaster):
        probability = np.concatenate(
            [
                model.predict_proba(s)[e]
                for s, e in zip(holdout.snapshots, holdout.eligible, strict=True)
            ]
        )
        metrics["ece"] = expected_calibration_error(labels, probability)
    if previous is not None:
        metrics |= _drift(previous, holdout, labels, scores, tiers)
    return metrics


def _drift(
    previous: ScoringModel,
    holdout: Examples,
    labels: np.ndarray,
    scores: np.ndarray,
    tiers: TierSettings,
) -> dict[str, Any]:
    """The previous model on the same rows: its AUC, the scores' shift and the tier changes."""
    before_raw, before = _stacked(previous, holdout)
    unflagged = np.zeros(len(before), dtype=bool)
    moved = assign_tiers(before, unflagged, tiers) != assign_tiers(scores, unflagged, tiers)
    return {
        "previous_version": previous.version,
        "previous_auc": auc(labels, before_raw),
        "drift_psi": population_stability(before.astype(float), scores.astype(float)),
        "tier_changes": float(moved.mean()),
    }


def changelog(
    previous: ScoringModel | None, current: ScoringModel, refusals: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """Plain-language changes of points against the previous model ("Visited pricing: +8 -> +12"),
    biggest first; points are those of one fresh occurrence, one match or one level. With
    `refusals` (from `promotion_refusals`), the model was kept aside and the lines say why."""
    kept_aside = tuple(f"Kept aside: {reason}." for reason in refusals)
    if previous is None:
        return (f"{current.version}: the first model; no earlier points to compare.", *kept_aside)
    before, after = previous.reference_points(), current.reference_points()
    lines = [
        (abs(after.get(label, 0.0) - before.get(label, 0.0)), _change(label, before, after))
        for label in sorted(set(before) | set(after))
    ]
    changed = [line for size, line in sorted(lines, key=lambda x: -x[0]) if line]
    if refusals:
        header = (
            f"{current.version} kept aside, {previous.version} still scores: "
            f"the points of {reasons_counted(len(changed))} would have changed."
        )
        return (header, *kept_aside, *changed)
    header = (
        f"{current.version} replaces {previous.version}: "
        f"the points of {reasons_counted(len(changed))} changed."
    )
    return (header, *changed)


def _change(label: str, before: dict[str, float], after: dict[str, float]) -> str:
    """One changelog line, or "" when the whole points did not change."""
    old, new = _points(before.get(label, 0.0)), _points(after.get(label, 0.0))
    if old == new:
        return ""
    if label not in before:
        return f"{label}: new, {new}"
    if label not in after:
        return f"{label}: removed (was {old})"
    return f"{label}: {old} -> {new}"


def _points(value: float) -> str:
    """Whole points with their sign."""
    return f"{round(value):+d}"


def changelog_changes(lines: Sequence[str], refusals: Sequence[str]) -> tuple[str, ...]:
    """The changes of points of a `changelog` made with ``refusals``: its lines after the
    header and the refusals."""
    return tuple(lines[1 + len(refusals) :])


def reasons_counted(count: int) -> str:
    """ "1 reason", "2 reasons"."""
    return f"{count:,} reason" if count == 1 else f"{count:,} reasons"


def promotion_refusals(
    metrics: Mapping[str, Any], settings: ModelSettings, tiers: TierSettings
) -> tuple[str, ...]:
    """Why a model measured by `evaluate` may not replace the one it was measured against, in
    words Sales can read (empty: it may): it must rank the holdout better, its calibration error
    must be at most [scoring] max_promotion_ece, and its tiers must convert in rising order."""
    found = (
        _ranks_no_better(metrics),
        _miscalibrated(metrics, settings),
        _tiers_out_of_order(metrics, settings, tiers),
    )
    return tuple(reason for reason in found if reason)


def _ranks_no_better(metrics: Mapping[str, Any]) -> str:
    """A refusal when the previous model ranked the same rows at least as well, else ""."""
    if "previous_auc" not in metrics or metrics["auc"] > metrics["previous_auc"]:
        return ""
    return (
        f"it ranks the held-out accounts no better than {metrics['previous_version']} "
        f"(AUC {metrics['auc']:.3f} against {metrics['previous_auc']:.3f})"
    )


def _miscalibrated(metrics: Mapping[str, Any], settings: ModelSettings) -> str:
    """A refusal when the forecasts miss observed conversion by more than the bound, else ""."""
    ece = metrics.get("ece")
    if ece is None or ece <= settings.max_promotion_ece:
        return ""
    return (
        f"its forecasts miss held-out conversion by {100 * ece:.1f} percentage points on average "
        f"(calibration error {ece:.3f}, above [scoring] max_promotion_ece = "
        f"{settings.max_promotion_ece:g})"
    )


def _tiers_out_of_order(
    metrics: Mapping[str, Any], settings: ModelSettings, tiers: TierSettings
) -> str:
    """A refusal when the tiers holding at least [scoring] min_tier_rows held-out rows do not
    convert in strictly rising order, else "" (a smaller tier's rate is too noisy to judge)."""
    rows, conversion = metrics["tier_rows"], metrics["tier_conversion"]
    judged = [key for key in TIERS if rows[key] >= settings.min_tier_rows]
    if all(conversion[low] < conversion[high] for low, high in pairwise(judged)):
        return ""
    shown = ", ".join(
        f"{tier_label(key, tiers)} {conversion[key]:.1%} of {rows[key]:,}" for key in judged
    )
    return f"its tiers do not convert in rising order on the holdout ({shown})"
