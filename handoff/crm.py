"""The CRM a command talks to, chosen from settings: a real org, or the sandbox CRM.

`[crm] kind` decides. "salesforce" and "hubspot" build the connector from their settings section
and the secrets in the environment. "sandbox" connects to a lasting sandbox, one that outlives
the command and keeps what is written to it: the one at `[sandbox] url` (its token in
HANDOFF_SANDBOX_TOKEN) when set, else the one this directory's `.handoff/sandbox.json`
announces, else one started in the background over the `[sandbox]` org (`handoff sandbox
serve`, detached). A test or benchmark that wants a sandbox of its own, inside its process and gone
after, passes an ``org`` (or ``in_process=True``). Either way the real connector gets the
sandbox's route and credentials. Only this entry point knows the sandbox.

    with open_crm(settings) as crm:
        report = crm.connector.ensure_schema(schema_spec(settings))
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from pydantic import SecretStr

from connectors.budget import Budget
from connectors.config import HubSpotSettings, SalesforceSettings
from connectors.http import HttpPolicy
from connectors.protocol import Connector, SchemaSpec
from connectors.rules import RuleBook
from handoff.settings import SANDBOX_TOKEN_VARIABLE, Settings
from handoff.shell import typed_command
from sandbox.discovery import (
    DISCOVERY_FILE,
    LOG_FILE,
    Announcement,
    StartError,
    process_alive,
    read_announcement,
    start_detached,
    withdraw,
    world_record,
)
from sandbox.http import ADMIN_PREFIX
from sandbox.org import Org, read_manifest
from sandbox.service import RunningSandbox, start_sandbox
from sandbox.world import PRESETS

# the CRM clients (the connectors and the libraries under them), Salesforce's sandbox and the
# org generator are imported where a CRM is opened: `handoff --help`, the settings and sandbox
# commands and the state database's need none of them

__all__ = [
    "START_SECONDS",
    "CrmConnection",
    "LastingSandbox",
    "SandboxUnavailable",
    "connector_for",
    "describe_world",
    "lasting_sandbox",
    "open_crm",
    "rule_book",
    "running_sandbox",
    "sandbox_about",
    "sandbox_connector",
    "schema_spec",
    "serve_command",
]

_ABOUT_SECONDS = 5.0
START_SECONDS = 300.0  # generating and loading a large org takes a while


class SandboxUnavailable(Exception):
    """The lasting sandbox cannot be reached or started, or is not the one the settings ask for."""


@dataclass(frozen=True)
class LastingSandbox:
    """A sandbox serving from its own process: where, its dialect and org directory, its
    process (None when only its URL is known), whether this command started it, its token."""

    url: str
    crm: str
    org: str | None
    pid: int | None
    started_now: bool
    token: SecretStr
    tier: str | None = None  # a HubSpot sandbox's rate-limit tier, when known


@dataclass(frozen=True)
class CrmConnection:
    """An open connector, what it is connected to (for people), and the sandbox behind it: the
    in-process one (``sandbox``) or the lasting one (``lasting``)."""

    connector: Connector
    description: str
    sandbox: RunningSandbox | None = None
    lasting: LastingSandbox | None = None
    present: datetime | None = None  # a sandbox world's "now" (its org's end), which runs use

    def now(self) -> datetime:
        """The time a run scores at: the sandbox world's present, else the wall clock."""
        return self.present or datetime.now(UTC)

    def admin(self) -> tuple[str, str] | None:
        """The URL and token of the sandbox behind the connector (for its admin routes,
        `sandbox.admin`), None for a real org."""
        if self.sandbox is not None:
            return self.sandbox.base_url, self.sandbox.token
        if self.lasting is not None:
            return self.lasting.url, self.lasting.token.get_secret_value()
        return None


def schema_spec(settings: Settings) -> SchemaSpec:
    """The fields we own as the settings shape them: tier labels and reason codes."""
    tiers = settings.tiers
    labels = (tiers.nurture_label, tiers.sdr_label, tiers.ae_label, tiers.disqualified_label)
    return SchemaSpec(labels, tuple(settings.feedback.reason_codes))


