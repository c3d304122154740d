"""The HubSpot sandbox conformance suite: the unmodified hubspot-api-client over real HTTP."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import polars as pl
import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.companies import PublicMergeInput as CompanyMergeInput
from hubspot.crm.companies.exceptions import ApiException as CompaniesApiException
from hubspot.crm.contacts import PublicMergeInput as ContactMergeInput
from hubspot.crm.contacts.exceptions import ApiException as ContactsApiException
from hubspot.crm.deals import PublicMergeInput as DealMergeInput
from hubspot.crm.objects.exceptions import ApiException as ObjectsApiException
from hubspot.crm.owners.exceptions import ApiException as OwnersApiException
from hubspot.events.exceptions import ApiException as EventsApiException

from sandbox.faults import FaultPlan, FaultRule
from sandbox.hubspot import WEB_TOUCHES
from sandbox.hubspot.analytics import HISTORY_DEPTH
from sandbox.hubspot.events import NOT_ENTERPRISE
from sandbox.hubspot.touches import MARKETING_EMAIL
from sandbox.org import Org
from sandbox.service import RunningSandbox, start_sandbox
from sandbox.teams import user_labels
from tests.sandbox_fixtures import HUBSPOT_LOCKED_COMPANY, HubSpotClock, hubspot_client

COMPANY_BASE, CONTACT_BASE = 20_000_000_000, 30_000_000_000
REP_ACTIVITIES = {"calls": "call", "emails": "email", "meetings": "meeting"}


def _pages(fetch: Callable[[str | None], Any]) -> Iterator[Any]:
    """Every page of a paged call, following ``paging.next.after`` until it is absent."""
    after, seen = None, set()
    while True:
        page = fetch(after)
        yield page
        if page.paging is None:
            return
        after = page.paging.next.after
        assert after not in seen, "a repeated page token"
        seen.add(after)


def _all(client: HubSpot, object_name: str, **kwargs: Any) -> list[Any]:
    """Every record of an object, 100 a page."""
    return [
        record
        for page in _pages(
            lambda after: client.crm.objects.basic_api.get_page(
                object_name, limit=100, after=after, **kwargs
            )
        )
        for record in page.results
    ]


def _survivors(org: Org) -> pl.DataFrame:
    """The people HubSpot shows as contacts: one per email (the earliest), or without email."""
    email = pl.col("email").str.to_lowercase()
    return org.people.filter(
        email.is_null() | (pl.col("person_id") == pl.col("person_id").min().over(email))
    )


def _error(exc: pytest.ExceptionInfo[Any]) -> dict[str, Any]:
    return json.loads(exc.value.body)


# --- lists, archives, get --------------------------------------------------------------------


@pytest.mark.parametrize(
    "object_name", ["companies", "contacts", "deals", "calls", "emails", "meetings"]
)
def test_list_pages_to_the_end_and_counts_match_the_org(
    hubspot: HubSpot, hubspot_org: Org, object_name: str
) -> None:
    live = _all(hubspot, object_name)
    archived = _all(hubspot, object_name, archived=True)
    expected = {
        "companies": hubspot_org.accounts.height,
        "contacts": _survivors(hubspot_org).height,
        "deals": hubspot_org.opportunities.height,
        **{
            name: hubspot_org.activities.filter(pl.col("type") == kind).height
            for name, kind in REP_ACTIVITIES.items()
        },
    }[object_name]
    ids = [r.id for r in live + archived]
    assert len(ids) == len(set(ids)) == expected
    assert all(r.id.isdigit() and r.properties["hs_object_id"] == r.id for r in live)
    assert all(r.created_at is not None and r.updated_at is not None for r in live)


def test_archived_records_are_listed_only_with_archived_true(
    hubspot: HubSpot, hubspot_org: Org
) -> None:
    archived = _all(hubspot, "contacts", archived=True)
    assert archived and all(r.archived and r.archived_at is not None for r in archived)
    record_id = archived[0].id
    with pytest.raises(ObjectsApiException) as missing:
        hubspot.crm.objects.basic_api.get_by_id("contacts", record_id)
    assert missing.value.status == 404 and _error(missing)["category"] == "OBJECT_NOT_FOUND"
    found = hubspot.crm.objects.basic_api.get_by_id("contacts", record_id, archived=True)
    assert found.id == record_id and found.archived


def test_get_by_id_maps_the_org_and_a_merged_id_answers_with_its_survivor(
    hubspot: HubSpot, hubspot_org: Org
) -> None:
    account = hubspot_org.accounts.row(3, named=True)
    company = hubspot.crm.companies.basic_api.get_by_id(
        str(COMPANY_BASE + account["account_id"]),
        properties=["name", "domain", "numberofemployees", "type", "lifecyclestage"],
    )
    assert company.properties["name"] == account["name"]
    assert company.properties["domain"] == account["domain"]
    assert company.properties["numberofemployees"] == str(account["employees"])
    assert company.properties["type"] in ("PROSPECT", "COMPETITOR")
    email = pl.col("email").str.to_lowercase()
    dup = hubspot_org.people.filter(
        email.is_not_null() & (pl.col("person_id") != pl.col("person_id").min().over(email))
    )
    merged_id = str(CONTACT_BASE + dup["person_id"][0])
    survivor = hubspot.crm.contacts.basic_api.get_by_id(
        merged_id, properties=["email", "hs_merged_object_ids"]
    )
    assert survivor.id != merged_id
    assert merged_id in survivor.properties["hs_merged_object_ids"].split(";")
    assert survivor.properties["email"].lower() == dup["email"][0].lower()


def test_a_missing_record_is_a_404_and_an_unknown_object_a_400(hubspot: HubSpot) -> None:
    with pytest.raises(ObjectsApiException) as missing:
        hubspot.crm.objects.basic_api.get_by_id("companies", "29999999999")
    assert missing.value.status == 404
    with pytest.raises(ObjectsApiException) as unknown:
        hubspot.crm.objects.basic_api.get_page("widgets")
    assert unknown.value.status == 400 and "widgets" in _error(unknown)["message"]


# --- search ----------------------------------------------------------------------------------

_ACCOUNT_FILTERS: list[tuple[dict[str, Any], pl.Expr]] = [
    ({"propertyName": "type", "operator": "EQ", "value": "COMPETITOR"}, pl.col("is_competitor")),
    ({"propertyName": "type", "operator": "NEQ", "value": "competitor"}, ~pl.col("is_competitor")),
    (
        {"propertyName": "numberofemployees", "operator": "LT", "value": "50"},
        pl.col("employees") < 50,
    ),
    (
        {"propertyName": "numberofemployees", "operator": "LTE", "value": "50"},
        pl.col("employees") <= 50,
    ),
    (
        {"propertyName": "numberofemployees", "operator": "GT", "value": "50"},
        pl.col("employees") > 50,
    ),
    (
        {"propertyName": "numberofemployees", "operator": "GTE", "value": "50"},
        pl.col("employees") >= 50,
    ),
    (
        {
            "propertyName": "numberofemployees",
            "operator": "BETWEEN",
            "value": "10",
            "highValue": "200",
        },
        pl.col("employees").is_between(10, 200),
    ),
    (
        {"propertyName": "industry", "operator": "IN", "values": ["SOFTWARE", "FINTECH"]},
        pl.col("industry").is_in(["Software", "Fintech"]),
    ),
    (
        {"propertyName": "industry", "operator": "NOT_IN", "values": ["SOFTWARE", "FINTECH"]},
        ~pl.col("industry").is_in(["Software", "Fintech"]),
    ),
    (
        {"propertyName": "hs_parent_company_id", "operator": "HAS_PROPERTY"},
        pl.col("parent_id").is_not_null(),
    ),
    (
        {"propertyName": "hs_additional_domains", "operator": "NOT_HAS_PROPERTY"},
        pl.col("alias_domain").is_null(),
    ),
    (
        {"propertyName": "domain", "operator": "CONTAINS_TOKEN", "value": "*.de"},
        pl.col("domain").str.ends_with(".de"),
    ),
    (
        {"propertyName": "createdate", "operator": "GTE", "value": "2025-01-01T00:00:00Z"},
        pl.col("created_at") >= pl.datetime(2025, 1, 1, time_zone="UTC"),
    ),
]


@pytest.mark.parametrize(
    ("search_filter", "expected"),
    _ACCOUNT_FILTERS,
    ids=lambda f: getattr(f, "get", lambda _: "")("operator"),
)
def test_search_operators_match_the_org(
    hubspot: HubSpot, hubspot_org: Org, search_filter: dict[str, Any], expected: pl.Expr
) -> None:
    body = {"filterGroups": [{"filters": [search_filter]}], "limit": 200, "properties": ["name"]}
    found = hubspot.crm.companies.search_api.do_search(body)
    assert found.total == hubspot_org.accounts.filter(expected.fill_null(False)).height > 0


def test_search_ors_groups_sorts_and_pages(hubspot: HubSpot, hubspot_org: Org) -> None:
    groups = [
        {"filters": [{"propertyName": "type", "operator": "EQ", "value": "COMPETITOR"}]},
        {"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"}]},
    ]
    sort = [{"propertyName": "numberofemployees", "direction": "DESCENDING"}]
    pages = list(
        _pages(
            lambda after: hubspot.crm.companies.search_api.do_search(
                {
                    "filterGroups": groups,
                    "sorts": sort,
                    "limit": 7,
                    "after": after,
                    "properties": ["numberofemployees"],
                }
            )
        )
    )
    sizes = [r.properties["numberofemployees"] for p in pages for r in p.results]
    expected = hubspot_org.accounts.filter(pl.col("is_competitor") | pl.col("is_customer"))
    assert len(sizes) == pages[0].total == expected.height
    known = [int(size) for size in sizes if size is not None]
    assert known == sorted(known, reverse=True) and sizes[: len(known)] == [str(k) for k in known]


def test_search_caps_pages_at_200_and_results_at_10000(hubspot: HubSpot) -> None:
    with pytest.raises(ContactsApiException) as too_big:
        hubspot.crm.contacts.search_api.do_search({"limit": 201})
    assert too_big.value.status == 400
    assert hubspot.crm.contacts.search_api.do_search({"limit": 200, "after": "9800"}).results == []
    with pytest.raises(ContactsApiException) as past_cap:
        hubspot.crm.contacts.search_api.do_search({"limit": 100, "after": "10000"})
    assert past_cap.value.status == 400 and _error(past_cap)["category"] == "VALIDATION_ERROR"


# --- batches and writes ----------------------------------------------------------------------


def test_batch_read_reports_missing_ids_in_a_207(hubspot: HubSpot) -> None:
    inputs = [{"id": str(COMPANY_BASE + 1)}, {"id": "29999999999"}]
    answer = hubspot.crm.companies.batch_api.read({"inputs": inputs, "properties": ["name"]})
    assert [r.id for r in answer.results] == [str(COMPANY_BASE + 1)]
    assert answer.errors[0].category == "OBJECT_NOT_FOUND"
    assert answer.errors[0].context["ids"] == ["29999999999"]


def test_batch_update_fails_a_locked_record_alone_with_a_retriable_conflict(
    hubspot: HubSpot,
) -> None:
    other = str(COMPANY_BASE + 6)
    inputs = [
        {"id": HUBSPOT_LOCKED_COMPANY, "properties": {"city": "Lockton"}},
        {"id": other, "properties": {"city": "Freeburg"}},
    ]
    answer = hubspot.crm.companies.batch_api.update({"inputs": inputs})
    assert [r.id for r in answer.results] == [other] and answer.num_errors == 1
    assert answer.errors[0].category == "CONFLICT"
    assert answer.errors[0].context["ids"] == [HUBSPOT_LOCKED_COMPANY]
    city = hubspot.crm.companies.basic_api.get_by_id(other, properties=["city"]).properties["city"]
    assert city == "Freeburg"
    retried = hubspot.crm.companies.batch_api.update({"inputs": inputs[:1]})
    assert not hasattr(retried, "errors") and retried.results[0].properties["city"] == "Lockton"


def test_create_batch_create_and_upsert_answer_what_the_client_expects(hubspot: HubSpot) -> None:
    created = hubspot.crm.contacts.basic_api.create(
        {"properties": {"email": "ada@analytical.example", "firstname": "Ada"}}
    )
    assert created.id.isdigit() and created.properties["firstname"] == "Ada"
    with pytest.raises(ContactsApiException) as duplicate:
        hubspot.crm.contacts.basic_api.create({"properties": {"email": "ADA@analytical.example"}})
    assert duplicate.value.status == 409
    batch = hubspot.crm.contacts.batch_api.create(
        {"inputs": [{"properties": {"email": f"n{i}@batch.example"}} for i in range(3)]}
    )
    assert len(batch.results) == 3 and batch.status == "COMPLETE"
    upserted = hubspot.crm.contacts.batch_api.upsert(
        {
            "inputs": [
                {
                    "idProperty": "email",
                    "id": "ada@analytical.example",
                    "properties": {"lastname": "L"},
                },
                {
                    "idProperty": "email",
                    "id": "grace@hopper.example",
                    "properties": {"lastname": "H"},
                },
            ]
        }
    )
    assert sorted((r.properties["lastname"], r.new) for r in upserted.results) == [
        ("H", True),
        ("L", False),
    ]


def test_an_invalid_property_value_is_refused_with_a_400(hubspot: HubSpot) -> None:
    for properties in ({"numberofemployees": "many"}, {"no_such_property": "x"}):
        with pytest.raises(CompaniesApiException) as refused:
            hubspot.crm.companies.basic_api.update(
                str(COMPANY_BASE + 7), {"properties": properties}
            )
        assert refused.value.status == 400 and _error(refused)["category"] == "VALIDATION_ERROR"


# --- associations v4 -------------------------------------------------------------------------


def test_associations_v4_read_and_create(hubspot: HubSpot, hubspot_org: Org) -> None:
    person = hubspot_org.people.filter(pl.col("account_id").is_not_null()).row(0, named=True)
    contact_id = str(CONTACT_BASE + person["person_id"])
    company_id = COMPANY_BASE + person["account_id"]
    v4 = hubspot.crm.associations.v4
    page = v4.basic_api.get_page("contacts", contact_id, "companies")
    assert [r.to_object_id for r in page.results] == [str(company_id)]
    assert sorted(t.type_id for t in page.results[0].association_types) == [1, 279]
    batch = v4.batch_api.get_page("companies", "contacts", {"inputs": [{"id": str(company_id)}]})
    assert contact_id in [t.to_object_id for t in batch.results[0].to]
    other = str(COMPANY_BASE + 8)
    made = v4.basic_api.create(
        "contacts",
        contact_id,
        "companies",
        other,
        [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}],
    )
    assert made.from_object_id == contact_id and made.to_object_id == other
    back = v4.basic_api.get_page("companies", other, "contacts")
    assert contact_id in [r.to_object_id for r in back.results]


def test_associations_v4_batch_create_and_read_report_per_record(hubspot: HubSpot) -> None:
    v4 = hubspot.crm.associations.v4
    call = _all(hubspot, "calls")[0].id
    inputs = [
        {
            "from": {"id": call},
            "to": {"id": str(COMPANY_BASE + 9)},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 182}],
        },
        {
            "from": {"id": call},
            "to": {"id": "29999999999"},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 182}],
        },
    ]
    made = v4.batch_api.create("calls", "companies", {"inputs": inputs})
    assert len(made.results) == 1 and made.errors[0].category == "OBJECT_NOT_FOUND"
    read = v4.batch_api.get_page("calls", "companies", {"inputs": [{"id": call}, {"id": "1"}]})
    assert str(COMPANY_BASE + 9) in [t.to_object_id for t in read.results[0].to]
    assert read.errors[0].sub_category == "crm.associations.NO_ASSOCIATIONS_FOUND"


# --- merges ----------------------------------------------------------------------------------

MERGED = "hs_merged_object_ids"
_MERGE_INPUTS = {
    "companies": CompanyMergeInput,
    "contacts": ContactMergeInput,
    "deals": DealMergeInput,
}


@pytest.fixture
def merging(hubspot_org: Org, hubspot_clock: HubSpotClock) -> Iterator[RunningSandbox]:
    """A sandbox of its own on a hand-moved clock: merges change the portal for good."""
    with start_sandbox("hubspot", hubspot_org, tier="unlimited", clock=hubspot_clock) as crm:
        yield crm


def _merge(client: HubSpot, object_name: str, primary: str, other: str) -> Any:
    """Merge ``other`` into ``primary`` through the object's own merge call in the client."""
    merge_input = _MERGE_INPUTS[object_name](primary_object_id=primary, object_id_to_merge=other)
    return getattr(client.crm, object_name).basic_api.merge(public_merge_input=merge_input)


