"""Matching keys kept in the state database, so an incremental link reads only what a change
reaches, never every person and account.

Each person keeps the keys matching reads off its fields (`Person.match_link`: its CRM link,
`match_domain`: its corporate email domain, `match_name`: its company's name key), each account
its name key (`Account.match_name`) and its own domains (`AccountDomain`), and every name key its
blocking keys (`NameVariant`: two similar names share one), all indexed. The link stage computes
them for the rows the mirror changed (`refresh`; for everyone on a full relink, `store_everyone`)
and then finds, by index:

- who a change reaches (`reached`): the changed people; and the people whose keys meet, as they
  are or as they were, those of an account the change names or of one of its relatives (its id,
  a domain of its own or learned from its people, its name or a similar one), or who were linked
  to one;
- what their outcomes depend on (`neighbourhood`): every account their keys meet (any of their
  candidates) with the live accounts above it, every person linked to one of those accounts
  (contacts, learned domains) and those accounts' opportunities.

Matching just those frames gives each reached person the outcome matching everyone would: an
account their keys meet is a candidate in both or in neither, and everything matching reads
about a candidate (hierarchy, contacts, domains, opportunities) is in the frames.

    old = refresh(session, settings, changed_people, changed_accounts)
    people = reached(session, settings, live_changed_people, named_accounts, old)
    accounts, persons, opportunities = neighbourhood(session, settings, people)
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from sqlalchemy import delete, exists, false
from sqlmodel import Session, col, select

from sync.config import MatchingSettings
from sync.frames import read_columns, read_frame
from sync.matching.match import Keyed, keyed
from sync.matching.similarity import name_similarity, name_variants, shortest_similar
from sync.state import Account, AccountDomain, LinkState, NameVariant, Opportunity, Person, table_of
from sync.store import in_chunks, insert_rows_missing, update_frame

__all__ = [
    "OldKeys",
    "account_keys",
    "accounts_frame",
    "current",
    "mark_current",
    "neighbourhood",
    "people_frame",
    "person_keys",
    "reached",
    "refresh",
    "store_accounts",
    "store_everyone",
]

_REGISTER_CHUNK = 20_000  # name keys whose variants are made and stored at a time
# ... into an empty table: its rows go in as one sorted run, each page of its B-tree filled in
# turn, where each chunk's lands all across the tree (the reference org's 283,000 keys, 5.1M
# variants: 9.5 s in chunks, 5.7 s in one, which holds 186 MB while stored)
_REGISTER_FIRST = 400_000
_MAX_DEPTH = 16  # parent links followed up a hierarchy, as `sync.matching.keys` does
# the person columns matching reads, and the account columns
_PEOPLE = (
    col(Person.id).label("person_id"),
    Person.email,
    Person.company,
    Person.country,
    Person.phone,
    Person.account_id,
    Person.converted_account_id,
)
_ACCOUNTS = (
    col(Account.id).label("account_id"),
    Account.name,
    Account.website,
    Account.domain,
    Account.country,
    Account.parent_id,
    Account.created_at,
)


@dataclass
class OldKeys:
    """Keys of the changed rows as they were before this link: a person who met one of them
    may have lost a candidate."""

    names: set[str] = field(default_factory=set)
    domains: set[str] = field(default_factory=set)
    accounts: set[str] = field(default_factory=set)  # the old CRM links of changed people


def current(session: Session, settings: MatchingSettings) -> bool:
    """Whether the stored keys are complete and the links made with ``settings``."""
    state = session.get(LinkState, 1)
    return state is not None and state.settings == _fingerprint(settings)


def mark_current(session: Session, settings: MatchingSettings) -> None:
    """The stored keys are complete and the links made with ``settings``."""
    session.merge(LinkState(id=1, settings=_fingerprint(settings)))


def _fingerprint(settings: MatchingSettings) -> str:
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:16]


# --- frames as matching reads them -------------------------------------------------------------


def accounts_frame(
    session: Session, ids: Collection[str] | None = None, *columns: Any
) -> pl.DataFrame:
    """Live accounts as the matcher reads them (and ``columns``): every one, or those of
    ``ids``."""
    statement = select(*_ACCOUNTS, *columns).where(col(Account.is_deleted).is_(False))
    frame = _read_by_ids(session, statement, Account.id, ids)
    return frame.with_columns(pl.col("created_at").dt.epoch("s"))


def people_frame(
    session: Session, ids: Collection[str] | None = None, *columns: Any
) -> pl.DataFrame:
    """Live people as the matcher reads them (and ``columns``, text or numbers): every one
    (read column-wise, the whole table), or those of ``ids``."""
    statement = select(*_PEOPLE, *columns).where(col(Person.is_deleted).is_(False))
    if ids is None:
        return read_columns(session, statement)
    return _read_by_ids(session, statement, Person.id, ids)


def _read_by_ids(
    session: Session, statement: Any, key: Any, ids: Collection[str] | None
) -> pl.DataFrame:
    if ids is None:
        return read_frame(session, statement)
    frames = [read_frame(session, statement.where(col(key).in_(c))) for c in in_chunks(sorted(ids))]
    return pl.concat(frames) if frames else read_frame(session, statement.where(false()))


# --- storing keys ------------------------------------------------------------------------------


def store_everyone(session: Session, keys: Keyed) -> None:
    """Every account's own domains and every name's blocking keys, after a match of everyone
    (each person's and each account's keys go with the row's other columns: `person_keys`,
    `account_keys`)."""
    session.execute(delete(AccountDomain))
    own = keys.own.select("domain", "account_id").sort("domain", "account_id")
    insert_rows_missing(session, table_of(AccountDomain), own, new=True)
    _register(session, pl.concat([keys.firms["name_key"], keys.persons["company_key"]]))


def person_keys(keys: Keyed) -> pl.DataFrame:
    """Each keyed person's keys as stored: person_id, link, domain, name."""
    return keys.persons.select(
        "person_id", link="link_id", domain="corporate_domain", name="company_key"
    )


