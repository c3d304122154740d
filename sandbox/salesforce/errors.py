"""Salesforce's errors: the codes, the HTTP status each code is answered with, the body shapes.

    Exception
    └── SalesforceError    a request Salesforce refuses: answered with ``status`` and the body
                           ``[{"message", "errorCode", "fields"}]``

A record that fails inside a batch (collections, Bulk API) is a `RecordError` in that record's
result instead, keyed ``statusCode``.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sandbox.http import Response, json_response

__all__ = [
    "ERROR_STATUS",
    "FAULT_ERRORS",
    "LIMIT_MESSAGES",
    "NOT_FOUND_MESSAGE",
    "RecordError",
    "SalesforceError",
    "error_response",
]

NOT_FOUND_MESSAGE = "The requested resource does not exist"
# error code -> HTTP status (every other code is 400 Bad Request)
ERROR_STATUS: dict[str, int] = {
    "INVALID_SESSION_ID": 401,
    "REQUEST_LIMIT_EXCEEDED": 403,
    "INSUFFICIENT_ACCESS": 403,
    "NOT_FOUND": 404,
    "ENTITY_IS_DELETED": 404,
    "METHOD_NOT_ALLOWED": 405,
    "UNKNOWN_EXCEPTION": 500,
    "SERVER_UNAVAILABLE": 503,
}
# a limit -> the message of Salesforce's 403 REQUEST_LIMIT_EXCEEDED for it: the daily API request
# allowance, or the org's concurrent long-running requests (Salesforce never answers 429)
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
LIMIT_MESSAGES: dict[str, str] = {
    "daily": "TotalRequests Limit exceeded.",
    "concurrent": "ConcurrentPerOrgLongTxn Limit exceeded.",
}
# injected HTTP status -> the error code and message Salesforce answers it with
FAULT_ERRORS: dict[int, tuple[str, str]] = {
    401: ("INVALID_SESSION_ID", "Session expired or invalid"),
    404: ("NOT_FOUND", NOT_FOUND_MESSAGE),
    500: (
        "UNKNOWN_EXCEPTION",
        "An unexpected error occurred. Please include this ErrorId if you contact support: "
        "1906273114-91745 (-1263390510)",
    ),
    502: ("SERVER_UNAVAILABLE", "Server temporarily unavailable (bad gateway)."),
    503: ("SERVER_UNAVAILABLE", "Server temporarily unavailable. Please try again later."),
    504: ("SERVER_UNAVAILABLE", "Server temporarily unavailable (gateway timeout)."),
}


class RecordError(NamedTuple):
    """Why one record was not saved."""

    code: str
    message: str
    fields: tuple[str, ...] = ()

    def as_result(self) -> dict[str, Any]:
        """The error inside a save result (collections): keyed ``statusCode``."""
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields)}

    def as_bulk(self) -> str:
        """The ``sf__Error`` column of a Bulk API failed-results row."""
        return f"{self.code}:{self.message}:{','.join(self.fields)} --"


class SalesforceError(Exception):
    """A refused request: its status follows from the error code."""

    def __init__(self, code: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = tuple(fields)

    @classmethod
    def of(cls, error: RecordError) -> SalesforceError:
        """A record's error as the refusal of a single-record request."""
        return cls(error.code, error.message, error.fields)

    @property
    def status(self) -> int:
        """The HTTP status Salesforce answers this code with."""
        return ERROR_STATUS.get(self.code, 400)

    def response(self, headers: dict[str, str] | None = None) -> Response:
        """The error response."""
        return error_response(self.status, self.code, self.message, self.fields, headers)


def error_response(
    status: int,
    code: str,
    message: str,
    fields: Sequence[str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """``[{"message", "errorCode", "fields"}]`` with ``status``; a refusal of the whole request
    (session, limits) carries no ``fields``: ``[{"message", "errorCode"}]``."""
    body: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        body["fields"] = list(fields)
    return json_response(status, [body], headers)
