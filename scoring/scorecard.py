"""Scorecards: a score on the 0-100 scale that is a base plus signed per-term points (D7).

Both models are scorecards. A term reads one input per account (a decayed signal, a count, a flag)
or one firmographic level ("Industry: Fintech"). Where base plus points would leave 0-100, the
points on the side that overshoots shrink in proportion, so `score == base + sum(points)` always.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

__all__ = [
    "SCORE_MAX",
    "Contributions",
    "Scorecard",
    "Term",
    "fit_into_scale",
]

SCORE_MAX = 100.0
# Rows fitted into the scale at once: keeps the temporaries small and reused.
_BLOCK_ROWS = 65_536
Transform = Literal["linear", "log1p"]


@dataclass(frozen=True)
class Term:
    """One line of a scorecard.

    `key` names the input ("signal:pricing_page", "memory:high", "history:opportunities",
    "flag:is_customer", "level:industry"); `label` is what reps read. Numeric terms give
    `weight * transform(input)` points; level terms give the points of the account's level
    (a level the card does not know gives 0); a `constant` term gives `weight` to everyone.
    """

    key: str
    label: str
    weight: float = 0.0
    transform: Transform = "linear"
    levels: tuple[tuple[str, float], ...] = ()

    @property
    def kind(self) -> str:
        """What the term reads: signal, memory, history, flag, level or constant."""
        return self.key.split(":", 1)[0]

    def unit_points(self) -> dict[str, float]:
        """Points of one unit (one fresh occurrence, one match), or of each level, by label."""
        if self.kind == "level":
            return dict(self.levels)
        return {self.label: float(self.weight * self.transformed(np.ones(1))[0])}

    def transformed(self, values: np.ndarray) -> np.ndarray:
        """The input as the weight multiplies it."""
        return np.log1p(values) if self.transform == "log1p" else values


@dataclass(frozen=True)
class Contributions:
    """Signed points per account and term; `base + points.sum(1)` is the score in 0-100."""

    base: float
    terms: tuple[Term, ...]
    points: np.ndarray
    raw: np.ndarray
    levels: pl.DataFrame

    @property
    def score(self) -> np.ndarray:
        """Scores before rounding."""
        return self.base + self.points.sum(axis=1, dtype=np.float64)

    def rounded(self) -> np.ndarray:
        """Whole-number scores, as written to the CRM."""
        return np.rint(self.score).astype(np.int16)


@dataclass(frozen=True)
class Scorecard:
    """A base and terms; `contributions` applies them to inputs."""

    base: float
    terms: tuple[Term, ...]

    def __post_init__(self) -> None:
        if not 0.0 <= self.base <= SCORE_MAX:
            raise ValueError(f"a scorecard's base must lie in 0-{SCORE_MAX:g}, got {self.base}")

    def contributions(self, numeric: Sequence[np.ndarray], levels: pl.DataFrame) -> Contributions:
        """Points for inputs: `numeric` holds a column per input-reading term, in term order;
        `levels` a column per level term, named by its key, of Enum level labels."""
        n = len(numeric[0]) if numeric else levels.height
        # Column-major, so that each term fills one contiguous column, not a strided one.
        points = np.empty((n, len(self.terms)), dtype=np.float32, order="F")
        columns = iter(numeric)
        for j, term in enumerate(self.terms):
            if term.kind == "level":
                points[:, j] = _level_points(term, levels[term.key])
            elif term.kind == "constant":
                points[:, j] = term.weight
            else:
                points[:, j] = term.weight * term.transformed(next(columns))
        raw = self.base + points.sum(axis=1, dtype=np.float64)
        for start in range(0, n, _BLOCK_ROWS):
            block = points[start : start + _BLOCK_ROWS]
            block[:] = fit_into_scale(self.base, block)
        return Contributions(self.base, self.terms, points, raw, levels)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of the card."""
        return {
            "base": self.base,
            "terms": [
                {
                    "key": t.key,
                    "label": t.label,
                    "weight": t.weight,
                    "transform": t.transform,
                    "levels": [list(level) for level in t.levels],
                }
                for t in self.terms
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scorecard:
        """The card `to_dict` wrote."""
        terms = tuple(
            Term(
                key=t["key"],
                label=t["label"],
                weight=float(t["weight"]),
                transform=t["transform"],
                levels=tuple((str(name), float(points)) for name, points in t["levels"]),
            )
            for t in data["terms"]
        )
        return cls(float(data["base"]), terms)


def _level_points(term: Term, labels: pl.Series) -> np.ndarray:
    """Points of each account's level (an Enum label); a level the card does not know gives 0."""
    table = dict(term.levels)
    categories = labels.dtype.categories.to_list()  # type: ignore[attr-defined]
    per_category = np.array([table.get(c, 0.0) for c in categories], dtype=np.float32)
    return per_category[labels.to_physical().to_numpy()]


def fit_into_scale(base: float, points: np.ndarray) -> np.ndarray:
    """Points whose sum with `base` (in 0-100) lies in 0-100: over 100 the positive points
    shrink in proportion, under 0 the negative ones; untouched inside the scale."""
    positive = np.where(points > 0, points, 0).sum(axis=1, dtype=np.float64)
    negative = np.where(points < 0, points, 0).sum(axis=1, dtype=np.float64)
    total = base + positive + negative
    over = np.maximum(total - SCORE_MAX, 0.0)
    under = np.maximum(-total, 0.0)
    keep_positive = 1.0 - np.divide(over, positive, out=np.zeros_like(over), where=over > 0)
    keep_negative = 1.0 - np.divide(under, -negative, out=np.zeros_like(under), where=under > 0)
    scale = np.where(points > 0, keep_positive[:, None], keep_negative[:, None])
    return (points * scale).astype(points.dtype)
