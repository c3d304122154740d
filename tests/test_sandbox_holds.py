"""The sandbox holds a chosen request until released: the deterministic kill point of the crash
tests. Held before the CRM acts, a dropped request never lands; held after, it has landed and
only its answer waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.generator import generate_org
from sandbox.http import ADMIN_PREFIX
from sandbox.service import RunningSandbox, start_sandbox
from tests.sandbox_fixtures import hubspot_client


@pytest.fixture(scope="module")
def crm() -> Iterator[RunningSandbox]:
    with start_sandbox("hubspot", generate_org(10, 3), tier="unlimited") as running:
        yield running


def _admin(crm: RunningSandbox, method: str, route: str, body: Any = None, token: str = "") -> Any:
    return requests.request(
        method,
        f"{crm.base_url}{ADMIN_PREFIX}/{route}",
        json=body,
        headers={"Authorization": f"Bearer {token or crm.token}"},
        timeout=10,
    )


def _held(crm: RunningSandbox) -> str:
    deadline = time.monotonic() + 10
    while (held := _admin(crm, "GET", "hold").json()["held"]) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return str(held)


def _rename(crm: RunningSandbox, company: str, name: str, outcome: dict[str, Any]) -> None:
    """A client's PATCH of one company, in a thread; what became of it."""
    try:
        response = requests.patch(
            f"{crm.base_url}/crm/v3/objects/companies/{company}",
            json={"properties": {"name": name}},
            headers={"Authorization": f"Bearer {crm.token}"},
            timeout=10,
        )
        outcome["status"] = response.status_code
    except requests.ConnectionError:
        outcome["status"] = "no answer"


def _name(crm: RunningSandbox, company: str) -> str:
    basic = hubspot_client(crm).crm.companies.basic_api
    return str(basic.get_by_id(company, properties=["name"]).properties["name"])


@pytest.mark.parametrize(
    ("when", "drop", "status", "landed"),
    [
        ("before", False, 200, True),
        ("before", True, "no answer", False),
        ("after", True, "no answer", True),
    ],
)
def test_the_chosen_request_waits_until_released(
    crm: RunningSandbox, when: str, drop: bool, status: Any, landed: bool
) -> None:
    first, second = [c.id for c in hubspot_client(crm).crm.companies.basic_api.get_page().results][
        :2
    ]
    hold = {"endpoint": "companies/{id}", "method": "PATCH", "after": 1, "when": when}
    assert _admin(crm, "POST", "hold", hold).status_code == 200
    passed: dict[str, Any] = {}
    _rename(crm, first, f"first {when} {drop}", passed)  # the one let through first
    outcome: dict[str, Any] = {}
    client = threading.Thread(target=_rename, args=(crm, second, f"held {when} {drop}", outcome))
    client.start()

    held = _held(crm)
    waiting = client.is_alive()
    released = _admin(crm, "POST", "release", {"drop": drop}).json()
    client.join(10)

    assert passed == {"status": 200} and _name(crm, first) == f"first {when} {drop}"
    assert held == f"PATCH /crm/v3/objects/companies/{second}" and waiting
    assert released == {"released": True} and outcome == {"status": status}
    assert (_name(crm, second) == f"held {when} {drop}") is landed
    assert _admin(crm, "POST", "release").json() == {"released": False}  # spent


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"after": -1}, "after must be a whole number"),
        ({"when": "during"}, "when must be one of before, after"),
        ({"endpoints": "query"}, "unknown key(s) ['endpoints']"),
        ([1], "a hold is a JSON object"),
    ],
)
def test_a_malformed_hold_is_refused_saying_why(
    crm: RunningSandbox, body: Any, message: str
) -> None:
    refused = _admin(crm, "POST", "hold", body)
    assert refused.status_code == 400 and message in refused.json()["message"]


def test_holds_need_the_sandbox_token(crm: RunningSandbox) -> None:
    for method, route in (("GET", "hold"), ("POST", "hold"), ("POST", "release")):
        assert _admin(crm, method, route, {}, token="wrong").status_code == 401
