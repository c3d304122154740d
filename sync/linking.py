"""Link: live leads and contacts to their accounts with `sync.matching`, stored per person.

An activity counts for its own account (``activity.account_id``), else for the account its
person is linked to (D3); activities of people who stay orphaned or in review count for none.
The frame functions serve the run and the benchmarks alike; `link_people` reads the mirror,
matches, and stores each person's link, rule, confidence, or the reason it has none.

Only what changed is relinked. The mirror sets ``link_pending`` on every account, person and
opportunity row it writes (insert, update, delete, merge). A pending row counts as changed when
the fields matching reads differ from its ``link_basis`` (their hash when last linked), so a
record pulled again because our write-back touched it is no change. Linking relinks the changed
people and the people a changed account reaches: those whose keys meet its keys or a relative's,
as they are or were, and those linked to it before, matched from the accounts and people their
outcomes depend on, all found by index from the matching keys kept in the state database
(`sync.link_keys`). An account also changes for this purpose when a changed person or
opportunity names it (contacts, learned domains and open opportunities feed the tie-breaks).
Every pending row, changed or not, is handed to the score stage (`PendingRescore`) and the flags
cleared in the transaction that stores the links, so a run stopped anywhere loses nothing. The
first run relinks everyone, and so does ``full``, a change of the matching settings, or a cycle
that changed as many people as it left.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import polars as pl
from sqlalchemy import Integer, Row, cast, false, func, literal, text, update
from sqlmodel import Session, SQLModel, col, select

from sync import link_keys, tally
from sync.config import MatchingSettings
from sync.frames import read_frame
from sync.matching import Changes, Matching
from sync.matching.match import keyed, match_keyed
from sync.state import (
    EVERYONE,
    LINK_PENDING,
    RELINKED,
    Account,
    Opportunity,
    PendingRescore,
    Person,
    table_of,
)
from sync.store import in_chunks, indexes_rebuilt, insert_missing, update_frame, update_rows

__all__ = ["LinkCounts", "link_people", "linked_activities", "match_frames"]

TALLY = "link"  # the tally's kind: live people per status (`sync.tally`)
_ORPHAN = "orphan:"  # an orphan's status: the prefix, then its reason
# the fields matching reads, by table: a row pulled again with these unchanged is no change
_BASIS: dict[type[SQLModel], tuple[str, ...]] = {
    Account: ("name", "website", "domain", "country", "parent_id", "created_at", "is_deleted"),
    Person: (
        *("email", "company", "country", "phone"),
        *("account_id", "converted_account_id", "is_deleted"),
    ),
    Opportunity: ("account_id", "is_closed", "is_deleted"),
}


def match_frames(
    accounts: pl.DataFrame,
    people: pl.DataFrame,
    opportunities: pl.DataFrame,
    settings: MatchingSettings | None = None,
    changes: Changes | None = None,
) -> Matching:
    """`match_people` with each account's open opportunities counted (a tie-break reads them);
    with ``changes``, only the people they reach.

    ``opportunities``: account_id, is_closed.
    """
    keys = keyed(_with_open(accounts, opportunities), people, settings)
    return match_keyed(keys, settings, changes=changes)


def _with_open(accounts: pl.DataFrame, opportunities: pl.DataFrame) -> pl.DataFrame:
    """``accounts`` with how many open opportunities each has."""
    open_opportunities = (
        opportunities.filter(~pl.col("is_closed"))
        .group_by("account_id")
        .len("open_opportunities")
        .with_columns(pl.col("open_opportunities").cast(pl.Int64))
    )
    return accounts.join(open_opportunities, on="account_id", how="left")


def linked_activities(activities: pl.DataFrame, matching: Matching) -> pl.DataFrame:
    """Activities with ``account_id`` filled from their person's link; unlinked ones dropped."""
    matched = matching.frame.filter(pl.col("status") == "linked")
    person_account = matched.select("person_id", pl.col("account_id").alias("person_account"))
    return (
        activities.join(person_account, on="person_id", how="left")
        .with_columns(account_id=pl.coalesce("account_id", "person_account"))
        .filter(pl.col("account_id").is_not_null())
        .drop("person_account")
    )


