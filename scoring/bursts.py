"""Intent bursts: each account's latest run of high- and medium-intent activity (D6).

A burst is a run of high- and medium-intent activities with no pause longer than `[scoring]
burst_gap_days` between one and the next; an account's latest burst as of `t` is the one its last
such activity before `t` belongs to. When it started says where the account stands in its buying
cycle (opportunities tend to follow a burst's start by weeks); how many activities it holds says
how strongly it is in market. `Burst` keeps the latest burst in O(1) per new activity (the
incremental path); `latest_bursts` finds every account's at once, vectorised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scoring.config import Intent

__all__ = ["BURST_INTENTS", "Burst", "burst_bins", "latest_bursts"]

BURST_INTENTS: tuple[Intent, ...] = ("high", "medium")


@dataclass(frozen=True)
class Burst:
    """An account's latest burst: its first and last activity and how many it holds (0: none)."""

    start_s: int = 0
    last_s: int = 0
    size: int = 0

    def added(self, at_s: int, gap_s: float) -> Burst:
        """The latest burst after one more burst-forming activity at `at_s`.

        Exact when an account's activities arrive in time order. A late one (before `last_s`)
        joins the burst when it falls inside it or at most a gap before its start, else belongs
        to an earlier burst; joining before the start cannot see an earlier burst it may bridge
        to, which the next full rescore (`latest_bursts`) settles.
        """
        if self.size == 0 or at_s > self.last_s + gap_s:
            return Burst(at_s, at_s, 1)
        if at_s >= self.start_s:
            return Burst(self.start_s, max(self.last_s, at_s), self.size + 1)
        if at_s >= self.start_s - gap_s:
            return Burst(at_s, self.last_s, self.size + 1)
        return self


def latest_bursts(
    account: np.ndarray, occurred_s: np.ndarray, n_accounts: int, gap_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per account (positions 0 to `n_accounts` - 1), the start (epoch seconds) and size of the
    latest burst among burst-forming activities; size 0 where there are none.

    Sorted by (account, time), a burst begins at an account's first activity and after every
    pause longer than `gap_s`; each account's last activity belongs to its latest burst.
    """
    start_s = np.zeros(n_accounts, dtype=np.int64)
    size = np.zeros(n_accounts, dtype=np.int32)
    if not len(account):
        return start_s, size
    first_s = occurred_s.min()
    span = int(occurred_s.max() - first_s) + 1
    order = np.argsort(account.astype(np.int64) * span + (occurred_s - first_s), kind="stable")
    account, occurred_s = account[order], occurred_s[order]
    other_account = account[1:] != account[:-1]
    begins = np.empty(len(account), dtype=bool)
    begins[0] = True
    begins[1:] = other_account | (np.diff(occurred_s) > gap_s)
    row = np.arange(len(account))
    first = np.maximum.accumulate(np.where(begins, row, 0))
    ends = np.empty(len(account), dtype=bool)
    ends[-1] = True
    ends[:-1] = other_account
    start_s[account[ends]] = occurred_s[first[ends]]
    size[account[ends]] = row[ends] - first[ends] + 1
    return start_s, size


def burst_bins(age_days: np.ndarray, edges_days: Sequence[float]) -> np.ndarray:
    """Per account, the bin its latest burst started in, by days before the moment: bin k spans
    `edges_days[k - 1]` (0 for the first) up to `edges_days[k]`; `len(edges_days)` means no
    burst (age infinite), or one that started longer ago than the last edge."""
    edges = np.asarray(edges_days, dtype=np.float64)
    return np.searchsorted(edges, age_days, side="right")
