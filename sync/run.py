"""One sync run, CRM to CRM: a plain function of its inputs (settings, connector, store, now).

    report = run_sync(config, connector, store, now)

Stages are small functions over the state database, run in order, each timed into
``report.stages``: mirror -> link -> train -> score -> tier -> diff -> save -> write, then the
run log (train: the first run fits the predictive model once the org's history suffices; save:
what a first load's score stage held back while the mirror's indexes were built). Routing
and SLA stages slot in by adding to `STAGES`. Nothing here reads the clock, the environment or
the process (it only spares the garbage collector the objects the process held before the run):
the CLI, a scheduler or a queue worker calls it the same way. An API budget that
runs out stops the run cleanly (status "stopped"); what was committed stays, and the next run
resumes from the saved cursors and the pending ledger rows.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from uuid import uuid4

from sqlalchemy import Table, update
from sqlmodel import Session, col, select

from connectors.errors import BudgetExhausted
from connectors.protocol import Connector, SchemaGap, SchemaSpec
from scoring.tiers import TIER_ORDER, tier_label
from scoring.training import Training
from sync.config import MatchingSettings
from sync.echoes import sort_echoes
from sync.explain import model_status
from sync.frames import ReadApart
from sync.linking import LinkCounts, link_people
from sync.mirror import StreamPull, mirror_streams
from sync.orphans import score_orphans, settle_orphans
from sync.runlog import REFUSED, FullResync, forget_events, full_resync
from sync.scoring_state import (
    Book,
    HistoryRead,
    ScoringSetup,
    Write,
    history_ahead,
    keep_training,
    score_cycle,
    settle,
    train_read,
    training_due,
)
from sync.state import Person, SyncRun, table_of
from sync.store import IndexBuild, Store
from sync.writeback import (
    ORPHAN_REASON,
    AccountScore,
    Plan,
    PushOutcome,
    Target,
    account_scores,
    forget_scores,
    plan_writes,
    push_plan,
    record_scores,
    targets,
    tier_counts,
    tier_moves,
)

__all__ = [
    "ABANDONED",
    "CHECK_STAGE",
    "EXIT_CODES",
    "STAGES",
    "RunConfig",
    "RunReport",
    "SchemaNotSetUp",
    "StateOfAnotherCrm",
    "refuse_another_crm",
    "run_sync",
]

# `handoff sync` exit codes, by what became of the run
EXIT_CODES = {"ok": 0, "failed": 1, "partial": 2, "stopped": 3, "locked": 4}
SAMPLE_ROWS = 10
CHECK_STAGE = "check"  # a run refused before it began: the time its checks of the CRM took
ABANDONED = "never finished: its process ended (killed or crashed) before logging its outcome"
Progress = Callable[[str, int, int | None], None]  # (stage, done, total or None)
_EVENT_STAGE = {"mirror": "pull", "link": "match", "write": "write"}
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunConfig:
    """What a run needs from the settings (built by the shell, which owns `Settings`)."""

    scoring: ScoringSetup
    matching: MatchingSettings
    min_score_change: int = 3
    full_resync_hours: int = 168  # see `[sync] full_resync_hours` in `sync.config`
    event_retention_days: int = 90
    schema: SchemaSpec | None = None  # our CRM fields, checked before anything is pulled


class SchemaNotSetUp(Exception):
    """The CRM lacks fields the run writes (set up by an older release, or changed since):
    nothing was pulled or written. ``gaps`` names each; `handoff setup` puts them in place."""

    def __init__(self, gaps: tuple[SchemaGap, ...]) -> None:
        self.gaps = gaps
        named = ", ".join(f"{g.object}.{g.name} ({g.problem})" for g in gaps)
        super().__init__(
            f"the CRM's Handoff fields are not set up as this release writes them: {named}; "
            "`handoff setup` puts them in place"
        )


class StateOfAnotherCrm(Exception):
    """The state database holds another CRM's sync state (its runs, mirror, ledger and scores),
    or another org's of the same CRM: a state database serves one CRM org, so the run pulled
    and wrote nothing. ``held`` names the CRM whose state it holds, ``crm`` the one the run
    connects to; ``held_org`` and ``org`` the two orgs, when it is theirs that differ."""

    def __init__(
        self, held: str, crm: str, held_org: str | None = None, org: str | None = None
    ) -> None:
        self.held, self.crm, self.held_org, self.org = held, crm, held_org, org
        if held_org is not None:
            said = f"the {held} org {held_org}, and this run connects to the {crm} org {org}"
        else:
            said = f"a {held} org, and this run connects to {crm}"
        super().__init__(
            f"the state database holds the sync state of {said}: a state database serves one "
            "CRM org; nothing was pulled or written"
        )

    @property
    def named(self) -> str:
        """The org the run connects to, as a file name may carry it: `hubspot`, `hubspot-123`."""
        return self.crm if self.org is None else f"{self.crm}-{self.org}"


def refuse_another_crm(store: Store, connector: Connector) -> str | None:
    """The org ``connector`` reads (`Connector.org_id`), once the state database is found to
    hold no other CRM's runs (checked first: no call is made for a database of another CRM)
    and no other org's of this one; else `StateOfAnotherCrm`. Runs that name no org (kept
    from before revision 0021) are of any. A caller about to change the CRM, as set-up does,
    asks first."""
    crm = connector.crm
    with store.session() as session:
        held = session.exec(
            select(SyncRun.connector).where(SyncRun.connector != crm).limit(1)
        ).first()
    if held is not None:
        raise StateOfAnotherCrm(held, crm)
    org_id = connector.org_id()  # Salesforce's without a call, HubSpot's in one a connector
    if org_id is None:
        return None
    with store.session() as session:
        other = session.exec(
            select(SyncRun.org_id)
            .where(col(SyncRun.org_id).is_not(None), SyncRun.org_id != org_id)
            .limit(1)
        ).first()
    if other is not None:
        raise StateOfAnotherCrm(crm, crm, other, org_id)
    return org_id


@dataclass
class RunReport:
    """What one run did, for the run log, the CLI and daily roll-ups."""

    run_id: str
    crm: str
    started_at: datetime
    full: bool = False
    full_reason: str | None = None  # why every record was re-pulled
    dry_run: bool = False
    status: str = "running"
    error: str | None = None
    pulled: dict[str, dict[str, int]] = field(default_factory=dict)
    link: LinkCounts = field(default_factory=LinkCounts)
    model_version: str | None = None
    model_kind: str | None = None
    model_reason: str | None = None  # which model scored and why (the rules at a cold start)
    trained: str | None = None  # the model this run trained, if it did: its verdict
    promoted: bool = False  # and whether it scores from now on
    untrained: str | None = None  # why a run that would have trained did not: too little history
    model_kept: bool = False  # the model it trained is kept (not in a dry run or a failed one)
    train_seconds: float | None = None  # its fitting, apart from the history's read
    scored: int = 0
    rescored_all: str | None = None  # why every account was rescored (first, nightly, ...)
    rebuilt: dict[str, int] = field(default_factory=dict)
    orphans_scored: int = 0  # leads without an account, scored on their own (sync.orphans)
    orphans_written: int = 0
    tiers: dict[str, int] = field(default_factory=dict)
    tier_up: int = 0
    tier_down: int = 0
    planned: int = 0
    planned_fields: dict[str, int] = field(default_factory=dict)
    sample: list[dict[str, Any]] = field(default_factory=list)
    written: dict[str, int] = field(default_factory=dict)
    unchanged: int = 0
    held_back: int = 0
    failed: list[dict[str, str | None]] = field(default_factory=list)
    api_calls: int = 0
    budget_left: int | None = None
    stages: dict[str, float] = field(default_factory=dict)
    events_forgotten: int = 0  # per-record events past their retention, deleted at the end

    @property
    def outcome(self) -> str:
        """ok, partial (some records failed), stopped (API budget) or failed."""
        if self.status in ("failed", "stopped"):
            return self.status
        return "partial" if self.failed else "ok"

    @property
    def exit_code(self) -> int:
        """The documented exit code of `handoff sync` for this run."""
        return EXIT_CODES[self.outcome]

    def counts(self) -> dict[str, int]:
        """Flat integer figures, the form the run log keeps and roll-ups sum."""
        figures: dict[str, int] = {
            "linked": self.link.linked,
            "review": self.link.review,
            "scored": self.scored,
            "orphans_scored": self.orphans_scored,
            "orphans_written": self.orphans_written,
            "tier_up": self.tier_up,
            "tier_down": self.tier_down,
            "planned": self.planned,
            "written": sum(self.written.values()),
            "unchanged": self.unchanged,
            "held_back": self.held_back,
            "failed": len(self.failed),
            "api_calls": self.api_calls,
            "dry_run": int(self.dry_run),
            "events_forgotten": self.events_forgotten,
        }
        if self.model_kept:
            figures |= {"trained": 1, "promoted": int(self.promoted)}
        if self.budget_left is not None:
            figures["budget_left"] = self.budget_left
        for stream, pulled in self.pulled.items():
            figures |= {f"pulled.{stream}.{key}": value for key, value in pulled.items()}
        figures |= {f"orphans.{reason}": n for reason, n in self.link.orphans.items()}
        figures |= {f"tier.{tier}": n for tier, n in self.tiers.items()}
        figures |= {f"rebuilt.{reason}": n for reason, n in self.rebuilt.items()}
        if self.rescored_all is not None:
            figures[f"rescored_all.{self.rescored_all}"] = 1
        figures |= {f"written.{stream}": n for stream, n in self.written.items()}
        figures |= {f"ms.{stage}": round(s * 1000) for stage, s in self.stages.items()}
        return figures


@dataclass
class _Run:
    """One run's inputs and what its stages hand each other."""

    config: RunConfig
    connector: Connector
    store: Store
    now: datetime
    report: RunReport
    progress: Progress | None
    events: list[tuple[Any, ...]] = field(default_factory=list)  # as `EVENT_ROW`, at `now`
    resync: FullResync | None = None
    book: Book | None = None
    recount: bool = False  # accounts were deleted: the tiers are counted, not moved
    scores: dict[str, AccountScore] = field(default_factory=dict)
    orphans: dict[str, AccountScore] = field(default_factory=dict)  # by person id
    echoes: set[tuple[str, str]] = field(default_factory=set)  # (entity, id): our writes read back
    unbuilt: list[Table] = field(default_factory=list)  # first loaded: indexes built behind
    building: IndexBuild | None = None  # their build, started by the train or score stage
    unwritten: list[Write] = field(default_factory=list)  # the score stage's, held (`_score`)
    history: ReadApart | HistoryRead | None = None  # the score stage's read: started by the
    # link stage, or made by the train stage
    training: Training | None = None  # the train stage's, kept by the score stage
    plan: Plan = field(default_factory=Plan)
    outcome: PushOutcome = field(default_factory=PushOutcome)

    def event(
        self, stage: str, action: str, obj: str, record: str, reason: str, detail: Any = None
    ) -> None:
        """A per-record line of the run log."""
        self.events.append((_EVENT_STAGE[stage], obj, record, action, reason, detail))

    def tick(self, stage: str, done: int, total: int | None = None) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)


