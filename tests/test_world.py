"""The synthetic org: deterministic, realistic in its shares, consistent, and honestly learnable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from sandbox.generator import generate_org
from sandbox.org import FORMAT_VERSION, Org, OrgError, load_org, non_ascii_share, save_org
from sandbox.truth import opened_within
from sandbox.vocab import ACTIVITY_TYPES, FREEMAIL_DOMAINS

ACCOUNTS = 5_000


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(ACCOUNTS, seed=11)


def _frames(org: Org) -> dict[str, pl.DataFrame]:
    return {
        "accounts": org.accounts,
        "people": org.people,
        "users": org.users,
        "activities": org.activities,
        "opportunities": org.opportunities,
        "dispositions": org.dispositions,
        "truth.people": org.truth.people,
        "truth.accounts": org.truth.accounts,
        "truth.bursts": org.truth.bursts,
    }


def test_same_seed_gives_an_identical_org(org: Org) -> None:
    again = generate_org(ACCOUNTS, seed=11)
    for name, frame in _frames(org).items():
        assert frame.equals(_frames(again)[name]), name


def test_another_seed_gives_another_org(org: Org) -> None:
    other = generate_org(ACCOUNTS, seed=12)
    assert not org.accounts["name"].equals(other.accounts["name"])


def test_reference_sizes_scale_with_accounts(org: Org) -> None:
    assert org.accounts.height == ACCOUNTS
    assert org.people.height == 5 * ACCOUNTS
    assert org.activities.height == pytest.approx(50 * ACCOUNTS, rel=0.05)


# (what, measured share, low, high): the tolerances the brief's realism promises rest on
def _shares(org: Org) -> list[tuple[str, float, float, float]]:
    people, accounts = org.people, org.accounts
    truth = org.truth.people.join(people.select("person_id", "kind"), on="person_id")
    leads = truth.filter(pl.col("kind") == "lead")
    emails = people["email"].drop_nulls().str.to_lowercase().str.split("@").list.last()
    return [
        ("personal email", float(emails.is_in(list(FREEMAIL_DOMAINS)).mean()), 0.13, 0.17),
        ("orphan leads", float(leads["true_account_id"].is_null().mean()), 0.10, 0.16),
        ("subsidiaries", float(accounts["parent_id"].is_not_null().mean()), 0.05, 0.09),
        ("unicode account names", non_ascii_share(accounts["name"]), 0.04, 0.15),
        (
            "unicode people names",
            non_ascii_share(people["last_name"] + people["first_name"]),
            0.15,
            0.45,
        ),
        (
            "converted leads",
            float(people.filter(pl.col("kind") == "lead")["is_converted"].mean()),
            0.05,
            0.12,
        ),
        (
            "duplicate people",
            float(org.truth.people["duplicate_of"].is_not_null().mean()),
            0.015,
            0.025,
        ),
        (
            "leads without company",
            float(people.filter(pl.col("kind") == "lead")["company"].is_null().mean()),
            0.03,
            0.10,
        ),
        ("missing email", float(people["email"].is_null().mean()), 0.01, 0.03),
        ("existing customers", float(accounts["is_customer"].mean()), 0.04, 0.08),
    ]


@pytest.mark.parametrize("index", range(10))
def test_shares_are_within_tolerance(org: Org, index: int) -> None:
    what, share, low, high = _shares(org)[index]
    assert low <= share <= high, f"{what}: {share:.4f} outside [{low}, {high}]"


@pytest.mark.parametrize("text", ["Zürich", "São Paulo", "株式会社", "東京"])
def test_unicode_survives_in_names_and_cities(org: Org, text: str) -> None:
    strings = pl.concat([org.accounts["name"], org.accounts["city"].drop_nulls()])
    assert strings.str.contains(text, literal=True).any()


def test_websites_are_written_the_way_people_type_them(org: Org) -> None:
    websites = org.accounts["website"].drop_nulls()
    for form in ("https://www.", "http://", "www.", "/en/home"):
        assert websites.str.contains(form, literal=True).any(), form
    assert org.accounts["website"].is_null().any()
    assert org.accounts["alias_domain"].is_not_null().mean() > 0.05


def test_lead_company_strings_differ_from_account_names(org: Org) -> None:
    truth = org.truth.people.filter(pl.col("true_account_id").is_not_null())
    leads = org.people.filter(pl.col("kind") == "lead").join(truth, on="person_id")
    named = leads.join(
        org.accounts.select(pl.col("account_id").alias("true_account_id"), "name"),
        on="true_account_id",
    )
    differs = (named["company"] != named["name"]).mean()
    assert 0.4 < differs < 0.8
    assert named["company"].str.contains("^[A-Z]{2,4}$").any()  # acronyms


def test_some_subsidiaries_share_or_vary_the_parent_domain(org: Org) -> None:
    child = org.accounts.filter(pl.col("parent_id").is_not_null())
    parent = org.accounts.select(
        pl.col("account_id").alias("parent_id"), pl.col("domain").alias("parent_domain")
    )
    pairs = child.join(parent, on="parent_id")
    shared = (pairs["domain"] == pairs["parent_domain"]).mean()
    assert 0.1 < shared < 0.35


def test_records_reference_each_other_consistently(org: Org) -> None:
    account_ids = set(org.accounts["account_id"].to_list())
    person_ids = set(org.people["person_id"].to_list())
    user_ids = set(org.users["user_id"].to_list())
    assert set(org.accounts["parent_id"].drop_nulls().to_list()) <= account_ids
    assert set(org.people["account_id"].drop_nulls().to_list()) <= account_ids
    assert set(org.activities["person_id"].drop_nulls().to_list()) <= person_ids
    assert set(org.activities["account_id"].drop_nulls().to_list()) <= account_ids
    assert set(org.opportunities["account_id"].to_list()) <= account_ids
    assert set(org.accounts["owner_id"].to_list()) <= user_ids
    assert set(org.people["owner_id"].to_list()) <= user_ids
    assert (
        org.activities.select(pl.col("person_id").is_null() & pl.col("account_id").is_null())
        .sum()
        .item()
        == 0
    )


def test_existing_links_are_true(org: Org) -> None:
    linked = org.people.join(org.truth.people, on="person_id").filter(
        pl.col("account_id").is_not_null()
    )
    assert (linked["account_id"] == linked["true_account_id"]).all()
    assert (org.people.filter(pl.col("kind") == "contact")["account_id"].is_not_null()).all()


def test_activities_cover_the_catalog_over_a_year(org: Org) -> None:
    assert set(org.activities["type"].cast(pl.String).unique()) == {t.key for t in ACTIVITY_TYPES}
    span = org.activities["occurred_at"].max() - org.activities["occurred_at"].min()
    assert span >= timedelta(days=365)
    assert org.activities["occurred_at"].max() <= org.manifest.end_at
    topics = org.activities.filter(pl.col("type") == "whitepaper")["topic"]
    assert topics.is_not_null().all() and topics.n_unique() >= 4


def test_the_crm_tables_hold_no_ground_truth(org: Org) -> None:
    visible = {
        c
        for frame in (org.accounts, org.people, org.activities, org.opportunities)
        for c in frame.columns
    }
    assert not visible & {
        "true_account_id",
        "true_company",
        "fit",
        "duplicate_of",
        "burst_rate",
        "success_p",
    }


@pytest.mark.parametrize("days_before_end", [100, 200, 300])
def test_the_oracle_separates_outcomes_like_a_real_org(org: Org, days_before_end: int) -> None:
    as_of = org.manifest.end_at - timedelta(days=days_before_end)
    oracle = org.truth.oracle_probability(as_of)
    opened = opened_within(org.opportunities, org.accounts.height, as_of)
    assert 0.75 <= roc_auc_score(opened, oracle) <= 0.95
    assert oracle.mean() == pytest.approx(opened.mean(), abs=0.015)  # calibrated, not just ranked


def test_recent_intent_bursts_precede_opportunities(org: Org) -> None:
    as_of = org.manifest.end_at - timedelta(days=120)
    recent = org.activities.filter(
        pl.col("type").is_in(["demo_request", "pricing_page", "trial_signup", "contact_sales"])
        & pl.col("occurred_at").is_between(as_of - timedelta(days=30), as_of)
    ).join(org.truth.people, on="person_id")
    hot = np.zeros(org.accounts.height, dtype=bool)
    hot[recent["true_account_id"].drop_nulls().to_numpy()] = True
    opened = opened_within(org.opportunities, org.accounts.height, as_of)
    assert opened[hot].mean() > 3 * opened[~hot].mean()


def test_dispositions_carry_reason_codes_when_rejected(org: Org) -> None:
    rejected = org.dispositions.filter(pl.col("disposition") == "Rejected")
    assert rejected.height > 0 and rejected["reason_code"].is_not_null().all()
    assert (
        org.dispositions.filter(pl.col("disposition") == "Accepted")["reason_code"].is_null().all()
    )


def test_an_org_survives_a_round_trip_to_disk(org: Org, tmp_path: Path) -> None:
    save_org(org, tmp_path / "org")
    loaded = load_org(tmp_path / "org")
    assert loaded.manifest == org.manifest
    for name, frame in _frames(org).items():
        assert frame.equals(_frames(loaded)[name]), name
    as_of = org.manifest.end_at - timedelta(days=90)
    assert np.array_equal(
        loaded.truth.oracle_probability(as_of), org.truth.oracle_probability(as_of)
    )


def test_loading_refuses_a_missing_or_foreign_org(org: Org, tmp_path: Path) -> None:
    with pytest.raises(OrgError, match="not a generated org"):
        load_org(tmp_path)
    save_org(org, tmp_path / "org")
    manifest = tmp_path / "org" / "manifest.json"
    manifest.write_text(
        manifest.read_text().replace(f'"format_version": {FORMAT_VERSION}', '"format_version": 999')
    )
    with pytest.raises(OrgError, match="format 999"):
        load_org(tmp_path / "org")


def test_tiny_orgs_still_generate() -> None:
    tiny = generate_org(1, seed=1)
    assert tiny.accounts.height == 1 and tiny.people.height == 5
    with pytest.raises(ValueError, match="at least one account"):
        generate_org(0, seed=1)
