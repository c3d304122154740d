"""HubSpot on the wire: hubspot-api-client, unmodified, with the one HTTP policy around each call.

The client's habits, and what this module does about them:

* every ``client.crm.X.Y_api`` access builds a new API client and connection pool: the APIs
  are taken once, here, and reused;
* it raises a 429 at once, and urllib3 underneath retries connection errors on its own: its
  retries are switched off (``retry=False``) so that tenacity is the one retry place;
* each sub-package raises its own, unrelated ``ApiException``: all of them become ours;
* it sets no timeout: every call passes the policy's ``_request_timeout``;
* its models cost more than the data: calls pass ``_preload_content=False`` and the JSON is
  parsed as it comes (3 to 10 times faster on the read path);
* it walks a body (``sanitize_for_serialization``) and encodes it with json inside the call,
  0.74 ms a batch of 100 updates, ~8 s over the reference org's first run, which the policy
  timed as the CRM's answering: the objects' batch calls are given their body encoded by
  orjson (0.03 ms), by us before the exchange, and their REST layer sends bytes as they are
  (`_EncodedBodies`), with the JSON content type.

Rate limits: calls are paced under the 10-second window the portal's tier allows, and under
``X-HubSpot-RateLimit-Max`` once a response has said it; search is also kept to 4 calls a
second (HubSpot allows 5 and sends no headers for it). The daily headers feed the budget.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsError
from hubspot.crm.objects import exceptions as objects_errors
from hubspot.crm.objects.exceptions import ApiException as ObjectsError
from hubspot.crm.objects.rest import RESTClientObject, RESTResponse
from hubspot.crm.owners.exceptions import ApiException as OwnersError
from hubspot.crm.properties.exceptions import ApiException as PropertiesError
from hubspot.events.exceptions import ApiException as EventsError

from connectors.config import HubSpotSettings
from connectors.errors import ApiError, TransportError, api_error, no_answer
from connectors.http import HttpPolicy, read_json

__all__ = ["SEARCH_WINDOW", "TIER_LIMITS", "HubSpotApi"]

# tier -> calls per 10-second window (private apps), from
# https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines
TIER_LIMITS = {"starter": 100, "professional": 190, "enterprise": 190}
_WINDOW_SECONDS = 10.0
_HEADROOM = 0.9  # pace at 90% of the window: other tools may share the portal's allowance
SEARCH_WINDOW = ("search", 4, 1.0)
_API_EXCEPTIONS = (AssociationsError, ObjectsError, OwnersError, PropertiesError, EventsError)


class _EncodedBodies(RESTClientObject):
    """hubspot-api-client's REST layer for the objects API, but a body given as bytes (JSON we
    encoded) is sent as it is, with the JSON content type, where the client would encode it
    again (it takes bytes as they are until here: ``sanitize_for_serialization``); any other
    request is the client's own. An answer outside 2xx raises the client's exceptions, as
    `RESTClientObject.request` does."""

    def request(
        self,
        method: str,
        url: str,
        query_params: Any = None,
        headers: Any = None,
        body: Any = None,
        post_params: Any = None,
        _preload_content: bool = True,
        _request_timeout: Any = None,
    ) -> Any:
        if not isinstance(body, bytes) or post_params:
            given = (query_params, headers, body, post_params, _preload_content, _request_timeout)
            return super().request(method, url, *given)  # the client's own, in its order
        headers = {"Content-Type": "application/json", **(headers or {})}
        if query_params:
            url += "?" + urlencode(query_params)
        timeout = None
        if isinstance(_request_timeout, int | float):
            timeout = urllib3.Timeout(total=_request_timeout)
        elif isinstance(_request_timeout, tuple):
            timeout = urllib3.Timeout(connect=_request_timeout[0], read=_request_timeout[1])
        try:
            answer = self.pool_manager.request(
                method,
                url,
                body=body,
                preload_content=_preload_content,
                timeout=timeout,
                headers=headers,
            )
        except urllib3.exceptions.SSLError as error:
            raise objects_errors.ApiException(status=0, reason=f"SSLError\n{error}") from error
        if _preload_content:
            answer = RESTResponse(answer)
        if not 200 <= answer.status <= 299:
            kind = 500 if 500 <= answer.status <= 599 else answer.status
            raise _OBJECTS_ERRORS.get(kind, objects_errors.ApiException)(http_resp=answer)
        return answer


_OBJECTS_ERRORS = {
    401: objects_errors.UnauthorizedException,
    403: objects_errors.ForbiddenException,
    404: objects_errors.NotFoundException,
    500: objects_errors.ServiceException,
}


class HubSpotApi:
    """The hubspot-api-client APIs the connector uses, each built once, called under the policy."""

    def __init__(self, settings: HubSpotSettings, policy: HttpPolicy, host: str | None = None):
        if settings.token is None:
            raise ValueError("HubSpot needs a private app token (HANDOFF_HUBSPOT_TOKEN)")
        self.policy = policy
        options: dict[str, Any] = {"retry": False}
        if settings.ca_bundle is not None:
            options["ssl_ca_cert"] = str(settings.ca_bundle)
        client = HubSpot(
            access_token=settings.token.get_secret_value(), host=host or settings.host, **options
        )
        self.objects = client.crm.objects.basic_api
        self.batch = client.crm.objects.batch_api
        self.batch.api_client.rest_client = _EncodedBodies(self.batch.api_client.configuration)
        self.search = client.crm.objects.search_api
        self.associations = client.crm.associations.v4.batch_api
        self.properties = client.crm.properties.core_api
        self.property_batch = client.crm.properties.batch_api
        self.groups = client.crm.properties.groups_api
        self.owners = client.crm.owners.owners_api
        self.events = client.events.events_api
        policy.pace("api", int(TIER_LIMITS[settings.tier] * _HEADROOM), _WINDOW_SECONDS)
        policy.pace(*SEARCH_WINDOW)

    def email_events(
        self, _preload_content: bool = True, _request_timeout: Any = None, **query: Any
    ) -> Any:
        """``GET /email/public/v1/events`` (`_get`)."""
        return self._get("/email/public/v1/events", query, _preload_content, _request_timeout)

    def account_details(self, _preload_content: bool = True, _request_timeout: Any = None) -> Any:
        """``GET /account-info/v3/details`` (`_get`): the portal's Hub ID as ``portalId``, its
        time zone and currency; its documented scope is ``oauth``."""
        return self._get("/account-info/v3/details", {}, _preload_content, _request_timeout)

    def _get(
        self, path: str, query: Mapping[str, Any], preload_content: bool, request_timeout: Any
    ) -> Any:
        """A GET hubspot-api-client has no method for, sent by its own generated ApiClient
        (same auth, pool, no retries), so `call` handles it like any other method."""
        return self.events.api_client.call_api(
            path,
            "GET",
            query_params=[(key, value) for key, value in query.items() if value is not None],
            header_params={"Accept": "application/json"},
            response_types_map={},
            auth_settings=["oauth2"],
            _return_http_data_only=True,
            _preload_content=preload_content,
            _request_timeout=request_timeout,
        )

    def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One API call under the policy; its JSON answer (None when empty), read once the
        exchange is over: reading it is our work, timed apart from the portal's answering."""
        body = self.call_raw(method, *args, **kwargs)
        # a page of 100 contacts, 47 kB: 0.07 ms against json's 0.15
        return read_json(body) if body else None

    def call_raw(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
        """`call`'s answer as the bytes that came, unread (empty when there were none)."""
        windows = ("api", "search") if method.__name__ == "do_search" else ("api",)

        def send() -> bytes:
            try:
                response = method(
                    *args, _preload_content=False, _request_timeout=self.policy.timeout, **kwargs
                )
                body = response.data
            except _API_EXCEPTIONS as error:
                self._observe(error.headers or {})
                raise self._error(error) from error
            except urllib3.exceptions.HTTPError as error:
                raise no_answer(method.__name__, error) from error
            self._observe(response.headers)
            return bytes(body or b"")

        # a private app's token does not expire: HubSpot's 401 EXPIRED_AUTHENTICATION (token
        # rotation) is answered by sending the same call once more
        return self.policy.call(send, windows=windows, reauth=_same_token)

    def _observe(self, headers: Mapping[str, str]) -> None:
        """Pace under the window the portal reports; feed the daily figures to the budget."""
        limit = _int(headers.get("X-HubSpot-RateLimit-Max"))
        interval = _int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds"))
        if limit and interval:
            self.policy.pace("api", max(int(limit * _HEADROOM), 1), interval / 1000)
            if _int(headers.get("X-HubSpot-RateLimit-Remaining")) == 0:
                self.policy.hold(interval / 1000)
        daily = _int(headers.get("X-HubSpot-RateLimit-Daily"))
        left = _int(headers.get("X-HubSpot-RateLimit-Daily-Remaining"))
        if daily is not None and left is not None:
            self.policy.budget.observe(daily - left, daily)

    def _error(self, error: Any) -> ApiError | TransportError:
        """A client ``ApiException`` as ours: HubSpot's category, sub-category or policy name."""
        if not error.status:
            return TransportError(str(error.reason))
        body = _json(error.body)
        code = body.get("policyName") or body.get("subCategory") or body.get("category")
        message = str(body.get("message") or error.reason or "")
        retry_after = self.policy.retry_after((error.headers or {}).get("Retry-After"))
        return api_error(int(error.status), code, message, retry_after)


def _same_token() -> None:
    """Nothing to refresh: the private app token stays the same."""


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _json(body: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(body) if body else {}
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}