def _mirror(run: _Run) -> None:
    """Pull every stream since its cursor into the mirror; progress a stream at a time, told
    at each page a long stream reads too (the streams done so far)."""
    done, streams = 0, len(run.connector.streams)
    mirrored = mirror_streams(
        run.store,
        run.connector,
        run.now,
        full={stream for stream in run.connector.streams if _pulls_all(run, stream)},
        move_cursor=not run.report.dry_run,
        echoes=run.echoes,  # told apart as each transaction stores them
        unbuilt=run.unbuilt if run.store.dialect == "sqlite" else None,
        beat=lambda: run.tick("mirror", done, streams),
    )
    for number, pulled in enumerate(mirrored):
        run.report.pulled[pulled.stream] = _pulled_figures(pulled)
        for e in pulled.events:
            run.event("mirror", e.action, e.object, e.record_id, e.reason)
        done = number + 1
        run.tick("mirror", done, streams)


def _pulls_all(run: _Run, stream: str) -> bool:
    """Whether ``stream`` is read from its start: in a full re-pull, unless the re-pull this run
    goes on with already read it, or stopped part way through it (its cursor holds the page)."""
    if run.resync is None or stream in run.resync.done:
        return False
    with run.store.session() as session:
        cursor = run.store.get_cursor(session, run.connector.crm, stream)
    return cursor is None or cursor.resume is None


