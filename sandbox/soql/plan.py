"""A query bound to a schema: canonical names and kinds for every field, and the joins it needs.

Binding is where unknown objects (INVALID_TYPE) and unknown fields or relationships
(INVALID_FIELD) are refused, before any data is touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from sandbox.soql.errors import SoqlError
from sandbox.soql.schema import FieldKind, ObjectSchema, Schema
from sandbox.soql.syntax import And, Comparison, Condition, FieldRef, Not, Or, OrderKey, Query

__all__ = ["Column", "Plan", "Relation", "bind"]

_NO_OBJECT = (
    "sObject type '{}' is not supported. If you are attempting to use a custom object, be sure "
    "to append the '__c' after the entity name. Please reference your WSDL or the describe call "
    "for the appropriate names."
)
_NO_COLUMN = (
    "No such column '{}' on entity '{}'. If you are attempting to use a custom field, be sure to "
    "append the '__c' after the custom field name. Please reference your WSDL or the describe "
    "call for the appropriate names."
)
_NO_RELATIONSHIP = (
    "Didn't understand relationship '{}' in field path. If you are attempting to use a custom "
    "relationship, be sure to append the '__r' after the custom relationship name. Please "
    "reference your WSDL or the describe call for the appropriate names."
)

Path = tuple[str, ...]


@dataclass(frozen=True)
class Column:
    """A field the query names, bound: ``owner.email`` on Lead is Owner.Email of User."""

    name: str  # the working frame's column: canonical dotted path, "Owner.Email"
    kind: FieldKind
    relation: Path  # canonical relationship path, () for the queried object itself
    field: str  # canonical field name on the related object


@dataclass(frozen=True)
class Relation:
    """A parent joined in for relationship fields: Lead's ``Owner`` is User on OwnerId."""

    path: Path
    key: str  # the foreign-key column in the working frame: "OwnerId", "Account.OwnerId"
    object: str  # the parent object's canonical name
    fields: tuple[str, ...]  # the parent's fields the query needs, Id first

    @property
    def prefix(self) -> str:
        """Prefix of this parent's columns in the working frame: "Owner."."""
        return _prefix(self.path)


@dataclass(frozen=True)
class Plan:
    """Everything execution and rendering need to know about a query, names made canonical."""

    query: Query
    object: str
    fields: tuple[str, ...]  # the queried object's fields the query needs, Id first
    select: tuple[Column, ...]
    order_by: tuple[tuple[Column, OrderKey], ...]
    relations: tuple[Relation, ...]  # each parent before the parents it leads to
    columns: Mapping[FieldRef, Column]  # every field the query names

    @property
    def output(self) -> tuple[str, ...]:
        """An executed frame's columns: the selected fields, then the Ids rendering needs."""
        names = dict.fromkeys(column.name for column in self.select)
        names["Id"] = None
        for column in self.select:
            for depth in range(1, len(column.relation) + 1):
                names[_prefix(column.relation[:depth]) + "Id"] = None
        return tuple(names)


def bind(query: Query, schema: Schema) -> Plan:
    """Bind ``query`` to ``schema``; raises SoqlError INVALID_TYPE or INVALID_FIELD."""
    root = schema.object_named(query.object)
    if root is None:
        detail = _NO_OBJECT.format(query.object)
        raise SoqlError.at("INVALID_TYPE", detail, query.text, query.object_pos)
    refs = [*query.fields, *_condition_fields(query.where), *(k.field for k in query.order_by)]
    columns: dict[FieldRef, Column] = {}
    walked: dict[Path, tuple[str, str]] = {}
    for ref in refs:
        columns[ref], relations = _column(ref, root, schema, query.text)
        walked.update(relations)
    select = tuple(columns[ref] for ref in query.fields)
    _refuse_duplicates(select, query)
    needs = _needs(columns.values(), walked)
    joins = tuple(
        Relation(path, _prefix(path[:-1]) + key, target, needs[path])
        for path, (key, target) in sorted(walked.items(), key=lambda item: len(item[0]))
    )
    order_by = tuple((columns[key.field], key) for key in query.order_by)
    return Plan(query, root.name, needs[()], select, order_by, joins, columns)


def _column(
    ref: FieldRef, root: ObjectSchema, schema: Schema, text: str
) -> tuple[Column, dict[Path, tuple[str, str]]]:
    """Bind one field path; also the relations it walks: path -> (foreign key, parent object)."""
    current, path, walked = root, (), {}
    for part in ref.path[:-1]:
        found = current.relationship_named(part)
        parent = schema.object_named(found[1].target) if found else None
        if found is None or parent is None:
            raise SoqlError.at("INVALID_FIELD", _NO_RELATIONSHIP.format(part), text, ref.pos)
        path = (*path, found[0])
        walked[path] = (found[1].field, parent.name)
        current = parent
    field = current.field_named(ref.path[-1])
    if field is None:
        detail = _NO_COLUMN.format(ref.path[-1], current.name)
        raise SoqlError.at("INVALID_FIELD", detail, text, ref.pos)
    name, kind = field
    return Column(_prefix(path) + name, kind, path, name), walked


def _needs(
    columns: Iterable[Column], walked: Mapping[Path, tuple[str, str]]
) -> dict[Path, tuple[str, ...]]:
    """Per level (() is the queried object) the fields to read: Id, named fields, foreign keys."""
    needs: dict[Path, dict[str, None]] = {path: {"Id": None} for path in [(), *walked]}
    for column in columns:
        needs[column.relation][column.field] = None
    for path, (key, _) in walked.items():
        needs[path[:-1]][key] = None
    return {path: tuple(fields) for path, fields in needs.items()}


def _prefix(path: Path) -> str:
    return "".join(f"{part}." for part in path)


def _condition_fields(condition: Condition | None) -> Iterator[FieldRef]:
    """Every field a WHERE condition names, in order."""
    if isinstance(condition, Comparison):
        yield condition.field
    elif isinstance(condition, Not):
        yield from _condition_fields(condition.operand)
    elif isinstance(condition, And | Or):
        for operand in condition.operands:
            yield from _condition_fields(operand)


def _refuse_duplicates(select: tuple[Column, ...], query: Query) -> None:
    seen: set[str] = set()
    for column, ref in zip(select, query.fields, strict=True):
        if column.name in seen:
            detail = f"duplicate field selected: {column.name}"
            raise SoqlError.at("MALFORMED_QUERY", detail, query.text, ref.pos)
        seen.add(column.name)
