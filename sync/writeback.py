"""Tier, diff and write back: what each record should show, what a rep would notice, the push.

An account gets its score, tier label, signals (the strongest reasons, one a line, worded with
dates), topic, model version, scored-at and disqualification reason; a linked lead or contact
gets its account link and the account's values, an orphan lead its own score and why it has
no account (`sync.orphans`). Only streams whose `writable` holds our fields
are written (Salesforce: Account and Lead; a Contact carries none of our fields); converted
leads never are. A record is written when a rep would notice: a new tier, a disqualification,
another set of reasons (compared by their keys, not their words), another link, a score move of
at least ``min_score_change``, another model; or when the CRM no longer holds what we last wrote
(an edit by hand is repaired). The write ledger keeps one row per record: the values intended
and their hash, written "pending" before the push and settled with the CRM's answer after it. A
permanent rejection is not retried until the values change in a way a rep would notice; a
retriable one is retried next run, and so is a pending one (a batch in flight when a run was
killed), with the same values when nothing changed.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, groupby, islice
from operator import attrgetter
from typing import Any

from sqlalchemy import Text, func, type_coerce
from sqlmodel import Session, col, delete, select

from connectors.protocol import Connector, Update, WriteResult
from connectors.streams import Stream
from scoring.config import TierSettings
from scoring.explain import LONG_TEXT_CHARS, Explanation, fit_text
from scoring.tiers import DISQUALIFIED, TIER_ORDER, TIERS, tier_label
from sync import tally
from sync.scoring_state import Book
from sync.state import Account, CurrentScore, Person, ScoreHistory, WriteLedger, table_of
from sync.store import (
    Store,
    canonical_plain,
    canonical_value,
    in_chunks,
    last_rowid,
    plain_value,
    read_json,
    rows_among,
    update_keyed,
    update_rows,
    update_span,
)

__all__ = [
    "ORPHAN_REASON",
    "SIGNAL_LINES",
    "AccountScore",
    "Plan",
    "Planned",
    "PushOutcome",
    "Target",
    "account_scores",
    "forget_scores",
    "holds",
    "plain_values_hash",
    "plan_writes",
    "push_plan",
    "record_scores",
    "score_history",
    "targets",
    "tier_counts",
    "tier_moves",
]

SIGNAL_LINES = 5  # reasons written to the signals field, strongest first
ORPHAN_REASON = "orphan_reason"  # why a person has no account (None once it has one)
_NEW = "new"  # why a record the ledger holds no row of is written
LEDGER_BATCH = 2_000  # records per push call and ledger batch (the connector splits requests)
_TIER_ORDER = {DISQUALIFIED: -1, **{key: rank for rank, key in enumerate(TIERS)}}
TIER_TALLY = "tier"  # the tally's kind: live accounts per tier key (`sync.tally`)


@dataclass(frozen=True)
class AccountScore:
    """One account's score as it will be written and kept."""

    account_id: str
    score: int
    tier: str  # tier key
    values: Mapping[str, Any]  # our field -> value, as the CRM should hold it
    reasons: tuple[str, ...]  # keys of the written reasons a rep would notice change
    sentences: tuple[str, ...]
    topic: str | None
    model_version: str
    disqualified_reason: str | None
    explanation: Explanation


def account_scores(
    book: Book, tiers: TierSettings, now: datetime, min_points: float = 0.0
) -> dict[str, AccountScore]:
    """What every scored account should show, by account id; ``scored_at`` to the second.

    The reasons compared between runs are the written ones worth at least ``min_points``
    (``[sync] min_score_change``): a reason too small to move the score noticeably does not
    make a write by crossing the line of what is shown.
    """
    scored_at = now.replace(microsecond=0)
    scores, version = book.scores, book.scores.model_version
    labels = {key: tier_label(key, tiers) for key in TIER_ORDER}
    found = {}
    for account_id, explanation, score, tier, disqualified in zip(
        book.account_ids,
        book.explanations,
        scores.score.tolist(),
        scores.tier.tolist(),
        scores.disqualified_by.to_list(),
        strict=True,
    ):
        tier, sentences = str(tier), explanation.reasons[:SIGNAL_LINES]
        values = {
            "score": int(score),
            "tier": labels[tier],
            "signals": fit_text(sentences, LONG_TEXT_CHARS, "\n") or None,  # "" reads back None
            "topic": explanation.topic,
            "model_version": version,
            "scored_at": scored_at,
            "disqualification_reason": disqualified,
        }
        found[account_id] = AccountScore(
            account_id,
            values["score"],
            tier,
            values,
            _noticeable(explanation, min_points),
            sentences,
            explanation.topic,
            version,
            disqualified,
            explanation,
        )
    return found