def _pulled_figures(pulled: StreamPull) -> dict[str, int]:
    summary = pulled.summary
    return {
        "records": summary.records if summary else pulled.stored,
        "tombstones": pulled.tombstones,
        "stored": pulled.stored,
        "reread_skipped": pulled.reread_skipped,
        "skipped": sum(pulled.skipped.values()),
        "calls": summary.calls if summary else 0,
    }


def _link(run: _Run) -> None:
    """Link the people changed this cycle, or reached by a changed account, or say why not; the
    echoes of our own writes are not changes (`sync.echoes`: the mirror told them apart as it
    stored them; rows an older release flagged and left are told apart here)."""
    _history_ahead(run)
    with run.store.session() as session:
        sort_echoes(session, run.connector.streams, run.echoes)
        # the person table first loaded: its indexes are built later (the train or score stage)
        unbuilt = table_of(Person).name in {table.name for table in run.unbuilt}
        link = run.report.link = link_people(
            session, run.config.matching, full=run.report.full, unbuilt=unbuilt
        )
    for person, old, new in link.relinked:
        if old is None and not link.full:  # a full link's first links are not news
            run.event("link", "matched", "person", person, f"linked to {new}")
        elif new is None:
            run.event("link", "matched", "person", person, f"no longer linked to {old}")
        elif old is not None:
            run.event("link", "matched", "person", person, f"relinked from {old} to {new}")


