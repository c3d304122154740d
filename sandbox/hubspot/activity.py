"""Web touches added through the sandbox's admin route, as HubSpot holds them: events.

HubSpot's tracking code records page views and form submissions; no API creates them. Added
through `sandbox.admin`, each becomes an event of the events API (`events`) with the eventType,
``hs_url`` and ``hs_title`` the portal's convention gives its kind (`touches`), at its
``occurredAt``: on the company, or on the contact (a merged-away contact's survivor). The events
API lists by ``occurredAt``, so a pull finds a touch only when it is later than what that pull
has already read, as with HubSpot's own late events. (A portal below Enterprise reads touches
from contacts' analytics history instead, which added touches do not change.)
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from sandbox.admin import NewActivity, unknown
from sandbox.hubspot.events import EventRoutes
from sandbox.hubspot.ids import event_uuid
from sandbox.hubspot.store import PortalStore
from sandbox.hubspot.touches import CONVENTIONS, LOCALES, rendered

__all__ = ["add_events"]


def add_events(
    store: PortalStore,
    events: EventRoutes,
    activities: Sequence[NewActivity],
    convention: str,
    first_free: int,
) -> list[str]:
    """Record each activity as an event (all or none); their event ids, in order.
    ``first_free`` is the first activity id the org's own events do not use."""
    owners = [_owner(store, activity) for activity in activities]
    first = events.next_id(first_free)
    locales = LOCALES[convention]
    rows = []
    for number, (activity, (kind, object_id)) in enumerate(zip(activities, owners, strict=True)):
        activity_id = first + number
        touch = CONVENTIONS[convention][activity.type]
        locale = locales[activity_id % len(locales)]
        event_type, url, title = rendered(touch, activity.topic, locale)
        at = activity.occurred_at
        rows.append((activity_id, event_type, url, title, at, kind, object_id))
    schema = ["activity_id", "event_type", "hs_url", "hs_title", "occurred_at"]
    frame = pl.DataFrame(rows, schema=[*schema, "object_type", "object_id"], orient="row")
    stamped = pl.col("occurred_at").dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    events.add(frame.with_columns(stamped).with_columns(_us=pl.col("occurred_at").dt.epoch("us")))
    return event_uuid([activity_id for activity_id, *_ in rows])


def _owner(store: PortalStore, activity: NewActivity) -> tuple[str, int]:
    """("COMPANY" | "CONTACT", id) of the live record the touch is on (404 when none)."""
    object_name = "companies" if activity.account_id else "contacts"
    given = activity.account_id or activity.person_id or ""
    record_id = store.resolve(object_name, int(given)) if given.isdigit() else None
    found = store.rows(object_name, [record_id]) if record_id is not None else None
    if record_id is None or found is None or found.is_empty() or found["_archived"][0]:
        raise unknown("company" if activity.account_id else "contact", [given])
    return ("COMPANY" if activity.account_id else "CONTACT"), record_id
