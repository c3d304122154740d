"""The one protocol both CRM connectors follow, and the small values that cross it.

A pull is a Singer-style message stream: `Record`s and `Tombstone`s in the order the CRM gave
them, and now and then a `Checkpoint` whose cursor covers everything before it. Save the cursor
in the same transaction as those rows and a stopped run resumes there without gaps or
duplicates. Cursors are closed lower bounds: a record modified exactly at ``value`` is read
again unless its id is in ``ids``, so two records sharing the last timestamp are never split.
A full load is read in the CRM's own order, not by modification time, so its checkpoints also
carry ``resume``, the CRM's page token: hand the cursor back as it is and the load goes on from
that page (a cursor with ``resume`` is not a lower bound yet). Commits land late (a record's
stamp is taken before its transaction commits), so an incremental pull reads an overlap window
behind the bound again (`Cursor.overlap`): what it finds there is delivered with ``reread``
set, for the mirror to de-duplicate by id and modification time (records at the bound whose id
the cursor holds were delivered as they are, and are left out). Every pull ends with one
`Summary`: what it delivered, what it had to skip or could not convert, and what it cost.
A connector may deliver a page of live records as one `RecordBatch` instead, its records as
columns (Salesforce does so for Bulk API pages); `expanded` turns batches back into `Record`s
for whoever reads a pull row by row, and `records` does so too.

    for item in connector.pull("Account", saved_cursor):
        match item:
            case Record(): upsert(item)  # item.warnings: values that could not be converted
            case RecordBatch(): upsert_columns(item.frame)  # or: for record in item.records()
            case Tombstone(): mark_deleted(item)
            case Checkpoint(): commit(item.cursor)
            case Summary(): log(item)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import polars as pl

    from connectors.streams import Stream

__all__ = [
    "FULL_LOAD",
    "RAW_LIMIT",
    "Checkpoint",
    "Connector",
    "Cursor",
    "Entity",
    "Item",
    "Record",
    "RecordBatch",
    "SchemaChange",
    "SchemaGap",
    "SchemaReport",
    "SchemaSpec",
    "Summary",
    "Tombstone",
    "Update",
    "Usage",
    "ValueWarning",
    "WriteResult",
    "expanded",
    "records",
]

Entity = Literal["account", "person", "activity", "opportunity", "user"]
RAW_LIMIT = 200  # characters of an unconvertible value a warning keeps


@dataclass(frozen=True)
class Cursor:
    """Where an incremental pull starts: at ``value`` (inclusive), minus the ``ids`` seen there.

    ``value`` None means a full load. ``resume`` (opaque, the connector's own) marks a full load
    stopped part way: the pull goes on from that page, and ``value`` and ``ids`` become the
    lower bound only once the load ends without one. ``read_at`` is when the pull that set the
    bound began reading, on the connector's clock; ``archive_read_at`` when a connector that
    lists deletions apart (HubSpot's recycle bin) last read that list.
    """

    value: datetime | None = None
    ids: frozenset[str] = frozenset()
    resume: str | None = None
    read_at: datetime | None = None
    archive_read_at: datetime | None = None

    def admits(self, stamp: datetime, record_id: str) -> bool:
        """Whether a record modified at ``stamp`` is new to whoever holds this cursor."""
        if self.value is None or stamp > self.value:
            return True
        return stamp == self.value and record_id not in self.ids

    def delivered(self, stamp: datetime, record_id: str) -> bool:
        """Whether this very version was delivered: modified at the bound, its id seen there
        (every change moves the stamp, so nothing about it can be new; it is not re-sent)."""
        return stamp == self.value and record_id in self.ids

    def advanced(self, stamp: datetime, record_id: str) -> Cursor:
        """The cursor once a record modified at ``stamp`` has been delivered too."""
        if self.value is None or stamp > self.value:
            return replace(self, value=stamp, ids=frozenset({record_id}))
        if stamp == self.value:
            return replace(self, ids=self.ids | {record_id})
        return self

    def resuming(self, resume: str | None) -> Cursor:
        """The same bound, going on from the page token ``resume`` (None: the load is done)."""
        return replace(self, resume=resume)

    def overlap(self, window: timedelta) -> datetime | None:
        """Where an incremental read starts: ``window`` behind the bound, or less when the
        pull that set the bound read long after it (a record stamped more than ``window``
        before that read had committed by then, so that read saw it)."""
        if self.value is None:
            return None
        start = self.value - window
        if self.read_at is not None:
            start = max(start, min(self.value, self.read_at - window))
        return start


FULL_LOAD = Cursor()  # the cursor of a first pull: every record


@dataclass(frozen=True, slots=True)
class ValueWarning:
    """A CRM value that could not be converted, so its field is None on the record."""

    field: str  # our field name
    raw: str  # the CRM's value as text, cut to `RAW_LIMIT` characters
    why: str


@dataclass(frozen=True, slots=True)
class Record:
    """A live record: our field names, typed values, datetimes aware in UTC.

    ``warnings`` names the values that could not be converted (they are None); ``reread`` marks
    a record read again inside the connector's overlap window behind the cursor, which the
    mirror de-duplicates by id and modification time.
    """

    stream: str
    id: str
    modified_at: datetime
    values: Mapping[str, Any]
    warnings: tuple[ValueWarning, ...] = ()
    reread: bool = False


@dataclass(frozen=True, eq=False)
class RecordBatch:
    """Live records of one page as columns, in the order the CRM gave them: what the same
    records would be as `Record`s, a row each.

    ``frame`` has ``id`` (text) and ``modified_at`` (datetimes aware in UTC) first, then a
    column per value under our field names, in the order a `Record`'s ``values`` would hold
    them; ``warnings`` holds the warnings of the rows that have any, by row position. A batch
    holds no record read again (`Record.reread`), and no id twice.
    """

    stream: str
    frame: pl.DataFrame
    warnings: Mapping[int, tuple[ValueWarning, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.frame.height)

    def records(self) -> Iterator[Record]:
        """The batch row by row, as `Record`s (their times in `datetime.UTC`, as a record's)."""
        names = self.frame.columns[2:]
        kinds = self.frame.dtypes
        zoned = {at for at, kind in enumerate(kinds) if getattr(kind, "time_zone", None) == "UTC"}
        for at, row in enumerate(self.frame.iter_rows()):
            if zoned:
                row = tuple(_in_utc(value) if n in zoned else value for n, value in enumerate(row))
            record_id, modified, *values = row
            fields = dict(zip(names, values, strict=True))
            yield Record(self.stream, record_id, modified, fields, self.warnings.get(at, ()))


def _in_utc(value: datetime | None) -> datetime | None:
    """A time polars gives in ``zoneinfo`` UTC, in `datetime.UTC`."""
    return None if value is None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A record that is gone: deleted, archived (HubSpot's recycle bin) or merged into another."""

    stream: str
    id: str
    deleted_at: datetime
    reason: Literal["deleted", "archived", "merged"]
    merged_into: str | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Every item of ``stream`` before this one is covered by ``cursor``: save it with them."""

    stream: str
    cursor: Cursor


@dataclass(frozen=True)
class Summary:
    """The last item of every pull: what it delivered, skipped and could not convert, and cost.

    ``warnings`` counts unconvertible values by "field: why"; ``skipped`` counts records left
    out by reason (no id, say); ``unmatched`` counts activities no mapping rule typed, by their
    CRM kind; ``sources`` names the APIs the stream was read from; ``calls`` is the API calls
    the pull made.
    """

    stream: str
    records: int = 0
    tombstones: int = 0
    reread: int = 0
    warnings: Mapping[str, int] = field(default_factory=dict)
    skipped: Mapping[str, int] = field(default_factory=dict)
    unmatched: Mapping[str, int] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    calls: int = 0


Item = Record | RecordBatch | Tombstone | Checkpoint | Summary


@dataclass(slots=True)
class Update:
    """Field values to write to one record, by our field names (owned fields and the owner).

    One a record written, a million on a first run: not frozen, which makes one four times as
    slow, so not hashable either. Never changed once made (one may be shared): `replace` makes
    another."""

    id: str
    values: Mapping[str, Any]


@dataclass(slots=True)
class WriteResult:
    """What became of one record's update, with the CRM's own error code and message.

    Not frozen, not hashable, never changed once made, as `Update`."""

    id: str
    status: Literal["ok", "retriable", "permanent"]
    code: str | None = None
    message: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        """Whether the values were written."""
        return self.status == "ok"


@dataclass(frozen=True)
class Usage:
    """API calls this run made and what is left of its budget (None where the CRM is silent)."""

    calls: int
    retries: int
    daily_used: int | None
    daily_limit: int | None
    budget: int | None
    budget_left: int | None


@dataclass(frozen=True)
class SchemaSpec:
    """What the fields we own must offer: the tier labels and the reason codes, from settings."""

    tier_labels: tuple[str, ...]
    reason_codes: tuple[str, ...]
    dispositions: tuple[str, ...] = ("Accepted", "Rejected", "Recycled")


@dataclass(frozen=True)
class SchemaChange:
    """One thing set-up found: created, repaired (and how), unchanged or in conflict."""

    object: str
    name: str
    action: Literal["created", "repaired", "unchanged", "conflict"]
    detail: str = ""


@dataclass(frozen=True)
class SchemaReport:
    """Everything one set-up run found, in order."""

    changes: tuple[SchemaChange, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        """Whether the run created or repaired anything."""
        return any(c.action in ("created", "repaired") for c in self.changes)

    def of(self, action: str) -> list[SchemaChange]:
        """The changes with one action."""
        return [c for c in self.changes if c.action == action]


@dataclass(frozen=True)
class SchemaGap:
    """A field we own that is not as writes need it (set-up puts it right): ``problem`` is
    "missing", "is a string field; Handoff needs double", or "lacks Hot, Cold" (picklist values
    the settings use)."""

    object: str
    name: str
    label: str
    problem: str


class Connector(Protocol):
    """One CRM, as the sync pipeline sees it."""

    crm: str

    @property
    def streams(self) -> Mapping[str, Stream]:
        """The streams this CRM offers, by name (see `connectors.streams`)."""
        ...

    def pull(self, stream: str, cursor: Cursor = FULL_LOAD) -> Iterator[Item]:
        """Records changed since ``cursor`` (all when it is empty), tombstones, checkpoints,
        and a `Summary` last."""
        ...

    def find(self, stream: str, field: str, values: Sequence[Any]) -> Iterator[Record]:
        """Live records whose field ``field`` (our name) equals one of ``values``."""
        ...

    def push(self, stream: str, updates: Sequence[Update]) -> list[WriteResult]:
        """Write owned fields and owners in batches; one result per update, in order."""
        ...

    def push_together(
        self, groups: Sequence[tuple[str, Sequence[Update]]]
    ) -> list[list[WriteResult]]:
        """`push` for several streams' updates at once, in as few calls as the CRM takes them
        (a Salesforce call may hold several objects' records); a result list per group, in
        order."""
        ...

    def ensure_schema(self, spec: SchemaSpec) -> SchemaReport:
        """Create the fields we own, repair drift, change nothing when all is in place."""
        ...

    def schema_gaps(self, spec: SchemaSpec) -> tuple[SchemaGap, ...]:
        """The fields we own that `ensure_schema` has yet to create or fix for writes to land;
        reads only (what a pull reads anyway, where the CRM allows)."""
        ...

    def usage(self) -> Usage:
        """API calls so far and the budget left."""
        ...

    def org_id(self) -> str | None:
        """The id of the org this connector reads (Salesforce's Organization Id, HubSpot's Hub
        ID), at most one call a connector; None when the CRM does not say."""
        ...


def expanded(items: Iterable[Item]) -> Iterator[Item]:
    """A pull's items with every `RecordBatch` given as its `Record`s, in order."""
    for item in items:
        if isinstance(item, RecordBatch):
            yield from item.records()
        else:
            yield item


def records(items: Iterable[Item]) -> list[Record]:
    """The eager helper: just the records of a pull (batches given row by row)."""
    return [item for item in expanded(items) if isinstance(item, Record)]
