"""Candidate accounts for each person, found in stages, and the evidence for each pair.

Each person takes candidates from the first stage that finds any: an existing CRM link, else
their corporate email domain, else their exact company name, else similar names (blocked, see
`similarity`). Later stages could only produce weaker rules, so they are skipped, which keeps the
candidate list short.
"""

from __future__ import annotations

import polars as pl

from sync.matching.rules import EVIDENCE
from sync.matching.similarity import name_similarity, similar_names

__all__ = ["SUPPORT_WEIGHTS", "candidates", "evidence"]

# how much each piece of evidence counts when candidates meet the same rule
SUPPORT_WEIGHTS: dict[str, int] = {
    "exact_name": 2,
    "name": 1,
    "same_country": 1,
    "same_phone": 1,
    "same_website": 1,
}
_AGREEING = ("same_country", "same_phone", "same_website")
_PAIR = ("person_id", "account_id")


def _linked(persons: pl.DataFrame, firms: pl.DataFrame) -> pl.DataFrame:
    """Pairs the CRM already links (links to accounts that no longer exist are ignored)."""
    present = persons.filter(pl.col("link_id").is_not_null())
    known = present.join(firms, left_on="link_id", right_on="account_id", how="semi")
    return known.select("person_id", account_id="link_id")


def _by_domain(persons: pl.DataFrame, index: pl.DataFrame) -> pl.DataFrame:
    """Pairs whose corporate email domain is one of the account's domains."""
    joined = persons.join(index, left_on="corporate_domain", right_on="domain")
    return joined.select(_PAIR)


def _by_name(persons: pl.DataFrame, firms: pl.DataFrame) -> pl.DataFrame:
    """Pairs whose company key is the account's name key."""
    names = firms.select("account_id", "name_key")
    return persons.join(names, left_on="company_key", right_on="name_key").select(_PAIR)


def _by_similar_name(persons: pl.DataFrame, firms: pl.DataFrame, threshold: int) -> pl.DataFrame:
    """Pairs whose company key is within one edit of the account's and similar enough."""
    similar = similar_names(persons["company_key"], firms["name_key"], threshold)
    queried = persons.join(similar, left_on="company_key", right_on="query")
    names = firms.select("account_id", "name_key")
    return queried.join(names, left_on="target", right_on="name_key").select(_PAIR)


def candidates(
    persons: pl.DataFrame, firms: pl.DataFrame, index: pl.DataFrame, threshold: int
) -> pl.DataFrame:
    """Candidate pairs, each person from the first stage that finds any, with `linked`."""
    linked = _linked(persons, firms)
    rest = persons.join(linked, on="person_id", how="anti")
    by_domain = _by_domain(rest, index)
    rest = rest.join(by_domain, on="person_id", how="anti").filter(
        pl.col("company_key").is_not_null()
    )
    by_name = _by_name(rest, firms)
    rest = rest.join(by_name, on="person_id", how="anti")
    found = [by_domain, by_name, _by_similar_name(rest, firms, threshold)]
    return pl.concat(
        [linked.with_columns(linked=pl.lit(True))]
        + [pairs.with_columns(linked=pl.lit(False)) for pairs in found]
    ).unique(_PAIR)


def _agrees(left: str, right: str) -> pl.Expr:
    """Whether two key columns hold the same value (never when either is missing)."""
    return (pl.col(left) == pl.col(right)).fill_null(False)


def _other_country() -> pl.Expr:
    """Both sides give a two-letter country code and the codes differ."""
    codes = (pl.col("country").str.len_chars() == 2) & (
        pl.col("country_account").str.len_chars() == 2
    )
    return (codes & (pl.col("country") != pl.col("country_account"))).fill_null(False)


def _with_flags(
    pairs: pl.DataFrame, persons: pl.DataFrame, firms: pl.DataFrame, index: pl.DataFrame
) -> pl.DataFrame:
    """Pairs with both sides' keys, `domain` and `same_website` (domain-index hits)."""
    facts = persons.drop("contact_of", "link_id", "personal")
    joined = pairs.join(facts, on="person_id").join(firms, on="account_id", suffix="_account")
    for key, flag in (("corporate_domain", "domain"), ("website_domain", "same_website")):
        hits = index.rename({"domain": key}).with_columns(pl.lit(True).alias(flag))
        joined = joined.join(hits, on=["account_id", key], how="left")
    return joined.with_columns(pl.col("domain", "same_website").fill_null(False))


def evidence(
    pairs: pl.DataFrame,
    persons: pl.DataFrame,
    firms: pl.DataFrame,
    index: pl.DataFrame,
    threshold: int,
) -> pl.DataFrame:
    """Candidate pairs with the evidence columns the rules read (see `rules`) and `support`.

    A CRM link outranks all other evidence, so linked pairs skip the comparisons.
    """
    linked = pairs.filter("linked")
    joined = _with_flags(pairs.filter(~pl.col("linked")), persons, firms, index)
    similarity = name_similarity(joined["company_key"], joined["name_key"])
    flags = joined.with_columns(
        name=(similarity >= threshold).fill_null(False),
        exact_name=_agrees("company_key", "name_key"),
        same_country=_agrees("country", "country_account"),
        same_phone=_agrees("phone", "phone_account"),
        other_domain=pl.col("corporate_domain").is_not_null()
        & (pl.col("n_domains") > 0)
        & ~pl.col("domain"),
        other_country=_other_country(),
    )
    compared = flags.with_columns(
        supported=pl.any_horizontal(_AGREEING),
        support=pl.sum_horizontal(
            pl.col(flag).cast(pl.Int8) * weight for flag, weight in SUPPORT_WEIGHTS.items()
        ),
    )
    return pl.concat([compared, linked], how="diagonal_relaxed").with_columns(
        pl.col(EVIDENCE).fill_null(False)
    )
