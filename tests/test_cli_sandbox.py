"""`handoff sandbox generate`, `handoff demo` and `handoff state init` as an admin runs them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from handoff.shell import typed_command
from sandbox.discovery import world_record
from sandbox.org import load_org
from sandbox.world import world_from
from sync import Store
from sync.state import StoreOpenError
from tests.cli_fixtures import handoff, run_cli

pytestmark = pytest.mark.usefixtures("isolated_cli")


def test_help_lists_every_command_with_a_description() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "handoff", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "80"},
    )
    for command, words in [
        ("demo", "sandbox CRM"),
        ("setup", "Handoff's fields"),
        ("settings", "Check and show"),
        ("sandbox", "synthetic orgs"),
        ("state", "sync state"),
    ]:
        line = next(line for line in done.stdout.splitlines() if line.startswith(f"  {command} "))
        assert words in line
    # each command's line is whole in an 80-column terminal (click cuts a long one with "...")
    assert not [ln for ln in done.stdout.splitlines() if ln.startswith("  ") and ln.endswith("...")]


# what the command line's start (`handoff --help`, `handoff settings check`) must not load: the
# database layer, the CRM clients and our modules over them (1.3 s of every command's start when
# the CLI imported them)
_LOADED_BY_THE_COMMANDS_THAT_USE_THEM = (
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "hubspot",
    "simple_salesforce",
    "sync.store",
    "sync.state",
    "connectors.hubspot",
    "connectors.salesforce",
)


def test_the_cli_starts_without_what_only_some_commands_run_on() -> None:
    shown = (
        "import sys, handoff.cli; "
        f"print(sorted(set(sys.modules) & set({_LOADED_BY_THE_COMMANDS_THAT_USE_THEM!r})))"
    )
    done = subprocess.run([sys.executable, "-c", shown], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    # and each command still finds what it runs on (`handoff logs` on an empty state database)
    assert run_cli("state", "init")[0] == 0
    code, output = run_cli("logs")
    assert code == 0, output
    assert "No sync run yet" in output


def test_a_command_that_reads_state_makes_no_database_where_there_is_none() -> None:
    # a scheduler's command run from another directory than the syncs: it says where it looked
    for command in (["logs"], ["score"], ["explain", "acme.example"], ["train"]):
        code, output = run_cli(*command)
        assert code == 1 and "no state database at " in output, (command, output)
        assert f"{Path.cwd() / 'handoff.db'}: no sync has made one there" in " ".join(
            output.split()
        )
    assert not Path("handoff.db").exists()
    # a path as the store reads it: "%23" is a '#' in the file's name
    Store.open("sqlite:///state%23prod.db").dispose()  # made by a sync
    with Store.open("sqlite:///state%23prod.db", create=False):
        pass
    with pytest.raises(StoreOpenError, match=re.escape(f"{Path.cwd() / 'other#.db'}: no sync")):
        Store.open("sqlite:///other%23.db", create=False)
    with Store.open("sqlite://", create=False):  # in memory: nothing to look for
        pass
    assert not Path("other#.db").exists()


def test_generate_writes_an_org_that_loads_back() -> None:
    code, output = run_cli(
        "sandbox", "generate", "--out", "org", "--accounts", "300", "--seed", "3"
    )
    assert code == 0, output
    assert "Org written to org" in output and "personal email share" in output
    org = load_org(Path("org"))
    assert org.accounts.height == 300 and org.manifest.seed == 3


def test_generate_refuses_to_overwrite_unless_forced() -> None:
    assert run_cli("sandbox", "generate", "--out", "org", "--accounts", "50")[0] == 0
    code, output = run_cli("sandbox", "generate", "--out", "org", "--accounts", "60")
    assert code == 1 and "already exists and is not empty" in output
    assert load_org(Path("org")).accounts.height == 50
    assert run_cli("sandbox", "generate", "--out", "org", "--accounts", "60", "--force")[0] == 0
    assert load_org(Path("org")).accounts.height == 60


def test_generate_rejects_a_nonsense_size() -> None:
    code, output = run_cli("sandbox", "generate", "--out", "org", "--accounts", "0")
    assert code == 2 and "--accounts" in output


@pytest.mark.usefixtures("no_sandbox_left_behind")
@pytest.mark.parametrize(
    ("crm", "account", "accounts"),
    [("salesforce", "Account", "Accounts"), ("hubspot", "Company", "Companies")],
)
def test_demo_writes_scores_moves_a_burst_up_in_one_cycle_and_a_second_demo_picks_others(
    crm: str, account: str, accounts: str
) -> None:
    Path("settings.toml").write_text(f'[sandbox]\ncrm = "{crm}"\naccounts = 120\nseed = 5\n')

    first, second = handoff("demo"), handoff("demo")
    said_first, said_second = (" ".join(done.stdout.split()) for done in (first, second))

    assert first.returncode == 0, first.stdout + first.stderr
    assert "Sandbox org written to orgs/sandbox-realistic-120-5" in said_first
    assert "started now, in the background" in first.stdout
    assert "Set-up: created 24" in first.stdout
    assert "Set-up again: nothing to change, all 24 in place" in first.stdout
    assert "Scored 120 accounts" in said_first
    # the user typed no --full: the run log says why the demo's sync re-pulls everything
    assert "Re-pulled every record: no full re-pull has completed yet" in said_first
    assert "(--full)" not in said_first
    read_back = [line.strip() for line in first.stdout.splitlines() if ", read back" in line]
    assert len(read_back) == 3 and all(line.startswith(f"{account} ") for line in read_back)
    # the burst: three Nurture accounts up to AE within one cycle, as the CRM shows them
    assert "8 pricing-page visits on each of 3 Nurture accounts" in said_first
    assert f"{accounts} read back from the CRM, before -> after the cycle" in said_first
    assert said_first.count("Nurture -> AE") == 3 and "3 moved up" in said_first
    # scores as a CRM page shows them (the API sends a whole number as 81.0), times in UTC
    assert re.search(r" \d+ -> \d+ ", said_first) and ".0 -> " not in said_first
    assert re.search(r"scored_at │ \d\d [A-Z][a-z]{2} 2026 00:00 UTC", said_first)
    assert "One incremental cycle: 24 new visits pulled" in said_first
    # besides the visits, the cycle reads back what the full sync wrote (stored: our fields
    # changed), as the run log counts it, not as records skipped
    written = re.search(r"Written ([\d,]+)", said_first)
    read_back = re.search(r"; ([\d,]+) other records changed since the last pull", said_first)
    assert written and read_back and read_back[1] == written[1], said_first
    assert "State database ready: sqlite:///handoff.db" in said_first
    assert "`handoff sandbox stop` ends it" in said_first
    assert "handoff logs" in said_first and "handoff score" in said_first
    assert Path("handoff.db").is_file()
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Sandbox org orgs/sandbox-realistic-120-5 (generated earlier)" in said_second
    assert "already running" in second.stdout
    assert "Set-up: nothing to change, all 24 in place" in second.stdout
    assert "Set-up again" not in second.stdout  # said once: the fields were in place already
    # the table of what set-up did, only when it did something
    assert "What Handoff owns in the CRM" in first.stdout
    assert "What Handoff owns in the CRM" not in second.stdout
    # the sandbox kept what the first demo wrote: its full sync finds nothing to write, and
    # the first burst's accounts stay up, so the second moves three others
    assert "Written 0 (none)" in said_second
    assert "Re-pulled every record: asked for by the demo" in said_second
    assert said_second.count("Nurture -> AE") == 3
    assert _explained(said_first) != _explained(said_second)
    # `handoff sync` scores at the sandbox world's present, as the demo did: nothing moves
    # (in this process: the sandbox is the lasting one either way, and a start costs seconds)
    code, synced = run_cli("sync")
    said_sync = " ".join(synced.split())
    assert code == 0 and "Written 0 (none)" in said_sync, said_sync
    assert "scoring as of 01 Nov 2026" in said_sync


def _explained(said: str) -> str:
    """The account the demo suggests `handoff explain` for (one its burst moved)."""
    return said.split("handoff explain ")[1].split()[0]


def test_demo_stops_on_bad_settings_without_side_effects() -> None:
    Path("settings.toml").write_text("[sandbox]\naccounts = -1\n")
    code, output = run_cli("demo")
    assert code == 1
    assert "settings.toml: [sandbox] accounts must be a positive integer, got -1" in output
    assert not Path("orgs").exists() and not Path("handoff.db").exists()


def test_state_init_reports_a_database_it_cannot_open() -> None:
    Path("settings.toml").write_text('[state]\ndatabase_url = "mysql://db.example/handoff"\n')
    code, output = run_cli("state", "init")
    assert code == 1 and "mysql" in output


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_serve_prints_one_ready_line_and_answers_until_stopped(crm: str) -> None:
    command = [
        sys.executable,
        "-m",
        "handoff",
        "sandbox",
        "serve",
        "--crm",
        crm,
        "--accounts",
        "40",
        "--token",
        "t0k3n",
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as server:
        try:
            ready = _ready_line(server)
            base_url = ready.split(" ready at ")[1].split()[0]
            assert ready == f"sandbox {crm} ready at {base_url} (pid {server.pid}, state not kept)"
            admin = f"{base_url}/__sandbox/requests"
            assert requests.get(admin, timeout=5).status_code == 401
            token = {"Authorization": "Bearer t0k3n"}
            assert requests.get(admin, headers=token, timeout=5).json()["total"] == 0
            about = requests.get(f"{base_url}/__sandbox/about", headers=token, timeout=5).json()
            assert about == {
                "crm": crm,
                "pid": server.pid,
                "org": None,
                "tier": None,
                "world": world_record(world_from()),
                "convention": "a",
                "kept_in": None,
                "saved_at": None,
            }
        finally:
            server.terminate()
            _, err = server.communicate(timeout=10)
    assert "t0k3n" not in ready + err


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_cleanly_on_ctrl_c(stop: signal.Signals) -> None:
    command = [sys.executable, "-m", "handoff", "sandbox", "serve", "--crm", "salesforce"]
    with subprocess.Popen(
        [*command, "--accounts", "40"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as server:
        try:
            base_url = _ready_line(server).split(" ready at ")[1].split()[0]
            server.send_signal(stop)
            out, err = server.communicate(timeout=10)
        finally:
            server.kill()
    assert server.returncode == 0 and out.strip() == "sandbox stopped"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    with pytest.raises(requests.ConnectionError):
        requests.get(base_url, timeout=2)


def _ready_line(server: subprocess.Popen[str]) -> str:
    """The first line on stdout: progress goes to stderr, so it is the ready line."""
    assert server.stdout is not None
    return server.stdout.readline().strip()


def test_serve_refuses_a_bad_faults_file(tmp_path: Path) -> None:
    faults = tmp_path / "faults.toml"
    faults.write_text('[[fault]]\nkind = "boom"\n')
    code, output = run_cli("sandbox", "serve", "--crm", "hubspot", "--faults", str(faults))
    assert code == 1 and "kind must be one of" in output


def test_the_commands_suggested_are_typed_as_the_user_runs_handoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = tmp_path / "venv" / "bin" / "handoff"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(program)])
    monkeypatch.setenv("PATH", "/nonexistent")
    # not on the PATH (a virtual environment not activated): its path, from here
    assert typed_command() == str(Path("venv", "bin", "handoff"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")  # outside it: its whole path
    assert typed_command() == str(program.resolve())
    # on the PATH: its name
    monkeypatch.setenv("PATH", str(program.parent))
    assert typed_command() == "handoff"
    # another `handoff` first on the PATH: this one's path
    other = tmp_path / "elsewhere" / "handoff"
    other.parent.mkdir()
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    monkeypatch.setenv("PATH", f"{other.parent}{os.pathsep}{program.parent}")
    assert typed_command() == str(program.resolve())
    # run as a module, or from a test: the name
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "__main__.py")])
    assert typed_command() == "handoff"


def test_the_commands_suggested_after_a_demo_name_the_variables_it_ran_with_but_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from handoff.demo import _settings_from_environment, _try_next, _withheld

    monkeypatch.setenv("HANDOFF_SANDBOX__CRM", "hubspot")
    monkeypatch.setenv("HANDOFF_HUBSPOT__TOKEN", "pat-na1-very-secret")
    monkeypatch.setenv("HANDOFF_STATE__DATABASE_URL", "postgresql://u:hunter2@db/handoff")
    with_password = _settings_from_environment()
    said = _try_next(with_password, _withheld())
    assert said == (
        "Try next, after `export HANDOFF_SANDBOX__CRM=hubspot` and exporting "
        "HANDOFF_STATE__DATABASE_URL as the demo had it (its password not shown) (the settings "
        "the demo ran with; without them these commands read the settings file's, or the "
        "defaults):"
    )
    assert "hunter2" not in said and _try_next([], []) == "Try next:"
    monkeypatch.setenv("HANDOFF_STATE__DATABASE_URL", "postgresql://u@db/handoff?password=hunter2")
    assert _settings_from_environment() == with_password
    monkeypatch.setenv("HANDOFF_STATE__DATABASE_URL", "sqlite:///handoff-hubspot.db")
    plain = _settings_from_environment()
    monkeypatch.setenv("HANDOFF_STATE__DATABASE_URL", "not a url")

    assert with_password == ["HANDOFF_SANDBOX__CRM=hubspot"]
    assert plain == [
        "HANDOFF_SANDBOX__CRM=hubspot",
        "HANDOFF_STATE__DATABASE_URL=sqlite:///handoff-hubspot.db",
    ]
    assert _settings_from_environment() == [  # quoted, as a shell takes it back
        "HANDOFF_SANDBOX__CRM=hubspot",
        "HANDOFF_STATE__DATABASE_URL='not a url'",
    ]
