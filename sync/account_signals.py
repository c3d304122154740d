"""Each account's decayed signal sums, latest burst and recent activity, kept between runs.

One ``account_signals`` row an account holds what `scoring.signals.RunningSums` holds, as JSON:

    {"s": [value, at_s, value, at_s, ...] per signal, "m": the same per intent class,
     "p": {topic: [value, at_s]}, "b": [start_s, last_s, size] of the latest burst,
     "r": [signal, occurred_s, ...] the activities of the last 90 days in time order (for the
     dated reasons)}

Pairs are flat, so reading thousands of rows allocates few objects for the collector to chase.

with the latest activity in it (``high_water``). A new activity updates its account's row in O(1)
(`fold`); an account whose sums cannot be updated so is rebuilt from its own activities in the
mirror (`build`), and the reason is counted (`REBUILD_REASONS`). `build` over every account is
the first run's and ``--full``'s one vectorised pass, over the history read once and
column-wise (`every_activity`), which also hands over the orphans' own activities. `totals`
reads stored rows as of a moment, shaped as `scoring.signals.decayed_totals` would have summed
them from the mirror.

Which activities are new: the mirror inserts each with the scoring cycle that will count it,
the one after the last that ran (``activity.scored_seq``, `sync.state.NEXT_CYCLE`), and never
updates it, so an activity is new while its cycle is later than the last, however often it is
read again. A cycle counts its own and those before it by moving the last cycle on
(``scoring_state.seq``) in the transaction that updates the sums, so a crash loses neither, and
no row is written for it; only an activity that happens at or after the cycle's ``now`` is moved
on to the next cycle (`defer`, which moves a flagged one so too, before its flag is cleared; a
rebuild of every account runs it only when it read one). The mirror inserts a row unflagged and
sets ``link_pending`` on every row it updates, buries or repoints, so a counted activity flagged
was edited, deleted or moved since; the score stage clears the flags it took.
What else changed since the last cycle the link stage hands over (`sync.linking`): no timestamp
is compared, so a run at the same moment as the one before takes only what changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import polars as pl
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    and_,
    case,
    cast,
    func,
    literal_column,
    null,
    text,
    update,
)
from sqlalchemy.sql import Select
from sqlmodel import Session, col, select

from scoring.bursts import Burst
from scoring.explain import EXPLAIN_WINDOWS_DAYS
from scoring.signals import (
    DAY_SECONDS,
    INTENTS,
    Activities,
    DecayedSum,
    RunningSums,
    SignalCatalog,
    SignalTotals,
    decayed_totals,
    decayed_values,
)
from sync.frames import ReadApart, read_column_batches, read_columns
from sync.state import (
    AFTER_FIRST_CYCLE,
    LINK_PENDING,
    AccountSignals,
    Activity,
    Person,
    table_of,
)
from sync.store import adapt_column, adapters_of, in_chunks, put_rows

__all__ = [
    "REBUILD_REASONS",
    "RECENT_DAYS",
    "Sums",
    "Touched",
    "build",
    "defer",
    "every_activity",
    "fold",
    "linked_activities",
    "load",
    "many_activities",
    "new_activities",
    "read_history_apart",
    "save",
    "totals",
    "uncounted",
]

RECENT_DAYS = EXPLAIN_WINDOWS_DAYS[-1]  # the reasons count activities this far back
# why an account's sums are rebuilt from the mirror rather than updated
REBUILD_REASONS = ("full", "new", "relink", "merge", "delete", "late", "edited")
_UTC = pl.Datetime("us", "UTC")
_ACTIVITY_SCHEMA = ("own", "type", "topic", "occurred_s", "linked")
_ROW_SCHEMA = {name: pl.Int64 if name == "occurred_s" else pl.String for name in _ACTIVITY_SCHEMA}
_EMPTY = pl.DataFrame(schema=_ROW_SCHEMA)
_COLUMNS = ("account_id", "sums", "as_of", "high_water", "pending")  # a row, as `save` writes it


@dataclass
class Touched:
    """The accounts a cycle rescores, and those whose sums it first rebuilds, with why."""

    rescore: set[str] = field(default_factory=set)
    rebuild: dict[str, str] = field(default_factory=dict)

    def rebuilt(self, account_id: str | None, reason: str) -> None:
        """Rebuild (and rescore) an account; its first reason this cycle is the one counted."""
        if account_id is not None:
            self.rebuild.setdefault(account_id, reason)
            self.rescore.add(account_id)

    def reasons(self) -> dict[str, int]:
        """Rebuilt accounts per reason."""
        counts: dict[str, int] = {}
        for reason in self.rebuild.values():
            counts[reason] = counts.get(reason, 0) + 1
        return counts


@dataclass
class Sums:
    """One account's stored sums, updated in place by `add`."""

    running: RunningSums
    topics: list[str]  # the topic of each of `running.topics`
    recent: list[int]  # flat (signal, occurred_s) of the last `RECENT_DAYS`, in time order
    high_water_s: int | None

    @classmethod
    def from_document(cls, document: Mapping[str, Any], high_water: datetime | None) -> Sums:
        """Sums as a stored row holds them."""
        topics = sorted(document["p"])
        running = RunningSums(
            _decayed(document["s"]),
            _decayed(document["m"]),
            tuple(DecayedSum(float(document["p"][k][0]), int(document["p"][k][1])) for k in topics),
            Burst(*(int(x) for x in document["b"])),
        )
        recent = list(document["r"])
        water = None if high_water is None else int(high_water.timestamp())
        return cls(running, topics, recent, water)

    def add(self, catalog: SignalCatalog, signal: int, at_s: int, topic: str | None) -> None:
        """One more activity, in O(1) of the account's history."""
        position = -1
        if topic is not None:
            if topic not in self.topics:
                self.topics.append(topic)
                running = self.running
                self.running = RunningSums(
                    running.signals, running.memory, (*running.topics, DecayedSum()), running.burst
                )
            position = self.topics.index(topic)
        self.running = self.running.added(catalog, signal, at_s, position)
        self.recent += (signal, at_s)  # never older than the latest held (else: rebuilt)
        self.high_water_s = at_s if self.high_water_s is None else max(self.high_water_s, at_s)

    def document(self, now_s: int) -> dict[str, Any]:
        """The row's JSON, recent activity older than `RECENT_DAYS` before `now_s` dropped."""
        running = self.running
        horizon = now_s - RECENT_DAYS * DAY_SECONDS
        return {
            "s": [x for s in running.signals for x in (s.value, s.at_s)],
            "m": [x for m in running.memory for x in (m.value, m.at_s)],
            "p": {
                k: [t.value, t.at_s]
                for k, t in zip(self.topics, running.topics, strict=True)
                if t.value
            },
            "b": [running.burst.start_s, running.burst.last_s, running.burst.size],
            "r": _since(self.recent, horizon),
        }


