"""Pages of JSON records read as text columns by polars, out of the interpreter lock.

A HubSpot list answer (``{"results": [...], "paging": {...}}``) is read here without a Python
object per record: its ``results`` array is cut from the answer as it came (`cut`, which reads
only the paging token that names the next page), the arrays of a group of answers are joined
into JSON arrays of about a megabyte each, and polars reads them into columns, as a schema of
what is read says (`read_records`), in its own threads while our thread goes on (storing the
group before). The columns are those `PageReader` makes of the same records read as JSON
(`connectors.page_reader`: a field one step into an object, ``properties.hs_url``, walked to;
`json_text_columns`), so what follows reads them alike.

polars reads a number, or true, where text is expected as its text ("1500" for 1.5e3, "true"
where Python's text of True is "True"), and an escaped lone surrogate as something else again.
So a group is read here only when no key the schema names holds anything but what it says
(text, an object, an array) or null, no array holds a null (a null record, which the JSON
reading refuses), and no surrogate or printable character is escaped (a key written
``"i\\u0064"`` would escape the search otherwise): a search of the joined text, also by polars,
in a thread of its own while the text is read (the reading is dropped when the search finds any).
Otherwise, or when polars refuses the text (trailing data, not UTF-8), None comes back and the
caller reads the answers as JSON, as before. A record naming one key twice keeps the first value
here where orjson keeps the last; HubSpot sends no such record (JSON names should be unique:
RFC 8259).

An answer whose records come last, after scalars (``{"hasMore": true, "offset": "x", "events":
[...]}``, the email events API's), is cut by `cut_last`, its scalars read. A schema may name
whole numbers (``pl.Int64``) too: a key so named must hold an integer written as one, or null.

    page = cut(body)                             # None: not in the usual shape; read it whole
    frame = json_text_columns([page.results, ...], ["id", "properties.hs_url"])
    events = cut_last(body, "events")            # events.items, events.head["hasMore"]
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
import polars as pl
from polars.exceptions import PanicException

__all__ = ["CutArray", "CutPage", "cut", "cut_last", "json_text_columns", "read_records"]

# the text polars reads at a time (`read_records`): a page group's whole text (~8 MB of events)
# in one read took buffers past the 8 MiB beyond which polars' allocator (jemalloc) maps memory
# afresh and gives it back at once, each page of it faulted in anew; read a portion at a time,
# the same buffers serve every portion (10 MB of events in one read: 1,730 ns a record; in
# portions of 1.2 MB, put together: 1,035)
READ_BYTES = 1 << 20
_HEAD = b'{"results":['
_PAGING = b'],"paging":'


@dataclass(frozen=True)
class CutPage:
    """An answer as it came (``body``), the inner text of its ``results`` array, and the token
    of the next page (None after the last)."""

    body: bytes
    results: bytes
    after: str | None


def cut(body: bytes) -> CutPage | None:
    """``body`` cut into its results' text and its next page's token, without reading the
    results, when it is in the shape HubSpot answers a list with (compact, ``results`` first,
    then ``paging`` or nothing); None otherwise (whitespace, other keys, another order). Only the
    tail after the last ``],"paging":`` is read, and it must be the paging object alone: inside a
    text that sequence would need an unescaped quote, so the last one is the answer's own."""
    if not body.startswith(_HEAD):
        return None
    at = body.rfind(_PAGING)
    if at < 0:  # the last page: read whole, once a pull, that nothing follows its results
        try:
            whole = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(whole, dict) or set(whole) != {"results"} or not body.endswith(b"]}"):
            return None
        return CutPage(body, body[len(_HEAD) : -2], None)
    try:
        tail = orjson.loads(b"{" + body[at + 2 :])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(tail, dict) or set(tail) != {"paging"}:
        return None
    after = ((tail["paging"] or {}).get("next") or {}).get("after")
    return CutPage(body, body[len(_HEAD) : at], None if after is None else str(after))


@dataclass(frozen=True)
class CutArray:
    """An answer as it came (``body``), the inner text of the array its last key holds
    (``items``), and the scalars before it, read (``head``)."""

    body: bytes
    items: bytes
    head: dict[str, Any]


