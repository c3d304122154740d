"""The why of a score in plain language, sized for CRM text fields (D7).

Each term's points become a sentence ("Visited pricing 3x in the last 7 days (+18)", "Industry:
Fintech (+8)"), strongest first; the latest intent burst's terms read as one ("Intent burst
started 5 days ago, 12 activities (+9)"); a disqualified account gets only its rule ("Restricted
country: disqualified"). The dominant content topic of recent intent is reported beside them.
Each sentence keeps the key of its term, so two explanations compare by their reasons, not their
words. ``dated`` words times as dates ("Visited pricing 3x since 21 Nov", "Intent burst since
28 Nov"): text written to a CRM stays true as days pass, so a rescore need not rewrite it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from scoring.features import Snapshot
from scoring.scorecard import Contributions, Term
from scoring.signals import DAY_SECONDS, Activities

__all__ = [
    "EXPLAIN_WINDOWS_DAYS",
    "LONG_TEXT_CHARS",
    "TEXT_FIELD_CHARS",
    "Explanation",
    "dominant_topic",
    "explain",
    "fit_text",
    "recent_counts",
]

TEXT_FIELD_CHARS = 255
LONG_TEXT_CHARS = 32_768
EXPLAIN_WINDOWS_DAYS = (7, 30, 90)
_MIN_TOPIC_WEIGHT = 0.5
_SEPARATOR = "; "


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


def dominant_topic(snapshot: Snapshot, row: int) -> str | None:
    """The content topic with the most decayed weight, if at least one recent occurrence."""
    weights = snapshot.totals.topics[row]
    if not len(weights) or weights.max() < _MIN_TOPIC_WEIGHT:
        return None
    return _topic_name(snapshot.totals.topic_names[int(weights.argmax())])


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
    `dated` words times as dates rather than ages."""
    scores = contributions.rounded()
    found = []
    for row in rows:
        terms = _strongest(contributions, int(row))
        found.append(
            Explanation(
                score=int(scores[row]),
                reasons=tuple(
                    f"{_phrase(contributions, snapshot, int(row), j, counts, dated)} "
                    f"({_signed(points)})"
                    for j, points in terms
                ),
                topic=dominant_topic(snapshot, int(row)),
                model_version=model_version,
                keys=tuple(contributions.terms[j].key for j, _ in terms),
                points=tuple(points for _, points in terms),
            )
        )
    return found


def _strongest(contributions: Contributions, row: int) -> list[tuple[int, float]]:
    """(term, points) of the terms worth at least half a point, strongest first."""
    points = _bursts_merged(contributions.terms, contributions.points[row])
    order = np.argsort(-np.abs(points), kind="stable")
    return [(int(j), float(points[j])) for j in order if abs(points[j]) >= 0.5]


def _bursts_merged(terms: tuple[Term, ...], points: np.ndarray) -> np.ndarray:
    """`points` with the burst terms' sum on the first of them and 0 on the others."""
    burst = [j for j, term in enumerate(terms) if term.kind == "burst"]
    if not burst:
        return points
    merged = points.copy()
    merged[burst[0]] = points[burst].sum()
    merged[burst[1:]] = 0
    return merged


def _signed(points: float) -> str:
    """Whole points with their sign: `+18`, `-4`."""
    return f"{round(float(points)):+d}"


def _phrase(
    contributions: Contributions,
    snapshot: Snapshot,
    row: int,
    j: int,
    counts: np.ndarray | None,
    dated: bool = False,
) -> str:
    """What term `j` says about the account at `row`."""
    term = contributions.terms[j]
    if term.kind == "level":
        return str(contributions.levels[term.key][row])
    if term.kind == "signal":
        return _signal_phrase(term, snapshot, row, counts, dated)
    if term.kind == "burst":
        return _burst_phrase(snapshot, row, dated)
    if term.kind == "history":
        earlier = int(snapshot.opportunities[row])
        return f"{earlier} earlier opportunit{'y' if earlier == 1 else 'ies'}"
    return term.label


def _signal_phrase(
    term: Term, snapshot: Snapshot, row: int, counts: np.ndarray | None, dated: bool = False
) -> str:
    """`Visited pricing 3x in the last 7 days` (dated: `since 21 Nov`): the shortest window
    holding at least half of the last 90 days' occurrences."""
    if counts is None:
        return f"{term.label} recently"
    signal = snapshot.totals.catalog.index(term.key.split(":", 1)[1])
    per_window = counts[row, signal]
    as_of_s = snapshot.as_of_s
    if per_window[-1] == 0:
        days = EXPLAIN_WINDOWS_DAYS[-1]
        if dated:
            return f"{term.label} before {_day(as_of_s - days * DAY_SECONDS)}"
        return f"{term.label} more than {days} days ago"
    window = int(np.argmax(per_window * 2 >= per_window[-1]))
    times = int(per_window[window])
    often = f" {times}x" if times > 1 else ""
    days = EXPLAIN_WINDOWS_DAYS[window]
    if dated:
        return f"{term.label}{often} since {_day(as_of_s - days * DAY_SECONDS)}"
    return f"{term.label}{often} in the last {days} days"


def _burst_phrase(snapshot: Snapshot, row: int, dated: bool = False) -> str:
    """`Intent burst started 5 days ago, 12 activities` (dated: `Intent burst since 28 Nov`)."""
    totals = snapshot.totals
    start_s = int(totals.burst_start_s[row])
    size = int(totals.burst_size[row])
    activities = f"{size} activit{'y' if size == 1 else 'ies'}"
    if dated:
        return f"Intent burst since {_day(start_s)}, {activities}"
    days = (totals.as_of_s - start_s) // DAY_SECONDS
    when = "today" if days == 0 else f"{days} day{'' if days == 1 else 's'} ago"
    return f"Intent burst started {when}, {activities}"


def _day(epoch_s: int) -> str:
    """A day as reps read it: `28 Nov`."""
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return f"{moment.day} {moment:%b}"
