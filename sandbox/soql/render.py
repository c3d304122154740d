"""Executed rows as Salesforce query records, built column-wise with polars structs.

Each record is ``{"attributes": {"type", "url"}, <fields in SELECT order>}``; a parent's fields
nest under its relationship name with attributes of their own, or the relationship is null when
there is no parent. Datetimes read ``2024-01-31T12:00:00.000+0000``, dates ``2024-01-31``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from sandbox.soql.plan import Column, Path, Plan, Relation, bind
from sandbox.soql.schema import Schema
from sandbox.soql.syntax import Query

__all__ = ["DEFAULT_API_VERSION", "records", "records_json"]

DEFAULT_API_VERSION = "59.0"  # simple-salesforce 1.12's default
_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.3f+0000"


def records_json(
    frame: pl.DataFrame, query: Query, schema: Schema, *, api_version: str = DEFAULT_API_VERSION
) -> str:
    """The records of an executed frame as a JSON array, ready to splice into a response."""
    return _record_frame(frame, bind(query, schema), api_version).write_json()


def records(
    frame: pl.DataFrame, query: Query, schema: Schema, *, api_version: str = DEFAULT_API_VERSION
) -> list[dict[str, Any]]:
    """The records of an executed frame as dicts (``records_json`` is faster for responses)."""
    return _record_frame(frame, bind(query, schema), api_version).to_dicts()


def _record_frame(frame: pl.DataFrame, plan: Plan, api_version: str) -> pl.DataFrame:
    """One column per top-level record key, so each row is one record."""
    if plan.query.count_only:
        return pl.DataFrame()
    parents = {relation.path: relation for relation in plan.relations}
    level = _Level(frame.schema, parents, f"/services/data/v{api_version}/sobjects/")
    return frame.select(level.attributes(plan.object, "Id"), *level.fields(plan.select, ()))


class _Level:
    """Builds the expressions of one nesting level of a record and, recursively, of its parents."""

    def __init__(
        self, dtypes: Mapping[str, pl.DataType], parents: Mapping[Path, Relation], url: str
    ) -> None:
        self.dtypes = dtypes
        self.parents = parents
        self.url = url

    def attributes(self, object_name: str, id_column: str) -> pl.Expr:
        url = pl.lit(self.url + object_name + "/") + pl.col(id_column)
        return pl.struct(type=pl.lit(object_name), url=url).alias("attributes")

    def fields(self, columns: Sequence[Column], path: Path) -> list[pl.Expr]:
        """The fields at ``path`` in SELECT order; a parent sits where its first field was."""
        exprs, depth, done = [], len(path), set()
        for column in columns:
            if len(column.relation) == depth:
                exprs.append(self._value(column.name).alias(column.field))
            elif column.relation[: depth + 1] not in done:
                child = column.relation[: depth + 1]
                done.add(child)
                members = [c for c in columns if c.relation[: depth + 1] == child]
                exprs.append(self._parent(child, members))
        return exprs

    def _parent(self, path: Path, columns: Sequence[Column]) -> pl.Expr:
        """A parent's fields under its relationship name, or null when there is no parent."""
        relation = self.parents[path]
        id_column = relation.prefix + "Id"
        body = pl.struct(self.attributes(relation.object, id_column), *self.fields(columns, path))
        return pl.when(pl.col(id_column).is_not_null()).then(body).alias(path[-1])

    def _value(self, name: str) -> pl.Expr:
        """A field as Salesforce writes it in JSON."""
        dtype, expr = self.dtypes[name], pl.col(name)
        if isinstance(dtype, pl.Datetime):
            utc = expr.dt.convert_time_zone("UTC") if dtype.time_zone else expr
            return utc.dt.strftime(_DATETIME_FORMAT)
        if isinstance(dtype, pl.Date):
            return expr.dt.strftime("%Y-%m-%d")
        return expr
