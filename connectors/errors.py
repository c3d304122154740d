"""What can go wrong talking to a CRM, and the one table that decides what to do about it.

    Exception
    └── ConnectorError             anything a connector raises on purpose
        ├── TransportError         no answer: a timeout, a refused or dropped connection (retried)
        ├── ApiError               the CRM answered with an error: status, code, message
        │   ├── RetriableError     429, 5xx, an edge's 406 / 420, a locked row, the concurrent
        │   │                      long-request limit: worth another try (``retry_after``)
        │   ├── AuthError          the session expired or was refused: log in again, once
        │   ├── FatalError         retrying cannot help
        │   │   ├── InvalidRequest 400: a validation error, never retried
        │   │   ├── Forbidden      403: a missing permission
        │   │   ├── NotFound       404
        │   │   └── Conflict       409: a duplicate
        │   └── DailyLimitReached  the org's daily API allowance is spent (also a BudgetExhausted)
        ├── BudgetExhausted        this run may not make another call today: a pull stops after
        │                          its last checkpoint, a push carries the results it has
        └── PaginationError        a server handed back a page token it had already given

`classify` reads `VERDICTS`, the one table of rules (the CRM's error code before the HTTP
status; a message pattern where one code means two things), and says retriable, auth, fatal or
stop; `api_error` turns an answer into the exception of its rule, and `record_status` says the
same of one record inside a batch.
"""

from __future__ import annotations

import re
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    from connectors.protocol import WriteResult

__all__ = [
    "VERDICTS",
    "ApiError",
    "AuthError",
    "BudgetExhausted",
    "Conflict",
    "ConnectorError",
    "DailyLimitReached",
    "FatalError",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "PaginationError",
    "RetriableError",
    "Rule",
    "TransportError",
    "Verdict",
    "api_error",
    "classify",
    "no_answer",
    "record_status",
]

Verdict = Literal["retriable", "auth", "fatal", "stop"]


class ConnectorError(Exception):
    """Base of every error a connector raises on purpose."""


class TransportError(ConnectorError):
    """No answer came: a timeout, a refused or a dropped connection."""


def no_answer(what: str, error: BaseException) -> TransportError:
    """A `TransportError` saying in plain words why ``what`` (a call) got no answer, from the
    HTTP library's exception and its causes (which read "HTTPConnectionPool(...): Max retries
    exceeded ... NewConnectionError(...)"): the host's name unknown, nothing listening, a
    timeout, or the connection dropped."""
    causes = _causes(error)
    names = {type(cause).__name__ for cause in causes}
    text = " ".join(str(cause) for cause in causes)
    if names & {"SSLError", "SSLCertVerificationError"}:
        verify = "certificate verify failed" in text.lower()
        why = (
            "the TLS certificate could not be verified (a proxy inspecting TLS? "
            "REQUESTS_CA_BUNDLE names the bundle that holds its certificate)"
            if verify
            else "the TLS handshake failed"
        )
    elif "ProxyError" in names:
        why = "the proxy refused or failed the connection (HTTPS_PROXY, NO_PROXY?)"
    elif "gaierror" in names or "NameResolutionError" in names or "resolve" in text:
        why = "its host name could not be resolved (DNS: a typo in the URL, or no network?)"
    elif "ConnectionRefusedError" in names or "refused" in text:
        why = "the connection was refused: nothing listens there (is the URL's port right?)"
    elif names & {"ConnectTimeout", "ConnectTimeoutError"}:
        why = "no connection within the connect timeout (a firewall, or the host is down?)"
    elif names & {"ReadTimeout", "ReadTimeoutError", "TimeoutError", "timeout"}:
        why = "no answer within the read timeout"
    elif names & {"ConnectionResetError", "ChunkedEncodingError", "ProtocolError"}:
        why = "the connection was dropped before the answer ended"
    else:
        why = f"the connection failed ({type(error).__name__})"
    return TransportError(f"{what}: {why}")


def _causes(error: BaseException) -> list[BaseException]:
    """``error``, what it wraps (``reason``, ``args``) and what caused it, each once."""
    found: list[BaseException] = []
    pending: list[object] = [error]
    while pending and len(found) < 20:
        item = pending.pop()
        if not isinstance(item, BaseException) or any(item is seen for seen in found):
            continue
        found.append(item)
        pending += [getattr(item, "reason", None), item.__cause__, item.__context__, *item.args]
    return found


class BudgetExhausted(ConnectorError):
    """This run may not make another call: its share of the daily API allowance is used.

    A pull stops after its last checkpoint, so the next run resumes there; a push carries the
    results of the records it did send in ``results``.
    """

    def __init__(self, message: str, results: Sequence[WriteResult] = ()) -> None:
        super().__init__(message)
        self.results = tuple(results)