def _unmerged(client: HubSpot, object_name: str) -> list[str]:
    """Ids of live records nothing was merged into yet, in id order."""
    return [
        r.id for r in _all(client, object_name, properties=[MERGED]) if not r.properties[MERGED]
    ]


def _merged_away(org: Org) -> str:
    """The id of a contact the generated org shows merged into another (a shared email)."""
    away = org.people.filter(~pl.col("person_id").is_in(_survivors(org)["person_id"].implode()))
    return str(CONTACT_BASE + away["person_id"][0])


def _linked(client: HubSpot, object_name: str, record_id: str, target: str) -> dict[str, list[int]]:
    """One record's associated ``target`` records: id -> sorted association type ids."""
    page = client.crm.associations.v4.basic_api.get_page(object_name, record_id, target)
    return {r.to_object_id: sorted(t.type_id for t in r.association_types) for r in page.results}


@pytest.mark.parametrize(
    ("object_name", "shown"), [("companies", "name"), ("contacts", "email"), ("deals", "dealname")]
)
def test_a_merge_makes_one_new_record_that_both_ids_answer_with(
    merging: RunningSandbox, hubspot_clock: HubSpotClock, object_name: str, shown: str
) -> None:
    client = hubspot_client(merging)
    primary, other = _unmerged(client, object_name)[:2]
    kept = client.crm.objects.basic_api.get_by_id(object_name, primary, properties=[shown])
    hubspot_clock.advance(60)

    merged = _merge(client, object_name, primary, other)

    answers = [
        client.crm.objects.basic_api.get_by_id(object_name, i, properties=[shown, MERGED])
        for i in (primary, other)
    ]
    live = {r.id for r in _all(client, object_name)}
    ids = {"propertyName": "hs_object_id", "operator": "IN", "values": [primary, other, merged.id]}
    found = client.crm.objects.search_api.do_search(
        object_name, {"filterGroups": [{"filters": [ids]}]}
    )
    assert merged.id not in (primary, other)
    assert merged.updated_at == hubspot_clock.now and not merged.archived
    assert [a.id for a in answers] == [merged.id, merged.id]
    assert answers[0].properties[MERGED] == f"{primary};{other}"
    assert answers[0].properties[shown] == kept.properties[shown]
    assert merged.id in live and not {primary, other} & live
    assert [r.id for r in found.results] == [merged.id]
    assert merging.request_counts()[f"POST {object_name}/merge"] == 1


