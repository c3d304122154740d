"""Field values as clients send them (JSON or Bulk API CSV) made into typed column values.

A value of the wrong shape raises `BadValue`; REST answers it for the whole request (the JSON
could not be read), the Bulk API fails only that row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from sandbox.salesforce.schema import Field, SObject

__all__ = ["CSV_NULL", "BadValue", "UnknownField", "coerce_record"]

CSV_NULL = "#N/A"  # the Bulk API's way to set a field to null; an empty cell leaves it alone
_SKIP = object()


class UnknownField(LookupError):
    """A field name the object does not have."""

    def __init__(self, name: str, sobject: str) -> None:
        super().__init__(f"No such column '{name}' on sobject of type {sobject}")
        self.name = name


class BadValue(ValueError):
    """A value that cannot be read as its field's type."""

    def __init__(self, field: Field, value: Any) -> None:
        super().__init__(f"{field.label}: value not of required type: {value}")
        self.field = field
        self.value = value


def coerce_record(sobject: SObject, raw: Mapping[str, Any], *, csv: bool = False) -> dict[str, Any]:
    """Canonical field name -> typed value; ``attributes`` is ignored."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "attributes":
            continue
        field = sobject.field(name)
        if field is None:
            raise UnknownField(name, sobject.name)
        typed = _from_csv(field, value) if csv else _typed(field, value)
        if typed is not _SKIP:
            out[field.name] = typed
    return out


def _from_csv(field: Field, value: str) -> Any:
    """A CSV cell: empty leaves the field alone, ``#N/A`` clears it."""
    if value == "":
        return _SKIP
    if value == CSV_NULL:
        return None
    return _typed(field, value)


def _typed(field: Field, value: Any) -> Any:
    if value is None:
        return None
    try:
        return _PARSERS[field.kind.soql_kind](value)
    except (TypeError, ValueError) as error:
        raise BadValue(field, value) from error


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError("not text")
    return str(value)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise TypeError("not a boolean")


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError("not a number")
    return float(value)


def _integer(value: Any) -> int:
    number = _number(value)
    if not number.is_integer():
        raise ValueError("not an integer")
    return int(number)


def _date(value: Any) -> date:
    if not isinstance(value, str):
        raise TypeError("not a date")
    return date.fromisoformat(value[:10])


def _datetime(value: Any) -> datetime:
    """Any ISO 8601 form Salesforce accepts (``Z``, ``+0000``, ``+00:00``), to UTC, to the ms."""
    if not isinstance(value, str):
        raise TypeError("not a datetime")
    parsed = datetime.fromisoformat(value)
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


# SOQL kind of the field -> parser of a client's value
_PARSERS: dict[str, Callable[[Any], Any]] = {
    "id": _text,
    "reference": _text,
    "string": _text,
    "textarea": _text,
    "picklist": _text,
    "boolean": _boolean,
    "int": _integer,
    "double": _number,
    "date": _date,
    "datetime": _datetime,
}
