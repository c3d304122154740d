"""The connector contract, run over both CRMs against the sandbox: real clients, real HTTP.

Time is one fake clock shared by the sandbox and the connector's HTTP policy, so Retry-After
windows, pacing and backoff pass without waiting and every write gets a known timestamp.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
import requests
from pydantic import SecretStr

from connectors.budget import Budget
from connectors.config import HubSpotSettings, SalesforceSettings
from connectors.errors import (
    AuthError,
    BudgetExhausted,
    DailyLimitReached,
    Forbidden,
    RetriableError,
)
from connectors.http import Exchange, HttpPolicy, RetrySettings
from connectors.hubspot import BATCH_SIZE, HubSpotConnector
from connectors.protocol import (
    Checkpoint,
    Connector,
    Cursor,
    Record,
    SchemaSpec,
    Summary,
    Tombstone,
    Update,
    expanded,
    records,
)
from connectors.salesforce import SalesforceConnector
from connectors.schema import owned_for
from connectors.streams import HUBSPOT_STREAMS, SALESFORCE_STREAMS
from sandbox.faults import FaultPlan, FaultRule
from sandbox.generator import generate_org
from sandbox.org import Org
from sandbox.salesforce import SalesforceOptions, client_session
from sandbox.service import RunningSandbox, start_sandbox
from tests.sandbox_fixtures import (
    HUBSPOT_LOCKED_COMPANY,
    SALESFORCE_INSTANCE_URL,
    SALESFORCE_LOCKED_ACCOUNT,
    hubspot_client,
    salesforce_client,
    salesforce_jwt_key,
    salesforce_merge,
)

ACCOUNTS = 300
SPEC = SchemaSpec(("Nurture", "SDR", "AE", "Disqualified"), ("Wrong Persona", "No Budget", "Other"))
HOSTILE = "O'Brien \\ Sons' OR Name LIKE '%"
OPTIONS = SalesforceOptions()


class FakeTime:
    """One clock for the sandbox (datetimes) and the policy (seconds); sleeping moves it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Harness:
    """One CRM's sandbox, a connector factory, and the raw-client moves a test needs."""

    crm: str
    sandbox: RunningSandbox
    time: FakeTime
    build: Callable[..., Connector]
    accounts: str
    people: str
    paged: str  # a stream checkpointed page by page
    locked: str
    write_endpoint: str
    exchanges: list[Exchange] = field(default_factory=list)

    def connector(self, share: float = 0.25, **options: Any) -> Connector:
        policy = HttpPolicy(
            RetrySettings(),
            budget=Budget(share),
            sleep=self.time.sleep,
            clock=self.time.seconds,
            wall=self.time,
            listener=self.exchanges.append,
        )
        return self.build(policy, **options)

    def calls(self, endpoint: str) -> int:
        return self.sandbox.server.log.count(endpoint)


def _salesforce(stack: ExitStack, org: Org, time: FakeTime, **options: Any) -> Harness:
    faults = options.pop("faults", [])
    plan = FaultPlan([FaultRule("lock", records=(SALESFORCE_LOCKED_ACCOUNT,)), *faults])
    crm = stack.enter_context(start_sandbox("salesforce", org, faults=plan, clock=time, **options))

    def build(policy: HttpPolicy, **overrides: Any) -> Connector:
        settings = {
            "auth": "client_credentials",
            "instance_url": SALESFORCE_INSTANCE_URL,
            "client_id": OPTIONS.consumer_key,
            "client_secret": SecretStr(OPTIONS.consumer_secret),
        }
        sizes = {k: overrides.pop(k) for k in ("page_size", "bulk_page_size") if k in overrides}
        return SalesforceConnector(
            SalesforceSettings(**settings | overrides),
            session=client_session(crm.base_url),
            policy=policy,
            **sizes,
        )

    return Harness(
        "salesforce", crm, time, build, "Account", "Lead", "Lead", SALESFORCE_LOCKED_ACCOUNT,
        "composite/sobjects",
    )  # fmt: skip


def _hubspot(stack: ExitStack, org: Org, time: FakeTime, **options: Any) -> Harness:
    faults = options.pop("faults", [])
    plan = FaultPlan([FaultRule("lock", records=(HUBSPOT_LOCKED_COMPANY,)), *faults])
    options.setdefault("tier", "unlimited")
    crm = stack.enter_context(start_sandbox("hubspot", org, faults=plan, clock=time, **options))

    def build(policy: HttpPolicy, **overrides: Any) -> Connector:
        named = {k: overrides.pop(k) for k in set(overrides) & set(HubSpotSettings.model_fields)}
        settings = HubSpotSettings(token=SecretStr(named.pop("token", crm.token)), **named)
        return HubSpotConnector(settings, host=crm.base_url, policy=policy, **overrides)

    return Harness(
        "hubspot", crm, time, build, "companies", "contacts", "events", HUBSPOT_LOCKED_COMPANY,
        "companies/batch/update",
    )  # fmt: skip


_OPEN = {"salesforce": _salesforce, "hubspot": _hubspot}


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(ACCOUNTS, 13)


class Opener:
    """Opens fresh sandboxes of one CRM: ``open_crm(faults=[...], **sandbox_options)``."""

    def __init__(self, crm: str, stack: ExitStack, org: Org) -> None:
        self.crm, self._stack, self._org = crm, stack, org

    def __call__(self, **options: Any) -> Harness:
        return _OPEN[self.crm](self._stack, self._org, FakeTime(), **options)


@pytest.fixture(params=sorted(_OPEN))
def open_crm(request: pytest.FixtureRequest, org: Org) -> Iterator[Opener]:
    """Each test runs once per CRM, on sandboxes of its own."""
    with ExitStack() as stack:
        yield Opener(request.param, stack, org)


@pytest.fixture
def salesforce_crm(org: Org) -> Iterator[Opener]:
    with ExitStack() as stack:
        yield Opener("salesforce", stack, org)


@pytest.fixture
def hubspot_crm(org: Org) -> Iterator[Opener]:
    with ExitStack() as stack:
        yield Opener("hubspot", stack, org)


def _last_cursor(items: list[Any]) -> Cursor:
    """The cursor of a pull's last checkpoint, which comes right before its summary."""
    checkpoints = [item for item in items if isinstance(item, Checkpoint)]
    assert checkpoints and items[-2] is checkpoints[-1]
    assert isinstance(items[-1], Summary)
    return checkpoints[-1].cursor


