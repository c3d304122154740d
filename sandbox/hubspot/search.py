"""CRM search: ``filterGroups`` compiled to one polars expression, one sort, offset paging.

Limits as documented at https://developers.hubspot.com/docs/api/crm/search : at most 5 filter
groups, 6 filters in a group and 18 in all, one sort, 200 results a page, and no page beyond the
10,000th result (``after`` >= 10000 answers 400). Groups are ORed, filters in a group ANDed.
Comparisons never match a record without a value (NEQ and NOT_IN included); string equality is
case-insensitive, as HubSpot's is. CONTAINS_TOKEN matches a whole word, ``*`` as a wildcard.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from sandbox.hubspot.errors import HubSpotError
from sandbox.hubspot.schema import ObjectSpec, PropertySpec
from sandbox.hubspot.values import parse_value

__all__ = ["MAX_GROUPS", "MAX_LIMIT", "MAX_RESULTS", "OPERATORS", "SearchPage", "search"]

MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
MAX_LIMIT = 200
MAX_RESULTS = 10_000
DEFAULT_LIMIT = 10

Op = Callable[[pl.Expr, Any, Any], pl.Expr]


def _token(column: pl.Expr, value: Any, _: Any) -> pl.Expr:
    """A whole word (or the whole value) matching ``value``, ``*`` matching anything."""
    pattern = ".*".join(re.escape(part) for part in str(value).split("*"))
    return column.str.contains(rf"(?i)(^|\s){pattern}(\s|$)")


# operator -> (how many values it takes: 0, 1, "range", "list"; the expression)
OPERATORS: dict[str, tuple[object, Op]] = {
    "EQ": (1, lambda c, v, _: c == v),
    "NEQ": (1, lambda c, v, _: c != v),
    "LT": (1, lambda c, v, _: c < v),
    "LTE": (1, lambda c, v, _: c <= v),
    "GT": (1, lambda c, v, _: c > v),
    "GTE": (1, lambda c, v, _: c >= v),
    "BETWEEN": ("range", lambda c, v, high: c.is_between(v, high)),
    "IN": ("list", lambda c, v, _: c.is_in(v)),
    "NOT_IN": ("list", lambda c, v, _: ~c.is_in(v)),
    "HAS_PROPERTY": (0, lambda c, v, _: c.is_not_null()),
    "NOT_HAS_PROPERTY": (0, lambda c, v, _: c.is_null()),
    "CONTAINS_TOKEN": (1, _token),
    "NOT_CONTAINS_TOKEN": (1, lambda c, v, h: ~_token(c, v, h)),
}
_TEXT_OPERATORS = {"CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}


@dataclass(frozen=True)
class SearchPage:
    """One page of matches, how many matched in all, and the next page's ``after``."""

    rows: pl.DataFrame
    total: int
    after: str | None
    names: list[str]


def _bad(message: str) -> HubSpotError:
    return HubSpotError(400, message)


def _value(spec: PropertySpec, text: Any, textual: bool) -> Any:
    """A filter value typed like the column it is compared with."""
    if spec.name == "hs_object_id":
        return int(float(text))
    if textual:  # any text may be searched for, option or not
        return str(text).lower()
    return parse_value(spec, text)


def _filter(
    item: Mapping[str, Any], specs: Mapping[str, PropertySpec], frame: pl.DataFrame
) -> pl.Expr:
    """One filter as an expression over the records."""
    name, operator = item.get("propertyName"), item.get("operator", "EQ")
    if name not in specs:
        raise _bad(f"There was a problem with the request: property {name!r} does not exist")
    if operator not in OPERATORS:
        raise _bad(f"Unknown operator {operator!r}; expected one of {', '.join(OPERATORS)}")
    arity, build = OPERATORS[operator]
    column_name = "_id" if name == "hs_object_id" else name
    textual = frame.schema[column_name] == pl.String
    column = pl.col(column_name)
    if textual and operator not in _TEXT_OPERATORS:
        column = column.str.to_lowercase()
    spec = specs[name]
    if arity == 0:
        return build(column, None, None)
    if arity == "list":
        return build(column, [_value(spec, v, textual) for v in item.get("values") or []], None)
    if "value" not in item:
        raise _bad(f"Operator {operator} needs a value for {name!r}")
    high = _value(spec, item.get("highValue"), textual) if arity == "range" else None
    if operator in _TEXT_OPERATORS:
        return build(pl.col(column_name), item["value"], None)
    return build(column, _value(spec, item["value"], textual), high)


