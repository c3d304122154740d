"""Fit: disqualifiers name the rule that fired, fit rules add points, levels read plainly, tiers."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from scoring.config import DEFAULT_DISQUALIFIERS, DEFAULT_FIT, DisqualifierRule, TierSettings
from scoring.fit import (
    SUBSIDIARY_INDUSTRY,
    disqualification,
    firmographic_levels,
    fit_rule_matches,
)
from scoring.tiers import assign_tiers, tier_label

CLEAN: dict[str, Any] = {
    "country": "US",
    "region": "NA",
    "industry": "Fintech",
    "employees": 800,
    "revenue": 90_000_000.0,
    "is_customer": False,
    "is_competitor": False,
    "parent_id": None,
}
RULES = (
    *DEFAULT_DISQUALIFIERS,
    DisqualifierRule(name="Restricted region", kind="region_in", values=("LATAM",)),
    DisqualifierRule(name="Excluded industry", kind="industry_in", values=("Government",)),
    DisqualifierRule(name="Revenue under $1M", kind="revenue_below", threshold=1_000_000),
)


def _accounts(*changes: dict[str, Any]) -> pl.DataFrame:
    """Accounts that differ from a clean, well-fitting one by `changes`."""
    return pl.DataFrame(
        [{**CLEAN, **change} for change in changes],
        schema_overrides={
            "employees": pl.Int64,
            "revenue": pl.Float64,
            "industry": pl.String,
            "country": pl.String,
            "parent_id": pl.Int64,
        },
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({}, None),
        ({"country": "IR"}, "Restricted country"),
        ({"country": "ir"}, None),
        ({"region": "LATAM", "country": "BR"}, "Restricted region"),
        ({"industry": "Government"}, "Excluded industry"),
        ({"is_customer": True}, "Existing customer"),
        ({"is_competitor": True}, "Competitor"),
        ({"employees": 9}, "Fewer than 10 employees"),
        ({"employees": 10}, None),
        ({"employees": None}, None),
        ({"revenue": 999_999.0}, "Revenue under $1M"),
        ({"revenue": None}, None),
        ({"industry": None, "country": None}, None),
        ({"country": "CU", "is_customer": True}, "Restricted country"),
        ({"is_customer": True, "employees": 3}, "Existing customer"),
    ],
)
def test_disqualifiers_name_the_first_rule_that_matches(
    change: dict[str, Any], reason: str | None
) -> None:
    assert disqualification(_accounts(change), RULES).to_list() == [reason]


def test_fit_rules_match_categories_and_half_open_ranges() -> None:
    accounts = _accounts({}, {"industry": "Government", "employees": 5000}, {"employees": None})
    names = [rule.name for rule in DEFAULT_FIT]
    matched = fit_rule_matches(accounts, DEFAULT_FIT)
    assert [n for n, m in zip(names, matched[0], strict=True) if m] == [
        "Industry: Fintech",
        "Size: 200-5,000 employees",
        "Revenue: $50M+",
    ]
    assert [n for n, m in zip(names, matched[1], strict=True) if m] == [
        "Industry: Government",
        "Size: 5,000+ employees",
        "Revenue: $50M+",
    ]
    assert [n for n, m in zip(names, matched[2], strict=True) if m] == [
        "Industry: Fintech",
        "Revenue: $50M+",
    ]


def test_firmographic_levels_read_as_plain_labels() -> None:
    accounts = _accounts(
        {},
        {"employees": 200, "revenue": 250_000_000.0},
        {"employees": 9, "revenue": None, "industry": None},
        {"employees": None, "parent_id": 7},
    )
    levels = firmographic_levels(accounts).rows()
    assert levels == [
        ("Industry: Fintech", "Region: NA", "Size: 750-999 employees", "Revenue: $50M-$250M"),
        ("Industry: Fintech", "Region: NA", "Size: 200-299 employees", "Revenue: $250M+"),
        ("Industry: unknown", "Region: NA", "Size: under 10 employees", "Revenue: unknown"),
        (SUBSIDIARY_INDUSTRY, "Region: NA", "Size: unknown", "Revenue: $50M-$250M"),
    ]


def test_a_level_no_account_knows_is_still_an_enum_of_unknown() -> None:
    # a CRM that records no region at all: training on its mirror must still read the level
    accounts = _accounts({"region": None}, {"region": None})
    region = firmographic_levels(accounts)["region"]
    assert region.dtype == pl.Enum(["Region: unknown"])
    assert region.to_list() == ["Region: unknown", "Region: unknown"]


@pytest.mark.parametrize(
    ("score", "disqualified", "tier"),
    [
        (0, False, "nurture"),
        (40, False, "nurture"),
        (41, False, "sdr"),
        (79, False, "sdr"),
        (80, False, "ae"),
        (100, False, "ae"),
        (100, True, "disqualified"),
    ],
)
def test_default_tiers_follow_the_shared_thresholds(
    score: int, disqualified: bool, tier: str
) -> None:
    tiers = assign_tiers(np.array([score]), np.array([disqualified]), TierSettings())
    assert tiers.tolist() == [tier]


def test_tiers_show_their_configured_labels() -> None:
    settings = TierSettings(ae_label="MQA - AE")
    assert [tier_label(k, settings) for k in ("nurture", "sdr", "ae", "disqualified")] == [
        "Nurture",
        "SDR",
        "MQA - AE",
        "Disqualified",
    ]


def test_tier_thresholds_are_settings() -> None:
    tiers = assign_tiers(
        np.array([59, 60, 90]), np.zeros(3, bool), TierSettings(sdr_min=60, ae_min=95)
    )
    assert tiers.tolist() == ["nurture", "sdr", "sdr"]
