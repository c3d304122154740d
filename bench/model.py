"""Benchmark: train the predictive model on a generated org and test it against the oracle.

    python -m bench.model --preset realistic|easy [--world NAME=VALUE ...] [--seed S] [--accounts N]

Without ``--preset`` it runs every preset (``--world`` overrides apply to each) and prints
``{"presets": {name: figures}}``; with one, that preset's figures (``sandbox.world`` documents the
parameters; ``world`` in the output lists them all).

Activities count for an account through CRM-visible links only (`bench.linking`). The model is
trained with the product's own time split (`scoring.training`); every figure is measured on its
holdout: the eligible rows (not disqualified, no open opportunity, account existing) of the
latest snapshots whose 90-day outcome has passed. ``oracle_auc`` is the generating process's exact
probability on those same rows; ``oracle_propensity_auc`` is the part of it that knows only each
account's hidden in-market rate (no bursts at all), for scale: most opportunities in a window come
from bursts that start after the snapshot, which only that hidden rate foretells. ``leak_auc``
reruns the whole pipeline after moving every opportunity to a random account and a random other
opportunity's dates: it must be ~0.5, or something leaks outcomes into features. ``peer_auc``
is a gradient-boosting model (``scoring.peer``) trained on the same training snapshots, tuned on
training accounts kept aside; ``auc_vs_peer`` = auc / peer_auc. ``goals`` says which of issue 11's
goals the run meets. ``--importance`` adds the peer's loss of holdout AUC when each feature family
is shuffled across rows (what the peer draws on).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from bench.common import add_world_options, emit, peak_rss_mb, progress, timed, world_of
from bench.linking import linked_activities
from sandbox.generator import generate_org
from sandbox.org import Org
from sandbox.world import PRESETS, WorldParams
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
from scoring.peer import PeerModel, fit_peer
from scoring.signals import DAY_SECONDS, SignalCatalog
from scoring.training import Training, train

SETTINGS = ModelSettings()
TIERS = TierSettings()
CATALOG = SignalCatalog.from_settings(DEFAULT_SIGNALS, SETTINGS)
# Issue 11's goals, on every preset and overridden world: figure -> whether a run meets it.
GOALS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "auc_vs_peer": lambda f: f["auc_vs_peer"] >= 0.995,
    "ece": lambda f: f["ece"] <= 0.02,
    "tier_conversion": lambda f: _rising(f["tier_conversion"]),
    "leak_auc": lambda f: abs(f["leak_auc"] - 0.5) <= 0.02,
    "max_explain_error": lambda f: f["max_explain_error"] <= 1,
}


def _rising(conversion: dict[str, float]) -> bool:
    """Whether conversion rises strictly from nurture to sdr to ae."""
    nurture, sdr, ae = (conversion.get(k, np.nan) for k in ("nurture", "sdr", "ae"))
    return bool(nurture < sdr < ae)


def _disqualified(org: Org) -> np.ndarray:
    """Per account, whether a default disqualifier matches it."""
    return disqualification(org.accounts, DEFAULT_DISQUALIFIERS).is_not_null().to_numpy()


def _train(org: Org, opportunities: pl.DataFrame) -> tuple[Training, History]:
    """The product's training run on the org, with the given opportunities as outcomes."""
    history = History.from_frames(CATALOG, org.accounts, linked_activities(org), opportunities)
    disqualified = _disqualified(org)
    training = train(
        history, CATALOG, DEFAULT_FIT, SETTINGS, TIERS, disqualified, org.manifest.end_at
    )
    if training.candidate is None or training.holdout is None:
        raise SystemExit(f"no predictive model trained: {training.reason}")
    return training, history


def _peer(org: Org, history: History, holdout: Examples) -> PeerModel:
    """The peer, trained on the scorecard's own training snapshots."""
    peer, _ = fit_peer(history, CATALOG, SETTINGS, _disqualified(org), org.manifest.end_at)
    if max(peer.trained_dates_s_) + SETTINGS.outcome_window_days * DAY_SECONDS > min(
        s.as_of_s for s in holdout.snapshots
    ):
        raise SystemExit("the peer's training outcomes overlap the holdout; align fit_peer")
    return peer


def _importance(peer: PeerModel, holdout: Examples, seed: int) -> dict[str, float]:
    """Per feature family, the peer's loss of holdout AUC when its columns are shuffled."""
    design, labels, _ = peer.rows(holdout)
    names = peer.feature_names_
    base = auc(labels, peer.predict_rows(design))
    rng = np.random.default_rng(seed)
    losses = {}
    for family in dict.fromkeys(n.split(":")[0] for n in names):
        shuffled = design.copy()
        columns = [i for i, n in enumerate(names) if n.split(":")[0] == family]
        shuffled[:, columns] = design[rng.permutation(len(design))][:, columns]
        losses[family] = round(base - auc(labels, peer.predict_rows(shuffled)), 4)
    return dict(sorted(losses.items(), key=lambda kv: -kv[1]))


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


def _figures(world: WorldParams, accounts: int, seed: int, importance: bool) -> dict[str, Any]:
    """Every figure of one run on an org of ``world``."""
    progress(f"{world.preset}: generating an org of {accounts:,} accounts (seed {seed})")
    org = generate_org(accounts, seed, world=world)
    with timed() as training_time:
        training, history = _train(org, org.opportunities)
    model, holdout = training.candidate, training.holdout
    assert model is not None and holdout is not None
    progress(f"trained in {training_time[0]:.1f} s: {training.reason}")
    with timed() as peer_time:
        peer = _peer(org, history, holdout)
    peer_auc = peer.holdout_auc(holdout)
    progress(f"peer trained in {peer_time[0]:.1f} s: holdout AUC {peer_auc:.4f}")
    labels = holdout.stacked_labels()
    oracle_auc = auc(labels, _oracle(org, holdout))
    metrics = model.metrics_
    tiers = metrics["tier_conversion"]
    progress("training again with shuffled outcomes (leak check)")
    leaky, _ = _train(org, _shuffled(org, seed))
    assert leaky.candidate is not None
    figures = {
        "preset": world.preset,
        "world": world.parameters(),
        "accounts": accounts,
        "seed": seed,
        "holdout_rows": metrics["rows"],
        "holdout_conversions": metrics["conversions"],
        "base_rate": round(metrics["base_rate"], 4),
        "auc": round(metrics["auc"], 4),
        "oracle_auc": round(oracle_auc, 4),
        "auc_ratio": round(metrics["auc"] / oracle_auc, 4),
        "peer_auc": round(peer_auc, 4),
        "auc_vs_peer": round(metrics["auc"] / peer_auc, 4),
        "peer": peer.settings(),
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
        "peer_seconds": round(peer_time[0], 2),
    }
    if importance:
        figures["peer_importance"] = _importance(peer, holdout, seed)
    figures["goals"] = {name: met(figures) for name, met in GOALS.items()}
    return figures


def main() -> None:
    """Run the benchmark on one preset, or on each, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--importance", action="store_true", help="the peer's feature families")
    add_world_options(parser, preset=None)
    args = parser.parse_args()
    presets = [args.preset] if args.preset else list(PRESETS)
    worlds = [world_of(parser, args, preset) for preset in presets]
    runs = {w.preset: _figures(w, args.accounts, args.seed, args.importance) for w in worlds}
    if args.preset:
        emit({**runs[args.preset], "peak_rss_mb": peak_rss_mb()})
    else:
        emit({"presets": runs, "peak_rss_mb": peak_rss_mb()})


if __name__ == "__main__":
    main()
