"""Bulk API 2.0 data: uploaded CSV rows made into writes, and the CSV the API answers with.

An empty cell leaves a field alone and ``#N/A`` clears it; a value of the wrong type fails only
its row (INVALID_TYPE_ON_FIELD_IN_RECORD). Results repeat the uploaded row after ``sf__Id`` and
``sf__Created`` / ``sf__Error``; query pages quote every value and write datetimes in UTC with
``Z``; a locator is the base64 of the next page's first row.
https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/datafiles_prepare_csv.htm
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
from collections.abc import Sequence
from typing import Any

import polars as pl

from sandbox.salesforce.coerce import BadValue, UnknownField, coerce_record
from sandbox.salesforce.errors import RecordError, SalesforceError
from sandbox.salesforce.schema import SObject
from sandbox.salesforce.store import Records
from sandbox.salesforce.writes import Outcome, Write

__all__ = [
    "COLUMN_DELIMITERS",
    "LINE_ENDINGS",
    "IngestRows",
    "ingest_results",
    "locator_of",
    "offset_of",
    "query_csv",
    "read_upload",
    "results_csv",
]

# columnDelimiter of a job -> the character
COLUMN_DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "SEMICOLON": ";",
    "PIPE": "|",
    "CARET": "^",
    "BACKQUOTE": "`",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}


def read_upload(upload: bytes, delimiter: str) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of an uploaded CSV (blank lines skipped)."""
    text = upload.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=COLUMN_DELIMITERS[delimiter])
    table = [row for row in reader if row]
    return (table[0], table[1:]) if table else ([], [])


class IngestRows:
    """Turns an ingest job's CSV rows into writes."""

    def __init__(
        self,
        records: Records,
        operation: str,
        sobject: SObject,
        header: list[str],
        external_id: str | None = None,
    ) -> None:
        self.records = records
        self.operation = operation
        self.sobject = sobject
        self.header = header
        self.id_column = next((i for i, name in enumerate(header) if name.lower() == "id"), None)
        key = sobject.field(external_id or "Id")
        self.key = key.name if key is not None else "Id"

    def writes(self, rows: Sequence[list[str]]) -> list[Write]:
        """One write per row, matched by external id for upserts."""
        matches = self._upsert_matches(rows) if self.operation == "upsert" else {}
        return [self._write(row, matches) for row in rows]

    def _write(self, row: list[str], matches: dict[Any, list[str]]) -> Write:
        """The row's write, or the row refused (a bad value, no Id to update or delete)."""
        name, operation = self.sobject.name, self.operation
        record_id = row[self.id_column] if self.id_column is not None else ""
        cells = {
            k: v
            for i, (k, v) in enumerate(zip(self.header, row, strict=False))
            if i != self.id_column
        }
        try:
            values = coerce_record(self.sobject, cells, csv=True)
        except (BadValue, UnknownField) as error:
            message = str(error)
            fields = (error.field.name,) if isinstance(error, BadValue) else ()
            return Write(
                name, refused=RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", message, fields)
            )
        if operation == "delete":
            return Write(name, id=record_id, delete=True) if record_id else _no_id(name)
        if operation == "insert":
            return Write(name, values)
        if operation == "update":
            return Write(name, values, record_id) if record_id else _no_id(name)
        return self._upsert(values, record_id, matches)

    def _upsert(
        self, values: dict[str, Any], record_id: str, matches: dict[Any, list[str]]
    ) -> Write:
        """An update of the record the external id names, else a create."""
        name, key = self.sobject.name, self.key
        if key == "Id":
            return Write(name, values, record_id) if record_id else Write(name, values)
        value = values.get(key)
        found = matches.get(value.lower() if isinstance(value, str) else value, [])
        if len(found) > 1:
            refused = RecordError(
                "DUPLICATE_EXTERNAL_ID",
                f"{key}: more than one record found for external id field: {found}",
            )
            return Write(name, refused=refused)
        return Write(name, values, found[0]) if found else Write(name, values)

    def _upsert_matches(self, rows: Sequence[list[str]]) -> dict[Any, list[str]]:
        """Live records by external id value, for every value the rows carry."""
        if self.key == "Id" or self.key not in self.header:
            return {}
        column, values = self.header.index(self.key), []
        for row in rows:
            try:
                values.append(coerce_record(self.sobject, {self.key: row[column]}, csv=True))
            except BadValue:
                continue
        keys = [v[self.key] for v in values if v.get(self.key) is not None]
        return self.records.find(self.sobject.name, self.key, keys)


def _no_id(name: str) -> Write:
    """A row refused for want of the record's Id."""
    return Write(
        name, refused=RecordError("MISSING_ARGUMENT", "Id not specified in an update call", ("Id",))
    )


def ingest_results(
    header: list[str], rows: Sequence[list[str]], outcomes: Sequence[Outcome]
) -> dict[str, list[list[str]]]:
    """successfulResults, failedResults and unprocessedrecords, each with its header row."""
    good = [["sf__Id", "sf__Created", *header]]
    bad = [["sf__Id", "sf__Error", *header]]
    for row, outcome in zip(rows, outcomes, strict=True):
        if outcome.success:
            good.append([outcome.id or "", "true" if outcome.created else "false", *row])
        else:
            bad.append([outcome.id or "", outcome.errors[0].as_bulk(), *row])
    return {"successfulResults": good, "failedResults": bad, "unprocessedrecords": [header]}


def locator_of(offset: int) -> str:
    """Salesforce's locators are the base64 of the next row's offset."""
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def offset_of(locator: str | None) -> int:
    """The row a locator points at (the first page without one)."""
    if not locator or locator == "null":
        return 0
    try:
        return int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())
    except (ValueError, binascii.Error) as error:
        raise SalesforceError("INVALIDLOCATOR", f"Invalid locator: {locator}") from error


def query_csv(page: pl.DataFrame, delimiter: str, line_ending: str) -> bytes:
    """A result page as Salesforce writes it: every value quoted, datetimes in UTC with ``Z``."""
    columns = []
    for name, dtype in page.schema.items():
        column = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            column = column.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        elif isinstance(dtype, pl.Date):
            column = column.dt.strftime("%Y-%m-%d")
        columns.append(column)
    text = page.select(columns).write_csv(
        separator=delimiter, line_terminator=line_ending, quote_style="always", null_value=""
    )
    return text.encode()


def results_csv(rows: list[list[str]]) -> bytes:
    """Ingest results as the API writes them: every value quoted."""
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()
