"""The link stage relinks only what a change reaches, and ends where relinking everyone would.

The org is written to the store as the mirror writes it (every row it writes is pending); a
cycle then changes accounts, people and deals the ways a CRM does, and the incremental link is
compared person by person with a full relink of the same state.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from sqlalchemy import inspect
from sqlmodel import Session, col, select

from sandbox.generator import generate_org
from sandbox.org import Org
from sync import Store, link_keys
from sync.config import MatchingSettings
from sync.linking import LinkCounts, link_people
from sync.matching.normalise import personal_domains
from sync.state import Account, Opportunity, Person

NOW = datetime(2026, 11, 1, tzinfo=UTC)
SETTINGS = MatchingSettings()


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(120, 11)


def _mirrored(**values: Any) -> dict[str, Any]:
    """A row as the mirror writes it: stamped, live, pending for the link stage."""
    return values | {
        "crm_modified_at": NOW,
        "synced_at": NOW,
        "is_deleted": False,
        "link_pending": True,
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _load(store: Store, org: Org) -> None:
    accounts = [
        _mirrored(
            id=str(a["account_id"]),
            name=a["name"],
            website=a["website"],
            country=a["country"],
            parent_id=_text(a["parent_id"]),
            created_at=a["created_at"],
        )
        for a in org.accounts.iter_rows(named=True)
    ]
    people = [
        _mirrored(
            id=str(p["person_id"]),
            kind=p["kind"],
            email=p["email"],
            company=p["company"],
            country=p["country"],
            phone=p["phone"],
            account_id=_text(p["account_id"]),
            is_converted=p["is_converted"],
            converted_account_id=_text(p["converted_account_id"]),
        )
        for p in org.people.iter_rows(named=True)
    ]
    deals = [
        _mirrored(
            id=str(o["opportunity_id"]),
            account_id=str(o["account_id"]),
            is_closed=o["is_closed"],
        )
        for o in org.opportunities.iter_rows(named=True)
    ]
    with store.session() as session:
        store.upsert(session, Account, accounts)
        store.upsert(session, Person, people)
        store.upsert(session, Opportunity, deals)


def _links(session: Session) -> dict[str, tuple[Any, ...]]:
    rows = session.exec(
        select(
            Person.id,
            Person.matched_account_id,
            Person.match_rule,
            Person.match_confidence,
            Person.orphan_reason,
        ).where(col(Person.is_deleted).is_(False))
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def _link(store: Store, *, full: bool = False) -> LinkCounts:
    with store.session() as session:
        return link_people(session, SETTINGS, full=full)


def _orphans_with_domains(links: dict[str, tuple[Any, ...]], org: Org) -> list[dict[str, Any]]:
    """Two leads no account matches, each with a corporate (not personal) email domain."""
    orphans = {p for p, (_, _, _, reason) in links.items() if reason == "company_not_in_crm"}
    people = org.people.filter(
        pl.col("person_id").cast(pl.String).is_in(list(orphans))
        & pl.col("email").is_not_null()
        & pl.col("company").is_not_null()
    )
    people = people.with_columns(domain=pl.col("email").str.split("@").list.last()).filter(
        ~pl.col("domain").is_in(list(personal_domains(())))
    )
    return list(
        people.unique("domain", keep="first", maintain_order=True).head(2).iter_rows(named=True)
    )


def _change_everything(store: Store, org: Org, links: dict[str, tuple[Any, ...]]) -> dict[str, str]:
    """One cycle's changes, written as the mirror would; the ids the test follows."""
    orphan, learner = _orphans_with_domains(links, org)
    by_name = next(p for p, v in links.items() if v[1] not in (None, "crm_link"))
    named = str(links[by_name][0])
    linked = next(p for p, v in links.items() if v[0] is not None and p != by_name)
    gone = next(str(v[0]) for p, v in links.items() if v[0] not in (None, named))
    teacher = next(str(v[0]) for p, v in links.items() if v[0] not in (None, named, gone))
    with store.session() as session:
        store.upsert(
            session,
            Account,
            [
                _mirrored(id="new-1", name="Qzxw Unrelated", website=f"https://{orphan['domain']}"),
                _mirrored(id=named, name="Renamed Beyond Recognition Ltd"),
                _mirrored(id=gone, name="gone") | {"is_deleted": True},
            ],
        )
        store.upsert(
            session,
            Person,
            [
                _mirrored(id=linked, kind="lead", email="someone@gmail.com", company=None),
                _mirrored(
                    id="new-p", kind="contact", email=f"x@{learner['domain']}", account_id=teacher
                ),
            ],
        )
        store.upsert(
            session,
            Opportunity,
            [_mirrored(id="new-o", account_id=named, is_closed=False)],
        )
    return {
        "orphan": str(orphan["person_id"]),
        "learner": str(learner["person_id"]),
        "teacher": teacher,
        "named": named,
        "gone": gone,
        "linked": linked,
    }


