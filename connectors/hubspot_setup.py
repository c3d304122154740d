"""Set-up in HubSpot: one property group with our properties on companies and contacts.

Properties are read in one batch per object; missing ones are created in one batch, and an
enumeration missing an option (tier, disposition, reason code) gets it back. A property of the
wrong type is reported as a conflict and left for an admin. A second run changes nothing.
HubSpot cannot make a reason required on rejection; the sync flags rejections without one.
https://developers.hubspot.com/docs/api/crm/properties
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors.errors import NotFound
from connectors.hubspot_api import HubSpotApi
from connectors.protocol import SchemaChange, SchemaGap, SchemaReport, SchemaSpec
from connectors.schema import (
    HUBSPOT_GROUP,
    HUBSPOT_OBJECTS,
    FieldKind,
    FoundField,
    OwnedField,
    gaps,
    missing_options,
    options_of,
    owned_for,
)

__all__ = ["ensure_schema", "schema_gaps"]

# kind -> (property type, field type)
_TYPES: Mapping[FieldKind, tuple[str, str]] = {
    "number": ("number", "number"),
    "picklist": ("enumeration", "select"),
    "long_text": ("string", "textarea"),
    "text": ("string", "text"),
    "datetime": ("datetime", "date"),
    "lookup": ("string", "text"),  # the matched company's id
}
_PROPERTY_TYPES: Mapping[FieldKind, str] = {kind: types[0] for kind, types in _TYPES.items()}


def ensure_schema(api: HubSpotApi, spec: SchemaSpec) -> SchemaReport:
    """The group, then the properties, on each object that carries our fields."""
    changes: list[SchemaChange] = []
    for entity, object_name in HUBSPOT_OBJECTS.items():
        changes.append(_ensure_group(api, object_name))
        changes += _ensure_properties(api, object_name, owned_for(entity), spec)
    return SchemaReport(tuple(changes))


def schema_gaps(api: HubSpotApi, spec: SchemaSpec) -> tuple[SchemaGap, ...]:
    """Our properties on companies and contacts that set-up has yet to create or fix (one
    batch read per object)."""
    found: list[SchemaGap] = []
    for entity, object_name in HUBSPOT_OBJECTS.items():
        owned = owned_for(entity)
        described = {
            name: FoundField(p["type"], tuple(o["value"] for o in p.get("options") or []))
            for name, p in _properties(api, object_name, owned).items()
        }
        found += gaps(object_name, owned, described, "hubspot", _PROPERTY_TYPES, spec)
    return tuple(found)


def _ensure_group(api: HubSpotApi, object_name: str) -> SchemaChange:
    name, label = HUBSPOT_GROUP
    try:
        api.call(api.groups.get_by_name, object_name, name)
    except NotFound:
        body = {"name": name, "label": label, "displayOrder": -1}
        api.call(api.groups.create, object_name, body)
        return SchemaChange(object_name, name, "created", _GROUP)
    return SchemaChange(object_name, name, "unchanged", _GROUP)


_GROUP = "the property group of the fields below"


def _ensure_properties(
    api: HubSpotApi, object_name: str, owned: Sequence[OwnedField], spec: SchemaSpec
) -> list[SchemaChange]:
    current = _properties(api, object_name, owned)
    missing = [f for f in owned if f.hubspot not in current]
    changes = _create(api, object_name, missing, spec) if missing else {}
    for field in owned:
        if field.hubspot in current:
            changes[field.hubspot] = _ensure_options(api, object_name, field, current, spec)
    return [changes[f.hubspot] for f in owned]


def _properties(
    api: HubSpotApi, object_name: str, owned: Sequence[OwnedField]
) -> dict[str, Mapping[str, Any]]:
    """Those of our properties the object has, by name (one batch read)."""
    body = {"archived": False, "inputs": [{"name": f.hubspot} for f in owned]}
    answer = api.call(api.property_batch.read, object_name, body)
    return {p["name"]: p for p in answer.get("results", [])}


def _create(
    api: HubSpotApi, object_name: str, missing: Sequence[OwnedField], spec: SchemaSpec
) -> dict[str, SchemaChange]:
    """Create the missing properties in one batch; any it refuses are conflicts."""
    inputs = [_definition(f, spec) for f in missing]
    answer = api.call(api.property_batch.create, object_name, {"inputs": inputs})
    refused = {
        name: str(error.get("message"))
        for error in answer.get("errors", [])
        for name in (error.get("context") or {}).get("name", [])
    }
    return {
        f.hubspot: SchemaChange(object_name, f.hubspot, "conflict", refused[f.hubspot])
        if f.hubspot in refused
        else SchemaChange(object_name, f.hubspot, "created")
        for f in missing
    }


def _definition(field: OwnedField, spec: SchemaSpec) -> dict[str, Any]:
    kind, field_type = _TYPES[field.kind]
    body = {
        "name": field.hubspot,
        "label": field.label,
        "type": kind,
        "fieldType": field_type,
        "groupName": HUBSPOT_GROUP[0],
        "description": field.description,
    }
    if field.kind == "picklist":
        body["options"] = _options(options_of(field, spec))
    return body


def _options(values: Sequence[str], start: int = 0) -> list[dict[str, Any]]:
    return [
        {"label": value, "value": value, "displayOrder": start + order, "hidden": False}
        for order, value in enumerate(values)
    ]


def _ensure_options(
    api: HubSpotApi,
    object_name: str,
    field: OwnedField,
    current: Mapping[str, Mapping[str, Any]],
    spec: SchemaSpec,
) -> SchemaChange:
    """Check the type; give an enumeration back the options it lost (others stay)."""
    found = current[field.hubspot]
    kind, _ = _TYPES[field.kind]
    if found["type"] != kind:
        detail = f"is a {found['type']} property; Handoff needs {kind}"
        return SchemaChange(object_name, field.hubspot, "conflict", detail)
    existing = list(found.get("options") or [])
    missing = missing_options([o["value"] for o in existing], options_of(field, spec))
    if not missing:
        return SchemaChange(object_name, field.hubspot, "unchanged")
    options = [*existing, *_options(missing, len(existing))]
    api.call(api.properties.update, object_name, field.hubspot, {"options": options})
    return SchemaChange(object_name, field.hubspot, "repaired", f"added {', '.join(missing)}")
