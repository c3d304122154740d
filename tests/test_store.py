"""The state store on SQLite and PostgreSQL: round trips, upserts, cursors, history, ledger."""

from __future__ import annotations

import gc
import json
import math
import os
import shutil
import sqlite3
import time
import weakref
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, func, select

from sync import (
    Account,
    Activity,
    AppendOnlyError,
    Assignment,
    Disposition,
    NaiveDatetimeError,
    Opportunity,
    Person,
    RunEvent,
    ScoreHistory,
    SlaClock,
    Store,
    StoreOpenError,
    SyncCursor,
    SyncRun,
    User,
    WriteLedger,
    staging,
)
from sync.state import CurrentScore, NameVariant, table_of
from sync.store import (
    canonical_plain,
    insert_rows_missing,
    last_rowid,
    update_frame,
    update_rows,
    update_span,
)
from sync.wal import BACKSTOP_PAGES
from tests.conftest import copy_template

T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
MIRROR = {"crm_modified_at": T0, "is_deleted": False, "synced_at": T0 + timedelta(minutes=1)}
ACCOUNT_ID = "001A"
RUN_ID = "run-1"

ROWS: dict[type[SQLModel], dict[str, Any]] = {
    Account: {
        "id": "001B",
        "name": "Acme GmbH",
        "website": "https://acme.de",
        "domain": "acme.de",
        "country": "DE",
        "region": "EMEA",
        "industry": "Fintech",
        "employees": 420,
        "revenue": 12_500_000.5,
        "parent_id": ACCOUNT_ID,
        "owner_id": "005X",
        "is_customer": False,
        "is_competitor": True,
        "disposition": "Rejected",
        "reason_code": "Competitor",
        **MIRROR,
    },
    Person: {
        "id": "00Q1",
        "kind": "lead",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@acme.de",
        "company": "Acme",
        "title": "CTO",
        "phone": "+49 30 1234",
        "country": "DE",
        "city": "Berlin",
        "account_id": None,
        "is_converted": True,
        "converted_account_id": ACCOUNT_ID,
        "owner_id": "005X",
        "matched_account_id": ACCOUNT_ID,
        "match_rule": "email_domain",
        "match_confidence": 0.95,
        "orphan_reason": None,
        **MIRROR,
    },
    Activity: {
        "id": "act-1",
        "type": "pricing_page",
        "occurred_at": T0 - timedelta(days=2),
        "person_id": "00Q1",
        "account_id": ACCOUNT_ID,
        "topic": "security",
        "owner_id": "005X",
        "subject": "Viewed pricing",
        **MIRROR,
    },
    Opportunity: {
        "id": "006A",
        "account_id": ACCOUNT_ID,
        "name": "Acme renewal",
        "stage": "Closed Won",
        "amount": 48_000.0,
        "opened_at": T0 - timedelta(days=30),
        "close_date": date(2024, 4, 30),
        "is_closed": True,
        "is_won": True,
        "owner_id": "005X",
        **MIRROR,
    },
    User: {
        "id": "005X",
        "name": "Sam Seller",
        "email": "sam@example.com",
        "role": "ae",
        "territory": "DACH",
        "is_active": True,
        "out_of_office": True,
        "manager_id": "005M",
        **MIRROR,
    },
    SyncRun: {
        "id": "run-2",
        "seq": 2,
        "connector": "hubspot",
        "started_at": T0,
        "finished_at": T0 + timedelta(minutes=3),
        "status": "failed",
        "counts": {"pulled": 10, "written": 0},
        "error": "HTTP 401",
        "full": True,
        "full_reason": "asked for",
    },
    ScoreHistory: {
        "account_id": ACCOUNT_ID,
        "scored_at": T0,
        "score": 83.5,
        "tier": "ae",
        "model_version": "rules-1",
        "disqualified_reason": None,
        "topic": "security",
        "contributions": [{"feature": "pricing_page", "label": "Visited pricing 3x", "points": 12}],
        "run_id": RUN_ID,
    },
    Assignment: {
        "account_id": ACCOUNT_ID,
        "owner_id": "005X",
        "rule": "territory:DACH",
        "tier": "ae",
        "assigned_at": T0,
        "ended_at": None,
        "run_id": RUN_ID,
    },
    SlaClock: {
        "account_id": ACCOUNT_ID,
        "owner_id": "005X",
        "tier": "ae",
        "started_at": T0,
        "due_at": T0 + timedelta(minutes=15),
        "first_touch_at": None,
        "breached_at": T0 + timedelta(minutes=15),
        "escalated_at": T0 + timedelta(minutes=16),
        "status": "escalated",
    },
    Disposition: {
        "object": "Account",
        "record_id": ACCOUNT_ID,
        "recorded_at": T0,
        "disposition": "Rejected",
        "reason_code": "No Budget",
        "source": "crm",
    },
    WriteLedger: {
        "object": "Account",
        "record_id": ACCOUNT_ID,
        "batch": "b1",
        "values_hash": "abc",
        "values": {"score": 83},
        "reasons": ["signal:pricing_page"],
        "status": "permanent",
        "code": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "message": "Choose a Reason Code",
        "intended_at": T0,
        "settled_at": T0,
        "run_id": RUN_ID,
    },
    SyncCursor: {
        "connector": "salesforce",
        "object": "Account",
        "value": T0,
        "ids_at_value": ["001A", "001B"],
        "updated_at": T0,
    },
    RunEvent: {
        "run_id": RUN_ID,
        "at": T0,
        "stage": "write",
        "object": "Account",
        "record_id": ACCOUNT_ID,
        "action": "skipped",
        "reason": "unchanged",
        "detail": "score 83 already written",
    },
}


def _seed(store: Store) -> None:
    """An account and a sync run that history, assignments and events can refer to."""
    with store.session() as session:
        store.upsert(session, Account, [{"id": ACCOUNT_ID, "name": "Acme", **MIRROR}])
        store.record_run_start(session, "salesforce", T0, run_id=RUN_ID)


def _person(person_id: str, **changes: Any) -> dict[str, Any]:
    return {"id": person_id, "kind": "lead", "email": f"{person_id}@acme.de", **MIRROR, **changes}


def _count(store: Store, model: type[SQLModel]) -> int:
    with store.session() as session:
        return session.exec(select(func.count()).select_from(model)).one()


