"""A HubSpot full load's list pages read as columns (`RecordBatch`,
`PageReader.unordered_columns`) end as the same records as read row by row (``batches=False``).

A full load lists every record 100 a page, by id; `HubSpotConnector` reads
`LIST_PAGES_PER_BATCH` pages (here 2) into one batch with one checkpoint after them, which
holds the list's place. The records, tombstones, warnings, summary and cursor are the same
either way: on the sandbox's companies, contacts, deals and engagements, and on pages written
here with what real portals send (an unreadable modification time, a missing id, a number that
is none, a record naming ids merged into it, an id twice), which go row by row where columns
would not read them alike. Mirrored, both loads leave the same rows and cursors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from connectors import hubspot
from connectors.errors import BudgetExhausted
from connectors.hubspot import HubSpotConnector
from connectors.hubspot_api import HubSpotApi
from connectors.protocol import (
    FULL_LOAD,
    Checkpoint,
    Cursor,
    Item,
    Record,
    RecordBatch,
    Summary,
    Tombstone,
    expanded,
)
from sandbox.service import RunningSandbox
from sync.mirror import mirror_streams
from sync.store import Store
from tests.hubspot_batches import (
    READ_AT,
    Only,
    answer_text,
    both_ways,
    cut_answer,
    enterprise_portal,
    hubspot_connector,
    stopped_pulls,
)

T = datetime(2026, 11, 2, 8, 30, 15, tzinfo=UTC)  # a scripted load's bound
GROUP = 2  # list pages a batch
# the streams read from the list API that a generated org fills (notes and tasks only come from
# the API)
LISTED = ("companies", "contacts", "deals", "calls", "emails", "meetings")


@pytest.fixture(autouse=True)
def _small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hubspot, "LIST_PAGES_PER_BATCH", GROUP)


crm = enterprise_portal(120, 5)


def _delivered(
    items: Sequence[Item],
) -> tuple[list[Record], list[Tombstone], Cursor | None, Summary | None]:
    """What a load delivered: its records in order (batches given as their records), its
    tombstones (a group's follow its records, a page's each record: compared as a set), its
    last checkpoint's cursor, and its summary less the calls."""
    records = [i for i in expanded(items) if isinstance(i, Record)]
    tombstones = sorted((i for i in items if isinstance(i, Tombstone)), key=lambda t: t.id)
    checkpoints = [i.cursor for i in items if isinstance(i, Checkpoint)]
    summaries = [replace(i, calls=0) for i in items if isinstance(i, Summary)]
    last = checkpoints[-1] if checkpoints else None
    return records, tombstones, last, summaries[-1] if summaries else None


def _both(crm: RunningSandbox, stream: str, cursor: Cursor = FULL_LOAD) -> list[Any]:
    return both_ways(crm, stream, cursor, _delivered)


@pytest.mark.parametrize("stream", LISTED)
def test_the_sandboxs_list_pages_read_as_columns_give_the_records_rows_give(
    crm: RunningSandbox, stream: str
) -> None:
    (by_rows, rows_batched), (by_columns, columns_batched) = _both(crm, stream)

    assert by_columns == by_rows
    assert not rows_batched and columns_batched
    records = by_rows[0]
    cursor = by_rows[2]
    assert records and cursor is not None and cursor.value == max(r.modified_at for r in records)


def test_linked_fields_are_read_from_the_inline_associations(crm: RunningSandbox) -> None:
    (by_rows, _), (by_columns, _) = _both(crm, "calls")

    records = by_columns[0]
    assert by_columns == by_rows
    assert sum(r.values["person_id"] is not None for r in records) > len(records) / 2
    assert any(r.values["account_id"] is not None for r in records)


def test_a_group_of_pages_ends_in_one_checkpoint_holding_the_lists_place(
    crm: RunningSandbox,
) -> None:
    counts = {}
    for batches in (False, True):
        items = list(hubspot_connector(crm, batches).pull("contacts"))
        per, since = [], 0
        for item in expanded(items):
            if isinstance(item, Record):
                since += 1
            elif isinstance(item, Checkpoint):
                per.append((since, item.cursor.resume is None))
                since = 0
        counts[batches] = per
    assert {n for n, _ in counts[False][:-1]} == {100}
    assert {n for n, _ in counts[True][:-1]} == {100 * GROUP}
    assert [last for _, last in counts[True]] == [False] * (len(counts[True]) - 1) + [True]
    assert sum(n for n, _ in counts[False]) == sum(n for n, _ in counts[True]) > 2 * 100 * GROUP


