"""Firmographic fit: disqualifiers, rule points and the levels the predictive model learns (D2).

Every function reads an accounts frame with the CRM's firmographic columns (`FIRMOGRAPHICS`);
a missing value never matches a rule or a disqualifier. A subsidiary (an account with a parent)
gets its own industry level: CRMs usually copy the parent's industry onto it, which says little
about the subsidiary's own business. Size bands are fine (about 1.5x apart) because the model
draws a smooth curve through them (see `size_band_centres`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

import numpy as np
import polars as pl

from scoring.config import DisqualifierRule, FitRule

__all__ = [
    "EMPLOYEE_BANDS",
    "FIRMOGRAPHICS",
    "LEVEL_GROUPS",
    "REVENUE_BANDS",
    "SUBSIDIARY_INDUSTRY",
    "disqualification",
    "firmographic_levels",
    "fit_rule_matches",
    "size_band_centres",
]

FIRMOGRAPHICS = (
    "country",
    "region",
    "industry",
    "employees",
    "revenue",
    "is_customer",
    "is_competitor",
    "parent_id",
)
LEVEL_GROUPS = ("industry", "region", "size", "revenue")
EMPLOYEE_BANDS = (
    *(10, 15, 20, 30, 40, 50, 75),
    *(100, 150, 200, 300, 400, 500, 750),
    *(1_000, 1_500, 2_000, 3_000, 4_000, 5_000, 7_500),
    *(10_000, 15_000, 20_000, 30_000, 50_000, 100_000),
)
REVENUE_BANDS = (1_000_000, 10_000_000, 50_000_000, 250_000_000)

SUBSIDIARY_INDUSTRY = "Industry: subsidiary (parent's industry)"
# The open-ended size bands are centred as if they spanned the same ratio as their neighbours.
_OPEN_BAND_RATIO = 2.0

_BandName = Callable[[int | None, int | None], str]
_FLAGS = {"existing_customer": "is_customer", "competitor": "is_competitor"}


def disqualification(accounts: pl.DataFrame, rules: Sequence[DisqualifierRule]) -> pl.Series:
    """Per account, the name of the first disqualifier that matches it, else null."""
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    for rule in reversed(rules):
        reason = pl.when(_disqualifies(rule)).then(pl.lit(rule.name)).otherwise(reason)
    return accounts.select(reason.alias("disqualified_by")).to_series()


def _disqualifies(rule: DisqualifierRule) -> pl.Expr:
    """The condition of one disqualifier (false where the field is missing)."""
    if rule.kind in _FLAGS:
        return pl.col(_FLAGS[rule.kind]).fill_null(False)
    field = rule.kind.rsplit("_", 1)[0]
    if rule.values is not None:
        return pl.col(field).is_in(list(rule.values)).fill_null(False)
    return (pl.col(field) < rule.threshold).fill_null(False)


def fit_rule_matches(accounts: pl.DataFrame, rules: Sequence[FitRule]) -> np.ndarray:
    """(accounts x rules) whether each fit rule matches each account."""
    if not rules:
        return np.zeros((accounts.height, 0), dtype=bool)
    matches = accounts.select(_matches(rule).alias(str(i)) for i, rule in enumerate(rules))
    return matches.to_numpy().astype(bool)


def _matches(rule: FitRule) -> pl.Expr:
    """The condition of one fit rule: `equals` for categories, `min <= x < max` for numbers."""
    column = pl.col(rule.field)
    if rule.equals is not None:
        return column.is_in(list(rule.equals)).fill_null(False)
    condition = pl.lit(True)
    if rule.min is not None:
        condition = condition & (column >= rule.min)
    if rule.max is not None:
        condition = condition & (column < rule.max)
    return condition.fill_null(False)


def firmographic_levels(accounts: pl.DataFrame) -> pl.DataFrame:
    """Per account, its level in each of `LEVEL_GROUPS` as an Enum label ("Industry: Fintech")."""
    industry = _named_levels("Industry", accounts["industry"])
    subsidiary = accounts["parent_id"].is_not_null()
    return pl.DataFrame(
        {
            "industry": _with_level(industry, subsidiary, SUBSIDIARY_INDUSTRY),
            "region": _named_levels("Region", accounts["region"]),
            "size": _band_levels("Size", accounts["employees"], EMPLOYEE_BANDS, _employees),
            "revenue": _band_levels("Revenue", accounts["revenue"], REVENUE_BANDS, _dollars),
        }
    )


def _with_level(levels: pl.Series, where: pl.Series, label: str) -> pl.Series:
    """`levels` with `label`, added to its Enum, wherever `where` holds."""
    enum = pl.Enum([*levels.dtype.categories.to_list(), label])  # type: ignore[attr-defined]
    return levels.cast(pl.String).set(where, label).cast(enum)


def size_band_centres() -> dict[str, float | None]:
    """Per size level label, log10 of its band's geometric centre (None: size unknown)."""
    edges = np.log10(np.asarray(EMPLOYEE_BANDS, dtype=np.float64))
    step = np.log10(_OPEN_BAND_RATIO)
    low = np.concatenate([[edges[0] - step], edges])
    high = np.concatenate([edges, [edges[-1] + step]])
    labels = _band_labels("Size", EMPLOYEE_BANDS, _employees)
    centres: list[float | None] = [*((low + high) / 2).tolist(), None]
    return dict(zip(labels, centres, strict=True))


def _named_levels(group: str, values: pl.Series) -> pl.Series:
    """`Group: value` per account, `Group: unknown` where the value is missing."""
    seen = values.drop_nulls().unique().sort().to_list()
    labels = [f"{group}: {value}" for value in seen]
    unknown = f"{group}: unknown"
    enum = pl.Enum(list(dict.fromkeys([*labels, unknown])))
    # cast again: with no value seen at all (every one missing) polars keeps the input's dtype
    return values.replace_strict(seen, labels, return_dtype=enum).fill_null(unknown).cast(enum)


def _band_levels(group: str, values: pl.Series, bands: Sequence[int], say: _BandName) -> pl.Series:
    """The `[low, high)` band each number falls in, open at both ends, or `unknown`."""
    labels = _band_labels(group, bands, say)
    band = np.searchsorted(np.asarray(bands), values.fill_null(0).to_numpy(), side="right")
    band = np.where(values.is_null().to_numpy(), len(labels) - 1, band)
    return pl.Series(labels).gather(band).cast(pl.Enum(labels))


def _band_labels(group: str, bands: Sequence[int], say: _BandName) -> list[str]:
    """`Group: band` per band, open at both ends, then `Group: unknown`."""
    edges: list[int | None] = [None, *bands, None]
    return [*(f"{group}: {say(low, high)}" for low, high in pairwise(edges)), f"{group}: unknown"]


def _employees(low: int | None, high: int | None) -> str:
    """`200-299 employees`, `under 10 employees`, `100,000+ employees`."""
    if low is None:
        return f"under {high:,} employees"
    if high is None:
        return f"{low:,}+ employees"
    return f"{low:,}-{high - 1:,} employees"


def _dollars(low: int | None, high: int | None) -> str:
    """`$50M-$250M`, `under $1M`, `$250M+`."""
    if low is None:
        return f"under {_money(high or 0)}"
    if high is None:
        return f"{_money(low)}+"
    return f"{_money(low)}-{_money(high)}"


def _money(amount: int) -> str:
    """Whole millions or billions with their letter: `$50M`, `$1B`."""
    return f"${amount // 1_000_000_000}B" if amount >= 1_000_000_000 else f"${amount // 1_000_000}M"
