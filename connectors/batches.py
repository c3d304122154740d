"""Slicing work into the batch sizes the CRMs take, and the rows a push writes."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, Generic, TypeVar

from connectors.protocol import Update
from connectors.streams import Stream

__all__ = ["chunked", "written_rows"]

T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items (``itertools.batched`` is Python 3.12+)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def written_rows(
    stream: Stream,
    updates: Sequence[Update],
    names: Mapping[str, str],
    value: Callable[[Any], T],
    as_is: Collection[type] = (),
) -> dict[str, dict[str, T]]:
    """Each update's values under the CRM's field ``names``, each as ``value`` writes it (a
    value of a type in ``as_is`` as it is: ``value`` would return it unchanged), by record id;
    only fields the stream lets us write. A row is made once for all the updates sharing one
    values mapping (the people linked to an account share its values), and shared by them:
    callers read rows, never change them. A value met again (a run's one scored-at in every
    row) is written out once too."""
    made: dict[int, dict[str, T]] = {}
    named: dict[tuple[str, ...], list[str]] = {}  # the CRM's names of each set of our fields
    rows = {}
    converted = _Converted(value, as_is)
    for update in updates:
        values = update.values
        row = made.get(id(values))
        if row is None:
            keys = tuple(values)
            theirs = named.get(keys)
            if theirs is None:
                refused = sorted(set(keys) - set(stream.writable))
                if refused:
                    raise ValueError(f"Handoff does not write {refused} on {stream.name}")
                theirs = named[keys] = [names[key] for key in keys]
            row = made[id(values)] = dict(zip(theirs, map(converted, values.values()), strict=True))
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
