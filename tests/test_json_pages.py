"""`connectors.json_pages`: HubSpot answers cut unread and their records read as text columns by
polars, which must be the columns `PageReader` makes of the same records read as JSON, or None
wherever polars would read them otherwise (a number or a checkbox as its text, an escaped
surrogate, a key named like a walked field, a text polars refuses)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import polars as pl
import pytest
from pydantic import SecretStr

from connectors import hubspot, json_pages
from connectors.config import HubSpotSettings
from connectors.hubspot import HubSpotConnector
from connectors.json_pages import cut, cut_last, json_text_columns, read_records
from connectors.page_reader import PageReader
from tests.hubspot_batches import cut_answer, scripted_event

NAMES = ["occurredAt", "properties.hs_title", "objectType", "objectId", "id", "properties.hs_url"]


def _reader() -> PageReader:
    """The events stream's reader, as the connector makes it (no call is made)."""
    connector = HubSpotConnector(HubSpotSettings(token=SecretStr("t")), host="http://127.0.0.1:9")
    return connector._reader(hubspot._stream("events"))


_event = scripted_event


def _cut_all(pages: list[list[dict[str, Any]]]) -> list[bytes]:
    return [
        cut_answer({"results": rows, "paging": {"next": {"after": "x"}}}).results for rows in pages
    ]


def test_an_answer_is_cut_into_its_results_and_the_next_token() -> None:
    rows = [_event(1, properties={"hs_url": 'a "],\\"paging\\":" in a title', "hs_title": "]}"})]
    body = orjson.dumps({"results": rows, "paging": {"next": {"after": "MTAw", "link": "l"}}})
    page = cut(body)
    assert page is not None and page.after == "MTAw"
    assert orjson.loads(b"[" + page.results + b"]") == rows

    last = cut(orjson.dumps({"results": rows}))
    assert last is not None and last.after is None
    assert orjson.loads(b"[" + last.results + b"]") == rows
    empty = cut(b'{"results":[],"paging":{"next":{"after":"5"}}}')
    assert empty is not None and empty.results == b"" and empty.after == "5"


@pytest.mark.parametrize(
    "body",
    [
        b'{"results":[{"id":"1"}],"x":[{"id":"2"}]}',  # a last page with another key after
        b'{"results":[{"id":"1"}],"x":[1],"paging":{"next":{"after":"5"}}}',
        b'{"paging":{"next":{"after":"5"}},"results":[]}',  # paging first
        b'{"results": [], "paging": {"next": {"after": "5"}}}',  # whitespace
        b'{"results":[],"paging":{"next":{"after":"5"}},"total":3}',  # another key after
        b'{"results":[],"total":3}',
        b'{"total":3,"results":[]}',
        b"<html>busy</html>",
    ],
    ids=[
        *("a last page with an array after", "an array between results and paging"),
        *("paging first", "spaced", "a key after paging", "a key after results", "led", "html"),
    ],
)
def test_an_answer_in_another_shape_is_not_cut_or_not_read_by_polars(body: bytes) -> None:
    page = cut(body)
    assert page is None or json_text_columns([page.results], ["id"]) is None


def test_records_read_as_the_text_columns_json_gives() -> None:
    pages = [
        [
            _event(1),
            _event(2, properties={}),  # no url, no title
            _event(3, properties=None),
            _event(4, objectType=None, objectId=""),
            _event(5, properties={"hs_url": 'https://x.example/é?q="1"\n', "hs_title": "日本"}),
        ],
        [],  # an empty page
        [{"id": "6", "occurredAt": "soon"}, _event(7, eventType="pe_1234_custom", extra={"a": 1})],
    ]
    rows = [row for page in pages for row in page]

    frame = json_text_columns(_cut_all(pages), NAMES)

    expected = _reader()._frame_of(rows, NAMES)
    assert frame is not None and expected is not None
    assert frame.equals(expected) and frame.schema == expected.schema


