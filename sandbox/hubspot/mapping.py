"""The org as HubSpot records: one table of property expressions per object, and the associations.

companies (from accounts)      | contacts (from surviving people)   | deals (from opportunities)
-------------------------------|------------------------------------|------------------------------
name, domain, website, phone,  | firstname, lastname, email,        | dealname <- name
country, city <- same          | company, phone, country, city      | amount <- amount
hs_additional_domains <- alias | jobtitle <- title                  | dealstage <- DEAL_STAGES[...]
industry <- INDUSTRY_NAME      | lifecyclestage <- lifecycle below  | pipeline <- "default"
numberofemployees <- employees | hs_lead_status <- LEAD_STATUS      | closedate <- close_at
annualrevenue <- revenue       | hs_analytics_source <- LEAD_SOURCE | createdate <- opened_at
hs_parent_company_id <- parent | associatedcompanyid <- account_id, | product_line <- product_line
lifecyclestage <- "customer"   |   else converted_account_id        | (custom property)
  if is_customer else "lead"   | hs_merged_object_ids <- merged ids |
type <- "COMPETITOR" if        | lifecyclestage: "customer" when    |
  is_competitor else "PROSPECT"|   the company is a customer, else  |
createdate <- created_at       |   LIFECYCLE[kind, status]          |

Every object: hubspot_owner_id <- owner id (ids.py), its modified property <- modified_at.
Rep activities (call, email, meeting) become calls / emails / meetings with ``hs_timestamp`` <-
occurred_at, associated to their contact (the merge survivor) and company. Web and marketing
touches are events (events.py). Associations: contact -> primary company (types 1 and 279),
deal -> company (5 and 341), child -> parent company (14; 13 back), engagement -> contact/company.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import polars as pl

from sandbox.hubspot.ids import OWNER_BASE, archived_people, hubspot_id, merged_people
from sandbox.hubspot.schema import PROPERTIES, type_pairs
from sandbox.hubspot.values import column_dtype
from sandbox.org import Org
from sandbox.spellings import spelled_country
from sandbox.vocab import INDUSTRIES

__all__ = [
    "DEAL_STAGES",
    "ENGAGEMENT_TYPES",
    "INDUSTRY_NAME",
    "LEAD_SOURCE",
    "LEAD_STATUS",
    "LIFECYCLE",
    "EdgeRows",
    "build_edges",
    "build_records",
    "typed",
]

DEAL_STAGES = {
    "Prospecting": "appointmentscheduled",
    "Qualification": "qualifiedtobuy",
    "Needs Analysis": "presentationscheduled",
    "Proposal": "decisionmakerboughtin",
    "Negotiation": "contractsent",
    "Closed Won": "closedwon",
    "Closed Lost": "closedlost",
}
LEAD_STATUS = {
    "Open": "OPEN",
    "Working": "IN_PROGRESS",
    "Nurturing": "NURTURING",
    "Unqualified": "UNQUALIFIED",
    "Converted": "OPEN_DEAL",
}
LEAD_SOURCE = {
    "Organic Search": "ORGANIC_SEARCH",
    "Referral": "REFERRALS",
    "Web": "DIRECT_TRAFFIC",
    "Trade Show": "OFFLINE",
    "Webinar": "OTHER_CAMPAIGNS",
    "Purchased List": "OFFLINE",
}
# (kind, lead status) -> lifecyclestage; a contact at a customer company is always "customer"
LIFECYCLE = {
    ("contact", None): "salesqualifiedlead",
    ("lead", "Open"): "lead",
    ("lead", "Working"): "marketingqualifiedlead",
    ("lead", "Nurturing"): "lead",
    ("lead", "Unqualified"): "other",
    ("lead", "Converted"): "salesqualifiedlead",
    ("lead", None): "lead",
}
INDUSTRY_NAME = {i.name: i.name.upper().replace(" ", "_") for i in INDUSTRIES}
# activity type -> (object, fixed properties)
ENGAGEMENT_TYPES: dict[str, tuple[str, Mapping[str, str]]] = {
    "call": (
        "calls",
        {"hs_call_title": "Call", "hs_call_direction": "OUTBOUND", "hs_call_status": "COMPLETED"},
    ),
    "email": (
        "emails",
        {"hs_email_subject": "Follow-up", "hs_email_direction": "EMAIL", "hs_email_status": "SENT"},
    ),
    "meeting": ("meetings", {"hs_meeting_title": "Meeting", "hs_meeting_outcome": "COMPLETED"}),
}
_MEETING_LENGTH = timedelta(minutes=30)

# (source, target) -> frames of (from_id, to_id, type_id)
EdgeRows = dict[tuple[str, str], list[pl.DataFrame]]
_PARENT = ((14, 13),)  # child -> parent company, and back


def _owner(column: str) -> pl.Expr:
    """An org user id as a HubSpot owner id string."""
    return (pl.col(column).cast(pl.UInt64) + OWNER_BASE).cast(pl.String)


def _base(object_name: str, id_column: str) -> dict[str, pl.Expr]:
    """The id columns every record has, not archived."""
    uid = hubspot_id(object_name, id_column)
    return {
        "_id": uid,
        "hs_object_id": uid.cast(pl.String),
        "_archived": pl.lit(False),
        "_archived_at": pl.lit(None, dtype=pl.Datetime("us", "UTC")),
    }


def _companies(org: Org, spelling: str) -> pl.DataFrame:
    """Accounts as companies, countries typed as ``spelling`` says (`sandbox.spellings`)."""
    columns = {
        **_base("companies", "account_id"),
        **{name: pl.col(name) for name in ("name", "domain", "website", "city", "phone")},
        "country": spelled_country("account_id", spelling),
        "hs_additional_domains": pl.col("alias_domain"),
        "industry": pl.col("industry").replace_strict(INDUSTRY_NAME, default=None),
        "numberofemployees": pl.col("employees"),
        "annualrevenue": pl.col("revenue"),
        "hs_parent_company_id": hubspot_id("companies", "parent_id"),
        "lifecyclestage": pl.when("is_customer").then(pl.lit("customer")).otherwise(pl.lit("lead")),
        "type": pl.when("is_competitor").then(pl.lit("COMPETITOR")).otherwise(pl.lit("PROSPECT")),
        "hubspot_owner_id": _owner("owner_id"),
        "createdate": pl.col("created_at"),
        "hs_lastmodifieddate": pl.col("modified_at"),
    }
    return typed(org.accounts.select(**columns), "companies")


def _lifecycle() -> pl.Expr:
    """Lifecycle stage from the person's kind and lead status (customers first)."""
    expr = pl.when(pl.col("_customer")).then(pl.lit("customer"))
    for (kind, status), stage in LIFECYCLE.items():
        same = pl.col("status").is_null() if status is None else pl.col("status") == status
        expr = expr.when((pl.col("kind") == kind) & same).then(pl.lit(stage))
    return expr.otherwise(pl.lit("lead"))


