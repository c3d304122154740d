"""Every object both connectors pull, declared as data: one `Stream` per CRM object.

A stream names its object (``path``), primary key and replication key, and maps CRM fields to
our field names with small converters (`FieldMap`). Which team a user is on and which signal an
activity is are the admin's rules (`connectors.rules`): a stream only names the CRM fields those
rules read (``facts``). Nothing here is written per object; the connectors read these tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from connectors.countries import country
from connectors.protocol import RAW_LIMIT, Entity, ValueWarning
from connectors.schema import OWNED_FIELDS, OWNER, owned_for

__all__ = [
    "HUBSPOT_STREAMS",
    "SALESFORCE_STREAMS",
    "WRITTEN_BACK",
    "FieldMap",
    "Link",
    "OfKind",
    "Stream",
    "converted",
    "day",
    "flag",
    "integer",
    "lookup",
    "normalise",
    "number",
    "stamp",
    "text",
]


# --- converters: CRM values (JSON or CSV text) to typed values ---------------------------


def text(value: Any) -> str | None:
    """Text, empty as None (a JSON object or list is not text: its repr is no value)."""
    if type(value) is str:  # nearly every value: no ABC check (a third of a REST page's reading)
        return value or None
    if isinstance(value, (Mapping, list, tuple)):
        raise TypeError(f"{type(value).__name__} is not text")
    return None if value is None or value == "" else str(value)


def number(value: Any) -> float | None:
    """A finite number ("1e999", "NaN" and infinities are not amounts)."""
    if value is None or value == "":
        return None
    parsed = float(value)
    if not math.isfinite(parsed):
        raise ValueError(f"{value!r} is not finite")
    return parsed


def integer(value: Any) -> int | None:
    """A whole number (HubSpot and CSV send "12" or "12.0")."""
    return None if value is None or value == "" else int(float(value))


def flag(value: Any) -> bool:
    """A checkbox: true, "true" or "True"; anything else false."""
    return value if isinstance(value, bool) else str(value).lower() == "true"


def stamp(value: Any) -> datetime | None:
    """An aware UTC datetime from ISO 8601 (any offset) or epoch milliseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError("a checkbox is not a time")
    if isinstance(value, (int, float)) or value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def day(value: Any) -> date | None:
    """A date (a datetime's date part when given one)."""
    return None if value is None or value == "" else date.fromisoformat(str(value)[:10])


_EXPECTED: dict[Callable[..., Any], str] = {
    text: "text",
    number: "a number",
    integer: "a whole number",
    stamp: "a date and time",
    day: "a date",
    country: "a country",
}


def lookup(source: Mapping[str, Any], name: str) -> Any:
    """A field of a raw record; ``Campaign.Name`` walks a JSON relationship or reads CSV."""
    if name in source:
        return source[name]
    head, _, rest = name.partition(".")
    inner = source.get(head)
    return lookup(inner, rest) if rest and isinstance(inner, Mapping) else None


# --- the declarations ----------------------------------------------------------------------


@dataclass(frozen=True)
class FieldMap:
    """Our field ``ours`` from the CRM fields ``theirs``, through ``convert``."""

    ours: str
    theirs: tuple[str, ...]
    convert: Callable[..., Any] = text


def _map(ours: str, theirs: str | tuple[str, ...], convert: Callable[..., Any] = text) -> FieldMap:
    return FieldMap(ours, theirs if isinstance(theirs, tuple) else (theirs,), convert)


@dataclass(frozen=True)
class Link:
    """A HubSpot association read into one of our fields (the primary type preferred)."""

    ours: str
    target: str
    primary_type: int | None = None


