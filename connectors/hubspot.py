"""The HubSpot connector: list and search pulls, archived and merged records, batch writes.

A full load lists every record (100 a page, associations inline) after one search for the
latest modification time, which becomes the cursor: anything modified while the list runs is
later than it. Each list page ends in a checkpoint that carries the list's ``after`` token, so a
load stopped part way (the API budget, a crash) goes on from that page next run.
An incremental pull reads the recycle bin first (archived records become tombstones), then
searches ``<modified> >= cursor`` sorted ascending, 200 a page; search stops at 10,000 results,
so the pull opens a new window at the last timestamp it delivered and goes on. Survivors of a
merge name the ids merged into them: each becomes a tombstone.
Web and marketing touches come from the events API, ordered by time, 100 a page.
Writes are batch updates, 100 records a call; only records answered retriable go again, and a
batch refused whole for one bad value is halved until that record stands alone.

    connector = HubSpotConnector(settings.hubspot, rules=book)
    for item in connector.pull("contacts", cursor): ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from connectors.batches import chunked
from connectors.budget import DEFAULT_SHARE, Budget
from connectors.config import HubSpotSettings
from connectors.errors import (
    ApiError,
    BudgetExhausted,
    ConnectorError,
    InvalidRequest,
    RetriableError,
    record_status,
)
from connectors.http import HttpPolicy, PageTokens
from connectors.hubspot_api import HubSpotApi
from connectors.hubspot_setup import ensure_schema
from connectors.protocol import (
    FULL_LOAD,
    Checkpoint,
    Cursor,
    Item,
    Record,
    SchemaReport,
    SchemaSpec,
    Tombstone,
    Update,
    Usage,
    WriteResult,
)
from connectors.rules import RuleBook
from connectors.schema import OWNED_FIELDS, OWNER
from connectors.streams import HUBSPOT_STREAMS, Link, Stream, normalise, stamp
from connectors.tally import Tally

__all__ = ["BATCH_SIZE", "LIST_PAGE", "SEARCH_CAP", "SEARCH_PAGE", "HubSpotConnector"]

LIST_PAGE = 100
SEARCH_PAGE = 200
SEARCH_CAP = 10_000  # search answers no page past the 10,000th result
BATCH_SIZE = 100
_EVENTS_PAGE = 100
_OWNERS_PAGE = 500
_ASSOCIATIONS_BATCH = 1000
_FIND_CHUNK = 100
_MS = timedelta(milliseconds=1)
# our field -> the HubSpot property write-back sets
_WRITE_NAMES: dict[str, str] = {f.key: f.hubspot for f in OWNED_FIELDS} | {
    OWNER: "hubspot_owner_id"
}


@dataclass
class _Window:
    """One search window: whether it stopped at the result cap (so another must follow)."""

    capped: bool = False


class HubSpotConnector:
    """One HubSpot portal behind the `connectors.protocol.Connector` protocol."""

    crm = "hubspot"

    def __init__(
        self,
        settings: HubSpotSettings,
        *,
        host: str | None = None,
        policy: HttpPolicy | None = None,
        budget_share: float = DEFAULT_SHARE,
        search_cap: int = SEARCH_CAP,
        rules: RuleBook | None = None,
    ) -> None:
        self.rules = rules or RuleBook()
        self.policy = policy or HttpPolicy(budget=Budget(budget_share))
        self.api = HubSpotApi(settings, self.policy, host)
        self.search_cap = search_cap

    @property
    def streams(self) -> Mapping[str, Stream]:
        """Every HubSpot object this connector pulls, by name."""
        return HUBSPOT_STREAMS

    def pull(self, stream: str, cursor: Cursor = FULL_LOAD) -> Iterator[Item]:
        """Records changed since ``cursor``, tombstones, and checkpoints."""
        declared = _stream(stream)
        tally = Tally(declared.name, calls=lambda: self.policy.budget.calls)
        return tally.closing(self._read(declared, cursor, tally))

    def _read(self, stream: Stream, cursor: Cursor, tally: Tally) -> Iterator[Item]:
        """The items of one pull, from the API that serves the stream."""
        if stream.api == "owners":
            return self._owners(stream, cursor, tally)
        if stream.api == "events":
            return self._events(stream, cursor, tally)
        if cursor.value is None or cursor.resume is not None:
            return self._full(stream, cursor, tally)
        return self._incremental(stream, cursor, tally)

    def find(self, stream: str, field: str, values: Sequence[Any]) -> Iterator[Record]:
        """Live records whose ``field`` (our name) equals one of ``values``."""
        declared = _stream(stream)
        prop = _property(declared, field)
        for chunk in chunked([str(v) for v in values], _FIND_CHUNK):
            filters = [{"propertyName": prop, "operator": "IN", "values": chunk}]
            for raws in self._search(declared, filters, _Window()):
                for item in self._items(declared, raws, self._links(declared, raws), None):
                    if isinstance(item, Record):
                        yield item

    def push(self, stream: str, updates: Sequence[Update]) -> list[WriteResult]:
        """Write owned properties and owners, 100 a call; one result per update, in order."""
        declared = _stream(stream)
        rows = {u.id: _properties(declared, u) for u in updates}
        settled = self.policy.settle(lambda ids: self._batch_update(declared, ids, rows), rows)
        return [settled[u.id] for u in updates]

    def ensure_schema(self, spec: SchemaSpec) -> SchemaReport:
        """Our property group and properties on companies and contacts (`hubspot_setup`)."""
        return ensure_schema(self.api, spec)

    def usage(self) -> Usage:
        """API calls this run and the budget left."""
        return self.policy.budget.usage(self.policy.retries)

    # --- pulls ---------------------------------------------------------------------------------

    def _full(self, stream: Stream, cursor: Cursor, tally: Tally) -> Iterator[Item]:
        """Every live record, a checkpoint per page; the bound is the latest modification time
        when the load began, and ``cursor.resume`` the list page a stopped load goes on from."""
        if cursor.resume is None:
            latest = self._latest(stream)
            if latest is None:
                yield Checkpoint(stream.name, FULL_LOAD)
                return
            cursor = Cursor(latest)
        for raws, after in self._list(stream, archived=False, after=cursor.resume):
            for item in self._items(stream, raws, _inline_links(stream, raws), tally):
                if isinstance(item, Record) and item.modified_at == cursor.value:
                    cursor = cursor.advanced(item.modified_at, item.id)
                yield item
            yield Checkpoint(stream.name, cursor.resuming(after))

    def _incremental(self, stream: Stream, cursor: Cursor, tally: Tally) -> Iterator[Item]:
        """Archived since the cursor, then search windows until the last one is done."""
        start = cursor
        for raws, _ in self._list(stream, archived=True):
            for raw in raws:
                archived_at = stamp(raw.get("archivedAt")) or stamp(raw["updatedAt"])
                assert archived_at is not None
                if start.admits(archived_at, raw["id"]):
                    yield Tombstone(stream.name, raw["id"], archived_at, "archived")
        while True:
            opened, window = cursor, _Window()
            for raws in self._search(stream, [_since(stream, opened)], window):
                for item in self._items(stream, raws, self._links(stream, raws), tally):
                    if isinstance(item, Tombstone):
                        yield item
                    elif cursor.admits(item.modified_at, item.id):
                        cursor = cursor.advanced(item.modified_at, item.id)
                        yield item
                yield Checkpoint(stream.name, cursor)
            if not window.capped:
                return
            if cursor.value == opened.value:
                raise ConnectorError(
                    f"more than {self.search_cap} {stream.name} share the modification time "
                    f"{cursor.value}; search cannot page past them"
                )

    def _events(self, stream: Stream, cursor: Cursor, tally: Tally) -> Iterator[Item]:
        """Web and marketing events, oldest first (``occurredAfter`` is exclusive)."""
        after = None if cursor.value is None else (cursor.value - _MS).isoformat()
        fetch = partial(
            self.api.call, self.api.events.get_page, limit=_EVENTS_PAGE, occurred_after=after
        )
        for page, _ in _pages(fetch):
            for raw in page["results"]:
                at = stamp(raw["occurredAt"])
                assert at is not None
                if cursor.admits(at, raw["id"]):
                    cursor = cursor.advanced(at, raw["id"])
                    yield self._record(stream, raw["id"], at, raw, tally)
            yield Checkpoint(stream.name, cursor)

    def _owners(self, stream: Stream, cursor: Cursor, tally: Tally) -> Iterator[Item]:
        """Every owner, active and archived (inactive users); one checkpoint at the end."""
        latest = cursor
        for archived in (False, True):
            fetch = partial(
                self.api.call, self.api.owners.get_page, limit=_OWNERS_PAGE, archived=archived
            )
            for page, _ in _pages(fetch):
                for raw in page["results"]:
                    at = stamp(raw["updatedAt"])
                    assert at is not None
                    if cursor.admits(at, raw["id"]):
                        latest = latest.advanced(at, raw["id"])
                        yield self._record(stream, raw["id"], at, raw, tally)
        yield Checkpoint(stream.name, latest)

    def _latest(self, stream: Stream) -> datetime | None:
        """The latest modification time of a live record (None when there are none)."""
        body = {
            "sorts": [{"propertyName": stream.replication_key, "direction": "DESCENDING"}],
            "properties": [stream.replication_key],
            "limit": 1,
        }
        page = self.api.call(self.api.search.do_search, stream.path, body)
        results = page["results"]
        return stamp(results[0]["properties"][stream.replication_key]) if results else None

    def _list(
        self, stream: Stream, archived: bool, after: str | None = None
    ) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """Pages of the list API (the recycle bin with ``archived``) from ``after``, each with
        the token of the page that follows it (None after the last)."""
        names = None if archived else self._names(stream)
        targets = None if archived else [link.target for link in stream.links] or None
        fetch = partial(
            self.api.call,
            self.api.objects.get_page,
            stream.path,
            limit=LIST_PAGE,
            properties=names,
            associations=targets,
            archived=archived,
        )
        for page, token in _pages(fetch, after):
            yield page["results"], token

    def _search(
        self, stream: Stream, filters: list[dict[str, Any]], window: _Window
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of one search window, oldest modification first, up to the result cap."""
        body: dict[str, Any] = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": stream.replication_key, "direction": "ASCENDING"}],
            "properties": self._names(stream),
            "limit": SEARCH_PAGE,
        }
        tokens = PageTokens()
        while True:
            page = self.api.call(self.api.search.do_search, stream.path, body)
            yield page["results"]
            token = tokens.next(_next_after(page))
            if token is None:
                return
            if int(token) >= self.search_cap:
                window.capped = True
                return
            body = {**body, "after": token}

    def _links(
        self, stream: Stream, raws: Sequence[Mapping[str, Any]]
    ) -> dict[str, dict[str, str]]:
        """Our linked fields of a search page, from batch association reads (v4)."""
        found: dict[str, dict[str, str]] = {str(raw["id"]): {} for raw in raws}
        for link in stream.links:
            for chunk in chunked(list(found), _ASSOCIATIONS_BATCH):
                answer = self.api.call(
                    self.api.associations.get_page,
                    stream.path,
                    link.target,
                    {"inputs": [{"id": i} for i in chunk]},
                )
                for result in answer.get("results", []):
                    chosen = _v4_choice(link, result.get("to", []))
                    if chosen is not None:
                        found[str(result["from"]["id"])][link.ours] = chosen
        return found

    def _items(
        self,
        stream: Stream,
        raws: Iterable[Mapping[str, Any]],
        links: Mapping[str, Mapping[str, str]],
        tally: Tally | None,
    ) -> Iterator[Record | Tombstone]:
        """Records (with their links), each followed by a tombstone per id merged into it."""
        for raw in raws:
            record_id, props = str(raw["id"]), raw["properties"]
            at = stamp(props.get(stream.replication_key)) or stamp(raw["updatedAt"])
            assert at is not None
            linked = {link.ours: None for link in stream.links} | links.get(record_id, {})
            yield self._record(stream, record_id, at, props, tally, linked)
            for merged in _merged_ids(stream, props):
                yield Tombstone(stream.name, merged, at, "merged", record_id)

    def _record(
        self,
        stream: Stream,
        record_id: str,
        at: datetime,
        raw: Mapping[str, Any],
        tally: Tally | None,
        linked: Mapping[str, str | None] | None = None,
    ) -> Record:
        """A raw record (properties, an event or an owner) through the stream's field maps and
        the rules, with its ``linked`` fields; the tally counts what no rule typed."""
        values, warnings = normalise(stream, raw, stream.fields)
        derived, unmatched = self.rules.derive(stream, raw)
        if unmatched and tally is not None:
            tally.unmatched_kind(unmatched)
        return Record(stream.name, record_id, at, values | derived | dict(linked or {}), warnings)

    def _names(self, stream: Stream) -> list[str]:
        """The properties a pull asks for: mapped, read by the rules, modified, merged."""
        extra = [stream.replication_key, *([stream.merge_field] if stream.merge_field else [])]
        return list(dict.fromkeys([*stream.crm_fields(), *self.rules.fields(stream), *extra]))

    # --- writes --------------------------------------------------------------------------------

    def _batch_update(
        self, stream: Stream, ids: Sequence[str], rows: Mapping[str, Mapping[str, str]]
    ) -> dict[str, WriteResult]:
        """Update ``ids`` 100 a call; a 207 says which records failed and why. HubSpot refuses
        a whole batch (400) for one invalid value without naming the record, so a refused
        batch is split in halves until each bad record stands alone."""
        answered: dict[str, WriteResult] = {}
        pending = list(chunked(ids, BATCH_SIZE))
        while pending:
            chunk = pending.pop(0)
            inputs = [{"id": i, "properties": rows[i]} for i in chunk]
            try:
                answer = self.api.call(self.api.batch.update, stream.path, {"inputs": inputs})
            except BudgetExhausted as stop:
                raise BudgetExhausted(str(stop), list(answered.values())) from stop
            except InvalidRequest as refused:
                if len(chunk) == 1:
                    answered[chunk[0]] = _refused(chunk[0], refused)
                else:
                    half = len(chunk) // 2
                    pending[:0] = [chunk[:half], chunk[half:]]
                continue
            except ApiError as refused:
                answered |= {i: _refused(i, refused) for i in chunk}
                continue
            answered |= _batch_results(chunk, answer)
        return answered


