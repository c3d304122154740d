"""The CRM a command talks to, chosen from settings: a real org, or the embedded sandbox.

`[crm] kind` decides. "salesforce" and "hubspot" build the connector from their settings
section and the secrets in the environment; "sandbox" first generates the `[sandbox]` org and
serves it on loopback in the `[sandbox] crm` dialect, then hands the same connector the
sandbox's route (a requests session that carries the Salesforce client's HTTPS calls to it, or
the HubSpot host) and the sandbox's own credentials. Only this entry point knows the sandbox.

    with open_crm(settings) as crm:
        report = crm.connector.ensure_schema(schema_spec(settings))
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pydantic import SecretStr

from connectors.budget import Budget
from connectors.config import HubSpotSettings, SalesforceSettings
from connectors.http import HttpPolicy
from connectors.hubspot import HubSpotConnector
from connectors.protocol import Connector, SchemaSpec
from connectors.rules import RuleBook
from connectors.salesforce import SalesforceConnector
from handoff.settings import Settings
from sandbox.generator import generate_org
from sandbox.org import Org
from sandbox.salesforce import SalesforceOptions, client_session
from sandbox.service import RunningSandbox, start_sandbox

__all__ = ["CrmConnection", "connector_for", "open_crm", "rule_book", "schema_spec"]


@dataclass(frozen=True)
class CrmConnection:
    """An open connector, what it is connected to (for people), and the sandbox if embedded."""

    connector: Connector
    description: str
    sandbox: RunningSandbox | None = None


def schema_spec(settings: Settings) -> SchemaSpec:
    """The fields we own as the settings shape them: tier labels and reason codes."""
    tiers = settings.tiers
    labels = (tiers.nurture_label, tiers.sdr_label, tiers.ae_label, tiers.disqualified_label)
    return SchemaSpec(labels, tuple(settings.feedback.reason_codes))


def connector_for(settings: Settings) -> Connector:
    """The connector of a real org (`[crm] kind` salesforce or hubspot), not yet connected.

    `load_settings` has already refused a section that lacks what its auth needs.
    """
    kind = settings.crm.kind
    policy = HttpPolicy(budget=Budget(settings.sync.api_budget_share))
    if kind == "salesforce":
        return SalesforceConnector(settings.salesforce, policy=policy, rules=rule_book(settings))
    if kind == "hubspot":
        return HubSpotConnector(settings.hubspot, policy=policy, rules=rule_book(settings))
    raise ValueError(f'[crm] kind = "{kind}" is served by open_crm, not connector_for')


@contextmanager
def open_crm(
    settings: Settings, org: Org | None = None, *, rate_limits: bool = True
) -> Iterator[CrmConnection]:
    """The CRM of the settings for the length of a ``with`` block (the sandbox is stopped after).

    ``org`` serves an org already generated instead of generating the `[sandbox]` one. The
    HubSpot sandbox enforces the rate limits of the `[hubspot] tier`; ``rate_limits=False``
    lifts them (the demo's choice: a first full pull paced like a real portal takes a minute).
    """
    if settings.crm.kind != "sandbox":
        connector = connector_for(settings)
        yield CrmConnection(connector, _real_description(settings))
        return
    dialect = settings.sandbox.crm
    sandbox = settings.sandbox
    served = org or generate_org(sandbox.accounts, sandbox.seed, world=sandbox.world_params)
    options = {}
    if dialect == "hubspot":
        options["tier"] = settings.hubspot.tier if rate_limits else "unlimited"
    with start_sandbox(dialect, served, **options) as running:
        policy = HttpPolicy(budget=Budget(settings.sync.api_budget_share))
        connector = _sandbox_connector(running, policy, rule_book(settings))
        limits = "" if rate_limits or dialect != "hubspot" else ", rate limits off"
        description = f"the embedded sandbox ({dialect} API at {running.base_url}{limits})"
        yield CrmConnection(connector, description, running)


def rule_book(settings: Settings) -> RuleBook:
    """The users and activity mapping rules of the settings, compiled for a connector."""
    return RuleBook(settings.users, settings.activity)


def _sandbox_connector(running: RunningSandbox, policy: HttpPolicy, rules: RuleBook) -> Connector:
    """The real connector, on the sandbox's route with the sandbox's own credentials."""
    if running.crm == "hubspot":
        settings = HubSpotSettings(token=SecretStr(running.token))
        return HubSpotConnector(settings, host=running.base_url, policy=policy, rules=rules)
    options = SalesforceOptions()
    settings = SalesforceSettings(
        auth="client_credentials",
        instance_url=options.instance_url,
        client_id=options.consumer_key,
        client_secret=SecretStr(options.consumer_secret),
    )
    return SalesforceConnector(
        settings, session=client_session(running.base_url), policy=policy, rules=rules
    )


def _real_description(settings: Settings) -> str:
    """The org a real connector talks to, for people (never a secret)."""
    if settings.crm.kind == "hubspot":
        return f"HubSpot at {settings.hubspot.host}"
    salesforce = settings.salesforce
    where = salesforce.instance_url or f"{salesforce.login_domain}.salesforce.com"
    return f"Salesforce at {where} (auth {salesforce.auth})"
