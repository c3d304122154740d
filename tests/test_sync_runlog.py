"""The run log's decisions: when a run re-pulls everything, the order of runs, event retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import func, select

from connectors.budget import Budget
from connectors.http import HttpPolicy
from connectors.protocol import Connector
from handoff.crm import sandbox_connector, schema_spec
from handoff.reports import _times, shown_times
from handoff.runs import run_config
from handoff.settings import Settings
from sandbox.generator import generate_org
from sandbox.hubspot.limits import TIERS
from sandbox.service import start_sandbox
from sync import Store
from sync.run import RunReport, run_sync
from sync.runlog import (
    FORCED,
    REFUSED,
    FullResync,
    forget_events,
    full_resync,
    last_run_that_began,
    runs_newest_first,
)
from sync.state import Account, RunEvent

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
WEEK = 168


def _run(
    store: Store,
    run_id: str,
    at: datetime,
    full: str | None,
    status: str = "succeeded",
    dry_run: bool = False,
    pulled: tuple[str, ...] = (),
) -> None:
    counts = {"dry_run": int(dry_run)} | {f"pulled.{stream}.records": 1 for stream in pulled}
    with store.session() as session:
        store.record_run_start(session, "hubspot", at, run_id, full)
        store.record_run_finish(session, run_id, at, status, counts)


def _resync(store: Store, now: datetime, forced: bool | str = False) -> FullResync | None:
    with store.session() as session:
        return full_resync(session, "hubspot", now, WEEK, forced=forced)


def _reason(store: Store, now: datetime, forced: bool | str = False) -> str | None:
    resync = _resync(store, now, forced)
    return None if resync is None else resync.reason


def test_a_full_re_pull_is_due_first_then_weekly_and_whenever_asked(store: Store) -> None:
    # a caller's own reason is said where the run log gives none: the first run has one
    assert _reason(store, T0, forced="the demo") == "no full re-pull has completed yet"
    first = _reason(store, T0)
    _run(store, "full-1", T0, first)
    _run(store, "dry-full", T0 + timedelta(days=8), FORCED, dry_run=True)

    assert first == "no full re-pull has completed yet"
    assert _reason(store, T0 + timedelta(days=6)) is None
    assert _reason(store, T0 + timedelta(days=6), forced=True) == FORCED
    asked = _reason(store, T0 + timedelta(days=6), forced="the demo")
    assert asked == "asked for by the demo"
    # a dry full run does not count: the one of 1 Nov is the last
    due = _reason(store, T0 + timedelta(days=8))
    assert due is not None and "01 Nov 2026 09:00 UTC" in due and "full_resync_hours" in due
    _run(store, "full-2", T0 + timedelta(days=8), due)
    assert _reason(store, T0 + timedelta(days=9)) is None


def test_a_full_re_pull_stopped_by_the_budget_goes_on_where_it_stopped(store: Store) -> None:
    _run(store, "full-1", T0, "first")
    later = T0 + timedelta(days=8)
    _run(store, "stopped-1", later, "due", status="stopped", pulled=("owners", "companies"))
    _run(store, "stopped-2", later, "goes on", status="stopped", pulled=("contacts",))
    with store.session() as session:  # refused before it began (the CRM unreachable): no pull
        store.record_run_start(session, "hubspot", later, "refused", None)
        store.record_run_finish(session, "refused", later, "failed", {REFUSED: 1})

    going_on = _resync(store, later)
    _run(store, "full-3", later, "goes on", pulled=("owners", "companies", "contacts", "calls"))

    # not started again (it would never end when it costs more than one run's budget)
    assert going_on is not None and going_on.done == {"owners", "companies", "contacts"}
    assert "run stopped-" in going_on.reason and "stopped part way" in going_on.reason
    assert _resync(store, later + timedelta(hours=1)) is None  # it completed


def test_a_re_pull_asked_for_and_stopped_is_gone_on_with_in_plain_words(store: Store) -> None:
    _run(store, "full-1", T0, "first")
    later = T0 + timedelta(days=1)
    _run(store, "asked-1", later, FORCED, status="stopped", pulled=("owners",))

    going_on = _reason(store, later)
    assert going_on == (
        "goes on with the full re-pull that run asked-1 began (asked for with --full), "
        "which stopped part way"
    )


def test_runs_sharing_a_start_time_are_listed_newest_first(store: Store) -> None:
    for run_id in ("b-first", "a-second", "c-third"):  # ids out of order, one simulated time
        _run(store, run_id, T0, None)
    with store.session() as session:
        listed = [run.id for run in runs_newest_first(session, 10)]
        one = [run.id for run in runs_newest_first(session, 1, "a-")]
    assert listed == ["c-third", "a-second", "b-first"]
    assert one == ["a-second"]


def test_events_past_their_retention_are_deleted_and_run_summaries_kept(store: Store) -> None:
    _run(store, "old", T0, None)
    _run(store, "new", T0 + timedelta(days=100), None)

    def event(record_id: str) -> tuple[str | None, ...]:
        return ("write", "companies", record_id, "written", "new", None)

    with store.session() as session:
        store.add_events(session, "old", T0, [event("1")])
        store.add_events(session, "new", T0 + timedelta(days=100), [event("2")])
        forgotten = forget_events(session, T0 + timedelta(days=100), retention_days=90)
    with store.session() as session:
        kept = [e.record_id for e in session.exec(select(RunEvent))]
        runs = [run.id for run in runs_newest_first(session, 10)]
    assert forgotten == 1 and kept == ["2"]
    assert runs == ["new", "old"]


@pytest.mark.slow  # ~25 s: a full re-pull spread over four runs of a 150-account org
def test_a_full_re_pull_larger_than_a_run_s_budget_completes_over_the_next_runs(
    tmp_path: Path,
) -> None:
    """Real connector and client over loopback HTTP; each run may make 70 calls, and the first
    full pull of this org takes about 90 (its web events alone 45), so it spans several runs.
    Started again each run it would never end; gone on with, it completes."""
    org = generate_org(150, 3)
    config, now = run_config(Settings()), org.manifest.end_at
    with start_sandbox("hubspot", org, tier="unlimited") as running:

        def connector(calls: int | None) -> Connector:
            share = 1.0 if calls is None else calls / TIERS["unlimited"].per_day
            policy = HttpPolicy(budget=Budget(share))
            return sandbox_connector("hubspot", running.base_url, running.token, policy)

        connector(None).ensure_schema(schema_spec(Settings()))
        with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
            runs: list[RunReport] = []
            while len(runs) < 6 and (not runs or runs[-1].status == "stopped"):
                runs.append(run_sync(config, connector(70), store, now))
            after = run_sync(config, connector(None), store, now)
            with store.session() as session:
                companies = session.exec(select(func.count()).select_from(Account)).one()

    assert [run.status for run in runs] == ["stopped"] * (len(runs) - 1) + ["succeeded"]
    assert len(runs) >= 3
    assert runs[0].full_reason == "no full re-pull has completed yet"
    assert all("goes on with the full re-pull" in str(run.full_reason) for run in runs[1:])
    # streams re-read by an earlier run of the re-pull are read since their cursors
    first, later = runs[0].pulled["companies"]["records"], runs[1].pulled["companies"]["records"]
    assert first == len(org.accounts) and later < first
    assert companies == len(org.accounts) and runs[-1].written
    assert after.full_reason is None  # it completed; the next run is incremental


def test_a_runs_times_leave_out_the_stages_that_took_no_time() -> None:
    seconds = {"mirror": 1.234, "link": 0.04, "train": 0.0, "save": 0.0, "write": 0.51}
    assert shown_times(seconds) == ({"mirror": 1.2, "write": 0.5}, 3)
    trained = shown_times(seconds | {"train": 1.61, "save": 0.3})
    assert trained == ({"mirror": 1.2, "train": 1.6, "save": 0.3, "write": 0.5}, 1)


def test_a_run_log_says_its_times_whole_when_every_stage_or_none_is_left_out() -> None:
    assert _times({"mirror": 1.21, "link": 0.01}) == "mirror 1.2 s; 1 stage under 0.05 s each"
    assert _times({"mirror": 0.01, "link": 0.02}) == "all 2 stages under 0.05 s each"
    assert _times({"check": 0.01}) == "check under 0.05 s"  # a run refused before it began
    assert _times({}) == "not recorded"  # a run still running, or killed before its log


def test_the_mirror_s_time_is_the_last_run_that_began_not_one_refused(store: Store) -> None:
    _run(store, "began", T0, "first")
    with store.session() as session:  # refused later (the CRM unreachable): it pulled nothing
        store.record_run_start(session, "hubspot", T0 + timedelta(days=1), "refused", None)
        store.record_run_finish(session, "refused", T0 + timedelta(days=1), "failed", {REFUSED: 1})
    with store.session() as session:
        latest = last_run_that_began(session)
    assert latest is not None and latest.id == "began"
