"""Schema migrations: head builds the models' schema; upgrading keeps the ledger and history."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, TableClause, column, insert, table, text
from sqlmodel import SQLModel, col, select

from sync import (
    SCHEMA_META_VERSION,
    SchemaMeta,
    SchemaVersionError,
    ScoreHistory,
    Store,
    SyncRun,
    UTCDateTime,
    WriteLedger,
    canonical_value,
)
from sync.account_signals import new_activities, uncounted
from sync.migrations import (
    LEGACY_REVISIONS,
    Status,
    head_revision,
    schema_differences,
    upgrade,
)
from sync.state import Activity, ScoringState
from sync.writeback import Target, plan_writes, values_hash
from tests.cli_fixtures import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "state_before_migrations"
T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
# the per-field ledger of releases before revision 0006, under our fields' CRM names
WRITTEN = {
    "Account": {
        "001A": {"Handoff_Score__c": 83, "Handoff_Tier__c": "ae"},
        "001B": {"Handoff_Score__c": 12},
    },
    "contacts": {"501": {"handoff_score": 41.0, "handoff_signals": "Intent burst since 28 Nov"}},
}
# the same records as the per-record ledger keeps them, by our keys
CARRIED = {
    ("Account", "001A"): {"score": 83, "tier": "ae"},
    ("Account", "001B"): {"score": 12},
    ("contacts", "501"): {"score": 41, "signals": "Intent burst since 28 Nov"},
}
SCORES = [(T0, 83.0), (T0 + timedelta(days=1), 85.5), (T0 + timedelta(days=9), 12.0)]
# rows in the columns every release before migrations had, by table
OLD_ROWS: dict[str, list[dict[str, Any]]] = {
    "sync_run": [
        {"id": "run-2", "connector": "salesforce", "started_at": T0 + timedelta(hours=1)}
        | {"status": "succeeded", "counts": {}},
        {"id": "run-1", "connector": "salesforce", "started_at": T0}
        | {"status": "succeeded", "counts": {}},
    ],
    "account": [
        {"id": "001A", "name": "Acme", "crm_modified_at": T0, "synced_at": T0}
        | {"is_deleted": False, "is_customer": False, "is_competitor": False}
    ],
    "write_ledger": [
        {"object": obj, "record_id": record, "field": field, "value": canonical_value(value)}
        | {"written_at": T0, "run_id": "run-1"}
        for obj, records in WRITTEN.items()
        for record, fields in records.items()
        for field, value in fields.items()
    ],
    "score_history": [
        {"account_id": "001A", "scored_at": at, "score": score, "tier": "ae"}
        | {"model_version": "rules-1", "contributions": [{"label": "pricing", "points": 9}]}
        for at, score in SCORES
    ],
    "cursor": [{"connector": "salesforce", "object": "Account", "value": T0, "updated_at": T0}],
}


def _old_table(name: str, rows: list[dict[str, Any]]) -> TableClause:
    """The table ``rows`` go into: the model's, or for a table whose model has since moved on
    (gained columns, or a new layout), just the columns ``rows`` fill, typed as stored."""
    if name not in ("account", "write_ledger", "sync_run", "activity", "scoring_state"):
        return SQLModel.metadata.tables[name]
    types = {datetime: UTCDateTime(), list: JSON(), dict: JSON()}
    return table(name, *(column(key, types.get(type(v))) for key, v in rows[0].items()))


def _lay_out_release(url: str, version: int) -> None:
    """The database a release before migrations made, from its own DDL, holding OLD_ROWS."""
    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    script = (FIXTURES / f"v{version}.{dialect}.sql").read_text()
    statements = [
        "\n".join(line for line in chunk.splitlines() if not line.startswith("--")).strip()
        for chunk in script.split(";\n")
    ]
    with Store(url) as store, store.engine.begin() as connection:
        for statement in filter(None, statements):
            connection.exec_driver_sql(statement)
        for name, rows in OLD_ROWS.items():
            connection.execute(insert(_old_table(name, rows)), rows)


def _set_version(url: str, sql: str) -> None:
    with Store(url) as store, store.engine.begin() as connection:
        connection.execute(text(sql))


def test_migrations_at_head_build_exactly_the_models_schema(store: Store) -> None:
    with store.engine.connect() as connection:
        assert schema_differences(connection) == []
    assert store.schema_state().revision == head_revision()


def test_every_text_column_sorts_by_code_point_on_postgresql(pg_schema_url: str) -> None:
    # what the score stage reads in id order is lined up with ids Python sorted (0015); a
    # migration adding a text column must give it COLLATE "C" on PostgreSQL too
    with Store.open(pg_schema_url) as store, store.engine.connect() as connection:
        columns = connection.execute(
            text(
                "SELECT table_name, column_name, collation_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND data_type IN ('text',"
                " 'character varying') AND table_name <> 'alembic_version'"
            )
        ).all()
    assert len(columns) > 40
    assert [c for c in columns if c.collation_name != "C"] == []


@pytest.mark.parametrize("version", sorted(LEGACY_REVISIONS))
def test_a_database_from_before_migrations_is_refused_until_upgraded(
    store_url: str, version: int
) -> None:
    _lay_out_release(store_url, version)
    with pytest.raises(
        SchemaVersionError, match=rf"schema version {version} \(before.*`handoff state upgrade`"
    ):
        Store.open(store_url)
    with Store(store_url) as store:
        before, after = store.upgrade()
    assert (before.status, before.legacy_version) == (Status.ADOPTABLE, version)
    assert (after.status, after.revision) == (Status.CURRENT, head_revision())


@pytest.mark.parametrize("version", sorted(LEGACY_REVISIONS))
def test_an_upgrade_keeps_the_ledger_and_score_history(store_url: str, version: int) -> None:
    _lay_out_release(store_url, version)
    with Store(store_url) as store:
        store.upgrade()
    with Store.open(store_url) as store, store.session() as session:
        ledger = session.exec(select(WriteLedger)).all()
        # the CRM holds what was last written; the new run scores the same, its signals unknown
        same = [
            Target(obj, "account", record, record, values, ("intent_burst",), values)
            for (obj, record), values in CARRIED.items()
        ]
        plan = plan_writes(session, same, min_score_change=3)
        history = session.exec(select(ScoreHistory).order_by(ScoreHistory.id)).all()
        replayed = store.score_as_of(session, "001A", T0 + timedelta(days=2))
        store.set_cursor(session, "salesforce", "Account", T0, ["001A"], now=T0, read_at=T0)
        store.record_run_start(session, "salesforce", T0, "run-3")
        runs = session.exec(select(SyncRun).order_by(col(SyncRun.seq))).all()
    # the runs kept are numbered in the order they started, a new one after them
    assert [(run.id, run.full) for run in runs] == [
        ("run-1", False), ("run-2", False), ("run-3", False)
    ]  # fmt: skip
    assert {(row.object, row.record_id): row.values for row in ledger} == CARRIED
    assert all(row.values_hash == values_hash(row.values) for row in ledger)
    assert {(row.status, row.settled_at, row.run_id) for row in ledger} == {("ok", T0, "run-1")}
    assert (plan.writes, plan.unchanged) == ([], 3)  # a rerun after upgrading writes nothing
    assert [(row.scored_at, row.score) for row in history] == SCORES
    assert replayed is not None and replayed.score == 85.5


@pytest.mark.parametrize("version", sorted(LEGACY_REVISIONS))
def test_an_adopted_database_has_exactly_the_models_schema(store_url: str, version: int) -> None:
    _lay_out_release(store_url, version)
    with Store(store_url) as store:
        store.upgrade()
        with store.engine.connect() as connection:
            assert schema_differences(connection) == []


def _activity(id_: str, seq: int | None, occurred_at: datetime, flagged: bool) -> dict[str, Any]:
    return {"id": id_, "type": "pricing_page", "occurred_at": occurred_at, "account_id": "001A"} | {
        "crm_modified_at": T0, "synced_at": T0, "is_deleted": False, "rep_touch": False,
        "scored_seq": seq, "link_pending": flagged,
    }  # fmt: skip


def test_an_upgrade_keeps_which_activities_were_counted(store_url: str) -> None:
    # as revision 0012 kept them: the cycle that counted each, null while waiting, and the
    # mirror's flag on every row it wrote since the score stage last cleared it
    now = T0 + timedelta(hours=1)
    rows = [
        _activity("counted-1", 1, T0 - timedelta(days=3), False),
        _activity("counted-2", 2, T0 - timedelta(days=2), False),
        _activity("edited-since", 2, T0 - timedelta(days=2), True),
        _activity("waiting", None, T0, True),
        _activity("coming", None, now + timedelta(days=1), True),  # after the next run
    ]
    state = {"id": 1, "catalog": "c", "model_version": "rules-1", "seq": 2} | {
        "scored_at": T0, "nightly_at": T0,
    }  # fmt: skip
    with Store(store_url) as store:
        upgrade(store.engine, "0012")
        with store.engine.begin() as connection:
            connection.execute(insert(_old_table("scoring_state", [state])), [state])
            connection.execute(insert(_old_table("activity", rows)), rows)
        store.upgrade()
        with store.engine.connect() as connection:
            assert schema_differences(connection) == []
    with Store.open(store_url) as store, store.session() as session:
        last = session.exec(select(ScoringState.seq)).one()
        waiting = set(session.exec(select(Activity.id).where(uncounted(last))))
        added = new_activities(session, now, last)
        flagged = set(session.exec(select(Activity.id).where(col(Activity.link_pending))))

    assert waiting == {"waiting", "coming"}  # the counted ones are not counted again
    assert added.height == 1  # what the next run adds: the waiting one that happened by then
    assert "edited-since" in flagged  # still to be rebuilt by the next run


def test_releases_before_migrations_refuse_an_upgraded_database(store: Store) -> None:
    # they compare schema_meta with their own version (1-3) and stop on any other
    with store.session() as session:
        meta = session.get(SchemaMeta, 1)
    assert meta is not None and meta.schema_version == SCHEMA_META_VERSION
    assert SCHEMA_META_VERSION not in LEGACY_REVISIONS


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("UPDATE alembic_version SET version_num = '9999'", "revision 9999, newer than"),
        ("DROP TABLE alembic_version", "schema version 4 \\(before migrations\\), newer than"),
        ("DELETE FROM schema_meta", "holds Handoff tables but no schema version"),
    ],
)
def test_a_database_this_release_cannot_read_is_refused_and_left_alone(
    store: Store, store_url: str, change: str, expected: str
) -> None:
    store.dispose()
    _set_version(store_url, change)
    if "schema_meta" in change:
        _set_version(store_url, "DROP TABLE alembic_version")
    with pytest.raises(SchemaVersionError, match=expected):
        Store.open(store_url)
    with pytest.raises(SchemaVersionError, match=expected), Store(store_url) as store:
        store.upgrade()


def test_upgrading_a_current_database_changes_nothing(store: Store) -> None:
    before, after = store.upgrade()
    assert before == after and after.revision == head_revision()


def test_two_processes_opening_one_empty_database_both_get_it(store_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def open_it() -> None:
        start.wait()
        try:
            Store.open(store_url).dispose()
        except BaseException as error:  # reported below, so the test says what went wrong
            errors.append(error)

    threads = [threading.Thread(target=open_it) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Store.open(store_url) as store:
        assert store.schema_state().status is Status.CURRENT


@pytest.mark.usefixtures("isolated_cli")
def test_state_upgrade_tells_the_admin_what_it_did(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    _lay_out_release(url, 2)
    Path("settings.toml").write_text(f'[state]\ndatabase_url = "{url}"\n')
    refused, upgraded, again, ready = (
        run_cli("state", command) for command in ("init", "upgrade", "upgrade", "init")
    )
    head = head_revision()
    assert refused[0] == 1 and "run `handoff state upgrade`" in refused[1]
    assert upgraded == (
        0,
        f"State database {url} upgraded from schema version 2 (before migrations) "
        f"to revision {head}\n",
    )
    assert again == (0, f"State database {url} is already at revision {head}: nothing to do\n")
    assert ready[0] == 0