@dataclass(frozen=True)
class Stream:
    """One CRM object, as a Singer stream: name, path, keys, and its field map."""

    name: str
    entity: Entity
    path: str
    primary_key: str
    replication_key: str
    fields: tuple[FieldMap, ...]
    optional: tuple[FieldMap, ...] = ()  # read when the org has the field (custom, ours)
    constants: Mapping[str, Any] = field(default_factory=dict)
    links: tuple[Link, ...] = ()
    merge_field: str | None = None  # Salesforce MasterRecordId / HubSpot hs_merged_object_ids
    writable: tuple[str, ...] = ()  # our fields write-back may set
    # which HubSpot API serves it ("events": web touches, whatever the tier; connectors/hubspot_web)
    api: Literal["objects", "events", "email_events", "owners"] = "objects"
    # what the mapping rules read (`connectors.rules`): their fact -> the CRM field holding it
    facts: Mapping[str, str] = field(default_factory=dict)
    typed_by: Literal["activity", "user"] | None = None  # which rules give the record values

    def crm_fields(self, maps: Sequence[FieldMap] | None = None) -> list[str]:
        """The CRM fields the maps read, once each, in order."""
        names = [name for m in (self.fields if maps is None else maps) for name in m.theirs]
        return list(dict.fromkeys(names))


# what a converter raises on a value it cannot read ("abc" as a number, "2024-02-30", "http://[::1",
# an epoch the platform's datetime cannot represent: OSError)
_UNCONVERTIBLE = (
    ValueError,
    TypeError,
    ArithmeticError,
    AttributeError,
    KeyError,
    IndexError,
    OSError,
)


def normalise(
    stream: Stream, source: Mapping[str, Any], maps: Sequence[FieldMap]
) -> tuple[dict[str, Any], tuple[ValueWarning, ...]]:
    """A raw record's values under our names, and a warning for each value that could not be
    converted (that field is None; the rest of the record is kept)."""
    values = dict(stream.constants)
    warnings: list[ValueWarning] = []
    for m in maps:
        values[m.ours], warning = converted(m, [lookup(source, name) for name in m.theirs])
        if warning is not None:
            warnings.append(warning)
    return values, tuple(warnings)


def converted(m: FieldMap, raw: Sequence[Any]) -> tuple[Any, ValueWarning | None]:
    """One field's value from its raw CRM values, or None and a warning when they cannot be
    converted."""
    try:
        return m.convert(*raw), None
    except _UNCONVERTIBLE as error:
        return None, _warning(m, raw, error)


def _warning(m: FieldMap, raw: Sequence[Any], error: Exception) -> ValueWarning:
    """What could not be converted, the raw value cut short, and why (without the value, so
    warnings of one kind count together)."""
    shown = raw[0] if len(raw) == 1 else list(raw)
    expected = _EXPECTED.get(m.convert)
    why = f"not {expected}" if expected else f"unreadable ({type(error).__name__})"
    return ValueWarning(m.ours, str(shown)[:RAW_LIMIT], why)


_READ_BACK = ("disposition", "reason_code")
# our written fields, pulled back so write-back diffs against what the CRM holds now (an edit by
# hand is seen and repaired); read with these converters, text otherwise
WRITTEN_BACK = (
    *("score", "tier", "signals", "topic", "model_version", "scored_at"),
    *("disqualification_reason", "matched_account_id", "orphan_reason"),
)
_OWNED_CONVERTERS: dict[str, Callable[..., Any]] = {"score": number, "scored_at": stamp}


def _read_back(entity: Entity, crm: str) -> tuple[FieldMap, ...]:
    """Our own fields that sync reads back (what reps record: disposition, reason code)."""
    wanted = [f for f in OWNED_FIELDS if f.key in _READ_BACK and entity in f.entities]
    return tuple(_map(f.key, getattr(f, crm)) for f in wanted)


def _written_back(entity: Entity, crm: str) -> tuple[FieldMap, ...]:
    """The fields sync writes, read back as they stand in the CRM (they exist after set-up)."""
    wanted = [f for f in OWNED_FIELDS if f.key in WRITTEN_BACK and entity in f.entities]
    return tuple(_map(f.key, getattr(f, crm), _OWNED_CONVERTERS.get(f.key, text)) for f in wanted)


def _writable(entity: Entity) -> tuple[str, ...]:
    return (*(f.key for f in owned_for(entity)), OWNER)


# --- Salesforce ------------------------------------------------------------------------------

_CUSTOMER_TYPES = frozenset({"Customer - Direct", "Customer - Channel"})
NOT_PROVIDED = "[not provided]"  # Salesforce requires a Lead's Company; this means none


