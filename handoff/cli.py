"""The `handoff` command line: a thin typer app over the library.

Sub-apps hang off `app` (`app.add_typer(...)`); each command loads its settings through
`settings_from`, which honours `--settings` given before or after the command name.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn
from uuid import uuid4

import requests
import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import col, func, select

from connectors.errors import ConnectorError
from connectors.protocol import Connector, SchemaGap, SchemaReport
from handoff.crm import (
    START_SECONDS,
    CrmConnection,
    SandboxUnavailable,
    describe_world,
    open_crm,
    running_sandbox,
    sandbox_about,
    schema_spec,
)
from handoff.progress import StageProgress
from handoff.reports import (
    event_json,
    joined,
    print_explanation,
    print_mirror_scores,
    print_run_summary,
    print_runs,
    summary_json,
)
from handoff.runs import lock_key, run_config, scoring_setup
from handoff.settings import (
    SANDBOX_TOKEN_VARIABLE,
    SETTINGS_VARIABLE,
    SandboxSettings,
    Settings,
    SettingsError,
    check_settings,
    load_settings,
    render_settings,
)
from sandbox.admin import NewActivity, add_activities
from sandbox.discovery import (
    DISCOVERY_FILE,
    LOG_FILE,
    Announcement,
    StartError,
    announce,
    process_alive,
    read_announcement,
    start_detached,
    wait_for_exit,
    withdraw,
    world_record,
)
from sandbox.faults import FaultError, FaultPlan, load_faults
from sandbox.generator import generate_org
from sandbox.hubspot import TIERS
from sandbox.org import Org, OrgError, load_org, save_org
from sandbox.persistence import SavedStateError, StateKeeper, kept, state_dir
from sandbox.service import RunningSandbox, start_sandbox
from sandbox.world import (
    DEFAULT_PRESET,
    PRESETS,
    WorldError,
    WorldParams,
    parameter_names,
    parse_overrides,
    world_from,
)
from sync import Store
from sync.explain import AccountNotFound, AmbiguousAccount, explain_account, score_mirror
from sync.lock import Holder, LockHeld, LockLost, run_lock
from sync.run import EXIT_CODES, RunReport, run_sync
from sync.runlog import run_events, run_problems, runs_newest_first, summarise
from sync.scoring_state import train_model
from sync.state import Activity, CurrentScore, StateError, SyncRun

__all__ = [
    "CliOptions",
    "SettingsOption",
    "app",
    "explain_command",
    "logs",
    "main",
    "sandbox_app",
    "score_command",
    "settings_app",
    "settings_from",
    "settings_path",
    "setup",
    "state_app",
    "sync_command",
    "train_command",
]

app = typer.Typer(
    name="handoff",
    help="Score, tier and route CRM accounts so Sales and Marketing work the same list.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    # Local variables can hold secrets; a traceback must never print them.
    pretty_exceptions_show_locals=False,
)
settings_app = typer.Typer(help="Check and show the settings.", no_args_is_help=True)
app.add_typer(settings_app, name="settings")
sandbox_app = typer.Typer(
    help="The embedded sandbox CRM and its synthetic orgs.", no_args_is_help=True
)
app.add_typer(sandbox_app, name="sandbox")
state_app = typer.Typer(help="The local sync state database.", no_args_is_help=True)
app.add_typer(state_app, name="state")
console = Console()
progress_console = Console(stderr=True)  # for commands whose stdout is read by programs

SettingsOption = Annotated[
    Path | None,
    typer.Option(
        "--settings",
        help="Settings file (default: $HANDOFF_SETTINGS, else ./settings.toml if it exists).",
        dir_okay=False,
        show_default=False,
    ),
]
PresetOption = Annotated[str, typer.Option("--preset", help=f"World preset: {', '.join(PRESETS)}.")]
WorldOption = Annotated[
    list[str] | None,
    typer.Option(
        "--world",
        metavar="NAME=VALUE",
        help=f"Override a world parameter (repeatable): {', '.join(parameter_names())}.",
        show_default=False,
    ),
]


@dataclass(frozen=True)
class CliOptions:
    """Options given to `handoff` itself, before the command name."""

    settings: Path | None = None


@app.callback()
def _root(
    ctx: typer.Context,
    settings: Annotated[
        Path | None,
        typer.Option(
            "--settings",
            envvar=SETTINGS_VARIABLE,
            help="Settings file for every command (default: ./settings.toml if it exists).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Score, tier and route CRM accounts so Sales and Marketing work the same list."""
    ctx.obj = CliOptions(settings=settings)


def settings_path(ctx: typer.Context, path: Path | None) -> Path | None:
    """The command's own --settings, else the one given to `handoff`, else None (the default)."""
    options = ctx.find_object(CliOptions)
    return path if path is not None or options is None else options.settings


def settings_from(ctx: typer.Context, path: Path | None) -> Settings:
    """Load the settings for a command, or print every problem and exit with status 1."""
    try:
        return load_settings(settings_path(ctx, path))
    except SettingsError as error:
        _fail(error.problems)


