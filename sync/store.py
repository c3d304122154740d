"""The state store: opens the database at this release's schema revision and offers bulk helpers.

SQLite (WAL) is the embedded default; PostgreSQL is used through psycopg 3. Every helper
takes the caller's session, so rows, cursor and log land in one transaction (rule 6).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache, lru_cache, partial
from itertools import chain, islice
from json.encoder import c_make_encoder, encode_basestring
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, overload
from uuid import uuid4

import orjson
import polars as pl
import psycopg
from psycopg import sql
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Engine,
    Executable,
    Float,
    Index,
    Insert,
    Integer,
    Select,
    Table,
    bindparam,
    cast,
    create_engine,
    event,
    exists,
    func,
    literal,
    null,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, StatementError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.orm.util import identity_key
from sqlalchemy.pool import QueuePool
from sqlalchemy.schema import CreateIndex, DropIndex
from sqlmodel import Session, SQLModel, col, select

from connectors.batches import chunked
from sync.config import UNENCODED_AT, unencoded_at
from sync.frames import polars_type
from sync.migrations import SchemaState, Status, refusal, schema_state, upgrade
from sync.staging import (
    MIN_ROWS,
    attach_stages,
    insert_staged,
    release_stages,
    sweep,
    update_staged,
)
from sync.state import (
    COMPACT_JSON,
    KEY_INDEX,
    AppendOnlyError,
    Assignment,
    NaiveDatetimeError,
    RunEvent,
    ScoreHistory,
    StateError,
    StoreOpenError,
    SyncCursor,
    SyncRun,
    UTCDateTime,
    table_of,
)
from sync.wal import BACKSTOP_PAGES, Checkpointer

__all__ = [
    "EVENT_ROW",
    "FEW_IDS",
    "Adapter",
    "IndexBuild",
    "Store",
    "Written",
    "adapt_column",
    "adapters_of",
    "begin_now",
    "canonical_plain",
    "canonical_value",
    "drop_indexes",
    "in_chunks",
    "indexes_rebuilt",
    "insert_missing",
    "insert_rows_missing",
    "key_index",
    "last_rowid",
    "plain_value",
    "put_rows",
    "read_json",
    "rows_among",
    "sqlite_stamp_texts",
    "update_frame",
    "update_keyed",
    "update_rows",
    "update_span",
]

Rows = Iterable[Mapping[str, Any]]
StatementFor = Callable[[tuple[str, ...]], Executable]

T = TypeVar("T")
_BATCH_SIZE = 5_000
_EVENT_BATCH = 50_000  # run log events per bulk write
EVENT_ROW = ("stage", "object", "record_id", "action", "reason", "detail")  # `Store.add_events`
# bound parameters per IN list; SQLite allows 32766 and PostgreSQL 65535 per statement
_IN_CHUNK = 10_000
IN_CHUNK = 5_000  # ids per IN list of the stages' own lookups (`in_chunks`)
# busy_timeout first, so the pragmas after it wait out another connection's lock; a 64 MiB page
# cache (SQLite's default is 2 MiB) keeps a large mirror's key index in memory while it loads;
# the write-ahead log is checkpointed by the store's own thread after each commit
# (`sync.wal.Checkpointer`), SQLite's rule a backstop at 64 MiB (WAL with synchronous=NORMAL
# stays consistent through a crash or power loss whatever the interval); two sorter threads build
# a loaded table's indexes (CREATE INDEX sorts) on two cores
_SORTER_THREADS = 2
_CACHE_KIB = 65_536
# the index build's page cache, which bounds CREATE INDEX's in-memory sort runs: runs of a few
# MiB merge faster than runs of 64 (on 10M activities, ids 5.2-5.5 s against 8.4-10.5, a person
# and time 6.5-6.9 s against 11-13, one core, in a test outside Handoff; 512 MiB was slower still)
_BUILD_CACHE_KIB = 4_096
_SQLITE_PRAGMAS = (
    "busy_timeout=30000",
    "foreign_keys=ON",
    "synchronous=NORMAL",
    f"cache_size=-{_CACHE_KIB}",
    f"wal_autocheckpoint={BACKSTOP_PAGES}",
    f"threads={_SORTER_THREADS}",
)
_STAGES_USED = "handoff_stages_used"  # a pooled connection's stages holding a frame (its info)
_WAL_ATTEMPTS = 40  # x 50 ms: how long a new connection waits to switch a new database to WAL
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
_CSV_STAMP = "%Y-%m-%d %H:%M:%S%.6fZ"  # a UTC datetime as `_copy` writes it (cheaper than %z)
# rows of a COPY written as CSV and sent at a time: the server parses one part while polars
# writes the next (one text of the whole frame kept it idle until the last row was written)
_COPY_ROWS_PER_WRITE = 2_000

Adapter = Callable[[Any], Any]
# what `_null_stand_ins` binds for a null of a text column and of an integer one
_NULL_TEXT = "\x01"
_NULL_INT = -(2**63) + 1
_LOG = logging.getLogger(__name__)
_PLAIN_ALREADY = frozenset({str, int, bool, type(None)})  # what `_plain` returns as it is
_LONG_DIGITS = re.compile(r"\d{19}")  # `read_json` leaves such numbers to `json`
# what a database refuses in one row (a value out of range, a constraint); anything else, such as
# a lost connection or a locked database, is no fault of the row and ends the transaction
_ROW_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.ProgrammingError,  # a value of a type SQLite cannot bind
    OverflowError,
    psycopg.DataError,
    psycopg.IntegrityError,
)


@dataclass
class Written:
    """What `Store.write_rows` did: rows stored, rows the database refused (each with its
    reason), and whether rows given as new really all were (one already held sends them, and
    should send the rows after them, the upsert way)."""

    stored: int = 0
    refused: list[tuple[tuple[Any, ...], str]] = field(default_factory=list)
    all_new: bool = True


class Store:
    """The local state database of one CRM org."""

    def __init__(self, url: str) -> None:
        """Prepare an engine for `url`; nothing is connected until first use."""
        if unencoded_at(url):
            raise StoreOpenError(f"cannot open the state database: its URL {UNENCODED_AT}")
        self._url = _normalise_url(url)
        # the connection handed back last is handed out next (LIFO): a run's stages take one
        # session after another, and SQLite's page cache of a connection is emptied when another
        # connection wrote since it last read; handed out in turn, the pool's connections (the
        # mirror's threads left several) each found the others' writes (the write stage of a
        # 50,000-account first run read 705 MB so, 512 so). Only where SQLite keeps a pool of
        # connections (a file; an in-memory database has one a thread, which takes no such
        # option): on PostgreSQL the connections LIFO leaves idle at the bottom of the pool
        # could outlive a server's idle timeout, for no cache to keep
        pooled = {"pool_use_lifo": True} if _sqlite_pool(self._url) else {}
        self.engine: Engine = create_engine(self._url, json_deserializer=read_json, **pooled)
        self._sessions = sessionmaker(self.engine, class_=Session, expire_on_commit=False)
        self._checkpointer: Checkpointer | None = None  # started by the first commit
        self._checkpointer_lock = threading.Lock()
        self._disposed = False
        self._log_file = _sqlite_file(self._url) if self.dialect == "sqlite" else None
        self._stage_folder = _stage_folder(self._url)  # where a large frame is staged
        # tables whose key index this store dropped for a first load and has not built again:
        # their rows go in by plain INSERT (no conflict target), a key twice kept twice until
        # the index is built (`build_indexes` keeps the last)
        self._keyless: set[str] = set()
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _apply_sqlite_pragmas)
            event.listen(self.engine, "checkin", _release_stages)
            if self._stage_folder is not None:
                sweep(self._stage_folder)

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> Store:
        """Open the database at `url`: an empty one is created at head, an older one refused.
        Without ``create``, a SQLite file that is not there is refused, not made (a command
        that only reads state, run from another directory than the syncs)."""
        store = cls(url)
        missing = (
            store._log_file if store._log_file and not os.path.exists(store._log_file) else None
        )
        if not create and missing is not None:
            store.dispose()
            raise StoreOpenError(
                f"no state database at {missing}: no sync has made one there. `handoff sync` "
                "makes it; to read another, name it in [state] database_url or "
                "HANDOFF_STATE__DATABASE_URL (a relative path is read from the current directory)"
            )
        try:
            return store.create_schema()
        except BaseException:
            store.dispose()
            raise

    @property
    def url(self) -> str:
        """The database URL with any password masked, after the user or as a query parameter."""
        url = self._url
        hidden = {key: _HIDDEN for key in url.query if key.lower() == "password"}
        shown = url.update_query_dict(hidden).render_as_string(hide_password=True)
        return shown.replace(_HIDDEN, "***")  # as the password after the user shows

    @property
    def dialect(self) -> str:
        """`"sqlite"` or `"postgresql"`."""
        return self._url.get_backend_name()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.dispose()

    def dispose(self) -> None:
        """Close every pooled connection (SQLite: after the log's checkpoint thread stops; the
        last connection copies the log's rest into the database)."""
        with self._checkpointer_lock:
            checkpointer, self._checkpointer = self._checkpointer, None
            self._disposed = True  # a commit racing this starts no thread
        if checkpointer is not None:
            checkpointer.close()
        self.engine.dispose()

    @property
    def checkpointer(self) -> Checkpointer | None:
        """The thread checkpointing a SQLite file's log, once a commit started it."""
        return self._checkpointer

    def _committed(self) -> None:
        """A session committed to a SQLite file: wake (or start) the log's checkpoint thread. A
        thread that cannot start is logged: SQLite's own rule still checkpoints, and the commit
        stands."""
        with self._checkpointer_lock:
            if self._disposed or self._log_file is None:
                return
            if self._checkpointer is None or not self._checkpointer.serves_this_process():
                try:
                    self._checkpointer = Checkpointer(self._log_file)
                except (RuntimeError, OSError) as error:
                    _LOG.warning("no checkpoint thread for the state database: %s", error)
                    return
            self._checkpointer.wake()

    def create_schema(self) -> Store:
        """Create the schema at head in an empty database; refuse one at any other revision.

        An older database is never upgraded here: that is `upgrade`, an admin's deliberate step.
        """
        try:
            state = self.schema_state()
            if state.status is Status.EMPTY:
                state = upgrade(self.engine)[1]
        except OperationalError as exc:
            raise StoreOpenError(f"cannot open state database {self.url}: {exc.orig}") from exc
        if state.status is not Status.CURRENT:
            raise refusal(state, self.url)
        return self

    def schema_state(self) -> SchemaState:
        """Where the database stands against this release's migrations."""
        with self.engine.connect() as connection:
            return schema_state(connection)

    def upgrade(self) -> tuple[SchemaState, SchemaState]:
        """Migrate the database to this release's schema in place; where it stood before and after.

        A database made before migrations (schema_meta 1-3) is adopted; every row is kept.
        """
        try:
            return upgrade(self.engine)
        except OperationalError as exc:
            raise StoreOpenError(f"cannot upgrade state database {self.url}: {exc.orig}") from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed if the block succeeds, rolled back if not."""
        try:
            with self._sessions.begin() as session:
                yield session
            if self._log_file is not None:
                self._committed()
        except StatementError as exc:
            # SQLAlchemy wraps errors raised while binding values; surface our own as they are
            if isinstance(exc.orig, StateError):
                raise exc.orig from exc
            raise

    def upsert(
        self, session: Session, model: type[SQLModel], rows: Rows, *, batch_size: int = _BATCH_SIZE
    ) -> int:
        """Insert rows or update them in place by primary key, in batches; return the row count.

        Each row needs every required column (it may be new); on conflict only the columns
        present in the row are updated. Rows go straight to the database: ORM objects for the
        same rows already loaded in `session` are not refreshed.
        """
        table = table_of(model)
        if table is table_of(ScoreHistory):
            raise AppendOnlyError("score history is append-only: use append_scores, not upsert")
        return _execute_batched(session, lambda keys: self._upsert(table, keys), rows, batch_size)

    def _upsert(self, table: Table, keys: tuple[str, ...]) -> Insert:
        """INSERT ... ON CONFLICT (primary key) DO UPDATE for the given columns."""
        statement = _INSERTS[self.dialect](table)
        primary_key = [column.name for column in table.primary_key]
        changing = [key for key in keys if key not in primary_key]
        if not changing:
            return statement.on_conflict_do_nothing(index_elements=primary_key)
        excluded = {key: statement.excluded[key] for key in changing}
        return statement.on_conflict_do_update(index_elements=primary_key, set_=excluded)

    def adapters(self, table: Table, columns: Sequence[str]) -> tuple[Adapter | None, ...]:
        """Per column, what turns a Python value (never None) into what this database's driver
        takes on the bulk paths (`write_rows`), or None where the value goes as it is.

        Raises `NaiveDatetimeError` for a datetime without a timezone and `ValueError` for an
        integer the column cannot hold, so the caller can skip that row with the reason.
        """
        return adapters_of(self.dialect, table, columns)

    def write_rows(
        self,
        session: Session,
        table: Table,
        columns: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
        *,
        fixed: Mapping[str, Any] | None = None,
        update: Sequence[str] | None = None,
        flags: Mapping[str, Sequence[str] | None] | None = None,
        new: bool = False,
    ) -> Written:
        """Store plain tuples (values in `columns` order, made ready by `adapters`) in the
        caller's transaction: inserted, or updated in place by primary key.

        `fixed` gives columns whose value (made ready alike) is the same in every row: sent once,
        not once a row (SQLite: a literal in the statement). On conflict only the `update`
        columns change (default: every column given), so a column filled only for new rows (a
        default) is not overwritten; a `flags` column among them (flag -> the columns it watches)
        is set instead when one of its columns' values changes, and kept once set (watching
        None: set by every update, whatever it changes). With `new`
        the rows are expected to be absent and go in by COPY on PostgreSQL; a key already held
        sends them the upsert way instead. SQLite inserts and upserts with one prepared statement
        (executemany); PostgreSQL upserts them all with one statement over a typed array per
        column (``unnest``: one round trip, not one per row; a key given twice keeps its last
        row). On a table whose key index a first load has away (`keyless`), SQLite inserts
        them, a key given twice kept twice until the index is built (its last row kept). Rows
        the database refuses are left out, each with its reason; the rest land.
        """
        written = Written()
        if not rows:
            return written
        connection = _driver_connection(session)
        given, constant = tuple(columns), tuple((fixed or {}).items())
        if new and self.dialect == "postgresql":
            try:
                with _savepoint(connection, self.dialect):
                    _copy(connection, table, given, rows, constant)
                written.stored = len(rows)
                return written
            except (*_ROW_ERRORS, TypeError, ValueError, pl.exceptions.PolarsError):
                written.all_new = False
        self._upsert_rows(connection, table, given, rows, constant, update, flags, written)
        return written

    def write_frame(
        self,
        session: Session,
        table: Table,
        frame: pl.DataFrame,
        *,
        fixed: Mapping[str, Any] | None = None,
        update: Sequence[str] | None = None,
        flags: Mapping[str, Sequence[str]] | None = None,
        new: bool = False,
    ) -> Written:
        """`write_rows` of a frame whose columns hold values made ready a column at a time
        (what the driver takes once listed: `sync.mirror_batches.plain_series`), with no Python
        value made per cell where none is needed: new rows go from it straight into COPY on
        PostgreSQL; on SQLite a frame of `sync.staging.MIN_ROWS` rows or more is staged (its
        columns written by ADBC's driver, moved by one INSERT ... SELECT), and a smaller one's
        nulls are bound as a stand-in value the statement turns back into null
        (`_null_stand_ins`). A refused row is given as bound."""
        written = Written()
        if not frame.height:
            return written
        connection = _driver_connection(session)
        constant = tuple((fixed or {}).items())
        if new and self.dialect == "postgresql":
            try:
                with _savepoint(connection, self.dialect):
                    _copy_frame(connection, table, frame, constant)
                written.stored = frame.height
                return written
            except (*_ROW_ERRORS, pl.exceptions.PolarsError):
                written.all_new = False
        stand_ins: tuple[tuple[str, str], ...] = ()
        if self.dialect == "sqlite":
            if self._staged(session, table, frame, constant, update, flags):
                written.stored = frame.height
                return written
            frame, stand_ins = _null_stand_ins(frame)
        given, rows = tuple(frame.columns), _FrameRows(frame)
        self._upsert_rows(
            connection, table, given, rows, constant, update, flags, written, stand_ins
        )
        return written

    def _staged(
        self,
        session: Session,
        table: Table,
        frame: pl.DataFrame,
        constant: tuple[tuple[str, Any], ...],
        update: Sequence[str] | None,
        flags: Mapping[str, Sequence[str]] | None,
    ) -> bool:
        """`write_frame`'s rows stored on SQLite by way of a stage (`sync.staging`), as
        `_upsert_rows` would store them, with the same conflict clause. Whether they were."""
        if frame.height < MIN_ROWS:
            return False
        literals = tuple((name, _sqlite_literal(value)) for name, value in constant)
        conflict = None
        if table.name not in self._keyless:
            keep, watched = _kept_on_conflict(tuple(frame.columns), constant, update, flags)
            conflict = _on_conflict("sqlite", table, keep, watched)
        connection, used = _stages_of(session)
        table_name = _quoted("sqlite", table.name)
        return insert_staged(
            connection, used, table_name, frame, literals, conflict, self._stage_folder
        )

    def _upsert_rows(
        self,
        connection: Any,
        table: Table,
        given: tuple[str, ...],
        rows: Sequence[tuple[Any, ...]],
        constant: tuple[tuple[str, Any], ...],
        update: Sequence[str] | None,
        flags: Mapping[str, Sequence[str]] | None,
        written: Written,
        stand_ins: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """`write_rows`' upsert (`stand_ins`: columns whose value is null where it is their SQL
        literal, on SQLite)."""
        keep, watched = _kept_on_conflict(given, constant, update, flags)
        if self.dialect == "postgresql":
            fixed_names = tuple(n for n, _ in constant)
            statement = _unnest_upsert_sql(table, given, fixed_names, keep, watched)
            rows = _last_per_key(table, given, rows)
            execute = partial(_as_arrays, fixed=[value for _, value in constant])
            _write_carefully(connection, self.dialect, statement, rows, written, execute)
        else:
            literals = tuple((name, _sqlite_literal(value)) for name, value in constant)
            per = _rows_per_insert(len(given))
            if table.name in self._keyless:  # no conflict target: every row goes in as new
                statement = _insert_sql(self.dialect, table, given, literals, stand_ins)
                many = _insert_sql(self.dialect, table, given, literals, stand_ins, per)
            else:
                statement = _upsert_sql(
                    self.dialect, table, given, keep, literals, watched, stand_ins
                )
                many = _upsert_sql("sqlite", table, given, keep, literals, watched, stand_ins, per)
            execute = partial(_many_a_statement, many, per, len(given))
            _write_carefully(connection, self.dialect, statement, rows, written, execute)

    def put_rows(
        self,
        session: Session,
        table: Table,
        columns: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
        *,
        fixed: Mapping[str, Any] | None = None,
        new: bool = False,
    ) -> None:
        """Store plain tuples as `write_rows` does, each row whole (on conflict every column
        given is replaced), all of them or none: should the database refuse one, `StateError`
        says why and the caller's transaction is to be rolled back. For rows the caller made
        itself (the write ledger, the run log), whose refusal is a fault, not a record to skip:
        no savepoint and no search for the refused row, which on SQLite makes an upsert a third
        cheaper. With `new` the rows must be absent (a key already held is refused): a plain
        INSERT on SQLite, COPY on PostgreSQL."""
        put_rows(session, table, columns, rows, fixed=fixed, new=new)

    def held_values(
        self, session: Session, table: Table, column: str, keys: Sequence[Any]
    ) -> dict[Any, Any]:
        """`column` of the rows of `table` whose primary key is among `keys`, by key, as the
        driver reads it (no type processing: SQLite's datetimes are their text, which sorts as
        the values `adapters` makes do)."""
        [key] = [c.name for c in table.primary_key]
        select_ = (
            f"SELECT {_quoted(self.dialect, key)}, {_quoted(self.dialect, column)}"
            f" FROM {_quoted(self.dialect, table.name)} WHERE {_quoted(self.dialect, key)}"
        )
        held: dict[Any, Any] = {}
        with _cursor(_driver_connection(session)) as cursor:
            if self.dialect == "postgresql":  # one array parameter: one statement, parsed once
                cursor.execute(f"{select_} = ANY(%s)", [list(keys)])
                return dict(cursor.fetchall())
            for chunk in _batches(keys, _IN_CHUNK):
                cursor.execute(f"{select_} IN ({', '.join(['?'] * len(chunk))})", chunk)
                held.update(cursor.fetchall())
        return held

    def empty_tables(self, session: Session, tables: Iterable[Table]) -> set[str]:
        """The names of those of `tables` that hold no row (one statement for all)."""
        named = {table.name: table for table in tables}
        if not named:
            return set()
        held = [
            exists(select(literal(1)).select_from(table)).label(name)
            for name, table in named.items()
        ]
        [row] = session.execute(select(*held)).all()
        return {name for name, any_row in zip(named, row, strict=True) if not any_row}

    def drop_indexes(
        self,
        session: Session,
        table: Table,
        *,
        new_rows: Mapping[str, Any] | None = None,
        carried: Collection[str] = (),
    ) -> None:
        """Drop `table`'s secondary indexes (the primary key stays), before a bulk load into it.

        With `new_rows` (values every row of the load holds), a partial index that a row of
        those values (null elsewhere) does not enter stays: through the load it costs a test of
        its condition a row, where building it after would read the whole table for nothing.
        An index whose condition names a column of `carried` (one the records fill, each its
        own value) is dropped: which rows enter it is not known before the load.
        """
        kept = [] if new_rows is None else _left_out(session, table, new_rows, carried)
        dropped = drop_indexes(session, table, skip=kept)
        key = key_index(table)
        if key is not None and key in dropped and self.dialect == "sqlite":
            self._keyless.add(table.name)

    def keyless(self, table: Table) -> bool:
        """Whether `table`'s key index is away for a first load (`drop_indexes`): a lookup by
        key reads the whole table then, so a caller about to make one builds it first
        (`build_key`)."""
        return table.name in self._keyless

    def build_key(self, session: Session, table: Table) -> None:
        """Build `table`'s key index if `drop_indexes` left it away (`build_indexes`)."""
        key = key_index(table)
        if key is not None and self.keyless(table):  # only ever on SQLite
            _create_key(session, table, key)
            self._keyless.discard(table.name)

    def build_indexes(
        self, session: Session, tables: Sequence[Table], *, analyze: bool = False
    ) -> None:
        """Create whichever secondary indexes of `tables` are missing (one catalog read for
        all); with `analyze`, refresh PostgreSQL's statistics of them after a bulk load.

        Only the columns the run's queries filter and join on are analysed
        (`_searched_columns`): those the planner needs at once. Such an
        ANALYZE leaves the table's count of rows changed since its last whole one as it was, so
        autovacuum analyses the other columns soon after, away from the run (a whole ANALYZE of
        each table, 35 columns of people, was a sixth of a first load of 200,000 rows).
        """
        if not tables:
            return
        connection = session.connection()
        names = self._index_names(session, [table.name for table in tables])
        for table in tables:
            key = key_index(table)
            for index in table.indexes:
                if index.name in names:
                    continue
                if index is key and self.dialect == "sqlite":
                    _create_key(session, table, index)
                else:
                    index.create(connection)
            self._keyless.discard(table.name)
            if analyze and self.dialect == "postgresql":
                columns = ", ".join(
                    _quoted(self.dialect, name) for name in _searched_columns(table)
                )
                session.execute(text(f"ANALYZE {_quoted(self.dialect, table.name)} ({columns})"))

    def build_indexes_behind(self, tables: Sequence[Table]) -> IndexBuild:
        """Start building whichever secondary indexes of `tables` are missing on a connection
        and thread of their own (SQLite), and return at once; `IndexBuild.wait` before the
        caller's next write (SQLite has one writer: the build holds the database's write lock
        until it ends), which raises the build's error. On PostgreSQL (then analysed, as after
        a first load) and in an in-memory SQLite database they are built before this returns."""
        build = IndexBuild(self, tables)
        if self._log_file is not None and tables:  # a SQLite file (in memory: one connection)
            build.start()
        else:
            build.run()
        return build

    def _index_names(self, session: Session, tables: Sequence[str]) -> set[str]:
        """The names of the indexes the database holds on `tables` (one light catalog read)."""
        if self.dialect == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN :tables"
        else:
            query = (
                "SELECT indexname FROM pg_indexes"
                " WHERE schemaname = current_schema() AND tablename IN :tables"
            )
        statement = text(query).bindparams(bindparam("tables", expanding=True))
        return {row[0] for row in session.execute(statement, {"tables": list(tables)})}

    def commit_lazily(self, session: Session) -> None:
        """On PostgreSQL, let this transaction's commit return before its write-ahead log is on
        disk (``synchronous_commit`` off): a crash of the database server may lose the whole
        transaction, never part of it, which suits rows pulled again with their cursor. SQLite
        in WAL mode with ``synchronous=NORMAL`` commits so already."""
        if self.dialect == "postgresql":
            session.execute(text("SET LOCAL synchronous_commit TO OFF"))

    def get_cursor(self, session: Session, connector: str, object: str) -> SyncCursor | None:
        """The saved cursor of one object of one connector, or None before its first pull."""
        return session.get(SyncCursor, (connector, object))

    def set_cursor(
        self,
        session: Session,
        connector: str,
        object: str,
        value: datetime | None,
        ids_at_value: Iterable[str],
        now: datetime,
        resume: str | None = None,
        read_at: datetime | None = None,
        archive_read_at: datetime | None = None,
    ) -> None:
        """Save a cursor in the caller's transaction, so it commits with the rows it covers (an
        empty stream's cursor has no value yet): one upsert statement, no ORM object; a copy of
        it loaded in ``session`` is expired."""
        fields = {
            "value": value,
            "ids_at_value": ids_at_value,
            "resume": resume,
            "read_at": read_at,
            "archive_read_at": archive_read_at,
        }
        self.set_cursors(session, connector, {object: fields}, now)

    def set_cursors(
        self,
        session: Session,
        connector: str,
        cursors: Mapping[str, Mapping[str, Any]],
        now: datetime,
    ) -> None:
        """`set_cursor` for several objects at once (the mirror saves every cursor a transaction
        covers together): by object, its ``value``, ``ids_at_value``, ``resume``, ``read_at``
        and ``archive_read_at``."""
        if not cursors:
            return
        rows = [
            {
                **fields,
                "connector": connector,
                "object": object,
                "ids_at_value": sorted(set(fields["ids_at_value"])),
                "updated_at": now,
            }
            for object, fields in cursors.items()
        ]
        session.execute(_cursor_upsert(self.dialect), rows)
        for object in cursors:
            held = session.identity_map.get(identity_key(SyncCursor, (connector, object)))
            if held is not None:
                session.expire(held)

    def record_run_start(
        self,
        session: Session,
        connector: str,
        started_at: datetime,
        run_id: str | None = None,
        full_reason: str | None = None,
        org_id: str | None = None,
    ) -> SyncRun:
        """Record that a run of `connector` started (a full re-pull when ``full_reason`` says
        why; on the org ``org_id`` when known), numbered after every run before it; the run id
        defaults to a random UUID."""
        last = session.exec(select(func.max(SyncRun.seq))).one()
        run = SyncRun(
            id=run_id or uuid4().hex,
            seq=(last or 0) + 1,
            connector=connector,
            started_at=started_at,
            full=full_reason is not None,
            full_reason=full_reason,
            org_id=org_id,
        )
        session.add(run)
        session.flush()
        return run

    def record_run_finish(
        self,
        session: Session,
        run_id: str,
        finished_at: datetime,
        status: str,
        counts: Mapping[str, int],
        error: str | None = None,
        *,
        model: tuple[str | None, str | None] = (None, None),
    ) -> SyncRun:
        """Record how a run ended: its status, counts and any error, and the model that scored
        it with why (version, reason; None when the run never scored)."""
        run = session.get(SyncRun, run_id)
        if run is None:
            raise StateError(f"no sync run with id {run_id!r}")
        run.finished_at = finished_at
        run.status = status
        run.counts = dict(counts)
        run.error = error
        run.model_version, run.model_reason = model
        session.add(run)
        return run

    def add_events(
        self, session: Session, run_id: str, at: datetime, rows: Sequence[tuple[Any, ...]]
    ) -> int:
        """Append per-record log events, all logged at ``at``, to a run in bulk, in order, on the
        raw driver's path (`put_rows`: COPY on PostgreSQL, one prepared INSERT on SQLite); each
        event a tuple of text or None in the order of `EVENT_ROW` (a first run logs a line per
        record written, a million on the reference org: a mapping a line cost more than its
        insert); return how many."""
        table = table_of(RunEvent)
        [stamp] = self.adapters(table, ["at"])
        fixed = {"run_id": run_id, "at": at if stamp is None else stamp(at)}
        session.flush()  # the run's own row, which the events refer to
        for batch in _batches(rows, _EVENT_BATCH):
            self.put_rows(session, table, EVENT_ROW, batch, fixed=fixed, new=True)
        return len(rows)

    def append_scores(self, session: Session, rows: Rows) -> int:
        """Append score history rows in bulk (`put_mappings`); return how many."""
        listed = list(rows)
        session.flush()  # the accounts and the run the rows refer to
        self.put_mappings(session, table_of(ScoreHistory), listed, new=True)
        return len(listed)

    def put_mappings(
        self,
        session: Session,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        *,
        new: bool = False,
    ) -> None:
        """`put_rows` of rows given as column -> Python value, made ready by `adapters` a
        column at a time: the columns any row gives, and those with a default, in the table's
        order; a row that leaves one out gets the column's default, as an insert through
        SQLAlchemy would (None where it has none)."""
        if not rows:
            return
        given = set().union(*rows)
        columns = [c for c in table.c if c.name in given or c.default is not None]
        names = [column.name for column in columns]
        adapted = [
            adapt_column(adapt, _values_of(column, rows))
            for column, adapt in zip(columns, self.adapters(table, names), strict=True)
        ]
        self.put_rows(session, table, names, list(zip(*adapted, strict=True)), new=new)

    def score_as_of(self, session: Session, account_id: str, when: datetime) -> ScoreHistory | None:
        """The account's latest score at or before `when`, or None if it had none yet."""
        statement = (
            select(ScoreHistory)
            .where(ScoreHistory.account_id == account_id, col(ScoreHistory.scored_at) <= when)
            .order_by(col(ScoreHistory.scored_at).desc(), col(ScoreHistory.id).desc())
            .limit(1)
        )
        return session.exec(statement).first()

    def scores_as_of(
        self, session: Session, when: datetime, account_ids: Iterable[str] | None = None
    ) -> dict[str, ScoreHistory]:
        """Each account's latest score at or before `when`, by account id (all accounts if None)."""
        if account_ids is None:
            return _latest_scores(session, when, None)
        latest: dict[str, ScoreHistory] = {}
        for chunk in _batches(account_ids, _IN_CHUNK):
            latest.update(_latest_scores(session, when, chunk))
        return latest

    def assign(
        self,
        session: Session,
        account_id: str,
        owner_id: str,
        rule: str,
        tier: str,
        at: datetime,
        run_id: str | None = None,
    ) -> Assignment:
        """Make `owner_id` the account's one current owner, ending the previous assignment.

        Assigning the current owner again keeps the current assignment, so reruns add nothing.
        """
        current = _current_assignment(session, account_id)
        if current is not None and current.owner_id == owner_id:
            return current
        if current is not None:
            current.ended_at = at
            session.add(current)
            session.flush()
        assignment = Assignment(
            account_id=account_id,
            owner_id=owner_id,
            rule=rule,
            tier=tier,
            assigned_at=at,
            run_id=run_id,
        )
        session.add(assignment)
        session.flush()
        return assignment

    def current_owner(self, session: Session, account_id: str) -> str | None:
        """The account's current owner according to our assignments, or None if never assigned."""
        current = _current_assignment(session, account_id)
        return None if current is None else current.owner_id


