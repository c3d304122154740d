"""The lasting sandbox as an admin meets it: `handoff setup` starts it once and reuses it, what
is written outlives `handoff sandbox stop`, and its token is never shown. Every command runs
in a subprocess; every test ends with no sandbox process left behind."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connectors.protocol import Update, records
from handoff.crm import open_crm, serve_command
from handoff.settings import load_settings
from sandbox.discovery import (
    DISCOVERY_FILE,
    LOG_FILE,
    process_alive,
    read_announcement,
)
from sandbox.persistence import SAVE_SECONDS
from tests.cli_fixtures import handoff

pytestmark = pytest.mark.usefixtures("isolated_cli", "no_sandbox_left_behind")

ACCOUNTS_STREAM = {"salesforce": "Account", "hubspot": "companies"}


def _said(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout + done.stderr


def _settings(crm: str, accounts: int = 40) -> None:
    Path("settings.toml").write_text(f'[sandbox]\ncrm = "{crm}"\naccounts = {accounts}\n')


def _running_pid() -> int:
    found = read_announcement(DISCOVERY_FILE)
    assert found is not None
    return found.pid


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_setup_starts_a_lasting_sandbox_once_and_a_second_setup_changes_nothing(crm: str) -> None:
    _settings(crm)

    first = handoff("setup")
    pid = _running_pid()
    second = handoff("setup")

    assert first.returncode == 0, _said(first)
    assert f"Setting up the sandbox ({crm} API at http://127.0.0.1:" in first.stdout
    assert "started now, in the background" in first.stdout
    assert "Set-up: created 24" in first.stdout
    assert second.returncode == 0, _said(second)
    assert f"pid {pid}, already running" in second.stdout
    assert "Set-up: nothing to change, all 24 in place" in second.stdout
    assert _running_pid() == pid
    status = handoff("sandbox", "status")
    assert status.returncode == 0 and crm in status.stdout and str(pid) in status.stdout
    # its start said as the CLI says times, not as ISO text
    assert re.search(r"since +│ \d\d [A-Z][a-z]{2} 20\d\d \d\d:\d\d UTC", status.stdout), (
        status.stdout
    )


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_values_written_through_the_connector_survive_a_stop_and_a_new_serve(crm: str) -> None:
    _settings(crm)
    assert handoff("setup").returncode == 0
    settings = load_settings(None)
    with open_crm(settings) as opened:
        connector = opened.connector
        ids = [r.id for r in records(connector.pull(ACCOUNTS_STREAM[crm]))][:3]
        updates = [Update(record_id, {"score": 10.0 + n}) for n, record_id in enumerate(ids)]
        assert all(result.ok for result in connector.push(ACCOUNTS_STREAM[crm], updates))

    stopped = handoff("sandbox", "stop")
    assert stopped.returncode == 0 and f"kept in {Path.cwd()}/orgs/sandbox-realistic-40-7/crm/" in (
        stopped.stdout.replace("\n", "")
    )
    assert not DISCOVERY_FILE.exists()
    again = handoff("setup")

    assert "started now" in again.stdout and "nothing to change, all 24 in place" in again.stdout
    with open_crm(settings) as opened:
        assert opened.lasting is not None and not opened.lasting.started_now
    assert _scores(crm, ids) == [10.0, 11.0, 12.0]


def _scores(crm: str, ids: list[str]) -> list[float]:
    """The scores the running sandbox holds for ``ids``, read with the CRM's own client."""
    found = read_announcement(DISCOVERY_FILE)
    assert found is not None
    if crm == "hubspot":
        from hubspot import HubSpot

        client = HubSpot(access_token=found.token, host=found.url)
        companies = client.crm.companies.basic_api
        return [
            float(companies.get_by_id(i, properties=["handoff_score"]).properties["handoff_score"])
            for i in ids
        ]
    from simple_salesforce import Salesforce

    from sandbox.salesforce import SalesforceOptions, client_session

    options = SalesforceOptions()
    sf = Salesforce(
        session=client_session(found.url),
        consumer_key=options.consumer_key,
        consumer_secret=options.consumer_secret,
        domain=options.my_domain,
    )
    return [float(sf.Account.get(i)["Handoff_Score__c"]) for i in ids]


def test_a_sandbox_killed_outright_keeps_what_it_saved_and_its_stale_record_is_replaced() -> None:
    _settings("salesforce")
    assert handoff("setup").returncode == 0
    killed = _running_pid()
    saved = Path("orgs/sandbox-realistic-40-7/crm/salesforce/state.json")
    deadline = time.monotonic() + SAVE_SECONDS * 5
    while not saved.exists() and time.monotonic() < deadline:  # saved within SAVE_SECONDS
        time.sleep(0.05)
    os.kill(killed, signal.SIGKILL)
    while process_alive(killed):
        time.sleep(0.05)

    again = handoff("setup")

    assert again.returncode == 0, _said(again)
    assert "started now" in again.stdout and "nothing to change, all 24 in place" in again.stdout
    assert _running_pid() != killed


