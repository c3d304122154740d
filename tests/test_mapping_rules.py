"""Teams and signals are the admin's mapping: users and activities typed by ordered rules in
settings, what no rule matches counted in the pull's summary, on both CRMs."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlmodel import select

from connectors.config import HubSpotSettings, SalesforceSettings
from connectors.hubspot import HubSpotConnector
from connectors.protocol import Connector, Record, Summary, records
from connectors.rules import (
    ActivityFacts,
    ActivityMatcher,
    ActivityRule,
    ActivitySettings,
    RuleBook,
    UserRule,
    UserSettings,
)
from connectors.salesforce import SalesforceConnector
from connectors.streams import HUBSPOT_STREAMS, SALESFORCE_STREAMS
from handoff.crm import rule_book
from handoff.settings import check_settings, load_settings
from sandbox.generator import generate_org
from sandbox.hubspot.touches import WEB_TOUCHES_B
from sandbox.org import Org
from sandbox.salesforce import SalesforceOptions, client_session
from sandbox.salesforce.mapping import CAMPAIGNS_B, TOUCHES_B
from sandbox.service import start_sandbox
from sync import Store, User

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
USER, OWNERS = SALESFORCE_STREAMS["User"], HUBSPOT_STREAMS["owners"]
SALES_AS_AE = UserRule(team="ae", departments=("Sales", "Inside Sales*"))
SALES_TEAMS = UserRule(team="ae", teams=("Sales Team *",))
BY_EMAIL = UserRule(team="manager", emails=("dana@example.com",))


def _sf_user(role: str | None = None, department: str | None = None, **more: Any) -> dict:
    """A Salesforce User row as the REST API answers it (relationships as nested objects)."""
    return {
        "UserRole": None if role is None else {"Name": role},
        "Profile": {"Name": more.pop("profile", "Standard User")},
        "Department": department,
        "Division": more.pop("division", "EMEA"),
        "Email": more.pop("email", "sam@example.com"),
        **more,
    }


def _owner(*teams: str, email: str = "sam@example.com") -> dict:
    """A HubSpot owner, its first team primary."""
    named = [{"id": str(i), "name": name, "primary": i == 0} for i, name in enumerate(teams)]
    return {"email": email, "teams": named}


USER_CASES = [
    # (stream, raw, settings, team, territory)
    (USER, _sf_user(), None, None, "EMEA"),
    (USER, _sf_user(department="Sales"), None, None, "EMEA"),
    (USER, _sf_user(department="Sales"), (SALES_AS_AE,), "ae", "EMEA"),
    (USER, _sf_user(department="Inside Sales - EMEA"), None, None, "EMEA"),
    (USER, _sf_user(department="Inside Sales - EMEA"), (SALES_AS_AE,), "ae", "EMEA"),
    (USER, _sf_user(department="Finance"), (SALES_AS_AE,), None, "EMEA"),
    (USER, _sf_user("Account Executive - NA", division="NA"), None, "ae", "NA"),
    (USER, _sf_user("Sr. AE, APAC", "Sales"), None, "ae", "EMEA"),
    (USER, _sf_user("Sales Manager - EMEA", "Sales"), None, "manager", "EMEA"),
    (USER, _sf_user("Business Development Representative"), None, "sdr", "EMEA"),
    (USER, _sf_user(department="SDR"), None, "sdr", "EMEA"),
    (USER, _sf_user(profile="Marketing User"), None, "marketing", "EMEA"),
    (USER, _sf_user("Israel Office"), None, None, "EMEA"),  # "ae" inside a word is no AE
    (USER, _sf_user(email="Dana@Example.com"), (BY_EMAIL,), "manager", "EMEA"),
    (OWNERS, _owner("Sales Team East"), None, None, "East"),
    (OWNERS, _owner("Sales Team East"), (SALES_TEAMS,), "ae", "East"),
    (OWNERS, _owner("SDR EMEA", "Out of Office"), None, "sdr", "EMEA"),
    (OWNERS, _owner("Sales Development - APAC", "Out of Office"), None, "sdr", "APAC"),
    (OWNERS, _owner("Sales Leadership - NA"), None, "manager", "NA"),
    (OWNERS, _owner("Marketing"), None, "marketing", None),
    (OWNERS, _owner(), None, None, None),
    (OWNERS, {"email": "x@example.com", "teams": "not a list"}, None, None, None),
    (OWNERS, _owner("Anything", email="dana@example.com"), (BY_EMAIL,), "manager", None),
]


@pytest.mark.parametrize(("stream", "raw", "rules", "team", "territory"), USER_CASES)
def test_users_get_the_team_of_the_first_rule_they_match(
    stream: Any, raw: dict, rules: tuple[UserRule, ...] | None, team: str, territory: str
) -> None:
    settings = UserSettings() if rules is None else UserSettings(rules=rules)
    values, _, unmatched = RuleBook(users=settings).derive(stream, raw)

    assert values == {"role": team, "territory": territory}
    assert unmatched == (None if team else stream.path)


def test_the_territory_comes_from_the_configured_user_field() -> None:
    settings = UserSettings(territory_field="Territory__c")
    raw = _sf_user("AE", Territory__c="DACH")

    assert RuleBook(users=settings).derive(USER, raw)[0] == {"role": "ae", "territory": "DACH"}
    assert "Territory__c" in RuleBook(users=settings).fields(USER)


def test_a_user_without_a_team_is_stored_not_refused(tmp_path: Path) -> None:
    values, _, _ = RuleBook().derive(USER, _sf_user(department="Sales"))
    row = {"id": "005A", "name": "Sam", "crm_modified_at": T0, "synced_at": T0, **values}
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store, store.session() as session:
        store.upsert(session, User, [row])
        stored = session.exec(select(User)).one()

    assert (stored.role, stored.territory) == (None, "EMEA")


# --- activity -> signal --------------------------------------------------------------------


def _sf(
    object: str = "Task", type: str = "", subtype: str = "", subject: str = ""
) -> ActivityFacts:
    return ActivityFacts(object, type=type, subtype=subtype, subject=subject)


def _event(event: str, url: str = "") -> ActivityFacts:
    return ActivityFacts("events", event=event, url=url)


WEBINARS = ActivityRule(
    signal="webinar", topic=True, objects=("CampaignMember",), campaign_types=("Webinar", "Trade*")
)
PRICING = ("pricing_page", False, None)
PLANS = ActivityRule(signal="pricing_page", objects=("events",), urls=("re:/(plans|pricing)",))
ACTIVITY_CASES = [
    # (facts, extra rules first, strip_locale, (signal, rep_touch, topic) or None)
    (_sf(type="", subtype="Email", subject="Re: pricing"), (), True, ("email", True, None)),
    (_sf(type="Email", subtype="Task"), (), True, ("email", True, None)),
    (_sf(type="", subtype="Call", subject="Call with Dana"), (), True, ("call", True, None)),
    (_sf(subtype="ListEmail", subject="Spring update"), (), True, ("email", False, None)),
    (_sf(type="Call", subtype="Cadence"), (), True, ("call", False, None)),
    (_sf(type="Email", subtype="Cadence"), (), True, ("email", False, None)),
    (_sf("Event", type=""), (), True, ("meeting", True, None)),
    (_sf("Event", type="Call"), (), True, ("call", True, None)),
    (
        _sf(type="Web Visit", subtype="Task", subject="Visited pricing page: Security"),
        (),
        True,
        ("pricing_page", False, "security"),
    ),
    (
        _sf(type="web visit", subject="visited PRICING page"),
        (),
        True,
        ("pricing_page", False, None),
    ),
    (
        _sf(type="Webinar", subject="Registered for webinar: AI"),
        (),
        True,
        ("webinar", False, "ai"),
    ),
    (_sf(type="Web Visit", subject="Visited careers page"), (), True, None),
    (_sf(type="Other", subtype="Task", subject="Lunch"), (), True, None),
    (
        ActivityFacts("CampaignMember", campaign_type="Webinar", campaign="Webinar: AI"),
        (),
        True,
        None,
    ),
    (
        ActivityFacts("CampaignMember", campaign_type="Trade Show", campaign="Expo: Security"),
        (WEBINARS,),
        True,
        ("webinar", False, "security"),
    ),
    (_event("e_visited_page", "https://www.example.com/pricing"), (), True, PRICING),
    (_event("e_visited_page", "https://www.example.com/pricing/"), (), True, PRICING),
    (_event("e_visited_page", "https://www.example.com/en/pricing"), (), True, PRICING),
    (_event("e_visited_page", "/de-DE/Pricing/?utm_source=ad#plans"), (), True, PRICING),
    (_event("e_visited_page", "https://www.example.com/en/pricing"), (), False, None),
    (_event("e_visited_page", "https://www.example.com/pricing-faq"), (), True, None),
    (_event("e_visited_page", "https://www.example.com/fr/plans/"), (PLANS,), True, PRICING),
    (_event("e_submitted_form", "https://www.example.com/pricing"), (), True, None),
    (
        _event("e_submitted_form", "https://www.example.com/en/webinars/security/"),
        (),
        True,
        ("webinar", False, "security"),
    ),
    (_event("e_opened_marketing_email"), (), True, ("email_open", False, None)),
    (_event("e_visited_page", "http://[::1"), (), True, None),
    (ActivityFacts("calls", subtype="OUTBOUND"), (), True, ("call", True, None)),
    (ActivityFacts("meetings"), (), True, ("meeting", True, None)),
    (ActivityFacts("emails", subtype="EMAIL"), (), True, ("email", True, None)),
    (ActivityFacts("emails", subtype="INCOMING_EMAIL"), (), True, ("email", False, None)),
    (ActivityFacts("notes", subject="Left a voicemail"), (), True, None),
]


@pytest.mark.parametrize(("facts", "extra", "strip_locale", "expected"), ACTIVITY_CASES)
def test_activity_is_typed_by_the_first_rule_it_matches(
    facts: ActivityFacts,
    extra: tuple[ActivityRule, ...],
    strip_locale: bool,
    expected: tuple[str, bool, str | None] | None,
) -> None:
    default = ActivitySettings()
    settings = ActivitySettings(strip_locale=strip_locale, rules=(*extra, *default.rules))
    typed = ActivityMatcher(settings).match(facts)

    assert (None if typed is None else tuple(typed)) == expected


@pytest.mark.parametrize(
    ("stream", "raw", "kind"),
    [
        (
            SALESFORCE_STREAMS["Task"],
            {"Type": "Other", "TaskSubtype": "Task"},
            "Task / Other / Task",
        ),
        (
            SALESFORCE_STREAMS["CampaignMember"],
            {"Campaign": {"Type": "Webinar"}},
            "CampaignMember / Webinar",
        ),
        (HUBSPOT_STREAMS["events"], {"eventType": "e_visited_page"}, "events / e_visited_page"),
        (HUBSPOT_STREAMS["notes"], {"hs_note_body": "hello"}, "notes"),
    ],
)
def test_unmatched_activity_is_typed_other_and_named_by_its_kind(
    stream: Any, raw: dict, kind: str
) -> None:
    values, warnings, unmatched = RuleBook().derive(stream, raw)

    assert values == {"type": "other", "topic": None, "rep_touch": False}
    assert unmatched == kind
    assert warnings == ()


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[[activity.rules]]\nsignal = "pricing_pgae"\nobjects = ["events"]\n',
            '[[activity.rules]] #1 (signal "pricing_pgae") signal must be an activity of '
            '[[signals]] or rep activity ("call", "email", "meeting", "note", "task"), '
            'got "pricing_pgae"',
        ),
        (
            '[[activity.rules]]\nsignal = "call"\nsubjects = ["ok", "re:(unclosed"]\n',
            '[[activity.rules]] #1 (signal "call") subjects #2 is not a valid pattern: '
            '"re:(unclosed"',
        ),
        (
            '[[users.rules]]\nteam = "sales"\n',
            '[[users.rules]] #1 (team "sales") team must be one of "sdr", "ae", "manager", '
            '"marketing", got "sales"',
        ),
        (
            '[users]\nterritory_field = "Sales Region"\n',
            "[users] territory_field must be a field name",
        ),
        (
            '[[users.rules]]\nteam = "ae"\nroless = ["AE"]\n',
            '[[users.rules]] #1 (team "ae") unknown key "roless"',
        ),
    ],
)
def test_a_bad_rule_is_named_where_it_is(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")

    problems = check_settings(path, {})
    assert len(problems) == 1 and problems[0].startswith(f"{path}: {problem}")


# --- the sandbox: messy users, and an org in a second convention ------------------------------

ACCOUNTS, SEED = 200, 5


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(ACCOUNTS, SEED)


@contextmanager
def _connector(
    crm: str, org: Org, rules: RuleBook, convention: str = "a", tier: str = "unlimited"
) -> Iterator[Connector]:
    """The real connector against a fresh sandbox of ``org`` rendered in ``convention`` (a
    HubSpot portal of ``tier``: below Enterprise, web touches come from contacts' history)."""
    with start_sandbox(
        crm, org, convention=convention, **({"tier": tier} if crm == "hubspot" else {})
    ) as running:
        if crm == "hubspot":
            settings = HubSpotSettings(token=SecretStr(running.token))
            yield HubSpotConnector(settings, host=running.base_url, rules=rules)
            return
        options = SalesforceOptions()
        settings_sf = SalesforceSettings(
            auth="client_credentials",
            instance_url=options.instance_url,
            client_id=options.consumer_key,
            client_secret=SecretStr(options.consumer_secret),
        )
        yield SalesforceConnector(
            settings_sf, session=client_session(running.base_url), rules=rules
        )


def _pull(connector: Connector, stream: str) -> tuple[list[Record], Summary]:
    items = list(connector.pull(stream))
    summary = items[-1]
    assert isinstance(summary, Summary)
    return records(items), summary


USER_STREAM = {"salesforce": "User", "hubspot": "owners"}


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_the_default_rules_recover_the_team_of_the_sandbox_users(crm: str, org: Org) -> None:
    truth = {u["email"]: u for u in org.users.iter_rows(named=True)}
    with _connector(crm, org, RuleBook()) as connector:
        users, summary = _pull(connector, USER_STREAM[crm])

    teams = Counter(
        "unmatched"
        if u.values["role"] is None
        else u.values["role"] == truth[u.values["email"]]["role"]
        for u in users
    )
    assert teams[False] == 0  # never a wrong team
    assert teams[True] >= 0.75 * len(users)  # nearly every user
    assert summary.unmatched == (
        {USER_STREAM[crm]: teams["unmatched"]} if teams["unmatched"] else {}
    )
    territories = [
        u.values["territory"] == truth[u.values["email"]]["territory"]
        for u in users
        if u.values["role"] in ("sdr", "ae", "manager")
    ]
    assert all(territories)


ACTIVITY_STREAMS = {
    "salesforce": ("Task", "Event", "CampaignMember"),
    "hubspot": ("calls", "emails", "meetings", "events", "email_events"),
}
_SF_REP_B = (("call", "Task", "Call"), ("email", "Task", "Email"), ("meeting", "Event", None))
_HS_REP = (("call", "calls", None), ("meeting", "meetings", None), ("email", "emails", None))


def _rule(signal: str, rep: bool = False, **conditions: str | tuple[str, ...] | None) -> str:
    """One [[activity.rules]] table, its conditions given as patterns; a rep's touch, or a
    touch with a topic."""
    lines = [f'signal = "{signal}"', "rep_touch = true" if rep else "topic = true"]
    lines += [
        f"{key} = {json.dumps([value] if isinstance(value, str) else list(value))}"
        for key, value in conditions.items()
        if value is not None
    ]
    return "[[activity.rules]]\n" + "\n".join(lines) + "\n"


def _reps(table: tuple[tuple[str, str, str | None], ...]) -> list[str]:
    return [_rule(signal, rep=True, objects=obj, subtypes=sub) for signal, obj, sub in table]


def _convention_b(crm: str) -> str:
    """The settings an admin writes for an org in the sandbox's second convention."""
    if crm == "salesforce":
        touches = [
            _rule(key, objects="Task", types=t.type, subjects=t.subject)
            for key, t in TOUCHES_B.items()
            if t.type is not None
        ]
        members = [
            _rule(key, objects="CampaignMember", campaign_types=kind.type)
            for key, kind in CAMPAIGNS_B.items()
        ]
        return "".join([*touches, *_reps(_SF_REP_B), *members])
    events = [
        _rule(key, objects=("events", "email_events"), events=t.event_type, urls=_path(t.path))
        for key, t in WEB_TOUCHES_B.items()
    ]
    return "".join([*events, *_reps(_HS_REP)])


def _convention_a(crm: str) -> RuleBook:
    """The default rules, and on Salesforce campaign members as signals too."""
    members = tuple(
        ActivityRule(signal=key, topic=True, objects=("CampaignMember",), campaign_types=(kind,))
        for key, kind in (("webinar", "Webinar"), ("whitepaper", "Content"))
    )
    extra = members if crm == "salesforce" else ()
    return RuleBook(activity=ActivitySettings(rules=(*ActivitySettings().rules, *extra)))


def _path(path: str | None) -> str | None:
    """A sandbox site-map path as a rule's URL pattern (no query, no trailing slash)."""
    return None if path is None else path.split("?")[0].rstrip("/")


def _rules(tmp_path: Path, text: str) -> RuleBook:
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return rule_book(load_settings(path, {}))


def _signals(connector: Connector, crm: str) -> tuple[dict[str, tuple[Any, ...]], Counter[str]]:
    """Every activity's (type, topic, rep touch) by id, and the unmatched kinds."""
    typed: dict[str, tuple[Any, ...]] = {}
    unmatched: Counter[str] = Counter()
    for stream in ACTIVITY_STREAMS[crm]:
        records, summary = _pull(connector, stream)
        typed |= {
            r.id: (r.values["type"], r.values["topic"], r.values["rep_touch"]) for r in records
        }
        unmatched.update(summary.unmatched)
    return typed, unmatched


@pytest.mark.parametrize(
    ("crm", "tier"),
    [("salesforce", ""), ("hubspot", "unlimited"), ("hubspot", "professional")],
    ids=["salesforce", "hubspot-events-api", "hubspot-history"],
)
def test_an_org_in_another_convention_gives_the_same_signals_once_the_rules_say_so(
    crm: str, tier: str, org: Org, tmp_path: Path
) -> None:
    """Every source of activity (on HubSpot: the events API or contacts' history for web
    touches, the email events API for marketing email) is typed by the same rules."""
    with _connector(crm, org, _convention_a(crm), "a", tier) as a:
        expected, unmatched_a = _signals(a, crm)
    with _connector(crm, org, _rules(tmp_path, _convention_b(crm)), "b", tier) as b:
        got, unmatched_b = _signals(b, crm)
    with _connector(crm, org, RuleBook(), "b", tier) as b_default:
        untouched, unmatched_default = _signals(b_default, crm)

    assert got == expected and not unmatched_a and not unmatched_b
    marketing = {i for i, (kind, _, rep) in expected.items() if not rep}
    missed = {i for i in marketing if untouched[i][0] == "other"}
    assert missed and sum(unmatched_default.values()) == len(missed)
    # what the defaults do read of the second convention they read right: rep activity by
    # TaskSubtype alone, URLs under a locale, with a trailing slash or a query string
    assert all(untouched[i] == expected[i] for i in expected.keys() - missed)
    assert any(rep for _, _, rep in untouched.values())
