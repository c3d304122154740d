"""`handoff settings check|show`: exit codes, problems on stderr, secrets never printed."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from handoff.cli import app
from handoff.settings import SECRET_VARIABLES, load_settings

SENTINEL = "s3cr3t-SENTINEL"
BAD = '[sla]\nae_minutes = "fast"\n[crm]\nkind = "pipedrive"\n'
BAD_PROBLEMS = [
    'bad.toml: [crm] kind must be one of "sandbox", "salesforce", "hubspot", got "pipedrive"',
    'bad.toml: [sla] ae_minutes must be a positive integer, got "fast"',
]


pytestmark = pytest.mark.usefixtures("isolated_cli")


def _write(name: str, text: str) -> Path:
    path = Path(name)
    path.write_text(text, encoding="utf-8")
    return path


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def _encrypted_key() -> str:
    """A PEM key only a passphrase opens (simple-salesforce cannot sign with it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(SENTINEL.encode()),
    ).decode()


def test_check_prints_ok_for_good_settings() -> None:
    _write("good.toml", "[sla]\nae_minutes = 5\n")
    assert _run("settings", "check", "--settings", "good.toml") == (0, "ok: good.toml\n", "")
    _write("settings.toml", "[sla]\nae_minutes = 5\n")
    assert _run("settings", "check") == (0, "ok: settings.toml\n", "")


def test_check_says_it_checked_the_defaults_when_there_is_no_file() -> None:
    code, out, err = _run("settings", "check")
    assert (code, err) == (0, "")
    assert out == (
        "ok: no settings.toml here (nor --settings or HANDOFF_SETTINGS), so the defaults and "
        "any HANDOFF_ variables were checked\n"
    )


def test_check_prints_each_problem_and_fails() -> None:
    _write("bad.toml", BAD)
    code, out, err = _run("settings", "check", "--settings", "bad.toml")
    assert (code, out) == (1, "")
    assert err.splitlines() == BAD_PROBLEMS


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (f"{SENTINEL}-not-a-key", "needs a PEM private key"),
        ("/home/admin/salesforce.key", "needs a PEM private key"),
        (
            f"-----BEGIN PRIVATE KEY-----\n{SENTINEL}\n-----END PRIVATE KEY-----\n",
            "needs a PEM private key",
        ),
        (_encrypted_key(), "without a passphrase"),
    ],
)
def test_a_private_key_that_is_not_pem_names_its_variable_and_never_shows(
    key: str, says: str
) -> None:
    _write(
        "jwt.toml",
        '[crm]\nkind = "salesforce"\n'
        '[salesforce]\nauth = "jwt"\nusername = "a@b.example"\nclient_id = "c"\n',
    )
    env = {"HANDOFF_SALESFORCE_PRIVATE_KEY": key}

    code, out, err = _run("settings", "check", "--settings", "jwt.toml", env=env)

    assert (code, out) == (1, "")
    [problem] = err.splitlines()
    assert "[salesforce] " in problem and says in problem
    assert "HANDOFF_SALESFORCE_PRIVATE_KEY" in problem
    assert SENTINEL not in err and "Traceback" not in err
    assert not [line for line in key.splitlines()[1:-1] if line in err]  # the key's body


@pytest.mark.parametrize(
    ("args", "env"),
    [
        pytest.param(["--settings", "bad.toml", "settings", "check"], {}, id="before-command"),
        pytest.param(["settings", "check"], {"HANDOFF_SETTINGS": "bad.toml"}, id="environment"),
        pytest.param(
            ["--settings", "good.toml", "settings", "check", "--settings", "bad.toml"],
            {},
            id="command-option-wins",
        ),
    ],
)
def test_the_settings_file_can_be_named_anywhere(args: list[str], env: dict[str, str]) -> None:
    _write("good.toml", "")
    _write("bad.toml", BAD)
    code, _, err = _run(*args, env=env)
    assert code == 1
    assert err.splitlines() == BAD_PROBLEMS


def test_check_names_a_missing_file() -> None:
    assert _run("settings", "check", "--settings", "nope.toml") == (
        1,
        "",
        "nope.toml: file not found\n",
    )


def test_check_names_a_bad_environment_value() -> None:
    code, _, err = _run("settings", "check", env={"HANDOFF_SYNC__INTERVAL_MINUTES": "often"})
    assert code == 1
    assert err == (
        "environment HANDOFF_SYNC__INTERVAL_MINUTES: [sync] interval_minutes must be a positive "
        'integer, got "often"\n'
    )


def test_show_prints_loadable_settings_and_hides_secrets() -> None:
    env = {variable: SENTINEL for variable in SECRET_VARIABLES} | {"HANDOFF_CRM__KIND": "hubspot"}
    code, out, err = _run("settings", "show", env=env)
    assert (code, err) == (0, "")
    assert SENTINEL not in out
    assert "# token: set (environment variable HANDOFF_HUBSPOT_TOKEN)" in out
    assert tomllib.loads(out)["crm"] == {"kind": "hubspot"}
    shown = load_settings(_write("shown.toml", out), env)
    assert shown == load_settings(None, env)


def test_check_never_prints_a_secret() -> None:
    _write("leak.toml", f'[hubspot]\ntoken = "{SENTINEL}"\n')
    code, out, err = _run("settings", "check", "--settings", "leak.toml")
    assert code == 1
    assert SENTINEL not in out + err
    assert "HANDOFF_HUBSPOT_TOKEN" in err


def test_show_fails_on_bad_settings() -> None:
    _write("bad.toml", BAD)
    code, out, err = _run("settings", "show", "--settings", "bad.toml")
    assert (code, out) == (1, "")
    assert err.splitlines() == BAD_PROBLEMS


def test_every_command_has_help() -> None:
    code, out, _ = _run("settings", "--help")
    assert code == 0
    assert "Validate the settings" in out
    assert "Print the effective settings" in out


def test_python_dash_m_runs_the_cli() -> None:
    _write("bad.toml", BAD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
    done = subprocess.run(
        [sys.executable, "-m", "handoff", "settings", "check", "--settings", "bad.toml"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == BAD_PROBLEMS


def test_commands_that_only_read_state_need_no_crm_secret() -> None:
    # RevOps reads the run log where the sync's token is not set
    _write("settings.toml", '[crm]\nkind = "hubspot"\n')
    init, _, init_err = _run("state", "init")
    logs, logs_out, logs_err = _run("logs")
    syncing, _, sync_err = _run("sync")

    assert (init, logs) == (0, 0), init_err + logs_err
    assert "No sync run yet" in logs_out
    assert syncing == 1 and "needs the environment variable HANDOFF_HUBSPOT_TOKEN" in sync_err
