"""Turn pydantic validation errors into settings problems an admin can act on.

`describe_error` locates the table and key an error points at in the raw data, names where the
value came from and derives what was expected from the field's type and constraints, so no
message is written by hand per field.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from scoring.config import SETTING_ERROR

__all__ = ["describe_error", "item_model", "table_model", "toml_value"]

_ITEM_LABELS = ("name", "activity", "signal", "team")
_MAX_SHOWN = 80
_PLURALS: Mapping[Any, str] = {int: "integers", float: "numbers", bool: "booleans"}
_Bounds = tuple[tuple[type, str, str], ...]
_LOWER: _Bounds = ((Gt, "gt", "above"), (Ge, "ge", "at least"))
_UPPER: _Bounds = ((Lt, "lt", "below"), (Le, "le", "at most"))


@dataclass(frozen=True)
class _Spot:
    """What an error points at: the table header, the model and key there, and the raw value."""

    header: str
    model: type[BaseModel]
    key: str | None
    field: FieldInfo | None
    value: Any
    rest: tuple[str | int, ...] = ()


def describe_error(
    error: ErrorDetails,
    root: type[BaseModel],
    data: Mapping[str, Any],
    origins: Mapping[tuple[str, ...], str],
    label: str,
) -> str:
    """One line: `<origin>: <[table]> <key> <what is wrong>`; the input value is read from `data`.

    `origins` names the environment variable behind an overridden key; anything else is `label`.
    """
    custom = error["type"] == SETTING_ERROR
    at = tuple(error.get("ctx", {}).get("at", ())) if custom else ()
    loc = (*error["loc"], *at)
    spot = _locate(loc, root, data)
    where = _origin(loc, origins, label)
    if error["type"] == "extra_forbidden":
        return f"{where}: {_unknown(spot)}"
    if error["type"] == "missing":
        text = "is required"
    elif custom:
        text = error["msg"]
    else:
        text = f"must be {_expected(spot)}, got {_shown(spot.value)}"
    return f"{where}: {_place(spot, custom)} {text}"


def table_model(annotation: Any) -> type[BaseModel] | None:
    """The model when a field holds one table, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def item_model(annotation: Any) -> type[BaseModel] | None:
    """The item model when a field holds an array of tables, else None."""
    if get_origin(annotation) is tuple:
        return table_model(get_args(annotation)[0])
    return None


def toml_value(value: Any) -> str:
    """A value written as a TOML literal: "text", 5, true, ["a", "b"], { k = 1 }."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items())
        return f"{{ {pairs} }}" if pairs else "{}"
    return value.isoformat() if hasattr(value, "isoformat") else json.dumps(str(value))


def _locate(loc: Sequence[str | int], root: type[BaseModel], data: Any) -> _Spot:
    """Walk an error location through the models and the raw data side by side."""
    model, node, path, header = root, data, (), ""
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        field = model.model_fields.get(part) if isinstance(part, str) else None
        value = _child(node, part)
        if field is None:
            return _Spot(header, model, str(part), None, value, tuple(parts))
        table, items = table_model(field.annotation), item_model(field.annotation)
        if table is not None and parts:
            model, node, path = table, value, (*path, part)
            header = f"[{'.'.join(path)}]"
        elif items is not None and parts and isinstance(parts[0], int):
            index = parts.pop(0)
            model, node, path = items, _child(value, index), (*path, part)
            header = f"[[{'.'.join(path)}]] #{index + 1}{_item_label(node)}"
        else:
            return _Spot(header, model, part, field, value, tuple(parts))
    return _Spot(header, model, None, None, node)


def _child(node: Any, part: str | int) -> Any:
    """`node[part]` when the raw data has it, else None."""
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return node[part]
    return None


def _item_label(item: Any) -> str:
    """Name an array item by its own words, e.g. ` (activity "pricing_page")`."""
    if isinstance(item, dict):
        for key in _ITEM_LABELS:
            if isinstance(item.get(key), str):
                return f" ({key} {json.dumps(item[key])})"
    return ""


def _origin(loc: Sequence[str | int], origins: Mapping[tuple[str, ...], str], label: str) -> str:
    """The environment variable that set the value at `loc`, else the file's label."""
    for end in range(len(loc), 0, -1):
        origin = origins.get(tuple(loc[:end]))
        if origin is not None:
            return origin
    return label