def _contacts(org: Org, merges: pl.DataFrame, archived: pl.Series, spelling: str) -> pl.DataFrame:
    """Surviving people as contacts, with the ids merged into them and the archived ones."""
    merged_ids = (
        merges.filter(pl.col("person_id") != pl.col("survivor_id"))
        .group_by("survivor_id")
        .agg(merged=hubspot_id("contacts", "person_id").sort().cast(pl.String).str.join(";"))
    )
    customers = org.accounts.filter("is_customer")["account_id"].implode()
    people = (
        org.people.join(merges, on="person_id")
        .filter(pl.col("person_id") == pl.col("survivor_id"))
        .join(merged_ids, on="survivor_id", how="left")
        .with_columns(_company=pl.coalesce("account_id", "converted_account_id"))
        .with_columns(_customer=pl.col("_company").is_in(customers).fill_null(False))
    )
    is_archived = pl.col("person_id").is_in(archived.implode())
    columns = {
        **_base("contacts", "person_id"),
        "_archived": is_archived,
        "_archived_at": pl.when(is_archived).then(pl.col("modified_at")),
        **{name: pl.col(name) for name in ("email", "company", "phone", "city")},
        "country": spelled_country("person_id", spelling),
        "firstname": pl.col("first_name"),
        "lastname": pl.col("last_name"),
        "jobtitle": pl.col("title"),
        "lifecyclestage": _lifecycle(),
        "hs_lead_status": pl.col("status").replace_strict(LEAD_STATUS, default=None),
        "hs_analytics_source": pl.col("lead_source").replace_strict(LEAD_SOURCE, default=None),
        "associatedcompanyid": hubspot_id("companies", "_company"),
        "hs_merged_object_ids": pl.col("merged"),
        "hubspot_owner_id": _owner("owner_id"),
        "createdate": pl.col("created_at"),
        "lastmodifieddate": pl.col("modified_at"),
    }
    return typed(people.select(**columns), "contacts")


def _deals(org: Org) -> pl.DataFrame:
    """Opportunities as deals in the default pipeline."""
    columns = {
        **_base("deals", "opportunity_id"),
        "dealname": pl.col("name"),
        "amount": pl.col("amount"),
        "dealstage": pl.col("stage").replace_strict(DEAL_STAGES, default=None),
        "pipeline": pl.lit("default"),
        "closedate": pl.col("close_at"),
        "product_line": pl.col("product_line").str.to_lowercase().str.replace_all(" ", "_"),
        "hubspot_owner_id": _owner("owner_id"),
        "createdate": pl.col("opened_at"),
        "hs_lastmodifieddate": pl.col("modified_at"),
    }
    return typed(org.opportunities.sort("opportunity_id").select(**columns), "deals")


