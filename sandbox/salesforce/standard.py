"""The commonly used standard fields a real org has beyond what the generated world fills, and the
fields that only some orgs have: ``CurrencyIsoCode`` (multiple currencies on) and the ISO code
fields of addresses (state and country picklists on).

Types, lengths and read-only flags follow Salesforce's Object Reference and Field Reference
(https://developer.salesforce.com/docs/platform/field-reference/references/field-reference/salesforce-field-reference-account.html
and the Lead, Opportunity, Contact, Task, Event, User and CampaignMember pages beside it). The
generated world has no values for most of them, so they read null, as in an org that never
filled them; a query or an update naming them works as in a real org.

    objects = org_objects(SalesforceOptions(multi_currency=True, country_picklists=True))
"""

from __future__ import annotations

from typing import Any

from sandbox.salesforce.config import SalesforceOptions
from sandbox.salesforce.schema import STANDARD_OBJECTS, Field, SObject

__all__ = [
    "COMMON_FIELDS",
    "COUNTRY_CODE_FIELDS",
    "CURRENCY_TYPE",
    "RATES",
    "org_objects",
]

_READ_ONLY = {"createable": False, "updateable": False}
_SALUTATIONS = ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")
_RATINGS = ("Hot", "Warm", "Cold")


def _text(name: str, label: str, length: int, **extra: Any) -> Field:
    return Field(name, "string", label, length, **extra)


def _street(name: str, label: str) -> Field:
    return Field(name, "textarea", label, 255)


def _description(label: str = "Description") -> Field:
    return Field("Description", "textarea", label, 32000)


def _last_activity() -> Field:
    return Field("LastActivityDate", "date", "Last Activity", **_READ_ONLY)


def _picklist(name: str, label: str, values: tuple[str, ...], **extra: Any) -> Field:
    return Field(name, "picklist", label, 255, picklist=values, **extra)


# object -> the standard fields added to what `schema` declares (no Department, Division,
# UserRole or Profile of User here, nor Task and Event subtypes: other tables own those)
COMMON_FIELDS: dict[str, tuple[Field, ...]] = {
    "Account": (
        _text("AccountNumber", "Account Number", 40),
        _picklist(
            "AccountSource",
            "Account Source",
            ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"),
        ),
        _description("Account Description"),
        _picklist("Rating", "Account Rating", _RATINGS),
        _text("Site", "Account Site", 80),
        _text("Sic", "SIC Code", 20),
        _text("SicDesc", "SIC Description", 80),
        _picklist("Ownership", "Ownership", ("Public", "Private", "Subsidiary", "Other")),
        _text("TickerSymbol", "Ticker Symbol", 20),
        _street("BillingStreet", "Billing Street"),
        _text("BillingState", "Billing State/Province", 80),
        _text("BillingPostalCode", "Billing Zip/Postal Code", 20),
        Field("BillingLatitude", "double", "Billing Latitude", precision=18, scale=15),
        Field("BillingLongitude", "double", "Billing Longitude", precision=18, scale=15),
        _street("ShippingStreet", "Shipping Street"),
        _text("ShippingCity", "Shipping City", 40),
        _text("ShippingState", "Shipping State/Province", 80),
        _text("ShippingPostalCode", "Shipping Zip/Postal Code", 20),
        _text("ShippingCountry", "Shipping Country", 80),
        Field("Fax", "phone", "Account Fax", 40),
        _text("YearStarted", "Year Started", 4),
        _last_activity(),
    ),
    "Contact": (
        _picklist("Salutation", "Salutation", _SALUTATIONS),
        _text("Department", "Department", 80),
        _description("Contact Description"),
        Field("MobilePhone", "phone", "Mobile Phone", 40),
        _street("MailingStreet", "Mailing Street"),
        _text("MailingState", "Mailing State/Province", 80),
        _text("MailingPostalCode", "Mailing Zip/Postal Code", 20),
        Field("Birthdate", "date", "Birthdate"),
        Field("HasOptedOutOfEmail", "boolean", "Email Opt Out", nillable=False, defaulted=True),
        Field("DoNotCall", "boolean", "Do Not Call", nillable=False, defaulted=True),
        _last_activity(),
    ),
    "Lead": (
        _picklist("Salutation", "Salutation", _SALUTATIONS),
        _street("Street", "Street"),
        _text("State", "State/Province", 80),
        _text("PostalCode", "Zip/Postal Code", 20),
        _picklist("Industry", "Industry", ("Technology", "Finance", "Manufacturing", "Other")),
        _picklist("Rating", "Rating", _RATINGS),
        Field("NumberOfEmployees", "int", "Employees", precision=8),
        Field("AnnualRevenue", "currency", "Annual Revenue", precision=18),
        Field("Website", "url", "Website", 255),
        _description(),
        Field("MobilePhone", "phone", "Mobile Phone", 40),
        Field("HasOptedOutOfEmail", "boolean", "Email Opt Out", nillable=False, defaulted=True),
        Field("DoNotCall", "boolean", "Do Not Call", nillable=False, defaulted=True),
        _last_activity(),
    ),
    "Opportunity": (
        Field("Probability", "percent", "Probability (%)", precision=3),
        _picklist(
            "ForecastCategoryName",
            "Forecast Category",
            ("Pipeline", "Best Case", "Commit", "Omitted", "Closed"),
        ),
        _text("NextStep", "Next Step", 255),
        _description(),
        Field(
            "ExpectedRevenue",
            "currency",
            "Expected Revenue",
            precision=18,
            scale=2,
            **_READ_ONLY,
        ),
        Field(
            "CampaignId",
            "reference",
            "Campaign ID",
            18,
            reference_to=("Campaign",),
            relationship="Campaign",
        ),
        Field("FiscalYear", "int", "Fiscal Year", precision=8, **_READ_ONLY),
        Field("FiscalQuarter", "int", "Fiscal Quarter", precision=8, **_READ_ONLY),
        _last_activity(),
    ),
    "Task": (
        _picklist("CallType", "Call Type", ("Inbound", "Internal", "Outbound")),
        Field("CallDurationInSeconds", "int", "Call Duration", precision=8),
        _text("CallDisposition", "Call Result", 255),
        Field("CompletedDateTime", "datetime", "Completed Date/Time", **_READ_ONLY),
    ),
    "Event": (
        _text("Location", "Location", 255),
        Field("IsAllDayEvent", "boolean", "All-Day Event", nillable=False, defaulted=True),
        _picklist("ShowAs", "Show Time As", ("Busy", "OutOfOffice", "Free")),
    ),
    "User": (
        _text("Title", "Title", 80),
        Field("Phone", "phone", "Phone", 40),
        Field("MobilePhone", "phone", "Mobile", 40),
        _text("CompanyName", "Company Name", 80),
        _text("City", "City", 40),
        _text("State", "State/Province", 80),
        _text("Country", "Country", 80),
        _text("Alias", "Alias", 8),
        _picklist("TimeZoneSidKey", "Time Zone", ("America/Los_Angeles", "Europe/Berlin")),
        _picklist("LocaleSidKey", "Locale", ("en_US", "de_DE", "ja_JP")),
        _picklist("LanguageLocaleKey", "Language", ("en_US", "de", "ja")),
        Field("LastLoginDate", "datetime", "Last Login", **_READ_ONLY),
    ),
    "CampaignMember": (
        _text("FirstName", "First Name", 40, **_READ_ONLY),
        _text("LastName", "Last Name", 80, **_READ_ONLY),
        Field("Email", "email", "Email", 80, **_READ_ONLY),
        _text("Title", "Title", 128, **_READ_ONLY),
        _text("CompanyOrAccount", "Company (Account)", 255, **_READ_ONLY),
        _text("City", "City", 40, **_READ_ONLY),
        _text("Country", "Country", 80, **_READ_ONLY),
        _picklist("LeadSource", "Lead Source", ("Web", "Webinar", "Other"), **_READ_ONLY),
    ),
}

