"""The contacts' web analytics properties and their history, derived from the org's web touches.

Every portal tier has them: ``hs_analytics_last_url`` ("Last page seen") is set by each page view
and each form submission (the form's page), ``recent_conversion_event_name`` ("Recent
conversion") and ``recent_conversion_date`` by each form submission (its value is the form
page's title). Asked with ``propertiesWithHistory`` on a list, a read or a batch read, a property
comes with its previous values, newest first:

    "propertiesWithHistory": {"hs_analytics_last_url": [
        {"value": "https://www.example.com/pricing", "timestamp": "2026-10-02T08:00:00.000Z",
         "sourceType": "ANALYTICS", "sourceId": null}, ...]}

(shape: https://github.com/HubSpot/hubspot-api-nodejs/issues/154). A page asking for history
holds at most 50 records (dlt's HubSpot source: "API allows max 50 items per call with property
history"). The sandbox keeps the last ``HISTORY_DEPTH`` values of each property: how many a real
portal keeps is not documented in what we found, so the loss is made visible here on purpose.
Touches seen only at an account, and marketing email, are not contact analytics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from sandbox.hubspot.ids import hubspot_id
from sandbox.hubspot.touches import MARKETING_EMAIL, touches
from sandbox.hubspot.values import format_timestamp
from sandbox.org import Org

__all__ = [
    "HISTORY_DEPTH",
    "LAST_URL",
    "MAX_HISTORY_PAGE",
    "RECENT_CONVERSION",
    "build_history",
    "current_values",
    "entries",
]

HISTORY_DEPTH = 20
MAX_HISTORY_PAGE = 50
LAST_URL = "hs_analytics_last_url"
RECENT_CONVERSION = "recent_conversion_event_name"
_SOURCES = {LAST_URL: "ANALYTICS", RECENT_CONVERSION: "FORM"}


def build_history(org: Org, merges: pl.DataFrame, convention: str = "a") -> pl.DataFrame:
    """(_id, property, value, timestamp) of every contact's analytics properties, newest first,
    the last ``HISTORY_DEPTH`` values of each, URLs in the site map of ``convention``."""
    web = touches(org, merges, convention).filter(
        ~pl.col("type").is_in(MARKETING_EMAIL) & pl.col("survivor_id").is_not_null()
    )
    base = {"_id": hubspot_id("contacts", "survivor_id"), "timestamp": pl.col("occurred_at")}
    views = web.select(**base, property=pl.lit(LAST_URL), value=pl.col("hs_url").cast(pl.String))
    forms = web.filter(pl.col("event_type") == "e_submitted_form").select(
        **base, property=pl.lit(RECENT_CONVERSION), value=pl.col("hs_title").cast(pl.String)
    )
    return (
        pl.concat([views, forms])
        .sort("_id", "property", "timestamp", descending=[False, False, True])
        .filter(pl.int_range(pl.len()).over("_id", "property") < HISTORY_DEPTH)
    )


def current_values(history: pl.DataFrame) -> pl.DataFrame:
    """Each contact's current analytics values: the newest of each history."""
    latest = history.group_by("_id", "property").first()
    url = latest.filter(pl.col("property") == LAST_URL).select("_id", **{LAST_URL: "value"})
    conversion = latest.filter(pl.col("property") == RECENT_CONVERSION).select(
        "_id", **{RECENT_CONVERSION: "value", "recent_conversion_date": "timestamp"}
    )
    return url.join(conversion, on="_id", how="full", coalesce=True)


def entries(history: pl.DataFrame, ids: Sequence[int]) -> dict[int, dict[str, list[Any]]]:
    """The history entries of ``ids`` as HubSpot renders them: id -> property -> values."""
    found: dict[int, dict[str, list[Any]]] = {}
    rows = history.filter(pl.col("_id").is_in(list(ids)))
    for row in rows.iter_rows(named=True):
        found.setdefault(row["_id"], {}).setdefault(row["property"], []).append(_entry(row))
    return found


def _entry(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "value": row["value"],
        "timestamp": format_timestamp(row["timestamp"]),
        "sourceType": _SOURCES[row["property"]],
        "sourceId": None,
    }