def _engagements(org: Org, activity: str) -> pl.DataFrame:
    """Rep activities of one type as engagement records."""
    object_name, fixed = ENGAGEMENT_TYPES[activity]
    rows = org.activities.filter(pl.col("type") == activity)
    columns = {
        **_base(object_name, "activity_id"),
        **{name: pl.lit(value) for name, value in fixed.items()},
        "hs_timestamp": pl.col("occurred_at"),
        "hubspot_owner_id": _owner("owner_id"),
        "hs_createdate": pl.col("occurred_at"),
        "hs_lastmodifieddate": pl.col("modified_at"),
    }
    if object_name == "meetings":
        columns["hs_meeting_start_time"] = pl.col("occurred_at")
        columns["hs_meeting_end_time"] = pl.col("occurred_at") + _MEETING_LENGTH
    return typed(rows.select(**columns), object_name)


def typed(frame: pl.DataFrame, object_name: str) -> pl.DataFrame:
    """Every defined property as a column of its dtype, internal columns first."""
    dtypes = {
        spec.name: column_dtype(spec.type)
        for spec in PROPERTIES[object_name]
        if spec.name != "hs_object_id"
    }
    internal = {
        "_id": pl.UInt64,
        "hs_object_id": pl.String,
        "_archived": pl.Boolean,
        "_archived_at": pl.Datetime("us", "UTC"),
    }
    wanted = {**internal, **dtypes}
    if not frame.columns:
        return pl.DataFrame(schema=wanted)
    return frame.select(
        (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in wanted.items()
    )


def build_records(
    org: Org, country_spelling: str = "code"
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """Every object's records, plus ``person_id -> survivor_id`` (merges)."""
    merges = merged_people(org.people)
    archived = archived_people(org.people, org.activities)
    records = {
        "companies": _companies(org, country_spelling),
        "contacts": _contacts(org, merges, archived, country_spelling),
        "deals": _deals(org),
        **{ENGAGEMENT_TYPES[a][0]: _engagements(org, a) for a in ENGAGEMENT_TYPES},
        **{name: typed(pl.DataFrame(), name) for name in ("notes", "tasks")},
    }
    return records, merges


def _edge(frame: pl.DataFrame, source: str, target: str, type_id: int) -> pl.DataFrame:
    """Rows of one association type from (from_org_id, to_org_id) columns."""
    return frame.drop_nulls().select(
        from_id=hubspot_id(source, "from"),
        to_id=hubspot_id(target, "to"),
        type_id=pl.lit(type_id, dtype=pl.Int32),
    )


def _both(
    frame: pl.DataFrame, source: str, target: str, pairs: tuple[tuple[int, int], ...] = ()
) -> EdgeRows:
    """An association and its reverse, for each (type id, reverse type id) pair."""
    rows: EdgeRows = {}
    flipped = frame.select(pl.col("to").alias("from"), pl.col("from").alias("to"))
    for there, back in pairs or type_pairs(source, target):
        rows.setdefault((source, target), []).append(_edge(frame, source, target, there))
        rows.setdefault((target, source), []).append(_edge(flipped, target, source, back))
    return rows


def build_edges(org: Org, merges: pl.DataFrame) -> dict[tuple[str, str], pl.DataFrame]:
    """Every association of the org, both directions, by (source, target) object."""
    survivors = org.people.join(merges, on="person_id").filter(
        pl.col("person_id") == pl.col("survivor_id")
    )
    parts = [
        _both(
            _pairs(survivors, "person_id", pl.coalesce("account_id", "converted_account_id")),
            "contacts",
            "companies",
        ),
        _both(_pairs(org.opportunities, "opportunity_id", "account_id"), "deals", "companies"),
        _both(_pairs(org.accounts, "account_id", "parent_id"), "companies", "companies", _PARENT),
    ]
    activities = org.activities.join(merges, on="person_id", how="left")
    for activity, (object_name, _) in ENGAGEMENT_TYPES.items():
        rows = activities.filter(pl.col("type") == activity)
        parts.append(_both(_pairs(rows, "activity_id", "survivor_id"), object_name, "contacts"))
        parts.append(_both(_pairs(rows, "activity_id", "account_id"), object_name, "companies"))
    merged: EdgeRows = {}
    for part in parts:
        for key, frames in part.items():
            merged.setdefault(key, []).extend(frames)
    return {key: pl.concat(frames).sort("from_id", "to_id") for key, frames in merged.items()}


def _pairs(frame: pl.DataFrame, source: str, target: str | pl.Expr) -> pl.DataFrame:
    """(from, to) org ids of one link."""
    to = pl.col(target) if isinstance(target, str) else target
    return frame.select(pl.col(source).alias("from"), to.alias("to"))