def test_a_stale_discovery_file_is_cleaned_up_by_stop_status_and_setup() -> None:
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = int(ended.stdout)
    stale = {
        "pid": dead,
        "url": "http://127.0.0.1:9",
        "crm": "salesforce",
        "org": None,
        "started": "2026-01-01T00:00:00+00:00",
        "token": "old",
    }
    DISCOVERY_FILE.parent.mkdir()
    for command, said in [
        (("sandbox", "stop"), f"left by pid {dead}, which has ended"),
        (("sandbox", "status"), "No sandbox runs from this directory."),
    ]:
        DISCOVERY_FILE.write_text(json.dumps(stale))
        done = handoff(*command)
        assert said in done.stdout and not DISCOVERY_FILE.exists()
    DISCOVERY_FILE.write_text(json.dumps(stale))
    _settings("hubspot")
    assert "started now" in handoff("setup").stdout
    assert _running_pid() != dead


def test_stop_and_status_when_no_sandbox_runs() -> None:
    stopped, status = handoff("sandbox", "stop"), handoff("sandbox", "status")
    assert stopped.returncode == 0
    assert (
        stopped.stdout.strip() == "No sandbox runs from this directory (no .handoff/sandbox.json)."
    )
    assert (
        status.returncode == 1 and status.stdout.strip() == "No sandbox runs from this directory."
    )


def test_a_running_sandbox_of_another_crm_is_named_with_how_to_stop_it() -> None:
    _settings("salesforce")
    assert handoff("setup").returncode == 0
    _settings("hubspot")

    refused = handoff("setup")

    assert refused.returncode == 1
    message = " ".join(_said(refused).split())
    org = f"{Path.cwd()}/orgs/sandbox-realistic-40-7"
    assert f"a sandbox already runs from this directory: salesforce on {org}" in message
    assert f"the settings ask for hubspot on {org}" in message
    assert "Stop it with `handoff sandbox stop`" in message


def test_the_token_is_never_shown_and_only_its_owner_may_read_it() -> None:
    _settings("hubspot")
    outputs = [handoff("setup"), handoff("sandbox", "status"), handoff("settings", "show")]
    token = json.loads(DISCOVERY_FILE.read_text())["token"]
    readable_by_owner_only = stat.S_IMODE(DISCOVERY_FILE.stat().st_mode) == 0o600
    outputs.append(handoff("sandbox", "stop"))

    assert readable_by_owner_only
    assert all(done.returncode == 0 for done in outputs), [_said(d) for d in outputs]
    assert len(token) >= 24
    assert all(token not in _said(done) for done in outputs)
    assert token not in LOG_FILE.read_text()


