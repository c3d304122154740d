"""The sandbox CRM's records: one polars frame per object, replaced (never mutated) on a write.

Readers take ``table.frame`` and keep a consistent snapshot however long they page through it;
writers hold the table's lock and swap in a new frame. Every write stamps the modified column with
the time the caller passes in, so incremental pulls see it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

__all__ = ["Table", "TableSpec"]


@dataclass(frozen=True)
class TableSpec:
    """Which columns play the roles every CRM object has."""

    name: str
    key: str
    modified: str
    deleted: str


class Table:
    """One CRM object's records."""

    def __init__(self, spec: TableSpec, frame: pl.DataFrame) -> None:
        self.spec = spec
        self._frame = frame
        self._lock = threading.Lock()

    @property
    def frame(self) -> pl.DataFrame:
        """The current records (an immutable snapshot)."""
        return self._frame

    def __len__(self) -> int:
        return self._frame.height

    def get(self, ids: Sequence[str]) -> pl.DataFrame:
        """The records with these ids, in the order asked (missing ids are left out)."""
        wanted = pl.DataFrame({self.spec.key: list(ids)}, schema={self.spec.key: pl.String})
        return wanted.join(self._frame, on=self.spec.key, how="inner", maintain_order="left")

    def positions(self, ids: Sequence[str]) -> list[int | None]:
        """Row positions of ``ids`` in the current frame (None where absent)."""
        wanted = pl.DataFrame({self.spec.key: list(ids)}, schema={self.spec.key: pl.String})
        rows = self._frame.select(self.spec.key).with_row_index("_row")
        found = wanted.join(rows, on=self.spec.key, how="left", maintain_order="left")
        return found["_row"].to_list()

    def update(self, changes: Mapping[str, Mapping[str, Any]], now: datetime) -> None:
        """Set fields on existing records ({id: {field: value}}) and stamp them modified."""
        if not changes:
            return
        with self._lock:
            frame = self._frame
            rows = self.positions(list(changes))
            if any(row is None for row in rows):
                missing = [i for i, row in zip(changes, rows, strict=True) if row is None]
                raise KeyError(f"{self.spec.name}: no records {missing[:5]}")
            columns: dict[str, list[tuple[int, Any]]] = {}
            for row, fields in zip(rows, changes.values(), strict=True):
                for name, value in {**fields, self.spec.modified: now}.items():
                    columns.setdefault(name, []).append((row, value))
            self._frame = frame.with_columns(
                _scattered(frame[name], cells) for name, cells in columns.items()
            )

    def insert(self, records: Sequence[Mapping[str, Any]], now: datetime) -> None:
        """Append new records (each carrying its id), stamped modified."""
        if not records:
            return
        with self._lock:
            schema = self._frame.schema
            rows = [{**record, self.spec.modified: now} for record in records]
            added = pl.DataFrame(
                rows, schema_overrides={k: schema[k] for k in rows[0] if k in schema}, strict=False
            )
            self._frame = pl.concat([self._frame, added], how="diagonal_relaxed")

    def restore(self, frame: pl.DataFrame) -> None:
        """Take back records saved earlier (the sandbox restarting), replacing the current ones."""
        with self._lock:
            self._frame = frame

    def overwrite(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        """Set raw values as an old import or an outage left them ({id: {field: value}}), with
        no validation and no modification stamp: the dirty data real orgs hold and their APIs
        refuse to write. A column that cannot hold a value becomes text (times as ISO 8601)."""
        with self._lock:
            frame = self._frame
            rows = self.positions(list(changes))
            cells: dict[str, list[tuple[int, Any]]] = {}
            for row, fields in zip(rows, changes.values(), strict=True):
                for name, value in fields.items():
                    cells.setdefault(name, []).append((_known(row, name), value))
            self._frame = frame.with_columns(
                _scattered(_holding(frame[name], values), values) for name, values in cells.items()
            )

    def add_column(self, name: str, dtype: pl.DataType) -> None:
        """A new, empty field (a custom field or property created through the API)."""
        with self._lock:
            if name not in self._frame.columns:
                self._frame = self._frame.with_columns(pl.lit(None, dtype=dtype).alias(name))


def _scattered(column: pl.Series, cells: list[tuple[int, Any]]) -> pl.Series:
    """A copy of ``column`` with the given (row, value) cells set."""
    positions = [row for row, _ in cells]
    values = pl.Series(column.name, [value for _, value in cells], dtype=column.dtype, strict=False)
    return column.clone().scatter(positions, values)


def _known(row: int | None, name: str) -> int:
    if row is None:
        raise KeyError(f"no record to set {name} on")
    return row


def _holding(column: pl.Series, cells: list[tuple[int, Any]]) -> pl.Series:
    """``column``, as text when one of the values is not of its type."""
    try:
        pl.Series([value for _, value in cells], dtype=column.dtype, strict=True)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        if isinstance(column.dtype, pl.Datetime):
            return column.dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        return column.cast(pl.String)
    return column
