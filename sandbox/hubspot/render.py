"""Records as HubSpot JSON, rendered a page at a time by polars (no per-record Python).

{"id": "30000000001", "properties": {"email": "...", ...}, "createdAt": "...Z",
 "updatedAt": "...Z", "archived": false}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from sandbox.hubspot.schema import ObjectSpec, PropertySpec
from sandbox.hubspot.values import TIMESTAMP_FORMAT, rendered

__all__ = ["json_list", "page_body", "record_fragments"]


def record_fragments(
    frame: pl.DataFrame,
    spec: ObjectSpec,
    properties: Mapping[str, PropertySpec],
    names: Sequence[str],
) -> list[str]:
    """One JSON object per row: id, the named properties (strings or null), times, archived."""
    struct = pl.struct(
        rendered(name, frame.schema[name], properties[name].type).alias(name) for name in names
    )
    archived_at = pl.col("_archived_at").dt.strftime(TIMESTAMP_FORMAT)
    # createdAt and updatedAt are never null (required in HubSpot's SimplePublicObject), even
    # where the object's own date properties are empty: each stands in for the other
    created, modified = _time(frame, spec.created), _time(frame, spec.modified)
    parts = [
        pl.lit('{"id":"'),
        pl.col("hs_object_id"),
        pl.lit('","properties":'),
        struct.struct.json_encode(),
        pl.lit(',"createdAt":"'),
        pl.coalesce(created, modified),
        pl.lit('","updatedAt":"'),
        pl.coalesce(modified, created),
        pl.lit('","archived":'),
        pl.col("_archived").cast(pl.String),
        pl.when(pl.col("_archived"))
        .then(pl.concat_str(pl.lit(',"archivedAt":"'), archived_at, pl.lit('"')))
        .otherwise(pl.lit("")),
        pl.lit("}"),
    ]
    return frame.select(pl.concat_str(parts).alias("json"))["json"].to_list()


def _time(frame: pl.DataFrame, name: str) -> pl.Expr:
    """A record time as HubSpot writes it (a column left as text by dirty data, as it is)."""
    column = pl.col(name)
    if isinstance(frame.schema[name], pl.Datetime):
        return column.dt.strftime(TIMESTAMP_FORMAT)
    return column.cast(pl.String)


def json_list(fragments: Sequence[str]) -> str:
    """Pre-rendered JSON values as one JSON array."""
    return "[" + ",".join(fragments) + "]"


def page_body(results: str, after: str | None, link: str, **extra: Any) -> bytes:
    """A collection response: results (a JSON array), extra fields, ``paging`` only with more."""
    head = "".join(f"{json.dumps(key)}:{json.dumps(value)}," for key, value in extra.items())
    paging = ""
    if after is not None:
        next_page = {"after": after, "link": f"{link}after={after}"}
        paging = ',"paging":' + json.dumps({"next": next_page})
    return ("{" + head + '"results":' + results + paging + "}").encode()
