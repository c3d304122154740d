"""What matching decided for each person: the result frame, its row type and run-log counts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

__all__ = ["COLUMNS", "REASONS", "STATUSES", "Link", "Matching", "Status"]

Status = Literal["linked", "review", "orphan"]
STATUSES: tuple[Status, ...] = ("linked", "review", "orphan")

# reason -> what it means, for the run log and the review queue
REASONS: dict[str, str] = {
    "ambiguous_hierarchy": "equally supported by accounts of one hierarchy (parent and child)",
    "ambiguous_accounts": "equally supported by several accounts; no tie-break decided",
    "low_confidence": "only a rule below [matching] min_confidence matched",
    "personal_email_no_company": "personal email address and no company",
    "company_not_in_crm": "no account has the email domain or the company name",
    "missing_data": "no usable email address and no company",
}

COLUMNS: tuple[str, ...] = (
    "person_id",
    "account_id",
    "status",
    "rule",
    "confidence",
    "reason",
    "candidates",
    "candidate_ids",
    "tie_break",
)


@dataclass(frozen=True)
class Link:
    """One person's outcome, a row of `Matching.frame`.

    `account_id` is set when `status` is "linked"; `reason` when it is "review" or "orphan";
    `candidate_ids` lists the accounts a reviewer chooses between.
    """

    person_id: Any
    account_id: Any
    status: Status
    rule: str | None
    confidence: float | None
    reason: str | None
    candidates: int
    candidate_ids: tuple[Any, ...] | None
    tie_break: str | None


@dataclass(frozen=True)
class Matching:
    """Every person's outcome, one row each in `frame` (columns: `COLUMNS`)."""

    frame: pl.DataFrame

    def links(self, status: Status = "linked") -> Iterator[Link]:
        """The outcomes with one status, as values (the write-back reads the linked ones)."""
        for row in self.frame.filter(pl.col("status") == status).iter_rows(named=True):
            ids = row.pop("candidate_ids")
            yield Link(**row, candidate_ids=None if ids is None else tuple(ids))

    def counts(self) -> dict[str, int]:
        """People per status, per linking rule and per review or orphan reason, for the run log."""
        counts = {status: 0 for status in STATUSES}
        grouped = self.frame.group_by("status", "rule", "reason").len()
        for status, rule, reason, n in grouped.sort("status", "rule", "reason").iter_rows():
            counts[status] += n
            key = f"{status}.{rule if status == 'linked' else reason}"
            counts[key] = counts.get(key, 0) + n
        return counts
