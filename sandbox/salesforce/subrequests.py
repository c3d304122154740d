"""Composite: up to 25 REST subrequests in one call, which counts as one API request.

``POST /composite`` takes ``{"allOrNone", "compositeRequest": [{"method", "url",
"referenceId", "httpHeaders"?}]}`` and answers 200 ``{"compositeResponse": [{"body",
"httpHeaders", "httpStatusCode", "referenceId"}]}`` in request order; a failed subrequest
carries its usual error body (``[{"errorCode", "message"}]``). With ``allOrNone`` one failure
stops the run and every other subrequest answers 400 PROCESSING_HALTED. More than 25
subrequests, or more than 5 query operations (query, queryAll and their next pages), refuse the
whole request: one LIMIT_EXCEEDED result without a referenceId.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_subrequest_result.htm

Subrequests run through the dialect's own routes, in order, without another log entry or API
count. The sandbox runs reads only (sObject describe and records, describeGlobal, queries):
Salesforce also runs writes, which the sandbox cannot roll back under ``allOrNone``, so it
answers a write subrequest 405 METHOD_NOT_ALLOWED rather than pretend.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.http import Request, Response, Route, json_response
from sandbox.salesforce.errors import NOT_FOUND_MESSAGE, SalesforceError
from sandbox.salesforce.routing import api_route, json_body

__all__ = ["MAX_QUERIES", "MAX_SUBREQUESTS", "CompositeService"]

MAX_SUBREQUESTS = 25
MAX_QUERIES = 5
_QUERIES = frozenset({"query", "queryAll"})
# the endpoints a subrequest may reach: sObject resources, describeGlobal and the queries
_SERVED = frozenset({"sobjects", "sobjects/describe", "describeGlobal", *_QUERIES})
_HALTED = (
    "PROCESSING_HALTED",
    "The transaction was rolled back since another operation in the same transaction failed.",
)
# the answer Salesforce gives past a limit (observed: guardian/support-service-lambdas#766)
_TOO_MANY = "The request can\u2019t contain more than {n} {what}."


class CompositeService:
    """``/composite`` over the routes it may dispatch subrequests to."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = [route for route in routes if route.endpoint in _SERVED]

    def routes(self) -> list[Route]:
        """POST runs the subrequests."""
        return [api_route("POST", r"/composite/?", "composite", self.run)]

    def run(self, request: Request) -> Response:
        """Every subrequest's result, in order; a limit refuses them all."""
        body = json_body(request)
        subrequests = _subrequests(body)
        routed = [self._route(sub) for sub in subrequests]
        queries = sum(found is not None and found[0].endpoint in _QUERIES for found in routed)
        if len(subrequests) > MAX_SUBREQUESTS:
            return _refused(_TOO_MANY.format(n=MAX_SUBREQUESTS, what="operations"))
        if queries > MAX_QUERIES:
            return _refused(_TOO_MANY.format(n=MAX_QUERIES, what="query operations"))
        all_or_none = bool(body.get("allOrNone"))
        results: list[dict[str, Any]] = []
        for sub, found in zip(subrequests, routed, strict=True):
            results.append(_result(sub, self._answer(sub, request, found)))
            if all_or_none and results[-1]["httpStatusCode"] >= 400:
                return _halted(subrequests, len(results) - 1, results[-1])
        return json_response(200, {"compositeResponse": results})

    def _route(self, sub: Mapping[str, Any]) -> tuple[Route, Mapping[str, str]] | None:
        """The route a subrequest's method and path name (None: not one composite serves)."""
        path = urlsplit(str(sub.get("url", ""))).path
        for route in self._routes:
            params = route.match(str(sub.get("method", "")).upper(), path)
            if params is not None:
                return route, params
        return None

    def _answer(
        self,
        sub: Mapping[str, Any],
        outer: Request,
        found: tuple[Route, Mapping[str, str]] | None,
    ) -> Response:
        """One subrequest's response from its route, with the outer request's session."""
        method = str(sub.get("method", "")).upper()
        if method != "GET":
            message = f"HTTP Method '{method}' not allowed. Allowed are GET"
            return SalesforceError("METHOD_NOT_ALLOWED", message).response()
        if found is None:
            return SalesforceError("NOT_FOUND", NOT_FOUND_MESSAGE).response()
        route, params = found
        url = urlsplit(str(sub["url"]))
        headers = {**outer.headers, **{k.lower(): str(v) for k, v in _headers(sub).items()}}
        inner = Request("GET", url.path, parse_qs(url.query), headers, b"", params)
        return route.handler(inner)


def _subrequests(body: Any) -> list[Mapping[str, Any]]:
    """The body's ``compositeRequest``, each a JSON object with a method, url and referenceId."""
    subrequests = body.get("compositeRequest") if isinstance(body, dict) else None
    if not isinstance(subrequests, list) or not all(
        isinstance(sub, dict) and {"method", "url", "referenceId"} <= set(sub)
        for sub in subrequests
    ):
        raise SalesforceError(
            "JSON_PARSER_ERROR", 'Expected {"compositeRequest": [{"method", "url", "referenceId"}]}'
        )
    return subrequests


def _headers(sub: Mapping[str, Any]) -> Mapping[str, Any]:
    headers = sub.get("httpHeaders")
    return headers if isinstance(headers, dict) else {}


def _result(sub: Mapping[str, Any], response: Response) -> dict[str, Any]:
    """A Composite Subrequest Result; composite sends no Content-Length for a subrequest."""
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return {
        "body": json.loads(response.body) if response.body else None,
        "httpHeaders": headers,
        "httpStatusCode": response.status,
        "referenceId": sub["referenceId"],
    }


def _halted(subrequests: list[Mapping[str, Any]], failed: int, failure: dict[str, Any]) -> Response:
    """Under allOrNone: the first failure stops the run; every other subrequest, before or
    after it, answers 400 PROCESSING_HALTED."""
    code, message = _HALTED
    halted = {"body": [{"errorCode": code, "message": message}], "httpHeaders": {}}
    results = [
        failure
        if i == failed
        else {**halted, "httpStatusCode": 400, "referenceId": sub["referenceId"]}
        for i, sub in enumerate(subrequests)
    ]
    return json_response(200, {"compositeResponse": results})


def _refused(message: str) -> Response:
    """A whole request past a limit: one result, no referenceId."""
    result = {
        "body": [{"errorCode": "LIMIT_EXCEEDED", "message": message}],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": None,
    }
    return json_response(200, {"compositeResponse": [result]})
