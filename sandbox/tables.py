"""The sandbox CRM's records: one polars frame per object, replaced (never mutated) on a write.

Readers take ``table.frame`` and keep a consistent snapshot however long they page through it;
writers hold the table's lock. Every write stamps the modified column with the time the caller
passes in, so incremental pulls see it.

A write costs what it writes, not what the table holds: records are found through an id -> row
index, and updates wait in a small overlay of changed cells (``{row: {column: value}}``, values
already of their column's type) that is merged into the frame, one scatter per changed column,
when a reader takes ``frame`` or when the overlay reaches a sixteenth of the table. ``get``
answers from the frame and the overlay, so a writer's checks see every earlier write.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

__all__ = ["Table", "TableSpec"]

_OVERLAY_SHARE = 16  # the overlay is merged when it holds this fraction of the table's rows
_OVERLAY_ROWS = 4_096  # ... or this many, whichever is larger

_Cells = dict[str, dict[int, Any]]  # column -> {row: value}


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
        self._frame = frame  # the records, but for the overlay's changes
        self._overlay: dict[int, dict[str, Any]] = {}  # row -> {column: value} written since
        self._index: dict[str, int] | None = None  # key -> row, built when first needed
        self._lock = threading.Lock()

    @property
    def frame(self) -> pl.DataFrame:
        """The current records (an immutable snapshot)."""
        with self._lock:
            return self._merged()

    @property
    def schema(self) -> pl.Schema:
        """The records' columns and types (without merging pending changes)."""
        return self._frame.schema

    def __len__(self) -> int:
        return self._frame.height

    def get(self, ids: Sequence[str]) -> pl.DataFrame:
        """The records with these ids, in the order asked (missing ids are left out)."""
        with self._lock:
            rows = [row for row in self._positions(ids) if row is not None]
            found = self._frame.select(pl.all().gather(rows))
            cells: _Cells = {}
            for at, row in enumerate(rows):
                for name, value in self._overlay.get(row, {}).items():
                    cells.setdefault(name, {})[at] = value
            return _scattered(found, cells)

    def update(self, changes: Mapping[str, Mapping[str, Any]], now: datetime) -> None:
        """Set fields on existing records ({id: {field: value}}) and stamp them modified."""
        if not changes:
            return
        with self._lock:
            rows = self._positions(list(changes))
            missing = [i for i, row in zip(changes, rows, strict=True) if row is None]
            if missing:
                raise KeyError(f"{self.spec.name}: no records {missing[:5]}")
            cells: _Cells = {}
            for row, fields in zip(rows, changes.values(), strict=True):
                for name, value in {**fields, self.spec.modified: now}.items():
                    cells.setdefault(name, {})[_known(row, name)] = value
            for name, typed in _typed(self._frame.schema, cells).items():
                for row, value in typed.items():
                    self._overlay.setdefault(row, {})[name] = value
            if len(self._overlay) >= max(_OVERLAY_ROWS, self._frame.height // _OVERLAY_SHARE):
                self._merged()

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
            start, keys = self._frame.height, added[self.spec.key].to_list()
            self._frame = pl.concat([self._frame, added], how="diagonal_relaxed")
            if self._index is not None:
                self._index.update(zip(keys, range(start, start + len(keys)), strict=True))

    def restore(self, frame: pl.DataFrame) -> None:
        """Take back records saved earlier (the sandbox restarting), replacing the current ones."""
        with self._lock:
            self._replace(frame)

    def overwrite(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        """Set raw values as an old import or an outage left them ({id: {field: value}}), with
        no validation and no modification stamp: the dirty data real orgs hold and their APIs
        refuse to write. A column that cannot hold a value becomes text (times as ISO 8601)."""
        with self._lock:
            frame = self._merged()
            rows = self._positions(list(changes))
            cells: _Cells = {}
            for row, fields in zip(rows, changes.values(), strict=True):
                for name, value in fields.items():
                    cells.setdefault(name, {})[_known(row, name)] = value
            holding = frame.with_columns(_holding(frame[name], cells[name]) for name in cells)
            self._frame = _scattered(holding, cells)

    def add_column(self, name: str, dtype: pl.DataType) -> None:
        """A new, empty field (a custom field or property created through the API)."""
        with self._lock:
            if name not in self._frame.columns:
                self._frame = self._frame.with_columns(pl.lit(None, dtype=dtype).alias(name))

    def _merged(self) -> pl.DataFrame:
        """The frame with the overlay merged in (the lock held)."""
        if self._overlay:
            cells: _Cells = {}
            for row, fields in self._overlay.items():
                for name, value in fields.items():
                    cells.setdefault(name, {})[row] = value
            self._frame, self._overlay = _scattered(self._frame, cells), {}
        return self._frame

    def _replace(self, frame: pl.DataFrame) -> None:
        """New records, whose rows may have moved: earlier writes not in ``frame`` are gone, so
        build it from `_merged` to keep them (the lock held)."""
        self._frame, self._overlay, self._index = frame, {}, None

    def _positions(self, ids: Sequence[str]) -> list[int | None]:
        """Row positions of ``ids`` (the lock held)."""
        if self._index is None:
            keys = self._frame[self.spec.key].to_list()
            self._index = dict(zip(keys, range(len(keys)), strict=True))
        return [self._index.get(i) for i in ids]


def _typed(schema: pl.Schema, cells: _Cells) -> _Cells:
    """The cells' values as their columns hold them (a value a column cannot take is null)."""
    typed: _Cells = {}
    for name, values in cells.items():
        if name not in schema:
            raise pl.exceptions.ColumnNotFoundError(name)
        series = pl.Series(name, list(values.values()), dtype=schema[name], strict=False)
        typed[name] = dict(zip(values, series.to_list(), strict=True))
    return typed


def _scattered(frame: pl.DataFrame, cells: _Cells) -> pl.DataFrame:
    """A copy of ``frame`` with the given cells set (each changed column copied once)."""
    columns = []
    for name, values in cells.items():
        column = frame[name]
        typed = pl.Series(name, list(values.values()), dtype=column.dtype, strict=False)
        columns.append(column.clone().scatter(list(values), typed))
    return frame.with_columns(columns) if columns else frame


def _known(row: int | None, name: str) -> int:
    if row is None:
        raise KeyError(f"no record to set {name} on")
    return row


def _holding(column: pl.Series, cells: Mapping[int, Any]) -> pl.Series:
    """``column``, as text when one of the values is not of its type."""
    try:
        pl.Series(list(cells.values()), dtype=column.dtype, strict=True)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        if isinstance(column.dtype, pl.Datetime):
            return column.dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        return column.cast(pl.String)
    return column
