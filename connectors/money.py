"""Amounts of a multi-currency org brought to its corporate currency before fit rules compare them.

In a Salesforce org with multiple currencies every currency field (AnnualRevenue, Amount) is in
the record's own ``CurrencyIsoCode``; the org's ``CurrencyType`` rows give each currency's
``ConversionRate``: units of it per one unit of the corporate currency (the corporate one is 1).
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_currencytype.htm
Dated exchange rates (advanced currency management's DatedConversionRate) are out of scope:
every amount converts at today's rate. An inactive currency still converts at its last rate,
since records keep amounts in it. HubSpot needs none of this: a company's ``annualrevenue`` is
in the portal's company currency (only deals carry a currency of their own).

    rates = Rates.from_currency_types(rows)
    rates.to_corporate(1_000_000.0, "EUR")
    values, warnings = Money(("revenue",), rates).convert_columns(page_values, currencies)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from connectors.columns import Warned
from connectors.protocol import RAW_LIMIT, ValueWarning

__all__ = ["UNKNOWN_CURRENCY", "Money", "Rates"]

UNKNOWN_CURRENCY = "not a currency of the org"


@dataclass(frozen=True)
class Rates:
    """The org's corporate currency and each currency's units per corporate unit."""

    corporate: str
    per_corporate: Mapping[str, float]

    @classmethod
    def from_currency_types(cls, rows: Iterable[Mapping[str, Any]]) -> Rates:
        """Rates from CurrencyType rows (IsoCode, ConversionRate, IsCorporate)."""
        listed = list(rows)
        corporate = next((str(r["IsoCode"]) for r in listed if r.get("IsCorporate")), "")
        rates = {str(r["IsoCode"]): float(r["ConversionRate"]) for r in listed}
        return cls(corporate, rates)

    def to_corporate(self, amount: float, currency: Any) -> float:
        """``amount`` in ``currency`` (the corporate one when None) in the corporate currency."""
        code = self.corporate if currency in (None, "") else str(currency)
        rate = self.per_corporate.get(code)
        if not rate or rate <= 0:
            raise ValueError(f"{currency!r} is {UNKNOWN_CURRENCY}")
        return amount / rate


@dataclass(frozen=True)
class Money:
    """Which of a stream's fields (ours) are amounts, and the rates that convert them."""

    fields: tuple[str, ...]
    rates: Rates

    def convert(self, values: dict[str, Any], currency: Any) -> tuple[ValueWarning, ...]:
        """Bring the amounts in ``values`` to the corporate currency, in place; an amount in a
        currency the org does not list becomes None with a warning."""
        warnings = []
        for name in self.fields:
            if values.get(name) is None:
                continue
            try:
                values[name] = self.rates.to_corporate(values[name], currency)
            except ValueError:
                values[name] = None
                warnings.append(ValueWarning(name, str(currency)[:RAW_LIMIT], UNKNOWN_CURRENCY))
        return tuple(warnings)

    def convert_columns(
        self, values: pl.DataFrame, currency: pl.Series
    ) -> tuple[pl.DataFrame, list[Warned]]:
        """`convert` of every row of a page's values, ``currency`` the rows' raw currency
        column; per amount field, the warnings by row."""
        code = pl.when(currency.is_null() | (currency == "")).then(pl.lit(self.rates.corporate))
        codes = pl.select(code.otherwise(currency)).to_series()
        rates = self.rates.per_corporate
        rate = codes.replace_strict(
            list(rates), list(rates.values()), default=None, return_dtype=pl.Float64
        )
        known = (rate > 0).fill_null(False)
        warnings: list[Warned] = []
        for name in self.fields:
            if name not in values.columns or values[name].dtype == pl.Null:
                continue
            amount = values[name]
            unknown = (amount.is_not_null() & ~known).arg_true().to_list()
            values = values.with_columns(
                pl.select(pl.when(known).then(amount / rate)).to_series().alias(name)
            )
            warnings.append({row: (_unknown(name, currency[row]),) for row in unknown})
        return values, warnings


def _unknown(name: str, currency: Any) -> ValueWarning:
    """The warning of an amount in a currency the org does not list."""
    return ValueWarning(name, str(currency)[:RAW_LIMIT], UNKNOWN_CURRENCY)
