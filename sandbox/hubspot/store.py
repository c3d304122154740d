"""The portal's state: records per object, associations, property definitions, id counters.

Records live in copy-on-write ``Table``s (readers page through a snapshot while writers swap in
new frames); the property registry grows when the connector creates its custom properties. A merge
replaces two records by a new one and points their ids (and their associations) at it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from sandbox.hubspot.analytics import build_history, current_values
from sandbox.hubspot.edges import Edges
from sandbox.hubspot.errors import HubSpotError
from sandbox.hubspot.ids import ID_BASES, hubspot_id
from sandbox.hubspot.mapping import build_edges, build_records
from sandbox.hubspot.pipelines import PIPELINES, Pipeline, staged
from sandbox.hubspot.schema import GROUPS, OBJECTS, PROPERTIES, PropertySpec
from sandbox.hubspot.values import column_dtype, parse_value
from sandbox.org import Org
from sandbox.tables import Table, TableSpec

__all__ = ["Clock", "PortalStore", "SavedPortal"]

Clock = Callable[[], datetime]


class PortalStore:
    """Everything the HubSpot dialect serves, over one generated org."""

    def __init__(
        self,
        org: Org,
        clock: Clock,
        country_spelling: str = "code",
        pipeline: Pipeline | None = None,
        convention: str = "a",
    ) -> None:
        records, merges = build_records(org, country_spelling)
        self.analytics = build_history(
            org, merges, convention
        )  # contacts' analytics property history
        records["contacts"] = _with_analytics(records["contacts"], self.analytics)
        records["deals"] = staged(records["deals"], pipeline or PIPELINES["default"][1])
        self.clock = clock
        self.tables = {
            name: _Records(
                TableSpec(name, "hs_object_id", OBJECTS[name].modified, "_archived"), frame
            )
            for name, frame in records.items()
        }
        self.edges = Edges(build_edges(org, merges))
        self.properties: dict[str, dict[str, PropertySpec]] = {
            name: {spec.name: spec for spec in specs} for name, specs in PROPERTIES.items()
        }
        self.groups: dict[str, dict[str, str]] = {
            name: dict(groups) for name, groups in GROUPS.items()
        }
        self.merges = merges  # person_id -> survivor_id
        self.redirects = {"contacts": _redirects(merges)}
        self._next_id = {
            name: _next_id(name, frame, self.redirects.get(name, {}))
            for name, frame in records.items()
        }
        self._lock = threading.Lock()

    def frame(self, object_name: str) -> pl.DataFrame:
        """The object's current records (a snapshot)."""
        return self.tables[object_name].frame

    def resolve(self, object_name: str, record_id: int) -> int:
        """The id a record answers to: a merged-away id names its survivor."""
        return self.redirects.get(object_name, {}).get(record_id, record_id)

    def rows(self, object_name: str, ids: Sequence[int]) -> pl.DataFrame:
        """Records by numeric id, in the order asked (missing ids left out)."""
        return self.tables[object_name].get([str(i) for i in ids])

    def find(self, object_name: str, name: str, values: Sequence[str]) -> dict[str, int]:
        """Live records whose ``name`` equals one of ``values`` (case-insensitive): value -> id."""
        wanted = [v.lower() for v in values if v]
        frame = self.frame(object_name).filter(~pl.col("_archived"))
        column = "_id" if name == "hs_object_id" else name
        hits = frame.select(key=pl.col(column).cast(pl.String).str.to_lowercase(), id="_id").filter(
            pl.col("key").is_in(wanted)
        )
        return dict(zip(hits["key"].to_list(), hits["id"].to_list(), strict=True))

    def typed(self, object_name: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Client property strings as stored values; unknown or read-only properties refused."""
        specs = self.properties[object_name]
        unknown = [name for name in values if name not in specs]
        if unknown:
            raise _invalid(unknown, "PROPERTY_DOESNT_EXIST", "does not exist")
        read_only = [name for name in values if specs[name].read_only]
        if read_only:
            raise _invalid(read_only, "READ_ONLY_VALUE", "is a read only property")
        return {name: parse_value(specs[name], value) for name, value in values.items()}

    def insert(self, object_name: str, records: Sequence[Mapping[str, Any]]) -> list[int]:
        """Create records from typed values; their new ids, in order."""
        now = self.clock()
        spec = OBJECTS[object_name]
        ids = self._new_ids(object_name, len(records))
        rows = [
            {
                **values,
                "_id": record_id,
                "hs_object_id": str(record_id),
                "_archived": False,
                spec.created: now,
            }
            for record_id, values in zip(ids, records, strict=True)
        ]
        self.tables[object_name].insert(rows, now)
        return ids

    def _new_ids(self, object_name: str, count: int) -> list[int]:
        """The next ``count`` ids of an object (always above every id it has had)."""
        with self._lock:
            start = self._next_id[object_name]
            self._next_id[object_name] = start + count
        return list(range(start, start + count))

    def replace(self, object_name: str, old: Sequence[int], values: Mapping[str, Any]) -> int:
        """Records ``old`` give way to one new record of typed ``values`` (a merge): the old ids,
        and any merged into them before, answer with it and their associations are its. Its id."""
        (new_id,) = self._new_ids(object_name, 1)
        record = {
            **values,
            "_id": new_id,
            "hs_object_id": str(new_id),
            "_archived": False,
            "_archived_at": None,
        }
        self.tables[object_name].replace([str(i) for i in old], record, self.clock())
        with self._lock:
            earlier = self.redirects.get(object_name, {})
            moved = {key: new_id if to in old else to for key, to in earlier.items()}
            self.redirects = {**self.redirects, object_name: moved | dict.fromkeys(old, new_id)}
        self.edges.rename(object_name, dict.fromkeys(old, new_id))
        return new_id

    def update(self, object_name: str, changes: Mapping[int, Mapping[str, Any]]) -> None:
        """Set typed values on existing records and stamp them modified."""
        self.tables[object_name].update(
            {str(record_id): values for record_id, values in changes.items()}, self.clock()
        )

    def archive(self, object_name: str, ids: Sequence[int]) -> None:
        """Move live records to the recycle bin (already archived ones stay as they are)."""
        live = self.rows(object_name, ids).filter(~pl.col("_archived"))["_id"].to_list()
        now = self.clock()
        self.update(object_name, {i: {"_archived": True, "_archived_at": now} for i in live})

    def add_property(self, object_name: str, spec: PropertySpec) -> None:
        """Register a custom property and give its object an empty column."""
        with self._lock:
            self.properties[object_name] = {**self.properties[object_name], spec.name: spec}
        self.tables[object_name].add_column(spec.name, column_dtype(spec.type))

    def counters(self) -> dict[str, int]:
        """The id the next created record of each object gets."""
        with self._lock:
            return dict(self._next_id)

    def restore(self, saved: SavedPortal) -> None:
        """Take back what was written to the portal before the sandbox restarted."""
        for name, frame in saved.frames.items():
            self.tables[name].restore(frame)
        self.edges.restore(saved.edges)
        with self._lock:
            self.properties = {name: dict(specs) for name, specs in saved.properties.items()}
            self.groups = {name: dict(groups) for name, groups in saved.groups.items()}
            self.redirects = {name: dict(moved) for name, moved in saved.redirects.items()}
            self._next_id |= saved.counters


@dataclass(frozen=True)
class SavedPortal:
    """What `PortalStore.restore` takes back: changed records and associations, the property
    registry and groups, merged-away ids and the id counters."""

    frames: Mapping[str, pl.DataFrame]
    edges: Mapping[tuple[str, str], pl.DataFrame]
    properties: Mapping[str, Mapping[str, PropertySpec]]
    groups: Mapping[str, Mapping[str, str]]
    redirects: Mapping[str, Mapping[int, int]]
    counters: Mapping[str, int]


class _Records(Table):
    """An object's records; a merge swaps two of them for a new one in a single step."""

    def replace(self, old: Sequence[str], record: Mapping[str, Any], now: datetime) -> None:
        """Drop the records ``old`` and append ``record`` (its id above all others), stamped."""
        with self._lock:
            frame = self._merged()
            added = pl.DataFrame([{**record, self.spec.modified: now}], schema=frame.schema)
            kept = frame.filter(~pl.col(self.spec.key).is_in(list(old)))
            self._replace(pl.concat([kept, added]))


def _invalid(names: Sequence[str], code: str, reason: str) -> HubSpotError:
    """The 400 HubSpot answers for properties it will not write."""
    return HubSpotError(
        400,
        "Property values were not valid: "
        + "; ".join(f'Property "{name}" {reason}' for name in names),
        errors=[
            {
                "message": f'Property "{name}" {reason}',
                "code": code,
                "context": {"propertyName": [name]},
            }
            for name in names
        ],
    )


def _with_analytics(contacts: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """Contacts whose analytics properties hold the newest value of their history."""
    current = current_values(history).with_columns(pl.col("_id").cast(pl.UInt64))
    names = [name for name in current.columns if name != "_id"]
    joined = contacts.drop(names).join(current, on="_id", how="left", maintain_order="left")
    return joined.select(contacts.columns).cast(dict(contacts.schema))


def _redirects(merges: pl.DataFrame) -> dict[int, int]:
    """Merged-away contact id -> surviving contact id."""
    moved = merges.filter(pl.col("person_id") != pl.col("survivor_id")).select(
        hubspot_id("contacts", "person_id").alias("from"),
        hubspot_id("contacts", "survivor_id").alias("to"),
    )
    return dict(zip(moved["from"].to_list(), moved["to"].to_list(), strict=True))


def _next_id(object_name: str, frame: pl.DataFrame, taken: Mapping[int, int]) -> int:
    """The id the next created record of an object gets (never a merged-away one)."""
    top = max([int(frame["_id"].max() or 0), *taken, ID_BASES[object_name]])
    return top + 1
