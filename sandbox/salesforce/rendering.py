"""How the org's features change what its records read: countries and currencies.

Rendering options of `SalesforceOptions`, applied over `mapping.COLUMNS` without changing the
generated world:

=====================  ======================================================================
country_spelling       BillingCountry / Country / MailingCountry as the ISO code (``code``),
                       the English name, or mixed free-text spellings (`sandbox.spellings`)
country_picklists      BillingCountryCode / CountryCode / MailingCountryCode hold the ISO code
                       and the name field its English label, as Salesforce fills them
multi_currency         each account's CurrencyIsoCode is its country's currency (EUR, GBP,
                       JPY, CHF, else USD, the corporate one) and AnnualRevenue is in it, at the
                       rate CurrencyType serves; leads, contacts and opportunities stay in USD
=====================  ======================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import polars as pl

from sandbox.salesforce.config import SalesforceOptions
from sandbox.salesforce.standard import RATES
from sandbox.spellings import english_name, spelled_country

__all__ = ["ACCOUNT_CURRENCIES", "CORPORATE", "currency_types", "rendered_columns"]

CORPORATE = "USD"
# country -> the currency its accounts keep their revenue in
ACCOUNT_CURRENCIES: dict[str, str] = {
    **dict.fromkeys(("DE", "FR", "NL", "ES"), "EUR"),
    "GB": "GBP",
    "JP": "JPY",
    "CH": "CHF",
}
# object -> (its country field, its country code field, the id column its spelling is picked by)
_COUNTRY_FIELDS = {
    "Account": ("BillingCountry", "BillingCountryCode", "account_id"),
    "Lead": ("Country", "CountryCode", "person_id"),
    "Contact": ("MailingCountry", "MailingCountryCode", "person_id"),
}


def _account_currency() -> pl.Expr:
    return pl.col("country").replace_strict(ACCOUNT_CURRENCIES, default=CORPORATE)


def _countries(options: SalesforceOptions) -> dict[str, dict[str, pl.Expr]]:
    columns: dict[str, dict[str, pl.Expr]] = {}
    for obj, (name, code, number) in _COUNTRY_FIELDS.items():
        if options.country_picklists:
            columns[obj] = {name: english_name(), code: pl.col("country")}
        else:
            columns[obj] = {name: spelled_country(number, options.country_spelling)}
    return columns


def _currencies() -> dict[str, dict[str, pl.Expr]]:
    rate = _account_currency().replace_strict(RATES, return_dtype=pl.Float64)
    account = {
        "CurrencyIsoCode": _account_currency(),
        "AnnualRevenue": (pl.col("revenue") * rate).round(),
    }
    usd = {"CurrencyIsoCode": pl.lit(CORPORATE)}
    return {"Account": account, "Lead": usd, "Contact": usd, "Opportunity": usd}


def rendered_columns(options: SalesforceOptions) -> dict[str, Mapping[str, pl.Expr]]:
    """Object -> the columns the options render differently from `mapping.COLUMNS`."""
    parts = [_countries(options), _currencies() if options.multi_currency else {}]
    merged: dict[str, dict[str, pl.Expr]] = {}
    for part in parts:
        for obj, columns in part.items():
            merged.setdefault(obj, {}).update(columns)
    return dict(merged)


def currency_types(created: datetime) -> pl.DataFrame:
    """The org's CurrencyType rows (USD corporate, the others at `RATES`), numbered."""
    return pl.DataFrame(
        {
            "IsoCode": list(RATES),
            "ConversionRate": list(RATES.values()),
            "DecimalPlaces": [0 if code == "JPY" else 2 for code in RATES],
            "IsActive": [True] * len(RATES),
            "IsCorporate": [code == CORPORATE for code in RATES],
            "modified_at": [created] * len(RATES),
        }
    ).with_row_index("currency")
