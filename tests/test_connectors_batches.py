"""Bulk API and REST pages read as columns (`RecordBatch`) end as the same records as read row
by row.

The same Bulk CSV pages go through the Salesforce connector twice, ``batches=True`` (polars, a
column at a time) and ``batches=False`` (the csv module, a `Record` a row): expanded into
records, the items are equal, warnings, tombstones, checkpoints and the pull's summary
included; mirrored, the state databases hold the same rows and cursors, on SQLite and
PostgreSQL. The pages are real result pages of the sandbox's Bulk job, or pages written here
with what real orgs hold: values no converter reads, odd countries and currencies, empty cells,
quoted commas and line breaks, a byte order mark, CRLF lines, deleted and merged rows, rows
without an id or a time, activities no rule types, and ties at the cursor's stamp. REST pages
(JSON) go the same two ways: the sandbox's, full and incremental (the overlap window read again),
and pages written here with JSON's own types where text is expected, and the reverse.
"""

from __future__ import annotations

import csv
import gc
import io
import json
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import takewhile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from connectors.batches import KeptRows, written_rows
from connectors.columns import converted_columns
from connectors.countries import country
from connectors.http import HttpPolicy, RetrySettings
from connectors.hubspot import _answered, _batch_results
from connectors.keys import read_id, read_ids
from connectors.protocol import (
    Checkpoint,
    Cursor,
    Item,
    Record,
    RecordBatch,
    Summary,
    Update,
    WriteResult,
    expanded,
    records,
)
from connectors.salesforce import SalesforceConnector, _BulkRead
from connectors.salesforce_api import SalesforceApi
from connectors.salesforce_bulk import _rows, csv_frame
from connectors.streams import (
    SALESFORCE_STREAMS,
    FieldMap,
    Stream,
    day,
    flag,
    integer,
    normalise,
    number,
    stamp,
)
from connectors.streams import (
    text as text_of,
)
from sandbox.generator import generate_org
from sandbox.hubspot.responses import batch_response
from sandbox.org import Org
from sandbox.salesforce import client_session
from sandbox.service import RunningSandbox, start_sandbox
from sync.mirror import mirror_streams
from sync.store import Store
from tests.conftest import pg_schema
from tests.sandbox_fixtures import salesforce_settings

READ_AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # the connectors' wall clock
T = datetime(2026, 11, 2, 8, 30, 15, 123000, tzinfo=UTC)  # a scripted page's bound
PAGE = 200  # records of a REST page (the least Salesforce takes); a Bulk page holds 3 times as many
BULK_STREAMS = ("Account", "Lead", "Contact", "Task", "Event", "CampaignMember")  # > PAGE records
STREAMS = ("User", "Account", "Lead", "Contact", "Opportunity", "Task", "Event", "CampaignMember")


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(250, 11)


@pytest.fixture(scope="module")
def crm(org: Org) -> Iterator[RunningSandbox]:
    """An org with country picklists, several currencies and free-text country spellings."""
    options = {"country_picklists": True, "multi_currency": True, "country_spelling": "mixed"}
    with start_sandbox("salesforce", org, **options) as running:
        yield running


def _connector(crm: RunningSandbox, batches: bool, **settings: Any) -> SalesforceConnector:
    return SalesforceConnector(
        salesforce_settings(**{"bulk_threshold": 1, **settings}),
        session=client_session(crm.base_url),
        policy=HttpPolicy(RetrySettings(), wall=lambda: READ_AT),
        page_size=PAGE,
        bulk_page_size=3 * PAGE,
        batches=batches,
    )


def _both(
    crm: RunningSandbox, stream: str, cursor: Cursor | None = None, **settings: Any
) -> list[list[Item]]:
    """The pull's items through each path, batches given as their records, calls left out."""
    pulled = []
    for batches in (False, True):
        connector = _connector(crm, batches, **settings)
        items = list(connector.pull(stream, *([cursor] if cursor else [])))
        assert any(isinstance(i, RecordBatch) for i in items) == batches, "no page read as columns"
        pulled.append([_comparable(item) for item in expanded(items)])
    return pulled


def _comparable(item: Item) -> Item:
    """An item less what differs from one pull to the next: the calls it cost, the Bulk job."""
    if isinstance(item, Summary):
        return replace(item, calls=0)
    if isinstance(item, Checkpoint) and item.cursor.resume is not None:
        resume = json.loads(item.cursor.resume) | {"job": "the pull's own"}
        return replace(item, cursor=item.cursor.resuming(json.dumps(resume)))
    return item


