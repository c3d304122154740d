"""The stream tables' conversion of raw CRM values: a value that cannot be read never costs the
record, only that field, with a warning that says which field, what came and why."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.keys import MODIFIED, modified_at, read_id
from connectors.protocol import RAW_LIMIT, ValueWarning
from connectors.streams import HUBSPOT_STREAMS, SALESFORCE_STREAMS, Stream, normalise

ACCOUNT = SALESFORCE_STREAMS["Account"]
OPPORTUNITY = SALESFORCE_STREAMS["Opportunity"]
COMPANIES = HUBSPOT_STREAMS["companies"]


@pytest.mark.parametrize(
    ("stream", "raw", "field", "why"),
    [
        (ACCOUNT, {"NumberOfEmployees": "abc"}, "employees", "not a whole number"),
        (ACCOUNT, {"AnnualRevenue": "1,2 Mio"}, "revenue", "not a number"),
        (OPPORTUNITY, {"CloseDate": "2024-02-30"}, "close_date", "not a date"),
        (OPPORTUNITY, {"CreatedDate": "yesterday"}, "opened_at", "not a date and time"),
        (COMPANIES, {"numberofemployees": "1e999999"}, "employees", "not a whole number"),
    ],
)
def test_an_unreadable_value_becomes_none_with_a_warning(
    stream: Stream, raw: dict[str, Any], field: str, why: str
) -> None:
    values, warnings = normalise(stream, {"Name": "Acme", "name": "Acme"} | raw, stream.fields)

    assert values[field] is None
    assert warnings == (ValueWarning(field, str(next(iter(raw.values()))), why),)
    assert "Acme" in values.values()  # the rest of the record is kept


def test_a_warning_keeps_at_most_the_first_characters_of_the_value() -> None:
    _, (warning,) = normalise(ACCOUNT, {"NumberOfEmployees": "x" * 5000}, ACCOUNT.fields)

    assert warning.raw == "x" * RAW_LIMIT


def test_readable_values_give_no_warning() -> None:
    values, warnings = normalise(ACCOUNT, {"NumberOfEmployees": "12.0"}, ACCOUNT.fields)

    assert (values["employees"], warnings) == (12, ())


@pytest.mark.parametrize(
    ("raw", "field", "why"),
    [
        ({"Name": {"first": "Acme"}}, "name", "not text"),
        ({"AnnualRevenue": "NaN"}, "revenue", "not a number"),
        ({"AnnualRevenue": "-inf"}, "revenue", "not a number"),
    ],
)
def test_a_json_object_is_not_text_and_a_non_finite_number_is_not_an_amount(
    raw: dict[str, Any], field: str, why: str
) -> None:
    values, warnings = normalise(ACCOUNT, raw, ACCOUNT.fields)

    assert values[field] is None
    assert [(w.field, w.why) for w in warnings] == [(field, why)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("001A", "001A"),
        (30001, "30001"),
        (" 7 ", "7"),
        (None, None),
        ("", None),
        ({}, None),
        (True, None),
        ([1], None),
    ],
)
def test_an_id_is_text_or_nothing(value: Any, expected: str | None) -> None:
    assert read_id(value) == expected


CREATED = datetime(2024, 1, 31, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("candidates", "at", "why"),
    [
        ([("SystemModstamp", "2024-01-31T09:30:00.000+0000")], CREATED, None),
        (
            [("SystemModstamp", None), ("CreatedDate", "2024-01-31T09:30:00.000Z")],
            CREATED,
            "no readable SystemModstamp; CreatedDate used",
        ),
        (
            [("hs_lastmodifieddate", "2024-02-30"), ("updatedAt", "1706693400000")],
            CREATED,
            "no readable hs_lastmodifieddate; updatedAt used",
        ),
        ([("occurredAt", None)], None, None),
        ([("updatedAt", True), ("createdAt", "99999999999999999999")], None, None),
    ],
)
def test_a_record_time_falls_back_with_a_warning(
    candidates: list[tuple[str, Any]], at: datetime | None, why: str | None
) -> None:
    found, warnings = modified_at(candidates)

    assert found == at
    assert [w.why for w in warnings] == ([why] if why else [])
    assert all(w.field == MODIFIED for w in warnings)


@pytest.mark.parametrize(
    ("band", "employees"),
    [("1-5", 3), ("25-50", 37), ("1000+", 1000), ("", None), (None, None)],
)
def test_a_contacts_employee_band_reads_as_its_middle(
    band: str | None, employees: int | None
) -> None:
    contacts = HUBSPOT_STREAMS["contacts"]
    raw = {"numemployees": band, "industry": "COMPUTER_SOFTWARE", "annualrevenue": "2500000"}

    values, warnings = normalise(contacts, raw, contacts.fields)

    assert (values["employees"], warnings) == (employees, ())
    assert (values["industry"], values["revenue"]) == ("Computer Software", 2_500_000.0)