def _since(recent: list[int], horizon: int) -> list[int]:
    """Flat time-ordered (signal, occurred_s) pairs less those at or before `horizon`."""
    first = 0
    while first < len(recent) and recent[first + 1] <= horizon:
        first += 2
    return recent[first:]


def _decayed(flat: Sequence[float]) -> tuple[DecayedSum, ...]:
    """Flat [value, at_s, ...] pairs as running sums."""
    return tuple(DecayedSum(float(v), int(t)) for v, t in zip(flat[::2], flat[1::2], strict=True))


# --- reading and writing rows ------------------------------------------------------------------


def load(session: Session, account_ids: Collection[str]) -> dict[str, Sums]:
    """The stored sums of those of `account_ids` that have a row."""
    found = {}
    for chunk in in_chunks(sorted(account_ids)):
        rows = session.exec(
            select(AccountSignals.account_id, AccountSignals.sums, AccountSignals.high_water).where(
                col(AccountSignals.account_id).in_(chunk)
            )
        )
        for account_id, document, water in rows:
            found[account_id] = Sums.from_document(document, water)
    return found


def save(
    session: Session,
    documents: Mapping[str, tuple[dict[str, Any], int | None]],
    now: datetime,
    *,
    pending: bool = True,
) -> None:
    """Store (or replace) accounts' rows: their JSON and latest activity, as of `now`; as plain
    tuples made ready for the driver a column at a time (`sync.store.put_rows`), not rows
    of SQLAlchemy's (the first run stores every account's). The JSON is orjson's: compact, and
    its numbers read back as the same floats and ints (the sums are finite: orjson writes no
    NaN)."""
    table = table_of(AccountSignals)
    (moment,) = adapters_of(session.get_bind().dialect.name, table, ("as_of",))
    for chunk in in_chunks(documents.items()):  # a chunk's JSON at a time: memory stays flat
        waters = [None if w is None else datetime.fromtimestamp(w, UTC) for _, (_, w) in chunk]
        as_of, *latest = adapt_column(moment, [now, *waters])
        rows = [
            (account_id, orjson.dumps(document).decode(), as_of, water, pending)
            for (account_id, (document, _)), water in zip(chunk, latest, strict=True)
        ]
        put_rows(session, table, _COLUMNS, rows)


