"""Benchmark: full decayed rescoring, with every account's contributions, of a large book.

    python -m bench.scoring --accounts 1000000 --activities 20000000

The scorecard is the predictive model trained on a generated org of 10,000 accounts; the book is
synthetic arrays (firmographics resampled from that org, activities spread over 456 days with
the passive-heavy mix of a real org). Timed: decayed sums per account and signal, intent memory
and topics, latest intent bursts, every term's points, scores, disqualifiers and tiers.
Activities arrive ordered by account, as the state store's index returns them;
``unordered_seconds`` times the same rescoring of a shuffled copy (it sorts first). The baseline
does the same the straightforward way, a Python loop over activities and accounts, on 1% of the
accounts, extrapolated; its scores must match.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import defaultdict

import numpy as np
import polars as pl

from bench.common import add_world_options, emit, peak_rss_mb, progress, timed, world_of
from bench.linking import linked_activities
from sandbox.generator import generate_org
from sandbox.world import WorldParams
from scoring.config import (
    DEFAULT_DISQUALIFIERS,
    DEFAULT_FIT,
    DEFAULT_SIGNALS,
    ModelSettings,
    TierSettings,
)
from scoring.features import History, Snapshot
from scoring.fit import FIRMOGRAPHICS, LEVEL_GROUPS, disqualification, firmographic_levels
from scoring.model import PredictiveModel
from scoring.scorecard import Term
from scoring.scores import Scores, score_accounts
from scoring.signals import DAY_SECONDS, INTENTS, Activities, SignalCatalog, decayed_totals
from scoring.training import train

LIMIT_SECONDS = 5.0
LIMIT_RSS_MB = 4096.0
SETTINGS = ModelSettings()
CATALOG = SignalCatalog.from_settings(DEFAULT_SIGNALS, SETTINGS)
HISTORY_DAYS = 456
MIX = {"blog_visit": 30, "email_open": 30, "email_click": 9, "product_page": 8, "email": 5}
TOPICS = ("security", "integrations", "compliance", "ai", "analytics")


def _model(seed: int, world: WorldParams) -> tuple[PredictiveModel, pl.DataFrame, int]:
    """A predictive model trained on a small generated org, its accounts and its "now"."""
    org = generate_org(10_000, seed, world=world)
    history = History.from_frames(CATALOG, org.accounts, linked_activities(org), org.opportunities)
    disqualified = disqualification(org.accounts, DEFAULT_DISQUALIFIERS).is_not_null().to_numpy()
    training = train(
        history, CATALOG, DEFAULT_FIT, SETTINGS, TierSettings(), disqualified, org.manifest.end_at
    )
    assert training.candidate is not None, training.reason
    return training.candidate, org.accounts, int(org.manifest.end_at.timestamp())


def _book(
    sample: pl.DataFrame, accounts: int, activities: int, now_s: int, seed: int
) -> tuple[pl.DataFrame, Activities]:
    """Synthetic accounts and activities (compact dtypes: this is 20M rows)."""
    rng = np.random.default_rng(seed)
    firmographics = sample.select(FIRMOGRAPHICS).sample(accounts, with_replacement=True, seed=seed)
    weights = np.array([MIX.get(s.activity, 1.0) for s in CATALOG.signals])
    signal = rng.choice(len(weights), activities, p=weights / weights.sum()).astype(np.int16)
    topic = rng.integers(0, len(TOPICS), activities, dtype=np.int8)
    return firmographics, Activities(
        account=np.sort(rng.integers(0, accounts, activities, dtype=np.int32)),
        signal=signal,
        occurred_s=now_s - rng.integers(1, HISTORY_DAYS * DAY_SECONDS, activities),
        topic=np.where(CATALOG.carries_topic[signal], topic, -1).astype(np.int8),
        topic_names=TOPICS,
    )


def _shuffled(activities: Activities, seed: int) -> Activities:
    """The same activities in random order."""
    order = np.random.default_rng(seed).permutation(len(activities.account))
    return Activities(
        activities.account[order],
        activities.signal[order],
        activities.occurred_s[order],
        activities.topic[order],
        activities.topic_names,
    )


def rescore(
    model: PredictiveModel, accounts: pl.DataFrame, activities: Activities, now_s: int
) -> Scores:
    """Every account's contributions, score and tier as of `now_s`."""
    n = accounts.height
    snapshot = Snapshot(
        totals=decayed_totals(CATALOG, activities, n, now_s),
        opportunities=np.zeros(n, dtype=np.int32),
        open_opportunity=np.zeros(n, dtype=bool),
        exists=np.ones(n, dtype=bool),
        accounts=accounts,
    )
    return score_accounts(model, snapshot, DEFAULT_DISQUALIFIERS, model.tiers)


