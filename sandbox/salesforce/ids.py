"""Salesforce record ids: 18 characters, a key prefix naming the entity, a case-safe suffix.

An id is ``prefix (3) + pod (2) + base-62 number (10)`` (15 case-sensitive characters) plus the
3-character checksum Salesforce appends so that the id survives case-insensitive tools: bit i
of each 5-character chunk is set when its i-th character is upper case, and the 5-bit number
picks a letter of ``A..Z0..5``.
https://help.salesforce.com/s/articleView?id=000385008&type=1
Ids for the org's records are made column-wise with numpy (an org has millions of activities).
"""

from __future__ import annotations

import string
from functools import lru_cache

import numpy as np
import polars as pl

__all__ = ["KEY_PREFIXES", "entity_of", "make_id", "make_ids", "normalize_id"]

# entity -> key prefix (the first three characters of every id of that entity)
KEY_PREFIXES: dict[str, str] = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "Organization": "00D",
    "CustomField": "00N",
    "Lead": "00Q",
    "Task": "00T",
    "Event": "00U",
    "UserRole": "00E",
    "Profile": "00e",
    "CampaignMember": "00v",
    "QueryLocator": "01g",
    "CurrencyType": "02B",
    "ValidationRule": "03d",
    "Campaign": "701",
    "AsyncApexJob": "750",  # Bulk API 2.0 jobs
}
_ENTITIES = {prefix: entity for entity, prefix in KEY_PREFIXES.items()}
_POD = "Dn"
_DIGITS = 10
_BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)
_SUFFIX_TEXT = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_SUFFIX = np.frombuffer(_SUFFIX_TEXT.encode(), np.uint8)
_CASE_BITS = str.maketrans({c: str(int(c.isupper())) for c in string.ascii_letters + string.digits})
_BITS = np.array([1, 2, 4, 8, 16], dtype=np.uint8)


def make_ids(entity: str, numbers: pl.Series | np.ndarray) -> pl.Series:
    """The ids of ``entity`` numbered ``numbers`` (null numbers give null ids)."""
    series = pl.Series(numbers)
    values = series.fill_null(0).cast(pl.Int64).to_numpy()
    ids = pl.Series("Id", _encode(entity, values).view("S18").ravel()).cast(pl.String)
    return ids.zip_with(series.is_not_null(), pl.Series([None], dtype=pl.String))


def make_id(entity: str, number: int) -> str:
    """One id of ``entity``."""
    return bytes(_encode(entity, np.array([number], dtype=np.int64))[0]).decode()


@lru_cache(maxsize=65_536)
def normalize_id(value: str) -> str | None:
    """The canonical 18-character form of a 15- or 18-character id, or None when not an id.

    An 18-character id is read case-insensitively: its suffix restores the case of the rest.
    (One id at a time, in plain Python: a write checks and rewrites each id it is given.)
    """
    if len(value) not in (15, 18) or not value.isalnum() or not value.isascii():
        return None
    if len(value) == 15:
        return value + _suffix(value)
    if _suffix(value[:15]) == value[15:]:
        return value  # already canonical, as most ids are
    head = _recased(value[:15], value[15:].upper())
    full = head + _suffix(head)
    return full if value[15:].upper() == full[15:] else None


def _recased(head: str, suffix: str) -> str:
    """The first 15 characters with the case the suffix records."""
    bits = [max(_SUFFIX_TEXT.find(flag), 0) for flag in suffix]
    return "".join(
        char.upper() if bits[at // 5] >> (at % 5) & 1 else char.lower()
        for at, char in enumerate(head)
    )


def _suffix(head: str) -> str:
    """The case-safe suffix of one id's first 15 characters (`_checksum` for one id)."""
    bits = head.translate(_CASE_BITS)
    return "".join(_SUFFIX_TEXT[int(bits[start : start + 5][::-1], 2)] for start in (0, 5, 10))


def entity_of(record_id: str) -> str | None:
    """The entity an id's key prefix names."""
    return _ENTITIES.get(record_id[:3])


def _encode(entity: str, numbers: np.ndarray) -> np.ndarray:
    """An (n, 18) array of id characters."""
    head = np.frombuffer((KEY_PREFIXES[entity] + _POD).encode(), np.uint8)
    chars = np.empty((len(numbers), 15), dtype=np.uint8)
    chars[:, :5] = head
    rest = numbers.astype(np.int64)
    for column in range(14, 14 - _DIGITS, -1):
        rest, digit = np.divmod(rest, 62)
        chars[:, column] = _BASE62[digit]
    return np.concatenate([chars, _checksum(chars)], axis=1)


def _checksum(chars: np.ndarray) -> np.ndarray:
    """The (n, 3) case-safe suffix of (n, 15) id characters."""
    upper = ((chars >= ord("A")) & (chars <= ord("Z"))).reshape(-1, 3, 5)
    return _SUFFIX[(upper * _BITS).sum(axis=2)]
