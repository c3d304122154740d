"""Salesforce on the wire: simple-salesforce, unmodified, over a session that owns the HTTP policy.

simple-salesforce does the logins (SOAP, OAuth password, JWT bearer, client credentials), SOQL
and REST calls. What it does not do, `PolicySession` (given as its public ``session=``) does:

* it sets no timeout: every request gets the policy's timeout;
* it never retries a 5xx or a 429: the policy retries them, honouring ``Retry-After``;
* its sObject methods log in again without bound on a permanent 401: the client is built from
  a session id, so it never logs in by itself, and the policy logs in again at most once a call;
* its errors are its own: every error answer becomes ours (`connectors.errors`) first.

Routing: ``session`` is the `requests.Session` calls travel on. By default a plain one,
verifying TLS with ``ca_bundle`` when set. Tests and the sandbox pass
``sandbox.salesforce.client_session(url)``, which sends ``https://*.salesforce.com`` to the
sandbox on loopback; `handoff` will do the same when ``[crm] kind = "sandbox"``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import SalesforceAuthenticationFailed

from connectors.config import SalesforceSettings
from connectors.errors import ApiError, AuthError, ConnectorError, api_error, no_answer
from connectors.http import HttpPolicy, read_json

__all__ = ["COMPOSITE_SIZE", "LIMIT_INFO", "PolicySession", "SalesforceApi"]

LIMIT_INFO = "Sforce-Limit-Info"
COMPOSITE_SIZE = 25  # the most subrequests one Composite call runs
_API_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
_SHOWN = 300  # characters of an error page kept in a message
_NO_BODY = "(no body)"
_TAG = re.compile(r"<[^>]*>")
_HIDDEN = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.S | re.I)
_FAULT_STRING = re.compile(r"<faultstring>(.*?)</faultstring>", re.S)
_TRANSPORT = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)


class PolicySession(requests.Session):
    """A session that sends through ``inner`` under the policy, with the current session id."""

    def __init__(self, inner: requests.Session, policy: HttpPolicy) -> None:
        super().__init__()
        self.inner = inner
        self.policy = policy
        self.token: str | None = None
        self.relogin: Callable[[], None] | None = None  # set once logged in

    def request(self, method: Any, url: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Send under the policy; API calls (``Bearer``) carry the current session id."""
        kwargs.setdefault("timeout", self.policy.timeout)
        headers = dict(kwargs.pop("headers", None) or {})
        if not str(headers.get("Authorization", "")).startswith("Bearer "):
            return self.policy.call(lambda: self._send(method, url, headers, kwargs), metered=False)

        def send() -> requests.Response:
            headers["Authorization"] = f"Bearer {self.token}"
            response = self._send(method, url, headers, kwargs)
            self._observe(response)
            _raise_for(response, self.policy)
            return response

        return self.policy.call(send, reauth=self.relogin)

    def _send(
        self, method: Any, url: Any, headers: dict[str, Any], kwargs: dict[str, Any]
    ) -> requests.Response:
        try:
            return self.inner.request(method, url, headers=headers, **kwargs)
        except _TRANSPORT as error:
            raise no_answer(f"{method} {url}", error) from error

    def _observe(self, response: requests.Response) -> None:
        found = _API_USAGE.search(response.headers.get(LIMIT_INFO, ""))
        if found:
            self.policy.budget.observe(int(found.group(1)), int(found.group(2)))


def _raise_for(response: requests.Response, policy: HttpPolicy) -> None:
    """Our exception for an error answer, from Salesforce's error body."""
    if response.status_code < 400:
        return
    code, message = _error_of(response)
    retry_after = policy.retry_after(response.headers.get("Retry-After"))
    raise api_error(response.status_code, code, message, retry_after)


def _error_of(response: requests.Response) -> tuple[str | None, str]:
    """(errorCode, message) of ``[{"errorCode", "message"}]`` or an OAuth error body; the
    text of anything else (Salesforce's edge answers 406 / 420 with an HTML page or nothing)."""
    try:
        body = response.json()
    except ValueError:
        return None, _plain(response.content.decode("utf-8", "replace")) or _NO_BODY
    return _error_body(body)


def _error_body(body: Any) -> tuple[str | None, str]:
    """(errorCode, message) of an error body already parsed."""
    first = body[0] if isinstance(body, list) and body else body
    if not isinstance(first, dict):
        return None, str(body)[:_SHOWN]
    code = first.get("errorCode") or first.get("error")
    message = first.get("message") or first.get("error_description") or ""
    return code, str(message)


def _plain(text: str) -> str:
    """An HTML or XML page as one line of its text, cut short."""
    words = html.unescape(_TAG.sub(" ", _HIDDEN.sub(" ", text))).split()
    return " ".join(words)[:_SHOWN]


def _login_reason(error: SalesforceAuthenticationFailed) -> str:
    """Salesforce's own reason for refusing a login: the SOAP fault's ``faultstring`` or
    ``exceptionMessage``, the OAuth ``error_description``, else the page's text.

    simple-salesforce 1.12.7+ keeps it in ``auth_message`` (``message`` became a template)."""
    raw = str((error.auth_message if hasattr(error, "auth_message") else error.message) or "")
    fault = _FAULT_STRING.search(raw)
    if fault:
        return html.unescape(fault.group(1)).strip()
    try:
        body = json.loads(raw)
    except ValueError:
        return _plain(raw) or "no reason given"
    reason = body.get("error_description") if isinstance(body, dict) else None
    return str(reason or body)[:_SHOWN]


