"""A Bulk API result page as a `RecordBatch`: the page's records converted a column at a time.

What `SalesforceConnector._items` does row by row, this does for a page at once, to the same
end: rows without an id or any time are skipped and counted, deleted rows become tombstones in
their place, values convert through `connectors.columns` (a warning for each that cannot),
amounts go to the corporate currency, the rules type each distinct kind of activity once, and
the cursor moves to the latest stamp of the page (a guessed time never moves it).

    reader = PageReader(stream, maps, merge, rules, money, stamps=("SystemModstamp", ...))
    items, cursor = reader.items(page, since, cursor, tally)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

import polars as pl

from connectors.columns import Warned, column_of, converted_columns, merged_warnings
from connectors.keys import NO_ID, NO_TIME, modified_columns, read_id, read_ids
from connectors.money import Money
from connectors.protocol import Cursor, RecordBatch, Tombstone
from connectors.rules import RuleBook
from connectors.streams import FieldMap, Stream
from connectors.tally import Tally

__all__ = ["PageReader"]

_POSITION = "_at"  # a row's position in its page, while it is read


@dataclass(frozen=True)
class PageReader:
    """How one stream's Bulk pages become items: its maps, merge field, rules and money, the
    times a row's modification time is read from (the replication key first), and the column
    of its currency."""

    stream: Stream
    maps: Sequence[FieldMap]
    merge: str | None
    rules: RuleBook
    money: Money | None
    stamps: tuple[str, ...]
    currency: str

    def items(
        self, page: pl.DataFrame, since: Cursor, cursor: Cursor, tally: Tally
    ) -> tuple[list[RecordBatch | Tombstone], Cursor]:
        """The page's batches and tombstones in page order, rows ``since`` holds left out, and
        ``cursor`` moved past what they deliver."""
        if not page.height:
            return [], cursor
        ids = read_ids(column_of(page, "Id"))
        at, stamped = modified_columns([(name, column_of(page, name)) for name in self.stamps])
        valid = ids.is_not_null() & at.is_not_null()
        tally.skip(NO_ID, ids.null_count())
        tally.skip(NO_TIME, int((ids.is_not_null() & at.is_null()).sum()))
        deleted = _flags(column_of(page, "IsDeleted")) & valid
        guessed = pl.repeat(False, page.height, eager=True).scatter(list(stamped), True) & ~deleted
        admitted = valid & (guessed | _admits(since, at, ids))
        moving = admitted & ~guessed
        cursor = _advanced(cursor, at.filter(moving), ids.filter(moving))
        live = valid & ~deleted
        batch, warned = self._values(page.filter(live), live.arg_true(), stamped, tally)
        batch = batch.with_columns(ids.filter(live).alias("id"), at.filter(live))
        batch = batch.filter(admitted.filter(live))
        gone = (deleted & admitted).arg_true().to_list()
        tombstones = [(row, self._tombstone(page, ids, at, row)) for row in gone]
        return self._in_order(batch, warned, tombstones), cursor

    def _values(
        self, live: pl.DataFrame, rows: pl.Series, stamped: Warned, tally: Tally
    ) -> tuple[pl.DataFrame, Warned]:
        """The live rows' values, led by their page positions, and their warnings by page
        position in `_items`' order: the time's, the maps', the amounts', the rules'."""
        values, warned = converted_columns(self.stream, self.maps, live)
        if self.money is not None:
            values, converted = self.money.convert_columns(values, column_of(live, self.currency))
            warned += converted
        derived, dirty, unmatched = self.rules.derive_columns(self.stream, live)
        for kind, count in unmatched.items():
            tally.unmatched_kind(kind, count)
        values = values.with_columns(derived) if derived.width else values
        at_page = rows.to_list() if any(warned) or dirty else []
        by_page = [{at_page[row]: w for row, w in source.items()} for source in [*warned, dirty]]
        led = values.with_columns(rows.alias(_POSITION)).select(_POSITION, *values.columns)
        return led, merged_warnings([stamped, *by_page])

    def _tombstone(self, page: pl.DataFrame, ids: pl.Series, at: pl.Series, row: int) -> Tombstone:
        """The deleted row at ``row`` as a tombstone (merged when it names its master)."""
        master = read_id(page[self.merge][row]) if self.merge in page.columns else None
        reason: Literal["merged", "deleted"] = "merged" if master else "deleted"
        return Tombstone(self.stream.name, ids[row], _utc(at[row]), reason, master)

    def _in_order(
        self, batch: pl.DataFrame, warned: Warned, tombstones: list[tuple[int, Tombstone]]
    ) -> list[RecordBatch | Tombstone]:
        """Batches of the live rows between the tombstones (each at its page position), in
        page order."""
        positions = batch[_POSITION]
        items: list[RecordBatch | Tombstone] = []
        start = 0
        for row, tombstone in [*tombstones, (None, None)]:
            end = batch.height if row is None else int(positions.search_sorted(row))
            if end > start:
                items.append(self._batch(batch.slice(start, end - start), warned))
            if tombstone is not None:
                items.append(tombstone)
            start = end
        return items

    def _batch(self, rows: pl.DataFrame, warned: Warned) -> RecordBatch:
        """Rows of the page as a batch: id, time, values; warnings by position in it."""
        positions = rows[_POSITION].to_list()
        warnings = {at: warned[row] for at, row in enumerate(positions) if row in warned}
        values = [c for c in rows.columns if c not in (_POSITION, "id", "modified_at")]
        return RecordBatch(self.stream.name, rows.select("id", "modified_at", *values), warnings)


def _flags(raw: pl.Series) -> pl.Series:
    """`connectors.streams.flag` of every value of a text column."""
    return pl.select((pl.lit(raw).str.to_lowercase() == "true").fill_null(False)).to_series()


def _admits(since: Cursor, at: pl.Series, ids: pl.Series) -> pl.Series:
    """`Cursor.admits` of every row."""
    if since.value is None:
        return pl.repeat(True, at.len(), eager=True)
    later = at > since.value
    if not since.ids:
        return (later | (at == since.value)).fill_null(False)
    tied = (at == since.value) & ~ids.is_in(list(since.ids))
    return (later | tied).fill_null(False)


def _advanced(cursor: Cursor, at: pl.Series, ids: pl.Series) -> Cursor:
    """`Cursor.advanced` by every row in turn: the latest stamp, and the ids at it."""
    latest = at.max()
    if latest is None:
        return cursor
    assert isinstance(latest, datetime)
    latest = _utc(latest)
    tied = frozenset(ids.filter(at == latest).to_list())
    if cursor.value is None or latest > cursor.value:
        return replace(cursor, value=latest, ids=tied)
    if latest == cursor.value:
        return replace(cursor, ids=cursor.ids | tied)
    return cursor


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)