# --- the sandbox's own pages ------------------------------------------------------------------


@pytest.mark.parametrize("stream", BULK_STREAMS)
def test_the_sandboxs_bulk_pages_read_as_columns_give_the_records_rows_give(
    crm: RunningSandbox, stream: str
) -> None:
    by_rows, by_columns = _both(crm, stream)
    assert sum(isinstance(i, Record) for i in by_rows) > PAGE  # past the REST page, into Bulk
    assert by_columns == by_rows


# --- pages as real orgs write them ----------------------------------------------------------


def _page(rows: Sequence[Mapping[str, Any]], *, bom: bool = False, crlf: bool = False) -> bytes:
    """A Bulk CSV page: every cell quoted (an absent one empty), as Salesforce writes them."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(names)
    writer.writerows([[row.get(name, "") for name in names] for row in rows])
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode()


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _scripted(monkeypatch: pytest.MonkeyPatch, pages: Sequence[bytes]) -> None:
    """Answer every Bulk result read with ``pages``, in turn, from the locator asked for."""

    def result_pages(
        api: Any, job_id: str, page_size: int, locator: str | None
    ) -> Iterator[tuple[requests.Response, str | None]]:
        for at in range(int(locator or 0), len(pages)):
            answer = requests.Response()
            answer._content = pages[at]
            answer.headers["Content-Type"] = "text/csv"  # no charset, as Salesforce sends it
            yield answer, (str(at + 1) if at + 1 < len(pages) else None)

    monkeypatch.setattr("connectors.salesforce_bulk._result_pages", result_pages)


def _resumed(since: datetime | None, ids: Sequence[str] = ()) -> Cursor:
    """A cursor that goes on with a bulk read from its first page, past ``ids`` at ``since``."""
    return Cursor(resume=_BulkRead("750Scripted", None, since, frozenset(ids)).token())


_ACCOUNT = {
    "Id": "001A",
    "SystemModstamp": _stamp(T + timedelta(hours=1)),
    "LastModifiedDate": _stamp(T),
    "CreatedDate": _stamp(T - timedelta(days=400)),
    "Name": "Acme, Inc.\n(EMEA)",
    "Website": "acme.example",
    "BillingCountry": "Deutschland",
    "BillingCountryCode": "",
    "NumberOfEmployees": "120",
    "AnnualRevenue": "1250000.5",
    "CurrencyIsoCode": "EUR",
    "Type": "Customer - Direct",
    "OwnerId": "005A",
}


def _account(record_id: str, **values: str) -> dict[str, str]:
    return {**_ACCOUNT, "Id": record_id, **values}


ACCOUNT_PAGES = [
    [
        _account("001A"),
        _account("001B", NumberOfEmployees="abc", AnnualRevenue="1,2 Mio", Name='Say "hi"'),
        _account("001C", NumberOfEmployees="12.0", AnnualRevenue="1e999", BillingCountry="U.S.A."),
        _account("001D", NumberOfEmployees="", AnnualRevenue="", BillingCountry="Bharat"),
        _account("001E", SystemModstamp="", LastModifiedDate="soon"),  # CreatedDate stands in
        _account("001F", SystemModstamp="", LastModifiedDate="", CreatedDate=""),  # no time
        _account("", Name="no id"),
        _account("  001G  ", CreatedDate="2024-13-45T00:00:00Z", Type="Competitor"),
        _account("001H", SystemModstamp=_stamp(T), Name="at the bound, delivered"),
        _account("001I", SystemModstamp=_stamp(T), Name="at the bound, new"),
        _account("001J", SystemModstamp=_stamp(T - timedelta(seconds=1)), Name="behind it"),
        _account("001K", CurrencyIsoCode="XXX", BillingCountryCode="DE"),  # no such currency
        _account("001L", CurrencyIsoCode="", NumberOfEmployees="99999999999"),  # corporate
        _account("001M", NumberOfEmployees=" 7 ", AnnualRevenue=" 1_000 ", BillingCountry=""),
        _account("001N", SystemModstamp="1785000000000", NumberOfEmployees="-0"),  # epoch ms
    ],
    [
        _account("001P", SystemModstamp=_stamp(T + timedelta(hours=2)), Name="Weiß GmbH"),
        _account("001Q", SystemModstamp=_stamp(T + timedelta(hours=2)), Name="tie at the end"),
        _account("001R", SystemModstamp="2026-11-02T09:30:15.5+01:00", Name="offset"),
        _account("001S", SystemModstamp="2026-11-02T09:30:15+0100", Name="no colon"),
        _account("001T", SystemModstamp="2026-11-02 09:30:15Z", Name="a space"),
        _account("001U", SystemModstamp="2026-11-02T23:59:60Z", Name="leap second"),
    ],
]


def test_pages_real_orgs_write_read_as_columns_give_the_records_rows_give(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    header_only = _page([_account("001Z")]).splitlines(keepends=True)[0]
    pages = [_page(ACCOUNT_PAGES[0]), _page(ACCOUNT_PAGES[1], bom=True, crlf=True), header_only]
    _scripted(monkeypatch, pages)

    by_rows, by_columns = _both(crm, "Account", _resumed(T, ["001H"]))

    assert by_columns == by_rows
    got = {r.id: r for r in records(by_rows)}
    assert "001H" not in got and "001I" in got and "001J" not in got  # the bound holds
    assert "001G" in got and "001P" in got and "001F" not in got
    summary = by_rows[-1]
    assert isinstance(summary, Summary)
    assert summary.skipped == {"no id": 1, "no modification time": 1}
    assert summary.warnings["employees: not a whole number"] == 1
    assert summary.warnings["revenue: not a currency of the org"] == 1
    assert summary.warnings["modified_at: no readable SystemModstamp; LastModifiedDate used"] >= 1
    last = [i for i in by_rows if isinstance(i, Checkpoint)][-1].cursor
    assert last.value == T + timedelta(hours=2) and last.ids == {"001P", "001Q"}


def _task(record_id: str, subject: str, kind: str, **values: str) -> dict[str, str]:
    at = _stamp(T + timedelta(minutes=len(record_id)))
    return {
        "Id": record_id,
        "SystemModstamp": at,
        "LastModifiedDate": at,
        "CreatedDate": at,
        "WhoId": "00QA",
        "AccountId": "001A",
        "OwnerId": "005A",
        "Subject": subject,
        "Type": kind,
        "TaskSubtype": "Task",
        **values,
    }


def test_deleted_merged_and_untyped_activities_read_alike(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = [
        _task("00T1", "Visited pricing page: Enterprise", "Web Visit"),
        _task("00T2", "Visited pricing page", "Web Visit", IsDeleted="true"),
        _task("00T3", "Lunch", "Other"),  # no rule types it
        _task("00T4", "Call", "Call", TaskSubtype="Cadence"),
        _task("00T5", "Lunch", "Other", IsDeleted="TRUE", MasterRecordId="00T1"),
        _task("00T6", "Requested a demo: pricing, and more", "Form Submission"),
        _task("00T7", "", "", TaskSubtype="", CreatedDate="not a time"),
        _task("00T8", "Lunch", "Other"),
    ]
    _scripted(monkeypatch, [_page(page), _page(page[:2])])

    by_rows, by_columns = _both(crm, "Task", _resumed(None))

    assert by_columns == by_rows
    kinds = [type(i).__name__ for i in by_rows]
    assert kinds[:6] == ["Record", "Tombstone", "Record", "Record", "Tombstone", "Record"]
    summary = by_rows[-1]
    assert isinstance(summary, Summary) and summary.unmatched == {
        "Task / Other / Task": 2,
        "Task": 1,
    }


def test_users_and_deals_read_alike(crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _stamp(T)
    stamps = {"SystemModstamp": at, "LastModifiedDate": at, "CreatedDate": at}
    users = [
        {"Id": "005A", **stamps, "Name": "Ada", "Email": "ada@acme.example", "IsActive": "true"}
        | {"UserRole.Name": "Account Executive", "Profile.Name": "Sales", "Division": "EMEA"},
        {"Id": "005B", **stamps, "Name": "Bo", "Email": "", "IsActive": "false", "ManagerId": ""}
        | {"UserRole.Name": "", "Profile.Name": "Marketing User", "Department": "Demand Gen"},
        {"Id": "005C", **stamps, "Name": "Cy", "IsActive": "", "Out_of_Office__c": "true"}
        | {"UserRole.Name": "Chef", "Division": ""},
    ]
    deals = [
        {"Id": "006A", **stamps, "AccountId": "001A", "Name": "Big, one", "StageName": "Won"}
        | {"Amount": "48000", "CloseDate": "2026-12-24", "IsClosed": "true", "IsWon": "True"},
        {"Id": "006B", **stamps, "Amount": "lots", "CloseDate": "2026-02-30", "IsClosed": "x"},
        {"Id": "006C", **stamps, "Amount": "", "CloseDate": "2026-12-24T10:00:00Z"},
    ]
    for stream, page in (("User", users), ("Opportunity", deals)):
        _scripted(monkeypatch, [_page(page)])
        by_rows, by_columns = _both(crm, stream, _resumed(None))
        assert by_columns == by_rows and len(records(by_rows)) == 3


def test_a_page_not_in_utf_8_stops_both_paths_alike(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scripted(monkeypatch, [_page([_account("001A", Name="Weiß")]).replace(b"\xc3\x9f", b"\xdf")])
    for batches in (False, True):
        with pytest.raises(UnicodeDecodeError):
            list(_connector(crm, batches).pull("Account", _resumed(None)))


# --- REST pages (JSON) ------------------------------------------------------------------------

REST_ONLY = {"bulk_threshold": 10**9}


@pytest.mark.parametrize("stream", STREAMS)
def test_the_sandboxs_rest_pages_read_as_columns_give_the_records_rows_give(
    crm: RunningSandbox, stream: str
) -> None:
    by_rows, by_columns = _both(crm, stream, **REST_ONLY)
    assert by_columns == by_rows and records(by_rows)


@pytest.mark.parametrize("stream", ("Account", "Task", "CampaignMember"))
def test_an_incremental_rest_pull_reads_the_overlap_window_again_alike(
    crm: RunningSandbox, stream: str
) -> None:
    full = records(list(_connector(crm, False, **REST_ONLY).pull(stream)))
    stamps = sorted(r.modified_at for r in full)
    day = timedelta(days=1)  # the widest overlap window; the bound where it holds the most
    bound = max(stamps, key=lambda b: bisect_left(stamps, b) - bisect_left(stamps, b - day))
    at_bound = sorted(r.id for r in full if r.modified_at == bound)
    cursor = Cursor(bound, frozenset(at_bound[: max(1, len(at_bound) // 2)]))
    window = {"overlap_minutes": day.total_seconds() / 60, **REST_ONLY}

    by_rows, by_columns = _both(crm, stream, cursor, **window)

    assert by_columns == by_rows
    again = [r for r in records(by_rows) if r.reread]
    assert again and all(r.modified_at <= bound for r in again)
    assert not {r.id for r in records(by_rows)} & cursor.ids  # delivered: not sent again


def _scripted_rest(monkeypatch: pytest.MonkeyPatch, rows: Sequence[Mapping[str, Any]]) -> None:
    """Answer every SOQL query with one page holding ``rows`` (JSON values)."""

    real = SalesforceApi.query

    def query(api: Any, soql: str, include_deleted: bool, batch_size: int) -> dict[str, Any]:
        if " FROM Account" not in soql:  # the org's currencies
            return real(api, soql, include_deleted, batch_size)
        return {"totalSize": len(rows), "done": True, "records": json.loads(json.dumps(rows))}

    monkeypatch.setattr(SalesforceApi, "query", query)


def _json_account(record_id: str, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"attributes": {"type": "Account"}, **_ACCOUNT, "Id": record_id}
    return base | {"NumberOfEmployees": 120, "AnnualRevenue": 1250000.5} | values


JSON_PAGES: dict[str, list[dict[str, Any]]] = {
    "numbers and checkboxes as JSON gives them": [
        _json_account("001A"),
        _json_account("001B", NumberOfEmployees=12.0, AnnualRevenue=1e21, Name=7),
        _json_account("001C", NumberOfEmployees=12.7, AnnualRevenue=-0.0, Website=True),
        _json_account("001D", NumberOfEmployees=None, AnnualRevenue=None, Name=False),
        _json_account("001E", NumberOfEmployees=10**20, AnnualRevenue=10**400, OwnerId=5),
        _json_account("001F", NumberOfEmployees="12", AnnualRevenue="abc", BillingCountry="DE"),
        _json_account("001G", SystemModstamp=None, LastModifiedDate="soon"),
        _json_account("001H", IsDeleted=True, MasterRecordId="001A"),
        _json_account("001I", IsDeleted=False),
        _json_account("", Name="no id"),
    ],
    "a checkbox where a whole number is read": [_json_account("001A", NumberOfEmployees=True)],
    "a checkbox where an amount is read": [_json_account("001A", AnnualRevenue=False)],
    "a number where a time is read": [_json_account("001A", CreatedDate=-1785000000000)],
    "a number where the modification time is read": [
        _json_account("001A", SystemModstamp=1785000000000.5),
    ],
    "a number where a converter of our own reads": [_json_account("001A", Type=0)],
    "an object where text is read": [_json_account("001A", Name={"first": "Acme"})],
    "an id twice": [_json_account("001A"), _json_account("001A", Name="again")],
    "times out of order": [
        _json_account("001A", SystemModstamp=_stamp(T + timedelta(hours=2))),
        _json_account("001B", SystemModstamp=_stamp(T + timedelta(hours=1))),
    ],
    "a list where a country is read": [_json_account("001A", BillingCountry=["DE"])],
}


@pytest.mark.parametrize("rows", JSON_PAGES.values(), ids=JSON_PAGES.keys())
def test_rest_pages_with_json_types_read_alike(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch, rows: list[dict[str, Any]]
) -> None:
    _scripted_rest(monkeypatch, rows)
    pulled = []
    for batches in (False, True):
        items = list(_connector(crm, batches, **REST_ONLY).pull("Account", Cursor(T)))
        pulled.append([_comparable(item) for item in expanded(items)])
    by_rows, by_columns = pulled
    assert by_columns == by_rows and records(by_rows)


def test_a_rest_page_holding_a_value_its_text_would_not_stand_for_is_read_a_row_at_a_time(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, rows in JSON_PAGES.items():
        _scripted_rest(monkeypatch, rows)
        items = list(_connector(crm, True, **REST_ONLY).pull("Account", Cursor(T)))
        as_columns = name == "numbers and checkboxes as JSON gives them"
        assert any(isinstance(i, RecordBatch) for i in items) == as_columns, name


# --- the CSV reader and the converters, case by case ------------------------------------------

_PLAIN = st.one_of(st.uuids().map(str), st.from_regex(r"[0-9A-Za-z_-]{1,18}", fullmatch=True))
_PAD = st.sampled_from(["", "", " ", "\t", "\n", "\u00a0", "\x1f", "\u3000"])  # str.strip's
_IDS = st.one_of(st.none(), st.text(), _PLAIN, st.tuples(_PAD, _PLAIN, _PAD).map("".join))


@given(st.lists(_IDS, max_size=30))
def test_ids_read_as_a_column_are_each_value_read_alone(values: list[str | None]) -> None:
    assert read_ids(pl.Series(values, dtype=pl.String)).to_list() == [read_id(v) for v in values]


CSV_PAGES = {
    "quoted": b'"Id","Name"\n"1","a,\nb"\n"2",""\n"3","x""y"\n',
    "bare": b"Id,Name\n1,  a  \n2,\n",
    "bom and CRLF": b'\xef\xbb\xbf"Id","Name"\r\n"1","a\r\nb"\r\n',
    "header only": b'"Id","Name"\n',
    "empty": b"",
    "blank lines": b"Id,Name\n\n1,a\n\n",
    "more cells than names": b"Id,Name\n1,a,b\n2,c\n",
    "utf-8 without a charset": "Id,Name\n1,Weiß\n2,ドイツ\n".encode(),
}


@pytest.mark.parametrize("content", CSV_PAGES.values(), ids=CSV_PAGES.keys())
def test_a_csv_page_reads_as_the_same_rows_either_way(content: bytes) -> None:
    answer = requests.Response()
    answer._content = content
    rows = _rows(answer)
    frame = csv_frame(content)
    assert [{k: v for k, v in row.items() if k is not None} for row in rows] == frame.to_dicts()


_NUMBERS = ["1", "1.", ".5", "+1", "-1e5", "1E+05", "1e999", "nan", "inf", " 1", "1_0", "abc"]
_WHOLES = ["12", "12.0", "12.5", "-0", "+5", "007", "9007199254740993", "1e3", "abc", " 12 "]
_STAMPS = [
    *("2024-01-31T10:00:00.000Z", "2024-01-31T10:00:00.123+0000", "2024-01-31T10:00:00+01:00"),
    *("2024-01-31T10:00:00.123456-0800", "2024-02-30T10:00:00Z", "2024-01-31T10:00:00.5Z"),
    *("2024-01-31T23:59:60Z", "2024-01-31 10:00:00Z", "2024-01-31", "1700000000000"),
    *("2024-01-31T24:00:00Z", "2024-01-31T10:00:00+24:00", "0999-01-31T10:00:00Z", "soon"),
    # the common form, read from its digits, and its near misses, read by strptime or refused
    *("2024-02-29T23:59:59.999Z", "2023-02-29T00:00:00.000Z", "2024-01-31T10:00:00.123+00:00"),
    *("2024-01-31T10:00:00.123-0000", "2024-01-31T10:00:00.1234Z", "2024-01-31T10:00:00.123+0100"),
    *("2024-01-31T10:00:60.000Z", "2024-01-31T10:60:00.000Z", "2024-13-01T00:00:00.000Z"),
    *("0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999+0000", "2024-01-31T10:00:00.12Z"),
    *("0000-01-01T00:00:00.000Z", "0000-06-30T12:00:00+01:00"),  # no year 0 in Python
]
DIRTY: dict[Any, list[str | None]] = {
    text_of: ["a", " b ", "ß"],
    number: [*_NUMBERS, "0.1", "1.7976931348623157e308", "123456789012345678901234567890"],
    integer: [*_WHOLES, "99999999999999999999", "-99999999999999999999"],
    flag: ["true", "True", "TRUE", "false", "yes"],
    stamp: _STAMPS,
    day: ["2024-01-31", "2024-01-31T10:00:00Z", "2024-02-30", "20240131", "2024-1-5"],
    country: ["DE", "Deutschland", "U.S.A.", "Bharat", "the Netherlands", " "],
    (lambda value: value == "Competitor"): ["Competitor", "competitor"],
}


@pytest.mark.parametrize("convert", DIRTY, ids=lambda c: getattr(c, "__name__", "custom"))
def test_each_converter_reads_a_column_as_it_reads_each_value(convert: Any) -> None:
    raw = [*DIRTY[convert], "", None] * 2  # each value twice: converted once, joined back twice
    stream = Stream("S", "account", "S", "Id", "SystemModstamp", (FieldMap("v", ("V",), convert),))
    page = pl.DataFrame({"V": raw}, schema={"V": pl.String})

    values, warnings = converted_columns(stream, stream.fields, page)

    rows = [normalise(stream, {} if v is None else {"V": v}, stream.fields) for v in raw]
    assert values["v"].to_list() == [row[0]["v"] for row in rows]
    assert {at: w for at, (w,) in warnings[0].items()} == {
        at: row[1][0] for at, row in enumerate(rows) if row[1]
    }


@given(
    st.datetimes(datetime(1970, 1, 1), datetime(2100, 1, 1)),
    st.sampled_from(["Z", "+0000", "+00:00", "-0800", "+05:30"]),
)
def test_a_time_read_in_a_column_is_the_time_read_alone(when: datetime, offset: str) -> None:
    raw = f"{when.isoformat(timespec='milliseconds')}{offset}"
    stream = Stream("S", "account", "S", "Id", "SystemModstamp", (FieldMap("v", ("V",), stamp),))
    values, _ = converted_columns(stream, stream.fields, pl.DataFrame({"V": [raw, None]}))
    assert values["v"].to_list() == [stamp(raw), None]


def test_two_fields_read_together_convert_per_distinct_pair() -> None:
    stream = SALESFORCE_STREAMS["CampaignMember"]
    page = pl.DataFrame(
        {"LeadId": ["00QA", "", "", None], "ContactId": ["003A", "003B", "", "003C"]},
        schema={"LeadId": pl.String, "ContactId": pl.String},
    )
    maps = [m for m in stream.fields if m.ours == "person_id"]
    values, _ = converted_columns(stream, maps, page)
    rows = [normalise(stream, {k: v for k, v in row.items() if v is not None}, maps)[0]
            for row in page.to_dicts()]  # fmt: skip
    assert values.to_dicts() == rows


# --- mirrored: the same rows and cursors in the state database --------------------------------

_TABLES = ("account", "person", "activity", "opportunity", "crm_user", "cursor")


@contextmanager
def _second_database(store_url: str, tmp_path: Path) -> Iterator[str]:
    """Another empty database of the same backend as ``store_url``."""
    if store_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'by_rows.db'}"
        return
    with pg_schema() as url:
        yield url


def _held(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every row of the mirror's tables and the cursors, in a fixed order."""
    with store.engine.connect() as connection:
        return {
            table: sorted(
                (dict(row._mapping) for row in connection.execute(text(f"SELECT * FROM {table}"))),
                key=repr,
            )
            for table in _TABLES
        }


