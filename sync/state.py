"""Tables of the local state store: the CRM mirror, scores, routing, SLAs and sync bookkeeping.

One state database mirrors one CRM org, so mirrored records are keyed by their CRM id.
Every datetime column is timezone-aware UTC (`UTCDateTime`); score history is append-only.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Index,
    Table,
    Text,
    event,
    false,
    literal_column,
    text,
)
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

__all__ = [
    "AFTER_FIRST_CYCLE",
    "DISPOSITIONS",
    "EVERYONE",
    "KEY_INDEX",
    "LINK_PENDING",
    "NEXT_CYCLE",
    "OWNED_CHANGED",
    "PERSON_KINDS",
    "RELINKED",
    "RUN_ACTIONS",
    "RUN_STAGES",
    "RUN_STATUSES",
    "SCHEMA_META_VERSION",
    "SLA_STATUSES",
    "TABLES",
    "USER_ROLES",
    "WRITE_STATUSES",
    "Account",
    "AccountDomain",
    "AccountSignals",
    "Activity",
    "AppendOnlyError",
    "Assignment",
    "CurrentScore",
    "Disposition",
    "LinkState",
    "NaiveDatetimeError",
    "NameVariant",
    "Opportunity",
    "PendingOrphan",
    "PendingRescore",
    "Person",
    "RunEvent",
    "RunLock",
    "SchemaMeta",
    "SchemaVersionError",
    "ScoreHistory",
    "ScoringModelRow",
    "ScoringState",
    "SlaClock",
    "StateError",
    "StoreOpenError",
    "SyncCursor",
    "SyncRun",
    "Tally",
    "UTCDateTime",
    "User",
    "WriteLedger",
    "made_on",
    "table_of",
]


class StateError(Exception):
    """Base class of every error raised by the state store."""


class NaiveDatetimeError(StateError, ValueError):
    """A datetime without a timezone (or a non-datetime) was written to a datetime column."""


class AppendOnlyError(StateError):
    """Something tried to update or delete rows of an append-only table."""


class SchemaVersionError(StateError):
    """The state database's schema is not this release's: older (upgrade it) or newer."""


class StoreOpenError(StateError):
    """The database URL is unsupported, or the database cannot be reached."""


# schema_meta's value in a database managed by migrations (sync.migrations): releases from before
# migrations read it, refuse any version but their own (1-3), and so never touch a newer schema
SCHEMA_META_VERSION = 4

PERSON_KINDS = ("lead", "contact")
LINK_PENDING = "link_pending"  # the column the mirror sets on the rows it changes (`_Linkable`)
# the scoring cycle an activity stored now is counted by: the one after the last that ran
NEXT_CYCLE = literal_column("(SELECT COALESCE(MAX(seq), 0) + 1 FROM scoring_state)", BigInteger)
# activities of the cycles after the first: the first builds every account's sums from the whole
# history, so only those of later cycles are ever looked up by their cycle
AFTER_FIRST_CYCLE = "scored_seq > 1"
# the column the mirror sets on a row whose fields of ours, as the CRM holds them, it changed
OWNED_CHANGED = "owned_changed"
# what a `PendingRescore` row names besides a mirrored record: an account a relink moved people
# to or from, and every account at once (after a full relink)
RELINKED = "relinked"
EVERYONE = "everyone"
USER_ROLES = ("marketing", "sdr", "ae", "manager")
SLA_STATUSES = ("open", "met", "breached", "escalated", "cancelled")
DISPOSITIONS = ("Accepted", "Rejected", "Recycled")
RUN_STATUSES = ("running", "succeeded", "failed", "stopped")
RUN_STAGES = ("pull", "match", "score", "route", "sla", "write")
RUN_ACTIONS = ("pulled", "matched", "scored", "written", "skipped", "failed")
# a write-ledger row: intended (before the push), then what the CRM answered
WRITE_STATUSES = ("pending", "ok", "retriable", "permanent")


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored as UTC and always read back timezone-aware UTC.

    SQLite keeps no offset, so naive values are refused on write instead of guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC; refuse naive datetimes and non-datetimes."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise NaiveDatetimeError(f"expected a timezone-aware datetime, got {value!r}")
        if value.utcoffset() is None:
            raise NaiveDatetimeError(
                f"naive datetime {value.isoformat()} refused: pass a timezone-aware UTC datetime"
            )
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return the stored value as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _one_of(table: str, column: str, values: Iterable[str]) -> CheckConstraint:
    """A CHECK constraint keeping `table.column` within a closed vocabulary, as equalities joined
    by OR: SQLite builds a lookup table for an ``IN`` list every time it checks a row, which in
    a bulk insert cost more than the insert (revision 0014)."""
    allowed = " OR ".join(f"{column} = '{value}'" for value in values)
    return CheckConstraint(allowed, name=f"ck_{table}_{column}")


def _when(column: str) -> dict[str, Any]:
    """Keyword arguments making an Index partial (WHERE clause) on SQLite and PostgreSQL."""
    clause = text(column)
    return {"sqlite_where": clause, "postgresql_where": clause}


LINKED = "matched_account_id IS NOT NULL"
NAMES_ACCOUNT = "account_id IS NOT NULL"
# in an index's info: it keys the table's rows on SQLite (`_KEYED_BY_INDEX`)
KEY_INDEX = "keys_rows"
# in a JSON column's info: its text is only ever read back, never compared as text (as the
# mirror compares ``crm_owned``'s), so the bulk paths may write it compactly (`sync.store`)
COMPACT_JSON = "compact_json"


def _compact_json() -> Any:
    """A JSON column whose text the bulk paths write by orjson where it reads back alike."""
    return Field(
        default_factory=list, sa_type=JSON, sa_column_kwargs={"info": {COMPACT_JSON: True}}
    )


def _run_fk() -> Any:
    """A nullable reference to the sync run that produced a row; not indexed: no query reads
    rows by run and runs are never deleted, so an index would only slow each upsert
    (revision 0017)."""
    return Field(default=None, foreign_key="sync_run.id")


class _Mirrored(SQLModel):
    """Columns every mirrored CRM record carries; ``synced_at`` is the run that last wrote the
    row (what changed since a stage last ran is told by flags, not by it: runs can share a
    moment)."""

    crm_modified_at: datetime = Field(sa_type=UTCDateTime)
    is_deleted: bool = False
    synced_at: datetime = Field(sa_type=UTCDateTime)  # not indexed: no query reads a range of it
    merged_into: str | None = None  # the survivor, when the CRM merged this record into another


class _Linkable(_Mirrored):
    """Mirrored records whose change can change who links to what (accounts, people, deals).

    The mirror sets ``link_pending`` on every row it inserts, buries or repoints, and on every
    row it updates whose values change (on accounts and people: other than our own fields, which
    set ``owned_changed`` instead); the link stage clears it, and keeps in ``link_basis`` a hash
    of the fields matching reads, so a row pulled again only because its other fields changed is
    not relinked.
    """

    link_pending: bool = True
    link_basis: str | None = None


def _pending_index(table: str) -> Index:
    """The rows the mirror flagged since the link stage last looked, found without a scan."""
    return Index(f"ix_{table}_link_pending", "id", **_when(LINK_PENDING))


def _owned_index(table: str) -> Index:
    """The rows whose fields of ours the mirror changed since the link stage last looked."""
    return Index(f"ix_{table}_{OWNED_CHANGED}", "id", **_when(OWNED_CHANGED))


class Account(_Linkable, table=True):
    """A CRM account (Salesforce Account, HubSpot Company), with our fields read back."""

    __tablename__ = "account"
    __table_args__ = (_pending_index("account"), _owned_index("account"))

    id: str = Field(primary_key=True)
    name: str
    website: str | None = None
    domain: str | None = Field(default=None, index=True)
    country: str | None = None
    region: str | None = None
    industry: str | None = None
    employees: int | None = None
    revenue: float | None = None
    parent_id: str | None = Field(default=None, index=True)
    owner_id: str | None = None
    is_customer: bool = False
    is_competitor: bool = False
    disposition: str | None = None
    reason_code: str | None = None
    created_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    crm_owned: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # our fields, as pulled
    # set by the mirror when it changes ``crm_owned`` (an echo of our write, or an edit by hand)
    owned_changed: bool = False
    # the name key matching reads off the name, as the link stage last computed it
    match_name: str | None = Field(default=None, index=True)


class Person(_Linkable, table=True):
    """A lead or contact, and which account our matcher linked it to (or why not)."""

    __tablename__ = "person"
    __table_args__ = (
        _one_of("person", "kind", PERSON_KINDS),
        _pending_index("person"),
        _owned_index("person"),
        Index("ix_person_in_review", "id", **_when("link_status = 'review'")),
        # linked people only: a lookup of orphans by id (``matched_account_id IS NULL AND id IN
        # ...``) must go by the id, where an index holding the orphans' nulls led SQLite to walk
        # every orphan of the org for each (revision 0016)
        Index("ix_person_matched_account_id", "matched_account_id", **_when(LINKED)),
    )

    id: str = Field(primary_key=True)
    kind: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    company: str | None = None
    title: str | None = None
    phone: str | None = None
    country: str | None = None
    city: str | None = None
    industry: str | None = None  # the person's own company fields (a Lead's; a HubSpot contact's)
    employees: int | None = None
    revenue: float | None = None
    account_id: str | None = None
    is_converted: bool = False
    converted_account_id: str | None = None
    owner_id: str | None = None
    # the keys matching reads off the fields above, as the link stage last computed them
    # (`sync.link_keys`): the CRM link, the corporate email domain, the company's name key
    match_link: str | None = Field(default=None, index=True)
    match_domain: str | None = Field(default=None, index=True)
    match_name: str | None = Field(default=None, index=True)
    matched_account_id: str | None = None
    match_rule: str | None = None
    match_confidence: float | None = None
    orphan_reason: str | None = None
    # what the link stage counted this person as in the tally (`Tally`): "linked", "review" or
    # "orphan:<reason>"; None while not counted (never linked yet, or deleted)
    link_status: str | None = None
    disposition: str | None = None
    reason_code: str | None = None
    crm_owned: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # our fields, as pulled
    # set by the mirror when it changes ``crm_owned`` (an echo of our write, or an edit by hand)
    owned_changed: bool = False


class Activity(_Mirrored, table=True):
    """One behavioural signal or sales touch (page view, demo request, call, email).

    On SQLite its rows are keyed by a unique index on ``id`` (``ux_activity_id``), not by a
    primary key constraint (the model's key all the same, `_KEYED_BY_INDEX`): a first load drops
    the index with the others and builds it after the load. Kept up row by row, it cost each of
    HubSpot's random event ids a random step into it (1M rows in 11.8-11.9 s against 6.0-7.7
    with the index built after). PostgreSQL keeps the primary key (its COPY of random ids was
    not measured).
    """

    __tablename__ = "activity"
    __table_args__ = (
        Index("ux_activity_id", "id", unique=True, info={KEY_INDEX: True}).ddl_if(dialect="sqlite"),
        # activities naming an account only (about half of a lead-heavy org's name none)
        Index("ix_activity_account_occurred", "account_id", "occurred_at", **_when(NAMES_ACCOUNT)),
        Index("ix_activity_person_occurred", "person_id", "occurred_at"),
        Index("ix_activity_uncounted", "scored_seq", **_when(AFTER_FIRST_CYCLE)),
        Index("ix_activity_recounted", "id", **_when(LINK_PENDING)),
    )

    id: str = Field(primary_key=True)
    type: str
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    person_id: str | None = None
    account_id: str | None = None
    topic: str | None = None
    owner_id: str | None = None
    subject: str | None = None
    rep_touch: bool = False  # a rep's own call, email or meeting (what stops an SLA clock)
    # the scoring cycle that counts it (`sync.account_signals`): the one after the last that had
    # run when the row was inserted; an update never sets it, so an activity read again keeps it
    # and counts once (a cycle it happened after moves it on to the next)
    scored_seq: int = Field(sa_type=BigInteger, sa_column_kwargs={"default": NEXT_CYCLE})
    # set by the mirror on every row it updates, buries or repoints, not on one it inserts; the
    # score stage clears it, so one already counted and flagged was edited, deleted or moved since
    link_pending: bool = False


def made_on(item: Any, dialect: str) -> bool:
    """Whether an index or a constraint of the models is made on ``dialect``'s database (some
    are made on one only: `ddl_if`)."""
    only = getattr(item, "_ddl_if", None)
    return only is None or only.dialect in (None, dialect)


# tables keyed on SQLite by a unique index of their primary key's columns (marked KEY_INDEX),
# which a first load can drop and build after it (`sync.store.key_index`), and by a primary key
# on PostgreSQL
_KEYED_BY_INDEX = (Activity,)
for _model in _KEYED_BY_INDEX:
    _model.__table__.primary_key.ddl_if(dialect="postgresql")  # type: ignore[attr-defined]


class Opportunity(_Linkable, table=True):
    """A CRM opportunity (Salesforce Opportunity, HubSpot Deal)."""

    __tablename__ = "opportunity"
    __table_args__ = (_pending_index("opportunity"),)

    id: str = Field(primary_key=True)
    account_id: str | None = Field(default=None, index=True)
    name: str | None = None
    stage: str | None = None
    amount: float | None = None
    opened_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    close_date: date | None = None
    is_closed: bool = False
    is_won: bool = False
    owner_id: str | None = None


class User(_Mirrored, table=True):
    """A CRM user who can own accounts: marketing, SDR, AE or manager as the [users] rules say;
    no role when no rule matched (such a user is never routed to)."""

    __tablename__ = "crm_user"
    __table_args__ = (_one_of("crm_user", "role", USER_ROLES),)

    id: str = Field(primary_key=True)
    name: str
    email: str | None = None
    role: str | None = None
    territory: str | None = None
    is_active: bool = True
    out_of_office: bool = False
    manager_id: str | None = None


class SyncRun(SQLModel, table=True):
    """One sync run of one connector, with its outcome and counts."""

    __tablename__ = "sync_run"
    __table_args__ = (_one_of("sync_run", "status", RUN_STATUSES),)

    id: str = Field(primary_key=True)
    # the order runs started in (runs of a sandbox share a simulated start time)
    seq: int = Field(unique=True, index=True)
    connector: str
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = "running"
    counts: dict[str, int] = Field(default_factory=dict, sa_type=JSON)
    error: str | None = None
    full: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    full_reason: str | None = None  # why the run re-pulled every record
    model_version: str | None = None  # the model that scored the run's accounts
    model_reason: str | None = Field(default=None, sa_type=Text)  # and why it did
    org_id: str | None = None  # the CRM org synced (`Connector.org_id`), when the CRM said


class ScoreHistory(SQLModel, table=True):
    """One score given to an account at one time. Append-only, so any past score can be replayed."""

    __tablename__ = "score_history"
    __table_args__ = (Index("ix_score_history_account_scored", "account_id", "scored_at"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.id")
    scored_at: datetime = Field(sa_type=UTCDateTime)
    score: float
    tier: str
    model_version: str
    disqualified_reason: str | None = None
    topic: str | None = None
    contributions: list[dict[str, Any]] = _compact_json()
    run_id: str | None = _run_fk()


class Assignment(SQLModel, table=True):
    """Who owns an account from when to when, and which routing rule decided it."""

    __tablename__ = "assignment"
    # exactly one accountable owner at a time (D8)
    __table_args__ = (
        Index("uq_assignment_current", "account_id", unique=True, **_when("ended_at IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.id", index=True)
    owner_id: str
    rule: str
    tier: str
    assigned_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    run_id: str | None = _run_fk()


class SlaClock(SQLModel, table=True):
    """The first-touch deadline an owner has for an account, and what became of it."""

    __tablename__ = "sla_clock"
    # a rerun must not start a second clock for the same account (D15)
    __table_args__ = (
        _one_of("sla_clock", "status", SLA_STATUSES),
        Index("uq_sla_clock_open", "account_id", unique=True, **_when("status = 'open'")),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.id", index=True)
    owner_id: str
    tier: str
    started_at: datetime = Field(sa_type=UTCDateTime)
    due_at: datetime = Field(sa_type=UTCDateTime)
    first_touch_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    breached_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = "open"


class Disposition(SQLModel, table=True):
    """A rep's verdict on a record, read back from the CRM.

    Keyed by record and time rather than a surrogate id, so pulling it again is idempotent.
    """

    __tablename__ = "disposition"
    __table_args__ = (_one_of("disposition", "disposition", DISPOSITIONS),)

    object: str = Field(primary_key=True)
    record_id: str = Field(primary_key=True)
    recorded_at: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    disposition: str
    reason_code: str | None = None
    source: str | None = None


class WriteLedger(SQLModel, table=True):
    """The last write-back of one CRM record: the values intended, their hash, and the outcome.

    Written with status "pending" before the push and settled after it ("ok", "retriable" or
    "permanent" with the CRM's code and message), so a killed run knows what may be in flight.
    """

    __tablename__ = "write_ledger"
    __table_args__ = (_one_of("write_ledger", "status", WRITE_STATUSES),)

    object: str = Field(primary_key=True)
    record_id: str = Field(primary_key=True)
    batch: str
    values_hash: str
    values: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    # the signal keys behind the text; None in a row carried over from the per-field ledger
    # (revision 0006), which did not keep them
    reasons: list[str] | None = Field(default=None, sa_type=JSON)
    status: str = "pending"
    code: str | None = None
    message: str | None = None
    intended_at: datetime = Field(sa_type=UTCDateTime)
    settled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    run_id: str | None = _run_fk()


class SyncCursor(SQLModel, table=True):
    """How far one object of one connector has been pulled (`connectors.protocol.Cursor`).

    `ids_at_value` lists the ids already seen at exactly `value`, so a `>= value` query
    can drop them instead of losing records that share the last timestamp; `value` is null
    after a pull of an empty stream. `resume` is the connector's page token of a full load
    stopped part way; `read_at` when the pull that saved the cursor began reading, which bounds
    the overlap window the next pull reads again; `archive_read_at` when HubSpot's recycle bin
    was last listed.
    """

    __tablename__ = "cursor"

    connector: str = Field(primary_key=True)
    object: str = Field(primary_key=True)
    value: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ids_at_value: list[str] = Field(default_factory=list, sa_type=JSON)
    resume: str | None = Field(default=None, sa_type=Text)
    read_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    archive_read_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class RunEvent(SQLModel, table=True):
    """One thing that happened to one record during a run, and why: the readable sync log."""

    __tablename__ = "run_event"
    __table_args__ = (
        _one_of("run_event", "stage", RUN_STAGES),
        _one_of("run_event", "action", RUN_ACTIONS),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="sync_run.id", index=True)
    at: datetime = Field(sa_type=UTCDateTime, index=True)  # retention deletes by it each run
    stage: str
    object: str | None = None
    record_id: str | None = None
    action: str
    reason: str | None = None
    detail: str | None = None


# --- the sync run's scoring state (issue 12) -----------------------------------------------


class ScoringModelRow(SQLModel, table=True):
    """A scoring model saved as JSON with its changelog; the promoted one scores."""

    __tablename__ = "model"

    version: str = Field(primary_key=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    document: str = Field(sa_type=Text)  # the model's JSON (`scoring.model.load_model`)
    promoted: bool = False
    changelog: list[str] = Field(default_factory=list, sa_type=JSON)
    reason: str | None = Field(default=None, sa_type=Text)


class CurrentScore(SQLModel, table=True):
    """Each live account's latest computed score: one row an account, replaced every run."""

    __tablename__ = "current_score"

    account_id: str = Field(primary_key=True)
    score: float
    tier: str
    model_version: str
    scored_at: datetime = Field(sa_type=UTCDateTime)
    disqualified_reason: str | None = None
    topic: str | None = None
    reasons: list[str] = _compact_json()
    run_id: str | None = _run_fk()


class AccountSignals(SQLModel, table=True):
    """One live account's decayed signal sums and latest burst (`sync.account_signals`), kept
    so a new activity updates them in O(1); ``pending`` until a rescore of it has been written."""

    __tablename__ = "account_signals"
    __table_args__ = (Index("ix_account_signals_pending", "account_id", **_when("pending")),)

    account_id: str = Field(primary_key=True)
    sums: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    as_of: datetime = Field(sa_type=UTCDateTime)  # the run that last updated the sums
    high_water: datetime | None = Field(default=None, sa_type=UTCDateTime)  # latest activity in
    pending: bool = False


class PendingOrphan(SQLModel, table=True):
    """An orphan lead rescored on its own (`sync.orphans`) whose write-back is not done yet: a
    run stopped before it wrote rescores it again, as a pending account is."""

    __tablename__ = "pending_orphan"

    person_id: str = Field(primary_key=True)


class PendingRescore(SQLModel, table=True):
    """What the score stage has yet to look at, handed over by the link stage in the transaction
    that clears the mirror's flags: a mirrored record changed (``object`` account, person or
    opportunity), a person whose link, rule or reason changed (person), an account a relink
    moved people to or from (relinked), or every account at once (everyone, after a full
    relink). The score stage deletes what it took in its own transaction, so a run stopped
    between the two stages loses nothing."""

    __tablename__ = "pending_rescore"

    object: str = Field(primary_key=True)
    record_id: str = Field(primary_key=True)


class AccountDomain(SQLModel, table=True):
    """One of an account's own domains (its website's, its domain field's) as matching reads
    them, kept by the link stage (`sync.link_keys`)."""

    __tablename__ = "account_domain"

    domain: str = Field(primary_key=True)
    account_id: str = Field(primary_key=True, index=True)


class NameVariant(SQLModel, table=True):
    """A name key (of an account or of a person's company) under each of its blocking keys: the
    key itself and every variant one letter shorter, which two similar names share
    (`sync.matching.similarity`); similar names are found by index, not by comparing all."""

    __tablename__ = "name_variant"
    __table_args__ = {"sqlite_with_rowid": False}

    variant: str = Field(primary_key=True)
    key: str = Field(primary_key=True)


class LinkState(SQLModel, table=True):
    """The single row saying the stored matching keys are complete, and the matching settings
    the links were made with: without it, or with other settings, the link stage relinks
    everyone."""

    __tablename__ = "link_state"
    __table_args__ = (CheckConstraint("id = 1", name="ck_link_state_single_row"),)

    id: int = Field(default=1, primary_key=True)
    settings: str


class Tally(SQLModel, table=True):
    """Totals of the whole org kept up to date by what changed, so a cycle reports them without
    counting every row: people per link status (``kind`` "link", kept by the link stage) and
    live accounts per tier ("tier", kept with the current-score table). A kind without rows is
    counted afresh when next needed."""

    __tablename__ = "tally"

    kind: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    count: int = Field(sa_type=BigInteger)


class ScoringState(SQLModel, table=True):
    """The single row saying what the stored sums are: the signal catalog they were summed
    with, the model that last scored them, the scoring cycle, and the moments of the last score
    stage (what changed since is new) and of the last nightly rescore."""

    __tablename__ = "scoring_state"
    __table_args__ = (CheckConstraint("id = 1", name="ck_scoring_state_single_row"),)

    id: int = Field(default=1, primary_key=True)
    catalog: str
    model_version: str
    seq: int = Field(sa_type=BigInteger)
    scored_at: datetime = Field(sa_type=UTCDateTime)
    nightly_at: datetime = Field(sa_type=UTCDateTime)


class SchemaMeta(SQLModel, table=True):
    """The single row saying which schema version wrote this database.

    Releases before migrations wrote 1-3 here; `sync.migrations` adopts those databases and then
    keeps `SCHEMA_META_VERSION`. The schema's revision itself lives in Alembic's alembic_version.
    """

    __tablename__ = "schema_meta"
    __table_args__ = (CheckConstraint("id = 1", name="ck_schema_meta_single_row"),)

    id: int = Field(default=1, primary_key=True)
    schema_version: int


class RunLock(SQLModel, table=True):
    """Which run holds an org's run lock, since when, and until when unless renewed (sync.lock).

    On SQLite this row is the lock; on PostgreSQL an advisory lock is, and the row names its holder.
    """

    __tablename__ = "run_lock"

    org_key: str = Field(primary_key=True)
    run_id: str
    host: str
    pid: int
    acquired_at: datetime = Field(sa_type=UTCDateTime)
    heartbeat_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)


