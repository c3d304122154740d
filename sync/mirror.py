"""Mirror: pull every stream since its saved cursor into the state database.

Rows and cursor land in one transaction (rule 6): a pull's checkpoints are gathered until the
transaction holds `COMMIT_EVERY` items, then everything before the latest one commits with its
cursor, so a run stopped anywhere resumes at the last checkpoint committed. What a stream's pull
leaves at its end (its last rows with their cursor, or a cursor that moved past no item) goes on
into the stage's next transaction with the next streams' rows rather than one of its own
(`_Transaction`): a transaction a stream would cost an incremental cycle more than its rows. A pull
that fails (the API budget spent, the CRM gone) has that transaction commit before the error is
raised, as if each stream had committed its own; lost with a killed run, they are only read again. A
stream's pull is yielded once its rows are committed. Tombstones are applied in the order they came
with the rows: a deleted or archived record is marked deleted; a merged one also names its survivor,
and a merged account's people, activities and opportunities move to the survivor (score history
stays append-only: replay follows `merged_into`). A record re-read inside the connector's overlap
window is skipped when the mirror already holds that version, so an activity is counted once. A
record that cannot be stored (a required value missing, a value outside a closed vocabulary or
beyond its column, one the database refuses) is skipped with its reason; the rest of the page lands.
Every account, person and opportunity row it inserts, buries or repoints in a merge is flagged
``link_pending`` for the link stage (`sync.linking`), and so is every one it updates, but an
account or person only when a value other than our own fields and the stamps changes: a record
pulled again because our write-back touched it (its echo) is not, and only sets ``owned_changed``,
which the link stage checks against the write ledger (`sync.echoes`). An activity row is flagged
when it is updated, buried or repointed, not when it is inserted: the score stage knows a new
one by ``activity.scored_seq``, the scoring cycle that will count it, which the mirror gives a
row it inserts (the one after the last that ran, worked out once for a stream's pull) and never
updates. The decision is the database's, in the upsert. The link stage's own column
(``link_basis``) it never writes.

No ORM object is made per row: each field set a stream delivers gets a `_Shape` once (column
order, value adapters, checks) that turns its records into plain tuples, a column at a time,
which `Store.write_rows` upserts with one prepared statement (what is the same in every row, such
as when it was synced, given once); a `RecordBatch` (a Bulk API page) becomes a frame of its
columns made ready at once, in key order, with no `Record` made (`_Shape.ready_frame`,
`sync.mirror_batches`; `Store.write_frame`), or tuples made a column at a time where a value needs
adapting alone (`_Shape.frame_rows`). A table empty when the stage begins is a first load: its
secondary indexes are dropped until every stream is in (a partial one its new rows do not enter
stays, empty), and on PostgreSQL its rows go in by COPY (`mirror_streams`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from itertools import groupby
from typing import Any, cast

import numpy as np
import polars as pl
from sqlalchemy import Column, Table, bindparam, delete, update
from sqlmodel import Session, SQLModel, col, select

from connectors.protocol import (
    FULL_LOAD,
    Checkpoint,
    Connector,
    Cursor,
    Entity,
    Record,
    RecordBatch,
    Summary,
    Tombstone,
)
from connectors.streams import WRITTEN_BACK
from sync.echoes import sort_echoes
from sync.mirror_batches import SharedStamps, delivered_parts, latest_parts, plain_column
from sync.state import (
    LINK_PENDING,
    OWNED_CHANGED,
    PERSON_KINDS,
    USER_ROLES,
    Account,
    Activity,
    CurrentScore,
    Opportunity,
    Person,
    StateError,
    SyncCursor,
    User,
    table_of,
)
from sync.store import Adapter, Store, Written, adapt_column, adapters_of, in_chunks, plain_value

__all__ = [
    "COMMIT_EVERY",
    "ENTITY_TABLES",
    "MirrorEvent",
    "StreamPull",
    "mirror_stream",
    "mirror_streams",
]

ENTITY_TABLES: dict[Entity, type[SQLModel]] = {
    "account": Account,
    "person": Person,
    "activity": Activity,
    "opportunity": Opportunity,
    "user": User,
}
# items (records and tombstones) a transaction gathers before it commits at the next checkpoint:
# a HubSpot page holds 100, and a commit per page would cost more than the rows
COMMIT_EVERY = 10_000
# what the mirror sets on every row it stores, besides its id and both stamps (on the tables
# that have the column)
_MIRROR_SETS: Mapping[str, Any] = {"is_deleted": False, "merged_into": None}
# the flags it keeps for the stages after it (on the tables that have them): a row inserted gets
# its column's default (pending for the link stage on accounts, people and deals; not on an
# activity, which is new to the score stage by its cycle), a row updated what `_flags` says
_FLAGS = (LINK_PENDING, OWNED_CHANGED)
# columns the mirror fills itself, whatever the record carries
_OWN_COLUMNS = frozenset(
    {"id", "crm_modified_at", "synced_at", "crm_owned", *_MIRROR_SETS, *_FLAGS}
)
_VOCABULARIES: dict[str, Mapping[str, tuple[str, ...]]] = {
    "person": {"kind": PERSON_KINDS},
    "crm_user": {"role": USER_ROLES},
}
_ROW_ITEMS = (Record, RecordBatch, Tombstone)  # the items of a pull that become rows
# what an adapter raises for a value its column cannot hold (`Store.adapters`)
_BAD_VALUES = (StateError, ValueError, TypeError, OverflowError)
# where a merged record's dependants point: table -> (table, column) naming an account / person
_REFERENCES: dict[str, tuple[tuple[type[SQLModel], str], ...]] = {
    "account": (
        (Person, "account_id"),
        (Person, "matched_account_id"),
        (Person, "converted_account_id"),
        (Activity, "account_id"),
        (Opportunity, "account_id"),
    ),
    "person": ((Activity, "person_id"),),
}


@dataclass(frozen=True)
class MirrorEvent:
    """Something that happened to one record while mirroring (for the run log)."""

    object: str
    record_id: str
    action: str  # "pulled" (deleted, merged) or "skipped" (could not be stored)
    reason: str


@dataclass
class StreamPull:
    """What one stream's pull delivered and what the mirror did with it."""

    stream: str
    stored: int = 0
    tombstones: int = 0
    reread_skipped: int = 0
    first_load: bool = False  # its rows went in as new: its table was empty when the stage began
    skipped: dict[str, int] = field(default_factory=dict)
    summary: Summary | None = None
    events: list[MirrorEvent] = field(default_factory=list)

    def skip(self, record_id: str, reason: str) -> None:
        """Count a record left out, with its reason."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.events.append(MirrorEvent(self.stream, record_id, "skipped", reason))


# the tables whose indexes a first load leaves to a caller who asks (`mirror_streams`)
LEFT_UNBUILT = frozenset({table_of(Activity).name, table_of(Person).name})


def mirror_streams(
    store: Store,
    connector: Connector,
    now: datetime,
    *,
    streams: Iterable[str] | None = None,
    full: bool | Collection[str] = False,
    move_cursor: bool = True,
    echoes: set[tuple[str, str]] | None = None,
    unbuilt: list[Table] | None = None,
    beat: Callable[[], None] | None = None,
) -> Iterator[StreamPull]:
    """Mirror ``streams`` (default: every stream of the connector) in turn, yielding each pull;
    ``full`` (True, or the names of some streams) pulls those from their start. With
    ``echoes``, the rows each transaction flags as changed in our fields only are told apart
    there (`sync.echoes.sort_echoes`: an echo of our last write, or a change to link), and the
    echoes gathered in it: a row is written once, not again by a later stage clearing its flag.

    A table empty when the stage begins is a first load: its secondary indexes are dropped
    until every stream is in, and built then (also when the stage stops early; those a killed
    run left unbuilt are built when the next stage first reaches the table); a partial index
    that no new row enters stays (`Store.drop_indexes`). With ``unbuilt``, the activity and
    person tables' are left to the caller, who builds them when it likes
    (`Store.build_indexes_behind`), also when the stage stops early: a table is added to the
    list when it was first loaded (`LEFT_UNBUILT`). ``beat`` is called at each checkpoint a
    pull gives (a page or a group of pages), so a caller's progress can show a long stream
    going on. The link stage reads no activity, and
    relinks everyone when the person table was first loaded (its tally is empty), reading them
    whole and setting the columns most person indexes are on (built before it, they were built
    twice; should it relink only some, it finds them without those indexes, more slowly).
    """
    names = list(connector.streams if streams is None else streams)
    saved = {} if full is True else _saved_cursors(store, connector.crm)
    for stream in () if isinstance(full, bool) else full:
        saved.pop(stream, None)
    loads = _FirstLoads(
        store,
        [_table_of(connector, name) for name in names],
        _carried(connector),
        later=None if unbuilt is None else (unbuilt, LEFT_UNBUILT),
    )
    sort = (
        None if echoes is None else partial(sort_echoes, streams=connector.streams, echoes=echoes)
    )
    transaction = _Transaction(store, connector.crm, now, sort)
    pulled: list[StreamPull] = []  # in order; yielded once their rows are committed
    try:
        for stream in names:
            cursor = saved.get(stream, FULL_LOAD)
            pulled.append(
                _mirror(
                    store, connector, stream, cursor, now, loads, transaction, move_cursor, beat
                )
            )
            while pulled and not transaction.holds_rows_of(pulled[0].stream):
                yield pulled.pop(0)
        transaction.commit()
        transaction.settle()
        yield from pulled
    except BaseException as error:
        if transaction.stop() and not isinstance(error, GeneratorExit):
            yield from pulled  # their rows are in: a stopped run counts them as pulled
        raise
    finally:
        transaction.close()
        loads.finish()


def mirror_stream(
    store: Store,
    connector: Connector,
    stream: str,
    now: datetime,
    *,
    full: bool = False,
    move_cursor: bool = True,
) -> StreamPull:
    """Pull ``stream`` since its saved cursor (everything with ``full``) into the mirror.

    Rows commit with the cursor of the checkpoint after them; with ``move_cursor`` False (a dry
    run) the rows are stored but the cursor stays where it was.
    """
    mirrored = mirror_streams(
        store, connector, now, streams=[stream], full=full, move_cursor=move_cursor
    )
    [pulled] = mirrored
    return pulled


def _mirror(
    store: Store,
    connector: Connector,
    stream: str,
    cursor: Cursor,
    now: datetime,
    loads: _FirstLoads,
    transaction: _Transaction,
    move_cursor: bool,
    beat: Callable[[], None] | None = None,
) -> StreamPull:
    """One stream's pull from ``cursor`` into the stage's transactions, committed when one holds
    `COMMIT_EVERY` items at a checkpoint; what is left at its end waits for the next one.
    ``beat`` is called at each checkpoint."""
    table = _table_of(connector, stream)
    pulled = StreamPull(stream)
    pulled.first_load = loads.first(table) or _resuming(cursor)
    rows = _StreamRows(store, table, now, pulled, new=pulled.first_load, ids=loads.ids_stored)
    pending: list[Record | RecordBatch | Tombstone] = []
    size = 0  # records and tombstones pending (a batch counts its rows)
    covered: Cursor | None = None
    for item in connector.pull(stream, cursor):
        if isinstance(item, _ROW_ITEMS):
            pending.append(item)
            size += len(item) if isinstance(item, RecordBatch) else 1
        elif isinstance(item, Checkpoint):
            if beat is not None:
                beat()
            covered = item.cursor if move_cursor else None
            if transaction.size + size >= COMMIT_EVERY:
                transaction.add(rows, pending, covered, size)
                transaction.commit()
                pending, size, covered = [], 0, None
        elif isinstance(item, Summary):
            pulled.summary = item
    # a pull ends with a checkpoint; rows after it (if any) are stored and read again later
    transaction.add(rows, pending, covered, size)
    return pulled


def _saved_cursors(store: Store, crm: str) -> dict[str, Cursor]:
    """The connector's cursors as saved by the last committed pages, by stream (a stream
    missing has never been pulled: a full load)."""
    with store.session() as session:
        saved = session.exec(select(SyncCursor).where(col(SyncCursor.connector) == crm))
        return {
            cursor.object: Cursor(
                cursor.value,
                frozenset(cursor.ids_at_value),
                cursor.resume,
                cursor.read_at,
                cursor.archive_read_at,
            )
            for cursor in saved
        }


def _table_of(connector: Connector, stream: str) -> Table:
    """The table ``stream`` of ``connector`` is mirrored into."""
    return table_of(ENTITY_TABLES[connector.streams[stream].entity])


def _resuming(cursor: Cursor) -> bool:
    """Whether ``cursor`` goes on with a first load a stopped run began (its rows are new)."""
    return cursor.value is None and cursor.resume is not None


class _FirstLoads:
    """The tables a mirror stage loads first (empty when it began) and their indexes."""

    def __init__(
        self,
        store: Store,
        tables: Iterable[Table],
        carried: Mapping[str, set[str]],
        later: tuple[list[Table], Collection[str]] | None = None,
    ) -> None:
        """Decide which of ``tables`` are first loaded and drop their secondary indexes; build
        those of the others that a run killed mid-load left unbuilt. ``carried``: the columns
        of each table the records fill (by table name); ``later``: a list, and the names of
        tables whose indexes `finish` leaves unbuilt, adding those tables to the list."""
        self._store = store
        self._later = later
        self._hashes: dict[str, list[np.ndarray]] = {}  # of the ids stored while keyless
        named = {table.name: table for table in tables}
        with store.session() as session:
            empty = store.empty_tables(session, named.values())
            self._loading = {name: table for name, table in named.items() if name in empty}
            for table in self._loading.values():
                store.drop_indexes(
                    session,
                    table,
                    new_rows=_new_row_sets(table),
                    carried=carried.get(table.name, set()),
                )
            loaded = [table for name, table in named.items() if name not in self._loading]
            store.build_indexes(session, loaded)

    def first(self, table: Table) -> bool:
        """Whether ``table`` is first loaded this stage."""
        return table.name in self._loading

    def ids_stored(self, table: Table, ids: pl.Series) -> None:
        """Note the ids of rows stored while ``table``'s key is away (`Store.keyless`), as
        hashes (8 bytes an id: 80 MB for the reference org's 10M activities)."""
        # a row without an id is refused: its null is no id given twice
        self._hashes.setdefault(table.name, []).append(ids.drop_nulls().hash().to_numpy())

    def finish(self) -> None:
        """Build the secondary indexes of every table loaded. A table whose key is left to the
        caller but which was given an id twice has its key built now (its last row kept):
        else the score stage, reading the history while the key is built behind it, would
        count that activity twice."""
        if not self._loading:
            return
        now = list(self._loading.values())
        twice = [table for table in now if _given_twice(self._hashes.get(table.name, []))]
        self._hashes = {}
        if self._later is not None:
            unbuilt, names = self._later
            unbuilt.extend(table for table in now if table.name in names)
            now = [table for table in now if table.name not in names]
        with self._store.session() as session:
            for table in twice:
                self._store.build_key(session, table)
            self._store.build_indexes(session, now, analyze=True)
        self._loading = {}


def _given_twice(hashes: Sequence[np.ndarray]) -> bool:
    """Whether two of the ids ``hashes`` were made from may be the same (a collision of
    different ids says yes: a key built sooner, no more)."""
    if not hashes:
        return False
    held = np.sort(np.concatenate(hashes))
    return bool((held[1:] == held[:-1]).any())


class _Transaction:
    """The stage's next transaction: parts of one or more streams' pulls, each a run of items
    and the cursor that covers them (None: no cursor moves with them), committed together.

    On PostgreSQL its statements run in a thread of their own (`_Writer`) as each part comes, so
    the database server stores a stream's rows while the next stream is pulled; a commit goes on
    while the pull does, one at a time. On SQLite a part is stored when its transaction commits:
    SQLite works in this process, and sqlite3 lets go of the interpreter lock for every row it
    steps, so a thread storing rows while the pull holds the lock would wait out the switch
    interval (5 ms) a row; and a transaction left open across pulls would hold the database's one
    write lock from the run lock's heartbeat.
    """

    def __init__(
        self,
        store: Store,
        crm: str,
        now: datetime,
        sort: Callable[[Session], None] | None = None,
    ) -> None:
        self._store = store
        self._crm = crm
        self._now = now
        self._sort = sort  # run in each transaction that stored rows, after them
        self._writer = _Writer(store) if store.dialect == "postgresql" else None
        self._parts: list[tuple[_StreamRows, list[Record | RecordBatch | Tombstone]]] = []
        self._cursors: dict[str, Cursor] = {}
        self._streams: set[str] = set()  # streams with rows in this transaction
        self._committing: list[tuple[set[str], Future[None]]] = []  # commits under way
        self._failed = False  # a commit failed (on SQLite; the writer keeps its own)
        self.size = 0  # records and tombstones held

    def add(
        self,
        rows: _StreamRows,
        items: list[Record | RecordBatch | Tombstone],
        cursor: Cursor | None,
        size: int,
    ) -> None:
        """``items`` of ``rows``' stream (``size`` records and tombstones, a batch counting its
        rows), and the cursor that covers them, to commit together."""
        if items:
            self._streams.add(rows.stream)
            self.size += size
            if self._writer is None:
                self._parts.append((rows, items))
            else:
                self._writer.send(partial(rows.store, items=items))
        if cursor is not None:
            self._cursors[rows.stream] = cursor

    def holds_rows_of(self, stream: str) -> bool:
        """Whether rows of ``stream`` are not committed yet."""
        committing = (s for s, done in self._committing if not done.done())
        return stream in self._streams or any(stream in streams for streams in committing)

    def commit(self) -> None:
        """Store every part in order and save every cursor, in one transaction (on PostgreSQL,
        once the commit before it is done, without waiting for this one: `settle`)."""
        parts, cursors, streams = self._parts, self._cursors, self._streams
        self._parts, self._cursors, self._streams, self.size = [], {}, set(), 0
        fields = {stream: _cursor_fields(cursor) for stream, cursor in cursors.items()}

        def save(session: Session) -> None:
            self._store.set_cursors(session, self._crm, fields, self._now)
            if streams and self._sort is not None:
                self._sort(session)

        if not streams and not cursors:
            return
        if self._writer is not None:
            for _, done in self._committing:  # one commit under way at a time
                done.result()
            self._committing = [(streams, self._writer.commit(save))]
            return
        try:
            with self._store.session() as session:
                self._store.commit_lazily(session)
                for rows, items in parts:
                    rows.store(session, items=items)
                save(session)
        except BaseException:
            self._failed = True
            raise

    def settle(self) -> None:
        """Wait for every statement sent; raise the first error."""
        if self._writer is not None:
            self._writer.settle()
        self._committing = []

    def stop(self) -> bool:
        """The stage is stopping on an error: commit what the transaction holds (each part whole,
        with the cursor that covers it), as if each stream had committed its own, unless one of
        its statements failed: roll back then. Whether it committed."""
        failed = self._failed or (self._writer is not None and self._writer.failed)
        if not failed:
            with suppress(Exception):  # the error that stops the stage is the one raised
                self.commit()
                self.settle()
                return True
        if self._writer is not None:
            self._writer.abandon()
        return False

    def close(self) -> None:
        """End the writer's thread, once everything sent is done."""
        if self._writer is not None:
            self._writer.close()


class _Writer:
    """A thread of its own running a stage's statements in order, a transaction at a time (see
    `_Transaction`); the first statement to fail stops the rest, and the stage raises it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mirror-writer")
        self._open: ExitStack | None = None  # the transaction under way
        self._session: Session | None = None
        self._error: BaseException | None = None
        self._last: Future[None] | None = None

    def send(self, statements: Callable[[Session], None]) -> Future[None]:
        """Run ``statements`` in the open transaction (one is begun if none is)."""
        self._raise()
        self._last = self._pool.submit(self._run, statements, False)
        return self._last

    def commit(self, statements: Callable[[Session], None]) -> Future[None]:
        """Run ``statements`` in the open transaction, then commit it."""
        self._raise()
        self._last = self._pool.submit(self._run, statements, True)
        return self._last

    @property
    def failed(self) -> bool:
        """Whether a statement failed (what was sent after it was not run)."""
        return self._error is not None

    def settle(self) -> None:
        """Wait for everything sent; raise the first error."""
        if self._last is not None:
            self._last.result()
        self._raise()

    def abandon(self) -> None:
        """Roll back the open transaction once everything sent before is done (a commit under
        way completes: its rows and cursor are whole), and end the thread."""
        self._pool.submit(self._end, _Abandoned())
        self.close()

    def close(self) -> None:
        """End the thread once everything sent is done."""
        self._pool.shutdown(wait=True)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self, statements: Callable[[Session], None], commit: bool) -> None:
        if self._error is not None:
            return
        try:
            if self._session is None:
                self._open = ExitStack()
                self._session = self._open.enter_context(self._store.session())
                self._store.commit_lazily(self._session)
            statements(self._session)
            if commit:
                self._end(None)
        except BaseException as error:  # raised by the stage, in its own thread
            self._error = error
            self._end(error)

    def _end(self, error: BaseException | None) -> None:
        """Commit the open transaction, or roll it back after ``error``."""
        scope, self._open, self._session = self._open, None, None
        if scope is None:
            return
        if error is None:
            scope.close()
            return
        with suppress(BaseException):  # the error that ended it is raised by the stage
            scope.__exit__(type(error), error, error.__traceback__)


class _Abandoned(Exception):
    """The stage stopped before its statements were all run."""


class _StreamRows:
    """One stream's records stored as rows of its table, in the caller's transaction."""

    def __init__(
        self,
        store: Store,
        table: Table,
        now: datetime,
        pulled: StreamPull,
        *,
        new: bool,
        ids: Callable[[Table, pl.Series], None],
    ) -> None:
        self._store = store
        self._table = table
        self._ids = ids  # told the ids of the rows stored while the table's key is away
        self._now = now
        self._pulled = pulled
        self._new = new  # rows go in as new (COPY) until one turns out to be held already
        self._shapes: dict[tuple[str, ...], _Shape] = {}
        self._worked_out: dict[str, Any] | None = None  # `_worked_out_defaults`, once needed
        [stamp] = store.adapters(table, ["synced_at"])
        self._synced = now if stamp is None else stamp(now)
        [self._adapt_stamp] = store.adapters(table, ["crm_modified_at"])

    @property
    def stream(self) -> str:
        """The stream whose records these are."""
        return self._pulled.stream

    def store(self, session: Session, *, items: Sequence[Record | RecordBatch | Tombstone]) -> None:
        """The items' rows and tombstones, in order: each run of records, then the tombstones
        that follow it together (`_bury`)."""
        if self._store.keyless(self._table) and _by_key(items):
            self._store.build_key(session, self._table)  # else each lookup reads the table
        held = _held_versions(self._store, session, self._table, items)
        for buried, run in groupby(items, key=lambda item: isinstance(item, Tombstone)):
            if not buried:
                self._write_run(session, cast("list[Record | RecordBatch]", list(run)), held)
                continue
            tombstones = cast("list[Tombstone]", list(run))
            buried = _bury(session, self._table, tombstones, self._now)
            self._pulled.tombstones += len(buried)
            self._pulled.events.extend(map(_tombstone_event, buried))

    def _write_run(
        self, session: Session, run: Sequence[Record | RecordBatch], held: Mapping[str, Any]
    ) -> None:
        """Store records between two tombstones: `Record`s row-wise, batches column-wise
        (`sync.mirror_batches`); an id given twice is stored once, as its latest version (by the
        key's build, while the table's key is away)."""
        if not any(isinstance(item, RecordBatch) for item in run):
            self._write(session, cast("Sequence[Record]", run), held)
            return
        keyless = self._store.keyless(self._table)
        for part in delivered_parts(run) if keyless else latest_parts(run):
            if isinstance(part, list):
                self._write(session, part, held)
                continue
            self._note_ids(part["id"])
            keys = tuple(part.columns[2:])  # after id and modified_at: a `Record`'s values
            shape = self._shapes.get(keys) or self._shape(keys)
            ready = shape.ready_frame(part, keyed=not keyless)
            if ready is None:
                self._store_rows(session, shape, shape.frame_rows(part, self._pulled.skip))
            else:
                self._store_frame(session, shape, ready)

    def _fresh(self, records: Sequence[Record], held: Mapping[str, Any]) -> Sequence[Record]:
        """The records less re-reads of versions the mirror holds already (same id, modified
        no later); their stamps are compared as the database holds them."""
        reread = [
            at
            for at, record in enumerate(records)
            if record.reread and held.get(record.id) is not None
        ]
        if not reread:
            return records
        # a stamp the database cannot hold becomes None: its record is stored (and skipped there)
        mine = _adapted([records[at].modified_at for at in reread], self._adapt_stamp, "", {})
        stale = {
            at
            for at, stamp in zip(reread, mine, strict=True)
            if stamp is not None and held[records[at].id] >= stamp
        }
        self._pulled.reread_skipped += len(stale)
        return [record for at, record in enumerate(records) if at not in stale]

    def _write(
        self, session: Session, records: Sequence[Record], held: Mapping[str, datetime]
    ) -> None:
        """Store the records that can be, a statement per field set; count the others."""
        if held:
            records = self._fresh(records, held)
        latest = {record.id: record for record in records}  # given twice: the latest version
        self._note_ids(pl.Series(list(latest), dtype=pl.String))
        groups: dict[tuple[str, ...], list[Record]] = {}
        for record in latest.values():
            groups.setdefault(tuple(record.values), []).append(record)
        for keys, group in groups.items():
            shape = self._shapes.get(keys) or self._shape(keys)
            self._store_rows(session, shape, shape.rows(group, self._pulled.skip))

    def _note_ids(self, ids: pl.Series) -> None:
        """Tell the ids of rows about to be stored while the table's key is away."""
        if self._store.keyless(self._table):
            self._ids(self._table, ids)

    def _store_rows(self, session: Session, shape: _Shape, rows: list[tuple[Any, ...]]) -> None:
        """Write rows of one shape (its fixed values given once); count those stored and those
        the database refused."""
        written = self._store.write_rows(
            session, self._table, shape.columns, rows, **self._how(session, shape)
        )
        self._count(shape, written)

    def _store_frame(self, session: Session, shape: _Shape, ready: pl.DataFrame) -> None:
        """`_store_rows` of a batch's rows made ready a column at a time (`_Shape.ready_frame`)."""
        how = self._how(session, shape)
        self._count(shape, self._store.write_frame(session, self._table, ready, **how))

    def _how(self, session: Session, shape: _Shape) -> dict[str, Any]:
        """How rows of ``shape`` are written: its fixed values, what an update sets, whether
        they go in as new."""
        if self._worked_out is None:
            self._worked_out = _worked_out_defaults(session, self._table)
        fixed = shape.fixed_values(self._synced, self._worked_out)
        return {"fixed": fixed, "update": shape.update, "flags": shape.flags, "new": self._new}

    def _count(self, shape: _Shape, written: Written) -> None:
        """Count the rows stored and skip those the database refused, with its reason."""
        self._new = self._new and written.all_new
        self._pulled.stored += written.stored
        for row, reason in written.refused:
            self._pulled.skip(row[shape.id_at], reason)

    def _shape(self, keys: tuple[str, ...]) -> _Shape:
        shape = self._shapes[keys] = _shape_of(self._store.dialect, self._table, keys)
        return shape


# shapes made so far, by dialect, table and field set: a stream delivers the same few field sets
# every cycle, and working one out costs more than a small cycle's rows
_SHAPES: dict[tuple[str, Table, tuple[str, ...]], _Shape] = {}


def _shape_of(dialect: str, table: Table, keys: tuple[str, ...]) -> _Shape:
    """The shape of records with fields ``keys`` in ``table`` on ``dialect``, made once."""
    shape = _SHAPES.get((dialect, table, keys))
    if shape is None:
        shape = _SHAPES[dialect, table, keys] = _Shape.of(dialect, table, keys)
    return shape


@dataclass(frozen=True, eq=False)
class _Shape:
    """How records carrying one set of fields become rows of one table, worked out once.

    A row is the record's own columns, ``crm_owned`` (on tables that keep our fields as the CRM
    holds them), the id and its modification stamp; what is the same in every row goes apart
    (``fixed``): when it was synced, what the mirror sets and its flags, then the defaults a new
    row gets (``update`` leaves those out, so a conflict keeps what the row holds), those the
    database works out last (``worked_out``, given by the stage: `_worked_out_defaults`). A row
    inserted gets its flags' defaults; on a table keeping our fields, an update sets
    ``link_pending`` only when a value other than ours and the stamps changes, and
    ``owned_changed`` when ours do, elsewhere every update sets ``link_pending`` (``flags``).
    """

    columns: tuple[str, ...]
    fixed: tuple[str, ...]
    update: tuple[str, ...]
    # flag column -> the columns whose change sets it (None: every update)
    flags: Mapping[str, tuple[str, ...] | None]
    picked: tuple[str, ...]  # the record's fields stored in columns of their own
    adapters: tuple[Adapter | None, ...]  # one per picked field
    owned: tuple[str, ...] | None  # fields kept in crm_owned; None where the table has none
    owned_text: Adapter
    none_owned: Any  # ``crm_owned`` of a record that holds none of our fields (most, at first)
    stamp: Adapter
    tail: tuple[Any, ...]  # the fixed values after ``synced_at``, but those worked out
    worked_out: tuple[str, ...]  # the columns whose default the database works out
    required: tuple[tuple[str, int | None], ...]  # (column, picked position or None)
    vocabularies: tuple[tuple[str, int, tuple[str, ...]], ...]  # (column, position, allowed)
    id_at: int

    @classmethod
    def of(cls, dialect: str, table: Table, keys: Sequence[str]) -> _Shape:
        """The shape of records with fields ``keys`` in ``table`` on ``dialect``."""
        owned = WRITTEN_BACK if "crm_owned" in table.c else None
        picked = tuple(
            k
            for k in dict.fromkeys(keys)
            if k in table.c and k not in _OWN_COLUMNS and k not in (owned or ())
        )
        sets = [name for name in _MIRROR_SETS if name in table.c]
        flags = [name for name in _FLAGS if name in table.c]
        columns = (*picked, *(["crm_owned"] if owned else []), "id", "crm_modified_at")
        update = (*columns, "synced_at", *sets, *flags)
        defaults = _new_row_defaults(table, update)
        fixed = (*update[len(columns) :], *defaults)
        adapters = adapters_of(dialect, table, (*columns, *fixed))
        tail = [_MIRROR_SETS[name] for name in sets] + [_default(table, name) for name in flags]
        tail += defaults.values()
        owned_text = (owned and adapters[columns.index("crm_owned")]) or json.dumps
        return cls(
            columns=columns,
            fixed=fixed,
            update=update,
            flags=_flags(table, picked, sets),
            picked=picked,
            adapters=adapters[: len(picked)],
            owned=owned,
            owned_text=owned_text,
            none_owned=owned_text({}),
            stamp=adapters[columns.index("crm_modified_at")] or _as_is,
            tail=tuple(
                v if v is None or a is None else a(v)
                for v, a in zip(tail, adapters[len(columns) + 1 :], strict=True)
            ),
            worked_out=tuple(
                c.name for c in table.c if c.name not in update and _worked_out(c) is not None
            ),
            required=_required(table, picked),
            vocabularies=tuple(
                (name, picked.index(name), allowed)
                for name, allowed in _VOCABULARIES.get(table.name, {}).items()
                if name in picked
            ),
            id_at=columns.index("id"),
        )

    def fixed_values(self, synced: Any, worked_out: Mapping[str, Any]) -> dict[str, Any]:
        """The values of the ``fixed`` columns, ``synced`` (made ready) the stamp of the sync,
        and of the ``worked_out`` ones (`_worked_out_defaults`)."""
        fixed = dict(zip(self.fixed, (synced, *self.tail), strict=True))
        return fixed | {name: worked_out[name] for name in self.worked_out}

    def rows(
        self, records: Sequence[Record], skip: Callable[[str, str], None]
    ) -> list[tuple[Any, ...]]:
        """The records as rows of plain values ready for the database, built a column at a
        time; a record that cannot be stored is skipped with its reason."""
        values = [record.values for record in records]
        bad: dict[int, str] = {}  # position -> why that record cannot be stored
        columns = [
            _adapted([v[key] for v in values], adapt, key, bad)
            for key, adapt in zip(self.picked, self.adapters, strict=True)
        ]
        self._check(columns, len(values), bad)
        if self.owned is not None:
            columns.append(_adapted(values, self._owned, "crm_owned", bad))
        stamps = _adapted([r.modified_at for r in records], self.stamp, "modified", bad)
        return _kept(columns, [record.id for record in records], stamps, bad, skip)

    def frame_rows(
        self, frame: pl.DataFrame, skip: Callable[[str, str], None]
    ) -> list[tuple[Any, ...]]:
        """`rows` of a batch's frame (``id``, ``modified_at``, then the values), its columns
        adapted a column at a time where `plain_column` can."""
        bad: dict[int, str] = {}
        columns = [
            _adapted_column(frame[key], adapt, key, bad)
            for key, adapt in zip(self.picked, self.adapters, strict=True)
        ]
        self._check(columns, frame.height, bad)
        if self.owned is not None:
            columns.append(self._owned_column(frame, bad))
        stamps = _adapted_column(frame["modified_at"], self.stamp, "modified", bad)
        return _kept(columns, frame["id"].to_list(), stamps, bad, skip)

    def ready_frame(self, frame: pl.DataFrame, *, keyed: bool = True) -> pl.DataFrame | None:
        """A batch's frame as its rows' columns made ready at once (`plain_series`), named
        as the table's, in key order when the table is ``keyed`` (neighbouring rows share pages
        of its index), else as delivered (the key built later keeps an id's last row); None
        when a column needs adapting value by value or a row cannot be stored (`frame_rows`
        then notes which, and why)."""
        made = SharedStamps()
        ready = [
            made.plain(frame[key], adapt)
            for key, adapt in zip(self.picked, self.adapters, strict=True)
        ]
        if self.owned is not None:
            ready.append(self._owned_series(frame))
        ready += [frame["id"], made.plain(frame["modified_at"], self.stamp)]
        columns = [c for c in ready if c is not None]
        if len(columns) < len(ready) or not self._storable(columns):
            return None
        named = pl.DataFrame([c.alias(name) for c, name in zip(columns, self.columns, strict=True)])
        if not keyed or named["id"].is_sorted():
            return named
        return named.sort("id", maintain_order=True)

    def _storable(self, columns: Sequence[pl.Series]) -> bool:
        """Whether every row of ``columns`` (`ready_frame`'s) has its required values, each
        inside its vocabulary."""
        for _, at in self.required:
            if at is None or columns[at].null_count():
                return False
        return all(
            columns[at].drop_nulls().is_in(list(allowed)).all()
            for _, at, allowed in self.vocabularies
        )

    def _owned_series(self, frame: pl.DataFrame) -> pl.Series | None:
        """``crm_owned`` of every row of a frame (`_owned_column`); None if a row's cannot be
        stored."""
        if not any(frame[name].null_count() < frame.height for name in self._present(frame)):
            return pl.repeat(self.none_owned, frame.height, dtype=pl.String, eager=True)
        bad: dict[int, str] = {}
        texts = self._owned_column(frame, bad)
        return None if bad else pl.Series(texts, dtype=pl.String)

    def _present(self, frame: pl.DataFrame) -> list[str]:
        """Those of our fields a frame holds columns of."""
        return [name for name in self.owned or () if name in frame.columns]

    def _owned_column(self, frame: pl.DataFrame, bad: dict[int, str]) -> list[Any]:
        """``crm_owned`` of every row of a frame: one text for the rows holding none of our
        fields, each other row's own."""
        assert self.owned is not None
        column = [self.none_owned] * frame.height
        present = self._present(frame)
        if not present:
            return column
        held = frame.select(pl.any_horizontal(pl.col(present).is_not_null())).to_series()
        rows = held.arg_true().to_list()
        owned = list(frame.select(present).filter(held).iter_rows(named=True))
        noted: dict[int, str] = {}
        for at, text in enumerate(_adapted(owned, self._owned, "crm_owned", noted)):
            column[rows[at]] = text
        for at, reason in noted.items():
            bad.setdefault(rows[at], reason)
        return column

    def _owned(self, values: Mapping[str, Any]) -> Any:
        """Our fields as the CRM holds them, as ``crm_owned`` stores them."""
        assert self.owned is not None
        owned = {k: plain_value(v) for k in self.owned if (v := values.get(k)) is not None}
        return self.owned_text(owned) if owned else self.none_owned

    def _check(self, columns: Sequence[list[Any]], count: int, bad: dict[int, str]) -> None:
        """Note the records missing a required value or with one outside its vocabulary."""
        for name, at in self.required:
            if at is None:
                for position in range(count):
                    bad.setdefault(position, f"no {name}")
            elif None in columns[at]:
                for position, value in enumerate(columns[at]):
                    if value is None:
                        bad.setdefault(position, f"no {name}")
        for name, at, allowed in self.vocabularies:
            for position, value in enumerate(columns[at]):
                if value is not None and value not in allowed:
                    reason = f"{name} {value!r} is not one of {', '.join(allowed)}"
                    bad.setdefault(position, reason)


def _kept(
    columns: Sequence[list[Any]],
    ids: list[str],
    stamps: list[Any],
    bad: Mapping[int, str],
    skip: Callable[[str, str], None],
) -> list[tuple[Any, ...]]:
    """Rows of ``columns`` with each record's id and stamp last, less those noted ``bad``
    (each skipped with its reason)."""
    rows = list(zip(*columns, ids, stamps, strict=True))
    if not bad:
        return rows
    for at, reason in bad.items():
        skip(ids[at], reason)
    return [row for at, row in enumerate(rows) if at not in bad]


def _adapted(raw: list[Any], adapt: Adapter | None, name: str, bad: dict[int, str]) -> list[Any]:
    """``raw`` values made ready for the database by ``adapt`` (None stays None); a value it
    refuses becomes None, its position noted in ``bad`` with the reason."""
    if adapt is None:
        return raw
    try:
        return adapt_column(adapt, raw)
    except _BAD_VALUES:
        pass
    adapted: list[Any] = []
    for position, value in enumerate(raw):
        try:
            adapted.append(None if value is None else adapt(value))
        except _BAD_VALUES as error:
            bad.setdefault(position, f"{name}: {error}")
            adapted.append(None)
    return adapted


def _adapted_column(
    values: pl.Series, adapt: Adapter | None, name: str, bad: dict[int, str]
) -> list[Any]:
    """A batch's column made ready for the database: at once where `plain_column` can, else
    value by value (`_adapted`)."""
    plain = plain_column(values, adapt)
    return _adapted(values.to_list(), adapt, name, bad) if plain is None else plain


def _as_is(value: Any) -> Any:
    return value


def _flags(
    table: Table, picked: Sequence[str], sets: Sequence[str]
) -> dict[str, tuple[str, ...] | None]:
    """What sets each flag when a row of ``table`` is updated: on a table keeping our fields, a
    change of the values other than ours (``link_pending``) or of ours (``owned_changed``);
    elsewhere every update sets ``link_pending`` (None)."""
    if LINK_PENDING not in table.c:
        return {}
    if "crm_owned" not in table.c:
        return {LINK_PENDING: None}
    data = (*picked, *sets)
    return {LINK_PENDING: data, OWNED_CHANGED: ("crm_owned",)}


def _default(table: Table, name: str) -> Any:
    """The scalar default of one of ``table``'s columns."""
    return table.c[name].default.arg  # type: ignore[union-attr]


def _carried(connector: Connector) -> dict[str, set[str]]:
    """The columns of each mirror table that the streams' records fill (their values vary by
    record), by table name."""
    carried: dict[str, set[str]] = {}
    for name, stream in connector.streams.items():
        columns = carried.setdefault(_table_of(connector, name).name, set())
        columns.update(m.ours for m in stream.fields)
        columns.update(stream.constants)
    return carried


def _new_row_sets(table: Table) -> dict[str, Any]:
    """What every row a first load inserts into ``table`` holds of the mirror's own columns: what
    it sets, and its flags' defaults (what decides which partial indexes the load leaves)."""
    flags = {k: v for k, v in _new_row_defaults(table, ()).items() if k in _FLAGS}
    return {**_MIRROR_SETS, **flags}


def _new_row_defaults(table: Table, given: Sequence[str]) -> dict[str, Any]:
    """The scalar defaults of the columns a row does not give (a new row gets them)."""
    return {
        column.name: column.default.arg  # type: ignore[attr-defined]
        for column in table.c
        if column.name not in given and column.default is not None and column.default.is_scalar
    }


def _worked_out(column: Column[Any]) -> Any:
    """The SQL expression that is ``column``'s default, if its default is one."""
    default: Any = column.default
    return default.arg if default is not None and default.is_clause_element else None


def _worked_out_defaults(session: Session, table: Table) -> dict[str, Any]:
    """The values the database works out for the columns of ``table`` whose default is a SQL
    expression (an activity's scoring cycle: `sync.state.NEXT_CYCLE`), once for a stream's
    pull: they are the same for every row it inserts, and COPY and the bulk upserts take values
    only."""
    expressions = {c.name: e for c in table.c if (e := _worked_out(c)) is not None}
    if not expressions:
        return {}
    row = session.execute(select(*(e.label(n) for n, e in expressions.items()))).one()
    return dict(row._mapping)


def _required(table: Table, picked: Sequence[str]) -> tuple[tuple[str, int | None], ...]:
    """The columns a record must give a value (in table order) and where they sit among the
    picked fields (None: not delivered at all); not those the database works out."""
    return tuple(
        (column.name, picked.index(column.name) if column.name in picked else None)
        for column in table.c
        if not column.nullable
        and not column.primary_key
        and column.name not in _OWN_COLUMNS
        and _worked_out(column) is None
    )


def _by_key(items: Iterable[Record | RecordBatch | Tombstone]) -> bool:
    """Whether storing ``items`` looks rows up by id: a tombstone, a record read again."""
    return any(isinstance(i, Tombstone) or (isinstance(i, Record) and i.reread) for i in items)


def _held_versions(
    store: Store,
    session: Session,
    table: Table,
    items: Iterable[Record | RecordBatch | Tombstone],
) -> dict[str, Any]:
    """The modification stamps the mirror holds for the records re-read among ``items``, as
    the database holds them (compared with stamps adapted alike: `_StreamRows._stamp`)."""
    reread = [i.id for i in items if isinstance(i, Record) and i.reread]
    return store.held_values(session, table, "crm_modified_at", reread) if reread else {}


def _cursor_fields(cursor: Cursor) -> dict[str, Any]:
    """A checkpoint's cursor as `Store.set_cursors` saves it."""
    return {
        "value": cursor.value,
        "ids_at_value": cursor.ids,
        "resume": cursor.resume,
        "read_at": cursor.read_at,
        "archive_read_at": cursor.archive_read_at,
    }


def _bury(
    session: Session, table: Table, tombstones: Sequence[Tombstone], now: datetime
) -> list[Tombstone]:
    """Mark records deleted; a merged one names its survivor and hands it its dependants. Each
    statement runs once for all the tombstones, a row of parameters each, in their order (a
    chain of merges repoints as one by one would: a dependant handed to a survivor merged later
    in the list goes on to that one's survivor). A tombstone is applied to its row, and given
    back to be counted and logged, only when it changes the row as the tombstones before it
    left it: the same deletions come again (an archive read lists what its overlap window holds
    again; HubSpot names a survivor's merged records each time the survivor is read), and a
    record the mirror holds so already, or never held, is not deleted again. Every merge hands
    on its dependants, as often as it comes: rows may point at a record the mirror never held
    (skipped as dirty), and a chain listed out of order is repaired when it comes again."""
    state = _buried_as(session, table, [t.id for t in tombstones])
    changed = []
    for tombstone in tombstones:
        buried = (True, _survivor(tombstone))
        if tombstone.id in state and state[tombstone.id] != buried:
            state[tombstone.id] = buried
            changed.append(tombstone)
    if changed:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("gone"))
            .values(
                is_deleted=True, merged_into=bindparam("survivor"), synced_at=now, **_pending(table)
            ),
            [{"gone": t.id, "survivor": _survivor(t)} for t in changed],
        )
    merged = [{"gone": t.id, "survivor": _survivor(t)} for t in tombstones if _survivor(t)]
    _hand_on(session, table, merged)
    return changed


