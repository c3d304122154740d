"""HubSpot's objects, their properties and association types, as data.

Every object the dialect serves is one ``ObjectSpec`` row; every property one ``PropertySpec`` row.
Routes, rendering, search and writes read these tables; nothing is written per object.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.vocab import INDUSTRIES, PRODUCT_LINES

__all__ = [
    "ASSOCIATION_TYPES",
    "GROUPS",
    "OBJECTS",
    "PROPERTIES",
    "REVERSE_TYPES",
    "AssociationType",
    "ObjectSpec",
    "PropertySpec",
    "association_types",
    "object_spec",
    "type_of",
    "type_pairs",
]


@dataclass(frozen=True)
class ObjectSpec:
    """One CRM object: its names, type id and the properties that play fixed roles."""

    name: str  # plural path name: "contacts"
    singular: str  # "contact" (v3 association type names, HUBSPOT_DEFINED labels)
    type_id: str  # "0-1"
    created: str  # "createdate" or "hs_createdate"
    modified: str  # "lastmodifieddate" on contacts, "hs_lastmodifieddate" elsewhere
    defaults: tuple[str, ...]  # properties returned when none are asked for
    text_search: tuple[str, ...]  # properties the search ``query`` looks in


@dataclass(frozen=True)
class PropertySpec:
    """One property definition, as the Properties API shows it."""

    name: str
    label: str
    type: str  # string | number | date | datetime | enumeration | bool
    field_type: str  # text | textarea | number | date | select | radio | checkbox | booleancheckbox
    group: str
    options: tuple[tuple[str, str], ...] = ()  # (value, label)
    hubspot_defined: bool = True
    read_only: bool = False
    unique: bool = False
    description: str = ""


@dataclass(frozen=True)
class AssociationType:
    """A HUBSPOT_DEFINED association type between two objects (v4 type ids)."""

    source: str
    target: str
    type_id: int
    label: str | None = None  # "Primary" for the primary company; None when unlabeled
    v3_name: str = ""  # the v3 ``type`` string, e.g. "contact_to_company_unlabeled"


_ENGAGEMENT_DEFAULTS = ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")


def _engagement(name: str, singular: str, type_id: str, text: tuple[str, ...]) -> ObjectSpec:
    """Engagements share their created/modified properties and defaults."""
    return ObjectSpec(
        name, singular, type_id, "hs_createdate", "hs_lastmodifieddate", _ENGAGEMENT_DEFAULTS, text
    )


OBJECTS: dict[str, ObjectSpec] = {
    spec.name: spec
    for spec in (
        ObjectSpec(
            "companies",
            "company",
            "0-2",
            "createdate",
            "hs_lastmodifieddate",
            ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
            ("name", "domain", "website", "phone"),
        ),
        ObjectSpec(
            "contacts",
            "contact",
            "0-1",
            "createdate",
            "lastmodifieddate",
            ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
            ("firstname", "lastname", "email", "phone", "company"),
        ),
        ObjectSpec(
            "deals",
            "deal",
            "0-3",
            "createdate",
            "hs_lastmodifieddate",
            (
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ),
            ("dealname",),
        ),
        _engagement("calls", "call", "0-48", ("hs_call_title", "hs_call_body")),
        _engagement("emails", "email", "0-49", ("hs_email_subject", "hs_email_text")),
        _engagement("meetings", "meeting", "0-47", ("hs_meeting_title", "hs_meeting_body")),
        _engagement("notes", "note", "0-46", ("hs_note_body",)),
        _engagement("tasks", "task", "0-27", ("hs_task_subject", "hs_task_body")),
    )
}

_ALIASES = {
    **{spec.name: spec.name for spec in OBJECTS.values()},
    **{spec.singular: spec.name for spec in OBJECTS.values()},
    **{spec.type_id: spec.name for spec in OBJECTS.values()},
}


def object_spec(name: str) -> ObjectSpec | None:
    """The object a path segment names: plural, singular or type id ("contacts", "0-1")."""
    canonical = _ALIASES.get(name.lower())
    return OBJECTS[canonical] if canonical else None


GROUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "companies": (("companyinformation", "Company information"),),
    "contacts": (
        ("contactinformation", "Contact information"),
        ("analyticsinformation", "Web analytics history"),
    ),
    "deals": (("dealinformation", "Deal information"),),
    "calls": (("callinformation", "Call information"),),
    "emails": (("emailinformation", "Email information"),),
    "meetings": (("meetinginformation", "Meeting information"),),
    "notes": (("noteinformation", "Note information"),),
    "tasks": (("taskinformation", "Task information"),),
}


def _options(*values: str) -> tuple[tuple[str, str], ...]:
    """Options whose label is the value in title case."""
    return tuple((value, value.replace("_", " ").title()) for value in values)


_LIFECYCLE = _options(
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
_INDUSTRY = tuple((i.name.upper().replace(" ", "_"), i.name) for i in INDUSTRIES)
_DEAL_STAGES = (
    ("appointmentscheduled", "Appointment Scheduled"),
    ("qualifiedtobuy", "Qualified To Buy"),
    ("presentationscheduled", "Presentation Scheduled"),
    ("decisionmakerboughtin", "Decision Maker Bought-In"),
    ("contractsent", "Contract Sent"),
    ("closedwon", "Closed Won"),
    ("closedlost", "Closed Lost"),
)


def _common(group: str, created: str, modified: str) -> tuple[PropertySpec, ...]:
    """The properties every object has: id, owner, created and modified."""
    return (
        PropertySpec("hs_object_id", "Record ID", "number", "number", group, read_only=True),
        PropertySpec("hubspot_owner_id", "Owner", "enumeration", "select", group),
        PropertySpec(created, "Create Date", "datetime", "date", group, read_only=True),
        PropertySpec(modified, "Last Modified Date", "datetime", "date", group, read_only=True),
    )


def _text(group: str, *names: tuple[str, str]) -> tuple[PropertySpec, ...]:
    """Plain single-line text properties."""
    return tuple(PropertySpec(name, label, "string", "text", group) for name, label in names)


_COMPANY = "companyinformation"
_CONTACT = "contactinformation"
_DEAL = "dealinformation"
_ANALYTICS_SOURCES = _options(
    "ORGANIC_SEARCH",
    "PAID_SEARCH",
    "EMAIL_MARKETING",
    "SOCIAL_MEDIA",
    "REFERRALS",
    "OTHER_CAMPAIGNS",
    "DIRECT_TRAFFIC",
    "OFFLINE",
    "PAID_SOCIAL",
)
_LEAD_STATUSES = (
    *_options("NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED"),
    *_options("ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING"),
    ("NURTURING", "Nurturing"),
)
CURRENCY_CODES = ("USD", "EUR", "GBP", "JPY", "CHF")


def _address(group: str) -> tuple[PropertySpec, ...]:
    """The address properties companies and contacts share (all single-line text)."""
    return _text(
        group,
        ("address", "Street Address"),
        ("address2", "Street Address 2"),
        ("state", "State/Region"),
        ("zip", "Postal Code"),
    )


def _last_activity(group: str) -> PropertySpec:
    return PropertySpec(
        "notes_last_updated", "Last Activity Date", "datetime", "date", group, read_only=True
    )


# HubSpot's common default properties beyond what the generated world fills (null unless set):
# https://knowledge.hubspot.com/properties/hubspots-default-company-properties (and the
# contact and deal pages beside it); types as the v3 Properties API reports them
_DEFAULT_COMPANY: tuple[PropertySpec, ...] = (
    PropertySpec("description", "Description", "string", "textarea", _COMPANY),
    *_address(_COMPANY),
    PropertySpec(
        "hs_lead_status", "Lead Status", "enumeration", "select", _COMPANY, _LEAD_STATUSES
    ),
    *_text(
        _COMPANY,
        ("founded_year", "Year Founded"),
        ("linkedin_company_page", "LinkedIn Company Page"),
    ),
    PropertySpec(
        "is_public", "Is Public", "bool", "booleancheckbox", _COMPANY, _options("true", "false")
    ),
    PropertySpec("total_money_raised", "Total Money Raised", "string", "text", _COMPANY),
    PropertySpec(
        "hs_analytics_source",
        "Original Traffic Source",
        "enumeration",
        "select",
        _COMPANY,
        _ANALYTICS_SOURCES,
        read_only=True,
    ),
    _last_activity(_COMPANY),
)
_DEFAULT_CONTACT: tuple[PropertySpec, ...] = (
    *_address(_CONTACT),
    *_text(
        _CONTACT,
        ("mobilephone", "Mobile Phone Number"),
        ("website", "Website URL"),
        ("industry", "Industry"),
        ("annualrevenue", "Annual Revenue"),
    ),
    PropertySpec(
        "numemployees",
        "Number of Employees",
        "enumeration",
        "select",
        _CONTACT,
        tuple((v, v) for v in ("1-5", "5-25", "25-50", "50-100", "100-500", "500-1000", "1000+")),
    ),
    PropertySpec("message", "Message", "string", "textarea", _CONTACT),
    _last_activity(_CONTACT),
)
_DEFAULT_DEAL: tuple[PropertySpec, ...] = (
    PropertySpec("description", "Deal Description", "string", "textarea", _DEAL),
    PropertySpec(
        "dealtype",
        "Deal Type",
        "enumeration",
        "radio",
        _DEAL,
        (("newbusiness", "New Business"), ("existingbusiness", "Existing Business")),
    ),
    PropertySpec(
        "deal_currency_code",
        "Currency",
        "enumeration",
        "select",
        _DEAL,
        tuple((code, code) for code in CURRENCY_CODES),
    ),
    PropertySpec(
        "amount_in_home_currency",
        "Amount in company currency",
        "number",
        "number",
        _DEAL,
        read_only=True,
    ),
    PropertySpec(
        "hs_deal_stage_probability",
        "Deal Stage Probability",
        "number",
        "number",
        _DEAL,
        read_only=True,
    ),
    PropertySpec("hs_forecast_probability", "Forecast Probability", "number", "number", _DEAL),
    PropertySpec(
        "hs_forecast_amount", "Forecast Amount", "number", "number", _DEAL, read_only=True
    ),
    PropertySpec("hs_next_step", "Next Step", "string", "textarea", _DEAL),
    PropertySpec(
        "hs_priority", "Priority", "enumeration", "select", _DEAL, _options("low", "medium", "high")
    ),
    PropertySpec(
        "hs_analytics_source",
        "Original Traffic Source",
        "enumeration",
        "select",
        _DEAL,
        _ANALYTICS_SOURCES,
        read_only=True,
    ),
    _last_activity(_DEAL),
)

PROPERTIES: dict[str, tuple[PropertySpec, ...]] = {
    "companies": (
        *_common(_COMPANY, "createdate", "hs_lastmodifieddate"),
        *_text(
            _COMPANY,
            ("name", "Company name"),
            ("domain", "Company Domain Name"),
            ("website", "Website URL"),
            ("country", "Country/Region"),
            ("city", "City"),
            ("phone", "Phone Number"),
        ),
        PropertySpec(
            "hs_additional_domains", "Additional Domains", "enumeration", "checkbox", _COMPANY
        ),
        PropertySpec("industry", "Industry", "enumeration", "select", _COMPANY, _INDUSTRY),
        PropertySpec("numberofemployees", "Number of Employees", "number", "number", _COMPANY),
        PropertySpec("annualrevenue", "Annual Revenue", "number", "number", _COMPANY),
        PropertySpec(
            "hs_parent_company_id", "Parent Company", "number", "number", _COMPANY, read_only=True
        ),
        PropertySpec(
            "lifecyclestage", "Lifecycle Stage", "enumeration", "radio", _COMPANY, _LIFECYCLE
        ),
        PropertySpec(
            "type",
            "Type",
            "enumeration",
            "select",
            _COMPANY,
            (
                *_options("PROSPECT", "PARTNER", "RESELLER", "VENDOR", "OTHER"),
                ("COMPETITOR", "Competitor"),
            ),
        ),
        PropertySpec(
            "hs_merged_object_ids",
            "Merged Company IDs",
            "enumeration",
            "checkbox",
            _COMPANY,
            read_only=True,
        ),
        *_DEFAULT_COMPANY,
    ),
    "contacts": (
        *_common(_CONTACT, "createdate", "lastmodifieddate"),
        PropertySpec("email", "Email", "string", "text", _CONTACT, unique=True),
        *_text(
            _CONTACT,
            ("firstname", "First Name"),
            ("lastname", "Last Name"),
            ("company", "Company Name"),
            ("jobtitle", "Job Title"),
            ("phone", "Phone Number"),
            ("country", "Country/Region"),
            ("city", "City"),
        ),
        PropertySpec(
            "lifecyclestage", "Lifecycle Stage", "enumeration", "radio", _CONTACT, _LIFECYCLE
        ),
        PropertySpec(
            "hs_lead_status", "Lead Status", "enumeration", "radio", _CONTACT, _LEAD_STATUSES
        ),
        PropertySpec(
            "hs_analytics_source",
            "Original Traffic Source",
            "enumeration",
            "select",
            _CONTACT,
            _options("ORGANIC_SEARCH", "REFERRALS", "DIRECT_TRAFFIC", "OFFLINE", "OTHER_CAMPAIGNS"),
            read_only=True,
        ),
        PropertySpec(
            "associatedcompanyid", "Primary Associated Company ID", "number", "number", _CONTACT
        ),
        PropertySpec(
            "hs_merged_object_ids",
            "Merged Contact IDs",
            "enumeration",
            "checkbox",
            _CONTACT,
            read_only=True,
        ),
        *_DEFAULT_CONTACT,
        # set by HubSpot's tracking code and forms (sandbox/hubspot/analytics.py)
        *(
            PropertySpec(name, label, kind, field, "analyticsinformation", read_only=True)
            for name, label, kind, field in (
                ("hs_analytics_last_url", "Last page seen", "string", "text"),
                ("recent_conversion_event_name", "Recent Conversion", "string", "text"),
                ("recent_conversion_date", "Recent Conversion Date", "datetime", "date"),
            )
        ),
    ),
    "deals": (
        *_common(_DEAL, "createdate", "hs_lastmodifieddate"),
        PropertySpec("dealname", "Deal Name", "string", "text", _DEAL),
        PropertySpec("amount", "Amount", "number", "number", _DEAL),
        PropertySpec("dealstage", "Deal Stage", "enumeration", "radio", _DEAL, _DEAL_STAGES),
        PropertySpec(
            "pipeline", "Pipeline", "enumeration", "select", _DEAL, (("default", "Sales Pipeline"),)
        ),
        PropertySpec("closedate", "Close Date", "datetime", "date", _DEAL),
        # calculated from the deal stage's metadata (sandbox/hubspot/pipelines.py)
        PropertySpec(
            "hs_is_closed", "Is Deal Closed?", "bool", "booleancheckbox", _DEAL, read_only=True
        ),
        PropertySpec(
            "hs_is_closed_won", "Is Closed Won", "bool", "booleancheckbox", _DEAL, read_only=True
        ),
        PropertySpec(
            "hs_merged_object_ids",
            "Merged Deal IDs",
            "enumeration",
            "checkbox",
            _DEAL,
            read_only=True,
        ),
        PropertySpec(
            "product_line",
            "Product line",
            "enumeration",
            "select",
            _DEAL,
            tuple((p.lower().replace(" ", "_"), p) for p in PRODUCT_LINES),
            hubspot_defined=False,
            description="Custom property of the sandbox portal: the product the deal is for.",
        ),
        *_DEFAULT_DEAL,
    ),
    "calls": (
        *_common("callinformation", "hs_createdate", "hs_lastmodifieddate"),
        PropertySpec("hs_timestamp", "Activity date", "datetime", "date", "callinformation"),
        *_text("callinformation", ("hs_call_title", "Call Title"), ("hs_call_body", "Call notes")),
        PropertySpec(
            "hs_call_direction",
            "Call direction",
            "enumeration",
            "select",
            "callinformation",
            _options("INBOUND", "OUTBOUND"),
        ),
        PropertySpec(
            "hs_call_status",
            "Call status",
            "enumeration",
            "select",
            "callinformation",
            _options("COMPLETED", "BUSY", "NO_ANSWER", "FAILED", "CANCELED"),
        ),
        PropertySpec(
            "hs_call_duration", "Call duration (ms)", "number", "number", "callinformation"
        ),
    ),
    "emails": (
        *_common("emailinformation", "hs_createdate", "hs_lastmodifieddate"),
        PropertySpec("hs_timestamp", "Activity date", "datetime", "date", "emailinformation"),
        *_text(
            "emailinformation",
            ("hs_email_subject", "Email subject"),
            ("hs_email_text", "Email body"),
        ),
        PropertySpec(
            "hs_email_direction",
            "Email direction",
            "enumeration",
            "select",
            "emailinformation",
            _options("EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL"),
        ),
        PropertySpec(
            "hs_email_status",
            "Email send status",
            "enumeration",
            "select",
            "emailinformation",
            _options("SENT", "SCHEDULED", "BOUNCED", "FAILED", "SENDING"),
        ),
    ),
    "meetings": (
        *_common("meetinginformation", "hs_createdate", "hs_lastmodifieddate"),
        PropertySpec("hs_timestamp", "Activity date", "datetime", "date", "meetinginformation"),
        *_text(
            "meetinginformation",
            ("hs_meeting_title", "Meeting name"),
            ("hs_meeting_body", "Meeting description"),
        ),
        PropertySpec(
            "hs_meeting_start_time", "Start time", "datetime", "date", "meetinginformation"
        ),
        PropertySpec("hs_meeting_end_time", "End time", "datetime", "date", "meetinginformation"),
        PropertySpec(
            "hs_meeting_outcome",
            "Meeting outcome",
            "enumeration",
            "select",
            "meetinginformation",
            _options("SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED"),
        ),
    ),
    "notes": (
        *_common("noteinformation", "hs_createdate", "hs_lastmodifieddate"),
        PropertySpec("hs_timestamp", "Activity date", "datetime", "date", "noteinformation"),
        PropertySpec("hs_note_body", "Note body", "string", "textarea", "noteinformation"),
    ),
    "tasks": (
        *_common("taskinformation", "hs_createdate", "hs_lastmodifieddate"),
        PropertySpec("hs_timestamp", "Due date", "datetime", "date", "taskinformation"),
        *_text("taskinformation", ("hs_task_subject", "Task Title")),
        PropertySpec("hs_task_body", "Notes", "string", "textarea", "taskinformation"),
        PropertySpec(
            "hs_task_status",
            "Task Status",
            "enumeration",
            "select",
            "taskinformation",
            _options("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"),
        ),
        PropertySpec(
            "hs_task_priority",
            "Priority",
            "enumeration",
            "select",
            "taskinformation",
            _options("NONE", "LOW", "MEDIUM", "HIGH"),
        ),
        PropertySpec(
            "hs_task_type",
            "Task Type",
            "enumeration",
            "select",
            "taskinformation",
            _options("CALL", "EMAIL", "TODO"),
        ),
    ),
}


def _pair(source: str, target: str, there: int, back: int, label: str | None = None) -> tuple:
    """Both directions of one association: source->target ``there``, target->source ``back``."""
    src, tgt = OBJECTS[source].singular, OBJECTS[target].singular
    suffix = "" if label else "_unlabeled"
    return (
        AssociationType(source, target, there, label, f"{src}_to_{tgt}{suffix}"),
        AssociationType(target, source, back, label, f"{tgt}_to_{src}{suffix}"),
    )


# https://developers.hubspot.com/docs/api/crm/associations (association type id tables)
ASSOCIATION_TYPES: tuple[AssociationType, ...] = (
    *_pair("contacts", "companies", 1, 2, "Primary"),
    *_pair("contacts", "companies", 279, 280),
    *_pair("deals", "companies", 5, 6, "Primary"),
    *_pair("deals", "companies", 341, 342),
    *_pair("deals", "contacts", 3, 4),
    AssociationType("companies", "companies", 13, "Child Company", "parent_to_child_company"),
    AssociationType("companies", "companies", 14, "Parent Company", "child_to_parent_company"),
    *_pair("calls", "contacts", 194, 193),
    *_pair("calls", "companies", 182, 181),
    *_pair("emails", "contacts", 198, 197),
    *_pair("emails", "companies", 186, 185),
    *_pair("meetings", "contacts", 200, 199),
    *_pair("meetings", "companies", 188, 187),
    *_pair("notes", "contacts", 202, 201),
    *_pair("notes", "companies", 190, 189),
    *_pair("tasks", "contacts", 204, 203),
    *_pair("tasks", "companies", 192, 191),
)


def association_types(source: str, target: str) -> tuple[AssociationType, ...]:
    """The defined association types from ``source`` to ``target``."""
    return tuple(t for t in ASSOCIATION_TYPES if t.source == source and t.target == target)


def type_pairs(source: str, target: str) -> tuple[tuple[int, int], ...]:
    """(type id, reverse type id) of each defined association from ``source`` to ``target``."""
    back = {t.label: t.type_id for t in association_types(target, source)}
    return tuple((t.type_id, back[t.label]) for t in association_types(source, target))


def _reverses() -> dict[int, int]:
    """Each association type id's reverse (parent/child companies point at each other)."""
    pairs = {(t.source, t.target) for t in ASSOCIATION_TYPES if t.source != t.target}
    found = {there: back for s, t in pairs for there, back in type_pairs(s, t)}
    return {**found, 13: 14, 14: 13}


REVERSE_TYPES = _reverses()


def type_of(source: str, type_id: int) -> AssociationType | None:
    """The association type ``type_id`` from ``source`` (None if it is not one)."""
    return next((t for t in ASSOCIATION_TYPES if t.source == source and t.type_id == type_id), None)
