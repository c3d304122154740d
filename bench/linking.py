"""Benchmark helper: link a generated org's activities to accounts by CRM-visible links only.

An activity counts for `activity.account_id`, else its person's `account_id` (contacts, linked
leads), else the account the lead was converted into. The rest (unmatched leads, orphans) is
dropped: the product links those through `sync.matching`, so the benchmarks see less signal
than the product will, and their figures are conservative.
"""

from __future__ import annotations

import polars as pl

from sandbox.org import Org

__all__ = ["linked_activities"]


def linked_activities(org: Org) -> pl.DataFrame:
    """The org's activities with `account_id` filled from CRM links; unlinked ones dropped."""
    person_account = org.people.select(
        "person_id", pl.coalesce("account_id", "converted_account_id").alias("person_account")
    )
    return (
        org.activities.join(person_account, on="person_id", how="left")
        .with_columns(account_id=pl.coalesce("account_id", "person_account"))
        .filter(pl.col("account_id").is_not_null())
        .drop("person_account")
    )
