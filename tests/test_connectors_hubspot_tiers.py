"""HubSpot by subscription tier: web touches without the events API, marketing email from the
email events API, and deals closed and won by their pipeline stage (real client, real HTTP)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hubspot.events.exceptions import ApiException as EventsError
from pydantic import SecretStr

from connectors.budget import Budget
from connectors.config import HubSpotSettings
from connectors.errors import InvalidRequest, NotFound
from connectors.http import HttpPolicy, RetrySettings
from connectors.hubspot import SOURCES, HubSpotConnector
from connectors.protocol import Checkpoint, Cursor, Record, Summary, records
from sandbox.generator import generate_org
from sandbox.hubspot.analytics import HISTORY_DEPTH
from sandbox.hubspot.events import NOT_ENTERPRISE
from sandbox.org import Org
from sandbox.service import RunningSandbox, start_sandbox

ACCOUNTS, SEED = 300, 13
WEB = ("events", "email_events")
Touch = tuple[str, str | None, datetime]  # (type, topic, when)


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(ACCOUNTS, SEED)


def _connector(crm: RunningSandbox) -> HubSpotConnector:
    settings = HubSpotSettings(token=SecretStr(crm.token))
    return HubSpotConnector(settings, host=crm.base_url, policy=HttpPolicy(budget=Budget(1.0)))


def _pull(crm: RunningSandbox) -> tuple[dict[str, list[Any]], HubSpotConnector]:
    connector = _connector(crm)
    return {stream: list(connector.pull(stream)) for stream in WEB}, connector


def _by_contact(items: list[Any]) -> dict[str, list[Touch]]:
    touches: dict[str, list[Touch]] = defaultdict(list)
    for r in records(items):
        if r.values["person_id"] is not None:
            touches[r.values["person_id"]].append(
                (r.values["type"], r.values["topic"], r.values["occurred_at"])
            )
    return {person: sorted(found, key=lambda t: t[2]) for person, found in touches.items()}


@pytest.fixture(scope="module")
def tiers(org: Org) -> dict[str, tuple[dict[str, list[Any]], HubSpotConnector, int]]:
    """Both web streams pulled from a Professional and an Enterprise portal of the same org;
    with how often each portal was asked for the events API."""
    pulled = {}
    for tier in ("professional", "enterprise"):
        with start_sandbox("hubspot", org, tier=tier) as crm:
            items, connector = _pull(crm)
            list(connector.pull("events"))  # a second pull: the tier is remembered
            pulled[tier] = (items, connector, crm.server.log.count("events"))
    return pulled


def test_a_professional_pull_completes_without_the_events_api_and_names_its_sources(
    tiers: dict[str, Any],
) -> None:
    items, connector, events_calls = tiers["professional"]
    summaries = {stream: items[stream][-1] for stream in WEB}
    assert all(isinstance(s, Summary) for s in summaries.values())
    assert summaries["events"].sources == (SOURCES["history"],)
    assert summaries["email_events"].sources == (SOURCES["email"],)
    assert summaries["events"].records > 0 and summaries["email_events"].records > 0
    assert connector.events_api is False and events_calls == 1  # one 403, then remembered


def test_enterprise_reads_the_events_api(tiers: dict[str, Any]) -> None:
    items, connector, events_calls = tiers["enterprise"]
    assert items["events"][-1].sources == (SOURCES["events"],)
    assert connector.events_api is True and events_calls > 2


def test_professional_delivers_the_enterprise_signals_history_can_carry(
    tiers: dict[str, Any],
) -> None:
    """Page views and forms: everything for a contact whose touches fit the page history, and
    only what Enterprise also has for the others (their oldest touches are lost). Email opens
    and clicks: the same source on both tiers, so the same touches."""
    professional, enterprise = (_by_contact(tiers[t][0]["events"]) for t in tiers)
    assert professional and set(professional) <= set(enterprise)
    whole = 0
    for contact, touches in professional.items():
        theirs = enterprise[contact]
        if len(theirs) <= HISTORY_DEPTH:
            assert touches == theirs
            whole += 1
        else:
            assert set(touches) <= set(theirs) and touches[-1] == theirs[-1]
    assert whole > len(professional) // 2
    emails = [_by_contact(tiers[t][0]["email_events"]) for t in tiers]
    assert emails[0] == emails[1] and {t for ts in emails[0].values() for t, _, _ in ts} == {
        "email_open",
        "email_click",
    }


def test_a_professional_incremental_pull_sees_only_touches_since_the_cursor(
    org: Org, tiers: dict[str, Any]
) -> None:
    items = tiers["professional"][0]
    whole = records(items["events"])
    middle = sorted(r.modified_at for r in whole)[len(whole) // 2]
    with start_sandbox("hubspot", org, tier="professional") as crm:
        later = records(_connector(crm).pull("events", Cursor(middle)))
    assert {r.id for r in later} == {r.id for r in whole if r.modified_at >= middle}


def test_email_events_after_a_contacts_pull_join_without_looking_contacts_up(org: Org) -> None:
    with start_sandbox("hubspot", org, tier="enterprise") as crm:
        connector = _connector(crm)
        list(connector.pull("contacts"))
        crm.server.log.reset()
        touches = records(connector.pull("email_events"))
        looked_up = crm.server.log.count("contacts/batch/read", "POST")
    assert touches and looked_up == 0
    with start_sandbox("hubspot", org, tier="enterprise") as crm:
        cold = records(_connector(crm).pull("email_events"))  # no contacts pulled: look-ups
        assert crm.server.log.count("contacts/batch/read", "POST") > 0
    assert {(r.id, r.values["person_id"]) for r in touches} == {
        (r.id, r.values["person_id"]) for r in cold
    }


@pytest.mark.parametrize("pipeline", ["default", "custom"])
def test_deals_read_closed_and_won_from_their_pipeline_stage(org: Org, pipeline: str) -> None:
    with start_sandbox("hubspot", org, tier="unlimited", pipeline=pipeline) as crm:
        deals = records(_connector(crm).pull("deals"))
    truth = {
        40_000_000_000 + o["opportunity_id"]: (o["is_closed"], o["is_won"])
        for o in org.opportunities.iter_rows(named=True)
    }
    assert {int(d.id): (d.values["is_closed"], d.values["is_won"]) for d in deals} == truth
    assert any(won for _, won in truth.values()) and any(
        closed and not won for closed, won in truth.values()
    )
    assert all(d.values["stage"].isdigit() == (pipeline == "custom") for d in deals)


# --- the tier decision, on faked answers -------------------------------------------------------


def _answer(body: dict[str, Any]) -> Any:
    return type("Response", (), {"data": json.dumps(body).encode(), "headers": {}})()


def _refusal(status: int, body: dict[str, Any]) -> EventsError:
    error = EventsError(status=status, reason="refused")
    error.body, error.headers = json.dumps(body), {}
    return error


_PAGE_VIEW = {
    "id": "30000000007",
    "properties": {"email": "ana@acme.example"},
    "propertiesWithHistory": {
        "hs_analytics_last_url": [
            {"value": "https://www.example.com/pricing", "timestamp": "2026-10-02T08:00:00.000Z"}
        ]
    },
}
_EVENT = {
    "id": "e-1",
    "eventType": "e_visited_page",
    "occurredAt": "2026-10-02T08:00:00.000Z",
    "objectType": "CONTACT",
    "objectId": "30000000007",
    "properties": {"hs_url": "https://www.example.com/pricing", "hs_title": "Pricing"},
}
_MISSING_SCOPES = {"status": "error", "category": "MISSING_SCOPES", "message": NOT_ENTERPRISE}


def _faked(events: Callable[..., Any]) -> tuple[HubSpotConnector, list[str]]:
    """A connector whose events API answers with ``events`` and whose contacts list answers
    one contact with one page view; the APIs it called, in order."""
    policy = HttpPolicy(RetrySettings(), budget=Budget(1.0), sleep=lambda s: None)
    connector = HubSpotConnector(HubSpotSettings(token=SecretStr("pat-na1-test")), policy=policy)
    called: list[str] = []

    def get_page(*args: Any, **kwargs: Any) -> Any:
        called.append("events")
        return events()

    def contacts(*args: Any, **kwargs: Any) -> Any:
        called.append("history")
        assert kwargs["limit"] == 50
        return _answer({"results": [_PAGE_VIEW]})

    connector.api.events.get_page = get_page  # type: ignore[method-assign]
    connector.api.objects.get_page = contacts  # type: ignore[method-assign]
    return connector, called


def _raise(error: Exception) -> Callable[[], Any]:
    def answer() -> Any:
        raise error

    return answer


@pytest.mark.parametrize(
    ("events", "source", "remembered"),
    [
        (_raise(_refusal(403, _MISSING_SCOPES)), "history", False),
        (lambda: _answer({"results": [_EVENT]}), "events", True),
    ],
)
def test_the_tier_is_learnt_from_the_events_api_and_kept(
    events: Callable[[], Any], source: str, remembered: bool
) -> None:
    connector, called = _faked(events)
    first, second = (list(connector.pull("events")) for _ in range(2))

    assert first[-1].sources == second[-1].sources == (SOURCES[source],)
    assert connector.events_api is remembered
    assert called == (["events", "history", "history"] if source == "history" else ["events"] * 2)
    (record,) = records(first)
    assert (record.values["type"], record.values["person_id"]) == ("pricing_page", "30000000007")


@pytest.mark.parametrize(
    ("status", "raised"),
    [(404, NotFound), (400, InvalidRequest)],
)
def test_other_events_api_errors_are_not_a_tier(status: int, raised: type) -> None:
    connector, called = _faked(_raise(_refusal(status, {"category": "VALIDATION_ERROR"})))
    with pytest.raises(raised):
        list(connector.pull("events"))
    assert called == ["events"] and connector.events_api is None


def _checkpoints(items: Iterator[Any]) -> list[Cursor]:
    return [i.cursor for i in items if isinstance(i, Checkpoint)]


def test_a_stopped_history_read_resumes_from_its_page_and_keeps_its_bound() -> None:
    connector, _ = _faked(_raise(_refusal(403, _MISSING_SCOPES)))
    start = Cursor(datetime(2026, 1, 1, tzinfo=UTC))
    (done,) = _checkpoints(connector.pull("events", start))
    assert done.resume is None and done.value == datetime(2026, 10, 2, 8, tzinfo=UTC)
    stopped = Cursor(start.value, resume="after-7@1790000000000")
    resumed = records(connector.pull("events", stopped))
    assert [isinstance(r, Record) for r in resumed] == [True]