@dataclass
class LinkCounts:
    """What linking decided this run, for the run log and the stages after it.

    ``people``: relinked this run. ``linked``, ``review`` and ``orphans`` (by reason): the state
    after it, of every live person. ``relinked``: (person, old account, new account) of every
    person whose matched account changed, a first link (old None) and an unlink (new None)
    included, so the score stage rebuilds both accounts. ``changed``: the people whose link, rule
    or orphan reason changed (what an orphan shows may differ). ``touched_accounts``: the accounts
    that gained or lost a person (a relink, a person deleted), whose activity sums must be rebuilt.
    """

    people: int = 0
    linked: int = 0
    review: int = 0
    orphans: dict[str, int] = field(default_factory=dict)
    relinked: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    changed: frozenset[str] = frozenset()
    touched_accounts: frozenset[str] = frozenset()
    full: bool = False


@dataclass(frozen=True)
class _Pending:
    """The mirror's pending rows, read as what changed."""

    people: frozenset[str]  # live people whose fields that matching reads changed
    deleted: frozenset[str]  # people deleted since the last link
    records: frozenset[str]  # accounts whose fields that matching reads changed
    accounts: frozenset[str]  # those, and the accounts changed people and opportunities name
    lost: frozenset[str]  # accounts of people deleted since the last link
    uncounted: dict[str, int]  # the tally's change for people deleted since (see `_tallied`)


def link_people(
    session: Session, settings: MatchingSettings, *, full: bool = False, unbuilt: bool = False
) -> LinkCounts:
    """Relink the people a change reaches (everyone with ``full``, on the first run, or when
    the matching settings changed) and store each outcome on the person's row; hand what changed
    to the score stage (`PendingRescore`) as the mirror's flags are cleared; the counts of the
    state after it. With ``unbuilt`` (the person table's indexes are left to a later build:
    `sync.mirror.mirror_streams`), a relink of everyone leaves those it drops to it too."""
    everyone = full or not link_keys.current(session, settings)
    pending = _pending(session, live=not everyone)
    counts, moved = LinkCounts(), {}
    if everyone or _relinks_everyone(session, pending):
        counts, moved = _relink_everyone(session, settings, pending.lost, rebuild=not unbuilt)
    elif pending.people or pending.accounts:
        counts, moved = _relink_reached(session, settings, pending)
    _hand_over(session, counts)
    link_keys.mark_current(session, settings)
    return _tallied(session, counts, tally.shifted(pending.uncounted, moved))


def _relinks_everyone(session: Session, pending: _Pending) -> bool:
    """Whether to relink everyone though the stored keys are current: as many people changed
    as stayed (then reading everyone costs less than finding them)."""
    counted = tally.read(session, TALLY)
    return counted is None or 2 * len(pending.people) >= sum(counted.values())


def _relink_everyone(
    session: Session, settings: MatchingSettings, lost: frozenset[str], *, rebuild: bool = True
) -> tuple[LinkCounts, dict[str, int]]:
    """Match everyone and store every outcome and every key, each live row's basis with them
    (one write a row); what was decided, and the tally's change. The match runs in a thread of
    its own (polars, which leaves the interpreter lock) while the keys, which it does not read
    from the database, are stored."""
    people, previous, people_bases = _people(session)
    accounts, account_bases = _accounts(session)
    keys = keyed(_with_open(accounts, _opportunities(session)), people, settings)
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="matching") as pool,
        indexes_rebuilt(session, table_of(Person), _STORED, rebuild=rebuild),
        indexes_rebuilt(session, table_of(Account), {"match_name"}),
    ):
        matching = pool.submit(match_keyed, keys, settings)
        account_keys = _as_stored(link_keys.account_keys(keys), "account_id")
        update_frame(session, table_of(Account), _joined(account_bases, account_keys))
        link_keys.store_everyone(session, keys)
        frame = matching.result().frame
        statuses = _statuses(frame)
        person_keys = _as_stored(link_keys.person_keys(keys), "person_id")
        _store(session, frame, statuses, _joined(people_bases, person_keys))
    return _decided(frame, previous, lost, full=True), _moves(statuses, previous)


# the person columns a full relink sets on every row
_STORED = frozenset(
    (
        *("matched_account_id", "match_rule", "match_confidence", "orphan_reason"),
        *("link_status", "match_link", "match_domain", "match_name"),
    )
)


def _joined(rows: pl.DataFrame, more: pl.DataFrame) -> pl.DataFrame:
    """``rows`` with the columns of ``more`` by id, in the order of ``rows``."""
    return rows.join(more, on="id", how="left", maintain_order="left")


def _as_stored(keys: pl.DataFrame, key: str) -> pl.DataFrame:
    """Keys of `sync.link_keys` (``key``, then the keys) as their rows' columns: id, match_*."""
    return keys.rename({key: "id"} | {k: f"match_{k}" for k in keys.columns if k != key})


