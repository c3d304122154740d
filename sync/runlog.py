"""The run log's decisions and housekeeping: is this run a full re-pull, and which per-record
events have outlived their retention.

    reason = full_resync_reason(session, "hubspot", now, every_hours=168)
    forgotten = forget_events(session, now, retention_days=90)

Both read only the run log (`sync_run`, `run_event`), never the clock: ``now`` is the run's.
Run summaries are kept for good; only per-record events expire.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, delete, select

from sync.state import RunEvent, SyncRun

__all__ = [
    "FORCED",
    "REFUSED",
    "FullResync",
    "RunSummary",
    "forget_events",
    "full_resync",
    "last_full_run",
    "last_run_that_began",
    "run_events",
    "run_problems",
    "runs_newest_first",
    "summarise",
]

FORCED = "asked for with --full"  # `handoff sync --full`; a caller may name its own reason
# the count that marks a run refused before it began (`sync.run`): it pulled, scored and wrote
# nothing, so it neither interrupts a full re-pull nor moves the time the mirror stands at
REFUSED = "refused"
_LOOK_BACK = 50  # full runs read to skip dry runs (a dry run re-pulls but moves no cursor)


def runs_newest_first(session: Session, limit: int, prefix: str | None = None) -> list[SyncRun]:
    """Recent runs in the order they started, newest first; optionally those whose id starts
    with ``prefix``."""
    statement = select(SyncRun).order_by(col(SyncRun.seq).desc()).limit(limit)
    if prefix is not None:
        statement = statement.where(col(SyncRun.id).startswith(prefix))
    return list(session.exec(statement))


def last_run_that_began(session: Session) -> SyncRun | None:
    """The newest run that began (pulled, or tried to): not one refused before it began
    (`REFUSED`: the CRM unreachable or not set up), whose time the mirror never reached."""
    # read a page at a time (the run log keeps every run's summary): the newest is nearly always it
    newest = select(SyncRun).order_by(col(SyncRun.seq).desc())
    runs = session.exec(newest.execution_options(yield_per=_LOOK_BACK))
    try:
        return next((run for run in runs if not run.counts.get(REFUSED)), None)
    finally:
        runs.close()  # PostgreSQL's cursor on the server, left part read


def last_full_run(session: Session, connector: str) -> SyncRun | None:
    """The latest full re-pull of ``connector`` that completed (not a dry run)."""
    statement = (
        select(SyncRun)
        .where(SyncRun.connector == connector, col(SyncRun.full).is_(True))
        .where(SyncRun.status == "succeeded")
        .order_by(col(SyncRun.seq).desc())
        .limit(_LOOK_BACK)
    )
    return next((run for run in session.exec(statement) if not run.counts.get("dry_run")), None)


@dataclass(frozen=True)
class FullResync:
    """Why a run re-pulls every record, and the streams an interrupted full re-pull it goes on
    with has already re-read (those are pulled since their cursors, as the rest of a stream
    stopped part way is: from its saved page)."""

    reason: str
    done: frozenset[str] = frozenset()


def full_resync(
    session: Session,
    connector: str,
    now: datetime,
    every_hours: int,
    *,
    forced: bool | str = False,
) -> FullResync | None:
    """Whether this run re-pulls every record, and why; None for an incremental run.

    Full when asked for (``forced``: True for `handoff sync --full`, or the caller's reason,
    "the demo", said only where none of those below holds); when the last run was
    a full re-pull that stopped part way (the API budget, an error), which this one goes on with
    rather than starting again, so a re-pull larger than one run's budget still completes; when
    none of ``connector`` has completed yet; or when the last one started ``every_hours`` or more
    before ``now``.
    """
    if forced is True:
        return FullResync(FORCED)
    due = _due(session, connector, now, every_hours)
    if due is None and isinstance(forced, str) and forced:
        return FullResync(f"asked for by {forced}")
    return due


def _due(session: Session, connector: str, now: datetime, every_hours: int) -> FullResync | None:
    """The full re-pull the run log makes due, or None."""
    interrupted = _interrupted_full_runs(session, connector)
    if interrupted:
        first = interrupted[-1]
        done = frozenset().union(*(_streams_pulled(run) for run in interrupted))
        return FullResync(
            f"goes on with the full re-pull that run {first.id[:8]} began "
            f"({first.full_reason}), which stopped part way",
            done,
        )
    last = last_full_run(session, connector)
    if last is None:
        return FullResync("no full re-pull has completed yet")
    if now - last.started_at >= timedelta(hours=every_hours):
        return FullResync(
            f"the last full re-pull started {last.started_at:%d %b %Y %H:%M} UTC, "
            f"{every_hours} h or more ago ([sync] full_resync_hours)"
        )
    return None


def _interrupted_full_runs(session: Session, connector: str) -> list[SyncRun]:
    """The latest runs of ``connector`` (dry runs aside), newest first, while each is a full
    re-pull that stopped or failed: one full re-pull spread over several runs."""
    statement = (
        select(SyncRun)
        .where(SyncRun.connector == connector, SyncRun.status != "running")
        .order_by(col(SyncRun.seq).desc())
        .limit(_LOOK_BACK)
    )
    found = []
    for run in session.exec(statement):
        if run.counts.get("dry_run") or run.counts.get(REFUSED):
            continue  # neither pulled: a refused run (the CRM unreachable) ends no re-pull
        if not (run.full and run.status in ("stopped", "failed")):
            break
        found.append(run)
    return found


def _streams_pulled(run: SyncRun) -> set[str]:
    """The streams a run pulled to the end (a stream stopped part way has no figures)."""
    prefix = "pulled."
    return {key[len(prefix) :].rpartition(".")[0] for key in run.counts if key.startswith(prefix)}


def forget_events(session: Session, now: datetime, retention_days: int) -> int:
    """Delete per-record events older than ``retention_days`` before ``now``; how many."""
    cutoff = now - timedelta(days=retention_days)
    result = session.exec(delete(RunEvent).where(col(RunEvent.at) < cutoff))
    return int(result.rowcount or 0)


@dataclass(frozen=True)
class RunSummary:
    """A run's figures as named fields (the run log keeps them as flat counts)."""

    run: str
    seq: int
    connector: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str  # ok, partial, stopped, failed, running (as exit codes name them), interrupted
    full: bool
    full_reason: str | None
    dry_run: bool
    error: str | None
    model_version: str | None = None  # the model that scored the run (None: it never scored)
    model_reason: str | None = None  # and why it did
    org_id: str | None = None  # the CRM org synced, when the CRM said (revision 0021 on)
    pulled: dict[str, dict[str, int]] = field(default_factory=dict)  # stream -> figure -> n
    linked: int = 0
    review: int = 0
    orphans: dict[str, int] = field(default_factory=dict)  # reason -> people
    scored: int = 0
    orphans_scored: int = 0  # people without an account, scored on their own
    orphans_written: int = 0
    tiers: dict[str, int] = field(default_factory=dict)  # tier label -> accounts
    tier_up: int = 0
    tier_down: int = 0
    planned: int = 0
    written: dict[str, int] = field(default_factory=dict)  # stream -> records
    unchanged: int = 0
    held_back: int = 0
    failed: int = 0
    api_calls: int = 0
    budget_left: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    events_forgotten: int = 0
    trained: int = 0  # 1: the run fitted the predictive model (`sync.run`'s train stage)
    promoted: int = 0  # 1: and it scores from that run on

    @property
    def records_pulled(self) -> int:
        """Records read from every stream."""
        return sum(figures.get("records", 0) for figures in self.pulled.values())

    @property
    def records_written(self) -> int:
        """Records written to every stream."""
        return sum(self.written.values())

    def as_json(self) -> dict[str, Any]:
        """The summary as JSON-ready values (times in ISO 8601)."""
        plain = asdict(self)
        for key in ("started_at", "finished_at"):
            plain[key] = plain[key].isoformat() if plain[key] else None
        return plain


