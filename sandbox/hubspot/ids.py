"""HubSpot ids for the org's records, and which people HubSpot shows merged or archived.

Ids are numeric strings: an object's base plus the org's own id, so benchmarks can map a HubSpot
record back to the org (``org_id``) and a mixed-up id never names a record of another object.

| object      | HubSpot id                      |
|-------------|---------------------------------|
| companies   | 20000000000 + account_id        |
| contacts    | 30000000000 + person_id         |
| deals       | 40000000000 + opportunity_id    |
| calls       | 50000000000 + activity_id       |
| emails      | 51000000000 + activity_id       |
| meetings    | 52000000000 + activity_id       |
| notes       | 53000000000 (created via API)   |
| tasks       | 54000000000 (created via API)   |
| owners      | 70000000 + user_id (id)         |
| users       | 9000000 + user_id (userId)      |

Events (the events API's web events, the email events API's opens and clicks) have UUIDs, which
HubSpot's email events documentation calls "a randomly-generated ID for this event" (web events
carry such ids too): their order says nothing of when they happened. The sandbox's look random and
still name their activity (`event_uuid`, `event_number`): the first 16 hex digits mix the org's
activity id, the last 12 digits are that id.

Merges: HubSpot keeps one contact per email address, so people sharing an email (ignoring case)
are one contact: the earliest person survives and lists the others in ``hs_merged_object_ids``;
a GET of a merged-away id answers with the survivor (merges made through the API: merges.py).
Archived: unqualified leads that are linked to no account and have no activity, every third of
them, sit in the recycle bin (``archived=true``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

__all__ = [
    "ID_BASES",
    "OWNER_BASE",
    "USER_BASE",
    "archived_people",
    "event_number",
    "event_uuid",
    "hubspot_id",
    "merged_people",
    "org_id",
]

ID_BASES: dict[str, int] = {
    "companies": 20_000_000_000,
    "contacts": 30_000_000_000,
    "deals": 40_000_000_000,
    "calls": 50_000_000_000,
    "emails": 51_000_000_000,
    "meetings": 52_000_000_000,
    "notes": 53_000_000_000,
    "tasks": 54_000_000_000,
}
OWNER_BASE = 70_000_000
USER_BASE = 9_000_000
_ARCHIVE_EVERY = 3


def hubspot_id(object_name: str, column: str | pl.Expr) -> pl.Expr:
    """The HubSpot id (UInt64) of org ids in ``column``."""
    expr = pl.col(column) if isinstance(column, str) else column
    return (expr.cast(pl.UInt64) + ID_BASES[object_name]).cast(pl.UInt64)


def event_uuid(activity_ids: Sequence[int] | np.ndarray, group: str = "8000") -> list[str]:
    """Event ids of org activities, version 4 UUIDs in form (``group`` their fourth group): 16
    hex digits of a 64-bit mix of the activity id (SplitMix64's finaliser, so neighbouring ids
    land far apart), then the id in the last 12 digits (`event_number` reads it back)."""
    ids = np.asarray(activity_ids, dtype=np.uint64)
    mixed = ids + np.uint64(0x9E3779B97F4A7C15)  # arrays wrap around silently, as the mix needs
    mixed = (mixed ^ (mixed >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed = mixed ^ (mixed >> np.uint64(31))
    return [
        f"{h >> 32:08x}-{(h >> 16) & 0xFFFF:04x}-4{h & 0xFFF:03x}-{group}-{n:012d}"
        for h, n in zip(mixed.tolist(), ids.tolist(), strict=True)
    ]


def event_number(event_id: str, group: str = "8000") -> int | None:
    """The org activity id an `event_uuid` of ``group`` names (None: not one of those)."""
    number = event_id.rpartition("-")[2]
    if len(number) != 12 or not number.isdigit():
        return None
    return int(number) if event_uuid([int(number)], group) == [event_id] else None


def org_id(object_name: str, record_id: str) -> int:
    """The org's own id of a HubSpot record id (for evaluation code)."""
    return int(record_id) - ID_BASES[object_name]


def merged_people(people: pl.DataFrame) -> pl.DataFrame:
    """``person_id -> survivor_id`` for every person, survivors mapping to themselves."""
    email = pl.col("email").str.to_lowercase()
    return people.select(
        "person_id",
        survivor_id=pl.when(email.is_null())
        .then(pl.col("person_id"))
        .otherwise(pl.col("person_id").min().over(email)),
    )


def archived_people(people: pl.DataFrame, activities: pl.DataFrame) -> pl.Series:
    """Ids of the people shown archived: activity-free, unlinked, unmerged unqualified leads."""
    active = activities["person_id"].drop_nulls().unique().implode()
    junk = people.filter(
        (pl.col("kind") == "lead")
        & (pl.col("status") == "Unqualified")
        & pl.col("account_id").is_null()
        & ~pl.col("is_converted")
        & ~pl.col("person_id").is_in(active)
        & (pl.len().over(pl.col("email").str.to_lowercase()) == 1)
    )
    return junk["person_id"].gather_every(_ARCHIVE_EVERY)
