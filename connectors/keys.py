"""A raw record's id and modification time, read so that a dirty record never ends a pull.

Every other value goes through a stream's converters (`connectors.streams.normalise`); these two
decide whether there is a record at all. A record without a usable id cannot be upserted, so it
is skipped (the pull's `Summary` counts it under `NO_ID`). A record whose modification time is
missing or unreadable is kept with the next time the CRM offers (Salesforce's LastModifiedDate
then CreatedDate, HubSpot's ``updatedAt`` then ``createdAt``) and a warning on ``modified_at``:
the sync wants the account scored more than it wants an exact time. Such a guessed time never
moves a cursor (`guessed`), so it cannot hide records modified before it; without any time
at all the record is skipped under `NO_TIME`.

    stamp, warnings = modified_at([("SystemModstamp", None), ("CreatedDate", "2024-01-31...")])

`read_ids` and `modified_columns` do the same for a page of raw text columns at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import polars as pl

from connectors.columns import Warned, by_distinct, distinct_values, read_stamps
from connectors.protocol import RAW_LIMIT, Record, Tombstone, ValueWarning
from connectors.streams import stamp

__all__ = [
    "MODIFIED",
    "NO_ID",
    "NO_TIME",
    "guessed",
    "modified_at",
    "modified_columns",
    "read_id",
    "read_ids",
    "salesforce_case_safe",
    "skip_reason",
]

MODIFIED = "modified_at"  # the field a warning about the modification time names
NO_ID = "no id"
NO_TIME = "no modification time"
_UNREADABLE = (ValueError, TypeError, ArithmeticError, AttributeError, OSError)


def read_id(value: Any) -> str | None:
    """A record id as text (HubSpot's may come as a number); None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def modified_at(
    candidates: Sequence[tuple[str, Any]],
) -> tuple[datetime | None, tuple[ValueWarning, ...]]:
    """The first readable time of ``candidates`` ((CRM field, raw value), the replication key
    first), and a warning when it is not the first one's (None when none is readable)."""
    for position, (name, raw) in enumerate(candidates):
        found = _time(raw)
        if found is not None:
            return found, (_fallback(candidates[0], name),) if position else ()
    return None, ()


def _time(raw: Any) -> datetime | None:
    try:
        return stamp(raw)
    except _UNREADABLE:
        return None


def _fallback(first: tuple[str, Any], used: str) -> ValueWarning:
    """The warning of a record whose replication key could not be read."""
    name, raw = first
    return ValueWarning(MODIFIED, str(raw)[:RAW_LIMIT], f"no readable {name}; {used} used")


def guessed(item: Record | Tombstone) -> bool:
    """Whether the item's time is a fallback, which must not move a cursor."""
    return isinstance(item, Record) and any(w.field == MODIFIED for w in item.warnings)


def skip_reason(record_id: str | None) -> str:
    """Why a raw row without an id or without any time is left out."""
    return NO_ID if record_id is None else NO_TIME


# --- a page at a time (`connectors.columns`) -------------------------------------------------

_PLAIN_ID = r"^[0-9A-Za-z_-]+$"  # an id as CRMs write it (HubSpot events: UUIDs): kept as it is


def read_ids(raw: pl.Series) -> pl.Series:
    """`read_id` of every value of a text column (null where there is no id)."""
    plain = raw.str.contains(_PLAIN_ID).fill_null(False)
    if plain.all():
        return raw
    results, index = by_distinct([raw.filter(~plain)], read_id)
    found = distinct_values(results, index).cast(pl.String)
    return raw.set(~plain, None).scatter((~plain).arg_true(), found)


def modified_columns(
    candidates: Sequence[tuple[str, pl.Series]],
) -> tuple[pl.Series, Warned]:
    """`modified_at` of every row of a page: the first readable time of ``candidates`` ((CRM
    field, raw text column), the replication key first), and by row, the warning of those
    whose time is not the first one's."""
    first = read_stamps(candidates[0][1], _time)
    if not first.null_count():  # every row has its replication key: no fallback is read
        return first.alias(MODIFIED), {}
    times = [first, *(read_stamps(raw, _time) for _, raw in candidates[1:])]
    at = pl.select(pl.coalesce(times)).to_series().alias(MODIFIED)
    fell_back = (times[0].is_null() & at.is_not_null()).arg_true().to_list()
    if not fell_back:
        return at, {}
    name, raw = candidates[0]
    warned: Warned = {}
    for row in fell_back:
        used = next(other for (other, _), t in zip(candidates, times, strict=True) if t[row])
        warned[row] = (_fallback((name, raw[row]), used),)
    return at, warned


def salesforce_case_safe(value: str) -> str | None:
    """The 18-character id of a 15-character Salesforce id (the one a record's URL and reports
    show): its case-safe suffix appended, a character for each 5, naming which of them are
    upper case (bit i for the i-th); None for anything else. The API gives 18."""
    if len(value) != _SHORT_ID or not value.isascii() or not value.isalnum():
        return None
    blocks = (value[at : at + 5] for at in range(0, _SHORT_ID, 5))
    bits = (sum(1 << i for i, char in enumerate(block) if char.isupper()) for block in blocks)
    return value + "".join(_CASE_SAFE[b] for b in bits)


_SHORT_ID = 15
_CASE_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