def _company(value: Any) -> str | None:
    return None if value == NOT_PROVIDED else text(value)


def _either(first: Any, second: Any) -> str | None:
    return text(first) or text(second)


_STAMP = "SystemModstamp"


def _salesforce(name: str, entity: Entity, fields: tuple[FieldMap, ...], **extra: Any) -> Stream:
    return Stream(name, entity, name, "Id", _STAMP, fields, **extra)


SALESFORCE_STREAMS: dict[str, Stream] = {
    s.name: s
    for s in (
        _salesforce(
            "User",
            "user",
            (
                _map("name", "Name"),
                _map("email", "Email"),
                _map("is_active", "IsActive", flag),
                _map("manager_id", "ManagerId"),
            ),
            optional=(_map("out_of_office", "Out_of_Office__c", flag),),
            constants={"out_of_office": False},
            facts={
                "role": "UserRole.Name",
                "profile": "Profile.Name",
                "department": "Department",
                "division": "Division",
                "email": "Email",
            },
            typed_by="user",
        ),
        _salesforce(
            "Account",
            "account",
            (
                _map("name", "Name"),
                _map("website", "Website"),
                _map("country", "BillingCountry", country),
                _map("industry", "Industry"),
                _map("employees", "NumberOfEmployees", integer),
                _map("revenue", "AnnualRevenue", number),
                _map("parent_id", "ParentId"),
                _map("owner_id", "OwnerId"),
                _map("is_customer", "Type", lambda t: t in _CUSTOMER_TYPES),
                _map("is_competitor", "Type", lambda t: t == "Competitor"),
                _map("created_at", "CreatedDate", stamp),
            ),
            optional=(
                *_read_back("account", "salesforce"),
                *_written_back("account", "salesforce"),
                _map("country", ("BillingCountryCode", "BillingCountry"), country),
            ),
            constants={"domain": None, "region": None},
            merge_field="MasterRecordId",
            writable=_writable("account"),
        ),
        _salesforce(
            "Lead",
            "person",
            (
                _map("first_name", "FirstName"),
                _map("last_name", "LastName"),
                _map("email", "Email"),
                _map("company", "Company", _company),
                _map("title", "Title"),
                _map("phone", "Phone"),
                _map("country", "Country", country),
                _map("city", "City"),
                _map("industry", "Industry"),
                _map("employees", "NumberOfEmployees", integer),
                _map("revenue", "AnnualRevenue", number),
                _map("is_converted", "IsConverted", flag),
                _map("converted_account_id", "ConvertedAccountId"),
                _map("owner_id", "OwnerId"),
            ),
            optional=(
                *_read_back("person", "salesforce"),
                *_written_back("person", "salesforce"),
                _map("country", ("CountryCode", "Country"), country),
            ),
            constants={"kind": "lead", "account_id": None},
            merge_field="MasterRecordId",
            writable=_writable("person"),
        ),
        _salesforce(
            "Contact",
            "person",
            (
                _map("account_id", "AccountId"),
                _map("first_name", "FirstName"),
                _map("last_name", "LastName"),
                _map("email", "Email"),
                _map("title", "Title"),
                _map("phone", "Phone"),
                _map("country", "MailingCountry", country),
                _map("city", "MailingCity"),
                _map("owner_id", "OwnerId"),
            ),
            optional=(_map("country", ("MailingCountryCode", "MailingCountry"), country),),
            constants={
                "kind": "contact",
                "company": None,  # a Contact's company is its Account
                **dict.fromkeys(("industry", "employees", "revenue")),
                "is_converted": False,
                "converted_account_id": None,
            },
            merge_field="MasterRecordId",
            writable=(OWNER,),
        ),
        _salesforce(
            "Opportunity",
            "opportunity",
            (
                _map("account_id", "AccountId"),
                _map("name", "Name"),
                _map("stage", "StageName"),
                _map("amount", "Amount", number),
                _map("opened_at", "CreatedDate", stamp),
                _map("close_date", "CloseDate", day),
                _map("is_closed", "IsClosed", flag),
                _map("is_won", "IsWon", flag),
                _map("owner_id", "OwnerId"),
            ),
        ),
        *(
            _salesforce(
                name,
                "activity",
                (
                    _map("occurred_at", occurred, stamp),
                    _map("person_id", "WhoId"),
                    _map("account_id", "AccountId"),
                    _map("owner_id", "OwnerId"),
                    _map("subject", "Subject"),
                ),
                facts={"type": "Type", "subtype": subtype, "subject": "Subject"},
                typed_by="activity",
            )
            for name, occurred, subtype in (
                ("Task", "CreatedDate", "TaskSubtype"),
                ("Event", "ActivityDateTime", "EventSubtype"),
            )
        ),
        # campaign responses often arrive as Tasks too: the default rules leave them untyped
        _salesforce(
            "CampaignMember",
            "activity",
            (
                _map("occurred_at", "CreatedDate", stamp),
                _map("person_id", ("LeadId", "ContactId"), _either),
                _map("subject", "Campaign.Name"),
            ),
            constants={"account_id": None, "owner_id": None},
            facts={"campaign_type": "Campaign.Type", "campaign": "Campaign.Name"},
            typed_by="activity",
        ),
    )
}


