"""What a sync says beyond its report: `[logging] level` on stderr, and an interruption in the
run log."""

from __future__ import annotations

import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from connectors.errors import TransportError
from handoff.shell import log_at
from tests.cli_fixtures import handoff


def test_the_level_applies_to_handoff_s_modules_and_a_line_goes_to_the_stderr_of_the_moment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        log_at("WARNING")
        logging.getLogger("connectors.http").info("not said")
        logging.getLogger("sync.store").warning("said once")
        log_at("WARNING")  # again: still one handler
        logging.getLogger("scoring.fit").warning("said too")
        said = capsys.readouterr().err
    finally:
        log_at("INFO")
    assert "not said" not in said and said.count("said once") == 1 and "said too" in said
    assert " WARNING sync.store: said once" in said


@pytest.mark.usefixtures("isolated_cli", "no_sandbox_left_behind")
def test_a_sync_stopped_by_sigterm_logs_where_it_was_interrupted_and_the_next_one_goes_on() -> None:
    Path("settings.toml").write_text('[sandbox]\naccounts = 600\n[logging]\nlevel = "DEBUG"\n')
    assert handoff("setup").returncode == 0
    syncing = subprocess.Popen(
        [sys.executable, "-m", "handoff", "sync"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while _running_runs() == 0 and syncing.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    syncing.send_signal(signal.SIGTERM)  # as a service manager stops it
    said, logged = syncing.communicate(timeout=120)
    logs = handoff("logs")
    after = handoff("sync", HANDOFF_LOGGING__LEVEL="INFO")
    handoff("sandbox", "stop")

    assert syncing.returncode == 130, said + logged
    # `[logging] level = "DEBUG"`: each stage's start on stderr, timed; none at the default
    assert " DEBUG sync.run: stage mirror started" in logged, logged
    assert "DEBUG" not in after.stderr and "stage mirror" not in after.stdout + after.stderr
    assert "Interrupted: what was done is kept" in said
    assert re.search(r"interrupted, full", logs.stdout), logs.stdout  # not "running", not "stopped"
    with sqlite3.connect("handoff.db") as database:
        (error,) = database.execute("SELECT error FROM sync_run ORDER BY seq LIMIT 1").fetchone()
    assert re.fullmatch(r"interrupted during the \w+ stage: what was done is kept, .*", error)
    assert after.returncode == 0 and "goes on with the full re-pull" in after.stdout, after.stdout


def _running_runs() -> int:
    if not Path("handoff.db").exists():
        return 0
    try:
        with sqlite3.connect("handoff.db", timeout=1) as database:
            query = "SELECT count(*) FROM sync_run WHERE status = 'running'"
            return int(database.execute(query).fetchone()[0])
    except sqlite3.Error:  # not made yet
        return 0


def test_once_interrupted_a_sync_writes_its_log_through_a_signal_more() -> None:
    from handoff.cli import _terminate_as_interrupt

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with _terminate_as_interrupt():
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)  # the first: the run stops
            time.sleep(5)
        os.kill(os.getpid(), signal.SIGTERM)  # a service manager's stop again: said, ignored
        time.sleep(0.05)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # the third, a Ctrl-C: quit at once
            time.sleep(5)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_run_interrupted_while_it_writes_its_log_is_logged_as_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contextlib import ExitStack

    from sandbox.generator import generate_org
    from sync import Store
    from sync import run as run_module
    from sync.state import SyncRun
    from tests.test_sync_run import _open

    log, calls = run_module._log, []

    def interrupted_once(*args: object) -> None:
        calls.append(args)
        if len(calls) == 1:
            raise KeyboardInterrupt  # a Ctrl-C as the log's transaction runs: rolled back
        log(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(run_module, "_log", interrupted_once)
    with ExitStack() as stack, Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        crm = _open(stack, "salesforce", generate_org(120, 5))
        with pytest.raises(KeyboardInterrupt):
            crm.run(store)
        with store.session() as session:
            (logged,) = session.exec(select(SyncRun)).all()
    assert logged.status == "stopped" and len(calls) == 2
    assert logged.error == (
        "interrupted during the log stage: what was done is kept, and the next sync goes on "
        "from there"
    )


def test_a_sync_that_finds_the_crm_unreachable_before_it_begins_is_logged_as_failed(
    tmp_path: Path,
) -> None:
    from pydantic import SecretStr

    from connectors.config import HubSpotSettings
    from connectors.http import HttpPolicy, RetrySettings
    from connectors.hubspot import HubSpotConnector
    from handoff.runs import run_config
    from handoff.settings import Settings
    from sync import Store
    from sync.run import run_sync
    from sync.runlog import runs_newest_first, summarise

    policy = HttpPolicy(RetrySettings(attempts=2), sleep=lambda seconds: None)
    nothing_there = HubSpotConnector(
        HubSpotSettings(token=SecretStr("pat-x")), host="http://127.0.0.1:1", policy=policy
    )  # the Hub ID's call, the run's first, finds nothing listening
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        with pytest.raises(TransportError) as raised:
            run_sync(run_config(Settings()), nothing_there, store, datetime.now(UTC))
        with store.session() as session:
            (logged,) = runs_newest_first(session, 5)
            summary = summarise(logged)
    assert "nothing listens there" in str(raised.value)
    assert summary.outcome == "failed" and summary.error is not None
    assert summary.error.startswith("TransportError: ") and "nothing listens" in summary.error
