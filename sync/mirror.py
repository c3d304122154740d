"""Mirror: pull every stream since its saved cursor into the state database.

Rows and cursor land in one transaction per checkpoint (rule 6), so a run stopped anywhere
resumes at the last page it committed. Tombstones are applied: a deleted or archived record is
marked deleted; a merged one also names its survivor, and a merged account's people, activities
and opportunities move to the survivor (score history stays append-only: replay follows
`merged_into`). A record re-read inside the connector's overlap window is skipped when the
mirror already holds that version, so an activity is counted once. A record that cannot be
stored (a required value missing, a value outside a closed vocabulary) is skipped with its
reason; the rest of the page lands.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, update
from sqlmodel import Session, SQLModel, col, delete, select

from connectors.protocol import (
    FULL_LOAD,
    Checkpoint,
    Connector,
    Cursor,
    Entity,
    Record,
    Summary,
    Tombstone,
)
from connectors.streams import WRITTEN_BACK
from sync.state import (
    LINK_PENDING,
    PERSON_KINDS,
    USER_ROLES,
    Account,
    Activity,
    CurrentScore,
    Opportunity,
    Person,
    User,
)
from sync.store import Store, canonical_value

__all__ = ["ENTITY_TABLES", "MirrorEvent", "StreamPull", "mirror_stream", "row_problem"]

ENTITY_TABLES: dict[Entity, type[SQLModel]] = {
    "account": Account,
    "person": Person,
    "activity": Activity,
    "opportunity": Opportunity,
    "user": User,
}
# columns the mirror fills itself, whatever the record carries
_OWN_COLUMNS = frozenset(
    {"id", "crm_modified_at", "synced_at", "is_deleted", "merged_into", LINK_PENDING}
)
_VOCABULARIES: dict[str, Mapping[str, tuple[str, ...]]] = {
    "person": {"kind": PERSON_KINDS},
    "crm_user": {"role": USER_ROLES},
}
# where a merged record's dependants point: table -> columns naming an account / a person
_ACCOUNT_REFERENCES: tuple[tuple[type[SQLModel], str], ...] = (
    (Person, "account_id"),
    (Person, "matched_account_id"),
    (Person, "converted_account_id"),
    (Activity, "account_id"),
    (Opportunity, "account_id"),
)
_PERSON_REFERENCES: tuple[tuple[type[SQLModel], str], ...] = ((Activity, "person_id"),)


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
    skipped: dict[str, int] = field(default_factory=dict)
    summary: Summary | None = None
    events: list[MirrorEvent] = field(default_factory=list)

    def skip(self, record_id: str, reason: str) -> None:
        """Count a record left out, with its reason."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.events.append(MirrorEvent(self.stream, record_id, "skipped", reason))


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

    Each checkpoint commits the rows before it together with its cursor; with ``move_cursor``
    False (a dry run) the rows are stored but the cursor stays where it was.
    """
    entity = connector.streams[stream].entity
    model = ENTITY_TABLES[entity]
    pulled = StreamPull(stream)
    cursor = FULL_LOAD if full else _saved_cursor(store, connector.crm, stream)
    page: list[Record | Tombstone] = []
    for item in connector.pull(stream, cursor):
        if isinstance(item, Record | Tombstone):
            page.append(item)
        elif isinstance(item, Checkpoint):
            saved = item.cursor if move_cursor else None
            _commit_page(store, connector.crm, model, page, pulled, now, saved)
            page = []
        elif isinstance(item, Summary):
            pulled.summary = item
    if page:  # a pull never ends without a checkpoint; rows after the last one wait for the next
        _commit_page(store, connector.crm, model, page, pulled, now, None)
    return pulled


def _saved_cursor(store: Store, crm: str, stream: str) -> Cursor:
    """The connector's cursor as saved by the last committed page (a full load before any)."""
    with store.session() as session:
        saved = store.get_cursor(session, crm, stream)
    if saved is None:
        return FULL_LOAD
    return Cursor(
        saved.value,
        frozenset(saved.ids_at_value),
        saved.resume,
        saved.read_at,
        saved.archive_read_at,
    )


def _commit_page(
    store: Store,
    crm: str,
    model: type[SQLModel],
    items: Sequence[Record | Tombstone],
    pulled: StreamPull,
    now: datetime,
    cursor: Cursor | None,
) -> None:
    """One transaction: the page's rows, its tombstones, and (unless None) its cursor."""
    with store.session() as session:
        records = [i for i in items if isinstance(i, Record)]
        fresh = _not_yet_seen(session, model, records, pulled)
        rows = _rows(model, fresh, pulled, now)
        pulled.stored += store.upsert(session, model, rows)
        for tombstone in (i for i in items if isinstance(i, Tombstone)):
            _bury(session, model, tombstone, now)
            pulled.tombstones += 1
            pulled.events.append(_tombstone_event(tombstone))
        if cursor is not None:
            _save_cursor(store, session, crm, pulled.stream, cursor, now)