# --- HubSpot ---------------------------------------------------------------------------------

_CLOSED_STAGES = frozenset({"closedwon", "closedlost"})
_CONTACT_STAGES = frozenset({"salesqualifiedlead", "opportunity", "customer", "evangelist"})
_OUT_OF_OFFICE = "Out of Office"


def _industry(value: Any) -> str | None:
    """HubSpot's COMPUTER_SOFTWARE as Computer Software (Salesforce's picklist spelling)."""
    return None if not value else str(value).replace("_", " ").title()


def _employee_band(value: Any) -> int | None:
    """A contact's employee band ("25-50", "1000+") as the middle of the band (its floor when
    open-ended)."""
    if value is None or value == "":
        return None
    low, _, high = str(value).rstrip("+").partition("-")
    return (int(low) + int(high)) // 2 if high else int(low)


def _kind(lifecycle: Any) -> str:
    return "contact" if lifecycle in _CONTACT_STAGES else "lead"


def _full_name(first: Any, last: Any) -> str:
    return " ".join(part for part in (first, last) if part)


def _active(archived: Any) -> bool:
    return not flag(archived)


def _away(teams: Any) -> bool:
    return any(team.get("name") == _OUT_OF_OFFICE for team in teams or ())


@dataclass(frozen=True)
class OfKind:
    """A converter: an event's object id when its object is of ``kind`` (HubSpot's
    ``objectType``: CONTACT, COMPANY), else None (`connectors.columns` has its twin)."""

    kind: str

    def __call__(self, kind: Any, object_id: Any) -> str | None:
        return text(object_id) if kind == self.kind else None


def _closed(is_closed: Any, stage: Any) -> bool:
    """HubSpot's ``hs_is_closed`` (from the stage's metadata, so custom pipelines with numeric
    stage ids read right); the default pipeline's stage ids where a portal does not send it."""
    return flag(is_closed) if is_closed not in (None, "") else stage in _CLOSED_STAGES


def _won(is_won: Any, stage: Any) -> bool:
    """HubSpot's ``hs_is_closed_won``; the default pipeline's "closedwon" where it is absent."""
    return flag(is_won) if is_won not in (None, "") else stage == "closedwon"


# a web or marketing email touch in the events API's shape (every source is handed on in it),
# typed by the activity rules from its eventType and URL
_TOUCH_FIELDS = (
    _map("occurred_at", "occurredAt", stamp),
    _map("subject", "properties.hs_title"),
    _map("person_id", ("objectType", "objectId"), OfKind("CONTACT")),
    _map("account_id", ("objectType", "objectId"), OfKind("COMPANY")),
)
_TOUCH_FACTS = {"event": "eventType", "url": "properties.hs_url", "subject": "properties.hs_title"}