def test_an_incremental_link_ends_where_a_full_relink_does(store: Store, org: Org) -> None:
    _load(store, org)
    first = _link(store)
    with store.session() as session:
        before = _links(session)
    followed = _change_everything(store, org, before)

    cycle = _link(store)
    with store.session() as session:
        incremental = _links(session)
    again = _link(store)
    full = _link(store, full=True)
    with store.session() as session:
        relinked = _links(session)

    assert first.people == len(before) == org.people.height
    assert 0 < cycle.people < len(incremental)  # only what the changes reach
    assert incremental == relinked
    assert incremental[followed["orphan"]][:2] == ("new-1", "domain")
    assert incremental[followed["learner"]][0] == followed["teacher"]  # a domain learned
    assert incremental[followed["linked"]][0] is None
    assert all(v[0] != followed["gone"] for v in incremental.values())
    assert {"new-1", followed["gone"]} <= cycle.touched_accounts
    assert again.people == 0 and again.touched_accounts == frozenset()
    assert (again.linked, again.review, again.orphans) == (
        cycle.linked,
        cycle.review,
        cycle.orphans,
    )
    assert full.full and full.people == len(relinked) and full.touched_accounts == frozenset()


def _typo(rng: random.Random, name: str) -> str:
    """``name`` with one letter changed, dropped or doubled (a similar name, when long)."""
    at = rng.randrange(1, max(2, len(name) - 1))
    kind = rng.choice(("change", "drop", "double"))
    if kind == "change":
        return name[:at] + rng.choice("aeiouxz") + name[at + 1 :]
    if kind == "drop":
        return name[:at] + name[at + 1 :]
    return name[:at] + name[at] + name[at:]


def _random_cycle(store: Store, rng: random.Random, cycle: int, taught: list[str]) -> None:
    """A cycle's worth of changes of every kind matching reads, written as the mirror would;
    ``taught``: domains only a contact writes from (learned by its account), kept across cycles."""
    with store.session() as session:
        accounts = session.exec(
            select(Account.id, Account.name, Account.website, Account.parent_id).where(
                col(Account.is_deleted).is_(False)
            )
        ).all()
        people = session.exec(
            select(Person.id, Person.kind, Person.email, Person.company, Person.orphan_reason)
            .where(col(Person.is_deleted).is_(False))
            .order_by(col(Person.id))
        ).all()
    orphans = [p for p in people if p.orphan_reason is not None and p.company and p.email]
    nested = [a for a in accounts if a.parent_id is not None]
    changed_accounts: list[dict[str, Any]] = []
    changed_people: list[dict[str, Any]] = []
    deals: list[dict[str, Any]] = []
    for n in range(20):
        account, other = rng.choice(accounts), rng.choice(accounts)
        orphan, person = rng.choice(orphans), rng.choice(people)
        domain = orphan.email.split("@")[1]
        change = rng.randrange(11)
        if change == 0:  # renamed like another account, or like an orphan's company
            name = _typo(rng, rng.choice((other.name, orphan.company)))
            changed_accounts.append(_mirrored(id=account.id, name=name))
        elif change == 1:  # a website an orphan writes from, or none
            website = rng.choice((f"https://{domain}", None))
            changed_accounts.append(_mirrored(id=account.id, name=account.name, website=website))
        elif change == 2:  # a new account, named like an orphan's company
            name = rng.choice((orphan.company, _typo(rng, orphan.company)))
            changed_accounts.append(_mirrored(id=f"new-{cycle}-{n}", name=name))
        elif change == 3:  # moved under another account (one with a parent: deeper), or to the top
            parent = rng.choice((other.id, rng.choice(nested or accounts).id, None))
            changed_accounts.append(_mirrored(id=account.id, name=account.name, parent_id=parent))
        elif change == 4:  # deleted
            changed_accounts.append(_mirrored(id=account.id, name=account.name, is_deleted=True))
        elif change == 5:  # a person writes from elsewhere, or names another company
            website = (other.website or "").split("//")[-1].split("/")[0]
            email = f"{person.id}@{website or domain}"
            company = rng.choice((person.company, _typo(rng, other.name)))
            changed_people.append(
                _mirrored(id=person.id, kind=person.kind, email=email, company=company)
            )
        elif change == 6:  # a contact of another account, or a person deleted
            gone = rng.random() < 0.3
            changed_people.append(
                _mirrored(id=person.id, kind="contact", account_id=other.id, is_deleted=gone)
            )
        elif change == 7:  # a contact teaches its account a domain no account has
            taught.append(f"taught-{cycle}-{n}.com")
            email = f"{person.id}@{taught[-1]}"
            changed_people.append(
                _mirrored(id=person.id, kind="contact", email=email, account_id=other.id)
            )
        elif change == 8 and taught:  # a lead writes from a domain a contact taught before
            email = f"{person.id}@{rng.choice(taught)}"
            changed_people.append(_mirrored(id=person.id, kind="lead", email=email, company=None))
        elif change == 9:  # a lead known only by a company name like an account's
            email = f"{person.id}@gmail.com"
            changed_people.append(
                _mirrored(id=person.id, kind="lead", email=email, company=_typo(rng, other.name))
            )
        else:  # an open deal, or a closed one
            closed = rng.random() < 0.5
            deals.append(_mirrored(id=f"o-{cycle}-{n}", account_id=account.id, is_closed=closed))
    with store.session() as session:
        store.upsert(session, Account, changed_accounts)
        store.upsert(session, Person, changed_people)
        store.upsert(session, Opportunity, deals)


