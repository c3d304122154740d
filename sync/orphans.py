"""Orphan leads scored on their own: no lead goes unscored (D3).

A live, unconverted person that linking left without an account (an orphan, or a person in the
review queue: until a reviewer picks an account, their activity counts for none) is scored as an
account of its own: firmographics from the person's own company fields (country, industry,
employees, revenue; no region, customer or competitor flag), its own activities (those that name
no account), no opportunities. The same current model, disqualifiers and tiers as the
accounts score it, and the same dated sentences explain it. What it shows is what an account
shows, plus why it has no account (``orphan_reason``).

Only the orphans a cycle touched are rescored (`score_orphans`): a person pulled again, merged
into, or whose link, rule or reason changed (newly orphaned among them), and one with new or
changed activity (`sync.scoring_state.Cycle.people`); every orphan when the score stage rescores
every account (its first run, ``--full``, the nightly rescore, another model or signal
catalog). Each stays in ``pending_orphan`` until its write-back is done (`settle_orphans`), so a
run stopped before it wrote rescores it again; a rescore that changes nothing a rep would
notice writes nothing (the write ledger).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import and_, delete, insert
from sqlmodel import Session, col, select

from scoring.explain import recent_counts
from scoring.features import History, snapshot
from scoring.model import PredictiveModel, RulesModel
from scoring.scores import score_accounts
from sync.frames import UTC_STAMP, frame_schema
from sync.matching import REASONS
from sync.scoring_state import Book, Cycle, ScoringSetup, scoring_model
from sync.state import Activity, PendingOrphan, Person
from sync.store import in_chunks
from sync.writeback import ORPHAN_REASON, AccountScore, account_scores

__all__ = ["orphan_reason", "orphan_scores", "score_orphans", "settle_orphans"]

_OLDEST = datetime(1970, 1, 1, tzinfo=UTC)  # a person scored as an account always existed


def orphan_reason(reason: str | None, in_review: bool) -> str:
    """What a rep reads on a lead without an account: in review or orphan, and why."""
    why = REASONS.get(reason or "", "not linked to an account yet")
    return f"{'In review' if in_review else 'Orphan'}: {why}"


def score_orphans(
    session: Session,
    setup: ScoringSetup,
    now: datetime,
    cycle: Cycle,
    min_points: float = 0.0,
) -> dict[str, AccountScore]:
    """The score stage's orphans: those among the people ``cycle`` touched (every one when it
    rescored every account) marked pending (held with the cycle's own writes when it held them:
    `Cycle.write`), then what every pending orphan should show as of ``now``. Nothing is
    committed here: the caller commits (or, in a dry run, rolls back) the session.
    """
    pending: list[str] | None = None  # every orphan: read in one pass, not by id
    if cycle.everything is not None:
        cycle.write(session, _pend_every_orphan)  # held with the cycle's writes, when it held them
    else:
        _pend(session, cycle.people)
        pending = _pending(session)
    return orphan_scores(session, setup, now, min_points, pending, cycle.unlinked, cycle.model)


def settle_orphans(session: Session, person_ids: Collection[str]) -> None:
    """These orphans' rescores are written back (or need not be): no longer pending."""
    for chunk in in_chunks(sorted(set(person_ids))):
        session.execute(delete(PendingOrphan).where(col(PendingOrphan.person_id).in_(chunk)))


def orphan_scores(
    session: Session,
    setup: ScoringSetup,
    now: datetime,
    min_points: float = 0.0,
    person_ids: Collection[str] | None = None,
    unlinked: pl.DataFrame | None = None,
    model: RulesModel | PredictiveModel | None = None,
) -> dict[str, AccountScore]:
    """What every orphan person (or those of ``person_ids`` that are orphans) should show, by
    person id, as of ``now``; each one's values carry its ``orphan_reason`` and no matched
    account. ``unlinked``: the activities of every person without an account, as
    `sync.account_signals.every_activity` read them, of the catalog's types or all (else the
    orphans' are read here). ``model`` scores them, as it scored the accounts (the score
    stage's: one the run trained is not kept yet), else the current model."""
    people = _orphans(session, person_ids)
    if people.is_empty():
        return {}
    if unlinked is None:
        ids = None if person_ids is None else people["account_id"].to_list()
        unlinked = _activities(session, ids)
    book = _book(session, setup, people, unlinked, now, model)
    scores = account_scores(book, setup.tiers, now, min_points)
    reasons = dict(zip(people["account_id"], people["reason"], strict=True))
    return {person: _as_orphan(score, reasons[person]) for person, score in scores.items()}


def _is_orphan() -> tuple[Any, ...]:
    """A live, unconverted person without an account."""
    return (
        col(Person.is_deleted).is_(False),
        col(Person.is_converted).is_(False),
        col(Person.matched_account_id).is_(None),
    )