def _engagement(name: str, subject: str, direction: str | None = None) -> Stream:
    return Stream(
        name,
        "activity",
        name,
        "hs_object_id",
        "hs_lastmodifieddate",
        (
            _map("occurred_at", "hs_timestamp", stamp),
            _map("owner_id", "hubspot_owner_id"),
            _map("subject", subject),
        ),
        links=(Link("person_id", "contacts"), Link("account_id", "companies")),
        facts={"subject": subject, **({"subtype": direction} if direction else {})},
        typed_by="activity",
    )


HUBSPOT_STREAMS: dict[str, Stream] = {
    s.name: s
    for s in (
        Stream(
            "owners",
            "user",
            "owners",
            "id",
            "updatedAt",
            (
                _map("name", ("firstName", "lastName"), _full_name),
                _map("email", "email"),
                _map("is_active", "archived", _active),
                _map("out_of_office", "teams", _away),
            ),
            constants={"manager_id": None},
            api="owners",
            facts={"teams": "teams", "email": "email"},
            typed_by="user",
        ),
        Stream(
            "companies",
            "account",
            "companies",
            "hs_object_id",
            "hs_lastmodifieddate",
            (
                _map("name", "name"),
                _map("website", "website"),
                _map("domain", "domain"),
                _map("country", "country", country),
                _map("industry", "industry", _industry),
                _map("employees", "numberofemployees", integer),
                _map("revenue", "annualrevenue", number),
                _map("parent_id", "hs_parent_company_id", text),
                _map("owner_id", "hubspot_owner_id"),
                _map("is_customer", "lifecyclestage", lambda stage: stage == "customer"),
                _map("is_competitor", "type", lambda kind: kind == "COMPETITOR"),
                _map("created_at", "createdate", stamp),
                *_read_back("account", "hubspot"),
                *_written_back("account", "hubspot"),
            ),
            constants={"region": None},
            merge_field="hs_merged_object_ids",
            writable=_writable("account"),
        ),
        Stream(
            "contacts",
            "person",
            "contacts",
            "hs_object_id",
            "lastmodifieddate",
            (
                _map("kind", "lifecyclestage", _kind),
                _map("first_name", "firstname"),
                _map("last_name", "lastname"),
                _map("email", "email"),
                _map("company", "company"),
                _map("title", "jobtitle"),
                _map("phone", "phone"),
                _map("country", "country", country),
                _map("city", "city"),
                _map("industry", "industry", _industry),
                _map("employees", "numemployees", _employee_band),
                _map("revenue", "annualrevenue", number),
                _map("account_id", "associatedcompanyid"),
                _map("owner_id", "hubspot_owner_id"),
                *_read_back("person", "hubspot"),
                *_written_back("person", "hubspot"),
            ),
            constants={"is_converted": False, "converted_account_id": None},
            merge_field="hs_merged_object_ids",
            writable=_writable("person"),
        ),
        Stream(
            "deals",
            "opportunity",
            "deals",
            "hs_object_id",
            "hs_lastmodifieddate",
            (
                _map("name", "dealname"),
                _map("stage", "dealstage"),
                _map("amount", "amount", number),
                _map("opened_at", "createdate", stamp),
                _map("close_date", "closedate", day),
                _map("is_closed", ("hs_is_closed", "dealstage"), _closed),
                _map("is_won", ("hs_is_closed_won", "dealstage"), _won),
                _map("owner_id", "hubspot_owner_id"),
            ),
            links=(Link("account_id", "companies", primary_type=5),),
            merge_field="hs_merged_object_ids",
        ),
        _engagement("calls", "hs_call_title", "hs_call_direction"),
        _engagement("emails", "hs_email_subject", "hs_email_direction"),
        _engagement("meetings", "hs_meeting_title"),
        _engagement("notes", "hs_note_body"),
        _engagement("tasks", "hs_task_subject"),
        *(
            Stream(
                name,
                "activity",
                name,
                "id",
                "occurredAt",
                _TOUCH_FIELDS,
                constants={"owner_id": None},
                api=api,
                facts=_TOUCH_FACTS,
                typed_by="activity",
            )
            for name, api in (("events", "events"), ("email_events", "email_events"))
        ),
    )
}
