"""Benchmark: train the predictive model on a generated org and test it against the oracle.

    python -m bench.model --accounts 20000

Activities count for an account through CRM-visible links only (`bench.linking`). The model is
trained with the product's own time split (`scoring.training`); every figure is measured on its
holdout: the eligible rows (not disqualified, no open opportunity, account existing) of the
latest snapshots whose 90-day outcome has passed. ``oracle_auc`` is the generating process's exact
probability on those same rows; ``oracle_propensity_auc`` is the part of it that knows only each
account's hidden in-market rate (no bursts at all), for scale: most opportunities in a window come
from bursts that start after the snapshot, which only that hidden rate foretells. ``leak_auc``
reruns the whole pipeline after moving every opportunity to a random account and a random other
opportunity's dates: it must be ~0.5, or something leaks outcomes into features.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from bench.common import emit, peak_rss_mb, progress, timed
from bench.linking import linked_activities
from sandbox.generator import generate_org
from sandbox.org import Org
from scoring.config import (
    DEFAULT_DISQUALIFIERS,
    DEFAULT_FIT,
    DEFAULT_SIGNALS,
    ModelSettings,
    TierSettings,
)
from scoring.evaluation import holdout_auc
from scoring.explain import recent_counts
from scoring.features import Examples, History
from scoring.fit import disqualification
from scoring.metrics import auc
from scoring.model import PredictiveModel, RulesModel
from scoring.signals import SignalCatalog
from scoring.training import Training, train

SETTINGS = ModelSettings()
TIERS = TierSettings()
CATALOG = SignalCatalog.from_settings(DEFAULT_SIGNALS, SETTINGS)


def _train(org: Org, opportunities: pl.DataFrame) -> tuple[Training, History]:
    """The product's training run on the org, with the given opportunities as outcomes."""
    history = History.from_frames(CATALOG, org.accounts, linked_activities(org), opportunities)
    disqualified = disqualification(org.accounts, DEFAULT_DISQUALIFIERS).is_not_null().to_numpy()
    training = train(
        history, CATALOG, DEFAULT_FIT, SETTINGS, TIERS, disqualified, org.manifest.end_at
    )
    if training.candidate is None or training.holdout is None:
        raise SystemExit(f"no predictive model trained: {training.reason}")
    return training, history


def _oracle(org: Org, holdout: Examples, propensity: bool = False) -> np.ndarray:
    """The oracle's probabilities on the eligible held-out rows (evaluation only)."""
    rows = org.accounts["account_id"].to_numpy()
    parts = []
    for snap, eligible in zip(holdout.snapshots, holdout.eligible, strict=True):
        as_of = datetime.fromtimestamp(snap.as_of_s, UTC)
        p = _propensity(org) if propensity else org.truth.oracle_probability(as_of)
        parts.append(p[rows][eligible])
    return np.concatenate(parts)


def _propensity(org: Org, window_days: float = 90.0) -> np.ndarray:
    """P(opportunity in a window) from each account's hidden rates alone, ignoring its bursts."""
    truth = org.truth.accounts.sort("account_id")
    rate = truth["burst_rate"].to_numpy() * truth["mean_success"].to_numpy()
    hazard = truth["opp_hazard"].to_numpy()
    expected = rate * org.truth.process.delay_cdf_integral(window_days) + hazard * window_days
    return -np.expm1(-expected)


def _shuffled(org: Org, seed: int) -> pl.DataFrame:
    """Opportunities moved to random accounts, each with another opportunity's dates."""
    rng = np.random.default_rng(seed)
    opps = org.opportunities
    order = rng.permutation(opps.height)
    return opps.with_columns(
        account_id=pl.Series(rng.choice(org.accounts["account_id"].to_numpy(), opps.height)),
        opened_at=opps["opened_at"].gather(order),
        close_at=opps["close_at"].gather(order),
        is_closed=opps["is_closed"].gather(order),
    )


def _explain_error(model: PredictiveModel, holdout: Examples) -> float:
    """Largest |score - base - sum of points| over every held-out account."""
    worst = 0.0
    for snap in holdout.snapshots:
        parts = model.contributions(snap)
        gap = parts.rounded() - parts.base - parts.points.sum(axis=1, dtype=np.float64)
        worst = max(worst, float(np.abs(gap).max()))
    return worst


def _example(model: PredictiveModel, history: History, holdout: Examples) -> dict[str, Any]:
    """The explanation of the best-scored eligible account in the latest held-out snapshot."""
    snap, eligible = holdout.snapshots[0], holdout.eligible[0]
    scores = np.where(eligible, model.score(snap), -1)
    row = np.array([int(scores.argmax())])
    counts = recent_counts(
        history.activities, history.n_accounts, len(CATALOG.signals), snap.as_of_s
    )
    found = model.explain(snap, row, counts)[0]
    return {"score": found.score, "summary": found.summary(), "topic": found.topic}


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    progress(f"generating an org of {args.accounts:,} accounts (seed {args.seed})")
    org = generate_org(args.accounts, args.seed)
    with timed() as training_time:
        training, history = _train(org, org.opportunities)
    model, holdout = training.candidate, training.holdout
    assert model is not None and holdout is not None
    progress(f"trained in {training_time[0]:.1f} s: {training.reason}")
    labels = holdout.stacked_labels()
    oracle_auc = auc(labels, _oracle(org, holdout))
    metrics = model.metrics_
    tiers = metrics["tier_conversion"]
    progress("training again with shuffled outcomes (leak check)")
    leaky, _ = _train(org, _shuffled(org, args.seed))
    assert leaky.candidate is not None
    emit(
        {
            "accounts": args.accounts,
            "holdout_rows": metrics["rows"],
            "holdout_conversions": metrics["conversions"],
            "base_rate": round(metrics["base_rate"], 4),
            "auc": round(metrics["auc"], 4),
            "oracle_auc": round(oracle_auc, 4),
            "auc_ratio": round(metrics["auc"] / oracle_auc, 4),
            "oracle_propensity_auc": round(auc(labels, _oracle(org, holdout, True)), 4),
            "rules_auc": round(holdout_auc(RulesModel(CATALOG, DEFAULT_FIT), holdout), 4),
            "top_decile_lift": round(metrics["top_decile_lift"], 3),
            "tier_conversion": {k: round(v, 4) for k, v in tiers.items() if v is not None},
            "tier_share": {k: round(v, 4) for k, v in metrics["tier_share"].items()},
            "top_vs_nurture": round(tiers["ae"] / tiers["nurture"], 2),
            "ece": round(metrics["ece"], 4),
            "max_explain_error": round(_explain_error(model, holdout), 4),
            "leak_auc": round(leaky.candidate.metrics_["auc"], 4),
            "promoted": training.promoted,
            "model_version": model.version,
            "example": _example(model, history, holdout),
            "train_seconds": round(training_time[0], 2),
            "peak_rss_mb": peak_rss_mb(),
        }
    )


if __name__ == "__main__":
    main()
