"""Echoes: our own writes pulled back, told apart from edits by hand before the link stage.

Every record write-back sets comes back in the next pull (its modification stamp moved). When
only our fields (as the CRM holds them) and the stamps changed, the mirror flags its row
``owned_changed`` rather than ``link_pending`` (`sync.mirror`). Each such row is compared with
the write ledger: one holding what we last wrote, settled "ok", is the echo of that write and
costs nothing more (no relink, no rescore, no diff); any other (an edit by hand, a record never
written, a write not settled) is flagged ``link_pending``, so its account is rescored and the
diff repairs it, as for any changed record. Run in each of the mirror's transactions that
stores rows (`sync.mirror.mirror_streams`), so a row's flag is set and cleared in one
transaction and the row written once; and in the link stage's, for rows an older release left
flagged.

The ledger's JSON is decoded only when its hash differs from that of our fields as pulled (taken
over the fields the stream is written, as the ledger keeps every one of them): an echo costs a
hash, and a value the CRM gives back in another form (compared as the diff does) a decode.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, Text, and_, cast, null, text, update
from sqlmodel import Session, select

from connectors.streams import WRITTEN_BACK, Stream
from sync.state import LINK_PENDING, OWNED_CHANGED, Account, Person, WriteLedger, table_of
from sync.store import in_chunks, read_json
from sync.writeback import holds, plain_values_hash

__all__ = ["sort_echoes"]

_STREAMED = 5_000  # flagged rows (with their ledger rows) fetched at a time


@dataclass(frozen=True)
class _Stream:
    """What a stream written back tells of its ledger rows: its person kind (None: any), and
    the fields each of its writes sets."""

    kind: str | None
    fields: tuple[str, ...]


@dataclass(frozen=True)
class _Written:
    """A record's ledger row in one stream: the outcome, and the values last written (their
    hash, and their JSON text)."""

    stream: _Stream
    status: str
    values_hash: str
    values: str

    def held(self, owned: Mapping[str, Any]) -> bool:
        """Whether ``owned`` (our fields as pulled, plain values) holds these values, settled
        "ok"."""
        if self.status != "ok":
            return False
        mine = {name: owned.get(name) for name in self.stream.fields}
        return plain_values_hash(mine) == self.values_hash or holds(owned, read_json(self.values))


def sort_echoes(
    session: Session, streams: Mapping[str, Stream], echoes: set[tuple[str, str]]
) -> None:
    """Clear the mirror's ``owned_changed`` flags, flagging ``link_pending`` the rows that are
    not the echo of our last write; ``echoes`` (table, record id) gains the echoes and loses
    the others (a record read as our write's echo, then again as a change, is no echo)."""
    for model in (Account, Person):
        table = table_of(model)
        changed, flagged = [], False
        for record_id, owned, kind, written in _flagged(
            session, table, _written_streams(streams, table.name)
        ):
            flagged = True
            if _echo(owned, kind, written):
                echoes.add((table.name, record_id))
            else:
                echoes.discard((table.name, record_id))
                changed.append(record_id)
        for chunk in in_chunks(changed):
            session.execute(update(table).where(table.c.id.in_(chunk)).values({LINK_PENDING: True}))
        if flagged:
            session.execute(
                update(table).where(_owned_changed(table)).values({OWNED_CHANGED: False})
            )


def _flagged(
    session: Session, table: Table, streams: Mapping[str, _Stream]
) -> Iterator[tuple[str, Mapping[str, Any], str | None, list[_Written]]]:
    """The rows flagged ``owned_changed``, in id order: the id, our fields as pulled, the person
    kind (None on accounts) and the row's ledger rows in ``streams`` (their JSON as text,
    undecoded). One statement (each flagged row found by its partial index, which lists them in
    id order, its ledger rows by key), streamed a batch of rows at a time: what is held is a
    batch, not the echo of a whole first run's writes (the reference org's 786,014 read at once
    took the link stage to 2.4 GB; looked up 5,000 ids at a time instead, the 20,000-account
    org's echo cost the link stage half as much again)."""
    ledger = table_of(WriteLedger)
    kind = table.c.kind if "kind" in table.c else null()
    mine = and_(ledger.c.record_id == table.c.id, ledger.c.object.in_(list(streams)))
    statement = (
        select(table.c.id, table.c.crm_owned, kind, ledger.c.object, ledger.c.status)
        .add_columns(ledger.c.values_hash, cast(ledger.c["values"], Text))
        .select_from(table.outerjoin(ledger, mine))
        .where(_owned_changed(table))
        .order_by(table.c.id)
        .execution_options(yield_per=_STREAMED)  # this statement's alone: a server-side cursor
    )
    for record_id, group in groupby(session.connection().execute(statement), key=itemgetter(0)):
        rows = list(group)  # one a ledger row (one, of no stream, without any)
        written = [_Written(streams[r[3]], *r[4:]) for r in rows if r[3] is not None]
        yield record_id, rows[0][1], rows[0][2], written


def _owned_changed(table: Table) -> Any:
    """The flag as its partial index says it (SQLite uses a partial index only then)."""
    return text(f"{table.name}.{OWNED_CHANGED}")


def _written_streams(streams: Mapping[str, Stream], entity: str) -> dict[str, _Stream]:
    """The streams write-back writes records of ``entity`` to (as `sync.writeback.targets`)."""
    return {
        name: _Stream(
            stream.constants.get("kind"), tuple(f for f in stream.writable if f in WRITTEN_BACK)
        )
        for name, stream in streams.items()
        if stream.entity == entity and "score" in stream.writable
    }


def _echo(owned: Mapping[str, Any], kind: str | None, written: Sequence[_Written]) -> bool:
    """Whether our fields as pulled hold what every ledger row of the record (of its kind) says
    we wrote last, each write settled "ok"."""
    mine = [w for w in written if w.stream.kind is None or w.stream.kind == kind]
    return bool(mine) and all(w.held(owned) for w in mine)
