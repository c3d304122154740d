"""Activity added to a served org through the sandbox's own admin surface.

Neither CRM's API lets an integration create a page view or a form submission (HubSpot records
them from its tracking code; in Salesforce marketing automation logs them as Tasks with audit
fields set), so the sandbox takes them at ``POST /__sandbox/activities``, behind its token like
the other admin routes. Each dialect then holds them as its CRM does, so the next incremental
pull returns them as the real API would return such records: Salesforce a Task (typed and
worded in the org's convention, ``CreatedDate`` the visit, ``SystemModstamp`` the moment it was
added), HubSpot an event of the events API (``occurredAt`` the visit). They are kept with the
org's state like every other write.

    add_activities(url, token, [NewActivity("pricing_page", at, account_id="001...")])

Body: ``{"activities": [{"type": "pricing_page", "occurred_at": "2026-10-31T23:50:00Z",
"account_id": "..."} | {..., "person_id": "...", "topic": "security"}]}``; the answer ``201
{"ids": [...]}`` names each record created, in order. Anything wrong (an unknown type, a record
that does not exist, a naive time) is refused whole with a 400 or 404 that says what.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from sandbox.http import ADMIN_PREFIX, Request, Response, Route, json_response
from sandbox.vocab import ACTIVITY_TYPES, TOPICS

__all__ = [
    "ACTIVITIES_PATH",
    "WEB_TOUCHES",
    "AdminError",
    "NewActivity",
    "activity_route",
    "add_activities",
    "parse_activities",
    "unknown",
]

ACTIVITIES_PATH = f"{ADMIN_PREFIX}/activities"
# what a buyer does on the seller's site: the touches no CRM API can create
WEB_TOUCHES = (
    "demo_request",
    "pricing_page",
    "trial_signup",
    "contact_sales",
    "webinar",
    "case_study",
    "product_page",
    "whitepaper",
    "blog_visit",
)
_TOPICAL = {t.key for t in ACTIVITY_TYPES if t.has_topic}
_MOST = 10_000  # activities one request may add
_SECONDS = 30.0


class AdminError(Exception):
    """A request to the admin route that cannot be served: ``status`` and what is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class NewActivity:
    """One touch to add: on an account (the CRM's account / company id) or a person (a lead's
    or contact's id), of a `WEB_TOUCHES` type, at an aware time."""

    type: str
    occurred_at: datetime
    account_id: str | None = None
    person_id: str | None = None
    topic: str | None = None

    def body(self) -> dict[str, Any]:
        """The JSON the admin route reads."""
        fields = {"account_id": self.account_id, "person_id": self.person_id, "topic": self.topic}
        when = {"type": self.type, "occurred_at": self.occurred_at.isoformat()}
        return when | {key: value for key, value in fields.items() if value is not None}


def parse_activities(body: Any) -> list[NewActivity]:
    """The activities of a request body, or `AdminError` (400) naming the first problem."""
    items = body.get("activities") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise AdminError(400, 'the body must be {"activities": [...]} with at least one')
    if len(items) > _MOST:
        raise AdminError(400, f"at most {_MOST:,} activities a request, got {len(items):,}")
    return [_activity(number, item) for number, item in enumerate(items)]


def _activity(number: int, item: Any) -> NewActivity:
    """One activity of the body, checked."""
    where = f"activities[{number}]"
    if not isinstance(item, dict):
        raise AdminError(400, f"{where} must be an object")
    kind, topic = item.get("type"), item.get("topic")
    if kind not in WEB_TOUCHES:
        raise AdminError(400, f"{where}.type must be one of {', '.join(WEB_TOUCHES)}, got {kind!r}")
    if topic is not None and (kind not in _TOPICAL or topic not in TOPICS):
        allowed = f"one of {', '.join(TOPICS)}" if kind in _TOPICAL else "absent"
        raise AdminError(400, f"{where}.topic must be {allowed} for {kind}, got {topic!r}")
    account, person = item.get("account_id"), item.get("person_id")
    if (account is None) == (person is None) or not isinstance(account or person, str):
        raise AdminError(400, f"{where} needs exactly one of account_id and person_id (text)")
    return NewActivity(kind, _aware(where, item.get("occurred_at")), account, person, topic)


def _aware(where: str, text: Any) -> datetime:
    """An ISO 8601 time with its offset."""
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise AdminError(400, f"{where}.occurred_at must be ISO 8601 with an offset, got {text!r}")
    return moment


def activity_route(add: Callable[[list[NewActivity]], list[str]]) -> Route:
    """``POST /__sandbox/activities`` over a dialect's ``add`` (the server checks the token)."""

    def handler(request: Request) -> Response:
        try:
            ids = add(parse_activities(request.json()))
        except AdminError as error:
            return json_response(error.status, {"message": str(error)})
        except ValueError:
            return json_response(400, {"message": "the body must be JSON"})
        return json_response(201, {"ids": ids})

    return Route("POST", ACTIVITIES_PATH, "admin/activities", handler)


def unknown(kind: str, ids: Iterable[str]) -> AdminError:
    """The 404 for records the org does not hold (or holds deleted)."""
    listed = ", ".join(sorted(set(ids))[:5])
    return AdminError(404, f"no live {kind} {listed} in this org")


def add_activities(
    url: str, token: str, activities: Sequence[NewActivity], *, timeout: float = _SECONDS
) -> list[str]:
    """Add activities to the sandbox at ``url`` (its admin token); the ids of the records made.

    Raises `AdminError` with the sandbox's own words when it refuses them."""
    response = requests.post(
        f"{url}{ACTIVITIES_PATH}",
        json={"activities": [activity.body() for activity in activities]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=timeout,
    )
    if response.status_code != 201:
        raise AdminError(response.status_code, _message(response))
    ids: list[str] = response.json()["ids"]
    return ids


def _message(response: requests.Response) -> str:
    """What the sandbox said, else the status."""
    try:
        said: Mapping[str, Any] = response.json()
        return str(said["message"])
    except (ValueError, KeyError, TypeError):
        return f"the sandbox answered {response.status_code}"