def _pend(session: Session, person_ids: Collection[str]) -> None:
    """Mark those of ``person_ids`` that are orphans pending."""
    for chunk in in_chunks(sorted(person_ids)):
        orphans = select(Person.id).where(col(Person.id).in_(chunk), *_is_orphan())
        session.execute(delete(PendingOrphan).where(col(PendingOrphan.person_id).in_(orphans)))
        session.execute(insert(PendingOrphan).from_select(["person_id"], orphans))


def _pend_every_orphan(session: Session) -> None:
    """Mark every orphan pending (and no one else)."""
    session.execute(delete(PendingOrphan))
    orphans = select(Person.id).where(*_is_orphan())
    session.execute(insert(PendingOrphan).from_select(["person_id"], orphans))


def _pending(session: Session) -> list[str]:
    """The pending orphans, in id order; pending people no longer orphans (linked, converted,
    deleted) are dropped, their values now being their account's or none."""
    orphan = and_(col(Person.id) == col(PendingOrphan.person_id), *_is_orphan())
    rows = session.exec(
        select(PendingOrphan.person_id, Person.id)
        .join(Person, orphan, isouter=True)
        .order_by(col(PendingOrphan.person_id))
    ).all()
    settle_orphans(session, [pending for pending, found in rows if found is None])
    return [pending for pending, found in rows if found is not None]


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


def _book(
    session: Session,
    setup: ScoringSetup,
    people: pl.DataFrame,
    activities: pl.DataFrame,
    now: datetime,
    model: RulesModel | PredictiveModel | None = None,
) -> Book:
    """The orphans scored and explained like a book of accounts, from their own activities
    (those of others are left out), by ``model``, else the current model."""
    catalog = setup.catalog
    model = model or scoring_model(session, setup)
    ids = people["account_id"].to_list()
    history = History.from_frames(catalog, people.drop("reason"), activities, _no_opportunities())
    snap = snapshot(history, catalog, int(now.timestamp()))
    scores = score_accounts(model, snap, setup.disqualifiers, setup.tiers)
    counts = recent_counts(
        history.activities, history.n_accounts, len(catalog.signals), snap.as_of_s
    )
    explanations = scores.explain(snap, np.arange(history.n_accounts), counts, dated=True)
    kind = "rules" if isinstance(model, RulesModel) else "predictive"
    return Book(tuple(ids), scores, tuple(explanations), kind)


def _orphans(session: Session, person_ids: Collection[str] | None) -> pl.DataFrame:
    """Orphan people as accounts (``account_id`` their own id), with the reason they show, in id
    order: every one, or those of ``person_ids``."""
    company = (Person.country, Person.industry, Person.employees, Person.revenue)
    statement = select(
        col(Person.id).label("account_id"), *company, Person.orphan_reason, Person.match_rule
    ).where(*_is_orphan())
    if person_ids is None:
        rows = list(session.exec(statement.order_by(col(Person.id))))
    else:
        rows = [
            row
            for chunk in in_chunks(sorted(person_ids))
            for row in session.exec(
                statement.where(col(Person.id).in_(chunk)).order_by(col(Person.id))
            )
        ]
    frame = pl.DataFrame(rows, schema=frame_schema(statement), orient="row")
    reasons, rules = frame["orphan_reason"].to_list(), frame["match_rule"].to_list()
    shown = [orphan_reason(r, rule is not None) for r, rule in zip(reasons, rules, strict=True)]
    return frame.drop("orphan_reason", "match_rule").with_columns(
        reason=pl.Series(shown, dtype=pl.String),
        created_at=pl.lit(_OLDEST, dtype=UTC_STAMP),
        region=pl.lit(None, dtype=pl.String),
        is_customer=pl.lit(False),
        is_competitor=pl.lit(False),
        parent_id=pl.lit(None, dtype=pl.String),
    )


def _activities(session: Session, person_ids: Sequence[str] | None) -> pl.DataFrame:
    """The orphans' own activities that name no account (those count for the account they name),
    under the orphan's id as ``account_id``: of every orphan, or of ``person_ids`` (orphans)."""
    statement = select(
        col(Activity.person_id).label("account_id"),
        Activity.type,
        Activity.topic,
        Activity.occurred_at,
    ).where(col(Activity.is_deleted).is_(False))
    if person_ids is None:
        every = statement.join(Person, col(Person.id) == col(Activity.person_id))
        named = col(Activity.account_id).is_(None)
        rows = list(session.exec(every.where(named, *_is_orphan())))
    else:
        # read by person (its index) and dropped here: asked for activities naming no account,
        # the database would walk every such activity of the org
        theirs = statement.add_columns(col(Activity.account_id).label("named"))
        rows = [
            row[:-1]
            for chunk in in_chunks(person_ids)
            for row in session.exec(theirs.where(col(Activity.person_id).in_(chunk)))
            if row[-1] is None
        ]
    return pl.DataFrame(rows, schema=frame_schema(statement), orient="row")


def _no_opportunities() -> pl.DataFrame:
    """An orphan has no deals."""
    return pl.DataFrame(
        schema={
            "account_id": pl.String,
            "opened_at": UTC_STAMP,
            "close_at": UTC_STAMP,
            "is_closed": pl.Boolean,
        }
    )
