"""Slicing work into the batch sizes the CRMs take, and the rows a push writes."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, Generic, TypeVar

from connectors.protocol import Update
from connectors.streams import Stream

__all__ = ["KeptRows", "chunked", "written_rows"]

T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items (``itertools.batched`` is Python 3.12+)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class KeptRows:
    """The rows `written_rows` made, kept from one push to the next for as long as each values
    mapping lives, by stream: the people of an account share one values mapping, yet a first
    run pushes them in id order, a few in each of thousands of calls, so without this each of
    the reference org's million people was made a row of its own (~3.5 s of the write stage).
    A mapping is kept by a weak reference, whose end drops its row: only a mapping that takes
    one is kept (`weakref.ref`; a plain dict does not, and is made a row in each call). One
    holder serves one connector, whose field names and conversions never change."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, int], tuple[weakref.ref[Any], dict[str, Any]]] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, stream: str, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """The row made of ``values`` on ``stream``, if kept."""
        kept = self._rows.get((stream, id(values)))
        return kept[1] if kept is not None and kept[0]() is values else None

    def keep(self, stream: str, values: Mapping[str, Any], row: dict[str, Any]) -> None:
        """Keep ``row`` for as long as ``values`` lives, if it takes a weak reference."""
        key, rows = (stream, id(values)), self._rows
        try:  # the mapping's end drops its row, before its id can be another's
            ref = weakref.ref(values, lambda _, key=key: rows.pop(key, None))
        except TypeError:
            return
        rows[key] = (ref, row)


def written_rows(
    stream: Stream,
    updates: Sequence[Update],
    names: Mapping[str, str],
    value: Callable[[Any], T],
    as_is: Collection[type] = (),
    kept: KeptRows | None = None,
) -> dict[str, dict[str, T]]:
    """Each update's values under the CRM's field ``names``, each as ``value`` writes it (a
    value of a type in ``as_is`` as it is: ``value`` would return it unchanged), by record id;
    only fields the stream lets us write. A row is made once for all the updates sharing one
    values mapping (the people linked to an account share its values), and shared by them:
    callers read rows, never change them; with ``kept``, once for all the calls it serves
    while the mapping lives. A value met again (a run's one scored-at in every row) is written
    out once too."""
    made: dict[int, dict[str, T]] = {}
    named: dict[tuple[str, ...], list[str]] = {}  # the CRM's names of each set of our fields
    rows = {}
    converted = _Converted(value, as_is)
    for update in updates:
        values = update.values
        row = made.get(id(values))
        if row is None:
            row = None if kept is None else kept.get(stream.name, values)
            if row is None:
                keys = tuple(values)
                theirs = named.get(keys)
                if theirs is None:
                    refused = sorted(set(keys) - set(stream.writable))
                    if refused:
                        raise ValueError(f"Handoff does not write {refused} on {stream.name}")
                    theirs = named[keys] = [names[key] for key in keys]
                row = dict(zip(theirs, map(converted, values.values()), strict=True))
                if kept is not None:
                    kept.keep(stream.name, values, row)
            made[id(values)] = row
        rows[update.id] = row
    return rows


class _Converted(Generic[T]):
    """``value`` of each value, kept by the value and its type (1, 1.0 and True are equal keys
    of a dict, yet written apart); a value of a type in ``as_is`` as it is, and one that cannot
    be a key converted each time."""

    def __init__(self, value: Callable[[Any], T], as_is: Collection[type] = ()) -> None:
        self._value = value
        self._as_is = frozenset(as_is)
        self._seen: dict[tuple[type, Any], T] = {}

    def __call__(self, raw: Any) -> T:
        kind = type(raw)
        if kind in self._as_is:
            return raw  # type: ignore[no-any-return]
        key = (kind, raw)
        try:
            return self._seen[key]
        except KeyError:
            made = self._seen[key] = self._value(raw)
            return made
        except TypeError:  # unhashable
            return self._value(raw)