def connector_for(settings: Settings) -> Connector:
    """The connector of a real org (`[crm] kind` salesforce or hubspot), not yet connected.

    `load_settings` has already refused a section that lacks what its auth needs.
    """
    from connectors.hubspot import HubSpotConnector
    from connectors.salesforce import SalesforceConnector

    kind = settings.crm.kind
    policy, rules = _policy(settings), rule_book(settings)
    if kind == "salesforce":
        return SalesforceConnector(settings.salesforce, policy=policy, rules=rules)
    if kind == "hubspot":
        return HubSpotConnector(settings.hubspot, policy=policy, rules=rules)
    raise ValueError(f'[crm] kind = "{kind}" is served by open_crm, not connector_for')


@contextmanager
def open_crm(
    settings: Settings,
    org: Org | None = None,
    *,
    rate_limits: bool = True,
    in_process: bool = False,
) -> Iterator[CrmConnection]:
    """The CRM of the settings for the length of a ``with`` block.

    For `[crm] kind = "sandbox"`: the lasting sandbox (`lasting_sandbox`), or, given ``org`` or
    ``in_process``, a sandbox served inside this process over ``org`` (else the generated
    `[sandbox]` org) and stopped after the block. The HubSpot sandbox enforces the rate limits
    of the `[hubspot] tier`; ``rate_limits=False`` lifts them in a sandbox started here (the
    demo's choice: a first full pull paced like a real portal takes a minute).
    """
    if settings.crm.kind != "sandbox":
        yield CrmConnection(connector_for(settings), _real_description(settings))
    elif org is not None or in_process:
        with _embedded(settings, org, rate_limits) as connection:
            yield connection
    else:
        lasting = lasting_sandbox(settings, rate_limits=rate_limits)
        token = lasting.token.get_secret_value()
        connector = sandbox_connector(
            lasting.crm, lasting.url, token, _policy(settings), rule_book(settings)
        )
        present = read_manifest(Path(lasting.org)).end_at if lasting.org else None
        yield CrmConnection(
            connector, _lasting_description(lasting), lasting=lasting, present=present
        )


def lasting_sandbox(settings: Settings, *, rate_limits: bool = True) -> LastingSandbox:
    """The sandbox at `[sandbox] url`, else the one running from this directory, else a new one
    started in the background; refused when it serves another dialect or org than asked."""
    sandbox = settings.sandbox
    if sandbox.url:
        return _configured(settings)
    found, started = running_sandbox(), False
    if found is None:
        found, started = _start(settings, rate_limits), True
    _check_same(found, settings, rate_limits)
    token = SecretStr(found.token)
    return LastingSandbox(found.url, found.crm, found.org, found.pid, started, token, found.tier)


def running_sandbox() -> Announcement | None:
    """The sandbox `.handoff/sandbox.json` announces, if it still runs and answers as that
    sandbox; a stale or garbled file is removed."""
    found = read_announcement(DISCOVERY_FILE)
    if found is None:
        DISCOVERY_FILE.unlink(missing_ok=True)
        return None
    if process_alive(found.pid) and _answers_as(found):
        return found
    withdraw(DISCOVERY_FILE, found.pid)
    return None


def sandbox_about(url: str, token: str) -> dict[str, Any]:
    """What the sandbox at ``url`` says it serves (crm, org, pid...); raises
    `SandboxUnavailable` when it refuses the token, `requests.RequestException` when it does
    not answer."""
    response = requests.get(
        f"{url}{ADMIN_PREFIX}/about",
        headers={"Authorization": f"Bearer {token}"},
        timeout=_ABOUT_SECONDS,
    )
    if response.status_code == 401:
        raise SandboxUnavailable(f"the sandbox at {url} refused the token")
    if not response.ok:
        raise SandboxUnavailable(f"{url} answers {response.status_code}: is it a sandbox?")
    about: dict[str, Any] = response.json()
    return about


def _answers_as(found: Announcement) -> bool:
    """Whether the announced sandbox answers at its URL as that process (not a reused pid)."""
    try:
        return sandbox_about(found.url, found.token).get("pid") == found.pid
    except (requests.RequestException, SandboxUnavailable, ValueError):
        return False


def _configured(settings: Settings) -> LastingSandbox:
    """The sandbox at `[sandbox] url`, checked to speak the `[sandbox] crm` dialect."""
    sandbox = settings.sandbox
    url, token = str(sandbox.url), sandbox.token or SecretStr("")
    try:
        about = sandbox_about(url, token.get_secret_value())
    except requests.RequestException:
        raise SandboxUnavailable(
            f"no sandbox answers at [sandbox] url {url}; start one there with "
            "`handoff sandbox serve`, or leave url out to start one from this directory"
        ) from None
    if about.get("crm") != sandbox.crm:
        raise SandboxUnavailable(
            f"the sandbox at {url} serves {about.get('crm')}, but [sandbox] crm asks for "
            f"{sandbox.crm}"
        )
    tier = about.get("tier")
    return LastingSandbox(url, sandbox.crm, about.get("org"), about.get("pid"), False, token, tier)


