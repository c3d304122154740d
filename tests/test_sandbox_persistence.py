"""The sandbox keeps what was written to its CRM with its org: a restart takes all of it back."""

from __future__ import annotations

import importlib
import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hubspot.crm.companies import PublicMergeInput

from connectors.http import HttpPolicy
from connectors.protocol import Connector, Update, records
from handoff.crm import sandbox_connector, schema_spec
from handoff.settings import load_settings
from sandbox.admin import NewActivity, add_activities
from sandbox.generator import generate_org
from sandbox.org import load_org, save_org
from sandbox.persistence import SavedStateError, StateKeeper, kept, state_dir
from sandbox.service import CRMS, RunningSandbox, start_sandbox
from tests.sandbox_fixtures import hubspot_client, salesforce_client, salesforce_merge

ACCOUNTS, SEED = 60, 21
SPEC = schema_spec(load_settings(None, {}))


def _sf_create(crm: RunningSandbox) -> str:
    return str(salesforce_client(crm).Account.create({"Name": "Kept Ltd"})["id"])


def _sf_delete(crm: RunningSandbox, record_id: str) -> None:
    salesforce_client(crm).Account.delete(record_id)


def _sf_edit(crm: RunningSandbox, record_id: str) -> None:
    salesforce_client(crm).Account.update(record_id, {"Industry": "Fintech"})


def _sf_merge(crm: RunningSandbox, master: str, loser: str) -> None:
    salesforce_merge(crm, "Account", master, [loser])


def _sf_score(crm: RunningSandbox, record_id: str) -> float:
    return float(salesforce_client(crm).Account.get(record_id)["Handoff_Score__c"])


def _hs_create(crm: RunningSandbox) -> str:
    made = hubspot_client(crm).crm.companies.basic_api.create({"properties": {"name": "Kept"}})
    return str(made.id)


def _hs_delete(crm: RunningSandbox, record_id: str) -> None:
    hubspot_client(crm).crm.companies.basic_api.archive(record_id)


def _hs_edit(crm: RunningSandbox, record_id: str) -> None:
    companies = hubspot_client(crm).crm.companies.basic_api
    companies.update(record_id, {"properties": {"city": "Keptville"}})


def _hs_merge(crm: RunningSandbox, primary: str, other: str) -> None:
    merge = PublicMergeInput(primary_object_id=primary, object_id_to_merge=other)
    hubspot_client(crm).crm.companies.basic_api.merge(public_merge_input=merge)


def _hs_score(crm: RunningSandbox, record_id: str) -> float:
    companies = hubspot_client(crm).crm.companies.basic_api
    return float(
        companies.get_by_id(record_id, properties=["handoff_score"]).properties["handoff_score"]
    )


@dataclass(frozen=True)
class Crm:
    """One dialect's ways to change its accounts as a user in the CRM would."""

    name: str
    accounts: str
    accounts_table: str
    create: Callable[[RunningSandbox], str]
    delete: Callable[[RunningSandbox, str], None]
    edit: Callable[[RunningSandbox, str], None]
    merge: Callable[[RunningSandbox, str, str], None]
    score: Callable[[RunningSandbox, str], float]
    options: dict[str, str]


CRMS_UNDER_TEST = [
    Crm(
        "salesforce",
        "Account",
        "Account",
        _sf_create,
        _sf_delete,
        _sf_edit,
        _sf_merge,
        _sf_score,
        {},
    ),
    Crm(
        "hubspot",
        "companies",
        "records/companies",
        _hs_create,
        _hs_delete,
        _hs_edit,
        _hs_merge,
        _hs_score,
        {"tier": "unlimited"},
    ),
]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small org on disk, generated once; each test serves a copy of its own."""
    path = tmp_path_factory.mktemp("org") / "org"
    save_org(generate_org(ACCOUNTS, SEED), path)
    return path


@pytest.fixture
def org_dir(generated: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(generated, tmp_path / "org"))


@contextmanager
def _served(crm: Crm, org_dir: Path) -> Iterator[tuple[RunningSandbox, StateKeeper]]:
    """The org served in ``crm``'s dialect with its state kept (saving only when asked)."""
    with (
        start_sandbox(crm.name, load_org(org_dir), **crm.options) as running,
        kept(running, org_dir, every=3600) as keeper,
    ):
        yield running, keeper


def _connector(running: RunningSandbox) -> Connector:
    return sandbox_connector(running.crm, running.base_url, running.token, HttpPolicy())


def _state(running: RunningSandbox) -> tuple[dict[str, Any], Any]:
    """Every table's rows and the dialect's registries, as a restart must take them back."""
    module = importlib.import_module(f"{CRMS[running.crm]}.saved")
    snapshot = module.snapshot(running.dialect)
    tables = {name: part.read() for name, part in snapshot.parts.items()}
    return tables, json.loads(json.dumps(snapshot.meta))


