"""The Salesforce dialect's settings: the integration user's credentials, the host, the limits.

Given to ``start_sandbox("salesforce", org, **options)``; every option has a default so tests
and ``handoff sandbox serve`` work without any.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["API_VERSION", "CONVENTIONS", "SalesforceOptions"]

API_VERSION = "59.0"  # simple-salesforce 1.12's default
CONVENTIONS = ("a", "b")  # how the org records touches (`sandbox.salesforce.mapping`)


@dataclass(frozen=True)
class SalesforceOptions:
    """What the sandbox org accepts and how it answers."""

    username: str = "integration@handoff-sandbox.example.com"
    password: str = "sandbox-password"
    security_token: str = "sandboxSecurityToken"
    consumer_key: str = "handoff-sandbox-consumer-key"
    consumer_secret: str = "handoff-sandbox-consumer-secret"
    my_domain: str = "handoff-sandbox.my"  # the instance is https://{my_domain}.salesforce.com
    api_limit: int = 100_000  # DailyApiRequests
    page_size: int = 2000  # query records per page unless Sforce-Query-Options asks fewer
    bulk_page_size: int = 50_000  # Bulk API 2.0 query results per page unless maxRecords
    max_cursors: int = 10  # open query cursors per user; opening another drops the oldest
    # how the org renders (`rendering`): free-text countries, country picklists, currencies
    country_spelling: str = "code"  # code | name | mixed (`sandbox.spellings`)
    country_picklists: bool = False  # BillingCountryCode and friends, as state/country picklists
    multi_currency: bool = False  # CurrencyIsoCode on records and the CurrencyType object
    convention: str = "a"  # how the org records touches, one of `CONVENTIONS`

    def __post_init__(self) -> None:
        if self.convention not in CONVENTIONS:
            raise ValueError(
                f"unknown convention {self.convention!r}; expected one of {CONVENTIONS}"
            )

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SalesforceOptions:
        """The settings from ``make_dialect``'s keyword options; unknown names are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(
                f"unknown Salesforce sandbox option(s) {unknown}; expected some of {sorted(known)}"
            )
        return cls(**options)

    @property
    def instance_host(self) -> str:
        """The instance's host name, as login answers it."""
        return f"{self.my_domain}.salesforce.com"

    @property
    def instance_url(self) -> str:
        """``https://{instance_host}``."""
        return f"https://{self.instance_host}"
