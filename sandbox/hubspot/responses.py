"""What the object routes share: property selection, record JSON, batch envelopes, ids."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import polars as pl

from sandbox.http import Request, Response
from sandbox.hubspot.analytics import MAX_HISTORY_PAGE, entries
from sandbox.hubspot.errors import HubSpotError
from sandbox.hubspot.render import json_list, record_fragments
from sandbox.hubspot.schema import ObjectSpec, association_types, object_spec
from sandbox.hubspot.store import PortalStore
from sandbox.hubspot.values import format_timestamp

__all__ = [
    "MAX_BATCH",
    "batch_response",
    "fragments",
    "inputs_of",
    "is_true",
    "json_body",
    "link_to",
    "numeric_id",
    "object_pattern",
    "query_list",
    "requested_names",
    "spec_of",
    "with_associations",
    "with_history",
]

MAX_BATCH = 100


def object_pattern(spec: ObjectSpec) -> str:
    """The path segment naming an object: plural, singular or type id."""
    return f"(?P<object>(?i:{spec.name}|{spec.singular}|{spec.type_id}))"


def is_true(request: Request, name: str) -> bool:
    """A boolean query argument (the client sends ``True``; HubSpot documents ``true``)."""
    return (request.arg(name) or "").lower() == "true"


def link_to(request: Request, path: str) -> str:
    """The absolute ``paging.next.link`` prefix of a path on this server."""
    return f"http://{request.headers.get('host', '127.0.0.1')}{path}?"


def spec_of(request: Request) -> ObjectSpec:
    """The object a request's path names (400 as HubSpot answers an unknown one)."""
    spec = object_spec(request.params["object"])
    if spec is None:
        raise HubSpotError(400, f"Unable to infer object type from: {request.params['object']}")
    return spec


def query_list(request: Request, name: str) -> list[str]:
    """A list query argument, given repeated (``a=1&a=2``) or comma-separated (``a=1,2``)."""
    return [part for value in request.query.get(name, []) for part in value.split(",") if part]


def numeric_id(text: str) -> int:
    """A record id from a path or body (HubSpot ids are numeric)."""
    try:
        return int(text)
    except (TypeError, ValueError) as error:
        raise HubSpotError(
            404, "Object not found.  objectId are usually numeric.", context={"id": [str(text)]}
        ) from error


def requested_names(
    store: PortalStore, spec: ObjectSpec, asked: Sequence[str], history: Sequence[str] = ()
) -> list[str]:
    """Properties to return: those asked for that exist (else the defaults), those asked with
    history, plus id and times."""
    known = store.properties[spec.name]
    chosen = [name for name in asked if name in known] if asked else list(spec.defaults)
    always = ("hs_object_id", spec.created, spec.modified)
    return list(dict.fromkeys([*always, *chosen, *(n for n in history if n in known)]))


def with_history(
    store: PortalStore, spec: ObjectSpec, parts: list[str], asked: Sequence[str], page: int
) -> list[str]:
    """Fragments extended with ``propertiesWithHistory`` for the properties asked (at most 50
    records a page when history is asked). Contacts' analytics properties carry their history;
    any other property its current value, set when the record was last modified."""
    known = [name for name in asked if name in store.properties[spec.name]]
    if not asked:
        return parts
    if page > MAX_HISTORY_PAGE:
        raise HubSpotError(
            400,
            f"Limit of {page} exceeds the maximum of {MAX_HISTORY_PAGE} records a request when "
            "propertiesWithHistory is requested",
        )
    records = [json.loads(part) for part in parts]
    tracked = store.analytics if spec.name == "contacts" else None
    found = {} if tracked is None else entries(tracked, [int(r["id"]) for r in records])
    for record in records:
        history = found.get(int(record["id"]), {})
        record["propertiesWithHistory"] = {
            name: history.get(name) or _current(record, name) for name in known
        }
    return [json.dumps(record) for record in records]


def _current(record: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """A property's history when only its current value is known."""
    value = record["properties"].get(name)
    if value is None:
        return []
    return [{"value": value, "timestamp": record["updatedAt"], "sourceType": "CRM_UI"}]


def fragments(
    store: PortalStore, spec: ObjectSpec, rows: pl.DataFrame, names: Sequence[str]
) -> list[str]:
    """Records rendered as JSON objects."""
    return record_fragments(rows, spec, store.properties[spec.name], names)


def with_associations(
    store: PortalStore,
    spec: ObjectSpec,
    rows: pl.DataFrame,
    parts: list[str],
    targets: Sequence[str],
) -> list[str]:
    """Fragments extended with v3-style ``associations`` to the named objects."""
    wanted = [target for name in targets if (target := object_spec(name)) is not None]
    if not wanted:
        return parts
    extended = []
    for record_id, part in zip(rows["_id"].to_list(), parts, strict=True):
        found = {
            target.name: {"results": _v3_links(store, spec.name, target.name, record_id)}
            for target in wanted
        }
        found = {key: value for key, value in found.items() if value["results"]}
        extended.append(part[:-1] + ',"associations":' + json.dumps(found) + "}" if found else part)
    return extended


def _v3_links(store: PortalStore, source: str, target: str, record_id: int) -> list[dict[str, str]]:
    """One record's associations in the v3 shape: one entry per (record, type)."""
    names = {t.type_id: t.v3_name for t in association_types(source, target)}
    return [
        {"id": str(link.to_id), "type": names.get(type_id, f"{type_id}")}
        for link in store.edges.links(source, target, record_id)
        for type_id in link.type_ids
    ]


def inputs_of(request: Request) -> list[dict[str, Any]]:
    """A batch request's ``inputs`` (at most 100, as HubSpot allows)."""
    body = json_body(request)
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise HubSpotError(400, "Invalid input JSON: inputs must be a list")
    if len(inputs) > MAX_BATCH:
        raise HubSpotError(
            400, f"Batch input must not exceed {MAX_BATCH} inputs, got {len(inputs)}"
        )
    return inputs


def json_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object (400 when it is not one)."""
    try:
        body = request.json()
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise HubSpotError(400, f"Invalid input JSON on {where}: unexpected input") from error
    except ValueError as error:  # not UTF-8
        raise HubSpotError(400, "Invalid input JSON: the body is not UTF-8") from error
    if not isinstance(body, dict):
        raise HubSpotError(400, "Invalid input JSON: expected an object")
    return body


def batch_response(
    success: int,
    results: Iterable[str],
    errors: Sequence[dict[str, Any]],
    started: datetime,
    now: datetime,
) -> Response:
    """A batch envelope: ``success`` status, or 207 Multi-Status when some inputs failed."""
    head = {
        "status": "COMPLETE",
        "startedAt": format_timestamp(started),
        "completedAt": format_timestamp(now),
    }
    if errors:
        head |= {"numErrors": len(errors), "errors": list(errors)}
    text = json.dumps(head)[:-1] + ',"results":' + json_list(list(results)) + "}"
    return Response(207 if errors else success, text.encode())