def test_ids_merged_before_answer_with_the_newest_merge(
    merging: RunningSandbox, hubspot_org: Org
) -> None:
    client = hubspot_client(merging)
    earlier = _merged_away(hubspot_org)
    survivor = client.crm.contacts.basic_api.get_by_id(earlier).id
    second, third = _unmerged(client, "contacts")[:2]

    first = _merge(client, "contacts", survivor, second)
    last = _merge(client, "contacts", third, first.id)

    answer = client.crm.contacts.basic_api.get_by_id(earlier, properties=[MERGED])
    assert answer.id == last.id
    assert {earlier, survivor, second, third, first.id} <= set(answer.properties[MERGED].split(";"))


def test_a_company_merge_moves_contacts_and_deals_and_repoints_primary_companies(
    merging: RunningSandbox, hubspot_clock: HubSpotClock, hubspot_org: Org
) -> None:
    client = hubspot_client(merging)
    with_people = hubspot_org.people["account_id"].drop_nulls().unique().sort()
    primary, other = (str(COMPANY_BASE + i) for i in with_people[:2])
    before = {
        target: {
            **_linked(client, "companies", other, target),
            **_linked(client, "companies", primary, target),
        }
        for target in ("contacts", "deals")
    }
    theirs = [{"id": i} for i in _linked(client, "companies", other, "contacts")]
    hubspot_clock.advance(60)

    merged = _merge(client, "companies", primary, other)

    after = {target: _linked(client, "companies", merged.id, target) for target in before}
    moved = client.crm.contacts.batch_api.read(
        {"inputs": theirs, "properties": ["associatedcompanyid"]}
    )
    assert after == before
    assert {(r.properties["associatedcompanyid"], r.updated_at) for r in moved.results} == {
        (merged.id, hubspot_clock.now)
    }


