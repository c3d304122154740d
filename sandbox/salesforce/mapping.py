"""How a generated org appears in Salesforce: per object, a table of field -> polars expression.

The tables below are the whole mapping, written so the connector can invert it:

=================  ==========================================================================
Salesforce         From the org
=================  ==========================================================================
User               users: Username and Email = email, UserRole, Profile and Department =
                   messy labels of the team (`sandbox.teams`), Division = territory,
                   Out_of_Office__c = out_of_office
UserRole, Profile  one per distinct role name / profile name the users carry
Account            accounts: BillingCountry = ISO code, Type = 'Customer - Direct' (customer),
                   'Competitor' (competitor) else 'Prospect', ParentId = parent_id
Lead               people of kind lead; Company null -> '[not provided]' (Salesforce requires
                   it); ConvertedDate = date of modified_at when converted; ConvertedContactId
                   stays null (the org does not record which contact a lead became)
Contact            people of kind contact; MailingCountry/MailingCity = country/city
Opportunity        opportunities: StageName = stage, CloseDate = date of close_at, CreatedDate =
                   opened_at, Product_Line__c = product_line, Type = 'New Business'
Task, Event        activities, typed by `TOUCHES` below; meetings are Events of 30 minutes;
                   IsArchived = at least `ARCHIVE_DAYS` old at the org's end (closed Tasks
                   and Events, as Salesforce's archiving job leaves them), so ``query``
                   hides them and ``queryAll`` returns them
Campaign           one per (webinar | whitepaper, topic) that has members: `CAMPAIGNS`, whose
                   Type is the campaign type CampaignMember.Campaign.Type reads
CampaignMember     first webinar registration / whitepaper download of a person per campaign
=================  ==========================================================================

Activities: WhoId is the lead's or contact's id; WhatId is the activity's own account (touches
logged on an account with no known person, and rep activity) except on leads, where Salesforce
forbids a WhatId; AccountId is WhatId's account, else the contact's account. Subject is the
touch's subject, then ``": <Topic>"`` when the activity has a content topic (``TOPIC_LABELS``);
``(Type, Subject before ": ")`` names the catalog key uniquely. ActivityDate and CreatedDate are
occurred_at; OwnerId is the rep for rep activity, else the marketing queue user that marketing
automation syncs as. Every id is `make_ids` of the org's own row number, so ids are stable.

An org may be rendered in a second convention (``convention="b"``, `CONVENTIONS`): marketing
touches as Tasks of Type "Marketing Activity" with other subjects, rep calls and emails with no
Type (only their TaskSubtype says what they are), meetings with no Type, and other campaign
types. Only the rendering differs: the same org gives the same records and ids either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import NamedTuple

import polars as pl

from sandbox.org import Org
from sandbox.reps import MARKETING_QUEUE_ID
from sandbox.salesforce.config import SalesforceOptions
from sandbox.salesforce.ids import make_ids
from sandbox.salesforce.rendering import currency_types, rendered_columns
from sandbox.salesforce.schema import SObject
from sandbox.teams import user_labels
from sandbox.vocab import TOPICS

__all__ = [
    "CAMPAIGNS",
    "COLUMNS",
    "CONVENTIONS",
    "NOT_PROVIDED",
    "TOPIC_LABELS",
    "TOUCHES",
    "CampaignKind",
    "Convention",
    "Touch",
    "salesforce_frames",
]

NOT_PROVIDED = "[not provided]"
MEETING_MINUTES = 30
# Salesforce archives Events and closed Tasks whose date is 365 days old or more:
# https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_guidelines_archive.htm
ARCHIVE_DAYS = 365


class Touch(NamedTuple):
    """How one activity catalog key is recorded."""

    object: str  # Task or Event
    subject: str  # ": <Topic>" is appended when the activity has a topic
    type: str | None  # the Type picklist value
    subtype: str | None  # TaskSubtype (Tasks only)


# activity catalog key -> how it is recorded in Salesforce
TOUCHES: dict[str, Touch] = {
    "demo_request": Touch("Task", "Requested a demo", "Form Submission", "Task"),
    "pricing_page": Touch("Task", "Visited pricing page", "Web Visit", "Task"),
    "trial_signup": Touch("Task", "Signed up for a trial", "Form Submission", "Task"),
    "contact_sales": Touch("Task", "Contacted sales", "Form Submission", "Task"),
    "webinar": Touch("Task", "Registered for webinar", "Webinar", "Task"),
    "case_study": Touch("Task", "Viewed case study", "Web Visit", "Task"),
    "product_page": Touch("Task", "Visited product page", "Web Visit", "Task"),
    "whitepaper": Touch("Task", "Downloaded whitepaper", "Content Download", "Task"),
    "blog_visit": Touch("Task", "Read blog post", "Web Visit", "Task"),
    "email_open": Touch("Task", "Opened marketing email", "Email Engagement", "Task"),
    "email_click": Touch("Task", "Clicked marketing email link", "Email Engagement", "Task"),
    "call": Touch("Task", "Call", "Call", "Call"),
    "email": Touch("Task", "Email", "Email", "Email"),
    "meeting": Touch("Event", "Meeting", "Meeting", None),
}
_B_TYPE = "Marketing Activity"
# the second convention: one Type for marketing, other subjects, untyped rep activity
TOUCHES_B: dict[str, Touch] = {
    "demo_request": Touch("Task", "Demo Request", _B_TYPE, "Task"),
    "pricing_page": Touch("Task", "Pricing Page View", _B_TYPE, "Task"),
    "trial_signup": Touch("Task", "Free Trial Sign-up", _B_TYPE, "Task"),
    "contact_sales": Touch("Task", "Talk to Sales", _B_TYPE, "Task"),
    "webinar": Touch("Task", "Webinar Registration", _B_TYPE, "Task"),
    "case_study": Touch("Task", "Customer Story View", _B_TYPE, "Task"),
    "product_page": Touch("Task", "Platform Page View", _B_TYPE, "Task"),
    "whitepaper": Touch("Task", "Ebook Download", _B_TYPE, "Task"),
    "blog_visit": Touch("Task", "Blog Article View", _B_TYPE, "Task"),
    "email_open": Touch("Task", "Email Opened", _B_TYPE, "Task"),
    "email_click": Touch("Task", "Email Link Clicked", _B_TYPE, "Task"),
    "call": Touch("Task", "Call", None, "Call"),
    "email": Touch("Task", "Email", None, "Email"),
    "meeting": Touch("Event", "Meeting", None, None),
}
TOPIC_LABELS: dict[str, str] = {
    "security": "Security",
    "integrations": "Integrations",
    "compliance": "Compliance",
    "ai": "AI",
    "analytics": "Analytics",
}


class CampaignKind(NamedTuple):
    """The campaigns one catalog key feeds: "<label>: <Topic>" of Campaign Type ``type``."""

    label: str
    type: str
    member_status: str


CAMPAIGNS: dict[str, CampaignKind] = {
    "webinar": CampaignKind("Webinar", "Webinar", "Registered"),
    "whitepaper": CampaignKind("Whitepaper", "Content", "Downloaded"),
}
CAMPAIGNS_B: dict[str, CampaignKind] = {
    "webinar": CampaignKind("Webinar", "Virtual Event", "Registered"),
    "whitepaper": CampaignKind("Ebook", "Content Syndication", "Downloaded"),
}


class Convention(NamedTuple):
    """How an org records its touches and campaigns."""

    touches: dict[str, Touch]
    campaigns: dict[str, CampaignKind]


CONVENTIONS: dict[str, Convention] = {
    "a": Convention(TOUCHES, CAMPAIGNS),
    "b": Convention(TOUCHES_B, CAMPAIGNS_B),
}


def _ids(entity: str, numbers: str | pl.Expr) -> pl.Expr:
    """The ids of ``entity`` numbered by an org id column (or expression)."""
    column = pl.col(numbers) if isinstance(numbers, str) else numbers
    return column.map_batches(lambda s: make_ids(entity, s), return_dtype=pl.String)


def _user(column: str) -> pl.Expr:
    """A user id, the marketing queue where the org has no owner."""
    return _ids("User", column).fill_null(make_ids("User", [MARKETING_QUEUE_ID]).item())


def _full_name() -> pl.Expr:
    return pl.concat_str("first_name", "last_name", separator=" ", ignore_nulls=True)


def _audit(created: str = "created_at") -> dict[str, pl.Expr]:
    return {
        "CreatedDate": pl.col(created),
        "LastModifiedDate": pl.col("modified_at"),
        "SystemModstamp": pl.col("modified_at"),
    }


_ACCOUNT_TYPE = (
    pl.when("is_customer")
    .then(pl.lit("Customer - Direct"))
    .when("is_competitor")
    .then(pl.lit("Competitor"))
    .otherwise(pl.lit("Prospect"))
)
_WHO = pl.when(pl.col("_kind") == "lead").then(_ids("Lead", "person_id"))
_WHO = _WHO.otherwise(_ids("Contact", "person_id"))
_WHAT = _ids("Account", pl.when(pl.col("_kind").fill_null("") != "lead").then("account_id"))
_ACTIVITY_ACCOUNT = _ids("Account", pl.coalesce("account_id", "_person_account"))
_TOPIC = pl.col("topic").cast(pl.String).replace_strict(TOPIC_LABELS, default=None)
_SUBJECT = pl.concat_str(pl.col("_subject"), pl.lit(": ") + _TOPIC, ignore_nulls=True)

# object -> field -> expression over that object's source frame (see `_sources`)
COLUMNS: dict[str, dict[str, pl.Expr]] = {
    "User": {
        "Id": _ids("User", "user_id"),
        "Username": pl.col("email"),
        "Email": pl.col("email"),
        "FirstName": pl.col("first_name"),
        "LastName": pl.col("last_name"),
        "Name": pl.col("name"),
        "IsActive": pl.col("is_active"),
        "Department": pl.col("_department"),
        "Division": pl.col("territory"),
        "UserRoleId": _ids("UserRole", "_role_number"),
        "ProfileId": _ids("Profile", "_profile_number"),
        "ManagerId": _ids("User", "manager_id"),
        "Out_of_Office__c": pl.col("out_of_office"),
        **_audit(),
    },
    "UserRole": {"Id": _ids("UserRole", "_number"), "Name": pl.col("_name"), **_audit()},
    "Profile": {"Id": _ids("Profile", "_number"), "Name": pl.col("_name"), **_audit()},
    "Account": {
        "Id": _ids("Account", "account_id"),
        "Name": pl.col("name"),
        "Type": _ACCOUNT_TYPE,
        "ParentId": _ids("Account", "parent_id"),
        "BillingCity": pl.col("city"),
        "BillingCountry": pl.col("country"),
        "Phone": pl.col("phone"),
        "Website": pl.col("website"),
        "Industry": pl.col("industry"),
        "NumberOfEmployees": pl.col("employees"),
        "AnnualRevenue": pl.col("revenue"),
        "OwnerId": _user("owner_id"),
        **_audit(),
    },
    "Lead": {
        "Id": _ids("Lead", "person_id"),
        "FirstName": pl.col("first_name"),
        "LastName": pl.col("last_name"),
        "Name": _full_name(),
        "Email": pl.col("email"),
        "Company": pl.col("company").fill_null(NOT_PROVIDED),
        "Title": pl.col("title"),
        "Phone": pl.col("phone"),
        "Country": pl.col("country"),
        "City": pl.col("city"),
        "Status": pl.col("status"),
        "LeadSource": pl.col("lead_source"),
        "OwnerId": _user("owner_id"),
        "IsConverted": pl.col("is_converted"),
        "ConvertedAccountId": _ids("Account", "converted_account_id"),
        "ConvertedDate": pl.when("is_converted").then(pl.col("modified_at").dt.date()),
        **_audit(),
    },
    "Contact": {
        "Id": _ids("Contact", "person_id"),
        "AccountId": _ids("Account", "account_id"),
        "FirstName": pl.col("first_name"),
        "LastName": pl.col("last_name"),
        "Name": _full_name(),
        "Email": pl.col("email"),
        "Title": pl.col("title"),
        "Phone": pl.col("phone"),
        "MailingCity": pl.col("city"),
        "MailingCountry": pl.col("country"),
        "LeadSource": pl.col("lead_source"),
        "OwnerId": _user("owner_id"),
        **_audit(),
    },
    "Opportunity": {
        "Id": _ids("Opportunity", "opportunity_id"),
        "AccountId": _ids("Account", "account_id"),
        "Name": pl.col("name"),
        "StageName": pl.col("stage"),
        "Amount": pl.col("amount"),
        "CloseDate": pl.col("close_at").dt.date(),
        "IsClosed": pl.col("is_closed"),
        "IsWon": pl.col("is_won"),
        "Type": pl.lit("New Business"),
        "Product_Line__c": pl.col("product_line"),
        "OwnerId": _user("owner_id"),
        **_audit("opened_at"),
    },
    "Task": {
        "Id": _ids("Task", "activity_id"),
        "WhoId": _WHO,
        "WhatId": _WHAT,
        "AccountId": _ACTIVITY_ACCOUNT,
        "Subject": _SUBJECT,
        "Type": pl.col("_type"),
        "OwnerId": _user("owner_id"),
        "ActivityDate": pl.col("occurred_at").dt.date(),
        "Status": pl.lit("Completed"),
        "Priority": pl.lit("Normal"),
        "TaskSubtype": pl.col("_subtype"),
        "IsClosed": pl.lit(True),
        "IsArchived": pl.col("_archived"),
        **_audit("occurred_at"),
    },
    "Event": {
        "Id": _ids("Event", "activity_id"),
        "WhoId": _WHO,
        "WhatId": _WHAT,
        "AccountId": _ACTIVITY_ACCOUNT,
        "Subject": _SUBJECT,
        "Type": pl.col("_type"),
        "OwnerId": _user("owner_id"),
        "ActivityDateTime": pl.col("occurred_at"),
        "DurationInMinutes": pl.lit(MEETING_MINUTES),
        "ActivityDate": pl.col("occurred_at").dt.date(),
        "StartDateTime": pl.col("occurred_at"),
        "EndDateTime": pl.col("occurred_at") + pl.duration(minutes=MEETING_MINUTES),
        "IsArchived": pl.col("_archived"),
        **_audit("occurred_at"),
    },
    "Campaign": {
        "Id": _ids("Campaign", "campaign"),
        "Name": pl.concat_str(pl.col("_label"), pl.lit(": "), _TOPIC),
        "Type": pl.col("_type"),
        "Status": pl.lit("In Progress"),
        "IsActive": pl.lit(True),
        "StartDate": pl.col("occurred_at").dt.date(),
        "OwnerId": _user("owner_id"),
        **_audit("occurred_at"),
    },
    "CurrencyType": {
        "Id": _ids("CurrencyType", "currency"),
        **{name: pl.col(name) for name in ("IsoCode", "ConversionRate", "DecimalPlaces")},
        **{name: pl.col(name) for name in ("IsActive", "IsCorporate")},
        **_audit("modified_at"),
    },
    "CampaignMember": {
        "Id": _ids("CampaignMember", "member"),
        "CampaignId": _ids("Campaign", "campaign"),
        "LeadId": pl.when(pl.col("_kind") == "lead").then(_ids("Lead", "person_id")),
        "ContactId": pl.when(pl.col("_kind") == "contact").then(_ids("Contact", "person_id")),
        "Status": pl.col("_status"),
        "HasResponded": pl.lit(True),
        "FirstRespondedDate": pl.col("occurred_at").dt.date(),
        **_audit("occurred_at"),
    },
}


def salesforce_frames(
    org: Org, objects: Iterable[SObject], options: SalesforceOptions
) -> dict[str, pl.DataFrame]:
    """One frame per object, columns in describe order with their Salesforce types, as the
    org's rendering options show them (countries, currencies: `rendering`; the touches and
    campaigns recorded in ``options.convention``)."""
    sources = _sources(org, CONVENTIONS[options.convention])
    rendered = rendered_columns(options)
    return {
        obj.name: _frame(
            sources[obj.name](), {**COLUMNS[obj.name], **rendered.get(obj.name, {})}, obj
        )
        for obj in objects
    }


def _frame(source: pl.DataFrame, columns: Mapping[str, pl.Expr], obj: SObject) -> pl.DataFrame:
    """The object's fields from ``source``; unmapped fields are null, datetimes to the ms."""
    columns = {"IsDeleted": pl.lit(False), **columns}
    exprs = [columns.get(f.name, pl.lit(None)).cast(f.kind.dtype).alias(f.name) for f in obj.fields]
    if obj.field("IsDeleted") is None:  # the SOQL engine filters every table on it
        exprs.append(pl.lit(False).alias("IsDeleted"))
    frame = source.select(exprs)
    stamps = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.Datetime)]
    return frame.with_columns(pl.col(stamps).dt.truncate("1ms"))


