"""`handoff setup` as an admin runs it: the CRM chosen from settings, a report, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import responses

from connectors.hubspot import HubSpotConnector
from connectors.salesforce import SalesforceConnector
from handoff.crm import connector_for, open_crm, schema_spec
from handoff.settings import load_settings
from tests.cli_fixtures import run_cli

SESSION_ID = "00Dxx0000001gPL!AQ4AQFakeSessionSecret"


pytestmark = pytest.mark.usefixtures("isolated_cli")


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_a_second_setup_on_an_in_process_sandbox_changes_nothing(
    crm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANDOFF_SANDBOX__CRM", crm)
    monkeypatch.setenv("HANDOFF_SANDBOX__ACCOUNTS", "50")
    settings = load_settings(None)
    with open_crm(settings, in_process=True) as opened:
        assert opened.sandbox is not None and "embedded sandbox" in opened.description
        first = opened.connector.ensure_schema(schema_spec(settings))
        second = opened.connector.ensure_schema(schema_spec(settings))
    assert len(first.of("created")) == 24 and not second.changed


def test_setup_names_what_a_real_org_still_needs_and_prints_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HANDOFF_SALESFORCE_PASSWORD", "hunter2-password")
    Path("settings.toml").write_text(
        '[crm]\nkind = "salesforce"\n[salesforce]\nauth = "password"\n'
    )

    code, output = run_cli("setup")

    assert code == 1
    assert output.splitlines() == [
        'settings.toml: [salesforce] username is required when auth = "password"'
    ]
    assert "hunter2" not in output


def test_setup_on_hubspot_without_a_token_says_which_variable_to_set() -> None:
    Path("settings.toml").write_text('[crm]\nkind = "hubspot"\n')
    code, output = run_cli("setup")
    assert code == 1
    assert output.strip() == (
        "settings.toml: [hubspot] needs the environment variable HANDOFF_HUBSPOT_TOKEN, "
        "which is not set"
    )


@responses.activate
def test_setup_against_a_refused_session_fails_clearly_without_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HANDOFF_CRM__KIND", "salesforce")
    monkeypatch.setenv("HANDOFF_SALESFORCE__AUTH", "session")
    monkeypatch.setenv("HANDOFF_SALESFORCE_SESSION_ID", SESSION_ID)
    expired = [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}]
    responses.get(
        "https://example.my.salesforce.com/services/data/v59.0/sobjects/Account/describe",
        json=expired,
        status=401,
    )
    Path("settings.toml").write_text(
        '[salesforce]\ninstance_url = "https://example.my.salesforce.com"\n'
    )

    code, output = run_cli("setup")

    assert code == 1
    assert "Setting up Salesforce at https://example.my.salesforce.com (auth session)" in output
    assert "set-up stopped:" in output and "INVALID_SESSION_ID" in output
    assert SESSION_ID not in output and "FakeSessionSecret" not in output


@pytest.mark.parametrize(
    ("kind", "variables", "expected"),
    [
        ("hubspot", {"HANDOFF_HUBSPOT_TOKEN": "pat-na1-secret"}, HubSpotConnector),
        (
            "salesforce",
            {
                "HANDOFF_SALESFORCE__AUTH": "session",
                "HANDOFF_SALESFORCE__INSTANCE_URL": "https://acme.my.salesforce.com",
                "HANDOFF_SALESFORCE_SESSION_ID": SESSION_ID,
            },
            SalesforceConnector,
        ),
    ],
)
def test_a_real_crm_kind_builds_that_crms_connector_without_calling_it(
    monkeypatch: pytest.MonkeyPatch, kind: str, variables: dict[str, str], expected: type
) -> None:
    monkeypatch.setenv("HANDOFF_CRM__KIND", kind)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as network:
        connector = connector_for(load_settings(None))
        assert not network.calls
    assert isinstance(connector, expected)
    assert "secret" not in repr(connector).lower()


def test_the_sandbox_kind_is_not_a_real_connector() -> None:
    with pytest.raises(ValueError, match="open_crm"):
        connector_for(load_settings(None))
