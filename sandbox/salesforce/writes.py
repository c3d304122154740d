"""Saving records as Salesforce does: per-record checks, then all-or-none or each on its own.

A batch (one REST call, one collection, one Bulk API job) is checked in Salesforce's order:
row lock (an injected `FaultPlan.locked`), writable fields, required fields, restricted
picklists, text lengths, lookups (right object, existing, an active owner), the fields
Salesforce computes (`DERIVED`), then active validation rules. Checks that need other records
or a rule are made once per object for the whole batch, column-wise. A merge (`merges`) runs
between batches, like a batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from sandbox.faults import FaultPlan
from sandbox.salesforce.catalog import Catalog
from sandbox.salesforce.errors import RecordError
from sandbox.salesforce.ids import KEY_PREFIXES, entity_of, normalize_id
from sandbox.salesforce.merges import MergeResult, merge_records
from sandbox.salesforce.schema import CURRENT_USER, DERIVED, Field, SObject
from sandbox.salesforce.store import Records

__all__ = ["ROLLED_BACK", "Outcome", "Write", "Writer"]

ROLLED_BACK = RecordError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
)
_LENGTH_CHECKED = frozenset({"string", "textarea", "picklist"})


@dataclass(frozen=True)
class Write:
    """One record to save: a create (no id), an update (an id) or a delete."""

    object: str  # canonical object name
    values: Mapping[str, Any] = field(default_factory=dict)  # canonical field -> typed value
    id: str | None = None
    delete: bool = False
    refused: RecordError | None = None  # already refused by the route (no id in an update...)


@dataclass(frozen=True)
class Outcome:
    """What became of one record."""

    id: str | None
    errors: tuple[RecordError, ...] = ()
    created: bool = False

    @property
    def success(self) -> bool:
        """Whether the record was saved."""
        return not self.errors

    def as_result(self) -> dict[str, Any]:
        """A SaveResult as collections answer it."""
        head = {} if self.id is None else {"id": self.id}
        return {**head, "success": self.success, "errors": [e.as_result() for e in self.errors]}


@dataclass
class _Staged:
    """A write on its way through the checks."""

    write: Write
    sobject: SObject
    id: str | None
    after: dict[str, Any]
    changes: dict[str, Any]
    error: RecordError | None = None

    @property
    def live(self) -> bool:
        return self.error is None and not self.write.delete


class Writer:
    """Saves batches of writes into the records; one batch at a time."""

    def __init__(
        self,
        catalog: Catalog,
        records: Records,
        faults: FaultPlan,
        clock: Callable[[], datetime],
        user_id: str,
    ) -> None:
        self.catalog = catalog
        self.records = records
        self.faults = faults
        self.clock = clock
        self.user_id = user_id
        self._lock = threading.Lock()

    def save(self, writes: Sequence[Write], all_or_none: bool = False) -> list[Outcome]:
        """Check and save ``writes``; outcomes in the same order."""
        with self._lock:
            existing = self._existing(writes)
            staged = [self._stage(write, existing) for write in writes]
            self._check_lookups(staged)
            for name in dict.fromkeys(s.sobject.name for s in staged):
                self._derive_and_validate(name, [s for s in staged if s.sobject.name == name])
            if all_or_none and any(s.error for s in staged):
                return [_rolled_back(s) for s in staged]
            self._commit([s for s in staged if s.error is None])
            return [_outcome(s) for s in staged]

    def merge(self, object_name: str, master: str, merged: Sequence[str]) -> MergeResult:
        """Merge up to two records into ``master`` (see `merges`), between batches."""
        with self._lock:
            return merge_records(
                self.catalog, self.records, _to_ms(self.clock()), object_name, master, merged
            )

    def _existing(self, writes: Sequence[Write]) -> dict[str, dict[str, Any]]:
        """The current records the batch updates or deletes, by id."""
        found: dict[str, dict[str, Any]] = {}
        for name in dict.fromkeys(w.object for w in writes if w.id is not None):
            ids = [normalize_id(w.id) for w in writes if w.object == name and w.id is not None]
            found.update(self.records.rows(name, [i for i in ids if i is not None]))
        return found

    def _stage(self, write: Write, existing: Mapping[str, dict[str, Any]]) -> _Staged:
        """A write with its record before and after, and its first per-record error."""
        sobject = self.catalog.object(write.object)
        assert sobject is not None, write.object  # routes resolve the object first
        if write.refused is not None:
            return _Staged(write, sobject, write.id, {}, {}, write.refused)
        if write.id is None:
            staged = _Staged(write, sobject, None, self._defaults(sobject), {})
            staged.error = _first_error(_create_checks(sobject, write.values))
        else:
            record_id = normalize_id(write.id)
            before = existing.get(record_id or "")
            staged = _Staged(write, sobject, record_id, dict(before or {}), {})
            staged.error = _first_error(self._update_checks(staged, before))
        if write.delete:
            staged.changes = {"IsDeleted": True}
        elif staged.error is None:
            staged.changes = _canonical_ids(sobject, write.values)
        staged.after.update(staged.changes)
        return staged

    def _defaults(self, sobject: SObject) -> dict[str, Any]:
        """Values Salesforce fills on create when the request leaves them out."""
        return {
            f.name: self.user_id if f.default == CURRENT_USER else f.default
            for f in sobject.fields
            if f.default is not None
        }

    def _update_checks(
        self, staged: _Staged, before: Mapping[str, Any] | None
    ) -> Iterable[RecordError | None]:
        """An existing, unlocked, live record of the right object, then the field checks."""
        write, record_id = staged.write, staged.id
        if record_id is None or record_id[:3] != staged.sobject.key_prefix:
            yield RecordError("MALFORMED_ID", f"malformed id {write.id}", ("Id",))
        elif before is None:
            yield RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        elif before.get("IsDeleted"):
            yield RecordError("ENTITY_IS_DELETED", "entity is deleted")
        elif write.delete and not staged.sobject.deletable:
            yield RecordError(
                "INVALID_TYPE_FOR_OPERATION", f"entity type cannot be deleted: {write.object}"
            )
        elif self.faults.locked(record_id):
            yield RecordError(
                "UNABLE_TO_LOCK_ROW",
                f"unable to obtain exclusive access to this record or 1 records: {record_id}",
            )
        if not write.delete:
            yield from _field_checks(staged.sobject, write.values, creating=False)

    def _check_lookups(self, staged: Sequence[_Staged]) -> None:
        """Lookups name live records of the right object; owners are active users."""
        wanted: dict[str, set[str]] = {}
        for s in staged:
            for _, target, value in _lookups(s):
                wanted.setdefault(target, set()).add(value)
        found = {target: self.records.rows(target, sorted(ids)) for target, ids in wanted.items()}
        for s in staged:
            for field_, target, value in _lookups(s):
                s.error = s.error or _lookup_error(s.sobject, field_, found[target].get(value))

    def _derive_and_validate(self, name: str, group: Sequence[_Staged]) -> None:
        """Compute derived fields, then refuse records an active validation rule rejects."""
        live = [s for s in group if s.live]
        if not live:
            return
        schema = self.records.table(name).schema
        frame = pl.DataFrame([s.after for s in live], schema=schema)
        derived = DERIVED.get(name, {})
        if derived:
            frame = frame.with_columns(**derived)
            for s, row in zip(live, frame.select(list(derived)).to_dicts(), strict=True):
                s.after.update(row)
                s.changes.update(row)
        for rule in self.catalog.rules(name):
            if not rule.active:
                continue
            failed = frame.select(rule.condition).to_series().to_list()
            fields = (rule.display_field,) if rule.display_field else ()
            error = RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message, fields)
            for s, bad in zip(live, failed, strict=True):
                s.error = s.error or (error if bad else None)

    def _commit(self, staged: Sequence[_Staged]) -> None:
        """Write the checked records: inserts, updates and deletes, stamped now."""
        now = _to_ms(self.clock())
        stamps = {"LastModifiedDate": now, "SystemModstamp": now}
        for name in dict.fromkeys(s.sobject.name for s in staged):
            table = self.records.table(name)
            group = [s for s in staged if s.sobject.name == name]
            table.update({s.id: {**s.changes, **stamps} for s in group if s.id is not None}, now)
            created = [s for s in group if s.id is None]
            for s in created:
                s.id = self.records.new_id(name)
            table.insert(
                [{**s.after, "Id": s.id, "CreatedDate": now, **stamps} for s in created], now
            )


def _first_error(errors: Iterable[RecordError | None]) -> RecordError | None:
    """Checks run lazily, in order; the first failure is the record's error."""
    return next((error for error in errors if error is not None), None)


