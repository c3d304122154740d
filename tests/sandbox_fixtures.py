"""Sandbox CRM fixtures shared by the dialects' conformance suites (a pytest plugin)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hubspot import HubSpot
from pydantic import SecretStr
from simple_salesforce import Salesforce

from connectors.config import SalesforceSettings
from handoff.settings import Settings, load_settings
from sandbox.faults import FaultPlan, FaultRule
from sandbox.generator import generate_org
from sandbox.org import Org
from sandbox.salesforce import SalesforceDialect, SalesforceOptions, client_session
from sandbox.salesforce.ids import make_id
from sandbox.salesforce.merges import MergeResult
from sandbox.service import RunningSandbox, start_sandbox

# --- HubSpot ---------------------------------------------------------------------------------

HUBSPOT_ACCOUNTS = 300
HUBSPOT_SEED = 11
HUBSPOT_LOCKED_COMPANY = "20000000005"  # the company whose first write fails with a lock


class HubSpotClock:
    """A clock tests move by hand, so rate-limit windows pass without sleeping."""

    def __init__(self, start: datetime = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(seconds=seconds)


def hubspot_client(crm: RunningSandbox, token: str | None = None) -> HubSpot:
    """The unmodified client pointed at a running sandbox."""
    return HubSpot(access_token=token or crm.token, host=crm.base_url, base_url=crm.base_url)


@pytest.fixture(scope="module")
def hubspot_org() -> Org:
    """A small generated org (fresh per test module)."""
    return generate_org(HUBSPOT_ACCOUNTS, HUBSPOT_SEED)


@pytest.fixture(scope="module")
def hubspot_sandbox(hubspot_org: Org) -> Iterator[RunningSandbox]:
    """The HubSpot dialect served once per module, without rate limits, one record locked."""
    faults = FaultPlan([FaultRule("lock", records=(HUBSPOT_LOCKED_COMPANY,), times=1)])
    with start_sandbox("hubspot", hubspot_org, faults=faults, tier="unlimited") as crm:
        yield crm


@pytest.fixture
def hubspot(hubspot_sandbox: RunningSandbox) -> HubSpot:
    """A client of the module's HubSpot sandbox."""
    return hubspot_client(hubspot_sandbox)


@pytest.fixture
def hubspot_clock() -> HubSpotClock:
    """A hand-moved clock for one test."""
    return HubSpotClock()


# --- Salesforce ------------------------------------------------------------------------------

SALESFORCE_ACCOUNTS = 300
SALESFORCE_SEED = 13
SALESFORCE_INSTANCE_URL = SalesforceOptions().instance_url
SALESFORCE_LOCKED_ACCOUNT = make_id("Account", 7)  # its first write fails with a row lock
SALESFORCE_LOGIN_FLOWS = ("soap", "oauth_password", "jwt_bearer", "client_credentials")
HandClock = HubSpotClock  # the same hand-moved clock serves the Salesforce sandbox


def sandbox_settings(directory: Path, crm: str, accounts: int, seed: int) -> Settings:
    """Settings of a generated sandbox org with its state database in ``directory``, loaded from
    the file they are written to there (as a user's)."""
    path = directory / "settings.toml"
    path.write_text(
        f'[sandbox]\ncrm = "{crm}"\naccounts = {accounts}\nseed = {seed}\n'
        f'[state]\ndatabase_url = "sqlite:///{directory / "state.db"}"\n'
    )
    return load_settings(path)


def salesforce_settings(**overrides: Any) -> SalesforceSettings:
    """The connector's settings for the sandbox's client-credentials login, and ``overrides``."""
    options = SalesforceOptions()
    return SalesforceSettings(
        auth="client_credentials",
        instance_url=SALESFORCE_INSTANCE_URL,
        client_id=options.consumer_key,
        client_secret=SecretStr(options.consumer_secret),
        **overrides,
    )


def salesforce_client(
    crm: RunningSandbox, session_id: str | None = None, session: requests.Session | None = None
) -> Salesforce:
    """The unmodified client on a session id, its HTTPS calls routed to the sandbox."""
    return Salesforce(
        instance_url=SALESFORCE_INSTANCE_URL,
        session_id=session_id or crm.token,
        session=session or client_session(crm.base_url),
    )


def salesforce_login(
    crm: RunningSandbox, flow: str, session: requests.Session | None = None
) -> Salesforce:
    """The unmodified client logged in by one of its four flows with the sandbox's defaults."""
    return Salesforce(session=session or client_session(crm.base_url), **_login_arguments(flow))


def _login_arguments(flow: str) -> dict[str, str]:
    """simple-salesforce's keyword arguments for a login flow."""
    options = SalesforceOptions()
    user = {"username": options.username, "password": options.password}
    app = {"consumer_key": options.consumer_key, "consumer_secret": options.consumer_secret}
    flows = {
        "soap": {**user, "security_token": options.security_token},
        "oauth_password": {**user, **app},
        "jwt_bearer": {
            "username": options.username,
            "consumer_key": options.consumer_key,
            "privatekey": _private_key(),
        },
        "client_credentials": {**app, "domain": options.my_domain},
    }
    return flows[flow]


@cache
def _private_key() -> str:
    """A throwaway RSA key to sign JWT bearer assertions (the sandbox does not verify them)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def salesforce_org() -> Org:
    """A small generated org (fresh per test module)."""
    return generate_org(SALESFORCE_ACCOUNTS, SALESFORCE_SEED)


@pytest.fixture(scope="module")
def salesforce_sandbox(salesforce_org: Org) -> Iterator[RunningSandbox]:
    """The Salesforce dialect served once per module, one account's first write locked."""
    faults = FaultPlan([FaultRule("lock", records=(SALESFORCE_LOCKED_ACCOUNT,), times=1)])
    with start_sandbox("salesforce", salesforce_org, faults=faults) as crm:
        yield crm


@pytest.fixture
def salesforce(salesforce_sandbox: RunningSandbox) -> Salesforce:
    """A client of the module's Salesforce sandbox on its initial session id."""
    return salesforce_client(salesforce_sandbox)


def salesforce_jwt_key() -> str:
    """A PEM key to sign JWT bearer logins to the Salesforce sandbox (it checks no signature)."""
    return _private_key()


def salesforce_merge(
    crm: RunningSandbox, sobject: str, master: str, merged: list[str]
) -> MergeResult:
    """A user merges records in the Salesforce sandbox (SOAP ``merge()``, not in the client)."""
    dialect = crm.dialect
    assert isinstance(dialect, SalesforceDialect)
    return dialect.merge(sobject, master, merged)