def _relink_reached(
    session: Session, settings: MatchingSettings, pending: _Pending
) -> tuple[LinkCounts, dict[str, int]]:
    """Store the changed rows' keys, then match only the people the change reaches, from the
    accounts and people their outcomes depend on (`sync.link_keys`); what was decided, and the
    tally's change."""
    old = link_keys.refresh(session, settings, pending.people | pending.deleted, pending.records)
    reached = link_keys.reached(session, settings, pending.people, pending.accounts, old)
    accounts, people, opportunities = link_keys.neighbourhood(session, settings, reached)
    previous = _previous(session, reached)
    changes = Changes(people=frozenset(reached))
    frame = match_frames(accounts, people, opportunities, settings, changes).frame
    statuses = _statuses(frame)
    _store(session, frame, statuses)
    return _decided(frame, previous, pending.lost, full=False), _moves(statuses, previous)


def _decided(
    frame: pl.DataFrame, previous: pl.DataFrame, lost: frozenset[str], *, full: bool
) -> LinkCounts:
    """What a match decided, against the outcomes before it (``previous``)."""
    counts = LinkCounts(people=frame.height, full=full)
    counts.relinked, counts.changed = _changed(frame, previous)
    counts.touched_accounts = _touched(frame, previous, lost)
    return counts


def _pending(session: Session, *, live: bool = True) -> _Pending:
    """People and accounts the mirror changed, in what matching reads, since the last link;
    people deleted since are no longer counted (their status cleared). Without ``live`` (a
    relink of everyone, which stores the live rows' bases with their links) only deleted
    people and accounts are read."""
    extra = ("matched_account_id", "link_status", "match_link")
    people = _changed_rows(session, Person, extra, live=live)
    records = frozenset(row.id for row in _changed_rows(session, Account, live=live))
    accounts = set(records)
    accounts.update(row.account_id for row in _changed_rows(session, Opportunity))
    for row in people:
        accounts.update((row.account_id, row.converted_account_id, row.matched_account_id))
        accounts.add(row.match_link)  # the link it had: its contacts and domains changed
    accounts.discard(None)
    deleted = [row for row in people if row.is_deleted]
    lost = frozenset(r.matched_account_id for r in deleted if r.matched_account_id is not None)
    uncounted: dict[str, int] = {}
    for row in deleted:
        if row.link_status is not None:
            uncounted[row.link_status] = uncounted.get(row.link_status, 0) - 1
    _clear_status(session, [row.id for row in deleted if row.link_status is not None])
    return _Pending(
        people=frozenset(row.id for row in people if not row.is_deleted),
        deleted=frozenset(row.id for row in deleted),
        records=records,
        accounts=frozenset(accounts),
        lost=lost,
        uncounted=uncounted,
    )


def _changed_rows(
    session: Session, model: type[SQLModel], extra: tuple[str, ...] = (), *, live: bool = True
) -> list[Row[Any]]:
    """Pending rows (deleted ones only, without ``live``) whose fields that matching reads
    differ from the basis they were last linked on (a row pulled again for our own write-back's
    sake does not); their basis is updated."""
    table = table_of(model)
    names = _BASIS[model]
    columns = [table.c[name] for name in (*names, *extra)]
    statement = select(table.c.id, table.c.link_basis, *columns).where(_flagged(table))
    if not live:
        statement = statement.where(table.c.is_deleted)
    pending = session.execute(statement).all()
    changed, bases = [], []
    for row in pending:
        basis = _basis(row[2 : 2 + len(names)])
        if basis != row.link_basis:
            changed.append(row)
            bases.append((row.id, basis))
    update_rows(session, table, ("id", "link_basis"), bases)
    return changed


def _flagged(table: Any) -> Any:
    """The mirror's flag as its partial index says it, so the database reads only that index
    (SQLite uses a partial index only for a condition written as the index's own)."""
    return text(f"{table.name}.{LINK_PENDING}")


def _clear_status(session: Session, person_ids: Sequence[str]) -> None:
    """These (deleted) people are no longer counted in the tally."""
    table = table_of(Person)
    for chunk in in_chunks(person_ids):
        session.execute(update(table).where(table.c.id.in_(chunk)).values(link_status=None))


def _basis(values: Sequence[Any]) -> str:
    """A short hash of the values matching reads (text, flags and aware UTC datetimes, whose
    repr is the same from both databases)."""
    return hashlib.blake2b(repr(tuple(values)).encode(), digest_size=8).hexdigest()


