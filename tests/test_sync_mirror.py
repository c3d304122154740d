"""The mirror stage on its own: what streams deliver fits the tables; dirty records are skipped
with a reason while the rest land; re-reads count once; an empty stream's cursor is kept."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from connectors.protocol import Checkpoint, Cursor, Item, Record, Summary, Tombstone
from connectors.streams import HUBSPOT_STREAMS, SALESFORCE_STREAMS, WRITTEN_BACK, Stream
from sync import Store
from sync.mirror import ENTITY_TABLES, StreamPull, mirror_stream
from sync.state import Account, Activity, Person, SyncCursor

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
_ALL_STREAMS = [*SALESFORCE_STREAMS.values(), *HUBSPOT_STREAMS.values()]


@pytest.mark.parametrize("stream", _ALL_STREAMS, ids=lambda s: s.name)
def test_every_field_a_stream_delivers_has_a_column(stream: Stream) -> None:
    table = ENTITY_TABLES[stream.entity].__table__  # type: ignore[attr-defined]
    delivered = {m.ours for m in (*stream.fields, *stream.optional)}
    delivered |= set(stream.constants) | {link.ours for link in stream.links}
    columns = set(table.c.keys())
    owned_back = delivered & set(WRITTEN_BACK) if "crm_owned" in columns else set()
    assert delivered - owned_back <= columns


@dataclass
class Scripted:
    """A connector that delivers a fixed pull per stream."""

    pulls: Mapping[str, Sequence[Item]]
    crm: str = "salesforce"

    @property
    def streams(self) -> Mapping[str, Stream]:
        return SALESFORCE_STREAMS

    def pull(self, stream: str, cursor: Cursor | None = None) -> Iterator[Item]:
        yield from self.pulls[stream]


def _account(record_id: str, at: datetime, reread: bool = False, **values: Any) -> Record:
    base = {"name": f"Firm {record_id}", "is_customer": False, "is_competitor": False}
    return Record("Account", record_id, at, base | values, reread=reread)


def test_a_dirty_record_is_skipped_with_its_reason_and_the_rest_land(store: Store) -> None:
    pulls = {
        "Account": [
            _account("001A", T0),
            _account("001B", T0, name=None),
            Checkpoint("Account", Cursor(T0, frozenset({"001A", "001B"}))),
            Summary("Account", records=2),
        ]
    }
    pulled = _mirror(store, "Account", *pulls["Account"], at=T0)
    with store.session() as session:
        stored = [a.id for a in session.exec(select(Account))]
    assert stored == ["001A"]
    assert pulled.skipped == {"no name": 1}
    assert [(e.record_id, e.action, e.reason) for e in pulled.events] == [
        ("001B", "skipped", "no name")
    ]


def test_a_person_outside_the_vocabulary_is_skipped(store: Store) -> None:
    odd = {"kind": "partner", "is_converted": False}
    pulls = {
        "Lead": [
            Record("Lead", "00QA", T0, odd),
            Checkpoint("Lead", Cursor(T0, frozenset({"00QA"}))),
        ]
    }
    pulled = _mirror(store, "Lead", *pulls["Lead"], at=T0)
    with store.session() as session:
        assert session.exec(select(Person)).all() == []
    assert pulled.skipped == {"kind 'partner' is not one of lead, contact": 1}


def test_an_overlap_reread_of_a_known_version_is_not_stored_again(store: Store) -> None:
    later = T0 + timedelta(minutes=5)
    first = {"Account": [_account("001A", T0), Checkpoint("Account", Cursor(T0))]}
    again = {
        "Account": [
            _account("001A", T0, reread=True, name="stale copy"),
            _account("001B", later, reread=True),
            Checkpoint("Account", Cursor(later)),
        ]
    }
    _mirror(store, "Account", *first["Account"], at=T0)
    pulled = _mirror(store, "Account", *again["Account"], at=later)
    with store.session() as session:
        names = {a.id: a.name for a in session.exec(select(Account))}
    assert pulled.reread_skipped == 1 and names == {"001A": "Firm 001A", "001B": "Firm 001B"}


def test_an_empty_streams_cursor_without_a_value_is_kept(store: Store) -> None:
    pulls = {
        "CampaignMember": [
            Checkpoint("CampaignMember", Cursor(None, read_at=T0)),
            Summary("CampaignMember"),
        ]
    }
    _mirror(store, "CampaignMember", *pulls["CampaignMember"], at=T0)
    with store.session() as session:
        cursor = session.get(SyncCursor, ("salesforce", "CampaignMember"))
    assert cursor is not None and cursor.value is None and cursor.read_at == T0


def test_an_activity_keeps_its_topic(store: Store) -> None:
    touch = {"type": "webinar", "occurred_at": T0, "topic": "security", "rep_touch": False}
    pulls = {"Task": [Record("Task", "00TA", T0, touch), Checkpoint("Task", Cursor(T0))]}
    _mirror(store, "Task", *pulls["Task"], at=T0)
    with store.session() as session:
        activity = session.get(Activity, "00TA")
    assert activity is not None and activity.topic == "security"


def test_a_merged_account_hands_its_activity_to_the_survivor(store: Store) -> None:
    touch = {"type": "pricing_page", "occurred_at": T0, "account_id": "001B", "rep_touch": False}
    _mirror(
        store,
        "Account",
        _account("001A", T0),
        _account("001B", T0),
        Checkpoint("Account", Cursor(T0)),
    )
    _mirror(store, "Task", Record("Task", "00TA", T0, touch), Checkpoint("Task", Cursor(T0)))
    merged = Tombstone("Account", "001B", T0, "merged", "001A")
    _mirror(store, "Account", merged, Checkpoint("Account", Cursor(T0)))
    with store.session() as session:
        loser = session.get(Account, "001B")
        activity = session.get(Activity, "00TA")
    assert loser is not None and loser.is_deleted and loser.merged_into == "001A"
    assert activity is not None and activity.account_id == "001A"


def _mirror(store: Store, stream: str, *items: Item, at: datetime = T0) -> StreamPull:
    """Mirror one scripted pull of ``stream``."""
    return mirror_stream(store, Scripted({stream: items}), stream, at)  # type: ignore[arg-type]
