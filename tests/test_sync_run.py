"""The sync run end to end on the sandbox, both CRMs, real clients over loopback HTTP.

What is written is checked by reading it back through the connector, as a rep would see it;
the sandbox and the connector share one hand-moved clock, so every run has a known `now`.
"""

from __future__ import annotations

import gc
import math
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from time import sleep
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import event
from sqlmodel import col, func, select

from connectors.budget import Budget
from connectors.config import HubSpotSettings, SalesforceSettings
from connectors.errors import ApiError, BudgetExhausted
from connectors.http import HttpPolicy, RetrySettings
from connectors.hubspot import HubSpotConnector
from connectors.protocol import (
    Checkpoint,
    Connector,
    Item,
    Record,
    SchemaSpec,
    Summary,
    Update,
    WriteResult,
)
from connectors.salesforce import SalesforceConnector
from handoff.crm import schema_spec
from handoff.runs import run_config
from handoff.settings import Settings
from sandbox.generator import generate_org
from sandbox.hubspot.account import portal_id
from sandbox.org import Org
from sandbox.salesforce import SalesforceOptions, client_session
from sandbox.service import RunningSandbox, start_sandbox
from scoring.explain import Explanation
from sync import SchemaVersionError, Store
from sync.frames import ReadApart
from sync.linking import link_people
from sync.lock import Holder, run_lock
from sync.matching.normalise import personal_domains
from sync.migrations import head_revision
from sync.run import (
    CHECK_STAGE,
    RunConfig,
    RunReport,
    StateOfAnotherCrm,
    run_sync,
)
from sync.runlog import runs_newest_first, summarise
from sync.state import (
    Account,
    AccountSignals,
    Activity,
    CurrentScore,
    Person,
    RunEvent,
    ScoreHistory,
    ScoringState,
    SyncCursor,
    SyncRun,
    WriteLedger,
)
from sync.store import plain_value
from sync.writeback import (
    ORPHAN_REASON,
    AccountScore,
    Plan,
    Planned,
    Target,
    _tier_changes,
    plan_writes,
    score_history,
    tier_moves,
)
from tests.conftest import copy_template
from tests.sandbox_fixtures import hubspot_client, salesforce_client, salesforce_merge
from tests.test_connectors_contract import FakeTime
from tests.test_sync_mirror import _all_indexes, _index_names

ACCOUNTS = 100
LABELS = {"nurture": "Nurture", "sdr": "SDR", "ae": "AE", "disqualified": "Disqualified"}
CRMS = ("salesforce", "hubspot")
ACCOUNT_FIELDS = (
    *("score", "tier", "signals", "topic", "model_version", "scored_at"),
    "disqualification_reason",
)
_STREAMS = {
    "salesforce": ("Account", "Lead"),
    "hubspot": ("companies", "contacts"),
}


def _config() -> RunConfig:
    return run_config(Settings())