# the scalars before the array: no escape inside a text, so no quote either (a quote inside a
# text is escaped), and what the group matches is the answer's own keys and values
_SCALAR = rb'(?:true|false|null|-?[0-9]+|"[^"\\]*")'


@cache
def _before(key: str) -> re.Pattern[bytes]:
    named = re.escape(key.encode())
    return re.compile(
        rb'\s*\{((?:\s*"[A-Za-z_]+"\s*:\s*' + _SCALAR + rb'\s*,)*)\s*"' + named + rb'"\s*:\s*\['
    )


def cut_last(body: bytes, key: str) -> CutArray | None:
    """``body`` cut into the inner text of the array ``key`` holds and the scalars before it
    (read), without reading the array, when ``key`` is the answer's last key and only scalars
    (texts without escapes, integers, true, false, null) come before it; None otherwise. The
    answer must end with the array and the object closing: were a key to follow the array, the
    cut would hold it and polars would refuse the text (`read_records` gives None then)."""
    head = _before(key).match(body)
    end = len(body.rstrip())
    if head is None or body[end - 1 : end] != b"}":
        return None
    end = len(body[: end - 1].rstrip())
    if body[end - 1 : end] != b"]":
        return None
    try:
        scalars = orjson.loads(b"{" + head.group(1).rstrip().rstrip(b",") + b"}")
    except orjson.JSONDecodeError:  # a control character in a text
        return None
    return CutArray(body, body[head.end() : end - 1], scalars)


def json_text_columns(parts: Sequence[bytes], names: Sequence[str]) -> pl.DataFrame | None:
    """The records of ``parts`` (the inner texts of results arrays, `cut`) as the text columns
    ``names``: a record's value of each, or of a name ``head.field`` the value of ``field`` in
    its object ``head``, null where missing. None when a value of one of them is not text or
    null (an object or null for a ``head``), an escaped surrogate is in the text, a record holds
    a key named as a dotted name, a name walks deeper than one object, or polars cannot read the
    text: then the records are to be read as JSON."""
    schema: dict[str, Any] = {}
    for name in names:
        head, dotted, field = name.partition(".")
        if "." in field:
            return None
        if dotted:
            inner = schema.get(head)
            fields = dict(inner.to_schema()) if isinstance(inner, pl.Struct) else {}
            schema[head] = pl.Struct(fields | {field: pl.String})
        elif name not in schema:
            schema[name] = pl.String
    dotted_names = [name for name in names if "." in name]
    frame = read_records(parts, schema, absent=dotted_names)
    if frame is None:
        return None
    columns = []
    for name in names:  # text, as the schema read them
        head, dotted, field = name.partition(".")
        column = frame.get_column(head)
        columns.append((column.struct.field(field) if dotted else column).alias(name))
    return pl.DataFrame(columns)


def read_records(
    parts: Sequence[bytes], schema: Mapping[str, Any], absent: Collection[str] = ()
) -> pl.DataFrame | None:
    """The records of ``parts`` (the inner texts of results arrays, `cut`) read by polars as
    ``schema`` says (keys it does not name left out, a key it names but a record lacks null),
    when each value of a key the schema names, in whatever object, is what the schema says or
    null: text for a text field, an object for a struct, an array for a list, an integer
    written as one (no fraction, no exponent, at most 18 digits) for a whole number
    (``pl.Int64``). None otherwise,
    or when a key of ``absent`` is in the text, a surrogate is escaped, or polars cannot read
    the text (not UTF-8, broken): then the records are to be read as JSON.

    The records are read a portion of about `READ_BYTES` of text at a time (whole parts) and
    put together: each portion is an array of its own, checked and read as the whole would be."""
    kinds: dict[str, set[str]] = {"text": set(), "object": set(), "list": set(), "whole": set()}
    _kinds(schema, kinds)
    odd = _odd_values(
        *(tuple(sorted(kinds[k])) for k in ("text", "object", "list", "whole")),
        tuple(sorted(absent)),
    )
    frames = []
    size = READ_BYTES if schema else sys.maxsize  # no columns: one read counts the records
    for portion in _portions([part for part in parts if part.strip()], size):
        frame = _read_portion(b"[" + b",".join(portion) + b"]", schema, odd)
        if frame is None:
            return None
        frames.append(frame)
    return frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=True)


