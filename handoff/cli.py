"""The `handoff` command line: a thin typer app over the library.

Sub-apps hang off `app` (`app.add_typer(...)`); each command loads its settings through
`settings_from`, which honours `--settings` given before or after the command name. The
sandbox commands live in `handoff.sandbox_commands`, the demo in `handoff.demo`, what they share
(consoles, options, exiting with problems) in `handoff.shell`, and what is printed in
`handoff.reports`.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from handoff.sandbox_commands import sandbox_app
from handoff.settings import (
    DEFAULT_PATH,
    SETTINGS_VARIABLE,
    check_settings,
    render_settings,
    settings_source,
)
from handoff.shell import (
    CliOptions,
    SettingsOption,
    console,
    fail,
    open_store,
    settings_from,
    settings_path,
)

# each command imports what it runs on where it runs: `handoff --help`, `handoff settings
# check` and a mistyped command answer without loading the database layer or the connectors
if TYPE_CHECKING:
    from connectors.protocol import SchemaGap, SchemaReport
    from sync.explain import AmbiguousAccount
    from sync.state import SyncRun

__all__ = [
    "app",
    "explain_command",
    "logs",
    "main",
    "score_command",
    "settings_app",
    "setup",
    "state_app",
    "sync_command",
    "train_command",
]

app = typer.Typer(
    name="handoff",
    help="Score and tier CRM accounts and write them back: Sales and Marketing, one list.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: paragraphs wrapped whole, no type beside a flag
    # Local variables can hold secrets; a traceback must never print them.
    pretty_exceptions_show_locals=False,
)
settings_app = typer.Typer(help="Check and show the settings.", no_args_is_help=True)
app.add_typer(settings_app, name="settings")
app.add_typer(sandbox_app, name="sandbox")
state_app = typer.Typer(help="The local sync state database.", no_args_is_help=True)
app.add_typer(state_app, name="state")


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


@settings_app.command("check")
def check(ctx: typer.Context, settings: SettingsOption = None) -> None:
    """Validate the settings; print each problem, or ok."""
    path = settings_path(ctx, settings)
    problems = check_settings(path)
    if problems:
        fail(problems)
    read = settings_source(path)
    if read is None:  # none named and none here: only the defaults and variables were checked
        typer.echo(
            f"ok: no {DEFAULT_PATH} here (nor --settings or {SETTINGS_VARIABLE}), so the defaults "
            "and any HANDOFF_ variables were checked"
        )
    else:
        typer.echo(f"ok: {read}")


@settings_app.command("show", short_help="Print the effective settings as TOML; secrets hidden.")
def show(ctx: typer.Context, settings: SettingsOption = None) -> None:
    """Print the effective settings as TOML; secrets show only as set or not set."""
    typer.echo(render_settings(settings_from(ctx, settings)), nl=False)


@app.command("setup", short_help="Create Handoff's fields in the CRM, or repair them.")
def setup(ctx: typer.Context, settings: SettingsOption = None) -> None:
    """Create the fields Handoff owns in the CRM, repair drift; a second run changes nothing."""
    from connectors.errors import ConnectorError
    from handoff.crm import SandboxUnavailable, open_crm, schema_spec
    from handoff.reports import print_schema_report

    loaded = settings_from(ctx, settings)
    try:
        with open_crm(loaded) as crm:
            console.print(f"Setting up {crm.description}")
            report = crm.connector.ensure_schema(schema_spec(loaded))
    except ConnectorError as error:
        fail([f"set-up stopped: {error}"])
    except SandboxUnavailable as error:
        fail([str(error)])
    print_schema_report(console, report)
    _fail_on_conflicts(report)


@app.command("demo")
def demo(ctx: typer.Context, settings: SettingsOption = None) -> None:
    """Run Handoff on the sandbox CRM, start to finish.

    Set-up, a full sync that writes scores, then a burst of pricing-page visits and one
    incremental cycle that moves those accounts up."""
    loaded = settings_from(ctx, settings)  # bad settings exit before the demo's imports
    from handoff.demo import run_demo

    run_demo(loaded)


@state_app.command("init", short_help="Create the state database, or check it is current.")
def state_init(ctx: typer.Context, settings: SettingsOption = None) -> None:
    """Create the state database at this release's schema, or check an existing one is at it."""
    url = settings_from(ctx, settings, connecting=False).state.database_url
    console.print(f"State database ready: {_open_state(url)}")


@state_app.command("upgrade", short_help="Migrate the state database in place, keeping every row.")
def state_upgrade(ctx: typer.Context, settings: SettingsOption = None) -> None:
    """Migrate the state database in place to this release's schema, keeping every row."""
    from sync import Store
    from sync.state import StateError

    try:
        with Store(settings_from(ctx, settings, connecting=False).state.database_url) as store:
            before, after = store.upgrade()
    except StateError as error:
        fail([str(error)])
    if before == after:
        outcome = f"is already at {after}: nothing to do"
    else:
        outcome = f"upgraded from {before} to {after}"
    # soft wrap: a URL broken across lines cannot be copied
    console.print(f"State database {store.url} {outcome}", soft_wrap=True)


