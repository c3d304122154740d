"""Intent signals: the catalog from settings, exponential decay, running and batch sums (D4, D5).

A signal's value halves every `half_life_days`. Each account keeps three families of decayed sums
of occurrences: per signal at the signal's own half-life (what the scorecards read), per intent
class at the long memory half-life (how often an account has been in market), and per content topic
at the default half-life (what recent intent was about); beside them, its latest intent burst
(`scoring.bursts`). One new activity updates one account in O(1) through `RunningSums`;
`decayed_totals` rescores every account at once, vectorised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from scoring.bursts import BURST_INTENTS, Burst, latest_bursts
from scoring.config import Intent, ModelSettings, SignalSpec

__all__ = [
    "DAY_SECONDS",
    "INTENTS",
    "Activities",
    "DecayedSum",
    "RunningSums",
    "SignalCatalog",
    "SignalTotals",
    "decayed_totals",
    "decayed_values",
]

DAY_SECONDS = 86_400
INTENTS: tuple[Intent, ...] = ("high", "medium", "passive")
# Accounts summed at once: small enough that every temporary array is reused, not re-allocated.
_BLOCK_ACCOUNTS = 16_384


@dataclass(frozen=True)
class SignalCatalog:
    """The scoring activity types, in settings order, with every half-life resolved, and the
    longest pause within an intent burst."""

    signals: tuple[SignalSpec, ...]
    topic_half_life_days: float
    memory_half_life_days: float
    burst_gap_days: float

    @classmethod
    def from_settings(cls, signals: Sequence[SignalSpec], model: ModelSettings) -> SignalCatalog:
        """The catalog of `[[signals]]`; a signal without a half-life gets the default."""
        days = model.default_half_life_days
        resolved = tuple(
            s if s.half_life_days is not None else s.model_copy(update={"half_life_days": days})
            for s in signals
        )
        return cls(resolved, days, model.memory_half_life_days, model.burst_gap_days)

    @property
    def activities(self) -> tuple[str, ...]:
        """Activity type keys, one per signal, in catalog order."""
        return tuple(s.activity for s in self.signals)

    @property
    def half_lives(self) -> np.ndarray:
        """Half-life in days per signal."""
        return np.array([s.half_life_days for s in self.signals], dtype=np.float64)

    @property
    def intent_codes(self) -> np.ndarray:
        """Index into `INTENTS` per signal."""
        return np.array([INTENTS.index(s.intent) for s in self.signals], dtype=np.int8)

    @property
    def forms_bursts(self) -> np.ndarray:
        """Whether a signal's intent class is one intent bursts are made of."""
        return np.array([s.intent in BURST_INTENTS for s in self.signals], dtype=bool)

    @property
    def burst_gap_s(self) -> float:
        """The longest pause within a burst, in seconds."""
        return self.burst_gap_days * DAY_SECONDS

    @property
    def carries_topic(self) -> np.ndarray:
        """Whether a signal's content topic counts toward the dominant topic."""
        return np.array([s.topic_from_activity for s in self.signals], dtype=bool)

    def index(self, activity: str) -> int:
        """Position of an activity type in the catalog."""
        try:
            return self.activities.index(activity)
        except ValueError:
            raise KeyError(f"activity type {activity!r} is not in the signal catalog") from None


@dataclass(frozen=True)
class Activities:
    """Account-linked activities as parallel arrays (the batch input).

    `account` is the account's row position, `signal` its catalog position, `occurred_s` epoch
    seconds and `topic` a position in `topic_names` (-1: none).
    """

    account: np.ndarray
    signal: np.ndarray
    occurred_s: np.ndarray
    topic: np.ndarray
    topic_names: tuple[str, ...]

    def gathered(self, order: np.ndarray) -> Activities:
        """The activities at positions `order`."""
        return replace(
            self,
            account=self.account[order],
            signal=self.signal[order],
            occurred_s=self.occurred_s[order],
            topic=self.topic[order],
        )


def _ascending(values: np.ndarray, chunk: int = 1 << 20) -> bool:
    """Whether `values` never decrease, checked a chunk at a time (no large temporary)."""
    pairs = len(values) - 1
    return all(
        bool(np.all(values[i + 1 : min(i + chunk, pairs) + 1] >= values[i : min(i + chunk, pairs)]))
        for i in range(0, max(pairs, 0), chunk)
    )


