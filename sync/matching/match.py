"""match_people: link every lead and contact to its account, or say why not (D3).

Pure: frames in, a `Matching` out; no I/O, no clock, no database. Vectorised: keys are computed
once per distinct value and candidates come from joins, so a million people take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from sync.config import MatchingSettings
from sync.matching.candidates import candidates, evidence
from sync.matching.keys import (
    ACCOUNT_COLUMNS,
    PEOPLE_COLUMNS,
    account_keys,
    conformed,
    domain_index,
    lookup_tables,
    own_domains,
    person_keys,
    with_hosts,
)
from sync.matching.normalise import personal_domains
from sync.matching.reach import Changes, reached
from sync.matching.resolve import TIE_BREAKS, resolve
from sync.matching.result import COLUMNS, REASONS, STATUSES, Matching
from sync.matching.rules import RULES, apply_rules

__all__ = ["Keyed", "keyed", "match_keyed", "match_people"]


def _orphan_reason() -> pl.Expr:
    """Why a person without any candidate stays unmatched."""
    evidence = pl.col("company_key").is_not_null() | pl.col("corporate_domain").is_not_null()
    return (
        pl.when(evidence)
        .then(pl.lit("company_not_in_crm"))
        .when(pl.col("personal"))
        .then(pl.lit("personal_email_no_company"))
        .otherwise(pl.lit("missing_data"))
    )


def _weak_to_review(frame: pl.DataFrame, min_confidence: float) -> pl.DataFrame:
    """Links by a rule below `min_confidence` become review items naming that one account."""
    weak = pl.col("account_id").is_not_null() & (pl.col("confidence") < min_confidence)
    return frame.with_columns(
        account_id=pl.when(~weak).then("account_id"),
        reason=pl.when(weak).then(pl.lit("low_confidence")).otherwise("reason"),
        candidate_ids=pl.when(weak).then(pl.concat_list("account_id")).otherwise("candidate_ids"),
    )


def _status() -> pl.Expr:
    """Linked with an account, review with a reason, orphan with neither."""
    return (
        pl.when(pl.col("account_id").is_not_null())
        .then(pl.lit("linked"))
        .when(pl.col("reason").is_not_null())
        .then(pl.lit("review"))
        .otherwise(pl.lit("orphan"))
        .cast(pl.Enum(STATUSES))
    )


def _outcomes(persons: pl.DataFrame, verdicts: pl.DataFrame, min_confidence: float) -> pl.DataFrame:
    """One row per person (`COLUMNS`): linked, review with a reason, or orphan with a reason."""
    frame = persons.join(verdicts, on="person_id", how="left", maintain_order="left")
    frame = _weak_to_review(frame, min_confidence).with_columns(status=_status())
    orphan = pl.col("status") == "orphan"
    return frame.with_columns(
        reason=pl.when(orphan)
        .then(_orphan_reason())
        .otherwise("reason")
        .cast(pl.Enum(list(REASONS))),
        rule=pl.col("rule").cast(pl.Enum([r.name for r in RULES])),
        candidates=pl.col("candidates").fill_null(0),
        tie_break=pl.col("tie_break").cast(pl.Enum(list(TIE_BREAKS))),
    ).select(COLUMNS)


@dataclass(frozen=True)
class Keyed:
    """The input frames as matching keys: one row per person (`keys.person_keys`), per account
    (`keys.account_keys`) and per account domain, own or learned (`keys.domain_index`); and each
    account's own domains (`keys.own_domains`)."""

    persons: pl.DataFrame
    firms: pl.DataFrame
    index: pl.DataFrame
    own: pl.DataFrame


def keyed(
    accounts: pl.DataFrame, people: pl.DataFrame, settings: MatchingSettings | None = None
) -> Keyed:
    """The matching keys of ``accounts`` and ``people`` (columns as `match_people` takes them)."""
    settings = settings or MatchingSettings()
    account_id = accounts.schema["account_id"]
    accounts = conformed(accounts, ACCOUNT_COLUMNS, "account_id", account_id)
    people = with_hosts(conformed(people, PEOPLE_COLUMNS, "person_id", account_id))
    personal = personal_domains(settings.personal_domains_extra)
    tables = lookup_tables(accounts, people)
    persons = person_keys(people, tables, personal)
    own = own_domains(accounts, tables, personal)
    index = domain_index(accounts, own, persons)
    firms = account_keys(accounts, persons, tables, index)
    return Keyed(persons, firms, index, own)


def match_people(
    accounts: pl.DataFrame,
    people: pl.DataFrame,
    settings: MatchingSettings | None = None,
    *,
    changes: Changes | None = None,
) -> Matching:
    """Link each person (lead or contact) to one account, send it to review, or call it orphan.

    `accounts`: account_id, name and any of website, domain, alias_domains, country, phone,
    parent_id, created_at, open_opportunities. `people`: person_id and any of email, company,
    country, phone, website, account_id (the CRM link: a contact's account, a HubSpot
    association) and converted_account_id. Contact counts come from `people`.

    With ``changes``, only the people those changes can reach (`reach`) are matched and in the
    result; what is learned from everyone (contacts, linked people's domains) still comes from
    all of ``people``, so each of them gets the outcome a match of everyone would give.
    """
    return match_keyed(keyed(accounts, people, settings), settings, changes=changes)


def match_keyed(
    keys: Keyed, settings: MatchingSettings | None = None, *, changes: Changes | None = None
) -> Matching:
    """`match_people` of frames already keyed (`keyed`)."""
    settings = settings or MatchingSettings()
    persons, firms, index = keys.persons, keys.firms, keys.index
    if changes is not None:
        persons = reached(persons, firms, index, changes, settings.fuzzy_threshold)
    pairs = candidates(persons, firms, index, settings.fuzzy_threshold)
    ranked = apply_rules(evidence(pairs, persons, firms, index, settings.fuzzy_threshold))
    verdicts = resolve(ranked, settings.tie_breaks)
    return Matching(_outcomes(persons, verdicts, settings.min_confidence))
