"""The table set-up prints: every field named whole, and who fills in the ones a run leaves."""

from __future__ import annotations

import pytest
from rich.console import Console

from connectors.protocol import SchemaChange, SchemaReport
from connectors.schema import OWNED_FIELDS
from handoff.reports import print_schema_report


def _created(crm: str) -> SchemaReport:
    names = [f.salesforce if crm == "salesforce" else f.hubspot for f in OWNED_FIELDS]
    return SchemaReport(tuple(SchemaChange("Account", name, "created") for name in names))


def _printed(report: SchemaReport, width: int) -> list[str]:
    console = Console(record=True, width=width)
    print_schema_report(console, report)
    return console.export_text().splitlines()


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_each_field_is_named_whole_at_80_columns(crm: str) -> None:
    report = _created(crm)
    lines = _printed(report, 80)
    said = "\n".join(lines)
    for change in report.changes:
        assert f" {change.name} " in said, said  # not cut to "Handoff_Disqualification_…"
    # the detail column wraps instead: the table keeps to 80 columns, no word cropped
    table = [line.rstrip() for line in lines if "│" in line]
    assert all(len(line) <= 80 and line.endswith("│") for line in table), said
    details = " ".join(line.split("│")[4].strip() for line in table)
    assert "planned: routing will set it" in " ".join(details.split()), said


def test_the_fields_a_run_does_not_write_say_who_fills_them_in() -> None:
    lines = _printed(_created("salesforce"), 160)
    row = {line.split("│")[2].strip(): line.split("│")[4].strip() for line in lines if "│" in line}
    assert row["Handoff_SLA_Due__c"] == "planned: routing will set it"
    assert row["Handoff_Disposition__c"] == "set by reps; read back by each sync"
    assert row["Handoff_Reason_Code__c"] == "set by reps; read back by each sync"
    assert row["Handoff_Score__c"] == ""  # every run writes it: nothing to say


def test_what_set_up_says_of_a_field_comes_before_who_fills_it_in() -> None:
    said = "\n".join(
        _printed(
            SchemaReport(
                (SchemaChange("Lead", "Handoff_SLA_Due__c", "conflict", "is a text field"),)
            ),
            160,
        )
    )
    assert "is a text field" in said and "planned" not in said
