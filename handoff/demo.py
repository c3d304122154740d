"""`handoff demo`: Handoff working on the sandbox CRM, start to finish.

Set-up (twice: the second changes nothing), a full sync that writes scores, the tiers and three
accounts read back from the CRM; then a burst of pricing-page visits on the warmest Nurture
accounts through the sandbox's admin route, one incremental cycle that moves them up (before ->
after, read back from the CRM), and the commands to try next.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.table import Table
from sqlmodel import col, func, select

from connectors.errors import ConnectorError
from connectors.protocol import Connector
from handoff.crm import CrmConnection, SandboxUnavailable, open_crm, schema_spec
from handoff.reports import joined, print_run_report, print_schema_report, schema_summary
from handoff.runs import fail_another_crm, run_locked
from handoff.settings import SandboxSettings, Settings
from handoff.shell import (
    console,
    fail,
    generated_org,
    loaded_org,
    open_store,
    print_org_summary,
    typed_command,
    utc_time,
)
from sandbox.admin import NewActivity, add_activities
from sandbox.org import Org, save_org
from sandbox.persistence import state_dir
from sync import Store
from sync.config import url_has_password
from sync.run import RunReport, StateOfAnotherCrm, refuse_another_crm
from sync.state import Activity, CurrentScore

__all__ = ["run_demo"]


def run_demo(loaded: Settings) -> None:
    """The demo on the sandbox CRM of ``loaded`` (`handoff demo`, which imports this module
    only when it runs: what it loads, the connectors and the database layer among it, costs
    every other command's start nothing)."""
    _print_demo_org(loaded.sandbox)
    sandbox = loaded.model_copy(update={"crm": loaded.crm.model_copy(update={"kind": "sandbox"})})
    try:
        with open_crm(sandbox, rate_limits=False) as crm:
            console.print(f"Connected to {crm.description}")
            _refuse_another_crm(loaded, crm)  # before set-up changes the CRM
            first = crm.connector.ensure_schema(schema_spec(loaded))
            print_schema_report(console, first)
            if first.changed:  # shown safe to repeat; a kept sandbox's fields were in place
                again = crm.connector.ensure_schema(schema_spec(loaded))
                console.print(f"Set-up again: {schema_summary(again)}")
            url, moved = _demo_sync(loaded, crm, crm.now())
    except ConnectorError as error:
        fail([f"the demo stopped: {error}"])
    except SandboxUnavailable as error:
        fail([str(error)])
    console.print(f"State database ready: {url}")
    handoff = typed_command()
    console.print(
        f"The sandbox keeps running and keeps what is written to it in "
        f"{state_dir(loaded.sandbox.org_dir, loaded.sandbox.crm)}: `{handoff} sandbox status` "
        f"shows it, `{handoff} sandbox stop` ends it."
    )
    _print_next_commands(handoff, moved[0] if moved else "ACCOUNT")


def _refuse_another_crm(settings: Settings, crm: CrmConnection) -> None:
    """Exit 1, the CRM untouched (HubSpot's Hub ID read, nothing written), when the state
    database holds another CRM's state, or another org's."""
    with open_store(settings.state.database_url) as store:
        try:
            refuse_another_crm(store, crm.connector)
        except StateOfAnotherCrm as other:
            fail_another_crm(other, store)


def _print_next_commands(handoff: str, account: str) -> None:
    """The commands to try after the demo (``handoff`` as the user runs it, `typed_command`),
    one an account the burst moved."""
    commands = {
        f"{handoff} logs": "the runs above; `logs RUN` shows one with its failures",
        f"{handoff} explain {account}": "why it now scores what it does (by id, name or domain)",
        f"{handoff} score": "scores and tiers from the state database, without a sync",
        f"{handoff} sync": "one more cycle: nothing new, so nothing is written",
        f"{handoff} sandbox stop": "end the sandbox (what was written to it is kept)",
    }
    width = max(map(len, commands))
    console.print(_try_next(_settings_from_environment(), _withheld()), soft_wrap=True)
    for command, what in commands.items():
        console.print(f"  {command.ljust(width)}  {what}", soft_wrap=True)


def _try_next(kept: list[str], withheld: list[str]) -> str:
    """What the commands the demo suggests need first: the variables it ran with, exported."""
    steps = [f"`export {' '.join(kept)}`"] if kept else []
    steps += [f"exporting {name} as the demo had it (its password not shown)" for name in withheld]
    if not steps:
        return "Try next:"
    return (
        f"Try next, after {' and '.join(steps)} (the settings the demo ran with; without them "
        "these commands read the settings file's, or the defaults):"
    )


def _withheld() -> list[str]:
    """The demo's settings variables not shown among those to export: a state database URL
    holding a password."""
    url = os.environ.get("HANDOFF_STATE__DATABASE_URL")
    return ["HANDOFF_STATE__DATABASE_URL"] if url and url_has_password(url) else []


def _settings_from_environment() -> list[str]:
    """The variables among the demo's settings that say which sandbox and state database it
    used (``NAME=value``), so the commands it suggests are run against the same ones; never a
    secret (a state database URL holding a password is left out)."""
    return [
        f"{name}={shlex.quote(value)}"  # as a shell takes it back
        for name, value in sorted(os.environ.items())
        if name.startswith("HANDOFF_SANDBOX__")
        or (name == "HANDOFF_STATE__DATABASE_URL" and not url_has_password(value))
    ]


def _print_demo_org(sandbox: SandboxSettings) -> Org:
    """Generate the sandbox org into its directory unless an earlier run did; show its summary."""
    org_dir = sandbox.org_dir
    if org_dir.exists():
        org = loaded_org(org_dir)
        print_org_summary(org, f"Sandbox org {org_dir} (generated earlier)")
        return org
    org = generated_org(sandbox.accounts, sandbox.seed, sandbox.world_params)
    save_org(org, org_dir)
    print_org_summary(org, f"Sandbox org written to {org_dir}")
    return org


def _demo_sync(settings: Settings, crm: CrmConnection, now: datetime) -> tuple[str, list[str]]:
    """The demo's sync: a full run, the tiers, three accounts as the CRM shows them, then a
    burst of visits and one incremental cycle; the store's URL and the accounts it moved."""
    store = open_store(settings.state.database_url)
    with store:
        console.print(f"Scoring as of the sandbox world's present, {now:%d %b %Y}")
        report = run_locked(settings, crm, store, now, "the demo", False)
        print_run_report(console, report)
        _print_as_reps_see(crm.connector, report, store)
        return store.url, _demo_burst(settings, crm, store, now)


_BURST_ACCOUNTS = 3
_BURST_VISITS = 8  # pricing-page visits on each account: a fresh, strong intent burst
_VISIT_STEP = timedelta(seconds=20)


def _demo_burst(settings: Settings, crm: CrmConnection, store: Store, now: datetime) -> list[str]:
    """Pricing-page visits on the warmest Nurture accounts through the sandbox's admin route,
    then one incremental cycle, and those accounts before and after, read back from the CRM;
    the accounts (none when there is no room for a burst)."""
    with store.session() as session:
        chosen = _warmest_nurture(session, _BURST_ACCOUNTS)
        times = _visit_times(session.exec(select(func.max(Activity.occurred_at))).one(), now)
    admin = crm.admin()
    if not chosen or times is None or admin is None:
        console.print(_NO_BURST)
        return []
    stream = _account_stream(crm.connector)
    before = {r.id: r.values for r in crm.connector.find(stream, "id", chosen)}
    visits = [NewActivity("pricing_page", t, account_id=a) for a in chosen for t in times]
    add_activities(*admin, visits)
    console.print(
        f"\nA buying signal arrives: {_BURST_VISITS} pricing-page visits on each of "
        f"{len(chosen)} Nurture accounts, {times[0]:%d %b %H:%M:%S} to {times[-1]:%H:%M:%S} UTC "
        "(added through the sandbox's admin route: no CRM API creates page views)"
    )
    cycle = run_locked(settings, crm, store, now, False, False)
    after = {r.id: r.values for r in crm.connector.find(stream, "id", chosen)}
    _print_moves(stream, chosen, before, after)
    _print_cycle(cycle, len(visits))
    return chosen


def _print_cycle(cycle: RunReport, visits: int) -> None:
    """What the burst's cycle pulled, wrote and cost, in two lines: the records pulled besides
    the visits, as the run log counts them (those stored: changed since the last pull, our own
    writes among them; those read again behind the cursor and skipped as already held)."""
    pulled = cycle.pulled.values()
    skipped = sum(p.get("reread_skipped", 0) for p in pulled)
    changed = sum(p.get("stored", 0) for p in pulled) - visits
    others = []
    if changed > 0:
        others.append(
            f"{changed:,} other records changed since the last pull (our own writes among them: "
            "a write moves a record's modification time)"
        )
    if skipped:
        others.append(
            f"{skipped:,} records read again in the window behind the cursor, skipped as "
            "already held"
        )
    more = "".join(f"; {other}" for other in others)
    console.print(f"One incremental cycle: {visits:,} new visits pulled{more}")
    console.print(
        f"  {sum(cycle.written.values()):,} written (only what moved: {joined(cycle.written)}), "
        f"{cycle.unchanged:,} already up to date, {cycle.tier_up:,} moved up, "
        f"{cycle.api_calls:,} API calls, {sum(cycle.stages.values()):.1f} s"
    )


_NO_BURST = (
    "No burst this time: the sandbox world has no Nurture account left, or no room before its "
    "present for new visits; `handoff sandbox stop` and deleting its kept state starts it over."
)


def _warmest_nurture(session: Any, limit: int) -> list[str]:
    """The best-scored Nurture accounts (each demo moves its own up, so the next picks others)."""
    rows = session.exec(
        select(CurrentScore.account_id)
        .where(CurrentScore.tier == "nurture")
        .order_by(col(CurrentScore.score).desc(), col(CurrentScore.account_id))
        .limit(limit)
    ).all()
    return list(rows)


def _visit_times(latest: datetime | None, now: datetime) -> list[datetime] | None:
    """When the burst's visits happen: after the latest activity the CRM holds (an events API
    lists by time, so a pull finds only what is later than what it read) and before ``now``;
    None when there is no room left (each demo takes some of it)."""
    if latest is None:
        latest = now - _VISIT_STEP * (_BURST_VISITS + 1)
    latest = latest if latest.tzinfo else latest.replace(tzinfo=UTC)
    # a quarter of the room left: a second demo, and many more, still find some
    step = min(_VISIT_STEP, (now - latest) / (4 * _BURST_VISITS))
    step = timedelta(milliseconds=step // timedelta(milliseconds=1))
    if step <= timedelta(0):
        return None
    return [latest + step * (number + 1) for number in range(_BURST_VISITS)]


# an account stream's record as its CRM's pages name it, one and many
_NOUNS = {"Account": ("Account", "Accounts"), "companies": ("Company", "Companies")}


def _account_stream(connector: Connector) -> str:
    """The connector's account stream (Account, companies)."""
    return next(n for n, s in connector.streams.items() if s.entity == "account")


def _print_moves(
    stream: str,
    chosen: list[str],
    before: Mapping[str, Mapping[str, Any]],
    after: Mapping[str, Mapping[str, Any]],
) -> None:
    """Each account's tier and score before and after, as the CRM shows them."""
    plural = _NOUNS.get(stream, (stream, stream))[1]
    table = Table(title=f"{plural} read back from the CRM, before -> after the cycle")
    for column in ("id", "name", "tier", "score"):
        table.add_column(column)
    for account in chosen:
        was, now = before.get(account, {}), after.get(account, {})
        table.add_row(
            account,
            str(now.get("name") or ""),
            f"{_as_shown(was.get('tier'))} -> {_as_shown(now.get('tier'))}",
            f"{_as_shown(was.get('score'))} -> {_as_shown(now.get('score'))}",
        )
    console.print(table)


_SHOWN = ("name", "score", "tier", "topic", "signals", "model_version", "scored_at")


def _as_shown(value: Any) -> str:
    """A field's value as a CRM's page shows it: a whole number without the ".0" the API
    sends (a score field has no decimals), a time to the minute in UTC, nothing for null."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return utc_time(value)
    return str(value)


def _print_as_reps_see(connector: Connector, report: RunReport, store: Store) -> None:
    """Three accounts, one per tier from the top, read back from the CRM by id."""
    stream = _account_stream(connector)
    with store.session() as session:
        ids = _one_per_tier(session)
    shown = {record.id: record for record in connector.find(stream, "id", ids)}
    for record in (shown[i] for i in ids if i in shown):
        noun = _NOUNS.get(stream, (stream, stream))[0]
        table = Table(title=f"{noun} {record.id}, read back from the CRM", show_header=False)
        for key in _SHOWN:
            table.add_row(key, _as_shown(record.values.get(key)))
        console.print(table)


def _one_per_tier(session: Any) -> list[str]:
    """The best-scored account of each of the AE, SDR and Nurture tiers."""
    chosen = []
    for tier in ("ae", "sdr", "nurture"):
        row = session.exec(
            select(CurrentScore.account_id)
            .where(CurrentScore.tier == tier)
            .order_by(col(CurrentScore.score).desc(), col(CurrentScore.account_id))
            .limit(1)
        ).first()
        if row is not None:
            chosen.append(row)
    return chosen