def _noticeable(explanation: Explanation, min_points: float) -> tuple[str, ...]:
    """Keys of the written reasons worth at least ``min_points`` (a rule always counts)."""
    shown = zip(explanation.keys[:SIGNAL_LINES], explanation.points, strict=False)
    return tuple(key for key, points in shown if abs(points) >= min_points or not points)


@dataclass(slots=True)  # one a record written, a million on a first run: not frozen, which
class Target:  # makes one four times as slow; never changed once made
    """What one CRM record should hold, and what it holds now (our fields as pulled)."""

    stream: str
    entity: str
    record_id: str
    account_id: str
    values: Mapping[str, Any]
    reasons: tuple[str, ...]
    held: Mapping[str, Any]


def targets(
    session: Session,
    streams: Mapping[str, Stream],
    scores: Mapping[str, AccountScore],
    orphans: Mapping[str, AccountScore] | None = None,
) -> Iterator[Target]:
    """Every record we write: scored accounts, then the unconverted people of each stream that
    carries our fields: linked ones with their account's values, orphans with their own
    (`sync.orphans`, by person id)."""
    for stream in streams.values():
        if "score" not in stream.writable:
            continue
        if stream.entity == "account":
            yield from _account_targets(session, stream, scores)
        elif stream.entity == "person":
            yield from _person_targets(session, stream, scores, orphans or {})


def _account_targets(
    session: Session, stream: Stream, scores: Mapping[str, AccountScore]
) -> Iterator[Target]:
    """The scored accounts still live, in id order (only these are read, as plain rows)."""
    owned_text = type_coerce(Account.crm_owned, Text)
    statement = select(Account.id, owned_text).where(col(Account.is_deleted).is_(False))
    read, decoded = session.connection().execute, _Decoded()
    for chunk in in_chunks(sorted(scores)):
        held = read(statement.where(col(Account.id).in_(chunk)).order_by(col(Account.id)))
        for account_id, owned in held:
            score = scores[account_id]
            yield Target(
                stream.name,
                "account",
                account_id,
                account_id,
                score.values,
                score.reasons,
                decoded(owned),
            )


def _person_targets(
    session: Session,
    stream: Stream,
    scores: Mapping[str, AccountScore],
    orphans: Mapping[str, AccountScore],
) -> Iterator[Target]:
    """The people linked to a scored account, with its values and no orphan reason; then the
    scored orphans with their own (an orphan's ``account_id`` is its own id, as it was scored as
    an account of its own). Only these are read, as plain rows."""
    owned_text = type_coerce(Person.crm_owned, Text)
    statement = select(Person.id, Person.matched_account_id, owned_text).where(
        col(Person.is_deleted).is_(False), col(Person.is_converted).is_(False)
    )
    kind = stream.constants.get("kind")
    if kind is not None:
        statement = statement.where(Person.kind == kind)
    read, decoded = session.connection().execute, _Decoded()
    shown: dict[str, Mapping[str, Any]] = {}  # one values mapping per account, its people share
    for person_id, account_id, owned in _linked_people(session, statement, scores):
        score = scores[account_id]
        values = shown.get(account_id)
        if values is None:
            values = _Shown({"matched_account_id": account_id, **score.values, ORPHAN_REASON: None})
            shown[account_id] = values
        held = decoded(owned)
        yield Target(stream.name, "person", person_id, account_id, values, score.reasons, held)
    unlinked = statement.where(col(Person.matched_account_id).is_(None))
    for chunk in in_chunks(sorted(orphans)):
        held = read(unlinked.where(col(Person.id).in_(chunk)).order_by(col(Person.id)))
        for person_id, _, owned in held:
            orphan = orphans[person_id]
            yield Target(
                stream.name,
                "person",
                person_id,
                person_id,
                orphan.values,
                orphan.reasons,
                decoded(owned),
            )