def test_a_group_longer_than_a_read_is_read_in_portions_as_one_read_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pages = [[_event(n), _event(n + 1, properties={"hs_title": "日本"})] for n in range(0, 40, 2)]
    whole = json_text_columns(_cut_all(pages), NAMES)
    texts: list[bytes] = []
    read_json = pl.read_json

    def recorded(source: Any, **options: Any) -> pl.DataFrame:
        texts.append(source.getvalue())
        return read_json(source, **options)

    monkeypatch.setattr(json_pages, "READ_BYTES", 1_000)  # ~ two pages a portion
    monkeypatch.setattr(json_pages.pl, "read_json", recorded)
    parts = _cut_all(pages)
    portions = json_text_columns(parts, NAMES)

    assert whole is not None and portions is not None
    assert portions.equals(whole) and portions.schema == whole.schema
    assert 5 < len(texts) < len(parts)  # whole pages a portion, each an array of its own
    assert all(len(text) < 1_000 + max(map(len, parts)) for text in texts)
    assert b"[" + b",".join(parts) + b"]" == b"[" + b",".join(t[1:-1] for t in texts) + b"]"
    assert portions.get_column("id").n_chunks() == 1
    singles = _cut_all([[_event(n)] for n in range(9)])  # polars reads [{...}] as no rows
    counted = read_records(singles, {})  # with no columns: one read, the records counted
    assert counted is not None and counted.shape == (9, 0)

    odd = [*pages[:-1], [pages[-1][0], _event(99) | {"objectId": 7}]]
    assert json_text_columns(_cut_all(odd), NAMES) is None  # in the last portion alone
    refused = [*_cut_all(pages[:-1]), b'{"id": "1"} x']
    assert json_text_columns(refused, NAMES) is None  # polars refuses the last portion


def test_no_records_read_as_empty_text_columns() -> None:
    frame = json_text_columns([b"", b""], NAMES)
    assert frame is not None and frame.height == 0
    assert frame.schema == pl.Schema(dict.fromkeys(NAMES, pl.String))


# each after a record of text: polars alone would read the column as text, the odd one's too
REFUSED: dict[str, dict[str, Any]] = {
    "an object id as a number": {"objectId": 3000000002},
    "a time as epoch milliseconds": {"occurredAt": 1_762_072_215_000},
    "a number with an exponent": {"objectId": 1.5e3},
    "a checkbox": {"objectType": True},
    "an object where text is read": {"objectType": {"kind": "CONTACT"}},
    "a list where text is read": {"id": ["1"]},
    "properties as text": {"properties": "hs_url=x"},
    "a property as a number": {"properties": {"hs_url": 5, "hs_title": "t"}},
    "a key named as a walked field": {"properties.hs_url": "x"},
}


@pytest.mark.parametrize("odd", REFUSED.values(), ids=REFUSED.keys())
def test_records_polars_would_read_otherwise_are_left_to_json(odd: dict[str, Any]) -> None:
    rows = [_event(1), _event(2) | odd]
    assert json_text_columns(_cut_all([rows]), NAMES) is None
    assert json_text_columns(_cut_all([[rows[1]]]), NAMES) is None  # alone too


def _spaced(rows: list[dict[str, Any]]) -> bytes:
    """``rows`` as a results array's inner text with JSON's every kind of whitespace (space,
    tab, line feed, carriage return) around each colon and comma."""
    text = json.dumps(rows, indent="\t", separators=(" ,\r\n", " \t: \n"), ensure_ascii=False)
    return text.strip()[1:-1].encode()


@pytest.mark.parametrize("odd", REFUSED.values(), ids=REFUSED.keys())
def test_records_spaced_out_are_checked_as_compact_ones_are(odd: dict[str, Any]) -> None:
    rows = [_event(1), _event(2, properties={"hs_url": "x y", "hs_title": "a : b"})]
    frame = json_text_columns([_spaced(rows)], NAMES)
    assert frame is not None and frame.equals(_reader()._frame_of(rows, NAMES))
    assert json_text_columns([_spaced([rows[0], rows[1] | odd])], NAMES) is None
    assert json_text_columns([_spaced([rows[0]]) + b" ,\n null \r\n"], NAMES) is None


@pytest.mark.parametrize(
    "title", [b"\\ud800", b"\\ud83d\\ude00"], ids=["a lone surrogate", "a surrogate pair"]
)
def test_an_escaped_surrogate_is_left_to_json(title: bytes) -> None:
    # polars reads a lone one as something else: any escaped surrogate goes to JSON, which
    # reads a pair as the one character it stands for
    part = _cut_all([[_event(1, properties={"hs_url": "x", "hs_title": "T"})]])[0]
    part = part.replace(b'"hs_title":"T"', b'"hs_title":"' + title + b'"')
    assert title in part and json.loads(b"[" + part + b"]")  # read by json where orjson refuses

    assert json_text_columns([part], NAMES) is None


def test_a_name_walking_two_objects_deep_is_left_to_json() -> None:
    rows = [_event(1, properties={"page": {"url": "x"}})]
    assert json_text_columns(_cut_all([rows]), ["id", "properties.page.url"]) is None


