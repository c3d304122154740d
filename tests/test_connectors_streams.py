"""The stream tables' conversion of raw CRM values: a value that cannot be read never costs the
record, only that field, with a warning that says which field, what came and why."""

from __future__ import annotations

from typing import Any

import pytest

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
