"""The black-box peer: learns from the scorecard's training rows only, tuned on accounts aside."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
import pytest

from bench.linking import linked_activities
from sandbox.generator import generate_org
from scoring.config import DEFAULT_DISQUALIFIERS, DEFAULT_SIGNALS, ModelSettings
from scoring.features import Examples, History, examples
from scoring.fit import disqualification
from scoring.peer import PeerModel, fit_peer
from scoring.signals import DAY_SECONDS, SignalCatalog
from scoring.training import training_plan

SETTINGS = ModelSettings()
CATALOG = SignalCatalog.from_settings(DEFAULT_SIGNALS, SETTINGS)
WINDOW_S = SETTINGS.outcome_window_days * DAY_SECONDS


@dataclass(frozen=True)
class Fitted:
    history: History
    disqualified: np.ndarray
    now_s: int
    peer: PeerModel
    learned: Examples
    holdout: Examples


def _small_peer() -> PeerModel:
    """A one-point grid and few trees: the split, not the peer's strength, is under test."""
    return PeerModel(grid=((0.1, 15),), max_iter=60)


def _fitted(history: History, disqualified: np.ndarray, now_s: int) -> Fitted:
    now = datetime.fromtimestamp(now_s, UTC)
    peer, learned = fit_peer(history, CATALOG, SETTINGS, disqualified, now, _small_peer())
    plan = training_plan(history, now_s, SETTINGS)
    window = SETTINGS.outcome_window_days
    holdout = examples(history, CATALOG, plan.holdout_s, window, disqualified)
    return Fitted(history, disqualified, now_s, peer, learned, holdout)


@pytest.fixture(scope="module")
def fitted() -> Fitted:
    org = generate_org(3_000, seed=17)
    history = History.from_frames(CATALOG, org.accounts, linked_activities(org), org.opportunities)
    disqualified = disqualification(org.accounts, DEFAULT_DISQUALIFIERS).is_not_null().to_numpy()
    return _fitted(history, disqualified, int(org.manifest.end_at.timestamp()))


def test_the_peer_learns_only_from_snapshots_whose_outcomes_close_before_the_holdout(
    fitted: Fitted,
) -> None:
    holdout_dates = {s.as_of_s for s in fitted.holdout.snapshots}
    assert not holdout_dates & set(fitted.peer.trained_dates_s_)
    assert max(fitted.peer.trained_dates_s_) + WINDOW_S <= min(holdout_dates)
    assert fitted.peer.holdout_auc(fitted.holdout) > 0.65


def test_its_settings_are_chosen_on_accounts_kept_aside_not_on_rows(fitted: Fitted) -> None:
    aside, fit = set(fitted.peer.aside_accounts_), set(fitted.peer.fit_accounts_)
    training = set(np.flatnonzero(np.logical_or.reduce(fitted.learned.eligible)))
    assert aside and fit and not aside & fit
    assert aside | fit == training
    assert len(aside) == pytest.approx(0.25 * len(training), abs=1)


def test_holdout_outcomes_never_reach_the_peer(fitted: Fitted) -> None:
    """Moving every opportunity that opened after the training windows closed to random
    accounts (the holdout's outcomes and beyond) leaves the peer exactly as it was."""
    history = fitted.history
    cut = max(fitted.peer.trained_dates_s_) + WINDOW_S
    later = history.opportunity_opened_s > cut
    rng = np.random.default_rng(5)
    moved = history.opportunity_account.copy()
    moved[later] = rng.integers(0, history.n_accounts, int(later.sum()))
    scrambled = replace(history, opportunity_account=moved)
    again = _fitted(scrambled, fitted.disqualified, fitted.now_s)
    assert not np.array_equal(
        again.holdout.stacked_labels(), fitted.holdout.stacked_labels()
    )  # the holdout did change
    for snapshot in fitted.holdout.snapshots:
        assert np.array_equal(
            again.peer.predict_proba(snapshot), fitted.peer.predict_proba(snapshot)
        )