def _sources(org: Org, convention: Convention) -> dict[str, Callable[[], pl.DataFrame]]:
    """Object -> the org frame its `COLUMNS` read (built on demand)."""
    people = org.people
    users = user_labels(org.users)
    return {
        "User": lambda: _users(users),
        "UserRole": lambda: _named(users, "_role_name"),
        "Profile": lambda: _named(users, "_profile"),
        "Account": lambda: org.accounts,
        "Lead": lambda: people.filter(pl.col("kind") == "lead"),
        "Contact": lambda: people.filter(pl.col("kind") == "contact"),
        "Opportunity": lambda: org.opportunities,
        "Task": lambda: _touches(org, "Task", convention.touches),
        "Event": lambda: _touches(org, "Event", convention.touches),
        "Campaign": lambda: _campaigns(_members(org, convention.campaigns), convention.campaigns),
        "CampaignMember": lambda: _members(org, convention.campaigns),
        "CurrencyType": lambda: currency_types(org.accounts["created_at"].min()),
    }


def _named(users: pl.DataFrame, label: str) -> pl.DataFrame:
    """One row per distinct label (a role or profile name), numbered in name order."""
    names = users[label].drop_nulls().unique().sort()
    created = users["created_at"].min()
    return (
        pl.DataFrame({"_name": names})
        .with_row_index("_number")
        .with_columns(created_at=pl.lit(created), modified_at=pl.lit(created))
    )


