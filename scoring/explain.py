"""The why of a score in plain language, sized for CRM text fields (D7).

Each term's points become a sentence ("Visited pricing 3x in the last 7 days (+18)", "Industry:
Fintech (+8)"), strongest first; the latest intent burst's terms read as one ("Intent burst started
5 days ago, 12 activities (+9)", or of a single activity "One intent activity 3 days ago (+2)"); a
disqualified account gets only its rule ("Restricted country: disqualified"). The dominant content
topic of recent intent is reported beside them. Each sentence keeps the key of its term, so two
explanations compare by their reasons, not their words. ``dated`` words times as dates ("Visited
pricing 3x in the 7 days to 28 Nov", "Intent burst since 28 Nov"): text written to a CRM stays true
as days pass, so a rescore need not rewrite it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any

import numpy as np

from scoring.features import Snapshot
from scoring.scorecard import Contributions, Term
from scoring.signals import DAY_SECONDS, Activities

__all__ = [
    "EXPLAIN_WINDOWS_DAYS",
    "LONG_TEXT_CHARS",
    "TEXT_FIELD_CHARS",
    "Explanation",
    "dominant_topics",
    "explain",
    "fit_text",
    "phrase_of",
    "recent_counts",
]

TEXT_FIELD_CHARS = 255
LONG_TEXT_CHARS = 32_768
EXPLAIN_WINDOWS_DAYS = (7, 30, 90)
_MIN_TOPIC_WEIGHT = 0.5
_SEPARATOR = "; "
_BLOCK_ROWS = 16_384  # rows explained at once: the ranking's temporaries stay a few MB


@dataclass(frozen=True)
class Explanation:
    """One account's score, the reasons behind it (strongest first) and its lead topic."""

    score: int
    reasons: tuple[str, ...]
    topic: str | None
    model_version: str
    keys: tuple[str, ...] = ()  # the term behind each reason ("signal:pricing_page", "burst")
    points: tuple[float, ...] = ()  # what each reason adds

    def summary(self, max_chars: int = TEXT_FIELD_CHARS) -> str:
        """The strongest reasons that fit a short text field, separated by `; `."""
        return fit_text(self.reasons, max_chars, _SEPARATOR)

    def details(self, max_chars: int = LONG_TEXT_CHARS) -> str:
        """Every reason, one a line, for a long text field."""
        return fit_text(self.reasons, max_chars, "\n")

    def disqualified(self, rule: str) -> Explanation:
        """This account disqualified by `rule`: score 0 and the rule as the only reason."""
        return replace(
            self,
            score=0,
            reasons=(f"{rule}: disqualified",),
            keys=(f"disqualified:{rule}",),
            points=(0.0,),
        )


def fit_text(sentences: tuple[str, ...], max_chars: int, separator: str) -> str:
    """As many whole sentences as fit in `max_chars`; a first sentence too long is cut with `…`."""
    if sentences and len(sentences[0]) > max_chars:
        return sentences[0][: max_chars - 1] + "…"
    text = ""
    for sentence in sentences:
        longer = f"{text}{separator}{sentence}" if text else sentence
        if len(longer) > max_chars:
            break
        text = longer
    return text


def recent_counts(
    activities: Activities, n_accounts: int, n_signals: int, as_of_s: int
) -> np.ndarray:
    """(accounts x signals x windows) occurrences within each of `EXPLAIN_WINDOWS_DAYS` before
    `as_of_s`, for the sentences."""
    windows_s = np.array(EXPLAIN_WINDOWS_DAYS, dtype=np.int64) * DAY_SECONDS
    age_s = as_of_s - activities.occurred_s
    recent = (age_s > 0) & (age_s <= windows_s[-1])
    bucket = np.searchsorted(windows_s, age_s[recent], side="left")
    width = len(windows_s)
    cell = (
        activities.account[recent].astype(np.int64) * n_signals + activities.signal[recent]
    ) * width
    counts = np.bincount(cell + bucket, minlength=n_accounts * n_signals * width)
    return np.cumsum(counts.reshape(n_accounts, n_signals, width), axis=2).astype(np.int32)


def dominant_topics(snapshot: Snapshot, rows: np.ndarray) -> list[str | None]:
    """Each row's content topic with the most decayed weight, if at least one recent
    occurrence."""
    weights = snapshot.totals.topics[rows]
    if not weights.shape[1]:
        return [None] * len(rows)
    names = [_topic_name(name) for name in snapshot.totals.topic_names]
    strongest, best = weights.max(axis=1).tolist(), weights.argmax(axis=1).tolist()
    return [
        None if w < _MIN_TOPIC_WEIGHT else names[b] for w, b in zip(strongest, best, strict=True)
    ]


