"""Explanations: each score reads as plain sentences with signed points and a topic to lead with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from bench.linking import linked_activities
from sandbox.generator import generate_org
from scoring.config import (
    DEFAULT_DISQUALIFIERS,
    DEFAULT_FIT,
    DEFAULT_SIGNALS,
    ModelSettings,
    TierSettings,
)
from scoring.explain import Explanation, _burst_phrase, explain, fit_text, recent_counts
from scoring.features import History, Snapshot, snapshot
from scoring.model import RulesModel
from scoring.scorecard import Contributions, Scorecard, Term
from scoring.scores import score_accounts
from scoring.signals import SignalCatalog

CATALOG = SignalCatalog.from_settings(DEFAULT_SIGNALS, ModelSettings())
TIERS = TierSettings()
NOW = datetime(2026, 11, 1, tzinfo=UTC)
ACCOUNTS = pl.DataFrame(
    {
        "account_id": [10, 11],
        "created_at": [NOW - timedelta(days=900)] * 2,
        "country": ["US", "US"],
        "region": ["NA", "NA"],
        "industry": ["Fintech", "Retail"],
        "employees": [800, 40],
        "revenue": [9e7, 3e6],
        "is_customer": [False, False],
        "is_competitor": [False, False],
        "parent_id": [None, None],
    }
)


def _history(rows: list[tuple[int, str, str | None, float]]) -> History:
    """History of (account_id, type, topic, days ago) activities and no opportunities."""
    activities = pl.DataFrame(
        {
            "account_id": [r[0] for r in rows],
            "type": [r[1] for r in rows],
            "topic": [r[2] for r in rows],
            "occurred_at": [NOW - timedelta(days=r[3]) for r in rows],
        },
        schema_overrides={"topic": pl.String, "account_id": pl.Int64},
    )
    opportunities = pl.DataFrame(
        schema={
            "account_id": pl.Int64,
            "opened_at": pl.Datetime("us", "UTC"),
            "close_at": pl.Datetime("us", "UTC"),
            "is_closed": pl.Boolean,
        }
    )
    return History.from_frames(CATALOG, ACCOUNTS, activities, opportunities)


def _explained(
    rows: list[tuple[int, str, str | None, float]], with_counts: bool = True
) -> Explanation:
    """The rules model's explanation of account 10."""
    history = _history(rows)
    now_s = int(NOW.timestamp())
    snap: Snapshot = snapshot(history, CATALOG, now_s)
    counts = recent_counts(history.activities, 2, len(CATALOG.signals), now_s)
    model = RulesModel(CATALOG, DEFAULT_FIT)
    return model.explain(snap, np.array([0]), counts if with_counts else None)[0]


def _decayed(*days: float) -> int:
    """Rules points of pricing visits `days` ago (15 points, 14-day half-life)."""
    return round(15 * sum(2 ** (-d / 14) for d in days))


PRICING_WEEK = [(10, "pricing_page", None, d) for d in (1, 2, 3)]


def test_top_reasons_read_as_plain_sentences_with_signed_points() -> None:
    found = _explained([*PRICING_WEEK, (10, "whitepaper", "security", 2)])
    assert found.reasons[0] == f"Visited pricing 3x in the last 7 days (+{_decayed(1, 2, 3)})"
    assert "Industry: Fintech (+8)" in found.reasons
    assert "Size: 200-5,000 employees (+10)" in found.reasons
    assert found.score == round(
        15 * sum(2 ** (-d / 14) for d in (1, 2, 3)) + 8 * 2 ** (-2 / 14) + 8 + 10 + 5
    )
    assert found.model_version.startswith("rules-")


@pytest.mark.parametrize(
    ("days", "sentence"),
    [
        ((2,), "Visited pricing in the last 7 days"),
        ((2, 20, 21, 25, 28, 29), "Visited pricing 6x in the last 30 days"),
        ((2, 3, 4, 60), "Visited pricing 3x in the last 7 days"),
        ((40, 60), "Visited pricing 2x in the last 90 days"),
        ((92,) * 10, "Visited pricing more than 90 days ago"),
    ],
)
def test_the_sentence_names_how_often_and_how_recently(
    days: tuple[float, ...], sentence: str
) -> None:
    found = _explained([(10, "pricing_page", None, d) for d in days])
    pricing = [r for r in found.reasons if r.startswith("Visited pricing")]
    assert pricing == [f"{sentence} (+{_decayed(*days)})"]