# object -> (code field, name field) of its addresses, when state and country picklists are on
COUNTRY_CODE_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "Account": (
        ("BillingCountryCode", "Billing Country Code"),
        ("BillingStateCode", "Billing State Code"),
    ),
    "Lead": (("CountryCode", "Country Code"), ("StateCode", "State Code")),
    "Contact": (
        ("MailingCountryCode", "Mailing Country Code"),
        ("MailingStateCode", "Mailing State Code"),
    ),
}
_WITH_CURRENCY = ("Account", "Lead", "Contact", "Opportunity")

# a multi-currency org's currencies: units per one US dollar, the corporate currency
RATES: dict[str, float] = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 150.0, "CHF": 0.88}

CURRENCY_TYPE = SObject(
    "CurrencyType",
    "Currency Type",
    "Currency Types",
    (
        Field("Id", "id", "Currency Type ID", 18, nillable=False, **_READ_ONLY),
        _picklist("IsoCode", "Currency ISO Code", tuple(RATES), nillable=False),
        Field("ConversionRate", "double", "Conversion Rate", precision=18, scale=6),
        Field("DecimalPlaces", "int", "Decimal Places", precision=2),
        Field("IsActive", "boolean", "Active", nillable=False, defaulted=True),
        Field("IsCorporate", "boolean", "Corporate", nillable=False, defaulted=True),
        Field("CreatedDate", "datetime", "Created Date", **_READ_ONLY),
        Field("LastModifiedDate", "datetime", "Last Modified Date", **_READ_ONLY),
        Field("SystemModstamp", "datetime", "System Modstamp", **_READ_ONLY),
    ),
    deletable=False,
)


def _country_codes(obj: str) -> tuple[Field, ...]:
    """The ISO code picklists of an object's address (values: any ISO code)."""
    return tuple(Field(name, "picklist", label, 10) for name, label in COUNTRY_CODE_FIELDS[obj])


def _currency(obj: SObject) -> Field:
    return Field(
        "CurrencyIsoCode",
        "picklist",
        f"{obj.label} Currency",
        3,
        picklist=tuple(RATES),
        restricted=True,
        defaulted=True,
        default="USD",
    )


def _extended(obj: SObject, options: SalesforceOptions) -> SObject:
    """An object with its common standard fields and those the org's features add."""
    extra = list(COMMON_FIELDS.get(obj.name, ()))
    if options.country_picklists and obj.name in COUNTRY_CODE_FIELDS:
        extra.extend(_country_codes(obj.name))
    if options.multi_currency and obj.name in _WITH_CURRENCY:
        extra.append(_currency(obj))
    for new in extra:
        obj = obj.with_field(new)
    return obj


def org_objects(options: SalesforceOptions) -> tuple[SObject, ...]:
    """Every object the org serves, as its features (currencies, picklists) shape them."""
    objects = tuple(_extended(obj, options) for obj in STANDARD_OBJECTS)
    return (*objects, CURRENCY_TYPE) if options.multi_currency else objects
