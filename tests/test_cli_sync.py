"""`handoff sync`, `handoff logs` and `handoff train` as an admin runs them (lasting sandbox)."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors import hubspot_setup, salesforce_setup
from connectors.protocol import Entity
from connectors.schema import OwnedField, owned_for
from handoff.crm import open_crm
from handoff.runs import lock_key, run_config
from handoff.settings import load_settings
from sync import Store
from sync.lock import Holder, run_lock
from sync.run import RunReport, run_sync
from tests.cli_fixtures import run_cli

pytestmark = pytest.mark.usefixtures("isolated_cli", "no_sandbox_left_behind")

# a cycle's times with nothing new: the mirror's (and another stage's, on a slow machine's day:
# the score stage's 0.1 s), and the count of the stages under 0.05 s
TIMES = r"mirror \d+\.\d s(, [a-z]+ \d+\.\d s)*; \d stages under 0\.05 s each"
SETTINGS = '[sandbox]\ncrm = "{crm}"\naccounts = 60\nseed = 5\n'


def test_sync_writes_then_logs_list_the_run_and_show_it() -> None:
    Path("settings.toml").write_text(SETTINGS.format(crm="hubspot"))
    assert run_cli("setup")[0] == 0

    code, output = run_cli("sync")
    again_code, again = run_cli("sync", "--full")
    cycle_code, cycle = run_cli("sync")
    listed_code, listed = run_cli("logs")
    run_id = listed.splitlines()[3].split()[0]  # the newest run, under the title and header
    shown_code, shown = run_cli("logs", run_id)

    assert code == 0, output
    assert "Scored 60 accounts" in output and "Outcome: ok" in output
    # the tier the sandbox serves, with the day's calls a run's budget is a share of
    assert re.search(r"; tier professional, 625,000 calls a day\), scoring as of", output), output
    # not a terminal (a scheduler's log, a pipe): each line whole, not broken at 80 columns
    scored = re.search(r"^Scored 60 accounts .+ moved up, \d+ down$", output, re.MULTILINE)
    assert scored and len(scored[0]) > 80, output
    assert "Re-pulled every record: no full re-pull has completed yet" in output
    # the lasting sandbox kept the set-up and what the first sync wrote: re-pulling every
    # record changes nothing
    assert again_code == 0 and "Written 0 (none)" in again, again
    assert "Re-pulled every record: asked for with --full\n" in again
    # a cycle re-reads inside its overlap window what the runs before wrote (a write moves a
    # record's modification time): it says so, and writes nothing
    assert cycle_code == 0 and "Written 0 (none)" in cycle, cycle
    # the people figures are the state's; matching ran on everyone first, on no one since
    assert re.search(
        r"people: [\d,]+ linked to an account, .+ \(matching ran on [\d,]+ people", output
    )
    assert "orphans (matching ran on none this run)" in " ".join(cycle.split()), cycle
    assert re.search(r"Pulled ([\d,]+) records \(\1 read again, unchanged since the last", cycle)
    # the budget said as `handoff logs RUN` says it
    assert re.search(r"API calls: [\d,]+; [\d,]+ left in this run's budget\. Time: ", cycle)
    # a cycle with nothing new lists the stages that took time, not "train 0.0 s" and the like,
    # nor does the run log
    times = " ".join(cycle.split()).split("Time: ")[1]
    assert re.match(TIMES, times), times
    assert not re.search(r"\b0\.0 s", times) and "train" not in times, times
    assert listed_code == 0 and "Sync runs (hubspot), newest first" in listed
    assert shown_code == 0 and "Scored:" in shown and "No failed or skipped records" in shown
    logged = re.search(r"Time: +(.+)", shown)
    assert logged and re.match(TIMES, logged[1]), shown
    counted = [re.search(r"(\d+) stages under", said) for said in (times, logged[1])]
    assert counted[0] and counted[1] and counted[0][1] == counted[1][1]  # the log's stage too


def test_a_dry_run_says_what_it_would_write_and_train_keeps_the_rules_model() -> None:
    Path("settings.toml").write_text(SETTINGS.format(crm="salesforce"))
    assert run_cli("setup")[0] == 0
    code, output = run_cli("sync", "--dry-run")
    trained_code, trained = run_cli("train")
    missing_code, missing = run_cli("logs", "nope")
    synced_code, _ = run_cli("sync")
    again_code, again = run_cli("sync", "--dry-run")

    assert code == 0, output
    assert "Dry run:" in output and "records would be written (none was)" in output
    assert "per field: score" in output
    assert "Sample of planned writes" in output
    # after a sync, nothing would be written: no empty sample drawn
    assert synced_code == again_code == 0, again
    assert "Dry run: no record would be written (and none was)" in again
    assert "Sample of planned writes" not in again and "per field" not in again
    # 60 accounts are far too few to learn from: the rules model keeps scoring, and it says why
    assert trained_code == 0 and "kept" in trained, trained
    assert "Training as of " in trained and "(the last sync's time)" in trained  # the sandbox's
    assert missing_code == 1 and "no sync run 'nope'" in missing


def test_train_names_the_setting_that_keeps_the_rules_model_as_written() -> None:
    settings = SETTINGS.format(crm="salesforce") + '[scoring]\nmodel = "rules"\n'
    Path("settings.toml").write_text(settings)
    code, output = run_cli("train")
    # rich's markup took "[scoring]" for a style and dropped it
    assert code == 0 and "[scoring] model = rules" in output, output


@pytest.mark.parametrize("crm_kind", ["salesforce", "hubspot"])
def test_a_second_run_while_one_is_running_exits_locked_naming_it(crm_kind: str) -> None:
    Path("settings.toml").write_text(SETTINGS.format(crm=crm_kind))
    assert run_cli("setup")[0] == 0
    settings = load_settings()
    running, go = threading.Event(), threading.Event()
    reports: list[RunReport] = []

    def first_run() -> None:
        """A sync run as `handoff sync` makes it, paused in its first stage."""

        def pause(stage: str, done: int, total: int | None) -> None:
            running.set()
            go.wait(60)

        with (
            Store.open(settings.state.database_url) as store,
            open_crm(settings) as crm,
            run_lock(store, lock_key(settings, crm), Holder.this_process("first-run")) as lock,
        ):
            report = run_sync(
                run_config(settings), crm.connector, store, datetime.now(UTC),
                progress=pause, run_id="first-run", heartbeat=lock.heartbeat,
            )  # fmt: skip
            reports.append(report)

    thread = threading.Thread(target=first_run)
    thread.start()
    try:
        assert running.wait(60)
        locked_code, locked = run_cli("sync")
    finally:
        go.set()
        thread.join(120)
    after_code, after = run_cli("sync")

    assert locked_code == 4, locked
    assert "first-run" in locked and "since" in locked
    assert [report.outcome for report in reports] == ["ok"]
    assert after_code == 0, after  # the lock was released with the first run


def _before_orphan_reason(entity: Entity) -> tuple[OwnedField, ...]:
    """The fields set-up made before "Handoff Orphan Reason" existed."""
    return tuple(f for f in owned_for(entity) if f.key != "orphan_reason")


@pytest.mark.parametrize(
    ("crm", "field"),
    [
        ("salesforce", "Lead.Handoff_Orphan_Reason__c"),
        ("hubspot", "contacts.handoff_orphan_reason"),
    ],
)
def test_a_crm_set_up_before_a_field_existed_is_not_synced_until_setup_adds_it(
    crm: str, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("settings.toml").write_text(SETTINGS.format(crm=crm))
    with monkeypatch.context() as older_release:
        for module in (salesforce_setup, hubspot_setup):
            older_release.setattr(module, "owned_for", _before_orphan_reason)
        assert run_cli("setup")[0] == 0

    code, stopped = run_cli("sync")
    dry_code, dry = run_cli("sync", "--dry-run")
    _, logs = run_cli("logs")
    setup_code, setup = run_cli("setup")
    synced_code, synced = run_cli("sync")
    synced = " ".join(synced.split())

    assert code == dry_code == 1 and dry == stopped
    assert f"{field} (Handoff Orphan Reason): missing" in stopped
    assert "nothing was pulled or written" in stopped and "`handoff setup`" in stopped
    # stopped before the run (no cursor moved, nothing written), yet kept in the run log with
    # why, for whoever reads it rather than a scheduler's stderr: the run and the dry run
    # with the calls its check of the fields made (the describes)
    rows = re.findall(r"^([0-9a-f]{8}) .* (failed(?:, dry run)?) +0 +0 +0 +([0-9]+) ", logs, re.M)
    assert [outcome for _, outcome, _ in rows] == ["failed, dry run", "failed"], logs
    assert all(int(calls) > 0 for _, _, calls in rows), logs
    _, refused = run_cli("logs", rows[1][0])
    assert "SchemaNotSetUp" in refused and field in " ".join(refused.split()), refused
    assert re.search(r"^  Time: +check (under 0\.05|[0-9.]+) s$", refused, re.M), refused
    assert setup_code == 0 and "created 1, unchanged" in " ".join(setup.split())
    assert synced_code == 0 and "Outcome: ok" in synced
    assert "people without an account), 0 already up to date, 0 held back, 0 failed" in synced


def test_a_state_database_of_the_other_crm_stops_the_sync_saying_how_to_give_it_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Path("settings.toml").write_text(SETTINGS.format(crm="hubspot"))
    assert run_cli("setup")[0] == 0
    assert run_cli("sync")[0] == 0
    assert run_cli("sandbox", "stop")[0] == 0
    Path("settings.toml").write_text(SETTINGS.format(crm="salesforce"))
    assert run_cli("setup")[0] == 0

    code, stopped = run_cli("sync")
    _, logs = run_cli("logs")
    demo_code, demo = run_cli("demo")
    monkeypatch.setenv("HANDOFF_STATE__DATABASE_URL", "sqlite:///handoff-salesforce.db")
    own_code, own = run_cli("sync")
    stopped = " ".join(stopped.split())

    assert code == 1, stopped
    assert "holds the sync state of a hubspot org, and this run connects to salesforce" in stopped
    assert "nothing was pulled or written" in stopped
    assert "HANDOFF_STATE__DATABASE_URL=sqlite:///handoff-salesforce.db" in stopped
    assert "move sqlite:///handoff.db aside" in stopped
    assert logs.count("hubspot") == 1 and "salesforce" not in logs, logs  # no run logged
    assert own_code == 0 and "Outcome: ok" in own, own
    # the demo says so before its set-up would touch the CRM
    assert demo_code == 1 and "holds the sync state of a hubspot org" in demo, demo
    assert "Set-up" not in demo and "What Handoff owns" not in demo


def test_starting_a_state_database_afresh_is_said_for_its_kind() -> None:
    from handoff.runs import _afresh

    postgresql = Store("postgresql+psycopg://u:pw@db/handoff")

    assert _afresh(Store("sqlite:///handoff.db")) == "move sqlite:///handoff.db aside"
    assert _afresh(postgresql).startswith("empty postgresql+psycopg://u:***@db/handoff (or give")