def _fail(problems: tuple[str, ...] | list[str]) -> NoReturn:
    """Print each problem on its own line to stderr and exit 1."""
    for problem in problems:
        typer.echo(problem, err=True)
    raise typer.Exit(1)


@settings_app.command("check")
def check(ctx: typer.Context, settings: SettingsOption = None) -> None:
    """Validate the settings; print each problem, or ok."""
    problems = check_settings(settings_path(ctx, settings))
    if problems:
        _fail(problems)
    typer.echo("ok")


@settings_app.command("show")
def show(ctx: typer.Context, settings: SettingsOption = None) -> None:
    """Print the effective settings as TOML; secrets show only as set or not set."""
    typer.echo(render_settings(settings_from(ctx, settings)), nl=False)


@sandbox_app.command("generate")
def generate(
    out: Annotated[
        Path, typer.Option("--out", help="Directory to write the org to.", file_okay=False)
    ],
    accounts: Annotated[int, typer.Option("--accounts", min=1, help="Accounts in the org.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same org.")] = 7,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing directory.")] = False,
    preset: PresetOption = DEFAULT_PRESET,
    world: WorldOption = None,
) -> None:
    """Generate a synthetic org (with its hidden ground truth) and write it to a directory."""
    chosen = _world(preset, world)
    if out.exists() and any(out.iterdir()) and not force:
        _fail([f"{out}: already exists and is not empty; choose another --out or add --force"])
    if out.exists() and force:
        shutil.rmtree(out)
    org = _generated(accounts, seed, chosen)
    save_org(org, out)
    _print_summary(org, f"Org written to {out}")


class SandboxCrm(StrEnum):
    """The CRM dialects the sandbox speaks."""

    salesforce = "salesforce"
    hubspot = "hubspot"


class Convention(StrEnum):
    """How the sandbox org records activity (`sandbox.salesforce.mapping`,
    `sandbox.hubspot.touches`)."""

    a = "a"
    b = "b"


@sandbox_app.command("serve")
def serve(
    crm: Annotated[SandboxCrm, typer.Option("--crm", help="Which CRM's API to speak.")],
    accounts: Annotated[int, typer.Option("--accounts", min=1, help="Accounts in the org.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same org.")] = 7,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")
    ] = 0,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar=SANDBOX_TOKEN_VARIABLE,
            help="Bearer token to accept (default: a random one, kept in .handoff/sandbox.json).",
            show_default=False,
        ),
    ] = None,
    faults: Annotated[
        Path | None, typer.Option("--faults", dir_okay=False, help="TOML schedule of failures.")
    ] = None,
    org_dir: Annotated[
        Path | None,
        typer.Option(
            "--org",
            file_okay=False,
            help="Serve this org directory (generated there first if it does not exist) and "
            "keep what is written to the CRM in it.",
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help=f"World preset: {', '.join(PRESETS)} (default: the --org's own world, else "
            f"{DEFAULT_PRESET}).",
            show_default=False,
        ),
    ] = None,
    world: WorldOption = None,
    convention: Annotated[
        Convention,
        typer.Option(
            "--convention",
            help="How the org records activity: a, or b (other subjects, URLs, campaign types).",
        ),
    ] = Convention.a,
    tier: Annotated[
        str | None,
        typer.Option(
            "--tier", help=f"HubSpot rate limits: {', '.join(TIERS)}.", show_default=False
        ),
    ] = None,
    detach: Annotated[
        bool,
        typer.Option("--detach", help="Serve in the background; log in .handoff/sandbox.log."),
    ] = False,
) -> None:
    """Serve a synthetic org over the Salesforce or HubSpot API on 127.0.0.1 until stopped."""
    _check_tier(crm, tier)
    asked = _world(preset or DEFAULT_PRESET, world) if preset or world else None
    _refuse_a_second_sandbox()
    if detach:
        command = _serve_command(crm, accounts, seed, port, faults, org_dir, tier)
        rendering = [*_world_options(preset, world), "--convention", convention.value]
        _serve_detached([*command, *rendering], token)
        return
    plan = _faults(faults)
    org = _org_to_serve(org_dir, accounts, seed, asked)
    world_served = world_record(org.manifest.world_params)
    served = _Serving(org_dir.resolve() if org_dir else None, tier, convention.value, world_served)
    _log_to_stderr()
    try:
        options = {"convention": convention.value, **({"tier": tier} if tier else {})}
        with start_sandbox(
            crm.value, org, token=token, faults=plan, port=port, about=served.about, **options
        ) as running:
            _serve_until_stopped(running, served)
    except OSError as error:
        _fail([f"cannot serve on port {port}: {error.strerror}"])
    except SavedStateError as error:
        _fail([str(error)])
    finally:
        withdraw(DISCOVERY_FILE, os.getpid())
    typer.echo("sandbox stopped")


