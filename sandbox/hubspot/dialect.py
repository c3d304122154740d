"""The HubSpot dialect: routes of every API, private-app token auth, rate limits, faults.

    with start_sandbox("hubspot", org, tier="professional", pipeline="custom") as crm:
        client = HubSpot(access_token=crm.token, host=crm.base_url, base_url=crm.base_url)

Options: ``tier`` (starter, professional, enterprise, unlimited: rate limits, and whether the
events API answers, limits.py), ``pipeline`` (default, custom: the deals' pipeline,
pipelines.py), ``country_spelling`` (`sandbox.spellings`) and ``convention`` (a, b: the site
map web touches show, touches.py).

(``base_url`` is what the client's raw ``api_request()`` helper uses.) Injected faults answer
in HubSpot's shapes: a 429 with ``errorType: RATE_LIMIT`` (and ``Retry-After`` when the fault
gives one), 5xx error bodies, and an expired session as a 401 ``EXPIRED_AUTHENTICATION`` once,
after which the same token works again (as if the connector had refreshed it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

from sandbox.admin import NewActivity, activity_route
from sandbox.faults import Fault, FaultPlan
from sandbox.http import Request, Response, Route
from sandbox.hubspot.account import AccountRoutes
from sandbox.hubspot.activity import add_events
from sandbox.hubspot.associations import AssociationRoutes
from sandbox.hubspot.email_events import EmailEventRoutes, build_email_events
from sandbox.hubspot.errors import (
    AUTH_MISSING,
    HubSpotError,
    correlation_id,
    error_response,
    rate_limit_response,
)
from sandbox.hubspot.events import EventRoutes, build_events
from sandbox.hubspot.limits import RateLimiter
from sandbox.hubspot.merges import MergeRoutes
from sandbox.hubspot.objects import ObjectRoutes
from sandbox.hubspot.owners import OwnerRoutes
from sandbox.hubspot.pipelines import PIPELINES, PipelineRoutes
from sandbox.hubspot.properties import PropertyRoutes
from sandbox.hubspot.store import Clock, PortalStore
from sandbox.hubspot.touches import CONVENTIONS
from sandbox.hubspot.writes import BatchRoutes
from sandbox.org import Org

__all__ = ["DEFAULT_TIER", "HubSpotDialect", "make_dialect"]

DEFAULT_TIER = "professional"
_OPTIONS = ("tier", "country_spelling", "pipeline", "convention")
_EXPIRED = "The OAuth token used to make this call expired 0 second(s) ago."
_UNREADABLE = "Invalid input: the request's body or arguments could not be read"
_LOG = logging.getLogger(__name__)
# a limit fault -> the 429 policy HubSpot names for it
_LIMIT_POLICIES = {"daily": "DAILY", "concurrent": "TEN_SECONDLY_ROLLING"}


def _is_search(request: Request) -> bool:
    return request.path.endswith("/search")


class HubSpotDialect:
    """A HubSpot portal over one org, for one private-app token."""

    def __init__(
        self,
        org: Org,
        token: str,
        faults: FaultPlan,
        clock: Clock,
        tier: str = DEFAULT_TIER,
        country_spelling: str = "code",  # a rendering option: `sandbox.spellings`
        pipeline: str = "default",
        convention: str = "a",  # the portal's site map: `sandbox.hubspot.touches`
    ) -> None:
        if convention not in CONVENTIONS:
            raise ValueError(
                f"unknown convention {convention!r}; expected one of {list(CONVENTIONS)}"
            )
        if pipeline not in PIPELINES:
            raise ValueError(
                f"unknown deal pipeline {pipeline!r}; expected one of {list(PIPELINES)}"
            )
        pipelines, deals_in = PIPELINES[pipeline]
        self.token = token
        # how the org's records are rendered (what saved state must have been written under)
        self.rendering = {
            "country_spelling": country_spelling,
            "pipeline": pipeline,
            "convention": convention,
        }
        self.store = PortalStore(org, clock, country_spelling, deals_in, convention)
        self.limiter = RateLimiter(tier, clock)
        self.owners = OwnerRoutes(org.users)
        self._first_free_activity = org.activities.height  # activity ids are row numbers
        self.events = EventRoutes(
            build_events(org, self.store.merges, convention), self.limiter.tier.events_api
        )
        self._routes = [
            *BatchRoutes(self.store, faults).routes(),
            *ObjectRoutes(self.store, faults).routes(),
            *MergeRoutes(self.store).routes(),
            *AssociationRoutes(self.store, faults).routes(),
            *PropertyRoutes(self.store).routes(),
            *self.owners.routes(),
            *self.events.routes(),
            *EmailEventRoutes(build_email_events(org, self.store.merges, convention)).routes(),
            *PipelineRoutes(pipelines).routes(),
            *AccountRoutes(org.manifest).routes(),
        ]

    def admin_routes(self) -> list[Route]:
        """The sandbox's own route for web touches no API creates (`sandbox.admin`)."""
        return [activity_route(self.add_activities)]

    def add_activities(self, activities: list[NewActivity]) -> list[str]:
        """Record web touches as HubSpot's tracking code does: events (`activity`); their ids."""
        convention = self.rendering["convention"]
        return add_events(
            self.store, self.events, activities, convention, self._first_free_activity
        )

    def routes(self) -> list[Route]:
        """Every route, each handler rate-limited and its errors rendered HubSpot's way."""
        return [
            Route(r.method, r.pattern, r.endpoint, self._guarded(r.handler), r.public)
            for r in self._routes
        ]

    def _guarded(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def guarded(request: Request) -> Response:
            policy = self.limiter.admit(search=_is_search(request))
            if policy is not None:
                return rate_limit_response(policy)
            # path segments arrive percent-encoded (an email as idProperty: a%40b.com)
            params = {key: unquote(value) for key, value in request.params.items()}
            request = replace(request, params=params)
            try:
                return handler(request)
            except HubSpotError as error:
                return error_response(error)
            except (ValueError, KeyError, TypeError, AttributeError):
                # a malformed body or argument: HubSpot answers 400, never a dropped connection,
                # and never with Python's words (the sandbox's log keeps them)
                _LOG.debug("unreadable input: %s %s", request.method, request.path, exc_info=True)
                return error_response(HubSpotError(400, _UNREADABLE))

        return guarded

    def authenticate(self, request: Request) -> Response | None:
        """None for the private app's token, else HubSpot's 401."""
        if request.bearer() == self.token:
            return None
        return error_response(HubSpotError(401, AUTH_MISSING))

    def fault_response(self, fault: Fault, request: Request) -> Response:
        """An injected failure in HubSpot's shape."""
        if fault.kind == "expire_session":
            return error_response(HubSpotError(401, _EXPIRED, category="EXPIRED_AUTHENTICATION"))
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        if fault.kind == "limit":
            return rate_limit_response(_LIMIT_POLICIES[fault.limit], headers)
        if fault.status == 429:
            return rate_limit_response("TEN_SECONDLY_ROLLING", headers)
        message = "An internal error occurred; try the request again."
        return error_response(HubSpotError(fault.status, message), headers)

    def not_found(self, request: Request) -> Response:
        """HubSpot's answer to a path it does not serve."""
        segments = request.path.split("/")
        if request.path.startswith("/crm/v3/objects/") and len(segments) > 4:
            return error_response(
                HubSpotError(400, f"Unable to infer object type from: {segments[4]}")
            )
        return error_response(
            HubSpotError(404, f"No route for {request.method} {request.path}", category="NOT_FOUND")
        )

    def decorate(self, request: Request, response: Response) -> None:
        """A correlation id everywhere; rate-limit headers, except on search (as HubSpot)."""
        response.headers.setdefault("X-HubSpot-Correlation-Id", correlation_id())
        # Search responses carry no X-HubSpot-RateLimit-* headers:
        # https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines
        if request.bearer() == self.token and not _is_search(request):
            response.headers.update(self.limiter.headers())


def make_dialect(
    org: Org, token: str, faults: FaultPlan, clock: Clock, **options: Any
) -> HubSpotDialect:
    """The dialect ``sandbox.service.start_sandbox("hubspot", ...)`` serves."""
    unknown = set(options) - set(_OPTIONS)
    if unknown:
        raise ValueError(
            f"unknown HubSpot sandbox option(s) {sorted(unknown)}; expected: {', '.join(_OPTIONS)}"
        )
    return HubSpotDialect(org, token, faults, clock, **options)