def _fresh(items: Iterable[Any]) -> list[Record]:
    """The records of a pull that are new to its cursor (not re-read in the overlap window)."""
    return [r for r in records(items) if not r.reread]


def test_every_pull_ends_with_a_summary_of_what_it_delivered_and_cost(open_crm: Opener) -> None:
    h = open_crm()
    connector = h.connector()
    for stream in connector.streams:
        items = list(connector.pull(stream))
        summary = items[-1]
        assert isinstance(summary, Summary) and summary.stream == stream
        assert [isinstance(i, Summary) for i in items].count(True) == 1
        assert summary.records == len(records(items))
        assert summary.tombstones == sum(isinstance(i, Tombstone) for i in items)
        assert summary.calls >= 1


def test_full_then_incremental_pull_sees_exactly_the_changes(
    open_crm: Opener,
) -> None:
    h = open_crm()
    connector = h.connector()
    connector.ensure_schema(SPEC)
    full = list(connector.pull(h.accounts))
    accounts = records(full)
    assert len(accounts) == ACCOUNTS
    assert all(r.modified_at.tzinfo is UTC for r in accounts)
    first, second, third = (r.id for r in accounts[:3])
    h.time.tick()
    written_at = h.time.now
    connector.push(h.accounts, [Update(first, {"score": 12.5}), Update(second, {"score": 81.0})])
    h.time.tick()
    verdict = {"disposition": "Rejected", "reason_code": "No Budget"}
    connector.push(h.accounts, [Update(third, verdict)])

    changed = _fresh(connector.pull(h.accounts, _last_cursor(full)))

    assert [r.id for r in changed] == [*sorted([first, second]), third]
    assert changed[0].modified_at == changed[1].modified_at == written_at
    assert {k: changed[2].values[k] for k in verdict} == verdict


def test_a_resumed_pull_keeps_the_second_record_of_a_shared_timestamp(
    open_crm: Opener,
) -> None:
    h = open_crm()
    connector = h.connector()
    connector.ensure_schema(SPEC)
    cursor = _last_cursor(list(connector.pull(h.accounts)))
    ids = sorted(r.id for r in records(connector.pull(h.accounts)))[:2]
    h.time.tick()
    connector.push(h.accounts, [Update(i, {"score": 50.0}) for i in ids])
    shared = _fresh(connector.pull(h.accounts, cursor))
    # a run that committed the first record of the shared timestamp, then stopped
    resumed = Cursor(shared[0].modified_at, frozenset({shared[0].id}))

    assert [r.id for r in _fresh(connector.pull(h.accounts, resumed))] == [shared[1].id]


def test_deletes_and_merges_arrive_as_tombstones(open_crm: Opener) -> None:
    h = open_crm()
    connector = h.connector()
    full = list(connector.pull(h.accounts))
    gone = records(full)[4].id
    h.time.tick()
    _remove(h, gone)

    tombstones = [
        i for i in connector.pull(h.accounts, _last_cursor(full)) if isinstance(i, Tombstone)
    ]

    reason = "deleted" if h.crm == "salesforce" else "archived"
    assert [(t.id, t.reason, t.deleted_at) for t in tombstones] == [(gone, reason, h.time.now)]
    if h.crm == "hubspot":  # the sandbox org merges people who share an email address
        merged = [i for i in connector.pull(h.people) if isinstance(i, Tombstone)]
        assert merged and all(t.reason == "merged" and t.merged_into for t in merged)


# (CRM, stream) where a merge arrives
_MERGING_STREAMS = [
    ("salesforce", "Account"),
    ("salesforce", "Contact"),
    ("salesforce", "Lead"),
    ("hubspot", "companies"),
    ("hubspot", "contacts"),
    ("hubspot", "deals"),
]
_CONTACTS = {"salesforce": "Contact", "hubspot": "contacts"}


@pytest.mark.parametrize(("open_crm", "stream"), _MERGING_STREAMS, indirect=["open_crm"])
def test_a_merge_arrives_as_tombstones_naming_the_survivor(open_crm: Opener, stream: str) -> None:
    h = open_crm()
    connector = h.connector()
    full = list(connector.pull(stream))
    merged_before = {i.merged_into for i in full if isinstance(i, Tombstone)}
    master, loser = [r.id for r in records(full) if r.id not in merged_before][5:7]
    h.time.tick()
    survivor = _merge(h, stream, master, loser)

    changed = [
        i for i in connector.pull(stream, _last_cursor(full)) if not isinstance(i, Checkpoint)
    ]

    # Salesforce keeps the master; HubSpot makes a new record that both ids were merged into
    gone = sorted({master, loser} - {survivor})
    assert [i for i in changed if isinstance(i, Tombstone)] == [
        Tombstone(stream, i, h.time.now, "merged", survivor) for i in gone
    ]
    assert [(r.id, r.modified_at) for r in _fresh(changed)] == [(survivor, h.time.now)]


def test_an_account_merge_moves_its_contacts_to_the_survivor(open_crm: Opener) -> None:
    h = open_crm()
    connector = h.connector()
    contacts = list(connector.pull(_CONTACTS[h.crm]))
    loser = next(r.values["account_id"] for r in records(contacts) if r.values["account_id"])
    master = next(r.id for r in records(connector.pull(h.accounts)) if r.id != loser)
    h.time.tick()
    survivor = _merge(h, h.accounts, master, loser)
    gone = {master, loser} - {survivor}
    theirs = sorted(r.id for r in records(contacts) if r.values["account_id"] in gone)

    moved = _fresh(connector.pull(_CONTACTS[h.crm], _last_cursor(contacts)))

    assert theirs and sorted(r.id for r in moved) == theirs
    assert {(r.values["account_id"], r.modified_at) for r in moved} == {(survivor, h.time.now)}


def test_a_locked_record_alone_is_retried(open_crm: Opener) -> None:
    h = open_crm()
    connector = h.connector()
    connector.ensure_schema(SPEC)
    others = [r.id for r in records(connector.pull(h.accounts)) if r.id != h.locked][:4]
    updates = [Update(i, {"score": 42.0}) for i in [h.locked, *others]]

    results = connector.push(h.accounts, updates)

    assert all(r.ok for r in results)
    assert {r.id: r.attempts for r in results} == {h.locked: 2, **dict.fromkeys(others, 1)}
    assert h.calls(h.write_endpoint) == 2


