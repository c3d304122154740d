"""HubSpot's error bodies: one exception for handlers; status codes map to categories in one dict.

    {"status": "error", "message": "...", "correlationId": "...", "category": "VALIDATION_ERROR"}

429s carry ``errorType: RATE_LIMIT`` and the ``policyName`` that was hit, as documented at
https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sandbox.http import Response

__all__ = [
    "AUTH_MISSING",
    "RATE_LIMIT_MESSAGES",
    "STATUS_CATEGORIES",
    "HubSpotError",
    "correlation_id",
    "error_response",
    "lock_error",
    "locked_error",
    "rate_limit_response",
    "record_error",
]

STATUS_CATEGORIES = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    429: "RATE_LIMITS",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}
AUTH_MISSING = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
RATE_LIMIT_MESSAGES = {
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    "SECONDLY": "You have reached your secondly limit.",
    "DAILY": "You have reached your daily limit.",
}


class HubSpotError(Exception):
    """A request HubSpot refuses; rendered as its JSON error body with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        category: str | None = None,
        sub_category: str | None = None,
        context: Mapping[str, Sequence[str]] | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category or STATUS_CATEGORIES.get(status, "INTERNAL_ERROR")
        self.sub_category = sub_category
        self.context = context
        self.errors = errors

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        body: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id(),
            "category": self.category,
        }
        if self.sub_category:
            body["subCategory"] = self.sub_category
        if self.context:
            body["context"] = {key: list(values) for key, values in self.context.items()}
        if self.errors:
            body["errors"] = list(self.errors)
        return body


def correlation_id() -> str:
    """A fresh correlation id, as every HubSpot response carries."""
    return str(uuid.uuid4())


def error_response(error: HubSpotError, headers: Mapping[str, str] | None = None) -> Response:
    """The HTTP response of an error."""
    return Response(error.status, json.dumps(error.body()).encode(), dict(headers or {}))


def rate_limit_response(policy: str, headers: Mapping[str, str] | None = None) -> Response:
    """A 429 in HubSpot's rate-limit shape for ``policy`` (TEN_SECONDLY_ROLLING, DAILY, ...)."""
    body = {
        "status": "error",
        "message": RATE_LIMIT_MESSAGES[policy],
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy,
        "requestId": correlation_id(),
    }
    return Response(429, json.dumps(body).encode(), dict(headers or {}))


def record_error(
    category: str,
    message: str,
    context: Mapping[str, Sequence[str]],
    sub_category: str | None = None,
) -> dict[str, Any]:
    """One per-record error of a 207 batch response (the client's ``StandardError``)."""
    error: dict[str, Any] = {
        "status": "error",
        "category": category,
        "message": message,
        "context": {key: list(values) for key, values in context.items()},
        "errors": [],
        "links": {},
    }
    if sub_category:
        error["subCategory"] = sub_category
    return error


def locked_error(record_id: int) -> HubSpotError:
    """A write that hit an injected lock: a retriable 409 (HubSpot itself has no row locks)."""
    return HubSpotError(
        409,
        f"Record {record_id} was modified by another request at the same time; retry the write.",
        category="CONFLICT",
        sub_category="CONCURRENT_MODIFICATION",
        context={"ids": [str(record_id)]},
    )


def lock_error(record_id: int) -> dict[str, Any]:
    """The per-record error of a batch write that hit an injected lock."""
    error = locked_error(record_id)
    return record_error(error.category, error.message, error.context or {}, error.sub_category)
