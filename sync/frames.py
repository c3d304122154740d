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
columns by polars, or, asked to read ``apart`` (the whole history of a large org), by the Arrow
project's ADBC SQLite driver straight into Arrow columns in a process of its own (a second copy of
SQLite in this process would break the first one's locks: sqlite.org, "How To Corrupt An SQLite
Database File", 2.2.1). So it takes only text and numbers (a time is selected as epoch seconds).
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import JSON, Boolean, Date, DateTime, Float, Integer, Numeric, String, Text
from sqlalchemy.exc import CompileError
from sqlalchemy.sql import Select
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Session

__all__ = [
    "UTC_STAMP",
    "ReadApart",
    "frame_schema",
    "polars_type",
    "read_column_batches",
    "read_columns",
    "read_frame",
]

_LOG = logging.getLogger(__name__)

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


def read_column_batches(
    session: Session, statement: Select[Any], *, apart: int | None = None
) -> Iterator[pl.DataFrame]:
    """The rows of ``statement`` as `read_columns` reads them, a frame at a time (SQLite: a
    batch of `_BATCH_ROWS`; PostgreSQL: one frame), so a caller that reduces each batch never
    holds the whole result; none when there are no rows. Given ``apart``, a bound on the rows,
    SQLite's rows are read by a process of its own where it sees what the session sees
    (`ReadApart`): worth it for a large result only, as starting the process takes ~0.3 s
    (reading the reference org's 10M activities, ~25 s through the session)."""
    schema = frame_schema(statement)
    refused = [name for name, kind in schema.items() if kind not in _AS_READ]
    if refused:
        raise TypeError(f"read_columns reads text and numbers only, not {', '.join(refused)}")
    if session.get_bind().dialect.name == "postgresql":
        copied = _copied(session, statement, schema)
        if copied.height:
            yield copied
        return
    started = ReadApart.start(session, statement, apart) if apart is not None else None
    read = started.frame() if started is not None else None
    if read is not None:
        for start in range(0, read.height, _BATCH_ROWS):
            yield read.slice(start, _BATCH_ROWS)
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


# what the reading process runs: the query from stdin, through ADBC's SQLite driver on a read-only
# connection, written to the file named as Arrow IPC. The driver types each column by the rows of
# its first batch, so that batch is as many rows as the caller bounds the result by (a column null
# for its first rows, text later, would be typed a number and its text refused); it reserves
# memory for that many rows a column, so the bound is the caller's, not a round billion
_READER = """
import sys
import adbc_driver_manager, adbc_driver_sqlite, polars
uri, out, rows = sys.argv[1:4]
with (
    adbc_driver_sqlite.connect(uri) as database,
    adbc_driver_manager.AdbcConnection(database) as connection,
    adbc_driver_manager.AdbcStatement(connection) as query,
):
    query.set_options(**{"adbc.sqlite.query.batch_rows": rows})
    query.set_sql_query(sys.stdin.buffer.read().decode("utf-8"))
    stream, _ = query.execute_query()
    polars.DataFrame(stream).write_ipc(out)
"""

# the most rows typed at once: a string column's offsets are 32 bits, and 20M activity ids (36
# characters at most) stay under 2 GiB; a longer result is typed by its first 20M rows
_TYPED_ROWS = 20_000_000


class ReadApart:
    """A read of a statement's rows by ADBC's SQLite driver in a process of its own: started
    (`start`), then taken (`frame`) or given up (`cancel`), so the caller works on while it
    reads (the score stage's read of the whole history starts with the link stage, `sync.run`).
    The process opens the database read-only and reads what is committed as its query starts,
    a moment after `start`; what it read waits in a folder beside the database (its disk has
    room for the database's rows, where a temporary folder may be memory) until taken."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        folder: tempfile.TemporaryDirectory[str],
        schema: dict[str, Any],
    ) -> None:
        self._process, self._folder, self._schema = process, folder, schema

    @classmethod
    def start(cls, session: Session, statement: Select[Any], rows: int) -> ReadApart | None:
        """The read of ``statement``, which gives at most ``rows`` rows, started; or None where
        it would not see what the session sees: a database in memory, or a session holding
        writes it has not committed (the standard driver begins a transaction only at a write,
        so without one each of the session's reads sees what is committed, as the process
        does); or, logged, where the statement cannot be written out whole or no process
        starts."""
        bind = session.get_bind()
        path = bind.url.database
        if bind.dialect.name != "sqlite" or not path or path == ":memory:":
            return None
        if bind.url.query.get("uri") or _uncommitted(session):
            return None
        try:
            query = str(statement.compile(dialect=bind.dialect, compile_kwargs=_INLINE))
            database = Path(path).resolve()
            folder = tempfile.TemporaryDirectory(
                prefix=".handoff-read-", dir=database.parent, ignore_cleanup_errors=True
            )
        except (CompileError, OSError) as error:
            _LOG.warning("reading apart did not start, read through the session instead: %s", error)
            return None
        out = Path(folder.name) / "rows"
        typed = str(min(max(rows, 1), _TYPED_ROWS))
        try:
            with (Path(folder.name) / "errors.txt").open("wb") as errors:
                process = subprocess.Popen(  # this Python, our own program, no shell
                    [
                        sys.executable,
                        "-P",
                        "-c",
                        _READER,
                        f"{database.as_uri()}?mode=ro",
                        str(out),
                        typed,
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                )
        except OSError as error:
            _LOG.warning("reading apart did not start, read through the session instead: %s", error)
            folder.cleanup()
            return None
        started = cls(process, folder, schema=frame_schema(statement))
        try:
            assert process.stdin is not None
            with process.stdin:
                process.stdin.write(query.encode())
        except OSError:  # the process ended at once: `frame` tells what it said
            pass
        except BaseException:
            started.cancel()
            raise
        return started

    def frame(self) -> pl.DataFrame | None:
        """The rows read, typed as the statement's columns; None, logged, when the process
        failed or its rows cannot be read so (a value of a type its column does not take, a
        Python without the driver, a full disk): the caller then reads through the session."""
        folder = Path(self._folder.name)
        try:
            if self._process.wait() != 0:
                said = (folder / "errors.txt").read_text(errors="replace").strip().splitlines()
                error = said[-1] if said else f"exit code {self._process.returncode}"
                _LOG.warning("reading apart failed, read through the session instead: %s", error)
                return None
            with (folder / "rows").open("rb") as rows:  # into memory: no map of a file to go
                read = pl.read_ipc(rows)
            names = dict(zip(read.columns, self._schema, strict=True))
            return read.rename(names).cast(self._schema)
        except (OSError, ValueError, pl.exceptions.PolarsError) as error:
            _LOG.warning("reading apart failed, read through the session instead: %s", error)
            return None
        finally:
            self._folder.cleanup()

    def cancel(self) -> None:
        """Stop the read, if it still runs, and forget what it read (again: nothing)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._folder.cleanup()


_INLINE = {"literal_binds": True}  # every value written into the statement's text


def _uncommitted(session: Session) -> bool:
    """Whether the session's SQLite connection holds writes it has not committed."""
    return bool(session.connection().connection.driver_connection.in_transaction)
