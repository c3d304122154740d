"""A WHERE condition compiled to one vectorised polars expression, with SOQL's semantics.

SOQL's logic has two values: a comparison with a null field is false, except ``!=`` and
NOT IN, which match nulls (``Industry != 'Tech'`` returns accounts with no industry). A null
boolean field reads as false; https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_null.htm
Text compares case-insensitively, folded to upper case as Salesforce sorts text in English
locales; ids compare exactly, a 15-character id as its 18-character form.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import date, datetime

import polars as pl

from sandbox.soql.errors import SoqlError
from sandbox.soql.plan import Column
from sandbox.soql.schema import FieldKind
from sandbox.soql.syntax import And, Comparison, Condition, FieldRef, Like, Not, Value, Wildcard

__all__ = ["predicate", "sort_key"]

_TEXT = frozenset({"string", "picklist", "textarea"})
_IDS = frozenset({"id", "reference"})
_SOAP_TYPE: dict[str, str] = {
    "id": "id",
    "reference": "id",
    "string": "string",
    "picklist": "string",
    "textarea": "string",
    "boolean": "boolean",
    "int": "integer",
    "double": "double",
    "date": "date",
    "datetime": "dateTime",
}
_DTYPE: dict[str, pl.DataType] = {
    "boolean": pl.Boolean(),
    "int": pl.Float64(),
    "double": pl.Float64(),
    "date": pl.Date(),
    "datetime": pl.Datetime("us", "UTC"),
}
_ID_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_OPS: dict[str, Callable[[pl.Expr, pl.Expr], pl.Expr]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def predicate(condition: Condition, columns: Mapping[FieldRef, Column], text: str) -> pl.Expr:
    """A boolean expression, never null, true for the rows ``condition`` selects."""
    if isinstance(condition, Comparison):
        return _comparison(condition, columns[condition.field], text)
    if isinstance(condition, Not):
        return ~predicate(condition.operand, columns, text)
    operands = [predicate(operand, columns, text) for operand in condition.operands]
    return (
        pl.all_horizontal(operands) if isinstance(condition, And) else pl.any_horizontal(operands)
    )


def sort_key(column: Column) -> pl.Expr:
    """The column as SOQL compares and sorts it: text folded to upper case, booleans never null."""
    expr = pl.col(column.name)
    if column.kind in _TEXT:
        return expr.str.to_uppercase()
    return expr.fill_null(False) if column.kind == "boolean" else expr


def _comparison(comparison: Comparison, column: Column, text: str) -> pl.Expr:
    _check(comparison, column, text)
    op, value = comparison.op, comparison.value
    if isinstance(value, Like):
        return sort_key(column).str.contains(_like_regex(value)).fill_null(False)
    if isinstance(value, tuple):
        inside = _is_in(column, value)
        return inside if op == "IN" else ~inside
    if value is None:
        return _null_test(column, op)
    compared = _OPS[op](sort_key(column), _literal(value, column.kind))
    return compared.fill_null(op == "!=")


def _null_test(column: Column, op: str) -> pl.Expr:
    """``= null`` and ``!= null``; a boolean's null is false, so ``= null`` means ``= false``."""
    if op not in ("=", "!="):
        return pl.lit(False)
    if column.kind == "boolean":
        value = sort_key(column)
        return ~value if op == "=" else value
    expr = pl.col(column.name)
    return expr.is_null() if op == "=" else expr.is_not_null()


def _is_in(column: Column, values: tuple[Value, ...]) -> pl.Expr:
    """IN: any of the values; a null in the list matches a null field."""
    present = [
        _id18(value) if column.kind in _IDS and isinstance(value, str) else value
        for value in values
        if value is not None
    ]
    key = sort_key(column)
    if column.kind in ("int", "double"):
        key = key.cast(pl.Float64)
    options = pl.Series(present, dtype=_DTYPE.get(column.kind, pl.String()))
    if column.kind in _TEXT:
        options = options.str.to_uppercase()
    inside = key.is_in(options.implode()).fill_null(False)
    return inside | pl.col(column.name).is_null() if None in values else inside


def _literal(value: Value, kind: FieldKind) -> pl.Expr:
    """A literal typed like the field, text folded as ``sort_key`` folds the field."""
    if kind in _TEXT:
        return pl.lit(value, dtype=pl.String).str.to_uppercase()
    if kind in ("date", "datetime"):
        return pl.lit(value, dtype=_DTYPE[kind])
    return pl.lit(_id18(value) if kind in _IDS and isinstance(value, str) else value)


def _id18(value: str) -> str:
    """A 15-character id with the case-safe suffix Salesforce adds (ids are stored with 18).

    https://help.salesforce.com/s/articleView?id=000385008&type=1
    """
    if len(value) != 15 or not (value.isascii() and value.isalnum()):
        return value
    chunks = [value[start : start + 5] for start in range(0, 15, 5)]
    bits = [sum(1 << i for i, char in enumerate(chunk) if char.isupper()) for chunk in chunks]
    return value + "".join(_ID_SUFFIX[number] for number in bits)


def _like_regex(pattern: Like) -> str:
    """The LIKE pattern as an anchored regex over upper-cased text."""
    pieces = {Wildcard.ANY: ".*", Wildcard.ONE: "."}
    body = "".join(
        pieces[part] if isinstance(part, Wildcard) else pl.escape_regex(_upper(part))
        for part in pattern.parts
    )
    return rf"(?s)\A{body}\z"


def _upper(text: str) -> str:
    """Upper case by polars' own rules, so literal and field fold alike."""
    return pl.Series([text], dtype=pl.String).str.to_uppercase().item()


def _check(comparison: Comparison, column: Column, text: str) -> None:
    """Refuse what Salesforce refuses: LIKE off text, ranges on booleans, mistyped values."""
    op, value, kind = comparison.op, comparison.value, column.kind
    if (op == "LIKE" and kind not in _TEXT) or (op[0] in "<>" and kind == "boolean"):
        detail = f"invalid operator on {_SOAP_TYPE[kind]} field: {comparison.field.name} {op}"
        raise SoqlError.at("INVALID_QUERY_FILTER_OPERATOR", detail, text, comparison.pos)
    values = value if isinstance(value, tuple) else (value,)
    if (op == "LIKE") != isinstance(value, Like) or not all(_fits(v, kind) for v in values):
        quoted = "should" if kind in _TEXT | _IDS else "should not"
        detail = (
            f"value of filter criterion for field '{comparison.field.name}' must be of type "
            f"{_SOAP_TYPE[kind]} and {quoted} be enclosed in quotes"
        )
        raise SoqlError.at("INVALID_FIELD", detail, text, comparison.pos)


def _fits(value: Value | Like, kind: FieldKind) -> bool:
    """Whether a literal has the type a field of ``kind`` takes (null fits every field)."""
    if value is None or isinstance(value, Like):
        return True
    if kind in _TEXT | _IDS:
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("int", "double"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "datetime":
        return isinstance(value, datetime)
    return isinstance(value, date) and not isinstance(value, datetime)
