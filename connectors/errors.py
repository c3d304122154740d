"""What can go wrong talking to a CRM, and the one function that decides what to do about it.

    Exception
    └── ConnectorError             anything a connector raises on purpose
        ├── TransportError         no answer: a timeout, a refused or dropped connection (retried)
        ├── ApiError               the CRM answered with an error: status, code, message
        │   ├── RetriableError     429, 5xx, a locked row: worth another try (``retry_after``)
        │   ├── AuthError          the session expired or was refused: log in again, once
        │   └── FatalError         retrying cannot help
        │       ├── InvalidRequest 400: a validation error, never retried
        │       ├── Forbidden      403: a permission or the org's daily limit
        │       ├── NotFound       404
        │       └── Conflict       409: a duplicate
        ├── BudgetExhausted        this run has used its share of the daily API allowance
        └── PaginationError        a server handed back a page token it had already given

`classify` is the one place that decides retriable, auth or fatal, from the HTTP status and the
CRM's error code; `api_error` turns an answer into the exception of that verdict, and
`record_status` says the same of one record inside a batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from connectors.protocol import WriteResult

__all__ = [
    "ApiError",
    "AuthError",
    "BudgetExhausted",
    "Conflict",
    "ConnectorError",
    "FatalError",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "PaginationError",
    "RetriableError",
    "TransportError",
    "Verdict",
    "api_error",
    "classify",
    "record_status",
]

Verdict = Literal["retriable", "auth", "fatal"]

# CRM error codes whose meaning beats the HTTP status they come with
_BY_CODE: Mapping[str, Verdict] = {
    # Salesforce: another transaction holds the row; the record saves on a later try
    "UNABLE_TO_LOCK_ROW": "retriable",
    "SERVER_UNAVAILABLE": "retriable",
    "REQUEST_RUNNING_TOO_LONG": "retriable",
    # HubSpot: a 409 sub-category for a record written by two requests at once
    "CONCURRENT_MODIFICATION": "retriable",
    # HubSpot 429 policy names: the rolling windows pass, the daily allowance does not
    "TEN_SECONDLY_ROLLING": "retriable",
    "SECONDLY": "retriable",
    "DAILY": "fatal",
    "INVALID_SESSION_ID": "auth",
    "EXPIRED_AUTHENTICATION": "auth",
}
_RETRIABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def classify(status: int | None, code: str | None = None) -> Verdict:
    """Retriable, auth or fatal: the CRM's code first, then the status (None: no answer)."""
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    if status is None or status in _RETRIABLE_STATUSES or status >= 500:
        return "retriable"
    if status == 401:
        return "auth"
    return "fatal"


class ConnectorError(Exception):
    """Base of every error a connector raises on purpose."""


class TransportError(ConnectorError):
    """No answer came: a timeout, a refused or a dropped connection."""


class ApiError(ConnectorError):
    """The CRM refused a request: its HTTP status, error code and message."""

    def __init__(
        self, status: int, code: str | None, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"HTTP {status} {code or ''}: {message}".replace("  ", " "))
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class RetriableError(ApiError):
    """Worth another try, no sooner than ``retry_after`` seconds when the CRM said so."""


class AuthError(ApiError):
    """The session expired or the credentials were refused."""


class FatalError(ApiError):
    """Retrying the same request cannot help."""


class InvalidRequest(FatalError):
    """400: the request or a value in it is invalid."""


class Forbidden(FatalError):
    """403: a missing permission, or the org's daily API limit is spent."""


class NotFound(FatalError):
    """404: no such resource or record."""


class Conflict(FatalError):
    """409: the write collides with an existing record."""


class BudgetExhausted(ConnectorError):
    """This run may not make another call: its share of the daily API allowance is used.

    A pull stops after its last checkpoint, so the next run resumes there; a push carries the
    results of the records it did send in ``results``.
    """

    def __init__(self, message: str, results: Sequence[WriteResult] = ()) -> None:
        super().__init__(message)
        self.results = tuple(results)


class PaginationError(ConnectorError):
    """A server handed back a page token it had already given (the pull would never end)."""


_FATAL: Mapping[int, type[FatalError]] = {
    400: InvalidRequest,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}
_VERDICT: Mapping[Verdict, type[ApiError]] = {
    "retriable": RetriableError,
    "auth": AuthError,
    "fatal": FatalError,
}


def api_error(
    status: int, code: str | None, message: str, retry_after: float | None = None
) -> ApiError:
    """The exception for an error answer: its verdict's class, refined by status when fatal."""
    verdict = classify(status, code)
    kind = _FATAL.get(status, FatalError) if verdict == "fatal" else _VERDICT[verdict]
    return kind(status, code, message, retry_after)


def record_status(code: str | None) -> Literal["retriable", "permanent"]:
    """What one record's error inside a batch means: try it again, or give up on it."""
    return "retriable" if classify(400, code) == "retriable" else "permanent"