def _history_ahead(run: _Run) -> None:
    """Start the score stage's read of the whole history, when it will rebuild every account
    from it (`history_ahead`): a process of its own reads it on the other core while this one
    links (the link stage writes no activity). Held by the run as soon as it starts, so a
    failure after it gives it up (`run_sync`)."""
    with run.store.session() as session:
        run.history = history_ahead(session, run.config.scoring, run.now, full=run.report.full)


def _train(run: _Run) -> None:
    """Fit the predictive model before the first run scores, once the org's history suffices
    (`training_due`; the periodic full re-pull tries again while none is promoted), on the
    history the score stage reads to rebuild every account: read here and handed on, not read
    twice. A first load's indexes start building meanwhile (`_building`: training reads none of
    them). Nothing is written: the score stage keeps the candidate in its transaction (so not in
    a dry run), and a promoted one scores this run. ``report.train_seconds`` is the fitting
    alone: the read is the score stage's work in a run that does not train."""
    report, setup = run.report, run.config.scoring
    with run.store.session() as session:
        due, report.untrained = training_due(session, setup, full=report.full)
        if not due:
            return
        _building(run)
        started, run.history = run.history, None
        try:
            read = run.history = HistoryRead.read(session, setup, started)
        finally:
            if started is not None:  # taken, or given up when the read failed
                started.cancel()
        fitting = time.perf_counter()
        run.training = train_read(session, setup, run.now, read)
        report.train_seconds = time.perf_counter() - fitting
    if run.training.candidate is None:  # the history held too little to learn from
        report.untrained, run.training = run.training.reason, None
    else:
        report.trained, report.promoted = run.training.reason, run.training.promoted


def _keep_training(run: _Run, training: Training, session: Session) -> None:
    """Keep the model the train stage fitted (`keep_training`), so the run log says so."""
    keep_training(session, training, run.now)
    run.report.model_kept = not run.report.dry_run  # a dry run's score stage rolls back


def _building(run: _Run) -> IndexBuild:
    """The build of the indexes a first load left (`Store.build_indexes_behind`), started by
    the first stage that asks for it."""
    if run.building is None:
        run.building = run.store.build_indexes_behind(run.unbuilt)
        run.unbuilt = []
    return run.building