def _survivor(tombstone: Tombstone) -> str | None:
    """The record a merged one went into (None: deleted, not merged)."""
    return tombstone.merged_into if tombstone.reason == "merged" else None


def _buried_as(session: Session, table: Table, ids: Sequence[str]) -> dict[str, tuple[bool, Any]]:
    """Each of ``ids`` the table holds: whether it is deleted, and the survivor it names."""
    columns = (table.c.id, table.c.is_deleted, table.c.merged_into)
    return {
        record_id: (bool(deleted), survivor)
        for chunk in in_chunks(dict.fromkeys(ids))
        for record_id, deleted, survivor in session.execute(
            select(*columns).where(table.c.id.in_(chunk))
        )
    }


def _hand_on(session: Session, table: Table, merged: Sequence[Mapping[str, Any]]) -> None:
    """The dependants of merged records handed to their survivors, and a merged account's
    current score dropped."""
    if not merged:
        return
    for dependant, column in _REFERENCES.get(table.name, ()):
        target = table_of(dependant)
        session.execute(
            update(target)
            .where(target.c[column] == bindparam("gone"))
            .values({column: bindparam("survivor"), **_pending(target)}),
            merged,
        )
    if table.name == "account":
        scores = table_of(CurrentScore)
        ids = [{"gone": m["gone"]} for m in merged]
        session.execute(delete(scores).where(scores.c.account_id == bindparam("gone")), ids)


def _pending(table: Table) -> dict[str, bool]:
    """The link stage's flag, on the tables that carry it."""
    return {LINK_PENDING: True} if LINK_PENDING in table.c else {}


def _tombstone_event(tombstone: Tombstone) -> MirrorEvent:
    """The run-log line of a tombstone."""
    reason = tombstone.reason
    if tombstone.merged_into:
        reason = f"merged into {tombstone.merged_into}"
    return MirrorEvent(tombstone.stream, tombstone.id, "pulled", reason)
