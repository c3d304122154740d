"""What the tests of HubSpot pages read as columns share: an Enterprise portal served for a test
module, its connector read a batch at a time or a row at a time, and a connector pulling some
streams only (to mirror them alone).

    crm = enterprise_portal(accounts=120, seed=5)  # a module's fixture
    connector = hubspot_connector(crm, batches=True)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.config import HubSpotSettings
from connectors.http import HttpPolicy, RetrySettings
from connectors.hubspot import HubSpotConnector
from connectors.json_pages import CutPage, cut
from connectors.protocol import FULL_LOAD, Checkpoint, Cursor, Item, Record, RecordBatch, expanded
from sandbox.generator import generate_org
from sandbox.service import RunningSandbox, start_sandbox

READ_AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # the connector's wall clock
EVENTS_FROM = datetime(2026, 11, 2, 8, 30, 15, tzinfo=UTC)  # a scripted events page's first time


def scripted_event(number: int, **values: Any) -> dict[str, Any]:
    """An events API page view as a portal answers it, ``number`` minutes after `EVENTS_FROM`,
    with ``values`` in place of its own."""
    at = (EVENTS_FROM + timedelta(minutes=number)).isoformat().replace("+00:00", "Z")
    event = {
        "objectType": "CONTACT",
        "objectId": f"3000000{number:04d}",
        "eventType": "e_visited_page",
        "occurredAt": at,
        "id": f"00000000-0000-4000-8000-{number:012d}",
        "properties": {"hs_url": "https://www.example.com/pricing", "hs_title": "Pricing"},
    }
    return event | values


def answer_text(page: dict[str, Any]) -> bytes:
    """A page as HubSpot answers it: compact JSON text (json's, which writes any integer)."""
    return json.dumps(page, separators=(",", ":")).encode()


def cut_answer(page: dict[str, Any]) -> CutPage:
    """A page as `HubSpotConnector` takes an answer in the usual shape: cut, unread."""
    answer = cut(answer_text(page))
    assert answer is not None, "not in the shape HubSpot answers a list with"
    return answer


def enterprise_portal(accounts: int, seed: int) -> Any:
    """A module-scoped fixture: a generated org served as an Enterprise portal."""

    @pytest.fixture(scope="module")
    def crm() -> Iterator[RunningSandbox]:
        org = generate_org(accounts, seed)
        with start_sandbox("hubspot", org, tier="enterprise") as running:
            yield running

    return crm


def hubspot_connector(crm: RunningSandbox, batches: bool, **settings: Any) -> HubSpotConnector:
    """The portal's connector, pages read as columns (``batches``) or a record a row."""
    return HubSpotConnector(
        HubSpotSettings(token=SecretStr(crm.token), **settings),
        host=crm.base_url,
        policy=HttpPolicy(RetrySettings(), wall=lambda: READ_AT),
        batches=batches,
    )


def both_ways(
    crm: RunningSandbox,
    stream: str,
    cursor: Cursor,
    read: Callable[[Sequence[Item]], Any],
    **settings: Any,
) -> list[tuple[Any, bool]]:
    """A row-at-a-time pull and a batch pull of ``stream`` from ``cursor``: what ``read`` makes
    of each one's items, and whether it delivered any batch."""
    pulled = []
    for batches in (False, True):
        items = list(hubspot_connector(crm, batches, **settings).pull(stream, cursor))
        pulled.append((read(items), any(isinstance(i, RecordBatch) for i in items)))
    return pulled


def stopped_pulls(
    crm: RunningSandbox, stream: str, error: type[Exception]
) -> list[tuple[list[str], Cursor | None]]:
    """A row-at-a-time pull and a batch pull of ``stream`` that each stop with ``error``: the
    ids of the records each delivered, and the cursor of its last checkpoint."""
    saved = []
    for batches in (False, True):
        delivered, cursor = [], None
        with pytest.raises(error):
            for item in expanded(hubspot_connector(crm, batches).pull(stream)):
                if isinstance(item, Record):
                    delivered.append(item.id)
                elif isinstance(item, Checkpoint):
                    cursor = item.cursor
        saved.append((delivered, cursor))
    return saved


class Only:
    """A connector pulling only ``streams`` of its own."""

    def __init__(self, connector: HubSpotConnector, streams: dict[str, Any]) -> None:
        self.crm = connector.crm
        self.streams = streams
        self._connector = connector

    def pull(self, stream: str, cursor: Cursor = FULL_LOAD) -> Iterator[Item]:
        return self._connector.pull(stream, cursor)