def test_a_contact_merge_keeps_the_primarys_company_as_its_only_primary(
    merging: RunningSandbox,
) -> None:
    client = hubspot_client(merging)
    contacts = _all(client, "contacts", properties=[MERGED, "associatedcompanyid"])
    employed = [
        c for c in contacts if c.properties["associatedcompanyid"] and not c.properties[MERGED]
    ]
    first = employed[0]
    second = next(
        c
        for c in employed
        if c.properties["associatedcompanyid"] != first.properties["associatedcompanyid"]
    )
    ours, theirs = (c.properties["associatedcompanyid"] for c in (first, second))

    merged = _merge(client, "contacts", first.id, second.id)

    answer = client.crm.contacts.basic_api.get_by_id(merged.id, properties=["associatedcompanyid"])
    assert _linked(client, "contacts", merged.id, "companies") == {ours: [1, 279], theirs: [279]}
    assert answer.properties["associatedcompanyid"] == ours


# what a refused merge names -> (primary, id to merge, status, category)
_MERGE_REFUSALS = {
    "itself": ("live", "live", 400, "VALIDATION_ERROR"),
    "a merged-away id with its survivor": ("merged", "survivor", 400, "VALIDATION_ERROR"),
    "an unknown primary": ("unknown", "live", 404, "OBJECT_NOT_FOUND"),
    "an unknown id to merge": ("live", "unknown", 404, "OBJECT_NOT_FOUND"),
    "an archived id": ("live", "archived", 404, "OBJECT_NOT_FOUND"),
    "an id that is not a number": ("live", "not-a-number", 404, "OBJECT_NOT_FOUND"),
}