def _score(run: _Run) -> None:
    """Bring each account's stored signal sums up to the mirror; score and explain the accounts
    touched this cycle (every account on the first run, ``--full`` and the nightly rescore), and
    the leads without an account touched alike on their own (`sync.orphans`). A dry run keeps
    none of it.

    A first load's activity and person indexes, left by the mirror, are built on the other core
    meanwhile (SQLite: `Store.build_indexes_behind`), holding the database's one write lock. A
    rebuild of every account then reads and scores without writing: its writes are held
    (`score_cycle`'s ``hold``) and made by the save stage (`_save`), so the build goes on beside
    the tier and diff stages, which read none of them (on the reference org the stage waited
    14.7 s for it, about what those two stages take). The sums so held stay in memory until
    then (~400 MB more in the diff stage on the reference org, under the score stage's own
    peak). Any other cycle waits for the build before it first writes."""
    report, config = run.report, run.config
    building = _building(run)
    training, run.training = run.training, None
    with ExitStack() as stack:
        session = stack.enter_context(run.store.session())
        history, run.history = run.history, None  # the cycle takes it or gives it up
        if history is not None:
            stack.callback(history.cancel)  # nothing left to do once taken
        cycle = score_cycle(
            session,
            config.scoring,
            run.now,
            full=report.full,
            ready=building.wait,
            history=history,
            hold=building.behind,
            model=training.model if training is not None else None,
        )
        cycle.write(session, partial(forget_scores, account_ids=cycle.gone))
        if training is not None:  # kept with the stage's writes: not in a dry run
            cycle.write(session, partial(_keep_training, run, replace(training, holdout=None)))
        report.model_reason = _model_reason(session, run, cycle.book)
        run.orphans = score_orphans(
            session, config.scoring, run.now, cycle, config.min_score_change
        )
        if report.dry_run:
            session.rollback()
        elif cycle.unwritten is not None:
            run.unwritten = cycle.unwritten
    if cycle.unwritten is None:
        _built(run)  # waited for already, before the cycle first wrote: its error, if any
    run.book = cycle.book
    run.recount = cycle.gone is None or bool(cycle.gone)
    report.scored = len(run.book.account_ids)
    report.rescored_all, report.rebuilt = cycle.everything, cycle.rebuilt
    report.model_version = run.book.scores.model_version
    report.model_kind = run.book.model_kind
    report.orphans_scored = len(run.orphans)


def _model_reason(session: Session, run: _Run, book: Book) -> str:
    """Which model scored and why: the one this run trained says why it was kept or promoted;
    a run the history kept from training says so after the usual reason."""
    report = run.report
    if report.trained is not None:
        kept = " (a dry run: not kept)" if report.dry_run else ""
        return f"trained this run{kept}: {report.trained}"
    reason = model_status(session, run.config.scoring, book)
    return reason if report.untrained is None else f"{reason}; not trained: {report.untrained}"


def _built(run: _Run) -> None:
    """Wait for the index build the train or score stage started, if it runs (raising its
    error)."""
    building, run.building = run.building, None
    if building is not None:
        building.wait()


def _save(run: _Run) -> None:
    """The score stage's writes it held while the mirror's indexes were built (`_score`), made
    once they are, in one transaction (not in a dry run). A stage of its own, before anything is
    pushed: a run killed before it commits has written nothing to the CRM either, and the next
    run scores again; and the heartbeat before the write stage, which on SQLite cannot renew the
    run lock while the build holds the database's write lock, comes after the build."""
    _built(run)
    unwritten, run.unwritten = run.unwritten, []
    if unwritten and not run.report.dry_run:
        with run.store.session() as session:
            for write in unwritten:
                write(session)


def _indexes_left(run: _Run) -> None:
    """Build the indexes the mirror left to the score stage when the run ended before it (the
    API budget spent during a first load, a failed stage, a lost lock): the next run would
    build them at its start, but readers before it (`handoff explain`) would scan the table;
    and wait for a build the train or score stage started, before the run log is written. A
    failure is logged, not raised: the run's own outcome is what it reports."""
    tables, run.unbuilt = run.unbuilt, []
    try:
        _built(run)
    except Exception:
        _LOG.warning("building the indexes left by the mirror failed", exc_info=True)
    if not tables:
        return
    try:
        run.store.build_indexes_behind(tables).wait()
    except Exception:
        _LOG.warning("building the indexes of %s failed", [t.name for t in tables], exc_info=True)


