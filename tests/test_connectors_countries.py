"""Countries as ISO codes and amounts in the corporate currency, whatever the org typed or kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest
from pydantic import SecretStr

from connectors.config import HubSpotSettings
from connectors.countries import NAMES_FILE, built_names, country_code
from connectors.hubspot import HubSpotConnector
from connectors.money import UNKNOWN_CURRENCY, Money, Rates
from connectors.protocol import Connector, Record, Summary, records
from connectors.salesforce import SalesforceConnector
from sandbox.generator import generate_org
from sandbox.hubspot.ids import hubspot_id
from sandbox.org import Org
from sandbox.salesforce import client_session
from sandbox.salesforce.ids import make_ids
from sandbox.salesforce.rendering import ACCOUNT_CURRENCIES
from sandbox.service import start_sandbox
from tests.sandbox_fixtures import salesforce_settings

NOT_A_COUNTRY = "country: not a country"


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("Germany", "DE"),
        ("DE", "DE"),
        ("de", "DE"),
        ("DEU", "DE"),
        ("Deutschland", "DE"),
        ("  germany ", "DE"),
        ("Allemagne", "DE"),
        ("U.S.A.", "US"),
        ("USA", "US"),
        ("United States of America", "US"),
        ("UK", "GB"),
        ("Great Britain", "GB"),
        ("England", "GB"),
        ("日本", "JP"),
        ("Россия", "RU"),
        ("Korea, Republic of", "KR"),
        ("The Netherlands", "NL"),
        ("Holland", "NL"),
        ("Nederland", "NL"),
        ("España", "ES"),
        ("Espan\u0303a", "ES"),  # the tilde as a combining character
        ("México", "MX"),
        ("Schweiz", "CH"),
        ("Suisse", "CH"),
        ("Côte d\u2019Ivoire", "CI"),
        ("Türkiye", "TR"),
        ("Turkey", "TR"),
        ("UAE", "AE"),
        ("Brasil", "BR"),
        ("Polska", "PL"),
    ],
)
def test_a_typed_country_reads_as_its_iso_code(typed: str, code: str) -> None:
    assert country_code(typed) == code


@pytest.mark.parametrize("typed", ["Atlantis", "Europe", "EU", "n/a", "-", "Bharat"])
def test_what_is_no_country_is_refused(typed: str) -> None:
    with pytest.raises(ValueError, match="not a country"):
        country_code(typed)


def test_an_amount_in_another_currency_is_converted_and_an_unknown_one_refused() -> None:
    rates = Rates.from_currency_types(
        [
            {"IsoCode": "USD", "ConversionRate": 1.0, "IsCorporate": True, "IsActive": True},
            {"IsoCode": "EUR", "ConversionRate": 0.8, "IsCorporate": False, "IsActive": False},
        ]
    )
    money = Money(("revenue",), rates)
    euros, unknown, corporate = {"revenue": 800.0}, {"revenue": 5.0}, {"revenue": 5.0}

    assert money.convert(euros, "EUR") == () and euros["revenue"] == 1000.0
    assert money.convert(corporate, None) == () and corporate["revenue"] == 5.0
    (warning,) = money.convert(unknown, "XXX")
    assert (unknown["revenue"], warning.field, warning.why) == (None, "revenue", UNKNOWN_CURRENCY)


# --- through the sandbox ------------------------------------------------------------------


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(150, 21)


def _salesforce(base_url: str) -> SalesforceConnector:
    return SalesforceConnector(salesforce_settings(), session=client_session(base_url))


def _accounts(connector: Connector, stream: str) -> tuple[list[Record], Summary]:
    items = list(connector.pull(stream))
    assert isinstance(items[-1], Summary)
    return records(items), items[-1]


def _truth(org: Org, crm: str) -> dict[str, dict[str, Any]]:
    """Account id in the CRM -> the world's country code and revenue."""
    accounts = org.accounts
    ids = (
        make_ids("Account", accounts["account_id"]).to_list()
        if crm == "salesforce"
        else accounts.select(hubspot_id("companies", "account_id").cast(pl.String))
        .to_series()
        .to_list()
    )
    rows = accounts.select("country", "revenue").to_dicts()
    return dict(zip(ids, rows, strict=True))


@pytest.fixture(scope="module", params=["salesforce", "hubspot"])
def mixed_spellings(request: pytest.FixtureRequest, org: Org) -> Iterator[tuple[str, Any]]:
    """Each CRM rendering free-text countries in mixed spellings; (crm, its accounts pull)."""
    crm_name = request.param
    options = {"tier": "unlimited"} if crm_name == "hubspot" else {}
    with start_sandbox(crm_name, org, country_spelling="mixed", **options) as crm:
        if crm_name == "salesforce":
            yield crm_name, _accounts(_salesforce(crm.base_url), "Account")
        else:
            connector = HubSpotConnector(
                HubSpotSettings(token=SecretStr(crm.token)), host=crm.base_url
            )
            yield crm_name, _accounts(connector, "companies")


def test_free_text_countries_map_to_codes_and_the_rest_is_counted(
    org: Org, mixed_spellings: tuple[str, Any]
) -> None:
    crm, (accounts, summary) = mixed_spellings
    truth = _truth(org, crm)
    unmapped = [r for r in accounts if r.values["country"] is None]

    assert all(r.values["country"] == truth[r.id]["country"] for r in accounts if r not in unmapped)
    assert unmapped and all(truth[r.id]["country"] == "IN" for r in unmapped)  # "Bharat"
    assert summary.warnings.get(NOT_A_COUNTRY) == len(unmapped)
    assert len(accounts) == len(truth)


def test_a_picklist_org_reads_the_country_code_and_converts_a_second_currency(
    org: Org,
) -> None:
    with start_sandbox(
        "salesforce", org, country_picklists=True, multi_currency=True, country_spelling="mixed"
    ) as crm:
        accounts, summary = _accounts(_salesforce(crm.base_url), "Account")
        kept = crm.dialect.state.records.table("Account").frame
    truth = _truth(org, "salesforce")
    foreign = kept.filter(pl.col("CurrencyIsoCode") != "USD")

    assert dict(summary.warnings) == {}
    assert all(r.values["country"] == truth[r.id]["country"] for r in accounts)
    assert set(foreign["CurrencyIsoCode"]) <= set(ACCOUNT_CURRENCIES.values())
    assert {"EUR", "JPY"} <= set(foreign["CurrencyIsoCode"])
    for record in accounts:
        expected = truth[record.id]["revenue"]
        if expected is None:
            assert record.values["revenue"] is None
        else:  # the org keeps whole units of its currency: 1 yen is under 1 cent
            assert record.values["revenue"] == pytest.approx(expected, abs=1.0)


def test_the_shipped_spellings_are_those_the_installed_pycountry_and_babel_give() -> None:
    """``country_names.json`` is a build of the two lists, not a hand-kept copy: after an upgrade
    of either, rebuild it (``python -m connectors.countries``) and review the difference."""
    shipped = json.loads(NAMES_FILE.read_text(encoding="utf-8"))["codes"]
    built = built_names()
    changed = sorted(
        code for code in built.keys() | shipped.keys() if built.get(code) != shipped.get(code)
    )
    assert not changed, f"rebuild connectors/country_names.json: {changed[:10]} differ"
    assert sum(len(spellings) for spellings in shipped.values()) > 30_000