def _open_state(database_url: str) -> str:
    """Open (creating if needed) the state store; its URL with any password hidden."""
    from sync import Store
    from sync.state import StateError

    try:
        store = Store.open(database_url)
    except StateError as error:
        fail([str(error)])
    with store:
        return store.url


def _fail_on_conflicts(report: SchemaReport) -> None:
    """Exit 1 when a field we need exists with another type: only an admin can settle it."""
    conflicts = report.of("conflict")
    if conflicts:
        fail(
            [f"{c.object}.{c.name} {c.detail}" for c in conflicts]
            + ["rename or delete these fields in the CRM, then run `handoff setup` again"]
        )


# --- the sync run ---------------------------------------------------------------------------

_SYNC_HELP = """Pull, link, score, tier and write back once.

A run re-pulls every record when --full asks, when no full re-pull has completed yet, or every
[sync] full_resync_hours; the report says why.

Exit codes: 0 ok; 1 failed (the run stopped on an error), also bad settings, a state database
that cannot be opened or that holds another CRM's state, or CRM fields `handoff setup` has yet
to add (the message says which);
2 partial (some records failed, the rest were written); 3 stopped by the API budget (resumable:
the next run goes on from there); 4 locked (another run of this org holds the lock); 130
interrupted (Ctrl-C or SIGTERM: what was done is kept, the next sync goes on from there)."""


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
    from connectors.errors import ConnectorError
    from handoff.crm import SandboxUnavailable, open_crm
    from handoff.reports import print_run_report
    from handoff.runs import run_locked
    from sync.run import SchemaNotSetUp

    loaded = settings_from(ctx, settings)
    store = open_store(loaded.state.database_url)
    try:
        with store, open_crm(loaded) as crm, _terminate_as_interrupt():
            now = crm.now()
            console.print(f"Syncing {crm.description}, scoring as of {now:%d %b %Y %H:%M} UTC")
            report = run_locked(loaded, crm, store, now, full, dry_run)
    except KeyboardInterrupt:
        console.print(
            "Interrupted: what was done is kept (`handoff logs` shows the run); the next sync "
            "goes on from there.",
            soft_wrap=True,
        )
        raise typer.Exit(INTERRUPTED) from None
    except SchemaNotSetUp as error:
        _fail_on_schema_gaps(error.gaps)
    except ConnectorError as error:
        fail([f"the sync stopped: {error}"])
    except SandboxUnavailable as error:
        fail([str(error)])
    print_run_report(console, report)
    raise typer.Exit(report.exit_code)


