"""The Salesforce objects the sandbox serves, as data: each object's fields with their types.

A `Field` carries what describe reports and what writes enforce (required, writable, length,
picklist values, lookup targets). `FIELD_TYPES` ties each describe type to its polars column
type, its SOQL kind and its SOAP type. `DERIVED` holds the fields Salesforce computes on save
(``Name`` of a Lead, ``IsWon`` of an Opportunity) as polars expressions over the saved rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, NamedTuple

import polars as pl

from sandbox.salesforce.ids import KEY_PREFIXES
from sandbox.vocab import INDUSTRIES, PRODUCT_LINES

__all__ = [
    "CAMPAIGN_TYPES",
    "CLOSED_STAGES",
    "CURRENT_USER",
    "DERIVED",
    "FIELD_TYPES",
    "STANDARD_OBJECTS",
    "TASK_SUBTYPES",
    "TASK_TYPES",
    "Field",
    "FieldType",
    "SObject",
]

CURRENT_USER = "$User.Id"  # a default: the id of the user the session belongs to


class FieldType(NamedTuple):
    """How a describe type is stored, queried and described."""

    dtype: pl.DataType
    soql_kind: str
    soap_type: str


_TEXT = FieldType(pl.String(), "string", "xsd:string")
_DOUBLE = FieldType(pl.Float64(), "double", "xsd:double")
# describe type -> storage and query semantics
FIELD_TYPES: dict[str, FieldType] = {
    "id": FieldType(pl.String(), "id", "tns:ID"),
    "reference": FieldType(pl.String(), "reference", "tns:ID"),
    "string": _TEXT,
    "combobox": _TEXT,
    "email": _TEXT,
    "phone": _TEXT,
    "url": _TEXT,
    "textarea": FieldType(pl.String(), "textarea", "xsd:string"),
    "picklist": FieldType(pl.String(), "picklist", "xsd:string"),
    "boolean": FieldType(pl.Boolean(), "boolean", "xsd:boolean"),
    "int": FieldType(pl.Int64(), "int", "xsd:int"),
    "double": _DOUBLE,
    "currency": _DOUBLE,
    "percent": _DOUBLE,
    "date": FieldType(pl.Date(), "date", "xsd:date"),
    "datetime": FieldType(pl.Datetime("us", "UTC"), "datetime", "xsd:dateTime"),
}


@dataclass(frozen=True)
class Field:
    """One field of an object, as describe reports it and writes enforce it."""

    name: str
    type: str
    label: str
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    defaulted: bool = False  # Salesforce fills it on create when the request leaves it out
    default: Any = None
    reference_to: tuple[str, ...] = ()
    relationship: str | None = None
    child_relationship: str | None = None  # the parent's name for its children ("Contacts")
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    custom: bool = False
    external_id: bool = False
    unique: bool = False
    precision: int = 0
    scale: int = 0

    @property
    def required(self) -> bool:
        """Whether a create must give it a value."""
        return not self.nillable and self.createable and not self.defaulted

    @property
    def kind(self) -> FieldType:
        """Storage and query semantics of its type."""
        return FIELD_TYPES[self.type]


@dataclass(frozen=True)
class SObject:
    """An object: its fields in describe order and what the API may do with its records."""

    name: str
    label: str
    label_plural: str
    fields: tuple[Field, ...]
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    custom: bool = False

    @property
    def key_prefix(self) -> str:
        """The first three characters of its ids."""
        return KEY_PREFIXES[self.name]

    @cached_property
    def required_fields(self) -> tuple[Field, ...]:
        """The fields a create must set, in describe order."""
        return tuple(f for f in self.fields if f.required)

    @cached_property
    def _by_name(self) -> dict[str, Field]:
        return {f.name.lower(): f for f in self.fields}

    def field(self, name: str) -> Field | None:
        """A field by name, whatever the casing."""
        return self._by_name.get(name.lower())

    def with_field(self, new: Field) -> SObject:
        """This object with ``new`` added, or replacing the field of the same name."""
        kept = tuple(f for f in self.fields if f.name.lower() != new.name.lower())
        return replace(self, fields=(*kept, new))


_READ_ONLY = {"createable": False, "updateable": False, "nillable": False, "defaulted": True}


def _system_fields(deletable: bool = True) -> tuple[Field, ...]:
    """The audit fields every object has (Users have no IsDeleted)."""
    deleted = (Field("IsDeleted", "boolean", "Deleted", **_READ_ONLY, default=False),)
    deleted = deleted if deletable else ()
    return (
        *deleted,
        Field("CreatedDate", "datetime", "Created Date", **_READ_ONLY),
        Field("LastModifiedDate", "datetime", "Last Modified Date", **_READ_ONLY),
        Field("SystemModstamp", "datetime", "System Modstamp", **_READ_ONLY),
    )


def _master_record(name: str) -> Field:
    """The survivor a record merged away points at (set by a merge, read through queryAll)."""
    return Field(
        "MasterRecordId",
        "reference",
        "Master Record ID",
        18,
        createable=False,
        updateable=False,
        reference_to=(name,),
        relationship="MasterRecord",
    )


def _id(label: str) -> Field:
    return Field("Id", "id", label, 18, **_READ_ONLY)


def _account_lookup(**extra: Any) -> Field:
    """The AccountId lookup that Contacts, Opportunities and activities carry."""
    return Field(
        "AccountId",
        "reference",
        "Account ID",
        18,
        reference_to=("Account",),
        relationship="Account",
        **extra,
    )


def _owner(*targets: str) -> Field:
    return Field(
        "OwnerId",
        "reference",
        "Owner ID",
        18,
        nillable=False,
        defaulted=True,
        default=CURRENT_USER,
        reference_to=targets or ("User",),
        relationship="Owner",
    )


def _name(length: int = 121) -> Field:
    return Field("Name", "string", "Full Name", length, createable=False, updateable=False)


CLOSED_STAGES = ("Closed Won", "Closed Lost")
_OPEN_STAGES = ("Prospecting", "Qualification", "Needs Analysis", "Proposal", "Negotiation")
_LEAD_SOURCES = (
    "Web",
    "Webinar",
    "Trade Show",
    "Referral",
    "Purchased List",
    "Organic Search",
    "Phone Inquiry",
    "Partner Referral",
    "Other",
)
_ACCOUNT_TYPES = (
    "Prospect",
    "Customer - Direct",
    "Customer - Channel",
    "Channel Partner / Reseller",
    "Technology Partner",
    "Competitor",
    "Other",
)
# Task Type values: the rep's own (Call, Email, Meeting), those marketing automation syncs, and
# the second convention's (`sandbox.salesforce.mapping.CONVENTIONS`)
TASK_TYPES = (
    "Call",
    "Email",
    "Meeting",
    "Web Visit",
    "Form Submission",
    "Webinar",
    "Content Download",
    "Email Engagement",
    "Marketing Activity",
    "Other",
)
# TaskSubtype: what kind of task the UI created (a List Email is a mass email, a Cadence step
# comes from Sales Engagement); restricted, set on create only
TASK_SUBTYPES = ("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn")
CAMPAIGN_TYPES = (
    "Advertisement",
    "Banner Ads",
    "Conference",
    "Content",
    "Content Syndication",
    "Direct Mail",
    "Email",
    "Partners",
    "Public Relations",
    "Referral Program",
    "Telemarketing",
    "Trade Show",
    "Virtual Event",
    "Webinar",
    "Other",
)

_ACCOUNT = SObject(
    "Account",
    "Account",
    "Accounts",
    (
        _id("Account ID"),
        Field("Name", "string", "Account Name", 255, nillable=False),
        Field("Type", "picklist", "Account Type", 255, picklist=_ACCOUNT_TYPES),
        Field(
            "ParentId",
            "reference",
            "Parent Account ID",
            18,
            reference_to=("Account",),
            relationship="Parent",
            child_relationship="ChildAccounts",
        ),
        Field("BillingCity", "string", "Billing City", 40),
        Field("BillingCountry", "string", "Billing Country", 80),
        Field("Phone", "phone", "Account Phone", 40),
        Field("Website", "url", "Website", 255),
        Field("Industry", "picklist", "Industry", 255, picklist=tuple(i.name for i in INDUSTRIES)),
        Field("NumberOfEmployees", "int", "Employees", precision=8),
        Field("AnnualRevenue", "currency", "Annual Revenue", precision=18),
        _owner(),
        *_system_fields(),
        _master_record("Account"),
    ),
)

_LEAD = SObject(
    "Lead",
    "Lead",
    "Leads",
    (
        _id("Lead ID"),
        Field("FirstName", "string", "First Name", 40),
        Field("LastName", "string", "Last Name", 80, nillable=False),
        _name(),
        Field("Email", "email", "Email", 80),
        Field("Company", "string", "Company", 255, nillable=False),
        Field("Title", "string", "Title", 128),
        Field("Phone", "phone", "Phone", 40),
        Field("Country", "string", "Country", 80),
        Field("City", "string", "City", 40),
        Field(
            "Status",
            "picklist",
            "Status",
            255,
            nillable=False,
            defaulted=True,
            default="Open",
            picklist=("Open", "Working", "Nurturing", "Unqualified", "Converted"),
        ),
        Field("LeadSource", "picklist", "Lead Source", 255, picklist=_LEAD_SOURCES),
        _owner(),
        Field("IsConverted", "boolean", "Converted", **_READ_ONLY, default=False),
        Field(
            "ConvertedAccountId",
            "reference",
            "Converted Account ID",
            18,
            createable=False,
            updateable=False,
            reference_to=("Account",),
            relationship="ConvertedAccount",
        ),
        Field(
            "ConvertedContactId",
            "reference",
            "Converted Contact ID",
            18,
            createable=False,
            updateable=False,
            reference_to=("Contact",),
            relationship="ConvertedContact",
        ),
        Field("ConvertedDate", "date", "Converted Date", createable=False, updateable=False),
        *_system_fields(),
        _master_record("Lead"),
    ),
)

_CONTACT = SObject(
    "Contact",
    "Contact",
    "Contacts",
    (
        _id("Contact ID"),
        _account_lookup(child_relationship="Contacts"),
        Field("FirstName", "string", "First Name", 40),
        Field("LastName", "string", "Last Name", 80, nillable=False),
        _name(),
        Field("Email", "email", "Email", 80),
        Field("Title", "string", "Title", 128),
        Field("Phone", "phone", "Business Phone", 40),
        Field("MailingCity", "string", "Mailing City", 40),
        Field("MailingCountry", "string", "Mailing Country", 80),
        Field("LeadSource", "picklist", "Lead Source", 255, picklist=_LEAD_SOURCES),
        _owner(),
        *_system_fields(),
        _master_record("Contact"),
    ),
)

_USER = SObject(
    "User",
    "User",
    "Users",
    (
        _id("User ID"),
        Field("Username", "string", "Username", 80, nillable=False, unique=True),
        Field("Email", "email", "Email", 128, nillable=False),
        Field("FirstName", "string", "First Name", 40),
        Field("LastName", "string", "Last Name", 80, nillable=False),
        _name(),
        Field("IsActive", "boolean", "Active", nillable=False, defaulted=True, default=True),
        Field("Department", "string", "Department", 80),
        Field("Division", "string", "Division", 80),
        Field(
            "UserRoleId",
            "reference",
            "Role ID",
            18,
            reference_to=("UserRole",),
            relationship="UserRole",
        ),
        Field(
            "ProfileId",
            "reference",
            "Profile ID",
            18,
            nillable=False,
            reference_to=("Profile",),
            relationship="Profile",
        ),
        Field(
            "ManagerId",
            "reference",
            "Manager ID",
            18,
            reference_to=("User",),
            relationship="Manager",
            child_relationship="ManagedUsers",
        ),
        Field(
            "Out_of_Office__c",
            "boolean",
            "Out of Office",
            nillable=False,
            defaulted=True,
            default=False,
            custom=True,
        ),
        *_system_fields(deletable=False),
    ),
    createable=False,
    deletable=False,
)


def _setup_object(name: str, label: str, plural: str) -> SObject:
    """An org set-up object the API only reads (UserRole, Profile): an id, a name, audit."""
    return SObject(
        name,
        label,
        plural,
        (
            _id(f"{label} ID"),
            Field("Name", "string", "Name", 255, nillable=False),
            *_system_fields(deletable=False),
        ),
        createable=False,
        updateable=False,
        deletable=False,
    )


_USER_ROLE = _setup_object("UserRole", "Role", "Roles")
_PROFILE = _setup_object("Profile", "Profile", "Profiles")


def _activity_fields(type_values: tuple[str, ...]) -> tuple[Field, ...]:
    """What Tasks and Events share: who, what, the derived account, subject, type, owner."""
    return (
        Field(
            "WhoId",
            "reference",
            "Name ID",
            18,
            reference_to=("Contact", "Lead"),
            relationship="Who",
        ),
        Field(
            "WhatId",
            "reference",
            "Related To ID",
            18,
            reference_to=("Account", "Opportunity", "Campaign"),
            relationship="What",
        ),
        _account_lookup(createable=False, updateable=False),
        Field("Subject", "combobox", "Subject", 255),
        Field("Type", "picklist", "Type", 255, picklist=type_values),
        Field("Description", "textarea", "Description", 32000),
        _owner(),
        # set by Salesforce's archiving job, a year on: `sandbox.salesforce.mapping`
        Field("IsArchived", "boolean", "Archived", **_READ_ONLY, default=False),
    )


_TASK = SObject(
    "Task",
    "Task",
    "Tasks",
    (
        _id("Activity ID"),
        *_activity_fields(TASK_TYPES),
        Field("ActivityDate", "date", "Due Date Only"),
        Field(
            "Status",
            "picklist",
            "Status",
            255,
            nillable=False,
            defaulted=True,
            default="Not Started",
            picklist=("Not Started", "In Progress", "Completed", "Waiting on someone else"),
        ),
        Field(
            "Priority",
            "picklist",
            "Priority",
            255,
            nillable=False,
            defaulted=True,
            default="Normal",
            picklist=("High", "Normal", "Low"),
        ),
        Field(
            "TaskSubtype",
            "picklist",
            "Task Subtype",
            255,
            updateable=False,
            defaulted=True,
            default="Task",
            picklist=TASK_SUBTYPES,
            restricted=True,
        ),
        Field("IsClosed", "boolean", "Closed", **_READ_ONLY, default=False),
        *_system_fields(),
    ),
)

_EVENT = SObject(
    "Event",
    "Event",
    "Events",
    (
        _id("Activity ID"),
        *_activity_fields(("Meeting", "Call", "Other")),
        Field("ActivityDateTime", "datetime", "Due Date Time", nillable=False),
        Field("DurationInMinutes", "int", "Duration", nillable=False, precision=8),
        Field("ActivityDate", "date", "Due Date Only", createable=False, updateable=False),
        Field("StartDateTime", "datetime", "Start Date Time", createable=False, updateable=False),
        Field("EndDateTime", "datetime", "End Date Time", createable=False, updateable=False),
        Field(
            "EventSubtype",
            "picklist",
            "Event Subtype",
            255,
            updateable=False,
            defaulted=True,
            default="Event",
            picklist=("Event",),
            restricted=True,
        ),
        *_system_fields(),
    ),
)

_OPPORTUNITY = SObject(
    "Opportunity",
    "Opportunity",
    "Opportunities",
    (
        _id("Opportunity ID"),
        _account_lookup(child_relationship="Opportunities"),
        Field("Name", "string", "Name", 120, nillable=False),
        Field(
            "StageName",
            "picklist",
            "Stage",
            255,
            nillable=False,
            picklist=(*_OPEN_STAGES, *CLOSED_STAGES),
        ),
        Field("Amount", "currency", "Amount", precision=18, scale=2),
        Field("CloseDate", "date", "Close Date", nillable=False),
        Field("IsClosed", "boolean", "Closed", **_READ_ONLY, default=False),
        Field("IsWon", "boolean", "Won", **_READ_ONLY, default=False),
        Field("Type", "picklist", "Opportunity Type", 255, picklist=("New Business", "Renewal")),
        Field("LeadSource", "picklist", "Lead Source", 255, picklist=_LEAD_SOURCES),
        Field(
            "Product_Line__c",
            "picklist",
            "Product Line",
            255,
            picklist=PRODUCT_LINES,
            restricted=True,
            custom=True,
        ),
        _owner(),
        *_system_fields(),
    ),
)

_CAMPAIGN = SObject(
    "Campaign",
    "Campaign",
    "Campaigns",
    (
        _id("Campaign ID"),
        Field("Name", "string", "Name", 80, nillable=False),
        Field(
            "Type",
            "picklist",
            "Type",
            255,
            picklist=CAMPAIGN_TYPES,
        ),
        Field(
            "Status",
            "picklist",
            "Status",
            255,
            picklist=("Planned", "In Progress", "Completed", "Aborted"),
        ),
        Field("IsActive", "boolean", "Active", nillable=False, defaulted=True, default=False),
        Field("StartDate", "date", "Start Date"),
        Field("EndDate", "date", "End Date"),
        _owner(),
        *_system_fields(),
    ),
)

_CAMPAIGN_MEMBER = SObject(
    "CampaignMember",
    "Campaign Member",
    "Campaign Members",
    (
        _id("Campaign Member ID"),
        Field(
            "CampaignId",
            "reference",
            "Campaign ID",
            18,
            nillable=False,
            updateable=False,
            reference_to=("Campaign",),
            relationship="Campaign",
            child_relationship="CampaignMembers",
        ),
        Field(
            "LeadId",
            "reference",
            "Lead ID",
            18,
            updateable=False,
            reference_to=("Lead",),
            relationship="Lead",
            child_relationship="CampaignMembers",
        ),
        Field(
            "ContactId",
            "reference",
            "Contact ID",
            18,
            updateable=False,
            reference_to=("Contact",),
            relationship="Contact",
            child_relationship="CampaignMembers",
        ),
        Field(
            "Status",
            "picklist",
            "Status",
            255,
            picklist=("Sent", "Responded", "Registered", "Attended", "Downloaded"),
        ),
        Field("HasResponded", "boolean", "Responded", **_READ_ONLY, default=False),
        Field(
            "FirstRespondedDate", "date", "First Responded Date", createable=False, updateable=False
        ),
        *_system_fields(),
    ),
)

STANDARD_OBJECTS: tuple[SObject, ...] = (
    _ACCOUNT,
    _LEAD,
    _CONTACT,
    _USER,
    _USER_ROLE,
    _PROFILE,
    _TASK,
    _EVENT,
    _OPPORTUNITY,
    _CAMPAIGN,
    _CAMPAIGN_MEMBER,
)

_FULL_NAME = pl.concat_str("FirstName", "LastName", separator=" ", ignore_nulls=True)
_ACCOUNT_OF_WHAT = pl.when(pl.col("WhatId").str.starts_with(KEY_PREFIXES["Account"])).then("WhatId")
_RESPONDED = ("Responded", "Registered", "Attended", "Downloaded")
# object -> field -> how Salesforce computes it when a record is saved through the API
DERIVED: dict[str, dict[str, pl.Expr]] = {
    "Lead": {"Name": _FULL_NAME},
    "Contact": {"Name": _FULL_NAME},
    "User": {"Name": _FULL_NAME},
    "Opportunity": {
        "IsClosed": pl.col("StageName").is_in(CLOSED_STAGES).fill_null(False),
        "IsWon": (pl.col("StageName") == "Closed Won").fill_null(False),
    },
    "Task": {
        "IsClosed": (pl.col("Status") == "Completed").fill_null(False),
        "AccountId": _ACCOUNT_OF_WHAT,
    },
    "Event": {
        "AccountId": _ACCOUNT_OF_WHAT,
        "ActivityDate": pl.col("ActivityDateTime").dt.date(),
        "StartDateTime": pl.col("ActivityDateTime"),
        "EndDateTime": pl.col("ActivityDateTime")
        + pl.duration(minutes=pl.col("DurationInMinutes")),
    },
    "CampaignMember": {"HasResponded": pl.col("Status").is_in(_RESPONDED).fill_null(False)},
}
