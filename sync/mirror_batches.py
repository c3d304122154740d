"""The mirror's side of a `RecordBatch`: a page of records as the column lists rows are built
from, without a `Record` per row.

A batch's columns become lists of plain values a column at a time where the database's adapter
is one this module knows (stamps, whole numbers, amounts, dates, text) and takes every value of
the column; elsewhere the mirror adapts them value by value, as it adapts a `Record`'s. Records
delivered twice in one transaction are stored once, as their latest version, whether they came
as `Record`s or in batches (`latest_parts`); while the table's key is away (a first load on
SQLite), both are stored as delivered and the key's build keeps the latest (`delivered_parts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from itertools import groupby
from typing import Any, cast

import polars as pl

from connectors.protocol import Record, RecordBatch
from sync.store import (
    Adapter,
    _aware,
    _int4,
    _int8,
    _sqlite_flag,
    _sqlite_stamp,
    sqlite_stamp_texts,
)

__all__ = ["SharedStamps", "delivered_parts", "latest_parts", "plain_column", "plain_series"]

# the adapters `sync.store.adapters_of` hands out that a whole column can go through at once
_INT_RANGES = {_int4: (-(2**31), 2**31), _int8: (-(2**63), 2**63)}
_FOUR_DIGIT_YEARS = 1000  # a batch's earlier stamps and dates are adapted a row at a time


def plain_column(values: pl.Series, adapt: Adapter | None) -> list[Any] | None:
    """``values`` ready for the database (None stays None), adapted a column at a time; None
    when ``adapt`` is not one this knows for the column's type or would refuse a value (then
    adapt it value by value, to note which)."""
    plain = plain_series(values, adapt)
    return None if plain is None else plain.to_list()


def plain_series(values: pl.Series, adapt: Adapter | None) -> pl.Series | None:
    """`plain_column` as a series: its values as the driver is handed them once listed (the
    stamps SQLite stores as text already that text), or None as there."""
    kind = values.dtype
    if kind == pl.Null or values.null_count() == values.len():
        return pl.repeat(None, values.len(), dtype=pl.Null, eager=True).alias(values.name)
    if adapt is None:
        return values
    if adapt is _sqlite_stamp and kind == pl.Datetime("us", "UTC"):
        if values.dt.year().min() < _FOUR_DIGIT_YEARS:
            return None
        return sqlite_stamp_texts(values)
    if adapt is _aware and isinstance(kind, pl.Datetime) and kind.time_zone is not None:
        return values
    if adapt in _INT_RANGES and kind.is_integer():
        low, high = _INT_RANGES[adapt]
        return values if low <= values.min() and values.max() < high else None
    if adapt is float and kind == pl.Float64:
        return values
    if adapt is _sqlite_flag and kind == pl.Boolean:
        return values.cast(pl.Int64)
    if adapt is date.isoformat and kind == pl.Date:
        if values.dt.year().min() < _FOUR_DIGIT_YEARS:
            return None
        return values.dt.strftime("%Y-%m-%d")
    return None


class SharedStamps:
    """`plain_series` of a frame's columns, the stamp text SQLite stores made once for every
    column holding the same times (an event's time is most often its modified time: one
    formatting, not two)."""

    def __init__(self) -> None:
        self._made: list[tuple[pl.Series, pl.Series | None]] = []

    def plain(self, values: pl.Series, adapt: Adapter | None) -> pl.Series | None:
        """`plain_series` of ``values``, or the text made of a column equal to it."""
        if adapt is not _sqlite_stamp or not isinstance(values.dtype, pl.Datetime):
            return plain_series(values, adapt)
        for source, plain in self._made:
            if source.equals(values, check_dtypes=True):
                return plain
        plain = plain_series(values, adapt)
        self._made.append((values, plain))
        return plain


def latest_parts(run: Sequence[Record | RecordBatch]) -> list[list[Record] | pl.DataFrame]:
    """The records of a run (no tombstone between them) in parts, in order: consecutive
    `Record`s as a list, each batch as its frame in id order; an id delivered more than once is
    kept only where it came last."""
    later: list[pl.Series] = []  # ids of the parts after the one at hand
    parts: list[list[Record] | pl.DataFrame] = []
    records: list[Record] = []
    for item in reversed(run):
        if isinstance(item, Record):
            records.append(item)
            continue
        if records:
            parts.append(_kept(records[::-1], later))
            records = []
        frame = _last_of_each(item.frame)
        if later:
            frame = frame.filter(~pl.col("id").is_in(pl.concat(later).implode()))
        later.append(frame["id"])
        parts.append(frame)
    if records:
        parts.append(_kept(records[::-1], later))
    return parts[::-1]


def delivered_parts(run: Sequence[Record | RecordBatch]) -> list[list[Record] | pl.DataFrame]:
    """The records of a run in parts, in order, as `latest_parts` gives them but as delivered:
    an id given twice is kept twice, for a table whose key is away (`Store.keyless`), where the
    key's build keeps the last row of each id (`sync.store._create_key`), and rows in key order
    gain nothing. Sorting a batch of 30,000 random event ids to drop its repeats took ~1 us a row
    of the mirror's own thread (py-spy: ~2.4 s of a 50,000-account portal's first load)."""
    parts: list[list[Record] | pl.DataFrame] = []
    for batched, items in groupby(run, key=lambda item: isinstance(item, RecordBatch)):
        if batched:
            parts.extend(cast("RecordBatch", item).frame for item in items)
        else:
            parts.append(cast("list[Record]", list(items)))
    return parts


def _last_of_each(frame: pl.DataFrame) -> pl.DataFrame:
    """A batch's rows in id order, an id given twice kept where it came last: sorted keeping
    the order of equal ids, a row is the last of its id when the next row's differs (cheaper
    than a hash of every id, and the mirror stores rows in key order anyway)."""
    if not frame["id"].is_sorted():
        frame = frame.sort("id", maintain_order=True)
    ids = pl.col("id")
    return frame.filter(ids.ne_missing(ids.shift(-1)) | (pl.int_range(pl.len()) == pl.len() - 1))


def _kept(records: list[Record], later: list[pl.Series]) -> list[Record]:
    """``records`` less those whose id comes again later (noted in ``later``)."""
    ids = pl.Series([record.id for record in records], dtype=pl.String)
    if later:
        again = ids.is_in(pl.concat(later).implode()).to_list()
        records = [record for record, dropped in zip(records, again, strict=True) if not dropped]
    later.append(ids)
    return records
