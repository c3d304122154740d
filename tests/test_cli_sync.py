"""`handoff sync`, `handoff logs` and `handoff train` as an admin runs them (embedded sandbox)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_fixtures import run_cli

pytestmark = pytest.mark.usefixtures("isolated_cli")

SETTINGS = '[sandbox]\ncrm = "{crm}"\naccounts = 60\nseed = 5\n'


def test_sync_writes_then_logs_list_the_run_and_show_it() -> None:
    Path("settings.toml").write_text(SETTINGS.format(crm="hubspot"))
    assert run_cli("setup")[0] == 0

    code, output = run_cli("sync")
    listed_code, listed = run_cli("logs")
    run_id = listed.splitlines()[4].split("│")[1].strip()
    shown_code, shown = run_cli("logs", run_id)

    # the embedded sandbox starts afresh for each command, so set-up there is not kept yet
    assert code in (0, 2), output
    assert "Scored 60 accounts" in output and "Outcome:" in output
    assert listed_code == 0 and "Sync runs, newest first" in listed
    assert shown_code == 0 and "scored" in shown and "Failed and skipped records" in shown


def test_a_dry_run_says_what_it_would_write_and_train_keeps_the_rules_model() -> None:
    Path("settings.toml").write_text(SETTINGS.format(crm="salesforce"))
    code, output = run_cli("sync", "--dry-run")
    trained_code, trained = run_cli("train")
    missing_code, missing = run_cli("logs", "nope")

    assert code == 0, output
    assert "Dry run:" in output and "nothing was" in output and "per field: score" in output
    # 60 accounts are far too few to learn from: the rules model keeps scoring, and it says why
    assert trained_code == 0 and "kept" in trained, trained
    assert missing_code == 1 and "no sync run 'nope'" in missing
