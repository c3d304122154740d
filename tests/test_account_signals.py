"""The first run's history read, column-wise and once, counts what the per-account read counts.

The score stage builds every account's sums from one read of the whole history
(`account_signals.every_activity`) and scores the orphans from the same read; a rebuild of a few
accounts reads theirs row-wise by index (`linked_activities` with ids), and the orphans' own read
is by join. On a dirty mirror (deleted and merged records, activity of orphans, converted and
unknown people, unknown types, times within one second, activity at and after the moment, a
record pulled twice) both ways give the same stored sums and the same orphan scores.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import event, text
from sqlmodel import select

from handoff.runs import scoring_setup
from handoff.settings import Settings
from sync import Store, account_signals
from sync.account_signals import build, every_activity, linked_activities
from sync.orphans import orphan_scores, score_orphans
from sync.scoring_state import history_ahead, score_cycle
from sync.state import (
    Account,
    AccountSignals,
    Activity,
    PendingOrphan,
    Person,
    ScoringState,
)

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
SETUP = scoring_setup(Settings())
LIVE_ACCOUNTS = ["a", "b", "quiet"]


def _mirrored(**values: Any) -> dict[str, Any]:
    return values | {"crm_modified_at": NOW, "synced_at": NOW, "is_deleted": False}


def _activity(id_: str, kind: str, ago: timedelta, **more: Any) -> dict[str, Any]:
    return _mirrored(id=id_, type=kind, occurred_at=NOW - ago, **more)


def _people() -> list[dict[str, Any]]:
    lead = {"kind": "lead"}
    return [
        _mirrored(id="lead-a", matched_account_id="a", match_rule="domain", **lead),
        _mirrored(id="contact-b", kind="contact", account_id="b", matched_account_id="b"),
        _mirrored(id="orphan", orphan_reason="company_not_in_crm", country="DE", **lead),
        _mirrored(id="review", orphan_reason="ambiguous_accounts", match_rule="domain", **lead),
        _mirrored(id="converted", is_converted=True, converted_account_id="a", **lead),
        _mirrored(id="gone", matched_account_id="b", **lead) | {"is_deleted": True},
        _mirrored(id="loser", matched_account_id="b", merged_into="lead-a", **lead)
        | {"is_deleted": True},
    ]


def _activities() -> list[dict[str, Any]]:
    day, second = timedelta(days=1), timedelta(seconds=1)
    return [
        _activity("own-1", "pricing_page", 2 * day, account_id="a"),
        _activity("own-2", "demo_request", 2 * day - second / 4, account_id="a"),  # same second
        _activity("own-3", "trial_signup", 2 * day - second / 2, account_id="a"),
        _activity("lead-1", "webinar", 3 * day, person_id="lead-a", topic="security"),
        _activity("lead-2", "whitepaper", 200 * day, person_id="lead-a", topic="cloud"),
        _activity("names-b", "pricing_page", 5 * day, person_id="lead-a", account_id="b"),
        _activity("contact-1", "email_click", 1 * day, person_id="contact-b"),
        _activity("deleted", "demo_request", 1 * day, account_id="a") | {"is_deleted": True},
        _activity("of-gone", "demo_request", 1 * day, person_id="gone"),
        _activity("of-loser", "demo_request", 1 * day, person_id="loser"),
        _activity("dead-account", "demo_request", 1 * day, account_id="dead"),
        _activity("merged-account", "demo_request", 1 * day, account_id="merged"),
        _activity("not-a-signal", "call", 1 * day, account_id="a"),
        _activity("nobody", "pricing_page", 1 * day),
        _activity("stranger", "pricing_page", 1 * day, person_id="not-mirrored"),
        _activity("at-now", "pricing_page", timedelta(0), account_id="a"),
        _activity("later", "pricing_page", -day, account_id="b"),
        _activity("orphan-1", "pricing_page", 1 * day, person_id="orphan"),
        _activity("orphan-2", "webinar", 4 * day, person_id="orphan", topic="security"),
        _activity("orphan-3", "contact_sales", 40 * day, person_id="orphan"),
        _activity("orphan-later", "demo_request", -day, person_id="orphan"),
        _activity("orphan-names-a", "demo_request", 1 * day, person_id="orphan", account_id="a"),
        _activity("review-1", "case_study", 6 * day, person_id="review", topic="cloud"),
        _activity("converted-1", "pricing_page", 1 * day, person_id="converted"),
    ]


def _load(store: Store) -> None:
    accounts = [_mirrored(id=i, name=i.title()) for i in LIVE_ACCOUNTS] + [
        _mirrored(id="dead", name="Dead") | {"is_deleted": True},
        _mirrored(id="merged", name="Merged", merged_into="a") | {"is_deleted": True},
    ]
    with store.session() as session:
        store.upsert(session, Account, accounts)
        store.upsert(session, Person, _people())
        store.upsert(session, Activity, _activities())
        # pulled again (the connector's overlap window), later: one row, its latest values
        again = _activity("own-1", "pricing_page", timedelta(hours=30), account_id="a")
        store.upsert(session, Activity, [again | {"crm_modified_at": NOW + timedelta(hours=1)}])


def test_the_history_read_once_builds_the_sums_the_per_account_read_does(store: Store) -> None:
    _load(store)
    catalog = SETUP.catalog
    with store.session() as session:
        linked, _ = every_activity(session)
        by_account = linked_activities(session, NOW, LIVE_ACCOUNTS)
        whole = build(catalog, LIVE_ACCOUNTS, linked, NOW)
        one_by_one = build(catalog, LIVE_ACCOUNTS, by_account, NOW)
        cycle = score_cycle(session, SETUP, NOW)  # the first: every account built
        stored = session.exec(select(AccountSignals.account_id, AccountSignals.sums)).all()

    assert whole == one_by_one
    assert build(catalog, [], linked, NOW) == {}  # a cycle that rebuilds none
    assert whole["a"][0]["s"] != whole["quiet"][0]["s"]  # the dirty rows left something to count
    assert cycle.book.account_ids == tuple(LIVE_ACCOUNTS)
    assert dict(stored) == {account_id: document for account_id, (document, _) in whole.items()}


def test_a_large_history_read_apart_is_the_history_read_through_the_session(
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    reads_apart: list[int],
) -> None:
    _load(store)
    with store.session() as session:
        through = every_activity(session)
        monkeypatch.setattr("sync.account_signals._APART_ROWS", 1)
        with caplog.at_level(logging.WARNING, "sync.frames"):
            apart = every_activity(session)
    for one, other in zip(through, apart, strict=True):
        assert one.height and one.sort(one.columns).equals(other.sort(other.columns))
    assert len(reads_apart) == (store.engine.dialect.name == "sqlite")  # PostgreSQL copies
    assert all(height > 0 for height in reads_apart) and "reading apart" not in caplog.text


def test_a_history_read_started_ahead_is_taken_by_a_rebuild_and_given_up_by_a_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sync.account_signals._APART_ROWS", 1)
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        _load(store)
        with store.session() as session:
            ahead = history_ahead(session, SETUP, NOW)  # the first cycle rebuilds every account
            assert ahead is not None
        with store.session() as session:
            first = score_cycle(session, SETUP, NOW, history=ahead)
        assert ahead._process.returncode == 0 and not Path(ahead._folder.name).exists()
        with store.session() as session:
            assert history_ahead(session, SETUP, NOW) is None  # a cycle rebuilds none
            full = history_ahead(session, SETUP, NOW, full=True)  # a full run's rebuild
            assert full is not None
            full.cancel()
            unwanted = account_signals.read_history_apart(session, SETUP.catalog.activities, 100)
            assert unwanted is not None
            score_cycle(session, SETUP, NOW, history=unwanted)
    assert first.rebuilt == {"full": len(LIVE_ACCOUNTS)}
    assert unwanted._process.returncode is not None and not Path(unwanted._folder.name).exists()


def test_the_orphans_score_from_the_history_read_once_as_from_their_own_read(
    store: Store,
) -> None:
    _load(store)
    with store.session() as session:
        _, unlinked = every_activity(session)
        from_the_read = orphan_scores(session, SETUP, NOW, unlinked=unlinked)
        their_own = orphan_scores(session, SETUP, NOW)
        by_person = orphan_scores(session, SETUP, NOW, person_ids=["orphan", "review"])

    assert set(from_the_read) == {"orphan", "review"}
    assert from_the_read == their_own
    assert by_person == their_own
    assert from_the_read["orphan"].score > 0


def test_activities_of_the_same_second_are_stored_in_one_order_whatever_order_they_come_in() -> (
    None
):
    # the recent activities kept in an account's sums once followed the order the history was
    # read in for activities of the same second, so two runs could store them swapped
    catalog = scoring_setup(Settings()).catalog
    at = datetime(2026, 10, 1, 9, 30, tzinfo=UTC)
    same_second = pl.DataFrame(
        {
            "account_id": ["001A", "001A", "001A", "001A"],
            "type": ["pricing_page", "webinar", "pricing_page", "demo_request"],
            "topic": ["security", None, "ai", "security"],
            "occurred_at": [at, at, at, at - timedelta(days=1)],
        }
    )
    now = at + timedelta(days=2)
    orders = [same_second, same_second.reverse(), same_second[[2, 0, 3, 1]]]
    stored = [build(catalog, ["001A"], activities, now) for activities in orders]

    assert len(stored[0]["001A"][0]["r"]) >= 6  # the recent activities, (signal, second) each
    assert stored[1] == stored[0] and stored[2] == stored[0]


def test_an_accounts_own_activities_are_read_through_the_index_of_those_naming_one(
    store: Store,
) -> None:
    # revision 0018 keeps the activities naming no account out of ix_activity_account_occurred;
    # the lookup by account ("account_id IN (...)") implies the column is not null and uses it
    _load(store)
    asked: list[tuple[str, Any]] = []

    def seen(_c: Any, _k: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "activity.account_id IN" in statement:
            asked.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        with store.session() as session:
            linked_activities(session, NOW, LIVE_ACCOUNTS)
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    sqlite = store.engine.dialect.name == "sqlite"
    with store.engine.connect() as connection:
        if not sqlite:  # a table this small is read whole whenever it may be
            connection.exec_driver_sql("SET enable_seqscan = off")
        explain = "EXPLAIN QUERY PLAN" if sqlite else "EXPLAIN"
        plans = [
            " / ".join(
                str(step[-1]) for step in connection.exec_driver_sql(f"{explain} {sql}", given)
            )
            for sql, given in asked
        ]

    assert plans and all("ix_activity_account_occurred" in plan for plan in plans), plans


def test_the_history_reads_times_as_whole_seconds_whichever_sqlite_function_reads_them(
    tmp_path: Any,
) -> None:
    # `unixepoch` (SQLite 3.38 and later) and the `strftime('%s')` an older one falls back to
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store, store.session() as session:
        times = [
            NOW,
            NOW - timedelta(milliseconds=1),
            NOW + timedelta(milliseconds=999),
            datetime(2024, 2, 29, 23, 59, 59, 500_000, tzinfo=UTC),
            datetime(1970, 1, 1, tzinfo=UTC),
            NOW - timedelta(microseconds=1),  # both read times to the millisecond: NOW
        ]
        rows = [_activity(f"t{n}", "pricing_page", NOW - at) for n, at in enumerate(times)]
        store.upsert(session, Activity, rows)
        read = text(
            "SELECT unixepoch(occurred_at), CAST(strftime('%s', occurred_at) AS INTEGER)"
            " FROM activity ORDER BY id"
        )
        pairs = session.execute(read).all()
    whole = [int(t.timestamp()) for t in times[:-1]] + [int(NOW.timestamp())]
    assert [a for a, _ in pairs] == [b for _, b in pairs] == whole


def test_the_score_stage_writes_nothing_before_it_is_ready(store: Store) -> None:
    # a first load's activity and person indexes may still be building (`sync.run`): SQLite
    # has one writer
    _load(store)
    ready: list[bool] = []
    early: list[str] = []

    def watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not ready and statement.lstrip().split()[0].upper() in _WRITES:
            early.append(statement)

    event.listen(store.engine, "before_cursor_execute", watch)
    try:
        for at in (NOW, NOW + timedelta(minutes=15)):  # every account rebuilt, then a cycle
            ready.clear()
            with store.session() as session:
                score_cycle(session, SETUP, at, ready=lambda: ready.append(True))
            assert ready and early == []
    finally:
        event.remove(store.engine, "before_cursor_execute", watch)


_WRITES = {"INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "BEGIN"}


def test_a_rebuild_of_every_account_held_back_writes_what_it_would_have_written(
    tmp_path: Path,
) -> None:
    # `sync.run` holds the writes while the first load's indexes are built, and makes them later
    made = _first_cycle(f"sqlite:///{tmp_path / 'made.db'}", hold=False)
    held = _first_cycle(f"sqlite:///{tmp_path / 'held.db'}", hold=True)
    assert held == made and held["sums"] and held["pending_orphans"]


def _first_cycle(url: str, *, hold: bool) -> dict[str, Any]:
    """What the first score stage (every account rebuilt, its orphans scored) leaves stored,
    its held writes made after it; it wrote nothing itself with ``hold``."""
    writes: list[str] = []

    def watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().split()[0].upper() in _WRITES - {"BEGIN"}:
            writes.append(statement)

    with Store.open(url) as store:
        _load(store)
        event.listen(store.engine, "before_cursor_execute", watch)
        with store.session() as session:
            cycle = score_cycle(session, SETUP, NOW, hold=hold)
            orphans = score_orphans(session, SETUP, NOW, cycle)
        event.remove(store.engine, "before_cursor_execute", watch)
        assert bool(writes) is not hold and (cycle.unwritten is not None) is hold
        with store.session() as session:
            for write in cycle.unwritten or ():
                write(session)
        with store.session() as session:
            return {
                "sums": dict(
                    session.exec(select(AccountSignals.account_id, AccountSignals.sums)).all()
                ),
                "state": session.exec(select(ScoringState.seq, ScoringState.catalog)).all(),
                "pending_orphans": session.exec(select(PendingOrphan.person_id)).all(),
                "book": cycle.book.account_ids,
                "orphans": {person: score.values for person, score in orphans.items()},
            }


def test_activities_are_ordered_by_one_packed_key_as_by_their_four_codes(monkeypatch: Any) -> None:
    # the sums are built from the activities in (row, time, signal, topic) order; the codes are
    # packed into one integer to sort by where they fit, and sorted by the four columns where not
    codes = pl.DataFrame(
        {
            "row": [3, 0, 3, 0, 1, 3, 0, 1, 1],
            "signal": [2, 1, 0, 1, 4, 2, 0, 4, 3],
            "occurred_s": [
                -86_400,
                1_800_000_000,
                1_700_000_000,
                1_800_000_000,
                5,
                -86_400,
                7,
                5,
                5,
            ],
            "topic": [0, 2, 1, 0, 2, 2, 1, 0, 2],
        },
        schema={"row": pl.Int64, "signal": pl.Int16, "occurred_s": pl.Int64, "topic": pl.Int64},
    )
    by_columns = codes.sort("row", "occurred_s", "signal", "topic")
    packed = account_signals._in_code_order(codes)
    monkeypatch.setattr(account_signals, "_KEY_BITS", 10)  # too few bits: the four columns
    unpacked = account_signals._in_code_order(codes)

    assert packed.rows() == by_columns.rows() == unpacked.rows()
    assert packed.rows()[:2] == [(0, 0, 7, 1), (0, 1, 1_800_000_000, 0)]
    assert account_signals._in_code_order(codes.clear()).is_empty()


def test_the_sums_built_by_the_packed_key_are_those_built_by_the_four_codes(
    monkeypatch: Any,
) -> None:
    catalog = scoring_setup(Settings()).catalog
    at = datetime(2026, 10, 1, 9, 30, tzinfo=UTC)
    history = pl.DataFrame(
        {
            "account_id": ["001A", "001B", "001A", "001A", "001B", "001A"],
            "type": ["whitepaper", "webinar", "case_study", "demo_request", "webinar", "x"],
            "topic": ["security", None, "ai", None, "ai", "security"],
            "occurred_at": [at, at, at, at - timedelta(days=40), at - timedelta(days=3), at],
        }
    )
    now = at + timedelta(days=2)
    packed = build(catalog, ["001A", "001B", "quiet"], history, now)
    monkeypatch.setattr(account_signals, "_KEY_BITS", 0)

    assert build(catalog, ["001A", "001B", "quiet"], history, now) == packed
    assert packed["001A"][0]["p"] and packed["quiet"][1] is None


def test_activities_of_one_second_and_signal_are_ordered_by_topic_name_none_last() -> None:
    catalog = scoring_setup(Settings()).catalog
    at = datetime(2026, 10, 1, 9, 30, tzinfo=UTC)
    history = pl.DataFrame(
        {
            "account_id": ["001A"] * 4,
            "type": ["whitepaper"] * 4,
            "topic": ["security", None, "ai", "security"],
            "occurred_at": [at, at, at, at - timedelta(days=1)],
        }
    )
    now_s = int((at + timedelta(days=1)).timestamp())

    coded, topics = account_signals._coded(catalog, ["001A"], history, now_s)

    assert topics == ("ai", "security")
    assert coded["topic"].to_list() == [1, 0, 1, -1]  # a day before, then ai, security, none
    assert coded.schema["topic"] == pl.Int16 and coded.schema["signal"] == pl.Int16
