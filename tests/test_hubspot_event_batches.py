"""HubSpot's events API pages read as columns (`RecordBatch`, `connectors.page_reader`) end as
the same records as read row by row (``batches=False``).

The events API answers 100 events a page; `HubSpotConnector` reads `EVENT_PAGES_PER_BATCH`
pages into one batch with one checkpoint after them (here 4, so a small org makes several
groups). The records, tombstones, warnings, the
pull's summary and where the cursor ends are the same either way: on the sandbox's pages (an
Enterprise portal), full and incremental (the overlap window read again, the ids the cursor
holds at its bound left out), and on pages written here with what real portals send (an
unreadable time, a missing id, an object id as a number, times out of order, an id twice),
which go row by row where columns would not read them alike. Mirrored, both pulls leave the same
rows and cursor. Marketing email events (1,000 a page, in no order) read as columns too,
`EMAIL_PAGES_PER_BATCH` pages of a type together with one checkpoint after them (here 3): their
opens and clicks new to the cursor, on the sandbox's pages and on scripted ones (a time that is
no epoch integer, or an id twice, goes row by row), and a pull stopped inside a group checkpoints
as a page at a time would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from connectors import hubspot
from connectors.errors import BudgetExhausted, PaginationError
from connectors.hubspot import HubSpotConnector
from connectors.hubspot_web import millis_texts
from connectors.json_pages import json_text_columns
from connectors.keys import NO_ID
from connectors.protocol import (
    FULL_LOAD,
    Checkpoint,
    Cursor,
    Item,
    Record,
    RecordBatch,
    Summary,
    expanded,
)
from connectors.streams import stamp
from sandbox.service import RunningSandbox
from sync.mirror import mirror_streams
from sync.store import Store
from tests.hubspot_batches import (
    EVENTS_FROM,
    READ_AT,
    Only,
    both_ways,
    cut_answer,
    enterprise_portal,
    hubspot_connector,
    scripted_event,
    stopped_pulls,
)

T = EVENTS_FROM  # a scripted page's first time
GROUP = 4  # events API pages a batch


@pytest.fixture(autouse=True)
def _small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hubspot, "EVENT_PAGES_PER_BATCH", GROUP)


crm = enterprise_portal(60, 11)


def _delivered(items: Sequence[Item]) -> tuple[list[Item], Cursor | None, Summary | None]:
    """What a pull delivered (records and tombstones, batches given as their records), where
    its cursor ended, and its summary less the calls (the groups' checkpoints are fewer)."""
    delivered = [i for i in expanded(items) if not isinstance(i, Checkpoint | Summary)]
    checkpoints = [i.cursor for i in items if isinstance(i, Checkpoint)]
    summaries = [replace(i, calls=0) for i in items if isinstance(i, Summary)]
    return delivered, checkpoints[-1] if checkpoints else None, summaries[-1] if summaries else None


def _both(
    crm: RunningSandbox, cursor: Cursor = FULL_LOAD, stream: str = "events", **settings: Any
) -> list[Any]:
    return both_ways(crm, stream, cursor, _delivered, **settings)


def test_the_sandboxs_event_pages_read_as_columns_give_the_records_rows_give(
    crm: RunningSandbox,
) -> None:
    (by_rows, rows_batched), (by_columns, columns_batched) = _both(crm)

    assert by_columns == by_rows
    assert not rows_batched and columns_batched
    records = [r for r in by_rows[0] if isinstance(r, Record)]
    assert len(records) > 2 * 100 * GROUP  # several groups, the last one short


def test_the_sandboxs_answers_are_read_as_columns_from_their_text(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[bool] = []

    def recorded(parts: Any, names: Any) -> Any:
        frame = json_text_columns(parts, names)
        read.append(frame is not None)
        return frame

    monkeypatch.setattr(hubspot, "json_text_columns", recorded)
    items = list(hubspot_connector(crm, True).pull("events"))

    assert len(read) > 2 and all(read)  # every group, by polars
    assert sum(len(i) for i in items if isinstance(i, RecordBatch)) > 2 * 100 * GROUP


def test_a_group_of_pages_ends_in_one_checkpoint(crm: RunningSandbox) -> None:
    for batches, per_checkpoint in ((False, 100), (True, 100 * GROUP)):
        items = list(hubspot_connector(crm, batches).pull("events"))
        counts, since = [], 0
        for item in expanded(items):
            if isinstance(item, Record):
                since += 1
            elif isinstance(item, Checkpoint):
                counts.append(since)
                since = 0
        assert max(counts) == per_checkpoint and counts[-1] <= per_checkpoint


def test_an_incremental_pull_reads_the_overlap_window_again_alike(crm: RunningSandbox) -> None:
    pulled = expanded(hubspot_connector(crm, False).pull("events"))
    full = [r for r in pulled if isinstance(r, Record)]
    stamps = sorted({r.modified_at for r in full})
    bound = stamps[len(stamps) // 2]
    at_bound = sorted(r.id for r in full if r.modified_at == bound)
    cursor = Cursor(bound, frozenset(at_bound[: max(1, len(at_bound) // 2)]))

    (by_rows, _), (by_columns, as_columns) = _both(crm, cursor, overlap_minutes=24 * 60)

    assert by_columns == by_rows and as_columns
    again = [r for r in by_rows[0] if isinstance(r, Record) and r.reread]
    assert again and all(r.modified_at <= bound for r in again)
    assert not {r.id for r in by_rows[0] if isinstance(r, Record)} & cursor.ids


_event = scripted_event


SCRIPTED: dict[str, list[dict[str, Any]]] = {
    "what real portals send, read as columns": [
        _event(1),
        _event(2, occurredAt="soon"),  # no time: skipped and counted
        _event(3, id=None),  # no id: skipped and counted
        _event(4, objectType="COMPANY", eventType="e_submitted_form"),
        _event(5, eventType="pe_custom_12345", properties={}),  # no rule types it
        _event(6, properties={"hs_url": None, "hs_title": ""}),
        _event(7, objectType=None, objectId=None),
        _event(8, objectId=""),  # a contact's event without its id
        _event(9, objectType="contact"),  # not CONTACT: no person
    ],
    "an object id as a number": [_event(1), _event(2, objectId=3000000002)],
    "an object id past any integer polars holds": [_event(1), _event(2, objectId=10**40)],
    "times out of order": [_event(2), _event(1)],
    "an id twice": [_event(1), _event(2, id=_event(1)["id"])],
}


def _answered(pages: list[dict[str, Any]], how: str) -> list[Any]:
    """Pages as `HubSpotConnector._event_pages` gives them: read as JSON (an answer in another
    shape), cut from their text (`connectors.json_pages`), or the first cut and the next read."""
    if how == "read":
        return pages
    cuts = [cut_answer(page) for page in pages]
    return cuts if how == "cut" else [cuts[0], *pages[1:]]


@pytest.mark.parametrize("how", ["read", "cut", "mixed"])
@pytest.mark.parametrize("rows", SCRIPTED.values(), ids=SCRIPTED.keys())
def test_scripted_event_pages_read_alike(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch, rows: list[dict[str, Any]], how: str
) -> None:
    pages = _answered([{"results": rows[:3]}, {"results": rows[3:]}], how)
    monkeypatch.setattr(HubSpotConnector, "_event_pages", lambda self, cursor: iter(pages))

    (by_rows, _), (by_columns, as_columns) = _both(crm)

    assert by_columns == by_rows
    assert as_columns == (next(iter(SCRIPTED.values())) is rows)
    assert [r for r in by_rows[0] if isinstance(r, Record)]


def test_both_pulls_mirror_to_the_same_rows_and_cursor(crm: RunningSandbox, tmp_path: Any) -> None:
    held = []
    for batches in (False, True):
        with Store.open(f"sqlite:///{tmp_path}/state-{batches}.db") as store:
            connector = hubspot_connector(crm, batches)
            streams = {"events": connector.streams["events"]}
            subset = Only(connector, streams)
            [pulled] = list(mirror_streams(store, subset, READ_AT))  # type: ignore[arg-type]
            with store.session() as session:
                rows = session.execute(text("SELECT * FROM activity ORDER BY id")).all()
                cursor = store.get_cursor(session, "hubspot", "events")
            held.append(([tuple(r) for r in rows], cursor and cursor.value, pulled.stored))
    assert held[0] == held[1] and held[0][0]


def _stopping(pages: list[Any], error: Exception) -> Any:
    """`HubSpotConnector._event_pages` answering ``pages``, then failing with ``error``."""

    def event_pages(self: HubSpotConnector, cursor: Cursor) -> Iterator[Any]:
        yield from pages
        raise error

    return event_pages


@pytest.mark.parametrize(
    "error",
    [BudgetExhausted("the day's calls are spent"), PaginationError("the same token twice")],
    ids=["budget", "error"],
)
@pytest.mark.parametrize("how", ["read", "cut"])
def test_a_pull_stopped_inside_a_group_checkpoints_the_pages_read_as_a_page_at_a_time_would(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch, error: Exception, how: str
) -> None:
    pages = [{"results": [_event(2 * n), _event(2 * n + 1)]} for n in range(GROUP + 2)]
    monkeypatch.setattr(HubSpotConnector, "_event_pages", _stopping(_answered(pages, how), error))
    saved = stopped_pulls(crm, "events", type(error))

    assert saved[0] == saved[1]
    assert len(saved[0][0]) == 2 * len(pages)  # the short group's pages too
    assert saved[0][1] is not None and saved[0][1].value == T + timedelta(minutes=2 * GROUP + 3)


@pytest.mark.parametrize("how", ["read", "cut"])
def test_dirty_pages_against_a_cursor_holding_ids_read_alike(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    rows = [_event(n) for n in range(1, 9)]
    rows[5] = _event(6, occurredAt="soon")
    rows[6] = _event(7, objectType="COMPANY", properties={})
    pages = _answered([{"results": rows[:4]}, {"results": rows[4:]}], how)
    monkeypatch.setattr(HubSpotConnector, "_event_pages", lambda self, cursor: iter(pages))
    bound = T + timedelta(minutes=4)
    cursor = Cursor(bound, frozenset({rows[3]["id"]}))

    (by_rows, _), (by_columns, as_columns) = _both(crm, cursor)

    assert by_columns == by_rows and as_columns
    records = [r for r in by_rows[0] if isinstance(r, Record)]
    assert [r.reread for r in records] == [True, True, True, False, False, False]
    assert rows[3]["id"] not in {r.id for r in records}  # delivered at the bound: not again


# --- marketing email events (1,000 a page, in no order) ---------------------------------------


def test_the_sandboxs_email_event_pages_read_as_columns_give_the_records_rows_give(
    crm: RunningSandbox,
) -> None:
    (by_rows, _), (by_columns, as_columns) = _both(crm, stream="email_events")
    records = [r for r in by_rows[0] if isinstance(r, Record)]
    bound = sorted(r.modified_at for r in records)[len(records) // 2]
    again = _both(crm, Cursor(bound), "email_events")
    (again_by_rows, _), (again_by_columns, again_as_columns) = again

    assert by_columns == by_rows and as_columns and records
    assert again_by_columns == again_by_rows and again_as_columns
    assert 0 < len(again_by_rows[0]) < len(records)
    assert all(r.modified_at >= bound for r in again_by_rows[0] if isinstance(r, Record))


def _email(number: int, kind: str = "OPEN", **values: Any) -> dict[str, Any]:
    created = int((T + timedelta(minutes=number, milliseconds=number)).timestamp() * 1000)
    event = {
        "id": f"e{number}",
        "type": kind,
        "created": created,
        "recipient": f"p{number % 3}@example.com",
        "url": "https://www.example.com/pricing" if kind == "CLICK" else None,
    }
    return event | values


EMAIL_SCRIPTED: dict[str, list[dict[str, Any]]] = {
    "what real portals send, read as columns": [
        _email(1),
        _email(2, "CLICK"),
        _email(3, created="soon"),  # no time: skipped and counted
        _email(4, recipient="nobody@example.com"),  # no contact: skipped and counted
        _email(5, "CLICK", url=""),
        _email(6, "DELIVERED"),  # neither an open nor a click
        _email(7, created=-1),  # a millisecond before 1970
        {k: v for k, v in _email(8).items() if k != "created"},  # no time: skipped and counted
        {k: v for k, v in _email(9, recipient="nobody@example.com").items() if k != "created"},
    ],
    "a time as a float": [_email(1), _email(2, created=1.7e12)],
    "a time past datetime's years": [_email(1), _email(2, created=10**16)],
    "a time past any integer polars holds": [_email(1), _email(2, created=10**40)],
    "an id twice": [_email(1), _email(2, id="e1")],
    "no id, or a number": [
        _email(1),
        {k: v for k, v in _email(2).items() if k != "id"},  # skipped and counted, not a crash
        _email(3, id=None),
        _email(4, id=4),
    ],
}


def _look_up(self: HubSpotConnector, emails: Sequence[str]) -> None:
    """`HubSpotConnector._look_up` knowing the scripted recipients p0-p9 as contacts (in any
    case, as HubSpot finds an address)."""
    for email in map(str.lower, emails):
        if email.startswith("p"):
            self._contact_of[email] = f"3000000{email[1]}"


def _email_api(events: list[dict[str, Any]], per_page: int, fail_at: int | None = None) -> Any:
    """`HubSpotConnector._email_page` answering ``events`` ``per_page`` at a time by type, the
    offset its position; failing with `BudgetExhausted` at each pull's call ``fail_at`` (a
    pull from the start begins with the first page of opens)."""
    calls = [0]

    def page(self: HubSpotConnector, kind: str | None, since: Any, offset: Any) -> Any:
        calls[0] = 1 if (kind, offset) == ("OPEN", None) else calls[0] + 1
        if calls[0] == fail_at:
            raise BudgetExhausted("the day's calls are spent")
        of_kind = [e for e in events if kind in (None, e["type"])]
        start = int(offset or 0)
        more = start + per_page < len(of_kind)
        chunk = of_kind[start : start + per_page]
        answer = {"hasMore": more, "offset": str(start + per_page), "events": chunk}
        return json.dumps(answer, separators=(",", ":")).encode()

    return page


# opens on 7 pages of 2 (groups of 3: two whole and one short), clicks on one
EMAIL_PAGES = [_email(n) for n in range(1, 15)] + [_email(n, "CLICK") for n in range(15, 17)]


def _email_groups(monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None) -> None:
    monkeypatch.setattr(hubspot, "EMAIL_PAGES_PER_BATCH", 3)
    monkeypatch.setattr(HubSpotConnector, "_email_page", _email_api(EMAIL_PAGES, 2, fail_at))
    monkeypatch.setattr(HubSpotConnector, "_look_up", _look_up)


def test_email_event_pages_are_read_a_group_at_a_time_to_the_records_pages_give(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    _email_groups(monkeypatch)

    (by_rows, _), (by_columns, as_columns) = _both(crm, stream="email_events")
    checkpoints = [
        [i.cursor.resume for i in hubspot_connector(crm, batches).pull("email_events")
         if isinstance(i, Checkpoint)]
        for batches in (False, True)
    ]  # fmt: skip

    assert by_columns == by_rows and as_columns
    assert [r.id for r in by_rows[0]] == [f"e{n}" for n in range(1, 17)]
    assert len(checkpoints[0]) == 8  # a page at a time: 7 pages of opens, 1 of clicks
    assert len(checkpoints[1]) == 4  # 3 groups of opens, 1 of clicks
    # each group's checkpoint is the one its last page's would be
    assert checkpoints[1] == [checkpoints[0][n] for n in (2, 5, 6, 7)]


@pytest.mark.parametrize("fail_at", [2, 5, 7])
def test_an_email_pull_stopped_inside_a_group_checkpoints_the_pages_read_as_a_page_at_a_time_would(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    _email_groups(monkeypatch, fail_at)

    saved = stopped_pulls(crm, "email_events", BudgetExhausted)

    assert saved[0] == saved[1]
    assert saved[0][0] == [f"e{n}" for n in range(1, 2 * (fail_at - 1) + 1)]
    assert saved[0][1] is not None and saved[0][1].resume is not None


def _email_both_ways(
    crm: RunningSandbox,
    monkeypatch: pytest.MonkeyPatch,
    events: list[dict[str, Any]],
    last: bool = True,
) -> list[Any]:
    """`_both` of the email events stream, its one page of each type holding ``events``',
    after ``hasMore`` (``last``, as HubSpot answers) or before it."""

    def page(self: HubSpotConnector, kind: str | None, since: Any, offset: Any) -> bytes:
        answer = {"events": [e for e in events if kind in (None, e["type"])], "hasMore": False}
        # json, not orjson: a time past 64 bits is written as HubSpot would send it
        return json.dumps(dict(reversed(answer.items())) if last else answer).encode()

    monkeypatch.setattr(HubSpotConnector, "_email_page", page)
    monkeypatch.setattr(HubSpotConnector, "_look_up", _look_up)
    return _both(crm, stream="email_events")


def _text_reads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each group of email pages a batch pull reads was read by polars from the text."""
    read: list[bool] = []
    real = HubSpotConnector._email_frame

    def recorded(self: HubSpotConnector, pages: Any) -> Any:
        frame = real(self, pages)
        if self.batches:
            read.append(frame is not None)
        return frame

    monkeypatch.setattr(HubSpotConnector, "_email_frame", recorded)
    return read


@pytest.mark.parametrize("last", [True, False], ids=["events last", "events first"])
@pytest.mark.parametrize("events", EMAIL_SCRIPTED.values(), ids=EMAIL_SCRIPTED.keys())
def test_scripted_email_event_pages_read_alike(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch, events: list[dict[str, Any]], last: bool
) -> None:
    from_text = _text_reads(monkeypatch)

    (by_rows, _), (by_columns, as_columns) = _email_both_ways(crm, monkeypatch, events, last)

    assert by_columns == by_rows
    assert as_columns == (next(iter(EMAIL_SCRIPTED.values())) is events)
    # the opens' page holds what polars would read otherwise, but an id twice (read from the
    # text, then row by row: a batch holds an id once); events first, it is never cut
    assert from_text[0] == (last and events is EMAIL_SCRIPTED["an id twice"])
    records = [r for r in by_rows[0] if isinstance(r, Record)]
    assert records and all(r.values["person_id"] for r in records)
    if as_columns:
        assert {r.id for r in records} == {"e1", "e2", "e5", "e7"}
        assert by_rows[2] is not None and sum(by_rows[2].skipped.values()) == 4
        [first] = [r for r in records if r.id == "e1"]
        assert first.modified_at == T + timedelta(minutes=1, milliseconds=1)


EMAIL_CLEAN = [
    _email(1),
    _email(2, "CLICK"),
    _email(4, recipient="nobody@example.com"),  # no contact: skipped and counted
    _email(5, "CLICK", url=""),
    _email(6, "DELIVERED"),  # neither an open nor a click
    _email(7, created=-1),  # a millisecond before 1970
    _email(8, recipient="P2@Example.COM"),  # a contact's address, in capitals
    _email(10, recipient=None),  # no address: no contact
    _email(11, "CLICK", sentBy={"id": "5e1a", "created": 17}, url="https://x.io/?q=\u00e9"),
]


@pytest.mark.parametrize("last", [True, False], ids=["events last", "events first"])
def test_email_event_pages_polars_can_read_are_read_from_their_text_alike(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch, last: bool
) -> None:
    from_text = _text_reads(monkeypatch)

    (by_rows, _), (by_columns, as_columns) = _email_both_ways(crm, monkeypatch, EMAIL_CLEAN, last)

    assert by_columns == by_rows and as_columns
    assert from_text == [last, last]  # the opens' page and the clicks': cut where events last
    records = [r for r in by_rows[0] if isinstance(r, Record)]
    assert {r.id for r in records} == {"e1", "e2", "e5", "e7", "e8", "e11"}
    assert {r.values["person_id"] for r in records if r.id == "e8"} == {"30000002"}
    assert by_rows[2] is not None and sum(by_rows[2].skipped.values()) == 2


def test_the_sandboxs_email_event_pages_are_read_from_their_text(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_text = _text_reads(monkeypatch)

    (by_rows, _), (by_columns, as_columns) = _both(crm, stream="email_events")

    assert by_columns == by_rows and as_columns
    assert from_text and all(from_text)


def test_an_email_event_without_an_id_is_skipped_and_counted_either_way(
    crm: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = EMAIL_SCRIPTED["no id, or a number"]

    (by_rows, _), (by_columns, _) = _email_both_ways(crm, monkeypatch, events)

    assert by_columns == by_rows
    for delivered, _, summary in (by_rows, by_columns):
        assert {r.id for r in delivered if isinstance(r, Record)} == {"e1", "4"}
        assert summary is not None and summary.skipped[NO_ID] == 2


def test_email_event_times_are_written_as_the_same_instant_or_left_as_they_came() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    last = (datetime.max.replace(tzinfo=UTC) - epoch) // timedelta(milliseconds=1)
    first = (datetime.min.replace(tzinfo=UTC) - epoch) // timedelta(milliseconds=1)
    given = [1700000000123, -1, first, last, last + 1, first - 1, "soon", None, 1.7e12, True]

    written = millis_texts(given)

    assert written[:4] == [
        "2023-11-14T22:13:20.123Z",
        "1969-12-31T23:59:59.999Z",
        "0001-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.999Z",
    ]
    for millis, text_ in zip(given[:4], written[:4], strict=True):
        assert stamp(text_) == epoch + timedelta(milliseconds=millis)
    assert written[4:] == given[4:]
