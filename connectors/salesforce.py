"""The Salesforce connector: SOQL pulls on SystemModstamp, sObject Collections and Bulk 2.0 writes.

Pulls ask ``SystemModstamp >= since ORDER BY SystemModstamp, Id``, through ``queryAll`` when
incremental so deleted and merged records arrive as tombstones. ``since`` is the cursor less
``overlap_minutes``: a transaction's SystemModstamp is taken before it commits, so a record can
appear behind a cursor that has passed its stamp; what the window reads again is delivered
marked ``reread`` (`connectors.protocol.Cursor.overlap`). Once the window has closed the pull
starts at the bound itself, past the ids delivered there (keyset on SystemModstamp and Id), so
a cycle with nothing new is one query that returns no rows. Task and Event are read through
``queryAll`` on full loads too (live rows only), since ``query`` hides activities archived
after a year. ``IsDeleted`` is selected only where describe lists it (User has none).
A full load whose first page says it holds more than ``bulk_threshold`` rows reads the rest
through a Bulk API 2.0 query, with a checkpoint after each result page that names the job and
the page to go on from; if that job is gone when a stopped load resumes (results live for
days), the load starts over. Each result page, Bulk or REST, is read by polars and delivered
as one `RecordBatch` (`connectors.page_reader`; ``batches=False`` reads it a `Record` a
row, to the same records, as is a REST page holding a value its text would not stand for).
A Bulk page is read in a thread of its own while the caller stores the page before it
(`connectors.ahead`); the next page is fetched once that read is done. Writes go 200 records a
call through sObject Collections with ``allOrNone=false``, a call filled across objects when
several are written together (`push_together`), through one Bulk API 2.0 job above
``bulk_write_threshold``; only records answered retriable (a locked row) are sent again. An
object Bulk API refuses (400 INVALIDENTITY) is paged and written through REST instead.

    connector = SalesforceConnector(settings.salesforce, session=client_session(url), rules=book)
    for item in connector.pull("Account", cursor): ...
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import requests
from simple_salesforce.format import format_soql

from connectors.ahead import read_ahead
from connectors.batches import KeptRows, chunked, written_rows
from connectors.budget import DEFAULT_SHARE, Budget
from connectors.config import SalesforceSettings
from connectors.errors import ApiError, BudgetExhausted, NotFound, RetriableError, record_status
from connectors.http import HttpPolicy, PageTokens
from connectors.keys import guessed, modified_at, read_id, skip_reason
from connectors.money import Money, Rates
from connectors.page_reader import PageReader
from connectors.protocol import (
    FULL_LOAD,
    Checkpoint,
    Cursor,
    Item,
    Record,
    SchemaGap,
    SchemaReport,
    SchemaSpec,
    Tombstone,
    Update,
    Usage,
    WriteResult,
)
from connectors.rules import RuleBook
from connectors.salesforce_api import COMPOSITE_SIZE, SalesforceApi
from connectors.salesforce_bulk import (
    bulk_contents,
    bulk_pages,
    bulk_query_job,
    bulk_update,
    csv_frame,
    json_value,
    refused_by_bulk,
)
from connectors.salesforce_setup import ensure_schema, schema_gaps
from connectors.schema import OWNED_FIELDS, OWNER, FoundField
from connectors.streams import SALESFORCE_STREAMS, FieldMap, Stream, flag, normalise
from connectors.tally import Tally

__all__ = ["BULK_PAGE_SIZE", "COLLECTION_SIZE", "PAGE_SIZE", "SalesforceConnector"]

PAGE_SIZE = 2000  # the most records a REST query page holds
BULK_PAGE_SIZE = 50_000  # records per Bulk API 2.0 result page
COLLECTION_SIZE = 200  # the most records one sObject Collections call takes
_MAX_CHUNKS = 10  # runs of one object a Collections call may hold (Salesforce's "chunks")
_FIND_CHUNK = 200  # values per IN list of a lookup
# what a row's time falls back to when SystemModstamp is unreadable: every object has both
_FALLBACK_STAMPS = ("LastModifiedDate", "CreatedDate")
_CURRENCY = "CurrencyIsoCode"  # a record's currency; only multi-currency orgs have it
_CURRENCY_TYPES = "SELECT IsoCode, ConversionRate, IsCorporate, IsActive FROM CurrencyType"
# Objects whose old records Salesforce archives (activities after a year): ``query`` hides them,
# ``queryAll`` returns them, so full loads read these through queryAll, live rows only.
# https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_guidelines_archive.htm
_ARCHIVING = frozenset({"Task", "Event"})
# our field -> the Salesforce field write-back sets
_WRITE_NAMES: dict[str, str] = {f.key: f.salesforce for f in OWNED_FIELDS} | {OWNER: "OwnerId"}
_JSON_AS_IS = frozenset({str, int, float, bool, type(None)})  # what `json_value` leaves alone


@dataclass(frozen=True)
class _BulkRead:
    """Where a bulk full load stands: its query job, the next result page, and the bound its
    query started from (rows at ``since`` with an id in ``ids`` were delivered before it)."""

    job: str
    locator: str | None
    since: datetime | None
    ids: frozenset[str]

    def token(self) -> str:
        """The cursor's ``resume`` text."""
        since = None if self.since is None else self.since.isoformat()
        fields = {"job": self.job, "locator": self.locator, "since": since}
        return json.dumps(fields | {"ids": sorted(self.ids)})

    @classmethod
    def parse(cls, token: str) -> _BulkRead:
        """The read a ``resume`` text names."""
        fields = json.loads(token)
        since = None if fields["since"] is None else datetime.fromisoformat(fields["since"])
        return cls(fields["job"], fields["locator"], since, frozenset(fields["ids"]))


