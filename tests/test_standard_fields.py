"""Standard fields a real org has exist in the sandbox with their real types: describe lists them,
a query names them, an update sets them, through the unmodified clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hubspot import HubSpot
from simple_salesforce import Salesforce

from sandbox.generator import generate_org
from sandbox.org import Org
from sandbox.service import RunningSandbox, start_sandbox
from tests.sandbox_fixtures import hubspot_client, salesforce_client

# (object, field, describe type) as the Object Reference gives them
SALESFORCE_FIELDS: list[tuple[str, str, str]] = [
    ("Account", "Description", "textarea"),
    ("Account", "Rating", "picklist"),
    ("Account", "BillingStreet", "textarea"),
    ("Account", "BillingCity", "string"),
    ("Account", "BillingState", "string"),
    ("Account", "BillingPostalCode", "string"),
    ("Account", "BillingCountry", "string"),
    ("Account", "BillingCountryCode", "picklist"),
    ("Account", "BillingStateCode", "picklist"),
    ("Account", "CurrencyIsoCode", "picklist"),
    ("Account", "Phone", "phone"),
    ("Account", "AccountSource", "picklist"),
    ("Account", "Site", "string"),
    ("Account", "Sic", "string"),
    ("Account", "Ownership", "picklist"),
    ("Account", "TickerSymbol", "string"),
    ("Account", "AnnualRevenue", "currency"),
    ("Account", "CreatedDate", "datetime"),
    ("Account", "LastActivityDate", "date"),
    ("Contact", "Department", "string"),
    ("Contact", "MailingStreet", "textarea"),
    ("Contact", "MailingCountryCode", "picklist"),
    ("Contact", "HasOptedOutOfEmail", "boolean"),
    ("Lead", "Status", "picklist"),
    ("Lead", "LeadSource", "picklist"),
    ("Lead", "Rating", "picklist"),
    ("Lead", "Industry", "picklist"),
    ("Lead", "NumberOfEmployees", "int"),
    ("Lead", "AnnualRevenue", "currency"),
    ("Lead", "Website", "url"),
    ("Lead", "Street", "textarea"),
    ("Lead", "State", "string"),
    ("Lead", "PostalCode", "string"),
    ("Lead", "CountryCode", "picklist"),
    ("Opportunity", "Probability", "percent"),
    ("Opportunity", "ForecastCategoryName", "picklist"),
    ("Opportunity", "LeadSource", "picklist"),
    ("Opportunity", "Type", "picklist"),
    ("Opportunity", "NextStep", "string"),
    ("Opportunity", "CurrencyIsoCode", "picklist"),
    ("Opportunity", "ExpectedRevenue", "currency"),
    ("Task", "CallType", "picklist"),
    ("Task", "CallDurationInSeconds", "int"),
    ("Event", "Location", "string"),
    ("Event", "IsAllDayEvent", "boolean"),
    ("User", "Title", "string"),
    ("User", "TimeZoneSidKey", "picklist"),
    ("CampaignMember", "CompanyOrAccount", "string"),
    ("CurrencyType", "ConversionRate", "double"),
]
# a value of each type an update can set
_SAMPLES: dict[str, Any] = {
    "string": "x-1",
    "textarea": "line one",
    "phone": "+1 555 0100",
    "url": "https://example.com",
    "int": 7,
    "double": 1.5,
    "currency": 1234.0,
    "percent": 40.0,
    "boolean": True,
    "date": "2026-01-31",
}


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(40, 9)


@pytest.fixture(scope="module")
def salesforce_org(org: Org) -> Iterator[RunningSandbox]:
    """An org with multiple currencies and state and country picklists on."""
    with start_sandbox("salesforce", org, multi_currency=True, country_picklists=True) as crm:
        yield crm


@pytest.fixture(scope="module")
def described(salesforce_org: RunningSandbox) -> dict[str, dict[str, dict[str, Any]]]:
    sf = salesforce_client(salesforce_org)
    objects = {obj for obj, _, _ in SALESFORCE_FIELDS}
    return {obj: {f["name"]: f for f in getattr(sf, obj).describe()["fields"]} for obj in objects}


@pytest.mark.parametrize(("obj", "field", "kind"), SALESFORCE_FIELDS)
def test_salesforce_standard_field_is_described_with_its_type_and_queryable(
    salesforce_org: RunningSandbox,
    described: dict[str, dict[str, dict[str, Any]]],
    obj: str,
    field: str,
    kind: str,
) -> None:
    sf = salesforce_client(salesforce_org)

    answer = sf.query(f"SELECT Id, {field} FROM {obj} LIMIT 1")

    assert described[obj][field]["type"] == kind
    assert answer["totalSize"] == 1 and field in answer["records"][0]


def _updateable(described: dict[str, dict[str, dict[str, Any]]]) -> list[tuple[str, str, Any]]:
    """(object, field, value) for every listed field an update may set (not User: read-only)."""
    chosen = []
    for obj, field, kind in SALESFORCE_FIELDS:
        entry = described[obj][field]
        if obj in ("User", "CurrencyType") or not entry["updateable"]:
            continue
        options = [p["value"] for p in entry["picklistValues"]]
        value = options[0] if kind == "picklist" and options else _SAMPLES.get(kind)
        if value is not None:
            chosen.append((obj, field, value))
    return chosen


def test_salesforce_standard_fields_can_be_updated_and_read_back(
    salesforce_org: RunningSandbox, described: dict[str, dict[str, dict[str, Any]]]
) -> None:
    sf: Salesforce = salesforce_client(salesforce_org)
    updates = _updateable(described)
    by_object: dict[str, dict[str, Any]] = {}
    for obj, field, value in updates:
        by_object.setdefault(obj, {})[field] = value
    for obj, values in by_object.items():
        record_id = sf.query(f"SELECT Id FROM {obj} LIMIT 1")["records"][0]["Id"]
        getattr(sf, obj).update(record_id, values)
        read = getattr(sf, obj).get(record_id)
        assert {k: read[k] for k in values} == values, obj
    assert len(updates) >= 35


def test_an_org_without_the_features_has_no_code_or_currency_fields(org: Org) -> None:
    with start_sandbox("salesforce", org) as crm:
        fields = {f["name"] for f in salesforce_client(crm).Account.describe()["fields"]}

    assert {"BillingCountryCode", "CurrencyIsoCode"}.isdisjoint(fields)
    assert {"Description", "Rating", "BillingState"} <= fields


# (object, property, type) as HubSpot's default properties are typed
HUBSPOT_PROPERTIES: list[tuple[str, str, str]] = [
    ("companies", "description", "string"),
    ("companies", "city", "string"),
    ("companies", "state", "string"),
    ("companies", "zip", "string"),
    ("companies", "phone", "string"),
    ("companies", "address", "string"),
    ("companies", "industry", "enumeration"),
    ("companies", "lifecyclestage", "enumeration"),
    ("companies", "hs_lead_status", "enumeration"),
    ("companies", "createdate", "datetime"),
    ("companies", "annualrevenue", "number"),
    ("companies", "is_public", "bool"),
    ("companies", "hs_analytics_source", "enumeration"),
    ("contacts", "address", "string"),
    ("contacts", "state", "string"),
    ("contacts", "zip", "string"),
    ("contacts", "hs_lead_status", "enumeration"),
    ("contacts", "lifecyclestage", "enumeration"),
    ("contacts", "hs_analytics_source", "enumeration"),
    ("contacts", "mobilephone", "string"),
    ("deals", "description", "string"),
    ("deals", "deal_currency_code", "enumeration"),
    ("deals", "pipeline", "enumeration"),
    ("deals", "hs_deal_stage_probability", "number"),
    ("deals", "dealtype", "enumeration"),
    ("deals", "hs_next_step", "string"),
    ("deals", "createdate", "datetime"),
]
_HUBSPOT_SAMPLES = {
    "string": "x-1",
    "number": "42",
    "bool": "true",
    "datetime": "2026-01-31T00:00:00Z",
}


@pytest.fixture(scope="module")
def hubspot_portal(org: Org) -> Iterator[RunningSandbox]:
    with start_sandbox("hubspot", org, tier="unlimited") as crm:
        yield crm


@pytest.mark.parametrize(("obj", "name", "kind"), HUBSPOT_PROPERTIES)
def test_hubspot_default_property_has_its_type_and_can_be_read_and_written(
    hubspot_portal: RunningSandbox, obj: str, name: str, kind: str
) -> None:
    client: HubSpot = hubspot_client(hubspot_portal)
    api = getattr(client.crm, obj)
    prop = client.crm.properties.core_api.get_by_name(obj, name)
    first = api.basic_api.get_page(limit=1, properties=[name]).results[0]

    assert prop.type == kind
    assert name in first.properties
    if not prop.modification_metadata.read_only_value:
        value = prop.options[0].value if prop.options else _HUBSPOT_SAMPLES[kind]
        api.basic_api.update(first.id, {"properties": {name: value}})
        read = api.basic_api.get_by_id(first.id, properties=[name]).properties[name]
        assert read == value or (kind == "datetime" and read.startswith(value[:10]))
