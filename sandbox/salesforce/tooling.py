"""The Tooling API's CustomField and ValidationRule: what a set-up command creates.

``POST tooling/sobjects/CustomField`` with ``{"FullName": "Account.Handoff_Score__c",
"Metadata": {...}}`` adds the field to the object (describe, SOQL and writes see it at once);
``PATCH`` with new Metadata changes it (e.g. adds picklist values). A ValidationRule's
``errorConditionFormula`` is compiled when created (`formula`), refused with the formula
editor's message when unsupported, and enforced on every later save while active.
``tooling/query`` answers SOQL over both.
https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_customfield.htm
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

import polars as pl

from sandbox.http import Request, Response, Route, json_response
from sandbox.salesforce.catalog import CustomFieldRecord, ValidationRule
from sandbox.salesforce.errors import NOT_FOUND_MESSAGE, SalesforceError
from sandbox.salesforce.formula import FormulaError, compile_condition
from sandbox.salesforce.ids import make_id
from sandbox.salesforce.query import run_soql
from sandbox.salesforce.routing import api_route, json_body
from sandbox.salesforce.schema import FIELD_TYPES, Field, SObject
from sandbox.salesforce.state import OrgState
from sandbox.soql import ObjectSchema, Schema, records

__all__ = ["CUSTOM_FIELD_TYPES", "TOOLING_SCHEMA", "ToolingService"]

# Metadata API field type -> describe type
CUSTOM_FIELD_TYPES: dict[str, str] = {
    "Text": "string",
    "TextArea": "textarea",
    "LongTextArea": "textarea",
    "Number": "double",
    "Currency": "currency",
    "Percent": "percent",
    "Checkbox": "boolean",
    "Date": "date",
    "DateTime": "datetime",
    "Picklist": "picklist",
    "Lookup": "reference",
    "Email": "email",
    "Phone": "phone",
    "Url": "url",
}
_DEFAULT_LENGTHS = {"Text": 255, "TextArea": 255, "LongTextArea": 32768, "Email": 80}
_DEFAULT_LENGTHS |= {"Phone": 40, "Url": 255, "Picklist": 255}
_CUSTOM_NAME = re.compile(r"(?P<object>\w+)\.(?P<field>[A-Za-z][A-Za-z0-9_]*__c)")
_RULE_NAME = re.compile(r"(?P<object>\w+)\.(?P<rule>[A-Za-z][A-Za-z0-9_]*)")
TOOLING_SCHEMA = Schema(
    [
        ObjectSchema(
            "CustomField",
            {"Id": "id", "DeveloperName": "string", "TableEnumOrId": "string"}
            | {"NamespacePrefix": "string", "CreatedDate": "datetime"},
        ),
        ObjectSchema(
            "ValidationRule",
            {"Id": "id", "ValidationName": "string", "EntityDefinitionId": "string"}
            | {"Active": "boolean", "ErrorMessage": "string", "ErrorDisplayField": "string"}
            | {"Description": "string", "CreatedDate": "datetime"},
        ),
    ]
)


class ToolingService:
    """``tooling/sobjects/{CustomField|ValidationRule}`` and ``tooling/query``."""

    def __init__(self, state: OrgState) -> None:
        self.state = state
        self._lock = threading.Lock()

    def routes(self) -> list[Route]:
        """Create, update and read the two metadata types; query them."""
        kinds = r"/tooling/sobjects/(?P<kind>CustomField|ValidationRule)"
        record = kinds + r"/(?P<id>\w{15}(?:\w{3})?)/?"
        return [
            api_route("GET", r"/tooling/query/?", "tooling/query", self.query),
            api_route("POST", kinds + r"/?", "tooling/sobjects", self.create),
            api_route("PATCH", record, "tooling/sobjects", self.update),
            api_route("GET", record, "tooling/sobjects", self.get),
        ]

    def create(self, request: Request) -> Response:
        """Create a custom field or a validation rule: 201 and its id."""
        body = _metadata_body(json_body(request))
        kind = request.params["kind"]
        with self._lock:
            record_id = make_id(kind, self._next_number(kind))
            self._put(kind, record_id, str(body.get("FullName", "")), body["Metadata"], None)
        answer = {"id": record_id, "success": True, "errors": [], "warnings": [], "infos": []}
        return json_response(201, answer)

    def _next_number(self, kind: str) -> int:
        """One past the records of ``kind`` so far, restored ones included (none is deleted)."""
        catalog = self.state.catalog
        made = catalog.custom_fields() if kind == "CustomField" else catalog.rules()
        return len(made) + 1

    def update(self, request: Request) -> Response:
        """Replace a custom field's or validation rule's Metadata: 204."""
        body = _metadata_body(json_body(request))
        kind, record_id = request.params["kind"], request.params["id"]
        current = self._current(kind, record_id)
        with self._lock:
            self._put(kind, current.id, _full_name(current), body["Metadata"], current)
        return Response(204)

    def get(self, request: Request) -> Response:
        """One custom field or validation rule with its FullName and Metadata."""
        kind = request.params["kind"]
        current = self._current(kind, request.params["id"])
        row = _field_row(current) if kind == "CustomField" else _rule_row(current)  # type: ignore[arg-type]
        url = f"/services/data/v{request.params['version']}/tooling/sobjects/{kind}/{current.id}"
        created = current.created.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        body = {"attributes": {"type": kind, "url": url}, **row, "CreatedDate": created}
        body |= {"FullName": _full_name(current), "Metadata": current.metadata}
        return json_response(200, body)

    def query(self, request: Request) -> Response:
        """``tooling/query?q=``: SOQL over CustomField and ValidationRule."""
        text = request.arg("q") or ""
        query, rows = run_soql(text, self._tables(), TOOLING_SCHEMA, False)
        version = request.params["version"]
        if isinstance(rows, int):
            found: list[dict[str, Any]] = []
            total = rows
        else:
            found = records(rows, query, TOOLING_SCHEMA, api_version=version)
            total = len(found)
        for record in found:
            url = record["attributes"]["url"].replace("/sobjects/", "/tooling/sobjects/")
            record["attributes"]["url"] = url
        body = {"size": total, "totalSize": total, "done": True, "queryLocator": None}
        return json_response(200, body | {"entityTypeName": query.object, "records": found})

    def _put(
        self,
        kind: str,
        record_id: str,
        full_name: str,
        metadata: dict[str, Any],
        current: CustomFieldRecord | ValidationRule | None,
    ) -> None:
        """Create or replace a field or rule; Metadata given is merged over the current."""
        merged = {**(current.metadata if current else {}), **metadata}
        if kind == "CustomField":
            self._put_field(record_id, full_name, merged, current)  # type: ignore[arg-type]
        else:
            self._put_rule(record_id, full_name, merged, current)  # type: ignore[arg-type]

    def _put_field(
        self,
        record_id: str,
        full_name: str,
        metadata: dict[str, Any],
        current: CustomFieldRecord | None,
    ) -> None:
        """Add the column, then the field (queries never see a field without its column)."""
        named = _CUSTOM_NAME.fullmatch(full_name)
        sobject = self.state.catalog.object(named.group("object")) if named else None
        if named is None or sobject is None:
            raise SalesforceError(
                "INVALID_FIELD",
                f"FullName must be <Object>.<Name>__c of an existing object: {full_name!r}",
            )
        existing = sobject.field(named.group("field"))
        if current is None and existing is not None:
            raise SalesforceError(
                "DUPLICATE_DEVELOPER_NAME",
                f"There is already a field named {existing.name.removesuffix('__c')} on "
                f"{sobject.name}.",
            )
        new = _custom_field(named.group("field"), metadata, self.state.catalog.object)
        if existing is not None and existing.type != new.type:
            raise SalesforceError(
                "FIELD_INTEGRITY_EXCEPTION", f"Cannot change the type of {existing.name}"
            )
        created = current.created if current else self.state.clock()
        record = CustomFieldRecord(record_id, sobject.name, new.name, metadata, created)
        self.state.records.table(sobject.name).add_column(new.name, new.kind.dtype)
        self.state.catalog.put_field(record, new)

    def _put_rule(
        self,
        record_id: str,
        full_name: str,
        metadata: dict[str, Any],
        current: ValidationRule | None,
    ) -> None:
        """Compile the rule's formula (refusing what it cannot run) and enforce it from now."""
        named = _RULE_NAME.fullmatch(full_name)
        sobject = self.state.catalog.object(named.group("object")) if named else None
        if named is None or sobject is None:
            raise SalesforceError(
                "INVALID_FIELD", f"FullName must be <Object>.<RuleName>: {full_name!r}"
            )
        condition = _compiled(str(metadata.get("errorConditionFormula", "")), sobject)
        created = current.created if current else self.state.clock()
        rule = ValidationRule(
            record_id, sobject.name, named.group("rule"), metadata, condition, created
        )
        self.state.catalog.put_rule(rule)

    def _current(self, kind: str, record_id: str) -> CustomFieldRecord | ValidationRule:
        catalog = self.state.catalog
        found = (
            catalog.custom_field(record_id) if kind == "CustomField" else catalog.rule(record_id)
        )
        if found is None:
            raise SalesforceError("NOT_FOUND", NOT_FOUND_MESSAGE)
        return found

    def _tables(self) -> dict[str, pl.DataFrame]:
        """The two metadata types as frames for the SOQL engine."""
        fields = [_field_row(f) for f in self.state.catalog.custom_fields()]
        rules = [_rule_row(r) for r in self.state.catalog.rules()]
        return {
            name: pl.DataFrame(rows, schema=_frame_schema(name)).with_columns(IsDeleted=False)
            for name, rows in (("CustomField", fields), ("ValidationRule", rules))
        }