@dataclass(frozen=True)
class SignalTotals:
    """Decayed sums of occurrences per account as of one moment, from `decayed_totals`, and the
    start (epoch seconds) and size of each account's latest burst (size 0: none)."""

    as_of_s: int
    catalog: SignalCatalog
    signals: np.ndarray
    memory: np.ndarray
    topics: np.ndarray
    topic_names: tuple[str, ...]
    burst_start_s: np.ndarray
    burst_size: np.ndarray

    @property
    def burst_age_days(self) -> np.ndarray:
        """Days from each account's latest burst start to the moment; infinite without one."""
        age = (self.as_of_s - self.burst_start_s) * (1 / DAY_SECONDS)
        return np.where(self.burst_size > 0, age, np.inf)


def decayed_totals(
    catalog: SignalCatalog, activities: Activities, n_accounts: int, as_of_s: int
) -> SignalTotals:
    """Every account's decayed sums as of `as_of_s`, from activities before it.

    Vectorised per block of `_BLOCK_ACCOUNTS` accounts, so every temporary array stays small
    and memory stays flat; activities ordered by account need no regrouping.
    """
    firsts = np.arange(0, n_accounts + _BLOCK_ACCOUNTS, _BLOCK_ACCOUNTS).clip(max=n_accounts)
    grouped, bounds = _grouped(activities, firsts)
    totals = SignalTotals(
        as_of_s,
        catalog,
        np.zeros((n_accounts, len(catalog.signals)), dtype=np.float32),
        np.zeros((n_accounts, len(INTENTS)), dtype=np.float32),
        np.zeros((n_accounts, len(grouped.topic_names)), dtype=np.float32),
        grouped.topic_names,
        np.zeros(n_accounts, dtype=np.int64),
        np.zeros(n_accounts, dtype=np.int32),
    )
    for first, last, start, stop in zip(
        firsts[:-1], firsts[1:], bounds[:-1], bounds[1:], strict=True
    ):
        _add_block(totals, grouped, slice(first, last), slice(start, stop))
    return totals