def _tier(run: _Run) -> None:
    """What each rescored account should show, moves against the last run, and every live
    account counted per tier (those not rescored as they stand)."""
    assert run.book is not None
    config = run.config
    run.scores = account_scores(run.book, config.scoring.tiers, run.now, config.min_score_change)
    with run.store.session() as session:
        run.report.tier_up, run.report.tier_down, _ = tier_moves(session, run.scores)
        tiers = tier_counts(session, run.scores, recount=run.recount)
    ordered = sorted(tiers.items(), key=lambda item: TIER_ORDER.index(item[0]))
    run.report.tiers = {tier_label(key, config.scoring.tiers): n for key, n in ordered}


def _diff(run: _Run) -> None:
    """Plan the writes a rep would notice, against the CRM's values and the ledger; the echoes
    of our writes not diffed again count as unchanged (they were, against the ledger)."""
    with run.store.session() as session:
        found = list(targets(session, run.connector.streams, run.scores, run.orphans))
        run.plan = plan_writes(session, found, run.config.min_score_change)
    # (the set is made only when there are echoes: a first run diffs every record, and has none)
    diffed = {(target.entity, target.record_id) for target in found} if run.echoes else set()
    report = run.report
    report.planned = len(run.plan.writes)
    report.unchanged = run.plan.unchanged + len(run.echoes - diffed)
    report.held_back = len(run.plan.held_back)
    report.planned_fields = run.plan.fields()
    report.sample = [_sample(p.target, p.why) for p in run.plan.writes[:SAMPLE_ROWS]]
    for target, code in run.plan.held_back:
        run.event("write", "skipped", target.stream, target.record_id, f"rejected before: {code}")


def _sample(target: Any, why: str) -> dict[str, Any]:
    values = target.values
    return {
        "object": target.stream,
        "id": target.record_id,
        "why": why,
        "score": values.get("score"),
        "tier": values.get("tier"),
    }


def _write(run: _Run) -> None:
    """Push the plan (not in a dry run); keep score history for what was written."""
    if run.report.dry_run:
        return
    total = len(run.plan.writes)
    done = 0

    def advanced(count: int) -> None:
        nonlocal done
        done += count
        run.tick("write", done, total)

    try:
        push_plan(
            run.store,
            run.connector,
            run.plan,
            run.scores,
            run.report.run_id,
            run.now,
            run.outcome,
            advanced,
        )
    finally:
        _settled(run)


def _settled(run: _Run) -> None:
    """Current scores, the rescored accounts and orphans whose write-back is done, and the
    per-record lines of what was written (score history is appended as each batch settles)."""
    unsettled = _unsettled(run)
    with run.store.session() as session:
        record_scores(run.store, session, run.scores, run.now, run.report.run_id)
        settle(session, set(run.scores) - {t.account_id for t in unsettled if not _orphan(t)})
        settle_orphans(session, set(run.orphans) - {t.record_id for t in unsettled if _orphan(t)})
    written, report = run.report.written, run.report
    for planned in run.outcome.written:
        target = planned.target
        written[target.stream] = written.get(target.stream, 0) + 1
        report.orphans_written += _orphan(target)
        run.event("write", "written", target.stream, target.record_id, planned.why)
    for planned, result in run.outcome.failed:
        failure = {
            "object": planned.target.stream,
            "id": planned.target.record_id,
            "status": result.status,
            "code": result.code,
            "message": result.message,
        }
        run.report.failed.append(failure)
        run.event(
            "write", "failed", planned.target.stream, planned.target.record_id,
            result.code or result.status, result.message,
        )  # fmt: skip


def _unsettled(run: _Run) -> list[Target]:
    """Planned writes not pushed, or refused for now (retried next run): their accounts and
    orphans stay pending."""
    done = {id(p) for p in run.outcome.written}
    done |= {id(p) for p, result in run.outcome.failed if result.status == "permanent"}
    return [p.target for p in run.plan.writes if id(p) not in done]


def _orphan(target: Target) -> bool:
    """Whether ``target`` is a lead without an account, showing its own values."""
    return target.values.get(ORPHAN_REASON) is not None