def _create_checks(sobject: SObject, values: Mapping[str, Any]) -> Iterable[RecordError | None]:
    if not sobject.createable:
        yield RecordError(
            "INVALID_TYPE_FOR_OPERATION", f"entity type cannot be inserted: {sobject.name}"
        )
    yield from _field_checks(sobject, values, creating=True)


def _field_checks(
    sobject: SObject, values: Mapping[str, Any], creating: bool
) -> Iterable[RecordError | None]:
    """Writable, required, restricted picklist values, text lengths, lookup id shapes."""
    fields = [sobject.field(name) for name in values]
    locked = [f.name for f in fields if f and not (f.createable if creating else f.updateable)]
    if locked:
        yield RecordError(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {', '.join(locked)}. Please check the security "
            "settings of this field and verify that it is read/write for your profile or "
            "permission set.",
            tuple(locked),
        )
    missing = [
        f.name
        for f in sobject.required_fields
        if (creating or f.name in values) and values.get(f.name) in (None, "")
    ]
    if missing:
        yield RecordError(
            "REQUIRED_FIELD_MISSING",
            f"Required fields are missing: [{', '.join(missing)}]",
            tuple(missing),
        )
    for f in fields:
        if f is not None and values[f.name] is not None:
            yield _value_error(f, values[f.name])


