"""CRM objects v3, one route set per object: list, get, create, update, archive and search.

List pages follow the id order with an ``after`` cursor (the next record's id); ``archived=true``
lists the recycle bin instead. At most 100 records a page.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from sandbox.faults import FaultPlan
from sandbox.http import Request, Response, Route
from sandbox.hubspot.associations import associate_on_create
from sandbox.hubspot.errors import HubSpotError, locked_error
from sandbox.hubspot.render import json_list, page_body
from sandbox.hubspot.responses import (
    fragments,
    is_true,
    json_body,
    link_to,
    numeric_id,
    object_pattern,
    query_list,
    requested_names,
    spec_of,
    with_associations,
    with_history,
)
from sandbox.hubspot.schema import OBJECTS, ObjectSpec
from sandbox.hubspot.search import search
from sandbox.hubspot.store import PortalStore
from sandbox.hubspot.writes import check_unique

__all__ = ["MAX_PAGE", "ObjectRoutes"]

MAX_PAGE = 100
DEFAULT_PAGE = 10


class ObjectRoutes:
    """Handlers of /crm/v3/objects/{object}[/{id}|/search]."""

    def __init__(self, store: PortalStore, faults: FaultPlan) -> None:
        self.store = store
        self.faults = faults

    def routes(self) -> list[Route]:
        """The routes of every object in ``OBJECTS``."""
        table = (
            ("GET", "", "", self.list_page),
            ("POST", "", "", self.create),
            ("POST", "/search", "/search", self.search),
            ("GET", r"/(?P<id>[^/]+)", "/{id}", self.get),
            ("PATCH", r"/(?P<id>[^/]+)", "/{id}", self.update),
            ("DELETE", r"/(?P<id>[^/]+)", "/{id}", self.archive),
        )
        return [
            Route(
                method,
                rf"/crm/v3/objects/{object_pattern(spec)}{suffix}",
                f"{spec.name}{name}",
                handler,
            )
            for spec in OBJECTS.values()
            for method, suffix, name, handler in table
        ]

    def list_page(self, request: Request) -> Response:
        """GET a page of records in id order."""
        spec = spec_of(request)
        limit = _limit(request.arg("limit"), MAX_PAGE)
        after = _after(request.arg("after"))
        rows, next_id = _cursor_page(
            self.store.frame(spec.name), after, limit, is_true(request, "archived")
        )
        history = query_list(request, "propertiesWithHistory")
        names = requested_names(self.store, spec, query_list(request, "properties"), history)
        parts = fragments(self.store, spec, rows, names)
        parts = with_associations(
            self.store, spec, rows, parts, query_list(request, "associations")
        )
        parts = with_history(self.store, spec, parts, history, limit)
        link = link_to(request, f"/crm/v3/objects/{spec.name}")
        return Response(
            200, page_body(json_list(parts), None if next_id is None else str(next_id), link)
        )

    def get(self, request: Request) -> Response:
        """GET one record by id (a merged-away id answers with its survivor) or ``idProperty``."""
        spec = spec_of(request)
        rows = self._one(
            spec, request.params["id"], request.arg("idProperty"), is_true(request, "archived")
        )
        history = query_list(request, "propertiesWithHistory")
        names = requested_names(self.store, spec, query_list(request, "properties"), history)
        parts = fragments(self.store, spec, rows, names)
        parts = with_associations(
            self.store, spec, rows, parts, query_list(request, "associations")
        )
        parts = with_history(self.store, spec, parts, history, 1)
        return Response(200, parts[0].encode())

    def _one(
        self, spec: ObjectSpec, key: str, id_property: str | None, archived: bool
    ) -> pl.DataFrame:
        """The record a path names, or 404."""
        if id_property and id_property != "hs_object_id":
            found = self.store.find(spec.name, id_property, [key])
            record_id = found.get(key.lower())
        else:
            record_id = self.store.resolve(spec.name, numeric_id(key))
        rows = self.store.rows(spec.name, [] if record_id is None else [record_id])
        if rows.height == 0 or bool(rows["_archived"][0]) != archived:
            raise HubSpotError(
                404, "Object not found.  objectId are usually numeric.", context={"id": [key]}
            )
        return rows

    def create(self, request: Request) -> Response:
        """POST one record (201), with optional associations."""
        spec = spec_of(request)
        body = json_body(request)
        values = self.store.typed(spec.name, body.get("properties") or {})
        check_unique(self.store, spec, [values])
        (record_id,) = self.store.insert(spec.name, [values])
        associate_on_create(self.store, spec.name, record_id, body.get("associations") or [])
        names = requested_names(self.store, spec, list(values))
        rows = self.store.rows(spec.name, [record_id])
        return Response(201, fragments(self.store, spec, rows, names)[0].encode())

    def update(self, request: Request) -> Response:
        """PATCH one record's properties."""
        spec = spec_of(request)
        rows = self._one(spec, request.params["id"], request.arg("idProperty"), archived=False)
        record_id = int(rows["_id"][0])
        values = self.store.typed(spec.name, json_body(request).get("properties") or {})
        if self.faults.locked(str(record_id)):
            raise locked_error(record_id)
        check_unique(self.store, spec, [values], [record_id])
        self.store.update(spec.name, {record_id: values})
        names = requested_names(self.store, spec, list(values))
        return Response(
            200,
            fragments(self.store, spec, self.store.rows(spec.name, [record_id]), names)[0].encode(),
        )

    def archive(self, request: Request) -> Response:
        """DELETE: move a record to the recycle bin (204; archiving twice is fine)."""
        spec = spec_of(request)
        record_id = self.store.resolve(spec.name, numeric_id(request.params["id"]))
        self.store.archive(spec.name, [record_id])
        return Response(204, b"", content_type="text/plain")

    def search(self, request: Request) -> Response:
        """POST a search: filter groups, one sort, offset paging up to 10,000 results."""
        spec = spec_of(request)
        page = search(
            self.store.frame(spec.name), spec, self.store.properties[spec.name], json_body(request)
        )
        names = requested_names(self.store, spec, page.names)
        parts = fragments(self.store, spec, page.rows, names)
        link = link_to(request, f"/crm/v3/objects/{spec.name}/search")
        return Response(200, page_body(json_list(parts), page.after, link, total=page.total))


def _limit(text: str | None, most: int) -> int:
    """A page size argument, at most ``most``."""
    try:
        limit = int(text) if text else DEFAULT_PAGE
    except ValueError as error:
        raise HubSpotError(400, f"Invalid limit: {text!r}") from error
    if not 0 < limit <= most:
        raise HubSpotError(400, f"limit must be between 1 and {most}, got {limit}")
    return limit


def _after(text: str | None) -> int:
    """A list cursor: the id to start from."""
    if text is None or text == "":
        return 0
    if not text.isdigit():
        raise HubSpotError(400, f"Invalid after: {text!r}; use paging.next.after of the last page")
    return int(text)


def _cursor_page(
    frame: pl.DataFrame, after: int, limit: int, archived: bool
) -> tuple[pl.DataFrame, int | None]:
    """Up to ``limit`` records with id >= ``after`` and the archived flag asked, and the next id."""
    start = int(np.searchsorted(frame["_id"].to_numpy(), after, side="left"))
    window = limit + 1
    while True:
        chunk = frame.slice(start, window).filter(pl.col("_archived") == archived)
        if chunk.height > limit or start + window >= frame.height:
            break
        window *= 4
    next_id = int(chunk["_id"][limit]) if chunk.height > limit else None
    return chunk.head(limit), next_id