def test_a_load_resumed_from_a_groups_checkpoint_reads_the_rest_alike(
    crm: RunningSandbox,
) -> None:
    whole = list(hubspot_connector(crm, True).pull("contacts"))
    first = next(i.cursor for i in whole if isinstance(i, Checkpoint))
    assert first.resume is not None

    (by_rows, _), (by_columns, as_columns) = _both(crm, "contacts", first)

    assert by_columns == by_rows and as_columns
    rest = {r.id for r in by_rows[0]}
    every = {r.id for r in expanded(whole) if isinstance(r, Record)}
    assert len(rest) == len(every) - 100 * GROUP


def _company(number: int, **properties: Any) -> dict[str, Any]:
    stamp = (T - timedelta(minutes=number)).isoformat().replace("+00:00", "Z")
    values = {
        "name": f"Company {number}",
        "domain": f"c{number}.example.com",
        "numberofemployees": "120",
        "annualrevenue": "1500000.5",
        "createdate": "2024-03-01T10:00:00Z",
        "hs_lastmodifieddate": stamp,
        "lifecyclestage": "lead",
    }
    return {
        "id": str(9_000 + number),
        "properties": values | properties,
        "createdAt": "2024-03-01T10:00:00Z",
        "updatedAt": stamp,
        "archived": False,
    }