def _mirrored_both_ways(
    crm: RunningSandbox, store_url: str, tmp_path: Path, streams: Sequence[str]
) -> list[tuple[dict[str, list[dict[str, Any]]], list[Any]]]:
    """The state database's rows and each stream's pull after a mirror stage through either
    path (batches, then rows), each into an empty database."""
    mirrored = []
    with _second_database(store_url, tmp_path) as second:
        for batches, url in ((True, store_url), (False, second)):
            with Store.open(url) as store:
                connector = _connector(crm, batches)
                done = list(mirror_streams(store, connector, READ_AT, streams=streams))
                kept = [(p.stored, p.skipped, p.first_load, p.events) for p in done]
                mirrored.append((_held(store), kept))
    return mirrored


def test_mirrored_batches_of_every_stream_hold_what_records_hold(
    crm: RunningSandbox, store_url: str, tmp_path: Path
) -> None:
    by_columns, by_rows = _mirrored_both_ways(crm, store_url, tmp_path, STREAMS)
    assert by_columns == by_rows
    assert len(by_rows[0]["activity"]) > 100 and len(by_rows[0]["cursor"]) == len(STREAMS)


def test_mirrored_dirty_batches_hold_the_rows_and_cursors_records_hold(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch, store_url: str, tmp_path: Path
) -> None:
    head = list(
        takewhile(lambda i: not isinstance(i, Checkpoint), _connector(crm, False).pull("Account"))
    )
    first = next(
        i.cursor for i in _connector(crm, False).pull("Account") if isinstance(i, Checkpoint)
    )
    bound, (delivered, *_) = first.value, sorted(first.ids)
    assert bound is not None and isinstance(head[0], Record)
    later = bound + timedelta(minutes=5)
    page = [
        *ACCOUNT_PAGES[0],
        _account("001X", SystemModstamp=_stamp(bound), Name="tied, new"),
        _account(delivered, SystemModstamp=_stamp(bound), Name="tied, delivered"),
        _account(head[0].id, SystemModstamp=_stamp(later), Name="changed since the REST page"),
        _account("001W", SystemModstamp=_stamp(later), Name="Nul\x00 Byte GmbH"),
        _account("001Y", SystemModstamp=_stamp(later), NumberOfEmployees="3000000000"),
        _account("001A", SystemModstamp=_stamp(later), Name="read twice, the later kept"),
        _account("001C", SystemModstamp=_stamp(later), IsDeleted="true"),
        _account("001D", SystemModstamp=_stamp(later), IsDeleted="true", MasterRecordId="001A"),
        _account("001V", SystemModstamp=_stamp(later), Name="after a tombstone"),
    ]
    _scripted(monkeypatch, [_page(page), _page([_account("001B"), _account("001V")])])

    by_columns, by_rows = _mirrored_both_ways(crm, store_url, tmp_path, ["Account"])

    assert by_columns == by_rows
    held, [(stored, skipped, first_load, _)] = by_rows
    names = {row["id"]: row["name"] for row in held["account"]}
    assert first_load and skipped and stored == len(held["account"]) + 1  # 001V stored twice
    assert names["001A"] == "read twice, the later kept"
    gone = {row["id"]: (row["is_deleted"], row["merged_into"]) for row in held["account"]}
    assert gone["001C"] == (True, None) and gone["001D"] == (True, "001A")
    assert names[head[0].id] == "changed since the REST page"


