"""`handoff explain` and `handoff score` on a Salesforce org, from the state database alone.

One module-wide state database is filled by two real sync runs against an in-process Salesforce
sandbox at the world's present: a full one, then, after a burst of pricing-page visits on one
Nurture account, an incremental one that moves it up.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlmodel import col, select

from handoff.crm import open_crm, schema_spec
from handoff.runs import run_config
from handoff.settings import Settings, load_settings
from sandbox.admin import NewActivity, add_activities
from sync import Store
from sync.explain import account_domains
from sync.run import run_sync
from sync.state import Account, CurrentScore
from tests.cli_fixtures import handoff

ACCOUNTS = 40


@dataclass
class Scored:
    """The state database the two runs left, and the account the burst moved."""

    settings_path: str
    settings: Settings
    now: datetime
    burst: str


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scored]:
    directory = tmp_path_factory.mktemp("explain")
    path = directory / "settings.toml"
    path.write_text(
        f'[sandbox]\ncrm = "salesforce"\naccounts = {ACCOUNTS}\nseed = 11\n'
        f'[state]\ndatabase_url = "sqlite:///{directory / "state.db"}"\n'
    )
    settings = load_settings(path)
    with (
        Store.open(settings.state.database_url) as store,
        open_crm(settings, in_process=True) as crm,
    ):
        crm.connector.ensure_schema(schema_spec(settings))
        now = crm.now()
        run_sync(run_config(settings), crm.connector, store, now)
        with store.session() as session:
            burst = session.exec(
                select(CurrentScore.account_id)
                .where(CurrentScore.tier == "nurture")
                .order_by(col(CurrentScore.score).desc(), col(CurrentScore.account_id))
            ).first()
        admin = crm.admin()
        assert burst is not None and admin is not None
        visits = [
            NewActivity("pricing_page", now - timedelta(seconds=seconds), account_id=burst)
            for seconds in range(8, 0, -1)
        ]
        add_activities(*admin, visits)
        run_sync(run_config(settings), crm.connector, store, now)
    yield Scored(str(path), settings, now, burst)


def test_score_shows_a_salesforce_account_domain_from_its_website(scored: Scored) -> None:
    shown = handoff("score", "--top", "5", "--settings", scored.settings_path)
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in shown.stdout.splitlines()
        if line.startswith("│ 001")
    ]
    with Store.open(scored.settings.state.database_url) as store, store.session() as session:
        websites = {row[0]: session.get(Account, row[0]) for row in rows}

    assert shown.returncode == 0, shown.stderr
    assert len(rows) == 5
    for account_id, _, domain, _, _ in rows:
        account = websites[account_id]
        assert account is not None and account.domain is None and account.website
        assert domain and domain in account.website.lower(), (domain, account.website)


@pytest.mark.parametrize(
    ("domain", "website", "shown"),
    [
        (None, "HTTPS://WWW.Acme.co.uk/de", "acme.co.uk"),
        (None, "shop.acme.com", "acme.com"),
        ("acme.io", "www.other.com", "acme.io"),  # the domain field first, as HubSpot's
        (None, None, None),
        (None, "not a website", None),
    ],
)
def test_an_account_domain_is_read_as_matching_reads_it(
    domain: str | None, website: str | None, shown: str | None
) -> None:
    account = Account(id="a", name="Acme", domain=domain, website=website)
    assert account_domains([account]) == {"a": shown}