def uncounted(counted: int) -> ColumnElement[bool]:
    """Activities the cycles up to `counted` have not counted: of a later cycle. Said as the
    partial index ix_activity_uncounted says it once a cycle has run, so the database reads only
    that index (before, every activity is new)."""
    later = col(Activity.scored_seq) > counted
    return and_(later, text(f"activity.{AFTER_FIRST_CYCLE}")) if counted else later


# as the partial index ix_activity_recounted says it: activities the mirror wrote since it
# inserted them (those counted already were edited, deleted or moved since)
FLAGGED = text(f"activity.{LINK_PENDING}")


def defer(session: Session, counted: int, now: datetime) -> None:
    """The activities that the cycle after `counted`, run at `now`, leaves uncounted because they
    happen at or after `now`: counted by a cycle after it instead (every other activity it
    counts, those of people without an account too: a later link rebuilds that account). Those
    are the new ones, and those flagged since they were counted (edited, restored, retyped),
    whose account is rebuilt from the activities before `now`: else no cycle would count them.
    Run before the flags are cleared; each set is read by its partial index."""
    later = col(Activity.occurred_at) >= now
    for which in (uncounted(counted), FLAGGED):
        session.execute(update(Activity).where(which, later).values(scored_seq=counted + 2))


# --- activities from the mirror ----------------------------------------------------------------


def _linked(statement: Any) -> Any:
    """An activity query joined to its live person's link (D3)."""
    person = select(Person.id, Person.matched_account_id).where(col(Person.is_deleted).is_(False))
    links = person.subquery()
    return statement.add_columns(links.c.matched_account_id).join(
        links, links.c.id == Activity.person_id, isouter=True
    )


