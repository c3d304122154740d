"""Batch endpoints of CRM objects v3: read, create, update, upsert, archive (100 inputs at most).

Reads and updates answer 200, or 207 Multi-Status with an ``errors`` array when some inputs
failed (missing ids: ``OBJECT_NOT_FOUND``); creates answer 201. HubSpot has no row locks, so a
record the fault plan locks fails alone with a retriable ``CONFLICT`` (sub-category
``CONCURRENT_MODIFICATION``): the other inputs are written. Contacts keep one email each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl

from sandbox.faults import FaultPlan
from sandbox.http import Request, Response, Route
from sandbox.hubspot.associations import associate_on_create
from sandbox.hubspot.errors import HubSpotError, lock_error, record_error
from sandbox.hubspot.responses import (
    batch_response,
    fragments,
    inputs_of,
    is_true,
    json_body,
    object_pattern,
    requested_names,
    spec_of,
    with_history,
)
from sandbox.hubspot.schema import OBJECTS, ObjectSpec
from sandbox.hubspot.store import PortalStore

__all__ = ["BatchRoutes", "check_unique"]


def check_unique(
    store: PortalStore,
    spec: ObjectSpec,
    records: Sequence[Mapping[str, Any]],
    own: Sequence[int] = (),
) -> None:
    """Refuse (409) a write that gives a unique property a value another record holds."""
    unique = [name for name, prop in store.properties[spec.name].items() if prop.unique]
    for name in unique:
        values = [str(r[name]) for r in records if r.get(name) is not None]
        if not values:
            continue
        lowered = [v.lower() for v in values]
        taken = {v: i for v, i in store.find(spec.name, name, values).items() if i not in own}
        if taken or len(set(lowered)) < len(lowered):
            value, existing = next(iter(taken.items()), (lowered[0], 0))
            raise HubSpotError(
                409,
                f"{spec.singular.title()} already exists. Existing ID: {existing}",
                context={name: [value]},
            )


class BatchRoutes:
    """Handlers of /crm/v3/objects/{object}/batch/{action}."""

    def __init__(self, store: PortalStore, faults: FaultPlan) -> None:
        self.store = store
        self.faults = faults

    def routes(self) -> list[Route]:
        """Batch routes of every object."""
        actions = {
            "read": self.read,
            "create": self.create,
            "update": self.update,
            "upsert": self.upsert,
            "archive": self.archive,
        }
        return [
            Route(
                "POST",
                rf"/crm/v3/objects/{object_pattern(spec)}/batch/{action}",
                f"{spec.name}/batch/{action}",
                handler,
            )
            for spec in OBJECTS.values()
            for action, handler in actions.items()
        ]

    def read(self, request: Request) -> Response:
        """Records by id (or ``idProperty``); the ids found nowhere are reported together."""
        spec, started = spec_of(request), self.store.clock()
        body = json_body(request)
        keys = [str(item.get("id")) for item in inputs_of(request)]
        rows, missing = self._existing(
            spec, keys, body.get("idProperty"), is_true(request, "archived")
        )
        history = body.get("propertiesWithHistory") or []
        names = requested_names(self.store, spec, body.get("properties") or [], history)
        errors = [_not_found(spec, missing)] if missing else []
        parts = fragments(self.store, spec, rows, names)
        parts = with_history(self.store, spec, parts, history, len(keys))
        return batch_response(200, parts, errors, started, self.store.clock())

    def _existing(
        self, spec: ObjectSpec, keys: Sequence[str], id_property: str | None, archived: bool = False
    ) -> tuple[pl.DataFrame, list[str]]:
        """The records the keys name (merged ids resolved), and the keys that name none."""
        if id_property and id_property != "hs_object_id":
            found = self.store.find(spec.name, id_property, keys)
            pairs = [(key, found.get(key.lower())) for key in keys]
        else:
            pairs = [
                (k, self.store.resolve(spec.name, int(k)) if k.isdigit() else None) for k in keys
            ]
        rows = self.store.rows(spec.name, [i for _, i in pairs if i is not None])
        rows = rows.filter(pl.col("_archived") == archived).unique("_id", maintain_order=True)
        live = set(rows["_id"].to_list())
        return rows, [key for key, record_id in pairs if record_id not in live]

    def create(self, request: Request) -> Response:
        """New records (201); any invalid input fails the whole batch, as HubSpot's does."""
        spec, started = spec_of(request), self.store.clock()
        inputs = inputs_of(request)
        records = [self.store.typed(spec.name, item.get("properties") or {}) for item in inputs]
        check_unique(self.store, spec, records)
        ids = self.store.insert(spec.name, records)
        for record_id, item in zip(ids, inputs, strict=True):
            associate_on_create(self.store, spec.name, record_id, item.get("associations") or [])
        names = requested_names(self.store, spec, _written(records))
        parts = fragments(self.store, spec, self.store.rows(spec.name, ids), names)
        return batch_response(201, parts, [], started, self.store.clock())

    def update(self, request: Request) -> Response:
        """Property changes by id; missing and locked records fail alone (207)."""
        spec, started = spec_of(request), self.store.clock()
        inputs = inputs_of(request)
        changes = {
            str(item.get("id")): self.store.typed(spec.name, item.get("properties") or {})
            for item in inputs
        }
        rows, missing = self._existing(spec, list(changes), None)
        by_id = {int(i): changes[str(i)] for i in rows["_id"].to_list() if str(i) in changes}
        writable, errors = self._unlocked(list(by_id))
        updates = {i: by_id[i] for i in writable}
        check_unique(self.store, spec, list(updates.values()), list(updates))
        self.store.update(spec.name, updates)
        errors += [_not_found(spec, missing)] if missing else []
        names = requested_names(self.store, spec, _written(updates.values()))
        parts = fragments(self.store, spec, self.store.rows(spec.name, list(updates)), names)
        return batch_response(200, parts, errors, started, self.store.clock())

    def _unlocked(self, ids: Sequence[int]) -> tuple[list[int], list[dict[str, Any]]]:
        """The ids that may be written now, and an error for each locked one."""
        locked = [i for i in ids if self.faults.locked(str(i))]
        return [i for i in ids if i not in locked], [lock_error(i) for i in locked]

    def upsert(self, request: Request) -> Response:
        """Create or update by a unique property (``idProperty``); results say which was ``new``."""
        spec, started = spec_of(request), self.store.clock()
        inputs = inputs_of(request)
        id_property = _unique_property(self.store, spec, inputs)
        keys = [str(item.get("id")) for item in inputs]
        found = self.store.find(spec.name, id_property, keys)
        records = [self.store.typed(spec.name, item.get("properties") or {}) for item in inputs]
        pairs = list(zip(keys, records, strict=True))
        existing = {found[k.lower()]: r for k, r in pairs if k.lower() in found}
        fresh = [{**r, id_property: k} for k, r in pairs if k.lower() not in found]
        writable, errors = self._unlocked(list(existing))
        check_unique(self.store, spec, [existing[i] for i in writable], writable)
        self.store.update(spec.name, {i: existing[i] for i in writable})
        created = self.store.insert(spec.name, fresh)
        names = requested_names(self.store, spec, _written(records))
        parts = [
            *self._flagged(spec, writable, names, False),
            *self._flagged(spec, created, names, True),
        ]
        return batch_response(200, parts, errors, started, self.store.clock())

    def _flagged(
        self, spec: ObjectSpec, ids: Sequence[int], names: Sequence[str], new: bool
    ) -> list[str]:
        """Upsert results: records with their ``new`` flag."""
        flag = ',"new":true}' if new else ',"new":false}'
        return [
            p[:-1] + flag
            for p in fragments(self.store, spec, self.store.rows(spec.name, ids), names)
        ]

    def archive(self, request: Request) -> Response:
        """Move records to the recycle bin (204)."""
        spec = spec_of(request)
        keys = [str(item.get("id")) for item in inputs_of(request)]
        rows, _ = self._existing(spec, keys, None)
        self.store.archive(spec.name, rows["_id"].to_list())
        return Response(204, b"", content_type="text/plain")


def _written(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The property names a write set, sorted."""
    return sorted({name for record in records for name in record})


def _unique_property(
    store: PortalStore, spec: ObjectSpec, inputs: Sequence[Mapping[str, Any]]
) -> str:
    """The ``idProperty`` of an upsert: a unique property of the object (e.g. contacts' email)."""
    id_property = (inputs[0].get("idProperty") if inputs else None) or "email"
    prop = store.properties[spec.name].get(id_property)
    if prop is None or not prop.unique:
        raise HubSpotError(
            400, f"idProperty {id_property!r} is not a unique property of {spec.name}"
        )
    return id_property


def _not_found(spec: ObjectSpec, keys: Sequence[str]) -> dict[str, Any]:
    """The one error HubSpot reports for all the ids of a batch it could not find."""
    return record_error(
        "OBJECT_NOT_FOUND",
        f"Could not get some {spec.singular.upper()} objects, they may be deleted or not exist. "
        "Check that ids are valid.",
        {"ids": list(keys)},
    )