def test_a_sandbox_at_a_configured_url_is_used_with_the_token_from_the_environment(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    token = "sandbox-token-from-the-environment-0123"
    served = handoff(
        "sandbox",
        "serve",
        "--detach",
        "--crm",
        "hubspot",
        "--org",
        "org",
        "--accounts",
        "40",
        cwd=elsewhere,
        HANDOFF_SANDBOX_TOKEN=token,
    )
    assert served.returncode == 0, _said(served)
    url = served.stdout.split(" ready at ")[1].split()[0]
    Path("settings.toml").write_text(f'[sandbox]\ncrm = "hubspot"\nurl = "{url}"\n')

    used = handoff("setup", HANDOFF_SANDBOX_TOKEN=token)
    refused = handoff("setup", HANDOFF_SANDBOX_TOKEN="a-wrong-token")
    unset = handoff("setup")

    assert used.returncode == 0 and "already running" in used.stdout
    assert "Set-up: created 24" in used.stdout and not DISCOVERY_FILE.exists()
    assert refused.returncode == 1 and f"the sandbox at {url} refused the token" in refused.stderr
    assert "a-wrong-token" not in _said(refused) and token not in _said(used)
    assert unset.returncode == 1
    assert "[sandbox] url needs the environment variable HANDOFF_SANDBOX_TOKEN" in unset.stderr


@pytest.mark.parametrize(
    ("sandbox", "hubspot", "rate_limits", "org", "options"),
    [
        ("", "", True, "orgs/sandbox-realistic-40-7", ["--preset", "realistic"]),
        ('preset = "easy"\n', "", True, "orgs/sandbox-easy-40-7", ["--preset", "easy"]),
        (
            "world = { hidden_fit_sd = 0.9 }\n",
            "",
            True,
            "orgs/sandbox-realistic-",
            ["--preset", "realistic", "--world", "hidden_fit_sd=0.9"],
        ),
        ('crm = "hubspot"\n', 'tier = "starter"\n', True, "orgs/", ["--tier", "starter"]),
        ('crm = "hubspot"\n', 'tier = "starter"\n', False, "orgs/", ["--tier", "unlimited"]),
        ('org = "orgs/mine"\n', "", True, "orgs/mine", ["--convention", "a"]),
    ],
)
def test_the_sandbox_the_settings_start_serves_their_world_in_a_directory_of_its_own(
    sandbox: str, hubspot: str, rate_limits: bool, org: str, options: list[str]
) -> None:
    Path("settings.toml").write_text(f"[sandbox]\naccounts = 40\n{sandbox}[hubspot]\n{hubspot}")
    settings = load_settings(None)

    command = serve_command(settings, rate_limits)

    given = command[command.index("--org") + 1]
    assert given.startswith(org) and given == str(settings.sandbox.org_dir)
    assert any(command[n : n + len(options)] == options for n in range(len(command)))


def test_two_worlds_never_share_an_org_directory() -> None:
    worlds = [
        "",
        'preset = "easy"\n',
        "world = { hidden_fit_sd = 0.9 }\n",
        "world = { hidden_fit_sd = 0.8 }\n",
        "world = { hidden_fit_sd = 0.9, success_fit = 1.0 }\n",
    ]
    directories = set()
    for world in worlds:
        Path("settings.toml").write_text(f"[sandbox]\n{world}")
        directories.add(load_settings(None).sandbox.org_dir)
    assert len(directories) == len(worlds)


@pytest.mark.parametrize(
    ("first", "then", "running", "asked"),
    [
        (
            '[sandbox]\naccounts = 40\norg = "orgs/shared"\n',
            '[sandbox]\naccounts = 40\norg = "orgs/shared"\nworld = { hidden_fit_sd = 0.9 }\n',
            "salesforce on {cwd}/orgs/shared, the realistic world (pid",
            "salesforce on {cwd}/orgs/shared, the realistic world with hidden_fit_sd=0.9.",
        ),
        (
            '[sandbox]\ncrm = "hubspot"\naccounts = 40\n',
            '[sandbox]\ncrm = "hubspot"\naccounts = 40\n[hubspot]\ntier = "enterprise"\n',
            "hubspot on {cwd}/orgs/sandbox-realistic-40-7, tier professional (pid",
            "hubspot on {cwd}/orgs/sandbox-realistic-40-7, tier enterprise.",
        ),
    ],
    ids=["world", "tier"],
)
def test_a_running_sandbox_of_another_world_or_tier_is_named_with_how_to_stop_it(
    first: str, then: str, running: str, asked: str
) -> None:
    Path("settings.toml").write_text(first)
    assert handoff("setup").returncode == 0
    Path("settings.toml").write_text(then)

    refused = handoff("setup")

    message = " ".join(_said(refused).split())
    cwd = str(Path.cwd())
    assert refused.returncode == 1
    assert f"a sandbox already runs from this directory: {running.format(cwd=cwd)}" in message
    assert f"but the settings ask for {asked.format(cwd=cwd)}" in message
    assert "Stop it with `handoff sandbox stop`" in message


def test_serving_an_org_of_another_world_than_asked_is_refused_before_serving() -> None:
    made = handoff("sandbox", "generate", "--out", "org", "--accounts", "30", "--preset", "easy")
    assert made.returncode == 0, _said(made)

    serve = ("sandbox", "serve", "--crm", "salesforce", "--org", "org")
    refused = handoff(*serve, "--preset", "realistic")

    assert refused.returncode == 1
    message = " ".join(refused.stderr.split())
    assert "org holds an org generated in the easy world, not in the realistic world" in message
    assert "leave out --preset/--world to serve it" in message
    assert not DISCOVERY_FILE.exists()


def test_a_sandbox_started_in_the_background_holds_none_of_handoff_s_secrets() -> None:
    # a process's environment is readable in /proc as long as it runs: the sandbox gets its
    # own token there, and none of the settings' variables (a password, a CRM's secret)
    _settings("hubspot")
    secret = "s3cr3t-in-the-environment"
    started = handoff("setup", HANDOFF_HUBSPOT_TOKEN=secret, HANDOFF_SYNC__MIN_SCORE_CHANGE="3")
    by_setup = _environment(_running_pid())
    stopped = handoff("sandbox", "stop")
    served = handoff("sandbox", "serve", "--crm", "salesforce", "--accounts", "40", "--detach",
                     HANDOFF_SALESFORCE_CLIENT_SECRET=secret)  # fmt: skip
    by_serve = _environment(_running_pid())

    assert started.returncode == 0 and stopped.returncode == 0, _said(started) + _said(stopped)
    assert served.returncode == 0, _said(served)
    for environment in (by_setup, by_serve):
        assert secret not in environment and "HANDOFF_SYNC__" not in environment
    assert "HANDOFF_SANDBOX_TOKEN=" in by_setup  # its own token, which the setup's call used


def _environment(pid: int) -> str:
    return Path(f"/proc/{pid}/environ").read_bytes().replace(b"\0", b"\n").decode()