def _serve_until_stopped(running: RunningSandbox, served: _Serving) -> None:
    """Keep the CRM's state with its org (if served from one), announce the sandbox, print the
    ready line and serve until Ctrl-C or SIGTERM; the state is saved once more on the way out."""
    with _stop_signals() as stop, _kept(running, served.org) as served.keeper:
        _announce(running, served)
        typer.echo(f"sandbox {running.crm} ready at {running.base_url} ({served.summary()})")
        typer.echo(_SERVE_HINT, err=True)
        while not stop.wait(_STOP_POLL_SECONDS):
            pass


_SERVE_HINT = (
    f"Its address and token are in {DISCOVERY_FILE} (readable by you only), where "
    '`[crm] kind = "sandbox"` finds it; `handoff sandbox stop` ends it.'
)
_STOP_SECONDS = 60.0  # the last save of a large org takes a while


@dataclass
class _Serving:
    """A sandbox served from this process: its org directory (None when generated in memory),
    rate-limit tier, convention, the org's world, and the keeper of its state."""

    org: Path | None
    tier: str | None
    convention: str
    world: dict[str, Any]
    keeper: StateKeeper | None = None

    def about(self) -> dict[str, object]:
        """What it says about itself at /__sandbox/about."""
        kept = self.keeper.about() if self.keeper else {"kept_in": None, "saved_at": None}
        org = str(self.org) if self.org else None
        served = {"tier": self.tier, "world": self.world, "convention": self.convention}
        return {"pid": os.getpid(), "org": org, **served, **kept}

    def summary(self) -> str:
        """`pid 4242, state kept in orgs/x/crm/hubspot` for the ready line."""
        kept = f"state kept in {self.keeper.directory}" if self.keeper else "state not kept"
        return f"pid {os.getpid()}, {kept}"


@contextmanager
def _kept(running: RunningSandbox, org_dir: Path | None) -> Iterator[StateKeeper | None]:
    """Keep the CRM's state in the org's directory, when serving one; else keep nothing."""
    if org_dir is None:
        yield None
        return
    with kept(running, org_dir) as keeper:
        yield keeper


def _announce(running: RunningSandbox, served: _Serving) -> None:
    """Write .handoff/sandbox.json, so later commands from this directory find the sandbox."""
    started = datetime.now(UTC).isoformat(timespec="seconds")
    org = str(served.org) if served.org else None
    announcement = Announcement(
        os.getpid(),
        running.base_url,
        running.crm,
        org,
        started,
        served.tier,
        served.world,
        served.convention,
        running.token,
    )
    announce(DISCOVERY_FILE, announcement)


def _check_tier(crm: SandboxCrm, tier: str | None) -> None:
    if tier is not None and (crm != SandboxCrm.hubspot or tier not in TIERS):
        _fail([f"--tier is one of {', '.join(TIERS)}, and only for --crm hubspot"])


def _refuse_a_second_sandbox() -> None:
    """Exit when a sandbox already runs from this directory (a stale record is removed)."""
    found = running_sandbox()
    if found is not None:
        _fail(
            [
                f"a {found.crm} sandbox already runs from this directory at {found.url} "
                f"(pid {found.pid}); `handoff sandbox stop` ends it"
            ]
        )


def _org_to_serve(org_dir: Path | None, accounts: int, seed: int, asked: WorldParams | None) -> Org:
    """The org in ``org_dir`` (generated and written there first if it does not exist), else
    one generated in memory; in the ``asked`` world (None: the org's own, else the default)."""
    world = asked or world_from()
    if org_dir is None:
        return _generated(accounts, seed, world, progress_console)
    if org_dir.exists():
        return _in_world(_loaded(org_dir), org_dir, asked)
    org = _generated(accounts, seed, world, progress_console)
    save_org(org, org_dir)
    progress_console.print(f"Org written to {org_dir}")
    return org


def _in_world(org: Org, org_dir: Path, asked: WorldParams | None) -> Org:
    """``org``, or exit when it was generated in another world than the one asked for."""
    holds = org.manifest.world_params
    if asked is not None and holds != asked:
        _fail(
            [
                f"{org_dir} holds an org generated in {describe_world(world_record(holds))}, "
                f"not in {describe_world(world_record(asked))} as asked; leave out "
                "--preset/--world to serve it, or choose another --org"
            ]
        )
    return org