def _metadata_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("Metadata"), dict):
        raise SalesforceError("JSON_PARSER_ERROR", 'Expected {"FullName", "Metadata": {...}}')
    return body


def _custom_field(
    name: str, metadata: dict[str, Any], objects: Callable[[str], SObject | None]
) -> Field:
    """The field Metadata describes."""
    kind = metadata.get("type")
    if kind not in CUSTOM_FIELD_TYPES:
        raise SalesforceError(
            "JSON_PARSER_ERROR", f"'{kind}' is not a valid value for the enum 'FieldType'"
        )
    label = str(metadata.get("label") or name.removesuffix("__c").replace("_", " "))
    common: dict[str, Any] = {
        "custom": True,
        "external_id": bool(metadata.get("externalId", False)),
        "unique": bool(metadata.get("unique", False)),
        "nillable": not metadata.get("required", False),
    }
    describe_type = CUSTOM_FIELD_TYPES[kind]
    extra = _TYPE_DETAILS.get(kind, lambda m, o: {})(metadata, objects)
    if describe_type == "reference":  # the lookup's own relationship: Owner__c -> Owner__r
        extra["relationship"] = name.removesuffix("__c") + "__r"
    length = int(metadata.get("length") or _DEFAULT_LENGTHS.get(kind, 0))
    return Field(name, describe_type, label, length, **common | extra)


