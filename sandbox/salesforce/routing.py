"""What every Salesforce route shares: the versioned path prefix, JSON bodies, refusals.

A handler raises `SalesforceError` to refuse a request; `api_route` turns it into Salesforce's
error response and refuses API versions the org does not serve.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sandbox.http import Request, Response, Route, json_response
from sandbox.salesforce.catalog import Catalog
from sandbox.salesforce.coerce import BadValue, UnknownField
from sandbox.salesforce.config import API_VERSION
from sandbox.salesforce.errors import NOT_FOUND_MESSAGE, SalesforceError
from sandbox.salesforce.schema import SObject

__all__ = [
    "DATA",
    "VERSIONS",
    "api_route",
    "json_body",
    "refusal",
    "sobject_named",
    "versions_payload",
]

DATA = r"/services/data/v(?P<version>[0-9]+\.[0-9])"
_OLDEST = 20
VERSIONS = tuple(f"{major}.0" for major in range(_OLDEST, int(float(API_VERSION)) + 1))
_SEASONS = ("Spring", "Summer", "Winter")  # three releases a year; 57.0 was Spring '23

Handler = Callable[[Request], Response]


def api_route(method: str, pattern: str, endpoint: str, handler: Handler) -> Route:
    """A route under ``/services/data/vXX.X`` whose refusals are Salesforce errors.

    Any other exception (a sandbox bug) reaches the server, which answers Salesforce's generic
    500 UNKNOWN_EXCEPTION without the exception's text.
    """

    def answer(request: Request) -> Response:
        try:
            if request.params.get("version", API_VERSION) not in VERSIONS:
                raise SalesforceError("NOT_FOUND", NOT_FOUND_MESSAGE)
            return handler(request)
        except SalesforceError as refused:
            return refused.response()

    return Route(method, DATA + pattern, endpoint, answer)


def json_body(request: Request) -> Any:
    """The request's JSON; unreadable JSON is refused as Salesforce (its Jackson parser) words
    it, e.g. "Unexpected character ('x' (code 120)): ... at [line:1, column:1]"."""
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError as error:
        message = f"Invalid UTF-8 start byte 0x{request.body[error.start]:02x}"
        raise SalesforceError("JSON_PARSER_ERROR", message) from error
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError as error:
        raise SalesforceError("JSON_PARSER_ERROR", _parser_message(error)) from error


def _parser_message(error: json.JSONDecodeError) -> str:
    """Where and at what the JSON stopped being readable, in Salesforce's words."""
    where = f"at [line:{error.lineno}, column:{error.colno}]"
    if error.pos >= len(error.doc):
        return f"Unexpected end-of-input {where}"
    char = error.doc[error.pos]
    return (
        f"Unexpected character ('{char}' (code {ord(char)})): expected a valid value "
        f"(JSON String, Number, Array, Object or token 'null', 'true' or 'false') {where}"
    )


def sobject_named(catalog: Catalog, name: str) -> SObject:
    """The object a URL names; 404 NOT_FOUND as Salesforce answers an unknown one."""
    sobject = catalog.object(name)
    if sobject is None:
        raise SalesforceError("NOT_FOUND", NOT_FOUND_MESSAGE)
    return sobject


def refusal(error: UnknownField | BadValue) -> SalesforceError:
    """A field or value the JSON of a request cannot carry, as a refusal of the request."""
    if isinstance(error, UnknownField):
        return SalesforceError("INVALID_FIELD", str(error), (error.name,))
    soap = error.field.kind.soap_type.partition(":")[2]
    return SalesforceError(
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {soap} from VALUE_STRING value {error.value} or "
        "request may be missing a required field",
        (error.field.name,),
    )


def versions_payload() -> Response:
    """``GET /services/data/``: every API version the org serves."""
    return json_response(
        200,
        [
            {"label": _release(version), "url": f"/services/data/v{version}", "version": version}
            for version in VERSIONS
        ],
    )


def _release(version: str) -> str:
    """The release name of an API version: 59.0 is "Winter '24"."""
    since = int(float(version)) - 57
    return f"{_SEASONS[since % 3]} '{23 + (since + 1) // 3:02d}"
