"""A page of raw CRM text converted a column at a time, to what `connectors.streams.normalise`
makes of it a row at a time: the same values and the same warnings.

Each common converter has a vectorised twin (`text`, `number`, `integer`, `flag`, `stamp`,
`day`) that converts the values written the way CRMs write them (a pattern says which) and
hands every other distinct value to the row converter itself, so an unusual or dirty value ends
exactly as it would row by row; `OfKind` (HubSpot events' object ids) reads text it never fails
on, so its twin reads every row. Any other converter (`country`, a stream's own) runs once per
distinct value, or tuple of values, and its results are joined back to the rows. Where a
converter's results fit no one column type (an int past 64 bits beside small ones), the column
holds them as Python objects.

    values, warnings = converted_columns(stream, maps, page)  # page: every column text
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import polars as pl

from connectors.protocol import ValueWarning
from connectors.streams import (
    FieldMap,
    OfKind,
    Stream,
    converted,
    day,
    flag,
    integer,
    number,
    stamp,
    text,
)

__all__ = [
    "Warned",
    "by_distinct",
    "column_of",
    "converted_columns",
    "distinct_values",
    "merged_warnings",
    "read_stamps",
    "series_of",
]

T = TypeVar("T")
# warnings by row position (of the page the columns came from)
Warned = dict[int, tuple[ValueWarning, ...]]

# what the twins read themselves; any other non-empty value goes to the row converter. [0-9],
# not \d, which would take any script's digits; seconds stop at 59 (Python refuses a leap second)
_YEAR = r"(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"  # 0000 is none to Python
_ISO_STAMP = (
    rf"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{{1,6}})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])$"
)
_STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"
# the form both CRMs send nearly every time in (milliseconds, UTC: "...T12:34:56.000Z" from
# Salesforce's Bulk API and HubSpot, "+0000" from Salesforce's REST API), read from its digits
# at fixed places, ~2.5 times faster than polars' strptime, which reads the rest
_UTC_MILLIS = (
    rf"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{{3}}"
    r"(?:Z|\+00:?00)$"
)
_DECIMAL = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_WHOLE = r"^[+-]?[0-9]{1,15}(?:\.0*)?$"  # exact through a float, as `integer` reads it
_DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"


def _text(raw: pl.Expr) -> pl.Expr:
    return pl.when(raw != "").then(raw)


def _number(raw: pl.Expr) -> pl.Expr:
    parsed = raw.cast(pl.Float64, strict=False)
    return pl.when(raw.str.contains(_DECIMAL) & parsed.is_finite()).then(parsed)


def _integer(raw: pl.Expr) -> pl.Expr:
    whole = raw.str.replace(r"\.0*$", "").cast(pl.Int64, strict=False)
    return pl.when(raw.str.contains(_WHOLE)).then(whole)


def _flag(raw: pl.Expr) -> pl.Expr:
    return (raw.str.to_lowercase() == "true").fill_null(False)


def _stamps(raw: pl.Series) -> pl.Series:
    """Times of the ISO 8601 forms `_ISO_STAMP` takes, as UTC; null elsewhere. The common form
    is read from its digits, only the other values by polars' strptime (an expression's
    branches are each worked out over the whole column, so the split is made here)."""
    common = raw.str.contains(_UTC_MILLIS)
    fast = pl.select(pl.when(common).then(_utc_millis(pl.lit(raw)))).to_series()
    rest = (~common & raw.str.contains(_ISO_STAMP)).fill_null(False)
    if not rest.any():
        return fast.alias(raw.name)
    parsed = raw.filter(rest).str.to_datetime(
        _STAMP_FORMAT, time_unit="us", time_zone="UTC", strict=False
    )
    return fast.scatter(rest.arg_true(), parsed).alias(raw.name)


def _utc_millis(raw: pl.Expr) -> pl.Expr:
    """A time of `_UTC_MILLIS`'s form from its digits (null for a day the calendar lacks)."""
    day = raw.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us"))

    def digits(start: int, length: int) -> pl.Expr:
        return raw.str.slice(start, length).cast(pl.Int64, strict=False)

    seconds = (digits(11, 2) * 60 + digits(14, 2)) * 60 + digits(17, 2)
    micros = seconds * 1_000_000 + digits(20, 3) * 1_000
    return (day + pl.duration(microseconds=micros)).dt.replace_time_zone("UTC")


def _day(raw: pl.Expr) -> pl.Expr:
    parsed = raw.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    return pl.when(raw.str.contains(_DAY)).then(parsed)


def _on_column(twin: Callable[[pl.Expr], pl.Expr]) -> Callable[[pl.Series], pl.Series]:
    """A twin written as an expression, applied to a column."""
    return lambda raw: pl.select(twin(pl.lit(raw))).to_series()


# each converter's twin: a column converted at once (null where the twin is unsure)
_TWINS: dict[Callable[..., Any], Callable[[pl.Series], pl.Series]] = {
    text: _on_column(_text),
    number: _on_column(_number),
    integer: _on_column(_integer),
    flag: _on_column(_flag),
    stamp: _stamps,
    day: _on_column(_day),
}