def _bases(frame: pl.DataFrame) -> pl.Series:
    """`_basis` of each row of ``frame`` (its columns the values, in order; datetimes in UTC
    given as the database's rows give them)."""
    columns = [
        [None if v is None else v.replace(tzinfo=UTC) for v in column.to_list()]
        if isinstance(column.dtype, pl.Datetime)
        else column.to_list()
        for column in frame.with_columns(pl.col(pl.Datetime).dt.replace_time_zone(None))
    ]
    return pl.Series([_basis(values) for values in zip(*columns, strict=True)], dtype=pl.String)


def _hand_over(session: Session, counts: LinkCounts) -> None:
    """Hand the score stage what it must look at, and clear the mirror's flags, in the
    transaction that stores the links: the flagged records, the people whose link, rule or
    reason changed and the accounts relinks moved people to or from; after a full relink,
    every account at once."""
    handed = table_of(PendingRescore)
    if counts.full:
        insert_missing(session, handed, [{"object": EVERYONE, "record_id": ""}])
    else:
        for model in (Account, Person, Opportunity):
            table = table_of(model)
            flagged = select(literal(table.name), table.c.id).where(_flagged(table))
            insert_missing(session, handed, flagged)
        accounts = {a for _, old, new in counts.relinked for a in (old, new) if a is not None}
        rows = [{"object": "person", "record_id": p} for p in sorted(counts.changed)]
        rows += [{"object": RELINKED, "record_id": a} for a in sorted(accounts)]
        for chunk in in_chunks(rows):
            insert_missing(session, handed, chunk)
    for model in (Person, Account, Opportunity):
        table = table_of(model)
        session.execute(update(table).where(_flagged(table)).values({LINK_PENDING: False}))


def _tallied(session: Session, counts: LinkCounts, moved: dict[str, int]) -> LinkCounts:
    """``counts`` with the live people per status and orphan reason: the tally kept by what
    changed (``moved``), counted afresh when there is none."""
    if not tally.add(session, TALLY, moved):
        statement = (
            select(Person.link_status, func.count())
            .where(col(Person.link_status).is_not(None))
            .group_by(col(Person.link_status))
        )
        tally.replace(session, TALLY, dict(session.exec(statement).all()))
    counts.orphans = {}
    counts.linked = counts.review = 0
    for status, n in (tally.read(session, TALLY) or {}).items():
        if status == "linked":
            counts.linked += n
        elif status == "review":
            counts.review += n
        else:
            reason = status.removeprefix(_ORPHAN)
            counts.orphans[reason] = counts.orphans.get(reason, 0) + n
    return counts


def _statuses(frame: pl.DataFrame) -> pl.DataFrame:
    """Each matched person's status as the tally counts it: linked, review, orphan:<reason>."""
    status = pl.col("status").cast(pl.String)
    reason = pl.col("reason").cast(pl.String).fill_null("None")
    orphan = pl.lit(_ORPHAN) + reason
    return frame.select(
        "person_id", link_status=pl.when(status == "orphan").then(orphan).otherwise(status)
    )


def _moves(statuses: pl.DataFrame, previous: pl.DataFrame) -> dict[str, int]:
    """The tally's change as the matched people leave the status they were counted as (in
    ``previous``; none if never counted) for their new one (``statuses``)."""
    old = statuses.select("person_id").join(previous, on="person_id", how="left")
    moved: dict[str, int] = {}
    for column, sign in ((statuses["link_status"], 1), (old["link_status"], -1)):
        for status, n in column.drop_nulls().value_counts().iter_rows():
            moved[status] = moved.get(status, 0) + sign * n
    return moved


_OUTCOMES = (Person.link_status, Person.matched_account_id, Person.match_rule, Person.orphan_reason)


def _outcomes(frame: pl.DataFrame) -> pl.DataFrame:
    """Each person's current link, rule, reason and status, as `_changed` compares them."""
    return frame.select(
        "person_id",
        "link_status",
        account_id="matched_account_id",
        rule="match_rule",
        reason="orphan_reason",
    )


def _people(session: Session) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Live people as the matcher reads them, each one's current link, rule and reason, and
    the basis each is to keep (`_kept_bases`)."""
    frame = link_keys.people_frame(session, None, *_OUTCOMES, *_held(Person))
    bases = _kept_bases(frame, "person_id", Person)
    people = frame.drop(*(column.key for column in _OUTCOMES), *_HELD)
    return people, _outcomes(frame), bases


def _accounts(session: Session) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Live accounts as the matcher reads them, and the basis each is to keep (`_kept_bases`)."""
    stamp = col(Account.created_at).label(_STAMP)
    frame = link_keys.accounts_frame(session, None, stamp, *_held(Account))
    as_read = frame.drop("created_at").rename({_STAMP: "created_at"})
    return frame.drop(_STAMP, *_HELD), _kept_bases(as_read, "account_id", Account)


