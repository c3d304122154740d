"""The HubSpot sandbox's state as `sandbox.persistence` keeps it: every object's records, the
associations, the property registry and groups (set-up's custom properties among them),
merged-away ids and the id counters. Not kept, as they are derived from the org and never
written through the API: the org's own events, email events, contacts' analytics history, deal
pipelines. Events added through the sandbox's admin route (`sandbox.admin`) are kept."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import polars as pl

from sandbox.hubspot.dialect import HubSpotDialect
from sandbox.hubspot.schema import PropertySpec
from sandbox.hubspot.store import SavedPortal
from sandbox.persistence import Part, Snapshot

__all__ = ["rendering", "restore", "snapshot"]

_RECORDS = "records/"
_ASSOCIATIONS = "associations/"
_ADDED_EVENTS = "events/added"


def snapshot(dialect: HubSpotDialect) -> Snapshot:
    """The portal's records, associations and registries as they stand."""
    store = dialect.store
    parts = {_RECORDS + name: Part.of(table.frame) for name, table in store.tables.items()}
    for (source, target), (token, read) in store.edges.pairs().items():
        parts[f"{_ASSOCIATIONS}{source}/{target}"] = Part(token, read)
    parts[_ADDED_EVENTS] = Part.of(dialect.events.added)
    meta = {
        "properties": {
            name: [asdict(spec) for spec in specs.values()]
            for name, specs in store.properties.items()
        },
        "groups": {name: dict(groups) for name, groups in store.groups.items()},
        "redirects": {
            name: sorted([old, new] for old, new in moved.items())
            for name, moved in store.redirects.items()
        },
        "counters": store.counters(),
    }
    return Snapshot(parts, meta)


def rendering(dialect: HubSpotDialect) -> dict[str, Any]:
    """The options the portal's records were rendered with (country spelling, deal pipeline,
    convention): saved records only fit a portal rendered the same way."""
    return dict(dialect.rendering)


def restore(
    dialect: HubSpotDialect, frames: Mapping[str, pl.DataFrame], meta: Mapping[str, Any]
) -> None:
    """Take back saved records, associations, registries and added events."""
    if _ADDED_EVENTS in frames:
        dialect.events.add(frames[_ADDED_EVENTS])
    records = {k.removeprefix(_RECORDS): f for k, f in frames.items() if k.startswith(_RECORDS)}
    edges = {_pair(k): f for k, f in frames.items() if k.startswith(_ASSOCIATIONS)}
    dialect.store.restore(
        SavedPortal(
            frames=records,
            edges=edges,
            properties={
                name: {spec["name"]: _property(spec) for spec in specs}
                for name, specs in meta["properties"].items()
            },
            groups=meta["groups"],
            redirects={
                name: {old: new for old, new in moved} for name, moved in meta["redirects"].items()
            },
            counters=meta["counters"],
        )
    )


def _property(values: Mapping[str, Any]) -> PropertySpec:
    """A property definition from its saved attributes (options as (value, label) pairs)."""
    options = tuple((value, label) for value, label in values["options"])
    return PropertySpec(**{**values, "options": options})


def _pair(key: str) -> tuple[str, str]:
    """``associations/contacts/companies`` -> ("contacts", "companies")."""
    source, target = key.removeprefix(_ASSOCIATIONS).split("/")
    return source, target
