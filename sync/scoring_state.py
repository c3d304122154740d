"""Score: each account's stored signal sums, the current model, and the accounts that changed.

Activities count for ``activity.account_id``, else their person's matched account (D3); people
who are orphans or in review give none. The model is the promoted one in the ``model`` table,
else the rules model of the settings (cold start). `train_model` fits the predictive model on the
mirror and keeps it, with its changelog, whether or not it is promoted.

`score_cycle` is the run's score stage. Its first run (and ``--full``) sums every account's
activity in one vectorised pass into the state database (`sync.account_signals`); after that a
cycle reads only what changed since it last ran: new activities are added to their account's
sums in O(1), and only accounts touched this cycle are rescored (new activity, a changed record,
opportunity or person, a relink, merge or delete). What changed is found by flags and hand-over
rows, never by comparing times, so a run at the same moment as the one before (the sandbox's
fixed present) takes only what changed since: activities of a cycle later than the last
(``scored_seq``, `account_signals.uncounted`), counted ones the mirror flagged since, and what
the link stage handed over (`PendingRescore`) in the transaction that stored its links, all
taken in this stage's. Some changes force an account's sums to be rebuilt from its own
activities, each with its reason (`REBUILD_REASONS`). Once a day of the run's ``now``, and when
the model changes, every account is rescored from its stored sums (no history read). Rescored
accounts stay pending until `settle` says their write-back is done, so a run killed before it
wrote rescored them again. `score_book` is the full rescore from the mirror, which the stored
sums must match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import func, text, update
from sqlmodel import Session, col, delete, select

from scoring.config import DisqualifierRule, FitRule, ModelSettings, SignalSpec, TierSettings
from scoring.explain import Explanation, recent_counts
from scoring.features import History, Snapshot, snapshot
from scoring.fit import FIRMOGRAPHICS, disqualification
from scoring.model import PredictiveModel, RulesModel, load_model
from scoring.scores import Scores, score_accounts
from scoring.signals import SignalCatalog
from scoring.training import Training, train
from sync import account_signals
from sync.account_signals import Touched
from sync.frames import ReadApart, frame_schema
from sync.state import (
    EVERYONE,
    RELINKED,
    Account,
    AccountSignals,
    Activity,
    Opportunity,
    PendingRescore,
    Person,
    ScoringModelRow,
    ScoringState,
)
from sync.store import in_chunks, rows_among

__all__ = [
    "Book",
    "Cycle",
    "HistoryRead",
    "ScoringSetup",
    "current_model",
    "history_ahead",
    "keep_training",
    "load_history",
    "score_book",
    "score_cycle",
    "score_stored",
    "scoring_model",
    "settle",
    "train_model",
    "train_read",
    "training_due",
]

_OLDEST = datetime(1970, 1, 1, tzinfo=UTC)  # an account without a created date always existed
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)  # history reads every activity, whenever
# as the partial index ix_account_signals_pending says it, so SQLite reads only that index
_PENDING = text("account_signals.pending")
_FLAGGED = account_signals.FLAGGED
# why every account's sums are built again from the mirror (see `_everything`)
_BUILD_EVERY_ACCOUNT = ("full", "first", "relinked", "catalog", "clock")


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
    activities = account_signals.linked_activities(session, _FAR_FUTURE)
    history = History.from_frames(catalog, accounts, activities, _opportunities(session))
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
    model = scoring_model(session, setup)
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
    history, _ = load_history(session, setup.catalog)
    training = _fitted(session, setup, now, history)
    keep_training(session, training, now)
    return training


def training_due(session: Session, setup: ScoringSetup, *, full: bool) -> tuple[bool, str | None]:
    """Whether a run fits the predictive model on its own before it scores (`train_read`), and
    why not when the org's history is what stops it: no model was ever promoted, the settings
    let one score, the run rebuilds every account from the whole history (the first run,
    ``--full`` or the periodic full re-pull: the read training needs is made anyway) and, under
    ``model = "auto"``, the mirror holds at least as many live accounts and opportunities as
    training needs accounts and conversions to learn from (counts that bound them from above, so
    a run that would learn too little does not read to find out). A model kept aside (refused by
    promotion's checks) is tried again at the next full run; once one is promoted, `handoff
    train` refits it."""
    settings = setup.model
    if settings.model == "rules" or (not full and session.get(ScoringState, 1) is not None):
        return False, None
    promoted = select(ScoringModelRow.version).where(col(ScoringModelRow.promoted).is_(True))
    if session.exec(promoted.limit(1)).first() is not None:
        return False, None
    if settings.model == "predictive":
        return True, None
    accounts = select(func.count()).select_from(Account).where(col(Account.is_deleted).is_(False))
    opportunities = (
        select(func.count())
        .select_from(Opportunity)
        .where(col(Opportunity.is_deleted).is_(False), col(Opportunity.opened_at).is_not(None))
    )
    held, opened = session.exec(accounts).one(), session.exec(opportunities).one()
    if held >= settings.min_training_accounts and opened >= settings.min_training_conversions:
        return True, None
    accounts_held = f"{held:,} account{'' if held == 1 else 's'}"
    opportunities_held = f"{opened:,} opportunit{'y' if opened == 1 else 'ies'}"
    return False, (
        f"the mirror holds {accounts_held} and {opportunities_held}, where training "
        f"needs at least {settings.min_training_accounts:,} accounts and "
        f"{settings.min_training_conversions:,} qualified opportunities to learn from"
    )


class HistoryRead:
    """The whole history as the score stage reads it to rebuild every account
    (`account_signals.every_activity`): read once by a run that trains first (`train_read`)
    and handed on to the score stage (`score_cycle`), which takes it or gives it up (`cancel`,
    as a `ReadApart` is given up), so it is held no longer than it is needed."""

    def __init__(self, activities: pl.DataFrame, unlinked: pl.DataFrame) -> None:
        self._frames: tuple[pl.DataFrame, pl.DataFrame] | None = (activities, unlinked)

    @classmethod
    def read(cls, session: Session, setup: ScoringSetup, started: ReadApart | None) -> HistoryRead:
        """The history's read, taking ``started`` (`history_ahead`) when there is one."""
        return cls(*account_signals.every_activity(session, setup.catalog.activities, started))

    @property
    def activities(self) -> pl.DataFrame:
        """The activities that count for an account (while held)."""
        return self._held()[0]

    def take(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The frames (linked activities, and those of people without an account), handed
        over: this holds them no more."""
        frames = self._held()
        self._frames = None
        return frames

    def cancel(self) -> None:
        """Given up (or taken already): this holds the frames no more."""
        self._frames = None

    def _held(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        if self._frames is None:
            raise RuntimeError("the history's read was taken or given up already")
        return self._frames


def train_read(session: Session, setup: ScoringSetup, now: datetime, read: HistoryRead) -> Training:
    """`train_model` on the history the run read to rebuild every account (`training_due`),
    writing nothing: `keep_training` keeps the candidate, in the score stage's transaction."""
    history = History.from_frames(
        setup.catalog, _accounts(session), read.activities, _opportunities(session)
    )
    return _fitted(session, setup, now, history)


def keep_training(session: Session, training: Training, now: datetime) -> None:
    """Keep a training's candidate, if it made one, with its changelog and verdict (promoted:
    it scores from then on, `current_model`). A version kept already (the same day's points)
    is promoted when this training promoted it, and never demoted (`train` makes no candidate
    of the model that scores)."""
    candidate = training.candidate
    if candidate is None:
        return
    kept = session.get(ScoringModelRow, candidate.version)
    if kept is None:
        session.add(
            ScoringModelRow(
                version=candidate.version,
                created_at=now,
                document=candidate.to_json(),
                promoted=training.promoted,
                changelog=list(candidate.changelog_),
                reason=training.reason,
            )
        )
    elif training.promoted and not kept.promoted:
        kept.promoted, kept.created_at, kept.reason = True, now, training.reason
        kept.changelog = list(candidate.changelog_)


def _fitted(session: Session, setup: ScoringSetup, now: datetime, history: History) -> Training:
    """Fit on ``history`` as of ``now`` against the current model (nothing kept)."""
    catalog = setup.catalog
    reasons = disqualification(history.accounts, setup.disqualifiers)
    current = current_model(session, setup)
    disqualified = reasons.is_not_null().to_numpy()
    return train(history, catalog, setup.fit, setup.model, setup.tiers, disqualified, now, current)


def _accounts(session: Session, ids: Sequence[str] | None = None) -> pl.DataFrame:
    """Live accounts: id, created_at and the firmographics scoring reads, in id order; all of
    them, or those of ``ids``."""
    columns = [getattr(Account, name) for name in FIRMOGRAPHICS]
    statement = select(col(Account.id).label("account_id"), Account.created_at, *columns)
    statement = statement.where(col(Account.is_deleted).is_(False))
    if ids is None:
        rows = session.exec(statement.order_by(col(Account.id))).all()
    else:
        rows = sorted(rows_among(session, statement, col(Account.id), ids), key=lambda r: r[0])
    frame = pl.DataFrame(rows, schema=frame_schema(statement), orient="row")
    return frame.with_columns(pl.col("created_at").fill_null(_OLDEST))


def _opportunities(session: Session, ids: Sequence[str] | None = None) -> pl.DataFrame:
    """Live opportunities: account, opened, closed (at the close date) and whether closed; of
    every account, or of those of ``ids``."""
    statement = select(
        Opportunity.account_id,
        Opportunity.opened_at,
        Opportunity.close_date,
        Opportunity.is_closed,
    ).where(col(Opportunity.is_deleted).is_(False), col(Opportunity.opened_at).is_not(None))
    if ids is None:
        rows = session.exec(statement).all()
    else:
        rows = list(rows_among(session, statement, col(Opportunity.account_id), ids))
    frame = pl.DataFrame(rows, schema=frame_schema(statement), orient="row")
    close = pl.col("close_date").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return frame.with_columns(close_at=pl.coalesce(close, "opened_at"))


# --- the incremental score stage ----------------------------------------------------------------


Write = Callable[[Session], None]  # a write of the score stage, made in the session it is given


@dataclass(frozen=True)
class Cycle:
    """What one score stage did: the book of rescored accounts, the accounts whose sums were
    rebuilt per reason, why every account was rescored (None: only those touched), the people
    touched (their records, links or activity changed: `sync.orphans` rescores those that are
    orphans), the accounts deleted since the stage before (None: any deleted account, after
    a rebuild of every one) and, when it read every activity (a rebuild of every account), the
    activities of people without an account (those its catalog scores), so the orphans' score
    reads the history no second time."""

    book: Book
    rebuilt: dict[str, int]
    everything: str | None
    people: frozenset[str] = frozenset()
    gone: frozenset[str] | None = frozenset()
    unlinked: pl.DataFrame | None = None
    # the stage's writes held back (`score_cycle`'s ``hold``), in order; None: written
    unwritten: list[Write] | None = None
    model: RulesModel | PredictiveModel | None = None  # the model that scored the cycle

    def write(self, session: Session, write: Write) -> None:
        """Make ``write`` in ``session`` now, or after the cycle's own when it held them."""
        if self.unwritten is None:
            write(session)
        else:
            self.unwritten.append(write)


def score_cycle(
    session: Session,
    setup: ScoringSetup,
    now: datetime,
    *,
    full: bool = False,
    ready: Callable[[], None] = lambda: None,
    history: ReadApart | HistoryRead | None = None,
    hold: bool = False,
    model: RulesModel | PredictiveModel | None = None,
) -> Cycle:
    """The score stage: bring the stored sums up to the mirror and score what changed.

    ``ready`` is called before the stage first writes, or reads an activity or a person by
    index: a first load's activity and person indexes may still be building then (`sync.run`),
    and every account's sums are built from a read of the whole history and of every link,
    which needs none. ``history``: the read of the whole history started before
    (`history_ahead`), or made already (`HistoryRead`, by a run that trained first), taken
    when every account is rebuilt, else given up. ``model`` scores in place of the current
    one (a model this run trained, which a dry run does not keep). With ``hold``, a
    rebuild of every account writes nothing and does not call ``ready``: its writes are held
    in the cycle (`Cycle.unwritten`, where `Cycle.write` adds the caller's), to be made in order
    in one later transaction of the caller's, once the build is done (the tier and diff stages
    read none of them); a cycle of the touched accounts writes as without.

    What changed is what the link stage handed over (`PendingRescore`: records the mirror
    wrote, relinked accounts) and the activities not counted yet (of a cycle later than the
    last) or flagged since they were; all of it is taken in this transaction, the activities by
    making this cycle the last (no row of theirs is written, but those it leaves for a later
    cycle: `account_signals.defer`). Nothing is committed here: the caller commits (or, in a
    dry run, rolls back) the session.
    """
    catalog = setup.catalog
    model = model or scoring_model(session, setup)
    state = session.get(ScoringState, 1)
    fingerprint = _fingerprint(catalog)
    handed = _handed_over(session)
    everything = _everything(state, fingerprint, model.version, now, full, EVERYONE in handed)
    counted = state.seq if state is not None else 0  # the last cycle: what it counted is old
    people: set[str] = set()
    gone: frozenset[str] | None = None
    saved: dict[str, dict[str, Any]] = {}  # the sums this stage stored, by account
    unlinked = None
    book = None  # scored before anything is written when every account is rebuilt
    deferring = True
    unwritten: list[Write] | None = None
    if state is None or everything in _BUILD_EVERY_ACCOUNT:
        score = partial(score_stored, session, setup, model, now)
        book, unlinked, deferring, store = _build_every_account(
            session, catalog, now, score, history
        )
        unwritten = [store] if hold else None
        if not hold:
            ready()
            store(session)
        rebuilt = {"full": len(book.account_ids)}
    else:
        if history is not None:
            history.cancel()
        ready()
        touched = _touched(session, handed, counted)
        people, gone = touched.people, frozenset(touched.gone)
        rebuilt = _incremental(session, catalog, now, touched, saved)
        if everything is not None:  # nightly, or another model: every account from its sums
            session.execute(update(AccountSignals).values(pending=True))
    seq = counted + 1  # this cycle, the last once committed: what it left is counted
    nightly = now if everything is not None or state is None else state.nightly_at
    scored = ScoringState(id=1, catalog=fingerprint, model_version=model.version,
                          seq=seq, scored_at=now, nightly_at=nightly)  # fmt: skip

    def taken(session: Session) -> None:
        if deferring:
            account_signals.defer(session, counted, now)
        _taken(session)
        session.merge(scored)

    if unwritten is None:
        taken(session)
    else:
        unwritten.append(taken)
    if book is None:
        book = _pending_book(session, setup, model, now, saved)
    return Cycle(book, rebuilt, everything, frozenset(people), gone, unlinked, unwritten, model)


def history_ahead(
    session: Session, setup: ScoringSetup, now: datetime, *, full: bool = False
) -> ReadApart | None:
    """The read of the whole history that `score_cycle` (with the same ``full``) will make
    when it rebuilds every account, started now in a process of its own (when the mirror holds
    enough activities for that to pay: `account_signals.many_activities`), so the caller
    works on while it reads; None when the stage will not rebuild every account, as far as is
    known before the link stage (a relink of every person, which rebuilds them too, is read
    through the session then)."""
    bound = account_signals.many_activities(session)
    if bound is None:
        return None  # read through the session (or copied, on PostgreSQL)
    state = session.get(ScoringState, 1)
    if state is not None:
        version = scoring_model(session, setup).version
        fingerprint = _fingerprint(setup.catalog)
        if _everything(state, fingerprint, version, now, full, False) not in _BUILD_EVERY_ACCOUNT:
            return None
    return account_signals.read_history_apart(session, setup.catalog.activities, bound)


def _incremental(
    session: Session,
    catalog: SignalCatalog,
    now: datetime,
    touched: _Touched,
    saved: dict[str, dict[str, Any]],
) -> dict[str, int]:
    """Bring the touched accounts' sums up to the mirror (what is stored goes in ``saved``)
    and mark them pending; the accounts rebuilt per reason."""
    accounts = touched.accounts
    _fold_new_activities(session, catalog, now, touched, saved)
    for account_id in accounts.rescore - set(accounts.rebuild) - _held(session, accounts):
        accounts.rebuilt(account_id, "new")  # an account created (or restored) in the CRM
    _rebuild(session, catalog, now, accounts, saved)
    _mark_pending(session, accounts.rescore)
    return accounts.reasons()


def settle(session: Session, account_ids: Iterable[str]) -> None:
    """These accounts' rescores are written back (or need not be): no longer pending."""
    for chunk in in_chunks(sorted(set(account_ids))):
        session.execute(
            update(AccountSignals)
            .where(col(AccountSignals.account_id).in_(chunk))
            .values(pending=False)
        )


def scoring_model(session: Session, setup: ScoringSetup) -> RulesModel | PredictiveModel:
    """The model that scores: the settings' rules when ``[scoring] model = "rules"`` asks for
    them (a promoted model stays kept, and scores again under "auto"), or when the signals in
    the settings changed since the current one was trained; else the current one."""
    if setup.model.model == "rules":
        return setup.rules_model()
    model = current_model(session, setup)
    return setup.rules_model() if model.catalog != setup.catalog else model


def _everything(
    state: ScoringState | None,
    fingerprint: str,
    version: str,
    now: datetime,
    full: bool,
    relinked_all: bool,
) -> str | None:
    """Why every account is rebuilt or rescored this cycle, if it is."""
    if state is None:
        return "first"
    if full:
        return "full"
    if relinked_all:
        return "relinked"  # every person was relinked: any account's sums may have moved
    if state.catalog != fingerprint:
        return "catalog"  # the signals changed: the stored sums are of others
    if now < state.scored_at:
        return "clock"  # a run before the last one: sums cannot be read backwards
    if state.model_version != version:
        return "model"
    if now.date() > state.nightly_at.date():
        return "nightly"
    return None


def _fingerprint(catalog: SignalCatalog) -> str:
    """A short hash of everything the stored sums depend on."""
    described = {
        "signals": [s.model_dump(mode="json") for s in catalog.signals],
        "half_lives": [catalog.topic_half_life_days, catalog.memory_half_life_days],
        "burst_gap_days": catalog.burst_gap_days,
    }
    text = json.dumps(described, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _build_every_account(
    session: Session,
    catalog: SignalCatalog,
    now: datetime,
    score: Callable[[Sequence[tuple[str, dict[str, Any]]]], Book],
    history: ReadApart | HistoryRead | None = None,
) -> tuple[Book, pl.DataFrame, bool, Write]:
    """Every live account's sums from the mirror in one vectorised pass, scored by ``score``
    (`score_stored`): the book of every live account, in id order, as
    `_pending_book` would read it back, the activities of people without an account, from the
    same read of the history, whether one it read is dated at or after ``now``, and the write
    that stores the sums, pending, in place of every account's. Nothing is written here (the
    index build the writes wait for took as long as the read and the sums on the reference
    org, and longer than the score stage's reads on a slower machine).

    Without one so dated there is none to leave to a later cycle (`account_signals.defer`,
    whose update reads every activity, 1.5 s on the reference org's first run, is not run):
    the others so dated, deleted or of a type the catalog does not score, count for nothing
    while they stay so; restored or retyped later, the mirror flags them and `defer` leaves
    them to a later cycle then (a change of catalog rebuilds every account from the history)."""
    ids = _live_ids(session)
    # the activities the catalog scores: the sums, and an orphan's scoring, leave out the others
    if isinstance(history, HistoryRead):
        activities, unlinked = history.take()
    else:
        activities, unlinked = account_signals.every_activity(session, catalog.activities, history)
    # read in whole seconds: one in ``now``'s own second is at or after it (`defer` tells)
    second = now.replace(microsecond=0)
    later = any(f.height and f["occurred_at"].max() >= second for f in (activities, unlinked))
    documents = account_signals.build(catalog, ids, activities, now)
    del activities
    book = score([(account_id, documents[account_id][0]) for account_id in ids])

    def store(session: Session) -> None:
        session.execute(delete(AccountSignals))
        account_signals.save(session, documents, now)

    return book, unlinked, later, store


def _save(
    session: Session,
    documents: dict[str, tuple[dict[str, Any], int | None]],
    now: datetime,
    saved: dict[str, dict[str, Any]],
) -> None:
    """Store accounts' sums, pending, and keep them in ``saved`` to be scored from."""
    account_signals.save(session, documents, now)
    saved.update((account_id, document) for account_id, (document, _) in documents.items())


def _live_ids(session: Session, among: Iterable[str] | None = None) -> list[str]:
    """Live account ids in id order, all of them or those `among` some."""
    statement = select(Account.id).where(col(Account.is_deleted).is_(False))
    if among is None:
        return list(session.exec(statement.order_by(col(Account.id))))
    found: list[str] = []
    for chunk in in_chunks(sorted(set(among))):
        found.extend(session.exec(statement.where(col(Account.id).in_(chunk))))
    return sorted(found)


@dataclass
class _Touched:
    """What changed since the last score stage (cycle ``counted``): the accounts to rescore (and
    rebuild), those deleted, and the people whose records, links or activity changed."""

    counted: int
    accounts: Touched = field(default_factory=Touched)
    gone: set[str] = field(default_factory=set)
    people: set[str] = field(default_factory=set)


def _handed_over(session: Session) -> dict[str, list[str]]:
    """What the link stage handed over since the score stage last ran, ids by object."""
    handed: dict[str, list[str]] = {}
    for obj, record_id in session.exec(select(PendingRescore.object, PendingRescore.record_id)):
        handed.setdefault(obj, []).append(record_id)
    return handed


def _touched(session: Session, handed: dict[str, list[str]], counted: int) -> _Touched:
    """Accounts whose records, opportunities, people or counted activities changed since the
    last score stage (cycle ``counted``), and those relinked; deleted accounts' sums dropped."""
    touched = _Touched(counted)
    accounts = touched.accounts
    statement = select(Account.id, Account.is_deleted, Account.merged_into)
    for chunk in in_chunks(sorted(handed.get("account", ()))):
        for account_id, deleted, survivor in session.exec(
            statement.where(col(Account.id).in_(chunk))
        ):
            if deleted:
                touched.gone.add(account_id)
                accounts.rebuilt(survivor, "merge")
            else:
                accounts.rescore.add(account_id)
    _drop_sums(session, touched.gone)
    _touched_people(session, handed.get("person", ()), touched)
    for chunk in in_chunks(sorted(handed.get("opportunity", ()))):
        opportunities = select(Opportunity.account_id).where(col(Opportunity.id).in_(chunk))
        accounts.rescore.update(a for a in session.exec(opportunities) if a is not None)
    _touched_activities(session, touched)
    for account_id in handed.get(RELINKED, ()):
        accounts.rebuilt(account_id, "relink")
    return touched


def _drop_sums(session: Session, account_ids: Collection[str]) -> None:
    """Deleted accounts' stored sums."""
    for chunk in in_chunks(sorted(account_ids)):
        session.execute(delete(AccountSignals).where(col(AccountSignals.account_id).in_(chunk)))


def _touched_people(session: Session, person_ids: Collection[str], touched: _Touched) -> None:
    """A changed person's account is rescored (its fields are written on the person too); a
    deleted or merged one's activities leave its account (and join the survivor's)."""
    columns = (Person.id, Person.matched_account_id, Person.is_deleted, Person.merged_into)
    rows = [
        row
        for chunk in in_chunks(sorted(person_ids))
        for row in session.exec(select(*columns).where(col(Person.id).in_(chunk)))
    ]
    accounts = touched.accounts
    survivors = {survivor for *_, survivor in rows if survivor is not None}
    for person_id, account_id, deleted, survivor in rows:
        touched.people.add(survivor or person_id)
        if survivor is not None:
            accounts.rebuilt(account_id, "merge")
        elif deleted:
            accounts.rebuilt(account_id, "delete")
        elif account_id is not None:
            accounts.rescore.add(account_id)
    for chunk in in_chunks(sorted(survivors)):
        moved = select(Person.matched_account_id).where(col(Person.id).in_(chunk))
        for account_id in session.exec(moved):
            accounts.rebuilt(account_id, "merge")


def _touched_activities(session: Session, touched: _Touched) -> None:
    """Counted activities flagged since (edited, deleted, moved) rebuild the account they count
    for; the people of those and of activities not counted yet are touched."""
    counted = select(
        Activity.account_id, Person.matched_account_id, Activity.is_deleted, Activity.person_id
    )
    counted = counted.join(Person, col(Person.id) == Activity.person_id, isouter=True)
    recounted = (_FLAGGED, col(Activity.scored_seq) <= touched.counted)
    for own, linked, deleted, person_id in session.exec(counted.where(*recounted)):
        touched.accounts.rebuilt(own or linked, "delete" if deleted else "edited")
        touched.people.add(person_id)
    new = select(Activity.person_id).where(account_signals.uncounted(touched.counted))
    touched.people.update(session.exec(new))
    touched.people.discard(None)  # type: ignore[arg-type]


def _taken(session: Session) -> None:
    """What this stage took is no longer pending: the link stage's hand-over and the mirror's
    flags on activities (those of activities not counted yet tell nothing: they are new)."""
    session.execute(delete(PendingRescore))
    session.execute(update(Activity).where(_FLAGGED).values(link_pending=False))


def _fold_new_activities(
    session: Session,
    catalog: SignalCatalog,
    now: datetime,
    touched: _Touched,
    saved: dict[str, dict[str, Any]],
) -> None:
    """Add this cycle's new activities to their accounts' stored sums in O(1) each."""
    accounts = touched.accounts
    new = account_signals.new_activities(session, now, touched.counted)
    ids = set(new["account_id"].unique().to_list()) - set(accounts.rebuild)
    held = account_signals.load(session, ids)
    account_signals.fold(catalog, new, held, accounts)
    now_s = int(now.timestamp())
    updated = {
        account_id: (sums.document(now_s), sums.high_water_s)
        for account_id, sums in held.items()
        if account_id not in accounts.rebuild and account_id in accounts.rescore
    }
    _save(session, updated, now, saved)


def _held(session: Session, touched: Touched) -> set[str]:
    """Those of the touched accounts whose sums are stored."""
    held: set[str] = set()
    for chunk in in_chunks(sorted(touched.rescore)):
        ids = select(AccountSignals.account_id).where(col(AccountSignals.account_id).in_(chunk))
        held.update(session.exec(ids))
    return held


def _rebuild(
    session: Session,
    catalog: SignalCatalog,
    now: datetime,
    touched: Touched,
    saved: dict[str, dict[str, Any]],
) -> None:
    """Rebuild the sums of the live accounts that need it from their own activities."""
    ids = _live_ids(session, touched.rebuild)
    gone = set(touched.rebuild) - set(ids)
    for account_id in gone:
        del touched.rebuild[account_id]
    touched.rescore -= gone
    activities = account_signals.linked_activities(session, now, ids)
    _save(session, account_signals.build(catalog, ids, activities, now), now, saved)


def _mark_pending(session: Session, account_ids: Iterable[str]) -> None:
    """These accounts are to be rescored (and written back) this cycle."""
    for chunk in in_chunks(sorted(set(account_ids))):
        session.execute(
            update(AccountSignals)
            .where(col(AccountSignals.account_id).in_(chunk))
            .values(pending=True)
        )


def _pending_book(
    session: Session,
    setup: ScoringSetup,
    model: RulesModel | PredictiveModel,
    now: datetime,
    saved: dict[str, dict[str, Any]],
) -> Book:
    """Score, tier and explain every pending account from its stored sums as of ``now`` (those
    this stage stored, ``saved``, are not read back)."""
    pending = select(AccountSignals.account_id).where(_PENDING)
    ids = list(session.exec(pending.order_by(col(AccountSignals.account_id))))
    sums = dict(saved)
    unread = [account_id for account_id in ids if account_id not in saved]
    for chunk in in_chunks(unread):
        stored = select(AccountSignals.account_id, AccountSignals.sums)
        sums.update(session.exec(stored.where(col(AccountSignals.account_id).in_(chunk))).all())
    return score_stored(session, setup, model, now, [(a, sums[a]) for a in ids])


def score_stored(
    session: Session,
    setup: ScoringSetup,
    model: RulesModel | PredictiveModel,
    now: datetime,
    rows: Sequence[tuple[str, dict[str, Any]]],
) -> Book:
    """Score, tier and explain accounts from stored sums (account id, row JSON) as of ``now``."""
    catalog = setup.catalog
    ids = [account_id for account_id, _ in rows]
    as_of = int(now.timestamp())
    summed, recent = account_signals.totals(catalog, [document for _, document in rows], as_of)
    accounts = _accounts(session, ids)
    opened, still_open = _opportunity_counts(session, ids, as_of)
    snap = Snapshot(
        totals=summed,
        opportunities=opened,
        open_opportunity=still_open,
        exists=accounts["created_at"].dt.epoch("s").to_numpy() <= as_of,
        accounts=accounts.select(FIRMOGRAPHICS),
    )
    scores = score_accounts(model, snap, setup.disqualifiers, setup.tiers)
    counts = recent_counts(recent, len(ids), len(catalog.signals), as_of)
    explanations = scores.explain(snap, np.arange(len(ids)), counts, dated=True)
    kind = "rules" if isinstance(model, RulesModel) else "predictive"
    return Book(tuple(ids), scores, tuple(explanations), kind)


def _opportunity_counts(
    session: Session, ids: Sequence[str], as_of_s: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per account (in `ids` order), opportunities opened by the moment and whether one is open."""
    frame = _opportunities(session, ids)
    row = {account_id: i for i, account_id in enumerate(ids)}
    rows = np.array([row[a] for a in frame["account_id"].to_list()], dtype=np.int64)
    opened_s = frame["opened_at"].dt.epoch("s").to_numpy()
    closed = frame["is_closed"].to_numpy() & (frame["close_at"].dt.epoch("s").to_numpy() <= as_of_s)
    opened = opened_s <= as_of_s
    still_open = opened & ~closed
    n = len(ids)
    return (
        np.bincount(rows[opened], minlength=n),
        np.bincount(rows[still_open], minlength=n) > 0,
    )