class IndexBuild:
    """Secondary indexes built behind the caller's back (`Store.build_indexes_behind`).

    SQLite's CREATE INDEX runs in one step of the driver, which lets go of the interpreter lock
    for all of it, so the caller's thread goes on at full speed on the other core while the
    build sorts and writes; its sorter is given no helper thread, leaving that core to the
    caller (on the reference org, reading the 10.7M activities took 13.4 s alone and 13.4 s
    beside the build, which took 22.7 s, against 20.6 s and 23.5 s with the build's usual two
    helper threads). Readers are not held up (WAL); a writer is, so the caller waits for the
    build (`wait`) before its first write. A build killed part way leaves its index unmade
    (SQLite builds each in its own transaction); the next mirror stage makes it
    (`sync.mirror`).
    """

    def __init__(self, store: Store, tables: Sequence[Table]) -> None:
        self._store = store
        self._tables = list(tables)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        """Build in a thread of its own."""
        self._thread = threading.Thread(target=self._run, name="index-build", daemon=True)
        self._thread.start()

    @property
    def behind(self) -> bool:
        """Whether the build runs in a thread of its own still (it may hold the database's
        write lock); once it has ended, `wait` returns at once (raising its error)."""
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """Build in the calling thread (an error is raised by `wait`, as from a thread)."""
        if self._tables:
            self._run()

    def wait(self) -> None:
        """Return once the indexes are built; raise the build's error, once."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        try:
            self._build()
        except BaseException as error:  # raised in the caller's thread by `wait`
            self._error = error

    def _build(self) -> None:
        store = self._store
        sqlite_ = store.dialect == "sqlite"
        with store.engine.connect() as connection:
            driver = connection.connection.driver_connection
            if sqlite_:
                driver.execute("PRAGMA threads=0")
                driver.execute(f"PRAGMA cache_size=-{_BUILD_CACHE_KIB}")
            try:
                with Session(connection) as session:
                    store.build_indexes(session, self._tables, analyze=True)
                    session.commit()
            finally:
                if sqlite_:  # the pooled connection goes back as it came
                    driver.execute(f"PRAGMA threads={_SORTER_THREADS}")
                    driver.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        if sqlite_:
            store._committed()


def _values_of(column: Column[Any], rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """``column``'s value in each of ``rows``; a row without one gets the column's Python-side
    default as SQLAlchemy gives it an insert (`list` -> ``[]``), or None."""
    name, default = column.name, column.default
    if default is not None and default.is_callable:
        made = default.arg  # SQLAlchemy's wrapping of it, which takes the insert's context
        return [row[name] if name in row else made(None) for row in rows]
    value = default.arg if default is not None and default.is_scalar else None
    return [row.get(name, value) for row in rows]


def insert_missing(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]] | Select[Any]
) -> None:
    """Insert ``rows`` (dicts, or a SELECT of ``table``'s columns in order) into ``table``,
    leaving out those whose primary key it holds already."""
    statement = _INSERTS[session.get_bind().dialect.name](table)
    key = [column.name for column in table.primary_key]
    if isinstance(rows, Select):
        statement = statement.from_select([c.name for c in table.c], rows)
        session.execute(statement.on_conflict_do_nothing(index_elements=key))
    elif rows:
        session.execute(statement.on_conflict_do_nothing(index_elements=key), list(rows))


def insert_rows_missing(
    session: Session, table: Table, rows: pl.DataFrame, *, new: bool = False
) -> None:
    """Insert a frame's rows (its columns named as ``table``'s, of types the driver takes as
    they are) into ``table``, leaving out those whose primary key it holds already: on
    PostgreSQL one statement over a typed array per column, or with ``new`` (distinct rows,
    none of whose keys the table holds: a load into an empty table) a COPY; on SQLite one
    prepared statement of many rows each (`_sqlite_insert_many`)."""
    if rows.is_empty():
        return
    connection = _driver_connection(session)
    if session.get_bind().dialect.name == "sqlite":
        _sqlite_insert_many(connection, table, rows)
    elif new:
        _copy_frame(connection, table, rows)
    else:
        statement = _unnest_upsert_sql(table, tuple(rows.columns), (), ())
        with _cursor(connection) as cursor:
            cursor.execute(statement, [column.to_list() for column in rows.iter_columns()])


# rows per INSERT on SQLite (`_many_a_statement`; at most SQLite's 32766 parameters): executemany
# steps a prepared statement once a row, which costs SQLite about as much as storing the row
_ROWS_PER_INSERT = 500


def _rows_per_insert(width: int) -> int:
    """Rows of ``width`` values in one INSERT on SQLite."""
    return max(1, min(_ROWS_PER_INSERT, 32766 // width))


def _sqlite_insert_many(connection: Any, table: Table, rows: pl.DataFrame) -> None:
    """INSERT ... ON CONFLICT DO NOTHING of a frame's rows on SQLite, up to ``_ROWS_PER_INSERT``
    rows a statement."""
    columns = tuple(rows.columns)
    per = _rows_per_insert(len(columns))
    many = _upsert_sql("sqlite", table, columns, (), rows=per)
    with _cursor(connection) as cursor:
        one = _upsert_sql("sqlite", table, columns, ())
        for chunk in rows.iter_slices(_UPDATE_SLICE):  # made Python values a slice at a time
            _many_a_statement(many, per, len(columns), cursor, one, _FrameRows(chunk))


def _many_a_statement(
    many: str,
    per: int,
    width: int,
    cursor: Any,
    statement: str,
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """Execute `statement` (one row's) for every row, as `_one_by_one` does, but `per` rows at
    a time with `many` (the same statement for `per` rows) while that many are left: on SQLite
    a run of 500 rows stores about a sixth faster than its rows stepped one at a time.

    Rows given as tuples are all stepped one at a time should one not hold `width` values (what
    `statement` takes): the driver refuses that row then (and the caller's search finds it),
    where in a run of many its values would shift into the next rows'."""
    whole = len(rows) - len(rows) % per
    if whole and not isinstance(rows, _FrameRows) and any(len(row) != width for row in rows):
        whole = 0
    if whole:
        if isinstance(rows, _FrameRows):
            values = rows.flat(whole)
        else:
            values = list(chain.from_iterable(rows[:whole]))
        step = per * width
        cursor.executemany(many, (values[at : at + step] for at in range(0, len(values), step)))
    if whole < len(rows):
        cursor.executemany(statement, rows[whole:])


def _searched_columns(table: Table) -> list[str]:
    """The columns of ``table`` that its primary key and indexes are on or whose conditions
    name, and ``is_deleted`` (every query of live rows tests it), in the table's order: those
    the run's queries filter and join on."""
    named = {"is_deleted", *(column.name for column in table.primary_key)}
    for index in table.indexes:
        named.update(column.name for column in index.columns)
        for dialect in ("postgresql", "sqlite"):
            condition = index.dialect_kwargs.get(f"{dialect}_where")
            if condition is not None:
                named.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", str(condition)))
    return [column.name for column in table.c if column.name in named]


def put_rows(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    fixed: Mapping[str, Any] | None = None,
    new: bool = False,
) -> None:
    """`Store.put_rows` in the session's own transaction, for a stage given a session only."""
    dialect = session.get_bind().dialect.name
    if not rows:
        return
    connection = _driver_connection(session)
    given, constant = tuple(columns), tuple((fixed or {}).items())
    every = (*given, *(name for name, _ in constant))
    try:
        if dialect == "postgresql" and new:
            _copy(connection, table, given, rows, constant)
        elif dialect == "postgresql":
            statement = _unnest_upsert_sql(table, given, every[len(given) :], every)
            with _cursor(connection) as cursor:
                fixed_values = [value for _, value in constant]
                _as_arrays(cursor, statement, _last_per_key(table, given, rows), fixed_values)
        else:
            literals = tuple((name, _sqlite_literal(value)) for name, value in constant)
            per = _rows_per_insert(len(given))
            if new:
                statement = _insert_sql(dialect, table, given, literals)
                many = _insert_sql(dialect, table, given, literals, rows=per)
            else:
                statement = _upsert_sql(dialect, table, given, every, literals)
                many = _upsert_sql(dialect, table, given, every, literals, rows=per)
            with _cursor(connection) as cursor:
                _many_a_statement(many, per, len(given), cursor, statement, rows)
    except (*_ROW_ERRORS, TypeError, ValueError, pl.exceptions.PolarsError) as error:
        raise StateError(f"{table.name} refused a row: {_reason(error)}") from error


def in_chunks(ids: Iterable[T]) -> Iterator[list[T]]:
    """``ids`` in consecutive lists short enough for one IN clause (the stages' lookups)."""
    return chunked(ids, IN_CHUNK)


FEW_IDS = 20_000  # ids looked up by IN lists whatever the table holds (4 lists at most)


def rows_among(
    session: Session,
    statement: Any,
    key: Any,
    ids: Collection[str],
    *,
    at: int = 0,
    population: Callable[[], int] | None = None,
) -> Iterator[Any]:
    """The rows of ``statement`` whose ``key`` (its column ``at``) is one of ``ids``, in the
    statement's order within each lookup: looked up by IN lists, a chunk of sorted ids at a
    time, or, when the ids are as many as half the ``population`` (what they are drawn from;
    by default the statement's rows), read in one pass and kept by a set, as IN lists then cost
    more (every account, on a first run). A few ids (an incremental cycle's) are looked up
    without counting the population, which reads it all."""
    if len(ids) <= FEW_IDS or 2 * len(ids) < (population or _counted(session, statement))():
        for chunk in in_chunks(sorted(ids)):
            yield from session.connection().execute(statement.where(key.in_(chunk)))
        return
    wanted = set(ids)
    yield from (row for row in session.connection().execute(statement) if row[at] in wanted)


def _counted(session: Session, statement: Any) -> Callable[[], int]:
    """How many rows ``statement`` gives, when asked."""
    count = select(func.count()).select_from(statement.subquery())
    return lambda: int(session.connection().execute(count).scalar_one())


def drop_indexes(
    session: Session,
    table: Table,
    columns: Collection[str] | None = None,
    skip: Collection[Index] = (),
) -> list[Index]:
    """Drop `table`'s secondary indexes (those on any of `columns`, if given) but those in
    `skip`; the dropped."""
    dropped = [
        index
        for index in table.indexes
        if (columns is None or {column.name for column in index.columns} & set(columns))
        and index not in skip
    ]
    for index in dropped:
        session.execute(DropIndex(index, if_exists=True))
    return dropped


def _left_out(
    session: Session, table: Table, values: Mapping[str, Any], carried: Collection[str] = ()
) -> list[Index]:
    """`table`'s partial indexes that a row holding `values` (null in the other columns) does
    not enter, each asked of the database with its own condition; none whose condition names a
    column of `carried` (its value, not null, is the record's own)."""
    dialect = session.get_bind().dialect.name
    row = select(*(cast(_given(values, c.name), c.type).label(c.name) for c in table.c))
    probe = select(literal(1)).select_from(row.subquery())
    conditions = {index: index.dialect_kwargs.get(f"{dialect}_where") for index in table.indexes}
    return [
        index
        for index, condition in conditions.items()
        if condition is not None
        and not _names_any(str(condition), carried)
        and session.execute(probe.where(condition)).first() is None
    ]


def _names_any(condition: str, columns: Collection[str]) -> bool:
    """Whether the SQL text `condition` names one of `columns` (as a whole word)."""
    return any(re.search(rf"\b{re.escape(column)}\b", condition) for column in columns)


def _given(values: Mapping[str, Any], name: str) -> Any:
    """`values`' value of column `name` in a statement (null if it has none)."""
    return null() if values.get(name) is None else literal(values[name])


def key_index(table: Table) -> Index | None:
    """The unique index that keys `table`'s rows on SQLite in place of a primary key
    constraint (`sync.state.KEY_INDEX` in its info: `sync.state.Activity`), or None."""
    for index in table.indexes:
        if index.info.get(KEY_INDEX):
            return index
    return None


def _create_key(session: Session, table: Table, index: Index) -> None:
    """Create `table`'s key index (`key_index`), which a first load's plain INSERTs may have
    given a key twice (a record delivered again before the load ended, a load stopped and
    resumed): then every row of such a key but its last inserted, the version an upsert would
    have kept, is deleted first (one sort of the table, only when the index is refused)."""
    connection = _driver_connection(session)
    dialect = session.get_bind().dialect
    created = str(CreateIndex(index).compile(dialect=dialect))
    try:  # a refused CREATE INDEX leaves nothing behind, and no transaction is begun for it
        connection.execute(created)
        return
    except sqlite3.IntegrityError:
        pass
    name = _quoted(dialect.name, table.name)
    keys = ", ".join(_quoted(dialect.name, column.name) for column in index.columns)
    connection.execute(
        f"DELETE FROM {name} WHERE rowid NOT IN (SELECT max(rowid) FROM {name} GROUP BY {keys})"
    )
    connection.execute(created)


@contextmanager
def indexes_rebuilt(
    session: Session, table: Table, columns: Collection[str], *, rebuild: bool = True
) -> Iterator[None]:
    """`table`'s indexes on `columns` dropped while every row's values change, and built again
    after, in the same transaction (a failure rolls the drop back, SQLite included): building
    one sorts once, where keeping it up to date costs a random step into it for each row, which
    a large org's indexes, larger than the page cache, pay in reads. Without ``rebuild`` they
    are left to whoever builds the table's missing indexes (`Store.build_indexes`)."""
    begin_now(session)
    dropped = drop_indexes(session, table, columns)
    yield
    for index in dropped if rebuild else ():
        index.create(session.connection())


def begin_now(session: Session) -> None:
    """Open the session's transaction in the database now, so schema changes made next (an
    index dropped and built again) commit or roll back with it: sqlite3 opens one only before a
    data change, and runs a statement before any (DROP INDEX) in a transaction of its own."""
    connection = _driver_connection(session)
    if session.get_bind().dialect.name == "sqlite" and not connection.in_transaction:
        connection.execute("BEGIN")


def update_frame(session: Session, table: Table, rows: pl.DataFrame) -> None:
    """`update_rows` of a frame's rows (its columns named as ``table``'s, the primary key's
    first), in the frame's order; on PostgreSQL each column's array made from the column, not
    from a tuple a row."""
    if rows.is_empty():
        return
    if session.get_bind().dialect.name == "sqlite":
        for part in rows.iter_slices(_STAGED_SLICE):
            if _updated_staged(session, table, part):
                continue
            for chunk in part.iter_slices(_UPDATE_SLICE):
                update_rows(session, table, chunk.columns, _FrameRows(chunk))
        return
    statement = _unnest_update_sql(table, tuple(rows.columns), len(table.primary_key.columns))
    with _cursor(_driver_connection(session)) as cursor:
        cursor.execute(statement, [column.to_list() for column in rows.iter_columns()])


_UPDATE_SLICE = 100_000  # rows of a frame made tuples at a time on SQLite (`update_frame`, ...)
# rows of a frame `update_frame` stages at a time on SQLite: a stage a part (a transaction has
# four; the rest are bound), so a million people's links are not one image of 150 MB
_STAGED_SLICE = 250_000


def _updated_staged(session: Session, table: Table, rows: pl.DataFrame) -> bool:
    """A slice of `update_frame`'s rows updated on SQLite by way of a stage
    (`sync.staging.update_staged`) when their keys are distinct (a key given twice is updated a
    row at a time, in order, by `update_rows`); whether they were."""
    width = len(table.primary_key.columns)
    if rows.height < MIN_ROWS or rows.select(rows.columns[:width]).is_duplicated().any():
        return False
    connection, used = _stages_of(session)
    folder = _stage_folder(session.get_bind().url)
    return update_staged(connection, used, _quoted("sqlite", table.name), rows, width, folder)


def _stages_of(session: Session) -> tuple[Any, set[str]]:
    """The SQLite connection under ``session`` and the names of its stages holding a frame."""
    pooled = session.connection().connection
    return pooled.driver_connection, pooled.info.setdefault(_STAGES_USED, set())


def update_rows(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Update rows of ``table`` in place from plain tuples: the primary key's columns first in
    ``columns``, then the columns set (values of types the driver takes as they are). One
    statement over a typed array per column on PostgreSQL; on SQLite, `_sqlite_updates`; in
    the order given (in key order, neighbouring rows share pages); a key not held updates
    nothing."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    width = len(table.primary_key.columns)
    with _cursor(_driver_connection(session)) as cursor:
        if dialect == "postgresql":
            _as_arrays(cursor, _unnest_update_sql(table, tuple(columns), width), rows)
        else:
            _sqlite_updates(cursor, table, tuple(columns), width, rows)


def _sqlite_updates(
    cursor: Any,
    table: Table,
    columns: tuple[str, ...],
    width: int,
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """SQLite's updates of ``rows``, up to `_ROWS_PER_INSERT` in one statement (UPDATE ...
    FROM a list of VALUES, each row found by its key): the reference org's link stage updates
    every one of 1M people at a time, 4.6-6.8 s a pass stepping one statement a row and
    2.5-3.1 s so. A key given twice is updated a row at a time, in order, as before (in one
    statement SQLite would keep either row's values)."""
    one = _sqlite_update_sql(table, columns, width)
    keys = rows.keys(width) if isinstance(rows, _FrameRows) else {tuple(r[:width]) for r in rows}
    if len(keys) < len(rows):
        cursor.executemany(one, rows)
        return
    per = _rows_per_insert(len(columns))
    _many_a_statement(
        _sqlite_update_from_sql(table, columns, width, per), per, len(columns), cursor, one, rows
    )


def update_keyed(
    session: Session,
    table: Table,
    values: Mapping[str, Any],
    keys: Sequence[tuple[Any, ...]],
) -> None:
    """Set the same ``values`` (of types the driver takes as they are) on the rows of ``table``
    whose primary key is among ``keys`` (tuples in the key's column order): one statement for
    each value of the key's leading columns and up to 10,000 of its last (``IN`` on SQLite,
    ``= ANY`` of an array on PostgreSQL), where `update_rows` executes one a row on SQLite; a
    key not held updates nothing."""
    if not keys:
        return
    dialect = session.get_bind().dialect.name
    statement = _keyed_update_sql(dialect, table, tuple(values))
    leading: dict[tuple[Any, ...], list[Any]] = {}
    for key in keys:
        leading.setdefault(key[:-1], []).append(key[-1])
    with _cursor(_driver_connection(session)) as cursor:
        for lead, lasts in leading.items():
            for chunk in _batches(lasts, _IN_CHUNK):
                if dialect == "postgresql":
                    cursor.execute(statement, [*values.values(), *lead, chunk])
                else:
                    listed = statement.replace("(?)", f"({', '.join(['?'] * len(chunk))})")
                    cursor.execute(listed, [*values.values(), *lead, *chunk])


def last_rowid(session: Session, table: Table) -> int | None:
    """The largest rowid of ``table`` (a rowid table) on SQLite, 0 when it is empty: read before
    and after an insert of new rows, the two bound the rowids of the rows it inserted, which
    SQLite numbers on from the largest (https://sqlite.org/autoinc.html); read in the session's
    transaction, opened now if need be, so no other connection's delete comes between the read
    and the insert. None on PostgreSQL."""
    if session.get_bind().dialect.name != "sqlite":
        return None
    begin_now(session)
    with _cursor(_driver_connection(session)) as cursor:
        cursor.execute(f"SELECT max(rowid) FROM {_quoted('sqlite', table.name)}")
        return int(cursor.fetchone()[0] or 0)


def update_span(
    session: Session,
    table: Table,
    values: Mapping[str, Any],
    span: tuple[int, int],
    where: Mapping[str, Any],
) -> None:
    """Set the same ``values`` (of types the driver takes as they are) on the rows of ``table``
    whose rowid is after ``span[0]`` and at most ``span[1]`` (`last_rowid` before and after an
    insert) and whose columns hold ``where``'s values: one statement over a range of the
    table's rows in the order they were inserted, where `update_keyed` finds each by its key
    (SQLite only)."""
    name = partial(_quoted, "sqlite")
    setting = ", ".join(f"{name(column)} = ?" for column in values)
    held = "".join(f" AND {name(column)} = ?" for column in where)
    statement = f"UPDATE {name(table.name)} SET {setting} WHERE rowid > ? AND rowid <= ?{held}"
    with _cursor(_driver_connection(session)) as cursor:
        cursor.execute(statement, [*values.values(), *span, *where.values()])


@lru_cache(maxsize=64)
def _keyed_update_sql(dialect: str, table: Table, columns: tuple[str, ...]) -> str:
    """UPDATE ... SET ``columns`` WHERE the key's leading columns = their values and its last
    is among a list (SQLite: ``IN (?)``, the ``?`` repeated per value when executed)."""
    marker = "?" if dialect == "sqlite" else "%s"
    key = [_quoted(dialect, column.name) for column in table.primary_key]
    setting = ", ".join(f"{_quoted(dialect, name)} = {marker}" for name in columns)
    keyed = [f"{name} = {marker}" for name in key[:-1]]
    keyed.append(f"{key[-1]} IN (?)" if dialect == "sqlite" else f"{key[-1]} = ANY(%s)")
    return f"UPDATE {_quoted(dialect, table.name)} SET {setting} WHERE {' AND '.join(keyed)}"


@lru_cache(maxsize=64)
def _sqlite_update_sql(table: Table, columns: tuple[str, ...], width: int) -> str:
    """UPDATE ... SET the columns after the key's ``width`` = ?n WHERE the key = ?n."""
    names = [_quoted("sqlite", name) for name in columns]
    setting = ", ".join(f"{name} = ?{n}" for n, name in enumerate(names, 1) if n > width)
    keyed = " AND ".join(f"{name} = ?{n}" for n, name in enumerate(names[:width], 1))
    return f"UPDATE {_quoted('sqlite', table.name)} SET {setting} WHERE {keyed}"


@lru_cache(maxsize=64)
def _sqlite_update_from_sql(table: Table, columns: tuple[str, ...], width: int, rows: int) -> str:
    """UPDATE ... SET the columns after the key's ``width`` FROM ``rows`` rows of VALUES (in
    ``columns``' order) WHERE the key is a row's; SQLite names the list's columns column1..."""
    target = _quoted("sqlite", table.name)
    names = [_quoted("sqlite", name) for name in columns]
    given = ", ".join([f"({', '.join(['?'] * len(columns))})"] * rows)
    setting = ", ".join(f"{name} = given.column{n}" for n, name in enumerate(names, 1) if n > width)
    keyed = " AND ".join(
        f"{target}.{name} = given.column{n}" for n, name in enumerate(names[:width], 1)
    )
    return f"UPDATE {target} SET {setting} FROM (VALUES {given}) AS given WHERE {keyed}"


@lru_cache(maxsize=64)
def _unnest_update_sql(table: Table, columns: tuple[str, ...], width: int) -> str:
    """PostgreSQL's UPDATE ... FROM unnest(one typed array per column), by the key's columns
    (the first ``width``); its parameters are `_as_arrays` of rows."""
    dialect = postgresql.dialect()
    names = [_quoted("postgresql", name) for name in columns]
    kinds = [table.c[name].type.compile(dialect=dialect) for name in columns]
    arrays = ", ".join(f"%s::{kind}[]" for kind in kinds)
    target = _quoted("postgresql", table.name)
    setting = ", ".join(f"{name} = given.{name}" for name in names[width:])
    keyed = " AND ".join(f"{target}.{name} = given.{name}" for name in names[:width])
    return (
        f"UPDATE {target} SET {setting}"
        f" FROM unnest({arrays}) AS given ({', '.join(names)}) WHERE {keyed}"
    )


def _canonical_encoder() -> Callable[[Any], str]:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, the
    canonical text, from an encoder built once: `json.dumps` builds the same C encoder anew for
    every call, which costs more than encoding a ledger row's values. Without the C encoder,
    `json.JSONEncoder.encode` (the same text either way)."""
    encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if c_make_encoder is None:
        return encoder.encode
    # the arguments `JSONEncoder.iterencode` gives it, but for the check for circular values
    # (its markers), which our plain values never are
    encode = c_make_encoder(
        None, encoder.default, encode_basestring, None, ":", ",", True, False, True
    )
    return lambda value: "".join(encode(value, 0))


_canonical = _canonical_encoder()


def canonical_plain(value: Any) -> str:
    """`canonical_value` of a value already plain (`plain_value`), not made plain again: by
    orjson where its text is json's byte for byte (`_orjson_alike`: a tenth of the time for a
    write's values), else by json."""
    text = _by_orjson(value, orjson.OPT_SORT_KEYS)
    return _canonical(value) if text is None else text


def _by_orjson(value: Any, option: int = 0) -> str | None:
    """orjson's text of ``value`` where it is json's (`_orjson_agrees`, `_orjson_alike`; keys
    sorted with ``OPT_SORT_KEYS``, json's ``sort_keys``), else None: json is to write it."""
    if _orjson_agrees() and _orjson_alike(value):
        try:
            return orjson.dumps(value, option=option).decode()
        except orjson.JSONEncodeError:  # a lone surrogate, an integer past 64 bits, a key not text
            pass
    return None


@cache
def _orjson_agrees() -> bool:
    """Whether the orjson installed writes what `_orjson_alike` lets it write as json does, on
    samples of it (every escaped character, the floats at the ends of its range): checked once
    a process, so an orjson whose floats or escapes changed is not used for the ledger's text
    (every record's hash would change, and every record be written again)."""
    floats = [1e-4, -1e-4, 1.5e-4, 0.1, 1 / 3, 12.34, 1e15, 9999999999999998.0, 0.0, -0.0]
    samples: list[Any] = [floats, [2**63 - 1, -(2**63), 2**64 - 1, True, None]]
    samples += [{chr(c) + "k": "v" + chr(c)} for c in (*range(0x80), 0x2028, 0x2029, 0xFFFF)]
    return all(
        orjson.dumps(sample, option=orjson.OPT_SORT_KEYS).decode() == _canonical(sample)
        for sample in samples
    )


_ORJSON_SCALARS = frozenset({str, int, bool, type(None)})  # exactly these types: not a subclass
_ORJSON_NESTS = frozenset({dict, list, tuple})


def _orjson_alike(value: Any) -> bool:
    """Whether orjson (keys sorted) writes ``value`` as `_canonical` does, should it write it at
    all: text, whole numbers, flags and nulls, in dicts keyed by text and lists, as json writes
    them (checked over every code point); a float only between 1e-4 and 1e16 or zero, which both
    write as Python's repr (orjson writes 1e-05 as 0.00001, NaN as null); nothing of another type
    (orjson writes a datetime, a dataclass or an enum member, json refuses them). orjson refuses
    the rest json writes otherwise: a key not text, a lone surrogate, an integer past 64 bits."""
    kind = type(value)
    if kind is dict:  # a key not text orjson refuses
        items: Any = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return kind in _ORJSON_SCALARS or (kind is float and _orjson_float(value))
    for item in items:
        kind = type(item)
        if kind in _ORJSON_SCALARS:
            continue
        if kind is float:
            if not _orjson_float(item):
                return False
        elif kind not in _ORJSON_NESTS or not _orjson_alike(item):
            return False
    return True


def _json_text(value: Any) -> str:
    """The text of a JSON column marked `COMPACT_JSON`: orjson's where it reads back as json's
    would (`_orjson_alike`; a score's contributions in a seventh of the time), else json's (a
    NaN, which orjson writes as null; an integer past 64 bits, which it refuses)."""
    text = _by_orjson(value)
    return json.dumps(value) if text is None else text


def _orjson_float(value: float) -> bool:
    """Whether orjson writes the float ``value`` as json does (Python's repr)."""
    return value == 0 or 1e-4 <= abs(value) < 1e16


def canonical_value(value: Any) -> str:
    """The text a written value is compared by: sorted JSON, UTC ISO datetimes, 80.0 == 80."""
    return canonical_plain(_plain(value))


def plain_value(value: Any) -> Any:
    """`value` as JSON keeps it and `canonical_value` compares it (UTC ISO datetimes, 80.0 as
    80), without the round trip through text."""
    return _plain(value)


def _plain(value: Any) -> Any:
    """`value` with datetimes, dates and integral floats made JSON-comparable."""
    if type(value) in _PLAIN_ALREADY:  # most values: no ABC check
        return value
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise NaiveDatetimeError(f"naive datetime {value.isoformat()} cannot be written")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def adapters_of(dialect: str, table: Table, columns: Sequence[str]) -> tuple[Adapter | None, ...]:
    """`Store.adapters` of a database of `dialect`, without a store."""
    return tuple(_adapter(dialect, table.c[name]) for name in columns)


def _adapter(dialect: str, column: Column[Any]) -> Adapter | None:
    """What turns a value of `column` into what `dialect`'s driver takes (None: as it is)."""
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return _sqlite_stamp if dialect == "sqlite" else _aware
    if isinstance(kind, JSON):
        return _json_text if column.info.get(COMPACT_JSON) else json.dumps
    if isinstance(kind, Date):
        return date.isoformat if dialect == "sqlite" else None
    if isinstance(kind, Integer):
        return _int8 if isinstance(kind, BigInteger) else _int4
    if isinstance(kind, Float):
        return float
    if isinstance(kind, Boolean) and dialect == "sqlite":
        return _sqlite_flag
    return None


def adapt_column(adapt: Adapter | None, values: list[Any]) -> list[Any]:
    """``adapt`` applied to a column of values (None stays None), the whole column at once
    where that is faster; raises as ``adapt`` does for any value it refuses."""
    if adapt is None:
        return values
    column_wise = _COLUMN_ADAPTERS.get(adapt)
    if column_wise is not None and len(values) >= _COLUMN_AT_ONCE:
        return column_wise(values)
    return [None if value is None else adapt(value) for value in values]


def _aware(value: datetime) -> datetime:
    """`value` itself, refused if it is naive (PostgreSQL would read it as local time)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(f"naive datetime {value.isoformat()} refused")
    return value


def _sqlite_stamp(value: datetime) -> str:
    """The text SQLAlchemy stores a UTC datetime as on SQLite (`UTCDateTime`), so both paths
    write the same and compare alike: ``2026-11-01 09:00:00.000000``."""
    if value.tzinfo is not UTC:
        value = _aware(value).astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # less "+00:00"


def _aware_column(values: list[Any]) -> list[Any]:
    """`_aware` of a column (None stays None); UTC, the connectors' own, is taken at a glance."""
    return [v if v is None or v.tzinfo is UTC else _aware(v) for v in values]


def _sqlite_stamps(values: list[Any]) -> list[Any]:
    """`_sqlite_stamp` of a column (None stays None), formatted together by polars: an order
    of magnitude cheaper a value than Python's own formatting, and the same text."""
    return sqlite_stamp_texts(_epoch_micros(values).cast(pl.Datetime("us"))).to_list()


def sqlite_stamp_texts(stamps: pl.Series) -> pl.Series:
    """`_sqlite_stamp` of a column of microsecond datetimes in UTC (or naive, read as UTC),
    made by polars: one cast to text is ``2026-11-01 09:00:00.000000``, the text
    ``strftime("%Y-%m-%d %H:%M:%S%.6f")`` writes, at three quarters of its cost (both write a
    year before 1000 as ``0999``, as `_sqlite_stamp` does)."""
    if stamps.dtype != pl.Datetime("us") and stamps.dtype != pl.Datetime("us", "UTC"):
        raise TypeError(f"expected microsecond datetimes in UTC, not {stamps.dtype}")
    return stamps.dt.replace_time_zone(None).cast(pl.String)


def _epoch_micros(values: Sequence[Any]) -> pl.Series:
    """Aware datetimes as exact microseconds since 1970 (None stays null). A float timestamp
    rounds the microseconds off a far date, so it gives the whole seconds alone."""
    try:
        stamps = [v if v is None or v.tzinfo is UTC else _aware(v) for v in values]
        seconds = [None if v is None else v.timestamp() for v in stamps]
        micros = pl.Series([None if v is None else v.microsecond for v in stamps], dtype=pl.Int64)
    except AttributeError as error:  # not a datetime at all
        raise TypeError(f"expected a datetime: {error}") from None
    whole = (pl.Series(seconds, dtype=pl.Float64) - micros / 1e6).round().cast(pl.Int64)
    return whole * 1_000_000 + micros


def _sqlite_flag(value: Any) -> Any:
    """A flag as the 1 or 0 SQLite stores it: sqlite3 binds an int at once, where a bool (an
    int's subclass) goes through its adaptation protocol first, several times slower."""
    return int(value) if isinstance(value, bool) else value


def _int4(value: int) -> int:
    """`value` if an INTEGER column holds it (PostgreSQL's binary COPY would wrap it silently)."""
    if not isinstance(value, int):
        raise TypeError(f"{value!r} is not an integer")
    if not -(2**31) <= value < 2**31:
        raise ValueError(f"{value} is out of range for an integer column")
    return value


def _int8(value: int) -> int:
    """`value` if a BIGINT column holds it."""
    if not isinstance(value, int):
        raise TypeError(f"{value!r} is not an integer")
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"{value} is out of range for a bigint column")
    return value


# adapters with a faster way through a whole column (`adapt_column`), taken from this many
# values on (below it, setting the way up costs more than it saves)
_COLUMN_AT_ONCE = 256
_COLUMN_ADAPTERS: dict[Adapter, Callable[[list[Any]], list[Any]]] = {
    _sqlite_stamp: _sqlite_stamps,
    _aware: _aware_column,
}


def _copy(
    connection: Any,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
    fixed: tuple[tuple[str, Any], ...] = (),
) -> None:
    """COPY `rows` into `table` (`_copy_frame`), their values put in typed columns first."""
    frame = pl.DataFrame(
        [
            _copy_series(table.c[name], values)
            for name, values in zip(columns, zip(*rows, strict=True), strict=True)
        ]
    )
    _copy_frame(connection, table, frame, fixed)


def _copy_frame(
    connection: Any, table: Table, frame: pl.DataFrame, fixed: tuple[tuple[str, Any], ...] = ()
) -> None:
    """COPY a frame's rows into `table` (its columns named as the table's) as CSV that polars
    writes a column at a time (the values turned into text in Rust, not a value at a time in
    Python), sent in parts of `_COPY_ROWS_PER_WRITE` rows; `fixed` columns alike."""
    names = (*frame.columns, *(name for name, _ in fixed))
    typed = frame.with_columns(
        [pl.col(name).cast(_copy_type(table.c[name])) for name in frame.columns]
        + [pl.lit(value, _copy_type(table.c[name])).alias(name) for name, value in fixed]
    ).select(names)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for at in range(0, typed.height, _COPY_ROWS_PER_WRITE):
            part = typed.slice(at, _COPY_ROWS_PER_WRITE)
            copy.write(part.write_csv(include_header=False, datetime_format=_CSV_STAMP))


def _copy_series(column: Column[Any], values: Sequence[Any]) -> pl.Series:
    """A column's values as a typed polars series, as `_copy` writes them."""
    kind = _copy_type(column)
    if kind == pl.Datetime("us", "UTC"):
        return _epoch_micros(values).cast(kind).alias(column.name)
    return pl.Series(column.name, values, dtype=kind, strict=True)


def _copy_type(column: Column[Any]) -> pl.DataType | type[pl.DataType]:
    """The polars type `_copy` gives `column`'s values (JSON goes as its text)."""
    return pl.String if isinstance(column.type, JSON) else polars_type(column.type)


@cache
def _cursor_upsert(dialect: str) -> Insert:
    """The statement that saves one cursor, inserted or replaced whole (built once)."""
    table = table_of(SyncCursor)
    statement = _INSERTS[dialect](table)
    key = [column.name for column in table.primary_key]
    changing = {c.name: statement.excluded[c.name] for c in table.c if c.name not in key}
    return statement.on_conflict_do_update(index_elements=key, set_=changing)


@lru_cache(maxsize=256)
def _upsert_sql(
    dialect: str,
    table: Table,
    columns: tuple[str, ...],
    update: tuple[str, ...],
    literals: tuple[tuple[str, str], ...] = (),
    flags: _Flags = (),
    stand_ins: tuple[tuple[str, str], ...] = (),
    rows: int = 1,
) -> str:
    """`_insert_sql` ... ON CONFLICT (primary key) DO UPDATE SET the `update` columns (`flags`
    as `_on_conflict` says)."""
    insert = _insert_sql(dialect, table, columns, literals, stand_ins, rows)
    return f"{insert} {_on_conflict(dialect, table, update, flags)}"


@lru_cache(maxsize=256)
def _insert_sql(
    dialect: str,
    table: Table,
    columns: tuple[str, ...],
    literals: tuple[tuple[str, str], ...] = (),
    stand_ins: tuple[tuple[str, str], ...] = (),
    rows: int = 1,
) -> str:
    """INSERT with positional parameters in `columns` order (null where a column's equals its
    `stand_ins` literal) and then `literals` (column, SQL literal) as they are, for one row (or
    as many as `rows`, one after another)."""
    marker = "?" if dialect == "sqlite" else "%s"
    names = ", ".join(_quoted(dialect, name) for name in (*columns, *dict(literals)))
    stand_in = dict(stand_ins)
    given = [f"NULLIF({marker}, {stand_in[c]})" if c in stand_in else marker for c in columns]
    values = ", ".join(given + [literal for _, literal in literals])
    return f"INSERT INTO {_quoted(dialect, table.name)} ({names}) VALUES " + ", ".join(
        [f"({values})"] * rows
    )


@lru_cache(maxsize=256)
def _unnest_upsert_sql(
    table: Table,
    columns: tuple[str, ...],
    fixed: tuple[str, ...],
    update: tuple[str, ...],
    flags: _Flags = (),
) -> str:
    """PostgreSQL's INSERT ... SELECT FROM unnest(one typed array per column), with a typed
    parameter per `fixed` column, ... ON CONFLICT (primary key) DO UPDATE SET the `update`
    columns (`flags` as `_on_conflict` says); its parameters are the fixed values, then
    `_as_arrays` of rows."""
    dialect = postgresql.dialect()
    names = [_quoted("postgresql", name) for name in columns]
    kinds = [table.c[name].type.compile(dialect=dialect) for name in (*columns, *fixed)]
    arrays = ", ".join(f"%s::{kind}[]" for kind in kinds[: len(columns)])
    scalars = [f"%s::{kind}" for kind in kinds[len(columns) :]]
    every = ", ".join([*names, *(_quoted("postgresql", name) for name in fixed)])
    return (
        f"INSERT INTO {_quoted('postgresql', table.name)} ({every})"
        f" SELECT {', '.join([*names, *scalars])}"
        f" FROM unnest({arrays}) AS given ({', '.join(names)})"
        f" {_on_conflict('postgresql', table, update, flags)}"
    )


# flag columns, each with the columns whose change sets it, or None: every update
# (`Store.write_rows`)
_Flags = tuple[tuple[str, tuple[str, ...] | None], ...]


def _kept_on_conflict(
    given: tuple[str, ...],
    constant: tuple[tuple[str, Any], ...],
    update: Sequence[str] | None,
    flags: Mapping[str, Sequence[str] | None] | None,
) -> tuple[tuple[str, ...], _Flags]:
    """What an upsert of ``given`` columns and ``constant`` values sets on conflict (every
    column it writes unless ``update`` names them) and its watched ``flags``, as `_on_conflict`
    takes them."""
    keep = (*given, *(name for name, _ in constant)) if update is None else tuple(update)
    watched = tuple(
        (flag, None if names is None else tuple(names)) for flag, names in (flags or {}).items()
    )
    return keep, watched


def _on_conflict(dialect: str, table: Table, update: tuple[str, ...], flags: _Flags = ()) -> str:
    """ON CONFLICT (primary key) DO UPDATE SET the `update` columns (NOTHING if none); a flag
    among them stays set, or is set when one of its columns' values changes."""
    key = [column.name for column in table.primary_key]
    watched = dict(flags)
    conflict = f"ON CONFLICT ({', '.join(_quoted(dialect, name) for name in key)}) DO "
    setting = [
        f"{_quoted(dialect, name)} = "
        + (
            _flagged(dialect, table, name, watched[name])
            if name in watched
            else f"excluded.{_quoted(dialect, name)}"
        )
        for name in update
        if name not in key
    ]
    if not setting:
        return conflict + "NOTHING"
    return conflict + "UPDATE SET " + ", ".join(setting)


def _flagged(dialect: str, table: Table, flag: str, columns: Sequence[str] | None) -> str:
    """The value of ``flag`` on conflict: as held, or set when one of ``columns`` changes
    (compared as SQL compares them, null equal to null; JSON as its text, which PostgreSQL keeps
    as given and has no equality for); set whatever changes when ``columns`` is None."""
    if columns is None:
        return "TRUE"
    held = f"{_quoted(dialect, table.name)}."
    distinct = " IS NOT " if dialect == "sqlite" else " IS DISTINCT FROM "
    changes = []
    for name in columns:
        column = _quoted(dialect, name)
        as_text = (
            "::text" if dialect == "postgresql" and isinstance(table.c[name].type, JSON) else ""
        )
        changes.append(f"{held}{column}{as_text}{distinct}excluded.{column}{as_text}")
    return f"({held}{_quoted(dialect, flag)} OR {' OR '.join(changes) or 'FALSE'})"


def _sqlite_literal(value: Any) -> str:
    """`value` (None, a bool, a number or text made ready by `adapters`) as a SQLite literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return repr(int(value) if isinstance(value, bool) else value)
    if isinstance(value, str) and "\x00" not in value:
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"{value!r} cannot be written as a SQLite literal")


class _FrameRows(Sequence[tuple[Any, ...]]):
    """A frame's rows as a statement takes them: its columns listed once each, a row's tuple
    made as the statement reaches it (and reused once let go, as `zip` does), not all held at
    once; twice as fast as polars' own rows."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self._columns = [frame[name].to_list() for name in frame.columns]
        self._height = frame.height

    def __len__(self) -> int:
        return self._height

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return zip(*self._columns, strict=True)

    @overload
    def __getitem__(self, at: int) -> tuple[Any, ...]: ...

    @overload
    def __getitem__(self, at: slice) -> list[tuple[Any, ...]]: ...

    def __getitem__(self, at: int | slice) -> tuple[Any, ...] | list[tuple[Any, ...]]:
        if isinstance(at, slice):
            return list(zip(*(column[at] for column in self._columns), strict=True))
        return tuple(column[at] for column in self._columns)

    def keys(self, width: int) -> set[tuple[Any, ...]]:
        """The distinct values of the first ``width`` columns (a key's), as tuples."""
        return set(zip(*self._columns[:width], strict=True))

    def flat(self, stop: int) -> list[Any]:
        """The values of the first ``stop`` rows, row after row, in one list (put in place a
        column at a time, with no tuple made per row)."""
        width = len(self._columns)
        values: list[Any] = [None] * (stop * width)
        for at, column in enumerate(self._columns):
            values[at::width] = column[:stop]
        return values


def _null_stand_ins(frame: pl.DataFrame) -> tuple[pl.DataFrame, tuple[tuple[str, str], ...]]:
    """A frame for SQLite with a column's nulls replaced by a value that column does not hold,
    and the SQL literal of each such stand-in, which the statement turns back into null
    (``NULLIF``): sqlite3 binds None through its adaptation protocol, several times slower than
    a string or a number. An amount's nulls become NaN, which SQLite stores as null itself."""
    filled: list[pl.Expr] = []
    # column -> itself as text or whole numbers, and its stand-in if no value of it is that
    wanted: dict[str, tuple[pl.Expr, Any]] = {}
    nulls = frame.null_count().row(0)  # every column's in one call, and every test below in one
    for (name, kind), count in zip(frame.schema.items(), nulls, strict=True):
        if not count:
            continue
        if kind.is_float():
            filled.append(pl.col(name).fill_null(math.nan))
        elif kind in (pl.String, pl.Null):
            wanted[name] = (pl.col(name).cast(pl.String), _NULL_TEXT)
        elif kind.is_integer():
            wanted[name] = (pl.col(name).cast(pl.Int64), _NULL_INT)
    tests = [(column == value).any() for column, value in wanted.values()]
    held = frame.select(tests).row(0) if tests else ()
    stand_ins: list[tuple[str, str]] = []
    for (name, (column, value)), clash in zip(wanted.items(), held, strict=True):
        if not clash:
            filled.append(column.fill_null(value))
            stand_ins.append((name, _sqlite_literal(value)))
    return (frame.with_columns(filled) if filled else frame), tuple(stand_ins)


def _as_arrays(
    cursor: Any, statement: str, rows: Sequence[tuple[Any, ...]], fixed: Sequence[Any] = ()
) -> None:
    """Execute `statement` (`_unnest_upsert_sql`) once for all `rows`: the `fixed` values,
    then a list per column."""
    cursor.execute(statement, [*fixed, *(list(values) for values in zip(*rows, strict=True))])


def _one_by_one(cursor: Any, statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Execute `statement` for every row with one prepared statement (executemany)."""
    cursor.executemany(statement, rows)


def _last_per_key(
    table: Table, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
) -> Sequence[tuple[Any, ...]]:
    """`rows` with each primary key once, its last row kept (one statement may not update a
    row twice), in the order given."""
    if any(column.name not in columns for column in table.primary_key):
        return rows  # the database gives each row its key (an autoincrement id): all are new
    at = [columns.index(column.name) for column in table.primary_key]
    keys = [tuple(row[i] for i in at) for row in rows]
    if len(set(keys)) == len(keys):
        return rows
    last = {key: position for position, key in enumerate(keys)}
    return [row for position, row in enumerate(rows) if last[keys[position]] == position]


def _quoted(dialect: str, name: str) -> str:
    """An identifier quoted as `dialect` wants it (only where needed)."""
    preparer = (sqlite if dialect == "sqlite" else postgresql).dialect().identifier_preparer
    return str(preparer.quote(name))


def _driver_connection(session: Session) -> Any:
    """The driver's own connection (sqlite3 or psycopg) under `session`, in its transaction."""
    return session.connection().connection.driver_connection


@contextmanager
def _savepoint(connection: Any, dialect: str) -> Iterator[None]:
    """A savepoint on the driver's connection: rolled back if the block raises.

    sqlite3 opens its transaction only before a data change, and a SAVEPOINT opened outside one
    would start (and its RELEASE commit) a transaction of its own, so one is begun first.
    """
    if dialect == "sqlite" and not connection.in_transaction:
        connection.execute("BEGIN")
    connection.execute("SAVEPOINT bulk_rows")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK TO SAVEPOINT bulk_rows")
        connection.execute("RELEASE SAVEPOINT bulk_rows")
        raise
    connection.execute("RELEASE SAVEPOINT bulk_rows")


def _write_carefully(
    connection: Any,
    dialect: str,
    statement: str,
    rows: Sequence[tuple[Any, ...]],
    written: Written,
    execute: Callable[[Any, str, Sequence[tuple[Any, ...]]], None] = _one_by_one,
) -> None:
    """Store `rows` with `statement` through `execute` (default: executemany); if the database
    refuses the batch, halve it until the refused rows are found, and store the rest."""
    if not rows:
        return
    try:
        if dialect == "postgresql":
            _pipelined(connection, statement, rows, execute)
        else:
            with _savepoint(connection, dialect), _cursor(connection) as cursor:
                execute(cursor, statement, rows)
        written.stored += len(rows)
    except _ROW_ERRORS as error:
        if len(rows) == 1:
            written.refused.append((rows[0], _reason(error)))
            return
        half = len(rows) // 2
        _write_carefully(connection, dialect, statement, rows[:half], written, execute)
        _write_carefully(connection, dialect, statement, rows[half:], written, execute)


def _pipelined(
    connection: Any,
    statement: str,
    rows: Sequence[tuple[Any, ...]],
    execute: Callable[[Any, str, Sequence[tuple[Any, ...]]], None],
) -> None:
    """`execute` inside a savepoint on PostgreSQL, the savepoint, the statement and its release
    sent together (psycopg's pipeline mode: one round trip, not three). Should the database
    refuse the statement, the release is skipped with it, and the transaction is rolled back to
    the savepoint before the error is raised again."""
    try:
        with connection.pipeline(), _cursor(connection) as cursor:
            # psycopg prepares a statement from its fifth run on; a release skipped with a
            # refused statement leaves it believing one prepared that the server never saw,
            # and the next batch fails on it (https://www.psycopg.org/psycopg3/docs/advanced/prepare.html)
            cursor.execute("SAVEPOINT bulk_rows", prepare=False)
            execute(cursor, statement, rows)
            cursor.execute("RELEASE SAVEPOINT bulk_rows", prepare=False)
    except BaseException:
        connection.execute("ROLLBACK TO SAVEPOINT bulk_rows")
        connection.execute("RELEASE SAVEPOINT bulk_rows")
        raise


@contextmanager
def _cursor(connection: Any) -> Iterator[Any]:
    """A cursor of the driver's connection, closed after the block (sqlite3's is no context
    manager)."""
    cursor = connection.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


def _reason(error: Exception) -> str:
    """The database's reason for refusing a row, on one line."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def read_json(text: str | bytes) -> Any:
    """A JSON column's value as Python: orjson's reading (a tenth of `json`'s time; a cycle
    reads a JSON value of every account, person and ledger row it touches), `json`'s for what
    orjson refuses (NaN, which `json` writes) or would read as a float (an integer beyond 64
    bits: any run of 19 digits, inside a string too, sends the text to `json`)."""
    if isinstance(text, bytes):  # psycopg hands over bytes
        text = text.decode()
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def _sqlite_pool(url: URL) -> bool:
    """Whether ``url`` is SQLite's and SQLAlchemy keeps a pool of connections for it
    (`QueuePool`, as its dialect decides: a file, not an in-memory database)."""
    if url.get_backend_name() != "sqlite":
        return False
    return issubclass(url.get_dialect().get_pool_class(url), QueuePool)


def _stage_folder(url: URL) -> Path | None:
    """Where a large frame's staged copy is written for a SQLite database (`sync.staging`):
    beside its file, whose disk has room for the rows, where a temporary folder may be memory;
    None (the system's temporary folder) for an in-memory database, and for PostgreSQL, which
    stages nothing."""
    database = _sqlite_file(url) if url.get_backend_name() == "sqlite" else None
    return None if database is None else Path(database).parent


def _sqlite_file(url: URL) -> str | None:
    """The file a SQLite URL names, made absolute (a later change of directory does not move
    it); None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.path.abspath(database)


_HIDDEN = "hiddenpassword"  # a query password in a URL to print, until it shows as ***


def _normalise_url(url: str) -> URL:
    """Parse `url`: SQLite, or PostgreSQL (always driven by psycopg 3); nothing else."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # SQLAlchemy before 2.0.41 echoes the whole URL here, and a bad port echoes its neighbours
        raise StoreOpenError("cannot parse the state database URL") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg", "psycopg2"):
        return parsed.set(drivername="postgresql+psycopg")
    raise StoreOpenError(
        f"unsupported state database {parsed.render_as_string(hide_password=True)}: "
        "use sqlite:///path/to/state.db or postgresql://user@host/db"
    )


def _apply_sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """WAL for concurrent readers, enforced foreign keys, and waiting out locks, not failing."""
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        attach_stages(cursor)
        _enter_wal(cursor)
    finally:
        cursor.close()


def _release_stages(dbapi_connection: Any, connection_record: Any) -> None:
    """Empty the stages a connection handed back to the pool staged frames in (its transaction
    is over: SQLite lets a database a transaction read be replaced only then)."""
    used = connection_record.info.get(_STAGES_USED)
    if used:
        release_stages(dbapi_connection, used)


def _enter_wal(cursor: Any) -> None:
    """Switch to WAL. Two connections opening a new database at once both try to, and the
    switch needs the database to itself: SQLite answers "database is locked" at once rather
    than through busy_timeout (https://sqlite.org/wal.html#activating_and_configuring_wal_mode),
    so the switch is tried again for a moment; once in WAL it is a no-op."""
    for attempt in range(_WAL_ATTEMPTS):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == _WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.05)


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of up to `size` items."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _execute_batched(
    session: Session, statement_for: StatementFor, rows: Rows, batch_size: int
) -> int:
    """Execute `statement_for(columns)` once per batch and column set (executemany); count rows."""
    session.flush()
    count = 0
    for batch in _batches(rows, batch_size):
        groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
        for row in batch:
            groups.setdefault(tuple(sorted(row)), []).append(row)
        for keys, group in groups.items():
            session.exec(statement_for(keys), params=group)
        count += len(batch)
    return count


def _latest_scores(
    session: Session, when: datetime, account_ids: list[str] | None
) -> dict[str, ScoreHistory]:
    """Latest score per account at or before `when`, optionally for some accounts only."""
    rank = (
        func.row_number()
        .over(
            partition_by=ScoreHistory.account_id,
            order_by=(col(ScoreHistory.scored_at).desc(), col(ScoreHistory.id).desc()),
        )
        .label("rank")
    )
    ranked = select(col(ScoreHistory.id), rank).where(col(ScoreHistory.scored_at) <= when)
    if account_ids is not None:
        ranked = ranked.where(col(ScoreHistory.account_id).in_(account_ids))
    latest = ranked.subquery()
    statement = select(ScoreHistory).join(latest, latest.c.id == ScoreHistory.id)
    rows = session.exec(statement.where(latest.c.rank == 1))
    return {row.account_id: row for row in rows}


def _current_assignment(session: Session, account_id: str) -> Assignment | None:
    """The account's open assignment, if any."""
    statement = select(Assignment).where(
        Assignment.account_id == account_id, col(Assignment.ended_at).is_(None)
    )
    return session.exec(statement).first()