@dataclass
class Crm:
    """One CRM's sandbox, a connector that counts its pushes, and the moves a user makes."""

    name: str
    sandbox: RunningSandbox
    time: FakeTime
    connector: Connector
    accounts: str
    people: str

    def run(self, store: Store, **options: Any) -> RunReport:
        """One run at the clock's time."""
        return run_sync(_config(), self.connector, store, self.time.now, **options)

    def shown(self, stream: str, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """What the CRM shows on these records, read back through the connector."""
        return {r.id: r.values for r in self.connector.find(stream, "id", list(ids))}

    def remove(self, record_id: str) -> None:
        if self.name == "salesforce":
            salesforce_client(self.sandbox).Account.delete(record_id)
        else:
            hubspot_client(self.sandbox).crm.companies.basic_api.archive(record_id)

    def edit_tier(self, record_id: str, label: str) -> None:
        """A rep changes our tier field by hand."""
        if self.name == "salesforce":
            salesforce_client(self.sandbox).Account.update(record_id, {"Handoff_Tier__c": label})
        else:
            body = {"properties": {"handoff_tier": label}}
            hubspot_client(self.sandbox).crm.companies.basic_api.update(record_id, body)

    def edit_lead_tier(self, record_id: str, label: str) -> None:
        """A rep changes our tier field on a lead (a contact on HubSpot) by hand."""
        if self.name == "salesforce":
            salesforce_client(self.sandbox).Lead.update(record_id, {"Handoff_Tier__c": label})
        else:
            body = {"properties": {"handoff_tier": label}}
            hubspot_client(self.sandbox).crm.contacts.basic_api.update(record_id, body)

    def merge(self, master: str, loser: str) -> str:
        """A user merges two accounts; the id of the one that comes out."""
        if self.name == "salesforce":
            salesforce_merge(self.sandbox, "Account", master, [loser])
            return master
        body = {"primaryObjectId": master, "objectIdToMerge": loser}
        return str(hubspot_client(self.sandbox).crm.companies.basic_api.merge(body).id)


@dataclass
class Counting:
    """A connector that counts its push calls and can delete a record right before the first."""

    inner: Connector
    pushes: int = 0
    before_push: list[Any] = field(default_factory=list)

    @property
    def crm(self) -> str:
        return self.inner.crm

    @property
    def streams(self) -> Any:
        return self.inner.streams

    def pull(self, stream: str, cursor: Any = None) -> Iterator[Item]:
        return self.inner.pull(stream, cursor) if cursor is not None else self.inner.pull(stream)

    def find(self, stream: str, field: str, values: Sequence[Any]) -> Iterator[Record]:
        return self.inner.find(stream, field, values)

    def push(self, stream: str, updates: Sequence[Update]) -> list[WriteResult]:
        return self.push_together([(stream, updates)])[0]

    def push_together(
        self, groups: Sequence[tuple[str, Sequence[Update]]]
    ) -> list[list[WriteResult]]:
        self.pushes += 1
        while self.before_push:
            self.before_push.pop()()
        return self.inner.push_together(groups)

    def ensure_schema(self, spec: SchemaSpec) -> Any:
        return self.inner.ensure_schema(spec)

    def schema_gaps(self, spec: SchemaSpec) -> Any:
        return self.inner.schema_gaps(spec)

    def usage(self) -> Any:
        return self.inner.usage()

    def org_id(self) -> str | None:
        return self.inner.org_id()


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(ACCOUNTS, 5)


def _open(stack: ExitStack, crm: str, org: Org) -> Crm:
    time = FakeTime()
    options = {"tier": "unlimited"} if crm == "hubspot" else {}
    sandbox = stack.enter_context(start_sandbox(crm, org, clock=time, **options))
    policy = HttpPolicy(
        RetrySettings(), budget=Budget(0.25), sleep=time.sleep, clock=time.seconds, wall=time
    )
    inner: Connector
    if crm == "salesforce":
        options_ = SalesforceOptions()
        settings = SalesforceSettings(
            auth="client_credentials",
            instance_url=options_.instance_url,
            client_id=options_.consumer_key,
            client_secret=SecretStr(options_.consumer_secret),
        )
        inner = SalesforceConnector(
            settings, session=client_session(sandbox.base_url), policy=policy
        )
    else:
        hub = HubSpotSettings(token=SecretStr(sandbox.token))
        inner = HubSpotConnector(hub, host=sandbox.base_url, policy=policy)
    inner.ensure_schema(schema_spec(Settings()))  # what run_config checks before a run
    time.tick(60)
    return Crm(crm, sandbox, time, Counting(inner), *_STREAMS[crm])


@pytest.fixture(params=CRMS)
def crm(request: pytest.FixtureRequest, org: Org) -> Iterator[Crm]:
    with ExitStack() as stack:
        yield _open(stack, request.param, org)


@pytest.fixture
def sqlite_store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    with Store.open(copy_template(request, tmp_path / "state.db")) as opened:
        yield opened


def _pushes(crm: Crm) -> int:
    assert isinstance(crm.connector, Counting)
    return crm.connector.pushes


def _current(store: Store) -> dict[str, CurrentScore]:
    with store.session() as session:
        return {row.account_id: row for row in session.exec(select(CurrentScore))}


@pytest.mark.parametrize("crm", CRMS, indirect=True)
def test_a_first_run_writes_every_field_and_a_rerun_writes_nothing(
    crm: Crm, store_url: str
) -> None:
    told: list[tuple[str, int, int | None]] = []
    with Store.open(store_url) as store:
        first = crm.run(store, progress=lambda *said: told.append(said))
        indexes = [_index_names(store, Activity), _index_names(store, Person)]
        current = _current(store)
        shown = crm.shown(crm.accounts, sorted(current))
        with store.session() as session:
            ledger = session.exec(select(WriteLedger)).all()
        held = {
            stream: crm.shown(stream, [row.record_id for row in ledger if row.object == stream])
            for stream in (crm.accounts, crm.people)
        }
        crm.time.tick(600)  # within the hour HubSpot's recycle bin is not due
        pushes = _pushes(crm)
        again = crm.run(store)

    assert first.outcome == "ok" and first.scored == len(current) == ACCOUNTS
    # progress is told at each page of a stream, not only as each ends: a long one shows too
    streams = len(crm.connector.streams)
    mirrored = [done for stage, done, total in told if stage == "mirror" and total == streams]
    assert mirrored[0] == 0 and mirrored[-1] == streams and mirrored == sorted(mirrored)
    assert len(mirrored) > 2 * streams
    # a first load's activity and person indexes, left by the mirror to the score stage (and
    # by the link stage, which sets the columns of most person indexes), are all built
    assert indexes == [_all_indexes(store, Activity), _all_indexes(store, Person)]
    assert first.written[crm.accounts] == ACCOUNTS and first.written[crm.people] > 0
    if crm.name == "salesforce":  # each call's 200 records filled across objects
        floor = math.ceil(sum(first.written.values()) / 200)
        assert crm.sandbox.server.log.count("composite/sobjects") == floor
    for account_id, score in current.items():
        values = shown[account_id]
        assert values["score"] == score.score
        assert values["tier"] == LABELS[score.tier]
        assert values["model_version"] == score.model_version
        assert values["scored_at"] == first.started_at.replace(microsecond=0)
        assert values["disqualification_reason"] == score.disqualified_reason
    # every field of every record written, as the CRM shows it read back: the accounts' seven
    # (their signals and topic too), the people's account link and its values or their own
    assert {row.object for row in ledger} == {crm.accounts, crm.people}
    assert len(ledger) == sum(first.written.values())
    for row in ledger:
        on_crm = held[row.object][row.record_id]
        assert row.status == "ok"
        assert {name: plain_value(on_crm.get(name)) for name in row.values} == row.values
    accounts = [row.values for row in ledger if row.object == crm.accounts]
    assert all(set(values) == set(ACCOUNT_FIELDS) for values in accounts)
    assert sum(bool(values["signals"]) for values in accounts) > ACCOUNTS // 2
    assert any(values["topic"] for values in accounts)
    people = [row.values for row in ledger if row.object == crm.people]
    assert any(values["matched_account_id"] for values in people)
    assert any(values["orphan_reason"] for values in people)
    assert again.outcome == "ok" and again.written == {} and _pushes(crm) == pushes
    assert again.unchanged == first.planned
    assert 0 < again.api_calls < first.api_calls  # reads only


def test_a_state_database_of_one_crm_refuses_a_run_on_the_other_before_calling_it(
    org: Org, sqlite_store: Store
) -> None:
    with ExitStack() as stack:
        salesforce, hubspot = (_open(stack, name, org) for name in CRMS)
        first = salesforce.run(sqlite_store)
        with sqlite_store.session() as session:
            runs = session.exec(select(SyncRun.id)).all()
        calls = hubspot.connector.usage().calls

        with pytest.raises(StateOfAnotherCrm, match="a salesforce org, and this run connects "):
            hubspot.run(sqlite_store)

        assert first.status == "succeeded" and sum(first.written.values()) > 0
        assert hubspot.connector.usage().calls == calls and _pushes(hubspot) == 0
        with sqlite_store.session() as session:
            assert session.exec(select(SyncRun.id)).all() == runs  # no run logged either
        assert salesforce.run(sqlite_store).status == "succeeded"  # its own CRM still runs


def test_a_run_the_crm_refuses_before_it_begins_is_logged_with_its_time_and_calls(
    crm: Crm, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = crm.connector.inner  # type: ignore[attr-defined]
    described = inner.schema_gaps

    def slow_then_refused(spec: Any) -> Any:
        described(spec)  # the describe calls answered...
        sleep(0.3)  # ...slowly, then the CRM stops answering
        raise ApiError(503, "SERVER_UNAVAILABLE", "The server is unavailable")

    monkeypatch.setattr(inner, "schema_gaps", slow_then_refused)
    calls = crm.connector.usage().calls

    with pytest.raises(ApiError):
        crm.run(store)

    made = crm.connector.usage().calls - calls
    with store.session() as session:
        [logged] = [summarise(run) for run in runs_newest_first(session, 5)]
    assert made > 0 and logged.outcome == "failed" and "SERVER_UNAVAILABLE" in (logged.error or "")
    assert logged.api_calls == made  # the checks' calls, not none
    assert list(logged.seconds) == [CHECK_STAGE] and logged.seconds[CHECK_STAGE] >= 0.3
    assert logged.finished_at is not None
    assert (logged.finished_at - logged.started_at).total_seconds() >= 0.3


@pytest.mark.parametrize("name", CRMS)
def test_a_state_database_of_one_org_refuses_a_run_on_another_org_of_its_crm(
    name: str, org: Org, sqlite_store: Store
) -> None:
    other_org = generate_org(ACCOUNTS, 6)  # another org: another Organization Id, Hub ID
    with ExitStack() as stack:
        this, other = _open(stack, name, org), _open(stack, name, other_org)
        first = this.run(sqlite_store)
        with sqlite_store.session() as session:
            orgs = session.exec(select(SyncRun.org_id)).all()

        with pytest.raises(StateOfAnotherCrm) as refused:
            other.run(sqlite_store)

        assert first.status == "succeeded" and _pushes(other) == 0
        assert orgs == [this.connector.org_id()] and None not in orgs  # each run names its org
        assert this.connector.org_id() != other.connector.org_id()
        assert f"the {name} org {orgs[0]}, and this run connects to the {name} org " in str(
            refused.value
        )
        assert refused.value.named == f"{name}-{other.connector.org_id()}"
        assert this.run(sqlite_store).status == "succeeded"  # its own org still runs


def test_each_connector_names_its_org_as_the_crm_does(org: Org) -> None:
    with ExitStack() as stack:
        salesforce, hubspot = (_open(stack, name, org) for name in CRMS)
        calls = hubspot.connector.usage().calls
        portal = hubspot.connector.org_id()
        again = hubspot.connector.org_id()
        hubspot_calls = hubspot.connector.usage().calls - calls
        salesforce_calls = salesforce.connector.usage().calls
        organization = salesforce.connector.org_id()

        # Salesforce's is the first 15 characters of the session id, read without a call
        assert salesforce.connector.usage().calls == salesforce_calls
        assert organization == salesforce.sandbox.dialect.state.org_id[:15]  # type: ignore[attr-defined]
    # HubSpot's Hub ID, read once
    assert portal == again == str(portal_id(org.manifest)) and hubspot_calls == 1


@pytest.mark.parametrize("crm", CRMS, indirect=True)
def test_a_state_database_upgraded_from_the_release_before_keeps_its_ledger_and_writes_nothing(
    crm: Crm, store_url: str
) -> None:
    with Store.open(store_url) as store:
        first = crm.run(store)
        ledger = _ledger_hashes(store)
    # the database the release before revision 0020 left, holding what its first run wrote:
    # 0020 and 0021 only added the run log's model and org columns
    with Store(store_url) as store, store.engine.begin() as connection:
        for name in ("model_version", "model_reason", "org_id"):
            connection.exec_driver_sql(f"ALTER TABLE sync_run DROP COLUMN {name}")
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0019'")
    with pytest.raises(SchemaVersionError, match="handoff state upgrade"):
        Store.open(store_url)
    with Store(store_url) as store:
        before, after = store.upgrade()
    crm.time.tick(600)  # within the hour HubSpot's recycle bin is not due
    pushes = _pushes(crm)
    with Store.open(store_url) as store:
        again = crm.run(store)
        kept = _ledger_hashes(store)

    assert (before.revision, after.revision) == ("0019", head_revision())
    assert first.outcome == "ok" and len(ledger) == sum(first.written.values())
    # the ledger came through: the run after the upgrade finds the CRM holding what it says,
    # and writes nothing, where a new database would rewrite the whole CRM
    assert again.outcome == "ok" and again.written == {} and _pushes(crm) == pushes
    assert again.unchanged == first.planned and kept == ledger


def _ledger_hashes(store: Store) -> dict[tuple[str, str], str]:
    """The write ledger's values hash of each record, by (stream, record id)."""
    with store.session() as session:
        rows = session.exec(select(WriteLedger))
        return {(row.object, row.record_id): row.values_hash for row in rows}


def _scored(store: Store) -> dict[str, tuple[Any, ...]]:
    """Each account's score, tier and reasons, and the values written to each record."""
    with store.session() as session:
        scores = session.exec(select(CurrentScore)).all()
        written = session.exec(select(WriteLedger)).all()
    return {
        **{s.account_id: (s.score, s.tier, s.disqualified_reason, s.reasons) for s in scores},
        **{row.record_id: tuple(sorted(row.values.items())) for row in written},
    }


def test_the_people_of_every_account_read_in_one_pass_are_planned_as_read_by_account(
    crm: Crm, org: Org, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a first run scores every account: its diff reads the linked people in one pass; a run
    # scoring few reads them by the index of links, a few thousand accounts at a time
    moment = crm.time.now
    with Store.open(store_url) as store:
        crm.run(store)
        by_account = _scored(store)
    monkeypatch.setattr("sync.store.FEW_IDS", 1)
    whole = _scored_again(crm, org, moment, f"sqlite:///{tmp_path / 'whole.db'}")
    assert whole == by_account and len(whole) > 2 * ACCOUNTS


def test_a_ledger_and_current_scores_read_in_one_pass_plan_and_count_as_looked_up_by_id(
    crm: Crm, sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a full rescore's targets are most of the ledger: its rows are read in one pass, not looked
    # up by IN lists; a row it holds as refused for now is what sends a record again. The
    # current scores the tier tally moves from are read so too
    first = crm.run(sqlite_store)
    with sqlite_store.session() as session:
        again = []
        for stream in (crm.accounts, crm.people):
            row = session.exec(select(WriteLedger).where(WriteLedger.object == stream)).first()
            assert row is not None
            row.status = "retriable"  # refused for now: the CRM holds the values all the same
            session.add(row)
            again.append((stream, row.record_id))
        session.commit()
    monkeypatch.setattr("sync.store.FEW_IDS", 1)
    crm.time.tick(60)
    report = crm.run(sqlite_store, full=True)
    with sqlite_store.session() as session:
        lines = session.exec(select(RunEvent).where(RunEvent.action == "written")).all()
    assert report.written == {crm.accounts: 1, crm.people: 1}
    assert report.tiers == first.tiers and report.tier_up == report.tier_down == 0
    assert sorted(
        (e.object, e.record_id, e.reason) for e in lines if e.run_id == report.run_id
    ) == sorted((stream, record_id, "retry") for stream, record_id in again)


@pytest.mark.parametrize("crm", ["hubspot"], indirect=True)
def test_tiers_move_alike_from_current_scores_read_in_one_pass_or_looked_up_by_id(
    crm: Crm, sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every account scored again (a nightly rescore) reads the current scores in one pass
    crm.run(sqlite_store)
    with sqlite_store.session() as session:
        current = session.exec(select(CurrentScore)).all()
        keys = sorted({c.tier for c in current})
        scores = {  # each account a tier on
            c.account_id: AccountScore(
                c.account_id, c.score, keys[(keys.index(c.tier) + 1) % len(keys)], {}, (), (),
                None, "v", None, Explanation(c.score, (), None, "v"),
            )
            for c in current
        }  # fmt: skip
        by_id = (tier_moves(session, scores), _tier_changes(session, scores))
        monkeypatch.setattr("sync.store.FEW_IDS", 1)
        one_pass = (tier_moves(session, scores), _tier_changes(session, scores))
    (up, down, new), changes = by_id
    assert one_pass == by_id and len(keys) > 1
    assert up + down == len(current) and new == 0 and sum(changes.values()) == 0


def _scored_again(crm: Crm, org: Org, moment: datetime, url: str) -> dict[str, tuple[Any, ...]]:
    """`_scored` after a first run at ``moment`` of the same org, in a CRM of its own, into a
    fresh store at ``url``."""
    with ExitStack() as stack:
        again = _open(stack, crm.name, org)
        again.time.now = moment
        with Store.open(url) as store:
            again.run(store)
            return _scored(store)


def test_a_history_read_apart_while_the_link_stage_runs_scores_and_writes_as_one_read_after_it(
    crm: Crm,
    org: Org,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reads_apart: list[int],
) -> None:
    # a large org's first run reads the history in a process of its own, started by the link
    # stage (`sync.frames.ReadApart`); a small one's reads it through the session
    moment = crm.time.now
    with Store.open(f"sqlite:///{tmp_path / 'through.db'}") as store:
        crm.run(store)
        through = _scored(store)
    monkeypatch.setattr("sync.account_signals._APART_ROWS", 1)
    url = f"sqlite:///{tmp_path / 'apart.db'}"
    apart = _scored_again(crm, org, moment, url)
    with Store.open(url) as store, store.session() as session:
        activities = session.exec(select(func.count()).select_from(Activity)).one()
    assert apart == through and len(apart) > 2 * ACCOUNTS
    assert len(reads_apart) == 1 and 0 < reads_apart[0] <= activities  # the catalog's, once


@pytest.mark.parametrize("crm", ["hubspot"], indirect=True)
def test_a_run_failing_after_its_history_read_started_stops_that_read_and_leaves_nothing(
    crm: Crm, sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[ReadApart] = []
    start = ReadApart.start.__func__  # type: ignore[attr-defined]

    def kept(cls: type[ReadApart], *args: Any) -> ReadApart | None:
        read = start(cls, *args)
        started.extend([read] if read is not None else [])
        return read

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the link stage broke")

    monkeypatch.setattr(ReadApart, "start", classmethod(kept))
    monkeypatch.setattr("sync.account_signals._APART_ROWS", 1)
    monkeypatch.setattr("sync.run.link_people", broken)
    with pytest.raises(RuntimeError, match="the link stage broke"):
        crm.run(sqlite_store)
    [read] = started
    assert read._process.returncode is not None and not Path(read._folder.name).exists()
    assert not list(Path(sqlite_store.engine.url.database).parent.glob(".handoff-read-*"))


@pytest.mark.parametrize("crm", CRMS, indirect=True)
def test_a_first_run_on_sqlite_builds_each_person_index_once(crm: Crm, tmp_path: Path) -> None:
    # the link stage sets the columns of most of them: built after it, beside the score stage's
    # read of the history (`IndexBuild`), not before it and again
    created: list[str] = []
    elsewhere: list[str] = []

    def watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        made = re.match(r"\s*CREATE INDEX (\S+) ON person\b", statement)
        if made:
            created.append(made.group(1))
            if threading.current_thread().name != "index-build":
                elsewhere.append(made.group(1))

    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        event.listen(store.engine, "before_cursor_execute", watch)
        assert crm.run(store).outcome == "ok"
        indexes = _index_names(store, Person)

    # (those a first load keeps, partial indexes no new row enters, are the schema's own)
    assert (
        len(created) == len(set(created))
        and indexes == _all_indexes(store, Person)
        and not elsewhere
    )
    assert {"ix_person_match_name", "ix_person_match_domain", "ix_person_match_link"} <= {*created}


def test_a_first_load_stopped_by_the_budget_leaves_its_indexes_built(
    crm: Crm, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the mirror leaves them to the score stage, which a stopped run never reaches
    monkeypatch.setattr("sync.mirror.COMMIT_EVERY", 1)  # each checkpoint's rows committed

    class Stopping(Counting):
        def pull(self, stream: str, cursor: Any = None) -> Iterator[Item]:
            pulled = super().pull(stream, cursor)
            if self.streams[stream].entity != "activity":
                return pulled
            return self._stopped(pulled)

        def _stopped(self, pulled: Iterator[Item]) -> Iterator[Item]:
            rows = 0
            for item in pulled:
                yield item
                rows += not isinstance(item, (Checkpoint, Summary))
                if rows and isinstance(item, Checkpoint):  # its rows are in: the pull stops
                    raise BudgetExhausted("the run's share of the daily calls is spent")

    connector = Stopping(crm.connector.inner)  # type: ignore[attr-defined]
    with Store.open(store_url) as store:
        report = run_sync(_config(), connector, store, crm.time.now)
        with store.session() as session:
            activities = len(session.exec(select(Activity)).all())
        indexes = [_index_names(store, Activity), _index_names(store, Person)]
    assert report.outcome == "stopped" and activities > 0
    assert indexes == [_all_indexes(store, Activity), _all_indexes(store, Person)]


def test_a_database_sorting_text_by_language_rules_scores_each_account_as_sqlite_does(
    org: Org, tmp_path: Path, pg_icu_url: str
) -> None:
    # Salesforce ids mix cases ("001Dn000000000a" sorts after "...B" by code point, before it by
    # English rules): what the database puts in id order must meet what Python sorts by id
    results = []
    for url in (f"sqlite:///{tmp_path / 'state.db'}", pg_icu_url):
        with ExitStack() as stack, Store.open(url) as store:
            crm = _open(stack, "salesforce", org)
            assert crm.run(store).outcome == "ok"
            results.append(_scored(store))
    on_sqlite, on_icu = results

    mixed = sorted(on_sqlite)
    assert mixed != sorted(mixed, key=str.casefold)  # the ids do sort apart
    assert on_icu == on_sqlite


@pytest.mark.parametrize("crm", CRMS, indirect=True)
def test_linked_people_show_their_account_and_its_values(crm: Crm, sqlite_store: Store) -> None:
    crm.run(sqlite_store)
    with sqlite_store.session() as session:
        ledger = session.exec(select(WriteLedger).where(WriteLedger.object == crm.people)).all()
    current = _current(sqlite_store)
    shown = crm.shown(crm.people, [row.record_id for row in ledger])

    assert ledger and all(row.status == "ok" for row in ledger)
    for row in (r for r in ledger if r.values["matched_account_id"] is not None):
        account = row.values["matched_account_id"]
        assert shown[row.record_id]["matched_account_id"] == account
        assert shown[row.record_id]["tier"] == LABELS[current[account].tier]
        assert shown[row.record_id]["orphan_reason"] is None


def _written_people_of(crm: Crm, store: Store, account_id: str) -> list[str]:
    """People of the written stream linked to an account, whose write shows its values."""
    with store.session() as session:
        ledger = session.exec(select(WriteLedger).where(WriteLedger.object == crm.people)).all()
    return [r.record_id for r in ledger if r.values["matched_account_id"] == account_id]


def _orphans(crm: Crm, store: Store) -> dict[str, Person]:
    """Live, unconverted people of the written stream that linking left without an account."""
    statement = select(Person).where(
        col(Person.is_deleted).is_(False),
        col(Person.is_converted).is_(False),
        col(Person.matched_account_id).is_(None),
    )
    if crm.name == "salesforce":  # only Leads carry our fields there
        statement = statement.where(Person.kind == "lead")
    with store.session() as session:
        return {p.id: p for p in session.exec(statement)}


@pytest.mark.parametrize("crm", CRMS, indirect=True)
def test_every_orphan_lead_shows_its_own_score_tier_and_why_it_has_no_account(
    crm: Crm, store_url: str
) -> None:
    with Store.open(store_url) as store:
        first = crm.run(store)
        orphans = _orphans(crm, store)
        crm.time.tick(600)
        again = crm.run(store)
    shown = crm.shown(crm.people, sorted(orphans))

    assert orphans and first.orphans_scored >= len(orphans)
    assert first.orphans_written == len(orphans) == len(shown)
    assert first.counts()["orphans_written"] == len(orphans)
    for person_id, values in shown.items():
        assert isinstance(values["score"], float) and 0 <= values["score"] <= 100
        assert values["tier"] in LABELS.values()
        assert values["model_version"] == first.model_version
        assert values["matched_account_id"] is None
        in_review = orphans[person_id].match_rule is not None
        assert values["orphan_reason"].startswith("In review: " if in_review else "Orphan: ")
    assert again.written == {} and again.orphans_written == 0
    assert again.link.people == 0  # nothing changed, nobody relinked


def _add_account(crm: Crm, name: str, domain: str) -> str:
    """A user creates an account in the CRM; its id."""
    if crm.name == "salesforce":
        client = salesforce_client(crm.sandbox)
        return str(client.Account.create({"Name": name, "Website": f"https://{domain}"})["id"])
    body = {"properties": {"name": name, "domain": domain}}
    return str(hubspot_client(crm.sandbox).crm.companies.basic_api.create(body).id)


@pytest.mark.parametrize("crm", CRMS, indirect=True)
def test_an_orphan_whose_account_appears_shows_that_account_and_no_orphan_reason(
    crm: Crm, sqlite_store: Store
) -> None:
    crm.run(sqlite_store)
    orphan = next(
        p
        for p in _orphans(crm, sqlite_store).values()
        if p.orphan_reason == "company_not_in_crm"
        and p.email
        and p.email.split("@")[1] not in personal_domains(())
    )
    crm.time.tick(60)
    account = _add_account(crm, "Qzxw Newly Entered", orphan.email.split("@")[1])
    crm.time.tick(3700)

    report = crm.run(sqlite_store)

    shown = crm.shown(crm.people, [orphan.id])[orphan.id]
    current = _current(sqlite_store)
    assert report.outcome == "ok" and account in report.link.touched_accounts
    assert (
        0
        < report.link.people
        < sum(report.counts()[k] for k in ("linked", "review")) + sum(report.link.orphans.values())
    )
    assert shown["matched_account_id"] == account and shown["orphan_reason"] is None
    assert shown["tier"] == LABELS[current[account].tier]
    assert shown["score"] == current[account].score
    incremental = _links(sqlite_store)
    with sqlite_store.session() as session:
        link_people(session, _config().matching, full=True)
    assert _links(sqlite_store) == incremental  # what relinking everyone would have found


def _links(store: Store) -> dict[str, tuple[Any, ...]]:
    """Every live person's link, rule, confidence and reason."""
    columns = (Person.matched_account_id, Person.match_rule, Person.match_confidence)
    statement = select(Person.id, *columns, Person.orphan_reason).where(
        col(Person.is_deleted).is_(False)
    )
    with store.session() as session:
        return {row[0]: tuple(row[1:]) for row in session.exec(statement)}


@pytest.mark.parametrize("crm", CRMS, indirect=True)
def test_a_hand_edit_is_repaired_and_a_deleted_account_is_never_written_again(
    crm: Crm, store: Store
) -> None:
    crm.run(store)
    current = _current(store)
    edited = next(a for a, s in current.items() if s.tier == "nurture")
    deleted = next(a for a in sorted(current) if a != edited)
    orphaned = set(_written_people_of(crm, store, deleted))
    crm.time.tick(60)
    crm.edit_tier(edited, "AE")
    crm.remove(deleted)
    crm.time.tick(3700)  # HubSpot lists its recycle bin hourly

    repaired = crm.run(store)

    assert repaired.outcome == "ok" and repaired.written[crm.accounts] == 1
    assert repaired.written.get(crm.people, 0) == repaired.orphans_written == len(orphaned)
    assert crm.shown(crm.accounts, [edited])[edited]["tier"] == "Nurture"
    assert deleted not in _current(store)
    assert sum(repaired.tiers.values()) == ACCOUNTS - 1  # the live accounts, tier by tier
    crm.time.tick(600)
    after = crm.run(store)  # our own writes read back: the totals kept by what changed
    assert after.tiers == repaired.tiers
    assert (after.link.linked, after.link.review, after.link.orphans) == (
        repaired.link.linked,
        repaired.link.review,
        repaired.link.orphans,
    )
    with store.session() as session:
        events = session.exec(select(RunEvent).where(RunEvent.run_id == repaired.run_id)).all()
        gone = session.get(Account, deleted)
    written = [e for e in events if e.action == "written"]
    assert [(e.record_id, e.reason) for e in written if e.object == crm.accounts] == [
        (edited, "repair")
    ]
    # the deleted account's people now show their own scores and why they have no account
    assert {(e.record_id, e.reason) for e in written if e.object == crm.people} == {
        (p, "link") for p in orphaned
    }
    assert gone is not None and gone.is_deleted


@pytest.mark.parametrize("crm", CRMS, indirect=True)
def test_the_echo_of_our_writes_is_not_relinked_rescored_or_written(crm: Crm, store: Store) -> None:
    first = crm.run(store)
    crm.time.tick(600)

    echo = crm.run(store)  # pulls back every record the first run wrote, and nothing else

    pulled = sum(echo.pulled[stream]["stored"] for stream in (crm.accounts, crm.people))
    assert pulled >= first.planned  # the echo came back
    assert echo.outcome == "ok" and echo.written == {} and echo.planned == 0
    assert (echo.link.people, echo.link.relinked, echo.link.changed) == (0, [], frozenset())
    assert echo.scored == echo.orphans_scored == 0 and echo.rebuilt == {}
    assert echo.unchanged == first.planned  # each checked against the ledger
    assert echo.tiers == first.tiers


@pytest.mark.parametrize("crm", CRMS, indirect=True)
def test_hand_edits_among_the_echoes_of_our_writes_are_repaired(crm: Crm, store: Store) -> None:
    crm.run(store)
    with store.session() as session:
        ledger = session.exec(
            select(WriteLedger).where(WriteLedger.object.in_([crm.accounts, crm.people]))
        ).all()
    written = {(row.object, row.record_id): row.values["tier"] for row in ledger}
    account = next(r for (s, r), tier in sorted(written.items()) if s == crm.accounts)
    lead = next(r for (s, r), tier in sorted(written.items()) if s == crm.people)
    crm.time.tick(60)
    crm.edit_tier(account, "Disqualified")
    crm.edit_lead_tier(lead, "Disqualified")
    crm.time.tick(600)

    repaired = crm.run(store)  # the edits come back with the echoes of every other write

    assert repaired.outcome == "ok"
    assert repaired.written == {crm.accounts: 1, crm.people: 1}
    assert crm.shown(crm.accounts, [account])[account]["tier"] == written[crm.accounts, account]
    assert crm.shown(crm.people, [lead])[lead]["tier"] == written[crm.people, lead]
    with store.session() as session:
        events = session.exec(select(RunEvent).where(RunEvent.run_id == repaired.run_id)).all()
    assert {(e.record_id, e.reason) for e in events if e.action == "written"} == {
        (account, "repair"),
        (lead, "repair"),
    }


@pytest.mark.parametrize("crm", CRMS, indirect=True)
def test_a_rejected_record_is_logged_with_its_code_while_the_rest_land(
    crm: Crm, store: Store
) -> None:
    assert isinstance(crm.connector, Counting)
    ids: list[str] = []

    def delete_one() -> None:
        """The CRM loses an account no one is linked to between our read and our write."""
        linked = select(Person.matched_account_id).where(
            col(Person.matched_account_id).is_not(None)
        )
        lonely = select(Account.id).where(col(Account.id).not_in(linked)).order_by(col(Account.id))
        with store.session() as session:
            ids.append(str(session.exec(lonely).first()))
        crm.remove(ids[0])

    crm.connector.before_push.append(delete_one)
    report = crm.run(store)

    expected = {"salesforce": "ENTITY_IS_DELETED", "hubspot": "OBJECT_NOT_FOUND"}[crm.name]
    assert report.outcome == "partial" and report.exit_code == 2
    assert [(f["id"], f["code"]) for f in report.failed] == [(ids[0], expected)]
    assert report.written[crm.accounts] == ACCOUNTS - 1
    with store.session() as session:
        failed = session.exec(select(RunEvent).where(RunEvent.action == "failed")).all()
        row = session.get(WriteLedger, (crm.accounts, ids[0]))
    assert [(e.record_id, e.reason) for e in failed] == [(ids[0], expected)]
    assert row is not None and row.status == "permanent" and row.code == expected
    crm.time.tick(60)
    again = crm.run(store)
    assert again.written == {} and again.failed == []  # not retried (or seen deleted)


@pytest.mark.parametrize("crm", CRMS, indirect=True)
def test_a_merge_moves_activity_and_score_history_to_the_survivor(crm: Crm, store: Store) -> None:
    crm.run(store)
    with store.session() as session:
        busy = session.exec(
            select(Activity.account_id).where(col(Activity.account_id).is_not(None))
        ).all()
    current = _current(store)
    loser = next(a for a in sorted(set(busy)) if a in current)
    master = next(a for a in sorted(current) if a != loser)
    crm.time.tick(60)
    survivor = crm.merge(master, loser)
    crm.time.tick(3700)

    report = crm.run(store)

    assert report.outcome == "ok"
    with store.session() as session:
        merged = session.get(Account, loser)
        moved = session.exec(select(Activity).where(Activity.account_id == loser)).all()
        history = score_history(session, survivor)
        runs = {row.account_id for row in history}
    assert merged is not None and merged.is_deleted and merged.merged_into == survivor
    assert moved == []
    assert loser in runs and survivor in _current(store)
    assert loser not in _current(store)


@pytest.mark.parametrize("crm", CRMS, indirect=True)
def test_a_first_run_diffs_while_the_mirrors_indexes_are_built_and_scores_before_it_writes(
    crm: Crm, sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the build holds SQLite's one write lock (here from its start until the diff is planned):
    # the score stage holds its writes back, the tier and diff stages read beside the build, the
    # run lock's heartbeats between them do not wait for it, and the save stage writes after it
    diffed = threading.Event()
    build, plan = Store.build_indexes, plan_writes

    def held_up(store: Store, *args: Any, **options: Any) -> None:
        if threading.current_thread().name == "index-build":
            writing = sqlite3.connect(store.engine.url.database, isolation_level=None)
            try:
                writing.execute("BEGIN IMMEDIATE")
                assert diffed.wait(60), "the build was waited for before the diff"
            finally:
                writing.close()
        build(store, *args, **options)

    def planned(*args: Any, **options: Any) -> Any:
        diffed.set()
        return plan(*args, **options)

    monkeypatch.setattr(Store, "build_indexes", held_up)
    monkeypatch.setattr("sync.run.plan_writes", planned)
    holder = Holder.this_process("held-writes")
    with run_lock(sqlite_store, f"{crm.name}:held", holder) as lock:
        first = crm.run(sqlite_store, heartbeat=lock.heartbeat)
    assert first.outcome == "ok" and diffed.is_set() and first.rescored_all == "first"
    with sqlite_store.session() as session:
        sums = session.exec(select(func.count()).select_from(AccountSignals)).one()
        live = session.exec(select(func.count()).where(col(Account.is_deleted).is_(False))).one()
        state = session.get(ScoringState, 1)
    assert sums == live and state is not None and state.seq == 1
    assert _index_names(sqlite_store, Activity) == _all_indexes(sqlite_store, Activity)
    again = crm.run(sqlite_store)  # scored from the sums the first run stored
    assert again.rescored_all is None and again.written == {} and again.outcome == "ok"


def test_the_planned_fields_count_every_write_once_however_its_values_are_shared() -> None:
    # the people of an account share its values mapping; an orphan has one of its own
    account = {"score": 80, "tier": "ae", "matched_account_id": "a"}
    equal = dict(account)  # the same values in a mapping of its own
    orphan = {"score": 10, "tier": "nurture", ORPHAN_REASON: "no_match"}
    plan = Plan(
        [
            Planned(Target("leads", "person", f"p{n}", "a", values, (), {}), "new")
            for n, values in enumerate([account, account, orphan, account, equal])
        ]
    )
    assert plan.fields() == {"score": 5, "tier": 5, "matched_account_id": 4, ORPHAN_REASON: 1}
    assert Plan().fields() == {}


@pytest.mark.parametrize("crm", CRMS, indirect=True)
def test_a_dry_run_writes_nothing_and_moves_no_cursor(crm: Crm, sqlite_store: Store) -> None:
    dry = crm.run(sqlite_store, dry_run=True)

    assert dry.outcome == "ok" and _pushes(crm) == 0
    assert dry.planned > ACCOUNTS and dry.planned_fields["tier"] == dry.planned
    assert dry.sample and dry.written == {}
    with sqlite_store.session() as session:
        assert session.exec(select(SyncCursor)).all() == []
        assert session.exec(select(WriteLedger)).all() == []
        assert session.exec(select(ScoreHistory)).all() == []
        assert session.exec(select(AccountSignals)).all() == []  # the score stage's, held
        assert session.get(ScoringState, 1) is None
        run = session.get(SyncRun, dry.run_id)
    assert run is not None and run.counts["dry_run"] == 1
    real = crm.run(sqlite_store)
    assert sum(real.written.values()) == dry.planned


@pytest.mark.parametrize("crm", ["salesforce"], indirect=True)
def test_a_run_spares_the_collector_what_the_process_held_and_hands_it_back(
    crm: Crm, sqlite_store: Store
) -> None:
    frozen: list[int] = []
    enabled: list[bool] = []
    host = gc.get_threshold()

    def heartbeat() -> None:  # between stages
        frozen.append(gc.get_freeze_count())
        enabled.append(gc.isenabled())
        if len(frozen) == 3:
            raise RuntimeError("the lock was taken over")

    young: list[int] = []  # at each pass of the collector, what its youngest generation held

    def passing(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            young.append(gc.get_count()[0])

    gc.collect()  # what earlier tests left as cyclic garbage is not held
    held = len(gc.get_objects())
    with pytest.raises(RuntimeError, match="taken over"):
        run_sync(_config(), crm.connector, sqlite_store, crm.time.now, heartbeat=heartbeat)

    assert len(frozen) == 3 and min(frozen) >= held // 2  # what was held before the run
    assert enabled == [False] * 3  # no automatic pass during the run
    assert gc.get_freeze_count() == 0 and gc.isenabled()  # handed back, though the run raised
    assert gc.get_threshold() == host
    gc.callbacks.append(passing)
    try:
        crm.run(sqlite_store, dry_run=True)
    finally:
        gc.callbacks.remove(passing)
    assert gc.get_freeze_count() == 0 and gc.isenabled() and gc.get_threshold() == host
    # what the run made is handed back as old: no pass as the run ends walks all of it as young
    assert all(count <= 2 * host[0] for count in young)
    gc.freeze()  # a host that froze objects itself (a pre-fork server) keeps them frozen
    try:
        kept = gc.get_freeze_count()
        crm.run(sqlite_store, dry_run=True, heartbeat=heartbeat)
        assert gc.get_freeze_count() > kept // 2  # (some were freed by their references)
        assert enabled[-1]  # and the collector as it set it
    finally:
        gc.unfreeze()
    gc.disable()  # a host that turned the collector off keeps it off
    try:
        crm.run(sqlite_store, dry_run=True, heartbeat=heartbeat)
        assert not gc.isenabled() and not enabled[-1] and gc.get_freeze_count() == 0
    finally:
        gc.enable()


def _unnamed(crm: Crm) -> str:
    """An account an old import left without a name, which the API refuses to write (poked into
    the sandbox's own table); its id."""
    dialect: Any = crm.sandbox.dialect
    if crm.name == "salesforce":
        table, name = dialect.state.records.table("Account"), "Name"
    else:
        table, name = dialect.store.tables["companies"], "name"
    record_id = str(table.frame[table.spec.key][0])
    table.overwrite({record_id: {name: None}})
    return record_id


@pytest.mark.parametrize("crm", CRMS, indirect=True)
def test_a_dirty_record_is_skipped_with_its_reason_and_the_rest_land(
    crm: Crm, store: Store
) -> None:
    unnamed = _unnamed(crm)

    report = crm.run(store)

    assert report.outcome == "ok" and report.pulled[crm.accounts]["skipped"] == 1
    assert report.written[crm.accounts] == ACCOUNTS - 1 and report.scored == ACCOUNTS - 1
    with store.session() as session:
        events = session.exec(select(RunEvent).where(RunEvent.run_id == report.run_id)).all()
        kept = session.get(Account, unnamed)
    assert [(e.record_id, e.reason) for e in events if e.action == "skipped"] == [
        (unnamed, "no name")
    ]
    assert kept is None and crm.shown(crm.accounts, [unnamed])[unnamed]["score"] is None


def test_a_hub_id_the_portal_would_not_give_is_asked_for_again(
    org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExitStack() as stack:
        hubspot = _open(stack, "hubspot", org)
        inner = hubspot.connector.inner  # type: ignore[attr-defined]
        answer = inner.api.call
        refusals = [ApiError(403, "MISSING_SCOPES", "This app hasn't been granted the scope")]

        def call(method: Any, *args: Any, **kwargs: Any) -> Any:
            if refusals:
                raise refusals.pop()
            return answer(method, *args, **kwargs)

        monkeypatch.setattr(inner.api, "call", call)
        refused, then, kept = inner.org_id(), inner.org_id(), inner.org_id()

    assert refused is None  # the run goes on without the org check
    assert then == kept == str(portal_id(org.manifest))  # asked again, then kept