def _same(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """Names of the tables that differ between two states."""
    return [name for name in first.keys() | second.keys() if not _equal(first, second, name)]


def _equal(first: dict[str, Any], second: dict[str, Any], name: str) -> bool:
    return name in first and name in second and first[name].equals(second[name])


@pytest.mark.parametrize("crm", CRMS_UNDER_TEST, ids=lambda c: c.name)
def test_everything_written_is_taken_back_after_a_restart(crm: Crm, org_dir: Path) -> None:
    with _served(crm, org_dir) as (running, _):
        connector = _connector(running)
        assert connector.ensure_schema(SPEC).changed
        ids = [r.id for r in records(connector.pull(crm.accounts))][:5]
        assert all(r.ok for r in connector.push(crm.accounts, [Update(ids[0], {"score": 91.0})]))
        created = crm.create(running)
        crm.delete(running, ids[1])
        crm.merge(running, ids[2], ids[3])
        crm.edit(running, ids[4])
        tables, meta = _state(running)

    with _served(crm, org_dir) as (running, _):
        restored_tables, restored_meta = _state(running)
        assert _same(tables, restored_tables) == [] and restored_meta == meta
        connector = _connector(running)
        assert not connector.ensure_schema(SPEC).changed
        live = {r.id for r in records(connector.pull(crm.accounts))}
        assert crm.score(running, ids[0]) == 91.0 and created in live and ids[1] not in live
        assert crm.create(running) not in (created, *ids)


@pytest.mark.parametrize("crm", CRMS_UNDER_TEST, ids=lambda c: c.name)
def test_activity_added_through_the_admin_route_is_taken_back_after_a_restart(
    crm: Crm, org_dir: Path
) -> None:
    touches = {"salesforce": "Task", "hubspot": "events"}[crm.name]
    at = load_org(org_dir).manifest.end_at - timedelta(minutes=1)
    with _served(crm, org_dir) as (running, _):
        account = records(_connector(running).pull(crm.accounts))[0].id
        visit = NewActivity("pricing_page", at, account_id=account)
        first = add_activities(running.base_url, running.token, [visit])
        tables, _ = _state(running)

    with _served(crm, org_dir) as (running, _):
        restored, _ = _state(running)
        second = add_activities(running.base_url, running.token, [visit])
        pulled = {r.id: r for r in records(_connector(running).pull(touches))}

    assert _same(tables, restored) == []
    assert second != first and {*first, *second} <= pulled.keys()
    for record in (pulled[first[0]], pulled[second[0]]):
        assert record.values["account_id"] == account and record.values["type"] == "pricing_page"


@pytest.mark.parametrize("crm", CRMS_UNDER_TEST, ids=lambda c: c.name)
def test_a_save_writes_only_the_tables_written_to_and_nothing_when_nothing_changed(
    crm: Crm, org_dir: Path
) -> None:
    with _served(crm, org_dir) as (running, keeper):
        assert keeper.save() is False
        first = records(_connector(running).pull(crm.accounts))[0].id
        crm.edit(running, first)
        assert keeper.save() is True
        assert keeper.save() is False
    saved = json.loads((state_dir(org_dir, crm.name) / "state.json").read_text())
    assert list(saved["tables"]) == [crm.accounts_table]
    assert sorted(p.name for p in state_dir(org_dir, crm.name).glob("*.arrow")) == [
        saved["tables"][crm.accounts_table]
    ]


def test_a_second_process_cannot_serve_the_same_state(org_dir: Path) -> None:
    org = load_org(org_dir)
    with (
        start_sandbox("salesforce", org) as first,
        kept(first, org_dir),
        start_sandbox("salesforce", org) as second,
        pytest.raises(SavedStateError) as refused,
        kept(second, org_dir),
    ):
        pass
    assert "another sandbox process is serving this CRM state" in str(refused.value)


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("format", 99, "is in format 99"),
        ("crm", "hubspot", "holds a hubspot sandbox"),
        ("org", {"seed": 1}, "was written over another org"),
    ],
)
def test_saved_state_of_another_kind_is_refused_with_what_to_do(
    org_dir: Path, key: str, value: Any, said: str
) -> None:
    crm = CRMS_UNDER_TEST[0]
    with _served(crm, org_dir) as (running, _):
        crm.edit(running, records(_connector(running).pull(crm.accounts))[0].id)
    file = state_dir(org_dir, crm.name) / "state.json"
    file.write_text(json.dumps({**json.loads(file.read_text()), key: value}))
    with pytest.raises(SavedStateError) as refused, _served(crm, org_dir):
        pass
    assert said in str(refused.value) and "delete that directory to start over" in str(
        refused.value
    )


@pytest.mark.parametrize(
    ("crm", "options", "said"),
    [
        (CRMS_UNDER_TEST[0], {"convention": "b"}, 'convention "b"'),
        (CRMS_UNDER_TEST[0], {"multi_currency": True}, "multi_currency true"),
        (CRMS_UNDER_TEST[0], {"country_spelling": "name"}, 'country_spelling "name"'),
        (CRMS_UNDER_TEST[1], {"pipeline": "custom"}, 'pipeline "custom"'),
        (CRMS_UNDER_TEST[1], {"country_spelling": "mixed"}, 'country_spelling "mixed"'),
    ],
    ids=lambda value: value.name if isinstance(value, Crm) else str(value),
)
def test_state_written_under_one_rendering_is_refused_by_a_sandbox_rendering_another(
    crm: Crm, options: dict[str, Any], said: str, org_dir: Path
) -> None:
    with _served(crm, org_dir) as (running, _):
        crm.edit(running, records(_connector(running).pull(crm.accounts))[0].id)
    other = Crm(**{**crm.__dict__, "options": {**crm.options, **options}})

    with pytest.raises(SavedStateError) as refused, _served(other, org_dir):
        pass

    saved, served = str(refused.value).split(" not with ")
    assert "was rendered with" in saved and said not in saved and said in served
    assert "delete that directory to start over" in served


def test_hubspot_state_is_taken_back_under_another_tier(org_dir: Path) -> None:
    crm = CRMS_UNDER_TEST[1]
    with _served(crm, org_dir) as (running, _):
        first = records(_connector(running).pull(crm.accounts))[0].id
        crm.edit(running, first)
    starter = Crm(**{**crm.__dict__, "options": {"tier": "starter"}})

    with _served(starter, org_dir) as (running, _):
        city = hubspot_client(running).crm.companies.basic_api.get_by_id(first, properties=["city"])

    assert city.properties["city"] == "Keptville"
