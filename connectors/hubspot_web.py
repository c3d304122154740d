"""Web and marketing email touches of a HubSpot portal, whatever its tier, as events API records.

Where each touch comes from:

| tier                    | page views, form submissions           | marketing email opens, clicks |
|-------------------------|----------------------------------------|-------------------------------|
| Enterprise              | events API (``/events/v3/events``)     | email events API              |
| Starter, Professional   | contacts' analytics property history   | email events API              |

The events API is Enterprise only and never includes marketing email events
(https://developers.hubspot.com/docs/api-reference/latest/events/guide); the email events API
(``/email/public/v1/events``) serves every tier. Every touch is handed on in the events API's
shape (eventType, occurredAt, objectType/objectId, properties.hs_url / hs_title), so the same
activity rules (`connectors.rules`) type all of them:

* a value of ``hs_analytics_last_url`` is an ``e_visited_page`` of that URL;
* a value of ``recent_conversion_event_name`` is an ``e_submitted_form`` whose page is the value
  ``hs_analytics_last_url`` took at the same time (that value is the form's page, not a view);
* an email event OPEN / CLICK is ``e_opened_marketing_email`` / ``e_clicked_marketing_email``
  (a click with the link's URL), for the contact whose email is the recipient's.

What property history loses against the events API: only the values a portal keeps (the last N
of each property; touches before them are gone), touches seen only at a company, page titles
(``hs_title`` of a page view), a form whose page view was recorded at another instant, and
contacts in the recycle bin. Email events of an address that is no contact are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from connectors.streams import stamp

__all__ = [
    "EMAIL_KINDS",
    "EMAIL_SCHEMA",
    "HISTORY_PAGE",
    "HISTORY_PROPERTIES",
    "email_touches",
    "history_events",
    "millis_texts",
    "resume_token",
    "resumed",
    "touch_columns",
    "touch_rows",
]

_MS = timedelta(milliseconds=1)
# the epoch milliseconds of datetime's first and last instants
_FIRST_MS = (datetime.min.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // _MS
_LAST_MS = (datetime.max.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // _MS

HISTORY_PAGE = 50  # HubSpot's most records a page when propertiesWithHistory is asked
LAST_URL = "hs_analytics_last_url"
CONVERSION = "recent_conversion_event_name"
HISTORY_PROPERTIES = (LAST_URL, CONVERSION)
# email events API type -> the events API's eventType of the same touch
EMAIL_KINDS = {"OPEN": "e_opened_marketing_email", "CLICK": "e_clicked_marketing_email"}
# what `email_touches` reads of an email event, by polars from the answers' text
EMAIL_SCHEMA = {
    "id": pl.String,
    "type": pl.String,
    "created": pl.Int64,
    "recipient": pl.String,
    "url": pl.String,
}
_STAMP_TEXT = "%Y-%m-%dT%H:%M:%S%.3fZ"  # the events API's times, as `millis_texts` writes them


def _event(
    record_id: str, kind: str, at: Any, contact: str, url: Any, title: Any = None
) -> dict[str, Any]:
    """A touch in the events API's shape."""
    return {
        "id": record_id,
        "eventType": kind,
        "occurredAt": at,
        "objectType": "CONTACT",
        "objectId": contact,
        "properties": {"hs_url": url, "hs_title": title},
    }