def test_a_push_writes_each_value_out_once_and_each_type_apart() -> None:
    # every row of a run holds its one scored-at: converted once, not once a row; 1, 1.0 and
    # True are one key of a dict, yet each is written as its own type says
    stream = Stream(
        "Account", "account", "Account", "Id", "LastModifiedDate", (), writable=("at", "n")
    )
    at = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    updates = [
        Update("001A", {"at": at, "n": 1}),
        Update("001B", {"at": at, "n": True}),
        Update("001C", {"at": at, "n": 1.0}),
        Update("001D", {"at": at, "n": [1]}),  # no key of a dict: converted each time
    ]
    calls: list[Any] = []

    def written(value: Any) -> str:
        calls.append(value)
        return f"{type(value).__name__}:{value}"

    rows = written_rows(stream, updates, {"at": "At__c", "n": "N__c"}, written)

    assert [row["N__c"] for row in rows.values()] == ["int:1", "bool:True", "float:1.0", "list:[1]"]
    assert {row["At__c"] for row in rows.values()} == {f"datetime:{at}"}
    assert calls.count(at) == 1 and len(calls) == 5


class _Shared(dict[str, Any]):
    """A values mapping that takes a weak reference, as `sync.writeback` shares one an account."""

    __slots__ = ("__weakref__",)


