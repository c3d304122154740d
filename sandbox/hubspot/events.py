"""Web and marketing touches as HubSpot exposes them: the event analytics API (events v3).

``GET /events/v3/events/`` (``client.events.events_api.get_page``) lists event completions of
contacts and companies, filtered by objectType, objectId, eventType and occurredAfter /
occurredBefore (both exclusive), oldest first (``sort=DESCENDING`` for newest first), 100 a page.
A touch by a known person is the contact's event (the merge survivor's); a touch seen only at an
account is the company's. Rep calls, emails and meetings are CRM objects instead (objects.py).

Marketing email opens and clicks are not events here: HubSpot's events API never includes
marketing email events (they come from the email events API, email_events.py). Below
Enterprise the portal refuses the events API with HubSpot's 403 (the tier's ``events_api``).
Touches and their (eventType, ``hs_url``, ``hs_title``) are rendered from touches.py, in the
portal's convention.

Event ids are UUID-shaped strings ending in the activity id.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from datetime import UTC, datetime

import numpy as np
import polars as pl

from sandbox.http import Request, Response, Route
from sandbox.hubspot.errors import HubSpotError
from sandbox.hubspot.ids import event_number, event_uuid, hubspot_id
from sandbox.hubspot.render import page_body
from sandbox.hubspot.responses import link_to
from sandbox.hubspot.touches import MARKETING_EMAIL, WEB_TOUCHES, touches
from sandbox.hubspot.values import TIMESTAMP_FORMAT
from sandbox.org import Org

__all__ = [
    "EVENT_TYPES",
    "MAX_EVENTS_PAGE",
    "NOT_ENTERPRISE",
    "EventRoutes",
    "build_events",
]

MAX_EVENTS_PAGE = 100
EVENT_TYPES = sorted({t.event_type for key, t in WEB_TOUCHES.items() if key not in MARKETING_EMAIL})
# HubSpot's answer to the events API on a portal without an Enterprise subscription, as a
# Free / Professional portal sends it (https://github.com/PipedreamHQ/pipedream/issues/11810;
# "doesn't the have" is HubSpot's own wording)
NOT_ENTERPRISE = (
    "Your app doesn't the have scopes needed to make this call. Do you have access to the "
    "'business-intelligence' scope?  Missing auth details: event-detail-read,"
    "web-analytics-api-access"
)
_OBJECT_TYPES = {
    "contact": "CONTACT",
    "contacts": "CONTACT",
    "0-1": "CONTACT",
    "company": "COMPANY",
    "companies": "COMPANY",
    "0-2": "COMPANY",
}


def build_events(org: Org, merges: pl.DataFrame, convention: str = "a") -> pl.DataFrame:
    """Every web touch of the org as an event, oldest first (marketing email is not one), with
    the site map of ``convention``."""
    joined = touches(org, merges, convention).filter(~pl.col("type").is_in(MARKETING_EMAIL))
    by_person = pl.col("survivor_id").is_not_null()
    return joined.select(
        "activity_id",
        "event_type",
        "hs_url",
        "hs_title",
        _us=pl.col("occurred_at").dt.epoch("us"),
        occurred_at=pl.col("occurred_at"),
        object_type=pl.when(by_person)
        .then(pl.lit("CONTACT"))
        .otherwise(pl.lit("COMPANY"))
        .cast(pl.Categorical),
        object_id=pl.when(by_person)
        .then(hubspot_id("contacts", "survivor_id"))
        .otherwise(hubspot_id("companies", "account_id")),
    ).sort("_us", "activity_id")


def _fragments(rows: pl.DataFrame) -> list[str]:
    """Events as ``ExternalUnifiedEvent`` JSON objects."""
    properties = pl.struct(pl.col("hs_url").cast(pl.String), pl.col("hs_title").cast(pl.String))
    parts = [
        pl.lit('{"objectType":"'),
        pl.col("object_type").cast(pl.String),
        pl.lit('","objectId":"'),
        pl.col("object_id").cast(pl.String),
        pl.lit('","eventType":"'),
        pl.col("event_type").cast(pl.String),
        pl.lit('","occurredAt":"'),
        pl.col("occurred_at").dt.strftime(TIMESTAMP_FORMAT),
        pl.lit('","id":"'),
        pl.col("_id"),
        pl.lit('","properties":'),
        properties.struct.json_encode(),
        pl.lit("}"),
    ]
    ids = pl.Series("_id", event_uuid(rows["activity_id"].to_numpy()), dtype=pl.String)
    return rows.with_columns(ids).select(pl.concat_str(parts).alias("json"))["json"].to_list()


def _cursor(text: str | None) -> int:
    """The position an ``after`` token names (opaque to clients, like HubSpot's)."""
    if not text:
        return 0
    try:
        return int(base64.urlsafe_b64decode(text.encode()).decode())
    except (ValueError, binascii.Error) as error:
        raise HubSpotError(400, f"Invalid paging cursor {text!r}") from error


def _token(position: int) -> str:
    return base64.urlsafe_b64encode(str(position).encode()).decode()


def _micros(text: str | None) -> int | None:
    """An ISO 8601 or epoch-milliseconds time argument as epoch microseconds."""
    if not text:
        return None
    try:
        if text.isdigit():
            return int(text) * 1000
        parsed = datetime.fromisoformat(text.replace(" ", "+").replace("Z", "+00:00"))
    except ValueError as error:
        raise HubSpotError(400, f"Invalid datetime {text!r}") from error
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1_000_000)