@pytest.mark.parametrize(
    ("primary", "other", "status", "category"),
    list(_MERGE_REFUSALS.values()),
    ids=list(_MERGE_REFUSALS),
)
def test_a_merge_hubspot_refuses_changes_nothing(
    hubspot: HubSpot, hubspot_org: Org, primary: str, other: str, status: int, category: str
) -> None:
    merged = _merged_away(hubspot_org)
    ids = {
        "live": _unmerged(hubspot, "contacts")[0],
        "merged": merged,
        "survivor": hubspot.crm.contacts.basic_api.get_by_id(merged).id,
        "unknown": "39999999999",
        "archived": _all(hubspot, "contacts", archived=True)[0].id,
        "not-a-number": "not-a-number",
    }

    with pytest.raises(ContactsApiException) as refused:
        _merge(hubspot, "contacts", ids[primary], ids[other])

    assert (refused.value.status, _error(refused)["category"]) == (status, category)
    assert hubspot.crm.contacts.basic_api.get_by_id(ids["live"]).id == ids["live"]


# --- properties, owners, events --------------------------------------------------------------


def test_a_created_property_reads_back_with_its_options_and_takes_values(hubspot: HubSpot) -> None:
    hubspot.crm.properties.groups_api.create("companies", {"name": "handoff", "label": "Handoff"})
    options = [
        {"label": "AE", "value": "ae", "hidden": False},
        {"label": "SDR", "value": "sdr", "hidden": False},
    ]
    created = hubspot.crm.properties.core_api.create(
        "companies",
        {
            "name": "handoff_tier",
            "label": "Tier",
            "type": "enumeration",
            "fieldType": "select",
            "groupName": "handoff",
            "options": options,
        },
    )
    assert created.name == "handoff_tier" and not created.hubspot_defined
    read = hubspot.crm.properties.core_api.get_by_name("companies", "handoff_tier")
    assert [(o.value, o.label) for o in read.options] == [("ae", "AE"), ("sdr", "SDR")]
    assert "handoff_tier" in [
        p.name for p in hubspot.crm.properties.core_api.get_all("companies").results
    ]
    company = str(COMPANY_BASE + 10)
    hubspot.crm.companies.basic_api.update(company, {"properties": {"handoff_tier": "ae"}})
    found = hubspot.crm.companies.search_api.do_search(
        {
            "filterGroups": [
                {"filters": [{"propertyName": "handoff_tier", "operator": "EQ", "value": "ae"}]}
            ]
        }
    )
    assert [r.id for r in found.results] == [company]
    with pytest.raises(CompaniesApiException) as bad_option:
        hubspot.crm.companies.basic_api.update(company, {"properties": {"handoff_tier": "vp"}})
    assert bad_option.value.status == 400