TABLES = tuple(
    model.__table__  # type: ignore[attr-defined]
    for model in (
        SchemaMeta,
        SyncRun,
        Account,
        Person,
        Activity,
        Opportunity,
        User,
        ScoreHistory,
        Assignment,
        SlaClock,
        Disposition,
        WriteLedger,
        SyncCursor,
        RunEvent,
        ScoringModelRow,
        CurrentScore,
        RunLock,
        AccountSignals,
        ScoringState,
        PendingOrphan,
        PendingRescore,
        Tally,
        AccountDomain,
        NameVariant,
        LinkState,
    )
)


def _refuse_score_changes(session: Session, flush_context: Any, instances: Any) -> None:
    """Refuse to flush updates or deletes of score history rows."""
    for row in session.deleted:
        if isinstance(row, ScoreHistory):
            raise AppendOnlyError(f"score history is append-only: cannot delete row {row.id}")
    for row in session.dirty:
        if isinstance(row, ScoreHistory) and session.is_modified(row):
            raise AppendOnlyError(f"score history is append-only: cannot update row {row.id}")


def _refuse_score_statements(state: ORMExecuteState) -> None:
    """Refuse UPDATE or DELETE statements against score history run through a session."""
    if not (state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) == ScoreHistory.__tablename__:
        raise AppendOnlyError("score history is append-only: UPDATE and DELETE are refused")


event.listen(Session, "before_flush", _refuse_score_changes)
event.listen(Session, "do_orm_execute", _refuse_score_statements)


def table_of(model: type[SQLModel]) -> Table:
    """The Table behind a SQLModel table class."""
    return model.__table__  # type: ignore[attr-defined,no-any-return]