# Two terms of one burst bin, as the predictive model learns them: having started then, and size.
BURST_CARD = Scorecard(
    40.0,
    (
        Term("burst:start:0-45", "Intent burst started 0-45 days ago", 4.0),
        Term(
            "burst:size:0-45", "Activities of an intent burst started 0-45 days ago", 5.0, "log1p"
        ),
    ),
)


@pytest.mark.parametrize(
    ("days", "sentence"),
    [
        ((5, 3, 1), "Intent burst started 5 days ago, 3 activities (+9)"),
        ((0.5,), "One intent activity today (+9)"),
        ((1.5,), "One intent activity 1 day ago (+9)"),
        ((40, 12, 5), "Intent burst started 12 days ago, 2 activities (+9)"),
    ],
)
def test_the_latest_burst_reads_as_one_sentence(days: tuple[float, ...], sentence: str) -> None:
    history = _history([(10, "demo_request", None, d) for d in days])
    snap = snapshot(history, CATALOG, int(NOW.timestamp()))
    contributions = BURST_CARD.contributions([np.ones(2), np.full(2, np.e - 1)], pl.DataFrame())
    found = explain(contributions, snap, np.array([0]), "v1")[0]
    assert found.reasons == (sentence,)
    assert found.score == 49


def test_a_dated_burst_of_one_activity_names_its_day_not_a_burst() -> None:
    as_of_s = int(NOW.timestamp())
    day = 86_400

    assert _burst_phrase(as_of_s, as_of_s - 5 * day, 1, dated=True) == (
        "One intent activity on 27 Oct"
    )
    assert _burst_phrase(as_of_s, as_of_s - 5 * day, 2, dated=True) == (
        "Intent burst since 27 Oct, 2 activities"
    )


def test_without_counts_a_signal_reads_as_recent() -> None:
    found = _explained(PRICING_WEEK, with_counts=False)
    assert found.reasons[0] == f"Visited pricing recently (+{_decayed(1, 2, 3)})"


def test_negative_points_show_their_sign() -> None:
    history = _history([])
    snap = snapshot(history, CATALOG, int(NOW.timestamp()))
    accounts = ACCOUNTS.with_columns(industry=pl.lit("Government"))
    snap = Snapshot(snap.totals, snap.opportunities, snap.open_opportunity, snap.exists, accounts)
    found = RulesModel(CATALOG, DEFAULT_FIT).explain(snap, np.array([0]))[0]
    assert "Industry: Government (-10)" in found.reasons
    assert found.score == 5


def test_the_dominant_topic_of_recent_intent_is_reported() -> None:
    rows = [(10, "whitepaper", "security", 2), (10, "webinar", "ai", 40), (10, "webinar", "ai", 41)]
    assert _explained(rows).topic == "Security"
    assert _explained([(10, "webinar", "ai", 1), (10, "case_study", "ai", 3)]).topic == "AI"
    assert _explained([(10, "blog_visit", "ai", 1)]).topic is None
    assert _explained(PRICING_WEEK).topic is None


def test_a_disqualified_account_shows_only_its_rule() -> None:
    found = _explained(PRICING_WEEK).disqualified("Restricted country")
    assert found.score == 0
    assert found.reasons == ("Restricted country: disqualified",)
    assert found.summary() == "Restricted country: disqualified"


