"""One account per person: the strongest rule, hierarchies settled by evidence, then ties.

Within one hierarchy (a parent, its subsidiaries, their siblings) an account wins only when it
holds every piece of evidence any of its relatives holds: a subsidiary's employee often writes
the parent's name, so "the name says parent, the country says subsidiary" is not guessed but
reviewed. Between unrelated accounts the most supported wins; records that look like one company
(same domain or same name) go through the configured tie-breaks; anything still tied goes to
review. Nothing is picked at random.
"""

from __future__ import annotations

import polars as pl

from sync.config import TieBreak

__all__ = ["EVIDENCE_COMPARED", "TIE_BREAKS", "resolve"]

# tie-break -> (account column, whether the highest value wins)
TIE_BREAKS: dict[str, tuple[str, bool]] = {
    "most_contacts": ("contacts", True),
    "most_open_opportunities": ("open_opportunities", True),
    "oldest": ("created_at", False),
}
# the evidence relatives are compared on
EVIDENCE_COMPARED: tuple[str, ...] = (
    "domain",
    "exact_name",
    "name",
    "same_country",
    "same_phone",
    "same_website",
)
_PERSON = "person_id"
_FAMILY = ("person_id", "root_id")


def _contenders(ranked: pl.DataFrame) -> pl.DataFrame:
    """Each person's candidates at their best rule, joined by those candidates' relatives."""
    best = ranked.filter(pl.col("rank") == pl.col("rank").min().over(_PERSON))
    families = best.select(_FAMILY).unique()
    contenders = ranked.join(families, on=_FAMILY, how="semi")
    return contenders.with_columns(candidates=pl.len().over(_PERSON).cast(pl.UInt32))


def _holds_all() -> pl.Expr:
    """Whether a candidate holds every piece of evidence any of its relatives holds."""
    return pl.all_horizontal(pl.col(c) == pl.col(c).max().over(_FAMILY) for c in EVIDENCE_COMPARED)


def _settle_families(contenders: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(one head per person and hierarchy, rows of people whose hierarchy evidence conflicts)."""
    holds = contenders.with_columns(holds=_holds_all())
    holds = holds.with_columns(settled=pl.col("holds").sum().over(_FAMILY) == 1)
    holds = holds.with_columns(conflict=(~pl.col("settled")).any().over(_PERSON))
    heads = holds.filter(pl.col("holds") & ~pl.col("conflict"))
    return heads, holds.filter(pl.col("conflict"))


def _strongest(heads: pl.DataFrame) -> pl.DataFrame:
    """Each person's heads at their best rule and, among those, with the most support."""
    top = heads.filter(pl.col("rank") == pl.col("rank").min().over(_PERSON))
    return top.filter(pl.col("support") == pl.col("support").max().over(_PERSON))


def _one_company() -> pl.Expr:
    """Whether a person's tied candidates look like records of one company (domain or name)."""
    same_name = pl.col("name_key").n_unique().over(_PERSON) == 1
    return same_name | pl.col("domain").all().over(_PERSON)


def _narrowed(tied: pl.DataFrame, tie_break: str) -> pl.DataFrame:
    """The tied candidates that `tie_break` prefers (all of them when no one has a value)."""
    column, highest = TIE_BREAKS[tie_break]
    best = (pl.col(column).max() if highest else pl.col(column).min()).over(_PERSON)
    return tied.filter((pl.col(column) == best) | best.is_null())


def _decided(rows: pl.DataFrame, tie_break: str | None) -> pl.DataFrame:
    """Verdicts for people left with exactly one candidate."""
    return rows.select(
        _PERSON,
        "account_id",
        "rule",
        "confidence",
        "candidates",
        reason=pl.lit(None, dtype=pl.String),
        tie_break=pl.lit(tie_break, dtype=pl.String),
    )


def _undecided(rows: pl.DataFrame, reason: str) -> pl.DataFrame:
    """Review verdicts: no account, the candidates listed for a person to choose from."""
    best = rows.sort("rank")
    return best.group_by(_PERSON).agg(
        account_id=pl.lit(None, dtype=rows.schema["account_id"]),
        rule=pl.col("rule").first(),
        confidence=pl.col("confidence").first(),
        candidates=pl.col("candidates").first(),
        reason=pl.lit(reason, dtype=pl.String),
        tie_break=pl.lit(None, dtype=pl.String),
        candidate_ids=pl.col("account_id"),
    )


def _split(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(people with one candidate left, rows of people with several)."""
    alone = pl.len().over(_PERSON) == 1
    return rows.filter(alone), rows.filter(~alone)


def _break_ties(tied: pl.DataFrame, tie_breaks: tuple[TieBreak, ...]) -> list[pl.DataFrame]:
    """Verdicts for tied people: tie-breaks for one company's records, review otherwise."""
    verdicts = [_undecided(tied.filter(~_one_company()), "ambiguous_accounts")]
    tied = tied.filter(_one_company())
    for tie_break in tie_breaks:
        if tie_break == "review":
            break
        single, tied = _split(_narrowed(tied, tie_break))
        verdicts.append(_decided(single, tie_break))
    return [*verdicts, _undecided(tied, "ambiguous_accounts")]


def resolve(ranked: pl.DataFrame, tie_breaks: tuple[TieBreak, ...]) -> pl.DataFrame:
    """One verdict per person with a ranked candidate: an account, or review with the reason.

    `ranked` holds person_id, account_id, rank, rule, confidence, support, the evidence in
    `EVIDENCE_COMPARED` and the accounts' name_key, root_id and tie-break columns.
    """
    only, several = _split(ranked.with_columns(candidates=pl.lit(1, dtype=pl.UInt32)))
    heads, unsettled = _settle_families(_contenders(several))
    single, tied = _split(_strongest(heads))
    return pl.concat(
        [
            _decided(only, None),
            _decided(single, None),
            _undecided(unsettled, "ambiguous_hierarchy"),
            *_break_ties(tied, tie_breaks),
        ],
        how="diagonal_relaxed",
    )