def test_owners_page_with_teams_and_inactive_users_archived(
    hubspot: HubSpot, hubspot_org: Org
) -> None:
    def owners(archived: bool) -> list[Any]:
        def fetch(after: str | None) -> Any:
            return hubspot.crm.owners.owners_api.get_page(limit=5, after=after, archived=archived)

        return [o for page in _pages(fetch) for o in page.results]

    active, inactive = owners(False), owners(True)
    users = hubspot_org.users
    assert len(active) == users["is_active"].sum() and len(inactive) == (~users["is_active"]).sum()
    by_email = {o.email: o for o in active + inactive}
    for user in user_labels(users).iter_rows(named=True):
        teams = {t.name: t.primary for t in by_email[user["email"]].teams}
        assert teams[user["_team_name"]] is True
        assert ("Out of Office" in teams) == user["out_of_office"]


def test_web_touches_arrive_as_events_that_invert_to_the_catalog(
    hubspot: HubSpot, hubspot_org: Org
) -> None:
    inverse = {
        (touch.event_type, (touch.path or "").split("{")[0].rstrip("/")): key
        for key, touch in WEB_TOUCHES.items()
    }
    counts: Counter[str] = Counter()
    pages = _pages(lambda after: hubspot.events.events_api.get_page(limit=100, after=after))
    for page in pages:
        for event in page.results:
            path = urlsplit(event.properties["hs_url"] or "").path
            key = (
                inverse.get((event.event_type, path))
                or inverse[(event.event_type, path.rsplit("/", 1)[0])]
            )
            counts[key] += 1
    web = [key for key in WEB_TOUCHES if key not in MARKETING_EMAIL]
    touches = hubspot_org.activities.filter(pl.col("type").cast(pl.String).is_in(web))
    assert counts == Counter(touches["type"].cast(pl.String).to_list())
    assert set(hubspot.events.events_api.get_types().event_types) >= {
        "e_visited_page",
        "e_submitted_form",
    }


@pytest.mark.parametrize(("tier", "served"), [("starter", False), ("professional", False),
                                              ("enterprise", True)])  # fmt: skip
def test_the_events_api_answers_on_enterprise_only(
    hubspot_org: Org, tier: str, served: bool
) -> None:
    with start_sandbox("hubspot", hubspot_org, tier=tier) as crm:
        client = hubspot_client(crm)
        if served:
            assert client.events.events_api.get_page(limit=1).results
            return
        with pytest.raises(EventsApiException) as refused:
            client.events.events_api.get_page(limit=1)
    body = _error(refused)
    assert refused.value.status == 403
    assert (body["category"], body["message"]) == ("MISSING_SCOPES", NOT_ENTERPRISE)


def _email_events(crm: RunningSandbox, **query: Any) -> Iterator[dict[str, Any]]:
    """Every email event the query matches, following ``offset`` while ``hasMore``."""
    headers = {"Authorization": f"Bearer {crm.token}"}
    offsets: set[str] = set()
    while True:
        page = requests.get(
            f"{crm.base_url}/email/public/v1/events", params=query, headers=headers, timeout=10
        ).json()
        yield from page["events"]
        if not page["hasMore"]:
            return
        assert page["offset"] not in offsets
        offsets.add(page["offset"])
        query = {**query, "offset": page["offset"]}


