"""Scoring a book of accounts: score, tier and disqualification together, then the why (D1, D2).

A disqualified account scores 0, sits in the Disqualified tier and names the rule as its reason,
whatever its signals say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from scoring.config import DisqualifierRule, TierSettings
from scoring.evaluation import ScoringModel
from scoring.explain import Explanation, explain
from scoring.features import Snapshot
from scoring.fit import disqualification
from scoring.scorecard import Contributions
from scoring.tiers import assign_tiers

__all__ = ["Scores", "score_accounts"]


@dataclass(frozen=True)
class Scores:
    """Every account's score, tier key and disqualifying rule (null if none), with the model's
    contributions behind them."""

    score: np.ndarray
    tier: np.ndarray
    disqualified_by: pl.Series
    model_version: str
    contributions: Contributions

    def explain(
        self,
        snapshot: Snapshot,
        rows: np.ndarray,
        counts: np.ndarray | None = None,
        *,
        dated: bool = False,
    ) -> list[Explanation]:
        """Explanations of `rows`; a disqualified account's names only its rule; `dated` words
        times as dates (for text written to a CRM)."""
        found = explain(self.contributions, snapshot, rows, self.model_version, counts, dated=dated)
        reasons = self.disqualified_by.gather(rows).to_list()
        return [e if r is None else e.disqualified(r) for e, r in zip(found, reasons, strict=True)]


def score_accounts(
    model: ScoringModel,
    snapshot: Snapshot,
    disqualifiers: Sequence[DisqualifierRule],
    tiers: TierSettings,
) -> Scores:
    """Score, tier and disqualify every account of `snapshot` under `model`."""
    contributions = model.contributions(snapshot)
    reason = disqualification(snapshot.accounts, disqualifiers)
    disqualified = reason.is_not_null().to_numpy()
    score = np.where(disqualified, 0, contributions.rounded()).astype(np.int16)
    tier = assign_tiers(score, disqualified, tiers)
    return Scores(score, tier, reason, model.version, contributions)