def test_one_invalid_value_fails_that_record_alone(open_crm: Opener) -> None:
    h = open_crm()
    connector = h.connector()
    connector.ensure_schema(SPEC)
    ids = [r.id for r in records(connector.pull(h.accounts)) if r.id != h.locked][:100]
    bad = ids[37]
    updates = [Update(i, {"tier": "Platinum" if i == bad else "SDR"}) for i in ids]
    before = h.calls(h.write_endpoint)

    results = connector.push(h.accounts, updates)

    assert [r.id for r in results if not r.ok] == [bad]
    assert results[37].status == "permanent" and results[37].code and results[37].message
    # Salesforce answers per record; HubSpot refuses the batch whole, so it is halved down
    calls = h.calls(h.write_endpoint) - before
    assert calls == 1 if h.crm == "salesforce" else calls <= 1 + 2 * 7


def test_a_429_storm_is_waited_out_never_inside_retry_after(
    open_crm: Opener,
) -> None:
    endpoint = {"salesforce": "query", "hubspot": "companies"}[open_crm.crm]
    storm = FaultRule("status", status=429, retry_after=3, endpoint=endpoint, count=4)
    h = open_crm(faults=[storm])
    connector = h.connector()

    assert len(records(connector.pull(h.accounts))) == ACCOUNTS
    assert connector.usage().retries == 4
    refused = [e for e in h.exchanges if e.error is not None]
    assert [e.retry_after for e in refused] == [3.0] * 4
    for e in refused:  # nothing sent in the 3 seconds each 429 asked for
        after = h.exchanges[h.exchanges.index(e) + 1 :]
        assert min(x.started for x in after) >= e.finished + 3


def test_an_expired_session_is_renewed_once(open_crm: Opener) -> None:
    h = open_crm(faults=[FaultRule("expire_session", after=3)])
    connector = h.connector(page_size=200) if h.crm == "salesforce" else h.connector()

    assert len(records(connector.pull(h.accounts))) == ACCOUNTS
    if h.crm == "salesforce":
        assert h.calls("oauth2/token") == 2


def test_a_refused_token_fails_after_one_renewal(open_crm: Opener) -> None:
    h = open_crm()
    if h.crm == "salesforce":
        connector = h.connector(
            auth="session", session_id=SecretStr("revoked"), instance_url=SALESFORCE_INSTANCE_URL
        )
    else:
        connector = h.connector(token="pat-revoked")

    with pytest.raises(AuthError):
        list(connector.pull(h.accounts))
    assert h.sandbox.server.log.total() <= 2


def test_setup_twice_changes_nothing_then_repairs_drift(
    open_crm: Opener,
) -> None:
    h = open_crm()
    connector = h.connector()
    first = connector.ensure_schema(SPEC)
    second = connector.ensure_schema(SPEC)
    _drop_reason_code(h, "No Budget")
    third = connector.ensure_schema(SPEC)

    assert first.changed and not first.of("conflict")
    # what set-up keeps besides fields says what it is: HubSpot's property group on each
    # object, Salesforce's Reason Code rule on each
    kept = [change.detail for change in first.changes if change.detail]
    assert kept in (
        ["the property group of the fields below"] * 2,
        ["validation rule: a rejection needs a Reason Code"] * 2,
    )
    assert not second.changed and len(second.of("unchanged")) == len(first.changes)
    assert [(c.action, c.detail) for c in third.changes if c.action != "unchanged"] == [
        ("repaired", "added No Budget")
    ]


def test_schema_gaps_name_what_setup_has_yet_to_do_and_change_nothing(
    open_crm: Opener,
) -> None:
    h = open_crm()
    before = h.connector().schema_gaps(SPEC)
    h.connector().ensure_schema(SPEC)
    after = h.connector().schema_gaps(SPEC)
    _drop_reason_code(h, "No Budget")
    dropped = h.connector().schema_gaps(SPEC)
    again = h.connector().schema_gaps(SPEC)

    owned = [f for entity in ("account", "person") for f in owned_for(entity)]  # type: ignore[arg-type]
    assert sorted((g.name, g.label, g.problem) for g in before) == sorted(
        (getattr(f, h.crm), f.label, "missing") for f in owned
    )
    assert after == ()
    reason_code = next(f for f in owned if f.key == "reason_code")
    assert [(g.name, g.problem) for g in dropped] == [
        (getattr(reason_code, h.crm), "lacks No Budget")
    ]
    assert again == dropped  # looking changed nothing


def test_salesforce_schema_gaps_cost_no_call_beyond_the_pull(salesforce_crm: Opener) -> None:
    h = salesforce_crm()
    h.connector().ensure_schema(SPEC)
    checked, unchecked = h.connector(), h.connector()

    assert checked.schema_gaps(SPEC) == ()
    list(checked.pull(h.accounts))
    list(unchecked.pull(h.accounts))

    assert checked.usage().calls == unchecked.usage().calls


def test_a_hostile_name_is_escaped(open_crm: Opener) -> None:
    h = open_crm()
    connector = h.connector()
    target = records(connector.pull(h.accounts))[10].id
    _rename(h, target, HOSTILE)

    found = list(connector.find(h.accounts, "name", [HOSTILE]))

    assert [(r.id, r.values["name"]) for r in found] == [(target, HOSTILE)]


def test_the_budget_stops_a_run_cleanly_and_the_next_resumes(
    open_crm: Opener,
) -> None:
    salesforce = open_crm.crm == "salesforce"
    h = open_crm(api_limit=20) if salesforce else open_crm()
    share, options = (0.25, {"page_size": 200}) if salesforce else (1e-8, {})
    expected = {r.id for r in records(h.connector(share=1.0, **options).pull(h.paged))}
    delivered: list[str] = []
    cursor, runs = Cursor(), 0
    while True:
        runs += 1
        connector = h.connector(share=share, **options)
        try:
            for item in expanded(connector.pull(h.paged, cursor)):
                if isinstance(item, Record) and not item.reread:
                    delivered.append(item.id)
                elif isinstance(item, Checkpoint):
                    cursor = item.cursor
        except BudgetExhausted:
            assert connector.usage().budget_left == 0
            continue
        break

    assert runs > 1
    assert sorted(delivered) == sorted(expected)


