"""The matching rules, strongest evidence first; a candidate pair takes the first rule it meets.

Evidence is a boolean column per (person, account) pair:
- `linked`: the CRM already links them (the contact's account, a converted lead's account, a
  HubSpot association).
- `domain`: the person's corporate email domain is one of the account's domains (its website,
  its domain field, an alias domain, or the domain of its existing contacts). Personal email
  domains never count.
- `name`: the company the person typed is the account's name or similar to it (rapidfuzz
  ratio at [matching] fuzzy_threshold or more, after legal forms, case and accents are folded).
- `exact_name`: the folded names are equal.
- `same_country`, `same_phone`, `same_website`: that field agrees; `supported`: any of them.
- `other_domain`: the person writes from a corporate domain and the account has domains, none
  of them that one: the email says they work somewhere else.
- `other_country`: both give a country code and the codes differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

__all__ = ["EVIDENCE", "RULES", "Rule", "apply_rules"]

EVIDENCE: tuple[str, ...] = (
    "linked",
    "domain",
    "name",
    "exact_name",
    "same_country",
    "same_phone",
    "same_website",
    "supported",
    "other_domain",
    "other_country",
)


@dataclass(frozen=True)
class Rule:
    """A named rule: every `requires` evidence holds and no `excludes` evidence does."""

    name: str
    confidence: float
    requires: tuple[str, ...]
    excludes: tuple[str, ...] = ()

    def holds(self) -> pl.Expr:
        """Whether a pair meets this rule, as an expression over the evidence columns."""
        met = pl.all_horizontal(self.requires)
        return met & ~pl.any_horizontal(self.excludes) if self.excludes else met


RULES: tuple[Rule, ...] = (
    Rule("crm_link", 1.0, ("linked",)),
    Rule("domain_and_name", 0.97, ("domain", "name")),
    Rule("domain", 0.9, ("domain",)),
    Rule("name_and_support", 0.85, ("exact_name", "supported"), ("other_domain",)),
    Rule("similar_name", 0.75, ("name",), ("other_domain", "other_country")),
    # What is left has a name against another email domain or country: below the default
    # min_confidence, so a person reviews it instead of the CRM getting it.
    Rule("name_with_conflict", 0.4, ("name",)),
)


def apply_rules(pairs: pl.DataFrame, rules: tuple[Rule, ...] = RULES) -> pl.DataFrame:
    """Pairs that meet a rule, with the first one's `rank`, `rule` and `confidence`."""
    rank = pl.lit(None, dtype=pl.UInt8)
    for index, rule in reversed(list(enumerate(rules))):
        rank = pl.when(rule.holds()).then(pl.lit(index, dtype=pl.UInt8)).otherwise(rank)
    names = pl.Series([r.name for r in rules], dtype=pl.String)
    confidences = pl.Series([r.confidence for r in rules], dtype=pl.Float64)
    ranked = pairs.with_columns(rank=rank).filter(pl.col("rank").is_not_null())
    return ranked.with_columns(
        rule=names.gather(ranked["rank"]), confidence=confidences.gather(ranked["rank"])
    )
