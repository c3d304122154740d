"""``query`` and ``queryAll``: SOQL over the records, paged through query cursors.

A query runs once; its result frame is the cursor's snapshot, so later writes never shift the
pages. A page holds 2,000 records unless ``Sforce-Query-Options: batchSize=N`` (200-2,000) asks
fewer; ``nextRecordsUrl`` is ``/services/data/vXX.X/query/{cursor}-{offset}``. A user has at
most 10 open cursors: opening another drops the least recently used (finished ones first),
and an unknown or dropped cursor is INVALID_QUERY_LOCATOR.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import polars as pl

from sandbox.http import Request, Response, Route
from sandbox.salesforce.errors import SalesforceError
from sandbox.salesforce.ids import make_id
from sandbox.salesforce.routing import api_route
from sandbox.salesforce.state import OrgState
from sandbox.soql import Query, Schema, SoqlError, count, execute, parse, records_json

__all__ = ["Cursors", "QueryService", "run_soql"]

_MIN_BATCH, _MAX_BATCH = 200, 2000
_BATCH = re.compile(r"batchSize\s*=\s*([0-9]+)", re.IGNORECASE)


@dataclass
class _Cursor:
    """A query's result, being paged through."""

    id: str
    frame: pl.DataFrame
    query: Query
    schema: Schema
    finished: bool = False


class Cursors:
    """Open query cursors, least recently used first; thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: OrderedDict[str, _Cursor] = OrderedDict()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def open(self, frame: pl.DataFrame, query: Query, schema: Schema) -> _Cursor:
        """A new cursor over ``frame``, dropping the stalest beyond the limit."""
        with self._lock:
            cursor = _Cursor(make_id("QueryLocator", next(self._numbers)), frame, query, schema)
            self._open[cursor.id] = cursor
            while len(self._open) > self.limit:
                stale = next((c for c in self._open.values() if c.finished), None)
                del self._open[stale.id if stale else next(iter(self._open))]
            return cursor

    def get(self, cursor_id: str) -> _Cursor:
        """An open cursor, now the most recently used."""
        with self._lock:
            cursor = self._open.get(cursor_id)
            if cursor is None:
                raise SalesforceError("INVALID_QUERY_LOCATOR", "invalid query locator")
            self._open.move_to_end(cursor_id)
            return cursor


def run_soql(
    text: str, tables: dict[str, pl.DataFrame], schema: Schema, include_deleted: bool
) -> tuple[Query, pl.DataFrame | int]:
    """The parsed query and its rows (or, for ``SELECT COUNT()``, how many)."""
    try:
        query = parse(text)
        if query.count_only:
            return query, count(query, tables, schema, include_deleted=include_deleted)
        return query, execute(query, tables, schema, include_deleted=include_deleted)
    except SoqlError as refused:
        raise SalesforceError(refused.error_code, refused.message) from refused


class QueryService:
    """The query routes over one org."""

    def __init__(self, state: OrgState) -> None:
        self.state = state
        self.cursors = Cursors(state.options.max_cursors)

    def routes(self) -> list[Route]:
        """``query``, ``queryAll`` and their next pages."""
        return [
            api_route("GET", r"/query/?", "query", lambda r: self.first(r, "query")),
            api_route("GET", r"/queryAll/?", "queryAll", lambda r: self.first(r, "queryAll")),
            *(
                api_route(
                    "GET",
                    rf"/(?P<resource>{resource})/(?P<cursor>01g\w+)-(?P<offset>[0-9]+)",
                    resource,
                    self.more,
                )
                for resource in ("query", "queryAll")
            ),
        ]

    def first(self, request: Request, resource: str) -> Response:
        """The first page of a query's result."""
        text = request.arg("q")
        if not text:
            raise SalesforceError("MALFORMED_QUERY", "A query string has to be specified")
        schema = self.state.catalog.soql_schema()
        tables = self.state.records.frames()
        query, rows = run_soql(text, tables, schema, resource == "queryAll")
        if isinstance(rows, int):
            return _page_response(rows, True, None, "[]")
        if rows.height <= _batch_size(request, self.state.options.page_size):
            body = records_json(rows, query, schema, api_version=request.params["version"])
            return _page_response(rows.height, True, None, body)
        return self._page(request, resource, self.cursors.open(rows, query, schema), 0)

    def more(self, request: Request) -> Response:
        """A later page: ``{resource}/{cursor}-{offset}``."""
        cursor = self.cursors.get(request.params["cursor"])
        offset = int(request.params["offset"])
        if offset > cursor.frame.height:
            raise SalesforceError("INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(request, request.params["resource"], cursor, offset)

    def _page(self, request: Request, resource: str, cursor: _Cursor, offset: int) -> Response:
        """The page of ``cursor`` starting at ``offset``, linking the next one unless done."""
        version = request.params["version"]
        chunk = cursor.frame.slice(offset, _batch_size(request, self.state.options.page_size))
        end = offset + chunk.height
        done = end >= cursor.frame.height
        cursor.finished = cursor.finished or done
        next_url = None if done else f"/services/data/v{version}/{resource}/{cursor.id}-{end}"
        body = records_json(chunk, cursor.query, cursor.schema, api_version=version)
        return _page_response(cursor.frame.height, done, next_url, body)


def _batch_size(request: Request, default: int) -> int:
    """Records per page: ``Sforce-Query-Options: batchSize=N`` within 200..2000, else default."""
    found = _BATCH.search(request.headers.get("sforce-query-options", ""))
    if found is None:
        return default
    return min(max(int(found.group(1)), _MIN_BATCH), _MAX_BATCH)


def _page_response(total: int, done: bool, next_url: str | None, records: str) -> Response:
    """``{"totalSize", "done", "nextRecordsUrl"?, "records"}``, records spliced in as JSON."""
    link = f'"nextRecordsUrl":"{next_url}",' if next_url else ""
    body = f'{{"totalSize":{total},"done":{"true" if done else "false"},{link}"records":{records}}}'
    return Response(200, body.encode())