_ORG_IN_SESSION = re.compile(r"(00D[0-9A-Za-z]{12})!")  # a session id's org


class SalesforceConnector:
    """One Salesforce org behind the `connectors.protocol.Connector` protocol."""

    crm = "salesforce"

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        session: requests.Session | None = None,
        policy: HttpPolicy | None = None,
        budget_share: float = DEFAULT_SHARE,
        page_size: int = PAGE_SIZE,
        bulk_page_size: int = BULK_PAGE_SIZE,
        rules: RuleBook | None = None,
        batches: bool = True,
    ) -> None:
        self.settings = settings
        self.batches = batches  # pages as `RecordBatch`es; False: a `Record` a row
        self.rules = rules or RuleBook()
        self.policy = policy or HttpPolicy(budget=Budget(budget_share))
        self.api = SalesforceApi(settings, self.policy, session)
        self.page_size = page_size
        self.bulk_page_size = bulk_page_size
        self._described: dict[str, dict[str, str]] = {}
        self._picklists: dict[str, dict[str, tuple[str, ...]]] = {}  # object -> field -> values
        self._absent: dict[str, NotFound] = {}  # objects the org lacks: their describe's 404
        self._rates: Rates | None = None
        self._rest_only: set[str] = set()  # objects Bulk API refused: read and write by REST
        self._kept_rows = KeptRows()  # rows pushed, while their values live (`written_rows`)

    @property
    def streams(self) -> Mapping[str, Stream]:
        """Every Salesforce object this connector pulls, by name."""
        return SALESFORCE_STREAMS

    def pull(self, stream: str, cursor: Cursor = FULL_LOAD) -> Iterator[Item]:
        """Records changed since ``cursor``, deletions, a checkpoint after every page, and the
        pull's summary last."""
        declared = _stream(stream)
        tally = Tally(declared.name, calls=lambda: self.policy.budget.calls)
        return tally.closing(self._pull(declared, cursor, tally))

    def _pull(self, declared: Stream, cursor: Cursor, tally: Tally) -> Iterator[Item]:
        """The pull of one stream (a generator, so `pull` checks the name at once)."""
        maps, merge = self._maps(declared)
        money = self._money(declared, maps)
        if cursor.resume is not None:
            yield from self._resumed_bulk(declared, maps, merge, cursor, tally)
            return
        incremental = cursor.value is not None
        since = cursor.overlap(self.settings.overlap)
        cursor = replace(cursor, read_at=self.policy.now())
        select = self._select(declared, maps, merge, money)
        if incremental and "IsDeleted" in self._fields_of(declared.path):
            select.append("IsDeleted")  # User has none: selecting it is INVALID_FIELD
        every_row = incremental or declared.path in _ARCHIVING
        lower = _lower_bound(declared, cursor, since)
        soql = _soql(declared, select, lower, live_only=every_row and not incremental)
        page = self.api.query(soql, every_row, self.page_size)
        tokens = PageTokens()
        reader = self._reader(declared, maps, merge, money) if self.batches else None
        while True:
            read = reader.rest_items(page["records"], select, cursor, tally) if reader else None
            if read is not None:
                items, cursor = read
                yield from items
            else:
                for item in self._items(declared, maps, merge, page["records"], tally, money):
                    if guessed(item):
                        yield item
                    elif cursor.admits(_stamp_of(item), item.id):
                        cursor = cursor.advanced(_stamp_of(item), item.id)
                        yield item
                    elif not cursor.delivered(_stamp_of(item), item.id):
                        yield _reread(item)
            yield Checkpoint(declared.name, cursor)
            if page["done"]:
                return
            if not incremental and page["totalSize"] > self.settings.bulk_threshold:
                job = self._bulk_job(declared, select, cursor)
                if job is not None:
                    read = _BulkRead(job, None, cursor.value, cursor.ids)
                    yield from self._bulk_rows(declared, maps, merge, read, cursor, tally)
                    return
            page = self.api.query_more(str(tokens.next(page["nextRecordsUrl"])), self.page_size)

    def find(self, stream: str, field: str, values: Sequence[Any]) -> Iterator[Record]:
        """Live records whose ``field`` (our name) equals one of ``values`` (escaped)."""
        declared = _stream(stream)
        maps, _ = self._maps(declared)
        money = self._money(declared, maps)
        column = _column(declared, maps, field)
        select = self._select(declared, maps, None, money)
        tally = Tally(declared.name, calls=lambda: 0)  # a lookup has no summary
        for chunk in chunked(values, _FIND_CHUNK):
            soql = format_soql(
                "SELECT {:literal} FROM {:literal} WHERE {:literal} IN {}",
                ", ".join(select),
                declared.path,
                column,
                list(chunk),
            )
            for item in self._items(declared, maps, None, self._all_pages(soql), tally, money):
                assert isinstance(item, Record)
                yield item

    def push(self, stream: str, updates: Sequence[Update]) -> list[WriteResult]:
        """Write owned fields and owners; one result per update, in order."""
        return self.push_together([(stream, updates)])[0]

    def push_together(
        self, groups: Sequence[tuple[str, Sequence[Update]]]
    ) -> list[list[WriteResult]]:
        """Several streams' writes in as few calls as Salesforce takes them: a group of more
        than ``bulk_write_threshold`` records through a Bulk job of its own, the rest through
        sObject Collections calls of up to 200 records of any of the objects (each object's
        records in one run, so a call holds one chunk per object, and Salesforce takes up to
        10). A result list per group, in order."""
        declared = [_stream(name) for name, _ in groups]
        if len({stream.path for stream in declared}) > _MAX_CHUNKS:
            raise ValueError(f"one push writes at most {_MAX_CHUNKS} objects")
        rows: dict[tuple[str, str], Mapping[str, Any]] = {}
        first: dict[tuple[str, str], WriteResult] = {}
        bulk: set[str] = set()  # objects a Bulk job was sent for
        for stream, (_, updates) in zip(declared, groups, strict=True):
            made = written_rows(
                stream, updates, _WRITE_NAMES, json_value, _JSON_AS_IS, self._kept_rows
            )
            if len(made) > self.settings.bulk_write_threshold:
                answered = self._bulk_update(stream, made)
                if answered:
                    bulk.add(stream.path)
                first |= {(stream.path, i): result for i, result in answered.items()}
            rows |= {(stream.path, i): row for i, row in made.items()}
        runs: dict[str, int] = {}  # each object's place: where its first group stands
        for stream in declared:
            runs.setdefault(stream.path, len(runs))
        again = sorted(
            (key for key in rows if key not in first or first[key].status == "retriable"),
            key=lambda key: runs[key[0]],  # stable: each object's records one run, as given
        )
        settled = self.policy.settle(lambda keys: self._collections(keys, rows), again)
        done = first | {
            key: _plus(result, 1 if key[0] in bulk else 0) for key, result in settled.items()
        }
        return [
            [done[stream.path, u.id] for u in updates]
            for stream, (_, updates) in zip(declared, groups, strict=True)
        ]

    def _bulk_update(
        self, stream: Stream, rows: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, WriteResult]:
        """A Bulk API 2.0 update job's results; none when Bulk does not serve the object, so
        every record goes through sObject Collections."""
        if stream.path in self._rest_only:
            return {}
        try:
            return bulk_update(self.api, stream.path, rows)
        except ApiError as refused:
            if not refused_by_bulk(refused):
                raise
            self._rest_only.add(stream.path)
            return {}

    def ensure_schema(self, spec: SchemaSpec) -> SchemaReport:
        """Our custom fields and validation rule on Account and Lead (see `salesforce_setup`)."""
        report = ensure_schema(self.api, spec)
        self._described.clear()
        self._picklists.clear()
        self._absent.clear()
        return report

    def schema_gaps(self, spec: SchemaSpec) -> tuple[SchemaGap, ...]:
        """Our fields on Account and Lead missing or not as writes need them, from the describe
        a pull makes anyway (no call of its own)."""
        return schema_gaps(
            lambda sobject: {
                name: FoundField(kind, self._picklists[sobject].get(name, ()))
                for name, kind in self._fields_of(sobject).items()
            },
            spec,
        )

    def usage(self) -> Usage:
        """API calls this run and the budget left."""
        return self.policy.budget.usage(self.policy.retries)

    def org_id(self) -> str | None:
        """The org's id (00D…, 15 characters), without a call: a Salesforce session id, as an
        OAuth access token, begins with it (``00D…!AQ…``); None for a token not so made."""
        found = _ORG_IN_SESSION.match(self.api.session.token or "")
        return found[1] if found else None

    def _maps(self, stream: Stream) -> tuple[list[FieldMap], str | None]:
        """The field maps the org can serve, the merge field. An optional map is read only if
        the org has its fields (described), and then replaces the standard map of its field
        (``BillingCountryCode`` where state and country picklists are on)."""
        present = self._fields_of(stream.path)
        optional = [m for m in stream.optional if all(n in present for n in m.theirs)]
        replaced = {m.ours for m in optional}
        merge = stream.merge_field if stream.merge_field in present else None
        return [*(m for m in stream.fields if m.ours not in replaced), *optional], merge

    def _fields_of(self, sobject: str) -> Mapping[str, str]:
        """The object's fields and their types, described once per connector; NotFound when
        the org lacks the object."""
        if sobject not in self._described and sobject not in self._absent:
            streams = (s.path for s in SALESFORCE_STREAMS.values())
            failed = self._describe([sobject, *streams])
            if sobject in failed:
                raise failed[sobject]
        if sobject in self._absent:
            absent = self._absent[sobject]
            raise NotFound(absent.status, absent.code, absent.message)
        return self._described[sobject]

    def _describe(self, sobjects: Sequence[str]) -> dict[str, ApiError]:
        """Describe every object not yet described, 25 to a Composite call (one API call
        each); remember those the org lacks (404). The other errors, by object."""
        known = self._described.keys() | self._absent.keys()
        wanted = [name for name in dict.fromkeys(sobjects) if name not in known]
        failed: dict[str, ApiError] = {}
        for chunk in chunked(wanted, COMPOSITE_SIZE):
            answers = self.api.get_each({name: f"sobjects/{name}/describe" for name in chunk})
            for name, answer in answers.items():
                if isinstance(answer, NotFound):
                    self._absent[name] = answer
                elif isinstance(answer, ApiError):
                    failed[name] = answer
                else:
                    self._described[name] = {f["name"]: f.get("type", "") for f in answer["fields"]}
                    self._picklists[name] = _picklist_values(answer["fields"])
        return failed

    def _money(self, stream: Stream, maps: Sequence[FieldMap]) -> Money | None:
        """The stream's amounts and the org's rates, when the org has multiple currencies (its
        objects then have ``CurrencyIsoCode``); CurrencyType is read once per connector."""
        present = self._fields_of(stream.path)
        if _CURRENCY not in present:
            return None
        amounts = [
            m.ours for m in maps if len(m.theirs) == 1 and present.get(m.theirs[0]) == "currency"
        ]
        if self._rates is None:
            self._rates = Rates.from_currency_types(self._all_pages(_CURRENCY_TYPES))
        return Money(tuple(amounts), self._rates) if amounts else None

    def _bulk_job(self, stream: Stream, select: Sequence[str], cursor: Cursor) -> str | None:
        """A Bulk API 2.0 query job for the rest of a large full load, from ``cursor`` on; None
        when Bulk does not serve the object, and the load goes on paging through REST."""
        if stream.path in self._rest_only:
            return None
        archiving = stream.path in _ARCHIVING
        lower = _lower_bound(stream, replace(cursor, ids=frozenset()), cursor.value)
        soql = _soql(stream, select, lower, live_only=archiving, ordered=False)
        try:
            return bulk_query_job(self.api, soql, include_deleted=archiving)
        except ApiError as refused:
            if not refused_by_bulk(refused):
                raise
            self._rest_only.add(stream.path)
            return None

    def _resumed_bulk(
        self,
        stream: Stream,
        maps: Sequence[FieldMap],
        merge: str | None,
        cursor: Cursor,
        tally: Tally,
    ) -> Iterator[Item]:
        """A stopped bulk load from its saved page; from the start if the job is gone."""
        assert cursor.resume is not None
        read = _BulkRead.parse(cursor.resume)
        try:
            yield from self._bulk_rows(stream, maps, merge, read, cursor, tally)
        except NotFound:
            yield from self._pull(stream, FULL_LOAD, tally)

    def _bulk_rows(
        self,
        stream: Stream,
        maps: Sequence[FieldMap],
        merge: str | None,
        read: _BulkRead,
        cursor: Cursor,
        tally: Tally,
    ) -> Iterator[Item]:
        """A query job's rows from ``read``'s page on; rows come in no set order, so the cursor
        keeps the latest stamp seen and each checkpoint names the page to go on from."""
        since = Cursor(read.since, read.ids)
        money = self._money(stream, maps)
        if self.batches:
            reader = self._reader(stream, maps, merge, money)

            def items_of(page: tuple[bytes, str | None]) -> list[Item]:
                nonlocal cursor
                content, locator = page
                items, cursor = reader.items(csv_frame(content), since, cursor, tally)
                return [*items, Checkpoint(stream.name, cursor.resuming(_resume(read, locator)))]

            contents = bulk_contents(self.api, read.job, self.bulk_page_size, read.locator)
            with closing(read_ahead(contents, items_of)) as pages:
                for items in pages:  # a page stored as the next is read
                    yield from items
            return
        pages = bulk_pages(self.api, read.job, self.bulk_page_size, read.locator)
        for rows, locator in pages:
            for item in self._items(stream, maps, merge, rows, tally, money):
                if guessed(item):
                    yield item
                elif since.admits(_stamp_of(item), item.id):
                    cursor = cursor.advanced(_stamp_of(item), item.id)
                    yield item
            yield Checkpoint(stream.name, cursor.resuming(_resume(read, locator)))

    def _reader(
        self, stream: Stream, maps: Sequence[FieldMap], merge: str | None, money: Money | None
    ) -> PageReader:
        """How the stream's pages are read a column at a time."""
        stamps = (stream.replication_key, *_FALLBACK_STAMPS)
        return PageReader(stream, maps, merge, self.rules, money, stamps, _CURRENCY)

    def _select(
        self, stream: Stream, maps: Sequence[FieldMap], merge: str | None, money: Money | None
    ) -> list[str]:
        """The SELECT list: key, replication key and the times it falls back to, every mapped
        field and what the rules read, the record's currency where amounts are converted, the
        merge field."""
        keys = [stream.primary_key, stream.replication_key, *_FALLBACK_STAMPS]
        names = [*keys, *stream.crm_fields(maps), *self.rules.fields(stream)]
        names += [*([_CURRENCY] if money else []), *([merge] if merge else [])]
        return list(dict.fromkeys(names))

    def _items(
        self,
        stream: Stream,
        maps: Sequence[FieldMap],
        merge: str | None,
        rows: Iterable[Mapping[str, Any]],
        tally: Tally,
        money: Money | None = None,
    ) -> Iterator[Record | Tombstone]:
        """Raw rows (JSON or CSV) as records typed by the rules, and deleted rows as tombstones;
        a row without an id or any time is skipped and counted, as is an activity no rule typed;
        amounts are brought to the corporate currency."""
        for raw in rows:
            record_id = read_id(raw.get("Id"))
            names = (stream.replication_key, *_FALLBACK_STAMPS)
            at, stamped = modified_at([(name, raw.get(name)) for name in names])
            if record_id is None or at is None:
                tally.skip(skip_reason(record_id))
            elif flag(raw.get("IsDeleted")):
                yield Tombstone(stream.name, record_id, at, _gone(raw, merge), _master(raw, merge))
            else:
                values, warnings = normalise(stream, raw, maps)
                converted = money.convert(values, raw.get(_CURRENCY)) if money else ()
                derived, dirty, unmatched = self.rules.derive(stream, raw)
                if unmatched:
                    tally.unmatched_kind(unmatched)
                warned = stamped + warnings + converted + dirty
                yield Record(stream.name, record_id, at, values | derived, warned)

    def _all_pages(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every record of a query, page by page."""
        page = self.api.query(soql, False, self.page_size)
        tokens = PageTokens()
        while True:
            yield from page["records"]
            if page["done"]:
                return
            page = self.api.query_more(str(tokens.next(page["nextRecordsUrl"])), self.page_size)

    def _collections(
        self, keys: Sequence[tuple[str, str]], rows: Mapping[tuple[str, str], Mapping[str, Any]]
    ) -> dict[tuple[str, str], WriteResult]:
        """Update the records of ``keys`` (object, id) 200 a call, each record on its own
        (``allOrNone=false``)."""
        answered: dict[tuple[str, str], WriteResult] = {}
        attributes: dict[str, dict[str, str]] = {}
        for chunk in chunked(keys, COLLECTION_SIZE):
            records = [
                {"attributes": attributes.setdefault(p, {"type": p}), "Id": i, **rows[p, i]}
                for p, i in chunk
            ]
            try:
                body = {"allOrNone": False, "records": records}
                saved = self.api.rest_with("composite/sobjects", "PATCH", body)
            except BudgetExhausted as stop:
                raise BudgetExhausted(str(stop), list(answered.values())) from stop
            except ApiError as refused:
                answered |= {key: _refused(key[1], refused) for key in chunk}
                continue
            answered |= {
                key: _saved(key[1], result) for key, result in zip(chunk, saved, strict=True)
            }
        return answered


def _picklist_values(fields: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Field -> its picklist values (as set-up reads them), of the picklist fields of a describe."""
    return {
        f["name"]: tuple(v["value"] for v in f.get("picklistValues") or [])
        for f in fields
        if f.get("type") == "picklist"
    }


def _stream(name: str) -> Stream:
    if name not in SALESFORCE_STREAMS:
        known = ", ".join(SALESFORCE_STREAMS)
        raise ValueError(f"unknown Salesforce stream {name!r}; expected one of {known}")
    return SALESFORCE_STREAMS[name]


def _lower_bound(stream: Stream, cursor: Cursor, since: datetime | None) -> str | None:
    """The WHERE condition of a pull from ``since`` (None: no bound, a full load).

    Inside the overlap window (``since`` before the bound) it is ``>= since``: records there
    are read again for late commits. From the bound itself it is keyset pagination on
    (replication key, Id): a bulk write stamps thousands of records with one SystemModstamp,
    and ``>=`` would read them all again each cycle. Every record at the bound had committed
    when the pull that set it read (`Cursor.overlap`), and that pull delivered them in Id order
    (``ORDER BY SystemModstamp, Id``; a bulk load delivers them all), so ``ids`` are those up
    to their greatest. Salesforce ids are base-62 in 0-9A-Za-z, whose order is the text order
    Python and SOQL both compare them by.
    """
    if since is None:
        return None
    key, at = stream.replication_key, _literal(since)
    if since != cursor.value or not cursor.ids:
        return format_soql("{:literal} >= {:literal}", key, at)
    return format_soql(
        "({:literal} > {:literal} OR ({:literal} = {:literal} AND {:literal} > {}))",
        key,
        at,
        key,
        at,
        stream.primary_key,
        max(cursor.ids),
    )


def _literal(at: datetime) -> str:
    """A SOQL dateTime literal to the millisecond, as SystemModstamp holds it: `format_soql`
    drops the fraction, and a bound cut to its second would read that second's records again."""
    return json_value(at.astimezone(UTC))


def _soql(
    stream: Stream,
    select: Sequence[str],
    lower: str | None,
    *,
    live_only: bool = False,
    ordered: bool = True,
) -> str:
    """A pull's query: records past ``lower`` (a `_lower_bound` condition) when given, without
    deleted rows when ``live_only`` (queryAll returns them), ascending when ``ordered``."""
    head = format_soql("SELECT {:literal} FROM {:literal}", ", ".join(select), stream.path)
    conditions = [lower] if lower is not None else []
    if live_only:
        conditions.append("IsDeleted = false")
    where = " WHERE " + " AND ".join(conditions) if conditions else ""
    if not ordered:
        return head + where
    order = format_soql(" ORDER BY {:literal}, {:literal}", stream.replication_key, "Id")
    return head + where + order


def _master(raw: Mapping[str, Any], merge: str | None) -> str | None:
    """The record a deleted row was merged into (None when it was simply deleted)."""
    return read_id(raw.get(merge)) if merge else None


def _gone(raw: Mapping[str, Any], merge: str | None) -> Literal["merged", "deleted"]:
    return "merged" if _master(raw, merge) else "deleted"


def _resume(read: _BulkRead, locator: str | None) -> str | None:
    """A checkpoint's ``resume``: the bulk read from the page ``locator`` names (None: done)."""
    return None if locator is None else replace(read, locator=locator).token()


def _stamp_of(item: Record | Tombstone) -> Any:
    return item.modified_at if isinstance(item, Record) else item.deleted_at


def _reread(item: Record | Tombstone) -> Record | Tombstone:
    """An item of the overlap window: already delivered, unless its commit came late."""
    return replace(item, reread=True) if isinstance(item, Record) else item


def _column(stream: Stream, maps: Sequence[FieldMap], field: str) -> str:
    """The one Salesforce field behind our field ``field`` (``id``: the record's id)."""
    if field == "id":
        return stream.primary_key
    for m in maps:
        if m.ours == field and len(m.theirs) == 1:
            return m.theirs[0]
    raise ValueError(f"{stream.name} has no field {field!r} to look records up by")


def _saved(record_id: str, result: Mapping[str, Any]) -> WriteResult:
    """One SaveResult of a collection."""
    if result.get("success"):
        return WriteResult(record_id, "ok")
    error = (result.get("errors") or [{}])[0]
    code = error.get("statusCode")
    return WriteResult(record_id, record_status(code), code, error.get("message"))


def _refused(record_id: str, refused: ApiError) -> WriteResult:
    """A record of a call refused as a whole (after the policy's own retries)."""
    status = "retriable" if isinstance(refused, RetriableError) else "permanent"
    return WriteResult(record_id, status, refused.code, refused.message)


def _plus(result: WriteResult, attempts: int) -> WriteResult:
    """A result counting the bulk attempt before it."""
    if not attempts:
        return result
    return WriteResult(
        result.id, result.status, result.code, result.message, result.attempts + attempts
    )
