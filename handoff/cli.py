"""The `handoff` command line: a thin typer app over the library.

Sub-apps hang off `app` (`app.add_typer(...)`); each command loads its settings through
`settings_from`, which honours `--settings` given before or after the command name.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from connectors.errors import ConnectorError
from connectors.protocol import Connector, Record, SchemaReport, Tombstone
from handoff.crm import open_crm, schema_spec
from handoff.settings import (
    SETTINGS_VARIABLE,
    Settings,
    SettingsError,
    check_settings,
    load_settings,
    render_settings,
)
from sandbox.faults import FaultError, FaultPlan, load_faults
from sandbox.generator import generate_org
from sandbox.org import Org, OrgError, load_org, save_org
from sandbox.service import start_sandbox
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
from sync.state import StateError

__all__ = [
    "CliOptions",
    "SettingsOption",
    "app",
    "main",
    "sandbox_app",
    "settings_app",
    "settings_from",
    "settings_path",
    "setup",
    "state_app",
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
    token: Annotated[str | None, typer.Option("--token", help="Bearer token to accept.")] = None,
    faults: Annotated[
        Path | None, typer.Option("--faults", dir_okay=False, help="TOML schedule of failures.")
    ] = None,
    org_dir: Annotated[
        Path | None, typer.Option("--org", file_okay=False, help="Serve a generated org directory.")
    ] = None,
    preset: PresetOption = DEFAULT_PRESET,
    world: WorldOption = None,
    convention: Annotated[
        Convention,
        typer.Option(
            "--convention",
            help="How the org records activity: a, or b (other subjects, URLs, campaign types).",
        ),
    ] = Convention.a,
) -> None:
    """Serve a synthetic org over the Salesforce or HubSpot API on 127.0.0.1 until stopped."""
    plan = _faults(faults)
    chosen = _world(preset, world)
    org = _loaded(org_dir) if org_dir else _generated(accounts, seed, chosen, progress_console)
    options = {"convention": convention.value}
    try:
        with (
            start_sandbox(
                crm.value, org, token=token, faults=plan, port=port, **options
            ) as running,
            _stop_signals() as stop,
        ):
            typer.echo(f"sandbox {crm.value} ready at {running.base_url} token={running.token}")
            while not stop.wait(_STOP_POLL_SECONDS):
                pass
    except OSError as error:
        _fail([f"cannot serve on port {port}: {error.strerror}"])
    typer.echo("sandbox stopped")


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
    org = None
    if loaded.crm.kind == "sandbox":
        org = _generated(loaded.sandbox.accounts, loaded.sandbox.seed, loaded.sandbox.world_params)
    try:
        with open_crm(loaded, org) as crm:
            console.print(f"Setting up {crm.description}")
            report = crm.connector.ensure_schema(schema_spec(loaded))
    except ConnectorError as error:
        _fail([f"set-up stopped: {error}"])
    _print_schema_report(report)
    _fail_on_conflicts(report)


@app.command("demo")
def demo(ctx: typer.Context, settings: SettingsOption = None) -> None:
    """Run Handoff on the embedded sandbox: its org, set-up in its CRM, a full pull, the state."""
    loaded = settings_from(ctx, settings)
    org = _generated(loaded.sandbox.accounts, loaded.sandbox.seed, loaded.sandbox.world_params)
    out = Path("orgs") / f"demo-{loaded.sandbox.accounts}-{loaded.sandbox.seed}"
    save_org(org, out)
    _print_summary(org, f"Sandbox org written to {out}")
    sandbox = loaded.model_copy(update={"crm": loaded.crm.model_copy(update={"kind": "sandbox"})})
    try:
        with open_crm(sandbox, org, rate_limits=False) as crm:
            console.print(f"Connected to {crm.description}")
            _print_schema_report(crm.connector.ensure_schema(schema_spec(loaded)))
            again = crm.connector.ensure_schema(schema_spec(loaded))
            console.print(f"Set-up again: {_schema_summary(again)}")
            _pull_everything(crm.connector)
    except ConnectorError as error:
        _fail([f"the demo stopped: {error}"])
    url = _open_state(loaded.state.database_url)
    console.print(f"State database ready: {url}")


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


def _pull_everything(connector: Connector) -> None:
    """A full pull of every stream, with a live count, then a table of what came."""
    table = Table(title="Full pull", show_header=True)
    for column in ("stream", "records", "tombstones", "seconds"):
        table.add_column(column, justify="right" if column != "stream" else "left")
    with progress_console.status("Pulling...") as status:
        for name in connector.streams:
            started, counts = time.perf_counter(), {"records": 0, "tombstones": 0}
            for item in connector.pull(name):
                if isinstance(item, Record | Tombstone):
                    key = "records" if isinstance(item, Record) else "tombstones"
                    counts[key] += 1
                    if counts[key] % 5000 == 0:
                        status.update(f"Pulling {name}: {counts['records']:,} records")
            seconds = f"{time.perf_counter() - started:.1f}"
            table.add_row(name, f"{counts['records']:,}", f"{counts['tombstones']:,}", seconds)
    console.print(table)
    usage = connector.usage()
    console.print(f"API calls: {usage.calls:,} ({usage.retries} retried)")


def main() -> None:
    """Entry point of the `handoff` console script."""
    app(prog_name="handoff")