class _Shown(dict[str, Any]):
    """The values the people linked to an account show, one mapping they share: a dict a
    connector can keep a weak reference to, so the row it makes of them serves them all
    whatever call each is pushed in (`connectors.batches.KeptRows`)."""

    __slots__ = ("__weakref__",)


def _linked_people(
    session: Session, statement: Any, scores: Mapping[str, AccountScore]
) -> Iterator[tuple[str, str, Any]]:
    """(person, account, our fields as pulled) of the people ``statement`` reads that are linked
    to one of the scored accounts, in id order within each lookup: by the index of links, a few
    thousand accounts at a time, or, where most accounts are scored (a first run, a nightly
    rescore), every linked person in one pass (`rows_among`), a fraction of 200,000 accounts'
    lookups and sorts (3.3 s of the reference org's diff)."""
    linked = statement.where(col(Person.matched_account_id).is_not(None)).order_by(col(Person.id))
    accounts = select(func.count()).select_from(Account).where(col(Account.is_deleted).is_(False))
    return rows_among(
        session,
        linked,
        col(Person.matched_account_id),
        scores.keys(),
        at=1,
        population=lambda: int(session.exec(accounts).one()),
    )


class _Decoded:
    """JSON read as text, decoded once for every distinct text and shared (the people of an
    account hold one text of our fields as pulled, and their ledger rows one of values and one
    of reasons); readers never change what they get. A value the driver decoded itself
    (psycopg's JSON) passes as it is."""

    def __init__(self) -> None:
        self._seen: dict[str, Any] = {}

    def __call__(self, raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        found = self._seen.get(raw, _ABSENT)
        if found is _ABSENT:
            found = self._seen[raw] = read_json(raw)
        return found


_ABSENT = object()


@dataclass(slots=True)  # as `Target`: one a record, never changed once made
class Planned:
    """A record to write and why (new, repair, retry, tier, disqualification, ...)."""

    target: Target
    why: str


@dataclass
class Plan:
    """The run's writes, and what it left alone."""

    writes: list[Planned] = field(default_factory=list)
    unchanged: int = 0
    held_back: list[tuple[Target, str]] = field(default_factory=list)  # (target, CRM code)

    def fields(self) -> dict[str, int]:
        """How many planned writes set each field (counted once for every values mapping, which
        the people of an account share)."""
        mappings = list(map(_VALUES, self.writes))
        ids = list(map(id, mappings))
        shared = Counter(ids)  # writes of each values mapping, by its id
        counts: dict[str, int] = {}
        for key_of, values in dict(zip(ids, mappings, strict=True)).items():
            n = shared[key_of]
            for key in values:
                counts[key] = counts.get(key, 0) + n
        return counts


_VALUES = attrgetter("target.values")  # of a `Planned`


def plan_writes(session: Session, found: Iterable[Target], min_score_change: int) -> Plan:
    """Diff each target against what the CRM holds and the write ledger. What decides it is
    compared once for all the targets sharing it (the people of an account share their values,
    reasons and, read once for every text, what the CRM and the ledger hold)."""
    plan = Plan()
    listed = list(found)
    ledgers = _ledgers(session, listed)
    decided: dict[tuple[Any, ...], str | None] = {}
    for target in listed:
        last = ledgers.get((target.stream, target.record_id))
        key = (id(target.held), id(target.values), id(target.reasons), *_sharing(last))
        if key in decided:
            why = decided[key]
        else:
            why = decided[key] = _why(target, last, min_score_change)
        if why is not None:
            plan.writes.append(Planned(target, why))
        elif last is not None and last.status == "permanent":
            plan.held_back.append((target, last.code or "rejected"))
        else:
            plan.unchanged += 1
    return plan


@dataclass(frozen=True)
class _Written:
    """What the ledger keeps of a record's last write that the diff reads."""

    values: Mapping[str, Any]
    reasons: list[str] | None
    status: str
    code: str | None


def _ledgers(session: Session, found: Sequence[Target]) -> dict[tuple[str, str], _Written]:
    """The ledger rows of the targets, by (stream, record id): looked up by IN lists, or read in
    one pass where the targets are as many as half the stream's ledger rows (`rows_among`: a
    first run's empty ledger is not looked up 1.1M ids at a time on the reference org)."""
    by_stream: dict[str, list[str]] = {}
    for target in found:
        by_stream.setdefault(target.stream, []).append(target.record_id)
    table = table_of(WriteLedger)
    texts = (type_coerce(table.c["values"], Text), type_coerce(table.c.reasons, Text))
    columns = (table.c.record_id, *texts, table.c.status, table.c.code)
    rows: dict[tuple[str, str], _Written] = {}
    decoded = _Decoded()
    for stream, ids in by_stream.items():
        statement = select(*columns).where(table.c.object == stream)
        for record_id, values, reasons, status, code in rows_among(
            session, statement, table.c.record_id, ids
        ):
            rows[stream, record_id] = _Written(decoded(values), decoded(reasons), status, code)
    return rows


def _sharing(last: _Written | None) -> tuple[Any, ...]:
    """What `_why` reads of a ledger row, by identity where it is shared."""
    if last is None:
        return (None,)
    return (id(last.values), id(last.reasons), last.status)


def _why(target: Target, last: _Written | None, min_score_change: int) -> str | None:
    """Why the record must be written now, or None."""
    if last is None:
        return None if holds(target.held, target.values) else _NEW
    if last.status in ("retriable", "pending"):
        # pending: in flight when a run died. Even when the CRM shows the values, sending them
        # again is what settles the row and records the score history of what landed
        return "retry"
    if last.status != "permanent" and not holds(target.held, last.values):
        return "repair"
    return _noticed(target, last, min_score_change)


def _noticed(target: Target, last: _Written, min_score_change: int) -> str | None:
    """What a rep would notice between the last written values and the new ones."""
    new, old = target.values, last.values
    for key, why in (
        ("tier", "tier"),
        ("disqualification_reason", "disqualification"),
        ("matched_account_id", "link"),
        (ORPHAN_REASON, "link"),
        ("model_version", "model"),
    ):
        if not _same(new.get(key), old.get(key)):
            return why
    if last.reasons is not None and set(target.reasons) != set(last.reasons):
        return "signals"
    if abs(float(new["score"]) - float(old.get("score") or 0)) >= max(min_score_change, 1):
        return "score"
    return None


def holds(held: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    """Whether the CRM holds every one of ``values`` (compared as canonical text)."""
    return all(_same(held.get(k), v) for k, v in values.items())


def _same(one: Any, other: Any) -> bool:
    """Whether two values read the same as canonical text (`canonical_value`); equal scalars of
    one type (text, numbers, none: most of them) are, without writing either out."""
    kind = type(one)
    if kind is type(other) and kind in _SCALARS and one == other:
        return True
    if one is None or other is None:  # only None reads as null: the other one differs
        return False
    one, other = plain_value(one), plain_value(other)
    if type(one) is type(other) and one == other:
        return True
    return canonical_value(one) == canonical_value(other)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def values_hash(values: Mapping[str, Any]) -> str:
    """A short hash of the values of one write."""
    return _hashed(canonical_value(values))


def plain_values_hash(values: Mapping[str, Any]) -> str:
    """`values_hash` of values already plain (`plain_value`), not made plain again."""
    return _hashed(canonical_plain(values))


def _hashed(text: str) -> str:
    """A short hash of values written out as canonical text."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class PushOutcome:
    """What the push did, record by record."""

    written: list[Planned] = field(default_factory=list)
    failed: list[tuple[Planned, WriteResult]] = field(default_factory=list)


def push_plan(
    store: Store,
    connector: Connector,
    plan: Plan,
    scores: Mapping[str, AccountScore],
    run_id: str,
    now: datetime,
    outcome: PushOutcome,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Push the planned writes in ledger batches: intent committed before each push, outcome
    after, with the score history of the accounts that landed in the same transaction (a run
    killed after a batch keeps its history: the rerun finds the CRM holding it and writes
    nothing). A batch's outcome is committed with the next batch's intent, one transaction a
    batch (a run killed between them leaves the answered batch pending, resent next run with
    the same values, as one killed before the answer came). Gathered in ``outcome`` as it
    comes. `BudgetExhausted` propagates with the batch in flight left pending (resent next
    run, with the same values)."""
    texts = _LedgerTexts()
    answered: tuple[_Intended, list[WriteResult]] | None = None  # pushed, not settled yet

    def settle(session: Session) -> int:
        """The answered batch's outcome and history; how many records it held."""
        if answered is None:
            return 0
        landed = _settle(store, session, *answered, now, outcome)
        _append_history(store, session, scores, landed, now, run_id)
        return len(answered[0].batch)

    for number, batch in enumerate(_batches(plan.writes, LEDGER_BATCH)):
        with store.session() as session:
            settled = settle(session)
            intended = _intend(store, session, batch, f"{run_id}:{number}", run_id, now, texts)
        if settled and progress is not None:
            progress(settled)  # counted once committed
        answered = (intended, _push(connector, batch))
    with store.session() as session:
        settled = settle(session)
    if settled and progress is not None:
        progress(settled)


def _batches(items: Sequence[Planned], size: int) -> Iterator[list[Planned]]:
    """Consecutive batches of up to ``size`` records, each stream's records in one run (a
    batch may end one stream and begin the next: a Salesforce call fills its 200 across
    objects, so an org's writes take ceil(records / 200) calls, not one more per object)."""
    by_stream: dict[str, list[Planned]] = {}
    for planned in items:
        by_stream.setdefault(planned.target.stream, []).append(planned)
    ordered = chain.from_iterable(by_stream.values())
    while batch := list(islice(ordered, size)):
        yield batch


@dataclass(frozen=True)
class _Intended:
    """A batch whose ledger rows are written: its records, its id, and on SQLite the rowids of
    the rows inserted for it (`last_rowid` before and after), which its settle updates as one
    range rather than finding each by its key."""

    batch: Sequence[Planned]
    batch_id: str
    inserted: tuple[int, int] | None


def _intend(
    store: Store,
    session: Session,
    batch: Sequence[Planned],
    batch_id: str,
    run_id: str,
    now: datetime,
    texts: _LedgerTexts,
) -> _Intended:
    """The ledger rows of a batch about to be pushed, status pending, on the store's bulk path
    (`Store.put_rows`: a batch is thousands of rows, each with its values as JSON): inserted
    for the records the ledger held no row of at the diff, replaced for the others; what every
    row of the batch shares goes once."""
    table = table_of(WriteLedger)
    stamp = store.adapters(table, ["intended_at"])[0]
    fixed = {
        "batch": batch_id,
        "status": "pending",
        "code": None,
        "message": None,
        "intended_at": now if stamp is None else stamp(now),
        "settled_at": None,
        "run_id": run_id,
    }
    new: list[tuple[Any, ...]] = []
    held: list[tuple[Any, ...]] = []
    for planned in batch:
        target = planned.target
        rows = new if planned.why == _NEW else held
        rows.append((target.stream, target.record_id, *texts.of(target)))
    first = last_rowid(session, table) if new else None
    store.put_rows(session, table, _INTENT, new, fixed=fixed, new=True)
    store.put_rows(session, table, _INTENT, held, fixed=fixed)
    inserted = None if first is None else (first, last_rowid(session, table) or 0)
    return _Intended(batch, batch_id, inserted)


class _LedgerTexts:
    """The ledger's hash and text of each target's values and reasons, written out once for
    every target sharing them (the people linked to an account show one values mapping, and
    its reasons), a datetime once for every values mapping holding it (a run's scored-at)."""

    def __init__(self) -> None:
        # by the ids of the values and reasons, which are kept so the ids stay theirs
        self._values: dict[int, tuple[Any, tuple[str, str]]] = {}
        self._reasons: dict[int, tuple[Any, str]] = {}
        self._stamps: dict[datetime, str] = {}

    def of(self, target: Target) -> tuple[str, str, str]:
        """(values hash, values as canonical JSON, reasons as canonical JSON)."""
        values = self._values.get(id(target.values))
        if values is None:
            text = canonical_plain(self._plain(target.values))
            values = self._values[id(target.values)] = (target.values, (_hashed(text), text))
        reasons = self._reasons.get(id(target.reasons))
        if reasons is None:
            text = canonical_plain(list(target.reasons))
            reasons = self._reasons[id(target.reasons)] = (target.reasons, text)
        return (*values[1], reasons[1])

    def _plain(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Values as the ledger's JSON keeps them (`plain_value`), text and whole numbers as
        they are."""
        plain = {}
        for key, value in values.items():
            kind = type(value)
            if kind is datetime:
                stamp = self._stamps.get(value)
                if stamp is None:
                    stamp = self._stamps[value] = plain_value(value)
                value = stamp
            elif kind not in _AS_IS:
                value = plain_value(value)
            plain[key] = value
        return plain


_AS_IS = (str, int, bool, type(None))
_INTENT = ("object", "record_id", "values_hash", "values", "reasons")  # each row's own


def _push(connector: Connector, batch: Sequence[Planned]) -> list[WriteResult]:
    """One push call for a batch, its streams' runs together, results in the batch's order."""
    groups = [
        (stream, [Update(p.target.record_id, p.target.values) for p in run])
        for stream, run in groupby(batch, key=lambda p: p.target.stream)
    ]
    return list(chain.from_iterable(connector.push_together(groups)))


def _settle(
    store: Store,
    session: Session,
    intended: _Intended,
    results: Sequence[WriteResult],
    now: datetime,
    outcome: PushOutcome,
) -> list[Planned]:
    """Each record's answer into the ledger, in bulk: the plain "ok" of most records with one
    statement for them all (on SQLite, the rows inserted for the batch as one range of rowids,
    the others by (object, record id)), then the others each with its own; the outcome gathers
    what landed and what failed. What landed in this batch."""
    table = table_of(WriteLedger)
    stamp = store.adapters(table, ["settled_at"])[0]
    settled = now if stamp is None else stamp(now)
    span = intended.inserted  # on SQLite its new rows are set "ok" as a range, then the rest
    plain_ok, rows, landed = [], [], []
    for planned, result in zip(intended.batch, results, strict=True):
        target = planned.target
        if result.status == "ok" and result.code is None and result.message is None:
            if span is None or planned.why != _NEW:
                plain_ok.append((target.stream, target.record_id))
        else:
            rows.append(
                (target.stream, target.record_id, result.status, result.code, result.message)
            )
        if result.ok:
            landed.append(planned)
        else:
            outcome.failed.append((planned, result))
    ok = {"status": "ok", "code": None, "message": None, "settled_at": settled}
    if span is not None:
        update_span(session, table, ok, span, {"batch": intended.batch_id})
    update_keyed(session, table, ok, plain_ok)
    update_rows(session, table, _SETTLED, sorted((*row, settled) for row in rows))
    outcome.written.extend(landed)
    return landed


_SETTLED = ("object", "record_id", "status", "code", "message", "settled_at")


def tier_moves(session: Session, scores: Mapping[str, AccountScore]) -> tuple[int, int, int]:
    """(up, down, new) tier changes against the current-score table."""
    before = dict(_current_tiers(session, scores))
    up = down = new = 0
    for account_id, score in scores.items():
        old = before.get(account_id)
        if old is None:
            new += 1
        elif _TIER_ORDER[score.tier] > _TIER_ORDER.get(old, -1):
            up += 1
        elif _TIER_ORDER[score.tier] < _TIER_ORDER.get(old, -1):
            down += 1
    return up, down, new


def _current_tiers(session: Session, scores: Mapping[str, AccountScore]) -> Iterator[Any]:
    """(account, tier) of the current scores of the accounts of ``scores``: looked up by IN
    lists, or read in one pass where they are as many as half the table's rows (`rows_among`:
    every account, on a first run or a nightly rescore)."""
    statement = select(CurrentScore.account_id, CurrentScore.tier)
    return rows_among(session, statement, col(CurrentScore.account_id), scores.keys())


def tier_counts(
    session: Session, scores: Mapping[str, AccountScore], *, recount: bool = False
) -> dict[str, int]:
    """Live accounts per tier key once this run's scores replace theirs: the tally kept with
    the current-score table, moved by this run's scores; counted in the database (not read)
    with ``recount`` (accounts were deleted this cycle) or when there is no tally."""
    totals = None if recount else tally.read(session, TIER_TALLY)
    if totals is None:
        return _counted(session, scores)
    return tally.shifted(totals, _tier_changes(session, scores))


def _counted(session: Session, scores: Mapping[str, AccountScore]) -> dict[str, int]:
    """Live accounts per tier key counted in the current-score table, with this run's scores in
    place of theirs. Joined to the accounts, so a list of ids looks each up by key (``IN`` a
    subquery of the live accounts would read them all again for every list)."""
    statement = (
        select(CurrentScore.tier, func.count())
        .join(Account, col(Account.id) == col(CurrentScore.account_id))
        .where(col(Account.is_deleted).is_(False))
        .group_by(col(CurrentScore.tier))
    )
    counts: dict[str, int] = dict(session.exec(statement).all())
    for chunk in in_chunks(sorted(scores)):
        held = statement.where(col(CurrentScore.account_id).in_(chunk))
        for tier, n in session.exec(held):
            counts[tier] -= n
    for score in scores.values():
        counts[score.tier] = counts.get(score.tier, 0) + 1
    return {tier: n for tier, n in counts.items() if n}


def _tier_changes(session: Session, scores: Mapping[str, AccountScore]) -> dict[str, int]:
    """How the tally moves as ``scores`` replace the current scores of their accounts."""
    changes: dict[str, int] = {}
    for score in scores.values():
        changes[score.tier] = changes.get(score.tier, 0) + 1
    for _, tier in _current_tiers(session, scores):
        changes[tier] = changes.get(tier, 0) - 1
    return changes


def record_scores(
    store: Store,
    session: Session,
    scores: Mapping[str, AccountScore],
    now: datetime,
    run_id: str,
) -> None:
    """Replace the current scores of the rescored accounts, and the tier tally with them (score
    history is appended as writes land)."""
    changes = _tier_changes(session, scores)
    current = [
        {
            "account_id": s.account_id,
            "score": s.score,
            "tier": s.tier,
            "model_version": s.model_version,
            "scored_at": now,
            "disqualified_reason": s.disqualified_reason,
            "topic": s.topic,
            "reasons": list(s.reasons),
            "run_id": run_id,
        }
        for s in scores.values()
    ]
    store.put_mappings(session, table_of(CurrentScore), current)
    if not tally.add(session, TIER_TALLY, changes):
        tally.replace(session, TIER_TALLY, _counted(session, {}))


def forget_scores(session: Session, account_ids: Collection[str] | None) -> None:
    """Deleted accounts' current scores (None: of every deleted account), and the tier tally,
    which is counted afresh (the mirror drops a merged account's current score itself, so what
    it counted cannot be told)."""
    if account_ids is not None and not account_ids:
        return
    if account_ids is None:
        gone = select(Account.id).where(col(Account.is_deleted).is_(True))
        session.exec(delete(CurrentScore).where(col(CurrentScore.account_id).in_(gone)))
    for chunk in in_chunks(sorted(account_ids or ())):
        session.exec(delete(CurrentScore).where(col(CurrentScore.account_id).in_(chunk)))
    tally.forget(session, TIER_TALLY)


def _append_history(
    store: Store,
    session: Session,
    scores: Mapping[str, AccountScore],
    landed: Iterable[Planned],
    now: datetime,
    run_id: str,
) -> int:
    """A score history row for each account whose write landed."""
    accounts = [p.target.account_id for p in landed if p.target.entity == "account"]
    return store.append_scores(session, [_history_row(scores[a], now, run_id) for a in accounts])


def _history_row(score: AccountScore, now: datetime, run_id: str) -> dict[str, Any]:
    """A score history row: the score as written, and each written reason with its points."""
    explanation = score.explanation
    contributions = [
        {"key": key, "points": round(points, 2), "reason": sentence}
        for key, points, sentence in zip(
            explanation.keys, explanation.points, score.sentences, strict=False
        )
    ]
    return {
        "account_id": score.account_id,
        "scored_at": now,
        "score": score.score,
        "tier": score.tier,
        "model_version": score.model_version,
        "disqualified_reason": score.disqualified_reason,
        "topic": score.topic,
        "contributions": contributions,
        "run_id": run_id,
    }


def score_history(session: Session, account_id: str) -> list[ScoreHistory]:
    """An account's score history, oldest first, with that of every account merged into it
    (history is append-only: a merge is followed, not rewritten)."""
    ids, frontier = {account_id}, [account_id]
    while frontier:
        losers = session.exec(select(Account.id).where(col(Account.merged_into).in_(frontier)))
        frontier = [i for i in losers if i not in ids]
        ids.update(frontier)
    statement = (
        select(ScoreHistory)
        .where(col(ScoreHistory.account_id).in_(ids))
        .order_by(col(ScoreHistory.scored_at), col(ScoreHistory.id))
    )
    return list(session.exec(statement))
