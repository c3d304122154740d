"""Associations between records: sorted id arrays per (source, target), copy-on-write.

A lookup is a binary search per record id, so reading the associations of a page costs the same
on the 2,000-account org as on the 200,000-account one; a write swaps in new arrays.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = ["Edges", "Link"]


@dataclass(frozen=True)
class Link:
    """One associated record and the association type ids that link it."""

    to_id: int
    type_ids: tuple[int, ...]


@dataclass(frozen=True)
class _Arrays:
    """One (source, target) pair's rows, sorted by (from_id, to_id)."""

    from_id: np.ndarray
    to_id: np.ndarray
    type_id: np.ndarray

    @classmethod
    def of(cls, frame: pl.DataFrame) -> _Arrays:
        ordered = frame.unique().sort("from_id", "to_id", "type_id")
        return cls(
            ordered["from_id"].to_numpy(),
            ordered["to_id"].to_numpy(),
            ordered["type_id"].to_numpy(),
        )

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {"from_id": self.from_id, "to_id": self.to_id, "type_id": self.type_id},
            schema={"from_id": pl.UInt64, "to_id": pl.UInt64, "type_id": pl.Int32},
        )


class Edges:
    """Every association, both directions stored, by (source, target) object names."""

    def __init__(self, rows: dict[tuple[str, str], pl.DataFrame]) -> None:
        self._pairs = {key: _Arrays.of(frame) for key, frame in rows.items()}
        self._lock = threading.Lock()

    def links(self, source: str, target: str, from_id: int) -> list[Link]:
        """The records of ``target`` associated with one ``source`` record, by id."""
        arrays = self._pairs.get((source, target))
        if arrays is None:
            return []
        lo, hi = np.searchsorted(arrays.from_id, [from_id, from_id + 1])
        grouped: dict[int, list[int]] = {}
        for to_id, type_id in zip(arrays.to_id[lo:hi], arrays.type_id[lo:hi], strict=True):
            grouped.setdefault(int(to_id), []).append(int(type_id))
        return [Link(to_id, tuple(types)) for to_id, types in grouped.items()]

    def pairs(self) -> dict[tuple[str, str], tuple[object, Callable[[], pl.DataFrame]]]:
        """Each (source, target) pair's rows as (a token that changes on every write to the pair,
        a reader of its rows as a frame): what a save compares and writes."""
        return {key: (arrays, arrays.frame) for key, arrays in self._pairs.items()}

    def restore(self, rows: Mapping[tuple[str, str], pl.DataFrame]) -> None:
        """Take back the rows of these pairs, saved earlier."""
        with self._lock:
            self._pairs = {**self._pairs, **{key: _Arrays.of(f) for key, f in rows.items()}}

    def add(self, source: str, target: str, rows: Iterable[tuple[int, int, int]]) -> None:
        """Add (from_id, to_id, type_id) rows of one pair (duplicates are ignored)."""
        self._write(source, target, rows, remove=False)

    def remove(self, source: str, target: str, rows: Iterable[tuple[int, int, int]]) -> None:
        """Remove (from_id, to_id, type_id) rows of one pair."""
        self._write(source, target, rows, remove=True)

    def rename(self, object_name: str, renames: Mapping[int, int]) -> None:
        """Give every association of ``object_name`` records the new ids ``renames`` names
        (a merge); links that end up joining a record to itself are dropped."""
        old = pl.Series(list(renames), dtype=pl.UInt64)
        new = pl.Series(list(renames.values()), dtype=pl.UInt64)
        with self._lock:
            pairs = dict(self._pairs)
            for (source, target), arrays in self._pairs.items():
                if object_name not in (source, target):
                    continue
                frame = arrays.frame().with_columns(
                    pl.col(end).replace(old, new)
                    for end, name in (("from_id", source), ("to_id", target))
                    if name == object_name
                )
                if source == target:
                    frame = frame.filter(pl.col("from_id") != pl.col("to_id"))
                pairs[(source, target)] = _Arrays.of(frame)
            self._pairs = pairs

    def _write(
        self, source: str, target: str, rows: Iterable[tuple[int, int, int]], remove: bool
    ) -> None:
        change = _frame(list(rows))
        with self._lock:
            current = self._pairs.get((source, target))
            frame = current.frame() if current is not None else change.clear()
            if remove:
                frame = frame.join(change, on=["from_id", "to_id", "type_id"], how="anti")
            else:
                frame = pl.concat([frame, change])
            self._pairs = {**self._pairs, (source, target): _Arrays.of(frame)}


def _frame(rows: Sequence[tuple[int, int, int]]) -> pl.DataFrame:
    """Rows as an edge frame."""
    return pl.DataFrame(
        rows, schema={"from_id": pl.UInt64, "to_id": pl.UInt64, "type_id": pl.Int32}, orient="row"
    )
