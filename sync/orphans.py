"""Orphan leads scored on their own: no lead goes unscored (D3).

A live, unconverted person that linking left without an account (an orphan, or a person in the
review queue: until a reviewer picks an account, their activity counts for none) is scored as an
account of its own: firmographics from the person's own company fields (country, industry,
employees, revenue; no region, customer or competitor flag), its own activities (those that name
no account), no opportunities. The same current model, disqualifiers and tiers as the
accounts score it, and the same dated sentences explain it. What it shows is what an account
shows, plus why it has no account (``orphan_reason``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
from sqlmodel import Session, col, select

from scoring.explain import recent_counts
from scoring.features import History, snapshot
from scoring.model import RulesModel
from scoring.scores import score_accounts
from sync.matching import REASONS
from sync.scoring_state import Book, ScoringSetup, current_model
from sync.state import Activity, Person
from sync.writeback import ORPHAN_REASON, AccountScore, account_scores

__all__ = ["orphan_reason", "orphan_scores"]

_OLDEST = datetime(1970, 1, 1, tzinfo=UTC)  # a person scored as an account always existed
_UTC = pl.Datetime("us", "UTC")


def orphan_reason(reason: str | None, in_review: bool) -> str:
    """What a rep reads on a lead without an account: in review or orphan, and why."""
    why = REASONS.get(reason or "", "not linked to an account yet")
    return f"{'In review' if in_review else 'Orphan'}: {why}"


def orphan_scores(
    session: Session, setup: ScoringSetup, now: datetime, min_points: float = 0.0
) -> dict[str, AccountScore]:
    """What every orphan person should show, by person id, as of ``now``; each one's values carry
    its ``orphan_reason`` and no matched account."""
    people = _orphans(session)
    if people.is_empty():
        return {}
    book = _book(session, setup, people, now)
    scores = account_scores(book, setup.tiers, now, min_points)
    reasons = dict(zip(people["account_id"], people["reason"], strict=True))
    return {person: _as_orphan(score, reasons[person]) for person, score in scores.items()}


def _as_orphan(score: AccountScore, reason: str) -> AccountScore:
    values = {"matched_account_id": None, **score.values, ORPHAN_REASON: reason}
    return AccountScore(
        score.account_id,
        score.score,
        score.tier,
        values,
        score.reasons,
        score.sentences,
        score.topic,
        score.model_version,
        score.disqualified_reason,
        score.explanation,
    )


def _book(session: Session, setup: ScoringSetup, people: pl.DataFrame, now: datetime) -> Book:
    """The orphans scored and explained like a book of accounts."""
    catalog = setup.catalog
    model = current_model(session, setup)
    if model.catalog != catalog:  # settings changed since training: the settings' rules score
        model = setup.rules_model()
    history = History.from_frames(
        catalog, people.drop("reason"), _activities(session, people), _no_opportunities()
    )
    snap = snapshot(history, catalog, int(now.timestamp()))
    scores = score_accounts(model, snap, setup.disqualifiers, setup.tiers)
    counts = recent_counts(
        history.activities, history.n_accounts, len(catalog.signals), snap.as_of_s
    )
    explanations = scores.explain(snap, np.arange(history.n_accounts), counts, dated=True)
    kind = "rules" if isinstance(model, RulesModel) else "predictive"
    ids = tuple(people["account_id"].to_list())
    return Book(ids, scores, tuple(explanations), kind)


def _orphans(session: Session) -> pl.DataFrame:
    """Orphan people as accounts (``account_id`` their own id), with the reason they show."""
    company = (Person.country, Person.industry, Person.employees, Person.revenue)
    rows = session.exec(
        select(Person.id, *company, Person.orphan_reason, Person.match_rule)
        .where(
            col(Person.is_deleted).is_(False),
            col(Person.is_converted).is_(False),
            col(Person.matched_account_id).is_(None),
        )
        .order_by(col(Person.id))
    ).all()
    frame = pl.DataFrame(
        [(*row[:5], orphan_reason(row[5], row[6] is not None)) for row in rows],
        schema={
            "account_id": pl.String,
            "country": pl.String,
            "industry": pl.String,
            "employees": pl.Int64,
            "revenue": pl.Float64,
            "reason": pl.String,
        },
        orient="row",
    )
    return frame.with_columns(
        created_at=pl.lit(_OLDEST, dtype=_UTC),
        region=pl.lit(None, dtype=pl.String),
        is_customer=pl.lit(False),
        is_competitor=pl.lit(False),
        parent_id=pl.lit(None, dtype=pl.String),
    )


def _activities(session: Session, people: pl.DataFrame) -> pl.DataFrame:
    """The orphans' own activities that name no account (those count for the account they name),
    under the orphan's id as ``account_id``."""
    rows = session.exec(
        select(Activity.person_id, Activity.type, Activity.topic, Activity.occurred_at)
        .join(Person, col(Person.id) == col(Activity.person_id))
        .where(
            col(Activity.is_deleted).is_(False),
            col(Activity.account_id).is_(None),
            col(Person.is_deleted).is_(False),
            col(Person.is_converted).is_(False),
            col(Person.matched_account_id).is_(None),
        )
    ).all()
    schema = {"account_id": pl.String, "type": pl.String, "topic": pl.String, "occurred_at": _UTC}
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    return frame.join(people.select("account_id"), on="account_id", how="semi")


def _no_opportunities() -> pl.DataFrame:
    """An orphan has no deals."""
    return pl.DataFrame(
        schema={
            "account_id": pl.String,
            "opened_at": _UTC,
            "close_at": _UTC,
            "is_closed": pl.Boolean,
        }
    )