def _portions(parts: Sequence[bytes], size: int) -> Iterator[list[bytes]]:
    """``parts`` in consecutive runs of about ``size`` bytes each (a part longer than that a
    run alone); one run, empty, when there are none."""
    run: list[bytes] = []
    held = 0
    for part in parts:
        if run and held + len(part) > size:
            yield run
            run, held = [], 0
        run.append(part)
        held += len(part) + 1
    yield run


def _read_portion(text: bytes, schema: Mapping[str, Any], odd: str) -> pl.DataFrame | None:
    """The records of the JSON array ``text`` read as ``schema`` says, or None where the check
    finds ``odd`` in it or polars refuses it (`read_records`)."""
    checking = _checks().submit(_holds_odd, text, odd)  # beside the reading: both leave the lock
    try:
        frame: pl.DataFrame | None = pl.read_json(io.BytesIO(text), schema=dict(schema))
    except (Exception, PanicException):  # whatever polars refuses, or odd text it read wrong
        frame = None
    return None if checking.result() else frame


def _holds_odd(text: bytes, odd: str) -> bool:
    """Whether ``text`` holds what ``odd`` finds, or polars cannot search it (not UTF-8)."""
    try:
        return bool(pl.Series([text]).cast(pl.String).str.contains(odd).item())
    except (Exception, PanicException):
        return True


@cache
def _checks() -> ThreadPoolExecutor:
    """The thread a portion's check runs in while the reading thread reads it: a portion's
    search and its reading each take one core (on a page group of 30,000 events, 10 and 25 ms
    in all), so side by side they take the longer's time, not both."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="page-check")


os.register_at_fork(after_in_child=_checks.cache_clear)  # a forked child has no such thread


def _kinds(schema: Mapping[str, Any], kinds: dict[str, set[str]]) -> None:
    """The keys of ``schema`` (and of its structs', and its lists' elements') by what they
    hold: text, an object, an array or a whole number."""
    for name, kind in schema.items():
        if isinstance(kind, pl.Struct):
            kinds["object"].add(name)
            _kinds(dict(kind.to_schema()), kinds)
        elif isinstance(kind, pl.List):
            kinds["list"].add(name)
            if isinstance(kind.inner, pl.Struct):
                _kinds(dict(kind.inner.to_schema()), kinds)
        elif kind == pl.Int64:
            kinds["whole"].add(name)
        else:
            kinds["text"].add(name)


# JSON's whitespace between tokens (RFC 8259), spelled out: the regex engine scans for it as
# bytes, where \s is every Unicode space (a page's check ran a third longer so)
_SPACES = r" \t\n\r"
_WS = rf"[{_SPACES}]*"


@cache
def _odd_values(
    texts: tuple[str, ...],
    objects: tuple[str, ...],
    lists: tuple[str, ...],
    wholes: tuple[str, ...],
    absent: tuple[str, ...],
) -> str:
    """A pattern found where a key of ``texts`` holds what is neither text nor null, one of
    ``objects`` neither an object nor null, one of ``lists`` neither an array nor null, one of
    ``wholes`` neither an integer written as one nor null, a key of ``absent`` is, an array
    holds a null, or a surrogate or a printable character is escaped."""
    found = []
    for keys, allowed in ((texts, '"'), (objects, "{"), (lists, r"\["), (wholes, "-0-9")):
        if keys:
            named = "|".join(map(re.escape, keys))
            found.append(rf'"(?:{named})"{_WS}:{_WS}[^{allowed}n{_SPACES}]')
    if wholes:  # 1.7e12 or 2.0 polars would read as a whole number, one of 19 digits as null
        named = "|".join(map(re.escape, wholes))
        found.append(rf'"(?:{named})"{_WS}:{_WS}-?(?:[0-9]+[.eE]|[0-9]{{19}})')
    if absent:
        found.append(rf'"(?:{"|".join(map(re.escape, absent))})"{_WS}:')
    found.append(rf"[\[,]{_WS}null{_WS}[,\]]")  # a null record, or a null in any array
    # an escaped surrogate (read otherwise), or an escaped printable character (a key so
    # written, "i\u0064", would be missed by the searches above)
    found.append(r"\\u(?:[dD][89abAB]|00[2-7][0-9a-fA-F])")
    return "|".join(found)
