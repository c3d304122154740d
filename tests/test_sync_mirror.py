"""The mirror stage on its own: what streams deliver fits the tables; dirty records are skipped
with a reason while the rest land; re-reads count once; an empty stream's cursor is kept; a
first load (COPY on PostgreSQL, indexes built after) stores exactly what upserts store; a
transaction holds a checkpoint's rows and its cursor or neither."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import Column, Index, Integer, MetaData, Table, event, func, inspect, text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from connectors.protocol import (
    FULL_LOAD,
    Checkpoint,
    Cursor,
    Item,
    Record,
    RecordBatch,
    Summary,
    Tombstone,
)
from connectors.streams import HUBSPOT_STREAMS, SALESFORCE_STREAMS, WRITTEN_BACK, Stream
from sync import Store, mirror, staging
from sync import store as store_module
from sync.mirror import ENTITY_TABLES, StreamPull, mirror_stream, mirror_streams
from sync.state import (
    Account,
    Activity,
    Opportunity,
    Person,
    ScoringState,
    SyncCursor,
    WriteLedger,
    made_on,
    table_of,
)
from sync.store import canonical_value
from tests.conftest import pg_schema

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


def test_an_overlap_reread_of_a_newer_version_is_stored(store: Store) -> None:
    later = T0 + timedelta(microseconds=1)  # the smallest step a stored stamp tells apart
    _mirror(store, "Account", _account("001A", T0), Checkpoint("Account", Cursor(T0)))
    again = [
        _account("001A", later, reread=True, name="renamed"),
        Checkpoint("Account", Cursor(later)),
    ]
    pulled = _mirror(store, "Account", *again, at=later)
    with store.session() as session:
        account = session.get(Account, "001A")
    assert pulled.reread_skipped == 0 and account is not None and account.name == "renamed"


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


def test_tombstones_given_together_repoint_along_a_chain_of_merges(store: Store) -> None:
    accounts = [_account(f"001{n}", T0) for n in "ABCD"]
    _mirror(store, "Account", *accounts, Checkpoint("Account", Cursor(T0)))
    touch = {"type": "pricing_page", "occurred_at": T0, "rep_touch": False}
    _mirror(
        store,
        "Task",
        Record("Task", "00TA", T0, touch | {"account_id": "001A"}),
        Record("Task", "00TD", T0, touch | {"account_id": "001D"}),
        Checkpoint("Task", Cursor(T0)),
    )
    later = T0 + timedelta(minutes=1)
    pulled = _mirror(
        store,
        "Account",
        Tombstone("Account", "001A", later, "merged", "001B"),  # A into B, then B into C
        Tombstone("Account", "001B", later, "merged", "001C"),
        Tombstone("Account", "001D", later, "archived"),
        Checkpoint("Account", Cursor(later)),
    )
    with store.session() as session:
        accounts_held = {a.id: (a.is_deleted, a.merged_into) for a in session.exec(select(Account))}
        activity = {a.id: a.account_id for a in session.exec(select(Activity))}
    assert accounts_held == {
        "001A": (True, "001B"),
        "001B": (True, "001C"),
        "001C": (False, None),
        "001D": (True, None),
    }
    assert activity == {"00TA": "001C", "00TD": "001D"}
    assert pulled.tombstones == 3 and len(pulled.events) == 3


def test_an_archive_read_again_changes_counts_and_logs_only_what_it_had_not_applied(
    store: Store,
) -> None:
    # the same deletions come again (an archive read lists what its overlap window holds again;
    # HubSpot names a survivor's merged records each time the survivor is read), one the
    # mirror never held among them
    later = _accounts_held(store, "ABC")
    archive = [
        Tombstone("Account", "001A", later, "archived"),
        Tombstone("Account", "001B", later, "merged", "001C"),
        Tombstone("Account", "001Z", later, "archived"),  # never held
    ]
    first = _mirror(store, "Account", *archive, Checkpoint("Account", Cursor(later)))
    with store.session() as session:
        synced = {a.id: a.synced_at for a in session.exec(select(Account))}
    again = _mirror(store, "Account", *archive, Checkpoint("Account", Cursor(later)), at=later)
    merged_now = Tombstone("Account", "001A", later, "merged", "001C")  # deleted, now merged
    then = _mirror(store, "Account", merged_now, Checkpoint("Account", Cursor(later)), at=later)

    assert first.tombstones == 2 and [e.record_id for e in first.events] == ["001A", "001B"]
    assert again.tombstones == 0 and again.events == []
    assert then.tombstones == 1 and then.events[0].reason == "merged into 001C"
    with store.session() as session:
        held = {
            a.id: (a.is_deleted, a.merged_into, a.synced_at) for a in session.exec(select(Account))
        }
    assert held["001B"] == (True, "001C", synced["001B"])  # not touched again
    assert held["001A"][:2] == (True, "001C") and "001Z" not in held


def _accounts_held(store: Store, letters: str) -> datetime:
    """Accounts 001A, 001B, ... (one a letter) mirrored at T0; a minute after, for what follows."""
    accounts = [_account(f"001{n}", T0) for n in letters]
    _mirror(store, "Account", *accounts, Checkpoint("Account", Cursor(T0)))
    return T0 + timedelta(minutes=1)


def _mirror(store: Store, stream: str, *items: Item, at: datetime = T0) -> StreamPull:
    """Mirror one scripted pull of ``stream``."""
    return mirror_stream(store, Scripted({stream: items}), stream, at)  # type: ignore[arg-type]


# --- the first load and the upsert store alike ------------------------------------------------

_TABLES = ("account", "person", "activity", "opportunity")


def _org(prefix: str = "") -> dict[str, list[Item]]:
    """A small org as the Salesforce streams deliver it, every kind of value included (owned
    fields, integral floats, dates, nulls), with a checkpoint every few records."""
    accounts = [
        _account(
            f"{prefix}001{n:03d}",
            T0 + timedelta(minutes=n),
            website=f"https://firm{n}.example",
            domain=f"firm{n}.example",
            country="DE" if n % 2 else None,
            employees=40 * n,
            revenue=1_250_000.5 * n,
            is_customer=n % 3 == 0,
            created_at=T0 - timedelta(days=400 + n),
            score=80.0 if n % 2 else None,
            tier="AE" if n % 2 else None,
            scored_at=T0 if n % 2 else None,
        )
        for n in range(9)
    ]
    people = [
        Record(
            "Lead",
            f"{prefix}00Q{n:03d}",
            T0 + timedelta(seconds=n),
            {
                "kind": "lead",
                "first_name": f"Ada{n}",
                "email": f"ada{n}@firm{n % 9}.example",
                "company": f"Firm {n % 9}",
                "is_converted": False,
                "matched_account_id": f"{prefix}001000",  # owned: kept in crm_owned
            },
        )
        for n in range(12)
    ]
    touches = [
        Record(
            "Task",
            f"{prefix}00T{n:03d}",
            T0 + timedelta(seconds=n),
            {
                "type": "pricing_page" if n % 2 else "call",
                "occurred_at": T0 - timedelta(hours=n, microseconds=n),
                "person_id": f"{prefix}00Q{n % 12:03d}",
                "account_id": None if n % 2 else f"{prefix}001{n % 9:03d}",
                "topic": "security" if n % 5 == 0 else None,
                "rep_touch": n % 2 == 0,
            },
        )
        for n in range(20)
    ]
    deals = [
        Record(
            "Opportunity",
            f"{prefix}006{n:03d}",
            T0,
            {
                "account_id": f"{prefix}001{n:03d}",
                "name": f"Deal {n}",
                "amount": 48_000,  # an int where the column is a float
                "opened_at": T0 - timedelta(days=30),
                "close_date": date(2026, 12, 24),
                "is_closed": n == 0,
                "is_won": False,
            },
        )
        for n in range(3)
    ]
    streams = {"Account": accounts, "Lead": people, "Task": touches, "Opportunity": deals}
    return {name: _paged(name, records) for name, records in streams.items()}


def _paged(stream: str, records: Sequence[Record], every: int = 4) -> list[Item]:
    """The records with a checkpoint after every ``every`` of them, and a summary."""
    items: list[Item] = []
    for start in range(0, len(records), every):
        page = records[start : start + every]
        items += [*page, Checkpoint(stream, Cursor(max(r.modified_at for r in page)))]
    return [*items, Summary(stream, records=len(records))]


def _raw_rows(store: Store, table: str, leave_out: str = "SEED") -> list[tuple[Any, ...]]:
    """A table's rows as the database holds them (no ORM types), by id."""
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id")
        return [tuple(row) for row in rows if not row.id.startswith(leave_out)]