def _value_error(f: Field, value: Any) -> RecordError | None:
    """A value its field cannot hold."""
    if f.restricted and value not in f.picklist:
        return RecordError(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"bad value for restricted picklist field: {value}",
            (f.name,),
        )
    if f.kind.soql_kind in _LENGTH_CHECKED and f.length and len(value) > f.length:
        return RecordError(
            "STRING_TOO_LONG",
            f"{f.label}: data value too large: {value} (max length={f.length})",
            (f.name,),
        )
    if f.type == "reference":
        record_id = normalize_id(value)
        prefixes = {KEY_PREFIXES[target] for target in f.reference_to}
        if record_id is None or record_id[:3] not in prefixes:
            return RecordError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"{f.label}: id value of incorrect type: {value}",
                (f.name,),
            )
    return None


def _canonical_ids(sobject: SObject, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values with lookups as 18-character ids (their shape is already checked)."""
    return {
        name: normalize_id(value) if _is_lookup(sobject, name, value) else value
        for name, value in values.items()
    }


def _is_lookup(sobject: SObject, name: str, value: Any) -> bool:
    """Whether ``name`` is a lookup field given an id."""
    f = sobject.field(name)
    return f is not None and f.type == "reference" and value is not None


def _lookups(staged: _Staged) -> Iterable[tuple[Field, str, str]]:
    """(field, target object, id) of each lookup a live write sets."""
    if not staged.live:
        return
    for name, value in staged.changes.items():
        if _is_lookup(staged.sobject, name, value):
            f = staged.sobject.field(name)
            assert f is not None
            yield f, entity_of(value) or "", value


def _lookup_error(
    sobject: SObject, f: Field, target: Mapping[str, Any] | None
) -> RecordError | None:
    """Why a lookup to ``target`` (None: no such record) cannot be saved."""
    if target is None:
        return RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", (f.name,))
    if target.get("IsDeleted"):
        return RecordError("ENTITY_IS_DELETED", "entity is deleted", (f.name,))
    if f.name == "OwnerId" and target.get("IsActive") is False:
        return RecordError(
            "INACTIVE_OWNER_OR_USER",
            f"operation performed with inactive user [{target['Id'][:15]}] as owner of "
            f"{sobject.name.lower()}",
            (f.name,),
        )
    return None


def _outcome(staged: _Staged) -> Outcome:
    if staged.error is not None:
        return Outcome(staged.id, (staged.error,))
    return Outcome(staged.id, created=staged.write.id is None)


def _rolled_back(staged: _Staged) -> Outcome:
    """With allOrNone: the record's own error, or that it was rolled back with the rest."""
    return Outcome(staged.id, (staged.error or ROLLED_BACK,))


def _to_ms(moment: datetime) -> datetime:
    """A timestamp as Salesforce keeps it: UTC, to the millisecond."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