def _pull_in_runs(
    h: Harness, stream: str, share: float, **options: Any
) -> tuple[list[str], list[Cursor], int]:
    """Pull ``stream`` from scratch run after run, each stopped by its budget, keeping only
    what the checkpoints covered: the ids delivered, every saved cursor, and the runs it took."""
    delivered: list[str] = []
    saved: list[Cursor] = []
    cursor, runs = Cursor(), 0
    while not saved or saved[-1].resume is not None:
        runs += 1
        pending: list[str] = []
        try:
            for item in expanded(h.connector(share=share, **options).pull(stream, cursor)):
                if isinstance(item, Record):
                    pending.append(item.id)
                elif isinstance(item, Checkpoint):
                    delivered += pending
                    pending, cursor = [], item.cursor
                    saved.append(cursor)
        except BudgetExhausted:
            continue
    return delivered, saved, runs


def test_a_full_load_stopped_by_the_budget_goes_on_from_its_last_page(
    open_crm: Opener,
) -> None:
    salesforce = open_crm.crm == "salesforce"
    h = open_crm(api_limit=400) if salesforce else open_crm()
    # Salesforce: a Bulk API 2.0 load in 100-row result pages; HubSpot: 100-record list pages
    bulk = {"bulk_threshold": 300, "page_size": 200, "bulk_page_size": 100}
    options, stream = (bulk, h.people) if salesforce else ({}, h.people)
    whole = list(h.connector(share=1.0, **options).pull(stream))

    delivered, saved, runs = _pull_in_runs(h, stream, 0.015 if salesforce else 3e-9, **options)

    assert runs > 2
    assert sum(c.resume is not None for c in saved) > 2
    assert sorted(delivered) == sorted(r.id for r in records(whole))
    assert saved[-1] == _last_cursor(whole)


def test_a_stopped_bulk_load_whose_job_is_gone_starts_over(salesforce_crm: Opener) -> None:
    h = salesforce_crm()
    options = {"bulk_threshold": 300, "page_size": 200, "bulk_page_size": 100}
    whole = list(h.connector(**options).pull(h.people))
    stopped = next(
        item.cursor
        for item in h.connector(**options).pull(h.people)
        if isinstance(item, Checkpoint) and item.cursor.resume is not None
    )
    job = json.loads(stopped.resume or "")["job"]
    salesforce_client(h.sandbox).restful(f"jobs/query/{job}", method="DELETE")

    again = list(h.connector(**options).pull(h.people, stopped))

    assert sorted(r.id for r in records(again)) == sorted(r.id for r in records(whole))
    assert _last_cursor(again) == _last_cursor(whole)


# --- incremental pulls: every stream, the overlap window, the recycle bin ------------------

# (CRM, stream) -> a field a user edits on it and the new value; None: the API is read-only
_EDITS: dict[tuple[str, str], tuple[str, Any] | None] = {
    ("salesforce", "User"): ("Department", "Inside Sales - EMEA"),
    ("salesforce", "Account"): ("Phone", "+49 30 1234567"),
    ("salesforce", "Lead"): ("Title", "Head of Security"),
    ("salesforce", "Contact"): ("Title", "CFO"),
    ("salesforce", "Opportunity"): ("Amount", 48_000.0),
    ("salesforce", "Task"): ("Description", "Left a voicemail"),
    ("salesforce", "Event"): ("Description", "Moved to Thursday"),
    ("salesforce", "CampaignMember"): ("Status", "Attended"),
    ("hubspot", "owners"): None,
    ("hubspot", "companies"): ("phone", "+49 30 1234567"),
    ("hubspot", "contacts"): ("jobtitle", "Head of Security"),
    ("hubspot", "deals"): ("dealname", "Renewal 2027"),
    ("hubspot", "calls"): ("hs_call_title", "Follow-up call"),
    ("hubspot", "emails"): ("hs_email_subject", "Re: pricing"),
    ("hubspot", "meetings"): ("hs_meeting_title", "Security review"),
    ("hubspot", "notes"): ("hs_note_body", "Wants SSO"),
    ("hubspot", "tasks"): ("hs_task_subject", "Send the contract"),
    ("hubspot", "events"): None,
    ("hubspot", "email_events"): None,
}
_EVERY_STREAM = [
    *(("salesforce", s) for s in SALESFORCE_STREAMS),
    *(("hubspot", s) for s in HUBSPOT_STREAMS),
]


def _edit(h: Harness, stream: str, record_id: str | None) -> str:
    """A user edits one record of ``stream`` (the field `_EDITS` names), or creates one where
    there is none (the sandbox portal has no notes or tasks); the record's id."""
    edit = _EDITS[(h.crm, stream)]
    assert edit is not None
    name, value = edit
    if h.crm == "salesforce":
        assert record_id is not None
        getattr(salesforce_client(h.sandbox), stream).update(record_id, {name: value})
        return record_id
    api = hubspot_client(h.sandbox).crm.objects.basic_api
    if record_id is None:
        when = h.time.now.isoformat()
        return str(api.create(stream, {"properties": {name: value, "hs_timestamp": when}}).id)
    api.update(stream, record_id, {"properties": {name: str(value)}})
    return record_id


def test_the_edit_table_covers_every_stream() -> None:
    assert sorted(_EDITS) == sorted(_EVERY_STREAM)


@pytest.mark.parametrize(("open_crm", "stream"), _EVERY_STREAM, indirect=["open_crm"])
def test_every_stream_pulls_incrementally_after_a_full_load(open_crm: Opener, stream: str) -> None:
    h = open_crm()
    connector = h.connector()
    full = list(connector.pull(stream))
    cursor = _last_cursor(full)
    live = [r.id for r in records(full) if r.id != h.locked]
    h.time.tick(60)
    edited = None
    if _EDITS[(h.crm, stream)] is not None:
        edited = _edit(h, stream, live[3] if live else None)
    h.time.tick(60)

    items = list(connector.pull(stream, cursor))

    assert [(r.id, r.modified_at) for r in _fresh(items)] == (
        [(edited, h.time.now - timedelta(seconds=60))] if edited else []
    )
    # the full load read long after its last change, so nothing behind its bound can be late,
    # and the records at the bound went out as they are
    assert not [r for r in records(items) if r.reread]
    summary = items[-1]
    assert isinstance(summary, Summary) and summary.reread == 0


