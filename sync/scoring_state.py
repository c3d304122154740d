"""Score: the mirror as `scoring.features.History`, the current model, and every account scored.

Activities count for ``activity.account_id``, else their person's matched account (D3); people
who are orphans or in review give none. The model is the promoted one in the ``model`` table,
else the rules model of the settings (cold start). `train_model` fits the predictive model on the
mirror and keeps it, with its changelog, whether or not it is promoted.

This slice rebuilds every account's decayed sums from the mirror each run; keeping them in the
database and updating them per new activity is later work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl
from sqlmodel import Session, col, select

from scoring.config import DisqualifierRule, FitRule, ModelSettings, SignalSpec, TierSettings
from scoring.explain import Explanation, recent_counts
from scoring.features import History, Snapshot, snapshot
from scoring.fit import FIRMOGRAPHICS, disqualification
from scoring.model import PredictiveModel, RulesModel, load_model
from scoring.scores import Scores, score_accounts
from scoring.signals import SignalCatalog
from scoring.training import Training, train
from sync.state import Account, Activity, Opportunity, Person, ScoringModelRow

__all__ = [
    "Book",
    "ScoringSetup",
    "current_model",
    "load_history",
    "score_book",
    "train_model",
]

_OLDEST = datetime(1970, 1, 1, tzinfo=UTC)  # an account without a created date always existed
_UTC = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class ScoringSetup:
    """What scoring needs from settings."""

    tiers: TierSettings
    model: ModelSettings
    signals: tuple[SignalSpec, ...]
    fit: tuple[FitRule, ...]
    disqualifiers: tuple[DisqualifierRule, ...]

    @property
    def catalog(self) -> SignalCatalog:
        """The signal catalog of the settings."""
        return SignalCatalog.from_settings(self.signals, self.model)

    def rules_model(self) -> RulesModel:
        """The cold-start model of the settings."""
        return RulesModel(self.catalog, self.fit)


@dataclass(frozen=True)
class Book:
    """Every live account scored at one moment: ids in row order, scores, explanations."""

    account_ids: tuple[str, ...]
    scores: Scores
    explanations: tuple[Explanation, ...]
    model_kind: str  # "rules" or "predictive"


def load_history(session: Session, catalog: SignalCatalog) -> tuple[History, tuple[str, ...]]:
    """The mirror's live accounts, their linked activities and opportunities, as a History."""
    accounts = _accounts(session)
    history = History.from_frames(catalog, accounts, _activities(session), _opportunities(session))
    return history, tuple(accounts["account_id"].to_list())


def current_model(session: Session, setup: ScoringSetup) -> RulesModel | PredictiveModel:
    """The latest promoted model in the state database, else the rules model of the settings."""
    row = session.exec(
        select(ScoringModelRow)
        .where(col(ScoringModelRow.promoted).is_(True))
        .order_by(col(ScoringModelRow.created_at).desc())
        .limit(1)
    ).first()
    return setup.rules_model() if row is None else load_model(row.document)


def score_book(session: Session, setup: ScoringSetup, now: datetime) -> Book:
    """Score, tier and explain every live account as of ``now`` with the current model."""
    catalog = setup.catalog
    model = current_model(session, setup)
    if model.catalog != catalog:  # settings changed since training: the settings' rules score
        model = setup.rules_model()
    history, ids = load_history(session, catalog)
    as_of = int(now.timestamp())
    snap = snapshot(history, catalog, as_of)
    scores = score_accounts(model, snap, setup.disqualifiers, setup.tiers)
    explanations = _explain(history, snap, scores, len(catalog.signals))
    kind = "rules" if isinstance(model, RulesModel) else "predictive"
    return Book(ids, scores, tuple(explanations), kind)


def _explain(history: History, snap: Snapshot, scores: Scores, n_signals: int) -> list[Explanation]:
    """Dated explanations of every account."""
    counts = recent_counts(history.activities, history.n_accounts, n_signals, snap.as_of_s)
    rows = np.arange(history.n_accounts)
    return scores.explain(snap, rows, counts, dated=True)


def train_model(session: Session, setup: ScoringSetup, now: datetime) -> Training:
    """Fit the predictive model on the mirror as of ``now`` and keep it with its changelog;
    it scores from the next run only if promotion's checks pass."""
    catalog = setup.catalog
    history, _ = load_history(session, catalog)
    reasons = disqualification(history.accounts, setup.disqualifiers)
    current = current_model(session, setup)
    training = train(
        history,
        catalog,
        setup.fit,
        setup.model,
        setup.tiers,
        reasons.is_not_null().to_numpy(),
        now,
        current,
    )
    if training.candidate is not None:
        session.merge(
            ScoringModelRow(
                version=training.candidate.version,
                created_at=now,
                document=training.candidate.to_json(),
                promoted=training.promoted,
                changelog=list(training.candidate.changelog_),
                reason=training.reason,
            )
        )
    return training


def _accounts(session: Session) -> pl.DataFrame:
    """Live accounts: id, created_at and the firmographics scoring reads, in id order."""
    columns = [getattr(Account, name) for name in FIRMOGRAPHICS]
    rows = session.exec(
        select(Account.id, Account.created_at, *columns)
        .where(col(Account.is_deleted).is_(False))
        .order_by(col(Account.id))
    ).all()
    schema = {
        "account_id": pl.String,
        "created_at": _UTC,
        "country": pl.String,
        "region": pl.String,
        "industry": pl.String,
        "employees": pl.Int64,
        "revenue": pl.Float64,
        "is_customer": pl.Boolean,
        "is_competitor": pl.Boolean,
        "parent_id": pl.String,
    }
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    return frame.with_columns(pl.col("created_at").fill_null(_OLDEST))


def _activities(session: Session) -> pl.DataFrame:
    """Live activities with the account they count for: their own, else their person's link."""
    person = select(Person.id, Person.matched_account_id).where(col(Person.is_deleted).is_(False))
    links = person.subquery()
    rows = session.exec(
        select(
            Activity.account_id,
            links.c.matched_account_id,
            Activity.type,
            Activity.topic,
            Activity.occurred_at,
        )
        .join(links, links.c.id == Activity.person_id, isouter=True)
        .where(col(Activity.is_deleted).is_(False))
    ).all()
    schema = {
        "own": pl.String,
        "linked": pl.String,
        "type": pl.String,
        "topic": pl.String,
        "occurred_at": _UTC,
    }
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    linked = frame.with_columns(account_id=pl.coalesce("own", "linked"))
    return linked.select("account_id", "type", "topic", "occurred_at").filter(
        pl.col("account_id").is_not_null()
    )


def _opportunities(session: Session) -> pl.DataFrame:
    """Live opportunities: account, opened, closed (at the close date) and whether closed."""
    rows = session.exec(
        select(
            Opportunity.account_id,
            Opportunity.opened_at,
            Opportunity.close_date,
            Opportunity.is_closed,
        ).where(col(Opportunity.is_deleted).is_(False), col(Opportunity.opened_at).is_not(None))
    ).all()
    schema = {
        "account_id": pl.String,
        "opened_at": _UTC,
        "close_date": pl.Date,
        "is_closed": pl.Boolean,
    }
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    close = pl.col("close_date").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return frame.with_columns(close_at=pl.coalesce(close, "opened_at"))
