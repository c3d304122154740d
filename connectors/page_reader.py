"""A Bulk API result page, or a REST query page, as a `RecordBatch`: the page's records
converted a column at a time. Salesforce's pages, and HubSpot's events API pages (JSON rows
of the same kind: an id, a time, flat or dotted fields), which read as REST pages do; HubSpot's
list pages (each record made one flat row) and email events, which come in no time order, read
as `unordered_columns`, given each field's values.

What `SalesforceConnector._items` does row by row, this does for a page at once, to the same
end: rows without an id or any time are skipped and counted, deleted rows become tombstones in
their place, values convert through `connectors.columns` (a warning for each that cannot),
amounts go to the corporate currency, the rules type each distinct kind of activity once, and
the cursor moves to the latest stamp of the page (a guessed time never moves it). A REST page
(JSON) is first made the text columns a Bulk page would hold (`PageReader.rest_items`), unless
one of its values would not convert from its text as it does as it came (a checkbox where a
number is read, a JSON object) or its ids repeat or its times are out of order: that page is
read a row at a time. Its rows of the overlap window come as records marked ``reread``, in
their places.

    reader = PageReader(stream, maps, merge, rules, money, stamps=("SystemModstamp", ...))
    reader = PageReader(stream, maps, None, rules, None, ("occurredAt",), key="id")  # HubSpot
    items, cursor = reader.items(page, since, cursor, tally)
    read = reader.rest_items(rest_page["records"], select, cursor, tally)  # None: row by row
    read = reader.rest_frame(text_columns, cursor, tally)  # the same, columns made already
    read = reader.unordered_columns({name: values, ...}, since, cursor, tally)  # None: rows
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import polars as pl

from connectors.columns import Warned, column_of, converted_columns, merged_warnings
from connectors.keys import NO_ID, NO_TIME, modified_columns, read_id, read_ids
from connectors.money import Money
from connectors.protocol import Cursor, Record, RecordBatch, Tombstone
from connectors.rules import RuleBook
from connectors.streams import FieldMap, Stream, flag, integer, lookup, number, text
from connectors.tally import Tally

__all__ = ["PageReader"]

_POSITION = "_at"  # a row's position in its page, while it is read
_DELETED = "IsDeleted"
# JSON values other than text that a field's text reads to the same end as the value itself, by
# the converters that read the field (`str(True)` is "True", which `flag` and `text` read as
# they read True; `str(12.5)` is "12.5" for `number`, `integer`, `text` and `flag`); a field
# some other converter, a rule, a time or a key reads takes text alone
_AS_TEXT: dict[Callable[..., Any], frozenset[type]] = {
    flag: frozenset({bool, int, float}),
    text: frozenset({bool, int, float}),
    number: frozenset({int, float}),
    integer: frozenset({int, float}),
}
_TEXT_ONLY: frozenset[type] = frozenset()


@dataclass(frozen=True)
class PageReader:
    """How one stream's pages become items: its maps, merge field, rules and money, the times a
    row's modification time is read from (the replication key first), the column of its
    currency (None: no amounts), and the field holding a row's id."""

    stream: Stream
    maps: Sequence[FieldMap]
    merge: str | None
    rules: RuleBook
    money: Money | None
    stamps: tuple[str, ...]
    currency: str | None = None
    key: str = "Id"
    # per CRM field, the JSON types besides text its text stands for (`_text_frame`)
    _as_text: dict[str, frozenset[type]] = field(init=False, repr=False, compare=False)

    @property
    def fields(self) -> list[str]:
        """The CRM fields a page's rows are read from, in order (the maps', the rules', the
        times, the id, the merge field and the currency; not the deleted flag)."""
        return [name for name in self._as_text if name != _DELETED]

    def __post_init__(self) -> None:
        readers: dict[str, list[Callable[..., Any] | None]] = {_DELETED: [flag]}
        for m in self.maps:
            for name in m.theirs:
                readers.setdefault(name, []).append(m.convert if len(m.theirs) == 1 else None)
        rules = self.rules.fields(self.stream)
        others = (*rules, *self.stamps, self.key, self.merge, self.currency)
        for name in others:
            if name is not None:
                readers.setdefault(name, []).append(None)
        kinds = {
            name: frozenset.intersection(*(_AS_TEXT.get(read, _TEXT_ONLY) for read in reads))
            for name, reads in readers.items()
        }
        object.__setattr__(self, "_as_text", kinds)

    def _frame_of(
        self, rows: Sequence[Mapping[str, Any]], names: Sequence[str]
    ) -> pl.DataFrame | None:
        """A REST page's records (JSON) as the text columns ``names`` of a Bulk page (a
        relationship's field walked to, ``Campaign.Name``; a checkbox or a number as its text);
        None when a value would not read from its text as it reads as it came, so the page
        must be read a row at a time."""
        return self._text_frame(_columns(rows, names))

    def _text_frame(self, columns: Mapping[str, list[Any]]) -> pl.DataFrame | None:
        """Values by field (JSON) as the text columns of `_frame_of`; None where one's text
        would not read as it does as it came."""
        made: list[pl.Series] = []
        for name, values in columns.items():
            text = _strict_text(name, values)
            if text is not None:
                made.append(text)
                continue
            kinds = set(map(type, values))
            kinds.discard(str)
            kinds.discard(type(None))
            if kinds:
                if not kinds <= self._as_text.get(name, _TEXT_ONLY):
                    return None
                values = [v if v is None or type(v) is str else str(v) for v in values]
            made.append(pl.Series(name, values, dtype=pl.String))
        return pl.DataFrame(made)

    def rest_items(
        self, rows: Sequence[Mapping[str, Any]], names: Sequence[str], cursor: Cursor, tally: Tally
    ) -> tuple[list[RecordBatch | Record | Tombstone], Cursor] | None:
        """A REST page's records (JSON, in the stamp order the query asks) as `items` makes
        them, the rows ``cursor`` holds that it has not delivered (the overlap window's) each in
        its place, a record marked ``reread`` or a tombstone; and ``cursor`` moved past them.
        None, with nothing counted, when the page must be read a row at a time: a value its
        text would not stand for (`_frame_of`), an id twice or times out of order (the cursor
        moved once a page is then not the one a row at a time would move; a guessed time, a
        fallback's, moves none and is not asked to be in order)."""
        return self.rest_frame(self._frame_of(rows, names), cursor, tally)

    def rest_frame(
        self, page: pl.DataFrame | None, cursor: Cursor, tally: Tally
    ) -> tuple[list[RecordBatch | Record | Tombstone], Cursor] | None:
        """`rest_items` of a REST page already made text columns (`_frame_of`, or
        `connectors.json_pages` from the answer's text); None as there (``page`` None too)."""
        if page is None:
            return None
        ids = read_ids(column_of(page, self.key))
        at, stamped = modified_columns([(name, column_of(page, name)) for name in self.stamps])
        # scatter writes in place: the times themselves go on to `_items`
        ordered = at.clone().scatter(list(stamped), None) if stamped else at
        ordered = ordered.drop_nulls()
        if ids.drop_nulls().is_duplicated().any() or (ordered.diff() < timedelta(0)).any():
            return None
        return self._items(page, ids, at, stamped, cursor, cursor, tally, rereads=True)

    def unordered_columns(
        self, columns: Mapping[str, list[Any]], since: Cursor, cursor: Cursor, tally: Tally
    ) -> tuple[list[RecordBatch | Record | Tombstone], Cursor] | None:
        """JSON rows in any order (HubSpot's list API gives them by id, its email events API
        in none), given as their values by field (each of `fields`, in order, as JSON gave
        them), as `items` makes them: those ``since`` admits, and ``cursor`` moved past them.
        None, with nothing counted, when they must be read a row at a time: a value its text
        would not stand for (`_text_frame`), or an id twice (a batch holds each id once)."""
        return self.unordered_frame(self._text_frame(columns), since, cursor, tally)

    def unordered_frame(
        self, page: pl.DataFrame | None, since: Cursor, cursor: Cursor, tally: Tally
    ) -> tuple[list[RecordBatch | Record | Tombstone], Cursor] | None:
        """`unordered_columns` of rows already made text columns (`_text_frame`, or
        `connectors.json_pages` from the answers' text); None as there (``page`` None too)."""
        if page is None:
            return None
        ids = read_ids(column_of(page, self.key))
        if ids.drop_nulls().is_duplicated().any():
            return None
        at, stamped = modified_columns([(name, column_of(page, name)) for name in self.stamps])
        return self._items(page, ids, at, stamped, since, cursor, tally, rereads=False)

    def items(
        self, page: pl.DataFrame, since: Cursor, cursor: Cursor, tally: Tally
    ) -> tuple[list[RecordBatch | Record | Tombstone], Cursor]:
        """The page's batches and tombstones in page order, rows ``since`` holds left out, and
        ``cursor`` moved past what they deliver."""
        ids = read_ids(column_of(page, self.key))
        at, stamped = modified_columns([(name, column_of(page, name)) for name in self.stamps])
        return self._items(page, ids, at, stamped, since, cursor, tally, rereads=False)

    def _items(
        self,
        page: pl.DataFrame,
        ids: pl.Series,
        at: pl.Series,
        stamped: Warned,
        since: Cursor,
        cursor: Cursor,
        tally: Tally,
        *,
        rereads: bool,
    ) -> tuple[list[RecordBatch | Record | Tombstone], Cursor]:
        """`items`, or with ``rereads`` `rest_items`, of a page whose ids and times are read."""
        if not page.height:
            return [], cursor
        valid = ids.is_not_null() & at.is_not_null()
        tally.skip(NO_ID, ids.null_count())
        tally.skip(NO_TIME, int((ids.is_not_null() & at.is_null()).sum()))
        deleted = _flags(column_of(page, _DELETED)) & valid
        guessed = pl.repeat(False, page.height, eager=True).scatter(list(stamped), True) & ~deleted
        admitted = valid & (guessed | _admits(since, at, ids))
        moving = admitted & ~guessed
        cursor = _advanced(cursor, at.filter(moving), ids.filter(moving))
        if rereads:
            again = valid & ~admitted & ~_delivered(since, at, ids)
        else:
            again = pl.repeat(False, page.height, eager=True)
        live = valid & ~deleted
        batch, warned = self._values(page.filter(live), live.arg_true(), stamped, tally)
        batch = batch.with_columns(ids.filter(live).alias("id"), at.filter(live))
        singles = self._rereads(batch.filter(again.filter(live)), warned)
        batch = batch.filter(admitted.filter(live))
        gone = (deleted & (admitted | again)).arg_true().to_list()
        singles += [(row, self._tombstone(page, ids, at, row)) for row in gone]
        return self._in_order(batch, warned, sorted(singles, key=lambda single: single[0])), cursor

    def _rereads(self, rows: pl.DataFrame, warned: Warned) -> list[tuple[int, Record | Tombstone]]:
        """Rows of the overlap window as records marked ``reread``, by page position."""
        if not rows.height:
            return []
        positions = rows[_POSITION].to_list()
        records = self._batch(rows, warned).records()
        return [(row, replace(r, reread=True)) for row, r in zip(positions, records, strict=True)]

    def _values(
        self, live: pl.DataFrame, rows: pl.Series, stamped: Warned, tally: Tally
    ) -> tuple[pl.DataFrame, Warned]:
        """The live rows' values, led by their page positions, and their warnings by page
        position in `_items`' order: the time's, the maps', the amounts', the rules'."""
        values, warned = converted_columns(self.stream, self.maps, live)
        if self.money is not None and self.currency is not None:
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
        self, batch: pl.DataFrame, warned: Warned, singles: list[tuple[int, Record | Tombstone]]
    ) -> list[RecordBatch | Record | Tombstone]:
        """Batches of the live rows between the tombstones and records read again (each at
        its page position), in page order."""
        positions = batch[_POSITION].to_list()  # ascending; bisected in Python, not polars
        items: list[RecordBatch | Record | Tombstone] = []
        start = 0
        for row, single in [*singles, (None, None)]:
            end = batch.height if row is None else bisect_left(positions, row, start)
            if end > start:
                items.append(self._batch(batch.slice(start, end - start), warned))
            if single is not None:
                items.append(single)
            start = end
        return items

    def _batch(self, rows: pl.DataFrame, warned: Warned) -> RecordBatch:
        """Rows of the page as a batch: id, time, values; warnings by position in it."""
        positions = rows[_POSITION].to_list()
        warnings = {at: warned[row] for at, row in enumerate(positions) if row in warned}
        values = [c for c in rows.columns if c not in (_POSITION, "id", "modified_at")]
        return RecordBatch(self.stream.name, rows.select("id", "modified_at", *values), warnings)