def _save_cursor(
    store: Store, session: Session, crm: str, stream: str, cursor: Cursor, now: datetime
) -> None:
    """The checkpoint's cursor, stored with the rows it covers."""
    store.set_cursor(
        session,
        crm,
        stream,
        cursor.value,
        cursor.ids,
        now,
        resume=cursor.resume,
        read_at=cursor.read_at,
        archive_read_at=cursor.archive_read_at,
    )


def _not_yet_seen(
    session: Session, model: type[SQLModel], records: Sequence[Record], pulled: StreamPull
) -> list[Record]:
    """The page's records less those re-read in the overlap window whose version the mirror
    already holds (same id, modified no later)."""
    reread = [r.id for r in records if r.reread]
    if not reread:
        return list(records)
    table = _table(model)
    held = dict(
        session.execute(
            select(table.c.id, table.c.crm_modified_at).where(col(table.c.id).in_(reread))
        ).all()
    )
    kept = []
    for record in records:
        stamp = held.get(record.id)
        if record.reread and stamp is not None and stamp >= record.modified_at:
            pulled.reread_skipped += 1
            continue
        kept.append(record)
    return kept


def _rows(
    model: type[SQLModel], records: Iterable[Record], pulled: StreamPull, now: datetime
) -> list[dict[str, Any]]:
    """Table rows of the records that can be stored; the others are counted with their reason."""
    table = _table(model)
    columns = set(table.c.keys())
    rows: dict[str, dict[str, Any]] = {}
    for record in records:
        row = _row(record, columns, now)
        problem = row_problem(table, row)
        if problem:
            pulled.skip(record.id, problem)
            continue
        rows[record.id] = row  # a page may hold a record twice: its latest version wins
    return list(rows.values())


def _row(record: Record, columns: set[str], now: datetime) -> dict[str, Any]:
    """A record as a row of its table; on tables that keep them, our own fields as the CRM holds
    them go to ``crm_owned`` (an activity's ``topic`` is its own)."""
    values = record.values
    owned = WRITTEN_BACK if "crm_owned" in columns else ()
    row = {k: v for k, v in values.items() if k in columns and k not in owned}
    if owned:
        row["crm_owned"] = {k: _json_ready(values[k]) for k in owned if values.get(k) is not None}
    row.update(
        id=record.id,
        crm_modified_at=record.modified_at,
        synced_at=now,
        is_deleted=False,
        merged_into=None,
    )
    if LINK_PENDING in columns:  # the link stage relinks what this row reaches
        row[LINK_PENDING] = True
    return row


def _json_ready(value: Any) -> Any:
    """A value as JSON keeps it (datetimes as UTC ISO text), compared later by canonical text."""
    return json.loads(canonical_value(value))


def row_problem(table: Table, row: Mapping[str, Any]) -> str | None:
    """Why a row cannot be stored (a required value missing, a value outside its vocabulary)."""
    for column in table.c:
        if column.nullable or column.primary_key or column.name in _OWN_COLUMNS:
            continue
        if row.get(column.name) is None and column.name != "crm_owned":
            return f"no {column.name}"
    for name, allowed in _VOCABULARIES.get(table.name, {}).items():
        value = row.get(name)
        if value is not None and value not in allowed:
            return f"{name} {value!r} is not one of {', '.join(allowed)}"
    return None


def _bury(session: Session, model: type[SQLModel], tombstone: Tombstone, now: datetime) -> None:
    """Mark a record deleted; a merged one names its survivor and hands it its dependants."""
    table = _table(model)
    survivor = tombstone.merged_into if tombstone.reason == "merged" else None
    session.execute(
        update(table)
        .where(table.c.id == tombstone.id)
        .values(is_deleted=True, merged_into=survivor, synced_at=now, **_pending(table))
    )
    if survivor is None:
        return
    references = {Account: _ACCOUNT_REFERENCES, Person: _PERSON_REFERENCES}.get(model, ())
    for dependant, column in references:
        target = _table(dependant)
        session.execute(
            update(target)
            .where(target.c[column] == tombstone.id)
            .values({column: survivor, **_pending(target)})
        )
    if model is Account:
        session.exec(delete(CurrentScore).where(col(CurrentScore.account_id) == tombstone.id))


def _pending(table: Table) -> dict[str, bool]:
    """The link stage's flag, on the tables that carry it."""
    return {LINK_PENDING: True} if LINK_PENDING in table.c else {}


def _tombstone_event(tombstone: Tombstone) -> MirrorEvent:
    """The run-log line of a tombstone."""
    reason = tombstone.reason
    if tombstone.merged_into:
        reason = f"merged into {tombstone.merged_into}"
    return MirrorEvent(tombstone.stream, tombstone.id, "pulled", reason)


def _table(model: type[SQLModel]) -> Table:
    """The Table behind a SQLModel table class."""
    return model.__table__  # type: ignore[attr-defined,no-any-return]
