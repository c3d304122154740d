"""Record merges: ``POST /crm/v3/objects/{object}/merge`` for companies, contacts and deals.

    {"primaryObjectId": "20000000001", "objectIdToMerge": "20000000002"}  ->  200, the new record

HubSpot no longer keeps the primary's id: a merge creates a new record with a new id, and both
original ids answer with it (a GET of either returns the new record). Its current property values
are the primary's; we take the other record's value only where the primary has none. The new
record lists both ids, and any merged into them before, in ``hs_merged_object_ids``; it is
modified at the merge time. The associations of both move to it, except that a second primary
company or parent company from the merged-away record is dropped. Records that named an original
as their primary or parent company now name the new record, and are modified at the same time.
https://developers.hubspot.com/changelog/updated-merge-functionality-for-contacts-and-companies
https://developers.hubspot.com/changelog/announcement-deals-now-support-merging (deals always did)

HubSpot does not document its refusals. We answer as its other endpoints do: merging a record into
itself is a 400 ``VALIDATION_ERROR``; an id of no live record is a 404 ``OBJECT_NOT_FOUND``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from sandbox.http import Request, Response, Route
from sandbox.hubspot.errors import HubSpotError
from sandbox.hubspot.responses import (
    fragments,
    json_body,
    object_pattern,
    requested_names,
    spec_of,
)
from sandbox.hubspot.schema import ASSOCIATION_TYPES, OBJECTS, REVERSE_TYPES, ObjectSpec
from sandbox.hubspot.store import PortalStore

__all__ = ["MERGEABLE", "MergeRoutes", "merge_records"]

MERGEABLE = ("companies", "contacts", "deals")
MERGED_IDS = "hs_merged_object_ids"
# a record has at most one link of these types: primary company (contacts, deals), parent company
_SINGLE_TYPES = frozenset({1, 5, 14})
# (object, property, object whose id the property holds)
_ID_PROPERTIES = (
    ("contacts", "associatedcompanyid", "companies"),
    ("companies", "hs_parent_company_id", "companies"),
)


class MergeRoutes:
    """Handlers of /crm/v3/objects/{object}/merge."""

    def __init__(self, store: PortalStore) -> None:
        self.store = store

    def routes(self) -> list[Route]:
        """One merge route per object HubSpot merges."""
        return [
            Route(
                "POST",
                rf"/crm/v3/objects/{object_pattern(OBJECTS[name])}/merge",
                f"{name}/merge",
                self.merge,
            )
            for name in MERGEABLE
        ]

    def merge(self, request: Request) -> Response:
        """Merge ``objectIdToMerge`` into ``primaryObjectId``; 200 with the new record."""
        spec = spec_of(request)
        body = json_body(request)
        primary = self._live(spec, body, "primaryObjectId")
        other = self._live(spec, body, "objectIdToMerge")
        if primary == other:
            raise HubSpotError(
                400,
                f"Cannot merge {spec.singular} {primary} into itself",
                context={"objectIdToMerge": [str(body["objectIdToMerge"])]},
            )
        new_id = merge_records(self.store, spec, primary, other)
        rows = self.store.rows(spec.name, [new_id])
        names = requested_names(self.store, spec, [])
        return Response(200, fragments(self.store, spec, rows, names)[0].encode())

    def _live(self, spec: ObjectSpec, body: Mapping[str, Any], key: str) -> int:
        """The live record a body field names (a merged-away id names its survivor), or 404."""
        text = str(body.get(key) or "")
        if not text:
            raise HubSpotError(400, f"Invalid input JSON: {key} is required", context={key: []})
        record_id = self.store.resolve(spec.name, int(text)) if text.isdigit() else None
        rows = self.store.rows(spec.name, [] if record_id is None else [record_id])
        if record_id is None or rows.height == 0 or bool(rows["_archived"][0]):
            raise HubSpotError(
                404, f"No {spec.singular} with id {text} to merge", context={key: [text]}
            )
        return record_id


def merge_records(store: PortalStore, spec: ObjectSpec, primary: int, other: int) -> int:
    """Merge two live records of one object into a new record; its id."""
    first, second = store.rows(spec.name, [primary, other]).to_dicts()
    values = {name: second[name] if value is None else value for name, value in first.items()}
    if MERGED_IDS in values:
        values[MERGED_IDS] = _merged_ids([first, second], [primary, other])
    _drop_second_single_links(store, spec.name, primary, other)
    new_id = store.replace(spec.name, [primary, other], values)
    _repoint(store, spec.name, [primary, other], new_id)
    return new_id


def _merged_ids(records: Sequence[Mapping[str, Any]], ids: Sequence[int]) -> str:
    """The ``;``-joined ids merged into the new record: the two and those merged before."""
    earlier = [part for r in records for part in str(r.get(MERGED_IDS) or "").split(";") if part]
    return ";".join(sorted({*earlier, *map(str, ids)}, key=int))


def _drop_second_single_links(
    store: PortalStore, object_name: str, primary: int, other: int
) -> None:
    """Drop the other record's primary or parent company where the primary has one already."""
    for kind in ASSOCIATION_TYPES:
        if kind.source != object_name or kind.type_id not in _SINGLE_TYPES:
            continue
        extra = _linked(store, kind.source, kind.target, kind.type_id, other)
        if extra and _linked(store, kind.source, kind.target, kind.type_id, primary):
            back = REVERSE_TYPES[kind.type_id]
            store.edges.remove(kind.source, kind.target, [(other, i, kind.type_id) for i in extra])
            store.edges.remove(kind.target, kind.source, [(i, other, back) for i in extra])


def _linked(store: PortalStore, source: str, target: str, type_id: int, from_id: int) -> list[int]:
    """The ids one record links to with one association type."""
    return [
        link.to_id
        for link in store.edges.links(source, target, from_id)
        if type_id in link.type_ids
    ]


def _repoint(store: PortalStore, object_name: str, old: Sequence[int], new_id: int) -> None:
    """Records whose id properties named an original name the new record (itself: none)."""
    for source, name, target in _ID_PROPERTIES:
        if target != object_name:
            continue
        frame = store.frame(source)
        hits = frame.filter(pl.col(name).is_in([float(i) for i in old]))["_id"].to_list()
        store.update(source, {i: {name: None if i == new_id else float(new_id)} for i in hits})