@pytest.mark.parametrize("seed", [11, 12])
def test_incremental_links_end_where_full_relinks_do_through_random_changes(
    store: Store, org: Org, seed: int
) -> None:
    _load(store, org)
    _link(store)
    rng, taught = random.Random(seed), []
    cycles = []
    for cycle in range(6):
        _random_cycle(store, rng, cycle, taught)
        cycles.append(_link(store))
        with store.session() as session:
            incremental = _links(session)
        _link(store, full=True)
        with store.session() as session:
            assert _links(session) == incremental, f"cycle {cycle}"

    assert all(not c.full and 0 < c.people < org.people.height for c in cycles)


def _account(id: str, name: str, **more: Any) -> dict[str, Any]:
    return _mirrored(id=id, name=name, website=None, parent_id=None) | more


def _lead(id: str, company: str | None, email: str) -> dict[str, Any]:
    return _mirrored(id=id, kind="lead", email=email, company=company)


# people whose outcome hangs on an account they never name: a hierarchy above their candidates,
# an account moved into their candidates' hierarchy, keys a candidate had and lost
HIERARCHIES = [
    _account("g", "Gamma Holdings Group"),
    _account("p1", "Pone Intermediate", parent_id="g"),
    _account("p2", "Ptwo Intermediate", parent_id="g"),
    _account("c1", "Hierarchia Deepcorp", parent_id="p1"),
    _account("c2", "Hierarchia Deepcorp", parent_id="p2"),
    _account("p", "Parentia One"),
    _account("q", "Parentia Two"),
    _account("a", "Relinqua Systems", parent_id="p"),
    _account("b", "Relinqua Systems", parent_id="q"),
    _account("x", "Xylo Shared", website="https://sharedco.com"),
    _account("y", "Ymir Shared", website="https://sharedco.com"),
    _account("u", "Umbra Twinname Ltd"),
    _account("v", "Umbra Twinname GmbH"),
]
LEADS = [
    _lead("deep", "Hierarchia Deepcorp", "d@gmail.com"),
    _lead("moved", "Relinqua Systems", "m@gmail.com"),
    _lead("shared", None, "s@sharedco.com"),
    _lead("twin", "Umbra Twinname", "t@gmail.com"),
]