def _where(
    groups: Sequence[Mapping[str, Any]], specs: Mapping[str, PropertySpec], frame: pl.DataFrame
) -> pl.Expr:
    """filterGroups ORed, each group's filters ANDed; nulls never match."""
    filters = [group.get("filters") or [] for group in groups]
    if len(groups) > MAX_GROUPS or any(len(f) > MAX_FILTERS_PER_GROUP for f in filters):
        raise _bad(f"Too many filters: at most {MAX_GROUPS} groups of {MAX_FILTERS_PER_GROUP}")
    if sum(len(f) for f in filters) > MAX_FILTERS:
        raise _bad(f"Too many filters: at most {MAX_FILTERS} in all")
    expr = pl.lit(not groups)
    for group in filters:
        clause = pl.lit(True)
        for item in group:
            clause = clause & _filter(item, specs, frame).fill_null(False)
        expr = expr | clause
    return expr


def _query(text: str | None, spec: ObjectSpec, frame: pl.DataFrame) -> pl.Expr:
    """The free-text ``query``: every word found in one of the object's text properties."""
    if not text:
        return pl.lit(True)
    expr = pl.lit(True)
    for word in text.split():
        needle = word.lower()
        found = [
            pl.col(name).str.to_lowercase().str.contains(needle, literal=True)
            for name in spec.text_search
        ]
        expr = expr & pl.any_horizontal(found).fill_null(False)
    return expr


def _sort(sorts: Sequence[Any], specs: Mapping[str, PropertySpec]) -> tuple[str, bool]:
    """The one sort: (column, descending); by id when none is given."""
    if len(sorts) > 1:
        raise _bad("Only one sort is supported per search")
    if not sorts:
        return "_id", False
    sort = sorts[0]
    if isinstance(sort, str):
        name, descending = sort.lstrip("-"), sort.startswith("-")
    else:
        name, descending = sort.get("propertyName"), sort.get("direction") == "DESCENDING"
    if name not in specs:
        raise _bad(f"Cannot sort by {name!r}: no such property")
    return ("_id" if name == "hs_object_id" else name), descending


def _paging(body: Mapping[str, Any]) -> tuple[int, int]:
    """(offset, limit) of the page asked for."""
    try:
        limit = int(body.get("limit") or DEFAULT_LIMIT)
        offset = int(body.get("after") or 0)
    except (TypeError, ValueError) as error:
        raise _bad("Invalid paging: limit and after must be whole numbers") from error
    if not 0 < limit <= MAX_LIMIT:
        raise _bad(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if offset >= MAX_RESULTS:
        raise _bad(
            f"Paging past {MAX_RESULTS} results is not supported (after={offset}); "
            "narrow the search instead"
        )
    return offset, limit


def search(
    frame: pl.DataFrame,
    spec: ObjectSpec,
    specs: Mapping[str, PropertySpec],
    body: Mapping[str, Any],
) -> SearchPage:
    """One page of the live records matching a search request body."""
    offset, limit = _paging(body)
    where = _where(body.get("filterGroups") or [], specs, frame) & _query(
        body.get("query"), spec, frame
    )
    column, descending = _sort(body.get("sorts") or [], specs)
    matched = frame.filter(where & ~pl.col("_archived"))
    ordered = matched.sort([column, "_id"], descending=[descending, False], nulls_last=True)
    rows = ordered.slice(offset, limit)
    more = offset + rows.height < ordered.height
    names = [n for n in (body.get("properties") or spec.defaults) if n in specs]
    return SearchPage(rows, ordered.height, str(offset + rows.height) if more else None, names)
