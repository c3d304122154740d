"""Lead-to-account matching (D3): the tricky cases, the keys it matches on, and a generated org."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handoff.settings import SettingsError, load_settings
from sandbox.generator import generate_org
from sandbox.org import Org
from sandbox.vocab import FREEMAIL_DOMAINS
from sync.config import MatchingSettings
from sync.matching import COLUMNS, REASONS, Link, Matching, match_people, normalise
from sync.matching.normalise import (
    company_table,
    domain_table,
    email_host,
    personal_domains,
    website_host,
)

# id, name, website, country, phone, parent_id, alias_domains, created_at (year)
ACCOUNTS = [
    (1, "Acme Corporation", "https://www.acme.com", "US", "+1 415 555 0100", None, None, 2010),
    (2, "Acme Ltd", "acme.co.uk", "GB", None, None, None, 2012),
    (3, "Globex GmbH", "https://globex.de/", "DE", None, None, None, 2011),
    (4, "Initech Inc.", "initech.com", "US", None, None, None, 2005),
    (5, "Initech Deutschland GmbH", "www.initech.de", "DE", None, 4, None, 2015),
    (6, "Initech France SAS", "https://www.initech.com/fr", "FR", None, 4, None, 2016),
    (7, "Umbrella Corp", "umbrella.com", "US", None, None, None, 2018),
    (8, "UMBRELLA CORP", "www.umbrella.com", "US", None, None, None, 2014),
    (9, "Zürich Versicherungs AG", "zuerich-versicherung.ch", "CH", None, None, None, 2009),
    (10, "株式会社サクラミドリ", "sakuramidori.co.jp", "JP", None, None, None, 2013),
    (11, "Hooli", "https://hooli.github.io", "US", None, None, None, 2017),
    (12, "Pied Piper", "piedpiper.github.io/", "US", None, None, None, 2019),
    (13, "Soylent", "soylent.com", "US", None, None, ["soylentgreen.com"], 2008),
    (14, "Vandelay Industries", None, "CA", None, None, None, 2007),
]


@dataclass(frozen=True)
class Case:
    """A person, and the account (or status and reason) matching must give them."""

    id: str
    email: str | None = None
    company: str | None = None
    country: str | None = None
    website: str | None = None
    account_id: int | None = None
    converted_account_id: int | None = None
    expect: int | None = None
    status: str = "linked"
    why: str | None = None  # the rule when linked, else the reason


CASES = [
    Case(
        "gmail lead of a known company",
        "jane@gmail.com",
        "Acme Corporation",
        "US",
        expect=1,
        why="name_and_support",
    ),
    Case(
        "gmail lead without a company",
        "joe.b@gmail.com",
        status="orphan",
        why="personal_email_no_company",
    ),
    Case(
        "gmail lead with a junk company",
        "x@gmail.com",
        "n/a",
        status="orphan",
        why="personal_email_no_company",
    ),
    Case(
        "acme.co.uk is not acme.com",
        "ann@acme.co.uk",
        "Acme",
        "GB",
        expect=2,
        why="domain_and_name",
    ),
    Case("acme.com is not acme.co.uk", "bob@ACME.com", "ACME", expect=1, why="domain_and_name"),
    Case("Acme GmbH is ACME", company="GLOBEX", country="DE", expect=3, why="name_and_support"),
    Case(
        "legal form and punctuation folded",
        company="Globex, G.m.b.H.",
        country="DE",
        expect=3,
        why="name_and_support",
    ),
    Case(
        "subsidiary's domain, parent's name",
        "kai@initech.de",
        "Initech",
        "DE",
        expect=5,
        why="domain",
    ),
    Case(
        "subsidiary sharing the parent's domain",
        "marie@initech.com",
        "Initech France",
        "FR",
        expect=6,
        why="domain_and_name",
    ),
    Case(
        "parent's own employee",
        "peter@initech.com",
        "Initech",
        "US",
        expect=4,
        why="domain_and_name",
    ),
    Case(
        "parent's name, subsidiary's country",
        "luc@initech.com",
        "Initech",
        "FR",
        status="review",
        why="ambiguous_hierarchy",
    ),
    Case(
        "shared domain and nothing else",
        "anon@initech.com",
        status="review",
        why="ambiguous_hierarchy",
    ),
    Case("two accounts with one domain", "ursula@umbrella.com", expect=7, why="domain"),
    Case(
        "unicode name without accents",
        company="Zurich Versicherungs",
        country="CH",
        expect=9,
        why="name_and_support",
    ),
    Case(
        "Japanese legal form after the name",
        company="サクラミドリ株式会社",
        country="JP",
        expect=10,
        why="name_and_support",
    ),
    Case("empty company, no email", country="US", status="orphan", why="missing_data"),
    Case(
        "company not in the CRM",
        "bruce@wayne-enterprises.com",
        "Wayne Enterprises",
        status="orphan",
        why="company_not_in_crm",
    ),
    Case(
        "a github.io website",
        company="Hooli",
        website="https://hooli.github.io/about",
        expect=11,
        why="name_and_support",
    ),
    Case("github.io hosts are separate domains", "gavin@hooli.github.io", expect=11, why="domain"),
    Case("another github.io host", "richard@piedpiper.github.io", expect=12, why="domain"),
    Case("alias domain", "v@soylentgreen.com", expect=13, why="domain"),
    Case("typo in the company", company="Vandelay Industires", expect=14, why="similar_name"),
    Case("domain learned from a contact", "art@vandelay.com", expect=14, why="domain"),
    Case(
        "existing contact link wins", "c@acme.com", "Acme", account_id=3, expect=3, why="crm_link"
    ),
    Case("converted lead", converted_account_id=9, expect=9, why="crm_link"),
    Case(
        "name against another company's domain",
        "w@acme-consulting.com",
        "Acme Corporation",
        status="review",
        why="low_confidence",
    ),
    Case(
        "link to a deleted account is ignored",
        "z@soylent.com",
        account_id=99,
        expect=13,
        why="domain",
    ),
]
# Other people in the book: a contact whose email teaches Vandelay's domain and one at Umbrella.
BACKGROUND = [
    Case("vandelay contact", "george@vandelay.com", account_id=14, expect=14),
    Case("umbrella contact", "al@umbrella.com", account_id=7, expect=7),
]


def _accounts() -> pl.DataFrame:
    columns = ("account_id", "name", "website", "country", "phone", "parent_id", "alias_domains")
    frame = pl.DataFrame(
        [row[:-1] for row in ACCOUNTS], schema=list(columns), orient="row"
    ).with_columns(pl.col("account_id", "parent_id").cast(pl.Int64))
    return frame.with_columns(created_at=pl.Series([row[-1] for row in ACCOUNTS], dtype=pl.Int64))


def _people(cases: list[Case]) -> pl.DataFrame:
    fields = ("email", "company", "country", "website", "account_id", "converted_account_id")
    data: dict[str, Any] = {"person_id": [c.id for c in cases]}
    data |= {f: [getattr(c, f) for c in cases] for f in fields}
    frame = pl.DataFrame(data, schema_overrides={f: pl.String for f in fields[:4]})
    return frame.with_columns(pl.col("account_id", "converted_account_id").cast(pl.Int64))


@pytest.fixture(scope="module")
def matched() -> dict[str, dict[str, Any]]:
    result = match_people(_accounts(), _people(CASES + BACKGROUND))
    return {row["person_id"]: row for row in result.frame.iter_rows(named=True)}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_tricky_cases(case: Case, matched: dict[str, dict[str, Any]]) -> None:
    row = matched[case.id]
    assert row["status"] == case.status
    assert row["account_id"] == case.expect
    assert (row["rule"] if case.status == "linked" else row["reason"]) == case.why


def test_every_outcome_is_explained(matched: dict[str, dict[str, Any]]) -> None:
    for row in matched.values():
        assert (row["account_id"] is not None) == (row["status"] == "linked")
        assert (row["reason"] is None) == (row["status"] == "linked")
        assert (row["confidence"] is not None) == (row["status"] != "orphan")


def test_review_lists_the_candidates(matched: dict[str, dict[str, Any]]) -> None:
    assert sorted(matched["shared domain and nothing else"]["candidate_ids"]) == [4, 6]
    assert matched["name against another company's domain"]["candidate_ids"] == [1]


def test_two_accounts_with_one_domain_follow_the_tie_breaks() -> None:
    person = _people([CASES[12], *BACKGROUND])
    tie_breaks: dict[tuple[Any, ...], tuple[int | None, str | None]] = {
        ("most_contacts",): (7, "most_contacts"),
        ("oldest",): (8, "oldest"),
        ("review",): (None, None),
        ("most_open_opportunities", "review"): (None, None),
    }
    for order, (account, tie_break) in tie_breaks.items():
        settings = MatchingSettings(tie_breaks=order)
        row = match_people(_accounts(), person, settings).frame.row(0, named=True)
        assert (row["account_id"], row["tie_break"]) == (account, tie_break), order
        if account is None:
            assert (row["reason"], row["candidates"]) == ("ambiguous_accounts", 2)


def test_min_confidence_sends_weaker_rules_to_review() -> None:
    typo = [c for c in CASES if c.id == "typo in the company"]
    settings = MatchingSettings(min_confidence=0.8)
    row = match_people(_accounts(), _people(typo), settings).frame.row(0, named=True)
    assert (row["status"], row["reason"], row["rule"]) == (
        "review",
        "low_confidence",
        "similar_name",
    )


def test_personal_domains_overlay_stops_domain_links() -> None:
    lead = _people([Case("alias as personal", "v@soylentgreen.com")])
    settings = MatchingSettings(personal_domains_extra=("SoylentGreen.com",))
    row = match_people(_accounts(), lead, settings).frame.row(0, named=True)
    assert (row["status"], row["reason"]) == ("orphan", "personal_email_no_company")


def test_fuzzy_threshold_is_a_setting() -> None:
    typo = _people([c for c in CASES if c.id == "typo in the company"])
    row = match_people(_accounts(), typo, MatchingSettings(fuzzy_threshold=99)).frame.row(0)
    assert row[COLUMNS.index("status")] == "orphan"


def test_minimal_frames_are_enough() -> None:
    accounts = pl.DataFrame({"account_id": ["001A"], "name": ["Acme Inc."]})
    people = pl.DataFrame({"person_id": ["00QA", "00QB"], "company": ["ACME", None]})
    frame = match_people(accounts, people).frame
    assert frame["account_id"].to_list() == ["001A", None]
    assert frame["reason"].to_list() == [None, "missing_data"]


def test_result_values_and_run_log_counts(matched: dict[str, dict[str, Any]]) -> None:
    result = match_people(_accounts(), _people(CASES + BACKGROUND))
    links = list(result.links())
    assert all(isinstance(link, Link) and link.account_id is not None for link in links)
    counts = result.counts()
    assert counts["linked"] == len(links)
    assert counts["linked"] + counts["review"] + counts["orphan"] == len(CASES + BACKGROUND)
    assert counts["orphan.personal_email_no_company"] == 2
    assert set(result.frame.columns) == set(COLUMNS)
    reasons = {k.split(".", 1)[1] for k in counts if k.startswith(("review.", "orphan."))}
    assert reasons <= set(REASONS)


# Normalisation ----------------------------------------------------------------------------

WEBSITES = [
    ("HTTPS://WWW.ACME.COM/", "acme.com"),
    ("www.acme.co.uk/de", "acme.co.uk"),
    ("http://user@acme.de:8080/x?y=1", "acme.de"),
    ("https://blog.acme.com.br", "acme.com.br"),
    ("acme.github.io", "acme.github.io"),
    ("https://docs.hooli.github.io/x", "hooli.github.io"),
    ("github.io", None),
    ("https://192.168.0.1/", None),
    ("", None),
    (None, None),
]


def _domains(hosts: pl.Series) -> list[str | None]:
    table = domain_table(hosts)
    return (
        hosts.to_frame("host")
        .join(table, on="host", how="left", maintain_order="left")["domain"]
        .to_list()
    )


def test_registrable_domains_from_websites() -> None:
    sites = pl.DataFrame({"site": [w for w, _ in WEBSITES]}, schema={"site": pl.String})
    hosts = sites.select(website_host(pl.col("site"))).to_series()
    assert _domains(hosts) == [d for _, d in WEBSITES]


def test_registrable_domains_from_emails() -> None:
    emails = pl.Series(["Jo.Doe@Mail.ACME.co.uk", "x@gmail.com.", "no-at-sign", None, "a@"])
    hosts = emails.to_frame("e").select(email_host(pl.col("e"))).to_series()
    assert _domains(hosts) == ["acme.co.uk", "gmail.com", None, None, None]


def test_domains_are_found_without_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("tldextract tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    normalise._extractor.cache_clear()
    assert _domains(pl.Series(["shop.example.co.uk"])) == ["example.co.uk"]
    assert normalise._extractor().suffix_list_urls == ()


def test_personal_domains_come_from_the_maintained_list() -> None:
    assert set(FREEMAIL_DOMAINS) <= personal_domains()
    assert "acme.com" not in personal_domains()
    assert "mail.example.org" in personal_domains([" Mail.Example.ORG "])


COMPANY_KEYS = [
    ("ACME GmbH", "acme"),
    ("Acme", "acme"),
    ("Acme, Inc.", "acme"),
    ("Acme UK Ltd", "acmeuk"),
    ("Foo GmbH & Co. KG", "foo"),
    ("Foo Sp. z o.o.", "foo"),
    ("Zürich Versicherungs AG", "zurichversicherungs"),
    ("Ærø Søfart A/S", "aerosofart"),
    ("Straße Co., Ltd.", "strasse"),
    ("\uff21\uff22\uff23 Inc", "abc"),  # full-width letters
    ("株式会社サクラミドリ", "サクラミドリ"),
    ("サクラミドリ株式会社", "サクラミドリ"),
    ("Bright Path Systems", "brightpathsystems"),
    ("BrightPath Systems", "brightpathsystems"),
    ("Company Ltd", "company"),
    ("-", None),
    ("   ", None),
]


@pytest.mark.parametrize(("name", "key"), COMPANY_KEYS)
def test_company_keys(name: str, key: str | None) -> None:
    assert company_table(pl.Series([name]))["key"].to_list() == [key]


_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyzéüøñ -.,&", min_size=1, max_size=30)


@given(_NAMES, st.sampled_from(["GmbH", "Inc.", "Ltd", "S.A.", "LLC", "Corp.", "株式会社"]))
def test_a_legal_form_never_changes_the_key(name: str, form: str) -> None:
    keys = company_table(pl.Series([name, f"{name} {form}"])).sort("company")
    by_name = dict(zip(keys["company"], keys["key"], strict=True))
    if by_name[name] is not None:
        assert by_name[f"{name} {form}"] == by_name[name]


@given(_NAMES)
def test_case_and_accents_never_change_the_key(name: str) -> None:
    plain = name.translate(str.maketrans("éüøñ", "euon"))
    keys = company_table(pl.Series([name, name.upper(), plain]))
    assert keys["key"].n_unique() == 1


# A generated org ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(3_000, seed=5)


@pytest.fixture(scope="module")
def org_matching(org: Org) -> Matching:
    accounts = org.accounts.rename({"alias_domain": "alias_domains"}).drop("domain")
    return match_people(accounts, org.people)


def _scored(matching: Matching, org: Org) -> pl.DataFrame:
    canonical = org.truth.accounts.select(
        "account_id", canonical=pl.coalesce("duplicate_of", "account_id")
    )
    truth = org.truth.people.join(
        canonical, left_on="true_account_id", right_on="account_id", how="left"
    ).select("person_id", true_canonical="canonical")
    frame = matching.frame.join(truth, on="person_id").join(canonical, on="account_id", how="left")
    return frame.with_columns(
        right=(pl.col("canonical") == pl.col("true_canonical")).fill_null(False)
    )


def test_generated_org_links_precisely(org: Org, org_matching: Matching) -> None:
    linked = _scored(org_matching, org).filter(pl.col("status") == "linked")
    inferred = linked.filter(pl.col("rule") != "crm_link")
    assert linked["right"].mean() >= 0.99
    assert inferred["right"].mean() >= 0.99
    assert inferred.height > 0.3 * linked.height


def test_generated_org_never_links_by_a_personal_domain(org: Org, org_matching: Matching) -> None:
    domain = pl.col("email").str.to_lowercase().str.split("@").list.last()
    by_domain = org_matching.frame.join(org.people, on="person_id").filter(
        pl.col("rule").cast(pl.String).is_in(["domain", "domain_and_name"])
        & domain.is_in(list(FREEMAIL_DOMAINS))
    )
    assert by_domain.height == 0


def test_generated_org_gives_everyone_one_outcome(org: Org, org_matching: Matching) -> None:
    frame = org_matching.frame
    assert frame.height == org.people.height
    assert frame["person_id"].n_unique() == frame.height
    assert frame.filter(pl.col("status") != "linked")["reason"].null_count() == 0


# Settings ------------------------------------------------------------------------------------

BAD_SETTINGS = [
    ("fuzzy_threshold = 101", "[matching] fuzzy_threshold must be an integer between 50 and 100"),
    ('tie_breaks = ["review", "oldest"]', '[matching] tie_breaks must end at "review"'),
    ('tie_breaks = ["newest"]', "[matching] tie_breaks must be a list of values from"),
    ('personal_domains_extra = ["not a domain"]', "[matching] personal_domains_extra #1 must be"),
]


@pytest.mark.parametrize(("line", "problem"), BAD_SETTINGS)
def test_bad_matching_settings_are_named(tmp_path: Any, line: str, problem: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(f"[matching]\n{line}\n")
    with pytest.raises(SettingsError) as error:
        load_settings(path, {})
    assert problem in str(error.value)


def test_matching_settings_defaults() -> None:
    settings = MatchingSettings()
    assert settings.fuzzy_threshold == 92
    assert settings.tie_breaks == ("most_contacts", "most_open_opportunities", "oldest")
