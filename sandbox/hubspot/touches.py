"""How each web and marketing touch of the org shows in HubSpot: its eventType, URL and title.

The events API (events.py), the contacts' analytics property history (analytics.py) and the
marketing email events API (email_events.py) all render the same touches from this one table,
so the three sources agree on what happened, when, and to whom.

| catalog key   | eventType                 | hs_url path                    | hs_title           |
|---------------|---------------------------|--------------------------------|--------------------|
| demo_request  | e_submitted_form          | /demo                          | Request a demo     |
| pricing_page  | e_visited_page            | /pricing                       | Pricing            |
| trial_signup  | e_submitted_form          | /trial                         | Start your free... |
| contact_sales | e_submitted_form          | /contact-sales                 | Contact sales      |
| webinar       | e_submitted_form          | /webinars/{topic}              | Webinar: {Topic}   |
| case_study    | e_visited_page            | /customers/{topic}             | Case study: {Topic}|
| product_page  | e_visited_page            | /product                       | Product overview   |
| whitepaper    | e_submitted_form          | /resources/whitepapers/{topic} | {Topic} whitepaper |
| blog_visit    | e_visited_page            | /blog/{topic}                  | Blog: {Topic}      |
| email_open    | e_opened_marketing_email  | (none)                         | Monthly newsletter |
| email_click   | e_clicked_marketing_email | /newsletter                    | Monthly newsletter |

A portal in the second convention (``convention="b"``, `WEB_TOUCHES_B`) has another site map:
paths with a trailing slash under a locale prefix (``/de-de/plans/``; one of `LOCALES` by
activity), query strings on email links, other page names. Only the rendering differs.

URLs are on ``https://www.example.com`` (the seller's site). The two marketing email rows are
served by the email events API only: HubSpot's events API never includes marketing email events.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from sandbox.hubspot.mapping import ENGAGEMENT_TYPES
from sandbox.org import Org
from sandbox.reps import SELLER_DOMAIN
from sandbox.vocab import TOPICS

__all__ = [
    "CONVENTIONS",
    "LOCALES",
    "MARKETING_EMAIL",
    "SITE",
    "WEB_TOUCHES",
    "WEB_TOUCHES_B",
    "WebTouch",
    "rendered",
    "touches",
]

SITE = f"https://www.{SELLER_DOMAIN}"
MARKETING_EMAIL = ("email_open", "email_click")


@dataclass(frozen=True)
class WebTouch:
    """How one catalog key shows in HubSpot."""

    event_type: str
    path: str | None  # "{topic}" is replaced by the touch's topic
    title: str  # "{Topic}" is replaced by the topic's label


WEB_TOUCHES: dict[str, WebTouch] = {
    "demo_request": WebTouch("e_submitted_form", "/demo", "Request a demo"),
    "pricing_page": WebTouch("e_visited_page", "/pricing", "Pricing"),
    "trial_signup": WebTouch("e_submitted_form", "/trial", "Start your free trial"),
    "contact_sales": WebTouch("e_submitted_form", "/contact-sales", "Contact sales"),
    "webinar": WebTouch("e_submitted_form", "/webinars/{topic}", "Webinar: {Topic}"),
    "case_study": WebTouch("e_visited_page", "/customers/{topic}", "Case study: {Topic}"),
    "product_page": WebTouch("e_visited_page", "/product", "Product overview"),
    "whitepaper": WebTouch(
        "e_submitted_form", "/resources/whitepapers/{topic}", "{Topic} whitepaper"
    ),
    "blog_visit": WebTouch("e_visited_page", "/blog/{topic}", "Blog: {Topic}"),
    "email_open": WebTouch("e_opened_marketing_email", None, "Monthly newsletter"),
    "email_click": WebTouch("e_clicked_marketing_email", "/newsletter", "Monthly newsletter"),
}
WEB_TOUCHES_B: dict[str, WebTouch] = {
    "demo_request": WebTouch("e_submitted_form", "/get-a-demo/", "Get a demo"),
    "pricing_page": WebTouch("e_visited_page", "/plans/", "Plans"),
    "trial_signup": WebTouch("e_submitted_form", "/free-trial/", "Free trial"),
    "contact_sales": WebTouch("e_submitted_form", "/talk-to-sales/", "Talk to sales"),
    "webinar": WebTouch("e_submitted_form", "/events/webinars/{topic}/", "Webinar: {Topic}"),
    "case_study": WebTouch("e_visited_page", "/customer-stories/{topic}/", "{Topic} story"),
    "product_page": WebTouch("e_visited_page", "/platform/", "Platform"),
    "whitepaper": WebTouch("e_submitted_form", "/resources/{topic}-ebook/", "{Topic} ebook"),
    "blog_visit": WebTouch("e_visited_page", "/blog/{topic}/", "Blog: {Topic}"),
    "email_open": WebTouch("e_opened_marketing_email", None, "Monthly newsletter"),
    "email_click": WebTouch(
        "e_clicked_marketing_email", "/newsletter/?utm_source=hubspot&utm_medium=email", "News"
    ),
}
CONVENTIONS: dict[str, dict[str, WebTouch]] = {"a": WEB_TOUCHES, "b": WEB_TOUCHES_B}
LOCALES: dict[str, tuple[str, ...]] = {"a": ("",), "b": ("", "/en", "/de-de", "/fr")}


def _topic_label(topic: str) -> str:
    return topic.upper() if len(topic) <= 2 else topic.title()


def rendered(touch: WebTouch, topic: str | None, locale: str) -> tuple[str, str | None, str]:
    """A touch's eventType, ``hs_url`` (on ``locale``'s part of the site) and ``hs_title``."""
    path = touch.path.replace("{topic}", topic or "") if touch.path else None
    title = touch.title.replace("{Topic}", _topic_label(topic) if topic else "")
    return touch.event_type, SITE + locale + path if path else None, title.strip(": ")


def _touch_table(touches: dict[str, WebTouch], locales: tuple[str, ...]) -> pl.DataFrame:
    """(type, topic, locale) -> eventType, hs_url, hs_title for every key, topic and locale."""
    rows = [
        (key, topic, index, *rendered(touch, topic, locale))
        for key, touch in touches.items()
        for topic in (None, *TOPICS)
        for index, locale in enumerate(locales)
    ]
    schema = ["type", "topic", "_locale", "event_type", "hs_url", "hs_title"]
    return pl.DataFrame(rows, schema=schema, orient="row").with_columns(
        pl.col("_locale").cast(pl.Int64),
        pl.col("event_type", "hs_url", "hs_title").cast(pl.Categorical),
    )


def touches(org: Org, merges: pl.DataFrame, convention: str = "a") -> pl.DataFrame:
    """Every web and marketing touch: activity id, type, time, eventType, URL, title (with the
    site map of ``convention``), the person's surviving contact (``survivor_id``, null for a
    touch seen only at an account)."""
    table = _touch_table(CONVENTIONS[convention], LOCALES[convention])
    locale = pl.col("activity_id").cast(pl.Int64) % len(LOCALES[convention])
    kept = org.activities.filter(~pl.col("type").cast(pl.String).is_in(list(ENGAGEMENT_TYPES)))
    return (
        kept.with_columns(pl.col("type", "topic").cast(pl.String), _locale=locale)
        .join(merges, on="person_id", how="left")
        .join(table, on=["type", "topic", "_locale"], how="left", nulls_equal=True)
    )
