"""Associations v4: read a record's associations, create and remove them, singly or in batches.

Every association is stored both ways (a contact's company and the company's contact), with
HUBSPOT_DEFINED type ids (schema.ASSOCIATION_TYPES). Batch reads report the ids that have no
associations as errors (``NO_ASSOCIATIONS_FOUND``, 207), as HubSpot does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sandbox.faults import FaultPlan
from sandbox.http import Request, Response, Route
from sandbox.hubspot.edges import Link
from sandbox.hubspot.errors import HubSpotError, locked_error, record_error
from sandbox.hubspot.render import page_body
from sandbox.hubspot.responses import batch_response, inputs_of, json_body, link_to
from sandbox.hubspot.schema import (
    REVERSE_TYPES,
    ObjectSpec,
    association_types,
    object_spec,
    type_of,
)
from sandbox.hubspot.store import PortalStore

__all__ = ["MAX_ASSOCIATION_PAGE", "AssociationRoutes", "associate", "associate_on_create"]

MAX_ASSOCIATION_PAGE = 500
MAX_BATCH_READ = 1000
_OBJ = r"(?P<source>[\w-]+)"
_TO = r"(?P<target>[\w-]+)"


def _spec(name: str) -> ObjectSpec:
    """An object named in a v4 path (400 for unknown ones)."""
    spec = object_spec(name)
    if spec is None:
        raise HubSpotError(400, f"Unable to infer object type from: {name}")
    return spec


def _type_ids(source: str, target: str, types: Sequence[Mapping[str, Any]]) -> list[int]:
    """Type ids from ``[{associationCategory, associationTypeId}]``, each valid for the pair."""
    ids = [int(item.get("associationTypeId", 0)) for item in types]
    valid = {t.type_id for t in association_types(source, target)}
    bad = [i for i in ids if i not in valid]
    if bad or not ids:
        raise HubSpotError(
            400,
            f"Invalid association type(s) {bad or ids} from {source} to {target}; "
            f"valid: {sorted(valid)}",
        )
    return ids


def _require(store: PortalStore, spec: ObjectSpec, record_id: int) -> None:
    """404 unless a live record has this id."""
    rows = store.rows(spec.name, [record_id])
    if rows.height == 0 or bool(rows["_archived"][0]):
        raise HubSpotError(
            404, f"No {spec.singular} with id {record_id}", context={"id": [str(record_id)]}
        )


def associate(
    store: PortalStore, source: str, target: str, from_id: int, to_id: int, type_ids: Sequence[int]
) -> None:
    """Store an association both ways (a contact's primary company is its associatedcompanyid)."""
    store.edges.add(source, target, [(from_id, to_id, t) for t in type_ids])
    store.edges.add(target, source, [(to_id, from_id, REVERSE_TYPES[t]) for t in type_ids])
    if source == "contacts" and target == "companies" and 1 in type_ids:
        store.update("contacts", {from_id: {"associatedcompanyid": float(to_id)}})


def associate_on_create(
    store: PortalStore, source: str, record_id: int, items: Sequence[Mapping[str, Any]]
) -> None:
    """The ``associations`` of a create request: ``[{to: {id}, types: [...]}]``."""
    for item in items:
        types = item.get("types") or []
        first = type_of(source, int(types[0].get("associationTypeId", 0))) if types else None
        if first is None:
            raise HubSpotError(400, f"Invalid association types {types} for {source}")
        target = _spec(first.target)
        to_id = int(item.get("to", {}).get("id", 0))
        _require(store, target, to_id)
        associate(
            store, source, target.name, record_id, to_id, _type_ids(source, target.name, types)
        )


def _with_labels(source: str, target: str, link: Link) -> dict[str, Any]:
    """A v4 ``MultiAssociatedObjectWithLabel``."""
    labels = {t.type_id: t.label for t in association_types(source, target)}
    return {
        "toObjectId": link.to_id,
        "associationTypes": [
            {"category": "HUBSPOT_DEFINED", "typeId": t, "label": labels.get(t)}
            for t in link.type_ids
        ],
    }


def _labels_between(
    source: ObjectSpec, target: ObjectSpec, from_id: int, to_id: int, types: Sequence[int]
) -> dict[str, Any]:
    """A v4 ``LabelsBetweenObjectPair``."""
    labels = {t.type_id: t.label for t in association_types(source.name, target.name)}
    return {
        "fromObjectTypeId": source.type_id,
        "fromObjectId": from_id,
        "toObjectTypeId": target.type_id,
        "toObjectId": to_id,
        "labels": [labels[t] for t in types if labels.get(t)],
    }


class AssociationRoutes:
    """Handlers of /crm/v4/objects/... and /crm/v4/associations/..."""

    def __init__(self, store: PortalStore, faults: FaultPlan) -> None:
        self.store = store
        self.faults = faults

    def routes(self) -> list[Route]:
        """The v4 association routes."""
        one = rf"/crm/v4/objects/{_OBJ}/(?P<id>\d+)/associations"
        batch = rf"/crm/v4/associations/{_OBJ}/{_TO}"
        return [
            Route("GET", rf"{one}/{_TO}", "associations/v4/objects", self.list_page),
            Route(
                "PUT",
                rf"{one}/default/{_TO}/(?P<to_id>\d+)",
                "associations/v4/objects/default",
                self.create_default,
            ),
            Route(
                "PUT", rf"{one}/{_TO}/(?P<to_id>\d+)", "associations/v4/objects/create", self.create
            ),
            Route(
                "DELETE",
                rf"{one}/{_TO}/(?P<to_id>\d+)",
                "associations/v4/objects/archive",
                self.archive,
            ),
            Route("POST", rf"{batch}/batch/read", "associations/v4/batch/read", self.batch_read),
            Route(
                "POST", rf"{batch}/batch/create", "associations/v4/batch/create", self.batch_create
            ),
            Route(
                "POST",
                rf"{batch}/batch/associate/default",
                "associations/v4/batch/default",
                self.batch_default,
            ),
            Route(
                "POST",
                rf"{batch}/batch/archive",
                "associations/v4/batch/archive",
                self.batch_archive,
            ),
            Route("GET", rf"{batch}/labels", "associations/v4/labels", self.labels),
        ]

    def _pair(self, request: Request) -> tuple[ObjectSpec, ObjectSpec]:
        return _spec(request.params["source"]), _spec(request.params["target"])

    def list_page(self, request: Request) -> Response:
        """One record's associated records of one object, 500 a page."""
        source, target = self._pair(request)
        record_id = self.store.resolve(source.name, int(request.params["id"]))
        limit = min(int(request.arg("limit") or MAX_ASSOCIATION_PAGE), MAX_ASSOCIATION_PAGE)
        links = self.store.edges.links(source.name, target.name, record_id)
        start = int(request.arg("after") or 0)
        page = [
            _with_labels(source.name, target.name, link) for link in links[start : start + limit]
        ]
        after = str(start + limit) if start + limit < len(links) else None
        link = link_to(
            request, f"/crm/v4/objects/{source.name}/{record_id}/associations/{target.name}"
        )
        return Response(200, page_body(json.dumps(page), after, link))

    def create(self, request: Request) -> Response:
        """PUT labelled associations between two records (201)."""
        source, target = self._pair(request)
        from_id, to_id = int(request.params["id"]), int(request.params["to_id"])
        body = request.json() or []
        types = _type_ids(source.name, target.name, body if isinstance(body, list) else [])
        _require(self.store, source, from_id)
        _require(self.store, target, to_id)
        associate(self.store, source.name, target.name, from_id, to_id, types)
        return Response(
            201, json.dumps(_labels_between(source, target, from_id, to_id, types)).encode()
        )

    def create_default(self, request: Request) -> Response:
        """PUT the default (unlabeled) association between two records."""
        source, target = self._pair(request)
        from_id, to_id = int(request.params["id"]), int(request.params["to_id"])
        result = self._default(source, target, from_id, to_id)
        now = self.store.clock()
        return batch_response(200, [json.dumps(result)], [], now, now)

    def _default(
        self, source: ObjectSpec, target: ObjectSpec, from_id: int, to_id: int
    ) -> dict[str, Any]:
        """Create the unlabeled association; a ``PublicDefaultAssociation``."""
        unlabeled = [
            t.type_id for t in association_types(source.name, target.name) if t.label is None
        ]
        if not unlabeled:
            raise HubSpotError(400, f"No default association from {source.name} to {target.name}")
        _require(self.store, source, from_id)
        _require(self.store, target, to_id)
        associate(self.store, source.name, target.name, from_id, to_id, unlabeled[:1])
        return {
            "from": {"id": str(from_id)},
            "to": {"id": str(to_id)},
            "associationSpec": {
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": unlabeled[0],
            },
        }

    def archive(self, request: Request) -> Response:
        """DELETE every association between two records (204)."""
        source, target = self._pair(request)
        self._remove(
            source.name, target.name, int(request.params["id"]), [int(request.params["to_id"])]
        )
        return Response(204, b"", content_type="text/plain")

    def _remove(self, source: str, target: str, from_id: int, to_ids: Sequence[int]) -> None:
        for link in self.store.edges.links(source, target, from_id):
            if link.to_id in to_ids:
                self.store.edges.remove(
                    source, target, [(from_id, link.to_id, t) for t in link.type_ids]
                )
                back = [(link.to_id, from_id, REVERSE_TYPES[t]) for t in link.type_ids]
                self.store.edges.remove(target, source, back)

    def batch_read(self, request: Request) -> Response:
        """Associations of up to 1,000 records; ids with none are reported as errors (207)."""
        source, target = self._pair(request)
        started = self.store.clock()
        inputs = json_body(request).get("inputs") or []
        if len(inputs) > MAX_BATCH_READ:
            raise HubSpotError(400, f"Batch input must not exceed {MAX_BATCH_READ} inputs")
        results, empty = [], []
        for item in inputs:
            key = str(item.get("id"))
            links = (
                self.store.edges.links(source.name, target.name, int(key)) if key.isdigit() else []
            )
            if links:
                to = [_with_labels(source.name, target.name, link) for link in links]
                results.append(json.dumps({"from": {"id": key}, "to": to}))
            else:
                empty.append(key)
        errors = [_no_associations(source, target, key) for key in empty]
        return batch_response(200, results, errors, started, self.store.clock())

    def batch_create(self, request: Request) -> Response:
        """Labelled associations between pairs of records (201; failures per input, 207)."""
        source, target = self._pair(request)
        started = self.store.clock()
        results, errors = [], []
        for item in inputs_of(request):
            from_id, to_id = int(item["from"]["id"]), int(item["to"]["id"])
            types = _type_ids(source.name, target.name, item.get("types") or [])
            try:
                self._writable(source, target, from_id, to_id)
            except HubSpotError as error:
                errors.append(
                    record_error(
                        error.category, error.message, {"ids": [str(from_id)]}, error.sub_category
                    )
                )
                continue
            associate(self.store, source.name, target.name, from_id, to_id, types)
            results.append(json.dumps(_labels_between(source, target, from_id, to_id, types)))
        return batch_response(201, results, errors, started, self.store.clock())

    def _writable(self, source: ObjectSpec, target: ObjectSpec, from_id: int, to_id: int) -> None:
        """Raise unless both records exist and the source is not locked."""
        _require(self.store, source, from_id)
        _require(self.store, target, to_id)
        if self.faults.locked(str(from_id)):
            raise locked_error(from_id)

    def batch_default(self, request: Request) -> Response:
        """Default associations between pairs of records."""
        source, target = self._pair(request)
        started = self.store.clock()
        results = [
            json.dumps(
                self._default(source, target, int(item["from"]["id"]), int(item["to"]["id"]))
            )
            for item in inputs_of(request)
        ]
        return batch_response(200, results, [], started, self.store.clock())

    def batch_archive(self, request: Request) -> Response:
        """Remove associations: ``[{from: {id}, to: [{id}, ...]}]`` (204)."""
        source, target = self._pair(request)
        for item in inputs_of(request):
            to_ids = [int(to["id"]) for to in item.get("to") or []]
            self._remove(source.name, target.name, int(item["from"]["id"]), to_ids)
        return Response(204, b"", content_type="text/plain")

    def labels(self, request: Request) -> Response:
        """The association types defined from one object to another."""
        source, target = self._pair(request)
        results = [
            {"category": "HUBSPOT_DEFINED", "typeId": t.type_id, "label": t.label}
            for t in association_types(source.name, target.name)
        ]
        return Response(200, json.dumps({"results": results}).encode())


def _no_associations(source: ObjectSpec, target: ObjectSpec, key: str) -> dict[str, Any]:
    """The error a batch read reports for an id without associations."""
    return record_error(
        "OBJECT_NOT_FOUND",
        f"No {target.singular} is associated with {source.singular} {key}.",
        {"fromObjectId": [key]},
        sub_category="crm.associations.NO_ASSOCIATIONS_FOUND",
    )