def _log_to_stderr() -> None:
    """The sandbox's own log lines (state saved, taken back) on stderr, with the time."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger = logging.getLogger("sandbox")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _serve_command(
    crm: SandboxCrm,
    accounts: int,
    seed: int,
    port: int,
    faults: Path | None,
    org_dir: Path | None,
    tier: str | None,
) -> list[str]:
    """`handoff sandbox serve` with these options (the token travels in the environment)."""
    command = [sys.executable, "-m", "handoff", "sandbox", "serve", "--crm", crm.value]
    command += ["--accounts", str(accounts), "--seed", str(seed), "--port", str(port)]
    for option, value in (("--faults", faults), ("--org", org_dir), ("--tier", tier)):
        command += [option, str(value)] if value is not None else []
    return command


def _world_options(preset: str | None, world: list[str] | None) -> list[str]:
    """The ``--preset`` and ``--world`` options as given, for a command line."""
    options = ["--preset", preset] if preset else []
    for override in world or []:
        options += ["--world", override]
    return options


def _serve_detached(command: list[str], token: str | None) -> None:
    """Serve in the background (its output appended to .handoff/sandbox.log) and return once
    it has announced itself, or exit with the end of its log."""
    environment = {**os.environ, SANDBOX_TOKEN_VARIABLE: token} if token else dict(os.environ)
    try:
        with progress_console.status("Starting the sandbox in the background..."):
            found = start_detached(command, DISCOVERY_FILE, LOG_FILE, START_SECONDS, environment)
    except StartError as error:
        _fail(["the sandbox did not start; the end of what it printed:", *error.lines])
    summary = f"pid {found.pid}, log in {LOG_FILE}; `handoff sandbox stop` ends it"
    typer.echo(f"sandbox {found.crm} ready at {found.url} ({summary})")


@sandbox_app.command("stop")
def stop() -> None:
    """Stop the sandbox started from this directory (it saves what was written to it first)."""
    found = read_announcement(DISCOVERY_FILE)
    if found is None:
        DISCOVERY_FILE.unlink(missing_ok=True)
        typer.echo(f"No sandbox runs from this directory (no {DISCOVERY_FILE}).")
        return
    if not process_alive(found.pid):
        withdraw(DISCOVERY_FILE, found.pid)
        typer.echo(
            f"No sandbox runs from this directory: removed {DISCOVERY_FILE}, left by pid "
            f"{found.pid}, which has ended."
        )
        return
    _stop(found)
    kept_in = state_dir(Path(found.org), found.crm) if found.org else None
    where = f"; what was written to it is kept in {kept_in}" if kept_in else ""
    typer.echo(f"Stopped the {found.crm} sandbox (pid {found.pid}){where}.")


def _stop(found: Announcement) -> None:
    """SIGTERM the announced sandbox, once it has shown it is that process, and wait for it."""
    try:
        checked = sandbox_about(found.url, found.token).get("pid") == found.pid
    except (requests.RequestException, SandboxUnavailable, ValueError):
        checked = False
    if not checked:
        _fail(
            [
                f"pid {found.pid} runs but does not answer at {found.url} as the sandbox, so it "
                f"is left alone; if it is the sandbox, `kill {found.pid}` stops it"
            ]
        )
    os.kill(found.pid, signal.SIGTERM)
    with progress_console.status(f"Stopping the sandbox (pid {found.pid}), saving its state..."):
        ended = wait_for_exit(found.pid, _STOP_SECONDS)
    if not ended:
        _fail(
            [
                f"the sandbox (pid {found.pid}) did not stop within {_STOP_SECONDS:.0f} s; "
                f"`kill -9 {found.pid}` ends it, losing what was written since its last save"
            ]
        )
    withdraw(DISCOVERY_FILE, found.pid)


@sandbox_app.command("status")
def status() -> None:
    """Show the sandbox running from this directory: dialect, address, org, its kept state.
    Exit status 1 when none runs."""
    found = running_sandbox()
    if found is None:
        typer.echo("No sandbox runs from this directory.")
        raise typer.Exit(1)
    about = sandbox_about(found.url, found.token)
    table = Table(title=f"Sandbox running from {Path.cwd()}", show_header=False)
    rows = {
        "crm": found.crm,
        "url": found.url,
        "pid": str(found.pid),
        "since": found.started,
        "org": found.org or "generated in memory",
        "world": describe_world(found.world) if found.world else "",
        "convention": found.convention or "",
        "rate limits": found.tier or "",
        "state kept in": about.get("kept_in") or "nowhere (no org directory)",
        "last saved": about.get("saved_at") or "not yet",
    }
    for key, value in rows.items():
        if value:
            table.add_row(key, value)
    console.print(table)
    console.print(f"Token in {DISCOVERY_FILE}; `handoff sandbox stop` ends it.")


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_STOP_POLL_SECONDS = 0.2


@contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C (SIGINT) or SIGTERM, its handlers in place before the caller says
    it is ready (a signal sent on the ready line must not find Python's defaults). A bare
    ``Event.wait()`` is never interrupted by a signal on Linux, so the caller waits in slices."""
    stop = threading.Event()
    previous = {number: signal.signal(number, lambda *_: stop.set()) for number in _STOP_SIGNALS}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _world(preset: str, overrides: list[str] | None) -> WorldParams:
    """The preset's world with the ``--world`` overrides, or exit with what is wrong."""
    try:
        return world_from(preset, parse_overrides(overrides or []))
    except WorldError as error:
        _fail([str(error)])


def _faults(path: Path | None) -> FaultPlan | None:
    """The faults file's schedule, or exit with what is wrong in it."""
    try:
        return load_faults(path) if path else None
    except FaultError as error:
        _fail([str(error)])


