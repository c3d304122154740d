"""A black-box peer for the scorecard: gradient boosting on the same point-in-time snapshots.

A scorecard's AUC alone says as much about the world as about the model: it rises when the world
reveals more. The best black box on the same information says what the scorecard's readable form
costs, which no world can flatter. The peer reads everything a snapshot holds (decayed signals,
intent memory, topics, the latest burst's age and size, earlier opportunities, the raw
firmographics) and learns from the same eligible training rows as the scorecard. Its settings are
chosen on training accounts kept aside (split by account, never by row, so no account's snapshots
sit on both sides), never on the holdout; then it is refitted on every training row.

    peer, learned = fit_peer(history, catalog, settings, disqualified, trained_on)
    peer.holdout_auc(holdout)   # the holdout of `scoring.training.train` on the same history
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from scoring.config import ModelSettings
from scoring.features import Examples, History, Snapshot, examples
from scoring.metrics import auc
from scoring.signals import INTENTS, SignalCatalog
from scoring.training import training_plan

if TYPE_CHECKING:  # sklearn costs most of a second to import: only the peer loads it
    from sklearn.ensemble import HistGradientBoostingClassifier

__all__ = ["PEER_GRID", "PeerChoice", "PeerModel", "fit_peer", "peer_features"]

# (learning rate, leaves per tree); the number of trees is chosen along each one's curve.
PEER_GRID: tuple[tuple[float, int], ...] = ((0.03, 4), (0.03, 7), (0.05, 7), (0.05, 15), (0.1, 31))
_CATEGORICAL = ("industry", "region", "country")
_NUMERIC = ("employees", "revenue")
_FLAGS = ("is_customer", "is_competitor")
_MIN_LEAF_ROWS = 100
_L2 = 1.0
# Trees stop growing once this many more have not lowered the kept-aside accounts' log-loss; the
# AUC on those accounts then picks the tree count, every this many trees.
_PATIENCE = 30
_TREE_STEP = 10


@dataclass(frozen=True)
class PeerChoice:
    """One grid point and its AUC on the kept-aside training accounts."""

    learning_rate: float
    max_leaf_nodes: int
    max_iter: int
    aside_auc: float


def peer_features(
    snapshot: Snapshot, categories: Sequence[tuple[str, ...]]
) -> tuple[tuple[str, ...], np.ndarray]:
    """Column names ("family:name") and every account's row of what the snapshot knows.

    Categories are coded by their position in `categories` (one tuple per categorical column,
    which come last), unknown or missing ones as NaN.
    """
    totals, accounts = snapshot.totals, snapshot.accounts
    age = totals.burst_age_days
    named = [
        *(
            (f"signal:{a}", c)
            for a, c in zip(totals.catalog.activities, totals.signals.T, strict=True)
        ),
        *((f"memory:{i}", c) for i, c in zip(INTENTS, totals.memory.T, strict=True)),
        *((f"topic:{t}", c) for t, c in zip(totals.topic_names, totals.topics.T, strict=True)),
        ("burst:age_days", np.where(np.isfinite(age), age, np.nan)),
        ("burst:size", totals.burst_size),
        ("history:opportunities", snapshot.opportunities),
        *(
            (f"firmographic:{c}", accounts[c].cast(pl.Float64).fill_null(np.nan).to_numpy())
            for c in _NUMERIC
        ),
        *((f"flag:{c}", accounts[c].fill_null(False).cast(pl.Float64).to_numpy()) for c in _FLAGS),
        ("flag:subsidiary", accounts["parent_id"].is_not_null().cast(pl.Float64).to_numpy()),
        *(
            (f"level:{c}", _coded(accounts[c], known))
            for c, known in zip(_CATEGORICAL, categories, strict=True)
        ),
    ]
    names = tuple(name for name, _ in named)
    return names, np.column_stack([column for _, column in named]).astype(np.float64)


def _coded(values: pl.Series, known: tuple[str, ...]) -> np.ndarray:
    """Positions of `values` among `known`; NaN for missing or unseen values."""
    codes = values.cast(pl.String).replace_strict(
        known, list(range(len(known))), default=None, return_dtype=pl.Float64
    )
    return codes.fill_null(np.nan).to_numpy()


class PeerModel:
    """Gradient boosting tuned on kept-aside training accounts, then refitted on all of them.

    `threads` caps OpenMP's threads: on a busy machine its threads wait on each other at every
    split, and one thread ran the peer 25x faster than two on a shared two-core machine.
    """

    def __init__(
        self,
        grid: Sequence[tuple[float, int]] = PEER_GRID,
        max_iter: int = 600,
        aside_share: float = 0.25,
        seed: int = 0,
        threads: int = 1,
    ) -> None:
        self.grid = grid
        self.max_iter = max_iter
        self.aside_share = aside_share
        self.seed = seed
        self.threads = threads

    def fit(self, train: Examples) -> Self:
        """Choose the settings on kept-aside accounts of `train`, then learn from all of it."""
        with threadpool_limits(self.threads, user_api="openmp"):
            return self._fit(train)

    def _fit(self, train: Examples) -> Self:
        """`fit` within the thread limit."""
        self.categories_ = _categories(train)
        design, labels, account = self.rows(train)
        self.feature_names_ = peer_features(train.snapshots[0], self.categories_)[0]
        aside = _kept_aside(account, self.aside_share, self.seed)
        self.fit_accounts_ = np.unique(account[~aside])
        self.aside_accounts_ = np.unique(account[aside])
        self.trained_dates_s_ = tuple(s.as_of_s for s in train.snapshots)
        self.choices_ = tuple(
            self._tried(rate, leaves, design, labels, aside) for rate, leaves in self.grid
        )
        self.chosen_ = chosen = max(self.choices_, key=lambda c: c.aside_auc)
        self.booster_ = self._booster(chosen.learning_rate, chosen.max_leaf_nodes, design.shape[1])
        self.booster_.set_params(max_iter=chosen.max_iter).fit(design, labels)
        return self

    def predict_proba(self, snapshot: Snapshot) -> np.ndarray:
        """Per account, the peer's chance of a qualified opportunity within the window."""
        return self.predict_rows(peer_features(snapshot, self.categories_)[1])

    def predict_rows(self, design: np.ndarray) -> np.ndarray:
        """The chance for each row of a design (columns as `peer_features` gives them)."""
        with threadpool_limits(self.threads, user_api="openmp"):
            return self.booster_.predict_proba(design)[:, 1]

    def holdout_auc(self, holdout: Examples) -> float:
        """The peer's AUC on the eligible held-out rows."""
        design, labels, _ = self.rows(holdout)
        return auc(labels, self.predict_rows(design))

    def settings(self) -> dict[str, Any]:
        """The chosen settings and every grid point's kept-aside AUC, JSON-ready."""
        return {
            "chosen": vars(self.chosen_),
            "grid": [vars(c) for c in self.choices_],
            "fit_accounts": len(self.fit_accounts_),
            "aside_accounts": len(self.aside_accounts_),
        }

    def rows(self, examples: Examples) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Design rows, labels and account rows of the eligible examples, snapshot by snapshot
        (columns named by `peer_features`)."""
        parts = [
            (peer_features(s, self.categories_)[1][e], np.flatnonzero(e))
            for s, e in zip(examples.snapshots, examples.eligible, strict=True)
        ]
        design = np.vstack([rows for rows, _ in parts])
        account = np.concatenate([ids for _, ids in parts])
        return design, examples.stacked_labels(), account

    def _booster(
        self, learning_rate: float, max_leaf_nodes: int, n_features: int
    ) -> HistGradientBoostingClassifier:
        """An unfitted booster; categorical columns come last in `peer_features`."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        categorical = np.arange(n_features) >= n_features - len(_CATEGORICAL)
        return HistGradientBoostingClassifier(
            learning_rate=learning_rate,
            max_leaf_nodes=max_leaf_nodes,
            max_iter=self.max_iter,
            min_samples_leaf=_MIN_LEAF_ROWS,
            l2_regularization=_L2,
            categorical_features=categorical,
            early_stopping=False,
            random_state=self.seed,
        )

    def _tried(
        self,
        learning_rate: float,
        max_leaf_nodes: int,
        design: np.ndarray,
        labels: np.ndarray,
        aside: np.ndarray,
    ) -> PeerChoice:
        """Grow one grid point's trees on the other accounts until `_PATIENCE` more stop lowering
        the log-loss of those aside; keep the tree count that ranks them best."""
        booster = self._booster(learning_rate, max_leaf_nodes, design.shape[1])
        booster.set_params(early_stopping=True, n_iter_no_change=_PATIENCE)
        booster.fit(design[~aside], labels[~aside], X_val=design[aside], y_val=labels[aside])
        stages = booster.staged_decision_function(design[aside])
        curve = [
            (auc(labels[aside], raw), trees)
            for trees, raw in enumerate(stages, start=1)
            if trees % _TREE_STEP == 0 or trees == booster.n_iter_
        ]
        best_auc, best_trees = max(curve, key=lambda point: (point[0], -point[1]))
        return PeerChoice(learning_rate, max_leaf_nodes, best_trees, best_auc)


def _categories(train: Examples) -> tuple[tuple[str, ...], ...]:
    """Per categorical column, its known values (the training snapshots' firmographics)."""
    frame = pl.concat([s.accounts.select(_CATEGORICAL) for s in train.snapshots])
    return tuple(
        tuple(sorted(frame[c].cast(pl.String).drop_nulls().unique().to_list()))
        for c in _CATEGORICAL
    )


def _kept_aside(account: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Per row, whether its account is among the `share` of accounts kept aside for tuning."""
    accounts = np.unique(account)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(accounts, size=max(1, round(share * len(accounts))), replace=False)
    return np.isin(account, chosen)


def fit_peer(
    history: History,
    catalog: SignalCatalog,
    settings: ModelSettings,
    disqualified: np.ndarray,
    trained_on: datetime,
    peer: PeerModel | None = None,
) -> tuple[PeerModel, Examples]:
    """The peer fitted on the training snapshots `scoring.training.train` plans for the same
    history and date (so it learns from exactly the scorecard's rows), and those snapshots."""
    plan = training_plan(history, int(trained_on.timestamp()), settings)
    window = settings.outcome_window_days
    learn = examples(history, catalog, plan.train_s, window, disqualified)
    return (peer or PeerModel()).fit(learn), learn