class EventRoutes:
    """Handlers of /events/v3/events/."""

    def __init__(self, events: pl.DataFrame, served: bool = True) -> None:
        self.ascending = events
        self.descending = events.reverse()
        self.served = served  # False below Enterprise: every page is refused with a 403
        self.added = events.clear()  # events added through the admin route (kept with the org)
        self._lock = threading.Lock()

    def add(self, events: pl.DataFrame) -> None:
        """Take new events (`build_events`' columns) into the lists, in time order."""
        with self._lock:
            events = events.select(
                pl.col(name).cast(dtype) for name, dtype in self.added.schema.items()
            )
            self.added = pl.concat([self.added, events])
            merged = pl.concat([self.ascending, events]).sort("_us", "activity_id")
            self.ascending, self.descending = merged, merged.reverse()

    def next_id(self, first_free: int) -> int:
        """The activity id the next added event takes (after every org and added one)."""
        added = self.added["activity_id"].max()
        return max(first_free, int(added) + 1) if added is not None else first_free

    def routes(self) -> list[Route]:
        """Event completions and the event type names."""
        return [
            Route("GET", r"/events/v3/events/?", "events", self.list_page),
            Route("GET", r"/events/v3/events/event-types", "events/event-types", self.types),
        ]

    def types(self, request: Request) -> Response:
        """The event type names visible to the token."""
        return Response(200, json.dumps({"eventTypes": EVENT_TYPES}).encode())

    def list_page(self, request: Request) -> Response:
        """A page of event completions matching the filters (403 below Enterprise)."""
        if not self.served:
            raise HubSpotError(
                403,
                NOT_ENTERPRISE,
                category="MISSING_SCOPES",
                errors=[
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": ["business-intelligence"]},
                    }
                ],
            )
        descending = "DESCENDING" in [s.upper() for s in request.query.get("sort", [])]
        frame = self.descending if descending else self.ascending
        start, end = self._bounds(frame, request, descending)
        limit = int(request.arg("limit") or MAX_EVENTS_PAGE)
        if not 0 < limit <= MAX_EVENTS_PAGE:
            raise HubSpotError(400, f"limit must be between 1 and {MAX_EVENTS_PAGE}, got {limit}")
        rows, next_position = _scan(
            frame, max(start, _cursor(request.arg("after"))), end, limit, self._where(request)
        )
        after = None if next_position is None else _token(next_position)
        return Response(
            200,
            page_body(
                "[" + ",".join(_fragments(rows)) + "]",
                after,
                link_to(request, "/events/v3/events/"),
            ),
        )

    def _bounds(self, frame: pl.DataFrame, request: Request, descending: bool) -> tuple[int, int]:
        """The rows between occurredAfter and occurredBefore (both exclusive)."""
        stamps = frame["_us"].to_numpy()
        after, before = (
            _micros(request.arg("occurredAfter")),
            _micros(request.arg("occurredBefore")),
        )
        if descending:
            keys = -stamps
            start = np.searchsorted(keys, -before, "right") if before is not None else 0
            end = np.searchsorted(keys, -after, "left") if after is not None else len(keys)
        else:
            start = np.searchsorted(stamps, after, "right") if after is not None else 0
            end = np.searchsorted(stamps, before, "left") if before is not None else len(stamps)
        return int(start), int(end)

    def _where(self, request: Request) -> pl.Expr:
        """objectType, objectId, eventType and id filters."""
        expr = pl.lit(True)
        object_type = request.arg("objectType")
        if object_type:
            if object_type.lower() not in _OBJECT_TYPES:
                raise HubSpotError(400, f"Unknown objectType {object_type!r}")
            expr = expr & (pl.col("object_type") == _OBJECT_TYPES[object_type.lower()])
        if request.arg("objectId"):
            if not object_type:
                raise HubSpotError(400, "objectId needs objectType")
            expr = expr & (pl.col("object_id") == int(request.arg("objectId") or 0))
        if request.arg("eventType"):
            expr = expr & (pl.col("event_type") == request.arg("eventType"))
        ids = [n for n in map(event_number, request.query.get("id", [])) if n is not None]
        if request.query.get("id"):
            expr = expr & pl.col("activity_id").is_in(ids)
        return expr


def _scan(
    frame: pl.DataFrame, start: int, end: int, limit: int, where: pl.Expr
) -> tuple[pl.DataFrame, int | None]:
    """Up to ``limit`` matching rows from ``start`` (before ``end``), and the next page's start."""
    window = limit + 1
    while True:
        chunk = (
            frame.slice(start, min(window, max(end - start, 0)))
            .with_row_index("_at", start)
            .filter(where)
        )
        if chunk.height > limit or start + window >= end:
            break
        window *= 4
    next_position = int(chunk["_at"][limit]) if chunk.height > limit else None
    return chunk.head(limit), next_position
