"""Bulk API 2.0 for large loads: a query job read in CSV pages, an update job from one CSV.

Jobs are asynchronous: the policy polls them (`HttpPolicy.poll`), so this module never sleeps.
CSV cells are text; an empty cell is null when read, and leaves a field alone when written
(``#N/A`` clears it). The CSV is UTF-8, though its ``Content-Type: text/csv`` names no charset.
Result pages are read as rows (`bulk_pages`) or, by polars, as columns (`bulk_contents`,
`csv_frame`).
An object Bulk does not serve is refused when its job is created (`refused_by_bulk`), and the
connector reads or writes it through REST instead.
https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/bulk_api_2_0.htm
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import polars as pl
import requests

from connectors.errors import ApiError, FatalError, InvalidRequest, record_status
from connectors.http import PageTokens
from connectors.protocol import WriteResult
from connectors.salesforce_api import SalesforceApi

__all__ = [
    "CSV_NULL",
    "bulk_contents",
    "bulk_pages",
    "bulk_query_job",
    "bulk_update",
    "csv_frame",
    "csv_value",
    "json_value",
    "refused_by_bulk",
]

CSV_NULL = "#N/A"
_DONE = ("JobComplete", "Failed", "Aborted")


def json_value(value: Any) -> Any:
    """A value as Salesforce's JSON takes it (datetimes in UTC to the millisecond)."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def csv_value(value: Any) -> str:
    """A value as a Bulk API CSV cell."""
    if value is None:
        return CSV_NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(json_value(value))


def refused_by_bulk(error: ApiError) -> bool:
    """Whether a job was refused because Bulk API does not serve its object: 400
    ``INVALIDENTITY`` "Entity 'X' is not supported by the Bulk API." (airbyte's source-salesforce
    falls back to REST on the same answer)."""
    return isinstance(error, InvalidRequest) and error.code == "INVALIDENTITY"


def bulk_query_job(api: SalesforceApi, soql: str, include_deleted: bool) -> str:
    """Start a query job and wait until its results are ready; the job's id."""
    operation = "queryAll" if include_deleted else "query"
    job = api.rest("jobs/query", "POST", json={"operation": operation, "query": soql})
    _wait(api, "query", job["id"])
    return str(job["id"])


def bulk_pages(
    api: SalesforceApi, job_id: str, page_size: int, locator: str | None = None
) -> Iterator[tuple[list[dict[str, str]], str | None]]:
    """A finished query job's rows page by page from ``locator``, each page with the locator
    of the next (None after the last); results stay readable for days, so a stopped read can
    go on from a saved locator."""
    for answer, following in _result_pages(api, job_id, page_size, locator):
        yield _rows(answer), following


def bulk_contents(
    api: SalesforceApi, job_id: str, page_size: int, locator: str | None = None
) -> Iterator[tuple[bytes, str | None]]:
    """`bulk_pages` with each page as the CSV it came as (`csv_frame` reads it as columns)."""
    for answer, following in _result_pages(api, job_id, page_size, locator):
        yield answer.content, following


def csv_frame(content: bytes) -> pl.DataFrame:
    """A CSV page as a frame of text columns, a row per CSV row: what `_rows` reads, as
    columns (an empty cell is "", a blank line no row). A page polars cannot read as the csv
    module does (a row with more cells than the header) is read by the csv module."""
    text = _decoded(content)
    if not text.strip():
        return pl.DataFrame()
    body = content.removeprefix(codecs.BOM_UTF8)
    try:
        frame = pl.read_csv(body, infer_schema=False, empty_string_is_null=False)
    except pl.exceptions.PolarsError:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
        names = dict.fromkeys(reader.fieldnames or ())
        return pl.DataFrame(
            {name: [row.get(name) for row in rows] for name in names},
            schema=dict.fromkeys(names, pl.String),
        )
    if not frame.width:
        return frame
    return frame.filter(~pl.all_horizontal(pl.all() == ""))  # a blank line is no row