def _listing(
    pages: list[tuple[list[dict[str, Any]], str | None]],
    how: str = "read",
    error: Exception | None = None,
) -> Any:
    """`HubSpotConnector._listed` answering ``pages`` (records, next token): read as JSON (an
    answer in another shape), or cut from their text (`connectors.json_pages`); then failing
    with ``error``, if given."""

    def listed(self: HubSpotConnector, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for raws, token in pages:
            page: dict[str, Any] = {"results": raws}
            if token is not None:
                page["paging"] = {"next": {"after": token}}
            yield (cut_answer(page) if how == "cut" else page), token
        if error is not None:
            raise error

    return listed


BOUND = T.isoformat().replace("+00:00", "Z")
SCRIPTED: dict[str, list[dict[str, Any]]] = {
    "what real portals send, read as columns": [
        _company(1),
        _company(0),  # at the bound: the cursor holds it
        _company(2, hs_lastmodifieddate="soon"),  # the record's updatedAt instead, a warning
        _company(0, hs_lastmodifieddate="soon") | {"id": "9100"},  # guessed at the bound
        _company(3) | {"id": None},  # no id: skipped and counted
        _company(4, hs_lastmodifieddate=None) | {"updatedAt": None, "createdAt": None},
        _company(5, numberofemployees="a dozen", annualrevenue="1e999", country="Atlantis"),
        _company(6, name=None, domain="", industry="COMPUTER_SOFTWARE"),
        _company(7, hs_merged_object_ids="17;18"),  # two ids merged into it
        _company(8, hs_merged_object_ids="19") | {"id": None},  # skipped: no tombstone
    ],
    "an id twice": [_company(1), _company(2) | {"id": "9001"}],
    "a value that is not text": [_company(1), _company(2, name=["Acme"])],
    "an id past any integer polars holds": [_company(1), _company(2) | {"id": 10**40}],
}


def _polars_reads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each group a pull reads was read by polars from the answers' text."""
    read: list[bool] = []
    frame_of = HubSpotConnector._list_frame

    def recorded(self: HubSpotConnector, *args: Any) -> Any:
        items = frame_of(self, *args)
        read.append(items is not None)
        return items

    monkeypatch.setattr(HubSpotConnector, "_list_frame", recorded)
    return read


@pytest.mark.parametrize("stream", LISTED)
def test_the_sandboxs_answers_are_read_as_columns_from_their_text(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch, stream: str
) -> None:
    read = _polars_reads(monkeypatch)
    items = list(hubspot_connector(crm, True).pull(stream))

    assert read and all(read)  # every group
    assert any(isinstance(i, RecordBatch) for i in items)


@pytest.mark.parametrize("how", ["read", "cut"])
@pytest.mark.parametrize("raws", SCRIPTED.values(), ids=SCRIPTED.keys())
def test_scripted_list_pages_read_alike(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch, raws: list[dict[str, Any]], how: str
) -> None:
    pages = [(raws[:3], "3"), (raws[3:], None)]
    monkeypatch.setattr(HubSpotConnector, "_latest", lambda self, stream: T)
    monkeypatch.setattr(HubSpotConnector, "_listed", _listing(pages, how))

    read = _polars_reads(monkeypatch)
    (by_rows, _), (by_columns, as_columns) = _both(crm, "companies")

    assert by_columns == by_rows
    assert as_columns == (next(iter(SCRIPTED.values())) is raws)
    assert read == [how == "cut" and as_columns]  # by polars, where JSON would read as columns
    assert by_rows[0]


@pytest.mark.parametrize("how", ["read", "cut"])
def test_dirty_values_are_warned_and_the_bound_moves_by_read_times_only(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    raws = next(iter(SCRIPTED.values()))
    monkeypatch.setattr(HubSpotConnector, "_latest", lambda self, stream: T)
    monkeypatch.setattr(HubSpotConnector, "_listed", _listing([(raws, None)], how))

    items = list(hubspot_connector(crm, True).pull("companies"))

    records = {r.id: r for r in expanded(items) if isinstance(r, Record)}
    [cursor] = [i.cursor for i in items if isinstance(i, Checkpoint)]
    assert (cursor.value, cursor.ids) == (T, {"9000"})  # not 9100, whose time is a fallback's
    assert {w.field for w in records["9002"].warnings} == {"modified_at"}
    assert {w.field for w in records["9005"].warnings} == {"employees", "revenue", "country"}
    assert records["9005"].values["employees"] is None
    assert records["9006"].values["name"] is None and records["9006"].values["domain"] is None
    assert len(records) == 7  # no id (twice), no time: skipped
    [summary] = [i for i in items if isinstance(i, Summary)]
    assert sum(summary.skipped.values()) == 3


@pytest.mark.parametrize("how", ["read", "cut"])
def test_the_ids_merged_into_a_record_are_tombstones_after_its_group(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    raws = next(iter(SCRIPTED.values()))
    monkeypatch.setattr(HubSpotConnector, "_latest", lambda self, stream: T)
    monkeypatch.setattr(HubSpotConnector, "_listed", _listing([(raws, None)], how))

    items = list(expanded(hubspot_connector(crm, True).pull("companies")))

    gone = [(i.id, i.merged_into, i.deleted_at) for i in items if isinstance(i, Tombstone)]
    at = T - timedelta(minutes=7)
    assert gone == [("17", "9007", at), ("18", "9007", at)]
    last_record = max(n for n, i in enumerate(items) if isinstance(i, Record))
    assert all(isinstance(i, Tombstone) for i in items[last_record + 1 : -2])


@pytest.mark.parametrize("how", ["read", "cut"])
def test_a_load_stopped_inside_a_group_checkpoints_the_pages_read(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    pages = [([_company(2 * n + 1), _company(2 * n + 2)], str(n + 1)) for n in range(GROUP + 1)]
    spent = BudgetExhausted("the day's calls are spent")
    monkeypatch.setattr(HubSpotConnector, "_latest", lambda self, stream: T)
    monkeypatch.setattr(HubSpotConnector, "_listed", _listing(pages, how, spent))
    saved = stopped_pulls(crm, "companies", BudgetExhausted)

    assert saved[0] == saved[1]
    assert len(saved[0][0]) == 2 * len(pages)  # the short group's pages too
    assert saved[0][1] is not None and saved[0][1].resume == str(GROUP + 1)


def test_both_loads_mirror_to_the_same_rows_and_cursors(crm: RunningSandbox, tmp_path: Any) -> None:
    held = []
    for batches in (False, True):
        with Store.open(f"sqlite:///{tmp_path}/state-{batches}.db") as store:
            connector = hubspot_connector(crm, batches)
            streams = {name: connector.streams[name] for name in LISTED}
            subset = Only(connector, streams)
            pulled = list(mirror_streams(store, subset, READ_AT))  # type: ignore[arg-type]
            tables = []
            with store.session() as session:
                for table in ("account", "person", "opportunity", "activity"):
                    rows = session.execute(text(f"SELECT * FROM {table} ORDER BY id")).all()
                    tables.append([tuple(r) for r in rows])
                cursors = [store.get_cursor(session, "hubspot", name) for name in LISTED]
            held.append((tables, cursors, [p.stored for p in pulled]))
    assert held[0] == held[1] and all(held[0][0])


def _deal(number: int, company: str) -> dict[str, Any]:
    stamp = (T - timedelta(minutes=number)).isoformat().replace("+00:00", "Z")
    return {
        "id": "500",
        "properties": {"dealname": f"Deal {number}", "hs_lastmodifieddate": stamp},
        "createdAt": stamp,
        "updatedAt": stamp,
        "associations": {"companies": {"results": [{"id": company, "type": "deal_to_company"}]}},
    }


@pytest.mark.parametrize("how", ["read", "cut"])
def test_an_id_on_two_pages_of_a_group_keeps_each_pages_links(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    pages = [([_deal(1, "111")], "1"), ([_deal(2, "222")], None)]  # the group goes row by row
    monkeypatch.setattr(HubSpotConnector, "_latest", lambda self, stream: T)
    monkeypatch.setattr(HubSpotConnector, "_listed", _listing(pages, how))

    linked = {}
    for batches in (False, True):
        items = expanded(hubspot_connector(crm, batches).pull("deals"))
        linked[batches] = [(r.id, r.values["account_id"]) for r in items if isinstance(r, Record)]

    assert linked[True] == linked[False] == [("500", "111"), ("500", "222")]


@pytest.mark.parametrize("how", ["read", "cut"])
def test_email_events_join_only_the_contacts_a_load_delivered(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    timeless = _company(2) | {"id": "2", "createdAt": None, "updatedAt": None}
    timeless["properties"] = {"email": "x@example.com", "lastmodifieddate": None}
    kept = _company(1) | {"id": "1"}
    kept["properties"] = {"email": "x@example.com", "lastmodifieddate": BOUND}
    monkeypatch.setattr(HubSpotConnector, "_latest", lambda self, stream: T)
    monkeypatch.setattr(HubSpotConnector, "_listed", _listing([([kept, timeless], None)], how))

    joined = {}
    for batches in (False, True):
        connector = hubspot_connector(crm, batches)
        list(connector.pull("contacts"))
        joined[batches] = connector._contact_of.get("x@example.com")

    assert joined[True] == joined[False] == "1"  # not 2, skipped for no time


def _linked_deal(number: int, associations: Any) -> dict[str, Any]:
    return _deal(number, "0") | {"id": str(600 + number), "associations": associations}


def _results(*results: dict[str, Any]) -> dict[str, Any]:
    return {"companies": {"results": list(results)}}


LINKS = [
    _linked_deal(1, _results({"id": "1", "type": "deal_to_company_unlabeled"}, {"id": "2"})),
    _linked_deal(2, _results({"id": "3", "type": "deal_to_company_unlabeled"})),
    _linked_deal(3, _results({"id": "4", "type": None}, {"id": "5", "type": "deal_to_company"})),
    _linked_deal(4, _results()),
    _linked_deal(5, {"companies": None}),
    _linked_deal(6, None),
    _linked_deal(7, {"contacts": {"results": [{"id": "9", "type": "deal_to_contact"}]}}),
]


def test_links_chosen_by_polars_are_those_json_chooses(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(HubSpotConnector, "_latest", lambda self, stream: T)
    monkeypatch.setattr(HubSpotConnector, "_listed", _listing([(LINKS, None)], "cut"))
    read = _polars_reads(monkeypatch)

    linked = {}
    for batches in (False, True):
        items = expanded(hubspot_connector(crm, batches).pull("deals"))
        linked[batches] = [(r.id, r.values["account_id"]) for r in items if isinstance(r, Record)]

    assert read == [True]
    assert linked[True] == linked[False]
    assert [a for _, a in linked[False]] == ["2", "3", "4", None, None, None, None]


def test_an_answer_without_records_stops_a_load_after_the_pages_before_it(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {  # the third page, inside the second group of two, holds no records
        None: {"results": [_company(1), _company(2)], "paging": {"next": {"after": "1"}}},
        "1": {"results": [_company(3), _company(4)], "paging": {"next": {"after": "2"}}},
        "2": {"results": [_company(5), _company(6)], "paging": {"next": {"after": "3"}}},
        "3": {"message": "internal error", "status": "error"},
    }

    def answered(self: HubSpotApi, method: Any, *args: Any, **kwargs: Any) -> bytes:
        return answer_text(answers[kwargs.get("after")])

    monkeypatch.setattr(HubSpotConnector, "_latest", lambda self, stream: T)
    monkeypatch.setattr(HubSpotApi, "call_raw", answered)
    saved = stopped_pulls(crm, "companies", KeyError)

    assert saved[0] == saved[1]
    assert len(saved[0][0]) == 6 and saved[0][1] is not None and saved[0][1].resume == "3"