def _users(users: pl.DataFrame) -> pl.DataFrame:
    """Users with the numbers of their role and profile records."""
    for label, number in (("_role_name", "_role_number"), ("_profile", "_profile_number")):
        names = _named(users, label).select(
            pl.col("_name").alias(label), pl.col("_number").alias(number)
        )
        users = users.join(names, on=label, how="left", maintain_order="left")
    return users


def _with_people(activities: pl.DataFrame, people: pl.DataFrame) -> pl.DataFrame:
    """Activities with their person's kind and account (as ``_kind``, ``_person_account``)."""
    keys = people.select(
        "person_id", pl.col("kind").alias("_kind"), pl.col("account_id").alias("_person_account")
    )
    return activities.join(keys, on="person_id", how="left", maintain_order="left")


def _touches(org: Org, sobject: str, touches: Mapping[str, Touch]) -> pl.DataFrame:
    """Activities recorded as ``sobject``, with their touch's subject, type and subtype."""
    table = pl.DataFrame(
        [(key, *touch) for key, touch in touches.items() if touch.object == sobject],
        schema=dict.fromkeys(["_key", "_object", "_subject", "_type", "_subtype"], pl.String),
        orient="row",
    )
    archived_before = (org.manifest.end_at - timedelta(days=ARCHIVE_DAYS)).date()
    typed = org.activities.with_columns(
        _key=pl.col("type").cast(pl.String),
        _archived=pl.col("occurred_at").dt.date() <= archived_before,
    )
    touches = typed.join(table, on="_key", how="inner", maintain_order="left")
    return _with_people(touches, org.people)