def converted_columns(
    stream: Stream, maps: Sequence[FieldMap], page: pl.DataFrame
) -> tuple[pl.DataFrame, list[Warned]]:
    """The page's values under our names (the stream's constants, then one column per map, in
    `normalise`'s order), and each map's warnings by row."""
    height = page.height
    columns = {name: _constant(value, height) for name, value in stream.constants.items()}
    warnings: list[Warned] = []
    for m in maps:
        raw = [column_of(page, name) for name in m.theirs]
        twin = _TWINS.get(m.convert) if len(raw) == 1 else None
        if isinstance(m.convert, OfKind):
            values, warned = _of_kind(m.convert, *raw), {}
        else:
            values, warned = _twinned(m, raw[0], twin) if twin else _by_converter(m, raw)
        columns[m.ours] = values
        warnings.append(warned)
    return pl.DataFrame([values.alias(name) for name, values in columns.items()]), warnings


def _of_kind(convert: OfKind, kind: pl.Series, object_id: pl.Series) -> pl.Series:
    """`OfKind` of every row: ``object_id`` as `text` reads it where ``kind`` is the one
    asked (text of text never fails, so there is no warning to give)."""
    chosen = pl.when(pl.lit(kind) == convert.kind).then(_text(pl.lit(object_id)))
    return pl.select(chosen.cast(pl.String)).to_series()


def column_of(page: pl.DataFrame, name: str) -> pl.Series:
    """A raw column of the page; all null where the page has none (a field read as None)."""
    if name in page.columns:
        return page[name]
    return pl.repeat(None, page.height, dtype=pl.String, eager=True).alias(name)


def read_stamps(raw: pl.Series, read: Callable[[Any], Any]) -> pl.Series:
    """Times read from ``raw`` as ``read`` reads one value (None where it cannot): the common
    form by `stamp`'s twin, every other distinct value by ``read`` itself."""
    fast = _stamps(raw)
    todo = _todo(raw, fast)
    if not todo.any():
        return fast
    results, index = by_distinct([raw.filter(todo)], read)
    return _scattered(fast, todo.arg_true(), series_of(results).gather(index))


def by_distinct(columns: Sequence[pl.Series], apply: Callable[..., T]) -> tuple[list[T], pl.Series]:
    """``apply`` once per distinct row of ``columns`` (its values as arguments, None for null):
    the results, and each row's position among them."""
    keys = pl.DataFrame({f"k{n}": column for n, column in enumerate(columns)})
    distinct = keys.unique(maintain_order=True)
    results = [apply(*row) for row in distinct.iter_rows()]
    if distinct.height == keys.height:
        return results, pl.int_range(keys.height, dtype=pl.UInt32, eager=True)
    positions = distinct.with_row_index("_at")
    joined = keys.join(
        positions, on=keys.columns, how="left", nulls_equal=True, maintain_order="left"
    )
    return results, joined["_at"]


def distinct_values(results: Sequence[Any], index: pl.Series) -> pl.Series:
    """One value per row: the result at each row's position (`by_distinct`)."""
    return series_of(list(results)).gather(index)


def series_of(values: list[Any]) -> pl.Series:
    """Python values as a column of their own type; as objects when they share none."""
    try:
        return pl.Series(values)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
        return pl.Series(values, dtype=pl.Object)


def merged_warnings(sources: Sequence[Mapping[int, tuple[ValueWarning, ...]]]) -> Warned:
    """Each row's warnings, in the order of ``sources``."""
    merged: dict[int, list[ValueWarning]] = {}
    for source in sources:
        for row, warnings in source.items():
            merged.setdefault(row, []).extend(warnings)
    return {row: tuple(warnings) for row, warnings in merged.items()}


def _constant(value: Any, height: int) -> pl.Series:
    return pl.repeat(value, height, dtype=pl.Null if value is None else None, eager=True)


def _twinned(
    m: FieldMap, raw: pl.Series, twin: Callable[[pl.Series], pl.Series]
) -> tuple[pl.Series, Warned]:
    """``raw`` converted by ``twin``, and by ``m``'s converter where the twin is unsure."""
    fast = twin(raw)
    todo = _todo(raw, fast)
    if not todo.any():
        return fast, {}
    rows = todo.arg_true()
    values, warned = _by_converter(m, [raw.filter(todo)])
    return _scattered(fast, rows, values), {int(rows[at]): w for at, w in warned.items()}


def _todo(raw: pl.Series, fast: pl.Series) -> pl.Series:
    """The rows a twin left to the row converter: a value, not converted."""
    return (raw.is_not_null() & (raw != "") & fast.is_null()).fill_null(False)


def _by_converter(m: FieldMap, raw: Sequence[pl.Series]) -> tuple[pl.Series, Warned]:
    """``m``'s converter run once per distinct tuple of raw values, joined back to the rows."""
    results, index = by_distinct(raw, lambda *values: converted(m, values))
    values = distinct_values([value for value, _ in results], index)
    failed = [at for at, (_, warning) in enumerate(results) if warning is not None]
    if not failed:
        return values, {}
    rows = index.is_in(failed).arg_true()
    warned: Warned = {}
    for row, at in zip(rows.to_list(), index.gather(rows).to_list(), strict=True):
        warning = results[at][1]
        assert warning is not None
        warned[row] = (warning,)
    return values, warned


def _scattered(fast: pl.Series, rows: pl.Series, values: pl.Series) -> pl.Series:
    """``fast`` with ``values`` put at ``rows``; as objects when their types do not meet."""
    if values.null_count() == values.len():
        return fast
    target = values.dtype if fast.dtype == pl.Null else fast.dtype
    try:
        return fast.cast(target).scatter(rows, values.cast(target, strict=True))
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
        merged = fast.to_list()
        for row, value in zip(rows.to_list(), values.to_list(), strict=True):
            merged[row] = value
        return series_of(merged)