Stage = Callable[[_Run], None]
STAGES: tuple[tuple[str, Stage], ...] = (
    ("mirror", _mirror),
    ("link", _link),
    ("train", _train),
    ("score", _score),
    ("tier", _tier),
    ("diff", _diff),
    ("save", _save),
    ("write", _write),
)


def run_sync(
    config: RunConfig,
    connector: Connector,
    store: Store,
    now: datetime,
    *,
    full: bool | str = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    run_id: str | None = None,
    heartbeat: Callable[[], None] | None = None,
) -> RunReport:
    """One run from the CRM to the CRM; the report says what it did and how it ended.

    It re-pulls every record when ``full`` asks (True, or the caller's reason: "the demo"), or
    when `sync.runlog.full_resync` finds a full re-pull due (or one to go on with); the report
    says why.

    ``heartbeat`` is called between stages, so before write-back: the caller holding the org's
    run lock (`sync.lock`) passes its `heartbeat`, which raises if another run took the lock.
    Holding it, the run also closes in the run log the runs that never finished (killed or
    crashed: none of them can still be running). A CRM lacking fields the run writes
    (``config.schema``) raises `SchemaNotSetUp` before anything is pulled, so a scheduler's run
    stops as the CLI's does; a state database holding another CRM's runs raises
    `StateOfAnotherCrm` before the CRM is called, and one holding another org's of the same
    CRM once the org is known (`Connector.org_id`: no call on Salesforce, one on HubSpot).
    """
    report = RunReport(run_id or uuid4().hex, connector.crm, now, dry_run=dry_run)
    org_id, checking, checks_before = None, time.perf_counter(), connector.usage().calls
    try:
        org_id = refuse_another_crm(store, connector)  # its call may find the CRM unreachable
        gaps = connector.schema_gaps(config.schema) if config.schema is not None else ()
        if gaps:
            raise SchemaNotSetUp(gaps)  # before the run starts: nothing pulled or written
    except StateOfAnotherCrm:
        raise  # another CRM's state database: nothing of this run goes into it
    except Exception as error:  # the CRM unreachable, refusing us, or lacking our fields
        report.stages[CHECK_STAGE] = time.perf_counter() - checking  # retries and waits among
        report.api_calls = connector.usage().calls - checks_before
        _refused(store, report, org_id, error)
        raise
    run = _Run(config, connector, store, now, report, progress)
    calls_before = connector.usage().calls
    with store.session() as session:
        if heartbeat is not None:
            _close_abandoned(session, connector.crm, report.run_id)
        every = config.full_resync_hours
        run.resync = full_resync(session, connector.crm, now, every, forced=full)
        report.full_reason = run.resync.reason if run.resync else None
        report.full = run.resync is not None
        store.record_run_start(
            session, connector.crm, now, report.run_id, report.full_reason, org_id
        )
    with _collector_spared():
        try:
            for number, (name, stage) in enumerate(STAGES):
                if number and heartbeat is not None:
                    heartbeat()
                _timed(report.stages, name, lambda stage=stage: stage(run))
            report.status = "succeeded"
        except BudgetExhausted as stop:
            report.status, report.error = "stopped", str(stop)
        except KeyboardInterrupt:  # Ctrl-C, or a signal the caller turns into one (SIGTERM)
            report.status, report.error = "stopped", _interrupted(report)
            raise
        except Exception as error:
            report.status, report.error = "failed", _failure(error)
            raise
        finally:
            if run.history is not None:  # the score stage never came to take it
                run.history.cancel()
            _indexes_left(run)
            _logged(run, calls_before)
    return report


def _logged(run: _Run, calls_before: int) -> None:
    """The log stage; interrupted part way (its transaction rolled back), it is written once
    more saying so, so the run never stays "running" (the CLI ignores a signal more)."""
    report = run.report
    try:
        _timed(report.stages, "log", lambda: _log(run, calls_before))
    except KeyboardInterrupt:
        report.status, report.error = "stopped", _interrupted(report)
        _timed(report.stages, "log", lambda: _log(run, calls_before))
        raise


def _interrupted(report: RunReport) -> str:
    """What the run log says of a run interrupted (its stage's time is recorded as it ends)."""
    during = f" during the {next(reversed(report.stages))} stage" if report.stages else ""
    return f"interrupted{during}: what was done is kept, and the next sync goes on from there"


