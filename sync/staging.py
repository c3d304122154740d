"""A large frame's rows into SQLite by way of a database of their own, written from the frame's
Arrow columns by ADBC's SQLite driver, then moved into the table by one INSERT ... SELECT.

sqlite3 binds a statement's values one Python object at a time: a first load's million
activities (ten columns) took 4.3-4.9 s in a test outside Handoff, of which SQLite's own work,
the same rows moved by INSERT ... SELECT, was 1.3-1.6 s. ADBC's driver binds straight from the
Arrow columns in C. It links a SQLite library of its own, and two libraries in one process on
one database file release each other's locks (sqlite.org's "How To Corrupt An SQLite Database
File", 2.2.1; `sync.frames.ReadApart` reads in a process of its own for that reason), so the
driver never opens the state database: it writes a file of its own beside it, with no journal,
which this process reads back as bytes into one of the in-memory databases every connection of
the store attaches (`attach_stages`; `sqlite3.Connection.deserialize`). The INSERT ... SELECT
runs in the caller's transaction, as the INSERT it replaces would have: its rows commit or roll
back with everything else there. The same test, staged so: 2.7-3.3 s (the driver 1.3-1.8, the
read back 0.03, the INSERT ... SELECT 1.3-1.5).

SQLite refuses to replace a database that a transaction has read (sqlite3_deserialize answers
SQLITE_BUSY), so each frame takes a stage no statement read since the connection was last
handed back to the pool, which empties them (`release_stages`); a transaction holding more large
frames than there are stages binds the rest.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import time
from collections.abc import Collection, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl

__all__ = [
    "MIN_ROWS",
    "STAGES",
    "attach_stages",
    "insert_staged",
    "release_stages",
    "sweep",
    "update_staged",
]

_LOG = logging.getLogger(__name__)

MIN_ROWS = 2_000  # rows from which a frame is staged: a smaller one costs more in files than binds
# the in-memory databases every SQLite connection of the store attaches, one a staged frame; a
# transaction of the mirror holds one or two large pages (SQLite attaches at most ten)
STAGES = tuple(f"handoff_stage_{n}" for n in range(4))
_TABLE = "staged"
_PREFIX = ".handoff-stage-"  # a file the driver writes, beside the database
_STALE_SECONDS = 3_600  # a file older than this was left by a process killed while staging
# the polars types whose values the driver binds as sqlite3 binds the Python values listed
_BOUND_ALIKE = (pl.String, pl.Int64, pl.Int32, pl.Int16, pl.Int8, pl.Float64)
_MAGIC = b"SQLite format 3\x00"
_failed: list[str] = []  # why the driver failed once in this process: staging is off since


def attach_stages(cursor: Any) -> None:
    """Attach the (empty) in-memory databases `insert_staged` stages rows in, on a new
    connection (ATTACH cannot run inside a transaction)."""
    for stage in STAGES:
        cursor.execute(f"ATTACH ':memory:' AS {stage}")


def insert_staged(
    connection: sqlite3.Connection,
    used: set[str],
    table: str,
    frame: pl.DataFrame,
    literals: Sequence[tuple[str, str]],
    conflict: str | None,
    folder: Path | None = None,
) -> bool:
    """INSERT INTO ``table`` (quoted) the rows of ``frame`` and ``literals`` (column, SQL
    literal) in every row, by way of a stage not in ``used`` (which gains it), with ``conflict``
    (an ON CONFLICT clause) as the caller's statement would; the driver's file in ``folder``
    (the database's; None: the system's temporary folder).

    Whether it did. When not (the frame small, or of a type the driver binds otherwise; the
    driver missing or failing; every stage used; a row refused, which undoes the statement
    alone), nothing is written and the caller binds the rows, which finds a refused one."""
    given = _given(frame)
    stage = _staged(connection, used, given, folder) if given else None
    if stage is None:
        return False
    order = [column.name for column in given]
    every = [*literals, *((name, "NULL") for name in frame.columns if name not in order)]
    names = ", ".join(_quoted(name) for name in (*order, *(name for name, _ in every)))
    values = ", ".join([*map(_quoted, order), *(value for _, value in every)])
    # WHERE: else SQLite reads ON CONFLICT as the SELECT's join constraint
    # (https://sqlite.org/lang_upsert.html, "Parsing Ambiguity"); rowid order: a table keyed
    # later keeps the last row of an id given twice (`sync.store._create_key`)
    return _executed(
        connection,
        f"INSERT INTO {table} ({names}) SELECT {values} FROM {stage}.{_TABLE}"
        f" WHERE true ORDER BY rowid {conflict or ''}",
    )


def update_staged(
    connection: sqlite3.Connection,
    used: set[str],
    table: str,
    frame: pl.DataFrame,
    width: int,
    folder: Path | None = None,
) -> bool:
    """UPDATE ``table`` (quoted) SET its columns named as ``frame``'s after the first ``width``
    (the key's, whose values must be distinct) to each row's values, the row found by its key,
    by way of a stage not in ``used`` (which gains it), as `insert_staged` stages rows: one
    UPDATE ... FROM the stage, where binding the rows makes Python values of them all (a
    million people's links, 9 columns: a quarter of the time less). A key not held updates
    nothing. Whether it did; when not (as for `insert_staged`), nothing is written and the
    caller binds the rows."""
    frame = frame.with_columns(pl.col(pl.Boolean).cast(pl.Int64))  # as SQLite stores a flag
    keys = frame.columns[:width]
    given = _given(frame)
    if [c.name for c in given[:width]] != keys:  # a key's column null throughout
        return False
    stage = _staged(connection, used, given, folder)
    if stage is None:
        return False
    staged = {column.name for column in given}
    setting = ", ".join(
        f"{_quoted(name)} = {'given.' + _quoted(name) if name in staged else 'NULL'}"
        for name in frame.columns[width:]
    )
    keyed = " AND ".join(f"{table}.{_quoted(name)} = given.{_quoted(name)}" for name in keys)
    return _executed(
        connection, f"UPDATE {table} SET {setting} FROM {stage}.{_TABLE} AS given WHERE {keyed}"
    )


def _given(frame: pl.DataFrame) -> list[pl.Series]:
    """The columns of ``frame`` that hold a value (the others are NULL in every row)."""
    return [c for c in frame.iter_columns() if c.dtype != pl.Null and c.null_count() < c.len()]


def _staged(
    connection: sqlite3.Connection, used: set[str], given: Sequence[pl.Series], folder: Path | None
) -> str | None:
    """A stage not in ``used`` (which gains it) holding the columns ``given`` as table
    `_TABLE`, written by the driver in ``folder``; None when the rows are to be bound instead
    (fewer than `MIN_ROWS`, a type the driver binds otherwise, the driver missing or failing,
    every stage used, or the stage read in this transaction already)."""
    if len(given[0]) < MIN_ROWS or _unavailable(connection):
        return None
    stage = next((name for name in STAGES if name not in used), None)
    if stage is None or any(c.dtype not in _BOUND_ALIKE for c in given):
        return None
    image = _driver_image(pl.DataFrame(given), folder)
    if image is None:
        return None
    used.add(stage)
    try:
        connection.deserialize(image, name=stage)  # copied: the bytes can go
    except sqlite3.OperationalError as error:  # busy: read in this transaction after all
        _LOG.debug("stage %s cannot be replaced, binding the rows instead: %s", stage, error)
        return None
    finally:
        del image
    return stage


def _executed(connection: sqlite3.Connection, statement: str) -> bool:
    """Whether ``statement`` (of the staged rows) ran; False when the database refused a row,
    which undoes the statement alone (the caller binds the rows, and finds it)."""
    begun = connection.in_transaction
    try:
        connection.execute(statement)
    except sqlite3.IntegrityError:
        if begun and not connection.in_transaction:  # SQLite rolled the transaction back
            raise
        return False
    return True


def release_stages(connection: sqlite3.Connection, used: set[str]) -> None:
    """Empty the stages in ``used`` (their rows' memory let go), on a connection in no
    transaction (handed back to the pool); ``used`` is emptied."""
    for stage in used:
        try:
            connection.deserialize(_empty_image(), name=stage)
        except sqlite3.Error as error:  # its memory goes with the next frame staged there
            _LOG.debug("stage %s not emptied: %s", stage, error)
    used.clear()


def sweep(folder: Path) -> None:
    """Delete the driver's files in ``folder`` that a process killed while staging left."""
    now = time.time()
    for path in folder.glob(f"{_PREFIX}*.db"):
        try:
            if now - path.stat().st_mtime > _STALE_SECONDS:
                path.unlink()
        except OSError:  # gone already, or not ours to delete
            continue


def _driver_image(frame: pl.DataFrame, folder: Path | None) -> bytes | None:
    """The bytes of a SQLite database holding ``frame``'s rows as table `_TABLE`, in the
    frame's order, as ADBC's driver writes it in ``folder``; None, logged, if it cannot (and
    staging is off in this process from then on: each large frame would fail alike)."""
    import adbc_driver_sqlite.dbapi as adbc  # `_unavailable` has found it

    path: Path | None = None
    try:
        handle, name = tempfile.mkstemp(prefix=_PREFIX, suffix=".db", dir=folder)
        os.close(handle)
        path = Path(name)
        with adbc.connect(str(path), autocommit=True) as stage, stage.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=OFF")  # a file read once and deleted
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.execute("BEGIN")
            cursor.adbc_ingest(_TABLE, frame, mode="create")
            cursor.execute("COMMIT")
        image = path.read_bytes()
        if not image.startswith(_MAGIC):
            raise ValueError("the driver's file is not a SQLite database")
        return image
    except Exception as error:  # the driver's, the disk's, polars': bind the rows instead
        _failed.append(str(error))
        _LOG.warning(
            "staging %d rows failed; large frames are bound row by row from now on: %s",
            frame.height,
            error,
        )
        return None
    finally:
        if path is not None:
            path.unlink(missing_ok=True)


def _unavailable(connection: sqlite3.Connection) -> bool:
    """Whether staging cannot be done on ``connection``: no driver, a sqlite3 that cannot
    deserialize, the driver failed before, or the stages are not attached (logged once)."""
    reason = _missing() or (_failed[0] if _failed else None)
    if reason is None and not _attached(connection, STAGES):
        reason = "the stages are not attached"
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


def _attached(connection: sqlite3.Connection, names: Collection[str]) -> bool:
    """Whether every database of ``names`` is attached to ``connection``."""
    attached = {row[1] for row in connection.execute("PRAGMA database_list")}
    return all(name in attached for name in names)


@cache
def _log_once(reason: str) -> None:
    _LOG.info("large frames are bound row by row: %s", reason)


@cache
def _empty_image() -> bytes:
    """An empty database's bytes (what a stage holds between frames)."""
    empty = sqlite3.connect(":memory:")
    try:
        empty.execute("CREATE TABLE emptied (x)")  # a database of no page cannot be serialized
        empty.execute("DROP TABLE emptied")
        return empty.serialize()
    finally:
        empty.close()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
