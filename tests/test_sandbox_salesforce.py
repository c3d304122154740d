"""Conformance of the Salesforce sandbox, driven only by the unmodified simple-salesforce client.

Every call goes over real HTTP: the client builds its usual ``https://`` URLs and the sandbox's
session routes them to the loopback server.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from sandbox.faults import FaultPlan, FaultRule
from sandbox.generator import generate_org
from sandbox.http import Request, Response
from sandbox.org import Org
from sandbox.salesforce import client_session
from sandbox.salesforce.errors import SalesforceError as Refused
from sandbox.salesforce.ids import make_id, normalize_id
from sandbox.salesforce.mapping import CAMPAIGNS, NOT_PROVIDED, TOUCHES
from sandbox.salesforce.rest import RestService
from sandbox.service import RunningSandbox, start_sandbox
from tests.sandbox_fixtures import (
    SALESFORCE_INSTANCE_URL,
    SALESFORCE_LOCKED_ACCOUNT,
    SALESFORCE_LOGIN_FLOWS,
    HandClock,
    salesforce_client,
    salesforce_login,
    salesforce_merge,
)

PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "Lead": "00Q",
    "Task": "00T",
    "Event": "00U",
    "CampaignMember": "00v",
    "Campaign": "701",
}


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_org() -> Org:
    """An org small enough to serve afresh for each fault scenario."""
    return generate_org(40, 3)


@contextmanager
def _served(org: Org, *rules: FaultRule, **options: Any) -> Iterator[RunningSandbox]:
    with start_sandbox("salesforce", org, faults=FaultPlan(list(rules)), **options) as crm:
        yield crm


def _error(raised: pytest.ExceptionInfo[SalesforceError]) -> dict[str, Any]:
    """The first error of a refused call's ``[{"message", "errorCode", "fields"}]`` body."""
    content = raised.value.content
    assert isinstance(content, list), content
    return dict(content[0])


def _ids(sf: Salesforce, soql: str) -> list[str]:
    return [record["Id"] for record in sf.query_all_iter(soql)]


def _count(sf: Salesforce, soql: str) -> int:
    return int(sf.query(soql)["totalSize"])


def _accounts(sf: Salesforce, n: int, offset: int) -> list[str]:
    """``n`` account ids no other test writes to (each test takes its own offset)."""
    return _ids(sf, f"SELECT Id FROM Account ORDER BY Id LIMIT {n} OFFSET {offset}")


def _custom_field(sf: Salesforce, full_name: str, metadata: dict[str, Any]) -> str:
    created = sf.toolingexecute(
        "sobjects/CustomField", method="POST", data={"FullName": full_name, "Metadata": metadata}
    )
    assert created["success"] is True, created
    return str(created["id"])


def _picklist(label: str, values: list[str]) -> dict[str, Any]:
    """Metadata of a restricted picklist."""
    return {
        "type": "Picklist",
        "label": label,
        "valueSet": {
            "restricted": True,
            "valueSetDefinition": {
                "sorted": False,
                "value": [{"fullName": v, "default": False, "label": v} for v in values],
            },
        },
    }


def _collection(sf: Salesforce, method: str, records: list[dict[str, Any]], **body: Any) -> Any:
    return sf.restful("composite/sobjects", method=method, json={"records": records, **body})


