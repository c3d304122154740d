"""The Salesforce dialect: its routes, authentication, API usage and injected faults.

Requests authenticate with ``Authorization: Bearer <session id>`` (or ``OAuth <session id>``);
a missing or revoked session is 401 INVALID_SESSION_ID with a JSON list body (the one answer on
which simple-salesforce logs in again). Each authenticated call counts against the daily API
allowance; every response reports it in ``Sforce-Limit-Info``. An injected status fault is
answered in Salesforce's error shape (with ``Retry-After`` where the fault gives one); a limit
fault as Salesforce refuses a call past a limit (403 REQUEST_LIMIT_EXCEEDED, the message naming
the limit); an expire-session fault revokes every session, after which only a fresh login gets
through.

Endpoint names (for the request log and ``endpoint =`` in a faults file): ``soap/login``,
``oauth2/token``, ``versions``, ``resources``, ``limits``, ``describeGlobal``,
``sobjects/describe``, ``sobjects`` (records), ``query`` and ``queryAll`` (with their next
pages), ``composite`` (one entry however many subrequests it runs), ``composite/sobjects``,
``jobs/ingest``, ``jobs/query``, ``tooling/sobjects`` and
``tooling/query``.

Merges, which Salesforce offers only through its SOAP API, are a method: `SalesforceDialect.merge`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sandbox.admin import NewActivity, activity_route
from sandbox.faults import Fault, FaultPlan
from sandbox.http import Request, Response, Route
from sandbox.org import Org
from sandbox.salesforce.activity import add_tasks
from sandbox.salesforce.auth import Logins
from sandbox.salesforce.bulk import BulkService
from sandbox.salesforce.composite import CollectionsService
from sandbox.salesforce.config import SalesforceOptions
from sandbox.salesforce.errors import (
    FAULT_ERRORS,
    LIMIT_MESSAGES,
    NOT_FOUND_MESSAGE,
    error_response,
)
from sandbox.salesforce.limits import LIMIT_INFO_HEADER
from sandbox.salesforce.merges import MergeResult
from sandbox.salesforce.query import QueryService
from sandbox.salesforce.rest import RestService
from sandbox.salesforce.state import OrgState, build_state
from sandbox.salesforce.subrequests import CompositeService
from sandbox.salesforce.tooling import ToolingService

__all__ = ["SalesforceDialect", "make_dialect"]

_SESSION_EXPIRED = "Session expired or invalid"


class SalesforceDialect:
    """Serves one org the way Salesforce's REST, Bulk 2.0, Tooling and login APIs do."""

    def __init__(self, state: OrgState) -> None:
        self.state = state
        self.logins = Logins(
            state.options, state.sessions, (state.org_id, state.user_id), state.clock
        )
        served = [
            *self.logins.routes(),
            *QueryService(state).routes(),
            *CollectionsService(state).routes(),
            *BulkService(state).routes(),
            *ToolingService(state).routes(),
            *RestService(state).routes(),
        ]
        self._routes = [*served, *CompositeService(served).routes()]

    def routes(self) -> list[Route]:
        """Every route, logins first."""
        return list(self._routes)

    def admin_routes(self) -> list[Route]:
        """The sandbox's own route for web touches no API creates (`sandbox.admin`)."""
        return [activity_route(self.add_activities)]

    def add_activities(self, activities: list[NewActivity]) -> list[str]:
        """Log web touches as marketing automation does: Tasks (`activity`); their ids."""
        return add_tasks(self.state, activities)

    def merge(self, object_name: str, master: str, merged: Sequence[str]) -> MergeResult:
        """Merge one or two Accounts, Contacts or Leads into ``master``, as a user would in
        Salesforce (the SOAP ``merge()`` call, which simple-salesforce does not offer).

        Refusals raise `SalesforceError` with Salesforce's error code.
        """
        return self.state.writer.merge(object_name, master, merged)

    def authenticate(self, request: Request) -> Response | None:
        """None for a live session within the daily allowance, else Salesforce's refusal."""
        if not self.state.sessions.valid(_session_id(request)):
            return error_response(401, "INVALID_SESSION_ID", _SESSION_EXPIRED)
        if not self.state.usage.consume():
            return error_response(403, "REQUEST_LIMIT_EXCEEDED", LIMIT_MESSAGES["daily"])
        return None

    def fault_response(self, fault: Fault, request: Request) -> Response:
        """An injected failure as Salesforce shows it."""
        if fault.kind == "expire_session":
            self.state.sessions.revoke_all()
            login = self._login_route(request)
            if login is not None:  # the expiry happened; this login then mints a new session
                return login(request)
            response = error_response(401, "INVALID_SESSION_ID", _SESSION_EXPIRED)
        elif fault.kind == "limit":
            response = error_response(403, "REQUEST_LIMIT_EXCEEDED", LIMIT_MESSAGES[fault.limit])
        else:
            code, message = FAULT_ERRORS.get(
                fault.status, ("UNKNOWN_EXCEPTION", f"HTTP {fault.status}")
            )
            retry = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after else {}
            response = error_response(fault.status, code, message, headers=retry)
        self.decorate(request, response)
        return response

    def not_found(self, request: Request) -> Response:
        """404 NOT_FOUND for a path Salesforce does not serve."""
        response = error_response(404, "NOT_FOUND", NOT_FOUND_MESSAGE)
        self.decorate(request, response)
        return response

    def decorate(self, request: Request, response: Response) -> None:
        """Report today's API usage on every response."""
        response.headers[LIMIT_INFO_HEADER] = self.state.usage.header()

    def _login_route(self, request: Request) -> Callable[[Request], Response] | None:
        for route in self.logins.routes():
            if route.match(request.method, request.path) is not None:
                return route.handler
        return None


def make_dialect(
    org: Org,
    token: str,
    faults: FaultPlan,
    clock: Callable[[], datetime],
    **options: Any,
) -> SalesforceDialect:
    """The Salesforce dialect over ``org``; ``token`` is a valid session id from the start."""
    settings = SalesforceOptions.from_options(options)
    return SalesforceDialect(build_state(org, token, faults, clock, settings))


def _session_id(request: Request) -> str | None:
    """The session id of ``Authorization: Bearer <id>`` or ``OAuth <id>``."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() in ("bearer", "oauth") and token.strip() else None
