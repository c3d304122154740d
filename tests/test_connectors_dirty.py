"""Dirty values as real orgs hold them, pulled through the sandbox with the real clients.

The APIs refuse to write such values, so each test pokes them into the sandbox's store directly
(one dirty value per converter, a record without an id, records without a modification time) and
pulls every stream: no other record may be lost, each dirty value becomes None with a warning on
its record, and the pull's summary counts the warnings and the records skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import polars as pl
import pytest
from pydantic import SecretStr

from connectors.config import HubSpotSettings
from connectors.hubspot import HubSpotConnector
from connectors.keys import NO_ID, NO_TIME
from connectors.protocol import Connector, Record, Summary, records
from connectors.salesforce import SalesforceConnector
from sandbox.generator import generate_org
from sandbox.org import Org
from sandbox.salesforce import client_session
from sandbox.service import RunningSandbox, start_sandbox
from sandbox.tables import Table
from tests.sandbox_fixtures import hubspot_client, salesforce_settings

ACCOUNTS = 120
_STAMPS_GONE = {"SystemModstamp": None, "LastModifiedDate": None}

# stream -> (row number, raw values poked into it)
SALESFORCE_DIRT: dict[str, list[tuple[int, dict[str, Any]]]] = {
    "Account": [
        (0, {"NumberOfEmployees": "abc"}),
        (1, {"AnnualRevenue": "1,2 Mio"}),
        (2, _STAMPS_GONE),  # CreatedDate stands in
    ],
    "Opportunity": [(0, {"CloseDate": "2024-02-30"}), (1, {"CreatedDate": "yesterday"})],
    "Lead": [(0, {"Id": None})],
    "Contact": [(0, {**_STAMPS_GONE, "CreatedDate": None})],
    "Event": [(0, {"ActivityDateTime": "soon"})],
    "CampaignMember": [(0, {"CreatedDate": "2024-13-45T00:00:00Z"})],
}
# stream -> (warnings, skipped) the pull's summary must count
SALESFORCE_SUMMARIES: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    "Account": (
        {
            "employees: not a whole number": 1,
            "revenue: not a number": 1,
            "modified_at: no readable SystemModstamp; CreatedDate used": 1,
        },
        {},
    ),
    "Opportunity": (
        {"close_date: not a date": 1, "opened_at: not a date and time": 1},
        {},
    ),
    "Lead": ({}, {NO_ID: 1}),
    "Contact": ({}, {NO_TIME: 1}),
    "Event": ({"occurred_at: not a date and time": 1}, {}),
    "CampaignMember": ({"occurred_at: not a date and time": 1}, {}),
}

HUBSPOT_DIRT: dict[str, list[tuple[int, dict[str, Any]]]] = {
    "companies": [
        (0, {"numberofemployees": "abc"}),
        (1, {"annualrevenue": "1e999999"}),
        (2, {"hs_lastmodifieddate": None}),  # updatedAt stands in
    ],
    "deals": [(0, {"closedate": "2024-02-30"}), (1, {"createdate": "yesterday"})],
    "calls": [(0, {"hs_timestamp": "soon"})],
}
HUBSPOT_SUMMARIES: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    "companies": (
        {
            "employees: not a whole number": 1,
            "revenue: not a number": 1,
            "modified_at: no readable hs_lastmodifieddate; updatedAt used": 1,
        },
        {},
    ),
    "deals": ({"close_date: not a date": 1, "opened_at: not a date and time": 1}, {}),
    "calls": ({"occurred_at: not a date and time": 1}, {}),
    "owners": (
        {f"{f}: unreadable (AttributeError)": 1 for f in ("role", "territory", "out_of_office")},
        {NO_ID: 1},
    ),
    "events": ({"type: unreadable (ValueError)": 1, "topic: unreadable (ValueError)": 1}, {}),
}
DIRTY_URL = "http://[::1"


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(ACCOUNTS, 5)


def _poke(table: Table, dirt: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """Overwrite the given rows with raw values; the ids of the rows, as they were."""
    key = table.spec.key
    ids = [table.frame[key][row] for row, _ in dirt]
    table.overwrite({i: values for i, (_, values) in zip(ids, dirt, strict=True)})
    return ids


def _salesforce(crm: RunningSandbox, **settings: Any) -> SalesforceConnector:
    return SalesforceConnector(
        salesforce_settings(**settings),
        session=client_session(crm.base_url),
        page_size=200,
    )


def _hubspot(crm: RunningSandbox) -> HubSpotConnector:
    return HubSpotConnector(HubSpotSettings(token=SecretStr(crm.token)), host=crm.base_url)


def _pulled(connector: Connector, stream: str) -> tuple[list[Record], Summary]:
    items = list(connector.pull(stream))
    summary = items[-1]
    assert isinstance(summary, Summary)
    return records(items), summary


def _assert_nothing_else_lost(
    got: list[Record],
    summary: Summary,
    expected: tuple[Mapping[str, int], Mapping[str, int]],
    live: set[str],
    gone: set[str],
) -> None:
    warnings, skipped = expected
    assert {r.id for r in got} == live - gone
    assert (dict(summary.warnings), dict(summary.skipped)) == (warnings, skipped)
    assert summary.records == len(got)


@pytest.fixture(scope="module")
def salesforce_dirty(org: Org) -> Iterator[tuple[RunningSandbox, dict[str, set[str]]]]:
    """A Salesforce org with dirty rows; per stream, the ids a pull cannot deliver."""
    with start_sandbox("salesforce", org) as crm:
        records_ = crm.dialect.state.records
        gone: dict[str, set[str]] = {}
        for stream, dirt in SALESFORCE_DIRT.items():
            ids = _poke(records_.table(stream), dirt)
            _, skipped = SALESFORCE_SUMMARIES[stream]
            gone[stream] = set(ids) if skipped else set()
        yield crm, gone


@pytest.mark.parametrize("bulk", [False, True], ids=["rest", "bulk"])
@pytest.mark.parametrize("stream", sorted(SALESFORCE_SUMMARIES))
def test_salesforce_dirty_values_lose_no_other_record(
    salesforce_dirty: tuple[RunningSandbox, dict[str, set[str]]], stream: str, bulk: bool
) -> None:
    crm, gone = salesforce_dirty
    connector = _salesforce(crm, **({"bulk_threshold": 1} if bulk else {}))
    table = crm.dialect.state.records.table(stream).frame
    live = {i for i in table.filter(~pl.col("IsDeleted"))["Id"].to_list() if i is not None}

    got, summary = _pulled(connector, stream)

    _assert_nothing_else_lost(got, summary, SALESFORCE_SUMMARIES[stream], live, gone[stream])


def test_salesforce_dirty_values_become_none_and_the_rest_of_the_record_is_kept(
    salesforce_dirty: tuple[RunningSandbox, dict[str, set[str]]],
) -> None:
    crm, _ = salesforce_dirty
    accounts = {r.id: r for r in records(_salesforce(crm).pull("Account"))}
    frame = crm.dialect.state.records.table("Account").frame
    first, _, stale = frame["Id"][:3]

    assert accounts[first].values["employees"] is None
    assert accounts[first].values["name"] == frame["Name"][0]
    assert accounts[stale].modified_at == frame["CreatedDate"][2]


@pytest.fixture(scope="module")
def hubspot_dirty(org: Org) -> Iterator[RunningSandbox]:
    """A HubSpot portal with dirty properties, a dirty owner, an owner without an id, and an
    event whose URL cannot be parsed."""
    with start_sandbox("hubspot", org, tier="unlimited") as crm:
        dialect = crm.dialect
        for stream, dirt in HUBSPOT_DIRT.items():
            _poke(dialect.store.tables[stream], dirt)
        dialect.owners.owners[1]["teams"] = "Sales Team East"
        dialect.owners.owners[2]["id"] = None
        events = dialect.events
        dirty = pl.int_range(pl.len()) == 0
        frame = events.ascending.with_columns(
            hs_url=pl.when(dirty).then(pl.lit(DIRTY_URL)).otherwise(pl.col("hs_url"))
        )
        events.ascending, events.descending = frame, frame.reverse()
        yield crm


def _hubspot_live(crm: RunningSandbox, stream: str) -> set[str]:
    """The ids a pull must deliver (events by their activity number, the end of their id)."""
    dialect = crm.dialect
    if stream == "owners":
        return {str(o["id"]) for o in dialect.owners.owners if o["id"] is not None}
    if stream == "events":
        return {str(n).zfill(12) for n in dialect.events.ascending["activity_id"].to_list()}
    frame = dialect.store.tables[stream].frame
    return set(frame.filter(~pl.col("_archived"))["hs_object_id"].to_list())


@pytest.mark.parametrize("stream", sorted(HUBSPOT_SUMMARIES))
def test_hubspot_dirty_values_lose_no_other_record(
    hubspot_dirty: RunningSandbox, stream: str
) -> None:
    got, summary = _pulled(_hubspot(hubspot_dirty), stream)

    if stream == "events":
        got = [replace(r, id=r.id[-12:]) for r in got]
    _assert_nothing_else_lost(
        got, summary, HUBSPOT_SUMMARIES[stream], _hubspot_live(hubspot_dirty, stream), set()
    )


def test_an_event_with_an_unreadable_url_keeps_its_time_and_person(
    hubspot_dirty: RunningSandbox,
) -> None:
    events = records(_hubspot(hubspot_dirty).pull("events"))
    (dirty,) = [e for e in events if e.warnings]

    assert dirty.values["type"] is None
    assert dirty.values["occurred_at"] == dirty.modified_at
    assert dirty.values["person_id"] or dirty.values["account_id"]
    assert all(DIRTY_URL in w.raw for w in dirty.warnings)


def test_hubspot_search_answers_a_record_with_an_empty_date_as_hubspot_does(
    hubspot_dirty: RunningSandbox,
) -> None:
    """Records keep ``updatedAt`` (required in HubSpot's SimplePublicObject); the empty
    property reads null; a comparison never matches it; a sort puts it last."""
    client = hubspot_client(hubspot_dirty)
    empty = hubspot_dirty.dialect.store.tables["companies"].frame["hs_object_id"][2]
    sort = {"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}
    found = client.crm.companies.search_api.do_search(
        {"sorts": [sort], "limit": 200, "properties": ["hs_lastmodifieddate"]}
    ).results
    since = {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}
    matched = client.crm.companies.search_api.do_search({"filterGroups": [{"filters": [since]}]})

    assert found[-1].id == empty and found[-1].properties["hs_lastmodifieddate"] is None
    assert found[-1].updated_at is not None
    assert matched.total == ACCOUNTS - 1
