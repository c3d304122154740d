"""Company-name similarity: rapidfuzz scores, only between keys that share a blocking key.

The blocking key is the one-deletion neighbourhood (SymSpell's idea): two keys within one edit
(typo, swap, missing or extra letter) share a key with one letter deleted, so the few candidate
pairs come from a join instead of comparing every lead with every account.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from rapidfuzz import fuzz, process

__all__ = ["name_similarity", "name_variants", "shortest_similar", "similar_names"]

_MAX_DELETIONS = 64


def name_similarity(left: pl.Series, right: pl.Series) -> pl.Series:
    """The rapidfuzz ratio (0-100) of each pair of keys, element-wise; null where one is null."""
    scores = process.cpdist(
        left.fill_null("").to_list(),
        right.fill_null("").to_list(),
        scorer=fuzz.ratio,
        workers=-1,
        dtype=np.float32,
    )
    missing = (left.is_null() | right.is_null()).to_numpy()
    return pl.Series("similarity", scores).set(pl.Series(missing), None)


def shortest_similar(threshold: float) -> int:
    """Shortest key whose one-letter variant can still reach `threshold` (ratio 1 - 1/(2n-1))."""
    return math.ceil((100 / max(100 - threshold, 1e-9) + 1) / 2)


def name_variants(keys: pl.Series) -> pl.DataFrame:
    """(key, variant): each distinct key with itself and every variant one letter shorter, the
    blocking keys two similar names share (what a store of them is looked up by)."""
    return _neighbourhood(keys.drop_nulls().unique())


def _neighbourhood(keys: pl.Series) -> pl.DataFrame:
    """Each key with itself and every variant one letter shorter, as (key, variant) rows."""
    frame = keys.rename("key").to_frame()
    drops = frame.with_columns(
        at=pl.int_ranges(0, pl.col("key").str.len_chars().clip(upper_bound=_MAX_DELETIONS))
    ).explode("at")
    head = pl.col("key").str.slice(0, pl.col("at"))
    variants = drops.select("key", variant=head + pl.col("key").str.slice(pl.col("at") + 1))
    return pl.concat([frame.select("key", variant="key"), variants])


def similar_names(queries: pl.Series, targets: pl.Series, threshold: float) -> pl.DataFrame:
    """(query, target, similarity) for distinct keys within one edit and `threshold` or above."""
    shortest = shortest_similar(threshold)
    long_enough = pl.col("key").str.len_chars() >= shortest
    left = _neighbourhood(queries.drop_nulls().unique()).filter(long_enough)
    right = _neighbourhood(targets.drop_nulls().unique()).filter(long_enough)
    pairs = (
        left.join(right, on="variant", suffix="_target")
        .select(query="key", target="key_target")
        .filter(pl.col("query") != pl.col("target"))
        .unique()
    )
    scored = pairs.with_columns(similarity=name_similarity(pairs["query"], pairs["target"]))
    return scored.filter(pl.col("similarity") >= threshold)