def _stream(name: str) -> Stream:
    if name not in HUBSPOT_STREAMS:
        known = ", ".join(HUBSPOT_STREAMS)
        raise ValueError(f"unknown HubSpot stream {name!r}; expected one of {known}")
    return HUBSPOT_STREAMS[name]


def _property(stream: Stream, field: str) -> str:
    for m in stream.fields:
        if m.ours == field and len(m.theirs) == 1:
            return m.theirs[0]
    raise ValueError(f"{stream.name} has no field {field!r} to look records up by")


def _since(stream: Stream, cursor: Cursor) -> dict[str, Any]:
    """``modified >= cursor`` (epoch milliseconds, as search compares datetimes)."""
    assert cursor.value is not None
    millis = int(cursor.value.timestamp() * 1000)
    return {"propertyName": stream.replication_key, "operator": "GTE", "value": str(millis)}


def _pages(
    fetch: Callable[..., dict[str, Any]], after: str | None = None
) -> Iterator[tuple[dict[str, Any], str | None]]:
    """The pages ``fetch(after=token)`` answers from ``after`` on, each with the token of the
    next page (None after the last); a repeated token stops the read (`PageTokens`)."""
    tokens = PageTokens()
    while True:
        page = fetch(after=after)
        after = tokens.next(_next_after(page))
        yield page, after
        if after is None:
            return


