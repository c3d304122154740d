"""Models: point-in-time training, a scorecard that adds up, JSON round trips, honest promotion,
and scores that Sales working an account cannot move."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bench.linking import linked_activities
from sandbox.generator import generate_org
from scoring.config import (
    DEFAULT_DISQUALIFIERS,
    DEFAULT_FIT,
    DEFAULT_SIGNALS,
    REP_ACTIVITIES,
    ModelSettings,
    TierSettings,
)
from scoring.evaluation import changelog, holdout_auc, promotion_refusals
from scoring.explain import recent_counts
from scoring.features import Examples, History, examples, outcomes, snapshot
from scoring.fit import disqualification
from scoring.model import PredictiveModel, RulesModel, load_model
from scoring.scorecard import Scorecard, Term, fit_into_scale
from scoring.signals import DAY_SECONDS, SignalCatalog
from scoring.training import Training, plan_snapshots, train, training_plan

SETTINGS = ModelSettings()
TIERS = TierSettings()
CATALOG = SignalCatalog.from_settings(DEFAULT_SIGNALS, SETTINGS)


@dataclass(frozen=True)
class Trained:
    history: History
    disqualified: np.ndarray
    now: datetime
    training: Training

    @property
    def model(self) -> PredictiveModel:
        assert self.training.candidate is not None
        return self.training.candidate

    @property
    def holdout(self) -> Examples:
        assert self.training.holdout is not None
        return self.training.holdout


@pytest.fixture(scope="module")
def trained() -> Trained:
    org = generate_org(4_000, seed=21)
    history = History.from_frames(CATALOG, org.accounts, linked_activities(org), org.opportunities)
    disqualified = disqualification(org.accounts, DEFAULT_DISQUALIFIERS).is_not_null().to_numpy()
    now = org.manifest.end_at
    training = train(history, CATALOG, DEFAULT_FIT, SETTINGS, TIERS, disqualified, now)
    return Trained(history, disqualified, now, training)


def _activities_after(history: History, as_of_s: int, seed: int) -> History:
    """The history with its activities after `as_of_s` replaced by random ones."""
    rng = np.random.default_rng(seed)
    kept = history.activities.gathered(np.flatnonzero(history.activities.occurred_s < as_of_s))
    n = 5_000
    noise = replace(
        kept,
        account=rng.integers(0, history.n_accounts, n),
        signal=rng.integers(0, len(CATALOG.signals), n).astype(np.int16),
        occurred_s=as_of_s + rng.integers(0, 90 * DAY_SECONDS, n),
        topic=np.full(n, -1, dtype=np.int8),
    )
    merged = replace(
        kept,
        account=np.concatenate([kept.account, noise.account]),
        signal=np.concatenate([kept.signal, noise.signal]),
        occurred_s=np.concatenate([kept.occurred_s, noise.occurred_s]),
        topic=np.concatenate([kept.topic, noise.topic]),
    )
    return replace(history, activities=merged)


def test_a_feature_as_of_t_never_sees_an_activity_after_t(trained: Trained) -> None:
    as_of = trained.holdout.snapshots[-1].as_of_s
    before = snapshot(trained.history, CATALOG, as_of)
    after = snapshot(_activities_after(trained.history, as_of, seed=3), CATALOG, as_of)
    for name in ("signals", "memory", "topics", "burst_start_s", "burst_size"):
        assert np.array_equal(getattr(before.totals, name), getattr(after.totals, name)), name
    assert np.array_equal(
        trained.model.contributions(before).points, trained.model.contributions(after).points
    )


def test_later_opportunities_change_labels_but_not_features(trained: Trained) -> None:
    history = trained.history
    as_of = trained.holdout.snapshots[-1].as_of_s
    later = history.opportunity_opened_s > as_of
    trimmed = replace(
        history,
        opportunity_account=history.opportunity_account[~later],
        opportunity_opened_s=history.opportunity_opened_s[~later],
        opportunity_closed_s=history.opportunity_closed_s[~later],
    )
    full, cut = snapshot(history, CATALOG, as_of), snapshot(trimmed, CATALOG, as_of)
    assert np.array_equal(full.opportunities, cut.opportunities)
    assert np.array_equal(full.open_opportunity, cut.open_opportunity)
    assert outcomes(history, as_of, 90).any()
    assert not outcomes(trimmed, as_of, 90).any()


def _tiny_history(opened_s: int, closed_s: int, activity_s: int | None) -> History:
    """Two accounts; the first opened one opportunity at `opened_s`, closed at `closed_s`, and
    visited pricing at `activity_s` (None: no activity at all)."""
    created = datetime.fromtimestamp(opened_s - 400 * DAY_SECONDS, UTC)
    accounts = pl.DataFrame(
        {
            "account_id": [1, 2],
            "created_at": [created, created],
            "country": ["US", "DE"],
            "region": ["NA", "EMEA"],
            "industry": ["Software", "Retail"],
            "employees": [500, 40],
            "revenue": [5e7, 4e6],
            "is_customer": [False, False],
            "is_competitor": [False, False],
            "parent_id": [None, None],
        }
    )
    visits = [] if activity_s is None else [activity_s]
    activities = pl.DataFrame(
        {
            "account_id": [1] * len(visits),
            "type": ["pricing_page"] * len(visits),
            "topic": [None] * len(visits),
            "occurred_at": [datetime.fromtimestamp(t, UTC) for t in visits],
        },
        schema_overrides={
            "account_id": pl.Int64,
            "type": pl.String,
            "topic": pl.String,
            "occurred_at": pl.Datetime("us", "UTC"),
        },
    )
    opportunities = pl.DataFrame(
        {
            "account_id": [1],
            "opened_at": [datetime.fromtimestamp(opened_s, UTC)],
            "close_at": [datetime.fromtimestamp(closed_s, UTC)],
            "is_closed": [True],
        }
    )
    return History.from_frames(CATALOG, accounts, activities, opportunities)


def test_labels_count_opportunities_opened_within_the_window_after_t() -> None:
    t, day = 1_800_000_000, DAY_SECONDS
    history = _tiny_history(t, t + 30 * day, activity_s=t - 20 * day)
    assert outcomes(history, t - 1, 90).tolist() == [True, False]
    assert outcomes(history, t - 90 * day, 90).tolist() == [True, False]
    assert outcomes(history, t - 90 * day - 1, 90).tolist() == [False, False]
    assert outcomes(history, t, 90).tolist() == [False, False]


def test_an_opportunity_is_history_from_the_moment_it_opens_until_it_closes() -> None:
    t, day = 1_800_000_000, DAY_SECONDS
    history = _tiny_history(t, t + 30 * day, activity_s=t - 20 * day)
    assert snapshot(history, CATALOG, t - 1).opportunities.tolist() == [0, 0]
    assert snapshot(history, CATALOG, t).opportunities.tolist() == [1, 0]
    assert snapshot(history, CATALOG, t).open_opportunity.tolist() == [True, False]
    assert snapshot(history, CATALOG, t + 30 * day).open_opportunity.tolist() == [False, False]


def test_the_time_split_keeps_training_outcomes_before_the_holdout() -> None:
    now = 1_800_000_000
    plan = plan_snapshots(now - 456 * DAY_SECONDS, now, SETTINGS)
    window = SETTINGS.outcome_window_days * DAY_SECONDS
    assert max(plan.holdout_s) == now - window
    assert len(plan.holdout_s) == 3
    assert max(plan.train_s) + window <= min(plan.holdout_s)
    assert min(plan.train_s) >= now - 456 * DAY_SECONDS + 4 * 14 * DAY_SECONDS


@pytest.mark.parametrize(
    ("activity_days", "first_train_day"),
    [
        pytest.param(300, 300 + 4 * 14, id="activity-a-year-after-the-first-opportunity"),
        pytest.param(0, 4 * 14, id="activity-from-the-start"),
    ],
)
def test_the_warm_up_counts_from_the_first_activity(
    activity_days: int, first_train_day: int
) -> None:
    start, day = 1_700_000_000, DAY_SECONDS
    history = _tiny_history(start, start + 30 * day, activity_s=start + activity_days * day)
    plan = training_plan(history, start + 600 * day, SETTINGS)
    assert plan.train_s
    assert min(plan.train_s) >= start + first_train_day * day
    assert min(plan.train_s) < start + (first_train_day + 14) * day


def test_history_without_activity_has_no_snapshots_to_learn_from() -> None:
    start, day = 1_700_000_000, DAY_SECONDS
    history = _tiny_history(start, start + 30 * day, activity_s=None)
    plan = training_plan(history, start + 600 * day, SETTINGS)
    assert plan.train_s == () and plan.holdout_s == ()


def test_the_predictive_model_beats_the_rules_and_is_promoted(trained: Trained) -> None:
    metrics = trained.model.metrics_
    assert trained.training.promoted
    assert metrics["auc"] > metrics["previous_auc"] + 0.02
    conversion = metrics["tier_conversion"]
    assert conversion["nurture"] < conversion["sdr"] < conversion["ae"]
    assert metrics["ece"] < 0.05
    assert trained.model.version.startswith(f"{trained.now:%Y%m%d}-")


def test_score_is_base_plus_points_for_every_account(trained: Trained) -> None:
    for snap in trained.holdout.snapshots:
        parts = trained.model.contributions(snap)
        gap = parts.rounded() - parts.base - parts.points.sum(axis=1, dtype=np.float64)
        assert np.abs(gap).max() <= 0.5 + 1e-4
        assert parts.rounded().min() >= 0
        assert parts.rounded().max() <= 100


def test_model_json_round_trip_gives_identical_scores(trained: Trained) -> None:
    loaded = load_model(trained.model.to_json())
    assert isinstance(loaded, PredictiveModel)
    assert loaded.version == trained.model.version
    assert loaded.metrics_ == trained.model.metrics_
    assert loaded.changelog_ == trained.model.changelog_
    snap = trained.holdout.snapshots[0]
    assert np.array_equal(
        loaded.contributions(snap).points, trained.model.contributions(snap).points
    )
    assert np.array_equal(loaded.predict_proba(snap), trained.model.predict_proba(snap))
    rules = RulesModel(CATALOG, DEFAULT_FIT)
    reloaded = load_model(rules.to_json())
    assert reloaded == rules
    assert np.array_equal(reloaded.contributions(snap).points, rules.contributions(snap).points)


def test_a_model_saved_in_another_format_is_refused(trained: Trained) -> None:
    data = json.loads(trained.model.to_json()) | {"format": 1}
    with pytest.raises(ValueError, match="model format 1; this version reads 2"):
        load_model(json.dumps(data))


def test_model_json_holds_no_pickle(trained: Trained) -> None:
    text = trained.model.to_json()
    assert text.lstrip().startswith("{")
    assert "pickle" not in text


def test_promotion_refuses_a_worse_model(trained: Trained) -> None:
    shuffled = Examples(
        trained.holdout.snapshots,
        tuple(np.random.default_rng(1).permutation(y) for y in trained.holdout.labels),
        trained.holdout.eligible,
    )
    holdout = trained.holdout
    worse = PredictiveModel(CATALOG, SETTINGS, TIERS).fit(
        shuffled, trained_on=trained.now, holdout=holdout, previous=trained.model
    )
    assert holdout_auc(worse, holdout) < holdout_auc(trained.model, holdout)
    assert any("ranks the held-out accounts no better than" in r for r in worse.refusals())
    assert worse.changelog_[0].startswith(
        f"{worse.version} kept aside, {trained.model.version} still scores: "
    )


def test_a_poorly_calibrated_model_is_kept_aside_and_the_changelog_says_why(
    trained: Trained,
) -> None:
    plan = training_plan(trained.history, int(trained.now.timestamp()), SETTINGS)
    learn = examples(trained.history, CATALOG, plan.train_s[:4], 90, trained.disqualified)
    rng = np.random.default_rng(5)
    inflated = replace(learn, labels=tuple(y | (rng.random(len(y)) < 0.15) for y in learn.labels))
    rules = RulesModel(CATALOG, DEFAULT_FIT)
    overconfident = PredictiveModel(CATALOG, SETTINGS, TIERS).fit(
        inflated, trained_on=trained.now, holdout=trained.holdout, previous=rules
    )
    assert overconfident.metrics_["auc"] > overconfident.metrics_["previous_auc"]
    assert overconfident.metrics_["ece"] > SETTINGS.max_promotion_ece
    (refusal,) = overconfident.refusals()
    assert refusal.startswith("its forecasts miss held-out conversion by ")
    assert refusal.endswith("above [scoring] max_promotion_ece = 0.02)")
    assert overconfident.changelog_[1] == f"Kept aside: {refusal}."


def test_training_keeps_the_current_model_when_the_candidate_fails_a_check(
    trained: Trained,
) -> None:
    strict = SETTINGS.model_copy(update={"max_promotion_ece": 0.0001})
    kept = train(
        trained.history, CATALOG, DEFAULT_FIT, strict, TIERS, trained.disqualified, trained.now
    )
    assert not kept.promoted and isinstance(kept.model, RulesModel)
    assert kept.candidate is not None
    assert "kept aside, rules-" in kept.reason and "max_promotion_ece = 0.0001" in kept.reason
    assert any("max_promotion_ece = 0.0001" in line for line in kept.candidate.changelog_)


def _measured(**changes: Any) -> dict[str, Any]:
    """Holdout metrics of a candidate that passes every check, with `changes`."""
    return {
        "auc": 0.78,
        "previous_auc": 0.72,
        "previous_version": "rules-1",
        "ece": 0.004,
        "tier_conversion": {"nurture": 0.04, "sdr": 0.15, "ae": 0.5},
        "tier_rows": {"nurture": 3000, "sdr": 1200, "ae": 150},
    } | changes


@pytest.mark.parametrize(
    ("metrics", "settings", "refusals"),
    [
        pytest.param(_measured(), SETTINGS, (), id="passes"),
        pytest.param(
            _measured(auc=0.72),
            SETTINGS,
            ("it ranks the held-out accounts no better than rules-1 (AUC 0.720 against 0.720)",),
            id="ranks-no-better",
        ),
        pytest.param(
            _measured(ece=0.05),
            SETTINGS,
            (
                "its forecasts miss held-out conversion by 5.0 percentage points on average "
                "(calibration error 0.050, above [scoring] max_promotion_ece = 0.02)",
            ),
            id="poorly-calibrated",
        ),
        pytest.param(
            _measured(tier_conversion={"nurture": 0.04, "sdr": 0.03, "ae": 0.5}),
            SETTINGS,
            (
                "its tiers do not convert in rising order on the holdout "
                "(Nurture 4.0% of 3,000, SDR 3.0% of 1,200, AE 50.0% of 150)",
            ),
            id="tiers-not-rising",
        ),
        pytest.param(
            _measured(tier_conversion={"nurture": 0.04, "sdr": 0.15, "ae": 0.15}),
            SETTINGS,
            (
                "its tiers do not convert in rising order on the holdout "
                "(Nurture 4.0% of 3,000, SDR 15.0% of 1,200, AE 15.0% of 150)",
            ),
            id="tiers-level",
        ),
        pytest.param(
            _measured(
                tier_conversion={"nurture": 0.04, "sdr": 0.15, "ae": 0.1},
                tier_rows={"nurture": 3000, "sdr": 1200, "ae": 40},
            ),
            SETTINGS,
            (),
            id="too-few-ae-rows-to-judge",
        ),
        pytest.param(
            _measured(
                tier_conversion={"nurture": 0.04, "sdr": 0.15, "ae": 0.1},
                tier_rows={"nurture": 3000, "sdr": 1200, "ae": 40},
            ),
            SETTINGS.model_copy(update={"min_tier_rows": 40}),
            (
                "its tiers do not convert in rising order on the holdout "
                "(Nurture 4.0% of 3,000, SDR 15.0% of 1,200, AE 10.0% of 40)",
            ),
            id="enough-ae-rows-under-a-lower-minimum",
        ),
        pytest.param(
            _measured(ece=0.03, auc=0.7),
            SETTINGS.model_copy(update={"max_promotion_ece": 0.05}),
            ("it ranks the held-out accounts no better than rules-1 (AUC 0.700 against 0.720)",),
            id="within-a-looser-calibration-bound",
        ),
    ],
)
def test_promotion_needs_better_ranking_calibration_and_rising_tiers(
    metrics: dict[str, Any], settings: ModelSettings, refusals: tuple[str, ...]
) -> None:
    assert promotion_refusals(metrics, settings, TIERS) == refusals


def test_the_rules_model_stays_until_there_is_enough_history(trained: Trained) -> None:
    strict = SETTINGS.model_copy(update={"min_training_conversions": 100_000})
    kept = train(
        trained.history, CATALOG, DEFAULT_FIT, strict, TIERS, trained.disqualified, trained.now
    )
    assert isinstance(kept.model, RulesModel) and kept.candidate is None
    assert "needs at least 1,000 and 100,000" in kept.reason
    forced = SETTINGS.model_copy(update={"model": "rules"})
    ruled = train(
        trained.history, CATALOG, DEFAULT_FIT, forced, TIERS, trained.disqualified, trained.now
    )
    assert isinstance(ruled.model, RulesModel)


def test_the_latest_burst_explains_its_points_in_one_sentence(trained: Trained) -> None:
    snap = trained.holdout.snapshots[0]
    parts = trained.model.contributions(snap)
    burst = np.array([t.kind == "burst" for t in parts.terms])
    assert burst.sum() == 2 * len(SETTINGS.burst_bins_days)
    points = parts.points[:, burst].sum(axis=1)
    rows = np.flatnonzero(np.abs(points) >= 0.5)[:50]
    assert len(rows) == 50
    for row, found in zip(rows, trained.model.explain(snap, rows), strict=True):
        keyed = zip(found.reasons, found.keys, strict=True)
        sentences = [reason for reason, key in keyed if key.startswith("burst:")]
        assert len(sentences) == 1
        size = int(snap.totals.burst_size[row])
        if size == 1:
            assert sentences[0].startswith("One intent activity ")
        else:
            assert sentences[0].startswith("Intent burst started ")
            assert f", {size} activities" in sentences[0]
        assert sentences[0].endswith(f" ({round(float(points[row])):+d})")


def test_changelog_reads_as_points_before_and_after() -> None:
    cheaper = tuple(
        s.model_copy(update={"points": 12}) if s.activity == "pricing_page" else s
        for s in CATALOG.signals
    )
    before = RulesModel(CATALOG, DEFAULT_FIT)
    after = RulesModel(replace(CATALOG, signals=cheaper), DEFAULT_FIT[:-1])
    lines = changelog(before, after)
    assert (
        lines[0] == f"{after.version} replaces {before.version}: the points of 2 reasons changed."
    )
    assert "Visited pricing: +15 -> +12" in lines
    assert "Revenue: $50M+: removed (was +5)" in lines
    assert changelog(None, before) == (
        f"{before.version}: the first model; no earlier points to compare.",
    )


def test_the_first_predictive_model_explains_its_changes_against_the_rules(
    trained: Trained,
) -> None:
    lines = trained.model.changelog_
    assert lines[0].startswith(f"{trained.model.version} replaces rules-")
    assert any(line.startswith("Visited pricing: +15 -> ") for line in lines)


@settings(max_examples=200, deadline=None)
@given(
    base=st.floats(0, 100),
    points=arrays(
        np.float32,
        st.tuples(st.integers(1, 20), st.integers(1, 12)),
        elements=st.floats(-80, 80, width=32),
    ),
)
def test_fitted_points_always_add_up_to_the_clipped_score(base: float, points: np.ndarray) -> None:
    fitted = fit_into_scale(base, points)
    total = base + points.sum(axis=1, dtype=np.float64)
    score = base + fitted.sum(axis=1, dtype=np.float64)
    assert np.allclose(score, np.clip(total, 0, 100), atol=1e-3)
    assert np.all(np.sign(fitted) * np.sign(points) >= 0)
    assert np.all(np.abs(fitted) <= np.abs(points) + 1e-6)


@settings(max_examples=100, deadline=None)
@given(
    base=st.floats(0, 100),
    weights=st.lists(st.floats(-40, 40), min_size=1, max_size=6),
    values=arrays(np.float32, st.integers(1, 30), elements=st.floats(0, 50, width=32)),
    level_points=st.lists(st.floats(-30, 30), min_size=2, max_size=2),
)
def test_a_scorecard_score_is_its_base_plus_its_points(
    base: float, weights: list[float], values: np.ndarray, level_points: list[float]
) -> None:
    terms = [Term(f"signal:s{i}", f"Signal {i}", w, "log1p") for i, w in enumerate(weights)]
    levels = (("Industry: A", level_points[0]), ("Industry: B", level_points[1]))
    card = Scorecard(base, (*terms, Term("level:industry", "Industry", levels=levels)))
    labels = pl.Series(["Industry: A", "Industry: B", "Industry: C"] * len(values))[: len(values)]
    frame = pl.DataFrame(
        {"level:industry": labels.cast(pl.Enum(["Industry: A", "Industry: B", "Industry: C"]))}
    )
    parts = card.contributions([values * (i + 1) for i in range(len(weights))], frame)
    gap = parts.rounded() - base - parts.points.sum(axis=1, dtype=np.float64)
    assert np.abs(gap).max() <= 0.5 + 1e-3
    assert np.all((parts.rounded() >= 0) & (parts.rounded() <= 100))


HANDED_OFF = datetime(2026, 6, 1, tzinfo=UTC)
BUYER_INTENT = [
    ("demo_request", None, -3.0),
    ("pricing_page", None, -5.0),
    ("pricing_page", None, -2.0),
    ("webinar", "security", -6.0),
    ("email_click", None, -1.0),
]
OWNER_TOUCHES = [
    ("call", None, 0.5),
    ("email", None, 1.0),
    ("meeting", None, 3.0),
    ("task", None, 4.0),
    ("note", None, 5.0),
    ("meeting", None, 8.0),
    ("email", None, 9.0),
]


def _handed_off(touches: list[tuple[str, str | None, float]]) -> History:
    """One Fintech account handed off at `HANDED_OFF` after a burst of buyer intent, with
    `touches` (type, topic, days after the hand-off) logged too."""
    rows = [*BUYER_INTENT, *touches]
    accounts = pl.DataFrame(
        {
            "account_id": [1],
            "created_at": [HANDED_OFF - timedelta(days=700)],
            "country": ["US"],
            "region": ["NA"],
            "industry": ["Fintech"],
            "employees": [900],
            "revenue": [8e7],
            "is_customer": [False],
            "is_competitor": [False],
            "parent_id": [None],
        }
    )
    activities = pl.DataFrame(
        {
            "account_id": [1] * len(rows),
            "type": [kind for kind, _, _ in rows],
            "topic": [topic for _, topic, _ in rows],
            "occurred_at": [HANDED_OFF + timedelta(days=days) for _, _, days in rows],
        },
        schema_overrides={"topic": pl.String},
    )
    opportunities = pl.DataFrame(
        schema={
            "account_id": pl.Int64,
            "opened_at": pl.Datetime("us", "UTC"),
            "close_at": pl.Datetime("us", "UTC"),
            "is_closed": pl.Boolean,
        }
    )
    return History.from_frames(CATALOG, accounts, activities, opportunities)


@pytest.mark.parametrize("kind", ["predictive", "rules"])
def test_an_owner_working_a_hand_off_never_moves_its_score_or_its_why(
    trained: Trained, kind: str
) -> None:
    model = trained.model if kind == "predictive" else RulesModel(CATALOG, DEFAULT_FIT)
    as_of = int((HANDED_OFF + timedelta(days=10)).timestamp())
    row = np.array([0])
    seen = []
    for touches in ([], OWNER_TOUCHES):
        history = _handed_off(touches)
        snap = snapshot(history, CATALOG, as_of)
        counts = recent_counts(history.activities, 1, len(CATALOG.signals), as_of)
        seen.append((model.contributions(snap).points, model.explain(snap, row, counts)[0]))
    (alone, why_alone), (worked, why_worked) = seen
    assert {kind for kind, _, _ in OWNER_TOUCHES} == REP_ACTIVITIES
    assert np.array_equal(alone, worked)
    assert why_alone == why_worked
    assert why_alone.score > 0 and any("Requested a demo" in r for r in why_alone.reasons)
    assert not any("rep" in r.lower().split() for r in why_worked.reasons)


def test_no_default_signal_is_rep_activity() -> None:
    assert not {s.activity for s in DEFAULT_SIGNALS} & REP_ACTIVITIES
