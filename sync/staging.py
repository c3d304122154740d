"""A large frame's rows into SQLite by way of a database of their own, written from the frame's
Arrow columns by ADBC's SQLite driver, then moved into the table by one INSERT ... SELECT.

sqlite3 binds a statement's values one Python object at a time: a first load's million
activities (ten columns) took 4.3-4.9 s in a test outside Handoff, of which SQLite's own work,
the same rows moved by INSERT ... SELECT, was 1.3-1.6 s. ADBC's driver binds straight from the
Arrow columns in C. It links a SQLite library of its own, and two libraries in one process on one
database file release each other's locks (sqlite.org's "How To Corrupt An SQLite Database File",
2.2.1; `sync.frames.ReadApart` reads in a process of its own for that reason), so the driver
never opens the state database: it writes a file of its own, with no journal, which this
process reads back as bytes into an in-memory database that every connection of the store
attaches (`attach_stage`; `sqlite3.Connection.deserialize`, which may replace it inside a
transaction). The INSERT ... SELECT runs in the caller's transaction, as the INSERT it replaces
would have: its rows commit or roll back with everything else there.

The same test, staged so: 2.7-3.3 s (the driver 1.3-1.8, the read back 0.03, the INSERT ...
SELECT 1.3-1.5). Below `MIN_ROWS` rows the file costs more than the binding it saves.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl

__all__ = ["MIN_ROWS", "STAGE", "attach_stage", "insert_staged"]

_LOG = logging.getLogger(__name__)

STAGE = "handoff_stage"  # the in-memory database every SQLite connection of the store attaches
_TABLE = "staged"
MIN_ROWS = 2_000  # rows from which a frame is staged (fewer are bound as before)
# the Arrow types the driver binds as sqlite3 binds the Python values polars lists them as
_BOUND_ALIKE = (pl.String, pl.Int64, pl.Int32, pl.Int16, pl.Int8, pl.Float64)


def attach_stage(cursor: Any) -> None:
    """Attach the (empty) in-memory database `insert_staged` stages rows in, on a new
    connection (ATTACH cannot run inside a transaction)."""
    cursor.execute(f"ATTACH ':memory:' AS {STAGE}")


def insert_staged(
    connection: sqlite3.Connection,
    table: str,
    frame: pl.DataFrame,
    literals: Sequence[tuple[str, str]],
    conflict: str | None,
) -> bool:
    """INSERT INTO ``table`` (quoted) the rows of ``frame`` (its columns named as the table's)
    with ``literals`` (column, SQL literal) in every row, ``conflict`` (an ON CONFLICT clause)
    deciding a key held already; in the connection's transaction, begun if none is. Whether it
    did: False, with nothing written, when the frame is small or holds a column the driver would
    bind otherwise than sqlite3, when the driver is missing or fails, or when the database
    refuses a row (a constraint; the statement is undone, the transaction goes on): the caller
    then binds the rows itself, which finds the refused row."""
    if frame.height < MIN_ROWS or _unavailable(connection):
        return False
    given = [c for c in frame.iter_columns() if c.dtype != pl.Null and c.null_count() < c.len()]
    if not all(column.dtype in _BOUND_ALIKE for column in given):
        return False
    image = _staged(pl.DataFrame(given))
    if image is None:
        return False
    nulls = [(name, "NULL") for name in frame.columns if name not in {c.name for c in given}]
    every = [*literals, *nulls]
    names = ", ".join(_quoted(name) for name in (*(c.name for c in given), *(n for n, _ in every)))
    values = ", ".join([*(_quoted(c.name) for c in given), *(value for _, value in every)])
    # WHERE true: without it SQLite would read ON CONFLICT as the SELECT's join constraint
    statement = f"INSERT INTO {table} ({names}) SELECT {values} FROM {STAGE}.{_TABLE} WHERE true"
    begun = connection.in_transaction
    connection.deserialize(image, name=STAGE)
    try:
        connection.execute(f"{statement} {conflict or ''}")
        return True
    except sqlite3.IntegrityError:
        if begun and not connection.in_transaction:  # SQLite rolled the transaction back
            raise
        return False
    finally:
        connection.deserialize(_empty_image(), name=STAGE)  # the rows' memory let go


def _staged(frame: pl.DataFrame) -> bytes | None:
    """A SQLite database holding ``frame``'s rows as table `_TABLE`, in rowid order of the
    frame's, as ADBC's driver writes it (None, logged, if it cannot)."""
    import adbc_driver_sqlite.dbapi as adbc  # `_unavailable` has found it

    handle, name = tempfile.mkstemp(prefix="handoff-stage-", suffix=".db")
    os.close(handle)
    path = Path(name)
    try:
        with adbc.connect(str(path), autocommit=True) as stage, stage.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=OFF")  # a file read once and deleted
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.execute("BEGIN")
            cursor.adbc_ingest(_TABLE, frame, mode="create")
            cursor.execute("COMMIT")
        return path.read_bytes()
    except Exception as error:  # the driver's, the disk's, polars': bind the rows instead
        _LOG.warning("staging %d rows failed, binding them instead: %s", frame.height, error)
        return None
    finally:
        path.unlink(missing_ok=True)


def _unavailable(connection: sqlite3.Connection) -> bool:
    """Whether staging cannot be done here: no driver, or a sqlite3 without deserialize, or a
    connection that never attached the stage (logged once)."""
    reason = _missing() or (None if _attached(connection) else "the stage is not attached")
    if reason is not None:
        _log_once(reason)
    return reason is not None


@cache
def _missing() -> str | None:
    """Why staging is impossible in this process, or None."""
    try:
        import adbc_driver_sqlite.dbapi  # noqa: F401
    except ImportError as error:
        return f"ADBC's SQLite driver cannot be imported ({error})"
    if not hasattr(sqlite3.Connection, "deserialize"):
        return "this Python's sqlite3 cannot deserialize"
    return None


def _attached(connection: sqlite3.Connection) -> bool:
    return any(row[1] == STAGE for row in connection.execute("PRAGMA database_list"))


@cache
def _log_once(reason: str) -> None:
    _LOG.info("large frames are bound row by row: %s", reason)


@cache
def _empty_image() -> bytes:
    """An empty database's bytes (the stage between frames)."""
    empty = sqlite3.connect(":memory:")
    try:
        empty.execute("CREATE TABLE emptied (x)")  # a database of no page cannot be serialized
        empty.execute("DROP TABLE emptied")
        return empty.serialize()
    finally:
        empty.close()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