def _place(spot: _Spot, custom: bool) -> str:
    """`[table] key`, with the item number when a custom check named one list item."""
    key = spot.key
    if custom and spot.rest and isinstance(spot.rest[0], int):
        key = f"{key} #{spot.rest[0] + 1}"
    return " ".join(part for part in (spot.header, key) if part)


def _unknown(spot: _Spot) -> str:
    """An unknown section or key, with the closest known name as a suggestion."""
    secrets = getattr(spot.model, "SECRET_ENV", {})
    known = [name for name in spot.model.model_fields if name not in secrets]
    match = difflib.get_close_matches(str(spot.key), known, n=1)
    if spot.header:
        hint = f" (did you mean {json.dumps(match[0])}?)" if match else ""
        return f"{spot.header} unknown key {json.dumps(spot.key)}{hint}"
    hint = f" (did you mean {_section(spot.model, match[0])}?)" if match else ""
    written = f"[[{spot.key}]]" if isinstance(spot.value, list) else f"[{spot.key}]"
    return f"unknown section {written}{hint}"


def _section(root: type[BaseModel], name: str) -> str:
    """A top-level name as it is written in TOML: `[table]` or `[[array]]`."""
    return f"[[{name}]]" if item_model(root.model_fields[name].annotation) else f"[{name}]"


def _shown(value: Any) -> str:
    """A value for an error message, cut short when long."""
    text = toml_value(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _expected(spot: _Spot) -> str:
    """What the value at `spot` must be, in words."""
    if spot.field is None:
        return "a table"
    return _describe(spot.field.annotation, spot.field.metadata)


def _describe(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    """A type and its constraints in words: "a positive integer", "a list of strings"."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _describe(args[0], (*metadata, *args[1:]))
    if origin in (Union, UnionType):
        return _describe(next(arg for arg in args if arg is not NoneType), metadata)
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(arg) for arg in args)
    if origin is tuple:
        return _describe_list(args[0], metadata)
    if table_model(annotation):
        return "a table"
    if annotation is bool:
        return "true or false"
    if annotation in (int, float):
        return _describe_number(annotation, metadata)
    if annotation is Path:
        is_file = any(getattr(item, "path_type", None) == "file" for item in metadata)
        return "the path of an existing file" if is_file else "a file path"
    return "a non-empty string" if _non_empty(metadata) else "a string"


def _describe_list(item: Any, metadata: Sequence[Any]) -> str:
    """A tuple field in words: "an array of tables", "a non-empty list of strings"."""
    if table_model(item):
        return "an array of tables"
    return f"a {'non-empty ' if _non_empty(metadata) else ''}list of {_plural(item)}"


def _plural(item: Any) -> str:
    """What the items of a list are, in the plural."""
    origin, args = get_origin(item), get_args(item)
    if origin is Annotated:
        return _plural(args[0])
    if origin is Literal:
        return "values from " + ", ".join(json.dumps(arg) for arg in args)
    return _PLURALS.get(item, "strings")


def _non_empty(metadata: Sequence[Any]) -> bool:
    return any(isinstance(item, MinLen) and item.min_length > 0 for item in metadata)


def _describe_number(kind: type, metadata: Sequence[Any]) -> str:
    """An int or float with its bounds: "a positive integer", "an integer between 1 and 100"."""
    noun = "integer" if kind is int else "number"
    low, high = _bound(metadata, _LOWER), _bound(metadata, _UPPER)
    if high is None and low is not None and low[0] == 0:
        return f"a positive {noun}" if low[1] == "above" else f"zero or a positive {noun}"
    if kind is int and low is not None and high is not None:
        first = low[0] + (low[1] == "above")
        last = high[0] - (high[1] == "below")
        return f"an integer between {first} and {last}"
    bounds = " and ".join(f"{word} {value}" for value, word in filter(None, (low, high)))
    article = "an" if kind is int else "a"
    return f"{article} {noun} {bounds}".rstrip()


def _bound(metadata: Sequence[Any], kinds: _Bounds) -> tuple[Any, str] | None:
    """The first bound of the given kinds as (value, word), e.g. (0, "above")."""
    for item in metadata:
        for kind, attribute, word in kinds:
            if isinstance(item, kind):
                return getattr(item, attribute), word
    return None
