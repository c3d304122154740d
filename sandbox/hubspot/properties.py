"""Properties API v3: property groups, property definitions with enumeration options, batches.

The set-up command creates its fields here (score, tier, disposition, reason code...); the new
property is a column of its object from then on, readable, writable and searchable.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sandbox.http import Request, Response, Route
from sandbox.hubspot.errors import HubSpotError, record_error
from sandbox.hubspot.responses import batch_response, inputs_of, is_true, json_body
from sandbox.hubspot.schema import ObjectSpec, PropertySpec, object_spec
from sandbox.hubspot.store import PortalStore
from sandbox.hubspot.values import format_timestamp

__all__ = ["FIELD_TYPES", "PropertyRoutes", "property_json"]

# property type -> the field types it may be shown as (PropertyCreate's enums)
FIELD_TYPES = {
    "string": {"text", "textarea", "file", "phonenumber", "html"},
    "number": {"number", "calculation_equation"},
    "date": {"date"},
    "datetime": {"date"},
    "enumeration": {"select", "radio", "checkbox", "booleancheckbox"},
    "bool": {"booleancheckbox"},
}
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_OBJ = r"(?P<object>[\w-]+)"


def property_json(spec: PropertySpec, created: datetime | None = None) -> dict[str, Any]:
    """A property definition as the Properties API returns it."""
    body: dict[str, Any] = {
        "name": spec.name,
        "label": spec.label,
        "type": spec.type,
        "fieldType": spec.field_type,
        "description": spec.description,
        "groupName": spec.group,
        "options": [
            {"label": label, "value": value, "displayOrder": order, "hidden": False}
            for order, (value, label) in enumerate(spec.options)
        ],
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": spec.unique,
        "hidden": False,
        "hubspotDefined": spec.hubspot_defined,
        "modificationMetadata": {
            "archivable": not spec.hubspot_defined,
            "readOnlyDefinition": spec.hubspot_defined,
            "readOnlyValue": spec.read_only,
        },
        "formField": not spec.read_only,
        "archived": False,
    }
    if created is not None:
        body["createdAt"] = body["updatedAt"] = format_timestamp(created)
    return body


def _spec(request: Request) -> ObjectSpec:
    spec = object_spec(request.params["object"])
    if spec is None:
        raise HubSpotError(400, f"Unable to infer object type from: {request.params['object']}")
    return spec


def _options(raw: Any) -> tuple[tuple[str, str], ...]:
    """``[{label, value, ...}]`` as (value, label) pairs."""
    if not isinstance(raw, list) or any("value" not in o or "label" not in o for o in raw):
        raise HubSpotError(400, "options must be a list of {label, value}")
    return tuple((str(o["value"]), str(o["label"])) for o in raw)


class PropertyRoutes:
    """Handlers of /crm/v3/properties/{object}[/groups][/{name}]."""

    def __init__(self, store: PortalStore) -> None:
        self.store = store
        self.created: dict[tuple[str, str], datetime] = {}
        self.archived: dict[str, dict[str, PropertySpec]] = {}
        self._lock = threading.Lock()

    def routes(self) -> list[Route]:
        """Groups first: ``groups`` would otherwise read as a property name."""
        base = rf"/crm/v3/properties/{_OBJ}"
        name = r"/(?P<name>[\w-]+)"
        return [
            Route("GET", rf"{base}/groups", "properties/groups", self.groups),
            Route("POST", rf"{base}/groups", "properties/groups", self.create_group),
            Route("GET", rf"{base}/groups{name}", "properties/groups/{name}", self.group),
            Route("PATCH", rf"{base}/groups{name}", "properties/groups/{name}", self.update_group),
            Route("POST", rf"{base}/batch/create", "properties/batch/create", self.batch_create),
            Route("POST", rf"{base}/batch/read", "properties/batch/read", self.batch_read),
            Route("GET", base, "properties", self.all),
            Route("POST", base, "properties", self.create),
            Route("GET", rf"{base}{name}", "properties/{name}", self.one),
            Route("PATCH", rf"{base}{name}", "properties/{name}", self.update),
            Route("DELETE", rf"{base}{name}", "properties/{name}", self.archive),
        ]

    def _json(self, object_name: str, spec: PropertySpec) -> dict[str, Any]:
        return property_json(spec, self.created.get((object_name, spec.name)))

    def all(self, request: Request) -> Response:
        """Every property of an object (or the archived ones)."""
        spec = _spec(request)
        pool = (
            self.archived.get(spec.name, {})
            if is_true(request, "archived")
            else self.store.properties[spec.name]
        )
        results = [self._json(spec.name, p) for p in pool.values()]
        return Response(200, json.dumps({"results": results}).encode())

    def one(self, request: Request) -> Response:
        """One property by name."""
        spec = _spec(request)
        return Response(
            200, json.dumps(self._json(spec.name, self._get(spec, request.params["name"]))).encode()
        )

    def _get(self, spec: ObjectSpec, name: str) -> PropertySpec:
        found = self.store.properties[spec.name].get(name)
        if found is None:
            raise HubSpotError(
                404, f"Property {name} does not exist", context={"properties": [name]}
            )
        return found

    def create(self, request: Request) -> Response:
        """A new custom property (201; 409 if the name is taken)."""
        spec = _spec(request)
        created = self._create(spec, json_body(request))
        return Response(201, json.dumps(self._json(spec.name, created)).encode())

    def _create(self, spec: ObjectSpec, body: Mapping[str, Any]) -> PropertySpec:
        prop = self._validated(spec, body)
        with self._lock:
            if prop.name in self.store.properties[spec.name]:
                raise HubSpotError(
                    409,
                    f"Property named '{prop.name}' already exists.",
                    category="OBJECT_ALREADY_EXISTS",
                )
            self.store.add_property(spec.name, prop)
            self.created[(spec.name, prop.name)] = self.store.clock()
        return prop

    def _validated(self, spec: ObjectSpec, body: Mapping[str, Any]) -> PropertySpec:
        """A PropertyCreate body as a property definition, or 400 saying what is wrong."""
        missing = [
            k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)
        ]
        if missing:
            raise HubSpotError(400, f"Property definition is missing {', '.join(missing)}")
        name, kind, field_type = str(body["name"]), str(body["type"]), str(body["fieldType"])
        if not _NAME.fullmatch(name):
            raise HubSpotError(
                400, f"Invalid property name {name!r}: lowercase letters, digits and _"
            )
        if field_type not in FIELD_TYPES.get(kind, set()):
            raise HubSpotError(
                400, f"fieldType {field_type!r} is not valid for a {kind!r} property"
            )
        if body["groupName"] not in self.store.groups[spec.name]:
            raise HubSpotError(400, f"Property group {body['groupName']} does not exist")
        options = _options(body.get("options", [])) if kind in ("enumeration", "bool") else ()
        if kind == "enumeration" and not options and field_type != "checkbox":
            raise HubSpotError(400, "An enumeration property needs options")
        return PropertySpec(
            name,
            str(body["label"]),
            kind,
            field_type,
            str(body["groupName"]),
            options,
            hubspot_defined=False,
            unique=bool(body.get("hasUniqueValue")),
            description=str(body.get("description") or ""),
        )

    def update(self, request: Request) -> Response:
        """Change a custom property's label, description, group or options."""
        spec = _spec(request)
        current = self._get(spec, request.params["name"])
        body = json_body(request)
        if current.hubspot_defined and "options" in body:
            raise HubSpotError(
                400, f"Options of HubSpot-defined property {current.name} are read only"
            )
        changed = PropertySpec(
            current.name,
            str(body.get("label", current.label)),
            current.type,
            str(body.get("fieldType", current.field_type)),
            str(body.get("groupName", current.group)),
            _options(body["options"]) if "options" in body else current.options,
            current.hubspot_defined,
            current.read_only,
            current.unique,
            str(body.get("description", current.description)),
        )
        self.store.properties[spec.name] = {
            **self.store.properties[spec.name],
            current.name: changed,
        }
        return Response(200, json.dumps(self._json(spec.name, changed)).encode())

    def archive(self, request: Request) -> Response:
        """Archive a custom property (204); HubSpot's own cannot be."""
        spec = _spec(request)
        current = self._get(spec, request.params["name"])
        if current.hubspot_defined:
            raise HubSpotError(400, f"HubSpot-defined property {current.name} cannot be archived")
        with self._lock:
            rest = {k: v for k, v in self.store.properties[spec.name].items() if k != current.name}
            self.store.properties[spec.name] = rest
            self.archived.setdefault(spec.name, {})[current.name] = current
        return Response(204, b"", content_type="text/plain")

    def batch_create(self, request: Request) -> Response:
        """Several properties (201); a taken or invalid one fails alone (207)."""
        spec, started = _spec(request), self.store.clock()
        results, errors = [], []
        for item in inputs_of(request):
            try:
                results.append(json.dumps(self._json(spec.name, self._create(spec, item))))
            except HubSpotError as error:
                errors.append(
                    record_error(error.category, error.message, {"name": [str(item.get("name"))]})
                )
        return batch_response(201, results, errors, started, self.store.clock())

    def batch_read(self, request: Request) -> Response:
        """Several properties by name; unknown names reported (207)."""
        spec, started = _spec(request), self.store.clock()
        names = [str(item.get("name")) for item in inputs_of(request)]
        known = self.store.properties[spec.name]
        results = [json.dumps(self._json(spec.name, known[n])) for n in names if n in known]
        unknown = [n for n in names if n not in known]
        errors = (
            [
                record_error(
                    "OBJECT_NOT_FOUND", "Some properties do not exist", {"properties": unknown}
                )
            ]
            if unknown
            else []
        )
        return batch_response(200, results, errors, started, self.store.clock())

    def groups(self, request: Request) -> Response:
        """An object's property groups."""
        spec = _spec(request)
        results = [
            _group(n, label, i) for i, (n, label) in enumerate(self.store.groups[spec.name].items())
        ]
        return Response(200, json.dumps({"results": results}).encode())

    def group(self, request: Request) -> Response:
        """One property group."""
        spec, name = _spec(request), request.params["name"]
        groups = self.store.groups[spec.name]
        if name not in groups:
            raise HubSpotError(404, f"Property group {name} does not exist")
        return Response(
            200, json.dumps(_group(name, groups[name], list(groups).index(name))).encode()
        )

    def create_group(self, request: Request) -> Response:
        """A new property group (201; 409 if the name is taken)."""
        spec, body = _spec(request), json_body(request)
        name, label = str(body.get("name") or ""), str(body.get("label") or "")
        if not _NAME.fullmatch(name) or not label:
            raise HubSpotError(
                400, "A property group needs a name (lowercase letters, digits, _) and a label"
            )
        with self._lock:
            groups = self.store.groups[spec.name]
            if name in groups:
                raise HubSpotError(
                    409,
                    f"Property group '{name}' already exists.",
                    category="OBJECT_ALREADY_EXISTS",
                )
            groups[name] = label
        return Response(
            201, json.dumps(_group(name, label, int(body.get("displayOrder", -1)))).encode()
        )

    def update_group(self, request: Request) -> Response:
        """Rename a property group's label."""
        spec, name = _spec(request), request.params["name"]
        groups = self.store.groups[spec.name]
        if name not in groups:
            raise HubSpotError(404, f"Property group {name} does not exist")
        groups[name] = str(json_body(request).get("label", groups[name]))
        return Response(
            200, json.dumps(_group(name, groups[name], list(groups).index(name))).encode()
        )


def _group(name: str, label: str, order: int) -> dict[str, Any]:
    """A ``PropertyGroup``."""
    return {"name": name, "label": label, "displayOrder": order, "archived": False}