def account_keys(keys: Keyed) -> pl.DataFrame:
    """Each keyed account's key as stored: account_id, name."""
    return keys.firms.select("account_id", name="name_key")


def store_accounts(session: Session, keys: Keyed) -> None:
    """The keyed accounts' name keys and own domains (their old domains deleted before), and
    their names' blocking keys."""
    firms = keys.firms.select(id="account_id", match_name="name_key")
    update_frame(session, table_of(Account), firms.sort("id"))
    own = keys.own.select("domain", "account_id").sort("domain", "account_id")
    insert_rows_missing(session, table_of(AccountDomain), own)
    _register(session, firms["match_name"])


def _store_people(session: Session, keys: Keyed) -> None:
    """The keyed people's keys."""
    rows = person_keys(keys).select(
        id="person_id", match_link="link", match_domain="domain", match_name="name"
    )
    update_frame(session, table_of(Person), rows.sort("id"))
    _register(session, rows["match_name"])


def _register(session: Session, names: pl.Series) -> None:
    """Store the blocking keys of the name keys not stored yet (a key is among its own; none
    is, the first time)."""
    table = table_of(NameVariant)
    given = names.drop_nulls().unique().to_list()
    empty = not session.execute(select(exists().select_from(table))).scalar()
    known: set[str] = set()
    for chunk in [] if empty else in_chunks(sorted(given)):
        statement = select(table.c.variant).where(
            table.c.variant.in_(chunk), table.c.key == table.c.variant
        )
        known.update(session.execute(statement).scalars())
    new = sorted(set(given) - known)
    size = _REGISTER_FIRST if empty else _REGISTER_CHUNK
    for start in range(0, len(new), size):
        variants = name_variants(pl.Series(new[start : start + size], dtype=pl.String))
        rows = variants.select("variant", "key").sort("variant", "key")
        insert_rows_missing(session, table, rows.filter(_first(rows)), new=empty)


def _first(rows: pl.DataFrame) -> pl.Expr:
    """Whether a row of sorted ``rows`` is the first of its values (cheaper than unique)."""
    return pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in rows.columns)