def _number_details(metadata: dict[str, Any], objects: Any) -> dict[str, Any]:
    precision, scale = int(metadata.get("precision", 18)), int(metadata.get("scale", 0))
    if not 0 < precision <= 18 or not 0 <= scale <= precision:
        raise SalesforceError(
            "FIELD_INTEGRITY_EXCEPTION", "precision must be 1-18, scale 0-precision"
        )
    return {"precision": precision, "scale": scale}


def _checkbox_details(metadata: dict[str, Any], objects: Any) -> dict[str, Any]:
    default = str(metadata.get("defaultValue", "false")).lower() == "true"
    return {"nillable": False, "defaulted": True, "default": default}


def _picklist_details(metadata: dict[str, Any], objects: Any) -> dict[str, Any]:
    value_set = metadata.get("valueSet") or {}
    definition = value_set.get("valueSetDefinition") or {}
    values = tuple(str(v.get("fullName")) for v in definition.get("value", []) if v.get("fullName"))
    default = next(
        (str(v["fullName"]) for v in definition.get("value", []) if v.get("default")), None
    )
    return {
        "picklist": values,
        "restricted": bool(value_set.get("restricted", False)),
        "default": default,
    }


def _lookup_details(
    metadata: dict[str, Any], objects: Callable[[str], SObject | None]
) -> dict[str, Any]:
    target = objects(str(metadata.get("referenceTo", "")))
    if target is None:
        raise SalesforceError(
            "FIELD_INTEGRITY_EXCEPTION",
            f"referenceTo: no such object {metadata.get('referenceTo')!r}",
        )
    return {
        "reference_to": (target.name,),
        "child_relationship": metadata.get("relationshipName"),
    }


# Metadata type -> the Field attributes it sets beyond the common ones
_TYPE_DETAILS: dict[str, Callable[[dict[str, Any], Any], dict[str, Any]]] = {
    "Number": _number_details,
    "Currency": _number_details,
    "Percent": _number_details,
    "Checkbox": _checkbox_details,
    "Picklist": _picklist_details,
    "Lookup": _lookup_details,
}


def _compiled(formula: str, sobject: SObject) -> pl.Expr:
    try:
        return compile_condition(formula, sobject)
    except FormulaError as error:
        raise SalesforceError(
            "FIELD_INTEGRITY_EXCEPTION", f"Error: {error}", ["errorConditionFormula"]
        ) from error


def _full_name(record: CustomFieldRecord | ValidationRule) -> str:
    return f"{record.object}.{record.name}"


def _field_row(record: CustomFieldRecord) -> dict[str, Any]:
    return {
        "Id": record.id,
        "DeveloperName": record.developer_name,
        "TableEnumOrId": record.object,
        "NamespacePrefix": None,
        "CreatedDate": record.created,
    }


def _rule_row(rule: ValidationRule) -> dict[str, Any]:
    return {
        "Id": rule.id,
        "ValidationName": rule.name,
        "EntityDefinitionId": rule.object,
        "Active": rule.active,
        "ErrorMessage": rule.message,
        "ErrorDisplayField": rule.display_field,
        "Description": rule.metadata.get("description"),
        "CreatedDate": rule.created,
    }


def _frame_schema(name: str) -> dict[str, pl.DataType]:
    found = TOOLING_SCHEMA.object_named(name)
    assert found is not None
    kinds = {kind: t.dtype for t in FIELD_TYPES.values() for kind in [t.soql_kind]}
    return {field: kinds[kind] for field, kind in found.fields.items()}