def _start(settings: Settings, rate_limits: bool) -> Announcement:
    """Start `handoff sandbox serve` over the `[sandbox]` org in the background and wait for it
    to announce itself; its token travels in the environment, never on a command line."""
    sandbox = settings.sandbox
    token = sandbox.token.get_secret_value() if sandbox.token else secrets.token_urlsafe(24)
    environment = sandbox_environment(token)
    command = serve_command(settings, rate_limits)
    try:
        return start_detached(command, DISCOVERY_FILE, LOG_FILE, START_SECONDS, environment)
    except StartError as error:
        found = running_sandbox()  # one another command started at the same moment won
        if found is None:
            raise SandboxUnavailable(
                "\n".join([f"the {sandbox.crm} sandbox did not start; it printed:", *error.lines])
            ) from None
        return found


def sandbox_environment(token: str | None) -> dict[str, str]:
    """This process's environment for a sandbox started in the background, without Handoff's
    settings (a database password, a CRM's secret: the sandbox reads none of them, and a
    process's environment is readable in /proc for as long as it runs), with its own token."""
    kept = {k: v for k, v in os.environ.items() if not k.upper().startswith(_OURS)}
    return kept if token is None else {**kept, SANDBOX_TOKEN_VARIABLE: token}


_OURS = "HANDOFF_"  # the settings' variables (`handoff.settings`), the sandbox token's too


def serve_command(settings: Settings, rate_limits: bool = True) -> list[str]:
    """`handoff sandbox serve` over the `[sandbox]` org, as a command line."""
    sandbox = settings.sandbox
    command = [sys.executable, "-m", "handoff", "sandbox", "serve", "--crm", sandbox.crm]
    command += ["--org", str(sandbox.org_dir)]
    command += ["--accounts", str(sandbox.accounts), "--seed", str(sandbox.seed)]
    command += ["--preset", sandbox.preset]
    for name, value in sorted(sandbox.world.items()):
        command += ["--world", f"{name}={value!r}"]
    command += ["--convention", _CONVENTION]
    if sandbox.crm == "hubspot":
        command += ["--tier", settings.hubspot.tier if rate_limits else "unlimited"]
    return command


# The settings choose no convention: the sandbox they start records activity the default way.
_CONVENTION = "a"


def _check_same(found: Announcement, settings: Settings, rate_limits: bool) -> None:
    """Refuse a running sandbox that serves another dialect, org, world, convention or (where
    rate limits matter) HubSpot tier than the settings ask for, naming what differs and how to
    stop the running one."""
    asked = _asked(settings, rate_limits)
    running = {
        "crm": found.crm,
        "org": found.org,
        "world": found.world,
        "convention": found.convention,
        "tier": found.tier,
    }
    differ = [key for key, value in asked.items() if running[key] != value]
    if differ == ["tier"] and found.tier == "unlimited":
        return  # the demo's sandbox, rate limits off: it serves everything a paid tier does
    if not differ:
        return
    raise SandboxUnavailable(
        f"a sandbox already runs from this directory: {_described(running, differ)} (pid "
        f"{found.pid}, {found.url}), but the settings ask for {_described(asked, differ)}. "
        f"Stop it with `{typed_command()} sandbox stop` (what was written to it is kept), or "
        "change [sandbox] in the settings or the HANDOFF_SANDBOX__ variables to match it."
    )


def _asked(settings: Settings, rate_limits: bool) -> dict[str, Any]:
    """What identifies the sandbox the settings ask for, as an announcement says it."""
    sandbox = settings.sandbox
    asked = {
        "crm": sandbox.crm,
        "org": str(sandbox.org_dir.resolve()),
        "world": world_record(sandbox.world_params),
        "convention": _CONVENTION,
    }
    if rate_limits and sandbox.crm == "hubspot":  # the demo lifts them: any tier will do
        asked["tier"] = settings.hubspot.tier
    return asked