@pytest.mark.parametrize("overlap_minutes", [5, 0])
def test_a_record_committed_late_inside_the_overlap_window_is_pulled(
    open_crm: Opener, overlap_minutes: int
) -> None:
    h = open_crm()
    connector = h.connector(overlap_minutes=overlap_minutes)
    full = list(connector.pull(h.accounts))
    before, early, late = [r.id for r in records(full) if r.id != h.locked][5:8]
    h.time.tick(60)
    _edit(h, h.accounts, before)
    h.time.tick(30)
    _edit(h, h.accounts, early)
    h.time.tick(60)
    cursor = _last_cursor(list(connector.pull(h.accounts, _last_cursor(full))))
    # stamped two minutes ago, so a minute before the cursor, but visible only now
    with h.sandbox.committing_late(timedelta(minutes=2)):
        _edit(h, h.accounts, late)
    h.time.tick(60)

    items = list(connector.pull(h.accounts, cursor))

    pulled = {r.id: r for r in records(items)}
    assert cursor.value is not None and cursor.ids == {early}
    if overlap_minutes == 0:  # without the window the late record is lost for good
        assert late not in pulled
        return
    assert pulled[late].modified_at == cursor.value - timedelta(minutes=1)
    # read again inside the window: ``before`` as delivered last time, ``late`` for the first
    # time; ``early`` went out at the bound as it is
    assert sorted(pulled) == sorted([before, late])
    assert all(r.reread for r in pulled.values())
    summary = items[-1]
    assert isinstance(summary, Summary) and summary.reread == 2
    after = _last_cursor(items)
    assert (after.value, after.ids) == (cursor.value, cursor.ids)
    assert after.read_at is not None and cursor.read_at is not None
    assert after.read_at > cursor.read_at


def test_hubspot_lists_its_recycle_bin_at_most_every_archive_every_minutes(
    hubspot_crm: Opener,
) -> None:
    h = hubspot_crm()
    connector = h.connector(archive_every_minutes=60)
    full = list(connector.pull("companies"))
    ids = [r.id for r in records(full)]
    cursor = _last_cursor(full)
    log = h.sandbox.server.log
    seen: list[tuple[list[str], int, int, Cursor]] = []
    for gone, minutes in [(ids[5], 15), (ids[6], 15), (ids[7], 50)]:
        h.time.tick(60)
        _remove(h, gone)
        h.time.tick(minutes * 60)
        calls, listed = log.total(), log.count("companies", "GET")
        items = list(connector.pull("companies", cursor))
        cursor = _last_cursor(items)
        summary = items[-1]
        assert isinstance(summary, Summary) and summary.calls == log.total() - calls
        tombstones = [i.id for i in items if isinstance(i, Tombstone)]
        seen.append((tombstones, log.count("companies", "GET") - listed, summary.calls, cursor))

    (first, listed_1, calls_1, after_1), (second, listed_2, calls_2, after_2) = seen[:2]
    third, listed_3, calls_3, after_3 = seen[2]
    assert (first, second, third) == ([ids[5]], [], [ids[6], ids[7]])
    assert listed_1 >= 1 and listed_2 == 0 and listed_3 == listed_1
    assert calls_2 == calls_1 - listed_1 and calls_3 == calls_1
    assert after_1.archive_read_at is not None
    assert after_2.archive_read_at == after_1.archive_read_at
    assert after_3.archive_read_at == h.time.now


@pytest.mark.parametrize("bulk", [False, True], ids=["rest", "bulk"])
def test_salesforce_full_loads_of_activities_include_archived_ones(
    salesforce_crm: Opener, bulk: bool
) -> None:
    h = salesforce_crm()
    options = {"bulk_threshold": 300 if bulk else 10**9, "page_size": 200}
    connector = h.connector(**options)
    org = h.sandbox.org
    year_ago = (org.manifest.end_at - timedelta(days=365)).date()
    archived = org.activities.filter(pl.col("occurred_at").dt.date() <= year_ago).height

    pulled = [r for s in ("Task", "Event") for r in records(connector.pull(s))]

    assert archived > 0 and len(pulled) == len({r.id for r in pulled}) == org.activities.height
    assert sum(r.values["occurred_at"].date() <= year_ago for r in pulled) == archived
    assert h.calls("queryAll") > 0 and h.calls("query") == 0  # query hides archived ones
    assert (h.calls("jobs/query") > 0) == bulk


def _remove(h: Harness, record_id: str) -> None:
    if h.crm == "salesforce":
        salesforce_client(h.sandbox).Account.delete(record_id)
    else:
        hubspot_client(h.sandbox).crm.companies.basic_api.archive(record_id)


def _rename(h: Harness, record_id: str, name: str) -> None:
    if h.crm == "salesforce":
        salesforce_client(h.sandbox).Account.update(record_id, {"Name": name})
    else:
        body = {"properties": {"name": name}}
        hubspot_client(h.sandbox).crm.companies.basic_api.update(record_id, body)


def _merge(h: Harness, stream: str, master: str, loser: str) -> str:
    """A user merges ``loser`` into ``master``; the id of the record that comes out of it."""
    if h.crm == "salesforce":
        salesforce_merge(h.sandbox, stream, master, [loser])
        return master
    body = {"primaryObjectId": master, "objectIdToMerge": loser}
    return getattr(hubspot_client(h.sandbox).crm, stream).basic_api.merge(body).id


def _drop_reason_code(h: Harness, value: str) -> None:
    """An admin removes one reason code from the picklist of leads / contacts."""
    kept = [code for code in SPEC.reason_codes if code != value]
    if h.crm == "salesforce":
        sf = salesforce_client(h.sandbox)
        query = (
            "SELECT Id FROM CustomField "
            "WHERE DeveloperName = 'Handoff_Reason_Code' AND TableEnumOrId = 'Lead'"
        )
        lead = sf.toolingexecute("query/", params={"q": query})["records"][0]["Id"]
        values = [{"fullName": v, "label": v, "default": False} for v in kept]
        value_set = {"restricted": True, "valueSetDefinition": {"value": values}}
        sf.toolingexecute(
            f"sobjects/CustomField/{lead}",
            method="PATCH",
            data={"Metadata": {"valueSet": value_set}},
        )
    else:
        options = [{"label": v, "value": v, "displayOrder": i} for i, v in enumerate(kept)]
        hubspot_client(h.sandbox).crm.properties.core_api.update(
            "contacts", "handoff_reason_code", {"options": options}
        )


