"""Benchmark helper: link a generated org's activities to accounts the way the product does.

The org's CRM-visible records are prepared as a Salesforce org shows them (a Website, no domain
field) and handed to `sync.linking`, the run's own linking.
"""

from __future__ import annotations

import polars as pl

from sandbox.org import Org
from sync.linking import linked_activities as _linked
from sync.linking import match_frames

__all__ = ["linked_activities"]


def linked_activities(org: Org) -> pl.DataFrame:
    """The org's activities with `account_id` filled from the matcher; unlinked ones dropped."""
    accounts = org.accounts.rename({"alias_domain": "alias_domains"}).drop("domain")
    matching = match_frames(accounts, org.people, org.opportunities)
    return _linked(org.activities, matching)