def _members(org: Org, campaigns: Mapping[str, CampaignKind]) -> pl.DataFrame:
    """Each person's first registration or download per campaign, numbered."""
    kinds = list(campaigns)
    activities = org.activities.filter(
        pl.col("type").cast(pl.String).is_in(kinds)
        & pl.col("topic").is_not_null()
        & pl.col("person_id").is_not_null()
    )
    campaign = pl.col("type").cast(pl.String).replace_strict(
        {key: index for index, key in enumerate(kinds)}, return_dtype=pl.Int64
    ) * len(TOPICS) + pl.col("topic").to_physical().cast(pl.Int64)
    first = (
        activities.with_columns(campaign=campaign)
        .group_by("campaign", "person_id")
        .agg(pl.col("occurred_at").min(), pl.col("type").first(), pl.col("topic").first())
        .sort("occurred_at", "campaign", "person_id")
        .with_row_index("member")
    )
    statuses = {key: kind.member_status for key, kind in campaigns.items()}
    status = pl.col("type").cast(pl.String).replace_strict(statuses, return_dtype=pl.String)
    return _with_people(first, org.people).with_columns(
        owner_id=pl.lit(None), modified_at=pl.col("occurred_at"), _status=status
    )


def _campaigns(members: pl.DataFrame, campaigns: Mapping[str, CampaignKind]) -> pl.DataFrame:
    """One campaign per (kind, topic) that has members, started at its first member."""
    labels = {key: kind.label for key, kind in campaigns.items()}
    types = {key: kind.type for key, kind in campaigns.items()}
    key = pl.col("type").cast(pl.String)
    return (
        members.group_by("campaign")
        .agg(pl.col("occurred_at").min(), pl.col("type").first(), pl.col("topic").first())
        .sort("campaign")
        .with_columns(
            _label=key.replace_strict(labels, return_dtype=pl.String),
            _type=key.replace_strict(types, return_dtype=pl.String),
            owner_id=pl.lit(None),
            modified_at=pl.col("occurred_at"),
        )
    )
