"""`handoff explain` and `handoff score` on a Salesforce org, from the state database alone.

One module-wide state database is filled by two real sync runs against an in-process Salesforce
sandbox at the world's present: a full one, then, after a burst of pricing-page visits on one
Nurture account, an incremental one that moves it up.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from sqlmodel import Session, col, select

from connectors.keys import salesforce_case_safe
from handoff.crm import open_crm, schema_spec
from handoff.reports import bounds_note, print_mirror_scores, print_people
from handoff.runs import run_config, scoring_setup
from handoff.settings import Settings
from sandbox.admin import NewActivity, add_activities
from sandbox.salesforce.ids import make_ids
from sync import Store, account_signals, scoring_state
from sync.explain import (
    AccountExplanation,
    AccountNotFound,
    AmbiguousAccount,
    MirrorScores,
    PersonLink,
    RankedAccount,
    account_domains,
    explain_account,
    find_account,
    score_mirror,
)
from sync.run import run_sync
from sync.state import Account, AccountSignals, CurrentScore
from sync.writeback import score_history
from tests.cli_fixtures import handoff
from tests.sandbox_fixtures import sandbox_settings

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
    settings = sandbox_settings(directory, "salesforce", ACCOUNTS, seed=11)
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
    yield Scored(str(directory / "settings.toml"), settings, now, burst)


def _explained(scored: Scored, session: Session, account: str) -> AccountExplanation:
    settings = scored.settings
    return explain_account(
        session, scoring_setup(settings), settings.matching, account, scored.now + timedelta(1)
    )


def _some_accounts(session: Session, burst: str) -> list[str]:
    """The burst account, the best one and a disqualified one."""
    best = select(CurrentScore.account_id).order_by(
        col(CurrentScore.score).desc(), col(CurrentScore.account_id)
    )
    disqualified = best.where(CurrentScore.tier == "disqualified")
    return [burst, session.exec(best).first(), session.exec(disqualified).first()]  # type: ignore[list-item]


def _as_written(found: AccountExplanation, session: Session) -> None:
    """The explanation shows the score its last run wrote, and the reasons written with it."""
    current = session.get(CurrentScore, found.account.id)
    assert current is not None
    assert (found.score, found.tier, found.model_version, found.scored_at) == (
        current.score, current.tier, current.model_version, current.scored_at
    )  # fmt: skip
    latest = score_history(session, found.account.id)[-1]
    assert latest.scored_at == current.scored_at
    written = [(c["key"], c["points"], c["reason"]) for c in latest.contributions]
    shown = [(c.key, round(c.points, 2), c.sentence) for c in found.contributions]
    assert written and shown[: len(written)] == written


def test_explain_scores_the_one_account_as_its_run_did_without_reading_the_org(
    scored: Scored, monkeypatch: pytest.MonkeyPatch
) -> None:
    def whole_org(*args: Any) -> None:
        raise AssertionError("explain read every account's history")

    read_for: list[Any] = []
    linked = account_signals.linked_activities

    def recorded(session: Session, now: datetime, account_ids: Any = None) -> Any:
        read_for.append(account_ids)
        return linked(session, now, account_ids)

    monkeypatch.setattr(scoring_state, "load_history", whole_org)
    monkeypatch.setattr(account_signals, "linked_activities", recorded)
    with Store.open(scored.settings.state.database_url) as store, store.session() as session:
        for account in _some_accounts(session, scored.burst):
            _as_written(_explained(scored, session, account), session)
        moved = _explained(scored, session, scored.burst)

    assert all(ids is not None for ids in read_for)
    assert moved.tier != "nurture" and [e.tier for e in moved.history][-1] == "Nurture"
    assert moved.contributions[0].sentence.startswith("Visited pricing 8x")


def test_explain_rebuilds_an_account_whose_stored_sums_moved_on_after_its_last_score(
    scored: Scored,
) -> None:
    """A run that updated the sums and stopped before it recorded the scores: the sums are not
    those the score was computed from, so the account is scored from its own activities."""
    with Store.open(scored.settings.state.database_url) as store, store.session() as session:
        held = session.get(AccountSignals, scored.burst)
        assert held is not None
        held.as_of = scored.now + timedelta(hours=1)
        held.sums = {**held.sums, "s": [value * 10 for value in held.sums["s"]]}
        session.add(held)
        session.flush()
        found = _explained(scored, session, scored.burst)
        _as_written(found, session)
        session.rollback()


def test_explain_scores_an_account_never_scored_at_the_moment_asked(scored: Scored) -> None:
    later = scored.now + timedelta(days=60)
    settings = scored.settings
    with Store.open(settings.state.database_url) as store, store.session() as session:
        current = session.get(CurrentScore, scored.burst)
        assert current is not None
        written = current.score
        session.delete(current)
        session.flush()
        found = explain_account(
            session, scoring_setup(settings), settings.matching, scored.burst, later
        )
        session.rollback()

    assert found.scored_at == later
    assert found.score < written  # the burst has decayed by then


def test_score_shows_a_salesforce_account_domain_from_its_website(scored: Scored) -> None:
    # as narrow as 80 columns (a pipe's width): the names wrap, the ids and domains stay whole
    shown = handoff("score", "--top", "5", "--settings", scored.settings_path, COLUMNS="80")
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in shown.stdout.splitlines()
        if line.startswith("│ 001")
    ]
    with Store.open(scored.settings.state.database_url) as store, store.session() as session:
        websites = {row[0]: session.get(Account, row[0]) for row in rows}

    assert shown.returncode == 0, shown.stderr
    assert len(rows) == 5 and "…" not in shown.stdout  # nothing cut short
    for account_id, _, domain, _, _ in rows:
        account = websites[account_id]
        assert account is not None and account.domain is None and account.website
        assert domain and domain in account.website.lower(), (domain, account.website)
        assert domain == account_domains([account])[account_id]  # whole, not cut to fit 80
    # explain names the account by the same domain, not by the website it was read from
    first_id, first_domain = rows[0][0], rows[0][2]
    explained = handoff("explain", first_id, "--settings", scored.settings_path)
    assert explained.stdout.splitlines()[0].endswith(f"({first_id}, {first_domain})"), explained


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


def test_score_ranks_accounts_at_the_cap_by_their_points_before_it(scored: Scored) -> None:
    with Store.open(scored.settings.state.database_url) as store, store.session() as session:
        setup = scoring_setup(scored.settings)
        book = scoring_state.score_book(session, setup, scored.now)
        shown = score_mirror(session, setup, scored.now, top=ACCOUNTS)
    raw = dict(zip(book.account_ids, book.scores.contributions.raw.tolist(), strict=True))
    capped = [ranked.account.id for ranked in shown.top if ranked.score == 100]
    # the org holds several accounts at 100 whose ids are not in the order of their points
    assert len(capped) >= 3 and sorted(capped) != sorted(capped, key=lambda a: -raw[a])
    assert capped == sorted(capped, key=lambda a: -raw[a])
    assert [ranked.score for ranked in shown.top] == sorted(
        (ranked.score for ranked in shown.top), reverse=True
    )


def test_explain_says_when_the_points_shown_were_shrunk_to_fit_the_scale(scored: Scored) -> None:
    with Store.open(scored.settings.state.database_url) as store, store.session() as session:
        moved = _explained(scored, session, scored.burst)
        inside = session.exec(
            select(CurrentScore.account_id).where(CurrentScore.score > 0, CurrentScore.score < 100)
        ).first()
        assert inside is not None
        within = _explained(scored, session, inside)

    assert moved.score == 100 and moved.points_before_bounds is not None
    shown = sum(c.points for c in moved.contributions)
    assert moved.points_before_bounds > 100 >= shown - 0.5
    note = bounds_note(moved)
    assert note is not None and f"came to {moved.points_before_bounds:.0f}" in note
    assert within.points_before_bounds == pytest.approx(within.score, abs=0.5)
    assert bounds_note(within) is None
    # what rounds back onto the scale gets no note; under it, the negative reasons shrank
    assert bounds_note(replace(moved, points_before_bounds=100.3)) is None
    half = bounds_note(replace(moved, points_before_bounds=100.5))  # past the end, said so
    assert half is not None and "came to 101," in half
    under = bounds_note(replace(within, points_before_bounds=-3.0))
    assert under is not None and "end at 0: each negative reason" in under


def test_explain_adds_the_base_and_the_smaller_reasons_so_the_points_make_the_score(
    scored: Scored,
) -> None:
    with Store.open(scored.settings.state.database_url) as store, store.session() as session:
        ids = session.exec(select(CurrentScore.account_id).where(CurrentScore.score > 0)).all()
        found = [_explained(scored, session, account_id) for account_id in ids]
    assert len(found) >= 10
    for each in found:  # off the scale too: the points shown are the ones shrunk to fit it
        total = each.base_points + sum(c.points for c in each.contributions) + each.smaller_points
        assert total == pytest.approx(each.score, abs=0.5), each.account.id
    shown = handoff("explain", scored.burst, "--settings", scored.settings_path).stdout
    assert "base: where every account starts" in shown and "= 100" in shown
    table = shown.split("Why this score")[1].split("Score history")[0]
    assert re.search(r"\([+-]\d+\)", table) is None  # each reason's points shown once


def test_explain_names_a_person_listed_again_under_another_id_as_a_duplicate() -> None:
    def lead(record_id: str, email: str | None) -> PersonLink:
        return PersonLink(record_id, "lead", "Robert Taylor", email, None, "domain", 0.97)

    console = Console(record=True, width=200)
    people = (
        lead("00Q1", "robert@titan.example"),
        lead("00Q2", "linda@titan.example"),
        lead("00Q3", "Robert@Titan.example"),
        lead("00Q4", None),
        lead("00Q5", None),
    )
    print_people(console, "Linked people", people, orphans=False)
    lines = console.export_text().splitlines()

    assert lines[0] == "Linked people (5):"
    assert lines[3].startswith("  00Q3 lead Robert Taylor <Robert@Titan.example>")
    assert lines[3].endswith("(same email as 00Q1: another record, perhaps a duplicate)")
    others = [lines[1], lines[2], lines[4], lines[5]]
    assert not any("duplicate" in line for line in others), others  # no email: not compared


def test_the_top_accounts_keep_their_names_in_an_80_column_terminal() -> None:
    long_domain = "a-very-long-registrable-domain-of-a-holding-company.example"
    top = tuple(
        RankedAccount(
            Account(
                id=f"00100000000000{n}", name=f"Holding Company Number {n}", domain=long_domain
            ),
            100 - n,
            "Disqualified" if n else "AE",
            long_domain,
        )
        for n in range(3)
    )
    book = SimpleNamespace(
        account_ids=["a"] * 3,
        scores=SimpleNamespace(model_version="rules-1"),
        model_kind="rules",
    )
    preview = MirrorScores(book, {"AE": 1, "Disqualified": 2}, top, "cold start")  # type: ignore[arg-type]
    console = Console(record=True, width=80)

    print_mirror_scores(console, preview)

    shown = console.export_text()
    rows = [line.split("│") for line in shown.splitlines() if line.startswith("│ 001")]
    assert [row[1].strip() for row in rows] == [f"00100000000000{n}" for n in range(3)]
    assert all(row[2].strip().startswith("Holding") for row in rows), shown
    assert all(row[3].strip().endswith("…") for row in rows), shown  # the domain cut short
    table = [line for line in shown.splitlines() if line[:1] in "┏┃┡│└"]
    assert max(map(len, table)) <= 80


def test_top_accounts_at_the_scale_s_end_show_the_points_that_rank_them() -> None:
    # many accounts share the score 100 (the rules model's above all): their points before the
    # scale's end are what ranks them, so the list shows them; a disqualified account's score is
    # forced down, not past the end, and a score within the scale shows alone
    rows = [
        ("a1", 100, "AE", 134.4),
        ("a2", 100, "AE", 101.2),
        ("a3", 100, "AE", 100.3),
        ("a4", 0, "Disqualified", 150.0),
        ("a5", 0, "Nurture", -7.6),
        ("a6", 57, "SDR", 57.2),
        ("a7", 100, "AE", 100.5),  # half a point past the end: shown so, not as 100
        ("a8", 0, "Disqualified", -12.0),
    ]
    top = tuple(
        RankedAccount(
            Account(id=i, name=f"Account {i}"), score, tier, None, points, tier == "Disqualified"
        )
        for i, score, tier, points in rows
    )
    book = SimpleNamespace(
        account_ids=["a"] * 8, scores=SimpleNamespace(model_version="rules-1"), model_kind="rules"
    )
    preview = MirrorScores(book, {"AE": 3}, top, "cold start")  # type: ignore[arg-type]
    console = Console(record=True, width=100)

    print_mirror_scores(console, preview)

    shown = console.export_text()
    cells = {
        row[1].strip(): row[4].strip()
        for row in (line.split("│") for line in shown.splitlines() if line.startswith("│ a"))
    }
    assert cells == {"a1": "100 (134)", "a2": "100 (101)", "a3": "100", "a4": "0",
                     "a5": "0 (-8)", "a6": "57", "a7": "100 (101)", "a8": "0"}  # fmt: skip
    assert "Scores stop at 100: the number in brackets is the account's points" in shown
    assert "(the CRM shows 100)" in shown


def test_a_top_account_name_wraps_at_its_spaces_its_domain_cut_short_first() -> None:
    name, domain = "MeridianVault Energy Corporation", "meridianvaultenergycorporation.example"
    top = tuple(
        RankedAccount(Account(id=f"001Dn00000000{n}IAA", name=name), 100, "AE", domain, 124.0)
        for n in range(2)
    )
    book = SimpleNamespace(
        account_ids=["a"] * 2, scores=SimpleNamespace(model_version="m"), model_kind="rules"
    )
    console = Console(record=True, width=80)

    print_mirror_scores(console, MirrorScores(book, {"AE": 2}, top, "cold start"))  # type: ignore[arg-type]

    shown = console.export_text()
    names = [line.split("│")[2].strip() for line in shown.splitlines() if line.startswith("│ ")]
    assert names[:3] == ["MeridianVault", "Energy", "Corporation"], shown  # no word folded
    assert "meridianvault" in shown and "…" in shown  # the domain cut short instead
    assert max(len(line) for line in shown.splitlines() if line[:1] in "┏┃┡│└") <= 80


@pytest.mark.parametrize("width", [60, 80])
def test_the_top_accounts_table_keeps_within_a_narrow_terminal(width: int) -> None:
    # a name's long word is kept whole only where the room allows: the table never passes the
    # terminal's width, and the scores and tiers are never cut off
    top = (
        RankedAccount(Account(id="001Dn0000000014IAA", name="Supercalifragilistic Holdings"),
                      100, "Disqualified", "supercalifragilisticholdings.example", 134.0),
        RankedAccount(Account(id="001Dn000000001vIAA", name="Short"), 100, "AE", "s.example",
                      120.0),
    )  # fmt: skip
    book = SimpleNamespace(
        account_ids=["a"] * 2, scores=SimpleNamespace(model_version="m"), model_kind="rules"
    )
    console = Console(record=True, width=width)

    print_mirror_scores(console, MirrorScores(book, {"AE": 2}, top, "cold start"))  # type: ignore[arg-type]

    table = [line for line in console.export_text().splitlines() if line[:1] in "┏┃┡│└"]
    assert max(map(len, table)) <= width
    assert any("100 (120)" in line and "AE" in line for line in table), table


def test_no_points_are_shown_when_every_top_score_is_within_the_scale() -> None:
    top = (RankedAccount(Account(id="a1", name="A"), 88, "AE", None, 88.4),)
    book = SimpleNamespace(
        account_ids=["a"], scores=SimpleNamespace(model_version="m"), model_kind="predictive"
    )
    console = Console(record=True, width=100)

    print_mirror_scores(console, MirrorScores(book, {"AE": 1}, top, "promoted"))  # type: ignore[arg-type]

    shown = console.export_text()
    assert "scale's end" not in shown and "│    88 │" in shown


def test_an_account_is_found_by_its_name_with_accents_and_case_set_aside(tmp_path: Path) -> None:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    names = {"a1": "Señora Beat Materials SARL", "a2": "Señor Café", "a3": "Öko Materials GmbH"}
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        with store.session() as session:
            for account_id, name in names.items():
                session.add(Account(id=account_id, name=name, crm_modified_at=at, synced_at=at))
            session.commit()
        with store.session() as session:
            exact = find_account(session, "senora beat materials sarl")
            partial = find_account(session, "SENOR CAFE")
            with pytest.raises(AmbiguousAccount) as several:
                find_account(session, "materials")  # SQL finds both: no accents in the way
            with pytest.raises(AmbiguousAccount) as folded:
                find_account(session, "materiäls")  # found only with accents set aside
            with pytest.raises(AccountNotFound):
                find_account(session, "senorita")

    assert (exact.id, partial.id) == ("a1", "a2")
    assert {a.id for a in several.value.candidates} == {"a1", "a3"}
    assert {a.id for a in folded.value.candidates} == {"a1", "a3"}


def test_a_salesforce_account_is_found_by_the_15_character_id_its_url_shows(
    tmp_path: Path,
) -> None:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        with store.session() as session:
            for account_id in ("001Dn000000001vIAA", "001Dn000000001VIAA"):  # one case apart
                session.add(
                    Account(id=account_id, name=account_id, crm_modified_at=at, synced_at=at)
                )
            session.commit()
        with store.session() as session:
            short = find_account(session, "001Dn000000001v")
            whole = find_account(session, "001Dn000000001vIAA")
            with pytest.raises(AccountNotFound):
                find_account(session, "001Dn000000001x")  # no such account, short or long

    assert short.id == whole.id == "001Dn000000001vIAA"
    # the suffix is the case-safe checksum the sandbox gives its ids, as Salesforce does
    assert all(
        salesforce_case_safe(full[:15]) == full
        for full in make_ids("Account", np.arange(50, dtype=np.int64)).to_list()
    )