@pytest.mark.parametrize("model", list(ROWS), ids=lambda model: model.__name__)
def test_every_table_round_trips(store: Store, model: type[SQLModel]) -> None:
    _seed(store)
    row = ROWS[model]
    with store.session() as session:
        session.add(model(**row))
    with store.session() as session:
        stored = session.exec(select(model).order_by(*model.__table__.primary_key)).all()[-1]
    assert {field: getattr(stored, field) for field in row} == row


def test_upsert_updates_in_place_and_reruns_change_nothing(store: Store) -> None:
    first = [_person("p1"), _person("p2"), _person("p3")]
    second = [_person("p2", title="VP Sales", crm_modified_at=T0 + timedelta(hours=1))]
    for _ in range(2):
        with store.session() as session:
            store.upsert(session, Person, first)
            store.upsert(session, Person, second)
    with store.session() as session:
        people = {person.id: person for person in session.exec(select(Person))}
    assert sorted(people) == ["p1", "p2", "p3"]
    assert people["p2"].title == "VP Sales"
    assert people["p2"].crm_modified_at == T0 + timedelta(hours=1)
    assert people["p1"].title is None


@pytest.mark.parametrize(
    ("owned", "sqlite_only"),
    [
        ({"score": 71.5, "name": "Müller AG", "none": None, "flag": True, "n": -3}, False),
        ({"big": 2**70 + 1, "limit": 2**63 - 1, "phone": "00491761234567890123"}, False),
        ({"nan": math.nan}, True),  # json writes NaN; PostgreSQL's json refuses it
        ({"broken": "\ud800"}, True),  # a lone surrogate, which orjson refuses
    ],
    ids=["plain", "past-64-bits", "nan", "surrogate"],
)
def test_json_values_read_back_as_written_even_where_orjson_would_refuse_them(
    store: Store, owned: dict[str, Any], sqlite_only: bool
) -> None:
    if sqlite_only and store.dialect != "sqlite":
        pytest.skip("PostgreSQL's json type refuses the value itself")
    with store.session() as session:
        store.upsert(session, Person, [_person("p1", crm_owned=owned)])
    with store.session() as session:
        person = session.get(Person, "p1")
    assert person is not None
    assert json.dumps(person.crm_owned) == json.dumps(owned)  # NaN == NaN, ints stay ints


@pytest.mark.parametrize(
    ("points", "reason", "sqlite_only"),
    [
        ([12.34, -0.5, 2**62], 'M\u00fcller \u2028 "q"', False),  # written by orjson
        ([1.5e-05], "a float orjson writes otherwise", False),
        ([2**70 + 1], "past 64 bits, which orjson refuses", False),
        ([math.nan, math.inf], "json writes NaN, orjson null", True),  # PostgreSQL's json refuses
        ([1.0], "\ud800", True),  # a lone surrogate, which orjson refuses
    ],
    ids=["plain", "small", "past-64-bits", "nan", "surrogate"],
)
def test_compact_json_reads_back_as_written_whichever_writes_it(
    store: Store, points: list[Any], reason: str, sqlite_only: bool
) -> None:
    # a score's contributions and reasons are written by orjson where it reads back alike
    if sqlite_only and store.dialect != "sqlite":
        pytest.skip("PostgreSQL's json type refuses the value itself")
    contributions = [{"key": f"k{n}", "points": p, "reason": reason} for n, p in enumerate(points)]
    score = {**ROWS[ScoreHistory], "contributions": contributions, "run_id": None}
    current = {k: v for k, v in score.items() if k != "contributions"} | {"reasons": [reason]}
    with store.session() as session:
        store.upsert(session, Account, [{**ROWS[Account], "id": ACCOUNT_ID, "parent_id": None}])
        store.append_scores(session, [score])
        store.put_mappings(session, table_of(CurrentScore), [current])
    with store.session() as session:
        [held] = session.exec(select(ScoreHistory)).all()
        kept = session.get(CurrentScore, ACCOUNT_ID)
    assert json.dumps(held.contributions) == json.dumps(contributions)  # NaN == NaN, ints stay ints
    assert kept is not None and kept.reasons == [reason]