# --- one CRM's own behaviour --------------------------------------------------------------


@pytest.mark.parametrize("auth", ["session", "password", "jwt", "client_credentials"])
def test_salesforce_logs_in_every_supported_way(salesforce_crm: Opener, auth: str) -> None:
    h = salesforce_crm()
    settings = {
        "session": {"session_id": SecretStr(h.sandbox.token)},
        "password": {
            "username": OPTIONS.username,
            "password": SecretStr(OPTIONS.password),
            "security_token": SecretStr(OPTIONS.security_token),
        },
        "jwt": {"username": OPTIONS.username, "private_key": SecretStr(salesforce_jwt_key())},
        "client_credentials": {},
    }[auth]

    connector = h.connector(auth=auth, **settings)

    assert len(records(connector.pull("User"))) == h.sandbox.org.users.height


def test_salesforce_large_loads_and_writes_go_through_bulk_api_2(
    salesforce_crm: Opener,
) -> None:
    h = salesforce_crm()
    rest = records(h.connector().pull("Lead"))
    bulk_connector = h.connector(bulk_threshold=300, bulk_write_threshold=50, page_size=200)
    bulk_connector.ensure_schema(SPEC)

    pulled = records(bulk_connector.pull("Lead"))
    accounts = [r.id for r in records(bulk_connector.pull("Account"))][:120]
    if SALESFORCE_LOCKED_ACCOUNT not in accounts:
        accounts[-1] = SALESFORCE_LOCKED_ACCOUNT
    results = bulk_connector.push("Account", [Update(i, {"score": 7.0}) for i in accounts])

    assert sorted((r.id, r.modified_at) for r in pulled) == sorted(
        (r.id, r.modified_at) for r in rest
    )
    assert h.calls("jobs/query") > 0 and h.calls("jobs/ingest") > 0
    assert all(r.ok for r in results)
    assert {r.id for r in results if r.attempts == 2} == {SALESFORCE_LOCKED_ACCOUNT}


# stream -> whether its records carry non-ASCII text (names in the org's many languages)
_BULK_STREAMS = {
    "Account": True,
    "Lead": True,
    "Contact": True,
    "Task": False,
    "Event": False,
    "CampaignMember": False,
}


@pytest.mark.parametrize(("stream", "non_ascii"), sorted(_BULK_STREAMS.items()))
def test_salesforce_bulk_and_rest_pulls_agree_on_every_field(
    salesforce_crm: Opener, stream: str, non_ascii: bool
) -> None:
    h = salesforce_crm()
    rest = records(h.connector(page_size=200, bulk_threshold=10**9).pull(stream))
    bulk = records(h.connector(page_size=200, bulk_threshold=1, bulk_page_size=500).pull(stream))

    assert h.calls("jobs/query") > 0
    assert {r.id: r for r in bulk} == {r.id: r for r in rest}
    texts = [v for r in rest for v in r.values.values() if isinstance(v, str)]
    assert any(not v.isascii() for v in texts) == non_ascii


def _pull_until_done(h: Harness, stream: str, **options: Any) -> tuple[list[str], int]:
    """Pull ``stream`` run after run from the last saved cursor until a run ends; the ids the
    checkpoints covered, and how many runs were stopped."""
    delivered: list[str] = []
    cursor, stopped = Cursor(), 0
    while True:
        pending: list[str] = []
        try:
            for item in expanded(h.connector(**options).pull(stream, cursor)):
                if isinstance(item, Record):
                    pending.append(item.id)
                elif isinstance(item, Checkpoint):
                    delivered, pending, cursor = delivered + pending, [], item.cursor
        except BudgetExhausted:
            stopped += 1
            continue
        return delivered, stopped


def test_salesforce_daily_limit_stops_a_pull_and_the_next_run_resumes(
    salesforce_crm: Opener,
) -> None:
    daily = FaultRule("limit", limit="daily", endpoint="query", after=2, count=1)
    h = salesforce_crm(faults=[daily])
    options = {"page_size": 200, "bulk_threshold": 10**9}

    delivered, stopped = _pull_until_done(h, "Lead", **options)

    whole = records(h.connector(**options).pull("Lead"))
    assert stopped == 1
    assert len(delivered) == len(set(delivered)) == len(whole)
    assert set(delivered) == {r.id for r in whole}
    refused = [e.error for e in h.exchanges if e.error is not None]
    assert [(type(e), e.status) for e in refused] == [(DailyLimitReached, 403)]


def test_salesforce_daily_limit_stops_a_push_that_keeps_the_results_it_has(
    salesforce_crm: Opener,
) -> None:
    daily = FaultRule("limit", limit="daily", endpoint="composite/sobjects", after=1, count=1)
    h = salesforce_crm(faults=[daily])
    connector = h.connector()
    connector.ensure_schema(SPEC)
    ids = [r.id for r in records(connector.pull(h.accounts)) if r.id != h.locked][:300]

    with pytest.raises(BudgetExhausted) as stopped:
        connector.push(h.accounts, [Update(i, {"score": 3.0}) for i in ids])

    assert [(r.id, r.ok) for r in stopped.value.results] == [(i, True) for i in ids[:200]]


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (FaultRule("limit", limit="concurrent", endpoint="query", count=2), 403),
        (FaultRule("edge", status=406, endpoint="query", count=2), 406),
        (FaultRule("edge", status=420, html=True, endpoint="query", count=2), 420),
    ],
    ids=["concurrent-limit", "edge-406", "edge-420"],
)
def test_salesforce_passing_refusals_are_retried_with_backoff(
    salesforce_crm: Opener, fault: FaultRule, status: int
) -> None:
    h = salesforce_crm(faults=[fault])
    connector = h.connector()

    assert len(records(connector.pull(h.accounts))) == ACCOUNTS
    assert connector.usage().retries == 2
    refused = [e.error for e in h.exchanges if e.error is not None]
    assert [(type(e), e.status) for e in refused] == [(RetriableError, status)] * 2
    assert len(h.time.slept) == 2


