"""Vectorised drawing helpers shared by the org generator's parts."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np
import polars as pl

__all__ = ["fold_ascii", "gather", "nullable", "pick", "pick_within", "stream", "to_utc"]

_NOT_DECOMPOSED = str.maketrans(
    {
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "đ": "d",
        "Đ": "D",
    }
)


def stream(seed: int, part: int) -> np.random.Generator:
    """An independent random stream per generator part, so changing one part leaves the others."""
    return np.random.default_rng([seed, part])


def pick(
    rng: np.random.Generator, n_options: int, size: int, weights: Sequence[float] | None = None
) -> np.ndarray:
    """Draw ``size`` option indices, uniformly or by (unnormalised) weights."""
    if weights is None:
        return rng.integers(0, n_options, size=size)
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(n_options, size=size, p=p / p.sum())


def pick_within(
    rng: np.random.Generator, group: np.ndarray, lists: Sequence[Sequence[str]]
) -> tuple[list[str], np.ndarray]:
    """One uniform draw per row from its group's list: the flattened values and the indices."""
    lens = np.array([len(options) for options in lists])
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]])
    idx = offsets[group] + (rng.random(len(group)) * lens[group]).astype(np.int64)
    return [value for options in lists for value in options], idx


def gather(values: Sequence[str], idx: np.ndarray) -> pl.Series:
    """The strings at ``idx`` as an Arrow-backed Series (no per-row Python work)."""
    return pl.Series(values=list(values), dtype=pl.String).gather(idx)


def fold_ascii(text: str) -> str:
    """Accents and ligatures folded to ASCII ("Zürcher" -> "Zurcher")."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_NOT_DECOMPOSED))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def to_utc(seconds: pl.Expr) -> pl.Expr:
    """Epoch seconds as a timezone-aware UTC datetime column."""
    return pl.from_epoch(seconds, time_unit="s").dt.replace_time_zone("UTC")


def nullable(values: np.ndarray, dtype: pl.DataType = pl.UInt32) -> pl.Series:
    """Non-negative values as ``dtype``; negative ones (our "missing" marker) become null."""
    series = pl.Series(values)
    return pl.select(pl.when(series >= 0).then(series).cast(dtype)).to_series()