def test_an_incremental_link_follows_hierarchies_and_the_keys_an_account_lost(
    store: Store,
) -> None:
    with store.session() as session:
        store.upsert(session, Account, HIERARCHIES)
        store.upsert(session, Person, LEADS)
    _link(store)
    with store.session() as session:
        before = _links(session)
        store.upsert(
            session,
            Account,
            [
                _account("q", "Parentia Two", parent_id="p"),  # b joins a's hierarchy
                _account("x", "Xylo Shared", website="https://xylo-elsewhere.com"),
                _account("u", "Completely Different Corp"),
            ],
        )
        store.upsert(session, Person, [_lead("deep", "Hierarchia Deepcorp", "d2@gmail.com")])
    cycle = _link(store)
    with store.session() as session:
        incremental = _links(session)
    _link(store, full=True)
    with store.session() as session:
        relinked = _links(session)

    assert before["deep"][3] == "ambiguous_hierarchy"  # c1 and c2 share g, two levels up
    assert (before["moved"][3], incremental["moved"][3]) == (
        "ambiguous_accounts",
        "ambiguous_hierarchy",
    )
    assert before["shared"][3] == "ambiguous_accounts" and incremental["shared"][0] == "y"
    assert before["twin"][3] == "ambiguous_accounts" and incremental["twin"][0] == "v"
    assert not cycle.full and incremental == relinked


# values whose repr Python spells its own way (quotes, escapes, text beyond ASCII), and
# datetimes with and without seconds and microseconds
CREATED = {
    "Seconds": datetime(2021, 5, 6, 0, 0, 9, tzinfo=UTC),
    "Microseconds": datetime(2021, 5, 6, 7, 8, 0, 500, tzinfo=UTC),
    "Everything": datetime(999, 5, 6, 7, 8, 9, 10, tzinfo=UTC),
    "Midnight": NOW,
}
ODD_ACCOUNTS = [
    _account("o1", "O'Brien & Sons", created_at=datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=UTC)),
    _account("o2", 'Say "Hi" Ltd', website="https://say-hi.example"),
    _account("o3", "Back\\slash Caf\u00e9"),
    _account("o4", "Both ' and \" GmbH\u00a0"),
    _account("o5", "Tab\tNew\nLine \U0001f600", domain="xn--caf-dma.example"),
    *(
        _account(f"o{n}", f"Plain {name}", created_at=at)
        for n, (name, at) in enumerate(CREATED.items(), 6)
    ),
]
ODD_PEOPLE = [
    _lead("l1", "O'Brien & Sons", "seán@say-hi.example"),
    _lead("l2", 'Say "Hi" Ltd', "x@say-hi.example") | {"phone": "+1 (555) 'x'"},
    _lead("l3", "Back\\slash Caf\u00e9", "b@gmail.com") | {"country": "Côte d'Ivoire"},
    _lead("l4", None, "nobody@nowhere.example") | {"account_id": "o5"},
    *(_lead(f"l{n}", f"Plain {name}", "p@gmail.com") for n, name in enumerate(CREATED, 6)),
]


def test_a_first_link_stores_the_basis_a_cycle_compares_rows_pulled_again_with(
    store: Store,
) -> None:
    with store.session() as session:
        store.upsert(session, Account, ODD_ACCOUNTS)
        store.upsert(session, Person, ODD_PEOPLE)
    first = _link(store)
    with store.session() as session:  # the same records pulled again: flagged, unchanged
        store.upsert(session, Account, ODD_ACCOUNTS)
        store.upsert(session, Person, ODD_PEOPLE)
    again = _link(store)

    assert first.full and first.people == len(ODD_PEOPLE)
    assert (again.full, again.people, again.touched_accounts) == (False, 0, frozenset())


class _Killed(Exception):
    """The link stage ended at a chosen point."""


def test_a_full_relink_that_fails_leaves_every_index_in_place(
    store: Store, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load(store, org)
    _link(store)  # nothing is pending after it: the next full relink changes no row first
    held = {table: _index_names(store, table) for table in ("account", "person")}

    def killed(*_: Any) -> None:
        raise _Killed

    monkeypatch.setattr(link_keys, "store_everyone", killed)
    with pytest.raises(_Killed):
        _link(store, full=True)  # `sync --full`, or other matching settings

    assert {table: _index_names(store, table) for table in held} == held


def _index_names(store: Store, table: str) -> set[str]:
    return {str(index["name"]) for index in inspect(store.engine).get_indexes(table)}
