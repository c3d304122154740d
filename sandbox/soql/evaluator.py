"""Run a parsed query over polars tables: joins for relationship fields, filter, sort, slice.

Everything is a lazy polars plan collected once; WHERE is one vectorised expression.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from sandbox.soql.plan import Plan, bind
from sandbox.soql.predicates import predicate, sort_key
from sandbox.soql.schema import Schema
from sandbox.soql.syntax import Query

__all__ = ["count", "execute"]


def execute(
    query: Query,
    tables: Mapping[str, pl.DataFrame],
    schema: Schema,
    *,
    include_deleted: bool = False,
) -> pl.DataFrame:
    """The rows ``query`` selects, in order, LIMIT and OFFSET applied.

    Columns are the selected fields by canonical dotted name ("Name", "Owner.Email") plus the Id
    of the record and of each selected parent, which rendering needs. ``tables`` maps canonical
    object names to one row per record with an ``IsDeleted`` column; deleted rows (of the object
    and of its parents), and archived activities (``IsArchived``), count only when
    ``include_deleted`` (queryAll).
    """
    plan = bind(query, schema)
    return _rows(plan, tables, include_deleted).select(plan.output).collect()


def count(
    query: Query,
    tables: Mapping[str, pl.DataFrame],
    schema: Schema,
    *,
    include_deleted: bool = False,
) -> int:
    """How many rows ``query`` selects (``SELECT COUNT()``'s answer), LIMIT and OFFSET applied."""
    plan = bind(query, schema)
    return int(_rows(plan, tables, include_deleted).select(pl.len()).collect().item())


def _rows(plan: Plan, tables: Mapping[str, pl.DataFrame], include_deleted: bool) -> pl.LazyFrame:
    """The joined rows, filtered, sorted (stably: ties keep table order) and sliced."""
    frame = _joined(plan, tables, include_deleted)
    query = plan.query
    if query.where is not None:
        frame = frame.filter(predicate(query.where, plan.columns, query.text))
    if plan.order_by:
        frame = frame.sort(
            [sort_key(column) for column, _ in plan.order_by],
            descending=[key.descending for _, key in plan.order_by],
            nulls_last=[key.nulls_last for _, key in plan.order_by],
            maintain_order=True,
        )
    if query.offset or query.limit is not None:
        frame = frame.slice(query.offset or 0, query.limit)
    return frame


def _joined(plan: Plan, tables: Mapping[str, pl.DataFrame], include_deleted: bool) -> pl.LazyFrame:
    """The queried object's needed fields, with each parent's left-joined under its prefix."""
    frame = _live(tables[plan.object], include_deleted).select(plan.fields)
    for relation in plan.relations:
        parent = _live(tables[relation.object], include_deleted).select(
            pl.col(name).alias(relation.prefix + name) for name in relation.fields
        )
        frame = frame.join(
            parent,
            left_on=relation.key,
            right_on=relation.prefix + "Id",
            how="left",
            coalesce=False,
            maintain_order="left",
        )
    return frame


def _live(table: pl.DataFrame, include_deleted: bool) -> pl.LazyFrame:
    """The rows ``query`` sees: not deleted, and not archived (Task and Event a year on);
    ``queryAll`` sees every row."""
    frame = table.lazy()
    if include_deleted:
        return frame
    hidden = ("IsDeleted", "IsArchived") if "IsArchived" in table.columns else ("IsDeleted",)
    return frame.filter(~pl.any_horizontal(pl.col(hidden).fill_null(False)))