class _Client(Salesforce):
    """simple-salesforce's client, its JSON answers read by `read_json`: a page of 2,000
    records in 3 ms where `json` with its ``object_pairs_hook`` takes 10 (each record a dict
    either way). What orjson refuses goes to simple-salesforce's own reading, as before."""

    def parse_result_to_json(self, result: requests.Response) -> Any:
        return read_json(
            result.content, lambda _: super(_Client, self).parse_result_to_json(result)
        )


class SalesforceApi:
    """A logged-in simple-salesforce client on a `PolicySession`, and the raw calls we need."""

    def __init__(
        self,
        settings: SalesforceSettings,
        policy: HttpPolicy,
        session: requests.Session | None = None,
    ) -> None:
        inner = session or requests.Session()
        if settings.ca_bundle is not None:
            inner.verify = str(settings.ca_bundle)
        self.settings = settings
        self.policy = policy
        self.session = PolicySession(inner, policy)
        token, instance = self._login()
        self.session.token = token
        self.session.relogin = None if settings.auth == "session" else self._relogin
        self.client = _Client(
            instance=instance,
            session_id=token,
            session=self.session,
            version=settings.api_version,
            object_pairs_hook=dict,
        )

    def rest(self, path: str, method: str = "GET", **kwargs: Any) -> Any:
        """A REST call relative to ``/services/data/vXX.X/``, its JSON answer (None on 204)."""
        return self.client.restful(path, method=method, **kwargs)

    def rest_with(self, path: str, method: str, body: Any) -> Any:
        """`rest` with a JSON body encoded by orjson, where requests' ``json=`` runs the standard
        library's encoder: the first run's 786,000 records took 2.8 s to encode so. The bodies
        are ours (texts, whole numbers, flags, times as text: `json_value`); a float that is
        not finite, which json refuses, orjson would write as null, and none is sent."""
        return self.rest(path, method, data=orjson.dumps(body))

    def get_each(self, paths: Mapping[str, str]) -> dict[str, Any]:
        """GET up to 25 REST paths (relative, as `rest` takes them) in one Composite call,
        which counts as one API call: each key's JSON answer, or the `ApiError` it answered.
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm
        """
        if len(paths) > COMPOSITE_SIZE:
            raise ValueError(f"a Composite call runs at most {COMPOSITE_SIZE} subrequests")
        prefix = urlsplit(self.client.base_url).path
        subrequests = [
            {"method": "GET", "url": prefix + path, "referenceId": key}
            for key, path in paths.items()
        ]
        body = {"allOrNone": False, "compositeRequest": subrequests}
        answered = self.rest("composite", "POST", json=body)["compositeResponse"]
        results = {result["referenceId"]: _subresult(result) for result in answered}
        refused = results.get(None)  # the whole call refused (a limit): no referenceId
        if isinstance(refused, ApiError):
            raise refused
        return results

    def raw(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A call whose answer is not JSON (Bulk API CSV)."""
        headers = {**self.client.headers, **kwargs.pop("headers", {})}
        return self.session.request(method, self.client.base_url + path, headers=headers, **kwargs)

    def query(self, soql: str, include_deleted: bool, batch_size: int) -> dict[str, Any]:
        """The first page of a SOQL query (queryAll with ``include_deleted``)."""
        page: dict[str, Any] = self.client.query(
            soql, include_deleted=include_deleted, headers=_batch(batch_size)
        )
        return page

    def query_more(self, next_url: str, batch_size: int) -> dict[str, Any]:
        """A later page, from the previous page's ``nextRecordsUrl``."""
        page: dict[str, Any] = self.client.query_more(
            next_url, identifier_is_url=True, headers=_batch(batch_size)
        )
        return page

    def _relogin(self) -> None:
        """Log in again (the session expired); the next attempt carries the new id."""
        self.session.token, _ = self._login()

    def _login(self) -> tuple[str, str]:
        """(session id, instance host) for the configured way of logging in."""
        settings = self.settings
        if settings.auth == "session":
            assert settings.session_id is not None and settings.instance_url is not None
            return settings.session_id.get_secret_value(), _host(settings.instance_url)
        unusable = settings.problems()  # e.g. a private key that is not PEM: no traceback
        if unusable:
            raise ConnectorError("; ".join(f"[salesforce] {problem}" for problem in unusable))
        try:
            session_id, instance = SalesforceLogin(
                session=self.session, sf_version=settings.api_version, **_login_arguments(settings)
            )
        except SalesforceAuthenticationFailed as error:
            message = f"Salesforce refused the login: {_login_reason(error)}"
            raise AuthError(401, str(error.code), message) from error
        return session_id, instance


def _subresult(result: Mapping[str, Any]) -> Any:
    """A Composite subrequest's body, or our exception for its error answer."""
    status = int(result["httpStatusCode"])
    if status < 400:
        return result.get("body")
    return api_error(status, *_error_body(result.get("body")))


def _batch(size: int) -> dict[str, str]:
    return {"Sforce-Query-Options": f"batchSize={size}"}


def _host(url: str) -> str:
    return urlsplit(url).netloc


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())


def _login_arguments(settings: SalesforceSettings) -> dict[str, Any]:
    """simple-salesforce's ``SalesforceLogin`` arguments for each way of logging in."""
    if settings.auth == "password":
        return {
            "username": settings.username,
            "password": _secret(settings.password),
            "security_token": _secret(settings.security_token),
            "domain": settings.login_domain,
        }
    if settings.auth == "client_credentials":
        assert settings.instance_url is not None
        return {
            "consumer_key": settings.client_id,
            "consumer_secret": _secret(settings.client_secret),
            "domain": _host(settings.instance_url).removesuffix(".salesforce.com"),
        }
    return {
        "username": settings.username,
        "consumer_key": settings.client_id,
        "privatekey": _secret(settings.private_key),
        "domain": settings.login_domain,
    }
