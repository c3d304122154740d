"""One account explained from the state database alone, and the mirror scored without a run.

    found = explain_account(session, setup, matching, "acme.com", now)
    preview = score_mirror(session, setup, now)

`explain_account` finds the account by id, domain or name, scores that account alone with the
current model as the run's score stage does (from its stored signal sums, `sync.account_signals`,
so the cost does not grow with the org), and gathers the account's contributions,
its score history (newest first, following merges loser -> survivor), its linked people, and the
orphans near it: orphan people the matcher would link to it were it the only account
(`sync.matching.match_people` against this one account, names compared at
`NEARBY_NAME_SIMILARITY`), so "near" means what matching means by a domain or name match.
No CRM call: everything comes from the mirror and the run log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from sqlalchemy import func
from sqlmodel import Session, col, select

from connectors.keys import salesforce_case_safe
from scoring.config import TierSettings
from scoring.tiers import TIER_ORDER, tier_label
from sync import account_signals
from sync.config import MatchingSettings
from sync.frames import read_frame
from sync.matching import REASONS, match_people
from sync.matching.normalise import domain_table, folded_names, website_host
from sync.scoring_state import Book, ScoringSetup, score_book, score_stored, scoring_model
from sync.state import Account, AccountSignals, CurrentScore, Person, ScoringModelRow
from sync.writeback import account_scores, score_history

__all__ = [
    "NEARBY_METHOD",
    "NEARBY_NAME_SIMILARITY",
    "AccountExplanation",
    "AccountNotFound",
    "AmbiguousAccount",
    "Contribution",
    "HistoryEntry",
    "MirrorScores",
    "PersonLink",
    "RankedAccount",
    "account_domains",
    "explain_account",
    "find_account",
    "model_status",
    "score_mirror",
]

NEARBY_NAME_SIMILARITY = 80  # looser than linking's default 92: near, not the same
NEARBY_METHOD = (
    "orphans the matcher would link to this account were it the only one: "
    f"same email domain or website, same company name, or a name {NEARBY_NAME_SIMILARITY}% "
    "similar"
)
ORPHAN_REASONS = ("company_not_in_crm", "personal_email_no_company", "missing_data")
_CANDIDATES_SHOWN = 10


class AccountNotFound(LookupError):
    """No live account has that id, domain or name."""


class AmbiguousAccount(LookupError):
    """Several accounts answer to the name given; ``candidates`` lists the first of them, and
    ``more`` says whether others do too."""

    def __init__(self, query: str, candidates: list[Account], *, more: bool = False) -> None:
        self.query, self.candidates, self.more = query, candidates, more
        counted = f"more than {len(candidates)}" if more else f"{len(candidates)}"
        super().__init__(f"{counted} accounts match {query!r}")


@dataclass(frozen=True)
class Contribution:
    """One reason behind a score: its term, its signed points, the sentence a rep reads."""

    key: str
    points: float
    sentence: str


@dataclass(frozen=True)
class HistoryEntry:
    """A score that was written, and the account it was written on (a merged one's own id)."""

    scored_at: datetime
    account_id: str
    score: float
    tier: str
    model_version: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class PersonLink:
    """A lead or contact and how it is (or could be) linked to the account."""

    id: str
    kind: str
    name: str
    email: str | None
    company: str | None
    rule: str | None
    confidence: float | None
    orphan_reason: str | None = None


@dataclass(frozen=True)
class AccountExplanation:
    """Everything `handoff explain` shows about one account."""

    account: Account
    score: int
    tier: str
    tier_label: str
    model_version: str
    model_kind: str
    model_reason: str
    scored_at: datetime
    topic: str | None
    disqualified_reason: str | None
    contributions: tuple[Contribution, ...]
    history: tuple[HistoryEntry, ...]
    people: tuple[PersonLink, ...]
    nearby_orphans: tuple[PersonLink, ...]
    # base plus points before the scale's bounds: off 0-100, the contributions shown were shrunk
    # in proportion to add up to the score (`scoring.scorecard.fit_into_scale`)
    points_before_bounds: float
    nearby_method: str = NEARBY_METHOD
    base_points: float = 0.0  # where every account starts (the scorecard's base)
    smaller_points: float = 0.0  # the reasons under half a point each, together


@dataclass(frozen=True)
class RankedAccount:
    """One of the best-scored accounts: its score, tier label and domain (`account_domains`),
    its points before the 0-100 scale's bounds (None: not known), which rank accounts of one
    score, and whether it is disqualified."""

    account: Account
    score: int
    tier: str
    domain: str | None
    points: float | None = None
    disqualified: bool = False


@dataclass(frozen=True)
class MirrorScores:
    """The mirror scored and tiered as a run would, nothing written."""

    book: Book
    tiers: dict[str, int]  # tier label -> accounts
    top: tuple[RankedAccount, ...]  # best first
    model_reason: str


def find_account(session: Session, query: str) -> Account:
    """The live account with this id (a merged one's survivor), else this domain (then website),
    else this name (exactly, then containing it, case-insensitive; then so with accents set
    aside); raises `AccountNotFound` or `AmbiguousAccount`. A Salesforce id of 15 characters
    (a URL's, a report's) finds its account by the 18 the API gives."""
    by_id = session.get(Account, query)
    if by_id is None and (case_safe := salesforce_case_safe(query.strip())) is not None:
        by_id = session.get(Account, case_safe)
    while by_id is not None and by_id.is_deleted and by_id.merged_into:
        by_id = session.get(Account, by_id.merged_into)
    if by_id is not None and not by_id.is_deleted:
        return by_id
    if by_id is not None:
        raise AccountNotFound(
            f"account {by_id.id} ({by_id.name}) was deleted in the CRM; it is no longer scored"
        )
    text = query.strip().lower()
    live = select(Account).where(col(Account.is_deleted).is_(False)).order_by(col(Account.id))
    bare = text.removeprefix("https://").removeprefix("http://").removeprefix("www.").rstrip("/")
    domain = func.lower(Account.domain) == bare
    website = func.lower(Account.website).contains(bare)
    exact = func.lower(Account.name) == text
    partial = func.lower(Account.name).contains(text)
    for condition in ([domain, website] if "." in bare else []) + [exact, partial]:
        found = list(session.exec(live.where(condition).limit(_CANDIDATES_SHOWN + 1)))
        if found:
            return _one_of(query, found)
    found = _by_folded_name(session, text)
    if found:
        return _one_of(query, found)
    raise AccountNotFound(f"no account has the id, domain or name {query!r}")


def _one_of(query: str, found: Sequence[Account]) -> Account:
    """The one account found, else `AmbiguousAccount` listing them."""
    if len(found) == 1:
        return found[0]
    shown = found[:_CANDIDATES_SHOWN]
    raise AmbiguousAccount(query, shown, more=len(found) > len(shown))


def _by_folded_name(session: Session, text: str) -> list[Account]:
    """Live accounts whose name is ``text`` (else holds it) as matching folds names (accents,
    case, punctuation: `folded_names`; "Senora" finds "Señora", which SQL's lower() does not
    fold): the last way to find one, so the names are read only when nothing else matched."""
    [wanted] = folded_names(pl.Series([text])).to_list()
    if not wanted:
        return []
    rows = session.exec(
        select(Account.id, Account.name)
        .where(col(Account.is_deleted).is_(False))
        .order_by(col(Account.id))
    ).all()
    names = pl.DataFrame(
        {"id": [r[0] for r in rows], "name": folded_names(pl.Series([r[1] for r in rows]))},
        schema={"id": pl.String, "name": pl.String},
    )
    found = names.filter(pl.col("name") == wanted)
    if found.is_empty():
        found = names.filter(pl.col("name").str.contains(wanted, literal=True))
    ids = found["id"].head(_CANDIDATES_SHOWN + 1).to_list()
    accounts = {a.id: a for a in session.exec(select(Account).where(col(Account.id).in_(ids)))}
    return [accounts[i] for i in ids]


def explain_account(
    session: Session, setup: ScoringSetup, matching: MatchingSettings, query: str, now: datetime
) -> AccountExplanation:
    """The account ``query`` names, explained as scored at its last run (else at ``now``)."""
    account = find_account(session, query)
    current = session.get(CurrentScore, account.id)
    at = current.scored_at if current is not None else now
    book = _scored_alone(session, setup, account.id, at, stored=current is not None)
    scored = account_scores(book, setup.tiers, at)[account.id]
    explanation = scored.explanation
    contributions = book.scores.contributions
    row = book.account_ids.index(account.id)
    unbounded = float(contributions.raw[row])
    base = float(contributions.base)
    # the terms under half a point, which no sentence names: the points shown, the base and
    # they add up to the score before rounding
    smaller = float(contributions.score[row]) - base - sum(explanation.points)
    return AccountExplanation(
        account=account,
        score=scored.score,
        tier=scored.tier,
        tier_label=tier_label(scored.tier, setup.tiers),
        model_version=scored.model_version,
        model_kind=book.model_kind,
        model_reason=model_status(session, setup, book),
        scored_at=at,
        topic=scored.topic,
        disqualified_reason=scored.disqualified_reason,
        contributions=tuple(
            Contribution(key, points, sentence)
            for key, points, sentence in zip(
                explanation.keys, explanation.points, explanation.reasons, strict=False
            )
        ),
        history=_history(session, account.id, setup.tiers),
        people=_linked_people(session, account.id),
        nearby_orphans=_nearby_orphans(session, account, matching),
        points_before_bounds=unbounded,
        base_points=base,
        smaller_points=0.0 if scored.disqualified_reason else smaller,
    )


def _scored_alone(
    session: Session, setup: ScoringSetup, account_id: str, at: datetime, *, stored: bool
) -> Book:
    """One account scored, tiered and explained as of ``at`` with the current model, as the
    run's score stage scores it, and nothing else read: from its stored signal sums when they
    are those its last run scored (``stored``, and not updated since), else from its own
    activities in the mirror."""
    model = scoring_model(session, setup)
    held = session.get(AccountSignals, account_id)
    if stored and held is not None and held.as_of <= at:
        document = held.sums
    else:
        activities = account_signals.linked_activities(session, at, [account_id])
        document, _ = account_signals.build(setup.catalog, [account_id], activities, at)[account_id]
    return score_stored(session, setup, model, at, [(account_id, document)])


def score_mirror(
    session: Session, setup: ScoringSetup, now: datetime, top: int = 10
) -> MirrorScores:
    """Score and tier every live account of the mirror as of ``now``, as the run's score and
    tier stages do, writing nothing; the tier counts and the ``top`` accounts. Accounts of one
    score are ranked by their points before the scale's bounds (many share its cap of 100, the
    rules model's above all), then by id."""
    book = score_book(session, setup, now)
    scores = account_scores(book, setup.tiers, now)
    unbounded = dict(zip(book.account_ids, book.scores.contributions.raw.tolist(), strict=True))
    counted: dict[str, int] = {}
    for score in scores.values():
        counted[score.tier] = counted.get(score.tier, 0) + 1
    ordered = sorted(counted.items(), key=lambda item: TIER_ORDER.index(item[0]))
    tiers = {tier_label(key, setup.tiers): n for key, n in ordered}
    best = sorted(
        scores.values(), key=lambda s: (-s.score, -unbounded[s.account_id], s.account_id)
    )[:top]
    accounts = {
        a.id: a
        for a in session.exec(
            select(Account).where(col(Account.id).in_([s.account_id for s in best]))
        )
    }
    domains = account_domains(list(accounts.values()))
    shown = tuple(
        RankedAccount(
            accounts[s.account_id],
            s.score,
            str(s.values["tier"]),
            domains[s.account_id],
            unbounded[s.account_id],
            s.disqualified_reason is not None,
        )
        for s in best
    )
    return MirrorScores(book, tiers, shown, model_status(session, setup, book))


def account_domains(accounts: Sequence[Account]) -> dict[str, str | None]:
    """Each account's domain as matching reads it: its domain field (HubSpot's), else the
    registrable domain of its website (a Salesforce account has only ``Website``)."""
    frame = pl.DataFrame(
        {
            "account_id": [a.id for a in accounts],
            "domain": [a.domain for a in accounts],
            "website": [a.website for a in accounts],
        },
        schema={"account_id": pl.String, "domain": pl.String, "website": pl.String},
    ).with_columns(host=website_host(pl.coalesce("domain", "website")))
    registrable = domain_table(frame["host"]).rename({"domain": "registrable"})
    found = frame.join(registrable, on="host", how="left")
    return dict(zip(found["account_id"], found["registrable"], strict=True))


def model_status(session: Session, setup: ScoringSetup, book: Book) -> str:
    """Which model scores and why: the promoted predictive one, or the rules (cold start)."""
    promoted = session.exec(
        select(ScoringModelRow)
        .where(col(ScoringModelRow.promoted).is_(True))
        .order_by(col(ScoringModelRow.created_at).desc())
    ).first()
    version = book.scores.model_version
    if book.model_kind == "predictive":
        assert promoted is not None
        return f"the predictive model {version} scores, promoted {promoted.created_at:%d %b %Y}"
    if setup.model.model == "rules":
        return f"the rules model {version} scores: [scoring] model = rules"
    if promoted is not None:
        return (
            f"the rules model {version} scores: the signals in the settings changed since "
            f"{promoted.version} was trained; `handoff train` fits a model on them"
        )
    latest = session.exec(
        select(ScoringModelRow).order_by(col(ScoringModelRow.created_at).desc())
    ).first()
    if latest is not None and latest.reason:  # a model trained and kept aside: it says why
        return latest.reason
    return (
        f"the rules model {version} scores (cold start): no predictive model has been promoted; "
        "a full sync fits one once the org has enough history, as `handoff train` does"
    )


def _history(session: Session, account_id: str, tiers: TierSettings) -> tuple[HistoryEntry, ...]:
    """Written scores, newest first, with those of every account merged into this one; tiers
    by the labels the CRM shows."""
    rows = reversed(score_history(session, account_id))
    return tuple(
        HistoryEntry(
            row.scored_at,
            row.account_id,
            row.score,
            tier_label(row.tier, tiers) if row.tier in TIER_ORDER else row.tier,
            row.model_version,
            tuple(str(c.get("reason", "")) for c in row.contributions),
        )
        for row in rows
    )


def _linked_people(session: Session, account_id: str) -> tuple[PersonLink, ...]:
    """Live people linked to the account, strongest link first."""
    people = session.exec(
        select(Person)
        .where(Person.matched_account_id == account_id, col(Person.is_deleted).is_(False))
        .order_by(col(Person.match_confidence).desc(), col(Person.id))
    )
    return tuple(_person(p, p.match_rule, p.match_confidence) for p in people)


_ORPHANS = (  # live people the matcher left without an account
    col(Person.is_deleted).is_(False),
    col(Person.matched_account_id).is_(None),
    col(Person.orphan_reason).in_(ORPHAN_REASONS),
)


def _nearby_orphans(
    session: Session, account: Account, matching: MatchingSettings
) -> tuple[PersonLink, ...]:
    """Orphans the matcher links to this account when it is the only one to choose from; the
    orphans are read once, as the matcher's frame, and only those it links are loaded whole."""
    people = read_frame(
        session,
        select(
            col(Person.id).label("person_id"),
            Person.email,
            Person.company,
            Person.country,
            Person.phone,
        ).where(*_ORPHANS),
    )
    if people.is_empty():
        return ()
    accounts = read_frame(
        session,
        select(
            col(Account.id).label("account_id"),
            Account.name,
            Account.website,
            Account.domain,
            Account.country,
        ).where(Account.id == account.id),
    )
    near = matching.model_copy(
        update={"fuzzy_threshold": min(matching.fuzzy_threshold, NEARBY_NAME_SIMILARITY)}
    )
    found = match_people(accounts, people, near).frame.filter(pl.col("status") != "orphan")
    ranked = found.sort("confidence", "person_id", descending=[True, False], nulls_last=True)
    rows = list(ranked.iter_rows(named=True))
    linked = {row["person_id"] for row in rows}
    whole = {p.id: p for p in session.exec(select(Person).where(col(Person.id).in_(linked)))}
    return tuple(_person(whole[row["person_id"]], row["rule"], row["confidence"]) for row in rows)


def _person(person: Person, rule: str | None, confidence: float | None) -> PersonLink:
    name = " ".join(part for part in (person.first_name, person.last_name) if part)
    reason = person.orphan_reason
    return PersonLink(
        person.id,
        person.kind,
        name,
        person.email,
        person.company,
        None if rule is None else str(rule),
        confidence,
        REASONS.get(reason, reason) if reason in ORPHAN_REASONS else None,
    )