_GROUPS = {"orphans": "orphans", "tier": "tiers", "written": "written", "ms": "seconds"}
_PLAIN = (
    "linked", "review", "scored", "orphans_scored", "orphans_written", "tier_up", "tier_down",
    "planned", "unchanged", "held_back", "failed", "api_calls", "budget_left", "events_forgotten",
    "trained", "promoted",
)  # fmt: skip


def summarise(run: SyncRun) -> RunSummary:
    """A run's flat counts (`sync.run.RunReport.counts`) as a `RunSummary`."""
    grouped: dict[str, dict[str, Any]] = {name: {} for name in (*_GROUPS.values(), "pulled")}
    for key, value in run.counts.items():
        head, _, rest = key.partition(".")
        if head == "pulled":
            stream, _, figure = rest.rpartition(".")
            grouped["pulled"].setdefault(stream, {})[figure] = value
        elif head in _GROUPS and rest:
            grouped[_GROUPS[head]][rest] = value / 1000 if head == "ms" else value
    plain = {key: run.counts[key] for key in _PLAIN if key in run.counts}
    return RunSummary(
        run=run.id,
        seq=run.seq,
        connector=run.connector,
        started_at=run.started_at,
        finished_at=run.finished_at,
        outcome=_outcome(run),
        full=run.full,
        full_reason=run.full_reason,
        dry_run=bool(run.counts.get("dry_run")),
        error=run.error,
        model_version=run.model_version,
        model_reason=run.model_reason,
        org_id=run.org_id,
        **grouped,
        **plain,
    )


def _outcome(run: SyncRun) -> str:
    """ok / partial / stopped / failed / running, as `handoff sync`'s exit codes name them, or
    interrupted (Ctrl-C, SIGTERM: `sync.run`), which a budget's stop is not."""
    if run.status == "succeeded":
        return "partial" if run.counts.get("failed") else "ok"
    if run.status == "stopped" and (run.error or "").startswith("interrupted"):
        return "interrupted"
    return run.status


def run_problems(session: Session, run_id: str) -> list[RunEvent]:
    """A run's failed and skipped records, in the order they happened."""
    statement = (
        select(RunEvent)
        .where(RunEvent.run_id == run_id, col(RunEvent.action).in_(("failed", "skipped")))
        .order_by(col(RunEvent.id))
    )
    return list(session.exec(statement))


def run_events(session: Session, run_id: str) -> Iterator[RunEvent]:
    """Every per-record event of a run still kept, in the order they happened."""
    statement = select(RunEvent).where(RunEvent.run_id == run_id).order_by(col(RunEvent.id))
    yield from session.exec(statement)