def _loaded(path: Path) -> Org:
    """A saved org, or exit with why it cannot be read."""
    try:
        return load_org(path)
    except OrgError as error:
        _fail([str(error)])


@app.command("setup")
def setup(ctx: typer.Context, settings: SettingsOption = None) -> None:
    """Create the fields Handoff owns in the CRM, repair drift; a second run changes nothing."""
    loaded = settings_from(ctx, settings)
    try:
        with open_crm(loaded) as crm:
            console.print(f"Setting up {crm.description}")
            report = crm.connector.ensure_schema(schema_spec(loaded))
    except ConnectorError as error:
        _fail([f"set-up stopped: {error}"])
    except SandboxUnavailable as error:
        _fail([str(error)])
    _print_schema_report(report)
    _fail_on_conflicts(report)


@app.command("demo")
def demo(ctx: typer.Context, settings: SettingsOption = None) -> None:
    """Run Handoff on the sandbox CRM: set-up, a full sync that writes scores, then a burst of
    pricing-page visits and one incremental cycle that moves those accounts up."""
    loaded = settings_from(ctx, settings)
    _print_demo_org(loaded.sandbox)
    sandbox = loaded.model_copy(update={"crm": loaded.crm.model_copy(update={"kind": "sandbox"})})
    try:
        with open_crm(sandbox, rate_limits=False) as crm:
            console.print(f"Connected to {crm.description}")
            _print_schema_report(crm.connector.ensure_schema(schema_spec(loaded)))
            again = crm.connector.ensure_schema(schema_spec(loaded))
            console.print(f"Set-up again: {_schema_summary(again)}")
            url, moved = _demo_sync(loaded, crm, crm.now())
    except ConnectorError as error:
        _fail([f"the demo stopped: {error}"])
    except SandboxUnavailable as error:
        _fail([str(error)])
    console.print(f"State database ready: {url}")
    console.print(
        f"The sandbox keeps running and keeps what is written to it in "
        f"{state_dir(loaded.sandbox.org_dir, loaded.sandbox.crm)}: `handoff sandbox status` "
        "shows it, `handoff sandbox stop` ends it."
    )
    _print_next_commands(moved[0] if moved else "ACCOUNT")


def _print_next_commands(account: str) -> None:
    """The commands to try after the demo, one an account the burst moved."""
    commands = {
        "handoff logs": "the runs above; `handoff logs RUN` shows one with its failures",
        f"handoff explain {account}": "why it now scores what it does (by id, name or domain)",
        "handoff score": "scores and tiers from the state database, without a sync",
        "handoff sync": "one more cycle: nothing new, so nothing is written",
        "handoff sandbox stop": "end the sandbox (what was written to it is kept)",
    }
    width = max(map(len, commands))
    console.print("Try next:")
    for command, what in commands.items():
        console.print(f"  {command.ljust(width)}  {what}", soft_wrap=True)


def _print_demo_org(sandbox: SandboxSettings) -> Org:
    """Generate the sandbox org into its directory unless an earlier run did; show its summary."""
    org_dir = sandbox.org_dir
    if org_dir.exists():
        org = _loaded(org_dir)
        _print_summary(org, f"Sandbox org {org_dir} (generated earlier)")
        return org
    org = _generated(sandbox.accounts, sandbox.seed, sandbox.world_params)
    save_org(org, org_dir)
    _print_summary(org, f"Sandbox org written to {org_dir}")
    return org


@state_app.command("init")
def state_init(ctx: typer.Context, settings: SettingsOption = None) -> None:
    """Create the state database at this release's schema, or check an existing one is at it."""
    console.print(
        f"State database ready: {_open_state(settings_from(ctx, settings).state.database_url)}"
    )


@state_app.command("upgrade")
def state_upgrade(ctx: typer.Context, settings: SettingsOption = None) -> None:
    """Migrate the state database in place to this release's schema, keeping every row."""
    try:
        with Store(settings_from(ctx, settings).state.database_url) as store:
            before, after = store.upgrade()
    except StateError as error:
        _fail([str(error)])
    if before == after:
        outcome = f"is already at {after}: nothing to do"
    else:
        outcome = f"upgraded from {before} to {after}"
    # soft wrap: a URL broken across lines cannot be copied
    console.print(f"State database {store.url} {outcome}", soft_wrap=True)


def _open_state(database_url: str) -> str:
    """Open (creating if needed) the state store; its URL with any password hidden."""
    try:
        store = Store.open(database_url)
    except StateError as error:
        _fail([str(error)])
    with store:
        return store.url


def _generated(accounts: int, seed: int, world: WorldParams, out: Console = console) -> Org:
    """Generate an org in ``world`` behind a spinner, reporting on ``out``."""
    started = time.perf_counter()
    what = f"{accounts:,} accounts (seed {seed}, {world.preset} world)"
    with out.status(f"Generating an org of {what}..."):
        org = generate_org(accounts, seed, world=world)
    out.print(f"Generated in {time.perf_counter() - started:.1f} s")
    return org


