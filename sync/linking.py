"""Link: every live lead and contact to its account with `sync.matching`, stored per person.

An activity counts for its own account (``activity.account_id``), else for the account its
person is linked to (D3); activities of people who stay orphaned or in review count for none.
The frame functions serve the run and the benchmarks alike; `link_people` reads the mirror,
matches, and stores each person's link, rule, confidence, or the reason it has none.

This slice relinks every person each run (the matcher is vectorised: a few seconds for 2,000
accounts and their people); linking only people changed this cycle is later work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
from sqlalchemy import bindparam, update
from sqlmodel import Session, col, select

from sync.config import MatchingSettings
from sync.matching import Matching, match_people
from sync.state import Account, Opportunity, Person

__all__ = ["LinkCounts", "link_people", "linked_activities", "match_frames"]

_UPDATE_CHUNK = 5_000


def match_frames(
    accounts: pl.DataFrame,
    people: pl.DataFrame,
    opportunities: pl.DataFrame,
    settings: MatchingSettings | None = None,
) -> Matching:
    """`match_people` with each account's open opportunities counted (a tie-break reads them).

    ``opportunities``: account_id, is_closed.
    """
    open_opportunities = (
        opportunities.filter(~pl.col("is_closed"))
        .group_by("account_id")
        .len("open_opportunities")
        .with_columns(pl.col("open_opportunities").cast(pl.Int64))
    )
    with_open = accounts.join(open_opportunities, on="account_id", how="left")
    return match_people(with_open, people, settings)


def linked_activities(activities: pl.DataFrame, matching: Matching) -> pl.DataFrame:
    """Activities with ``account_id`` filled from their person's link; unlinked ones dropped."""
    matched = matching.frame.filter(pl.col("status") == "linked")
    person_account = matched.select("person_id", pl.col("account_id").alias("person_account"))
    return (
        activities.join(person_account, on="person_id", how="left")
        .with_columns(account_id=pl.coalesce("account_id", "person_account"))
        .filter(pl.col("account_id").is_not_null())
        .drop("person_account")
    )


@dataclass
class LinkCounts:
    """What linking decided this run, for the run log."""

    people: int = 0
    linked: int = 0
    review: int = 0
    orphans: dict[str, int] = field(default_factory=dict)
    relinked: list[tuple[str, str | None, str | None]] = field(default_factory=list)


def link_people(session: Session, settings: MatchingSettings) -> LinkCounts:
    """Match every live person of the mirror and store the outcome on the person's row."""
    accounts = _accounts(session)
    people, before = _people(session)
    counts = LinkCounts(people=people.height)
    if people.is_empty():
        return counts
    frame = match_frames(accounts, people, _opportunities(session), settings).frame
    _store(session, frame)
    statuses = frame["status"].cast(pl.String)
    counts.linked = int((statuses == "linked").sum())
    counts.review = int((statuses == "review").sum())
    orphans = frame.filter(statuses == "orphan")["reason"].cast(pl.String).value_counts()
    counts.orphans = {str(r): int(n) for r, n in orphans.iter_rows()}
    counts.relinked = _relinked(frame, before)
    return counts


def _accounts(session: Session) -> pl.DataFrame:
    """Live accounts as the matcher reads them."""
    rows = session.exec(
        select(
            Account.id,
            Account.name,
            Account.website,
            Account.domain,
            Account.country,
            Account.parent_id,
            Account.created_at,
        ).where(col(Account.is_deleted).is_(False))
    ).all()
    schema = {
        "account_id": pl.String,
        "name": pl.String,
        "website": pl.String,
        "domain": pl.String,
        "country": pl.String,
        "parent_id": pl.String,
        "created_at": pl.Datetime("us", "UTC"),
    }
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    return frame.with_columns(pl.col("created_at").dt.epoch("s"))


def _people(session: Session) -> tuple[pl.DataFrame, dict[str, str | None]]:
    """Live people as the matcher reads them, and each one's current link."""
    rows = session.exec(
        select(
            Person.id,
            Person.email,
            Person.company,
            Person.country,
            Person.phone,
            Person.account_id,
            Person.converted_account_id,
            Person.matched_account_id,
        ).where(col(Person.is_deleted).is_(False))
    ).all()
    names = ("person_id", "email", "company", "country", "phone", "account_id")
    schema: dict[str, Any] = dict.fromkeys(
        (*names, "converted_account_id", "matched_account_id"), pl.String
    )
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    before = dict(zip(frame["person_id"], frame["matched_account_id"], strict=True))
    return frame.drop("matched_account_id"), before


def _opportunities(session: Session) -> pl.DataFrame:
    """Live opportunities' accounts and whether each is closed."""
    rows = session.exec(
        select(Opportunity.account_id, Opportunity.is_closed).where(
            col(Opportunity.is_deleted).is_(False)
        )
    ).all()
    schema = {"account_id": pl.String, "is_closed": pl.Boolean}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _store(session: Session, frame: pl.DataFrame) -> None:
    """Each person's link, rule and confidence, or why it has none, in bulk."""
    table = Person.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(table.c.id == bindparam("person"))
        .values(
            matched_account_id=bindparam("account"),
            match_rule=bindparam("rule"),
            match_confidence=bindparam("confidence"),
            orphan_reason=bindparam("reason"),
        )
    )
    rows = frame.select(
        person="person_id",
        account="account_id",
        rule=pl.col("rule").cast(pl.String),
        confidence="confidence",
        reason=pl.col("reason").cast(pl.String),
    )
    connection = session.connection()
    for start in range(0, rows.height, _UPDATE_CHUNK):
        connection.execute(statement, rows.slice(start, _UPDATE_CHUNK).to_dicts())


def _relinked(
    frame: pl.DataFrame, before: dict[str, str | None]
) -> list[tuple[str, str | None, str | None]]:
    """(person, old account, new account) of people linked before whose link changed."""
    return [
        (person, before[person], account)
        for person, account in zip(frame["person_id"], frame["account_id"], strict=True)
        if before.get(person) is not None and before[person] != account
    ]