@pytest.mark.parametrize(
    "part",
    [b'{"id":"1"', b'{"id":"\xff"}', b'{"id":"1"},{"id":{"a":"x"}}'],
    ids=["broken", "not utf-8", "text then an object"],
)
def test_text_polars_refuses_is_left_to_json(part: bytes) -> None:
    assert json_text_columns([part], ["id"]) is None


@pytest.mark.parametrize(
    "parts",
    [
        [b'null,{"id":"1"}'],  # a null record, which the JSON reading refuses
        [b'{"id":"1"}', b"null"],
        [b'{"i\\u0064":1500,"occurredAt":"x"}'],  # an escaped key holding a number
        [b'{"id":"caf\\u00e9 \\u0041"}'],  # a printable character escaped
    ],
    ids=["a null record", "a null page record", "an escaped key", "an escaped letter"],
)
def test_null_records_and_escaped_printables_are_left_to_json(parts: list[bytes]) -> None:
    assert json_text_columns(parts, NAMES) is None


def test_escaped_non_ascii_and_controls_are_read_by_polars() -> None:
    part = b'{"id":"caf\\u00e9\\n\\t\\u001f","occurredAt":"x"}'
    frame = json_text_columns([part], ["id", "occurredAt"])
    assert frame is not None and frame["id"].to_list() == [json.loads(b"[" + part + b"]")[0]["id"]]


# --- an answer whose records come last (the email events API's) -------------------------------

EVENTS = [{"id": "e1", "created": 1_767_225_600_000, "url": 'a "],\\"x\\":1}" in a URL'}]


@pytest.mark.parametrize(
    "answer",
    [
        {"hasMore": True, "offset": "Q0FBUUFB", "events": EVENTS},
        {"hasMore": False, "events": EVENTS},
        {"events": EVENTS},
        {"hasMore": True, "offset": 3000, "events": []},
    ],
    ids=["a token", "the last page", "records alone", "no records, a number as token"],
)
@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
def test_an_answer_is_cut_into_its_last_array_and_the_scalars_before_it(
    answer: dict[str, Any], spaced: bool
) -> None:
    body = json.dumps(answer).encode() if spaced else orjson.dumps(answer)
    page = cut_last(b" \n" + body + b"\n", "events")
    assert page is not None
    assert page.head == {k: v for k, v in answer.items() if k != "events"}
    assert orjson.loads(b"[" + page.items + b"]") == answer["events"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"events":[{"id":"e1"}],"hasMore":true}',  # records first
        b'{"hasMore":true,"events":[{"id":"e1"}],"offset":"x"}',  # a key after the records
        b'{"paging":{"next":"x"},"events":[]}',  # an object before them
        b'{"offset":"a\\"b","events":[]}',  # an escape in a text before them
        b'{"offset":"a\nb","events":[]}',  # a control character in a text
        b'{"hasMore":true,"events":{"id":"e1"}}',
        b"<html>busy</html>",
    ],
    ids=[
        "records first",
        "a key after",
        "an object before",
        "an escape",
        "a raw newline",
        "an object",
        "html",
    ],
)
def test_an_answer_in_another_shape_is_not_cut_last(body: bytes) -> None:
    assert cut_last(body, "events") is None


def test_an_array_with_a_key_after_it_is_refused_by_polars_once_cut() -> None:
    page = cut_last(b'{"hasMore":false,"events":[{"id":"e1"}],"more":[{"id":"e2"}]}', "events")
    assert page is not None  # the cut holds the key after: polars refuses the text
    assert read_records([page.items], {"id": pl.String}) is None
    assert read_records([page.items, page.items], {"id": pl.String}) is None


WHOLE = {"id": pl.String, "created": pl.Int64}


def test_whole_numbers_read_as_written() -> None:
    part = b'{"id":"e1","created":1767225600000},{"id":"e2","created":-1},{"id":"e3"},' + (
        b'{"id":"e4","created":null},{"id":"e5","created":999999999999999999}'
    )
    frame = read_records([part], WHOLE)
    assert frame is not None
    assert frame["created"].to_list() == [1767225600000, -1, None, None, 999999999999999999]


@pytest.mark.parametrize(
    "created",
    [b"1.7e12", b"1767225600000.0", b"2E3", b'"1767225600000"', b"true", b"[1]",
     b"1000000000000000000", b"-10000000000000000000000"],
    ids=["an exponent", "a fraction", "an upper exponent", "text", "a checkbox", "an array",
         "19 digits", "past 64 bits"],
)  # fmt: skip
def test_a_whole_number_written_otherwise_is_left_to_json(created: bytes) -> None:
    part = b'{"id":"e1","created":1767225600000},{"id":"e2","created":' + created + b"}"
    assert read_records([part], WHOLE) is None
