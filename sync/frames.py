"""State rows as polars frames, typed by the state tables themselves.

Each object's fields are defined once, as the columns of its table in `sync.state`; connectors map
their CRM's fields onto those names (`connectors.streams`), and scoring reads them by name
(`scoring.fit.FIRMOGRAPHICS`). Matching and scoring take frames, so a frame's schema is read off
the statement that selects it: a column's polars type follows from its SQL type, and its name
from the column (or its label), never from a second hand-written list.

    frame = read_frame(session, select(Account.id.label("account_id"), Account.employees))

`read_columns` reads a large result (the whole activity history) the bulk way, with no `Row`
object or per-value type conversion: on PostgreSQL as the CSV of a ``COPY``, parsed by polars
(no Python object per value); on SQLite as the driver's plain tuples, a batch at a time made
columns by polars. So it takes only text and numbers (a time is selected as epoch seconds).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import polars as pl
from sqlalchemy import JSON, Boolean, Date, DateTime, Float, Integer, Numeric, String, Text
from sqlalchemy.sql import Select
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Session

__all__ = [
    "UTC_STAMP",
    "frame_schema",
    "polars_type",
    "read_column_batches",
    "read_columns",
    "read_frame",
]

UTC_STAMP = pl.Datetime("us", "UTC")
_BATCH_ROWS = 100_000  # rows made columns at once: the driver's tuples are freed a batch at a time
_AS_READ = (pl.String, pl.Int64, pl.Float64)  # what every driver returns as the frame holds it


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


def read_columns(session: Session, statement: Select[Any]) -> pl.DataFrame:
    """The rows of ``statement`` as a frame typed by its columns, read column-wise from the
    driver's cursor (in the session's transaction); its columns must be text or numbers."""
    batches = [pl.DataFrame(schema=frame_schema(statement))]
    batches.extend(read_column_batches(session, statement))
    return pl.concat(batches, rechunk=True)


def read_column_batches(session: Session, statement: Select[Any]) -> Iterator[pl.DataFrame]:
    """The rows of ``statement`` as `read_columns` reads them, a frame at a time (SQLite: a
    batch of `_BATCH_ROWS`; PostgreSQL: one frame), so a caller that reduces each batch never
    holds the whole result; none when there are no rows."""
    schema = frame_schema(statement)
    refused = [name for name, kind in schema.items() if kind not in _AS_READ]
    if refused:
        raise TypeError(f"read_columns reads text and numbers only, not {', '.join(refused)}")
    if session.get_bind().dialect.name == "postgresql":
        copied = _copied(session, statement, schema)
        if copied.height:
            yield copied
        return
    result = session.connection().execute(statement)
    cursor = result.cursor  # the driver's own: plain tuples, none of SQLAlchemy's per-row work
    try:
        while rows := cursor.fetchmany(_BATCH_ROWS):  # made columns by polars, not by zip
            yield pl.DataFrame(rows, schema=schema, orient="row")
    finally:
        result.close()


def _copied(session: Session, statement: Select[Any], schema: dict[str, Any]) -> pl.DataFrame:
    """The rows of ``statement`` by PostgreSQL's ``COPY ... TO STDOUT`` as CSV (a null is an
    unquoted empty field, an empty text a quoted one, as polars reads them)."""
    compiled = statement.compile(
        dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
    )
    # every value is inline, so a doubled % is an escaped one the driver will not undouble
    query = str(compiled).replace("%%", "%")
    driver = session.connection().connection.driver_connection
    buffer = io.BytesIO()
    copied = f"COPY ({query}) TO STDOUT WITH (FORMAT csv)"
    with driver.cursor() as cursor, cursor.copy(copied) as copy:  # type: ignore[union-attr]
        for data in copy:
            buffer.write(data)
    if not buffer.tell():
        return pl.DataFrame(schema=schema)
    buffer.seek(0)
    return pl.read_csv(buffer, has_header=False, new_columns=list(schema), schema=schema)