def every_activity(
    session: Session, types: Collection[str] | None = None, started: ReadApart | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every live activity of the mirror (of ``types`` only, when given: those a catalog
    scores, the others read for nothing), whenever it happened, read once and column-wise: those
    that count for an account (their own, else their person's link), and those of people
    without a live link that name no account, under the person's id as ``account_id`` (what an
    orphan scores on, `sync.orphans`). Activities and links are read apart and joined here (a
    join per row in SQLite costs more than the read), a batch at a time: only what each batch
    comes to is kept, not the rows as read (the reference org's 10M activities held whole, with
    their people's ids, took the score stage to 4.7 GB). ``started``: the activities' read
    begun before (`read_history_apart`, of the same ``types``), taken here; when it failed, they
    are read through the session."""
    link = col(Person.matched_account_id)
    people = select(col(Person.id).label("person_id"), link.label("linked"))
    links = read_columns(session, people.where(col(Person.is_deleted).is_(False), link.isnot(None)))

    def joined(batch: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """A batch as what it comes to: the linked activities, and the orphans'."""
        frame = batch.join(links, on="person_id", how="left")
        unlinked = frame.filter(pl.col("own").is_null(), pl.col("linked").is_null())
        orphans = unlinked.select(pl.col("person_id").alias("own"), *_ACTIVITY_SCHEMA[1:])
        return _frame(frame.select(*_ACTIVITY_SCHEMA)), _frame(orphans)

    read = started.frame() if started is not None else None
    if read is not None:  # joined in slices, as read through the session
        batches: Iterable[pl.DataFrame] = (
            read.slice(start, _JOINED_ROWS) for start in range(0, read.height, _JOINED_ROWS)
        )
    else:
        statement = _history(session, types)
        apart = many_activities(session) if started is None else None  # else it failed
        batches = read_column_batches(session, statement, apart=apart)
    parts = [(_frame(_EMPTY), _frame(_EMPTY))]
    # each batch joined in a thread of its own (polars, out of the interpreter lock) while the
    # driver reads the next one (which holds it)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="history") as pool:
        joining: Future[tuple[pl.DataFrame, pl.DataFrame]] | None = None
        for batch in _gathered(batches, _JOINED_ROWS):
            if joining is not None:
                parts.append(joining.result())
            joining = pool.submit(joined, batch)
            del batch
        if joining is not None:
            parts.append(joining.result())
    linked, orphans = zip(*parts, strict=True)
    return pl.concat(linked, rechunk=False), pl.concat(orphans, rechunk=False)


def read_history_apart(
    session: Session, types: Collection[str] | None, bound: int
) -> ReadApart | None:
    """`every_activity`'s read of the activities, at most ``bound`` (`many_activities`),
    started in a process of its own, so the caller works on while it reads (what the process
    reads is what is committed as it starts: the link stage, which it reads beside, writes no
    activity)."""
    return ReadApart.start(session, _history(session, types), bound)


def _history(session: Session, types: Collection[str] | None) -> Select[Any]:
    """The live activities (of ``types``, when given): the account each names, its type, topic
    and time in epoch seconds, and its person where it names no account (it counts for the one
    it names)."""
    own, kind, topic, occurred = _columns(session)
    person = case((own.is_(None), Activity.person_id)).label("person_id")
    statement = select(own.label("own"), kind, topic, occurred.label("occurred_s"), person).where(
        col(Activity.is_deleted).is_(False)
    )
    if types is not None:
        statement = statement.where(col(Activity.type).in_(sorted(types)))
    return statement


# activities joined to the links at a time: each join hashes every link (1M on the reference
# org, ~40 ms), so the driver's batches of 100,000 are gathered first (107 joins took 7.6 s)
_JOINED_ROWS = 1_000_000


# activities from which the history is read by a process of its own (`read_column_batches`): it
# starts in ~0.3 s and reads 1M activities in ~0.7 s, against ~2.5 s through the session
_APART_ROWS = 200_000


def many_activities(session: Session) -> int | None:
    """A bound on the mirror's activities when they are enough for reading them apart to pay,
    else None (on SQLite, whose largest rowid bounds them without a scan; elsewhere None)."""
    if session.get_bind().dialect.name != "sqlite":
        return None
    last = select(func.max(literal_column("rowid"))).select_from(Activity)
    bound = session.connection().execute(last).scalar() or 0
    return bound if bound >= _APART_ROWS else None


def _gathered(batches: Iterable[pl.DataFrame], rows: int) -> Iterator[pl.DataFrame]:
    """Consecutive ``batches`` concatenated into frames of at least ``rows`` (the last fewer)."""
    held: list[pl.DataFrame] = []
    count = 0
    for batch in batches:
        held.append(batch)
        count += batch.height
        if count >= rows:
            yield pl.concat(held)
            held, count = [], 0
    if held:
        yield pl.concat(held)


def _rows(session: Session, statement: Any) -> list[Any]:
    """A Core query's rows as the driver returns them (no ORM objects, no per-value types)."""
    return list(session.connection().execute(statement).all())


def _frame(rows: Sequence[Sequence[Any]] | pl.DataFrame) -> pl.DataFrame:
    """Activity rows (own account, type, topic, epoch seconds, linked account) as the account
    they count for, type, topic and time; those counting for no account dropped."""
    frame = (
        rows
        if isinstance(rows, pl.DataFrame)
        else pl.DataFrame(rows, schema=_ROW_SCHEMA, orient="row")
    )
    return frame.filter(pl.coalesce("own", "linked").is_not_null()).select(
        account_id=pl.coalesce("own", "linked"),
        type="type",
        topic="topic",
        occurred_at=pl.from_epoch("occurred_s", time_unit="s").cast(_UTC),
    )


def _columns(session: Session) -> tuple[Any, ...]:
    """An activity's account, type, topic and time in epoch seconds (computed by the
    database, much faster than parsing each timestamp in Python)."""
    occurred = Activity.__table__.c.occurred_at  # type: ignore[attr-defined]
    if session.get_bind().dialect.name == "postgresql":
        epoch: Any = cast(func.floor(func.extract("epoch", occurred)), BigInteger)
    elif sqlite3.sqlite_version_info >= (3, 38, 0):  # whole seconds, as strftime('%s') gives
        epoch = func.unixepoch(occurred, type_=BigInteger)  # 0.14 us a value less than it
    else:
        epoch = cast(func.strftime("%s", occurred), BigInteger)
    return (Activity.account_id, Activity.type, Activity.topic, epoch)


def linked_activities(
    session: Session, now: datetime, account_ids: Collection[str] | None = None
) -> pl.DataFrame:
    """Live activities before `now` with the account they count for: their own, else their
    person's link; of every account, or only of `account_ids` (by index, never a scan)."""
    live = (col(Activity.is_deleted).is_(False), col(Activity.occurred_at) < now)
    columns = _columns(session)
    if account_ids is None:
        linked, _ = every_activity(session)
        return linked.filter(pl.col("occurred_at") < now)
    frames = []
    for chunk in in_chunks(sorted(account_ids)):
        own = select(*columns, null()).where(*live, col(Activity.account_id).in_(chunk))
        frames.append(_frame(_rows(session, own)))
        linked = select(Person.id).where(
            col(Person.is_deleted).is_(False), col(Person.matched_account_id).in_(chunk)
        )
        for people in in_chunks(sorted(session.exec(linked))):
            # their people's activities naming no account, read by person (its index) and
            # dropped here: asked for those naming none, the database would walk every such
            # activity of the org
            theirs = _linked(select(*columns).where(*live, col(Activity.person_id).in_(people)))
            rows = [row for row in _rows(session, theirs) if row[0] is None]
            frames.append(_frame(rows))
    return pl.concat(frames) if frames else _frame([])


def new_activities(session: Session, now: datetime, counted: int) -> pl.DataFrame:
    """Activities the cycles up to `counted` have not counted that happened before `now`, with
    the account they count for, in time order."""
    statement = _linked(
        select(*_columns(session)).where(
            uncounted(counted),
            col(Activity.is_deleted).is_(False),
            col(Activity.occurred_at) < now,
        )
    )
    return _frame(_rows(session, statement)).sort("occurred_at")


# --- the O(1) update and the rebuild ----------------------------------------------------------


def fold(
    catalog: SignalCatalog, activities: pl.DataFrame, sums: dict[str, Sums], touched: Touched
) -> None:
    """Add each new activity (time-ordered) to its account's sums in O(1); an account without
    stored sums, or one the activity is older than the latest in its sums, is to be rebuilt."""
    codes = {activity: i for i, activity in enumerate(catalog.activities)}
    for account_id, kind, topic, occurred in activities.iter_rows():
        signal = codes.get(kind)
        if signal is None or account_id in touched.rebuild:
            continue
        at_s = int(occurred.timestamp())
        held = sums.get(account_id)
        if held is None:
            touched.rebuilt(account_id, "new")
        elif held.high_water_s is not None and at_s < held.high_water_s:
            touched.rebuilt(account_id, "late")
        else:
            held.add(catalog, signal, at_s, topic)
            touched.rescore.add(account_id)


def build(
    catalog: SignalCatalog, account_ids: Sequence[str], activities: pl.DataFrame, now: datetime
) -> dict[str, tuple[dict[str, Any], int | None]]:
    """Every one of `account_ids`' sums as of `now` from its activities, vectorised: the JSON of
    its row and its latest activity (epoch seconds, None without one)."""
    now_s = int(now.timestamp())
    coded, topics = _coded(catalog, account_ids, activities, now_s)
    arrays = _arrays(catalog, coded, topics)
    n = len(account_ids)
    summed = decayed_totals(catalog, arrays, n, now_s)
    bursting = catalog.forms_bursts[arrays.signal]
    last_burst = np.zeros(n, dtype=np.int64)
    np.maximum.at(last_burst, arrays.account[bursting], arrays.occurred_s[bursting])
    water = np.full(n, -1, dtype=np.int64)
    np.maximum.at(water, arrays.account, arrays.occurred_s)
    recent = _recent(coded, now_s, n)
    columns = zip(
        summed.signals.tolist(),
        summed.memory.tolist(),
        summed.topics.tolist(),
        summed.burst_start_s.tolist(),
        np.where(summed.burst_size > 0, last_burst, 0).tolist(),
        summed.burst_size.tolist(),
        recent,
        water.tolist(),
        strict=True,
    )
    return {
        account_id: (
            {
                "s": _pairs(signals, now_s),
                "m": _pairs(memory, now_s),
                "p": {name: [v, now_s] for name, v in zip(topics, by_topic, strict=True) if v},
                "b": [start, last, size],
                "r": recent_pairs,
            },
            latest if latest >= 0 else None,
        )
        for account_id, (signals, memory, by_topic, start, last, size, recent_pairs, latest) in zip(
            account_ids, columns, strict=True
        )
    }


def _pairs(values: list[float], now_s: int) -> list[float | int]:
    """Flat [value, at_s] pairs, one per sum: built as of `now_s`, an empty one at 0."""
    return [x for v in values for x in (v, now_s if v else 0)]


def _coded(
    catalog: SignalCatalog, account_ids: Sequence[str], activities: pl.DataFrame, now_s: int
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Catalog activities of the accounts as (row, signal, occurred_s, topic) codes, ordered by
    row, time, signal and topic, and the sorted topic names the codes point into."""
    rows = pl.DataFrame({"account_id": list(account_ids)}, schema={"account_id": pl.String})
    # one lazy query, so polars filters before it joins and keeps only these four columns (the
    # reference org's 10M activities went through four whole copies here)
    known = (
        activities.lazy()
        .filter(pl.col("type").is_in(catalog.activities))
        .with_columns(pl.col("occurred_at").dt.epoch("s").alias("occurred_s"))
        .filter(pl.col("occurred_s") < now_s)
        .join(rows.lazy().with_row_index("row"), on="account_id")
        .select(
            pl.col("row").cast(pl.Int64),
            pl.col("type")
            .replace_strict(
                catalog.activities, list(range(len(catalog.activities))), return_dtype=pl.Int16
            )
            .alias("signal"),
            "occurred_s",
            "topic",
        )
        .collect()
    )
    topics = tuple(sorted(known["topic"].drop_nulls().unique().to_list()))
    # a topic's code is its place among the sorted names, no topic (null) the last
    coded = known.with_columns(
        pl.col("topic").replace_strict(
            topics, list(range(len(topics))), default=len(topics), return_dtype=pl.Int64
        )
    )
    ordered = _in_code_order(coded)
    unnamed = pl.col("topic") == len(topics)
    return ordered.with_columns(
        pl.when(unnamed).then(-1).otherwise(pl.col("topic")).cast(pl.Int16).alias("topic")
    ), topics


# bits an ordering key may take: the four codes packed into one non-negative 64-bit integer
_KEY_BITS = 63


def _in_code_order(coded: pl.DataFrame) -> pl.DataFrame:
    """``coded`` ordered by every code (row, time, signal, topic): activities of one second keep
    one order whatever order the history was read in (two the same in all four are
    interchangeable). The codes are packed into one integer key where they fit in 63 bits, else
    sorted by the four columns (the reference org's 8.6M scored activities: this function took
    1.2 s against 2.3 s by the four columns, the same rows in the same order; 10M codes in random
    order: ~0.6 s against ~5.7)."""
    order = ("row", "occurred_s", "signal", "topic")
    if not coded.height:
        return coded
    lows = (pl.min(name).alias(f"low_{name}") for name in order)
    bounds = coded.select(*lows, *(pl.max(name) for name in order)).row(0)
    low, high = bounds[:4], bounds[4:]
    # every code but the time is a place in a list (never negative); the time counts from its least
    widths = [int(high[i] - (low[1] if i == 1 else 0)).bit_length() for i in range(4)]
    if sum(widths) > _KEY_BITS:
        return coded.sort(*order)
    key = pl.col("row") * (1 << (widths[1] + widths[2] + widths[3]))
    key = key + (pl.col("occurred_s") - low[1]) * (1 << (widths[2] + widths[3]))
    key = key + pl.col("signal").cast(pl.Int64) * (1 << widths[3]) + pl.col("topic")
    return coded.sort(key)


def _arrays(catalog: SignalCatalog, coded: pl.DataFrame, topics: tuple[str, ...]) -> Activities:
    return Activities(
        account=coded["row"].to_numpy(),
        signal=coded["signal"].to_numpy().astype(np.int16),
        occurred_s=coded["occurred_s"].to_numpy().astype(np.int64),
        topic=coded["topic"].to_numpy().astype(np.int16),
        topic_names=topics,
    )


def _recent(coded: pl.DataFrame, now_s: int, n: int) -> list[list[int]]:
    """Per account row, flat [signal, occurred_s, ...] of its activities of the last
    `RECENT_DAYS`, in time order."""
    horizon = now_s - RECENT_DAYS * DAY_SECONDS
    kept = coded.filter(pl.col("occurred_s") > horizon)  # ordered by row and time
    flat = np.empty(2 * kept.height, dtype=np.int64)
    flat[0::2], flat[1::2] = kept["signal"].to_numpy(), kept["occurred_s"].to_numpy()
    sizes = 2 * np.bincount(kept["row"].to_numpy(), minlength=n)[:n]
    ends = np.cumsum(sizes)
    starts = ends - sizes
    values = flat.tolist()
    return [values[start:end] for start, end in zip(starts.tolist(), ends.tolist(), strict=True)]


# --- reading stored sums as of a moment --------------------------------------------------------


def totals(
    catalog: SignalCatalog, documents: Sequence[Mapping[str, Any]], as_of_s: int
) -> tuple[SignalTotals, Activities]:
    """Stored rows (in account row order) as of `as_of_s`: their decayed sums and latest
    bursts, and their recent activities (for the reasons' counts)."""
    n, n_signals = len(documents), len(catalog.signals)
    signals = np.array([d["s"] for d in documents], dtype=np.float64).reshape(n, n_signals, 2)
    memory = np.array([d["m"] for d in documents], dtype=np.float64).reshape(n, len(INTENTS), 2)
    names = tuple(sorted({name for d in documents for name in d["p"]}))
    position = {name: i for i, name in enumerate(names)}
    topics = np.zeros((n, len(names), 2), dtype=np.float64)
    for row, document in enumerate(documents):
        for name, pair in document["p"].items():
            topics[row, position[name]] = pair
    bursts = np.array([d["b"] for d in documents], dtype=np.int64).reshape(n, 3)
    summed = SignalTotals(
        as_of_s,
        catalog,
        _read(signals, catalog.half_lives, as_of_s),
        _read(memory, catalog.memory_half_life_days, as_of_s),
        _read(topics, catalog.topic_half_life_days, as_of_s),
        names,
        bursts[:, 0],
        bursts[:, 2].astype(np.int32),
    )
    return summed, _recent_arrays(documents, names)


def _read(pairs: np.ndarray, half_life_days: np.ndarray | float, as_of_s: int) -> np.ndarray:
    """[value, at_s] pairs as their decayed values at `as_of_s` (float32, as the batch sums)."""
    values = decayed_values(pairs[..., 0], pairs[..., 1].astype(np.int64), half_life_days, as_of_s)
    return values.astype(np.float32)


def _recent_arrays(documents: Sequence[Mapping[str, Any]], names: tuple[str, ...]) -> Activities:
    """The rows' recent activities as arrays keyed by row (topics are not needed for counts)."""
    sizes = np.array([len(d["r"]) // 2 for d in documents], dtype=np.int64)
    flat = [x for d in documents for x in d["r"]]
    pairs = np.array(flat, dtype=np.int64).reshape(len(flat) // 2, 2)
    return Activities(
        account=np.repeat(np.arange(len(documents)), sizes),
        signal=pairs[:, 0].astype(np.int16),
        occurred_s=pairs[:, 1],
        topic=np.full(len(pairs), -1, dtype=np.int16),
        topic_names=names,
    )
