"""How an org's people typed its countries: a rendering option of both dialects.

The generated world holds ISO codes. A real org's free-text country field holds names, native
names and abbreviations ("Germany", "Deutschland", "DE", "U.S.A."). ``code`` renders the ISO code
(the default, as before), ``name`` the English name, ``mixed`` one of the spellings below per
record, chosen by the record's number so a render is stable ("Bharat" is a native name neither
of the connector's lists holds: a mixed org always has values it cannot map). The world is not
changed.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from sandbox.vocab import COUNTRIES

__all__ = ["COUNTRY_SPELLINGS", "SPELLINGS", "Spelling", "english_name", "spelled_country"]

Spelling = Literal["code", "name", "mixed"]
SPELLINGS: tuple[str, ...] = ("code", "name", "mixed")

# ISO code -> what people type for it (English name first)
COUNTRY_SPELLINGS: dict[str, tuple[str, ...]] = {
    "US": ("United States", "USA", "U.S.A.", "United States of America", "US"),
    "CA": ("Canada", "CA"),
    "GB": ("United Kingdom", "UK", "Great Britain", "England", "GB"),
    "DE": ("Germany", "Deutschland", "DE", "germany"),
    "CH": ("Switzerland", "Schweiz", "Suisse", "CH"),
    "FR": ("France", "FR", "france"),
    "NL": ("Netherlands", "The Netherlands", "Nederland", "Holland"),
    "SE": ("Sweden", "Sverige", "SE"),
    "ES": ("Spain", "España", "ES"),
    "PL": ("Poland", "Polska", "PL"),
    "BR": ("Brazil", "Brasil", "BR"),
    "MX": ("Mexico", "México", "MX"),
    "CO": ("Colombia", "CO"),
    "JP": ("Japan", "日本", "JP"),
    "IN": ("India", "Bharat", "IN"),
    "AU": ("Australia", "AU"),
    "SG": ("Singapore", "SG"),
    "RU": ("Russia", "Россия", "Russian Federation"),
    "IR": ("Iran", "Iran, Islamic Republic of", "IR"),
    "CU": ("Cuba", "CU"),
}


def english_name() -> pl.Expr:
    """The English name of the ``country`` code column (what a picklist's label shows)."""
    names = {c.code: c.name for c in COUNTRIES}
    return pl.col("country").replace_strict(names, default=None, return_dtype=pl.String)


def spelled_country(number: str, spelling: str) -> pl.Expr:
    """The ``country`` code column as typed, the variant picked by the ``number`` column."""
    if spelling not in SPELLINGS:
        raise ValueError(f"unknown country spelling {spelling!r}; expected one of {SPELLINGS}")
    if spelling == "code":
        return pl.col("country")
    if spelling == "name":
        return english_name()
    variants = pl.col("country").replace_strict(
        {code: list(names) for code, names in COUNTRY_SPELLINGS.items()},
        default=None,
        return_dtype=pl.List(pl.String),
    )
    pick = pl.col(number).cast(pl.Int64) % variants.list.len()
    return variants.list.get(pick, null_on_oob=True)
