"""Marketing email opens and clicks as HubSpot serves them: the email events API (v1).

``GET /email/public/v1/events`` (no method in hubspot-api-client; scope ``content``) answers

    {"hasMore": true, "offset": "<opaque>", "events": [
        {"id": "...", "created": 1767225600000, "type": "CLICK", "recipient": "ana@acme.com",
         "emailCampaignId": 202611, "portalId": 5000001, "appId": 113, "appName": "Batch",
         "url": "https://www.example.com/newsletter?utm_medium=email...", ...}]}

filtered by ``eventType`` (OPEN, CLICK, ...), ``recipient``, ``campaignId`` and
``startTimestamp`` / ``endTimestamp`` (epoch milliseconds, inclusive), ``limit`` at most 1,000
a page, the next page asked with the ``offset`` of the last. HubSpot documents no order; the
sandbox answers newest first, so a client that relies on an order is caught. Every tier serves it
(https://developers.hubspot.com/docs/api-reference/legacy/email-analytics-v1/guide). Events
belong to a recipient's email address, not to a contact: a touch of a person without an email,
or one seen only at an account, is not here. Newsletters are monthly campaigns.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import polars as pl

from sandbox.http import Request, Response, Route
from sandbox.hubspot.errors import HubSpotError
from sandbox.hubspot.ids import event_uuid
from sandbox.hubspot.touches import MARKETING_EMAIL, touches
from sandbox.org import Org

__all__ = ["EMAIL_EVENT_TYPES", "MAX_EMAIL_EVENTS_PAGE", "EmailEventRoutes", "build_email_events"]

MAX_EMAIL_EVENTS_PAGE = 1000
_DEFAULT_PAGE = 100
EMAIL_EVENT_TYPES = {"email_open": "OPEN", "email_click": "CLICK"}
_APP = {"appId": 113, "appName": "Batch"}  # HubSpot's app id and name of batch marketing email
_PORTAL = 5000001  # the sandbox portal's id (HubSpot's portalId / Hub ID)


def build_email_events(org: Org, merges: pl.DataFrame, convention: str = "a") -> pl.DataFrame:
    """Every marketing email open and click sent to a known person's address, newest first,
    links in the site map of ``convention``."""
    emails = org.people.select(survivor_id="person_id", recipient="email")
    campaign = pl.col("occurred_at").dt.year() * 100 + pl.col("occurred_at").dt.month()
    tracking = "utm_campaign=newsletter&utm_medium=email&utm_source=hs_email&_hsmi="
    link = pl.col("hs_url").cast(pl.String)
    joiner = pl.when(link.str.contains("?", literal=True)).then(pl.lit("&")).otherwise(pl.lit("?"))
    return (
        touches(org, merges, convention)
        .filter(pl.col("type").is_in(MARKETING_EMAIL))
        .join(emails, on="survivor_id")
        .filter(pl.col("recipient").is_not_null())
        .select(
            "activity_id",
            created=pl.col("occurred_at").dt.epoch("ms"),
            type=pl.col("type").replace_strict(EMAIL_EVENT_TYPES),
            recipient=pl.col("recipient"),
            campaign=campaign.cast(pl.Int64),
            url=pl.when(pl.col("hs_url").is_not_null()).then(
                link + joiner + pl.lit(tracking) + campaign.cast(pl.String)
            ),
        )
        .sort("created", "activity_id", descending=True)
    )


class EmailEventRoutes:
    """Handlers of /email/public/v1/events."""

    def __init__(self, events: pl.DataFrame) -> None:
        self.events = events

    def routes(self) -> list[Route]:
        """The event log query."""
        return [Route("GET", r"/email/public/v1/events/?", "email/events", self.list_page)]

    def list_page(self, request: Request) -> Response:
        """A page of the events matching the filters, and whether more follow."""
        limit = _number(request.arg("limit"), "limit") or _DEFAULT_PAGE
        if not 0 < limit <= MAX_EMAIL_EVENTS_PAGE:
            raise HubSpotError(
                400, f"limit must be between 1 and {MAX_EMAIL_EVENTS_PAGE}, got {limit}"
            )
        start = _position(request.arg("offset"))
        matching = self.events.filter(_where(request))
        rows = matching.slice(start, limit)
        body: dict[str, Any] = {
            "hasMore": start + limit < matching.height,
            "offset": _token(start + rows.height),
            "events": [
                _event(row, event_id, sender)
                for row, event_id, sender in zip(
                    rows.iter_rows(named=True),
                    event_uuid(rows["activity_id"].to_numpy(), "9000"),
                    event_uuid(rows["activity_id"].to_numpy(), "a000"),
                    strict=True,
                )
            ],
        }
        return Response(200, json.dumps(body).encode())


def _event(row: dict[str, Any], event_id: str, sender: str) -> dict[str, Any]:
    """One event as HubSpot writes it (a click carries the link's URL); ``sender``: the id of
    the SENT event it follows."""
    event = {
        **_APP,
        "created": row["created"],
        "emailCampaignId": row["campaign"],
        "id": event_id,
        "portalId": _PORTAL,
        "recipient": row["recipient"],
        "type": row["type"],
        "sentBy": {"id": sender},
        "filteredEvent": False,
        "deviceType": "COMPUTER",
    }
    return event | ({"url": row["url"], "referer": ""} if row["url"] else {})


def _where(request: Request) -> pl.Expr:
    """eventType, recipient, campaignId and the inclusive time bounds."""
    expr = pl.lit(True)
    if request.arg("eventType"):
        expr &= pl.col("type") == str(request.arg("eventType")).upper()
    if request.arg("recipient"):
        expr &= pl.col("recipient").str.to_lowercase() == str(request.arg("recipient")).lower()
    for name, column, compare in (
        ("campaignId", "campaign", "eq"),
        ("startTimestamp", "created", "ge"),
        ("endTimestamp", "created", "le"),
    ):
        value = _number(request.arg(name), name)
        if value is not None:
            expr &= getattr(pl.col(column), compare)(value)
    return expr


def _number(text: str | None, name: str) -> int | None:
    """A whole-number query argument (400 as HubSpot answers one it cannot read)."""
    if not text:
        return None
    try:
        return int(text)
    except ValueError as error:
        raise HubSpotError(400, f"Invalid {name}: {text!r}") from error


def _position(text: str | None) -> int:
    """The position an ``offset`` names (opaque to clients, like HubSpot's)."""
    if not text:
        return 0
    try:
        return int(base64.urlsafe_b64decode(text.encode()).decode())
    except (ValueError, binascii.Error) as error:
        raise HubSpotError(400, f"Invalid offset {text!r}") from error


def _token(position: int) -> str:
    return base64.urlsafe_b64encode(str(position).encode()).decode()
