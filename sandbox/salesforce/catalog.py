"""The org's metadata as it stands: objects with their fields, custom fields and validation rules.

Standard objects come from `schema`; the Tooling API adds custom fields and validation rules at
run time, and describe, SOQL and writes see them from then on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from sandbox.salesforce.schema import Field, SObject
from sandbox.soql import Lookup, ObjectSchema, Schema

__all__ = ["Catalog", "CustomFieldRecord", "ValidationRule"]


@dataclass(frozen=True)
class CustomFieldRecord:
    """A custom field as the Tooling API's CustomField holds it."""

    id: str
    object: str
    name: str  # the API name, "Handoff_Score__c"
    metadata: dict[str, Any]
    created: datetime

    @property
    def developer_name(self) -> str:
        """The name without its ``__c`` suffix."""
        return self.name.removesuffix("__c")


@dataclass(frozen=True)
class ValidationRule:
    """A validation rule: records for which ``condition`` is true are refused."""

    id: str
    object: str
    name: str
    metadata: dict[str, Any]
    condition: pl.Expr
    created: datetime

    @property
    def active(self) -> bool:
        """Whether the rule is enforced."""
        return bool(self.metadata.get("active", True))

    @property
    def message(self) -> str:
        """What a refused save is told."""
        return str(self.metadata.get("errorMessage") or f"{self.name} failed")

    @property
    def display_field(self) -> str | None:
        """The field the error is shown on, if any."""
        return self.metadata.get("errorDisplayField") or None


class Catalog:
    """Objects, custom fields and validation rules; thread-safe, read without locking."""

    def __init__(self, objects: Iterable[SObject]) -> None:
        self._objects = {obj.name.lower(): obj for obj in objects}
        self._custom_fields: dict[str, CustomFieldRecord] = {}
        self._rules: dict[str, ValidationRule] = {}
        self._schema = _soql_schema(self._objects.values())
        self._lock = threading.Lock()

    def objects(self) -> tuple[SObject, ...]:
        """Every object, in describe order."""
        return tuple(self._objects.values())

    def object(self, name: str) -> SObject | None:
        """An object by name, whatever the casing."""
        return self._objects.get(name.lower())

    def soql_schema(self) -> Schema:
        """What SOQL may name now."""
        return self._schema

    def put_field(self, record: CustomFieldRecord, new: Field) -> None:
        """Add or replace a custom field."""
        with self._lock:
            key = record.object.lower()
            self._objects = {**self._objects, key: self._objects[key].with_field(new)}
            self._custom_fields = {**self._custom_fields, record.id: record}
            self._schema = _soql_schema(self._objects.values())

    def custom_fields(self) -> tuple[CustomFieldRecord, ...]:
        """Custom fields created through the Tooling API, oldest first."""
        return tuple(self._custom_fields.values())

    def custom_field(self, record_id: str) -> CustomFieldRecord | None:
        """A custom field by its CustomField id."""
        return self._custom_fields.get(record_id)

    def put_rule(self, rule: ValidationRule) -> None:
        """Add or replace a validation rule."""
        with self._lock:
            self._rules = {**self._rules, rule.id: rule}

    def rules(self, object_name: str | None = None) -> tuple[ValidationRule, ...]:
        """Validation rules, of one object when named."""
        return tuple(
            rule
            for rule in self._rules.values()
            if object_name is None or rule.object.lower() == object_name.lower()
        )

    def rule(self, record_id: str) -> ValidationRule | None:
        """A validation rule by id."""
        return self._rules.get(record_id)


def _soql_schema(objects: Iterable[SObject]) -> Schema:
    """The SOQL engine's view: field kinds, and lookups with one target (not Who/What)."""
    return Schema(
        ObjectSchema(
            obj.name,
            {f.name: f.kind.soql_kind for f in obj.fields},
            {
                f.relationship: Lookup(f.name, f.reference_to[0])
                for f in obj.fields
                if f.relationship and len(f.reference_to) == 1
            },
        )
        for obj in objects
    )
