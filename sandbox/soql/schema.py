"""What the SOQL engine knows of an org: objects, their typed fields and their lookups.

Names are matched case-insensitively, as Salesforce does, and answered in canonical casing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, get_args

__all__ = ["FIELD_KINDS", "FieldKind", "Lookup", "ObjectSchema", "Schema"]

FieldKind = Literal[
    "id",
    "string",
    "boolean",
    "int",
    "double",
    "date",
    "datetime",
    "reference",
    "picklist",
    "textarea",
]
FIELD_KINDS: tuple[str, ...] = get_args(FieldKind)


class Lookup(NamedTuple):
    """A relationship to a parent record: ``Owner`` is Lookup("OwnerId", "User")."""

    field: str  # the foreign-key field on this object
    target: str  # the parent object


@dataclass(frozen=True)
class ObjectSchema:
    """One object: canonical field names with their kinds, and relationship name -> lookup."""

    name: str
    fields: Mapping[str, FieldKind]
    lookups: Mapping[str, Lookup] = field(default_factory=dict)
    _fields: dict[str, str] = field(init=False, repr=False, compare=False)
    _lookups: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = {kind for kind in self.fields.values() if kind not in FIELD_KINDS}
        dangling = {lookup.field for lookup in self.lookups.values()} - set(self.fields)
        if unknown or dangling or "Id" not in self.fields:
            raise ValueError(
                f"object {self.name!r}: needs an Id field; "
                f"unknown kinds {sorted(unknown)}; lookups on missing fields {sorted(dangling)}"
            )
        object.__setattr__(self, "_fields", {name.lower(): name for name in self.fields})
        object.__setattr__(self, "_lookups", {name.lower(): name for name in self.lookups})

    def field_named(self, name: str) -> tuple[str, FieldKind] | None:
        """The canonical name and kind of a field, whatever the casing asked for."""
        canonical = self._fields.get(name.lower())
        return None if canonical is None else (canonical, self.fields[canonical])

    def relationship_named(self, name: str) -> tuple[str, Lookup] | None:
        """The canonical name and lookup of a relationship, whatever the casing asked for."""
        canonical = self._lookups.get(name.lower())
        return None if canonical is None else (canonical, self.lookups[canonical])


@dataclass(frozen=True, init=False)
class Schema:
    """The objects a query may name, looked up case-insensitively."""

    objects: tuple[ObjectSchema, ...]
    _by_name: dict[str, ObjectSchema] = field(repr=False, compare=False)

    def __init__(self, objects: Iterable[ObjectSchema]) -> None:
        objects = tuple(objects)
        by_name = {obj.name.lower(): obj for obj in objects}
        targets = {lookup.target for obj in objects for lookup in obj.lookups.values()}
        missing = sorted(target for target in targets if target.lower() not in by_name)
        if missing:
            raise ValueError(f"lookups point at objects not in the schema: {missing}")
        object.__setattr__(self, "objects", objects)
        object.__setattr__(self, "_by_name", by_name)

    def object_named(self, name: str) -> ObjectSchema | None:
        """The object of that name, whatever the casing asked for."""
        return self._by_name.get(name.lower())