INTERRUPTED = 130  # as a shell reports a command ended by Ctrl-C (128 + SIGINT)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's or a service manager's stop) ends a sync as Ctrl-C does: the run
    logs that it was interrupted and frees its lock, instead of dying with its run "running".
    Once interrupted, the run is left to write its log: a signal more is said and ignored (a
    service manager repeats its stop, a user presses Ctrl-C twice), a third Ctrl-C quits at
    once (the next run then finds this one never finished)."""
    signals = (signal.SIGINT, signal.SIGTERM)
    received = 0

    def interrupt(signum: int, frame: Any) -> None:
        nonlocal received
        received += 1
        if received == 1 or (signum == signal.SIGINT and received >= _FORCED_AFTER):
            raise KeyboardInterrupt
        sys.stderr.write("Interrupted: writing the run log first (Ctrl-C twice more quits)\n")

    try:
        before = [signal.signal(number, interrupt) for number in signals]
    except ValueError:  # not the main thread: signals are not ours to take
        yield
        return
    try:
        yield
    finally:
        for number, handler in zip(signals, before, strict=True):
            signal.signal(number, handler)


_FORCED_AFTER = 3  # Ctrl-C presses that quit at once, run log or not


def _fail_on_schema_gaps(gaps: tuple[SchemaGap, ...]) -> NoReturn:
    """Exit 1 for a run that found the CRM lacking fields we write (set up by an older release,
    or changed since; it pulled and wrote nothing): each one named, and the command that puts
    them in place."""
    fail(
        [
            "the CRM's Handoff fields are not set up as this release writes them; nothing "
            "was pulled or written:",
            *(f"  {g.object}.{g.name} ({g.label}): {g.problem}" for g in gaps),
            "`handoff setup` creates what is missing (and changes nothing else that is in "
            "place); then `handoff sync` again",
        ]
    )


@app.command("train", short_help="Fit the predictive model; it scores once promoted.")
def train_command(ctx: typer.Context, settings: SettingsOption = None) -> None:
    """Fit the predictive model on the mirror; it scores from the next sync only if promoted."""
    from handoff.runs import scoring_setup
    from scoring.evaluation import changelog_changes, reasons_counted
    from sync.scoring_state import train_model

    loaded = settings_from(ctx, settings, connecting=False)
    if loaded.scoring.model == "rules":  # nothing to fit, whatever the state database holds
        console.print(
            'Nothing to train: [scoring] model = rules (the rules model scores; "auto" or '
            '"predictive" lets a trained model score)',
            markup=False,
        )
        return
    with open_store(loaded.state.database_url, reading=True) as store, store.session() as session:
        now, when = _mirror_present(session)
        training = train_model(session, scoring_setup(loaded), now)
    console.print(f"Training as of {now:%d %b %Y %H:%M} UTC ({when})")
    console.print(training.reason)
    candidate = training.candidate
    if candidate is None:
        return
    # the changelog's header and refusals say what the reason said: its changes follow them
    changes = changelog_changes(candidate.changelog_, candidate.refusals())
    if changes:
        moved = "changed" if training.promoted else "would have changed"
        counted = reasons_counted(len(changes))
        console.print(f"The points of {counted} {moved} (one fresh occurrence each):")
    for line in changes:
        console.print(f"  {line}")


JsonOption = Annotated[
    bool, typer.Option("--json", help="JSON lines: one object a run (a run's: one an event).")
]


@app.command("logs", short_help="Recent sync runs, or one run with its failures.")
def logs(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Argument(help="A run id (or its first characters).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Runs to list.")] = 20,
    as_json: JsonOption = False,
    settings: SettingsOption = None,
) -> None:
    """Recent sync runs, newest first, or one run with its figures, failures and skips."""
    loaded = settings_from(ctx, settings, connecting=False)
    with open_store(loaded.state.database_url, reading=True) as store, store.session() as session:
        if run is None:
            _list_runs(session, limit, as_json)
        else:
            _show_run(session, run, as_json)


def _list_runs(session: Any, limit: int, as_json: bool) -> None:
    """The latest runs, newest first: a table, or one JSON line a run."""
    from handoff.reports import print_runs, summary_json
    from sync.runlog import runs_newest_first, summarise

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
    from handoff.reports import event_json, print_run_summary
    from sync.runlog import run_events, run_problems, runs_newest_first, summarise

    matches = runs_newest_first(session, 2, prefix)
    if len(matches) != 1:
        fail([_no_single_run(prefix, matches)])
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


@app.command("explain", short_help="Why an account scores what it does.")
def explain_command(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="An account id, domain or name.")],
    settings: SettingsOption = None,
) -> None:
    """Why an account scores what it does: contributions, score history, people, nearby orphans.

    Reads the state database only (no CRM call); the account is scored as at its last run."""
    from handoff.reports import print_explanation
    from handoff.runs import scoring_setup
    from sync.explain import AccountNotFound, AmbiguousAccount, explain_account

    loaded = settings_from(ctx, settings, connecting=False)
    with open_store(loaded.state.database_url, reading=True) as store, store.session() as session:
        try:
            found = explain_account(
                session, scoring_setup(loaded), loaded.matching, account, datetime.now(UTC)
            )
        except AmbiguousAccount as ambiguous:
            fail(_candidates(ambiguous))
        except AccountNotFound as missing:
            fail([f"{missing}; `handoff score` lists the top accounts"])
    print_explanation(console, found)


def _candidates(ambiguous: AmbiguousAccount) -> list[str]:
    shown = [
        "  " + "  ".join(filter(None, (a.id, a.name, a.domain or a.website)))
        for a in ambiguous.candidates
    ]
    more = ["  and more: a longer part of the name narrows them"] if ambiguous.more else []
    return [
        f"{ambiguous.query!r} matches more than one account; give its id or domain:",
        *shown,
        *more,
    ]


@app.command("score", short_help="Score and tier the mirror; nothing pulled or written.")
def score_command(
    ctx: typer.Context,
    top: Annotated[int, typer.Option("--top", min=1, help="Top accounts to list.")] = 10,
    settings: SettingsOption = None,
) -> None:
    """Score and tier the mirror as a sync would, without pulling or writing anything."""
    from handoff.reports import print_mirror_scores
    from handoff.runs import scoring_setup
    from sync.explain import score_mirror

    loaded = settings_from(ctx, settings, connecting=False)
    with open_store(loaded.state.database_url, reading=True) as store, store.session() as session:
        now, when = _mirror_present(session)
        preview = score_mirror(session, scoring_setup(loaded), now, top)
    console.print(f"Scoring as of {now:%d %b %Y %H:%M} UTC ({when})")
    if not preview.book.account_ids:
        console.print("The mirror holds no account yet: `handoff sync` pulls the CRM first.")
        return
    print_mirror_scores(console, preview)


def _mirror_present(session: Any) -> tuple[datetime, str]:
    """The moment the mirror stands at, and how it was chosen: when the last sync run scored (a
    sandbox's runs score at its world's present), else now."""
    from sync.runlog import last_run_that_began

    latest = last_run_that_began(session)
    if latest is not None:
        return latest.started_at, "the last sync's time"
    return datetime.now(UTC), "now: no sync has run yet"


def main() -> None:
    """Entry point of the `handoff` console script."""
    app(prog_name="handoff")
