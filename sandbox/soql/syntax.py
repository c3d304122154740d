"""The parsed shape of a SOQL query: small frozen value types, independent of any schema.

Names are kept as written (``owner.email``); binding to a schema makes them canonical. Offsets
(``pos``) point into ``Query.text`` for error messages and take no part in equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum

__all__ = [
    "And",
    "Comparison",
    "Condition",
    "FieldRef",
    "Like",
    "Not",
    "Or",
    "OrderKey",
    "Query",
    "Value",
    "Wildcard",
]

Value = None | bool | int | float | str | date | datetime


class Wildcard(Enum):
    """A LIKE wildcard: ``%`` matches any run of characters, ``_`` exactly one."""

    ANY = "%"
    ONE = "_"


@dataclass(frozen=True)
class Like:
    """A LIKE pattern: literal text and wildcards in order (escaped ``\\%`` is text)."""

    parts: tuple[str | Wildcard, ...]


@dataclass(frozen=True)
class FieldRef:
    """A field as written, with its relationship path: ``Owner.Email`` is ("Owner", "Email")."""

    path: tuple[str, ...]
    pos: int = field(default=0, compare=False)

    @property
    def name(self) -> str:
        """The dotted name as written."""
        return ".".join(self.path)


@dataclass(frozen=True)
class Comparison:
    """``field op value``; op is one of = != < <= > >= LIKE IN NOT IN (``<>`` reads as !=)."""

    field: FieldRef
    op: str
    value: Value | Like | tuple[Value, ...]
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Not:
    """NOT of a condition."""

    operand: Condition


@dataclass(frozen=True)
class And:
    """All of two or more conditions."""

    operands: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    """Any of two or more conditions."""

    operands: tuple[Condition, ...]


Condition = Comparison | Not | And | Or


@dataclass(frozen=True)
class OrderKey:
    """One ORDER BY key; Salesforce sorts nulls first unless told NULLS LAST."""

    field: FieldRef
    descending: bool = False
    nulls_last: bool = False


@dataclass(frozen=True)
class Query:
    """A parsed SELECT. ``fields`` is empty for ``SELECT COUNT()`` (``count_only``)."""

    object: str
    fields: tuple[FieldRef, ...] = ()
    where: Condition | None = None
    order_by: tuple[OrderKey, ...] = ()
    limit: int | None = None
    offset: int | None = None
    count_only: bool = False
    object_pos: int = field(default=0, compare=False)
    text: str = field(default="", compare=False, repr=False)
