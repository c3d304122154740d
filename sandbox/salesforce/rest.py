"""The REST API's org-level resources and single records.

Versions, the resource list, limits, describes, and a record's create / read / update / delete
and upsert by external id, with Salesforce's statuses: 201 with a SaveResult on create, 204 on
update and delete, 201 or 200 (``created``) on upsert, 300 when an external id matches several.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_list.htm
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

import polars as pl

from sandbox.http import Request, Response, Route, json_response
from sandbox.salesforce.coerce import BadValue, UnknownField, coerce_record
from sandbox.salesforce.describe import describe_global, describe_sobject, sobject_summary
from sandbox.salesforce.errors import NOT_FOUND_MESSAGE, SalesforceError
from sandbox.salesforce.ids import normalize_id
from sandbox.salesforce.query import run_soql
from sandbox.salesforce.routing import (
    api_route,
    json_body,
    refusal,
    sobject_named,
    versions_payload,
)
from sandbox.salesforce.schema import Field, SObject
from sandbox.salesforce.state import OrgState
from sandbox.salesforce.writes import Outcome, Write
from sandbox.soql import records

__all__ = ["RestService", "record_values"]

_ID = r"(?P<id>[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?)"
_OBJECT = r"/sobjects/(?P<object>\w+)"
_RESOURCES = ("sobjects", "query", "queryAll", "limits", "composite", "jobs", "tooling")


def record_values(sobject: SObject, body: Any) -> dict[str, Any]:
    """The typed field values of a record in a JSON body; unreadable ones refuse the request."""
    if not isinstance(body, dict):
        raise SalesforceError("JSON_PARSER_ERROR", "Expected a JSON object for the record")
    try:
        return coerce_record(sobject, body)
    except (UnknownField, BadValue) as error:
        raise refusal(error) from error


class RestService:
    """Org resources and single-record routes."""

    def __init__(self, state: OrgState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        """Every route of this module, most specific first."""
        return [
            Route("GET", r"/services/data/?", "versions", lambda r: versions_payload(), True),
            api_route("GET", r"/?", "resources", self.resources),
            api_route("GET", r"/limits/?", "limits", self.limits),
            api_route("GET", r"/sobjects/?", "describeGlobal", self.describe_global),
            api_route("GET", _OBJECT + r"/describe/?", "sobjects/describe", self.describe),
            api_route("GET", _OBJECT + r"/?", "sobjects", self.summary),
            api_route("POST", _OBJECT + r"/?", "sobjects", self.create),
            api_route("GET", _OBJECT + "/" + _ID + r"/?", "sobjects", self.get),
            api_route("PATCH", _OBJECT + "/" + _ID + r"/?", "sobjects", self.update),
            api_route("DELETE", _OBJECT + "/" + _ID + r"/?", "sobjects", self.delete),
            api_route(
                "GET",
                _OBJECT + r"/(?P<field>\w+)/(?P<value>[^/]+)/?",
                "sobjects",
                self.get_by_external_id,
            ),
            api_route(
                "PATCH", _OBJECT + r"/(?P<field>\w+)/(?P<value>[^/]+)/?", "sobjects", self.upsert
            ),
        ]

    def resources(self, request: Request) -> Response:
        """``GET /services/data/vXX.X``: the resources of this version."""
        base = f"/services/data/v{request.params['version']}"
        return json_response(200, {name: f"{base}/{name}" for name in _RESOURCES})

    def limits(self, request: Request) -> Response:
        """``GET limits``."""
        return json_response(200, self.state.usage.limits())

    def describe_global(self, request: Request) -> Response:
        """``GET sobjects``."""
        objects = self.state.catalog.objects()
        return json_response(200, describe_global(objects, request.params["version"]))

    def describe(self, request: Request) -> Response:
        """``GET sobjects/{Type}/describe``."""
        sobject = sobject_named(self.state.catalog, request.params["object"])
        objects = self.state.catalog.objects()
        return json_response(200, describe_sobject(sobject, objects, request.params["version"]))

    def summary(self, request: Request) -> Response:
        """``GET sobjects/{Type}``."""
        sobject = sobject_named(self.state.catalog, request.params["object"])
        return json_response(200, sobject_summary(sobject, request.params["version"]))

    def create(self, request: Request) -> Response:
        """``POST sobjects/{Type}``: 201 and the new record's id."""
        sobject = sobject_named(self.state.catalog, request.params["object"])
        body = json_body(request)
        if isinstance(body, dict) and any(key.lower() == "id" for key in body):
            raise SalesforceError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
        outcome = self._save(Write(sobject.name, record_values(sobject, body)))
        return json_response(201, {"id": outcome.id, "success": True, "errors": []})

    def get(self, request: Request) -> Response:
        """``GET sobjects/{Type}/{id}``: the record, all fields or ``?fields=``."""
        sobject, record_id = self._existing(request)
        return self._record(request, sobject, record_id)

    def update(self, request: Request) -> Response:
        """``PATCH sobjects/{Type}/{id}``: 204."""
        sobject, record_id = self._existing(request)
        self._save(Write(sobject.name, record_values(sobject, json_body(request)), record_id))
        return Response(204)

    def delete(self, request: Request) -> Response:
        """``DELETE sobjects/{Type}/{id}``: 204; the record goes to the recycle bin."""
        sobject, record_id = self._existing(request)
        self._save(Write(sobject.name, id=record_id, delete=True))
        return Response(204)

    def get_by_external_id(self, request: Request) -> Response:
        """``GET sobjects/{Type}/{ExternalIdField}/{value}``."""
        sobject, field = self._external_id_field(request)
        matches = self._matching(sobject, field, unquote_plus(request.params["value"]))
        if not matches:
            raise SalesforceError("NOT_FOUND", NOT_FOUND_MESSAGE)
        if len(matches) > 1:
            return self._ambiguous(request, sobject, matches)
        return self._record(request, sobject, matches[0])

    def upsert(self, request: Request) -> Response:
        """``PATCH sobjects/{Type}/{ExternalIdField}/{value}``: update the match or create."""
        sobject, field = self._external_id_field(request)
        value = unquote_plus(request.params["value"])
        values = record_values(sobject, json_body(request))
        matches = self._matching(sobject, field, value)
        if len(matches) > 1:
            return self._ambiguous(request, sobject, matches)
        if not matches and field.name == "Id":
            raise SalesforceError("NOT_FOUND", NOT_FOUND_MESSAGE)
        key = record_values(sobject, {field.name: value})
        write = (
            Write(sobject.name, values, matches[0])
            if matches
            else Write(sobject.name, {**values, **key})
        )
        outcome = self._save(write)
        body = {"id": outcome.id, "success": True, "errors": [], "created": outcome.created}
        return json_response(201 if outcome.created else 200, body)

    def _save(self, write: Write) -> Outcome:
        """Save one record; its error refuses the request."""
        outcome = self.state.writer.save([write])[0]
        if not outcome.success:
            raise SalesforceError.of(outcome.errors[0])
        return outcome

    def _existing(self, request: Request) -> tuple[SObject, str]:
        """The object and 18-character id of a record the URL names: 404 unless it is live."""
        sobject = sobject_named(self.state.catalog, request.params["object"])
        record_id = normalize_id(request.params["id"])
        if record_id is None or record_id[:3] != sobject.key_prefix:
            raise SalesforceError("NOT_FOUND", NOT_FOUND_MESSAGE)
        found = self.state.records.rows(sobject.name, [record_id]).get(record_id)
        if found is None:
            raise SalesforceError("NOT_FOUND", NOT_FOUND_MESSAGE)
        if found.get("IsDeleted"):
            raise SalesforceError("ENTITY_IS_DELETED", "entity is deleted")
        return sobject, record_id

    def _record(self, request: Request, sobject: SObject, record_id: str) -> Response:
        """One record rendered as a query renders it."""
        wanted = request.arg("fields")
        names = wanted.split(",") if wanted else [f.name for f in sobject.fields]
        text = f"SELECT {', '.join(names)} FROM {sobject.name} WHERE Id = '{record_id}'"
        schema = self.state.catalog.soql_schema()
        query, rows = run_soql(text, self.state.records.frames(), schema, True)
        assert isinstance(rows, pl.DataFrame)
        record = records(rows, query, schema, api_version=request.params["version"])[0]
        return json_response(200, record)

    def _external_id_field(self, request: Request) -> tuple[SObject, Field]:
        sobject = sobject_named(self.state.catalog, request.params["object"])
        field = sobject.field(request.params["field"])
        if field is None or not (field.external_id or field.name == "Id"):
            raise SalesforceError(
                "NOT_FOUND",
                "Provided external ID field does not exist or is not accessible: "
                f"{request.params['field']}",
            )
        return sobject, field

    def _matching(self, sobject: SObject, field: Field, value: str) -> list[str]:
        """Ids of live records whose external id equals ``value`` (text: any case)."""
        typed = record_values(sobject, {field.name: value})[field.name]
        if field.name == "Id":
            typed = normalize_id(typed) or typed
        found = self.state.records.find(sobject.name, field.name, [typed])
        return next(iter(found.values()), [])

    def _ambiguous(self, request: Request, sobject: SObject, ids: list[str]) -> Response:
        """300 Multiple Choices: the matching records' URLs."""
        base = f"/services/data/v{request.params['version']}/sobjects/{sobject.name}"
        return json_response(300, [f"{base}/{record_id}" for record_id in ids])
