"""The hidden ground truth of a synthetic org: true lead accounts and the buying process.

Only evaluation code (tests, benchmarks) may read this module's data; the product never does.
The oracle is the exact probability, under the generating process, that an account opens a
qualified opportunity within a window after ``as_of``, given everything latent up to ``as_of``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

__all__ = ["DAY", "GroundTruth", "Process", "epoch_seconds", "opened_within"]

DAY = 86_400


@dataclass(frozen=True)
class Process:
    """Parameters of the latent in-market process that drives intent bursts and opportunities
    (``sandbox.world`` documents each and holds the presets)."""

    bursts_per_year: float
    burst_rate_fit: float
    burst_rate_noise: float
    intensity_sigma: float
    burst_activities: float
    burst_spread_days: float
    success_base: float
    success_fit: float
    success_intensity: float
    customer_penalty: float
    delay_min_days: float
    delay_mean_days: float
    noise_opps_per_year: float
    noise_opp_fit: float

    def success_logit(
        self, fit: np.ndarray, log_intensity: np.ndarray, customer: np.ndarray
    ) -> np.ndarray:
        """Log-odds that a burst turns into a qualified opportunity."""
        return (
            self.success_base
            + self.success_fit * fit
            + self.success_intensity * log_intensity
            + self.customer_penalty * customer
        )

    def delay_cdf(self, days: np.ndarray) -> np.ndarray:
        """P(opportunity opens within ``days`` of the burst start | the burst succeeds)."""
        x = np.maximum(np.asarray(days, dtype=np.float64) - self.delay_min_days, 0.0)
        return 1.0 - np.exp(-x / self.delay_mean_days)

    def delay_cdf_integral(self, days: float) -> float:
        """Integral of ``delay_cdf`` from 0 to ``days`` (for bursts that start inside a window)."""
        x = max(days - self.delay_min_days, 0.0)
        return x - self.delay_mean_days * (1.0 - np.exp(-x / self.delay_mean_days))


def epoch_seconds(when: datetime) -> int:
    """Whole seconds since the epoch of an aware datetime."""
    if when.tzinfo is None:
        raise ValueError("expected a timezone-aware datetime")
    return int(when.timestamp())


@dataclass(frozen=True)
class GroundTruth:
    """What really happened in a synthetic org, kept apart from the CRM-visible records.

    ``people``: person_id, true_account_id (null for true orphans), true_company, duplicate_of.
    ``accounts``: account_id, fit, burst_rate (per day), mean_success, opp_hazard (per day),
    duplicate_of, preferred_topic, is_competitor.
    ``bursts``: account_id, start (epoch s), intensity, success_p, topic, opportunity_id.
    """

    people: pl.DataFrame
    accounts: pl.DataFrame
    bursts: pl.DataFrame
    process: Process

    def oracle_probability(self, as_of: datetime, window_days: float = 90.0) -> np.ndarray:
        """Per account (indexed by id), P(an opportunity opens in (as_of, as_of + window])."""
        t = epoch_seconds(as_of)
        accounts = self.accounts.sort("account_id")
        n = accounts.height
        log_miss = self._log_miss_from_past_bursts(t, window_days, n)
        rate = accounts["burst_rate"].to_numpy() * accounts["mean_success"].to_numpy()
        log_miss -= rate * self.process.delay_cdf_integral(window_days)
        log_miss -= accounts["opp_hazard"].to_numpy() * window_days
        return -np.expm1(log_miss)

    def _log_miss_from_past_bursts(self, t: int, window_days: float, n: int) -> np.ndarray:
        """Sum over bursts started by ``t`` of log P(that burst opens nothing in the window)."""
        past = self.bursts.filter(pl.col("start") <= t)
        age = (t - past["start"].to_numpy()) / DAY
        p_in_window = past["success_p"].to_numpy() * (
            self.process.delay_cdf(age + window_days) - self.process.delay_cdf(age)
        )
        return np.bincount(
            past["account_id"].to_numpy(), weights=np.log1p(-p_in_window), minlength=n
        )


def opened_within(
    opportunities: pl.DataFrame, n_accounts: int, as_of: datetime, window_days: float = 90.0
) -> np.ndarray:
    """Per account, whether an opportunity opened in (as_of, as_of + window]: the label."""
    start = epoch_seconds(as_of)
    opened = opportunities["opened_at"].dt.epoch("s").to_numpy()
    hit = (opened > start) & (opened <= start + window_days * DAY)
    ids = opportunities["account_id"].to_numpy()[hit]
    return np.bincount(ids, minlength=n_accounts) > 0
