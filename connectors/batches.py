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
    """The rows `written_rows` made, by stream, kept from one push to the next while the values
    mapping each was made of lives: the people of an account share one mapping, yet a first
    run pushes them a few a call. Only a mapping that takes a weak reference is kept (a plain
    dict is made a row each call), and it must not change once pushed. One holder serves one
    connector, whose field names and conversions never change."""

    def __init__(self) -> None:
        self._streams: dict[str, dict[int, tuple[_Ref, dict[str, Any]]]] = {}

    def __len__(self) -> int:
        return sum(map(len, self._streams.values()))

    def of(self, stream: str) -> dict[int, tuple[_Ref, dict[str, Any]]]:
        """A stream's rows, by the id of the mapping each was made of, with a weak reference
        to it (the row is that mapping's only while the reference gives it)."""
        return self._streams.setdefault(stream, {})

    def keep(self, stream: str, values: Mapping[str, Any], row: dict[str, Any]) -> None:
        """Keep ``row`` for as long as ``values`` lives, if it takes a weak reference."""
        try:  # the mapping's end drops its row, before its id can be another's
            ref = _Ref(values, _dropped)
        except TypeError:
            return
        ref.rows, ref.key = self.of(stream), id(values)
        ref.rows[ref.key] = (ref, row)


class _Ref(weakref.ref[Any]):
    """A weak reference to a values mapping that knows where its row is kept (no closure a
    mapping: a third less memory)."""

    __slots__ = ("key", "rows")
    key: int
    rows: dict[int, tuple[_Ref, dict[str, Any]]]


def _dropped(ref: _Ref) -> None:
    """A kept mapping has ended: its row goes."""
    ref.rows.pop(ref.key, None)


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
    earlier = {} if kept is None else kept.of(stream.name)
    for update in updates:
        values = update.values
        key = id(values)
        row = made.get(key)
        if row is None:
            found = earlier.get(key)
            if found is not None and found[0]() is values:
                row = found[1]
            else:
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
            made[key] = row
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