def _print_summary(org: Org, title: str) -> None:
    """The org's counts and realism shares as a table."""
    table = Table(title=title, show_header=False)
    for key, value in org.summary().items():
        shown = f"{value:.1%}" if isinstance(value, float) else f"{value:,}"
        table.add_row(key.replace("_", " "), shown)
    console.print(table)


def _print_schema_report(report: SchemaReport) -> None:
    """What set-up did to each field we own, then one line of totals."""
    table = Table(title="Fields Handoff owns", show_lines=False)
    for column in ("object", "field", "action", "detail"):
        table.add_column(column)
    for change in report.changes:
        table.add_row(change.object, change.name, change.action, change.detail)
    console.print(table)
    console.print(f"Set-up: {_schema_summary(report)}")


def _schema_summary(report: SchemaReport) -> str:
    """`created 12, repaired 1, unchanged 11`, or that nothing needed changing."""
    if not report.changed and not report.of("conflict"):
        return f"nothing to change, all {len(report.changes)} in place"
    counts = {action: len(report.of(action)) for action in _ACTIONS}
    return ", ".join(f"{action} {count}" for action, count in counts.items() if count)


_ACTIONS = ("created", "repaired", "unchanged", "conflict")


def _fail_on_conflicts(report: SchemaReport) -> None:
    """Exit 1 when a field we need exists with another type: only an admin can settle it."""
    conflicts = report.of("conflict")
    if conflicts:
        _fail(
            [f"{c.object}.{c.name} {c.detail}" for c in conflicts]
            + ["rename or delete these fields in the CRM, then run `handoff setup` again"]
        )


# --- the sync run ---------------------------------------------------------------------------

_SYNC_HELP = """Pull, link, score, tier and write back once.

A run re-pulls every record when --full asks, when no full re-pull has completed yet, or every
\\[sync] full_resync_hours; the report says why.

Exit codes: 0 ok; 1 failed (the run stopped on an error), also bad settings or a state database
that cannot be opened (the message says which); 2 partial (some records failed, the rest were
written); 3 stopped by the API budget (resumable: the next run goes on from there); 4 locked
(another run of this org holds the lock)."""


@app.command("sync", help=_SYNC_HELP)
def sync_command(
    ctx: typer.Context,
    full: Annotated[
        bool, typer.Option("--full", help="Re-pull every record now, not only what changed.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compute and show the writes; write nothing.")
    ] = False,
    settings: SettingsOption = None,
) -> None:
    """One sync run against the CRM of the settings."""
    loaded = settings_from(ctx, settings)
    store = _store(loaded.state.database_url)
    try:
        with store, open_crm(loaded) as crm:
            _fail_on_schema_gaps(crm.connector.schema_gaps(schema_spec(loaded)))
            now = crm.now()
            console.print(f"Syncing {crm.description}, scoring as of {now:%d %b %Y %H:%M} UTC")
            report = _run(loaded, crm, store, now, full, dry_run)
    except ConnectorError as error:
        _fail([f"the sync stopped: {error}"])
    except SandboxUnavailable as error:
        _fail([str(error)])
    _print_run(report)
    raise typer.Exit(report.exit_code)


def _fail_on_schema_gaps(gaps: tuple[SchemaGap, ...]) -> None:
    """Exit 1 before the run when the CRM lacks fields we write (set up by an older release, or
    changed since): each one named, and the command that puts them in place."""
    if gaps:
        _fail(
            [
                "the CRM's Handoff fields are not set up as this release writes them; nothing "
                "was pulled or written:",
                *(f"  {g.object}.{g.name} ({g.label}): {g.problem}" for g in gaps),
                "`handoff setup` creates what is missing (and changes nothing else that is in "
                "place); then `handoff sync` again",
            ]
        )


@app.command("train")
def train_command(ctx: typer.Context, settings: SettingsOption = None) -> None:
    """Fit the predictive model on the mirror; it scores from the next sync only if promoted."""
    loaded = settings_from(ctx, settings)
    with _store(loaded.state.database_url) as store, store.session() as session:
        training = train_model(session, scoring_setup(loaded), datetime.now(UTC))
    console.print(training.reason)
    for line in training.candidate.changelog_ if training.candidate else ():
        console.print(f"  {line}")


JsonOption = Annotated[
    bool, typer.Option("--json", help="JSON lines: one object a run (a run's: one an event).")
]


@app.command("logs")
def logs(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Argument(help="A run id (or its first characters).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Runs to list.")] = 20,
    as_json: JsonOption = False,
    settings: SettingsOption = None,
) -> None:
    """Recent sync runs, newest first, or one run with its figures, failures and skips."""
    loaded = settings_from(ctx, settings)
    with _store(loaded.state.database_url) as store, store.session() as session:
        if run is None:
            _list_runs(session, limit, as_json)
        else:
            _show_run(session, run, as_json)