def test_salesforce_objects_bulk_refuses_go_through_rest(salesforce_crm: Opener) -> None:
    h = salesforce_crm(faults=[FaultRule("bulk_unsupported", objects=("Lead", "Account"))])
    connector = h.connector(bulk_threshold=300, bulk_write_threshold=50, page_size=200)
    connector.ensure_schema(SPEC)
    rest = records(h.connector().pull("Lead"))
    ids = [r.id for r in records(connector.pull("Account"))][:120]

    pulled = records(connector.pull("Lead"))
    again = records(connector.pull("Lead"))
    results = connector.push("Account", [Update(i, {"score": 5.0}) for i in ids])

    assert {r.id: r for r in pulled} == {r.id: r for r in rest} == {r.id: r for r in again}
    assert all(r.ok for r in results) and [r.id for r in results] == ids
    log = h.sandbox.server.log
    assert (log.count("jobs/query", "POST"), log.count("jobs/ingest", "POST")) == (1, 1)


@pytest.mark.parametrize(
    ("auth", "settings", "reason"),
    [
        (
            "password",
            {
                "username": OPTIONS.username,
                "password": SecretStr("wrong"),
                "security_token": SecretStr("wrong"),
            },
            "Invalid username, password, security token; or user locked out.",
        ),
        ("client_credentials", {"client_secret": SecretStr("wrong")}, "invalid client credentials"),
        (
            "jwt",
            {
                "username": "someone@else.example.com",
                "private_key": SecretStr(salesforce_jwt_key()),
            },
            "invalid assertion",
        ),
    ],
)
def test_salesforce_login_failures_show_salesforces_own_reason(
    salesforce_crm: Opener, auth: str, settings: dict[str, Any], reason: str
) -> None:
    h = salesforce_crm()

    with pytest.raises(AuthError) as refused:
        h.connector(auth=auth, **settings)

    assert str(refused.value).endswith(f"Salesforce refused the login: {reason}")