def test_a_row_is_made_once_for_a_shared_mapping_whatever_call_it_is_pushed_in() -> None:
    # the people of an account share its values, pushed a few in each of many calls: the row
    # is made in the first and kept while the mapping lives; a plain dict is made each call
    stream = Stream("Lead", "person", "Lead", "Id", "LastModifiedDate", (), writable=("n",))
    shared, plain = _Shared(n=1), {"n": 2}
    calls: list[Any] = []

    def written(value: Any) -> str:
        calls.append(value)
        return f"v{value}"

    kept = KeptRows()
    first = written_rows(stream, [Update("00QA", shared), Update("00QB", plain)], {"n": "N__c"},
                         written, kept=kept)  # fmt: skip
    second = written_rows(stream, [Update("00QC", shared), Update("00QD", plain)], {"n": "N__c"},
                          written, kept=kept)  # fmt: skip

    assert first["00QA"] is second["00QC"] == {"N__c": "v1"}
    assert second["00QD"] == {"N__c": "v2"} and calls == [1, 2, 2]
    assert len(kept) == 1  # the plain dict is not kept
    other = Stream("Contact", "person", "Contact", "Id", "LastModifiedDate", (), writable=("n",))
    written_rows(other, [Update("003A", shared)], {"n": "N__c"}, written, kept=kept)
    assert calls == [1, 2, 2, 1] and len(kept) == 2  # kept by stream
    del shared
    gc.collect()
    assert len(kept) == 0  # the mapping's end dropped its rows
    one, another = _Shared(n=3), _Shared(n=4)
    written_rows(stream, [Update("00QE", one)], {"n": "N__c"}, written, kept=kept)
    rows = kept.of("Lead")
    rows[id(another)] = rows[id(one)]  # as if `another` had the id of a mapping gone since
    made = written_rows(stream, [Update("00QF", another)], {"n": "N__c"}, written, kept=kept)
    assert made["00QF"] == {"N__c": "v4"}  # its own row: the kept one is another mapping's