def _list_runs(session: Any, limit: int, as_json: bool) -> None:
    """The latest runs, newest first: a table, or one JSON line a run."""
    summaries = [summarise(found) for found in runs_newest_first(session, limit)]
    if as_json:
        for summary in summaries:
            typer.echo(summary_json(summary))
    elif summaries:
        print_runs(console, summaries)
    else:
        console.print("No sync run yet: `handoff sync` runs one.")


def _show_run(session: Any, prefix: str, as_json: bool) -> None:
    """The run whose id starts with ``prefix``: in words, or one JSON line an event."""
    matches = runs_newest_first(session, 2, prefix)
    if len(matches) != 1:
        _fail([_no_single_run(prefix, matches)])
    if as_json:
        for event in run_events(session, matches[0].id):
            typer.echo(event_json(event))
    else:
        print_run_summary(console, summarise(matches[0]), run_problems(session, matches[0].id))


def _no_single_run(prefix: str, matches: list[SyncRun]) -> str:
    if not matches:
        return f"no sync run {prefix!r}; `handoff logs` lists recent runs"
    ids = ", ".join(found.id for found in matches)
    return f"{prefix!r} starts more than one run id ({ids}, ...); give more of it"


@app.command("explain")
def explain_command(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="An account id, domain or name.")],
    settings: SettingsOption = None,
) -> None:
    """Why an account scores what it does: contributions, score history, people, nearby orphans.

    Reads the state database only (no CRM call); the account is scored as at its last run."""
    loaded = settings_from(ctx, settings)
    with _store(loaded.state.database_url) as store, store.session() as session:
        try:
            found = explain_account(
                session, scoring_setup(loaded), loaded.matching, account, datetime.now(UTC)
            )
        except AmbiguousAccount as ambiguous:
            _fail(_candidates(ambiguous))
        except AccountNotFound as missing:
            _fail([f"{missing}; `handoff score` lists the top accounts"])
    print_explanation(console, found)


def _candidates(ambiguous: AmbiguousAccount) -> list[str]:
    shown = [f"  {a.id}  {a.name}  {a.domain or a.website or ''}" for a in ambiguous.candidates]
    return [
        f"{ambiguous.query!r} matches more than one account; give its id or domain:",
        *shown,
    ]


@app.command("score")
def score_command(
    ctx: typer.Context,
    top: Annotated[int, typer.Option("--top", min=1, help="Top accounts to list.")] = 10,
    settings: SettingsOption = None,
) -> None:
    """Score and tier the mirror as a sync would, without pulling or writing anything."""
    loaded = settings_from(ctx, settings)
    with _store(loaded.state.database_url) as store, store.session() as session:
        last = _last_run_time(session)
        now = last or datetime.now(UTC)
        preview = score_mirror(session, scoring_setup(loaded), now, top)
    when = "the last sync's time" if last else "now: no sync has run yet"
    console.print(f"Scoring as of {now:%d %b %Y %H:%M} UTC ({when})")
    if not preview.book.account_ids:
        console.print("The mirror holds no account yet: `handoff sync` pulls the CRM first.")
        return
    print_mirror_scores(console, preview)


def _last_run_time(session: Any) -> datetime | None:
    """When the last sync run scored (a sandbox's runs score at its world's present)."""
    latest = runs_newest_first(session, 1)
    return latest[0].started_at if latest else None


def _store(url: str) -> Store:
    """The opened state store, or exit 1 saying why it cannot be opened."""
    try:
        return Store.open(url)
    except StateError as error:
        _fail([str(error)])


def _run(
    settings: Settings,
    crm: CrmConnection,
    store: Store,
    now: datetime,
    full: bool,
    dry_run: bool,
) -> RunReport:
    """One run holding the org's run lock, with progress on stderr; exit 4 (locked) naming the
    holder when another run has the lock, 1 when this run loses it."""
    run_id = uuid4().hex
    try:
        with (
            run_lock(store, lock_key(settings, crm), Holder.this_process(run_id)) as lock,
            StageProgress(progress_console) as progress,
        ):
            return run_sync(
                run_config(settings),
                crm.connector,
                store,
                now,
                full=full,
                dry_run=dry_run or settings.sync.dry_run,
                progress=progress,
                run_id=run_id,
                heartbeat=lock.heartbeat,
            )
    except LockHeld as held:
        console.print(str(held), soft_wrap=True)
        raise typer.Exit(EXIT_CODES["locked"]) from held
    except LockLost as lost:
        _fail([str(lost)])


