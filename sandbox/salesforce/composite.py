"""sObject Collections: create, update and delete up to 200 records in one call.

Results come back in request order, one SaveResult per record (``{"id", "success", "errors":
[{"statusCode", "message", "fields"}]}``). With ``allOrNone`` a single failure saves nothing:
the failing records carry their own error, the others ALL_OR_NONE_OPERATION_ROLLED_BACK.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections.htm
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sandbox.http import Request, Response, Route, json_response
from sandbox.salesforce.errors import RecordError, SalesforceError
from sandbox.salesforce.ids import entity_of
from sandbox.salesforce.rest import record_values
from sandbox.salesforce.routing import api_route, json_body
from sandbox.salesforce.state import OrgState
from sandbox.salesforce.writes import Write

__all__ = ["MAX_RECORDS", "CollectionsService"]

MAX_RECORDS = 200
_TOO_MANY = "record limit reached. cannot submit more than 200 records into this call"


class CollectionsService:
    """``/composite/sobjects``."""

    def __init__(self, state: OrgState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        """POST creates, PATCH updates, DELETE deletes."""
        path = r"/composite/sobjects/?"
        return [
            api_route("POST", path, "composite/sobjects", lambda r: self.save(r, creating=True)),
            api_route("PATCH", path, "composite/sobjects", lambda r: self.save(r, creating=False)),
            api_route("DELETE", path, "composite/sobjects", self.delete),
        ]

    def save(self, request: Request, creating: bool) -> Response:
        """Create (POST) or update (PATCH) the body's ``records``."""
        body = json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise SalesforceError("JSON_PARSER_ERROR", 'Expected {"allOrNone", "records"}')
        records = body["records"]
        _check_size(len(records))
        writes = [self._write(record, creating) for record in records]
        return self._results(writes, bool(body.get("allOrNone", False)))

    def delete(self, request: Request) -> Response:
        """``DELETE ?ids=a,b&allOrNone=true``."""
        ids = [i for i in (request.arg("ids") or "").split(",") if i]
        _check_size(len(ids))
        writes = [self._delete(record_id) for record_id in ids]
        return self._results(writes, (request.arg("allOrNone") or "").lower() == "true")

    def _write(self, record: Any, creating: bool) -> Write:
        """One record of the body as a write (refused up front when it cannot be one)."""
        if not isinstance(record, dict):
            raise SalesforceError("JSON_PARSER_ERROR", "Each record must be a JSON object")
        type_name = (record.get("attributes") or {}).get("type")
        if not type_name:
            raise SalesforceError("INVALID_TYPE", "Must send a concrete entity type.")
        sobject = self.state.catalog.object(type_name)
        if sobject is None:
            raise SalesforceError("INVALID_TYPE", f"sObject type '{type_name}' is not supported.")
        given_id = next((v for k, v in record.items() if k.lower() == "id"), None)
        fields = {k: v for k, v in record.items() if k.lower() != "id"}
        values = record_values(sobject, fields)
        if creating and given_id is not None:
            refused = RecordError("INVALID_FIELD", "cannot specify Id in an insert call", ("Id",))
            return Write(sobject.name, values, refused=refused)
        if not creating and not given_id:
            refused = RecordError("MISSING_ARGUMENT", "Id not specified in an update call")
            return Write(sobject.name, values, refused=refused)
        return Write(sobject.name, values, None if creating else str(given_id))

    def _delete(self, record_id: str) -> Write:
        """A delete of whichever object the id's prefix names."""
        sobject = self.state.catalog.object(entity_of(record_id) or "")
        if sobject is None:
            refused = RecordError("MALFORMED_ID", f"malformed id {record_id}", ("Id",))
            return Write(self.state.catalog.objects()[0].name, id=record_id, refused=refused)
        return Write(sobject.name, id=record_id, delete=True)

    def _results(self, writes: Sequence[Write], all_or_none: bool) -> Response:
        """Save the writes as one batch; 200 with a SaveResult per record, in order."""
        outcomes = self.state.writer.save(writes, all_or_none)
        return json_response(200, [outcome.as_result() for outcome in outcomes])


def _check_size(n: int) -> None:
    if n > MAX_RECORDS:
        raise SalesforceError("EXCEEDED_ID_LIMIT", _TOO_MANY)