# --- a HubSpot batch update's answer, read by its records' ids (`connectors.hubspot._answered`)


def _record(record_id: str, **properties: Any) -> dict[str, Any]:
    """A record as HubSpot's batch update answers it (`SimplePublicObject`)."""
    stamp = "2026-11-01T00:00:00.000Z"
    return {
        "id": record_id,
        "properties": {"hs_object_id": record_id, **properties},
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
    }


def _answer(records: Sequence[dict[str, Any]], errors: Sequence[dict[str, Any]] = ()) -> bytes:
    body: dict[str, Any] = {"status": "COMPLETE", "results": list(records)}
    if errors:
        body |= {"numErrors": len(errors), "errors": list(errors)}
    return json.dumps(body | {"startedAt": "x", "completedAt": "y"}, separators=(",", ":")).encode()


_REFUSED = {"category": "VALIDATION_ERROR", "message": "bad", "context": {"ids": ["12"]}}


@pytest.mark.parametrize(
    ("records", "errors", "landed"),
    [
        # every record landed, the signals holding what looks like a record
        ([_record("11", handoff_signals='{"id":"12"}'), _record("12")], [], {"11", "12"}),
        ([_record("11")], [_REFUSED], {"11"}),  # a record refused
        # a record missing from the answer, its id held by a property named id, first or not
        ([{**_record("11"), "properties": {"id": "12"}}], [], {"11"}),
        ([_record("11", id="12")], [], {"11"}),
        # a record both answered and refused: the refusal counts, as read whole
        ([_record("11"), _record("12")], [_REFUSED], {"11"}),
        ([_record("11"), _record("11")], [], {"11"}),  # a record answered twice, one not at all
        # the keys in the API reference's order (alphabetical): no record begins with its id
        ([dict(sorted(_record(i).items())) for i in ("11", "12")], [], {"11", "12"}),
        # a text "errors" in an answer where every record landed
        ([_record("11", handoff_topic="errors"), _record("12")], [], {"11", "12"}),
    ],
)
def test_a_batch_answer_read_by_its_ids_gives_what_reading_it_whole_gives(
    records: list[dict[str, Any]], errors: list[dict[str, Any]], landed: set[str]
) -> None:
    chunk = ["11", "12"]
    body = _answer(records, errors)
    answered = _answered(chunk, body)
    assert answered == _batch_results(chunk, json.loads(body))
    assert {i for i, result in answered.items() if result.ok} == landed


def test_a_batch_answer_of_the_sandbox_is_read_by_its_ids_alone() -> None:
    # the sandbox's envelope (a space after its head's colons), its records compact
    stamp = datetime(2026, 11, 1, tzinfo=UTC)
    records = [json.dumps(_record(i), separators=(",", ":")) for i in ("11", "12")]
    body = batch_response(200, records, [], stamp, stamp).body
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("connectors.hubspot.read_json", lambda body: pytest.fail("read whole"))
        assert _answered(["11", "12"], body) == {i: WriteResult(i, "ok") for i in ("11", "12")}
