"""The org's records: one copy-on-write `Table` per object, and the numbering of new records."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from sandbox.salesforce.ids import make_id
from sandbox.tables import Table, TableSpec

__all__ = ["Records"]

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class Records:
    """Every object's table; readers take snapshots, writers go through `Writer`."""

    def __init__(self, frames: Mapping[str, pl.DataFrame]) -> None:
        self._tables = {
            name: Table(TableSpec(name, "Id", "LastModifiedDate", "IsDeleted"), frame)
            for name, frame in frames.items()
        }
        self._next = {name: _next_number(frame) for name, frame in frames.items()}
        self._lock = threading.Lock()

    def table(self, name: str) -> Table:
        """The table of an object (canonical name)."""
        return self._tables[name]

    def tables(self) -> dict[str, Table]:
        """Every object's table, by canonical name."""
        return dict(self._tables)

    def restore(self, frames: Mapping[str, pl.DataFrame]) -> None:
        """Take back the records of these objects, saved earlier; new ids continue after theirs."""
        for name, frame in frames.items():
            self._tables[name].restore(frame)
        with self._lock:
            self._next |= {name: _next_number(frame) for name, frame in frames.items()}

    def frames(self) -> dict[str, pl.DataFrame]:
        """A consistent snapshot of every object for SOQL; a checkbox is never null."""
        return {name: _checkboxes_set(table.frame) for name, table in self._tables.items()}

    def rows(self, name: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The records of ``name`` with these ids (deleted ones too), by id."""
        found = _checkboxes_set(self._tables[name].get(list(dict.fromkeys(ids))))
        return {row["Id"]: row for row in found.to_dicts()}

    def find(self, name: str, field: str, values: Sequence[Any]) -> dict[Any, list[str]]:
        """Ids of live records of ``name`` by their ``field`` value; text matches in any case."""
        frame = self._tables[name].frame
        fold = frame.schema[field] == pl.String and field != "Id"
        key = pl.col(field).str.to_lowercase() if fold else pl.col(field)
        wanted = [v.lower() for v in values] if fold else list(values)
        found = frame.filter(~pl.col("IsDeleted").fill_null(False)).select(key.alias("key"), "Id")
        matches: dict[Any, list[str]] = {}
        for value, record_id in found.filter(pl.col("key").is_in(wanted)).iter_rows():
            matches.setdefault(value, []).append(record_id)
        return matches

    def new_id(self, name: str) -> str:
        """An unused id for a new record of ``name``."""
        with self._lock:
            number = self._next[name]
            self._next[name] = number + 1
        return make_id(name, number)


def _checkboxes_set(frame: pl.DataFrame) -> pl.DataFrame:
    """Nulls in boolean columns (checkbox fields added later) read as false, as in Salesforce."""
    unset = [
        name
        for name, dtype in frame.schema.items()
        if dtype == pl.Boolean and frame[name].null_count()
    ]
    return frame.with_columns(pl.col(unset).fill_null(False)) if unset else frame


def _next_number(frame: pl.DataFrame) -> int:
    """One past the highest record number in use (ids sort by number: base 62 is ASCII-ordered)."""
    highest = frame["Id"].max() if frame.height else None
    if not isinstance(highest, str):
        return 0
    number = 0
    for char in highest[5:15]:
        number = number * 62 + _BASE62.index(char)
    return number + 1
