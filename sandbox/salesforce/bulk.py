"""Bulk API 2.0: ingest jobs (insert, update, upsert, delete from CSV) and query jobs.

Ingest: a job is created ``Open``, takes one CSV upload (201), and is closed with ``PATCH
{"state": "UploadComplete"}``; the sandbox then processes it at once, so the next poll reads
``JobComplete`` with numberRecordsProcessed / numberRecordsFailed, and successfulResults,
failedResults and unprocessedrecords are ready. A CSV column the object lacks fails the job.
Query: the query runs when the job is created (``UploadComplete``, ``JobComplete`` on poll);
results are CSV pages of ``maxRecords`` with ``Sforce-NumberOfRecords`` and ``Sforce-Locator``
(``null`` on the last page). CSV answers are UTF-8 and, as Salesforce sends them, say
``Content-Type: text/csv`` with no charset. A job on an object the fault plan names
``bulk_unsupported`` is refused as Salesforce refuses objects Bulk API does not serve: 400
``[{"errorCode": "INVALIDENTITY", "message": "Entity 'X' is not supported by the Bulk API."}]``.
https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/bulk_api_2_0.htm
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from sandbox.http import Request, Response, Route, json_response
from sandbox.salesforce.bulk_data import (
    COLUMN_DELIMITERS,
    LINE_ENDINGS,
    IngestRows,
    ingest_results,
    locator_of,
    offset_of,
    query_csv,
    read_upload,
    results_csv,
)
from sandbox.salesforce.config import API_VERSION
from sandbox.salesforce.errors import NOT_FOUND_MESSAGE, SalesforceError
from sandbox.salesforce.ids import make_id
from sandbox.salesforce.query import run_soql
from sandbox.salesforce.routing import api_route, json_body
from sandbox.salesforce.schema import SObject
from sandbox.salesforce.state import OrgState

__all__ = ["BulkService"]

_INGEST_OPERATIONS = ("insert", "update", "upsert", "delete")
_FINISHED = ("JobComplete", "Failed", "Aborted")
_QUERY_OPERATIONS = ("query", "queryAll")
_CSV = "text/csv"  # no charset, as Salesforce sends it; the bytes are UTF-8
_KEPT_JOBS = (
    100  # finished jobs kept for their results; older ones are dropped (Salesforce: 7 days)
)
_STAMP = "%Y-%m-%dT%H:%M:%S.000+0000"


@dataclass
class _Job:
    """One Bulk API 2.0 job and, once processed, its results."""

    id: str
    kind: str  # ingest | query
    operation: str
    object: str
    created: datetime
    delimiter: str = "COMMA"
    line_ending: str = "LF"
    external_id: str | None = None
    state: str = "Open"
    error: str | None = None
    upload: bytes | None = None
    results: dict[str, list[list[str]]] = field(default_factory=dict)
    rows: pl.DataFrame | None = None  # a query job's result
    processed: int = 0
    failed: int = 0


class BulkService:
    """``/jobs/ingest`` and ``/jobs/query``."""

    def __init__(self, state: OrgState) -> None:
        self.state = state
        self._jobs: dict[str, _Job] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def routes(self) -> list[Route]:
        """Job create, upload, close/abort, poll, results, list and delete; named by kind."""
        ingest, query = r"/jobs/(?P<kind>ingest)", r"/jobs/(?P<kind>query)"
        results = r"/(?P<results>successfulResults|failedResults|unprocessedrecords)/?"
        job = r"/(?P<job>750\w+)"
        return [
            api_route("POST", ingest + r"/?", "jobs/ingest", self.create_ingest),
            api_route("POST", query + r"/?", "jobs/query", self.create_query),
            api_route("PUT", ingest + job + r"/batches/?", "jobs/ingest", self.upload),
            api_route("GET", query + job + r"/results/?", "jobs/query", self.query_results),
            api_route("GET", ingest + job + results, "jobs/ingest", self.ingest_results),
            *(
                route
                for kind, endpoint in ((ingest, "jobs/ingest"), (query, "jobs/query"))
                for route in (
                    api_route("GET", kind + r"/?", endpoint, self.list_jobs),
                    api_route("PATCH", kind + job + r"/?", endpoint, self.set_state),
                    api_route("GET", kind + job + r"/?", endpoint, self.info),
                    api_route("DELETE", kind + job + r"/?", endpoint, self.delete),
                )
            ),
        ]

    def create_ingest(self, request: Request) -> Response:
        """``POST jobs/ingest``: an Open job."""
        spec = _job_spec(json_body(request))
        operation = spec.get("operation")
        if operation not in _INGEST_OPERATIONS:
            raise SalesforceError("INVALIDJOB", f"Operation '{operation}' is not supported")
        sobject = self._sobject(spec.get("object"))
        self._check_served(sobject.name)
        external = spec.get("externalIdFieldName")
        if operation == "upsert" and (not external or sobject.field(external) is None):
            raise SalesforceError("INVALIDJOB", f"External ID field not found: {external}")
        job = self._new("ingest", operation, sobject.name, spec, external)
        return json_response(200, self._info(job, detail=False))

    def create_query(self, request: Request) -> Response:
        """``POST jobs/query``: the query runs now; the job reads JobComplete when polled."""
        spec = _job_spec(json_body(request))
        operation = spec.get("operation")
        if operation not in _QUERY_OPERATIONS:
            raise SalesforceError("INVALIDJOB", f"Operation '{operation}' is not supported")
        schema = self.state.catalog.soql_schema()
        frames = self.state.records.frames()
        query, rows = run_soql(str(spec.get("query", "")), frames, schema, operation == "queryAll")
        if isinstance(rows, int):
            raise SalesforceError("INVALIDJOB", "COUNT() is not supported by Bulk API 2.0 query")
        self._check_served(query.object)
        job = self._new("query", operation, query.object, spec, None)
        job.rows = rows.select(rows.columns[: len(query.fields)])
        job.state, job.processed = "UploadComplete", rows.height
        answer = self._info(job, detail=False)
        job.state = "JobComplete"
        return json_response(200, answer)

    def list_jobs(self, request: Request) -> Response:
        """``GET jobs/ingest`` or ``jobs/query``: every job of that kind."""
        kind = request.params["kind"]
        jobs = [self._info(j, detail=False) for j in self._jobs.values() if j.kind == kind]
        return json_response(200, {"done": True, "records": jobs, "nextRecordsUrl": None})

    def upload(self, request: Request) -> Response:
        """``PUT jobs/ingest/{id}/batches``: the job's CSV, once, while Open; 201."""
        job = self._job(request)
        if job.kind != "ingest" or job.state != "Open" or job.upload is not None:
            raise SalesforceError("INVALIDJOBSTATE", f"Job {job.id} is not open for upload")
        job.upload = request.body
        return Response(201, content_type=_CSV)

    def set_state(self, request: Request) -> Response:
        """``PATCH jobs/{kind}/{id}``: close (UploadComplete) or abort (Aborted) a job."""
        job = self._job(request)
        wanted = (json_body(request) or {}).get("state")
        if wanted == "Aborted" and job.state not in ("JobComplete", "Failed"):
            job.state = "Aborted"
        elif wanted == "UploadComplete" and job.kind == "ingest" and job.state == "Open":
            job.state = "UploadComplete"
            answer = self._info(job, detail=False)
            self._process(job)
            return json_response(200, answer)
        else:
            raise SalesforceError("INVALIDJOBSTATE", f"Cannot set job {job.id} to {wanted}")
        return json_response(200, self._info(job, detail=False))

    def info(self, request: Request) -> Response:
        """``GET jobs/{kind}/{id}``: the job's state and counts."""
        return json_response(200, self._info(self._job(request), detail=True))

    def delete(self, request: Request) -> Response:
        """``DELETE jobs/{kind}/{id}``: 204."""
        job = self._job(request)
        with self._lock:
            del self._jobs[job.id]
        return Response(204)

    def query_results(self, request: Request) -> Response:
        """``GET jobs/query/{id}/results?locator=&maxRecords=``: one CSV page."""
        job = self._job(request)
        if job.rows is None:
            raise SalesforceError("NOT_FOUND", NOT_FOUND_MESSAGE)
        offset = offset_of(request.arg("locator"))
        size = int(request.arg("maxRecords") or self.state.options.bulk_page_size)
        page = job.rows.slice(offset, max(size, 1))
        end = offset + page.height
        locator = locator_of(end) if end < job.rows.height else "null"
        headers = {"Sforce-NumberOfRecords": str(page.height), "Sforce-Locator": locator}
        body = query_csv(page, COLUMN_DELIMITERS[job.delimiter], LINE_ENDINGS[job.line_ending])
        return Response(200, body, headers, content_type=_CSV)

    def ingest_results(self, request: Request) -> Response:
        """``GET jobs/ingest/{id}/successfulResults`` (or failedResults, unprocessedrecords)."""
        job = self._job(request)
        rows = job.results.get(request.params["results"], [])
        return Response(200, results_csv(rows), content_type=_CSV)

    def _new(
        self, kind: str, operation: str, sobject: str, spec: dict[str, Any], external: str | None
    ) -> _Job:
        """A new job, its CSV format checked."""
        delimiter = spec.get("columnDelimiter", "COMMA")
        line_ending = spec.get("lineEnding", "LF")
        if delimiter not in COLUMN_DELIMITERS or line_ending not in LINE_ENDINGS:
            raise SalesforceError("INVALIDJOB", "Unsupported columnDelimiter or lineEnding")
        job_id = make_id("AsyncApexJob", next(self._numbers))
        job = _Job(job_id, kind, operation, sobject, self.state.clock(), delimiter, line_ending)
        job.external_id = external
        with self._lock:
            self._jobs[job_id] = job
            finished = [j.id for j in self._jobs.values() if j.state in _FINISHED]
            for stale in finished[: max(len(finished) - _KEPT_JOBS, 0)]:
                del self._jobs[stale]
        return job

    def _job(self, request: Request) -> _Job:
        job = self._jobs.get(request.params["job"])
        if job is None or job.kind != request.params["kind"]:
            raise SalesforceError("NOT_FOUND", NOT_FOUND_MESSAGE)
        return job

    def _sobject(self, name: Any) -> SObject:
        sobject = self.state.catalog.object(str(name or ""))
        if sobject is None:
            raise SalesforceError("INVALIDJOB", f"sObject type '{name}' is not supported")
        return sobject

    def _check_served(self, sobject: str) -> None:
        """Refuse a job on an object Bulk API does not serve (by the fault plan)."""
        if self.state.faults.refuses_bulk(sobject):
            message = f"Entity '{sobject}' is not supported by the Bulk API."
            raise SalesforceError("INVALIDENTITY", message)

    def _process(self, job: _Job) -> None:
        """Run an uploaded ingest job to JobComplete, or Failed when its CSV cannot be read."""
        sobject = self._sobject(job.object)
        header, rows = read_upload(job.upload or b"", job.delimiter)
        unknown = [name for name in header if sobject.field(name) is None]
        if not header or unknown:
            job.state = "Failed"
            job.error = f"InvalidBatch : Field name not found : {unknown[0] if unknown else ''}"
            return
        ingest = IngestRows(self.state.records, job.operation, sobject, header, job.external_id)
        outcomes = self.state.writer.save(ingest.writes(rows))
        job.results = ingest_results(header, rows, outcomes)
        job.processed, job.failed = len(rows), len(job.results["failedResults"]) - 1
        job.state = "JobComplete"

    def _info(self, job: _Job, detail: bool) -> dict[str, Any]:
        """The JobInfo: what create and close answer, and with ``detail`` what polls read."""
        stamp = job.created.strftime(_STAMP)
        info: dict[str, Any] = {
            "id": job.id,
            "operation": job.operation,
            "object": job.object,
            "createdById": self.state.user_id,
            "createdDate": stamp,
            "systemModstamp": stamp,
            "state": job.state,
            **({"externalIdFieldName": job.external_id} if job.external_id else {}),
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(API_VERSION),
            **(
                {"contentUrl": f"services/data/v{API_VERSION}/jobs/ingest/{job.id}/batches"}
                if job.kind == "ingest"
                else {}
            ),
            "lineEnding": job.line_ending,
            "columnDelimiter": job.delimiter,
        }
        if detail:
            info |= {
                "jobType": "V2Ingest" if job.kind == "ingest" else "V2Query",
                "numberRecordsProcessed": job.processed,
                **({"numberRecordsFailed": job.failed} if job.kind == "ingest" else {}),
                "retries": 0,
                "totalProcessingTime": 0,
                **({"errorMessage": job.error} if job.error else {}),
            }
        return info


def _job_spec(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise SalesforceError("JSON_PARSER_ERROR", "Expected a JSON object describing the job")
    return body
