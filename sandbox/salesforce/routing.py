"""What every Salesforce route shares: the versioned path prefix, JSON bodies, refusals.

A handler raises `SalesforceError` to refuse a request; `api_route` turns it into Salesforce's
error response and refuses API versions the org does not serve.
"""

from __future__ import annotations

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

    An unexpected exception (a sandbox bug) is answered 500 UNKNOWN_EXCEPTION naming it.
    """

    def answer(request: Request) -> Response:
        try:
            if request.params.get("version", API_VERSION) not in VERSIONS:
                raise SalesforceError("NOT_FOUND", NOT_FOUND_MESSAGE)
            return handler(request)
        except SalesforceError as refused:
            return refused.response()
        except Exception as error:  # a sandbox bug: answer as Salesforce does, 500, and say what
            message = f"An unexpected error occurred: {type(error).__name__}: {error}"
            return SalesforceError("UNKNOWN_EXCEPTION", message).response()

    return Route(method, DATA + pattern, endpoint, answer)


def json_body(request: Request) -> Any:
    """The request's JSON; unreadable JSON is refused as Salesforce refuses it."""
    try:
        return request.json()
    except (ValueError, UnicodeDecodeError) as error:
        raise SalesforceError("JSON_PARSER_ERROR", f"Unexpected character: {error}") from error


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