def test_marketing_email_comes_from_the_email_events_api_by_recipient(
    hubspot_sandbox: RunningSandbox, hubspot_org: Org
) -> None:
    events = list(_email_events(hubspot_sandbox, limit=1000))
    people = hubspot_org.people.select("person_id", "email")
    expected = (
        hubspot_org.activities.filter(pl.col("type").cast(pl.String).is_in(MARKETING_EMAIL))
        .join(people, on="person_id")
        .filter(pl.col("email").is_not_null())
    )
    assert len(events) == len({e["id"] for e in events}) == expected.height
    assert Counter(e["type"] for e in events) == {
        "OPEN": expected.filter(pl.col("type") == "email_open").height,
        "CLICK": expected.filter(pl.col("type") == "email_click").height,
    }
    assert all(("url" in e) == (e["type"] == "CLICK") for e in events)
    later = events[len(events) // 2]["created"]
    clicks = list(_email_events(hubspot_sandbox, eventType="CLICK", startTimestamp=later))
    assert clicks and all(e["type"] == "CLICK" and e["created"] >= later for e in clicks)


def test_contacts_carry_their_analytics_history_newest_first_50_a_page(hubspot: HubSpot) -> None:
    names = ["hs_analytics_last_url", "recent_conversion_event_name"]
    page = hubspot.crm.contacts.basic_api.get_page(limit=50, properties_with_history=names)
    with_history = [c for c in page.results if c.properties_with_history["hs_analytics_last_url"]]
    assert with_history
    for contact in with_history:
        views = contact.properties_with_history["hs_analytics_last_url"]
        stamps = [v.timestamp for v in views]
        assert stamps == sorted(stamps, reverse=True) and len(views) <= HISTORY_DEPTH
        assert contact.properties["hs_analytics_last_url"] == views[0].value
    ids = [{"id": c.id} for c in with_history]
    batch = hubspot.crm.contacts.batch_api.read(
        {"inputs": ids, "properties": [], "propertiesWithHistory": names}
    )
    assert {c.id: c.properties_with_history for c in batch.results} == {
        c.id: c.properties_with_history for c in with_history
    }
    with pytest.raises(ContactsApiException) as refused:
        hubspot.crm.contacts.basic_api.get_page(limit=51, properties_with_history=names)
    assert refused.value.status == 400


@pytest.mark.parametrize("pipeline", ["default", "custom"])
def test_deals_close_and_win_by_their_pipeline_stages_metadata(
    hubspot_org: Org, pipeline: str
) -> None:
    with start_sandbox("hubspot", hubspot_org, tier="unlimited", pipeline=pipeline) as crm:
        client = hubspot_client(crm)
        pipelines = client.crm.pipelines.pipelines_api.get_all("deals").results
        deals = _all(client, "deals", properties=["dealstage", "hs_is_closed", "hs_is_closed_won"])
    stages = {s.id: s.metadata for p in pipelines for s in p.stages}
    assert [s.id for s in pipelines[0].stages][-2:] == ["closedwon", "closedlost"]
    by_id = {int(d.id) - 40_000_000_000: d.properties for d in deals}
    for opportunity in hubspot_org.opportunities.iter_rows(named=True):
        deal = by_id[opportunity["opportunity_id"]]
        metadata = stages[deal["dealstage"]]
        assert deal["hs_is_closed"] == metadata["isClosed"] == str(opportunity["is_closed"]).lower()
        won = metadata["probability"] == "1.0"
        assert deal["hs_is_closed_won"] == str(won).lower() == str(opportunity["is_won"]).lower()
        assert deal["dealstage"].isdigit() == (pipeline == "custom")


def test_events_filter_by_object_type_and_exclusive_time_bounds(hubspot: HubSpot) -> None:
    first = hubspot.events.events_api.get_page(
        object_type="contact", event_type="e_visited_page", limit=2
    )
    assert all(
        e.object_type == "CONTACT" and e.event_type == "e_visited_page" for e in first.results
    )
    stamp = first.results[0].occurred_at
    later = hubspot.events.events_api.get_page(
        object_type="contact", occurred_after=stamp, limit=100
    )
    assert all(e.occurred_at > stamp for e in later.results)
    assert first.results[0].id not in [e.id for e in later.results]


def test_event_ids_are_uuids_in_no_order_of_time_and_the_id_filter_finds_each(
    hubspot: HubSpot, hubspot_sandbox: RunningSandbox
) -> None:
    # HubSpot's event ids are random ("a randomly-generated ID for this event", its email events
    # documentation): a mirror keyed by them takes each insert at a random place
    web = hubspot.events.events_api.get_page(limit=100).results  # oldest first
    email = list(_email_events(hubspot_sandbox, limit=100))[:100]  # newest first
    for ids in ([e.id for e in web], [e["id"] for e in email]):
        assert all(str(UUID(i, version=4)) == i for i in ids) and len(set(ids)) == len(ids)
        rises = sum(a < b for a, b in itertools.pairwise(ids))
        assert 20 < rises < len(ids) - 21  # sorted by time, neither rising nor falling by id
    picked = [web[3].id, web[70].id]
    other = "00000000" + web[5].id[8:]  # another UUID with the same last group
    asked = [*picked, email[0]["id"], other]
    found = hubspot.events.events_api.get_page(id=asked, limit=100).results
    assert sorted(e.id for e in found) == sorted(picked)  # only the ids the portal gave


def test_rep_activities_are_engagements_with_timestamps_and_associations(hubspot: HubSpot) -> None:
    call = hubspot.crm.objects.basic_api.get_page(
        "calls",
        limit=1,
        properties=["hs_timestamp", "hubspot_owner_id"],
        associations=["companies"],
    ).results[0]
    assert call.properties["hs_timestamp"].endswith("Z") and call.properties["hubspot_owner_id"]
    assert call.associations["companies"].results[0].type == "call_to_company_unlabeled"


def test_the_raw_api_request_helper_uses_the_base_url(hubspot: HubSpot) -> None:
    answer = hubspot.api_request({"method": "GET", "path": "/crm/v3/properties/contacts/email"})
    assert answer.status_code == 200 and answer.json()["hasUniqueValue"] is True


# --- auth, limits, faults, accounting --------------------------------------------------------


def test_a_wrong_token_is_the_clients_401(hubspot_sandbox: RunningSandbox) -> None:
    client = hubspot_client(hubspot_sandbox, token="pat-na1-wrong")
    with pytest.raises(OwnersApiException) as denied:
        client.crm.owners.owners_api.get_page()
    assert denied.value.status == 401
    body = _error(denied)
    assert body["status"] == "error" and body["category"] == "INVALID_AUTHENTICATION"
    assert (
        body["message"].startswith("Authentication credentials not found") and body["correlationId"]
    )


def test_the_ten_second_window_answers_429_until_the_clock_moves(
    hubspot_org: Org, hubspot_clock: HubSpotClock
) -> None:
    with start_sandbox("hubspot", hubspot_org, tier="starter", clock=hubspot_clock) as crm:
        client = hubspot_client(crm)
        for _ in range(100):
            ok = client.crm.owners.owners_api.get_page_with_http_info(limit=1)
        assert ok[2]["X-HubSpot-RateLimit-Remaining"] == "0"
        with pytest.raises(OwnersApiException) as limited:
            client.crm.owners.owners_api.get_page(limit=1)
        assert limited.value.status == 429
        body, headers = _error(limited), limited.value.headers
        assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
        assert headers["X-HubSpot-RateLimit-Max"] == "100"
        assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert headers["X-HubSpot-RateLimit-Daily"] == "250000"
        assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == str(250_000 - 100)
        hubspot_clock.advance(10)
        assert client.crm.owners.owners_api.get_page(limit=1).results


def test_search_is_limited_to_five_a_second(hubspot_org: Org, hubspot_clock: HubSpotClock) -> None:
    with start_sandbox("hubspot", hubspot_org, tier="professional", clock=hubspot_clock) as crm:
        client = hubspot_client(crm)
        for _ in range(5):
            client.crm.contacts.search_api.do_search({"limit": 1})
        with pytest.raises(ContactsApiException) as limited:
            client.crm.contacts.search_api.do_search({"limit": 1})
        assert limited.value.status == 429 and _error(limited)["policyName"] == "SECONDLY"
        hubspot_clock.advance(1)
        assert client.crm.contacts.search_api.do_search({"limit": 1}).total > 0


_RATE_LIMIT = {"errorType": "RATE_LIMIT"}


@pytest.mark.parametrize(
    ("rule", "status", "shown"),
    [
        (FaultRule("expire_session", after=0), 401, {"category": "EXPIRED_AUTHENTICATION"}),
        (FaultRule("status", status=503, count=1), 503, {"category": "SERVICE_UNAVAILABLE"}),
        (FaultRule("status", status=429, count=1), 429, _RATE_LIMIT),
        (FaultRule("limit", limit="daily", count=1), 429, _RATE_LIMIT | {"policyName": "DAILY"}),
        (
            FaultRule("limit", limit="concurrent", count=1),
            429,
            _RATE_LIMIT | {"policyName": "TEN_SECONDLY_ROLLING"},
        ),
    ],
)
def test_injected_faults_come_in_hubspots_shape_and_then_pass(
    hubspot_org: Org, rule: FaultRule, status: int, shown: dict[str, str]
) -> None:
    with start_sandbox("hubspot", hubspot_org, faults=FaultPlan([rule]), tier="unlimited") as crm:
        client = hubspot_client(crm)
        with pytest.raises(OwnersApiException) as failed:
            client.crm.owners.owners_api.get_page(limit=1)
        assert failed.value.status == status
        body = _error(failed)
        assert {key: body[key] for key in shown} == shown
        assert client.crm.owners.owners_api.get_page(limit=1).results


def test_a_fault_with_retry_after_is_retried_by_the_client_itself(hubspot_org: Org) -> None:
    rule = FaultRule("status", status=429, retry_after=1, count=1)
    with start_sandbox("hubspot", hubspot_org, faults=FaultPlan([rule]), tier="unlimited") as crm:
        # urllib3's default Retry honours Retry-After on 429/503, so the call succeeds
        assert hubspot_client(crm).crm.owners.owners_api.get_page(limit=1).results
        assert crm.request_counts() == {"GET owners": 2}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/crm/v3/objects/contacts/search", b'{"limit": '),
        ("/crm/v3/objects/contacts/search", b'{"limit": "many"}'),
        ("/crm/v3/objects/companies", b'{"properties": {"numberofemployees": "lots"}}'),
    ],
)
def test_unreadable_input_is_refused_without_pythons_words(
    hubspot_sandbox: RunningSandbox, path: str, body: bytes
) -> None:
    answer = requests.post(
        hubspot_sandbox.base_url + path,
        data=body,
        headers={"Authorization": f"Bearer {hubspot_sandbox.token}"},
        timeout=5,
    )
    assert answer.status_code == 400 and answer.json()["status"] == "error"
    python = r"Error\(|Expecting|invalid literal|could not convert|Traceback|char \d"
    assert not re.search(python, answer.text)


def test_the_server_counts_exactly_the_requests_the_client_sent(
    hubspot_sandbox: RunningSandbox,
) -> None:
    admin = hubspot_sandbox.base_url + "/__sandbox"
    token = {"Authorization": f"Bearer {hubspot_sandbox.token}"}
    requests.post(admin + "/reset", headers=token, timeout=5)
    client = hubspot_client(hubspot_sandbox)
    companies = list(
        _pages(lambda after: client.crm.companies.basic_api.get_page(limit=100, after=after))
    )
    client.crm.contacts.search_api.do_search({"limit": 1})
    client.crm.owners.owners_api.get_page()
    report = requests.get(admin + "/requests", headers=token, timeout=5).json()
    assert report["by_endpoint"] == {
        "GET companies": len(companies),
        "POST contacts/search": 1,
        "GET owners": 1,
    }
    assert report["total"] == len(companies) + 2