def history_events(contact: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The page views and form submissions a contact's analytics property history holds."""
    history = contact.get("propertiesWithHistory") or {}
    views = history.get(LAST_URL) or []
    forms = history.get(CONVERSION) or []
    page_at = {view["timestamp"]: view["value"] for view in views}
    contact_id = str(contact["id"])
    for form in forms:
        at = form["timestamp"]
        record_id = f"{contact_id}:form:{at}"
        yield _event(record_id, "e_submitted_form", at, contact_id, page_at.get(at), form["value"])
    converted = {form["timestamp"] for form in forms}
    for view in views:
        if view["timestamp"] not in converted:
            at = view["timestamp"]
            yield _event(f"{contact_id}:view:{at}", "e_visited_page", at, contact_id, view["value"])


def touch_columns(
    *,
    ids: Sequence[Any],
    kinds: Sequence[Any],
    times: Sequence[Any],
    contacts: Sequence[Any],
    urls: Sequence[Any],
) -> dict[str, Sequence[Any]]:
    """Touches of contacts in the events API's shape (`_event`'s, without a title) as the values
    of each of its fields, by field as `connectors.page_reader` names them (a property's under
    ``properties.``): lists, or polars series as given."""
    return {
        "id": ids,
        "eventType": kinds,
        "occurredAt": times,
        "objectType": ["CONTACT"] * len(ids),
        "objectId": contacts,
        "properties.hs_url": urls,
        "properties.hs_title": [None] * len(ids),
    }


def touch_rows(columns: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """`touch_columns` as the events API's rows (`_event`'s), one a touch."""
    return [
        _event(record_id, kind, at, contact, url, title)
        for record_id, kind, at, contact, url, title in zip(
            columns["id"],
            columns["eventType"],
            columns["occurredAt"],
            columns["objectId"],
            columns["properties.hs_url"],
            columns["properties.hs_title"],
            strict=True,
        )
    ]


def email_touches(events: pl.DataFrame) -> pl.DataFrame | None:
    """The opens and clicks among email ``events`` (`EMAIL_SCHEMA`'s columns) as `touch_columns`
    has them, but for the contact: id, kind, time (`millis_texts`), URL, and the recipient in
    lower case (to be joined to a contact). None where one is not what the JSON rows read
    alike: no id or no time, a time past datetime's years, or a recipient not in ASCII (Python's
    lower case and polars' part ways past it: a Greek final sigma)."""
    wanted = events.filter(pl.col("type").is_in(list(EMAIL_KINDS)))
    created = wanted["created"]
    if wanted.height and (
        wanted["id"].null_count()
        or created.null_count()
        or not _FIRST_MS <= created.min() <= created.max() <= _LAST_MS  # type: ignore[operator]
        or wanted["recipient"].str.contains(r"[^\x00-\x7f]").any()
    ):
        return None
    return wanted.select(
        pl.col("id"),
        pl.col("type").replace_strict(EMAIL_KINDS, return_dtype=pl.String).alias("eventType"),
        pl.col("created")
        .cast(pl.Datetime("ms", "UTC"))
        .dt.strftime(_STAMP_TEXT)
        .alias("occurredAt"),
        pl.col("recipient").fill_null("").str.to_lowercase(),
        pl.col("url"),
    )


def millis_texts(values: Sequence[Any]) -> list[Any]:
    """Email events' times (epoch milliseconds) as the events API writes a time: ISO 8601 in
    UTC with milliseconds, which reads to the same instant exactly and a page of which reads a
    column at a time; a value that is no integer, or one past datetime's years, as it came."""
    whole = [v if type(v) is int and _FIRST_MS <= v <= _LAST_MS else None for v in values]
    texts = pl.Series(whole, dtype=pl.Int64).cast(pl.Datetime("ms", "UTC"))
    written = texts.dt.strftime(_STAMP_TEXT).to_list()
    return [v if w is None else text for v, w, text in zip(values, whole, written, strict=True)]


def resume_token(position: str, latest: datetime | None) -> str:
    """A stopped read's place in its source, and the latest time delivered before it."""
    return f"{position}@{'' if latest is None else int(latest.timestamp() * 1000)}"


def resumed(token: str | None) -> tuple[str | None, datetime | None]:
    """The place and latest time a `resume_token` holds (None, None when there is none)."""
    if not token or "@" not in token:
        return None, None
    position, _, millis = token.rpartition("@")
    return position or None, stamp(millis) if millis else None
