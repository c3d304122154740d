"""Merging Accounts, Contacts or Leads as the SOAP API's ``merge()`` does.

A merge keeps the master record and deletes up to two others of the same object: each goes to
the recycle bin with ``IsDeleted`` true and ``MasterRecordId`` naming the master, visible only
through ``queryAll``. Every live record whose lookup named a merged record (a Contact's or an
Opportunity's AccountId, an activity's WhatId / WhoId / AccountId, a child Account's ParentId,
a campaign member's LeadId / ContactId) now names the master. The master, the merged records and
the moved ones get a new SystemModstamp.
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_merge.htm
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from sandbox.salesforce.catalog import Catalog
from sandbox.salesforce.errors import SalesforceError
from sandbox.salesforce.ids import normalize_id
from sandbox.salesforce.schema import SObject
from sandbox.salesforce.store import Records

__all__ = ["MASTER_RECORD", "MAX_MERGED", "MERGEABLE", "MergeResult", "merge_records"]

MERGEABLE = ("Account", "Contact", "Lead")
MAX_MERGED = 2  # master + 2: Salesforce merges at most three records per request
MASTER_RECORD = "MasterRecordId"


@dataclass(frozen=True)
class MergeResult:
    """What a merge did, as the SOAP ``MergeResult`` reports it."""

    id: str  # the master
    merged_record_ids: tuple[str, ...]
    updated_related_ids: tuple[str, ...]

    def as_result(self) -> dict[str, Any]:
        """The result in the API's shape."""
        return {
            "id": self.id,
            "success": True,
            "errors": [],
            "mergedRecordIds": list(self.merged_record_ids),
            "updatedRelatedIds": list(self.updated_related_ids),
        }


def merge_records(
    catalog: Catalog,
    records: Records,
    now: datetime,
    object_name: str,
    master: str,
    merged: Sequence[str],
) -> MergeResult:
    """Merge ``merged`` into ``master`` (call with writes held off); refusals raise."""
    sobject = _mergeable(catalog, object_name)
    master_id, merged_ids = _request_ids(sobject, master, merged)
    rows = records.rows(sobject.name, [master_id, *merged_ids])
    for record_id in (master_id, *merged_ids):
        _check_live(rows.get(record_id))
    _check_no_cycle(sobject, rows[master_id], merged_ids)
    moved = _reparent(catalog, records, sobject.name, master_id, merged_ids, now)
    gone = {"IsDeleted": True, MASTER_RECORD: master_id, "SystemModstamp": now}
    changes = {master_id: {"SystemModstamp": now}, **dict.fromkeys(merged_ids, gone)}
    records.table(sobject.name).update(changes, now)
    return MergeResult(master_id, merged_ids, moved)


def _mergeable(catalog: Catalog, name: str) -> SObject:
    sobject = catalog.object(name)
    if sobject is None or sobject.name not in MERGEABLE:
        raise SalesforceError("INVALID_TYPE_FOR_OPERATION", f"entity type cannot be merged: {name}")
    return sobject


def _request_ids(
    sobject: SObject, master: str, merged: Sequence[str]
) -> tuple[str, tuple[str, ...]]:
    """The 18-character ids of a well-formed request: 1-2 distinct others of the object."""
    if not merged:
        raise SalesforceError(
            "REQUIRED_FIELD_MISSING", "A merge request needs at least one record to merge"
        )
    if len(merged) > MAX_MERGED:
        raise SalesforceError(
            "LIMIT_EXCEEDED",
            f"A single merge request can merge at most {MAX_MERGED} records into the master "
            f"record, got {len(merged)}",
        )
    master_id, *merged_ids = (_own_id(sobject, value) for value in (master, *merged))
    if master_id in merged_ids:
        raise SalesforceError("INVALID_ID_FIELD", "Cannot merge a record with itself")
    if len(set(merged_ids)) < len(merged_ids):
        raise SalesforceError("INVALID_ID_FIELD", "A record appears twice in the merge request")
    return master_id, tuple(merged_ids)


def _own_id(sobject: SObject, value: str) -> str:
    """An id of ``sobject``, whichever of its forms, else MALFORMED_ID."""
    record_id = normalize_id(value)
    if record_id is None or record_id[:3] != sobject.key_prefix:
        raise SalesforceError("MALFORMED_ID", f"malformed id {value}")
    return record_id


def _check_live(row: Mapping[str, Any] | None) -> None:
    if row is None:
        raise SalesforceError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
    if row.get("IsDeleted"):
        raise SalesforceError("ENTITY_IS_DELETED", "entity is deleted")


def _check_no_cycle(sobject: SObject, master: Mapping[str, Any], merged_ids: Sequence[str]) -> None:
    """The master may not look up a merged record of its own object (its parent account):
    moving that lookup to the master would make the master its own parent."""
    for f in _self_lookups(sobject):
        if master.get(f) in merged_ids:
            raise SalesforceError(
                "CIRCULAR_DEPENDENCY",
                f"Merging would make the master record its own {f}",
                (f,),
            )


def _self_lookups(sobject: SObject) -> list[str]:
    return [
        f.name
        for f in sobject.fields
        if f.type == "reference" and sobject.name in f.reference_to and f.name != MASTER_RECORD
    ]


def _related(catalog: Catalog, name: str) -> dict[str, list[str]]:
    """Object -> its lookup fields that can name a record of ``name`` (what a merge moves)."""
    related: dict[str, list[str]] = {}
    for obj in catalog.objects():
        for f in obj.fields:
            if f.type == "reference" and name in f.reference_to and f.name != MASTER_RECORD:
                related.setdefault(obj.name, []).append(f.name)
    return related


def _reparent(
    catalog: Catalog,
    records: Records,
    name: str,
    master_id: str,
    merged_ids: tuple[str, ...],
    now: datetime,
) -> tuple[str, ...]:
    """Point every live record's lookups from the merged records to the master; their ids."""
    moved: list[str] = []
    for child, fields in _related(catalog, name).items():
        table = records.table(child)
        naming = pl.any_horizontal(pl.col(f).is_in(merged_ids) for f in fields)
        live = ~pl.col("IsDeleted").fill_null(False) & ~pl.col("Id").is_in(merged_ids)
        found = table.frame.filter(live & naming.fill_null(False)).select("Id", *fields)
        changes = {
            row["Id"]: {f: master_id for f in fields if row[f] in merged_ids}
            | {"SystemModstamp": now}
            for row in found.to_dicts()
        }
        table.update(changes, now)
        moved.extend(changes)
    return tuple(moved)