def _grouped(activities: Activities, firsts: np.ndarray) -> tuple[Activities, np.ndarray]:
    """Activities grouped by block of accounts, and the row where each block starts.

    Activities ordered by account are used as they are; others are grouped by a stable radix
    sort of their block number, much cheaper than sorting by account.
    """
    if _ascending(activities.account):
        return activities, np.searchsorted(activities.account, firsts)
    block = (activities.account // _BLOCK_ACCOUNTS).astype(np.uint16)
    counts = np.bincount(block, minlength=len(firsts))[: len(firsts) - 1]
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return activities.gathered(np.argsort(block, kind="stable")), bounds


def _add_block(totals: SignalTotals, activities: Activities, accounts: slice, rows: slice) -> None:
    """Fill the sums and latest bursts of one block of accounts from its activities (`rows`)."""
    catalog, as_of_s = totals.catalog, totals.as_of_s
    occurred = activities.occurred_s[rows]
    account = activities.account[rows]
    past = (occurred < as_of_s) & (account < accounts.stop)
    account = account[past].astype(np.int64) - accounts.start
    signal = activities.signal[rows][past]
    occurred = occurred[past]
    age_days = (as_of_s - occurred).astype(np.float32) * np.float32(1 / DAY_SECONDS)
    inverse = (-1 / catalog.half_lives).astype(np.float32)
    signals = totals.signals[accounts]
    signals[:] = _sums(account, signal, signals.shape, np.exp2(age_days * inverse[signal]))
    memory = totals.memory[accounts]
    memory_weight = np.exp2(age_days * np.float32(-1 / catalog.memory_half_life_days))
    memory[:] = _sums(account, catalog.intent_codes[signal], memory.shape, memory_weight)
    topic = activities.topic[rows][past]
    topical = (topic >= 0) & catalog.carries_topic[signal]
    topics = totals.topics[accounts]
    topic_weight = np.exp2(age_days[topical] * np.float32(-1 / catalog.topic_half_life_days))
    topics[:] = _sums(account[topical], topic[topical], topics.shape, topic_weight)
    bursting = catalog.forms_bursts[signal]
    totals.burst_start_s[accounts], totals.burst_size[accounts] = latest_bursts(
        account[bursting], occurred[bursting], len(signals), catalog.burst_gap_s
    )


def _sums(
    account: np.ndarray, column: np.ndarray, shape: tuple[int, ...], weight: np.ndarray
) -> np.ndarray:
    """Weights summed per (account, column) cell by one `bincount`, as an accounts x columns
    matrix."""
    cells = np.bincount(account * shape[1] + column, weights=weight, minlength=shape[0] * shape[1])
    return cells.reshape(shape)


@dataclass(frozen=True)
class DecayedSum:
    """S(t) = S(t0) * 2^(-(t - t0) / h) + w, kept as the value at its last update `at_s`.

    Every occurrence weighs w = 1: the sums count decayed occurrences, the models add points.
    """

    value: float = 0.0
    at_s: int = 0

    def added(self, at_s: int, half_life_days: float) -> DecayedSum:
        """The sum after one occurrence at `at_s`; late arrivals are decayed to the sum's time."""
        if self.value == 0.0 or at_s >= self.at_s:
            return DecayedSum(self.value_at(at_s, half_life_days) + 1.0, at_s)
        return DecayedSum(self.value + _decay_s(self.at_s - at_s, half_life_days), self.at_s)

    def value_at(self, at_s: int, half_life_days: float) -> float:
        """The sum as of `at_s`, which may not precede the last update."""
        if self.value == 0.0:
            return 0.0
        if at_s < self.at_s:
            raise ValueError("a running sum cannot be read before its last update")
        return self.value * _decay_s(at_s - self.at_s, half_life_days)


def decayed_values(
    value: np.ndarray, at_s: np.ndarray, half_life_days: np.ndarray | float, as_of_s: int
) -> np.ndarray:
    """Many `DecayedSum`s, as arrays of their values and last updates, read as of `as_of_s` at
    once (`DecayedSum.value_at`, vectorised); `half_life_days` broadcasts over the columns."""
    live = value != 0.0
    if np.any(at_s[live] > as_of_s):
        raise ValueError("a running sum cannot be read before its last update")
    age_days = np.where(live, as_of_s - at_s, 0) * (1 / DAY_SECONDS)
    return np.where(live, value * np.exp2(-age_days / half_life_days), 0.0)


def _decay_s(age_s: int, half_life_days: float) -> float:
    """What one occurrence `age_s` seconds old is worth: 2^(-age / half-life)."""
    return float(2.0 ** (-age_s / (half_life_days * DAY_SECONDS)))


@dataclass(frozen=True)
class RunningSums:
    """One account's decayed sums and latest burst, updated in O(1) per new activity (the
    incremental path): the work per activity depends on the catalog's size, never on the
    account's history."""

    signals: tuple[DecayedSum, ...]
    memory: tuple[DecayedSum, ...]
    topics: tuple[DecayedSum, ...]
    burst: Burst

    @classmethod
    def empty(cls, catalog: SignalCatalog, n_topics: int) -> RunningSums:
        """Sums of an account without activity."""
        return cls(
            (DecayedSum(),) * len(catalog.signals),
            (DecayedSum(),) * len(INTENTS),
            (DecayedSum(),) * n_topics,
            Burst(),
        )

    def added(self, catalog: SignalCatalog, signal: int, at_s: int, topic: int = -1) -> RunningSums:
        """The sums after one activity: advances one sum of each family, and the latest burst
        if the activity's intent class forms bursts."""
        half_life = float(catalog.half_lives[signal])
        intent = int(catalog.intent_codes[signal])
        signals = _with(self.signals, signal, half_life, at_s)
        memory = _with(self.memory, intent, catalog.memory_half_life_days, at_s)
        topics = self.topics
        if topic >= 0 and catalog.signals[signal].topic_from_activity:
            topics = _with(topics, topic, catalog.topic_half_life_days, at_s)
        burst = self.burst
        if catalog.forms_bursts[signal]:
            burst = burst.added(at_s, catalog.burst_gap_s)
        return RunningSums(signals, memory, topics, burst)

    def totals(
        self, catalog: SignalCatalog, as_of_s: int, topic_names: tuple[str, ...]
    ) -> SignalTotals:
        """The account's sums as of `as_of_s`, shaped like one row of `decayed_totals`."""
        signals = [
            s.value_at(as_of_s, h) for s, h in zip(self.signals, catalog.half_lives, strict=True)
        ]
        memory = [m.value_at(as_of_s, catalog.memory_half_life_days) for m in self.memory]
        topics = [t.value_at(as_of_s, catalog.topic_half_life_days) for t in self.topics]
        return SignalTotals(
            as_of_s,
            catalog,
            np.array([signals], dtype=np.float32),
            np.array([memory], dtype=np.float32),
            np.array([topics], dtype=np.float32).reshape(1, len(topics)),
            topic_names,
            np.array([self.burst.start_s], dtype=np.int64),
            np.array([self.burst.size], dtype=np.int32),
        )


def _with(
    sums: tuple[DecayedSum, ...], index: int, half_life_days: float, at_s: int
) -> tuple[DecayedSum, ...]:
    """`sums` with one member advanced by an occurrence at `at_s`."""
    updated = sums[index].added(at_s, half_life_days)
    return (*sums[:index], updated, *sums[index + 1 :])
