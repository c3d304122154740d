"""`handoff sandbox`: generate a synthetic org, serve it over a CRM's API, and stop or show the
sandbox serving from this directory.

`serve` keeps what is written to the CRM with its org (``--org``), announces itself in
``.handoff/sandbox.json`` so later commands find it (`handoff.crm`), and serves until Ctrl-C or
SIGTERM; ``--detach`` serves it in the background.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import requests
import typer
from rich.table import Table

from handoff.crm import (
    START_SECONDS,
    SandboxUnavailable,
    describe_world,
    running_sandbox,
    sandbox_about,
    sandbox_environment,
)
from handoff.settings import SANDBOX_TOKEN_VARIABLE
from handoff.shell import (
    PresetOption,
    WorldOption,
    console,
    fail,
    generated_org,
    loaded_org,
    print_org_summary,
    progress_console,
    utc_time,
    world_params,
)
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
from sandbox.hubspot import TIERS
from sandbox.org import Org, save_org
from sandbox.persistence import SavedStateError, StateKeeper, kept, state_dir
from sandbox.service import RunningSandbox, start_sandbox
from sandbox.world import DEFAULT_PRESET, PRESETS, WorldParams, world_from

__all__ = ["Convention", "SandboxCrm", "generate", "sandbox_app", "serve", "status", "stop"]

sandbox_app = typer.Typer(
    help="The embedded sandbox CRM and its synthetic orgs.", no_args_is_help=True
)


@sandbox_app.command("generate", short_help="Generate a synthetic org with its hidden truth.")
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
    chosen = world_params(preset, world)
    if out.exists() and any(out.iterdir()) and not force:
        fail([f"{out}: already exists and is not empty; choose another --out or add --force"])
    if out.exists() and force:
        shutil.rmtree(out)
    org = generated_org(accounts, seed, chosen)
    save_org(org, out)
    print_org_summary(org, f"Org written to {out}")


class SandboxCrm(StrEnum):
    """The CRM dialects the sandbox speaks."""

    salesforce = "salesforce"
    hubspot = "hubspot"


class Convention(StrEnum):
    """How the sandbox org records activity (`sandbox.salesforce.mapping`,
    `sandbox.hubspot.touches`)."""

    a = "a"
    b = "b"


@sandbox_app.command("serve", short_help="Serve a synthetic org over a CRM's API.")
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
    asked = world_params(preset or DEFAULT_PRESET, world) if preset or world else None
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
        fail([f"cannot serve on port {port}: {error.strerror}"])
    except SavedStateError as error:
        fail([str(error)])
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
        fail([f"--tier is one of {', '.join(TIERS)}, and only for --crm hubspot"])


def _refuse_a_second_sandbox() -> None:
    """Exit when a sandbox already runs from this directory (a stale record is removed)."""
    found = running_sandbox()
    if found is not None:
        fail(
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
        return generated_org(accounts, seed, world, progress_console)
    if org_dir.exists():
        return _in_world(loaded_org(org_dir), org_dir, asked)
    org = generated_org(accounts, seed, world, progress_console)
    save_org(org, org_dir)
    progress_console.print(f"Org written to {org_dir}")
    return org


def _in_world(org: Org, org_dir: Path, asked: WorldParams | None) -> Org:
    """``org``, or exit when it was generated in another world than the one asked for."""
    holds = org.manifest.world_params
    if asked is not None and holds != asked:
        fail(
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
    environment = sandbox_environment(token)
    try:
        with progress_console.status("Starting the sandbox in the background..."):
            found = start_detached(command, DISCOVERY_FILE, LOG_FILE, START_SECONDS, environment)
    except StartError as error:
        fail(["the sandbox did not start; the end of what it printed:", *error.lines])
    summary = f"pid {found.pid}, log in {LOG_FILE}; `handoff sandbox stop` ends it"
    typer.echo(f"sandbox {found.crm} ready at {found.url} ({summary})")


@sandbox_app.command("stop", short_help="Stop the sandbox started from this directory.")
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
        fail(
            [
                f"pid {found.pid} runs but does not answer at {found.url} as the sandbox, so it "
                f"is left alone; if it is the sandbox, `kill {found.pid}` stops it"
            ]
        )
    os.kill(found.pid, signal.SIGTERM)
    with progress_console.status(f"Stopping the sandbox (pid {found.pid}), saving its state..."):
        ended = wait_for_exit(found.pid, _STOP_SECONDS)
    if not ended:
        fail(
            [
                f"the sandbox (pid {found.pid}) did not stop within {_STOP_SECONDS:.0f} s; "
                f"`kill -9 {found.pid}` ends it, losing what was written since its last save"
            ]
        )
    withdraw(DISCOVERY_FILE, found.pid)


@sandbox_app.command("status", short_help="Show the sandbox running from this directory.")
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
        "since": _when(found.started),
        "org": found.org or "generated in memory",
        "world": describe_world(found.world) if found.world else "",
        "convention": found.convention or "",
        "rate limits": found.tier or "",
        "state kept in": about.get("kept_in") or "nowhere (no org directory)",
        "last saved": _when(about.get("saved_at")) or "not yet",
    }
    for key, value in rows.items():
        if value:
            table.add_row(key, value)
    console.print(table)
    console.print(f"Token in {DISCOVERY_FILE}; `handoff sandbox stop` ends it.")


def _when(stamp: str | None) -> str | None:
    """An ISO time as the rest of the CLI says times (`06 Dec 2026 20:51 UTC`), as it came
    where it does not read as one."""
    if stamp is None:
        return None
    try:
        return utc_time(datetime.fromisoformat(stamp))
    except ValueError:
        return stamp


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


def _faults(path: Path | None) -> FaultPlan | None:
    """The faults file's schedule, or exit with what is wrong in it."""
    try:
        return load_faults(path) if path else None
    except FaultError as error:
        fail([str(error)])
