"""Training a scoring model from an org's own history, with a time-split holdout (D5, D6).

Snapshots are taken every `snapshot_every_days`. The holdout is the latest `holdout_days` of
snapshots whose outcome window has fully passed; training snapshots are earlier still, so that
their outcome windows close before the holdout's first snapshot (no outcome is seen twice). The
first snapshots wait four default half-lives after the first activity for the decayed sums to fill
up (older opportunities do not start the clock: the signals were empty then). Until training
holds `min_training_accounts` accounts and `min_training_conversions` opportunities, the rules
model keeps scoring. A trained candidate replaces the current model only if it passes every check
of `scoring.evaluation.promotion_refusals`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from scoring.config import FitRule, ModelSettings, TierSettings
from scoring.features import Examples, History, examples
from scoring.model import PredictiveModel, RulesModel
from scoring.signals import DAY_SECONDS, SignalCatalog

__all__ = [
    "Training",
    "TrainingPlan",
    "history_suffices",
    "plan_snapshots",
    "train",
    "training_plan",
]

_WARM_UP_HALF_LIVES = 4


@dataclass(frozen=True)
class TrainingPlan:
    """Snapshot dates (epoch seconds, newest first) to learn from and to test on."""

    train_s: tuple[int, ...]
    holdout_s: tuple[int, ...]


def plan_snapshots(first_s: int, now_s: int, settings: ModelSettings) -> TrainingPlan:
    """Training and holdout snapshot dates for history from `first_s` up to `now_s`."""
    step = settings.snapshot_every_days * DAY_SECONDS
    window = settings.outcome_window_days * DAY_SECONDS
    latest = now_s - window
    count = settings.holdout_days // settings.snapshot_every_days + 1
    holdout = tuple(latest - i * step for i in range(count))
    start = first_s + _WARM_UP_HALF_LIVES * settings.default_half_life_days * DAY_SECONDS
    train = tuple(range(min(holdout) - window, int(start) - 1, -step))
    return TrainingPlan(train, tuple(t for t in holdout if t >= start))


def training_plan(history: History, now_s: int, settings: ModelSettings) -> TrainingPlan:
    """The snapshot dates for `history` as of `now_s`, warming up from its first activity."""
    return plan_snapshots(history.first_activity_s(), now_s, settings)


def history_suffices(
    history: History, plan: TrainingPlan, train: Examples, settings: ModelSettings
) -> tuple[bool, str]:
    """Whether training holds enough accounts and conversions, and why (for the sync log)."""
    accounts = int(np.logical_or.reduce(train.eligible).sum()) if train.eligible else 0
    conversions = _conversions(history, plan, settings)
    enough = (
        accounts >= settings.min_training_accounts
        and conversions >= settings.min_training_conversions
    )
    return enough, (
        f"{accounts:,} accounts and {conversions:,} qualified opportunities to learn from, where "
        f"the predictive model needs at least {settings.min_training_accounts:,} and "
        f"{settings.min_training_conversions:,}"
    )


def _conversions(history: History, plan: TrainingPlan, settings: ModelSettings) -> int:
    """Opportunities opened within the training snapshots' outcome windows."""
    if not plan.train_s:
        return 0
    opened = history.opportunity_opened_s
    end = max(plan.train_s) + settings.outcome_window_days * DAY_SECONDS
    return int(((opened > min(plan.train_s)) & (opened <= end)).sum())


@dataclass(frozen=True)
class Training:
    """The outcome of one training run: the model to score with and why."""

    model: RulesModel | PredictiveModel
    candidate: PredictiveModel | None
    promoted: bool
    reason: str
    holdout: Examples | None


def train(
    history: History,
    catalog: SignalCatalog,
    fit_rules: tuple[FitRule, ...],
    settings: ModelSettings,
    tiers: TierSettings,
    disqualified: np.ndarray,
    trained_on: datetime,
    current: RulesModel | PredictiveModel | None = None,
) -> Training:
    """Train a candidate on history up to `trained_on` and promote it only if it beats the
    current model (the rules model when there is none) on the holdout and passes the other
    checks; else keep it aside with the reasons. A candidate that is the current model (its
    version: the training date and a digest of its points) is no candidate: it could only be
    measured against itself, and kept aside it would take the current one's place."""
    rules = RulesModel(catalog, fit_rules)
    incumbent = current or rules
    if settings.model == "rules":
        return Training(rules, None, False, "[scoring] model = rules", None)
    plan = training_plan(history, int(trained_on.timestamp()), settings)
    window = settings.outcome_window_days
    learn = examples(history, catalog, plan.train_s, window, disqualified)
    enough, why = history_suffices(history, plan, learn, settings)
    holdout = examples(history, catalog, plan.holdout_s, window, disqualified)
    unfit = not (learn.positives and holdout.positives) or (settings.model == "auto" and not enough)
    if unfit:
        return Training(incumbent, None, False, f"{incumbent.version} kept: {why}", None)
    candidate = PredictiveModel(catalog, settings, tiers).fit(
        learn, trained_on=trained_on, holdout=holdout, previous=incumbent
    )
    if candidate.version == incumbent.version:  # the same day's history learned the same points
        same = f"{incumbent.version} still scores: trained again, it learned the same points"
        return Training(incumbent, None, False, f"{same}; {why}", holdout)
    refusals = candidate.refusals()
    if refusals:
        verdict = f"kept aside, {incumbent.version} still scores: {'; '.join(refusals)}"
    else:
        verdict = f"replaces {incumbent.version}: it passed every check on the holdout"
    reason = f"{candidate.version} {verdict}; {why}"
    promoted = not refusals
    return Training(candidate if promoted else incumbent, candidate, promoted, reason, holdout)