def refresh(
    session: Session,
    settings: MatchingSettings,
    people: Collection[str],
    accounts: Collection[str],
) -> OldKeys:
    """Recompute and store the keys of the changed ``people`` and ``accounts`` (deleted ones
    keep theirs: every lookup reads live rows only); their keys as they were."""
    old = _old_keys(session, people, accounts)
    for chunk in in_chunks(sorted(accounts)):
        session.execute(delete(AccountDomain).where(col(AccountDomain.account_id).in_(chunk)))
    keys = keyed(accounts_frame(session, accounts), people_frame(session, people), settings)
    _store_people(session, keys)
    store_accounts(session, keys)
    return old


def _old_keys(session: Session, people: Collection[str], accounts: Collection[str]) -> OldKeys:
    """The stored keys of these people (their links and domains) and accounts (their names and
    own domains), before they are recomputed."""
    old = OldKeys()
    columns = (Person.match_link, Person.match_domain)
    for chunk in in_chunks(sorted(people)):
        for link, domain in session.exec(select(*columns).where(col(Person.id).in_(chunk))):
            old.accounts.add(link)
            old.domains.add(domain)
    for chunk in in_chunks(sorted(accounts)):
        names = select(Account.match_name).where(col(Account.id).in_(chunk))
        old.names.update(session.exec(names))
        domains = select(AccountDomain.domain).where(col(AccountDomain.account_id).in_(chunk))
        old.domains.update(session.exec(domains))
    for found in (old.names, old.domains, old.accounts):
        found.discard(None)  # type: ignore[arg-type]
    return old


# --- who a change reaches ----------------------------------------------------------------------


def reached(
    session: Session,
    settings: MatchingSettings,
    people: Collection[str],
    accounts: Collection[str],
    old: OldKeys,
) -> set[str]:
    """The live people a change reaches: ``people`` (changed themselves), and those whose keys
    meet the keys of ``accounts`` (changed, or named by a changed person or opportunity) or of
    their relatives, as they are or were (``old``), or who were linked to one of them."""
    family = _relatives(session, set(accounts) | old.accounts)
    names = set(old.names)
    domains = set(old.domains)
    for chunk in in_chunks(sorted(family)):
        names.update(session.exec(select(Account.match_name).where(col(Account.id).in_(chunk))))
        owned = select(AccountDomain.domain).where(col(AccountDomain.account_id).in_(chunk))
        domains.update(session.exec(owned))
        domains.update(_people_where(session, Person.match_domain, Person.match_link, chunk))
    names.discard(None)  # type: ignore[arg-type]
    domains.discard(None)  # type: ignore[arg-type]
    found = set(people)
    for column, values in (
        (Person.match_link, family),
        (Person.matched_account_id, family),
        (Person.match_domain, domains),
        (Person.match_name, names | _similar(session, names, settings.fuzzy_threshold)),
    ):
        for chunk in in_chunks(sorted(values)):
            found.update(_people_where(session, Person.id, column, chunk))
    return found


def _people_where(session: Session, what: Any, column: Any, values: Sequence[Any]) -> set[Any]:
    """``what`` of the live people whose ``column`` is among ``values``."""
    statement = select(what).where(col(column).in_(values), col(Person.is_deleted).is_(False))
    return set(session.exec(statement))


def _relatives(session: Session, accounts: Collection[str]) -> set[str]:
    """The accounts and every account of their hierarchies: all above them, and all below
    those (deleted ones walked through, a superset of the live hierarchies matching reads)."""
    above, frontier = set(accounts), set(accounts)
    for _ in range(_MAX_DEPTH):
        parents: set[str] = set()
        for chunk in in_chunks(sorted(frontier)):
            up = select(Account.parent_id).where(
                col(Account.id).in_(chunk), col(Account.parent_id).is_not(None)
            )
            parents.update(session.exec(up))
        frontier = parents - above
        above |= frontier
        if not frontier:
            break
    family, frontier = set(above), set(above)
    for _ in range(_MAX_DEPTH):
        children: set[str] = set()
        for chunk in in_chunks(sorted(frontier)):
            children.update(
                session.exec(select(Account.id).where(col(Account.parent_id).in_(chunk)))
            )
        frontier = children - family
        family |= frontier
        if not frontier:
            break
    return family


