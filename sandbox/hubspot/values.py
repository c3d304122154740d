"""Property values between HubSpot's strings and the typed columns the sandbox stores.

HubSpot sends and receives every property value as a string (or null). Numbers are kept as
Float64, datetimes as UTC datetimes, so search can compare them; they are rendered back the way
HubSpot writes them: "1500" not "1500.0", "2026-01-31T09:30:00.000Z".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl

from sandbox.hubspot.errors import HubSpotError
from sandbox.hubspot.schema import PropertySpec

__all__ = ["TIMESTAMP_FORMAT", "column_dtype", "format_timestamp", "parse_value", "rendered"]

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"
_MAX_EXACT = 2.0**53  # floats above this are not integers we can print exactly


def column_dtype(property_type: str) -> pl.DataType:
    """The column dtype that stores values of a property type."""
    if property_type in ("datetime", "date"):
        return pl.Datetime("us", "UTC")
    return {"number": pl.Float64(), "bool": pl.Boolean()}.get(property_type, pl.String())


def format_timestamp(value: datetime) -> str:
    """A datetime as HubSpot writes it: ISO 8601 UTC with milliseconds and Z."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_value(spec: PropertySpec, text: Any) -> Any:
    """A string value for ``spec`` as the typed value stored (None clears the property)."""
    if text is None or text == "":
        return None
    text = str(text)
    try:
        return _PARSERS[spec.type](spec, text)
    except (ValueError, OverflowError) as error:
        raise HubSpotError(
            400,
            f'Property values were not valid: {text!r} is not a {spec.type} ("{spec.name}")',
            errors=[
                {
                    "message": f"{text!r} is not a valid {spec.type}",
                    "code": "INVALID_" + spec.type.upper(),
                }
            ],
            context={"propertyName": [spec.name]},
        ) from error


def _number(spec: PropertySpec, text: str) -> float:
    return float(text)


def _datetime(spec: PropertySpec, text: str) -> datetime:
    """Epoch milliseconds or ISO 8601 (HubSpot accepts both)."""
    if text.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _bool(spec: PropertySpec, text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(f"{text!r} is not true or false")
    return text.lower() == "true"


def _enumeration(spec: PropertySpec, text: str) -> str:
    """One option value, or several separated by ";" (checkbox properties)."""
    allowed = {value for value, _ in spec.options}
    if allowed and spec.field_type != "checkbox" and text not in allowed:
        raise ValueError(f"{text!r} was not one of the allowed options: {sorted(allowed)}")
    return text


_PARSERS = {
    "string": lambda spec, text: text,
    "enumeration": _enumeration,
    "number": _number,
    "datetime": _datetime,
    "date": _datetime,
    "bool": _bool,
}


def rendered(name: str, dtype: pl.DataType, property_type: str) -> pl.Expr:
    """A stored column as HubSpot's property strings (nulls stay null)."""
    column = pl.col(name)
    if dtype == pl.Float64:
        exact = (column == column.round()) & (column.abs() < _MAX_EXACT)
        return (
            pl.when(exact)
            .then(column.cast(pl.Int64).cast(pl.String))
            .otherwise(column.cast(pl.String))
        )
    if isinstance(dtype, pl.Datetime):
        return column.dt.strftime("%Y-%m-%d" if property_type == "date" else TIMESTAMP_FORMAT)
    return column.cast(pl.String)  # booleans cast to "true" / "false"
