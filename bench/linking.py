"""Benchmark helper: link a generated org's activities to accounts the way the product will.

An activity counts for `activity.account_id` (logged on the account), else the account its person
is linked to by `sync.matching` (D3: CRM links first, then email domain, company name, ...),
using the CRM-visible records only, as a Salesforce org shows them (a Website, no domain field).
Activities of people who stay orphaned or in review are dropped.
"""

from __future__ import annotations

import polars as pl

from sandbox.org import Org
from sync.matching import match_people

__all__ = ["linked_activities"]


def linked_activities(org: Org) -> pl.DataFrame:
    """The org's activities with `account_id` filled from the matcher; unlinked ones dropped."""
    open_opportunities = (
        org.opportunities.filter(~pl.col("is_closed"))
        .group_by("account_id")
        .len("open_opportunities")
    )
    accounts = (
        org.accounts.rename({"alias_domain": "alias_domains"})
        .drop("domain")
        .join(open_opportunities, on="account_id", how="left")
    )
    matched = match_people(accounts, org.people).frame.filter(pl.col("status") == "linked")
    person_account = matched.select("person_id", pl.col("account_id").alias("person_account"))
    return (
        org.activities.join(person_account, on="person_id", how="left")
        .with_columns(account_id=pl.coalesce("account_id", "person_account"))
        .filter(pl.col("account_id").is_not_null())
        .drop("person_account")
    )