@contextmanager
def _collector_spared() -> Iterator[None]:
    """No automatic pass of the garbage collector for the run's length (`gc.disable`), and what
    the process held before it frozen (`gc.freeze`: a pass a library asks for walks only what
    the run made); both handed back after. What a run keeps (frames, a document and a target a
    record) makes no cycles to speak of, yet the collector's passes walked all of it: with a
    young pass every 700 allocations, 19.3 s of the reference org's first run (full passes of up
    to 0.9 s collecting 0 to 1,743 objects each); every 100,000, 4.5 s, and at 50,000 accounts
    ~0.9 s, where the run left 447 objects of cyclic garbage in all. That garbage waits for a
    pass of the oldest generation after the run (what references alone free is freed at once),
    and so does a host thread's: the collector's switch is the process's. Everything the run
    made is handed back as old (frozen with the rest, then unfrozen into the oldest generation):
    left young, it was all walked by the first young pass after the run, the moment the
    collector was on again (3.4 s of the reference org's first run, ~1 s at 50,000 accounts).
    A process that froze objects itself (a pre-fork server sharing memory with its workers)
    keeps them frozen and its collector as it set it: the run leaves the collector alone; so
    does one that turned the collector off itself."""
    if gc.get_freeze_count() or not gc.isenabled():
        yield
        return
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()  # the run's objects too, so none is left in the young generation
        gc.enable()
        gc.unfreeze()


def _refused(store: Store, report: RunReport, org_id: str | None, error: Exception) -> None:
    """A run that failed before it began (nothing pulled or written), kept in the run log with
    why, how long its checks took and the calls they made (a CRM that did not answer is retried
    for a while first), so RevOps reading `handoff logs` sees a scheduler's runs fail, not only
    its stderr."""
    report.status, report.error = "failed", _failure(error)
    finished = report.started_at + timedelta(seconds=sum(report.stages.values()))
    with store.session() as session:
        store.record_run_start(session, report.crm, report.started_at, report.run_id, None, org_id)
        counts = {**report.counts(), REFUSED: 1}  # not a run of the mirror: `sync.runlog`
        store.record_run_finish(
            session, report.run_id, finished, report.status, counts, report.error
        )


def _failure(error: Exception) -> str:
    """A failed run's error as the run log keeps it: its kind, then its words."""
    return f"{type(error).__name__}: {error}"


def _close_abandoned(session: Session, crm: str, run_id: str) -> None:
    """Mark the runs left "running" as failed, saying what became of them."""
    statement = (
        update(SyncRun)
        .where(col(SyncRun.connector) == crm, col(SyncRun.status) == "running")
        .values(status="failed", error=f"{ABANDONED}; run {run_id} took over its work")
    )
    session.exec(statement)  # type: ignore[call-overload]


def _timed(stages: dict[str, float], name: str, work: Callable[[], None]) -> None:
    """Run one stage and record its seconds (even when it raises)."""
    started = time.perf_counter()
    _LOG.debug("stage %s started", name)
    try:
        work()
    finally:
        stages[name] = time.perf_counter() - started
        _LOG.debug("stage %s ended after %.2f s", name, stages[name])


def _log(run: _Run, calls_before: int) -> None:
    """The run's figures and per-record lines into the run log, this stage's seconds among them
    up to its commit (`_timed` then records its whole), so `handoff logs RUN` lists the stages
    the run's report does."""
    began = time.perf_counter()
    usage = run.connector.usage()
    report = run.report
    report.api_calls, report.budget_left = usage.calls - calls_before, usage.budget_left
    with run.store.session() as session:
        run.store.add_events(session, report.run_id, run.now, run.events)
        retention = run.config.event_retention_days
        report.events_forgotten = forget_events(session, run.now, retention)
        report.stages["log"] = time.perf_counter() - began
        finished = run.now + timedelta(seconds=sum(report.stages.values()))
        run.store.record_run_finish(
            session,
            report.run_id,
            finished,
            report.status,
            report.counts(),
            report.error,
            model=(report.model_version, report.model_reason),
        )