def test_salesforce_requires_a_reason_code_on_rejection(
    salesforce_crm: Opener,
) -> None:
    h = salesforce_crm()
    connector = h.connector()
    connector.ensure_schema(SPEC)
    lead, other = (r.id for r in records(connector.pull("Lead"))[:2])

    refused, accepted = connector.push(
        "Lead",
        [
            Update(lead, {"disposition": "Rejected"}),
            Update(other, {"disposition": "Rejected", "reason_code": "No Budget"}),
        ],
    )

    assert (refused.status, refused.code) == ("permanent", "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    assert accepted.ok


def test_hubspot_paces_under_its_ten_second_window(hubspot_crm: Opener) -> None:
    h = hubspot_crm(tier="starter")  # 100 calls a window, and no events API
    connector = h.connector(share=1.0)

    for _ in range(2):
        for stream in connector.streams:
            list(connector.pull(stream))

    assert connector.usage().calls > 100
    assert connector.usage().retries == 0
    refused = [e.error for e in h.exchanges if e.error is not None]
    assert [type(e) for e in refused] == [Forbidden]  # the events API, once: no 429 came


def test_hubspot_search_opens_new_windows_past_its_result_cap(
    hubspot_crm: Opener,
) -> None:
    h = hubspot_crm()
    everyone = {r.id for r in records(h.connector().pull("contacts"))}
    long_ago = Cursor(datetime(2000, 1, 1, tzinfo=UTC))

    pulled = [r.id for r in records(h.connector(search_cap=400).pull("contacts", long_ago))]

    assert len(pulled) == len(set(pulled)) and set(pulled) == everyone


_HUBSPOT_BATCH_UPDATES = ["companies/batch/update", "contacts/batch/update"]


def test_push_together_writes_several_streams_in_as_few_calls_as_the_crm_takes(
    open_crm: Opener,
) -> None:
    h = open_crm()
    connector = h.connector()
    connector.ensure_schema(SPEC)
    accounts = sorted(r.id for r in records(connector.pull(h.accounts)) if r.id != h.locked)[:250]
    people = sorted(
        r.id for r in records(connector.pull(h.people)) if not r.values.get("is_converted")
    )[:150]
    writes = {"salesforce": ["composite/sobjects"], "hubspot": _HUBSPOT_BATCH_UPDATES}[h.crm]
    before = sum(h.calls(endpoint) for endpoint in writes)

    results = connector.push_together(
        [
            (h.accounts, [Update(i, {"score": 7.0}) for i in accounts]),
            (h.people, [Update(i, {"score": 9.0}) for i in people]),
        ]
    )

    # Salesforce fills a call across objects: ceil(400 / 200); HubSpot's batch endpoints take
    # one object each: ceil(250 / 100) + ceil(150 / 100)
    calls = {"salesforce": 2, "hubspot": 5}[h.crm]
    assert sum(h.calls(endpoint) for endpoint in writes) - before == calls
    assert [[r.id for r in group] for group in results] == [accounts, people]
    assert all(r.ok for group in results for r in group)
    landed = {r.id: r.values["score"] for r in records(connector.pull(h.accounts))}
    landed |= {r.id: r.values["score"] for r in records(connector.pull(h.people))}
    assert {i: landed[i] for i in accounts} == dict.fromkeys(accounts, 7.0)
    assert {i: landed[i] for i in people} == dict.fromkeys(people, 9.0)


@pytest.mark.parametrize("field_name", ["name", "website"])
def test_writes_touch_only_the_fields_we_own(open_crm: Opener, field_name: str) -> None:
    h = open_crm()
    with pytest.raises(ValueError, match="does not write"):
        h.connector().push(h.accounts, [Update("1", {field_name: "x"})])


# --- a cycle with nothing new: one data read per stream, and no loss at ties ----------------

CYCLE = timedelta(minutes=15)  # a scheduled cycle's spacing: longer than the overlap window
# records one write stamps with one time: a Bulk job's (more than a page of 200 here), and one
# batch update's on HubSpot, which stamps each batch when it writes it (search pages hold 200)
WRITTEN = {"salesforce": 250, "hubspot": BATCH_SIZE}
_NOT_DATA = ("login", "oauth2", "describe", "versions", "resources", "limits", "properties")


def _data_reads(h: Harness) -> dict[str, int]:
    """Data reads the sandbox has served, by endpoint (logins and schema reads apart), from its
    own ``/__sandbox/requests`` counts."""
    answer = requests.get(
        f"{h.sandbox.base_url}/__sandbox/requests",
        headers={"Authorization": f"Bearer {h.sandbox.token}"},
        timeout=10,
    )
    answer.raise_for_status()
    counts: dict[str, int] = answer.json()["by_endpoint"]
    return {e: n for e, n in counts.items() if not any(word in e for word in _NOT_DATA)}


def _score(ids: Iterable[str], score: float) -> list[Update]:
    return [Update(i, {"score": score}) for i in ids]


def _cycle(h: Harness, connector: Connector, cursors: dict[str, Cursor]) -> dict[str, Any]:
    """Every stream pulled from its cursor: per stream, the items and the data reads it cost."""
    pulled = {}
    for stream in connector.streams:
        before = sum(_data_reads(h).values())
        items = list(connector.pull(stream, cursors[stream]))
        cursors[stream] = _last_cursor(items)
        pulled[stream] = (items, sum(_data_reads(h).values()) - before)
    return pulled


def test_a_cycle_with_nothing_new_reads_once_per_stream(open_crm: Opener) -> None:
    h = open_crm()
    connector = h.connector(**({"page_size": 200} if h.crm == "salesforce" else {}))
    connector.ensure_schema(SPEC)
    cursors = {s: _last_cursor(list(connector.pull(s))) for s in connector.streams}
    accounts = sorted(r.id for r in records(connector.pull(h.accounts)) if r.id != h.locked)
    people = sorted(r.id for r in records(connector.pull(h.people)))
    h.time.tick(60.5)  # stamps to the millisecond: a bound cut to its second reads it again
    connector.push(h.accounts, _score(accounts[: WRITTEN[h.crm]], 40.0))
    connector.push(h.people, _score(people[: WRITTEN[h.crm]], 40.0))  # converted leads: refused
    h.time.tick(CYCLE.total_seconds())
    written = _cycle(h, connector, cursors)
    h.time.tick(CYCLE.total_seconds())

    quiet = _cycle(h, connector, cursors)

    # the write-back stamped every account it wrote with one time, which the bound now holds
    fresh = _fresh(written[h.accounts][0])
    assert len(fresh) == WRITTEN[h.crm]
    assert {r.modified_at for r in fresh} == {cursors[h.accounts].value}
    assert cursors[h.accounts].ids == {r.id for r in fresh}
    # HubSpot's owners list has no modified filter: it is read, active and archived, when the
    # recycle bins are due (the hour after the full load's read), and not between
    owners = {"owners": 0} if h.crm == "hubspot" else {}
    assert {stream: reads for stream, (_, reads) in quiet.items()} == {
        **dict.fromkeys(quiet, 1),
        **owners,
    }
    if h.crm == "hubspot":
        before = sum(_data_reads(h).values())  # a portal whose list held no dated owner
        list(connector.pull("owners", Cursor(archive_read_at=cursors["owners"].archive_read_at)))
        assert sum(_data_reads(h).values()) == before
        h.time.tick(3600)
        list(connector.pull("owners", cursors["owners"]))
        assert sum(_data_reads(h).values()) - before == 2
    assert not [r for items, _ in quiet.values() for r in records(items)]


def test_salesforce_a_pull_stopped_inside_a_shared_time_goes_on_past_the_ids_it_holds(
    salesforce_crm: Opener,
) -> None:
    h = salesforce_crm()
    connector = h.connector(page_size=200)
    connector.ensure_schema(SPEC)
    full = list(connector.pull("Account"))
    ids = sorted(r.id for r in records(full) if r.id != h.locked)[: WRITTEN["salesforce"]]
    h.time.tick(60)
    connector.push("Account", _score(ids, 40.0))
    written_at = h.time.now
    h.time.tick(CYCLE.total_seconds())
    # a run that delivered the first page of the records sharing that time, long after it
    stopped = Cursor(written_at, frozenset(ids[:200]), read_at=h.time.now)

    items = list(connector.pull("Account", stopped))

    assert [r.id for r in _fresh(items)] == ids[200:]
    assert _last_cursor(items).ids == frozenset(ids)


def test_a_record_modified_at_the_bound_after_the_pull_comes_next_cycle(open_crm: Opener) -> None:
    h = open_crm()
    connector = h.connector()
    connector.ensure_schema(SPEC)
    full = list(connector.pull(h.accounts))
    ids = sorted(r.id for r in records(full) if r.id != h.locked)
    h.time.tick(60)
    connector.push(h.accounts, _score(ids[-5:], 40.0))
    cursor = _last_cursor(list(connector.pull(h.accounts, _last_cursor(full))))
    # the same instant, after the pull: a record sorting before every id the bound holds
    connector.push(h.accounts, _score(ids[:1], 41.0))
    h.time.tick(CYCLE.total_seconds())

    items = list(connector.pull(h.accounts, cursor))
    h.time.tick(CYCLE.total_seconds())
    then = list(connector.pull(h.accounts, _last_cursor(items)))

    assert cursor.value == h.time.now - 2 * CYCLE and cursor.ids == frozenset(ids[-5:])
    assert [(r.id, r.values["score"]) for r in _fresh(items)] == [(ids[0], 41.0)]
    assert _last_cursor(items).ids == frozenset([*ids[-5:], ids[0]])
    assert not records(then)


def test_hubspot_email_events_since_a_bound_read_a_busy_interval_type_by_type(
    hubspot_crm: Opener,
) -> None:
    h = hubspot_crm()
    connector = h.connector()
    full = list(connector.pull("email_events"))
    long_ago = Cursor(datetime(2000, 1, 1, tzinfo=UTC))
    listed = h.calls("email/events")

    busy = list(connector.pull("email_events", long_ago))
    busy_calls = h.calls("email/events") - listed
    h.time.tick(CYCLE.total_seconds())
    quiet = list(connector.pull("email_events", _last_cursor(busy)))

    # every type at once holds more than a page here, so opens and clicks are read on their own
    assert busy_calls >= 3
    assert sorted(r.id for r in records(busy)) == sorted(r.id for r in records(full))
    assert _last_cursor(busy) == _last_cursor(full)
    assert not records(quiet) and h.calls("email/events") - listed == busy_calls + 1