def test_a_disposed_store_is_freed_with_its_connections(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    with store.session() as session:
        store.upsert(session, Person, [_person("p1")])
    assert store.checkpointer is not None
    store.dispose()
    freed = weakref.ref(store)
    del store, session
    gc.collect()
    assert freed() is None  # nothing process-wide (an event registry) holds it


def test_upsert_leaves_columns_missing_from_the_row_alone(store: Store) -> None:
    with store.session() as session:
        store.upsert(session, Person, [_person("p1", matched_account_id=ACCOUNT_ID)])
    with store.session() as session:
        store.upsert(session, Person, [_person("p1", title="CTO")])
        person = session.get(Person, "p1")
    assert person is not None
    assert (person.title, person.matched_account_id) == ("CTO", ACCOUNT_ID)


def test_upsert_handles_more_rows_than_one_batch(store: Store) -> None:
    rows = (_person(f"p{index}") for index in range(2_500))
    with store.session() as session:
        assert store.upsert(session, Person, rows, batch_size=1_000) == 2_500
    assert _count(store, Person) == 2_500


@pytest.mark.parametrize("new", [True, False], ids=["new", "upsert"])
def test_a_frame_of_rows_lands_but_for_the_row_the_database_refuses(
    store: Store, new: bool
) -> None:
    frame = pl.DataFrame(
        {
            "id": ["p1", "p2", "p3", "p4"],
            "kind": ["lead", "prospect", "contact", "lead"],  # no person is a "prospect"
            "title": ["CTO", None, "\x01", None],  # a text that stands in for null on SQLite
            "employees": [10, None, 30, None],
            "revenue": [1.5, None, None, 2.0],
        }
    )
    table = Person.__table__  # type: ignore[attr-defined]
    given = {**MIRROR, "is_converted": False, "link_pending": True, "owned_changed": False}
    fixed = {**given, "crm_owned": {}}
    adapters = store.adapters(table, list(fixed))
    fixed = {n: v if a is None else a(v) for (n, v), a in zip(fixed.items(), adapters, strict=True)}
    with store.session() as session:
        written = store.write_frame(session, table, frame, fixed=fixed, new=new)
    assert written.stored == 3 and [row[0] for row, _ in written.refused] == ["p2"]
    with store.session() as session:
        people = {
            p.id: (p.kind, p.title, p.employees, p.revenue) for p in session.exec(select(Person))
        }
    assert people == {
        "p1": ("lead", "CTO", 10, 1.5),
        "p3": ("contact", "\x01", 30, None),
        "p4": ("lead", None, None, 2.0),
    }


def test_many_rows_land_in_statements_of_many_but_for_the_one_refused(store: Store) -> None:
    # 1,234 rows: on SQLite two statements of 500 rows and a rest, the refused row in the second
    kinds = ["prospect" if n == 700 else "lead" for n in range(1_234)]  # no person is a prospect
    frame = pl.DataFrame(
        {
            "id": [f"p{n:04}" for n in range(1_234)],
            "kind": kinds,
            "title": [None if n % 3 else f"T{n}" for n in range(1_234)],
        }
    )
    table = Person.__table__  # type: ignore[attr-defined]
    given = {**MIRROR, "is_converted": False, "link_pending": True, "owned_changed": False}
    fixed = {**given, "crm_owned": {}}
    adapters = store.adapters(table, list(fixed))
    fixed = {n: v if a is None else a(v) for (n, v), a in zip(fixed.items(), adapters, strict=True)}
    again = frame.with_columns(pl.col("title").fill_null("again"))  # each row updated in place
    for rows in (frame, again):
        with store.session() as session:
            written = store.write_frame(session, table, rows, fixed=fixed)
        assert written.stored == 1_233 and [row[0] for row, _ in written.refused] == ["p0700"]
    with store.session() as session:
        titles = dict(session.execute(select(Person.id, Person.title)).all())
    expected = dict(zip(again["id"], again["title"], strict=True))
    del expected["p0700"]
    assert titles == expected


def _people_frame(rows: int, refused: int | None = None) -> pl.DataFrame:
    """``rows`` people as a frame `write_frame` takes; the one at ``refused`` is a prospect,
    which no person is."""
    return pl.DataFrame(
        {
            "id": [f"p{n:05}" for n in range(rows)],
            "kind": ["prospect" if n == refused else "lead" for n in range(rows)],
            "title": [None if n % 3 else f"T{n}" for n in range(rows)],
            "employees": [n if n % 2 else None for n in range(rows)],
        }
    )


def _person_fixed(store: Store) -> dict[str, Any]:
    """The values every row of `_people_frame` is given, made ready for the database."""
    table = Person.__table__  # type: ignore[attr-defined]
    given = {**MIRROR, "is_converted": False, "link_pending": True, "owned_changed": False}
    fixed = {**given, "crm_owned": {}}
    adapters = store.adapters(table, list(fixed))
    return {n: v if a is None else a(v) for (n, v), a in zip(fixed.items(), adapters, strict=True)}


@pytest.fixture
def sqlite_store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    with Store.open(copy_template(request, tmp_path / "state.db")) as opened:
        yield opened


@pytest.fixture
def stagings(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each frame `Store.write_frame` offered the stages went by way of one; staging
    on again after the test should it turn itself off."""
    offered: list[bool] = []

    def spied(*given: Any) -> bool:
        offered.append(staging.insert_staged(*given))
        return offered[-1]

    monkeypatch.setattr("sync.store.insert_staged", spied)
    monkeypatch.setattr(staging, "_failed", [])
    return offered


def _images(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each database the driver writes from here on."""
    made: list[int] = []
    image = staging._driver_image

    def counted(*given: Any) -> bytes | None:
        made.append(len(written := image(*given) or b""))
        return written or None

    monkeypatch.setattr(staging, "_driver_image", counted)
    return made


def test_a_large_frame_with_a_row_the_database_refuses_is_bound_to_find_it(
    sqlite_store: Store, stagings: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    images = _images(monkeypatch)
    table = Person.__table__  # type: ignore[attr-defined]
    rows = staging.MIN_ROWS + 500
    with sqlite_store.session() as session:
        written = sqlite_store.write_frame(
            session, table, _people_frame(rows, refused=1_700), fixed=_person_fixed(sqlite_store)
        )
    # the rows were staged, and the INSERT of them refused whole and undone
    assert len(images) == 1 and images[0] > 0 and stagings == [False]
    assert written.stored == rows - 1 and [row[0] for row, _ in written.refused] == ["p01700"]
    with sqlite_store.session() as session:
        held = dict(session.execute(select(Person.id, Person.employees)).all())
    assert len(held) == rows - 1 and "p01700" not in held
    assert held["p01699"] == 1_699 and held["p01698"] is None


def test_a_large_frame_of_updates_lands_by_way_of_a_stage_as_bound_rows_would(
    sqlite_store: Store, stagings: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    updated: list[bool] = []

    def spied(*given: Any) -> bool:
        updated.append(staging.update_staged(*given))
        return updated[-1]

    monkeypatch.setattr("sync.store.update_staged", spied)
    table = Person.__table__  # type: ignore[attr-defined]
    rows = staging.MIN_ROWS + 500
    with sqlite_store.session() as session:
        sqlite_store.write_frame(
            session, table, _people_frame(rows), fixed=_person_fixed(sqlite_store)
        )
    ids = [f"p{n:05}" for n in reversed(range(rows))]
    changed = pl.DataFrame(
        {
            "id": [*ids, "p99999"],  # a key not held: updates nothing
            "title": [None if n % 3 else f"T\u00e9{n}" for n in range(rows + 1)],
            "link_pending": [n % 2 == 0 for n in range(rows + 1)],
            "match_confidence": [None if n % 5 else n / 7 for n in range(rows + 1)],
            "orphan_reason": pl.Series([None] * (rows + 1), dtype=pl.String),  # all null
            "employees": [n for n in range(rows + 1)],
        }
    )
    before = {f"p{n:05}": "no_domain" for n in range(rows)}
    with sqlite_store.session() as session:
        session.execute(update(table).values(orphan_reason="no_domain"))
        update_frame(session, table, changed)
        twice = pl.DataFrame({"id": ["p00007", *ids], "link_basis": ["first", *(["b"] * rows)]})
        update_frame(session, table, twice)  # a key given twice: bound, its last values kept
    assert updated == [True]
    with sqlite_store.session() as session:
        held = {
            r[0]: tuple(r[1:])
            for r in session.execute(
                select(
                    Person.id,
                    Person.title,
                    Person.link_pending,
                    Person.match_confidence,
                    Person.orphan_reason,
                    Person.employees,
                    Person.link_basis,
                )
            )
        }
    expected = {
        i: (title, pending, confidence, None, employees, "b")
        for i, title, pending, confidence, _, employees in changed.iter_rows()
        if i in before
    }
    assert held == expected


def test_staged_rows_commit_or_roll_back_with_the_callers_transaction(
    sqlite_store: Store, stagings: list[bool], tmp_path: Path
) -> None:
    table = Person.__table__  # type: ignore[attr-defined]
    fixed = _person_fixed(sqlite_store)
    with pytest.raises(RuntimeError), sqlite_store.session() as session:
        sqlite_store.write_frame(session, table, _people_frame(staging.MIN_ROWS), fixed=fixed)
        raise RuntimeError("the stage fails after it")
    assert _count(sqlite_store, Person) == 0 and stagings == [True]
    # one transaction, a write before the frames: each frame a stage of its own (SQLite does not
    # let a database a transaction read be replaced), one more than there are stages bound
    frames = [
        _people_frame(staging.MIN_ROWS).with_columns(pl.col("id") + f"-{n}")
        for n in range(len(staging.STAGES) + 1)
    ]
    with sqlite_store.session() as session:
        session.execute(update(table).values(title="unrelated"))
        for frame in frames:
            assert sqlite_store.write_frame(session, table, frame, fixed=fixed).stored == 2_000
        pooled = session.connection().connection
        used, raw = pooled.info["handoff_stages_used"], pooled.driver_connection
        assert used == set(staging.STAGES)
    assert stagings == [True, *[True] * len(staging.STAGES), False]
    assert _count(sqlite_store, Person) == len(frames) * staging.MIN_ROWS
    # handed back to the pool, the connection's stages were emptied
    held = [
        raw.execute(f"SELECT count(*) FROM {stage}.sqlite_master").fetchone()
        for stage in staging.STAGES
    ]
    assert used == set() and held == [(0,)] * len(staging.STAGES)
    assert not list(tmp_path.glob(".handoff-stage-*"))  # the driver's files are gone


def test_awkward_numbers_staged_store_as_they_store_bound(
    sqlite_store: Store, stagings: list[bool], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = Person.__table__  # type: ignore[attr-defined]
    rows = staging.MIN_ROWS
    odd = [math.nan, math.inf, -math.inf, -0.0, 5e-324, None, 1.5]
    frame = _people_frame(rows).with_columns(
        pl.Series("employees", [n % 30_000 - 15_000 for n in range(rows)], dtype=pl.Int16),
        pl.Series("revenue", [odd[n % len(odd)] for n in range(rows)], dtype=pl.Float64),
        pl.Series("phone", ["a\x00b" if n % 2 else "" for n in range(rows)]),
    )
    query = "SELECT id, employees, typeof(employees), revenue, typeof(revenue), phone FROM person"
    held = []
    for store in (sqlite_store, Store.open(f"sqlite:///{tmp_path / 'bound.db'}")):
        with store.session() as session:
            store.write_frame(session, table, frame, fixed=_person_fixed(store))
        with store.engine.connect() as connection:
            held.append(sorted(map(tuple, connection.exec_driver_sql(query))))
        monkeypatch.setattr("sync.store.insert_staged", lambda *given: False)
        store.dispose()
    assert stagings == [True] and held[0] == held[1]
    assert {row[4] for row in held[0]} == {"real", "null"}  # NaN as null, as sqlite3 binds it


def test_a_stage_sqlite_will_not_replace_leaves_the_rows_to_be_bound(tmp_path: Path) -> None:
    class Busy:  # a connection whose SQLite refuses to replace a stage read by its transaction
        def __init__(self, connection: sqlite3.Connection) -> None:
            self._connection = connection
            self.in_transaction = False

        def execute(self, statement: str) -> Any:
            return self._connection.execute(statement)

        def deserialize(self, data: bytes, *, name: str) -> None:
            raise sqlite3.OperationalError("database is locked")

    with closing(sqlite3.connect(tmp_path / "state.db")) as connection:
        staging.attach_stages(connection)
        connection.execute("CREATE TABLE t (id TEXT)")
        used: set[str] = set()
        frame = pl.DataFrame({"id": [str(n) for n in range(staging.MIN_ROWS)]})
        busy = Busy(connection)
        assert not staging.insert_staged(busy, used, "t", frame, [], None)  # type: ignore[arg-type]
        assert used == {staging.STAGES[0]}  # not offered again in this transaction
        assert staging.insert_staged(connection, used, "t", frame, [], None, tmp_path)
        assert used == set(staging.STAGES[:2])
        assert connection.execute("SELECT count(*) FROM t").fetchone() == (staging.MIN_ROWS,)


def test_the_drivers_files_a_killed_process_left_are_swept_when_the_store_opens(
    tmp_path: Path,
) -> None:
    left, fresh = tmp_path / ".handoff-stage-old.db", tmp_path / ".handoff-stage-new.db"
    for path in (left, fresh):
        path.write_bytes(b"rows")
    hours_ago = time.time() - 7_200
    os.utime(left, (hours_ago, hours_ago))  # a staging takes milliseconds
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}"):
        pass
    assert not left.exists() and fresh.exists()  # another process may be writing that one


def test_without_the_driver_or_once_it_failed_large_frames_are_bound(
    sqlite_store: Store,
    stagings: list[bool],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import adbc_driver_sqlite.dbapi

    table = Person.__table__  # type: ignore[attr-defined]
    fixed = _person_fixed(sqlite_store)
    images = _images(monkeypatch)
    real = adbc_driver_sqlite.dbapi.connect

    def broken(*given: Any, **options: Any) -> Any:
        raise OSError("No space left on device")

    monkeypatch.setattr(adbc_driver_sqlite.dbapi, "connect", broken)
    with sqlite_store.session() as session:
        sqlite_store.write_frame(session, table, _people_frame(staging.MIN_ROWS), fixed=fixed)
    assert (
        "staging 2000 rows failed; large frames are bound row by row from now on: "
        "No space left on device" in caplog.text
    )
    monkeypatch.setattr(adbc_driver_sqlite.dbapi, "connect", real)  # it would work again
    with sqlite_store.session() as session:
        frame = _people_frame(staging.MIN_ROWS).with_columns(pl.lit("Again").alias("title"))
        sqlite_store.write_frame(session, table, frame, fixed=fixed)
    assert len(images) == 1  # the driver was not tried again in this process
    monkeypatch.setattr(staging, "_failed", [])
    monkeypatch.setattr(staging, "_missing", lambda: "no driver here")
    with sqlite_store.session() as session:
        frame = _people_frame(staging.MIN_ROWS).with_columns(pl.lit("Third").alias("title"))
        sqlite_store.write_frame(session, table, frame, fixed=fixed)
    assert stagings == [False, False, False] and len(images) == 1
    with sqlite_store.session() as session:
        titles = set(session.execute(select(Person.title)).scalars())
    assert titles == {"Third"} and _count(sqlite_store, Person) == staging.MIN_ROWS


def test_updates_of_many_rows_land_as_one_a_row_would(store: Store) -> None:
    # 1,234 people: on SQLite two statements of 500 rows and a rest; a key not held, nulls, an
    # empty text; on SQLite a key given twice (its last values kept, as a row at a time keeps
    # them); and a ledger's two-column key
    table = Person.__table__  # type: ignore[attr-defined]
    fixed = {**MIRROR, "is_converted": False, "link_pending": True, "owned_changed": False}
    adapters = store.adapters(table, [*fixed, "crm_owned"])
    given = [*fixed.values(), {}]
    fixed = {
        name: v if a is None else a(v)
        for name, v, a in zip([*fixed, "crm_owned"], given, adapters, strict=True)
    }
    people = pl.DataFrame({"id": [f"p{n:04}" for n in range(1_234)], "kind": "lead"})
    with store.session() as session:
        store.write_frame(session, table, people, fixed=fixed)
    changed = pl.DataFrame(
        {
            "id": [*people["id"].reverse(), "p9999"],
            "title": [None if n % 3 else f"T\u00e9{n}" for n in range(1_235)],
            "link_basis": ["" if n % 5 else f"b{n}" for n in range(1_235)],
        }
    )
    with store.session() as session:
        update_frame(session, table, changed)
        if store.dialect == "sqlite":  # PostgreSQL's UPDATE ... FROM keeps either row's values
            twice = [("p0007", "first"), *((f"p{n:04}", "again") for n in range(8, 506))]
            update_rows(session, table, ("id", "title"), [*twice, ("p0007", "last")])
    with store.session() as session:
        held = {
            r[0]: r[1:] for r in session.execute(select(Person.id, Person.title, Person.link_basis))
        }
    expected = {i: (t, b) for i, t, b in changed.iter_rows() if i != "p9999"}
    if store.dialect == "sqlite":
        expected |= {f"p{n:04}": ("again", expected[f"p{n:04}"][1]) for n in range(8, 506)}
        expected["p0007"] = ("last", expected["p0007"][1])
    assert held == expected
    ledger = table_of(WriteLedger)
    stamp = store.adapters(ledger, ["intended_at"])[0]
    at = T0 if stamp is None else stamp(T0)
    intended = [
        {
            **ROWS[WriteLedger],
            "object": o,
            "record_id": f"r{n}",
            "run_id": None,
        }
        for n in range(600)
        for o in ("Account", "Lead")
    ]
    with store.session() as session:
        store.upsert(session, WriteLedger, intended)
        settled = [
            (o, f"r{n}", "ok" if n % 2 else "permanent", None, f"m{n}", at)
            for n in range(600)
            for o in ("Lead",)
        ]
        update_rows(
            session,
            ledger,
            ("object", "record_id", "status", "code", "message", "settled_at"),
            settled,
        )
    with store.session() as session:
        statuses = {
            (r[0], r[1]): (r[2], r[3])
            for r in session.execute(
                select(ledger.c.object, ledger.c.record_id, ledger.c.status, ledger.c.message)
            )
        }
    assert statuses == {
        (o, f"r{n}"): ("permanent", "Choose a Reason Code")
        if o == "Account"
        else ("ok" if n % 2 else "permanent", f"m{n}")
        for n in range(600)
        for o in ("Account", "Lead")
    }


def test_rows_inserted_together_are_updated_as_the_span_of_their_rowids(store: Store) -> None:
    # the write ledger's settle: the rows an insert added, as `last_rowid` before and after it
    # bounds them, and of one batch; rows inserted before or after it, or of another batch, kept
    ledger = table_of(WriteLedger)
    columns = ("object", "record_id", "batch", "values", "reasons")
    stamp = store.adapters(ledger, ["intended_at"])[0]
    fixed = {
        "values_hash": "abc",
        "status": "permanent",
        "code": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "message": "Choose a Reason Code",
        "intended_at": T0 if stamp is None else stamp(T0),
    }

    def insert(session: Any, batch: str, ids: range) -> None:
        rows = [("Lead", f"r{n:03}", batch, '{"score":83}', "[]") for n in ids]
        store.put_rows(session, ledger, columns, rows, fixed=fixed, new=True)

    with store.session() as session:
        insert(session, "b", range(0, 40))  # before the span, the same batch
        before = last_rowid(session, ledger)
        insert(session, "b", range(40, 90))
        insert(session, "c", range(90, 95))  # inside the span, another batch
        after = last_rowid(session, ledger)
        insert(session, "b", range(95, 99))  # after the span
        if store.dialect == "postgresql":
            assert before is None and after is None
            return
        assert before is not None and after is not None and after - before == 55
        update_span(
            session, ledger, {"status": "ok", "message": None}, (before, after), {"batch": "b"}
        )
    with store.session() as session:
        held = session.execute(select(ledger.c.record_id, ledger.c.status, ledger.c.message))
        statuses = {r[0]: (r[1], r[2]) for r in held}
    refused = (fixed["status"], fixed["message"])
    assert statuses == {f"r{n:03}": ("ok", None) if 40 <= n < 90 else refused for n in range(99)}


def test_a_row_of_the_wrong_width_is_refused_alone_not_shifted_into_the_next(
    store: Store,
) -> None:
    if store.dialect != "sqlite":
        pytest.skip("the run of rows in one statement is SQLite's")
    table = table_of(NameVariant)
    rows: list[tuple[Any, ...]] = [(f"v{n:03}", f"k{n}") for n in range(500)]  # one statement
    rows[10], rows[20] = ("v010",), ("v020", "k20", "x")  # together, as many values as 500 rows
    with store.session() as session:
        written = store.write_rows(session, table, ("variant", "key"), rows)
    assert written.stored == 498 and [row[0] for row, _ in written.refused] == ["v010", "v020"]
    with store.session() as session:
        held = dict(session.execute(select(table.c.variant, table.c.key)).all())
    assert held == {variant: key for variant, key in (r for r in rows if len(r) == 2)}


def test_a_batch_of_rows_the_database_refuses_is_reported_row_by_row(store: Store) -> None:
    table = Person.__table__  # type: ignore[attr-defined]
    fixed = {**MIRROR, "is_converted": False, "link_pending": True, "owned_changed": False}
    columns = ("id", "kind", *fixed, "crm_owned")
    adapters = store.adapters(table, columns)
    refused = [(f"p{n}", "prospect", *fixed.values(), {}) for n in range(8)]  # ten statements
    rows = [
        tuple(v if a is None else a(v) for v, a in zip(r, adapters, strict=True)) for r in refused
    ]
    with store.session() as session:
        written = store.write_rows(session, table, columns, rows)
    assert written.stored == 0 and len(written.refused) == len(rows)


@pytest.mark.parametrize("new", [False, True])
def test_insert_rows_missing_stores_each_row_once_however_many(
    store: Store, new: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # COPY sends its CSV in parts of 500 rows here: two whole and a rest
    monkeypatch.setattr("sync.store._COPY_ROWS_PER_WRITE", 500)
    table = table_of(NameVariant)
    given = [(f"v{n:04}", f"k{n % 7}") for n in range(1_234)]  # two statements of many and a rest
    held = [] if new else given[::5]
    schema = {"variant": pl.String, "key": pl.String}
    with store.session() as session:
        insert_rows_missing(session, table, pl.DataFrame(held, schema=schema, orient="row"))
    with store.session() as session:
        rows = pl.DataFrame(given, schema=schema, orient="row")
        insert_rows_missing(session, table, rows, new=new)
        stored = session.execute(select(table.c.variant, table.c.key)).all()
    assert sorted(tuple(row) for row in stored) == given


def test_cursor_is_saved_with_the_rows_it_covers(store: Store) -> None:
    with store.session() as session:
        store.upsert(session, Person, [_person("p1"), _person("p2")])
        store.set_cursor(session, "salesforce", "Lead", T0, ["p2", "p1", "p2"], now=T0)
    with store.session() as session:
        cursor = store.get_cursor(session, "salesforce", "Lead")
    assert cursor is not None
    assert (cursor.value, cursor.ids_at_value, cursor.resume) == (T0, ["p1", "p2"], None)
    assert _count(store, Person) == 2


def test_a_stopped_full_load_keeps_its_page_token_until_it_ends(store: Store) -> None:
    token = '{"job": "750x", "locator": "' + "L" * 600 + '"}'
    with store.session() as session:
        store.set_cursor(session, "salesforce", "Lead", T0, ["p1"], now=T0, resume=token)
    with store.session() as session:
        saved = store.get_cursor(session, "salesforce", "Lead")
        assert saved is not None and saved.resume == token
        store.set_cursor(session, "salesforce", "Lead", T0, ["p1", "p2"], now=T0)
    with store.session() as session:
        done = store.get_cursor(session, "salesforce", "Lead")
    assert done is not None and done.resume is None


def test_a_cursor_keeps_when_it_read_and_when_it_last_listed_the_archive(store: Store) -> None:
    read, listed = T0 + timedelta(minutes=15), T0 - timedelta(minutes=45)
    with store.session() as session:
        store.set_cursor(
            session,
            "hubspot",
            "contacts",
            T0,
            ["7"],
            now=read,
            read_at=read,
            archive_read_at=listed,
        )
    with store.session() as session:
        saved = store.get_cursor(session, "hubspot", "contacts")
    assert saved is not None and (saved.read_at, saved.archive_read_at) == (read, listed)


def test_failed_transaction_leaves_rows_and_cursor_unchanged(store: Store) -> None:
    later = T0 + timedelta(hours=1)
    with store.session() as session:
        store.upsert(session, Person, [_person("p1")])
        store.set_cursor(session, "salesforce", "Lead", T0, ["p1"], now=T0)
    with pytest.raises(IntegrityError), store.session() as session:
        store.upsert(session, Person, [_person("p1", title="CTO"), _person("p2")])
        store.set_cursor(session, "salesforce", "Lead", later, ["p2"], now=later)
        store.upsert(session, Person, [_person("p3", kind="prospect")])
    with store.session() as session:
        cursor = store.get_cursor(session, "salesforce", "Lead")
        people = session.exec(select(Person)).all()
    assert cursor is not None
    assert (cursor.value, cursor.ids_at_value, cursor.updated_at) == (T0, ["p1"], T0)
    assert [(person.id, person.title) for person in people] == [("p1", None)]


def test_cursor_is_none_before_the_first_pull(store: Store) -> None:
    with store.session() as session:
        assert store.get_cursor(session, "hubspot", "contacts") is None


def test_datetimes_come_back_as_aware_utc(store: Store) -> None:
    berlin = timezone(timedelta(hours=2))
    with store.session() as session:
        store.upsert(session, Person, [_person("p1", crm_modified_at=T0.astimezone(berlin))])
    with store.session() as session:
        person = session.get(Person, "p1")
    assert person is not None
    assert person.crm_modified_at == T0
    assert person.crm_modified_at.tzinfo == UTC


@pytest.mark.parametrize("path", ["orm", "upsert"])
def test_naive_datetimes_are_refused(store: Store, path: str) -> None:
    row = _person("p1", crm_modified_at=datetime(2024, 3, 1, 9, 30))
    with pytest.raises(NaiveDatetimeError, match="timezone-aware"), store.session() as session:
        if path == "orm":
            session.add(Person(**row))
        else:
            store.upsert(session, Person, [row])
    assert _count(store, Person) == 0


def _history(store: Store) -> None:
    """Account 001A scores 30, then 55 and 60 at one instant (the later row wins), then 85."""
    rows = [
        ("001A", T0, 30.0),
        ("001A", T0 + timedelta(days=7), 55.0),
        ("001A", T0 + timedelta(days=7), 60.0),
        ("001A", T0 + timedelta(days=14), 85.0),
        ("001B", T0 + timedelta(days=3), 20.0),
    ]
    with store.session() as session:
        store.upsert(session, Account, [{"id": "001B", "name": "Beta", **MIRROR}])
        store.append_scores(
            session,
            [
                {
                    "account_id": account,
                    "scored_at": at,
                    "score": score,
                    "tier": "sdr",
                    "model_version": "rules-1",
                }
                for account, at, score in rows
            ],
        )


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (T0 - timedelta(seconds=1), None),
        (T0, 30.0),
        (T0 + timedelta(days=6, hours=23), 30.0),
        (T0 + timedelta(days=7), 60.0),
        (T0 + timedelta(days=13), 60.0),
        (T0 + timedelta(days=400), 85.0),
    ],
)
def test_score_as_of_replays_history(store: Store, when: datetime, expected: float | None) -> None:
    _seed(store)
    _history(store)
    with store.session() as session:
        score = store.score_as_of(session, "001A", when)
    assert (score.score if score else None) == expected


def test_scores_as_of_gives_each_accounts_latest_score(store: Store) -> None:
    _seed(store)
    _history(store)
    when = T0 + timedelta(days=7)
    with store.session() as session:
        every = store.scores_as_of(session, when)
        some = store.scores_as_of(session, when, ["001B", "001C"])
        early = store.scores_as_of(session, T0 + timedelta(days=1))
    assert {account: row.score for account, row in every.items()} == {"001A": 60.0, "001B": 20.0}
    assert {account: row.score for account, row in some.items()} == {"001B": 20.0}
    assert {account: row.score for account, row in early.items()} == {"001A": 30.0}


def _edit_score(store: Store) -> None:
    with store.session() as session:
        row = session.exec(select(ScoreHistory)).first()
        assert row is not None
        row.score = 99.0
        session.add(row)


def _delete_score(store: Store) -> None:
    with store.session() as session:
        session.delete(session.exec(select(ScoreHistory)).first())


def _update_statement(store: Store) -> None:
    with store.session() as session:
        session.exec(update(ScoreHistory).values(score=99.0))


def _delete_statement(store: Store) -> None:
    with store.session() as session:
        session.exec(delete(ScoreHistory))


def _upsert_score(store: Store) -> None:
    with store.session() as session:
        store.upsert(session, ScoreHistory, [{"id": 1, "score": 99.0}])


@pytest.mark.parametrize(
    "change", [_edit_score, _delete_score, _update_statement, _delete_statement, _upsert_score]
)
def test_score_history_is_append_only(store: Store, change: Any) -> None:
    _seed(store)
    _history(store)
    with pytest.raises(AppendOnlyError, match="append-only"):
        change(store)
    with store.session() as session:
        scores = sorted(row.score for row in session.exec(select(ScoreHistory)))
    assert scores == [20.0, 30.0, 55.0, 60.0, 85.0]


def test_assignment_keeps_one_current_owner(store: Store) -> None:
    _seed(store)
    with store.session() as session:
        assert store.current_owner(session, ACCOUNT_ID) is None
        store.assign(session, ACCOUNT_ID, "005A", "round_robin", "sdr", T0, run_id=RUN_ID)
        store.assign(session, ACCOUNT_ID, "005A", "round_robin", "sdr", T0 + timedelta(hours=1))
        store.assign(session, ACCOUNT_ID, "005B", "territory:DACH", "ae", T0 + timedelta(days=1))
    with store.session() as session:
        owner = store.current_owner(session, ACCOUNT_ID)
        history = session.exec(select(Assignment).order_by(Assignment.assigned_at)).all()
    assert owner == "005B"
    assert [(row.owner_id, row.ended_at) for row in history] == [
        ("005A", T0 + timedelta(days=1)),
        ("005B", None),
    ]


def test_run_log_records_start_events_and_finish(store: Store) -> None:
    events = [
        ("pull", "Lead", "p1", "pulled", None, None),
        ("match", None, "p1", "failed", "orphan", None),
    ]
    with store.session() as session:
        run = store.record_run_start(session, "salesforce", T0)
        store.add_events(session, run.id, T0, events)
        store.record_run_finish(
            session, run.id, T0 + timedelta(minutes=2), "succeeded", {"pulled": 1, "failed": 1}
        )
    with store.session() as session:
        stored_run = session.get(SyncRun, run.id)
        logged = session.exec(select(RunEvent).order_by(RunEvent.id)).all()
    assert stored_run is not None
    assert (stored_run.status, stored_run.counts) == ("succeeded", {"pulled": 1, "failed": 1})
    assert stored_run.finished_at == T0 + timedelta(minutes=2)
    assert [(event.run_id, event.action, event.reason) for event in logged] == [
        (run.id, "pulled", None),
        (run.id, "failed", "orphan"),
    ]


def test_run_events_given_as_rows_are_logged_at_the_run_time_in_order(store: Store) -> None:
    rows = [("write", "contacts", f"c{n}", "written", "new", None) for n in range(3)] + [
        ("write", "companies", "a1", "failed", "INVALID_EMAIL", "Email is invalid")
    ]
    with store.session() as session:
        run = store.record_run_start(session, "hubspot", T0)
        assert store.add_events(session, run.id, T0 + timedelta(seconds=5), rows) == 4
    with store.session() as session:
        logged = session.exec(select(RunEvent).order_by(RunEvent.id)).all()
    assert [
        (e.run_id, e.at, e.stage, e.object, e.record_id, e.action, e.reason, e.detail)
        for e in logged
    ] == [(run.id, T0 + timedelta(seconds=5), *row) for row in rows]


def test_reopening_a_database_keeps_its_rows(store: Store, store_url: str) -> None:
    with store.session() as session:
        store.upsert(session, Person, [_person("p1")])
    store.dispose()
    with Store.open(store_url) as reopened:
        assert _count(reopened, Person) == 1


def test_sqlite_uses_write_ahead_logging(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_a_session_is_given_the_sqlite_connection_handed_back_last(sqlite_store: Store) -> None:
    # one session after another keeps one connection, whose page cache holds what it read
    # (SQLite empties it when another connection wrote since), however many the pool holds
    with sqlite_store.engine.connect() as first, sqlite_store.engine.connect() as second:
        held = [first.connection.driver_connection, second.connection.driver_connection]
    for _ in range(3):
        with sqlite_store.session() as session:
            assert session.connection().connection.driver_connection is held[0]
    in_memory = Store("sqlite://")  # a pool of one connection a thread, which takes no order
    with in_memory.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT 1").scalar() == 1
    in_memory.dispose()


def test_sqlite_s_log_is_copied_into_the_database_by_the_store_s_thread_not_by_a_commit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    store = Store.open(f"sqlite:///{path}")
    with store.engine.connect() as conn:
        # SQLite's own rule stays only as a backstop, above what these commits log
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == BACKSTOP_PAGES
    for batch in range(5):
        with store.session() as session:
            store.upsert(session, Person, [_person(f"p{batch}-{n}") for n in range(400)])
    checkpointer = store.checkpointer
    assert checkpointer is not None
    copy = tmp_path / "database-file-alone.db"
    deadline, copied = time.monotonic() + 30, 0
    while copied < 2_000 and time.monotonic() < deadline:  # the thread copies in the background
        time.sleep(0.05)
        shutil.copyfile(path, copy)  # the database file without its log
        try:
            with closing(sqlite3.connect(copy)) as alone:
                copied = alone.execute("SELECT count(*) FROM person").fetchone()[0]
        except sqlite3.DatabaseError:  # copied while the thread wrote to it, or before the table
            copied = 0
        for leftover in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
            leftover.unlink(missing_ok=True)
    assert copied == 2_000  # every committed row is in the database file itself
    assert checkpointer.checkpoints >= 1 and checkpointer.failures == 0
    store.dispose()
    assert store.checkpointer is None and not checkpointer._thread.is_alive()
    assert not Path(f"{path}-wal").exists()  # the last connection copied the rest and removed it
    with Store.open(f"sqlite:///{path}") as reopened:
        assert _count(reopened, Person) == 2_000


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:s3cret@db.example.com/handoff",
        "postgres://alice:s3cret@db.example.com:6543/handoff",
        "postgresql+psycopg://alice:s3cret@db.example.com/handoff",
    ],
)
def test_password_is_hidden_in_repr(url: str) -> None:
    store = Store(url)
    assert "s3cret" not in repr(store)
    assert "alice:***@db.example.com" in repr(store)
    assert store.dialect == "postgresql"


@pytest.mark.parametrize(
    "url",
    [
        "mysql://alice:s3cret@db.example.com/handoff",
        "postgresql://alice:s3cret@127.0.0.1:1/handoff",
        "postgresql//alice:s3cret@db.example.com/handoff",
        "postgresql://alice:s3cret@db.example.com:5x/handoff",
        # an '@' not written as %40: the driver would take "cret@127.0.0.1" for the host
        "postgresql://alice:s3@cret@127.0.0.1:1/handoff",
        "postgresql://alice:s3/c@cret@127.0.0.1:1/handoff",  # SQLAlchemy's password: "s3/c"
        "postgresql://alice:s3?c@cret@127.0.0.1:1/handoff",
    ],
)
def test_errors_do_not_reveal_the_password(url: str) -> None:
    with pytest.raises(StoreOpenError) as raised:
        Store.open(url)
    assert "s3cret" not in str(raised.value) and "cret" not in str(raised.value)


@pytest.mark.parametrize(
    "value",
    [
        {"score": 80, "tier": "AE", "signals": ["Pricing page x3 since 28 Nov (+12)"]},
        {"b": 1.5, "a": [None, True, False, 0.1, 1e300, -0.0, 2**70], "é": 'naïve \u2028 "q"'},
        "text alone",
        3.0,
        None,
        [],
        {"nested": {"z": {"y": [1, {"x": "\x00\n"}]}}},
        {"nan": float("nan"), "inf": float("inf")},
        {"small": 1.5e-05, "large": 1e16, "near": [1e-4, 9999999999999998.0, 0.1, 1 / 3]},
        {"big": 2**64, "at": 2**64 - 1, "low": -(2**63), "surrogate": "\ud800"},
        {"B": 1, "a": 2, "\U0001f600": [(1, "t")], "\uffff": "\x7f\x1f\u00e9\u2029"},
        {1: "a key not text"},
        [datetime(2026, 11, 1, tzinfo=UTC)],  # not plain: json refuses it, as it must
        {"flag": True, "kind": pl.Int64},  # a type json refuses and orjson might write
    ],
)
def test_the_canonical_text_is_json_dumps_byte_for_byte(value: Any) -> None:
    # the ledger's hash is taken over this text: another text would rewrite every record
    try:
        expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except TypeError:
        with pytest.raises(TypeError):
            canonical_plain(value)
        return
    assert canonical_plain(value) == expected


def test_an_orjson_that_writes_otherwise_is_not_used_for_the_canonical_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # an orjson whose floats changed (as serde_json's did once) would change every ledger hash
    from sync import store as store_module

    real = orjson.dumps

    def changed(value: Any, option: int | None = None) -> bytes:
        return real(value, option=option).replace(b"0.0001", b"1e-4")

    value = {"score": 1e-4, "tier": "AE"}
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    monkeypatch.setattr(store_module.orjson, "dumps", changed)
    store_module._orjson_agrees.cache_clear()
    try:
        assert not store_module._orjson_agrees()
        assert canonical_plain(value) == expected
    finally:
        monkeypatch.undo()
        store_module._orjson_agrees.cache_clear()
    assert store_module._orjson_agrees() and canonical_plain(value) == expected


def test_the_canonical_text_of_every_character_and_of_floats_is_json_dumps_byte_for_byte() -> None:
    # the characters of the first planes and the ends of the others, as keys and values, and
    # floats of every magnitude: orjson writes some (the ledger's texts) where json would
    characters = [*range(0x3000), 0xD7FF, 0xE000, 0xFEFF, 0xFFFF, 0x10000, 0x10FFFF]
    values = [{"k" + chr(c): "v" + chr(c) + "w", chr(c): c} for c in characters]
    values += [[n * 10.0**e, -n * 10.0**e] for n in (1, 1.5, 3.14159) for e in range(-8, 24)]
    for value in values:
        expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert canonical_plain(value) == expected


_EDGE_STAMPS = [
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2026, 11, 1, 9, tzinfo=UTC),  # whole seconds keep their six zeros
    datetime(2026, 11, 1, 9, 0, 0, 5, tzinfo=UTC),
    datetime(1000, 1, 1, tzinfo=UTC),
    datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
]


def test_a_column_of_stamps_is_the_text_one_stamp_is_stored_as() -> None:
    """The mirror's column-wise stamp text and the row path's column text are `_sqlite_stamp`'s,
    byte for byte (a row written either way is found by the other)."""
    from sync.store import _sqlite_stamp, _sqlite_stamps, sqlite_stamp_texts

    one_by_one = [_sqlite_stamp(stamp) for stamp in _EDGE_STAMPS]
    aware = pl.Series(_EDGE_STAMPS, dtype=pl.Datetime("us", "UTC"))
    assert sqlite_stamp_texts(aware).to_list() == one_by_one
    assert sqlite_stamp_texts(aware.dt.replace_time_zone(None)).to_list() == one_by_one
    assert _sqlite_stamps([*_EDGE_STAMPS, None]) == [*one_by_one, None]
    with pytest.raises(TypeError, match="microsecond"):
        sqlite_stamp_texts(aware[:3].cast(pl.Datetime("ns", "UTC")))