def _similar(session: Session, names: Collection[str], threshold: int) -> set[str]:
    """Stored name keys similar to ``names`` (`sync.matching.similarity.similar_names`'s
    pairs, found by their blocking keys' index)."""
    shortest = shortest_similar(threshold)
    queries = pl.Series([n for n in names if len(n) >= shortest], dtype=pl.String)
    if queries.is_empty():
        return set()
    variants = name_variants(queries).rename({"key": "query"})
    table = table_of(NameVariant)
    rows: list[tuple[str, str]] = []
    for chunk in in_chunks(sorted(variants["variant"].unique().to_list())):
        statement = select(table.c.variant, table.c.key).where(table.c.variant.in_(chunk))
        rows.extend((variant, key) for variant, key in session.execute(statement))
    stored = pl.DataFrame(rows, schema={"variant": pl.String, "target": pl.String}, orient="row")
    pairs = (
        variants.join(stored, on="variant")
        .filter(
            (pl.col("query") != pl.col("target")) & (pl.col("target").str.len_chars() >= shortest)
        )
        .select("query", "target")
        .unique()
    )
    if pairs.is_empty():
        return set()
    similar = name_similarity(pairs["query"], pairs["target"]) >= threshold
    return set(pairs.filter(similar)["target"].to_list())


# --- what the reached people's outcomes depend on ----------------------------------------------


def neighbourhood(
    session: Session, settings: MatchingSettings, people: Collection[str]
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(accounts, people, opportunities) as matching reads them: every account the keys of
    ``people`` meet with the live accounts above it, ``people`` and everyone linked to one of
    those accounts, and those accounts' opportunities."""
    keys = (Person.match_link, Person.match_domain, Person.match_name)
    persons = people_frame(session, people, *keys)
    domains = set(persons["match_domain"].drop_nulls().to_list())
    names = set(persons["match_name"].drop_nulls().to_list())
    found = set(persons["match_link"].drop_nulls().to_list())
    for chunk in in_chunks(sorted(domains)):
        owned = select(AccountDomain.account_id).where(col(AccountDomain.domain).in_(chunk))
        found.update(session.exec(owned))
        found.update(_people_where(session, Person.match_link, Person.match_domain, chunk))
    for chunk in in_chunks(sorted(names | _similar(session, names, settings.fuzzy_threshold))):
        found.update(session.exec(select(Account.id).where(col(Account.match_name).in_(chunk))))
    found.discard(None)  # type: ignore[arg-type]
    candidates = accounts_frame(session, found)
    accounts = pl.concat([candidates, _above(session, candidates)])
    ids = candidates["account_id"].to_list()
    linked: set[str] = set()
    for chunk in in_chunks(sorted(ids)):
        linked.update(_people_where(session, Person.id, Person.match_link, chunk))
    others = people_frame(session, linked - set(persons["person_id"].to_list()))
    statement = select(Opportunity.account_id, Opportunity.is_closed).where(
        col(Opportunity.is_deleted).is_(False)
    )
    opportunities = _read_by_ids(session, statement, Opportunity.account_id, ids)
    stripped = persons.drop("match_link", "match_domain", "match_name")
    return accounts, pl.concat([stripped, others]), opportunities


def _above(session: Session, accounts: pl.DataFrame) -> pl.DataFrame:
    """The live accounts above ``accounts`` in their hierarchies, up to the first that is not
    live (matching reads a hierarchy of live accounts: its top is that one's id)."""
    have = set(accounts["account_id"].to_list())
    frontier = set(accounts["parent_id"].drop_nulls().to_list()) - have
    frames = []
    for _ in range(_MAX_DEPTH):
        if not frontier:
            break
        frame = accounts_frame(session, frontier)
        frames.append(frame)
        have |= set(frame["account_id"].to_list())
        frontier = set(frame["parent_id"].drop_nulls().to_list()) - have
    return pl.concat(frames) if frames else accounts.clear()