def _next_after(page: Mapping[str, Any]) -> str | None:
    after = ((page.get("paging") or {}).get("next") or {}).get("after")
    return None if after is None else str(after)


def _merged_ids(stream: Stream, props: Mapping[str, Any]) -> list[str]:
    """Ids merged into this record (``hs_merged_object_ids`` is ``;``-separated)."""
    value = props.get(stream.merge_field) if stream.merge_field else None
    return [part for part in str(value or "").split(";") if part]


def _inline_links(stream: Stream, raws: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """Our linked fields from a list page's v3 ``associations`` (primary first)."""
    found: dict[str, dict[str, str]] = {}
    for raw in raws:
        associations = raw.get("associations") or {}
        chosen = {}
        for link in stream.links:
            results = (associations.get(link.target) or {}).get("results") or []
            primary = [r for r in results if not str(r.get("type", "")).endswith("unlabeled")]
            pick = (primary or results or [None])[0]
            if pick is not None:
                chosen[link.ours] = str(pick["id"])
        found[str(raw["id"])] = chosen
    return found


def _v4_choice(link: Link, targets: Sequence[Mapping[str, Any]]) -> str | None:
    """The associated record a link reads: one of its primary type, else the first."""
    primary = [
        t
        for t in targets
        if any(a.get("typeId") == link.primary_type for a in t.get("associationTypes", []))
    ]
    chosen = (primary or list(targets) or [None])[0]
    return None if chosen is None else str(chosen["toObjectId"])


def _hubspot_value(value: Any) -> str:
    """A property value as HubSpot takes it: text, datetimes in UTC ISO 8601, empty clears."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _properties(stream: Stream, update: Update) -> dict[str, str]:
    """An update's values as HubSpot properties; only the fields we may write."""
    refused = sorted(set(update.values) - set(stream.writable))
    if refused:
        raise ValueError(f"Handoff does not write {refused} on {stream.name}")
    return {_WRITE_NAMES[key]: _hubspot_value(v) for key, v in update.values.items()}


def _batch_results(chunk: Sequence[str], answer: Mapping[str, Any]) -> dict[str, WriteResult]:
    """Per-record results of a batch answer (200, or 207 with ``errors``)."""
    results = {str(r["id"]): WriteResult(str(r["id"]), "ok") for r in answer.get("results", [])}
    for error in answer.get("errors", []):
        code = error.get("subCategory") or error.get("category")
        context = error.get("context") or {}
        for record_id in context.get("ids") or context.get("id") or []:
            results[str(record_id)] = WriteResult(
                str(record_id), record_status(code), code, error.get("message")
            )
    missing = "HubSpot answered nothing for this record"
    return {i: results.get(i) or WriteResult(i, "permanent", "NO_RESULT", missing) for i in chunk}


def _refused(record_id: str, refused: ApiError) -> WriteResult:
    """A record of a call refused as a whole (after the policy's own retries)."""
    status = "retriable" if isinstance(refused, RetriableError) else "permanent"
    return WriteResult(record_id, status, refused.code, refused.message)