@pytest.fixture
def second_store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    """Another fresh database on the backend of ``store``."""
    with ExitStack() as stack:
        if store_url.startswith("sqlite"):
            url = f"sqlite:///{tmp_path / 'second.db'}"
        else:
            url = stack.enter_context(pg_schema())
        yield stack.enter_context(Store.open(url))


def test_a_first_load_stores_exactly_what_upserts_store(
    store: Store, second_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sync.mirror.COMMIT_EVERY", 5)  # several transactions a stream
    loaded = _mirror_all(store, _org())
    seeded = second_store
    _mirror_all(seeded, _org(prefix="SEED"))  # the tables hold rows: every stream upserts
    upserted = _mirror_all(seeded, _org())
    assert all(p.first_load for p in loaded) and not any(p.first_load for p in upserted)
    for table in _TABLES:
        assert _raw_rows(store, table) == _raw_rows(seeded, table), table
        assert len(_raw_rows(store, table)) > 0


# values that text formats (PostgreSQL's CSV COPY, SQLite's stamps) could get wrong
_AWKWARD_TEXTS = (
    "",
    'a "quoted" word, and a comma',
    "two\nlines\r\nand a carriage return\r",
    "back\\slash \\N and \\.",
    "\\N",
    "tab\tand ünïcödé 🙂",
    " spaces around ",
    "NULL",
)
_AWKWARD_STAMPS = (
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(2038, 1, 19, 3, 14, 8, 999_999, tzinfo=UTC),
    datetime(2262, 4, 11, 23, 47, 16, 854_776, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2026, 11, 1, 14, 30, 0, 7, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    T0 + timedelta(microseconds=123_457),
)
_AWKWARD_FLOATS = (0.1 + 0.2, 1e300, 5e-324, -0.5, 2.0**53 + 2, 1_250_000.5, 1 / 3, 0.0)


def _awkward(prefix: str = "") -> dict[str, list[Item]]:
    """Accounts and tasks whose values are awkward to write as text, with a checkpoint each."""
    accounts = [
        _account(
            f"{prefix}001{n:03d}",
            _AWKWARD_STAMPS[n],
            name=_AWKWARD_TEXTS[n] or "-",
            website=_AWKWARD_TEXTS[-1 - n],
            revenue=_AWKWARD_FLOATS[n],
            employees=(2**31 - 1, -(2**31), 0)[n % 3],
            created_at=_AWKWARD_STAMPS[-1 - n],
        )
        for n in range(len(_AWKWARD_STAMPS))
    ]
    tasks = [
        Record(
            "Task",
            f"{prefix}00T{n:03d}",
            _AWKWARD_STAMPS[-1 - n],
            {
                "type": "call",
                "occurred_at": _AWKWARD_STAMPS[n],
                "subject": _AWKWARD_TEXTS[n],
                "rep_touch": n % 2 == 0,
            },
        )
        for n in range(len(_AWKWARD_STAMPS))
    ]
    return {"Account": _paged("Account", accounts), "Task": _paged("Task", tasks)}


def test_awkward_values_store_alike_on_a_first_load_and_an_upsert_and_read_back_as_given(
    store: Store, second_store: Store
) -> None:
    loaded = _mirror_all(store, _awkward())
    _mirror_all(second_store, _awkward(prefix="SEED"))
    upserted = _mirror_all(second_store, _awkward())
    assert all(p.first_load for p in loaded) and not any(p.first_load for p in upserted)
    for table in ("account", "activity"):
        assert _raw_rows(store, table) == _raw_rows(second_store, table), table
    with store.session() as session:
        accounts = {a.id: a for a in session.exec(select(Account))}
        tasks = {t.id: t for t in session.exec(select(Activity))}
        # the stamps compare in SQL with values the ORM binds (as text on SQLite)
        later = [
            len(session.exec(select(Activity.id).where(col(Activity.occurred_at) >= s)).all())
            for s in _AWKWARD_STAMPS
        ]
    for n, stamp in enumerate(_AWKWARD_STAMPS):
        account, task = accounts[f"001{n:03d}"], tasks[f"00T{n:03d}"]
        assert (account.name, account.website) == (_AWKWARD_TEXTS[n] or "-", _AWKWARD_TEXTS[-1 - n])
        assert account.revenue == _AWKWARD_FLOATS[n] and account.crm_modified_at == stamp
        assert account.created_at == _AWKWARD_STAMPS[-1 - n]
        assert (task.occurred_at, task.subject) == (stamp, _AWKWARD_TEXTS[n])
        assert later[n] == sum(other >= stamp for other in _AWKWARD_STAMPS)


def _large_batches(
    pulls: Mapping[str, Sequence[Item]], edit: str = "", blank: Collection[str] = ()
) -> dict[str, list[Item]]:
    """Each stream's records copied under ids of their own to `staging.MIN_ROWS` rows or more
    (the first copy keeps the ids, so what the copies name is there), in one `RecordBatch` a
    stream, as the Salesforce Bulk API's pages come: staged on SQLite (`sync.staging`). With
    ``edit``, each copy's name ends with it; the fields ``blank`` names are null throughout."""
    batched: dict[str, list[Item]] = {}
    for stream, items in pulls.items():
        records = [item for item in items if isinstance(item, Record)]
        copies = -(-staging.MIN_ROWS // len(records))
        rows = []
        for copy in range(copies):
            for record in records:
                values = {
                    name: value + edit if isinstance(value, str) and name == "name" else value
                    for name, value in record.values.items()
                }
                values |= {name: None for name in blank if name in values}
                rows.append(
                    {
                        "id": record.id if copy == 0 else f"{record.id}-{copy}",
                        "modified_at": record.modified_at,
                        **values,
                    }
                )
        frame = pl.DataFrame(
            [
                {k: v.astimezone(UTC) if isinstance(v, datetime) else v for k, v in row.items()}
                for row in rows
            ],
            infer_schema_length=None,
        )
        latest = max(row["modified_at"] for row in rows)
        batched[stream] = [
            RecordBatch(stream, frame),
            Checkpoint(stream, Cursor(latest)),
            Summary(stream, records=frame.height),
        ]
    return batched


def _storage_classes(store: Store, table: str) -> list[tuple[Any, ...]]:
    """Each row's id and the storage class SQLite holds each of its values in."""
    with store.engine.connect() as connection:
        names = [row[1] for row in connection.exec_driver_sql(f"PRAGMA table_info({table})")]
        classes = ", ".join(f"typeof({name})" for name in names)
        return [
            tuple(row)
            for row in connection.exec_driver_sql(f"SELECT id, {classes} FROM {table} ORDER BY id")
        ]


def _awkward_since_1000() -> dict[str, list[Item]]:
    """`_awkward`'s records with their stamps before the year 1000 in the year 2000 (such a
    stamp sends its batch to be stored a row at a time: `sync.mirror_batches.plain_series`)."""

    def modern(value: Any) -> Any:
        if isinstance(value, datetime) and value.year < 1000:
            return value.replace(year=2000)
        return value

    return {
        stream: [
            Record(
                item.stream,
                item.id,
                modern(item.modified_at),
                {name: modern(value) for name, value in item.values.items()},
            )
            if isinstance(item, Record)
            else item
            for item in items
        ]
        for stream, items in _awkward().items()
    }


@pytest.mark.parametrize(
    ("data", "tables"),
    [
        # deals go a row at a time: an amount given as an int is adapted value by value
        (_org, ("account", "person", "activity")),
        (_awkward_since_1000, ("account", "activity")),
    ],
    ids=["org", "awkward"],
)
def test_large_batches_staged_on_sqlite_store_exactly_what_rows_bound_one_by_one_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: Any, tables: tuple[str, ...]
) -> None:
    staged: list[tuple[str, bool]] = []

    def spied(connection: Any, used: set[str], table: str, *rest: Any) -> bool:
        done = staging.insert_staged(connection, used, table, *rest)
        staged.append((table.strip('"'), done))
        return done

    held: dict[str, list[dict[str, Any]]] = {}  # by way, after each mirror stage
    for way, insert in (("staged", spied), ("bound", lambda *given: False)):
        monkeypatch.setattr("sync.store.insert_staged", insert)
        with Store.open(f"sqlite:///{tmp_path / way}.db") as store:
            every = [t for t in _TABLES if t in tables or data is _org]
            held[way] = []
            # a column null throughout (bound as null, not by a stand-in) on the first load
            for pulls in (
                _large_batches(data(), blank=("country", "topic")),
                _large_batches(data(), edit=" (renamed)"),
            ):
                _mirror_all(store, pulls)
                held[way].append(
                    {t: (_raw_rows(store, t), _storage_classes(store, t)) for t in every}
                )
    for staged_rows, bound_rows in zip(held["staged"], held["bound"], strict=True):
        for table, (rows, classes) in staged_rows.items():
            assert len(rows) >= staging.MIN_ROWS
            assert (rows, classes) == bound_rows[table], table
    # a first load's and an upsert's rows each went by way of the stage
    assert sorted(staged) == sorted((table, True) for table in tables for _ in range(2))


def test_rows_stored_in_bulk_read_back_as_the_orm_wrote_them(store: Store) -> None:
    _mirror_all(store, _org())
    with store.session() as session:
        account = session.get(Account, "001001")
        recent = session.exec(select(Activity).where(col(Activity.occurred_at) >= T0)).all()
        deal = session.get(Opportunity, "006000")
        lead = session.get(Person, "00Q001")
    assert account is not None and account.created_at == T0 - timedelta(days=401)
    assert account.crm_owned == {"score": 80, "tier": "AE", "scored_at": T0.isoformat()}
    assert account.revenue == 1_250_000.5 and account.synced_at == T0
    assert [a.id for a in recent] == ["00T000"]  # compared in SQL, as text on SQLite
    assert deal is not None and deal.amount == 48_000.0 and deal.close_date == date(2026, 12, 24)
    assert lead is not None and lead.crm_owned == {"matched_account_id": "001000"}
    assert lead.matched_account_id is None  # the link is ours to set, not the CRM's


# the partial indexes no row of a first load enters, kept through it (empty until a later stage)
_EMPTY_AFTER_LOADING = {
    "account": {"ix_account_owned_changed"},
    # people are linked (``matched_account_id`` set) by the link stage, not the mirror
    "person": {"ix_person_owned_changed", "ix_person_in_review", "ix_person_matched_account_id"},
    # a first load inserts activities unflagged and of the first cycle, which counts them all
    "activity": {"ix_activity_recounted", "ix_activity_uncounted"},
    "opportunity": set(),
}


def test_a_first_load_builds_the_secondary_indexes_after_it(store: Store) -> None:
    seen_during: dict[str, set[str]] = {}

    class Watching(Scripted):
        def pull(self, stream: str, cursor: Cursor | None = None) -> Iterator[Item]:
            seen_during[stream] = _index_names(store, ENTITY_TABLES[_ENTITY[stream]])
            yield from super().pull(stream, cursor)

    list(mirror_streams(store, Watching(_org()), T0, streams=_ENTITY))  # type: ignore[arg-type]
    for stream, entity in _ENTITY.items():
        model = ENTITY_TABLES[entity]
        expected = _all_indexes(store, model)
        assert expected and _index_names(store, model) == expected
        kept = _EMPTY_AFTER_LOADING[entity]
        assert seen_during[stream] == kept, f"{stream} loaded with its indexes in place"


def test_a_first_load_leaves_the_activity_and_person_indexes_to_a_caller_who_asks(
    store: Store,
) -> None:
    unbuilt: list[Any] = []
    connector = Scripted(_org())
    list(mirror_streams(store, connector, T0, streams=_ENTITY, unbuilt=unbuilt))  # type: ignore[arg-type]
    assert sorted(table.name for table in unbuilt) == ["activity", "person"]
    for entity in ("activity", "person"):  # the partial indexes no new row enters stay
        assert _index_names(store, ENTITY_TABLES[entity]) == _EMPTY_AFTER_LOADING[entity]
    for entity in ("account", "opportunity"):  # built
        model = ENTITY_TABLES[entity]
        assert _index_names(store, model) == _all_indexes(store, model)
    building = store.build_indexes_behind(unbuilt)
    with store.session() as session:  # read while they are built
        assert len(session.exec(select(Activity)).all()) == 20
    building.wait()
    for entity in ("activity", "person"):
        model = ENTITY_TABLES[entity]
        assert _index_names(store, model) == _all_indexes(store, model)
    again: list[Any] = []  # a table not empty is no first load: nothing is left
    connector = Scripted(_org())
    list(mirror_streams(store, connector, T0, streams=["Task"], unbuilt=again))  # type: ignore[arg-type]
    assert again == []


def test_an_index_build_behind_sorts_in_a_small_cache_and_gives_its_connection_back_as_it_was(
    store: Store,
) -> None:
    if store.dialect != "sqlite":
        pytest.skip("SQLite's page cache and sorter threads")
    unbuilt: list[Any] = []
    list(mirror_streams(store, Scripted(_org()), T0, streams=_ENTITY, unbuilt=unbuilt))  # type: ignore[arg-type]
    seen: list[tuple[int, int]] = []  # (cache_size, threads) of each connection given back

    def given_back(driver: Any, _record: Any) -> None:
        pragmas = (driver.execute(f"PRAGMA {name}").fetchone()[0] for name in _POOLED)
        seen.append(tuple(pragmas))  # type: ignore[arg-type]

    sizes: list[int] = []
    build = store_module.Store.build_indexes

    def building(self: Store, session: Any, tables: Any, **options: Any) -> None:
        driver = session.connection().connection.driver_connection
        sizes.append(driver.execute("PRAGMA cache_size").fetchone()[0])
        build(self, session, tables, **options)

    event.listen(store.engine, "checkin", given_back)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(store_module.Store, "build_indexes", building)
            store.build_indexes_behind(unbuilt).wait()
    finally:
        event.remove(store.engine, "checkin", given_back)
    assert sizes == [-store_module._BUILD_CACHE_KIB]
    assert seen and set(seen) == {(-store_module._CACHE_KIB, store_module._SORTER_THREADS)}


_POOLED = ("cache_size", "threads")


def test_an_index_build_behind_raises_its_error_when_waited_for(store: Store) -> None:
    missing = Table("no_such_table", MetaData(), Column("x", Integer), Index("ix_nothing", "x"))
    building = store.build_indexes_behind([missing])
    with pytest.raises(DBAPIError, match="no_such_table"):
        building.wait()
    building.wait()  # raised once


def test_a_first_load_on_postgresql_analyses_the_columns_the_run_searches_by(
    store: Store,
) -> None:
    if store.dialect != "postgresql":
        pytest.skip("SQLite keeps no statistics the mirror refreshes")
    list(mirror_streams(store, Scripted(_org()), T0, streams=_ENTITY))  # type: ignore[arg-type]
    query = text(
        "SELECT tablename, attname FROM pg_stats"
        " WHERE schemaname = current_schema() AND tablename IN ('activity', 'person')"
    )
    with store.session() as session:
        analysed = {(table, column) for table, column in session.execute(query)}
    # the columns the link and score stages filter and join on, at once; the rest (texts a
    # rep reads, stamps) are left to autovacuum, which analyses them whole soon after
    assert {
        ("activity", "person_id"),
        ("activity", "account_id"),
        ("activity", "scored_seq"),
        ("activity", "is_deleted"),
        ("person", "id"),
        ("person", "match_domain"),
        ("person", "matched_account_id"),
    } <= analysed
    assert not {("activity", "subject"), ("person", "title")} & analysed


def test_indexes_a_killed_first_load_left_out_are_built_by_the_next_run(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sync.mirror.COMMIT_EVERY", 1)

    class Killed(Scripted):
        def pull(self, stream: str, cursor: Cursor | None = None) -> Iterator[Item]:
            yield from list(super().pull(stream, cursor))[:5]  # a page and its checkpoint
            raise KeyboardInterrupt  # the process stopped mid-load

    with pytest.raises(KeyboardInterrupt):
        list(mirror_streams(store, Killed(_org()), T0, streams=["Task"]))  # type: ignore[arg-type]
    assert _index_names(store, Activity) == _all_indexes(store, Activity)  # built on the way out
    with store.session() as session:
        session.execute(text("DROP INDEX ix_activity_person_occurred"))  # as after a SIGKILL
    pulled = mirror_stream(store, Scripted(_org()), "Task", T0)  # type: ignore[arg-type]
    assert not pulled.first_load and _index_names(store, Activity) == _all_indexes(store, Activity)


def _task(record_id: str, subject: str, at: datetime = T0) -> Record:
    values = {"type": "call", "occurred_at": at, "subject": subject, "rep_touch": True}
    return Record("Task", record_id, at, values)


def _subjects(store: Store) -> dict[str, tuple[str | None, bool]]:
    with store.session() as session:
        return {a.id: (a.subject, a.is_deleted) for a in session.exec(select(Activity))}


def test_activities_are_keyed_by_a_unique_index_on_sqlite_and_a_primary_key_on_postgresql(
    store: Store,
) -> None:
    keyed = inspect(store.engine).get_pk_constraint("activity")["constrained_columns"]
    indexes = {i["name"]: i for i in inspect(store.engine).get_indexes("activity")}
    if store.dialect == "sqlite":  # a primary key cannot be dropped for a first load
        assert keyed == [] and indexes["ux_activity_id"]["unique"]
        assert indexes["ux_activity_id"]["column_names"] == ["id"]
    else:
        assert keyed == ["id"] and "ux_activity_id" not in indexes


@pytest.mark.parametrize("twice", [True, False], ids=["an id twice", "each id once"])
def test_a_first_load_keeps_the_last_version_of_an_activity_given_twice(
    store: Store, monkeypatch: pytest.MonkeyPatch, twice: bool
) -> None:
    monkeypatch.setattr("sync.mirror.COMMIT_EVERY", 1)  # the two versions in two transactions
    keyed_during: list[bool] = []

    class Watching(Scripted):
        def pull(self, stream: str, cursor: Cursor | None = None) -> Iterator[Item]:
            for item in super().pull(stream, cursor):
                keyed_during.append("ux_activity_id" in _index_names(store, Activity))
                yield item

    pull = [
        _task("00TA", "first"),
        _task("00TB", "only"),
        Checkpoint("Task", Cursor(T0)),
        _task("00TA" if twice else "00TC", "second"),  # delivered again before the load ended
        Checkpoint("Task", Cursor(T0)),
    ]
    unbuilt: list[Any] = []
    list(mirror_streams(store, Watching({"Task": pull}), T0, streams=["Task"], unbuilt=unbuilt))  # type: ignore[arg-type]
    held = {"00TA": ("second", False)} if twice else {"00TA": ("first", False)}
    held |= {"00TB": ("only", False)} | ({} if twice else {"00TC": ("second", False)})
    # the stage's end leaves the key to the caller's build behind the score stage, unless an id
    # came twice: that is kept once before the stage ends, else the score stage, reading the
    # history while the key is built, would count it twice
    assert _subjects(store) == held
    if store.dialect == "sqlite":  # loaded without its key, as the first load's other indexes
        assert not any(keyed_during) and store.keyless(table_of(Activity)) is not twice
        assert ("ux_activity_id" in _index_names(store, Activity)) is twice
    store.build_indexes_behind(unbuilt).wait()
    assert _subjects(store) == held
    assert _index_names(store, Activity) == _all_indexes(store, Activity)
    assert not store.keyless(table_of(Activity))
    again = mirror_stream(store, Scripted({"Task": [_task("00TA", "third")]}), "Task", T0)  # type: ignore[arg-type]
    assert not again.first_load and _subjects(store)["00TA"] == ("third", False)


@pytest.mark.parametrize("rows", [3, 3_000], ids=["rows bound", "rows staged"])
def test_a_first_load_keeps_the_last_row_of_an_activity_a_batch_holds_twice(
    store: Store, monkeypatch: pytest.MonkeyPatch, rows: int
) -> None:
    """While the key is away, a batch's rows go in as delivered (not sorted to drop repeats):
    the key's build keeps the last row of an id, given twice in a batch or as a `Record` before
    it; a row without an id is skipped, the rest land."""
    staged: list[bool] = []

    def spied(*given: Any) -> bool:
        staged.append(staging.insert_staged(*given))
        return staged[-1]

    monkeypatch.setattr("sync.store.insert_staged", spied)

    def batch(ids: list[str | None], subjects: list[str]) -> RecordBatch:
        frame = pl.DataFrame(
            {
                "id": ids,
                "modified_at": [T0] * len(ids),
                "type": ["call"] * len(ids),
                "occurred_at": [T0] * len(ids),
                "subject": subjects,
                "rep_touch": [True] * len(ids),
            }
        ).with_columns(pl.col("modified_at", "occurred_at").dt.cast_time_unit("us"))
        return RecordBatch("Task", frame)

    others = [f"00T{n:07d}" for n in range(rows - 3)]
    pull = [
        _task("00TC", "record"),  # then again in the batch, in the same transaction
        batch(
            ["00TA", *others, "00TA", "00TB", "00TC"],
            ["first", *(["other"] * len(others)), "second", "only", "batch"],
        ),
        batch([None, "00TD"], ["nameless", "after"]),
        Checkpoint("Task", Cursor(T0)),
    ]
    unbuilt: list[Any] = []
    [pulled] = mirror_streams(
        store, Scripted({"Task": pull}), T0, streams=["Task"], unbuilt=unbuilt
    )  # type: ignore[arg-type]
    store.build_indexes_behind(unbuilt).wait()
    held = _subjects(store)

    assert held["00TA"] == ("second", False) and held["00TC"] == ("batch", False)
    assert held["00TB"] == ("only", False) and held["00TD"] == ("after", False)
    assert len(held) == len(others) + 4 and None not in held
    assert sum(pulled.skipped.values()) == 1
    assert _index_names(store, Activity) == _all_indexes(store, Activity)
    if store.dialect == "sqlite" and rows > staging.MIN_ROWS:
        assert True in staged  # the large batch went by the stage


def test_a_tombstone_in_a_first_load_has_the_activity_key_built_before_it_applies(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sync.mirror.COMMIT_EVERY", 1)
    later = T0 + timedelta(minutes=1)
    pull = [
        _task("00TA", "gone"),
        _task("00TB", "kept"),
        Checkpoint("Task", Cursor(T0)),
        Tombstone("Task", "00TA", later, "deleted"),
        _task("00TC", "after", later),
        Checkpoint("Task", Cursor(later)),
    ]
    unbuilt: list[Any] = []
    list(mirror_streams(store, Scripted({"Task": pull}), T0, streams=["Task"], unbuilt=unbuilt))  # type: ignore[arg-type]
    # the key is in (no tombstone reads the whole table for its row); the others wait
    assert "ux_activity_id" in _index_names(store, Activity) or store.dialect == "postgresql"
    assert "ix_activity_person_occurred" not in _index_names(store, Activity)
    assert not store.keyless(table_of(Activity))
    kept = {"00TA": ("gone", True), "00TB": ("kept", False), "00TC": ("after", False)}
    assert _subjects(store) == kept
    store.build_indexes_behind(unbuilt).wait()


def test_a_killed_first_load_that_gave_an_activity_twice_is_keyed_by_the_next_run(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sync.mirror.COMMIT_EVERY", 1)
    pull = [
        _task("00TA", "first"),
        Checkpoint("Task", Cursor(T0)),
        _task("00TA", "second"),
        _task("00TB", "only"),
        Checkpoint("Task", Cursor(T0)),
    ]
    killed = Scripted({"Task": [*pull, _task("00TC", "never stored")]})

    def stopped(stream: str, cursor: Cursor | None = None) -> Iterator[Item]:
        yield from Scripted.pull(killed, stream, cursor)
        raise KeyboardInterrupt  # stopped after its last checkpoint

    monkeypatch.setattr(killed, "pull", stopped, raising=False)
    unbuilt: list[Any] = []
    with pytest.raises(KeyboardInterrupt):
        list(mirror_streams(store, killed, T0, streams=["Task"], unbuilt=unbuilt))  # type: ignore[arg-type]
    with store.session() as session:  # as after a SIGKILL: the indexes left to the caller unmade
        for name in _all_indexes(store, Activity) & _index_names(store, Activity):
            session.execute(text(f"DROP INDEX {name}"))
        session.commit()
    fresh = Store(store.url) if store.dialect == "sqlite" else store  # a new process's store
    try:
        pulled = mirror_stream(fresh, Scripted({"Task": [_task("00TD", "next")]}), "Task", T0)  # type: ignore[arg-type]
    finally:
        if fresh is not store:
            fresh.dispose()
    assert not pulled.first_load
    assert _index_names(store, Activity) == _all_indexes(store, Activity)
    assert _subjects(store) == {
        "00TA": ("second", False),
        "00TB": ("only", False),
        "00TD": ("next", False),
    }


_ENTITY = {"Account": "account", "Lead": "person", "Task": "activity", "Opportunity": "opportunity"}


def _index_names(store: Store, model: type[Any]) -> set[str]:
    names = {i["name"] for i in inspect(store.engine).get_indexes(model.__tablename__)}
    return {name for name in names if name}


def _all_indexes(store: Store, model: type[Any]) -> set[str]:
    """The indexes the model makes on ``store``'s database (some on one only: `ddl_if`)."""
    return {index.name for index in model.__table__.indexes if made_on(index, store.dialect)}


# --- one transaction a checkpoint -------------------------------------------------------------


def test_a_checkpoints_rows_and_cursor_commit_together_or_not_at_all(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sync.mirror.COMMIT_EVERY", 1)  # a transaction per checkpoint
    first, second = Cursor(T0, frozenset({"001A", "001B"})), Cursor(T0 + timedelta(hours=1))
    pull = [
        _account("001A", T0),
        _account("001B", T0),
        Checkpoint("Account", first),
        _account("001C", T0 + timedelta(hours=1)),
        Checkpoint("Account", second),
    ]
    saving = store.set_cursors

    def failing_on_the_second(*args: Any, **kwargs: Any) -> Any:
        if args[2]["Account"]["value"] == second.value:  # the cursor's value
            raise RuntimeError("the database went away")
        return saving(*args, **kwargs)

    monkeypatch.setattr(store, "set_cursors", failing_on_the_second)
    with pytest.raises(RuntimeError):
        _mirror(store, "Account", *pull)
    with store.session() as session:
        stored = sorted(a.id for a in session.exec(select(Account)))
        cursor = session.get(SyncCursor, ("salesforce", "Account"))
    assert stored == ["001A", "001B"]  # 001C went with the cursor that failed
    assert cursor is not None and cursor.value == T0 and cursor.ids_at_value == ["001A", "001B"]


def test_checkpoints_gather_into_one_transaction_up_to_its_size(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sync.mirror.COMMIT_EVERY", 6)
    commits: list[int] = []
    begin = store.session

    def counted() -> Any:
        commits.append(1)
        return begin()

    monkeypatch.setattr(store, "session", counted)
    pulled = _mirror(store, "Task", *_org()["Task"])  # 20 records, a checkpoint every 4
    # the cursor read, the decision on the table, 4 commits of 8, 8 and 4, the indexes built
    assert pulled.stored == 20 and len(commits) == 1 + 1 + 3 + 1


def test_tombstones_apply_in_order_with_the_rows(store: Store) -> None:
    _mirror(
        store,
        "Account",
        _account("001A", T0),
        _account("001B", T0),
        Checkpoint("Account", Cursor(T0)),
    )
    later = T0 + timedelta(minutes=1)
    _mirror(
        store,
        "Account",
        Tombstone("Account", "001A", later, "deleted"),
        _account("001A", later + timedelta(seconds=1)),  # restored from the recycle bin
        _account("001B", later),
        Tombstone("Account", "001B", later + timedelta(seconds=1), "deleted"),
        Checkpoint("Account", Cursor(later)),
    )
    with store.session() as session:
        deleted = {a.id: a.is_deleted for a in session.exec(select(Account))}
    assert deleted == {"001A": False, "001B": True}


# --- dirty records on the bulk paths ----------------------------------------------------------


def test_dirty_records_are_skipped_on_a_first_load_while_the_rest_land(
    store: Store, store_url: str
) -> None:
    naive = datetime(2026, 11, 1, 9, 0)  # the dirty value under test
    pull = [
        _account("001A", T0),
        _account("001B", T0, employees=10**10),
        _account("001C", T0, created_at=naive),
        _account("001D", T0, name=None),
        _account("001E", T0, name="Nul\x00 Byte GmbH"),
        _account("001F", T0),
        Checkpoint("Account", Cursor(T0)),
    ]
    pulled = _mirror(store, "Account", *pull)
    with store.session() as session:
        stored = sorted(a.id for a in session.exec(select(Account)))
    reasons = {e.record_id: e.reason for e in pulled.events}
    assert pulled.first_load
    assert "out of range" in reasons["001B"] and "naive" in reasons["001C"]
    assert reasons["001D"] == "no name"
    if store_url.startswith("postgresql"):  # PostgreSQL's text holds no NUL: it refuses the row
        assert "001E" in reasons and stored == ["001A", "001F"]
    else:
        assert stored == ["001A", "001E", "001F"]
    assert sum(pulled.skipped.values()) == len(reasons) and pulled.stored == len(stored)


def test_a_record_that_cannot_be_stored_on_an_upsert_is_skipped_alone(
    store: Store, store_url: str
) -> None:
    _mirror(store, "Account", _account("001A", T0), Checkpoint("Account", Cursor(T0)))
    later = T0 + timedelta(minutes=1)
    pull = [_account(f"001{n}", later) for n in "BCDEFG"]
    pull[1] = _account("001C", later, name="Nul\x00 Byte GmbH")  # PostgreSQL refuses it
    pull[3] = _account("001E", later, employees=-(2**40))
    pulled = _mirror(store, "Account", *pull, Checkpoint("Account", Cursor(later)), at=later)
    with store.session() as session:
        stored = sorted(a.id for a in session.exec(select(Account)))
    reasons = {e.record_id: e.reason for e in pulled.events}
    assert not pulled.first_load
    assert reasons["001E"] == "employees: -1099511627776 is out of range for an integer column"
    refused = {"001E", "001C"} if store_url.startswith("postgresql") else {"001E"}
    assert set(reasons) == refused
    assert stored == sorted({"001A", "001B", "001C", "001D", "001F", "001G"} - refused)


def _mirror_all(store: Store, pulls: Mapping[str, Sequence[Item]]) -> list[StreamPull]:
    """Mirror every scripted stream in one stage."""
    return list(mirror_streams(store, Scripted(pulls), T0, streams=list(pulls)))  # type: ignore[arg-type]


def test_a_full_pull_of_some_streams_reads_only_those_from_their_start(store: Store) -> None:
    asked: dict[str, Cursor | None] = {}

    class Recording(Scripted):
        def pull(self, stream: str, cursor: Cursor | None = None) -> Iterator[Item]:
            asked[stream] = cursor
            yield from super().pull(stream, cursor)

    pulls = _org()
    list(mirror_streams(store, Recording(pulls), T0, streams=["Account", "Task"]))  # type: ignore[arg-type]
    again = mirror_streams(
        store,
        Recording(pulls),  # type: ignore[arg-type]
        T0,
        streams=["Account", "Task"],
        full={"Task"},
    )
    pulled = {p.stream: p for p in again}
    assert asked["Task"] == FULL_LOAD and asked["Account"] != FULL_LOAD
    assert not pulled["Task"].first_load  # its table holds rows: upserted


# --- what the link stage reads ----------------------------------------------------------------

_LINKED = (Account, Person, Opportunity)


def _pending_rows(store: Store) -> dict[str, set[str]]:
    with store.session() as session:
        return {
            model.__tablename__: set(session.exec(select(model.id).where(model.link_pending)))  # type: ignore[attr-defined]
            for model in _LINKED
        }


def test_every_account_person_and_deal_row_the_mirror_writes_is_pending_for_linking(
    store: Store,
) -> None:
    _mirror_all(store, _org())  # a first load (COPY on PostgreSQL)
    first = _pending_rows(store)
    with store.session() as session:  # as after a link stage and a score stage
        for model in _LINKED:
            session.exec(update(model).values(link_pending=False, link_basis="linked"))  # type: ignore[call-overload]
        session.exec(update(Activity).values(scored_seq=1))  # type: ignore[call-overload]
        session.exec(
            update(Person).where(Person.id == "00Q005").values(matched_account_id="001002")
        )  # type: ignore[call-overload]
    later = T0 + timedelta(minutes=1)
    _mirror(
        store,
        "Account",
        _account("001001", later, name="Firm One Renamed"),
        Tombstone("Account", "001002", later, "merged", "001004"),
        Tombstone("Account", "001003", later, "deleted"),
        Checkpoint("Account", Cursor(later)),
    )
    values = {"kind": "lead", "email": "ada@firm1.example", "is_converted": False}
    lead = _mirror(
        store, "Lead", Record("Lead", "00Q001", later, values), Checkpoint("Lead", Cursor(later))
    )
    with store.session() as session:
        bases = {
            basis
            for model in _LINKED
            for basis in session.exec(select(model.link_basis))  # type: ignore[attr-defined]
        }
        seqs = set(session.exec(select(Activity.scored_seq)))
        repointed = session.exec(select(Activity.id).where(Activity.account_id == "001004")).all()

    assert first == {
        "account": {f"001{n:03d}" for n in range(9)},
        "person": {f"00Q{n:03d}" for n in range(12)},
        "opportunity": {f"006{n:03d}" for n in range(3)},
    }
    assert _pending_rows(store) == {
        "account": {"001001", "001002", "001003"},  # updated, merged away, deleted
        "person": {"00Q001", "00Q005"},  # updated; linked to the merged account, repointed
        "opportunity": {"006002"},  # repointed to the survivor
    }
    assert bases == {"linked"} and seqs == {1}  # the link and score stages' own, never written
    assert repointed  # activities follow the survivor too (they carry no flag)
    assert lead.stored == 1


def test_an_activity_is_new_to_the_score_stage_by_its_cycle_and_flagged_once_written_again(
    store: Store,
) -> None:
    org = _org()
    _mirror_all(store, org)  # a first load (COPY on PostgreSQL), before any scoring cycle
    with store.session() as session:
        first = dict(session.exec(select(Activity.id, Activity.scored_seq)).all())
        last = {"catalog": "c", "model_version": "m", "scored_at": T0, "nightly_at": T0}
        session.add(ScoringState(id=1, seq=5, **last))  # five cycles have run
    later = T0 + timedelta(minutes=1)
    edited = next(r for r in org["Task"] if isinstance(r, Record))
    _mirror(
        store,
        "Task",
        Record("Task", edited.id, later, {**edited.values, "type": "demo_request"}),
        Record("Task", "00TNEW", later, {**edited.values, "type": "webinar"}),
        Checkpoint("Task", Cursor(later)),
        at=later,
    )
    with store.session() as session:
        cycles = dict(session.exec(select(Activity.id, Activity.scored_seq)).all())
        flagged = set(session.exec(select(Activity.id).where(col(Activity.link_pending))))

    assert set(first.values()) == {1}  # each counted by the first cycle
    assert cycles == first | {"00TNEW": 6}  # the one after the last; an update keeps its own
    assert flagged == {edited.id}  # written again since it was counted: rebuilt, not added


def _owned_changed_rows(store: Store) -> dict[str, set[str]]:
    with store.session() as session:
        return {
            model.__tablename__: set(session.exec(select(model.id).where(model.owned_changed)))
            for model in (Account, Person)
        }


def test_a_record_pulled_again_with_only_our_fields_changed_is_not_pending_for_linking(
    store: Store,
) -> None:
    org = _org()
    _mirror_all(store, org)  # a first load (COPY on PostgreSQL)
    with store.session() as session:  # as after a link stage
        for model in _LINKED:
            session.exec(update(model).values(link_pending=False))  # type: ignore[call-overload]
    later = T0 + timedelta(hours=1)
    echoed, edited = (r for r in org["Account"] if isinstance(r, Record) and r.id < "001002")
    ours = {"score": 55, "tier": "SDR", "scored_at": T0}
    _mirror(
        store,
        "Account",
        Record("Account", echoed.id, later, {**echoed.values, **ours}),  # our write, read back
        Record("Account", edited.id, later, {**edited.values, **ours, "country": "FR"}),
        Record("Account", "001002", later, dict(org["Account"][2].values)),  # as it was
        Checkpoint("Account", Cursor(later)),
    )
    lead = next(r for r in org["Lead"] if isinstance(r, Record))
    _mirror(
        store,
        "Lead",
        Record("Lead", lead.id, later, {**lead.values, "score": 12, "tier": "Nurture"}),
        Checkpoint("Lead", Cursor(later)),
    )

    assert _pending_rows(store) == {"account": {edited.id}, "person": set(), "opportunity": set()}
    assert _owned_changed_rows(store) == {"account": {echoed.id, edited.id}, "person": {lead.id}}


def test_the_mirror_tells_our_writes_read_back_apart_as_it_stores_them(store: Store) -> None:
    org = _org()
    _mirror_all(store, org)
    echoed, edited = (r for r in org["Account"] if isinstance(r, Record) and r.id < "001002")
    ours = {"score": 55, "tier": "SDR", "scored_at": T0}
    written = {
        "batch": "b1", "values_hash": "not this hash", "values": json.loads(canonical_value(ours)),
        "reasons": [], "status": "ok", "intended_at": T0, "settled_at": T0, "run_id": None,
    }  # fmt: skip
    with store.session() as session:  # as after a link stage, and a write of ours to both
        for model in _LINKED:
            session.exec(update(model).values(link_pending=False))  # type: ignore[call-overload]
        rows = [{**written, "object": "Account", "record_id": r.id} for r in (echoed, edited)]
        store.upsert(session, WriteLedger, rows)
    later = T0 + timedelta(hours=1)
    pulled = [
        Record("Account", echoed.id, later, {**echoed.values, **ours}),  # our write, read back
        Record("Account", edited.id, later, {**edited.values, "score": 56}),  # a hand's edit
        Checkpoint("Account", Cursor(later)),
        Summary("Account"),
    ]
    echoes: set[tuple[str, str]] = set()
    connector = Scripted({"Account": pulled})
    list(mirror_streams(store, connector, later, streams=["Account"], echoes=echoes))  # type: ignore[arg-type]

    assert echoes == {("account", echoed.id)}
    assert _owned_changed_rows(store) == {"account": set(), "person": set()}  # none left
    assert _pending_rows(store) == {"account": {edited.id}, "person": set(), "opportunity": set()}


def test_a_record_read_again_as_a_change_after_its_echo_is_no_echo(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mirror, "COMMIT_EVERY", 1)  # each checkpoint its own transaction
    org = _org()
    _mirror_all(store, org)
    record = next(r for r in org["Account"] if isinstance(r, Record))
    ours = {"score": 55, "tier": "SDR", "scored_at": T0}
    written = {
        "object": "Account", "record_id": record.id, "batch": "b1", "values_hash": "-",
        "values": json.loads(canonical_value(ours)), "reasons": [], "status": "ok",
        "intended_at": T0, "settled_at": T0, "run_id": None,
    }  # fmt: skip
    with store.session() as session:
        for model in _LINKED:
            session.exec(update(model).values(link_pending=False))  # type: ignore[call-overload]
        store.upsert(session, WriteLedger, [written])
    later, latest = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    pulled = [
        Record("Account", record.id, later, {**record.values, **ours}),  # our write, read back
        Checkpoint("Account", Cursor(later)),
        Record("Account", record.id, latest, {**record.values, **ours, "score": 56}),  # by hand
        Checkpoint("Account", Cursor(latest)),
        Summary("Account"),
    ]
    echoes: set[tuple[str, str]] = set()
    connector = Scripted({"Account": pulled})
    list(mirror_streams(store, connector, latest, streams=["Account"], echoes=echoes))  # type: ignore[arg-type]

    assert echoes == set()
    assert _pending_rows(store) == {"account": {record.id}, "person": set(), "opportunity": set()}


def test_a_stream_with_nothing_new_saves_its_cursor_with_the_next_streams_rows(
    store: Store,
) -> None:
    later = T0 + timedelta(hours=1)
    nothing = [Checkpoint("Contact", Cursor(T0, read_at=later)), Summary("Contact")]
    rows = [_account("001A", later), Checkpoint("Account", Cursor(later, frozenset({"001A"})))]
    connector = Scripted({"Contact": nothing, "Account": [*rows, Summary("Account")]})
    stage = mirror_streams(store, connector, later, streams=["Contact", "Account"])  # type: ignore[arg-type]
    contact = next(stage)
    with store.session() as session:  # waiting for the next transaction
        assert session.get(SyncCursor, ("salesforce", "Contact")) is None
    assert contact.stored == 0 and [p.stream for p in stage] == ["Account"]
    with store.session() as session:
        cursors = {c.object: c for c in session.exec(select(SyncCursor))}
    assert cursors["Contact"].read_at == later and cursors["Account"].value == later


def test_a_cursor_waiting_for_the_next_transaction_is_lost_harmlessly_when_that_fails(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(store, "set_cursors", failing)
    nothing = [Checkpoint("Contact", Cursor(T0, read_at=T0)), Summary("Contact")]
    rows = [_account("001A", T0), Checkpoint("Account", Cursor(T0, frozenset({"001A"})))]
    connector = Scripted({"Contact": nothing, "Account": rows})
    stage = mirror_streams(store, connector, T0, streams=["Contact", "Account"])  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        list(stage)
    with store.session() as session:
        assert session.get(SyncCursor, ("salesforce", "Contact")) is None  # read again next run
        assert session.get(Account, "001A") is None


def test_a_streams_last_rows_commit_with_the_next_streams_and_it_is_yielded_after(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits: list[int] = []
    begin = store.session

    def counted() -> Any:
        commits.append(1)
        return begin()

    pulls = {name: _org()[name] for name in ("Account", "Lead", "Opportunity")}
    stage = mirror_streams(store, Scripted(pulls), T0, streams=list(pulls))  # type: ignore[arg-type]
    first = next(stage)  # Account: yielded once its rows are in, with the others'
    monkeypatch.setattr(store, "session", counted)
    with store.session() as session:
        accounts = session.exec(select(Account.id)).all()
        cursors = {c.object for c in session.exec(select(SyncCursor))}
    rest = list(stage)
    assert first.stream == "Account" and len(accounts) == first.stored == 9
    assert cursors == set(pulls)  # every stream's rows and cursor in the one transaction
    # after it: this test's own read and the indexes built, no commit of rows
    assert [p.stream for p in rest] == ["Lead", "Opportunity"] and len(commits) == 1 + 1


def test_a_failed_pull_leaves_the_streams_before_it_committed(store: Store) -> None:
    class Failing(Scripted):
        def pull(self, stream: str, cursor: Cursor | None = None) -> Iterator[Item]:
            if stream == "Lead":
                yield from list(super().pull(stream, cursor))[:3]  # records, no checkpoint
                raise RuntimeError("the API budget is spent")
            yield from super().pull(stream, cursor)

    org = _org()
    nothing = [Checkpoint("Contact", Cursor(T0, read_at=T0)), Summary("Contact")]
    pulls = {"Contact": nothing, "Account": org["Account"], "Lead": org["Lead"]}
    yielded: list[str] = []
    with pytest.raises(RuntimeError):
        for pulled in mirror_streams(store, Failing(pulls), T0, streams=list(pulls)):  # type: ignore[arg-type]
            yielded.append(pulled.stream)
    with store.session() as session:
        accounts = session.exec(select(func.count()).select_from(Account)).one()
        people = session.exec(select(func.count()).select_from(Person)).one()
        cursors = {c.object for c in session.exec(select(SyncCursor))}
    assert accounts == 9 and people == 0 and cursors == {"Contact", "Account"}
    assert yielded == ["Contact", "Account"]  # a run stopped here counts them as pulled


def test_the_parts_of_a_run_keep_each_id_where_it_came_last_batches_in_id_order() -> None:
    """`latest_parts`: an id given again in a later batch or record is dropped where it came
    first; one a batch holds twice (which the protocol rules out) is kept as its later row, and
    so is the last of rows without an id; a batch's rows come in id order (rows sharing an id
    keep their order until one is chosen)."""
    from sync.mirror_batches import latest_parts

    at = datetime(2026, 1, 1, tzinfo=UTC)

    def batch(*rows: tuple[str, str]) -> RecordBatch:
        frame = pl.DataFrame(
            {
                "id": [i for i, _ in rows],
                "modified_at": [at] * len(rows),
                "name": [n for _, n in rows],
            }
        )
        return RecordBatch(
            "accounts", frame.with_columns(pl.col("modified_at").dt.cast_time_unit("us"))
        )

    run = [
        batch(("c", "c1"), ("a", "a1"), ("b", "b1"), ("a", "a2"), ("d", "d1")),
        Record("accounts", "d", at, {"name": "d2"}),
        batch(("b", "b2"), ("e", "e1")),
    ]
    first, records, last = latest_parts(run)
    assert isinstance(first, pl.DataFrame) and isinstance(last, pl.DataFrame)
    assert first.select("id", "name").rows() == [("a", "a2"), ("c", "c1")]
    assert [(r.id, r.values["name"]) for r in records] == [("d", "d2")]
    assert last.select("id", "name").rows() == [("b", "b2"), ("e", "e1")]
    # rows without an id are one id (stored as one, refused there), the last of them kept
    [nameless] = latest_parts([batch((None, "x1"), (None, "x2"))])  # type: ignore[arg-type]
    assert isinstance(nameless, pl.DataFrame)
    assert nameless.select("id", "name").rows() == [(None, "x2")]


def test_tombstones_of_one_list_are_weighed_against_what_those_before_them_left(
    store: Store,
) -> None:
    later = _accounts_held(store, "AC")
    merged = Tombstone("Account", "001A", later, "merged", "001C")
    _mirror(store, "Account", merged, Checkpoint("Account", Cursor(later)))
    # held merged into 001C: a deletion, then the merge again, in one list
    deleted = Tombstone("Account", "001A", later, "archived")
    both = _mirror(
        store, "Account", deleted, merged, Checkpoint("Account", Cursor(later)), at=later
    )
    twice = _mirror(
        store, "Account", merged, merged, Checkpoint("Account", Cursor(later)), at=later
    )

    with store.session() as session:
        loser = session.get(Account, "001A")
    assert loser is not None and (loser.is_deleted, loser.merged_into) == (True, "001C")
    assert both.tombstones == 2 and twice.tombstones == 0


def test_a_merge_hands_on_what_points_at_a_record_never_held_and_mends_a_chain_given_backwards(
    store: Store,
) -> None:
    later = _accounts_held(store, "ABC")
    touch = {"type": "pricing_page", "occurred_at": T0, "rep_touch": False}
    _mirror(
        store,
        "Task",
        Record("Task", "00TA", T0, touch | {"account_id": "001A"}),
        Record("Task", "00TX", T0, touch | {"account_id": "001X"}),  # an account never held
        Checkpoint("Task", Cursor(T0)),
    )
    backwards = [
        Tombstone("Account", "001B", later, "merged", "001C"),
        Tombstone("Account", "001A", later, "merged", "001B"),
        Tombstone("Account", "001X", later, "merged", "001C"),
    ]
    _mirror(store, "Account", *backwards, Checkpoint("Account", Cursor(later)), at=later)
    with store.session() as session:
        first = {a.id: a.account_id for a in session.exec(select(Activity))}
    again = _mirror(store, "Account", *backwards, Checkpoint("Account", Cursor(later)), at=later)
    with store.session() as session:
        then = {a.id: a.account_id for a in session.exec(select(Activity))}

    assert first == {"00TA": "001B", "00TX": "001C"}  # A went to B before B's own merge came
    assert then == {"00TA": "001C", "00TX": "001C"}  # the list again: B's merge hands it on
    assert again.tombstones == 0  # nothing about the accounts themselves changed
