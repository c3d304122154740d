"""The connector-to-store round trip of every stream of both CRMs, on SQLite and PostgreSQL.

The real connector pulls each stream from the sandbox over HTTP and the mirror stores it; every
record delivered is then read back from the state database and compared field by field (our own
fields as the CRM holds them, in ``crm_owned``); a record the CRM deleted or merged away is
marked so. The HubSpot world has no notes or tasks, so the test adds one of each through the
client, as a rep would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from connectors.http import HttpPolicy
from connectors.protocol import (
    FULL_LOAD,
    Connector,
    Cursor,
    Item,
    Record,
    Tombstone,
    expanded,
)
from connectors.streams import WRITTEN_BACK, Stream
from handoff.crm import sandbox_connector
from sandbox.generator import generate_org
from sandbox.org import Org
from sandbox.service import RunningSandbox, start_sandbox
from sync import Store
from sync.mirror import ENTITY_TABLES, mirror_stream
from sync.store import canonical_value
from tests.sandbox_fixtures import hubspot_client

ACCOUNTS = 40
# (object, association type to a contact, properties) of what a rep adds in HubSpot
HUBSPOT_ADDED = (
    ("notes", 202, {"hs_note_body": "Asked for the pricing sheet"}),
    ("tasks", 204, {"hs_task_subject": "Call back about the trial"}),
)


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(ACCOUNTS, 5)


@pytest.fixture(scope="module", params=["salesforce", "hubspot"])
def sandbox(request: pytest.FixtureRequest, org: Org) -> Iterator[RunningSandbox]:
    """Each CRM's sandbox, served once per module (the tests only read it)."""
    options = {"tier": "unlimited"} if request.param == "hubspot" else {}
    with start_sandbox(request.param, org, **options) as running:
        if request.param == "hubspot":
            _add_notes_and_tasks(running, org)
        yield running


def _add_notes_and_tasks(running: RunningSandbox, org: Org) -> None:
    client = hubspot_client(running)
    contact = client.crm.contacts.basic_api.get_page(limit=1).results[0].id
    at = (org.manifest.end_at - timedelta(days=1)).isoformat()
    for name, association, properties in HUBSPOT_ADDED:
        body = {
            "properties": {"hs_timestamp": at, **properties},
            "associations": [
                {
                    "to": {"id": contact},
                    "types": [
                        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": association}
                    ],
                }
            ],
        }
        getattr(client.crm.objects, name).basic_api.create(body)


@dataclass
class Recording:
    """The real connector, keeping every item it delivered."""

    inner: Connector
    items: list[Item] = field(default_factory=list)

    @property
    def crm(self) -> str:
        return self.inner.crm

    @property
    def streams(self) -> Any:
        return self.inner.streams

    def pull(self, stream: str, cursor: Cursor = FULL_LOAD) -> Iterator[Item]:
        for item in self.inner.pull(stream, cursor):
            self.items.append(item)
            yield item


def test_every_stream_lands_in_the_store_field_by_field(
    sandbox: RunningSandbox, org: Org, store: Store
) -> None:
    connector = Recording(
        sandbox_connector(sandbox.crm, sandbox.base_url, sandbox.token, HttpPolicy())
    )
    pulled = {
        name: mirror_stream(store, connector, name, org.manifest.end_at)
        for name in connector.streams
    }

    delivered: dict[str, dict[str, Record]] = {}
    gone: dict[str, set[str]] = {}
    for item in expanded(connector.items):
        if isinstance(item, Record):
            delivered.setdefault(item.stream, {})[item.id] = item
        elif isinstance(item, Tombstone):
            gone.setdefault(item.stream, set()).add(item.id)
    assert sorted(delivered) == sorted(connector.streams)  # every stream has records
    for name, stream in connector.streams.items():
        assert pulled[name].skipped == {}
        _assert_stored(store, stream, delivered[name], gone.get(name, set()))


def _assert_stored(
    store: Store, stream: Stream, delivered: dict[str, Record], gone: set[str]
) -> None:
    """Each delivered record is a row holding every value it carried; a gone one is marked."""
    model: Any = ENTITY_TABLES[stream.entity]
    columns = set(model.__table__.c.keys())
    with store.session() as session:
        ids = [*delivered, *gone]
        rows = {row.id: row for row in session.exec(select(model).where(col(model.id).in_(ids)))}
    for record_id, record in delivered.items():
        row = rows[record_id]
        assert row.is_deleted == (record_id in gone)
        stored = {key: _stored(row, key, columns) for key in record.values}
        assert stored == {k: canonical_value(v) for k, v in record.values.items()}, record_id
    for record_id in gone - set(delivered):
        assert record_id not in rows or rows[record_id].is_deleted


def _stored(row: Any, key: str, columns: set[str]) -> str:
    """A value as the row keeps it, as canonical text (our fields live in ``crm_owned``)."""
    if key in WRITTEN_BACK and "crm_owned" in columns:
        return canonical_value((row.crm_owned or {}).get(key))
    assert key in columns, f"{key} has no column"
    return canonical_value(getattr(row, key))