def _described(served: Mapping[str, Any], differ: Sequence[str]) -> str:
    """`hubspot on orgs/x`, then what else differs: `, the easy world, tier unlimited`."""
    text = f"{served['crm']} on {served['org'] or 'an org generated in memory'}"
    details = {
        "world": lambda world: describe_world(world) if world else "an unknown world",
        "convention": lambda convention: f"convention {convention}",
        "tier": lambda tier: f"tier {tier or 'not set'}",
    }
    return text + "".join(f", {details[key](served[key])}" for key in differ if key in details)


def describe_world(world: Mapping[str, Any]) -> str:
    """A world as `world_record` holds it, for people: `the realistic world`, with the
    parameters that differ from its preset (`... with hidden_fit_sd=0.9`)."""
    preset = str(world.get("preset"))
    base = PRESETS[preset].parameters() if preset in PRESETS else {}
    changed = [f"{k}={v:g}" for k, v in world.items() if k != "preset" and base.get(k) != v]
    return f"the {preset} world" + (f" with {', '.join(changed)}" if changed else "")


@contextmanager
def _embedded(settings: Settings, org: Org | None, rate_limits: bool) -> Iterator[CrmConnection]:
    """A sandbox served inside this process for the length of a ``with`` block."""
    from sandbox.generator import generate_org

    dialect = settings.sandbox.crm
    sandbox = settings.sandbox
    served = org or generate_org(sandbox.accounts, sandbox.seed, world=sandbox.world_params)
    options = {}
    if dialect == "hubspot":
        options["tier"] = settings.hubspot.tier if rate_limits else "unlimited"
    with start_sandbox(dialect, served, **options) as running:
        connector = sandbox_connector(
            dialect, running.base_url, running.token, _policy(settings), rule_book(settings)
        )
        limits = "" if rate_limits or dialect != "hubspot" else ", rate limits off"
        description = f"the embedded sandbox ({dialect} API at {running.base_url}{limits})"
        yield CrmConnection(connector, description, running, present=served.manifest.end_at)


def rule_book(settings: Settings) -> RuleBook:
    """The users and activity mapping rules of the settings, compiled for a connector."""
    return RuleBook(settings.users, settings.activity)


def sandbox_connector(
    crm: str, url: str, token: str, policy: HttpPolicy, rules: RuleBook | None = None
) -> Connector:
    """The real connector, on the route of the sandbox at ``url`` with its own credentials
    (``token`` is HubSpot's private-app token; the Salesforce sandbox is logged in to)."""
    from connectors.hubspot import HubSpotConnector
    from connectors.salesforce import SalesforceConnector
    from sandbox.salesforce import SalesforceOptions, client_session

    if crm == "hubspot":
        settings = HubSpotSettings(token=SecretStr(token))
        return HubSpotConnector(settings, host=url, policy=policy, rules=rules)
    options = SalesforceOptions()
    settings = SalesforceSettings(
        auth="client_credentials",
        instance_url=options.instance_url,
        client_id=options.consumer_key,
        client_secret=SecretStr(options.consumer_secret),
    )
    return SalesforceConnector(settings, session=client_session(url), policy=policy, rules=rules)


def _policy(settings: Settings) -> HttpPolicy:
    return HttpPolicy(budget=Budget(settings.sync.api_budget_share))


def _lasting_description(lasting: LastingSandbox) -> str:
    """The lasting sandbox, for people: where, which process, whether just started."""
    process = f", pid {lasting.pid}" if lasting.pid else ""
    how = "started now, in the background" if lasting.started_now else "already running"
    return f"the sandbox ({lasting.crm} API at {lasting.url}{process}, {how}{_tier(lasting)})"


def _tier(lasting: LastingSandbox) -> str:
    """A HubSpot sandbox's rate-limit tier, with the day's calls it allows (a run's budget is a
    share of them): `; tier unlimited: no rate limits, 1,000,000,000 calls a day`."""
    from sandbox.hubspot.limits import TIERS  # the HubSpot sandbox, loaded only for one

    if lasting.crm != "hubspot" or lasting.tier not in TIERS:
        return ""
    tier = TIERS[lasting.tier]
    limits = "" if tier.enforced else ": no rate limits"
    return f"; tier {lasting.tier}{limits}, {tier.per_day:,} calls a day"


def _real_description(settings: Settings) -> str:
    """The org a real connector talks to, for people (never a secret)."""
    if settings.crm.kind == "hubspot":
        return f"HubSpot at {settings.hubspot.host}"
    salesforce = settings.salesforce
    where = salesforce.instance_url or f"{salesforce.login_domain}.salesforce.com"
    return f"Salesforce at {where} (auth {salesforce.auth})"