_STAMP = "basis_created_at"  # an account's creation as its basis reads it (matching: seconds)
_HELD = ("held_basis", "pending")  # `_held`'s columns


def _held(model: type[SQLModel]) -> tuple[Any, Any]:
    """The basis a row holds, and whether it is pending (1 or 0)."""
    table = table_of(model)
    return (
        table.c.link_basis.label("held_basis"),
        cast(table.c[LINK_PENDING], Integer).label("pending"),
    )


def _kept_bases(frame: pl.DataFrame, key: str, model: type[SQLModel]) -> pl.DataFrame:
    """id, link_basis and link_pending of these live rows as a relink of everyone stores them,
    in the order read (on SQLite the table's own, so that each page is written once): a
    pending row's basis made afresh from the fields in ``frame`` (as `_changed_rows` would
    store it), another's as it holds it; the flag cleared (as `_hand_over` would)."""
    pending = pl.col("pending") == 1
    due = frame.filter(pending)
    values = [pl.lit(False).alias(n) if n == "is_deleted" else pl.col(n) for n in _BASIS[model]]
    made = due.select(id=key, made=_bases(due.select(values)))
    return _joined(frame.select(pl.col(key).alias("id"), "held_basis", "pending"), made).select(
        "id",
        link_basis=pl.when(pending).then("made").otherwise("held_basis"),
        link_pending=pl.lit(False),
    )


def _previous(session: Session, people: Collection[str]) -> pl.DataFrame:
    """These live people's current link, rule, reason and status."""
    statement = select(col(Person.id).label("person_id"), *_OUTCOMES).where(
        col(Person.is_deleted).is_(False)
    )
    frames = [
        read_frame(session, statement.where(col(Person.id).in_(chunk)))
        for chunk in in_chunks(sorted(people))
    ]
    found = pl.concat(frames) if frames else read_frame(session, statement.where(false()))
    return _outcomes(found)


def _opportunities(session: Session) -> pl.DataFrame:
    """Live opportunities' accounts and whether each is closed."""
    statement = select(Opportunity.account_id, Opportunity.is_closed).where(
        col(Opportunity.is_deleted).is_(False)
    )
    return read_frame(session, statement)


def _store(
    session: Session,
    frame: pl.DataFrame,
    statuses: pl.DataFrame,
    more: pl.DataFrame | None = None,
) -> None:
    """Each person's link, rule and confidence, or why it has none, and the status the tally
    counts, in bulk (with ``more``, the other columns of each person's row by id, in the order
    of ``more``)."""
    rows = frame.select(
        id="person_id",
        matched_account_id="account_id",
        match_rule=pl.col("rule").cast(pl.String),
        match_confidence="confidence",
        orphan_reason=pl.col("reason").cast(pl.String),
        link_status=statuses["link_status"],
    )
    rows = rows.sort("id") if more is None else _joined(more, rows)
    update_frame(session, table_of(Person), rows)


def _changed(
    frame: pl.DataFrame, previous: pl.DataFrame
) -> tuple[list[tuple[str, str | None, str | None]], frozenset[str]]:
    """(person, old account, new account) of the people whose matched account changed (from or
    to none included), and the people whose link, rule or reason changed."""
    outcomes = ("account_id", "rule", "reason")
    now = frame.select(
        "person_id",
        "account_id",
        rule=pl.col("rule").cast(pl.String),
        reason=pl.col("reason").cast(pl.String),
    )
    before = previous.select("person_id", *outcomes)
    both = now.join(before, on="person_id", how="left", suffix="_before")
    changed = both.filter(
        pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_before")) for c in outcomes)
    )
    moved = changed.filter(pl.col("account_id").ne_missing(pl.col("account_id_before")))
    relinked = list(moved.select("person_id", "account_id_before", "account_id").iter_rows())
    return relinked, frozenset(changed["person_id"])


def _touched(frame: pl.DataFrame, previous: pl.DataFrame, lost: frozenset[str]) -> frozenset[str]:
    """Accounts that gained or lost a person: both ends of each changed link, and ``lost``."""
    before = previous.select("person_id", before="account_id")
    moved = (
        frame.select("person_id", "account_id")
        .join(before, on="person_id", how="left")
        .filter(pl.col("account_id").ne_missing(pl.col("before")))
    )
    ends = pl.concat([moved["account_id"], moved["before"]]).drop_nulls().unique()
    return frozenset(lost) | frozenset(ends.to_list())