class ApiError(ConnectorError):
    """The CRM refused a request: its HTTP status, error code and message."""

    verdict: ClassVar[Verdict] = "fatal"

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

    verdict = "retriable"


class AuthError(ApiError):
    """The session expired or the credentials were refused."""

    verdict = "auth"


class FatalError(ApiError):
    """Retrying the same request cannot help."""


class InvalidRequest(FatalError):
    """400: the request or a value in it is invalid."""


class Forbidden(FatalError):
    """403: a missing permission."""


class NotFound(FatalError):
    """404: no such resource or record."""


class Conflict(FatalError):
    """409: the write collides with an existing record."""


class DailyLimitReached(ApiError, BudgetExhausted):
    """The CRM refused a call because the org's daily API allowance is spent.

    Callers treat it as `BudgetExhausted`: the run stops cleanly and resumes next time.
    """

    verdict = "stop"


class PaginationError(ConnectorError):
    """A server handed back a page token it had already given (the pull would never end)."""


_ANY = range(0, 1000)
_UNANSWERED = frozenset({None})


@dataclass(frozen=True)
class Rule:
    """An error answer this rule covers (status, CRM code, message pattern) and its exception."""

    kind: type[ApiError]
    statuses: Container[int | None] = _ANY
    code: str | None = None
    message: str | None = None  # a regular expression searched in the CRM's message

    def covers(self, status: int | None, code: str | None, message: str) -> bool:
        """Whether an answer with this status, code and message falls under the rule."""
        return (
            status in self.statuses
            and self.code in (None, code)
            and (self.message is None or re.search(self.message, message) is not None)
        )


# The one verdict table: the first rule that covers an answer decides. Codes come before
# statuses, so a 400 UNABLE_TO_LOCK_ROW is retried and a 429 DAILY stops the run.
VERDICTS: tuple[Rule, ...] = (
    # Salesforce answers 403 REQUEST_LIMIT_EXCEEDED for two limits; the message names which.
    # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
    Rule(RetriableError, code="REQUEST_LIMIT_EXCEEDED", message=r"^ConcurrentPerOrg"),
    Rule(DailyLimitReached, {403}, "REQUEST_LIMIT_EXCEEDED"),  # "TotalRequests Limit exceeded."
    # Salesforce: another transaction holds the row; the record saves on a later try
    Rule(RetriableError, code="UNABLE_TO_LOCK_ROW"),
    Rule(RetriableError, code="SERVER_UNAVAILABLE"),
    Rule(RetriableError, code="REQUEST_RUNNING_TOO_LONG"),
    # HubSpot: a 409 sub-category for a record written by two requests at once
    Rule(RetriableError, code="CONCURRENT_MODIFICATION"),
    # HubSpot 429 policy names: the rolling windows pass, the daily allowance does not
    Rule(RetriableError, code="TEN_SECONDLY_ROLLING"),
    Rule(RetriableError, code="SECONDLY"),
    Rule(DailyLimitReached, code="DAILY"),
    Rule(AuthError, code="INVALID_SESSION_ID"),
    Rule(AuthError, code="EXPIRED_AUTHENTICATION"),
    # no answer at all, timeouts, throttling, and Salesforce's edge (406 and 420, often with an
    # HTML page or no body) pass: airbyte's source-salesforce retries them too
    Rule(RetriableError, _UNANSWERED | {406, 408, 420, 425, 429}),
    Rule(RetriableError, range(500, 600)),
    Rule(AuthError, {401}),
    Rule(InvalidRequest, {400}),
    Rule(Forbidden, {403}),
    Rule(NotFound, {404}),
    Rule(Conflict, {409}),
    Rule(FatalError),
)


def _rule(status: int | None, code: str | None, message: str) -> Rule:
    return next(rule for rule in VERDICTS if rule.covers(status, code, message))


def classify(status: int | None, code: str | None = None, message: str = "") -> Verdict:
    """Retriable, auth, fatal or stop, by the first rule of `VERDICTS` (None: no answer)."""
    return _rule(status, code, message).kind.verdict


def api_error(
    status: int, code: str | None, message: str, retry_after: float | None = None
) -> ApiError:
    """The exception for an error answer, of the class its rule names."""
    return _rule(status, code, message).kind(status, code, message, retry_after)


def record_status(code: str | None) -> Literal["retriable", "permanent"]:
    """What one record's error inside a batch means: try it again, or give up on it."""
    return "retriable" if classify(400, code) == "retriable" else "permanent"