def test_a_disqualified_account_scores_zero_whatever_its_intent() -> None:
    rows = [*PRICING_WEEK, *[(11, "demo_request", None, d) for d in (1, 2)]]
    snap = snapshot(_history(rows), CATALOG, int(NOW.timestamp()))
    restricted = ACCOUNTS.with_columns(country=pl.Series(["US", "IR"]))
    snap = Snapshot(snap.totals, snap.opportunities, snap.open_opportunity, snap.exists, restricted)
    scores = score_accounts(RulesModel(CATALOG, DEFAULT_FIT), snap, DEFAULT_DISQUALIFIERS, TIERS)
    assert scores.disqualified_by.to_list() == [None, "Restricted country"]
    assert scores.score[1] == 0 and scores.score[0] > 41
    assert scores.tier.tolist() == ["sdr", "disqualified"]
    explained = scores.explain(snap, np.array([0, 1]))
    assert explained[0].reasons[0].startswith("Visited pricing")
    assert explained[1].reasons == ("Restricted country: disqualified",)
    assert explained[1].score == 0


def test_text_fits_crm_fields_in_whole_sentences() -> None:
    reasons = tuple(f"Reason number {i} with some words (+{i})" for i in range(40))
    found = Explanation(score=90, reasons=reasons, topic=None, model_version="v1")
    summary = found.summary()
    assert len(summary) <= 255
    assert all(part in reasons for part in summary.split("; "))
    assert found.details().splitlines() == list(reasons)
    assert len(found.details(max_chars=100)) <= 100
    assert fit_text(("x" * 300,), 255, "; ") == "x" * 254 + "…"


def test_dated_wording_names_days_not_ages_and_keeps_each_reasons_key() -> None:
    history = _history([*PRICING_WEEK, (10, "demo_request", None, 5)])
    now_s = int(NOW.timestamp())
    snap = snapshot(history, CATALOG, now_s)
    counts = recent_counts(history.activities, 2, len(CATALOG.signals), now_s)
    contributions = RulesModel(CATALOG, DEFAULT_FIT).contributions(snap)
    found = explain(contributions, snap, np.array([0]), "v1", counts, dated=True)[0]
    burst = BURST_CARD.contributions([np.ones(2), np.full(2, np.e - 1)], pl.DataFrame())
    dated_burst = explain(burst, snap, np.array([0]), "v1", dated=True)[0]

    # the window ends as of 1 Nov 00:00: its last day is 31 Oct
    assert f"Visited pricing 3x in the 7 days to 31 Oct (+{_decayed(1, 2, 3)})" in found.reasons
    assert dict(zip(found.reasons, found.keys, strict=True))[found.reasons[0]].startswith("signal:")
    assert len(found.points) == len(found.reasons)
    assert dated_burst.reasons == ("Intent burst since 27 Oct, 4 activities (+9)",)
    assert dated_burst.keys == ("burst:start:0-45",)


def test_accounts_explained_together_read_as_each_explained_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Explaining a book at once (in blocks, each term worded for every account showing it)
    words each account as explaining it alone does: the rules' points of a generated org, and
    dense random points over the rules' terms and a burst's twelve, in every direction."""
    monkeypatch.setattr("scoring.explain._BLOCK_ROWS", 7)
    org = generate_org(150, 3)
    history = History.from_frames(CATALOG, org.accounts, linked_activities(org), org.opportunities)
    now_s = int(org.manifest.end_at.timestamp())
    snap = snapshot(history, CATALOG, now_s)
    counts = recent_counts(history.activities, history.n_accounts, len(CATALOG.signals), now_s)
    rules = RulesModel(CATALOG, DEFAULT_FIT).contributions(snap)
    bursts = tuple(
        Term(f"burst:{part}:{days}", f"Burst {part} {days}")
        for days in ("0-4", "4-7", "7-14", "14-28", "28-45", "45-90")
        for part in ("start", "size")
    )
    terms = (*rules.terms, *bursts)
    noise = np.random.default_rng(3).normal(scale=6, size=(history.n_accounts, len(terms)))
    dense = Contributions(rules.base, terms, noise.astype(np.float32), rules.raw, rules.levels)
    rows = np.arange(history.n_accounts)[::-1]

    def words(contributions: Contributions, chosen: np.ndarray) -> list[Explanation]:
        return explain(contributions, snap, chosen, "v1", counts, dated=True)

    for contributions in (rules, dense):
        together = words(contributions, rows)
        alone = [found for row in rows for found in words(contributions, np.array([row]))]
        assert together == alone
        assert sum(len(e.reasons) for e in together) > 2 * len(rows)  # there was much to word