def _row_by_row(
    model: PredictiveModel, accounts: pl.DataFrame, activities: Activities, now_s: int
) -> list[float]:
    """The straightforward way: a dict of sums filled one activity at a time, then one account
    at a time through the scorecard's terms (same maths, no arrays)."""
    half = list(CATALOG.half_lives)
    intent = list(CATALOG.intent_codes)
    forms_bursts = list(CATALOG.forms_bursts)
    sums: defaultdict[tuple[int, int], float] = defaultdict(float)
    memory: defaultdict[tuple[int, int], float] = defaultdict(float)
    topics: defaultdict[tuple[int, int], float] = defaultdict(float)
    bursting: defaultdict[int, list[int]] = defaultdict(list)
    for account, signal, at, topic in zip(
        activities.account.tolist(),
        activities.signal.tolist(),
        activities.occurred_s.tolist(),
        activities.topic.tolist(),
        strict=True,
    ):
        age = (now_s - at) / DAY_SECONDS
        sums[account, signal] += 2.0 ** (-age / half[signal])
        memory[account, intent[signal]] += 2.0 ** (-age / CATALOG.memory_half_life_days)
        if topic >= 0:
            topics[account, topic] += 2.0 ** (-age / CATALOG.topic_half_life_days)
        if forms_bursts[signal]:
            bursting[account].append(at)
    terms = {t.key: t for t in model.scorecard_.terms}
    levels = firmographic_levels(accounts).rows()
    customers = accounts["is_customer"].to_list()
    scores = []
    for row in range(accounts.height):
        total = model.scorecard_.base + (terms["constant"].weight if "constant" in terms else 0)
        for j, spec in enumerate(CATALOG.signals):
            total += terms[f"signal:{spec.activity}"].weight * math.log1p(sums[row, j])
        for i, name in enumerate(INTENTS):
            total += terms[f"memory:{name}"].weight * math.log1p(memory[row, i])
        total += _burst_points(terms, sorted(bursting[row]), now_s)
        total += terms["flag:is_customer"].weight * bool(customers[row])
        for group, level in zip(LEVEL_GROUPS, levels[row], strict=True):
            total += dict(terms[f"level:{group}"].levels).get(level, 0.0)
        scores.append(min(max(total, 0.0), 100.0))
    return scores


def _burst_points(terms: dict[str, Term], times: list[int], now_s: int) -> float:
    """Points of the latest burst among an account's intent activity `times` (ascending)."""
    if not times:
        return 0.0
    start = len(times) - 1
    while start > 0 and times[start] - times[start - 1] <= SETTINGS.burst_gap_days * DAY_SECONDS:
        start -= 1
    age_days = (now_s - times[start]) / DAY_SECONDS
    low = 0.0
    for high in SETTINGS.burst_bins_days:
        if low <= age_days < high:
            days = f"{low:g}-{high:g}"
            size = len(times) - start
            return terms[f"burst:start:{days}"].weight + terms[
                f"burst:size:{days}"
            ].weight * math.log1p(size)
        low = high
    return 0.0


def _baseline(
    model: PredictiveModel, accounts: pl.DataFrame, activities: Activities, now_s: int
) -> tuple[float, float]:
    """Row-by-row seconds on 1% of the accounts, extrapolated, and its largest disagreement."""
    share = max(1, accounts.height // 100)
    keep = activities.account < share
    sub = Activities(
        activities.account[keep],
        activities.signal[keep],
        activities.occurred_s[keep],
        activities.topic[keep],
        activities.topic_names,
    )
    start = time.perf_counter()
    slow = _row_by_row(model, accounts.head(share), sub, now_s)
    seconds = (time.perf_counter() - start) * accounts.height / share
    fast = rescore(model, accounts.head(share), sub, now_s).contributions
    return seconds, float(np.abs(np.array(slow) - fast.score).max())


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--activities", type=int, default=20_000_000)
    parser.add_argument("--seed", type=int, default=7)
    add_world_options(parser)
    args = parser.parse_args()

    progress("training the scorecard on a generated org of 10,000 accounts")
    model, sample, now_s = _model(args.seed, world_of(parser, args))
    progress(f"synthesising {args.accounts:,} accounts and {args.activities:,} activities")
    accounts, activities = _book(sample, args.accounts, args.activities, now_s, args.seed)
    with timed() as scoring:
        scores = rescore(model, accounts, activities, now_s)
    progress(f"rescored in {scoring[0]:.2f} s")
    shuffled = _shuffled(activities, args.seed)
    with timed() as unordered:
        rescore(model, accounts, shuffled, now_s)
    del shuffled
    progress(f"rescored unordered activities in {unordered[0]:.2f} s")
    baseline_seconds, disagreement = _baseline(model, accounts, activities, now_s)
    progress(f"row-by-row baseline extrapolated to {baseline_seconds:.1f} s")
    contributions = scores.contributions
    gap = contributions.rounded() - contributions.base - contributions.points.sum(axis=1)
    emit(
        {
            "accounts": args.accounts,
            "activities": args.activities,
            "terms": len(contributions.terms),
            "seconds": round(scoring[0], 3),
            "seconds_vs_limit": round(scoring[0] / LIMIT_SECONDS, 4),
            "unordered_seconds": round(unordered[0], 3),
            "baseline_seconds": round(baseline_seconds, 1),
            "speedup_vs_baseline": round(baseline_seconds / scoring[0], 1),
            "baseline_max_score_difference": round(disagreement, 6),
            "max_explain_error": round(float(np.abs(gap).max()), 4),
            "tier_share": {
                k: round(float((scores.tier == k).mean()), 4) for k in np.unique(scores.tier)
            },
            "peak_rss_mb": peak_rss_mb(),
            "peak_rss_vs_limit": round(peak_rss_mb() / LIMIT_RSS_MB, 4),
        }
    )


if __name__ == "__main__":
    main()
