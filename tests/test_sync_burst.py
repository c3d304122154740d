"""A burst of pricing-page visits, added through the sandbox's admin route, moves an account up
within one incremental cycle: both CRMs, SQLite and PostgreSQL, real clients over loopback HTTP.

The visits land as the CRM holds them (Salesforce Tasks, HubSpot events), the run pulls them
since its cursors, rescores and writes the new tier back; what the CRM shows is read back through
the connector.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta

import pytest
import requests
from sqlmodel import select

from sandbox.admin import ACTIVITIES_PATH, AdminError, NewActivity, add_activities
from sandbox.org import Org
from sync import Store
from sync.state import RunEvent
from tests.test_sync_run import CRMS, Crm, _current, _open
from tests.test_sync_run import org as org  # the module's generated org (a fixture)

BURST = 8  # pricing-page visits in a few minutes: a strong, fresh intent burst
_TOUCHES = {"salesforce": "Task", "hubspot": "events"}


@pytest.fixture(params=CRMS)
def crm(request: pytest.FixtureRequest, org: Org) -> Iterator[Crm]:
    with ExitStack() as stack:
        yield _open(stack, request.param, org)


def _burst(crm: Crm, account: str) -> list[str]:
    """Pricing-page visits on ``account`` over the last minutes, through the admin route."""
    start = crm.time.now - timedelta(minutes=BURST)
    visits = [
        NewActivity("pricing_page", start + timedelta(minutes=i), account_id=account)
        for i in range(BURST)
    ]
    return add_activities(crm.sandbox.base_url, crm.sandbox.token, visits)


@pytest.mark.parametrize("crm", CRMS, indirect=True)
def test_a_burst_of_pricing_visits_moves_a_nurture_account_to_ae_within_one_cycle(
    crm: Crm, store_url: str
) -> None:
    with Store.open(store_url) as store:
        crm.run(store)
        before = _current(store)
        account = min(a for a, s in before.items() if s.tier == "nurture")
        crm.time.tick(60)
        added = _burst(crm, account)
        crm.time.tick(60)

        cycle = crm.run(store)

        after = _current(store)
        with store.session() as session:
            written = session.exec(
                select(RunEvent.record_id).where(
                    RunEvent.run_id == cycle.run_id, RunEvent.action == "written"
                )
            ).all()
    shown = crm.shown(crm.accounts, [account])[account]

    assert cycle.outcome == "ok" and not cycle.full
    assert cycle.pulled[_TOUCHES[crm.name]]["stored"] == len(added) == BURST
    assert before[account].tier == "nurture" and after[account].tier == "ae"
    assert after[account].score > before[account].score and cycle.tier_up >= 1
    assert account in written
    assert shown["tier"] == "AE" and shown["score"] == after[account].score
    assert "pricing" in str(shown["signals"]).lower()


@pytest.mark.parametrize("crm", ["salesforce"], indirect=True)
def test_the_admin_route_refuses_what_it_cannot_add_saying_why(crm: Crm) -> None:
    sandbox = crm.sandbox
    at = crm.time.now
    cases = [
        (NewActivity("pricing_page", at, account_id="001000000000000AAA"), 404, "no live Account"),
        (NewActivity("call", at, account_id="x"), 400, "type must be one of"),
        (NewActivity("pricing_page", at, person_id="x", topic="ai"), 400, "topic must be absent"),
    ]
    for activity, status, words in cases:
        with pytest.raises(AdminError) as refused:
            add_activities(sandbox.base_url, sandbox.token, [activity])
        assert refused.value.status == status and words in str(refused.value)
    anonymous = requests.post(f"{sandbox.base_url}{ACTIVITIES_PATH}", json={}, timeout=5)
    assert anonymous.status_code == 401