def _account(record_id: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Account"}, "id": record_id, **fields}


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _raw_get(crm: RunningSandbox, path: str) -> requests.Response:
    """A GET under ``/services/data/v59.0/`` as a plain HTTP client sees it."""
    return requests.get(
        f"{crm.base_url}/services/data/v59.0/{path}",
        headers={"Authorization": f"Bearer {crm.token}"},
        timeout=5,
    )


# --- reading ---------------------------------------------------------------------------------


def test_paging_reaches_the_end_with_every_record_of_the_org(
    salesforce: Salesforce, salesforce_org: Org
) -> None:
    first = salesforce.query("SELECT Id FROM Task")
    assert first["done"] is False and len(first["records"]) == 2000
    assert re.fullmatch(r"/services/data/v59\.0/query/01g\w{15}-2000", first["nextRecordsUrl"])
    end = salesforce_org.manifest.end.replace("+00:00", "Z")  # records other tests create

    def ids(name: str, archived: bool = False) -> list[str]:
        soql = f"SELECT Id FROM {name} WHERE CreatedDate < {end} AND IsDeleted = false"
        return [r["Id"] for r in salesforce.query_all_iter(soql, include_deleted=archived)]

    assert len(ids("Task")) == first["totalSize"]
    tasks, events = ids("Task", archived=True), ids("Event", archived=True)
    assert len(set(tasks)) == len(tasks)
    assert len(tasks) + len(events) == salesforce_org.activities.height
    assert len(set(ids("Lead") + ids("Contact"))) == salesforce_org.people.height
    assert len(ids("Account")) == salesforce_org.accounts.height


def test_the_batch_size_header_sets_the_page_size_within_salesforces_bounds(
    salesforce: Salesforce,
) -> None:
    for asked, served in ((250, 250), (50, 200), (5000, 2000)):
        headers = {"Sforce-Query-Options": f"batchSize={asked}"}
        page = salesforce.query("SELECT Id FROM Task", headers=headers)
        assert len(page["records"]) == served
        assert page["nextRecordsUrl"].endswith(f"-{served}")


def test_a_cursor_pages_through_a_snapshot_that_later_writes_do_not_shift(
    salesforce: Salesforce,
) -> None:
    soql = "SELECT Id, Name FROM Account ORDER BY Name"
    first = salesforce.query(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    salesforce.Account.create({"Name": "!!! Sorts first"})
    rest = salesforce.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert rest["done"] is True and rest["totalSize"] == first["totalSize"]
    names = [r["Name"] for r in first["records"] + rest["records"]]
    assert "!!! Sorts first" not in names and len(names) == first["totalSize"]


def test_filters_and_relationship_fields_answer_what_the_org_holds(
    salesforce: Salesforce, salesforce_org: Org
) -> None:
    rows = list(
        salesforce.query_all_iter(
            "SELECT Id, BillingCountry, Owner.Email FROM Account "
            "WHERE BillingCountry = 'us' AND NumberOfEmployees >= 100"
        )
    )
    accounts = salesforce_org.accounts.filter(
        (pl.col("country") == "US") & (pl.col("employees") >= 100)
    )
    emails = accounts.join(
        salesforce_org.users.select(pl.col("user_id").alias("owner_id"), "email"), on="owner_id"
    )
    assert len(rows) == accounts.height > 0
    assert sorted(r["Owner"]["Email"] for r in rows) == sorted(emails["email"])
    assert {r["BillingCountry"] for r in rows} == {"US"}
    assert rows[0]["Owner"]["attributes"]["type"] == "User"


def test_datetime_literals_read_the_same_in_z_and_offset_spellings(
    salesforce: Salesforce, salesforce_org: Org
) -> None:
    cutoff = datetime(2025, 6, 1, tzinfo=UTC)
    expected = salesforce_org.accounts.filter(pl.col("created_at") >= cutoff).height
    end = salesforce_org.manifest.end.replace("+00:00", "Z")
    for literal in ("2025-06-01T00:00:00Z", "2025-06-01T00:00:00+00:00"):
        soql = f"SELECT COUNT() FROM Account WHERE CreatedDate >= {literal} AND CreatedDate < {end}"
        assert _count(salesforce, soql) == expected > 0


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FRM Account", "MALFORMED_QUERY"),
        ("SELECT Nope__c FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Nothing__c", "INVALID_TYPE"),
        ("SELECT Id FROM Account WHERE NumberOfEmployees = 'ten'", "INVALID_FIELD"),
    ],
)
def test_queries_salesforce_refuses_are_the_clients_malformed_request(
    salesforce: Salesforce, soql: str, code: str
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as raised:
        salesforce.query(soql)
    assert raised.value.status == 400 and _error(raised)["errorCode"] == code


@pytest.mark.parametrize("key", sorted(TOUCHES))
def test_each_activity_type_is_recorded_as_the_mapping_documents(
    salesforce: Salesforce, salesforce_org: Org, key: str
) -> None:
    touch = TOUCHES[key]
    soql = (
        f"SELECT COUNT() FROM {touch.object} WHERE Type = '{touch.type}' "
        f"AND Subject LIKE '{touch.subject}%'"
    )
    expected = salesforce_org.activities.filter(pl.col("type").cast(pl.String) == key).height
    assert salesforce.query(soql, include_deleted=True)["totalSize"] == expected


def test_activities_a_year_old_are_archived_hidden_from_query_but_not_query_all(
    salesforce: Salesforce, salesforce_org: Org
) -> None:
    year_ago = (salesforce_org.manifest.end_at - timedelta(days=365)).date()
    old = salesforce_org.activities.filter(pl.col("occurred_at").dt.date() <= year_ago).height
    end = salesforce_org.manifest.end.replace("+00:00", "Z")  # records other tests create
    live = f"CreatedDate < {end} AND IsDeleted = false"
    seen, every = 0, 0
    for sobject in ("Task", "Event"):
        soql = f"SELECT Id, IsArchived, ActivityDate FROM {sobject} WHERE {live}"
        rows = list(salesforce.query_all_iter(soql, include_deleted=True))
        archived = [r for r in rows if r["IsArchived"]]
        assert all(date.fromisoformat(r["ActivityDate"]) <= year_ago for r in archived)
        assert not salesforce.query(f"SELECT Id FROM {sobject} WHERE IsArchived = true")["records"]
        seen += _count(salesforce, f"SELECT COUNT() FROM {sobject} WHERE {live}")
        every += len(rows)
        bulk = getattr(salesforce.bulk2, sobject).query_all(soql, wait=0)
        assert sum(len(_csv_rows(page)) for page in bulk) == len(rows)
    assert old > 0 and every - seen == old


def test_people_accounts_and_campaign_members_follow_the_mapping(
    salesforce: Salesforce, salesforce_org: Org
) -> None:
    people, accounts = salesforce_org.people, salesforce_org.accounts
    no_company = people.filter((pl.col("kind") == "lead") & pl.col("company").is_null()).height
    assert _count(salesforce, f"SELECT COUNT() FROM Lead WHERE Company = '{NOT_PROVIDED}'") == (
        no_company
    )
    customers = accounts.filter(pl.col("is_customer")).height
    assert _count(salesforce, "SELECT COUNT() FROM Account WHERE Type = 'Customer - Direct'") == (
        customers
    )
    touches = salesforce_org.activities.filter(
        pl.col("type").cast(pl.String).is_in(list(CAMPAIGNS))
        & pl.col("topic").is_not_null()
        & pl.col("person_id").is_not_null()
    )
    members = touches.select("type", "topic", "person_id").unique().height
    assert _count(salesforce, "SELECT COUNT() FROM CampaignMember") == members


def test_ids_have_the_objects_prefix_and_a_case_safe_suffix(salesforce: Salesforce) -> None:
    for name, prefix in PREFIXES.items():
        record_id = salesforce.query(f"SELECT Id FROM {name} LIMIT 1")["records"][0]["Id"]
        assert len(record_id) == 18 and record_id.startswith(prefix)
        assert normalize_id(record_id.lower()) == record_id == normalize_id(record_id[:15])
    assert normalize_id("001A0000006Vm9r") == "001A0000006Vm9rIAC"  # Salesforce's own example


def test_versions_limits_and_describes_answer_in_salesforces_shapes(
    salesforce: Salesforce,
) -> None:
    versions = salesforce.session.get(f"{SALESFORCE_INSTANCE_URL}/services/data/", timeout=5)
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in (
        versions.json()
    )
    limits = salesforce.limits()
    assert limits["DailyApiRequests"]["Max"] == 100_000
    described = salesforce.describe()
    assert {o["name"] for o in described["sobjects"]} >= set(PREFIXES)
    lead = salesforce.Lead.describe()
    fields = {f["name"]: f for f in lead["fields"]}
    assert lead["keyPrefix"] == "00Q" and fields["LastName"]["nillable"] is False
    assert (
        fields["OwnerId"]["referenceTo"] == ["User"] and fields["IsConverted"]["type"] == "boolean"
    )
    assert "Converted" in [p["value"] for p in fields["Status"]["picklistValues"]]


# --- writing ---------------------------------------------------------------------------------


def test_records_are_created_read_updated_and_deleted_to_the_recycle_bin(
    salesforce: Salesforce,
) -> None:
    created = salesforce.Account.create({"Name": "Tombstone Ltd", "Industry": "Software"})
    record_id = created["id"]
    assert created["success"] is True and record_id.startswith("001")
    assert salesforce.Account.update(record_id, {"NumberOfEmployees": 42}) == 204
    record = salesforce.Account.get(record_id)
    assert record["NumberOfEmployees"] == 42 and record["OwnerId"].startswith("005")
    assert salesforce.Account.delete(record_id) == 204
    assert _count(salesforce, f"SELECT COUNT() FROM Account WHERE Id = '{record_id}'") == 0
    deleted = salesforce.query_all(
        f"SELECT Id, IsDeleted FROM Account WHERE Id = '{record_id}'", include_deleted=True
    )
    assert deleted["records"][0]["IsDeleted"] is True
    with pytest.raises(SalesforceResourceNotFound) as raised:
        salesforce.Account.get(record_id)
    assert _error(raised)["errorCode"] == "ENTITY_IS_DELETED"


def test_upsert_by_external_id_creates_then_updates(salesforce: Salesforce) -> None:
    _custom_field(
        salesforce,
        "Account.Handoff_Key__c",
        {"type": "Text", "label": "Handoff Key", "length": 40, "externalId": True, "unique": True},
    )
    first = salesforce.Account.upsert("Handoff_Key__c/HK-1", {"Name": "Upserted"}, True)
    again = salesforce.Account.upsert("Handoff_Key__c/hk-1", {"Name": "Upserted again"}, True)
    assert (first.status_code, first.json()["created"]) == (201, True)
    assert (again.status_code, again.json()["created"]) == (200, False)
    assert again.json()["id"] == first.json()["id"]
    assert salesforce.Account.get_by_custom_id("Handoff_Key__c", "HK-1")["Name"] == (
        "Upserted again"
    )


def test_describe_and_tooling_query_show_a_custom_field_once_created(
    salesforce: Salesforce,
) -> None:
    field_id = _custom_field(salesforce, "Account.Tier__c", _picklist("Tier", ["AE", "SDR"]))
    _custom_field(
        salesforce,
        "Account.Handoff_Owner__c",
        {
            "type": "Lookup",
            "label": "Handoff Owner",
            "referenceTo": "User",
            "relationshipName": "Handoff_Accounts",
        },
    )
    fields = {f["name"]: f for f in salesforce.Account.describe()["fields"]}
    tier = fields["Tier__c"]
    assert (tier["type"], tier["custom"], tier["restrictedPicklist"]) == ("picklist", True, True)
    assert [p["value"] for p in tier["picklistValues"]] == ["AE", "SDR"]
    owner = fields["Handoff_Owner__c"]
    assert owner["referenceTo"] == ["User"] and owner["relationshipName"] == "Handoff_Owner__r"
    found = salesforce.toolingexecute(
        "query",
        params={
            "q": "SELECT Id, DeveloperName, TableEnumOrId FROM CustomField "
            "WHERE TableEnumOrId = 'Account' AND DeveloperName = 'Tier'"
        },
    )
    assert [(r["Id"], r["TableEnumOrId"]) for r in found["records"]] == [(field_id, "Account")]
    salesforce.toolingexecute(
        f"sobjects/CustomField/{field_id}",
        method="PATCH",
        data={"Metadata": _picklist("Tier", ["AE", "SDR", "Marketing"])},
    )
    tier = next(f for f in salesforce.Account.describe()["fields"] if f["name"] == "Tier__c")
    assert [p["value"] for p in tier["picklistValues"]] == ["AE", "SDR", "Marketing"]
    account = _accounts(salesforce, 1, 10)[0]
    user = salesforce.query("SELECT Id, Email FROM User WHERE IsActive = true LIMIT 1")["records"]
    salesforce.Account.update(account, {"Handoff_Owner__c": user[0]["Id"]})
    row = salesforce.query(f"SELECT Handoff_Owner__r.Email FROM Account WHERE Id = '{account}'")
    assert row["records"][0]["Handoff_Owner__r"]["Email"] == user[0]["Email"]


CUSTOM_FIELD_CASES = [
    ("Number", {"precision": 5, "scale": 1}, "double", 12.5, 12.5),
    ("Text", {"length": 20}, "string", "hello", "hello"),
    ("LongTextArea", {"length": 32768, "visibleLines": 3}, "textarea", "a\nb", "a\nb"),
    ("Checkbox", {"defaultValue": "false"}, "boolean", True, True),
    ("Date", {}, "date", "2026-03-04", "2026-03-04"),
    (
        "DateTime",
        {},
        "datetime",
        "2026-01-02T03:04:05.678+02:00",
        "2026-01-02T01:04:05.678+0000",
    ),
    ("Picklist", _picklist("P", ["A", "B"])["valueSet"], "picklist", "B", "B"),
    ("Lookup", {"referenceTo": "Account", "relationshipName": "Kinds"}, "reference", None, None),
]


@pytest.mark.parametrize(("kind", "extra", "described", "value", "read"), CUSTOM_FIELD_CASES)
def test_each_custom_field_type_is_described_written_and_read_back(
    salesforce: Salesforce, kind: str, extra: dict[str, Any], described: str, value: Any, read: Any
) -> None:
    name = f"Kind_{kind}__c"
    metadata = {"type": kind, "label": f"Kind {kind}"}
    metadata |= {"valueSet": extra} if kind == "Picklist" else extra
    _custom_field(salesforce, f"Contact.{name}", metadata)
    field = next(f for f in salesforce.Contact.describe()["fields"] if f["name"] == name)
    assert (field["type"], field["custom"]) == (described, True)
    if kind == "Lookup":
        value = read = _accounts(salesforce, 1, 100)[0]
    created = salesforce.Contact.create({"LastName": f"Typed {kind}", name: value})
    row = salesforce.query(f"SELECT {name} FROM Contact WHERE Id = '{created['id']}'")
    assert row["records"][0][name] == read


def test_a_restricted_picklist_refuses_an_unknown_value(salesforce: Salesforce) -> None:
    _custom_field(salesforce, "Account.Segment__c", _picklist("Segment", ["SMB", "Enterprise"]))
    account = _accounts(salesforce, 1, 20)[0]
    assert salesforce.Account.update(account, {"Segment__c": "SMB"}) == 204
    with pytest.raises(SalesforceMalformedRequest) as raised:
        salesforce.Account.update(account, {"Segment__c": "Giant"})
    error = _error(raised)
    assert error["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert error["fields"] == ["Segment__c"]


def test_an_inactive_owner_is_refused(salesforce: Salesforce) -> None:
    rep = salesforce.query(
        "SELECT Id FROM User WHERE IsActive = true AND UserRole.Name LIKE 'SDR%' LIMIT 1"
    )["records"][0]["Id"]
    account = _accounts(salesforce, 1, 30)[0]
    salesforce.User.update(rep, {"IsActive": False})
    try:
        with pytest.raises(SalesforceMalformedRequest) as raised:
            salesforce.Account.update(account, {"OwnerId": rep})
        assert _error(raised)["errorCode"] == "INACTIVE_OWNER_OR_USER"
    finally:
        salesforce.User.update(rep, {"IsActive": True})
    assert salesforce.Account.update(account, {"OwnerId": rep}) == 204


def test_a_collection_saves_the_valid_records_and_reports_the_invalid_one(
    salesforce: Salesforce,
) -> None:
    _custom_field(salesforce, "Account.Band__c", _picklist("Band", ["A", "B", "C"]))
    ids = _accounts(salesforce, 3, 40)
    results = _collection(
        salesforce,
        "PATCH",
        [
            _account(ids[0], Band__c="A"),
            _account(ids[1], Band__c="Z"),
            _account(ids[2], Band__c="C"),
        ],
    )
    assert [r["success"] for r in results] == [True, False, True]
    assert [r.get("id") for r in results] == ids
    assert results[1]["errors"] == [
        {
            "statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "message": "bad value for restricted picklist field: Z",
            "fields": ["Band__c"],
        }
    ]
    listed = "', '".join(ids)
    saved = salesforce.query(f"SELECT Id, Band__c FROM Account WHERE Id IN ('{listed}')")
    assert {r["Id"]: r["Band__c"] for r in saved["records"]} == {
        ids[0]: "A",
        ids[1]: None,
        ids[2]: "C",
    }


def test_a_collection_with_all_or_none_saves_nothing_when_one_record_fails(
    salesforce: Salesforce,
) -> None:
    _custom_field(salesforce, "Account.Grade__c", _picklist("Grade", ["A", "B"]))
    ids = _accounts(salesforce, 2, 50)
    results = _collection(
        salesforce,
        "PATCH",
        [_account(ids[0], Grade__c="A"), _account(ids[1], Grade__c="Q")],
        allOrNone=True,
    )
    codes = [[e["statusCode"] for e in r["errors"]] for r in results]
    assert codes == [
        ["ALL_OR_NONE_OPERATION_ROLLED_BACK"],
        ["INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"],
    ]
    assert _count(salesforce, "SELECT COUNT() FROM Account WHERE Grade__c != null") == 0
    created = _collection(
        salesforce,
        "POST",
        [
            {"attributes": {"type": "Contact"}, "LastName": "Ok"},
            {"attributes": {"type": "Contact"}},
        ],
        allOrNone=True,
    )
    assert [r["success"] for r in created] == [False, False]
    assert created[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"


def test_a_collection_of_more_than_200_records_is_refused(salesforce: Salesforce) -> None:
    records = [{"attributes": {"type": "Account"}, "Name": f"N{i}"} for i in range(201)]
    with pytest.raises(SalesforceMalformedRequest) as raised:
        _collection(salesforce, "POST", records)
    assert _error(raised)["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_a_locked_row_fails_only_its_own_record_of_a_collection(salesforce: Salesforce) -> None:
    other = _accounts(salesforce, 1, 60)[0]
    records = [_account(SALESFORCE_LOCKED_ACCOUNT, Phone="1"), _account(other, Phone="2")]
    results = _collection(salesforce, "PATCH", records)
    assert results[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert results[1] == {"id": other, "success": True, "errors": []}
    assert [r["success"] for r in _collection(salesforce, "PATCH", records)] == [True, True]


def test_a_validation_rule_is_enforced_on_every_later_write(salesforce: Salesforce) -> None:
    _custom_field(salesforce, "Account.Verdict__c", _picklist("Verdict", ["Accepted", "Rejected"]))
    _custom_field(salesforce, "Account.Reason__c", _picklist("Reason", ["No Budget", "Duplicate"]))
    formula = "AND(ISPICKVAL(Verdict__c, 'Rejected'), ISBLANK(TEXT(Reason__c)))"
    rule = salesforce.toolingexecute(
        "sobjects/ValidationRule",
        method="POST",
        data={
            "FullName": "Account.Reason_Required",
            "Metadata": {
                "active": True,
                "errorConditionFormula": formula,
                "errorMessage": "A rejection needs a reason code.",
                "errorDisplayField": "Reason__c",
            },
        },
    )
    assert rule["success"] is True
    account, other = _accounts(salesforce, 2, 70)
    with pytest.raises(SalesforceMalformedRequest) as raised:
        salesforce.Account.update(account, {"Verdict__c": "Rejected"})
    assert _error(raised) == {
        "message": "A rejection needs a reason code.",
        "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "fields": ["Reason__c"],
    }
    assert (
        salesforce.Account.update(account, {"Verdict__c": "Rejected", "Reason__c": "Duplicate"})
        == 204
    )
    results = _collection(salesforce, "PATCH", [_account(other, Verdict__c="Rejected")])
    assert results[0]["errors"][0]["statusCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    rules = salesforce.toolingexecute(
        "query", params={"q": "SELECT Id, ValidationName, Active FROM ValidationRule"}
    )
    assert [(r["ValidationName"], r["Active"]) for r in rules["records"]] == [
        ("Reason_Required", True)
    ]


def test_an_unsupported_formula_is_refused_when_the_rule_is_created(salesforce: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as raised:
        salesforce.toolingexecute(
            "sobjects/ValidationRule",
            method="POST",
            data={
                "FullName": "Account.Too_Clever",
                "Metadata": {"errorConditionFormula": "REGEX(Name, '.*')", "errorMessage": "x"},
            },
        )
    assert _error(raised)["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    assert "Unknown function REGEX" in _error(raised)["message"]


# --- Bulk API 2.0 ----------------------------------------------------------------------------


def test_bulk_query_pages_through_results_with_locators(
    salesforce: Salesforce, salesforce_org: Org
) -> None:
    pages = list(
        salesforce.bulk2.Account.query(
            "SELECT Id, Name, Owner.Email, CreatedDate FROM Account", max_records=120, wait=0
        )
    )
    rows = [row for page in pages for row in _csv_rows(page)]
    assert len(pages) == 3 and len(rows) >= salesforce_org.accounts.height
    assert list(rows[0]) == ["Id", "Name", "Owner.Email", "CreatedDate"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rows[0]["CreatedDate"])


def test_bulk_ingest_update_reports_successes_and_failures(salesforce: Salesforce) -> None:
    _custom_field(salesforce, "Account.Bulk_Tier__c", _picklist("Bulk Tier", ["AE", "SDR"]))
    ids = _accounts(salesforce, 3, 80)
    values = ["AE", "Nope", "SDR"]
    [result] = salesforce.bulk2.Account.update(
        records=[{"Id": i, "Bulk_Tier__c": v} for i, v in zip(ids, values, strict=True)], wait=0
    )
    assert (result["numberRecordsProcessed"], result["numberRecordsFailed"]) == (3, 1)
    failed = _csv_rows(salesforce.bulk2.Account.get_failed_records(result["job_id"]))
    assert [row["sf__Id"] for row in failed] == [ids[1]]
    assert failed[0]["sf__Error"].startswith("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:")
    succeeded = _csv_rows(salesforce.bulk2.Account.get_successful_records(result["job_id"]))
    assert [(row["sf__Id"], row["sf__Created"]) for row in succeeded] == [
        (ids[0], "false"),
        (ids[2], "false"),
    ]
    saved = salesforce.query(f"SELECT Id, Bulk_Tier__c FROM Account WHERE Id = '{ids[2]}'")
    assert saved["records"][0]["Bulk_Tier__c"] == "SDR"


def test_a_bulk_job_with_a_column_the_object_lacks_fails(salesforce: Salesforce) -> None:
    account = _accounts(salesforce, 1, 90)[0]
    with pytest.raises(SalesforceOperationError, match="Field name not found : Nope__c"):
        salesforce.bulk2.Account.update(records=[{"Id": account, "Nope__c": "x"}], wait=0)


# --- merges ----------------------------------------------------------------------------------

# object -> what a record of it needs to be created
_MERGE_NEW = {
    "Account": {"Name": "Merge Co"},
    "Contact": {"LastName": "Merge"},
    "Lead": {"LastName": "Merge", "Company": "Merge Co"},
}


def _create(sf: Salesforce, sobject: str, **fields: Any) -> str:
    return str(getattr(sf, sobject).create(fields)["id"])


def _recycled(sf: Salesforce, sobject: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Records by id as ``queryAll`` shows them, deleted ones included."""
    listed = "', '".join(ids)
    soql = (
        f"SELECT Id, IsDeleted, MasterRecordId, SystemModstamp FROM {sobject} "
        f"WHERE Id IN ('{listed}')"
    )
    return {r["Id"]: r for r in sf.query_all(soql, include_deleted=True)["records"]}


@pytest.mark.parametrize("sobject", sorted(_MERGE_NEW))
def test_mergeable_objects_describe_their_master_record_lookup(
    salesforce: Salesforce, sobject: str
) -> None:
    described = getattr(salesforce, sobject).describe()
    field = next(f for f in described["fields"] if f["name"] == "MasterRecordId")

    assert described["mergeable"] is True
    assert (field["type"], field["referenceTo"], field["updateable"]) == (
        "reference",
        [sobject],
        False,
    )


def test_an_account_merge_recycles_the_loser_and_moves_its_children_to_the_master(
    tiny_org: Org,
) -> None:
    clock = HandClock()
    with _served(tiny_org, clock=clock) as crm:
        sf = salesforce_client(crm)
        master, loser = (_create(sf, "Account", Name=name) for name in ("Acme", "ACME Inc"))
        children = {
            ("Contact", "AccountId"): _create(sf, "Contact", LastName="Ng", AccountId=loser),
            ("Opportunity", "AccountId"): _create(
                sf,
                "Opportunity",
                Name="Renewal",
                StageName="Prospecting",
                CloseDate="2026-12-01",
                AccountId=loser,
            ),
            ("Task", "WhatId"): _create(sf, "Task", Subject="Call", WhatId=loser),
            ("Account", "ParentId"): _create(sf, "Account", Name="Acme EU", ParentId=loser),
        }
        clock.advance(60)

        result = salesforce_merge(crm, "Account", master, [loser])

        merged_at = clock.now.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        shown = _recycled(sf, "Account", [master, loser])
        assert shown[loser]["IsDeleted"] is True and shown[loser]["MasterRecordId"] == master
        assert shown[master]["IsDeleted"] is False and shown[master]["MasterRecordId"] is None
        assert shown[loser]["SystemModstamp"] == shown[master]["SystemModstamp"] == merged_at
        assert _ids(sf, f"SELECT Id FROM Account WHERE Id IN ('{master}', '{loser}')") == [master]
        with pytest.raises(SalesforceResourceNotFound):
            sf.Account.get(loser)
        for (sobject, field), child in children.items():
            record = getattr(sf, sobject).get(child)
            assert (record[field], record["SystemModstamp"]) == (master, merged_at), sobject
        assert sf.Task.get(children[("Task", "WhatId")])["AccountId"] == master
        assert set(result.updated_related_ids) == set(children.values())


@pytest.mark.parametrize("sobject", ["Contact", "Lead"])
def test_people_merge_two_at_a_time_and_their_activities_follow(
    tiny_org: Org, sobject: str
) -> None:
    with _served(tiny_org) as crm:
        sf = salesforce_client(crm)
        master, *losers = (_create(sf, sobject, **_MERGE_NEW[sobject]) for _ in range(3))
        tasks = [_create(sf, "Task", Subject="Call", WhoId=loser) for loser in losers]

        salesforce_merge(crm, sobject, master, losers)

        shown = _recycled(sf, sobject, [master, *losers])
        assert [(shown[i]["IsDeleted"], shown[i]["MasterRecordId"]) for i in losers] == [
            (True, master)
        ] * 2
        assert _ids(sf, f"SELECT Id FROM {sobject} WHERE LastName = 'Merge'") == [master]
        assert [sf.Task.get(task)["WhoId"] for task in tasks] == [master, master]


# (object, master, merged) by name -> the error code Salesforce refuses the merge with
MERGE_REFUSALS = [
    ("Account", "a", ["a"], "INVALID_ID_FIELD"),
    ("Account", "a", ["b", "b"], "INVALID_ID_FIELD"),
    ("Account", "a", [], "REQUIRED_FIELD_MISSING"),
    ("Account", "a", ["b", "c", "d"], "LIMIT_EXCEEDED"),
    ("Account", "a", ["contact"], "MALFORMED_ID"),
    ("Account", "a", ["not an id"], "MALFORMED_ID"),
    ("Account", "a", ["missing"], "INVALID_CROSS_REFERENCE_KEY"),
    ("Account", "a", ["deleted"], "ENTITY_IS_DELETED"),
    ("Account", "child", ["a"], "CIRCULAR_DEPENDENCY"),
    ("Opportunity", "deal", ["other deal"], "INVALID_TYPE_FOR_OPERATION"),
]


@pytest.mark.parametrize(("sobject", "master", "merged", "code"), MERGE_REFUSALS)
def test_a_merge_salesforce_refuses_changes_nothing(
    tiny_org: Org, sobject: str, master: str, merged: list[str], code: str
) -> None:
    with _served(tiny_org) as crm:
        sf = salesforce_client(crm)
        a, b, c, d = _accounts(sf, 4, 0)
        deleted = _create(sf, "Account", Name="Gone")
        sf.Account.delete(deleted)
        deals = _ids(sf, "SELECT Id FROM Opportunity ORDER BY Id LIMIT 2")
        names = {
            **dict(zip("abcd", (a, b, c, d), strict=True)),
            "child": _create(sf, "Account", Name="Acme EU", ParentId=a),
            "contact": _ids(sf, "SELECT Id FROM Contact LIMIT 1")[0],
            "missing": make_id("Account", 999_999),
            "deleted": deleted,
            "deal": deals[0],
            "other deal": deals[1],
        }
        before = sf.query_all("SELECT Id, SystemModstamp FROM Account", include_deleted=True)

        with pytest.raises(Refused) as raised:
            salesforce_merge(crm, sobject, names[master], [names.get(m, m) for m in merged])

        assert raised.value.code == code
        after = sf.query_all("SELECT Id, SystemModstamp FROM Account", include_deleted=True)
        assert after["records"] == before["records"]


# --- sessions, faults and limits -------------------------------------------------------------


@pytest.mark.parametrize("flow", SALESFORCE_LOGIN_FLOWS)
def test_every_login_flow_gets_a_new_working_session(
    salesforce_sandbox: RunningSandbox, salesforce_org: Org, flow: str
) -> None:
    sf = salesforce_login(salesforce_sandbox, flow)
    assert sf.sf_instance == "handoff-sandbox.my.salesforce.com"
    assert sf.session_id != salesforce_sandbox.token
    assert _count(sf, "SELECT COUNT() FROM Account") >= salesforce_org.accounts.height


def test_wrong_credentials_are_refused_by_the_login(salesforce_sandbox: RunningSandbox) -> None:
    session = client_session(salesforce_sandbox.base_url)
    with pytest.raises(SalesforceAuthenticationFailed) as soap:
        Salesforce(username="nobody@x.com", password="x", security_token="y", session=session)
    assert soap.value.code == "INVALID_LOGIN"
    with pytest.raises(SalesforceAuthenticationFailed) as oauth:
        Salesforce(consumer_key="wrong", consumer_secret="wrong", domain="x.my", session=session)
    assert oauth.value.code == "invalid_client_id"


def test_a_bad_session_id_is_the_clients_expired_session(
    salesforce_sandbox: RunningSandbox,
) -> None:
    sf = salesforce_client(salesforce_sandbox, session_id="00Dbogus!session")
    with pytest.raises(SalesforceExpiredSession) as raised:
        sf.query("SELECT Id FROM Account LIMIT 1")
    assert raised.value.status == 401 and _error(raised)["errorCode"] == "INVALID_SESSION_ID"


@pytest.mark.parametrize(
    ("status", "code"), [(500, "UNKNOWN_EXCEPTION"), (503, "SERVER_UNAVAILABLE")]
)
def test_outages_surface_as_the_clients_errors_with_retry_after(
    tiny_org: Org, status: int, code: str
) -> None:
    rule = FaultRule("status", status=status, retry_after=7, endpoint="query", count=1)
    with _served(tiny_org, rule) as crm:
        seen: list[requests.Response] = []
        session = client_session(crm.base_url)
        session.hooks["response"].append(lambda response, **_: seen.append(response))
        sf = salesforce_client(crm, session=session)
        with pytest.raises(SalesforceGeneralError) as raised:
            sf.query("SELECT Id FROM Account")
        assert raised.value.status == status and _error(raised)["errorCode"] == code
        assert seen[-1].headers["Retry-After"] == "7"
        assert "Sforce-Limit-Info" in seen[-1].headers
        assert _count(sf, "SELECT COUNT() FROM Account") == tiny_org.accounts.height


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ("daily", "TotalRequests Limit exceeded."),
        ("concurrent", "ConcurrentPerOrgLongTxn Limit exceeded."),
    ],
)
def test_a_limit_fault_is_salesforces_own_403_naming_the_limit(
    tiny_org: Org, limit: str, message: str
) -> None:
    with _served(tiny_org, FaultRule("limit", limit=limit, endpoint="query", count=1)) as crm:
        sf = salesforce_client(crm)
        with pytest.raises(SalesforceRefusedRequest) as raised:
            sf.query("SELECT Id FROM Account")
        assert raised.value.status == 403
        assert raised.value.content == [{"message": message, "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
        assert _count(sf, "SELECT COUNT() FROM Account") == tiny_org.accounts.height


@pytest.mark.parametrize(("status", "html"), [(406, False), (420, True)])
def test_an_edge_fault_answers_a_page_or_nothing_instead_of_salesforces_json(
    tiny_org: Org, status: int, html: bool
) -> None:
    with _served(tiny_org, FaultRule("edge", status=status, html=html, count=1)) as crm:
        answer = _raw_get(crm, "limits")
        assert answer.status_code == status
        assert answer.headers["Content-Type"].startswith("text/html")
        assert "Sforce-Limit-Info" not in answer.headers  # the edge, not the org, answered
        assert (b"<html" in answer.content) if html else answer.content == b""
        assert _raw_get(crm, "limits").status_code == 200


def test_bulk_refuses_jobs_on_an_object_it_does_not_serve(tiny_org: Org) -> None:
    with _served(tiny_org, FaultRule("bulk_unsupported", objects=("Lead",))) as crm:
        sf = salesforce_client(crm)
        jobs = {
            "jobs/query": {"operation": "query", "query": "SELECT Id FROM Lead"},
            "jobs/ingest": {"object": "Lead", "operation": "update", "contentType": "CSV"},
        }
        for path, spec in jobs.items():
            with pytest.raises(SalesforceMalformedRequest) as raised:
                sf.restful(path, method="POST", json=spec)
            assert raised.value.status == 400
            assert (_error(raised)["errorCode"], _error(raised)["message"]) == (
                "INVALIDENTITY",
                "Entity 'Lead' is not supported by the Bulk API.",
            )
        job = sf.restful(
            "jobs/query",
            method="POST",
            json={"operation": "query", "query": "SELECT Id FROM Account"},
        )
        assert job["object"] == "Account"


def test_bulk_results_are_utf8_csv_that_names_no_charset(
    salesforce: Salesforce, salesforce_sandbox: RunningSandbox, salesforce_org: Org
) -> None:
    job = salesforce.restful(
        "jobs/query",
        method="POST",
        json={"operation": "query", "query": "SELECT Name FROM Account"},
    )
    answer = _raw_get(salesforce_sandbox, f"jobs/query/{job['id']}/results")
    names = {row["Name"] for row in _csv_rows(answer.content.decode("utf-8"))}
    assert answer.headers["Content-Type"] == "text/csv"
    assert set(salesforce_org.accounts["name"]) <= names  # other tests add accounts
    assert any(not name.isascii() for name in names)


def test_no_answer_shows_python_exception_text(
    tiny_org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: RestService, request: Request) -> Response:
        raise KeyError("sandbox bug: a Python exception")

    monkeypatch.setattr(RestService, "limits", broken)
    with _served(tiny_org) as crm:
        bug = _raw_get(crm, "limits")
        bad_json = requests.patch(
            f"{crm.base_url}/services/data/v59.0/composite/sobjects",
            data=b'{"records": [',
            headers={"Authorization": f"Bearer {crm.token}", "Content-Type": "application/json"},
            timeout=5,
        )
    assert bug.status_code == 500 and bug.json()[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    assert bad_json.status_code == 400 and bad_json.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    for answer in (bug, bad_json):
        assert not re.search(r"KeyError|Traceback|Expecting|sandbox bug|char \d", answer.text)


def test_an_expired_session_makes_a_client_with_credentials_log_in_again(tiny_org: Org) -> None:
    with _served(tiny_org, FaultRule("expire_session", after=1)) as crm:
        sf = salesforce_login(crm, "soap")
        old_session = sf.session_id
        assert _count(sf, "SELECT COUNT() FROM Account") == tiny_org.accounts.height
        assert sf.session_id != old_session
        assert crm.request_counts() == {"GET query": 2, "POST soap/login": 2}
        with pytest.raises(SalesforceExpiredSession):
            salesforce_client(crm, session_id=crm.token).query("SELECT Id FROM Account")


def test_limit_info_reports_every_call_counted(salesforce: Salesforce) -> None:
    salesforce.query("SELECT Id FROM User LIMIT 1")
    before = salesforce.api_usage["api-usage"]
    salesforce.query("SELECT Id FROM User LIMIT 1")
    after = salesforce.api_usage["api-usage"]
    assert (after.used, after.total) == (before.used + 1, 100_000)
    assert salesforce.limits()["DailyApiRequests"]["Remaining"] == 100_000 - after.used - 1


def test_calls_past_the_daily_allowance_are_refused(tiny_org: Org) -> None:
    with _served(tiny_org, api_limit=2) as crm:
        sf = salesforce_client(crm)
        sf.query("SELECT Id FROM Account LIMIT 1")
        sf.query("SELECT Id FROM Account LIMIT 1")
        with pytest.raises(SalesforceRefusedRequest) as raised:
            sf.query("SELECT Id FROM Account LIMIT 1")
        assert _error(raised)["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def test_the_server_counts_exactly_the_requests_the_client_sent(
    salesforce_sandbox: RunningSandbox,
) -> None:
    sent: list[str] = []
    session = client_session(salesforce_sandbox.base_url)
    session.hooks["response"].append(lambda response, **_: sent.append(response.url))
    sf = salesforce_client(salesforce_sandbox, session=session)
    base = salesforce_sandbox.base_url
    admin = {"Authorization": f"Bearer {salesforce_sandbox.token}"}
    requests.post(f"{base}/__sandbox/reset", headers=admin, timeout=5)
    tasks = sum(1 for _ in sf.query_all_iter("SELECT Id FROM Task"))
    sf.Lead.describe()
    created = sf.Contact.create({"LastName": "Counted"})
    sf.Contact.update(created["id"], {"FirstName": "Once"})
    list(sf.bulk2.Contact.query("SELECT Id FROM Contact", wait=0))
    report = requests.get(f"{base}/__sandbox/requests", headers=admin, timeout=5).json()
    assert report["total"] == len(sent)
    assert report["by_endpoint"]["GET query"] == -(-tasks // 2000)


# --- composite -------------------------------------------------------------------------------


def _composite(sf: Salesforce, *subrequests: tuple[str, str], all_or_none: bool = False) -> Any:
    """``POST composite`` of ``(method, path under /services/data/v59.0/)`` subrequests, each
    referenced ``r0``, ``r1``, ... in order."""
    body = {
        "allOrNone": all_or_none,
        "compositeRequest": [
            {"method": method, "url": f"/services/data/v59.0/{path}", "referenceId": f"r{i}"}
            for i, (method, path) in enumerate(subrequests)
        ],
    }
    return sf.restful("composite", method="POST", json=body)["compositeResponse"]


def _codes(results: list[dict[str, Any]]) -> list[tuple[int, str | None]]:
    """Each result's status and, for an error, its errorCode."""
    return [
        (r["httpStatusCode"], r["body"][0]["errorCode"] if r["httpStatusCode"] >= 400 else None)
        for r in results
    ]


def test_composite_runs_every_subrequest_in_one_counted_call(tiny_org: Org) -> None:
    with _served(tiny_org) as crm:
        sf = salesforce_client(crm)
        account = _ids(sf, "SELECT Id FROM Account ORDER BY Id LIMIT 1")[0]
        before = sf.api_usage["api-usage"].used
        crm.server.log.reset()
        results = _composite(
            sf,
            ("GET", "sobjects/Account/describe"),
            ("GET", "sobjects/Nonesuch__c/describe"),
            ("GET", "query?q=SELECT+Id+FROM+Account+ORDER+BY+Id+LIMIT+2"),
            ("GET", f"sobjects/Account/{account}?fields=Name"),
            ("PATCH", f"sobjects/Account/{account}"),
            ("GET", "jobs/query"),
        )
        assert crm.request_counts() == {"POST composite": 1}
        assert sf.api_usage["api-usage"].used == before + 1
    assert [r["referenceId"] for r in results] == [f"r{i}" for i in range(6)]
    assert _codes(results) == [
        (200, None),
        (404, "NOT_FOUND"),
        (200, None),
        (200, None),
        (405, "METHOD_NOT_ALLOWED"),
        (404, "NOT_FOUND"),
    ]
    assert results[0]["body"]["name"] == "Account"
    assert results[2]["body"]["records"][0]["Id"] == account
    assert results[3]["body"]["attributes"]["type"] == "Account" and "Name" in results[3]["body"]


@pytest.mark.parametrize(
    ("describes", "queries", "refusal"),
    [
        (25, 0, None),
        (26, 0, "The request can\u2019t contain more than 25 operations."),
        (20, 5, None),
        (19, 6, "The request can\u2019t contain more than 5 query operations."),
    ],
)
def test_composite_refuses_more_than_25_subrequests_or_5_queries(
    salesforce: Salesforce, describes: int, queries: int, refusal: str | None
) -> None:
    subrequests = [("GET", "sobjects/Lead/describe")] * describes
    subrequests += [("GET", "query?q=SELECT+Id+FROM+User+LIMIT+1")] * queries
    results = _composite(salesforce, *subrequests)
    if refusal is None:
        assert _codes(results) == [(200, None)] * (describes + queries)
    else:
        assert results == [
            {
                "body": [{"errorCode": "LIMIT_EXCEEDED", "message": refusal}],
                "httpHeaders": {},
                "httpStatusCode": 400,
                "referenceId": None,
            }
        ]


def test_composite_all_or_none_halts_every_other_subrequest_after_a_failure(
    salesforce: Salesforce,
) -> None:
    results = _composite(
        salesforce,
        ("GET", "sobjects/Account/describe"),
        ("GET", "sobjects/Nonesuch__c/describe"),
        ("GET", "sobjects/Lead/describe"),
        all_or_none=True,
    )
    assert _codes(results) == [
        (400, "PROCESSING_HALTED"),
        (404, "NOT_FOUND"),
        (400, "PROCESSING_HALTED"),
    ]
