"""Point-in-time snapshots of an org's history: what a model may know about each account at `t`.

A snapshot as of `t` reads only activities strictly before `t` and opportunities opened at or
before `t`; its label is whether a qualified opportunity opened in `(t, t + window]` (D6).
Firmographics are today's values: CRMs keep no history of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from scoring.fit import FIRMOGRAPHICS
from scoring.signals import DAY_SECONDS, Activities, SignalCatalog, SignalTotals, decayed_totals

__all__ = ["NEVER", "Examples", "History", "Snapshot", "examples", "outcomes", "snapshot"]

NEVER = np.iinfo(np.int64).max


@dataclass(frozen=True)
class History:
    """An org's CRM-visible history as arrays keyed by account row (see `from_frames`)."""

    accounts: pl.DataFrame
    created_s: np.ndarray
    activities: Activities
    opportunity_account: np.ndarray
    opportunity_opened_s: np.ndarray
    opportunity_closed_s: np.ndarray

    @classmethod
    def from_frames(
        cls,
        catalog: SignalCatalog,
        accounts: pl.DataFrame,
        activities: pl.DataFrame,
        opportunities: pl.DataFrame,
    ) -> History:
        """History from CRM frames; activities must already be linked to accounts.

        accounts: account_id, created_at and `FIRMOGRAPHICS`; activities: account_id, type,
        topic, occurred_at; opportunities: account_id, opened_at, close_at, is_closed. Activities
        of other accounts or of types outside the catalog are dropped.
        """
        rows = accounts.select("account_id").with_row_index("row")
        opps = opportunities.join(rows, on="account_id")
        closed = pl.when("is_closed").then(pl.col("close_at").dt.epoch("s")).otherwise(NEVER)
        return cls(
            accounts=accounts.select(FIRMOGRAPHICS),
            created_s=accounts["created_at"].dt.epoch("s").to_numpy(),
            activities=_activities(catalog, activities.join(rows, on="account_id")),
            opportunity_account=opps["row"].to_numpy().astype(np.int64),
            opportunity_opened_s=opps["opened_at"].dt.epoch("s").to_numpy(),
            opportunity_closed_s=opps.select(closed).to_series().to_numpy(),
        )

    @property
    def n_accounts(self) -> int:
        """Number of accounts."""
        return self.accounts.height

    def first_activity_s(self) -> int:
        """Epoch seconds of the first scoring activity (`NEVER` without one): the signals fill up
        from there, however much older the org's opportunities are."""
        return int(self.activities.occurred_s.min(initial=NEVER))


def _activities(catalog: SignalCatalog, linked: pl.DataFrame) -> Activities:
    """Linked activity rows as catalog-coded arrays."""
    typed = linked.with_columns(pl.col("type").cast(pl.String), pl.col("topic").cast(pl.String))
    known = typed.filter(pl.col("type").is_in(catalog.activities))
    topics = tuple(sorted(known["topic"].drop_nulls().unique().to_list()))
    codes = known.sort("row", "occurred_at").select(
        pl.col("row").cast(pl.Int64),
        pl.col("type").replace_strict(
            catalog.activities, list(range(len(catalog.activities))), return_dtype=pl.Int16
        ),
        pl.col("occurred_at").dt.epoch("s"),
        pl.col("topic")
        .replace_strict(topics, list(range(len(topics))), default=-1, return_dtype=pl.Int8)
        .fill_null(-1),
    )
    return Activities(
        account=codes["row"].to_numpy(),
        signal=codes["type"].to_numpy().astype(np.int16),
        occurred_s=codes["occurred_at"].to_numpy(),
        topic=codes["topic"].to_numpy().astype(np.int8),
        topic_names=topics,
    )


@dataclass(frozen=True)
class Snapshot:
    """What the scorecards read about every account as of one moment."""

    totals: SignalTotals
    opportunities: np.ndarray
    open_opportunity: np.ndarray
    exists: np.ndarray
    accounts: pl.DataFrame

    @property
    def as_of_s(self) -> int:
        """The moment, in epoch seconds."""
        return self.totals.as_of_s


def snapshot(history: History, catalog: SignalCatalog, as_of_s: int) -> Snapshot:
    """Every account as of `as_of_s`, from nothing that happened after it."""
    n = history.n_accounts
    opened = history.opportunity_opened_s <= as_of_s
    still_open = opened & (history.opportunity_closed_s > as_of_s)
    return Snapshot(
        totals=decayed_totals(catalog, history.activities, n, as_of_s),
        opportunities=np.bincount(history.opportunity_account[opened], minlength=n),
        open_opportunity=np.bincount(history.opportunity_account[still_open], minlength=n) > 0,
        exists=history.created_s <= as_of_s,
        accounts=history.accounts,
    )


def outcomes(history: History, as_of_s: int, window_days: float) -> np.ndarray:
    """Per account, whether a qualified opportunity opened in `(as_of, as_of + window]`."""
    opened = history.opportunity_opened_s
    hit = (opened > as_of_s) & (opened <= as_of_s + window_days * DAY_SECONDS)
    return np.bincount(history.opportunity_account[hit], minlength=history.n_accounts) > 0


@dataclass(frozen=True)
class Examples:
    """Labelled snapshots: `eligible` marks the rows a model learns from or is tested on.

    Eligible accounts existed at the snapshot, are not disqualified and have no open
    opportunity: an account already in a deal is not a hand-off, and its next opportunity is
    not what the score forecasts.
    """

    snapshots: tuple[Snapshot, ...]
    labels: tuple[np.ndarray, ...]
    eligible: tuple[np.ndarray, ...]

    @property
    def positives(self) -> int:
        """Eligible rows whose outcome was an opportunity."""
        return int(sum((y & e).sum() for y, e in zip(self.labels, self.eligible, strict=True)))

    def stacked_labels(self) -> np.ndarray:
        """Labels of the eligible rows, snapshot after snapshot."""
        return np.concatenate([y[e] for y, e in zip(self.labels, self.eligible, strict=True)])


def examples(
    history: History,
    catalog: SignalCatalog,
    dates_s: Sequence[int],
    window_days: float,
    disqualified: np.ndarray,
) -> Examples:
    """Snapshots at `dates_s` with their outcomes and eligible rows."""
    snapshots = tuple(snapshot(history, catalog, t) for t in dates_s)
    return Examples(
        snapshots=snapshots,
        labels=tuple(outcomes(history, t, window_days) for t in dates_s),
        eligible=tuple(s.exists & ~s.open_opportunity & ~disqualified for s in snapshots),
    )