def _topic_name(topic: str) -> str:
    """A topic as a rep reads it: `Security`, `AI`."""
    return topic.upper() if len(topic) <= 2 else topic[:1].upper() + topic[1:]


def explain(
    contributions: Contributions,
    snapshot: Snapshot,
    rows: np.ndarray,
    model_version: str,
    counts: np.ndarray | None = None,
    *,
    dated: bool = False,
) -> list[Explanation]:
    """Explanations of `rows`; `counts` (from `recent_counts`) says how often and how recently;
    `dated` words times as dates rather than ages.

    Vectorised over a block of rows at a time (`_BLOCK_ROWS`, so the temporaries stay small):
    the terms are ranked for all of them at once, and each term's sentences are worded for
    every row that shows it together (a wording repeats, so each is made once)."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    scores = contributions.rounded()
    found: list[Explanation] = []
    for first in range(0, len(rows), _BLOCK_ROWS):
        block = rows[first : first + _BLOCK_ROWS]
        explained = _explained(contributions, snapshot, block, scores, counts, dated)
        found.extend(
            Explanation(
                score=score,
                reasons=reasons,
                topic=topic,
                model_version=model_version,
                keys=keys,
                points=points,
            )
            for score, reasons, topic, keys, points in explained
        )
    return found


_Explained = tuple[int, tuple[str, ...], str | None, tuple[str, ...], tuple[float, ...]]


def _explained(
    contributions: Contributions,
    snapshot: Snapshot,
    rows: np.ndarray,
    scores: np.ndarray,
    counts: np.ndarray | None,
    dated: bool,
) -> Iterator[_Explained]:
    """Score, reasons, topic, keys and points of each of `rows`."""
    points = _bursts_merged(contributions.terms, contributions.points[rows])
    order = np.argsort(-np.abs(points), axis=1, kind="stable")
    ranked = np.take_along_axis(points, order, axis=1)
    # strongest first, so the terms worth at least half a point are a prefix of each row
    shown = (np.abs(ranked) >= 0.5).sum(axis=1)
    at, rank = np.nonzero(np.arange(points.shape[1]) < shown[:, None])
    terms, worth = order[at, rank], ranked[at, rank].tolist()
    phrases = _phrases(contributions, snapshot, rows[at], terms, counts, dated)
    reasons = [f"{phrase} ({_signed(p)})" for phrase, p in zip(phrases, worth, strict=True)]
    keys = [contributions.terms[j].key for j in terms.tolist()]
    ends = np.cumsum(shown)
    for score, topic, start, end in zip(
        scores[rows].tolist(),
        dominant_topics(snapshot, rows),
        (ends - shown).tolist(),
        ends.tolist(),
        strict=True,
    ):
        yield (
            score,
            tuple(reasons[start:end]),
            topic,
            tuple(keys[start:end]),
            tuple(worth[start:end]),
        )


def _bursts_merged(terms: tuple[Term, ...], points: np.ndarray) -> np.ndarray:
    """`points` (rows x terms) with the burst terms' sum on the first of them and 0 on the
    others. The sum is float32's, as one row's `sum()` adds them: a row with at most two of
    them non-zero (the latest burst's bin) sums so in any order; another, row by row."""
    burst = [j for j, term in enumerate(terms) if term.kind == "burst"]
    if not burst:
        return points
    merged = points.copy()
    parts = points[:, burst]
    merged[:, burst[0]] = parts.sum(axis=1)
    for row in np.flatnonzero(np.count_nonzero(parts, axis=1) > 2).tolist():
        merged[row, burst[0]] = parts[row].sum()
    merged[:, burst[1:]] = 0
    return merged


def _signed(points: float) -> str:
    """Whole points with their sign: `+18`, `-4`."""
    return f"{round(float(points)):+d}"


_WHOLE_POINTS = re.compile(r" \([+-]\d+\)$")  # what `_explained` adds to a phrase


def phrase_of(sentence: str) -> str:
    """A reason's sentence without its whole points, for a reader that shows the points apart:
    "Industry: Fintech (+8)" -> "Industry: Fintech"."""
    return _WHOLE_POINTS.sub("", sentence)


def _phrases(
    contributions: Contributions,
    snapshot: Snapshot,
    rows: np.ndarray,
    terms: np.ndarray,
    counts: np.ndarray | None,
    dated: bool,
) -> list[str]:
    """What term ``terms[i]`` says about the account at ``rows[i]``, for every i, worded a
    term at a time."""
    phrases = [""] * len(rows)
    by_term = np.argsort(terms, kind="stable")
    found, firsts = np.unique(terms[by_term], return_index=True)
    for j, cells in zip(found.tolist(), np.split(by_term, firsts)[1:], strict=True):
        worded = _term_phrases(contributions, snapshot, rows[cells], j, counts, dated)
        for cell, phrase in zip(cells.tolist(), worded, strict=True):
            phrases[cell] = phrase
    return phrases


def _term_phrases(
    contributions: Contributions,
    snapshot: Snapshot,
    rows: np.ndarray,
    j: int,
    counts: np.ndarray | None,
    dated: bool,
) -> list[str]:
    """What term `j` says about each account of `rows`."""
    term = contributions.terms[j]
    if term.kind == "level":
        return [str(level) for level in contributions.levels[term.key].gather(rows).to_list()]
    if term.kind == "signal":
        return _signal_phrases(term, snapshot, rows, counts, dated)
    if term.kind == "burst":
        totals = snapshot.totals
        starts, sizes = totals.burst_start_s[rows].tolist(), totals.burst_size[rows].tolist()
        bursts = zip(starts, sizes, strict=True)
        return _worded(bursts, lambda burst: _burst_phrase(totals.as_of_s, *burst, dated))
    if term.kind == "history":
        return _worded(snapshot.opportunities[rows].tolist(), _history_phrase)
    return [term.label] * len(rows)


def _worded(cases: Iterable[Hashable], word: Callable[[Any], str]) -> list[str]:
    """``word`` of each case, worded once per distinct case."""
    memo: dict[Hashable, str] = {}
    found = []
    for case in cases:
        phrase = memo.get(case)
        if phrase is None:
            phrase = memo[case] = word(case)
        found.append(phrase)
    return found


def _history_phrase(earlier: int) -> str:
    """`2 earlier opportunities`."""
    return f"{earlier} earlier opportunit{'y' if earlier == 1 else 'ies'}"


def _signal_phrases(
    term: Term, snapshot: Snapshot, rows: np.ndarray, counts: np.ndarray | None, dated: bool
) -> list[str]:
    """`Visited pricing 3x in the last 7 days` (dated: `in the 7 days to 28 Nov`): the shortest
    window holding at least half of the last 90 days' occurrences."""
    if counts is None:
        return [f"{term.label} recently"] * len(rows)
    signal = snapshot.totals.catalog.index(term.key.split(":", 1)[1])
    per_window = counts[rows, signal]
    window = np.argmax(per_window * 2 >= per_window[:, -1:], axis=1)
    times = per_window[np.arange(len(rows)), window]
    cases = zip(window.tolist(), times.tolist(), per_window[:, -1].tolist(), strict=True)
    as_of_s = snapshot.as_of_s
    return _worded(cases, lambda case: _signal_phrase(term.label, *case, as_of_s, dated))


def _signal_phrase(
    label: str, window: int, times: int, in_90_days: int, as_of_s: int, dated: bool
) -> str:
    """The sentence of a signal that occurred ``times`` in window ``window`` (of
    `EXPLAIN_WINDOWS_DAYS`), ``in_90_days`` in the longest."""
    if in_90_days == 0:
        days = EXPLAIN_WINDOWS_DAYS[-1]
        if dated:
            return f"{label} before {_day(as_of_s - days * DAY_SECONDS)}"
        return f"{label} more than {days} days ago"
    often = f" {times}x" if times > 1 else ""
    days = EXPLAIN_WINDOWS_DAYS[window]
    if dated:  # the window's end, not its start: "since 25 Oct" read as a first visit then;
        # its last day, the window ending just before as-of (at midnight, the day before)
        return f"{label}{often} in the {days} days to {_day(as_of_s - 1)}"
    return f"{label}{often} in the last {days} days"


def _burst_phrase(as_of_s: int, start_s: int, size: int, dated: bool = False) -> str:
    """`Intent burst started 5 days ago, 12 activities` (dated: `Intent burst since 28 Nov`); a
    burst of one activity is no burst to a rep: `One intent activity 5 days ago` (dated: `One
    intent activity on 28 Nov`)."""
    days = (as_of_s - start_s) // DAY_SECONDS
    when = "today" if days == 0 else f"{days} day{'' if days == 1 else 's'} ago"
    if size == 1:
        return f"One intent activity on {_day(start_s)}" if dated else f"One intent activity {when}"
    if dated:
        return f"Intent burst since {_day(start_s)}, {size} activities"
    return f"Intent burst started {when}, {size} activities"


def _day(epoch_s: int) -> str:
    """A day as reps read it: `28 Nov`."""
    return _day_named(epoch_s // DAY_SECONDS)


@cache
def _day_named(day: int) -> str:
    """The day `day` days after 1 Jan 1970 (UTC days are whole multiples of a day's seconds)."""
    moment = datetime.fromtimestamp(day * DAY_SECONDS, UTC)
    return f"{moment.day} {moment:%b}"
