"""Describe results: the global list of objects, one object's fields, its basic information.

Shapes follow ``DescribeGlobalResult`` and ``DescribeSObjectResult``; keys a sandbox cannot
give a meaningful value (layouts, record types) are present and empty.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
"""

from __future__ import annotations

from typing import Any

from sandbox.salesforce.schema import Field, SObject

__all__ = ["describe_global", "describe_sobject", "sobject_summary"]

_STRINGY = frozenset({"string", "textarea", "picklist", "combobox", "email", "phone", "url"})


def describe_global(objects: tuple[SObject, ...], version: str) -> dict[str, Any]:
    """``GET sobjects``."""
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [_summary(obj, version) for obj in objects],
    }


def sobject_summary(obj: SObject, version: str) -> dict[str, Any]:
    """``GET sobjects/{Type}``: the object's summary and its recently viewed records."""
    return {"objectDescribe": _summary(obj, version), "recentItems": []}


def describe_sobject(obj: SObject, objects: tuple[SObject, ...], version: str) -> dict[str, Any]:
    """``GET sobjects/{Type}/describe``."""
    return {
        **_summary(obj, version),
        "actionOverrides": [],
        "childRelationships": _children(obj, objects),
        "fields": [_field(f) for f in obj.fields],
        "namedLayoutInfos": [],
        "recordTypeInfos": [],
        "supportedScopes": [{"label": "All", "name": "everything"}],
    }


def _summary(obj: SObject, version: str) -> dict[str, Any]:
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    return {
        "activateable": False,
        "createable": obj.createable,
        "custom": obj.custom,
        "customSetting": False,
        "deletable": obj.deletable,
        "deprecatedAndHidden": False,
        "feedEnabled": False,
        "hasSubtypes": False,
        "isSubtype": False,
        "keyPrefix": obj.key_prefix,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "layoutable": True,
        "mergeable": obj.name in ("Account", "Contact", "Lead"),
        "mruEnabled": True,
        "name": obj.name,
        "queryable": True,
        "replicateable": True,
        "retrieveable": True,
        "searchable": True,
        "triggerable": True,
        "undeletable": obj.deletable,
        "updateable": obj.updateable,
        "urls": {
            "rowTemplate": f"{base}/{{ID}}",
            "defaultValues": f"{base}/defaultValues?recordTypeId&fields",
            "describe": f"{base}/describe",
            "sobject": base,
        },
    }


def _field(f: Field) -> dict[str, Any]:
    """One field's describe entry."""
    length = f.length if f.type in _STRINGY or f.type in ("id", "reference") else 0
    return {
        "aggregatable": f.type not in ("textarea", "boolean"),
        "autoNumber": False,
        "byteLength": length * 3,
        "calculated": False,
        "caseSensitive": False,
        "createable": f.createable,
        "custom": f.custom,
        "defaultValue": f.default if isinstance(f.default, bool) else None,
        "defaultedOnCreate": f.defaulted,
        "digits": f.precision if f.type == "int" else 0,
        "externalId": f.external_id,
        "filterable": f.type != "textarea" or f.length <= 255,
        "groupable": f.type not in ("textarea", "double", "currency", "percent", "datetime"),
        "idLookup": f.name == "Id" or f.external_id,
        "label": f.label,
        "length": length,
        "name": f.name,
        "nameField": f.name == "Name",
        "nillable": f.nillable,
        "picklistValues": [_picklist_entry(f, value) for value in f.picklist],
        "polymorphicForeignKey": len(f.reference_to) > 1,
        "precision": f.precision if f.type in ("double", "currency", "percent") else 0,
        "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship,
        "restrictedPicklist": f.restricted,
        "scale": f.scale,
        "soapType": f.kind.soap_type,
        "sortable": f.type != "textarea" or f.length <= 255,
        "type": f.type,
        "unique": f.unique,
        "updateable": f.updateable,
    }


def _picklist_entry(f: Field, value: str) -> dict[str, Any]:
    return {
        "active": True,
        "defaultValue": value == f.default,
        "label": value,
        "validFor": None,
        "value": value,
    }


def _children(parent: SObject, objects: tuple[SObject, ...]) -> list[dict[str, Any]]:
    """Lookups from other objects to ``parent`` that have a child relationship name."""
    return [
        {
            "cascadeDelete": False,
            "childSObject": child.name,
            "deprecatedAndHidden": False,
            "field": f.name,
            "relationshipName": f.child_relationship,
            "restrictedDelete": False,
        }
        for child in objects
        for f in child.fields
        if parent.name in f.reference_to and f.child_relationship
    ]