def _print_run(report: RunReport) -> None:
    """What a run did: pulled, linked, scored, tiers, written, failed, calls, time per stage."""
    if report.full_reason:
        console.print(f"Full re-pull: {report.full_reason}", soft_wrap=True)
    pulled = sum(p["records"] for p in report.pulled.values())
    link = report.link
    orphans = sum(link.orphans.values())
    console.print(
        f"Pulled {pulled:,} records from {len(report.pulled)} streams; linked {link.linked:,} "
        f"people, {link.review:,} for review, {orphans:,} orphans "
        f"({link.people:,} matched this run)"
    )
    console.print(
        f"Scored {report.scored:,} accounts and {report.orphans_scored:,} orphan leads with "
        f"{report.model_version} ({report.model_kind}); "
        f"tiers {joined(report.tiers)}; {report.tier_up} moved up, {report.tier_down} down"
    )
    if report.model_reason:
        console.print(f"  {report.model_reason}", soft_wrap=True, highlight=False)
    if report.dry_run:
        _print_plan(report)
    else:
        orphan_writes = (
            f"; {report.orphans_written:,} orphan leads" if report.orphans_written else ""
        )
        console.print(
            f"Written {sum(report.written.values()):,} ({joined(report.written)}{orphan_writes}), "
            f"{report.unchanged:,} unchanged, {report.held_back:,} held back, "
            f"{len(report.failed):,} failed"
        )
    for failure in report.failed[:10]:
        console.print(f"  failed {failure['object']} {failure['id']}: {failure['code']} "
                      f"{failure['message']}")  # fmt: skip
    left = "" if report.budget_left is None else f", {report.budget_left:,} left in the budget"
    stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report.stages.items())
    console.print(f"API calls: {report.api_calls:,}{left}. Time: {stages}")
    console.print(f"Outcome: {report.outcome} (exit {EXIT_CODES[report.outcome]})")


def _print_plan(report: RunReport) -> None:
    """A dry run's planned writes: counts per field and a sample."""
    console.print(f"Dry run: {report.planned:,} records would be written; nothing was")
    console.print(f"  per field: {joined(report.planned_fields)}")
    table = Table(title="Sample of planned writes")
    for column in ("object", "id", "why", "score", "tier"):
        table.add_column(column)
    for row in report.sample:
        table.add_row(*(str(row[column]) for column in ("object", "id", "why", "score", "tier")))
    console.print(table)


def _joined(counts: Mapping[str, int]) -> str:
    """`AE 12, SDR 30`."""
    return ", ".join(f"{key} {value:,}" for key, value in counts.items()) or "none"


def _demo_sync(settings: Settings, crm: CrmConnection, now: datetime) -> tuple[str, list[str]]:
    """The demo's sync: a full run, the tiers, three accounts as the CRM shows them, then a
    burst of visits and one incremental cycle; the store's URL and the accounts it moved."""
    store = _store(settings.state.database_url)
    with store:
        console.print(f"Scoring as of the sandbox world's present, {now:%d %b %Y}")
        report = _run(settings, crm, store, now, True, False)
        _print_run(report)
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
    cycle = _run(settings, crm, store, now, False, False)
    after = {r.id: r.values for r in crm.connector.find(stream, "id", chosen)}
    _print_moves(stream, chosen, before, after)
    _print_cycle(cycle, len(visits))
    return chosen


def _print_cycle(cycle: RunReport, visits: int) -> None:
    """What the burst's cycle pulled, wrote and cost, in two lines."""
    again = sum(p["records"] for p in cycle.pulled.values()) - visits
    reread = (
        f" (and {again:,} records read again and skipped as already held: each pull re-reads a "
        "window behind its cursor, and our own writes move a record's modification time)"
        if again > 0
        else ""
    )
    console.print(f"One incremental cycle: {visits:,} new visits pulled{reread}")
    console.print(
        f"  {sum(cycle.written.values()):,} written (only what moved: {_joined(cycle.written)}), "
        f"{cycle.unchanged:,} unchanged, {cycle.tier_up:,} moved up, {cycle.api_calls:,} API "
        f"calls, {sum(cycle.stages.values()):.1f} s"
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
    table = Table(title=f"{stream} read back from the CRM, before -> after the cycle")
    for column in ("id", "name", "tier", "score"):
        table.add_column(column)
    for account in chosen:
        was, now = before.get(account, {}), after.get(account, {})
        table.add_row(
            account,
            str(now.get("name") or ""),
            f"{was.get('tier')} -> {now.get('tier')}",
            f"{was.get('score')} -> {now.get('score')}",
        )
    console.print(table)


_SHOWN = ("name", "score", "tier", "topic", "signals", "model_version", "scored_at")


def _print_as_reps_see(connector: Connector, report: RunReport, store: Store) -> None:
    """Three accounts, one per tier from the top, read back from the CRM by id."""
    stream = _account_stream(connector)
    with store.session() as session:
        ids = _one_per_tier(session)
    shown = {record.id: record for record in connector.find(stream, "id", ids)}
    for record in (shown[i] for i in ids if i in shown):
        table = Table(title=f"{stream} {record.id}, read back from the CRM", show_header=False)
        for key in _SHOWN:
            table.add_row(key, str(record.values.get(key) or ""))
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


def main() -> None:
    """Entry point of the `handoff` console script."""
    app(prog_name="handoff")
