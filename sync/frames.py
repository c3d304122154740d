"""State rows as polars frames, typed by the state tables themselves.

Each object's fields are defined once, as the columns of its table in `sync.state`; connectors map
their CRM's fields onto those names (`connectors.streams`), and scoring reads them by name
(`scoring.fit.FIRMOGRAPHICS`). Matching and scoring take frames, so a frame's schema is read off
the statement that selects it: a column's polars type follows from its SQL type, and its name
from the column (or its label), never from a second hand-written list.

    frame = read_frame(session, select(Account.id.label("account_id"), Account.employees))
"""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import JSON, Boolean, Date, DateTime, Float, Integer, Numeric, String, Text
from sqlalchemy.sql import Select
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Session

__all__ = ["UTC_STAMP", "frame_schema", "polars_type", "read_frame"]

UTC_STAMP = pl.Datetime("us", "UTC")


def polars_type(sql_type: TypeEngine[Any]) -> pl.DataType | type[pl.DataType]:
    """The polars type a column of ``sql_type`` reads as (an aware datetime as UTC)."""
    if isinstance(sql_type, TypeDecorator):
        sql_type = sql_type.impl_instance
    if isinstance(sql_type, Boolean):
        return pl.Boolean
    if isinstance(sql_type, Integer):
        return pl.Int64
    if isinstance(sql_type, (Float, Numeric)):
        return pl.Float64
    if isinstance(sql_type, DateTime):
        return UTC_STAMP
    if isinstance(sql_type, Date):
        return pl.Date
    if isinstance(sql_type, (String, Text)):
        return pl.String
    if isinstance(sql_type, JSON):
        return pl.Object
    raise TypeError(f"no frame type for a {type(sql_type).__name__} column")


def frame_schema(statement: Select[Any]) -> dict[str, Any]:
    """Name -> polars type of every column ``statement`` selects, in order."""
    return {column.name: polars_type(column.type) for column in statement.selected_columns}


def read_frame(session: Session, statement: Select[Any]) -> pl.DataFrame:
    """The rows of ``statement`` as a frame typed by its columns (empty: the typed columns)."""
    rows = session.exec(statement).all()  # type: ignore[call-overload]
    return pl.DataFrame(rows, schema=frame_schema(statement), orient="row")
