"""What the command modules of `handoff` share: the consoles, the ``--settings`` option and how a
command loads its settings, exiting with every problem on its own line, and opening the state
store and sandbox orgs with a clear message when they cannot be.

    loaded = settings_from(ctx, settings)  # or exit 1 listing what is wrong
    with open_store(loaded.state.database_url) as store: ...
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from handoff.settings import Settings, SettingsError, load_settings
from sandbox.world import (
    PRESETS,
    WorldError,
    WorldParams,
    parameter_names,
    parse_overrides,
    world_from,
)

# what only some commands use is imported where they use it: `handoff --help` or `handoff
# settings check` need not load the database layer, the connectors or the org generator
if TYPE_CHECKING:
    from sandbox.org import Org
    from sync import Store

__all__ = [
    "CliOptions",
    "PresetOption",
    "SettingsOption",
    "WorldOption",
    "console",
    "fail",
    "generated_org",
    "loaded_org",
    "open_store",
    "print_org_summary",
    "progress_console",
    "settings_from",
    "settings_path",
    "typed_command",
    "utc_time",
    "world_params",
]


class _Console(Console):
    """rich's console, whose lines of text go whole to a file or a pipe (a scheduler's log,
    `| grep`), where rich would break them at 80 columns; a terminal wraps them at its own
    width, and tables are laid out (titles centred) either way."""

    def print(self, *objects: Any, soft_wrap: bool | None = None, **options: Any) -> None:
        if soft_wrap is None:
            soft_wrap = not self.is_terminal and all(isinstance(o, str) for o in objects)
        super().print(*objects, soft_wrap=soft_wrap, **options)


# text printed as given: what Handoff prints names settings in brackets ("[sync]
# full_resync_hours") and CRM values (an account called "Acme [EMEA]"), which rich's markup would
# take for styles and drop; and not coloured by guesses (rich's highlighter split "7,872" into
# two colours and took the comma after a URL for part of it)
console = _Console(markup=False, highlight=False)
progress_console = Console(stderr=True, markup=False)  # for commands whose stdout programs read


def utc_time(when: datetime) -> str:
    """A time as the CLI says it: `06 Dec 2026 20:51 UTC` (a time without a zone is UTC's)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return f"{when.astimezone(UTC):%d %b %Y %H:%M} UTC"


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


def settings_path(ctx: typer.Context, path: Path | None) -> Path | None:
    """The command's own --settings, else the one given to `handoff`, else None (the default)."""
    options = ctx.find_object(CliOptions)
    return path if path is not None or options is None else options.settings


def settings_from(ctx: typer.Context, path: Path | None, *, connecting: bool = True) -> Settings:
    """Load the settings for a command, or print every problem and exit with status 1; a
    command that never connects to the CRM (reading state: `logs`, `score`, `explain`,
    `train`, `state`) needs none of its secrets."""
    try:
        settings = load_settings(settings_path(ctx, path), connecting=connecting)
    except SettingsError as error:
        fail(error.problems)
    log_at(settings.logging.level)
    return settings


def log_at(level: str) -> None:
    """What Handoff's own modules log (a retry and its wait, a fallback taken; each stage's
    start and end at DEBUG) goes to stderr at ``level`` and above (`[logging] level`), each
    line with its time and module; other libraries' loggers are left as they are."""
    for name in _OUR_PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if _HANDLER not in logger.handlers:
            logger.addHandler(_HANDLER)


_OUR_PACKAGES = ("connectors", "sync", "scoring")


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to the stderr of the moment a line is logged (a test's capture, a
    redirect made after the settings were read), not the one it was made with."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


_HANDLER = _CurrentStderr()  # one a process, for every command that loads settings
_HANDLER.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))


def typed_command() -> str:
    """How the user runs this `handoff`, for the commands a command suggests: ``handoff`` when
    that name on the PATH is this program, else its path (``.venv/bin/handoff`` after `make
    demo`, which activates no virtual environment), relative to the current directory when
    inside it. ``handoff`` when not run as that script (``python -m handoff``, tests)."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if program is None or program.name != "handoff" or not program.is_file():
        return "handoff"
    found = shutil.which("handoff")
    if found is not None and Path(found).resolve() == program.resolve():
        return "handoff"
    try:
        return str(program.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:  # outside the current directory
        return str(program.resolve())


def fail(problems: tuple[str, ...] | list[str]) -> NoReturn:
    """Print each problem on its own line to stderr and exit 1."""
    for problem in problems:
        typer.echo(problem, err=True)
    raise typer.Exit(1)


def open_store(url: str, *, reading: bool = False) -> Store:
    """The opened state store, or exit 1 saying why it cannot be opened. A command that only
    reads state (``reading``) does not make a SQLite database that is not there: it says where
    it looked (`Store.open`'s ``create``)."""
    from sync import Store
    from sync.state import StateError

    try:
        return Store.open(url, create=not reading)
    except StateError as error:
        fail([str(error)])


def world_params(preset: str, overrides: list[str] | None) -> WorldParams:
    """The preset's world with the ``--world`` overrides, or exit with what is wrong."""
    try:
        return world_from(preset, parse_overrides(overrides or []))
    except WorldError as error:
        fail([str(error)])


def loaded_org(path: Path) -> Org:
    """A saved org, or exit with why it cannot be read."""
    from sandbox.org import OrgError, load_org

    try:
        return load_org(path)
    except OrgError as error:
        fail([str(error)])


def generated_org(accounts: int, seed: int, world: WorldParams, out: Console = console) -> Org:
    """Generate an org in ``world`` behind a spinner, reporting on ``out``."""
    from sandbox.generator import generate_org

    started = time.perf_counter()
    what = f"{accounts:,} accounts (seed {seed}, {world.preset} world)"
    with out.status(f"Generating an org of {what}..."):
        org = generate_org(accounts, seed, world=world)
    out.print(f"Generated in {time.perf_counter() - started:.1f} s")
    return org


def print_org_summary(org: Org, title: str) -> None:
    """The org's counts and realism shares as a table."""
    table = Table(title=title, show_header=False)
    for key, value in org.summary().items():
        shown = f"{value:.1%}" if isinstance(value, float) else f"{value:,}"
        table.add_row(key.replace("_", " "), shown)
    console.print(table)
