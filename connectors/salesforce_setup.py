"""Set-up in Salesforce: our custom fields and the reason-code validation rule, idempotently.

Describe tells which of our fields exist and how their picklists stand; the Tooling API
creates what is missing (``CustomField``, ``ValidationRule``) and repairs drift: a missing
picklist value, a picklist no longer restricted, a rule switched off or edited. A field of the
wrong type is reported as a conflict and left for an admin (Salesforce cannot change it safely).
A second run reads and changes nothing.
https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_customfield.htm
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from simple_salesforce.format import format_soql

from connectors.protocol import SchemaChange, SchemaGap, SchemaReport, SchemaSpec
from connectors.salesforce_api import SalesforceApi
from connectors.schema import (
    REASON_RULE,
    SALESFORCE_OBJECTS,
    FieldKind,
    FoundField,
    OwnedField,
    gaps,
    missing_options,
    options_of,
    owned_for,
)

__all__ = ["ensure_schema", "schema_gaps"]

_RULE = "validation rule: a rejection needs a Reason Code"

# kind -> the Metadata API's definition, and the type describe reports for it
_METADATA: Mapping[FieldKind, Mapping[str, Any]] = {
    "number": {"type": "Number", "precision": 5, "scale": 2},
    "picklist": {"type": "Picklist"},
    "long_text": {"type": "LongTextArea", "length": 32768, "visibleLines": 5},
    "text": {"type": "Text", "length": 255},
    "datetime": {"type": "DateTime"},
    "lookup": {
        "type": "Lookup",
        "referenceTo": "Account",
        "relationshipName": "Handoff_Matched_Leads",
        "relationshipLabel": "Handoff Matched Leads",
        "deleteConstraint": "SetNull",
    },
}
_DESCRIBED_AS: Mapping[FieldKind, str] = {
    "number": "double",
    "picklist": "picklist",
    "long_text": "textarea",
    "text": "string",
    "datetime": "datetime",
    "lookup": "reference",
}


def ensure_schema(api: SalesforceApi, spec: SchemaSpec) -> SchemaReport:
    """Our fields on Account and Lead, then the rule that needs them."""
    changes: list[SchemaChange] = []
    for entity, sobject in SALESFORCE_OBJECTS.items():
        changes += _ensure_fields(api, sobject, owned_for(entity), spec)
        changes.append(_ensure_rule(api, sobject))
    return SchemaReport(tuple(changes))


def schema_gaps(
    described: Callable[[str], Mapping[str, FoundField]], spec: SchemaSpec
) -> tuple[SchemaGap, ...]:
    """Our fields on Account and Lead that set-up has yet to create or fix, from ``described``
    (an object's fields as its describe lists them)."""
    return tuple(
        gap
        for entity, sobject in SALESFORCE_OBJECTS.items()
        for gap in gaps(sobject, owned_for(entity), described(sobject), "salesforce",
                        _DESCRIBED_AS, spec)
    )  # fmt: skip


def _ensure_fields(
    api: SalesforceApi, sobject: str, owned: tuple[OwnedField, ...], spec: SchemaSpec
) -> list[SchemaChange]:
    described = api.rest(f"sobjects/{sobject}/describe")
    current = {f["name"]: f for f in described["fields"]}
    ids: dict[str, str] = {}
    changes = []
    for field in owned:
        found = current.get(field.salesforce)
        if found is None:
            _create_field(api, sobject, field, options_of(field, spec))
            changes.append(SchemaChange(sobject, field.salesforce, "created"))
            continue
        if found["type"] != _DESCRIBED_AS[field.kind]:
            detail = f"is a {found['type']} field; Handoff needs {_DESCRIBED_AS[field.kind]}"
            changes.append(SchemaChange(sobject, field.salesforce, "conflict", detail))
            continue
        changes.append(_ensure_picklist(api, sobject, field, found, spec, ids))
    return changes


def _create_field(
    api: SalesforceApi, sobject: str, field: OwnedField, values: tuple[str, ...]
) -> None:
    body = {"FullName": f"{sobject}.{field.salesforce}", "Metadata": _metadata(field, values)}
    api.rest("tooling/sobjects/CustomField", "POST", json=body)


def _metadata(field: OwnedField, values: tuple[str, ...]) -> dict[str, Any]:
    """A field's Metadata: its kind's definition, label, description, restricted values."""
    metadata = {**_METADATA[field.kind], "label": field.label, "description": field.description}
    if field.kind == "picklist":
        definition = [{"fullName": v, "label": v, "default": False} for v in values]
        metadata["valueSet"] = {
            "restricted": True,
            "valueSetDefinition": {"sorted": False, "value": definition},
        }
    return metadata


def _ensure_picklist(
    api: SalesforceApi,
    sobject: str,
    field: OwnedField,
    found: Mapping[str, Any],
    spec: SchemaSpec,
    ids: dict[str, str],
) -> SchemaChange:
    """Add missing values and restore the restriction; other values stay (records use them)."""
    if field.kind != "picklist":
        return SchemaChange(sobject, field.salesforce, "unchanged")
    existing = [entry["value"] for entry in found.get("picklistValues") or []]
    missing = missing_options(existing, options_of(field, spec))
    unrestricted = not found.get("restrictedPicklist")
    if not missing and not unrestricted:
        return SchemaChange(sobject, field.salesforce, "unchanged")
    if not ids:
        ids.update(_custom_field_ids(api, sobject))
    body = {"Metadata": _metadata(field, (*existing, *missing))}
    api.rest(f"tooling/sobjects/CustomField/{ids[field.salesforce]}", "PATCH", json=body)
    detail = [f"added {', '.join(missing)}"] if missing else []
    detail += ["restricted the picklist again"] if unrestricted else []
    return SchemaChange(sobject, field.salesforce, "repaired", "; ".join(detail))


def _custom_field_ids(api: SalesforceApi, sobject: str) -> dict[str, str]:
    """API name -> CustomField id of the object's custom fields."""
    soql = format_soql(
        "SELECT Id, DeveloperName FROM CustomField WHERE TableEnumOrId = {}", sobject
    )
    found = api.rest("tooling/query", params={"q": soql})
    return {f"{row['DeveloperName']}__c": row["Id"] for row in found["records"]}


def _rule_metadata() -> dict[str, Any]:
    return {
        "errorConditionFormula": REASON_RULE.formula,
        "errorMessage": REASON_RULE.message,
        "errorDisplayField": REASON_RULE.display_field,
        "description": REASON_RULE.description,
        "active": True,
    }


def _ensure_rule(api: SalesforceApi, sobject: str) -> SchemaChange:
    """The reason-code rule, created or put back as it should be."""
    soql = format_soql(
        "SELECT Id FROM ValidationRule WHERE EntityDefinitionId = {} AND ValidationName = {}",
        sobject,
        REASON_RULE.name,
    )
    found = api.rest("tooling/query", params={"q": soql})["records"]
    wanted = _rule_metadata()
    if not found:
        body = {"FullName": f"{sobject}.{REASON_RULE.name}", "Metadata": wanted}
        api.rest("tooling/sobjects/ValidationRule", "POST", json=body)
        return SchemaChange(sobject, REASON_RULE.name, "created", _RULE)
    path = f"tooling/sobjects/ValidationRule/{found[0]['Id']}"
    current = api.rest(path)["Metadata"]
    drifted = [key for key, value in wanted.items() if current.get(key) != value]
    if not drifted:
        return SchemaChange(sobject, REASON_RULE.name, "unchanged", _RULE)
    api.rest(path, "PATCH", json={"Metadata": wanted})
    return SchemaChange(
        sobject, REASON_RULE.name, "repaired", f"{_RULE}: reset {', '.join(drifted)}"
    )