def _result_pages(
    api: SalesforceApi, job_id: str, page_size: int, locator: str | None
) -> Iterator[tuple[requests.Response, str | None]]:
    """A finished query job's result answers page by page, each with the next locator."""
    tokens = PageTokens()
    while True:
        params = {"maxRecords": page_size, **({"locator": locator} if locator else {})}
        page = api.raw("GET", f"jobs/query/{job_id}/results", params=params)
        found = page.headers.get("Sforce-Locator")
        locator = tokens.next(None if found in (None, "", "null") else found)
        yield page, locator
        if locator is None:
            return


def bulk_update(
    api: SalesforceApi, sobject: str, rows: Mapping[str, Mapping[str, Any]]
) -> dict[str, WriteResult]:
    """Update records by id in one ingest job; a result for every id."""
    spec = {"object": sobject, "operation": "update", "contentType": "CSV", "lineEnding": "LF"}
    job = api.rest("jobs/ingest", "POST", json=spec)
    upload = _csv(rows)
    api.raw("PUT", f"jobs/ingest/{job['id']}/batches", data=upload, headers=_CSV_TYPE)
    api.rest(f"jobs/ingest/{job['id']}", "PATCH", json={"state": "UploadComplete"})
    info = _wait(api, "ingest", job["id"])
    if info["state"] != "JobComplete":
        message = str(info.get("errorMessage") or info["state"])
        return {i: WriteResult(i, "permanent", "BULK_JOB_FAILED", message) for i in rows}
    results = {
        row["sf__Id"]: WriteResult(row["sf__Id"], "ok")
        for row in _results(api, job, "successfulResults")
    }
    results |= {_failed(row).id: _failed(row) for row in _results(api, job, "failedResults")}
    unprocessed = "the job ended before this record was processed"
    return {
        i: results.get(i) or WriteResult(i, "retriable", "UNPROCESSED", unprocessed) for i in rows
    }


_CSV_TYPE = {"Content-Type": "text/csv"}


def _csv(rows: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Id plus every field any row sets; a row leaves the others alone (empty cells). The cells
    of a row that several records share (`written_rows`) are written out once."""
    distinct = list({id(row): row for row in rows.values()}.values())
    columns = list(dict.fromkeys(name for row in distinct for name in row))
    cells = {id(row): [csv_value(row[c]) if c in row else "" for c in columns] for row in distinct}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Id", *columns])
    writer.writerows([record_id, *cells[id(row)]] for record_id, row in rows.items())
    return out.getvalue().encode()


def _wait(api: SalesforceApi, kind: str, job_id: str) -> dict[str, Any]:
    """The job's info once it has finished."""

    def check() -> dict[str, Any] | None:
        info: dict[str, Any] = api.rest(f"jobs/{kind}/{job_id}")
        return info if info["state"] in _DONE else None

    info = api.policy.poll(check)
    if kind == "query" and info["state"] != "JobComplete":
        raise FatalError(400, "BULK_JOB_FAILED", str(info.get("errorMessage") or info["state"]))
    return info


def _results(api: SalesforceApi, job: Mapping[str, Any], which: str) -> Sequence[dict[str, str]]:
    return _rows(api.raw("GET", f"jobs/ingest/{job['id']}/{which}"))


def _rows(answer: requests.Response) -> list[dict[str, str]]:
    """A CSV answer's rows."""
    return list(csv.DictReader(io.StringIO(_decoded(answer.content), newline="")))


def _decoded(content: bytes) -> str:
    """A CSV answer's text. Its bytes are UTF-8 whatever the header says: ``text/csv`` without a
    charset makes requests guess ISO-8859-1 ("Weiß" would read "WeiÃ\x9f"), so the bytes are
    decoded here, as simple-salesforce's bulk2 does (``content.decode('utf-8')``); a byte
    order mark is no part of the first column's name."""
    return content.decode("utf-8-sig")


def _failed(row: Mapping[str, str]) -> WriteResult:
    """A failed row: ``sf__Error`` is ``CODE:message:fields --``."""
    code, _, rest = row.get("sf__Error", "").partition(":")
    message = rest.rpartition(":")[0] or rest
    record_id = row.get("Id") or row.get("sf__Id", "")
    return WriteResult(record_id, record_status(code), code or None, message)