def _strict_text(name: str, values: list[Any]) -> pl.Series | None:
    """``values`` as a text column when each is text or null, as most columns' are (polars
    checks each value as it builds, faster than their types gathered first); None when one is
    not: a number, a checkbox, an object, an integer too big for polars (which it refuses with
    an error of its own), each of which `PageReader._text_frame` then judges by its type."""
    try:
        return pl.Series(name, values, dtype=pl.String, strict=True)
    except Exception:  # whatever polars refuses: the caller's judgment decides, as before
        return None


def _columns(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """The values of ``names`` in every row, by name (`_walked` for a dotted one)."""
    return {
        name: _walked(rows, name) if "." in name else [raw.get(name) for raw in rows]
        for name in names
    }


def _walked(rows: Sequence[Mapping[str, Any]], name: str) -> list[Any]:
    """`lookup` of ``name`` (``properties.hs_url``, ``Campaign.Name``) in every row, without a
    call a row where the field is one step into a JSON object, as it nearly always is."""
    head, _, rest = name.partition(".")
    if "." in rest:
        return [lookup(raw, name) for raw in rows]
    return [
        raw[name]
        if name in raw
        else inner.get(rest)
        if type(inner := raw.get(head)) is dict
        else lookup(raw, name)
        for raw in rows
    ]


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


def _delivered(since: Cursor, at: pl.Series, ids: pl.Series) -> pl.Series:
    """`Cursor.delivered` of every row."""
    if since.value is None or not since.ids:
        return pl.repeat(False, at.len(), eager=True)
    return ((at == since.value) & ids.is_in(list(since.ids))).fill_null(False)


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
